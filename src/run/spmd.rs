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
    /// Only this rank waits `task_delay` (`EDP_DEBUG_SLOW_RANK`): uneven costs.
    pub slow_rank: Option<usize>,
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
    /// How a rank writes a granule alone (`--writer`), and quick-looks (`--quicklook`).
    pub write: super::WriteOptions,
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
    pub group_method: crate::ncio::GroupWriteMethod,
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
    /// What the granule is made on, parsed from its name once, on rank 0.
    target: super::Target,
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
    /// Tasks this rank recorded (a group's tasks on its first rank).
    #[serde(default)]
    recorded: usize,
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
    /// The work not yet handed out (taken by [`work`] on rank 0).
    dispatch: Option<Dispatch>,
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
    // 1. Prepare on rank 0: load and plan the tasks, decide what to skip, schedule.
    let (root, header) = if world.is_root() {
        match prepare_on_root(world, cfg, load_tasks) {
            Ok((state, header)) => (Some(Ok(state)), header),
            Err(e) => (Some(Err(format!("{e:#}"))), Header::Stop),
        }
    } else {
        (None, Header::Stop)
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
        s.write = cfg.write;
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
    let progress = (world.is_root() && !cfg.progress_every.is_zero() && todo > 0)
        .then(|| Progress::start(dest.state_dir().to_path_buf(), todo, cfg.progress_every));
    // Collective: the groups that write one granule together.
    let group = world.groups(group_size);
    let mut dispatch = root.as_mut().and_then(|r| r.dispatch.take());
    let report = work(
        Ranks {
            world,
            group: &group,
            group_method: cfg.group_method,
        },
        Source {
            dispatch: dispatch.as_mut(),
            list: root.as_ref().map(|r| &r.tasks),
            group_size,
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

/// Each task parsed once (from the mapped list): its hash, the done decision, and for
/// one to do its cost and target; nothing of it is kept but those.
fn decide_all(
    cfg: &SpmdConfig,
    dest: &Destination,
    tasks: &TaskList,
    keys: &[String],
    listing: &destination_mod::Listing,
    priors: &Priors,
) -> Vec<Result<Decision, String>> {
    (0..tasks.len())
        .into_par_iter()
        .map(|i| {
            let t = tasks.get(i).map_err(|e| crate::error::chain(&e))?;
            let k = &keys[i];
            let sha = journal::task_sha256(&t);
            let d = dest.decide(&cfg.storage, listing, k, priors.get(k), &sha, cfg.verify);
            let (cost, split, target) = match d {
                Done::Done => (0.0, false, super::Target::Native),
                Done::Redo(_) => {
                    let target = super::Target::of(&t);
                    (
                        cost::estimate_with(&t, target.is_latlon()),
                        t.dynamic_metadata.dimension.eq_ignore_ascii_case("3D")
                            && crate::storage::s3_url(&t.granule).is_none(),
                        target,
                    )
                }
            };
            Ok(Decision {
                sha,
                done: d,
                cost,
                splittable: split,
                target,
            })
        })
        .collect()
}

/// Rank 0: everything before the work. Errors here are configuration errors.
fn prepare_on_root(
    world: &World,
    cfg: &SpmdConfig,
    load_tasks: &dyn Fn() -> anyhow::Result<TaskList>,
) -> anyhow::Result<(RootState, Header)> {
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
    let decisions = decide_all(cfg, &dest, &tasks, &keys, &listing, &priors);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut todo: Vec<Work> = Vec::new();
    let mut costs: Vec<f64> = Vec::new();
    for (i, decision) in decisions.into_iter().enumerate() {
        let Decision {
            sha,
            done: d,
            cost,
            splittable,
            target,
        } = decision.map_err(anyhow::Error::msg)?;
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
                    target,
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

    let dispatch = schedule(
        world.size(),
        todo,
        &costs,
        cfg.ranks_per_granule,
        cfg.group_method,
    )?;
    let group_size = dispatch.group_size;
    let todo_n = dispatch.grouped.len() + dispatch.single.len();
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
            dispatch: Some(dispatch),
        },
        Header::Go {
            run_id,
            dest,
            todo: todo_n,
            group_size,
        },
    ))
}

/// What planning found of one task.
struct Decision {
    sha: String,
    done: Done,
    cost: f64,
    splittable: bool,
    target: super::Target,
}

/// Rank 0: the work to hand out, in two queues ordered largest first. Tasks written by
/// a group of `group_size` consecutive ranks go to the groups' first ranks (which share
/// them with their groups); the others to single ranks as they ask.
fn schedule(
    ranks: usize,
    todo: Vec<Work>,
    costs: &[f64],
    fixed: Option<usize>,
    group_method: crate::ncio::GroupWriteMethod,
) -> anyhow::Result<Dispatch> {
    let splittable: Vec<bool> = todo.iter().map(|w| w.splittable).collect();
    let sizes = cost::group_sizes(costs, &splittable, ranks, fixed);
    let groups_possible =
        group_method == crate::ncio::GroupWriteMethod::Gather || cfg!(feature = "parallel-hdf5");
    if !groups_possible && sizes.iter().any(Option::is_some) {
        anyhow::bail!(
            "--group-writer collective needs the parallel-HDF5 build of edp (this one is \
             serial; see `edp --version`); --group-writer gather works in every build"
        );
    }
    let group_size = sizes.iter().flatten().copied().max().unwrap_or(1);
    let mut order: Vec<usize> = (0..todo.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut slots: Vec<Option<Work>> = todo.into_iter().map(Some).collect();
    let mut d = Dispatch::new(ranks, group_size);
    for i in order {
        let Some(mut w) = slots[i].take() else {
            continue;
        };
        if sizes[i].is_some() {
            w.group = true;
            d.grouped.push_back(w);
        } else {
            d.single.push_back((w, costs[i]));
            d.single_cost += costs[i];
        }
    }
    let by_groups = match d.grouped.len() {
        0 => String::new(),
        n => format!(" ({n} by groups of {group_size})"),
    };
    log::info!(
        "{} task(s) to do over {ranks} rank(s){by_groups}, handed out in batches as ranks ask, largest first",
        d.grouped.len() + d.single.len(),
    );
    Ok(d)
}

/// Message tags of the dynamic schedule.
const ASK_TAG: i32 = 21;
const BATCH_TAG: i32 = 22;
/// What a rank asks rank 0: a batch of group tasks (a group's first rank), a batch of
/// single tasks, or nothing more (it stops: a signal, a journal it cannot write).
const ASK_GROUPED: u8 = b'g';
const ASK_SINGLE: u8 = b's';
const ASK_QUIT: u8 = b'q';
/// Most tasks in one batch: what a rank that dies loses at most, and a bound on a
/// batch message and on a rank's memory for tasks.
const MAX_BATCH: usize = 64;
/// A batch is about this fraction of the remaining cost per rank (guided
/// self-scheduling: large batches while much is left, single tasks at the end).
const BATCHES_PER_RANK: f64 = 4.0;

/// Rank 0's queues of work not yet handed out, and who has finished asking.
struct Dispatch {
    group_size: usize,
    grouped: std::collections::VecDeque<Work>,
    single: std::collections::VecDeque<(Work, f64)>,
    single_cost: f64,
    /// Ranks that will ask no more (told there is no more, or quit).
    finished: Vec<bool>,
    /// Ranks that have asked for single tasks at least once.
    asked: Vec<bool>,
    /// Tasks handed to each rank (group tasks counted on the group's first rank).
    handed: Vec<usize>,
    /// No more work is handed out (rank 0 was asked to stop).
    closed: bool,
    outbox: mpi::Outbox,
}

impl Dispatch {
    fn new(ranks: usize, group_size: usize) -> Dispatch {
        let mut finished = vec![false; ranks];
        finished[0] = true;
        let mut asked = vec![false; ranks];
        asked[0] = true;
        Dispatch {
            group_size,
            grouped: Default::default(),
            single: Default::default(),
            single_cost: 0.0,
            finished,
            asked,
            handed: vec![0; ranks],
            closed: false,
            outbox: Default::default(),
        }
    }

    /// The next batch of single tasks for one of `ranks` ranks: largest first, about a
    /// [`BATCHES_PER_RANK`]th of the remaining cost per rank, at least one task.
    fn take_single(&mut self, ranks: usize) -> Vec<Work> {
        if self.closed {
            return Vec::new();
        }
        let target = self.single_cost / (ranks as f64 * BATCHES_PER_RANK);
        let mut batch = Vec::new();
        let mut cost = 0.0;
        while batch.len() < MAX_BATCH && (batch.is_empty() || cost < target) {
            let Some((w, c)) = self.single.pop_front() else {
                break;
            };
            cost += c;
            self.single_cost -= c;
            batch.push(w);
        }
        batch
    }

    /// The next group task batch: one task (the groups move in step per task).
    fn take_grouped(&mut self) -> Vec<Work> {
        if self.closed {
            return Vec::new();
        }
        self.grouped.pop_front().into_iter().collect()
    }

    /// Answers every request that has arrived; `list` fills in the tasks.
    fn serve(&mut self, world: &World, list: &TaskList) {
        while let Some((rank, ask)) = world.try_receive(None, ASK_TAG) {
            let batch = match ask.first() {
                Some(&ASK_GROUPED) => self.take_grouped(),
                Some(&ASK_SINGLE) => {
                    self.asked[rank] = true;
                    self.take_single(world.size())
                }
                _ => {
                    self.asked[rank] = true;
                    self.finished[rank] = true;
                    continue;
                }
            };
            if batch.is_empty() && ask.first() == Some(&ASK_SINGLE) {
                self.finished[rank] = true;
            }
            self.handed[rank] += batch.len();
            let filled: Vec<Work> = batch
                .into_iter()
                .map(|mut w| {
                    w.task = list.get(w.index).ok().map(|t| t.into_owned());
                    w
                })
                .collect();
            let bytes = serde_json::to_vec(&filled).unwrap_or_else(|_| b"[]".to_vec());
            self.outbox.post(world, rank, BATCH_TAG, bytes);
        }
        self.outbox.progress();
    }

    /// Serves, asleep between looks, until `done` holds.
    fn serve_until(&mut self, world: &World, list: &TaskList, done: fn(&Dispatch) -> bool) {
        loop {
            self.serve(world, list);
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Tasks never handed out (each group task once).
    fn left(&self) -> usize {
        self.grouped.len() + self.single.len()
    }
}

/// This rank in the world and in its writing group, and how that group writes.
#[derive(Clone, Copy)]
struct Ranks<'a> {
    world: &'a World,
    group: &'a Group,
    group_method: crate::ncio::GroupWriteMethod,
}

/// Where a rank's work comes from: on rank 0 the dispatch itself and the list its
/// tasks are read from; elsewhere, rank 0, by message.
struct Source<'a> {
    dispatch: Option<&'a mut Dispatch>,
    list: Option<&'a TaskList>,
    /// Ranks per group for the tasks written by a group (1: none are).
    group_size: usize,
}

/// Every rank: ask for work, produce the granules, journal each outcome. Two phases:
/// the tasks groups of ranks write together (only when there are groups), then the
/// single tasks, each batch asked for as the last one runs out. Rank 0 works too,
/// taking one task at a time from the queues and answering the others between its
/// tasks; at the end it answers until every rank has had its last word.
fn work(
    ranks: Ranks<'_>,
    source: Source<'_>,
    shared: &mut RunContext,
    journal: &mut JournalWriter,
    run_id: &str,
    stop: &StopFlag,
    debug: &DebugHooks,
) -> RankReport {
    let host = mpi::host();
    let mut r = Runner {
        ranks,
        list: source.list,
        shared,
        journal,
        run_id,
        stop,
        debug,
        host: host.clone(),
        report: RankReport {
            host,
            ..RankReport::default()
        },
        in_flight: None,
    };
    let world = ranks.world;
    match (source.dispatch, source.list) {
        (Some(d), Some(list)) => {
            if d.group_size > 1 {
                r.grouped_phase(Some(&mut *d));
            }
            r.root_singles(d, list);
        }
        _ => {
            if source.group_size > 1 {
                r.grouped_phase(None);
            }
            r.worker_singles();
        }
    }
    if r.report.not_run > 0 {
        log::warn!(
            "rank {}: {} task(s) left undone",
            world.rank(),
            r.report.not_run
        );
    }
    r.report
}

/// One rank's work in progress.
struct Runner<'a> {
    ranks: Ranks<'a>,
    list: Option<&'a TaskList>,
    shared: &'a mut RunContext,
    journal: &'a mut JournalWriter,
    run_id: &'a str,
    stop: &'a StopFlag,
    debug: &'a DebugHooks,
    host: String,
    report: RankReport,
    /// A local granule whose commit runs while the next one is made.
    in_flight: Option<Begun>,
}

impl Runner<'_> {
    /// Whether this rank may begin another task.
    fn go_on(&self) -> bool {
        !self.stop.is_set() && self.report.journal_failed.is_none()
    }

    /// Tasks of `rest` this rank would have recorded (a group's first rank records
    /// the group's tasks).
    fn count_undone<'w>(&mut self, rest: impl IntoIterator<Item = &'w Work>) {
        let leads = self.ranks.group.rank() == 0;
        self.report.not_run += rest.into_iter().filter(|w| !w.group || leads).count();
    }

    /// Begins (and, for a group's task or the one in flight before it, finishes)
    /// task `w`; false when this rank stops instead (then `w` is not begun).
    fn run(&mut self, w: &Work) -> bool {
        let Ranks {
            world,
            group,
            group_method,
        } = self.ranks;
        if self.debug.slow_rank.map_or(true, |r| r == world.rank()) {
            std::thread::sleep(self.debug.task_delay);
        }
        let in_group = w.group && group.size() > 1;
        // A group goes on or stops together: its members wait for each other, and one
        // that stops (a signal, a journal that cannot be written) stops them all.
        let go_on = self.go_on();
        if in_group && !group.all_true(go_on) && go_on {
            log::warn!("rank {}: another rank of its group stopped", world.rank());
            return false;
        }
        if self.report.journal_failed.is_some() {
            return false;
        }
        if self.stop.is_set() {
            self.report.interrupted = true;
            log::warn!("rank {}: stop requested", world.rank());
            return false;
        }
        // Rank 0 reads its task from the list now; the others received theirs.
        let task = match (&w.task, self.list) {
            (Some(t), _) => Ok(std::borrow::Cow::Borrowed(t)),
            (None, Some(l)) => l.get(w.index).map_err(|e| crate::error::chain(&e)),
            (None, None) => Err(format!("task {} was not received", w.index)),
        };
        let panic_at = self
            .debug
            .panic_granule
            .as_deref()
            .filter(|s| !s.is_empty());
        if let (Some(p), Ok(t)) = (panic_at, &task) {
            if t.granule.contains(p) {
                panic!("{DEBUG_PANIC_VAR} matches task {} ({})", w.index, w.key);
            }
        }
        let begun = begin_task(
            w,
            task,
            self.shared,
            in_group.then_some((group, group_method)),
        );
        // The previous granule was committed (fsync, rename) while this one was made:
        // it is recorded now that it is in place.
        self.finish_in_flight();
        if !in_group {
            self.in_flight = Some(begun);
            return true;
        }
        let record = finish_task(begun, world.rank(), &self.host, self.run_id);
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
            self.report.busy_seconds += record.seconds;
            return true;
        }
        settle(record, self.ranks, self.journal, &mut self.report);
        true
    }

    fn finish_in_flight(&mut self) {
        if let Some(prev) = self.in_flight.take() {
            let record = finish_task(prev, self.ranks.world.rank(), &self.host, self.run_id);
            settle(record, self.ranks, self.journal, &mut self.report);
        }
    }

    /// Runs `batch` in order; false when this rank stopped (the rest counted undone).
    fn run_batch(&mut self, batch: Vec<Work>, mut serve: impl FnMut()) -> bool {
        let mut batch = std::collections::VecDeque::from(batch);
        while let Some(w) = batch.front() {
            if !self.run(w) {
                self.count_undone(&batch);
                return false;
            }
            batch.pop_front();
            serve();
        }
        true
    }

    /// The tasks written by groups: each group's first rank asks for one, shares it
    /// with its group, and the group writes it, until none is left (or the group
    /// stops). Rank 0 (first of group 0) takes its own from `dispatch`.
    fn grouped_phase(&mut self, mut dispatch: Option<&mut Dispatch>) {
        let Ranks { world, group, .. } = self.ranks;
        loop {
            let ask = if group.rank() != 0 {
                Vec::new()
            } else if !self.go_on() {
                b"[]".to_vec()
            } else {
                match (dispatch.as_deref_mut(), self.list) {
                    (Some(d), Some(list)) => {
                        let batch = d.take_grouped();
                        d.handed[0] += batch.len();
                        filled_batch(batch, list)
                    }
                    _ => {
                        world.send_small(0, ASK_TAG, &[ASK_GROUPED]);
                        world.receive(0, BATCH_TAG)
                    }
                }
            };
            let bytes = group.broadcast_bytes(ask);
            let batch: Vec<Work> = match serde_json::from_slice(&bytes) {
                Ok(b) => b,
                Err(e) => world.abort(1, &format!("undecodable batch of tasks: {e}")),
            };
            if batch.is_empty() {
                return;
            }
            let ok = match (dispatch.as_deref_mut(), self.list) {
                (Some(d), Some(list)) => self.run_batch(batch, || d.serve(world, list)),
                _ => self.run_batch(batch, || {}),
            };
            if !ok {
                return;
            }
        }
    }

    /// Rank 0: single tasks one at a time from the queue, answering the other ranks
    /// between them, then answering until every rank has had its last word.
    fn root_singles(&mut self, d: &mut Dispatch, list: &TaskList) {
        let world = self.ranks.world;
        if d.group_size == 1 {
            // Every rank's first request before rank 0 takes its first task, so that
            // the largest tasks are spread at once.
            d.serve_until(world, list, |d| d.asked.iter().all(|&a| a));
        }
        loop {
            d.serve(world, list);
            if !self.go_on() {
                break;
            }
            let Some((w, c)) = d.single.pop_front() else {
                break;
            };
            d.single_cost -= c;
            if !self.run(&w) {
                d.single.push_front((w, 0.0));
                break;
            }
            d.handed[0] += 1;
        }
        self.finish_in_flight();
        // A stop hands out nothing more; a journal rank 0 cannot write stops only its
        // own work.
        if self.stop.is_set() {
            d.closed = true;
        }
        d.serve_until(world, list, |d| d.finished.iter().all(|&f| f));
        d.outbox.flush();
        let left = d.left();
        if left > 0 {
            self.report.not_run += left;
            self.report.interrupted |= self.stop.is_set();
        }
        log::debug!("tasks handed out by rank: {:?}", d.handed);
    }

    /// A rank other than 0: asks for a batch of single tasks as its last one begins,
    /// until rank 0 has no more (or this rank stops: it says so).
    fn worker_singles(&mut self) {
        let world = self.ranks.world;
        let mut queue: std::collections::VecDeque<Work> = Default::default();
        let (mut asked, mut exhausted) = (false, false);
        let decode = |bytes: Vec<u8>| -> Vec<Work> {
            match serde_json::from_slice(&bytes) {
                Ok(b) => b,
                Err(e) => world.abort(1, &format!("undecodable batch of tasks: {e}")),
            }
        };
        loop {
            if !asked && !exhausted && queue.len() <= 1 && self.go_on() {
                world.send_small(0, ASK_TAG, &[ASK_SINGLE]);
                asked = true;
            }
            if asked {
                let got = if queue.is_empty() {
                    Some(world.receive(0, BATCH_TAG))
                } else {
                    world.try_receive(Some(0), BATCH_TAG).map(|(_, b)| b)
                };
                if let Some(bytes) = got {
                    asked = false;
                    let batch = decode(bytes);
                    exhausted = batch.is_empty();
                    queue.extend(batch);
                }
            }
            let Some(w) = queue.front() else {
                break;
            };
            if !self.run(w) {
                break;
            }
            queue.pop_front();
        }
        self.finish_in_flight();
        if asked {
            // The answer on its way is taken (rank 0 waits for it to be) and not run.
            let batch = decode(world.receive(0, BATCH_TAG));
            exhausted = batch.is_empty();
            queue.extend(batch);
        }
        if !exhausted {
            world.send_small(0, ASK_TAG, &[ASK_QUIT]);
        }
        self.count_undone(&queue);
    }
}

