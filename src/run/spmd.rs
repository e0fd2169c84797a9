//! The SPMD run: the same code on every rank of `mpirun -np N` / `srun`, or alone.
//!
//! 1. Rank 0 builds or reads the task list, folds any journals of a killed run into the
//!    manifest, removes partial files, skips the tasks already done, estimates the cost
//!    of the rest and partitions them over the ranks ([`super::cost`]).
//! 2. It broadcasts the run header and scatters each rank its tasks; a configuration
//!    error is broadcast instead, and every rank exits 2 before any work.
//! 3. Each rank loads the shared inputs once and produces its granules, largest first,
//!    appending a record per task to its own journal as soon as the granule is in place.
//!    A stop signal ends the loop between granules.
//! 4. Rank 0 gathers the records, writes the manifest and the human summary, and
//!    broadcasts the exit code, which every rank returns.
//!
//! Between the collectives no rank returns early, so a failure on one rank can never
//! leave the others waiting; a panic aborts the whole job ([`super::mpi`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cost;
use super::destination::{Destination, Done};
use super::journal::{self, JournalWriter, Record, Status};
use super::manifest::{self, Manifest, RunInfo};
use super::mpi::{self, Group, World};
use super::signal::StopFlag;
use super::{produce_pipelined, Overrides, ProduceError, Producing, RunContext};
use crate::granule::{now_utc, Context, Encoding};
use crate::storage::Storage;
use crate::tasks::Task;

/// Environment variable naming a granule (substring) whose task panics: for testing
/// that a panic on one rank aborts the whole job instead of hanging it.
pub const DEBUG_PANIC_VAR: &str = "EDP_DEBUG_PANIC_GRANULE";

/// How a run ended, the same on every rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEnd {
    /// Every task is done (now or before).
    AllDone,
    /// Some task failed; the others were produced.
    SomeFailed,
    /// Configuration error before any work.
    Config,
    /// Stopped by a signal before every task was attempted.
    Interrupted,
}

/// Hooks for tests that need a run to fail or last in a set way (hidden settings).
#[derive(Debug, Clone, Default)]
pub struct DebugHooks {
    /// A task whose granule contains this panics ([`DEBUG_PANIC_VAR`]).
    pub panic_granule: Option<String>,
    /// Each rank waits this long before each task (`EDP_DEBUG_TASK_DELAY_MS`).
    pub task_delay: Duration,
}

/// What every rank needs to run.
pub struct SpmdConfig {
    /// Destination (`--dest`: a directory or `s3://bucket/prefix`); default: the root of
    /// the granules.
    pub dest: Option<String>,
    /// Base of the local state directories of runs writing to S3 (`--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// S3 and the scratch cache of this process.
    pub storage: Arc<Storage>,
    pub overrides: Overrides,
    pub encoding: Encoding,
    /// What non-finite values in wet cells do.
    pub nonfinite: crate::granule::finite::NonFinitePolicy,
    /// Threads per rank (for the record; the pool is set up by the caller).
    pub threads: usize,
    /// Checksum existing granules before skipping them.
    pub verify: bool,
    /// Progress report interval on rank 0 (zero: none).
    pub progress_every: Duration,
    /// Testing hooks.
    pub debug: DebugHooks,
    /// Ranks writing each 3D granule together; `None`: decided from the tasks' costs
    /// ([`cost::group_sizes`]).
    pub ranks_per_granule: Option<usize>,
    /// How such a group writes its granule (`--group-writer`).
    pub group_writer: crate::ncio::GroupWriter,
}

/// One task as handed to a rank.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    index: usize,
    key: String,
    task_sha256: String,
    task: Task,
    /// Written by this rank's whole group (every member holds the same entry).
    #[serde(default)]
    group: bool,
}

/// What rank 0 tells every rank before the work.
#[derive(Debug, Serialize, Deserialize)]
enum Header {
    Go {
        run_id: String,
        dest: Destination,
        todo: usize,
        /// Ranks per group for the tasks written by a group (1: none are).
        group_size: usize,
    },
    Stop,
}

/// What each rank reports at the end.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RankReport {
    records: Vec<Record>,
    busy_seconds: f64,
    not_run: usize,
    interrupted: bool,
    /// Why this rank stopped early because it could not record its work.
    #[serde(default)]
    journal_failed: Option<String>,
}

