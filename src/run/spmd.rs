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
use super::destination::{self as destination_mod, Destination, Done};
use super::journal::{self, JournalWriter, Record, Status};
use super::manifest::{self, Counts, RunFailures, RunInfo};
use super::mpi::{self, Group, World};
use super::signal::StopFlag;
use super::store::{Priors, Store};
use super::{produce_pipelined, Overrides, ProduceError, Producing, RunContext};
use crate::granule::{now_utc, Context, Encoding};
use crate::storage::Storage;
use crate::tasks::{Task, TaskList};

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

/// One task as handed to a rank: rank 0 keeps only the reference and reads the task
/// from the list when it begins it; the other ranks receive it whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    index: usize,
    key: String,
    task_sha256: String,
    #[serde(default)]
    task: Option<Task>,
    /// A 3D granule to a local destination: one a group of ranks may write.
    #[serde(skip)]
    splittable: bool,
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

/// What each rank reports at the end (its records are in its journal, which rank 0
/// folds into the store by streaming).
#[derive(Debug, Default, Serialize, Deserialize)]
struct RankReport {
    /// Records that could not be journaled (at most one: the rank stops taking tasks).
    unjournaled: Vec<Record>,
    busy_seconds: f64,
    not_run: usize,
    interrupted: bool,
    /// Why this rank stopped early because it could not record its work.
    #[serde(default)]
    journal_failed: Option<String>,
    /// The node this rank ran on, for the summary's `rank R on HOST`.
    #[serde(default)]
    host: String,
}

/// Rank 0's view of the run, kept between planning and the end.
struct RootState {
    dest: Destination,
    /// The latest record of every granule of the destination, compactly.
    priors: Priors,
    /// Tasks to do per grouping x product x frequency.
    todo_groups: BTreeMap<(String, String, String), usize>,
    run_id: String,
    started: String,
    total: usize,
    skipped: usize,
    /// Loaded while planning, handed to rank 0's own work.
    shared: Option<RunContext>,
    /// This run's hold on the destination, released once the manifest is written.
    _lock: super::dest_lock::DestLock,
    /// The task list, read from when rank 0 begins a task.
    tasks: TaskList,
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
    load_tasks: &dyn Fn() -> anyhow::Result<TaskList>,
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
    // Rank 0 keeps its part as references; the others get theirs with the tasks.
    let mut parts = parts.into_iter();
    let own: Vec<Work> = parts.next().unwrap_or_default();
    let parts = match (world.is_root(), &root) {
        // Rank 0's own slot holds a placeholder: MPI refuses a scatter of nothing.
        (true, Some(Ok(state))) => std::iter::once(b"[]".to_vec())
            .chain(parts.map(|p: Vec<Work>| {
                let filled: Vec<Work> = p
                    .into_iter()
                    .map(|mut w| {
                        w.task = state.tasks.get(w.index).ok().map(|t| t.into_owned());
                        w
                    })
                    .collect();
                serde_json::to_vec(&filled).unwrap_or_default()
            }))
            .collect(),
        _ => Vec::new(),
    };
    let received = world.scatter_bytes(parts);
    let mine: Vec<Work> = if world.is_root() {
        own
    } else {
        match serde_json::from_slice(&received) {
            Ok(w) => w,
            Err(e) => world.abort(1, &format!("undecodable task assignment: {e}")),
        }
    };
    drop(received);

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
        Assigned {
            mine: &mine,
            list: root.as_ref().map(|r| &r.tasks),
        },
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
    load_tasks: &dyn Fn() -> anyhow::Result<TaskList>,
) -> anyhow::Result<(RootState, Header, Vec<Vec<Work>>)> {
    let started = now_utc();
    let tasks = load_tasks()?;
    let granules = tasks.granules()?;
    let dest = Destination::for_granules(cfg.dest.as_deref(), &granules, cfg.state_dir.as_deref())?;
    let keys = dest.keys_of(&granules)?;
    drop(granules);
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
    let priors = dest.consolidate()?;
    let removed = dest.remove_stale_temps()?;
    if removed > 0 {
        log::info!("removed {removed} partial file(s) left by an earlier run");
    }

    // One listing of an S3 destination stands in for a stat per granule.
    let listing = dest.listing(&cfg.storage)?;
    // Each task parsed once (from the mapped list): its hash, the done decision, and
    // for one to do its cost; nothing of it is kept but those.
    let decisions: Vec<Result<(String, Done, f64, bool), String>> = (0..tasks.len())
        .into_par_iter()
        .map(|i| {
            let t = tasks.get(i).map_err(|e| crate::error::chain(&e))?;
            let k = &keys[i];
            let sha = journal::task_sha256(&t);
            let d = dest.decide(&cfg.storage, &listing, k, priors.get(k), &sha, cfg.verify);
            let (cost, split) = match d {
                Done::Done => (0.0, false),
                Done::Redo(_) => (
                    cost::estimate(&t),
                    t.dynamic_metadata.dimension.eq_ignore_ascii_case("3D")
                        && crate::storage::s3_url(&t.granule).is_none(),
                ),
            };
            Ok((sha, d, cost, split))
        })
        .collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut todo: Vec<Work> = Vec::new();
    let mut costs: Vec<f64> = Vec::new();
    for (i, decision) in decisions.into_iter().enumerate() {
        let (sha, d, cost, splittable) = decision.map_err(anyhow::Error::msg)?;
        match d {
            Done::Done => {}
            Done::Redo(reason) => {
                *reasons.entry(reason.to_string()).or_default() += 1;
                todo.push(Work {
                    index: i,
                    key: keys[i].clone(),
                    task_sha256: sha,
                    task: None,
                    splittable,
                    group: false,
                });
                costs.push(cost);
            }
        }
    }
    let total = keys.len();
    let skipped = total - todo.len();
    // The plan's keys, for `edp status`: what "not run" is counted against. Only status
    // reads it, so a state directory without room for it does not stop the run (the
    // journal, which must be written, fails the tasks if the room is really gone).
    if let Err(e) = super::store::write_plan(dest.state_dir(), &keys) {
        log::warn!(
            "edp status will not count tasks not run: {}",
            crate::error::chain(&e)
        );
    }
    drop(keys);
    let mut todo_groups: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for w in &todo {
        *todo_groups.entry(manifest::group_of(&w.key)).or_default() += 1;
    }
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
            priors,
            todo_groups,
            run_id: run_id.clone(),
            started,
            total,
            skipped,
            shared: Some(shared),
            _lock: lock,
            tasks,
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
    let splittable: Vec<bool> = todo.iter().map(|w| w.splittable).collect();
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

/// A rank's share: its work, and on rank 0 the list its tasks are read from.
struct Assigned<'a> {
    mine: &'a [Work],
    list: Option<&'a TaskList>,
}