/// A batch with its tasks read from the list, as sent.
fn filled_batch(batch: Vec<Work>, list: &TaskList) -> Vec<u8> {
    let filled: Vec<Work> = batch
        .into_iter()
        .map(|mut w| {
            w.task = list.get(w.index).ok().map(|t| t.into_owned());
            w
        })
        .collect();
    serde_json::to_vec(&filled).unwrap_or_else(|_| b"[]".to_vec())
}

/// Logs and journals a task's record; a journal that cannot be written stops this
/// rank from taking more tasks.
fn settle(
    record: Record,
    Ranks { world, .. }: Ranks<'_>,
    journal: &mut JournalWriter,
    report: &mut RankReport,
) {
    report.busy_seconds += record.seconds;
    report.recorded += 1;
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
        log::error!(
            "rank {}: {}; stopping: this rank takes no more tasks",
            world.rank(),
            crate::error::chain(&e),
        );
        report.journal_failed = Some(crate::error::chain(&e));
    }
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
    group: Option<(&Group, crate::ncio::GroupWriteMethod)>,
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
        .and_then(|t| shared.context(w.index, t, &w.target));
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
        produce_in(group, task, &ctx, shared.write, shared.storage())
            .map_err(|e| crate::error::chain(&e))
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
    group: Option<(&Group, crate::ncio::GroupWriteMethod)>,
    task: &Task,
    ctx: &Context,
    options: super::WriteOptions,
    storage: &Storage,
) -> Result<Producing, ProduceError> {
    match group {
        Some((g, group_method)) => {
            super::produce::produce_grouped(task, ctx, storage, g, group_method, options.quicklook)
                .map(Producing::from)
        }
        // On one of the rank's worker threads (rayon's `scope` runs it there), as the
        // bench's in-process pass does: the granule's parallel work then starts on a
        // thread that is awake, where from this thread it woke every worker first.
        None => rayon::scope(|_| produce_pipelined(task, ctx, options, storage)),
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
        info.tasks_by_rank.push(r.recorded);
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