/// Rank 0's view of the run, kept between planning and the end.
struct RootState {
    dest: Destination,
    manifest: Manifest,
    run_id: String,
    started: String,
    total: usize,
    skipped: usize,
    /// Loaded while planning, handed to rank 0's own work.
    shared: Option<RunContext>,
    /// This run's hold on the destination, released once the manifest is written.
    _lock: super::dest_lock::DestLock,
}

/// Threads per rank: `SLURM_CPUS_PER_TASK`, else the node's cores (`PBS_NUM_PPN` or
/// those available) divided among the ranks on the node.
pub fn default_threads(local_ranks: usize) -> usize {
    let env = |v: &str| {
        crate::settings::env_var(v)
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
    };
    if let Some(n) = env("SLURM_CPUS_PER_TASK") {
        return n;
    }
    let cores = env("PBS_NUM_PPN").unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    (cores / local_ranks.max(1)).max(1)
}

/// Runs a task list over the world. `load_tasks` is called on rank 0 only; an error from
/// it (or any configuration error) is returned as `(RunEnd::Config, Some(message))` on
/// rank 0 and `(RunEnd::Config, None)` elsewhere.
pub fn run_spmd(
    world: &World,
    cfg: &SpmdConfig,
    stop: &StopFlag,
    load_tasks: &dyn Fn() -> anyhow::Result<Vec<Task>>,
) -> (RunEnd, Option<String>) {
    let start = Instant::now();
    // 1. Plan on rank 0.
    let (root, header, parts) = if world.is_root() {
        match plan(world, cfg, load_tasks) {
            Ok((state, header, parts)) => (Some(Ok(state)), header, parts),
            Err(e) => (Some(Err(format!("{e:#}"))), Header::Stop, vec![]),
        }
    } else {
        (None, Header::Stop, vec![])
    };
    // 2. Distribute.
    let header_bytes = serde_json::to_vec(&header).unwrap_or_default();
    let header: Header = match serde_json::from_slice(&world.broadcast_bytes(header_bytes)) {
        Ok(h) => h,
        Err(e) => world.abort(1, &format!("undecodable run header: {e}")),
    };
    let (run_id, dest, todo, group_size) = match header {
        Header::Go {
            run_id,
            dest,
            todo,
            group_size,
        } => (run_id, dest, todo, group_size),
        Header::Stop => {
            let msg = match root {
                Some(Err(m)) => Some(m),
                _ => None,
            };
            return (RunEnd::Config, msg);
        }
    };
    let parts = if world.is_root() {
        parts
            .into_iter()
            .map(|p: Vec<Work>| serde_json::to_vec(&p).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let mine: Vec<Work> = match serde_json::from_slice(&world.scatter_bytes(parts)) {
        Ok(w) => w,
        Err(e) => world.abort(1, &format!("undecodable task assignment: {e}")),
    };

    // 3. Shared inputs and the journal, checked on every rank before any work.
    let mut root = root.and_then(Result::ok);
    let shared = match root.as_mut().and_then(|r| r.shared.take()) {
        Some(s) => Ok(s),
        None => RunContext::new(
            cfg.overrides.clone(),
            cfg.encoding,
            dest.clone(),
            Arc::clone(&cfg.storage),
        ),
    }
    .map(|mut s| {
        s.nonfinite = cfg.nonfinite;
        s
    });
    let setup = shared
        .map_err(|e| format!("rank {}: {}", world.rank(), crate::error::chain(&e)))
        .and_then(|s| {
            JournalWriter::open(dest.state_dir(), world.rank())
                .map(|j| (s, j))
                .map_err(|e| format!("rank {}: {}", world.rank(), crate::error::chain(&e)))
        });
    let (mut shared, mut journal) = match (world.all_true(setup.is_ok()), setup) {
        (true, Ok(s)) => s,
        (_, Err(msg)) if !world.is_root() => {
            eprintln!("edp: {msg}");
            return (RunEnd::Config, None);
        }
        (_, Err(msg)) => return (RunEnd::Config, Some(msg)),
        (false, Ok(_)) => {
            let msg = "another rank could not load the shared inputs or open its journal";
            return (RunEnd::Config, world.is_root().then(|| msg.to_string()));
        }
    };
    log::debug!("rank {}: {} task(s)", world.rank(), mine.len());

    let progress = (world.is_root() && !cfg.progress_every.is_zero() && todo > 0)
        .then(|| Progress::start(dest.state_dir().to_path_buf(), todo, cfg.progress_every));
    // Collective: the groups that write one granule together.
    let group = world.groups(group_size);
    let report = work(
        Ranks {
            world,
            group: &group,
            writer: cfg.group_writer,
        },
        &mine,
        &mut shared,
        &mut journal,
        &run_id,
        stop,
        &cfg.debug,
    );

    // 4. Gather and conclude.
    let report_bytes = serde_json::to_vec(&report).unwrap_or_default();
    let gathered = world.gather_bytes(&report_bytes);
    if let Some(p) = progress {
        p.stop();
    }
    let end = match (root, gathered) {
        (Some(state), Some(reports)) => conclude(world, cfg, state, &reports, start.elapsed()),
        _ => RunEnd::AllDone,
    };
    let code = world.broadcast_bytes(serde_json::to_vec(&end).unwrap_or_default());
    match serde_json::from_slice(&code) {
        Ok(end) => (end, None),
        Err(e) => world.abort(1, &format!("undecodable run end: {e}")),
    }
}

/// Rank 0: everything before the work. Errors here are configuration errors.
fn plan(
    world: &World,
    cfg: &SpmdConfig,
    load_tasks: &dyn Fn() -> anyhow::Result<Vec<Task>>,
) -> anyhow::Result<(RootState, Header, Vec<Vec<Work>>)> {
    let started = now_utc();
    let tasks = load_tasks()?;
    let dest = Destination::new(cfg.dest.as_deref(), &tasks, cfg.state_dir.as_deref())?;
    let keys = dest.granule_keys(&tasks)?;
    // Rank 0 checks the shared inputs first so that a bad --metadata fails as a
    // configuration error with one message, not once per rank.
    let shared = RunContext::new(
        cfg.overrides.clone(),
        cfg.encoding,
        dest.clone(),
        Arc::clone(&cfg.storage),
    )?;
    dest.prepare(&cfg.storage)?;
    // One run per destination: before anything there is read, cleaned or written.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let lock = super::dest_lock::DestLock::acquire(
        &dest.journal_dir(),
        dest.state_dir(),
        &run_id,
        &started,
    )?;
    let manifest = dest.consolidate()?;
    let removed = dest.remove_stale_temps()?;
    if removed > 0 {
        log::info!("removed {removed} partial file(s) left by an earlier run");
    }

    let previous = manifest.by_granule();
    // One listing of an S3 destination stands in for a stat per granule.
    let listing = dest.listing(&cfg.storage)?;
    let decisions: Vec<(String, Done)> = tasks
        .par_iter()
        .zip(&keys)
        .map(|(t, k)| {
            let sha = journal::task_sha256(t);
            let d = dest.decide(&cfg.storage, &listing, k, previous.get(k), &sha, cfg.verify);
            (sha, d)
        })
        .collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut todo: Vec<Work> = Vec::new();
    for ((i, t), (sha, d)) in tasks.into_iter().enumerate().zip(decisions) {
        match d {
            Done::Done => {}
            Done::Redo(reason) => {
                *reasons.entry(reason.to_string()).or_default() += 1;
                todo.push(Work {
                    index: i,
                    key: keys[i].clone(),
                    task_sha256: sha,
                    task: t,
                    group: false,
                });
            }
        }
    }
    let total = keys.len();
    let skipped = total - todo.len();
    if skipped > 0 {
        let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        match todo.len() {
            0 => log::info!("all {total} task(s) already done; nothing to redo"),
            n => log::info!(
                "{skipped} of {total} task(s) already done; redoing {n} ({})",
                why.join(", ")
            ),
        }
    }

    let costs: Vec<f64> = todo.par_iter().map(|w| cost::estimate(&w.task)).collect();
    let (parts, group_size) = assign(
        world.size(),
        todo,
        &costs,
        cfg.ranks_per_granule,
        cfg.group_writer,
    )?;
    // A task written by a group is listed once per member.
    let todo_n = parts
        .iter()
        .enumerate()
        .map(|(r, p)| p.iter().filter(|w| !w.group || r % group_size == 0).count())
        .sum();
    Ok((
        RootState {
            dest: dest.clone(),
            manifest,
            run_id: run_id.clone(),
            started,
            total,
            skipped,
            shared: Some(shared),
            _lock: lock,
        },
        Header::Go {
            run_id,
            dest,
            todo: todo_n,
            group_size,
        },
        parts,
    ))
}

/// Rank 0: which rank does which task. Tasks written by a group go to groups of
/// `group_size` consecutive ranks (every member gets the entry), largest first; the
/// others to single ranks. Returns each rank's list and the group size (1: no groups).
fn assign(
    ranks: usize,
    todo: Vec<Work>,
    costs: &[f64],
    fixed: Option<usize>,
    writer: crate::ncio::GroupWriter,
) -> anyhow::Result<(Vec<Vec<Work>>, usize)> {
    let splittable: Vec<bool> = todo
        .iter()
        .map(|w| {
            w.task.dynamic_metadata.dimension.eq_ignore_ascii_case("3D")
                && crate::storage::s3_url(&w.task.granule).is_none()
        })
        .collect();
    let sizes = cost::group_sizes(costs, &splittable, ranks, fixed);
    let groups_possible =
        writer == crate::ncio::GroupWriter::Gather || cfg!(feature = "parallel-hdf5");
    if !groups_possible && sizes.iter().any(Option::is_some) {
        anyhow::bail!(
            "--group-writer collective needs the parallel-HDF5 build of edp (this one is \
             serial; see `edp --version`); --group-writer gather works in every build"
        );
    }
    let group_size = sizes.iter().flatten().copied().max().unwrap_or(1);
    let groups = ranks.div_ceil(group_size);
    let (grouped, single): (Vec<usize>, Vec<usize>) =
        (0..todo.len()).partition(|&i| sizes[i].is_some());
    let share =
        |idx: &[usize], div: f64| -> Vec<f64> { idx.iter().map(|&i| costs[i] / div).collect() };
    let by_group = cost::partition(&share(&grouped, group_size as f64), groups);
    let by_rank = cost::partition(&share(&single, 1.0), ranks);
    let mut loads = vec![0.0f64; ranks];
    let mut slots: Vec<Option<Work>> = todo.into_iter().map(Some).collect();
    let mut parts: Vec<Vec<Work>> = vec![Vec::new(); ranks];
    for (g, list) in by_group.iter().enumerate() {
        for &k in list {
            let i = grouped[k];
            let Some(mut w) = slots[i].take() else {
                continue;
            };
            w.group = true;
            let members: Vec<usize> = (g * group_size..((g + 1) * group_size).min(ranks)).collect();
            for &r in &members {
                loads[r] += costs[i] / members.len() as f64;
                parts[r].push(w.clone());
            }
        }
    }
    for (r, list) in by_rank.iter().enumerate() {
        for &k in list {
            let i = single[k];
            if let Some(w) = slots[i].take() {
                loads[r] += costs[i];
                parts[r].push(w);
            }
        }
    }
    let by_groups = match grouped.len() {
        0 => String::new(),
        n => format!(" ({n} by groups of {group_size})"),
    };
    log::info!(
        "{} task(s) to do over {ranks} rank(s){by_groups}; estimated imbalance {:.3}",
        grouped.len() + single.len(),
        cost::imbalance(&loads)
    );
    Ok((parts, group_size))
}

/// This rank in the world and in its writing group, and how that group writes.
#[derive(Clone, Copy)]
struct Ranks<'a> {
    world: &'a World,
    group: &'a Group,
    writer: crate::ncio::GroupWriter,
}

