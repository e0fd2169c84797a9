//! `edp tasks`: expand a jobs file into a task list (step one of EDP's two steps).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::jobs;
use crate::metadata::MetadataSet;
use crate::storage;
use crate::tasks::{self, Locations};
use crate::time::DailyDate;

#[derive(Args, Debug)]
pub struct TasksArgs {
    /// Jobs file: one `[<grouping id>, 'native'|'latlon', 'SNAP'|'AVG_DAY'|'AVG_MON', 'all'|[steps]]` per line.
    #[arg(long)]
    jobs: PathBuf,
    /// Root of the model output (holding diags_monthly/, diags_daily/, diags_inst/, or
    /// <release>/ with them); a directory or s3://bucket/prefix.
    #[arg(long)]
    source: PathBuf,
    /// Root of the granules: <dest>/<release>/<native|latlon>/<period>/<GROUPING>/...
    #[arg(long)]
    dest: String,
    /// Grid location written into every task (ecco_grid_loc).
    #[arg(long)]
    grid: Option<String>,
    /// Mapping-factors location written into every task (ecco_mapping_factors_loc).
    #[arg(long)]
    factors: Option<String>,
    /// ECCO metadata directory (default: the embedded V4r4 set); also written into tasks.
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// Release label; must match the metadata set's.
    #[arg(long)]
    release: Option<String>,
    /// Name daily means by the day their period ends on, as EDP's code does, instead
    /// of the day averaged (the published archive's convention).
    #[arg(long)]
    edp_daily_dates: bool,
    /// Output task list (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print task counts per grouping and frequency and the estimated output volume.
    #[arg(long)]
    summary: bool,
}

pub fn run(a: &TasksArgs) -> anyhow::Result<u8> {
    let t = Instant::now();
    // Problems of the whole set first (the set may not even load); those of the
    // groupings the jobs make once the tasks are known.
    super::check_metadata::gate(a.metadata.as_deref(), Some(&Default::default()), false)?;
    let m = match &a.metadata {
        Some(d) => MetadataSet::from_dir(&storage::local_dir(&d.to_string_lossy())?)?,
        None => MetadataSet::embedded()?,
    };
    if let Some(r) = &a.release {
        if *r != m.release.version {
            eprintln!(
                "edp: error: --release {r} does not match the metadata set ({} is {})",
                m.origin, m.release.version
            );
            return Ok(EXIT_USAGE);
        }
    }
    if !storage::is_s3(&a.source.to_string_lossy()) && !a.source.is_dir() {
        anyhow::bail!("source root {} is not a directory", a.source.display());
    }
    let job_list = jobs::read_jobs(&a.jobs, &m)?;
    let loc = Locations {
        dest_root: a.dest.clone(),
        grid: a.grid.clone(),
        factors: a.factors.clone(),
        metadata: a
            .metadata
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        config: None,
    };
    let daily = if a.edp_daily_dates {
        DailyDate::PeriodEnd
    } else {
        DailyDate::DayAveraged
    };
    let plan = tasks::build_from_jobs(&job_list, &m, &a.source, &loc, daily);
    if !plan.listing_errors.is_empty() {
        anyhow::bail!(
            "cannot list the inputs, no task list written: {}",
            plan.listing_errors.join("; ")
        );
    }
    let used = super::check_metadata::groupings_of(&plan.tasks);
    super::check_metadata::gate(a.metadata.as_deref(), Some(&used), true)?;
    match &a.output {
        Some(path) => tasks::write_task_list(path, &plan.tasks)
            .with_context(|| format!("writing {}", path.display()))?,
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
        job_list.len()
    );
    Ok(EXIT_OK)
}
