//! The one planner of the command line: jobs file → task list, with the options that
//! `edp tasks` and `edp run --jobs` share (one struct, flattened into both, so they
//! accept the same options and build the same list).

use std::path::PathBuf;

use clap::Args;

use crate::jobs;
use crate::metadata::MetadataSet;
use crate::storage::{self, Storage};
use crate::tasks::{self, Locations, Plan};
use crate::time::DailyDate;

#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Jobs file: one `[<grouping id or name>, 'native'|'latlon'|'1D', 'SNAP'|'AVG_DAY'|'AVG_MON'|'TI',
    /// 'all'|[steps]]` per line (`edp groupings` lists the ids; 1D: README).
    #[arg(long, requires_all = ["source", "dest"])]
    pub jobs: Option<PathBuf>,
    /// Root of the model output (holding diags_monthly/, diags_daily/, diags_inst/, or
    /// <release>/ with them); a directory or s3://bucket/prefix.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Root of the granules (<dest>/<release>/<native|latlon>/<period>/<GROUPING>/...);
    /// `edp run` also keeps its manifest, summary and journals (.edp/) there. With
    /// `edp run --tasks`, default: the common root of the tasks' granules.
    #[arg(long)]
    pub dest: Option<String>,
    /// Grid location written into every task (ecco_grid_loc); `edp run` uses it for
    /// every task, overriding the tasks' own.
    #[arg(long)]
    pub grid: Option<String>,
    /// Mapping-factors location written into every task (ecco_mapping_factors_loc): a
    /// file made by `edp factors`, local or s3://, which `edp run` uses for the lat-lon
    /// granules.
    #[arg(long)]
    pub factors: Option<String>,
    /// ECCO metadata directory (default: the embedded V4r4 set); also written into tasks.
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Release label; must match the metadata set's.
    #[arg(long)]
    pub release: Option<String>,
    /// Name daily means by the day their period ends on, as EDP's code does, instead
    /// of the day averaged (the published archive's convention).
    #[arg(long)]
    pub edp_daily_dates: bool,
}

/// A task list built from a jobs file, with what built it.
pub struct Planned {
    pub plan: Plan,
    /// Jobs read from the file.
    pub jobs: usize,
}

impl PlanArgs {
    /// The metadata set (`--metadata`, else the embedded V4r4 set).
    pub fn metadata_set(&self, storage: &Storage) -> anyhow::Result<MetadataSet> {
        Ok(match &self.metadata {
            Some(d) => MetadataSet::from_dir(&storage.local_dir(&d.to_string_lossy())?)?,
            None => MetadataSet::embedded()?,
        })
    }

    /// Says when a local `--grid` is not the grid the metadata set's native label
    /// names (V4r4's `llc0090`): granules are named, and given their PO.DAAC titles,
    /// ids and DOIs, after that label, as EDP does, so an LLC1080 run with the V4r4 set
    /// would make granules that pass for LLC90 ones.
    fn check_native_label(&self, m: &MetadataSet, g: &crate::grid::Grid) {
        let Some(grid) = self.grid.as_deref() else {
            return;
        };
        let Some(label_n) = m.release.native_label_size() else {
            return;
        };
        if g.n != label_n {
            log::warn!(
                "grid {grid} is LLC{} but the metadata set ({}) describes LLC{label_n} \
                 products: native granules will be named {} and carry the LLC{label_n} \
                 datasets' titles, ids and DOIs; give --metadata a set made for this grid \
                 (its edp_release.json sets ecco_production_filestr_grid_label)",
                g.n,
                m.origin,
                m.release.native_label
            )
        }
    }