/// Every rank: produce the assigned granules, journaling each outcome.
fn work(
    ranks: Ranks<'_>,
    mine: &[Work],
    shared: &mut RunContext,
    journal: &mut JournalWriter,
    run_id: &str,
    stop: &StopFlag,
    debug: &DebugHooks,
) -> RankReport {
    let Ranks { world, group, .. } = ranks;
    let panic_at = debug.panic_granule.as_deref().filter(|s| !s.is_empty());
    let host = mpi::host();
    let mut report = RankReport::default();
    // A local granule whose commit runs while the next one is made, and how many
    // tasks were begun.
    let mut in_flight: Option<Begun> = None;
    let mut begun_all = 0;
    for (n, w) in mine.iter().enumerate() {
        std::thread::sleep(debug.task_delay);
        let in_group = w.group && group.size() > 1;
        // A group goes on or stops together: its members wait for each other, and one
        // that stops (a signal, a journal that cannot be written) stops them all.
        let go_on = !stop.is_set() && report.journal_failed.is_none();
        let stop_here = |report: &mut RankReport, why: &str| {
            report.not_run = remaining(&mine[n..], group);
            log::warn!(
                "rank {}: {why}; {} task(s) left undone",
                world.rank(),
                report.not_run
            );
        };
        if in_group && !group.all_true(go_on) && go_on {
            stop_here(&mut report, "another rank of its group stopped");
            break;
        }
        if report.journal_failed.is_some() {
            break;
        }
        if stop.is_set() {
            report.interrupted = true;
            stop_here(&mut report, "stop requested");
            break;
        }
        if let Some(p) = &panic_at {
            if w.task.granule.contains(p) {
                panic!("{DEBUG_PANIC_VAR} matches task {} ({})", w.index, w.key);
            }
        }
        let begun = begin_task(w, shared, in_group.then_some((group, ranks.writer)));
        begun_all = n + 1;
        // The previous granule was committed (fsync, rename) while this one was made:
        // it is recorded now that it is in place.
        if let Some(prev) = in_flight.take() {
            let record = finish_task(prev, world.rank(), &host, run_id);
            settle(record, &mine[begun_all..], ranks, journal, &mut report);
        }
        if !in_group {
            in_flight = Some(begun);
            continue;
        }
        let record = finish_task(begun, world.rank(), &host, run_id);
        if group.rank() != 0 {
            // The group's first rank records the granule.
            if let Some(e) = &record.error {
                log::error!(
                    "rank {} (member {} of the group writing {}): {e}",
                    world.rank(),
                    group.rank(),
                    record.granule
                );
            }
            report.busy_seconds += record.seconds;
            continue;
        }
        settle(record, &mine[begun_all..], ranks, journal, &mut report);
    }
    if let Some(prev) = in_flight.take() {
        let record = finish_task(prev, world.rank(), &host, run_id);
        settle(record, &mine[begun_all..], ranks, journal, &mut report);
    }
    report
}

