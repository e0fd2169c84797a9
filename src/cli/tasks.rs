//! `edp tasks`: expand a jobs file into a task list (step one of EDP's two steps).

use std::path::PathBuf;
use std::time::Instant;

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
    let Planned {
        plan,
        jobs: job_count,
    } = super::check_metadata::gated(
        a.plan.metadata.as_deref(),
        storage,
        || a.plan.plan(storage),
        |p| &p.plan.tasks,
    )?;
    if a.plan.grid.is_none() {
        // Every task names its grid; a list without one cannot run anywhere.
        anyhow::bail!(
            "edp tasks needs --grid (the grid location written into every task: an MDS grid directory or GRID_GEOMETRY file)"
        );
    }
    match &a.output {
        // The error names the file.
        Some(path) => tasks::write_task_list(path, &plan.tasks)?,
        None => {
            let text = serde_json::to_string_pretty(&plan.tasks)?;
            println!("{text}");
        }
    }
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
    log::info!(
        "{} tasks from {} jobs in {elapsed:.2} s",
        plan.tasks.len(),
        job_count
    );
    Ok(EXIT_OK)
}
