//! `edp run`: produce the granules of a task list, on every rank of an MPI job or alone,
//! with journals, a completion manifest and restart (see [`crate::run::spmd`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::plan::PlanArgs;
use super::{init_threads, EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::granule::finite::NonFinitePolicy;
use crate::granule::quantize::BitRoundTable;
use crate::granule::Encoding;
use crate::regrid::store::FactorSource;
use crate::run::mpi::World;
use crate::run::signal::StopFlag;
use crate::run::spmd::{self, RunEnd, SpmdConfig};
use crate::run::Overrides;
use crate::settings::Settings;
use crate::storage::{self, Storage};
use crate::tasks::{self, TaskList};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["tasks", "jobs"])))]
pub struct RunArgs {
    /// Task list (JSON array of tasks, as `edp tasks` or EDP's edp_create_job_task_list write).
    #[arg(long)]
    tasks: Option<PathBuf>,
    /// With --jobs: expand a jobs file into tasks first, exactly as `edp tasks` does
    /// (same options); needs --source and --dest.
    #[command(flatten)]
    plan: PlanArgs,
    /// Where factors are built and kept when --factors is not given (default: beside
    /// the output, <dest>/edp_factors/).
    #[arg(long)]
    factors_cache: Option<PathBuf>,
    /// zlib level of data variables (EDP: 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9))]
    deflate: u8,
    /// How granules reach the disk: `direct` compresses chunks on every thread and hands
    /// them to HDF5 finished; `netcdf` puts everything through netCDF-C (one thread
    /// compresses). Same files, same values.
    #[arg(long, default_value = "direct")]
    writer: crate::ncio::WriteMethod,
    /// Threads per rank (default: SLURM_CPUS_PER_TASK, else the node's cores divided
    /// among its ranks).
    #[arg(long, value_parser = crate::settings::threads)]
    threads: Option<usize>,
    /// Before skipping a granule a previous run made, check its sha256 too (not only its size).
    #[arg(long)]
    verify: bool,
    /// Non-finite values (NaN, ±Inf) in wet cells of an input: `fail` the task (naming
    /// the file, variable, count and first cell), or `fill` (written as the fill value,
    /// with a warning and the count in the manifest record).
    #[arg(long, value_enum, default_value_t = NonFinitePolicy::Fail)]
    nonfinite: NonFinitePolicy,
    /// A granule whose step has no input for some of its grouping's fields: `write` it
    /// without them (a warning, the fields named in its record's missing_fields and
    /// counted in the summary; `edp verify --content` accepts them), or `fail` its task.
    #[arg(
        long,
        env = "EDP_MISSING_FIELDS",
        value_name = "write|fail",
        default_value = "write"
    )]
    missing_fields: crate::run::MissingFields,
    /// Seconds between progress reports on rank 0 (0: none).
    #[arg(long, default_value_t = 10.0)]
    progress: f64,
    /// Lossy BitRound before compression: keep N significant mantissa bits (1-23) of
    /// variable VAR (e.g. THETA=10,SSH=7). Off by default; recorded in the manifest and
    /// as the variable's _QuantizeBitRoundNumberOfSignificantBits.
    #[arg(long, value_name = "VAR=N", value_delimiter = ',')]
    significant_bits: Vec<String>,
    /// A table of `VAR N` lines for --significant-bits (# comments); the command line wins.
    #[arg(long, value_name = "FILE")]
    significant_bits_file: Option<PathBuf>,
    /// Draw a quick-look PNG beside each local granule (as `edp plot` does, first data
    /// variable, top level); recorded in the manifest. Off by default.
    #[arg(long)]
    quicklook: bool,
    /// Ranks that write each 3D granule together (1: one rank per granule). Default: a
    /// granule costlier than one rank's fair share of the run gets a group.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ranks_per_granule: Option<u64>,
    /// How a group of ranks writes its granule: `gather` (every rank compresses its
    /// share of the chunks and sends them to the group's first rank, which writes the
    /// file; any build) or `collective` (parallel HDF5 collective writes; the
    /// parallel-HDF5 build only). Same files, same values; --writer applies to
    /// granules written by one rank.
    #[arg(long, default_value = "gather")]
    group_writer: crate::ncio::GroupWriteMethod,
    /// After a run where every task succeeded, write the virtual Zarr reference files
    /// of every collection under a local --dest (as `edp references DEST`).
    #[arg(long)]
    references: bool,
}