/// Logs and journals a task's record; `rest` are the tasks not begun, left undone if
/// the journal cannot be written.
fn settle(
    record: Record,
    rest: &[Work],
    Ranks { world, group, .. }: Ranks<'_>,
    journal: &mut JournalWriter,
    report: &mut RankReport,
) {
    report.busy_seconds += record.seconds;
    match (&record.status, &record.error) {
        (Status::Done, _) => log::info!(
            "rank {}: wrote {} ({:.1} MB, {:.2} s)",
            world.rank(),
            record.granule,
            record.size.unwrap_or(0) as f64 / 1e6,
            record.seconds
        ),
        (Status::Failed, e) => log::error!(
            "rank {}: task {} failed: {}: {}",
            world.rank(),
            record.task,
            record.granule,
            e.as_deref().unwrap_or("?")
        ),
    }
    let appended = journal.append(&record);
    report.records.push(record);
    if let Err(e) = appended {
        // Work that cannot be recorded would be lost to a crash and redone: stop
        // taking tasks (this record still reaches the manifest through rank 0); the
        // next round tells this rank's group.
        report.not_run = remaining(rest, group);
        log::error!(
            "rank {}: {}; stopping: {} task(s) of this rank left undone",
            world.rank(),
            crate::error::chain(&e),
            report.not_run
        );
        report.journal_failed = Some(crate::error::chain(&e));
    }
}