/// Every rank: produce the assigned granules, journaling each outcome.
fn work(
    ranks: Ranks<'_>,
    assigned: Assigned<'_>,
    shared: &mut RunContext,
    journal: &mut JournalWriter,
    run_id: &str,
    stop: &StopFlag,
    debug: &DebugHooks,
) -> RankReport {
    let Ranks { world, group, .. } = ranks;
    let Assigned { mine, list } = assigned;
    let panic_at = debug.panic_granule.as_deref().filter(|s| !s.is_empty());
    let host = mpi::host();
    let mut report = RankReport {
        host: host.clone(),
        ..RankReport::default()
    };
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
        // Rank 0 reads its task from the list now; the others received theirs.
        let task = match (&w.task, list) {
            (Some(t), _) => Ok(std::borrow::Cow::Borrowed(t)),
            (None, Some(l)) => l.get(w.index).map_err(|e| crate::error::chain(&e)),
            (None, None) => Err(format!("task {} was not received", w.index)),
        };
        if let (Some(p), Ok(t)) = (&panic_at, &task) {
            if t.granule.contains(p) {
                panic!("{DEBUG_PANIC_VAR} matches task {} ({})", w.index, w.key);
            }
        }
        let begun = begin_task(w, task, shared, in_group.then_some((group, ranks.writer)));
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
    if appended.is_err() {
        report.unjournaled.push(record);
    }
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
    missing_fields: Vec<String>,
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
    task: Result<std::borrow::Cow<'_, Task>, String>,
    shared: &mut RunContext,
    group: Option<(&Group, crate::ncio::GroupWriter)>,
) -> Begun {
    let t = Instant::now();
    let started = now_utc();
    let inputs = task
        .as_ref()
        .map(|t| journal::input_files(t))
        .unwrap_or_default();
    let missing_fields = task
        .as_ref()
        .map(|t| super::missing_fields(t, shared.metadata()))
        .unwrap_or_default();
    let context = task
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|t| shared.context(w.index, t));
    // The members of a group set up together or not at all.
    let context = match group.map(|(g, _)| g.all_ok(context.as_ref().err().map(String::as_str))) {
        Some(Err(failed)) => Err(context.err().unwrap_or_else(|| match failed {
            Some((rank, e)) => format!("rank {rank} of the group could not set up this task: {e}"),
            None => "another rank of the group could not set up this task".to_string(),
        })),
        _ => context,
    };
    let outcome = context.and_then(|ctx| {
        let task = task.as_ref().map_err(Clone::clone)?;
        produce_in(group, task, &ctx, shared.storage()).map_err(|e| crate::error::chain(&e))
    });
    Begun {
        key: w.key.clone(),
        index: w.index,
        task_sha256: w.task_sha256.clone(),
        inputs,
        missing_fields,
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
        missing_fields: b.missing_fields,
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

/// Rank 0: fold the journals (and any unjournaled records) into the record store,
/// streaming, write the bounded summary and the failures file, decide the end.
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
    let mut unjournaled = Vec::new();
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
        info.hosts.push(r.host);
        info.not_run += r.not_run;
        info.interrupted |= r.interrupted;
        if let Some(why) = &r.journal_failed {
            journal_failed.push(format!("rank {rank}: {why}"));
        }
        unjournaled.extend(r.unjournaled);
    }
    info.imbalance = cost::imbalance(&info.busy_seconds);
    for why in &journal_failed {
        eprintln!("edp: error: stopped early, cannot record finished work: {why}");
    }
    let state_dir = state.dest.state_dir().to_path_buf();
    let mut failures = FailureLog::open(&state_dir.join(manifest::FAILURES_NAME));
    let mut tally = manifest::Tally::default();
    let mut seen = |r: &Record| {
        match r.status {
            Status::Done => {
                info.done += 1;
                info.bytes += r.size.unwrap_or(0);
            }
            Status::Failed => {
                info.failed += 1;
                failures.add(r);
            }
        }
        tally.add_record(r);
        state.priors.insert(r);
    };
    let store = Store::at(&state_dir);
    let folded = fold_into(&store, &unjournaled, &mut seen);
    let mut end = if info.interrupted {
        RunEnd::Interrupted
    } else if info.failed > 0 || !journal_failed.is_empty() {
        RunEnd::SomeFailed
    } else {
        RunEnd::AllDone
    };
    let failed_write = |end: &mut RunEnd, e: &dyn std::error::Error| {
        // Whatever is not committed stays in the journals: the next run folds it in.
        eprintln!("edp: error: {}", crate::error::chain(e));
        if *end == RunEnd::AllDone {
            *end = RunEnd::SomeFailed;
        }
    };
    match folded.and_then(|()| {
        store
            .set_last_run(info.clone())
            .map_err(|e| manifest::ManifestError::from(e).into())
    }) {
        Ok(()) => log::info!("record store: {}", store.path().display()),
        Err(e) => failed_write(&mut end, &e),
    }
    // Groups this run had to do: what it did not attempt is "not run".
    for (g, n) in std::mem::take(&mut state.todo_groups) {
        let c = tally.groups.entry(g).or_default();
        c.not_run = n.saturating_sub(c.done + c.failed);
    }
    let first = failures.finish();
    let destination = Counts {
        done: state.priors.count(Status::Done),
        failed: state.priors.count(Status::Failed),
        ..Default::default()
    };
    let text = manifest::summary_text(
        &state_dir,
        &info,
        &RunFailures {
            tally,
            first,
            destination,
        },
    );
    print!("{text}");
    let summary = state_dir.join(manifest::SUMMARY_NAME);
    if let Err(e) = manifest::write_file_atomic(&summary, text.as_bytes()) {
        log::warn!("{}", crate::error::chain(&e));
    }
    if let Err(e) = state.dest.publish(&cfg.storage) {
        failed_write(&mut end, &e);
    }
    end
}