/// The --significant-bits table, or `None` when no variable is named.
fn significant_bits(
    a: &RunArgs,
    storage: &Storage,
) -> anyhow::Result<Option<&'static BitRoundTable>> {
    let mut table = match &a.significant_bits_file {
        Some(p) => BitRoundTable::from_file(p)?,
        None => BitRoundTable::default(),
    };
    table.extend(BitRoundTable::parse_items(
        a.significant_bits.iter().map(String::as_str),
        "--significant-bits",
    )?);
    // A variable no grouping writes would be silently ignored: a typo, said before any work.
    if !table.is_empty() {
        let m = a.plan.metadata_set(storage)?;
        let known: std::collections::HashSet<&str> = [
            crate::metadata::Product::Native,
            crate::metadata::Product::Latlon,
        ]
        .into_iter()
        .flat_map(|p| m.groupings(p))
        .flat_map(|g| g.fields.iter().map(|f| g.output_name(f)))
        .collect();
        let unknown: Vec<&str> = table
            .entries()
            .keys()
            .map(String::as_str)
            .filter(|v| !known.contains(v))
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!(
                "--significant-bits: {} is not a variable of any grouping of the metadata set ({})",
                unknown.join(", "),
                m.origin
            );
        }
    }
    // One table per process, shared by every granule for the whole run.
    Ok((!table.is_empty()).then(|| &*Box::leak(Box::new(table))))
}

pub fn run(a: &RunArgs, settings: &Settings, storage: &Arc<Storage>) -> anyhow::Result<u8> {
    if a.group_writer == crate::ncio::GroupWriteMethod::Collective
        && !cfg!(feature = "parallel-hdf5")
    {
        eprintln!(
            "edp: error: --group-writer collective needs the parallel-HDF5 build of edp \
             (this one is serial; see `edp --version`)"
        );
        return Ok(EXIT_USAGE);
    }
    let bits = match significant_bits(a, storage) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("edp: error: {e:#}");
            return Ok(EXIT_USAGE);
        }
    };
    let world = match World::init(settings.mpi.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            return Ok(EXIT_USAGE);
        }
    };
    let threads = a
        .threads
        .unwrap_or_else(|| spmd::default_threads(world.local_size()));
    init_threads(Some(threads));
    if world.is_root() {
        log::info!(
            "edp {} on {} rank(s){} x {threads} thread(s)",
            env!("CARGO_PKG_VERSION"),
            world.size(),
            if world.uses_mpi() { " (MPI)" } else { "" }
        );
    }
    // Failing to install a handler must not make one rank leave early (the others would
    // wait for it): the run goes on, only without a graceful stop.
    let stop = StopFlag::install().unwrap_or_else(|e| {
        log::warn!(
            "{}; SIGTERM/SIGUSR1 will not stop the run gracefully",
            crate::error::chain(&e)
        );
        StopFlag::default()
    });
    crate::ncio::set_write_hooks(settings);
    let cfg = SpmdConfig {
        // Absolute like the tasks' granules (see load_tasks), whatever the directory.
        dest: a.plan.dest.as_deref().map(super::preflight::absolute),
        state_dir: settings.state_dir.clone(),
        storage: Arc::clone(storage),
        overrides: Overrides {
            grid: a.plan.grid.as_ref().map(PathBuf::from),
            metadata: a.plan.metadata.clone(),
            factors: factor_source(a, storage),
            missing_fields: a.missing_fields,
        },
        encoding: Encoding {
            deflate_level: a.deflate,
            shuffle: true,
            significant_bits: bits,
        },
        write: crate::run::WriteOptions {
            method: a.writer,
            quicklook: a.quicklook,
        },
        nonfinite: a.nonfinite,
        threads,
        verify: a.verify,
        progress_every: Duration::from_secs_f64(a.progress.max(0.0)),
        debug: crate::run::spmd::DebugHooks {
            panic_granule: settings.debug_panic_granule.clone(),
            task_delay: Duration::from_millis(settings.debug_task_delay_ms.unwrap_or(0)),
            slow_rank: settings.debug_slow_rank,
        },
        ranks_per_granule: a.ranks_per_granule.map(|g| g as usize),
        group_method: a.group_writer,
    };
    let load = || load_tasks(a, storage);
    let (end, message) = spmd::run_spmd(&world, &cfg, &stop, &load);
    if let Some(m) = message {
        eprintln!("edp: error: {m}");
    }
    let root = world.is_root();
    // Finalise MPI before the process exits.
    drop(world);
    let code = match end {
        RunEnd::AllDone if a.references && root => match a.plan.dest.as_deref() {
            Some(d) => super::references::write_for(storage, d, None, None),
            _ => {
                log::warn!("--references needs --dest; no reference files written");
                EXIT_OK
            }
        },
        RunEnd::AllDone => EXIT_OK,
        RunEnd::SomeFailed => EXIT_TASKS_FAILED,
        RunEnd::Config => EXIT_USAGE,
        RunEnd::Interrupted => EXIT_INTERRUPTED,
    };
    if root {
        if let Some(hint) = super::resume_hint(code) {
            eprintln!("{hint}");
        }
    }
    Ok(code)
}