/// Tasks of `rest` this rank would have recorded (a group's first rank records the
/// group's tasks).
fn remaining(rest: &[Work], group: &Group) -> usize {
    rest.iter()
        .filter(|w| !w.group || group.rank() == 0)
        .count()
}

/// A task begun: what its record needs from the start, and its granule written (a
/// local one perhaps still being committed).
struct Begun {
    key: String,
    index: usize,
    task_sha256: String,
    inputs: Vec<journal::InputFile>,
    started: String,
    /// Time spent so far (the commit and read-back come on top).
    busy: Duration,
    leads: bool,
    outcome: Result<Producing, String>,
}

/// Produces one task (with the other ranks of `group`, if given) up to the commit of
/// its granule.
fn begin_task(
    w: &Work,
    shared: &mut RunContext,
    group: Option<(&Group, crate::ncio::GroupWriter)>,
) -> Begun {
    let t = Instant::now();
    let started = now_utc();
    let inputs = journal::input_files(&w.task);
    let context = shared.context(w.index, &w.task);
    // The members of a group set up together or not at all.
    let context = match group.map(|(g, _)| g.all_ok(context.as_ref().err().map(String::as_str))) {
        Some(Err(failed)) => Err(context.err().unwrap_or_else(|| match failed {
            Some((rank, e)) => format!("rank {rank} of the group could not set up this task: {e}"),
            None => "another rank of the group could not set up this task".to_string(),
        })),
        _ => context,
    };
    let outcome = context.and_then(|ctx| {
        produce_in(group, &w.task, &ctx, shared.storage()).map_err(|e| crate::error::chain(&e))
    });
    Begun {
        key: w.key.clone(),
        index: w.index,
        task_sha256: w.task_sha256.clone(),
        inputs,
        started,
        busy: t.elapsed(),
        leads: group.map_or(true, |(g, _)| g.rank() == 0),
        outcome,
    }
}

