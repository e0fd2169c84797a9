//! `edp tasks`: expand a jobs file into a task list (step one of EDP's two steps).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::plan::{PlanArgs, Planned};
use super::EXIT_OK;
use crate::storage::Storage;
use crate::tasks;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("jobs_file").required(true).args(["jobs"])))]
pub struct TasksArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Output task list (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print task counts per grouping and frequency and the estimated output volume.
    #[arg(long)]
    summary: bool,
}

pub fn run(a: &TasksArgs, storage: &Storage) -> anyhow::Result<u8> {
    let t = Instant::now();
    if a.plan.grid.is_none() {
        // Every task names its grid; a list without one cannot run anywhere.
        anyhow::bail!(
            "edp tasks needs --grid (the grid location written into every task: an MDS grid directory or GRID_GEOMETRY file)"
        );
    }
    let (plan, job_count, count) = match &a.output {
        // Streamed: each job's tasks are written as they are made, into a temporary
        // file put in place once the metadata gate has passed.
        Some(path) => {
            let temp = crate::storage::prepare(path)
                .with_context(|| format!("writing {}", path.display()))?;
            let written = (|| -> anyhow::Result<(Planned, usize)> {
                let mut w = tasks::TaskListWriter::create(&temp)
                    .with_context(|| format!("writing {}", temp.display()))?;
                let mut n = 0;
                let planned = super::check_metadata::gated(
                    a.plan.metadata.as_deref(),
                    storage,
                    || {
                        a.plan.build_tasks_into(storage, &mut |ts| {
                            n += ts.len();
                            ts.iter().try_for_each(|t| w.push(t))
                        })
                    },
                    |p| {
                        p.plan
                            .jobs
                            .iter()
                            .filter(|r| r.tasks > 0)
                            .map(|r| r.grouping.clone())
                            .collect()
                    },
                )?;
                w.finish()
                    .with_context(|| format!("writing {}", temp.display()))?;
                Ok((planned, n))
            })();
            match written {
                Ok((planned, n)) => {
                    crate::storage::commit(&temp, path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    (planned.plan, planned.jobs, n)
                }
                Err(e) => {
                    crate::storage::discard(&temp);
                    return Err(e);
                }
            }
        }
        None => {
            let Planned { plan, jobs } = super::check_metadata::gated(
                a.plan.metadata.as_deref(),
                storage,
                || a.plan.build_tasks(storage),
                |p| super::check_metadata::groupings_of(&p.plan.tasks),
            )?;
            let text = serde_json::to_string_pretty(&plan.tasks)?;
            println!("{text}");
            let n = plan.tasks.len();
            (plan, jobs, n)
        }
    };
    let elapsed = t.elapsed().as_secs_f64();
    if a.summary {
        // To stderr when the list itself goes to stdout.
        let mut lines = vec![format!(
            "{:<6} {:<40} {:<7} {:<8} {:>8} {:>8} {:>12}",
            "line", "grouping", "product", "freq", "tasks", "partial", "data (GB)"
        )];
        let mut total = (0usize, 0u64);
        for r in &plan.jobs {
            lines.push(format!(
                "{:<6} {:<40} {:<7} {:<8} {:>8} {:>8} {:>12.2}",
                r.line,
                r.grouping,
                r.product,
                r.freq,
                r.tasks,
                r.partial_steps,
                r.data_bytes as f64 / 1e9
            ));
            total.0 += r.tasks;
            total.1 += r.data_bytes;
        }
        lines.push(format!(
            "total: {} tasks, {:.2} GB of data uncompressed (~{:.2} GB as deflate-5 granules), built in {elapsed:.2} s",
            total.0,
            total.1 as f64 / 1e9,
            total.1 as f64 / 1e9 * 0.3
        ));
        let text = lines.join("\n");
        if a.output.is_some() {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }
    log::info!("{count} tasks from {job_count} jobs in {elapsed:.2} s");
    Ok(EXIT_OK)
}