/// Rank 0: the task list, read or built from the jobs file.
fn load_tasks(a: &RunArgs, storage: &Storage) -> anyhow::Result<TaskList> {
    let mut tasks = super::check_metadata::gated(
        a.plan.metadata.as_deref(),
        storage,
        || read_or_build_tasks(a, storage),
        // A granule that cannot be read is reported when the run plans.
        |t: &TaskList| {
            let granules = t.granules().unwrap_or_default();
            super::check_metadata::groupings_of_granules(granules.iter().map(String::as_str))
        },
    )?;
    // Relative granules are taken from here, as the absolute --dest is; an EDP list's
    // relative inputs from its own directory when they are not found from here.
    let relocation = match &a.tasks {
        Some(path) if !storage::is_s3(&path.to_string_lossy()) => {
            super::preflight::relocation(&tasks, path)?
        }
        _ => tasks::Relocation {
            absolute_granules: true,
            ..tasks::Relocation::default()
        },
    };
    tasks.relocate(relocation);
    // What every task shares, once, before any work (exit 2, nothing written).
    super::preflight::check_grids(&tasks, a.plan.grid.as_deref(), storage)?;
    super::preflight::check_inputs(&tasks)?;
    if let Some(f) = &a.plan.factors {
        check_factors(f, a.plan.grid.as_deref(), &tasks, storage)?;
    }
    Ok(tasks)
}

/// `--factors` must name factors that can be used, before any work: a file that
/// cannot be opened, an S3 object that cannot be fetched and factors that fail their
/// checks (format, or made for another grid than the lat-lon tasks') are configuration
/// errors naming the path and the cause, not a silent fall-back to building factors.
fn check_factors(
    f: &str,
    grid: Option<&str>,
    tasks: &TaskList,
    storage: &Storage,
) -> anyhow::Result<()> {
    // The error names the location itself.
    let path = storage
        .local_file(f)
        .map_err(|e| anyhow::anyhow!("--factors: {}", crate::error::chain(&e)))?;
    if !path.is_file() {
        anyhow::bail!("--factors {f}: no such file");
    }
    let factors = crate::regrid::format::Factors::open(&path)
        .map_err(|e| anyhow::anyhow!("--factors {f}: {}", crate::error::chain(&e)))?;
    // Against the grid of the first lat-lon task (the others share it in practice).
    let latlon = tasks.iter().find_map(|t| {
        let t = t.ok()?;
        let name = tasks::GranuleName::parse(&t.granule).ok()?;
        (name.product == crate::metadata::Product::Latlon).then_some((t, name))
    });
    if let Some((task, name)) = latlon {
        let loc = grid
            .map(str::to_string)
            .or_else(|| task.ecco_grid_loc.clone());
        if let Some(loc) = loc {
            let target = crate::granule::latlon::target_of(&name)?;
            let g = crate::grid::Grid::open(&storage.grid_path(std::path::Path::new(&loc))?)?;
            crate::regrid::store::check(&factors, &g, target)
                .map_err(|e| anyhow::anyhow!("--factors {f}: {}", crate::error::chain(&e)))?;
        }
    }
    Ok(())
}