/// Waits for a begun task's granule to be in place, reads it back and describes what
/// happened.
fn finish_task(b: Begun, rank: usize, host: &str, run_id: &str) -> Record {
    let t = Instant::now();
    let leads = b.leads;
    let result = b
        .outcome
        .and_then(|p| p.finish().map_err(|e| crate::error::chain(&e)))
        .and_then(|p| {
            let filled = Some(p.nonfinite_filled).filter(|&n| n > 0);
            // An uploaded granule was checksummed on its way up, a local one written by
            // this rank alone on the committing thread; one a group wrote is read back
            // (by the group's first rank only).
            if let Some(sha) = p.sha256 {
                return Ok((
                    p.bytes,
                    sha,
                    p.etag,
                    filled,
                    p.significant_bits,
                    p.quicklook,
                ));
            }
            if !leads {
                return Ok((
                    p.bytes,
                    String::new(),
                    None,
                    filled,
                    p.significant_bits,
                    p.quicklook,
                ));
            }
            crate::storage::sha256_file(&p.path)
                .map(|sha| (p.bytes, sha, None, filled, p.significant_bits, p.quicklook))
                .map_err(|e| {
                    format!(
                        "{} was written but cannot be read back: {}",
                        p.path.display(),
                        crate::error::chain(&e)
                    )
                })
        });
    let (status, size, sha256, etag, nonfinite_filled, error, significant_bits, quicklook) =
        match result {
            Ok((bytes, sha, etag, filled, bits, png)) => (
                Status::Done,
                Some(bytes),
                Some(sha),
                etag,
                filled,
                None,
                bits,
                png,
            ),
            Err(e) => (
                Status::Failed,
                None,
                None,
                None,
                None,
                Some(e),
                Default::default(),
                None,
            ),
        };
    Record {
        granule: b.key,
        status,
        task: b.index,
        task_sha256: b.task_sha256,
        size,
        sha256,
        etag,
        nonfinite_filled,
        error,
        inputs: b.inputs,
        started: b.started,
        finished: now_utc(),
        seconds: (b.busy + t.elapsed()).as_secs_f64(),
        rank,
        host: host.into(),
        run_id: run_id.into(),
        edp_version: env!("CARGO_PKG_VERSION").into(),
        significant_bits,
        quicklook,
    }
}

/// Writes a task's granule alone, or together with `group` in its way.
fn produce_in(
    group: Option<(&Group, crate::ncio::GroupWriter)>,
    task: &Task,
    ctx: &Context,
    storage: &Storage,
) -> Result<Producing, ProduceError> {
    match group {
        Some((g, writer)) => {
            super::produce::produce_grouped(task, ctx, storage, g, writer).map(Producing::from)
        }
        None => produce_pipelined(task, ctx, storage),
    }
}