/// Folds this run's journals, then the records that could not be journaled, into the
/// store.
fn fold_into(
    store: &Store,
    unjournaled: &[Record],
    seen: &mut dyn FnMut(&Record),
) -> Result<(), destination_mod::DestinationError> {
    let journals = journal::journal_files(store.state())?;
    destination_mod::fold_journals(store, &journals, seen)?;
    if !unjournaled.is_empty() {
        let mut app = store.appender().map_err(manifest::ManifestError::from)?;
        for r in unjournaled {
            app.push(r).map_err(manifest::ManifestError::from)?;
            seen(r);
        }
        app.commit(None).map_err(manifest::ManifestError::from)?;
    }
    Ok(())
}

/// The failures file, written as the records are folded (every failure, one line
/// each), and the first [`manifest::SUMMARY_FAILURES`] kept for the summary. A run
/// without failures leaves none (the file describes the last run).
struct FailureLog {
    path: PathBuf,
    out: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    broken: bool,
    first: Vec<String>,
}

impl FailureLog {
    fn open(path: &std::path::Path) -> FailureLog {
        FailureLog {
            path: path.to_path_buf(),
            out: None,
            broken: false,
            first: Vec::new(),
        }
    }

    fn add(&mut self, r: &Record) {
        use std::io::Write;
        let line = manifest::failure_line(r);
        if self.out.is_none() && !self.broken {
            self.out = crate::storage::prepare(&self.path).ok().and_then(|t| {
                std::fs::File::create(&t)
                    .ok()
                    .map(|f| (t, std::io::BufWriter::new(f)))
            });
            self.broken = self.out.is_none();
        }
        if let Some((_, w)) = self.out.as_mut() {
            if writeln!(w, "{line}").is_err() {
                self.broken = true;
            }
        }
        if self.first.len() < manifest::SUMMARY_FAILURES {
            self.first.push(line);
        }
    }

    /// Puts the file in place and returns the first failures.
    fn finish(mut self) -> Vec<String> {
        use std::io::Write;
        let Some((temp, w)) = self.out.take() else {
            if self.broken {
                log::warn!("cannot write {}", self.path.display());
            } else if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot remove {}: {e}", self.path.display());
                }
            }
            return self.first;
        };
        let placed = w
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.flush())
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if self.broken {
                    return Err("a write failed".to_string());
                }
                crate::storage::commit(&temp, &self.path).map_err(|e| e.to_string())
            });
        if let Err(e) = placed {
            crate::storage::discard(&temp);
            log::warn!("cannot write {}: {e}", self.path.display());
        }
        self.first
    }
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