    /// Builds the task list of `--jobs` (an error if the inputs cannot be listed),
    /// handing each job's tasks to `sink` as they are made, so that the list is never
    /// held whole (`edp tasks`, `edp run --jobs`).
    pub fn build_tasks_into(
        &self,
        storage: &Storage,
        sink: &mut dyn FnMut(Vec<crate::tasks::Task>) -> std::io::Result<()>,
    ) -> anyhow::Result<Planned> {
        let (Some(jobs_file), Some(source), Some(dest)) = (&self.jobs, &self.source, &self.dest)
        else {
            anyhow::bail!("--jobs needs --source and --dest");
        };
        let m = self.metadata_set(storage)?;
        // The grid every task will name, opened once before any work.
        if let Some(grid) = &self.grid {
            let g = super::preflight::open_grid(grid, storage)?;
            self.check_native_label(&m, &g);
        }
        if let Some(r) = &self.release {
            if *r != m.release.version {
                anyhow::bail!(
                    "--release {r} does not match the metadata set ({} is {})",
                    m.origin,
                    m.release.version
                );
            }
        }
        if !storage::is_s3(&source.to_string_lossy()) && !source.is_dir() {
            anyhow::bail!("source root {} is not a directory", source.display());
        }
        let jobs::JobsFile {
            jobs: job_list,
            one_d,
        } = jobs::read_jobs_file(jobs_file, &m)?;
        // Absolute, so that the task list works from any directory.
        let abs = super::preflight::absolute;
        let loc = Locations {
            dest_root: abs(dest),
            grid: self.grid.as_deref().map(abs),
            factors: self.factors.as_deref().map(abs),
            metadata: self.metadata.as_ref().map(|p| abs(&p.to_string_lossy())),
            config: None,
        };
        let source = &PathBuf::from(abs(&source.to_string_lossy()));
        let daily = if self.edp_daily_dates {
            DailyDate::PeriodEnd
        } else {
            DailyDate::DayAveraged
        };
        let mut plan =
            tasks::plan::expand_jobs(&job_list, &m, source, &loc, daily, Some(storage.s3()), sink)?;
        // The 1D jobs' tasks follow the others' (their reports after the others' too).
        let one_d = tasks::oned::expand_jobs(&one_d, &m, source, &loc, Some(storage.s3()), sink)?;
        plan.jobs.extend(one_d.reports);
        if !plan.listing_errors.is_empty() {
            anyhow::bail!(
                "cannot list the inputs, no task list made: {}",
                plan.listing_errors.join("; ")
            );
        }
        // The tasks went to `sink`: the job reports count them.
        if plan.jobs.iter().all(|r| r.tasks == 0) {
            let why = match (job_list.is_empty(), one_d.missing.is_empty()) {
                (_, true) => no_tasks(jobs_file, source, &m, &job_list, &plan),
                (true, false) => format!(
                    "{} gives no tasks: {}",
                    jobs_file.display(),
                    one_d.missing.join("; ")
                ),
                (false, false) => format!(
                    "{}; {}",
                    no_tasks(jobs_file, source, &m, &job_list, &plan),
                    one_d.missing.join("; ")
                ),
            };
            anyhow::bail!("{why}");
        }
        Ok(Planned {
            jobs: plan.jobs.len(),
            plan,
        })
    }
}

/// Why a jobs file gave no tasks: each job with the grouping it named, the directories
/// searched, and the grouping the same id names in the other product (a common slip).
fn no_tasks(
    jobs_file: &std::path::Path,
    source: &std::path::Path,
    m: &MetadataSet,
    jobs: &[jobs::Job],
    plan: &Plan,
) -> String {
    if jobs.is_empty() {
        return format!("{} holds no jobs, no tasks", jobs_file.display());
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    for (job, r) in jobs.iter().zip(&plan.jobs) {
        for d in super::preflight::searched_dirs(source, &m.release.version, job.freq) {
            dirs.insert(d.display().to_string());
        }
        let other = match job.product {
            crate::metadata::Product::Native => crate::metadata::Product::Latlon,
            _ => crate::metadata::Product::Native,
        };
        let also = m
            .grouping(other, job.grouping)
            .filter(|o| o.filename != r.grouping)
            .map(|o| {
                format!(
                    "; {} grouping {} is {}",
                    other.name(),
                    job.grouping,
                    o.filename
                )
            })
            .unwrap_or_default();
        let steps = if r.empty_steps.is_empty() {
            String::new()
        } else {
            format!(
                " at step(s) {:?}",
                &r.empty_steps[..r.empty_steps.len().min(5)]
            )
        };
        lines.push(format!(
            "line {}: {} grouping {} ({}) {}: no input{steps}{also}",
            job.line, r.product, job.grouping, r.grouping, r.freq
        ));
    }
    let slip = source
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("diags_"));
    format!(
        "{} gives no tasks: {}; searched {}{} (see `edp groupings`)",
        jobs_file.display(),
        lines.join("; "),
        dirs.into_iter().collect::<Vec<_>>().join(", "),
        if slip {
            "; --source names the directory above diags_monthly/, diags_daily/, diags_inst/"
        } else {
            ""
        }
    )
}