/// Rank 0: fold the reports into the manifest, write it and the summary, decide the end.
fn conclude(
    world: &World,
    cfg: &SpmdConfig,
    mut state: RootState,
    reports: &[Vec<u8>],
    elapsed: Duration,
) -> RunEnd {
    let mut info = RunInfo {
        run_id: state.run_id.clone(),
        started: state.started.clone(),
        finished: now_utc(),
        seconds: elapsed.as_secs_f64(),
        ranks: world.size(),
        threads_per_rank: cfg.threads,
        tasks: state.total,
        skipped: state.skipped,
        ..RunInfo::default()
    };
    let mut records = Vec::new();
    let mut journal_failed = Vec::new();
    for (rank, bytes) in reports.iter().enumerate() {
        let r: RankReport = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                log::error!("undecodable report of rank {rank}: {e}");
                RankReport::default()
            }
        };
        info.busy_seconds.push(r.busy_seconds);
        info.not_run += r.not_run;
        info.interrupted |= r.interrupted;
        if let Some(why) = &r.journal_failed {
            journal_failed.push(format!("rank {rank}: {why}"));
        }
        records.extend(r.records);
    }
    for r in &records {
        match r.status {
            Status::Done => {
                info.done += 1;
                info.bytes += r.size.unwrap_or(0);
            }
            Status::Failed => info.failed += 1,
        }
    }
    info.imbalance = cost::imbalance(&info.busy_seconds);
    state.manifest.merge(records);
    state.manifest.last_run = Some(info.clone());
    for why in &journal_failed {
        eprintln!("edp: error: stopped early, cannot record finished work: {why}");
    }
    let mut end = if info.interrupted {
        RunEnd::Interrupted
    } else if info.failed > 0 || !journal_failed.is_empty() {
        RunEnd::SomeFailed
    } else {
        RunEnd::AllDone
    };
    let state_dir = state.dest.state_dir();
    let journals = journal::journal_files(state_dir).unwrap_or_default();
    match state.manifest.write(state_dir) {
        Ok(path) => {
            if let Err(e) = journal::remove_journals(&journals) {
                log::warn!(
                    "{} (its records are in the manifest)",
                    crate::error::chain(&e)
                );
            }
            log::info!("manifest: {}", path.display());
        }
        Err(e) => {
            // The journals stay, so the next run folds them in.
            eprintln!("edp: error: {}", crate::error::chain(&e));
            if end == RunEnd::AllDone {
                end = RunEnd::SomeFailed;
            }
        }
    }
    let text = manifest::summary_text(state_dir, &info, &state.manifest);
    print!("{text}");
    let summary = state_dir.join(manifest::SUMMARY_NAME);
    if let Err(e) = manifest::write_file_atomic(&summary, text.as_bytes()) {
        log::warn!("{}", crate::error::chain(&e));
    }
    if let Err(e) = state.dest.publish(&cfg.storage) {
        eprintln!("edp: error: {}", crate::error::chain(&e));
        if end == RunEnd::AllDone {
            end = RunEnd::SomeFailed;
        }
    }
    end
}

/// Rank 0's periodic progress report, read from the journals of all ranks (so it costs
/// the ranks no messages).
struct Progress {
    tx: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl Progress {
    fn start(dest: PathBuf, todo: usize, every: Duration) -> Progress {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let done: usize = journal::journal_files(&dest)
                    .unwrap_or_default()
                    .iter()
                    .map(|p| journal::count_lines(p))
                    .sum();
                let secs = t0.elapsed().as_secs_f64();
                let rate = done as f64 / secs.max(1e-9);
                let eta = if rate > 0.0 {
                    format!("{:.0} s", (todo.saturating_sub(done)) as f64 / rate)
                } else {
                    "unknown".into()
                };
                log::info!("progress: {done}/{todo} tasks in {secs:.0} s, {rate:.2}/s, ETA {eta}");
            }
        });
        Progress { tx, handle }
    }

    fn stop(self) {
        let _ = self.tx.send(());
        let _ = self.handle.join();
    }
}