/// The task list, read or built from the jobs file.
fn read_or_build_tasks(a: &RunArgs, storage: &Storage) -> anyhow::Result<TaskList> {
    if let Some(path) = &a.tasks {
        let loc = path.to_string_lossy();
        if storage::is_s3(&loc) {
            // A task list on S3 (the remote mode) is read whole.
            let bytes = storage.read_bytes(&loc)?;
            return non_empty(path, tasks::parse_task_list(path, &bytes)?.into());
        }
        // Mapped, each task parsed when needed: a release's list is never held whole.
        return non_empty(path, TaskList::map(path)?);
    }
    use anyhow::Context as _;
    // Planned into a task list file in the scratch directory, mapped, and the file
    // unlinked (the mapping stays): the plan is never held whole in memory.
    let dir = storage
        .scratch()
        .map(|s| s.root().to_path_buf())
        .unwrap_or_else(|_| std::env::temp_dir());
    let file = dir.join(format!("edp-plan-{}.json", uuid::Uuid::new_v4().simple()));
    let planned = (|| -> anyhow::Result<(usize, usize)> {
        let mut w = tasks::TaskListWriter::create(&file)
            .with_context(|| format!("writing the plan to {}", file.display()))?;
        let mut n = 0;
        let planned = a.plan.build_tasks_into(storage, &mut |ts| {
            n += ts.len();
            ts.iter().try_for_each(|t| w.push(t))
        })?;
        w.finish()
            .with_context(|| format!("writing the plan to {}", file.display()))?;
        Ok((n, planned.jobs))
    })();
    let list = planned.and_then(|p| Ok((p, TaskList::map(&file)?)));
    let _ = std::fs::remove_file(&file);
    let ((n, jobs), list) = list?;
    let jobs_file = a.plan.jobs.as_deref().unwrap_or(std::path::Path::new("?"));
    log::info!("{n} task(s) from {jobs} job(s) in {}", jobs_file.display());
    Ok(list)
}

/// An empty task list is a mistake upstream (a wrong source root or step), not a run.
fn non_empty(path: &std::path::Path, list: TaskList) -> anyhow::Result<TaskList> {
    if list.is_empty() {
        anyhow::bail!(
            "task list {} holds no tasks (`edp tasks` refuses to write one: was it made by hand?)",
            path.display()
        );
    }
    Ok(list)
}

/// Our factor file from --factors serves task lists too (EDP's name EDP's pickles);
/// anything else leaves the lat-lon factors to the cache (--factors-cache, else beside
/// the output). An S3 object is fetched once per node into the scratch cache.
fn factor_source(a: &RunArgs, storage: &Storage) -> FactorSource {
    // Rank 0 reports a `--factors` it cannot have before any work (check_factors); a
    // rank that alone cannot have it fails its lat-lon tasks with the reason.
    let file = a.plan.factors.as_deref().map(|f| {
        storage
            .local_file(f)
            .map_err(|e| format!("--factors: {}", crate::error::chain(&e)))
            .and_then(|p| {
                p.is_file()
                    .then_some(p)
                    .ok_or_else(|| format!("--factors {f}: no such file"))
            })
    });
    FactorSource {
        file,
        cache_dir: a.factors_cache.clone(),
    }
}
