//! `edp run`: produce the granules of a task list.

use std::path::PathBuf;

use clap::Args;

use super::{init_threads, print_summary, EXIT_OK, EXIT_TASKS_FAILED};
use crate::granule::Encoding;
use crate::run::{self, Overrides, Shared};
use crate::tasks;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Task list (JSON array of tasks, as EDP's edp_create_job_task_list writes).
    #[arg(long)]
    tasks: PathBuf,
    /// Grid location for every task, overriding the tasks' ecco_grid_loc.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// ECCO metadata directory (default: the embedded V4r4 set).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// zlib level of data variables (EDP: 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9))]
    deflate: u8,
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: &RunArgs) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let list = tasks::read_task_list(&a.tasks)?;
    let mut shared = Shared::new(
        Overrides {
            grid: a.grid.clone(),
            metadata: a.metadata.clone(),
        },
        Encoding {
            deflate_level: a.deflate,
            shuffle: true,
        },
    )?;
    let summary = run::run_serial(&list, &mut shared);
    print_summary(&summary);
    Ok(if summary.failed() > 0 {
        EXIT_TASKS_FAILED
    } else {
        EXIT_OK
    })
}
