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
    // Streamed either way, each job's tasks written as they are made: into a temporary
    // file put in place once the metadata gate has passed (`-o`), or into an unnamed
    // file in the scratch directory copied to standard output after the gate, so that
    // a list refused by the gate prints nothing and the list is never held whole.
    let (planned, count) = match &a.output {
        Some(path) => {
            let temp = crate::storage::prepare(path)
                .with_context(|| format!("writing {}", path.display()))?;
            let written = std::fs::File::create(&temp)
                .map_err(anyhow::Error::from)
                .and_then(|f| stream_gated(a, storage, f))
                .with_context(|| format!("writing {}", temp.display()));
            match written {
                Ok((planned, n, _)) => {
                    crate::storage::commit(&temp, path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    (planned, n)
                }
                Err(e) => {
                    crate::storage::discard(&temp);
                    return Err(e);
                }
            }
        }
        None => {
            let dir = storage
                .scratch()
                .map(|s| s.root().to_path_buf())
                .unwrap_or_else(|_| std::env::temp_dir());
            // Unlinked at once: the open file is all there is, gone when edp ends.
            let temp = dir.join(format!("edp-tasks-{}.json", uuid::Uuid::new_v4().simple()));
            let file = std::fs::File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
                .with_context(|| format!("writing the task list to {}", temp.display()))?;
            let _ = std::fs::remove_file(&temp);
            let (planned, n, mut file) = stream_gated(a, storage, file)
                .with_context(|| format!("writing the task list in {}", dir.display()))?;
            use std::io::{Seek, Write};
            file.rewind()?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut file, &mut out)
                .and_then(|_| out.flush())
                .context("writing the task list to standard output")?;
            (planned, n)
        }
    };
    let Planned {
        plan,
        jobs: job_count,
    } = planned;
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

/// The plan of `a` streamed into `file` between the metadata gates; returns it with
/// its task count and the file, flushed.
fn stream_gated(
    a: &TasksArgs,
    storage: &Storage,
    file: std::fs::File,
) -> anyhow::Result<(Planned, usize, std::fs::File)> {
    let mut w = tasks::TaskListWriter::new(std::io::BufWriter::with_capacity(1 << 16, file));
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
    let file = w.finish()?.into_inner().map_err(|e| e.into_error())?;
    Ok((planned, n, file))
}
