//! The one place that talks to MPI.
//!
//! Everything else in the run sees a [`World`]: a rank, a size, and the three
//! collectives the SPMD run needs (broadcast the plan, gather the records, agree on a
//! flag). A `World` is either a real MPI world or a serial stand-in of one rank, so one
//! code path serves `mpirun -np N`, `srun` and a plain `edp run`.
//!
//! MPI is only initialised when a launcher started us (or `EDP_MPI=on` asks for it):
//! OpenMPI's singleton start-up forks a helper daemon, costs about 0.35 s here and fails
//! outright in some containers, and a lone process gains nothing from it.

use std::ffi::c_int;

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

use crate::settings::{env_set, env_var};

/// Exit code of a rank that panicked (Rust's own panic exit code).
pub const PANIC_EXIT: i32 = 101;

/// Environment variable choosing whether to initialise MPI: `auto` (default), `on`, `off`.
pub const MODE_VAR: &str = "EDP_MPI";

/// Variables that MPI launchers set in every process they start: OpenMPI's mpirun,
/// PMIx (OpenMPI, `srun --mpi=pmix`), PMI/PMI2 (MPICH's hydra, Intel MPI, `srun`).
const LAUNCHER_VARS: &[&str] = &[
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "MPI_LOCALNRANKS",
];

/// Variables that carry the number of processes the launcher started.
const LAUNCHER_SIZE_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

#[derive(Debug, thiserror::Error)]
pub enum MpiError {
    #[error("{MODE_VAR}={0:?} is not one of auto, on, off")]
    BadMode(String),
    #[error("MPI was already initialised in this process")]
    AlreadyInitialised,
    #[error(
        "the launcher started {launched} processes ({var}) but MPI sees a world of 1: \
         edp was built against a different MPI library than the launcher's, and every \
         process would produce every granule"
    )]
    SizeMismatch { launched: usize, var: &'static str },
}

/// The MPI world, or a serial stand-in of one rank.
pub struct World {
    mpi: Option<Mpi>,
    rank: usize,
    size: usize,
    local_size: usize,
}

struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

/// True when some MPI launcher started this process.
fn launched_by_mpi() -> bool {
    LAUNCHER_VARS.iter().any(|v| env_set(v))
        || (env_set("SLURM_PROCID") && launcher_size().is_some_and(|(n, _)| n > 1))
}

/// The number of processes the launcher says it started, if it says.
fn launcher_size() -> Option<(usize, &'static str)> {
    LAUNCHER_SIZE_VARS.iter().find_map(|v| {
        env_var(v)
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|n| (n, *v))
    })
}

impl World {
    /// A world of one rank without MPI.
    pub fn serial() -> World {
        World {
            mpi: None,
            rank: 0,
            size: 1,
            local_size: 1,
        }
    }

    /// Initialises MPI if a launcher started us (or `mode`, the [`MODE_VAR`] setting,
    /// says so), else returns [`World::serial`].
    pub fn init(mode: Option<&str>) -> Result<World, MpiError> {
        let mode = mode.unwrap_or("auto").to_string();
        let wanted = match mode.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => launched_by_mpi(),
            "on" | "1" | "yes" => true,
            "off" | "0" | "no" => false,
            _ => return Err(MpiError::BadMode(mode)),
        };
        if !wanted {
            return Ok(World::serial());
        }
        // MPI is called from the main thread only; rayon and progress threads never do.
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or(MpiError::AlreadyInitialised)?;
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        if size == 1 {
            if let Some((launched, var)) = launcher_size().filter(|(n, _)| *n > 1) {
                return Err(MpiError::SizeMismatch { launched, var });
            }
        }
        // Ranks sharing this node's memory, to divide its cores among them.
        let local_size = world.split_shared(world.rank()).size().max(1) as usize;
        install_panic_abort();
        Ok(World {
            mpi: Some(Mpi {
                world,
                _universe: universe,
            }),
            rank,
            size,
            local_size,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Ranks on this node (1 without MPI).
    pub fn local_size(&self) -> usize {
        self.local_size
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// True when this is a real MPI world (possibly of one rank).
    pub fn uses_mpi(&self) -> bool {
        self.mpi.is_some()
    }

    /// Rank 0's `data` on every rank (the argument is ignored elsewhere).
    pub fn broadcast_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        match &self.mpi {
            Some(m) => broadcast_on(&m.world, self.rank, data),
            None => data,
        }
    }

    /// Rank 0's `parts[r]` on rank r (`parts` is ignored off rank 0, and must have one
    /// entry per rank on it).
    pub fn scatter_bytes(&self, parts: Vec<Vec<u8>>) -> Vec<u8> {
        let Some(m) = &self.mpi else {
            return parts.into_iter().next().unwrap_or_default();
        };
        let root = m.world.process_at_rank(0);
        let mut len: Count = 0;
        if !self.is_root() {
            root.scatter_into(&mut len);
            let mut buf = vec![0u8; len as usize];
            root.scatter_varcount_into(&mut buf[..]);
            return buf;
        }
        if parts.len() != self.size {
            self.abort(
                1,
                &format!("scatter of {} parts over {} ranks", parts.len(), self.size),
            );
        }
        let counts: Vec<Count> = parts
            .iter()
            .map(|p| self.count_or_abort(p.len(), "scatter"))
            .collect();
        let mut displs = Vec::with_capacity(parts.len());
        let mut at = 0usize;
        for p in &parts {
            displs.push(self.count_or_abort(at, "scatter"));
            at += p.len();
        }
        root.scatter_into_root(&counts[..], &mut len);
        let flat: Vec<u8> = parts.concat();
        let mut mine = vec![0u8; len as usize];
        let part = mpi::datatype::Partition::new(&flat[..], &counts[..], &displs[..]);
        root.scatter_varcount_into_root(&part, &mut mine[..]);
        mine
    }

    /// Every rank's `mine`, in rank order, on rank 0; `None` elsewhere. A rank that
    /// comes first waits for the others asleep (the end of a run: ranks done early must
    /// not take a core from those still working).
    pub fn gather_bytes(&self, mine: &[u8]) -> Option<Vec<Vec<u8>>> {
        match &self.mpi {
            Some(m) => {
                wait_asleep(m.world.immediate_barrier());
                gather_on(&m.world, self.rank, self.size, mine)
            }
            None => Some(vec![mine.to_vec()]),
        }
    }

    /// True on every rank iff `ok` is true on every rank.
    pub fn all_true(&self, ok: bool) -> bool {
        match &self.mpi {
            Some(m) => all_true_on(&m.world, ok),
            None => ok,
        }
    }

    /// Splits the world into groups of `size` consecutive ranks (the last may be
    /// smaller), the ranks that write one granule together. Collective: every rank
    /// calls it with the same `size`.
    pub fn groups(&self, size: usize) -> Group {
        let size = size.clamp(1, self.size);
        let color = self.rank / size;
        let members = size.min(self.size - color * size);
        let comm = match &self.mpi {
            Some(m) if size > 1 => m
                .world
                .split_by_color(mpi::topology::Color::with_value(color as c_int)),
            _ => None,
        };
        let (rank, size) = match &comm {
            Some(_) => (self.rank % size, members),
            None => (0, 1),
        };
        Group {
            comm,
            index: color,
            rank,
            size,
            world_rank: self.rank,
        }
    }

    /// Ends the whole run now, every rank, with `code` after printing `message`.
    pub fn abort(&self, code: i32, message: &str) -> ! {
        eprintln!("edp: rank {}: {message}; aborting the run", self.rank);
        match &self.mpi {
            Some(m) => m.world.abort(code),
            None => std::process::exit(code),
        }
    }

    /// MPI message sizes are C ints; a larger one cannot be sent, so the run stops
    /// (on the rank that sees it, which takes the others down with it).
    fn count_or_abort(&self, n: usize, what: &str) -> Count {
        match &self.mpi {
            Some(m) => count_or_abort(&m.world, n, what),
            None => Count::try_from(n).unwrap_or(Count::MAX),
        }
    }
}

/// Point-to-point messages of the dynamic schedule ([`super::spmd`]): the ranks ask rank
/// 0 for batches of work and rank 0 answers. Only ever used in a world of more than one
/// rank (a serial world has no one to ask).
impl World {
    /// Sends a small message (a request) to `rank`. Small messages go eagerly, so this
    /// returns at once whether or not `rank` is receiving yet.
    pub fn send_small(&self, rank: usize, tag: i32, bytes: &[u8]) {
        if let Some(m) = &self.mpi {
            count_or_abort(&m.world, bytes.len(), "a request");
            m.world
                .process_at_rank(rank as c_int)
                .send_with_tag(bytes, tag as mpi::Tag);
        }
    }

    /// A message with `tag` from any rank (`from: None`) or from `from`, if one has
    /// arrived: its sender and bytes.
    pub fn try_receive(&self, from: Option<usize>, tag: i32) -> Option<(usize, Vec<u8>)> {
        let m = self.mpi.as_ref()?;
        let probed = match from {
            Some(r) => m
                .world
                .process_at_rank(r as c_int)
                .immediate_matched_probe_with_tag(tag as mpi::Tag)?,
            None => m
                .world
                .any_process()
                .immediate_matched_probe_with_tag(tag as mpi::Tag)?,
        };
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        Some((status.source_rank() as usize, bytes))
    }

    /// The next message with `tag` from `from`, waiting for it asleep.
    pub fn receive(&self, from: usize, tag: i32) -> Vec<u8> {
        if self.mpi.is_none() {
            self.abort(1, "a serial world has no one to receive from");
        }
        loop {
            if let Some((_, bytes)) = self.try_receive(Some(from), tag) {
                return bytes;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Messages rank 0 has posted and not yet seen delivered: a batch may be far larger
/// than MPI sends eagerly, and rank 0 must not wait for a busy rank to take it (the
/// others would wait for rank 0 in turn). Each buffer is kept until its send completes.
#[derive(Default)]
pub struct Outbox {
    pending: Vec<(Vec<u8>, mpi::ffi::MPI_Request)>,
}

impl Outbox {
    /// Posts `bytes` to `rank` with `tag` and returns at once.
    pub fn post(&mut self, world: &World, rank: usize, tag: i32, bytes: Vec<u8>) {
        let Some(m) = &world.mpi else {
            return;
        };
        let count = count_or_abort(&m.world, bytes.len(), "a batch of tasks");
        // SAFETY: `bytes` stays in `pending` (its heap buffer does not move with the
        // Vec) until MPI_Test reports the send complete; the request is that send's.
        unsafe {
            let mut request: mpi::ffi::MPI_Request = std::mem::zeroed();
            mpi::ffi::MPI_Isend(
                bytes.as_ptr().cast(),
                count,
                u8::equivalent_datatype().as_raw(),
                rank as c_int,
                tag as c_int,
                m.world.as_raw(),
                &mut request,
            );
            self.pending.push((bytes, request));
        }
    }

    /// Frees the buffers of the sends that completed; true when none is left.
    pub fn progress(&mut self) -> bool {
        self.pending.retain_mut(|(_, request)| {
            let mut done: c_int = 0;
            // SAFETY: the request was made by MPI_Isend and not yet completed (a
            // completed one is dropped from `pending` right here).
            unsafe {
                mpi::ffi::MPI_Test(request, &mut done, mpi::ffi::RSMPI_STATUS_IGNORE);
            }
            done == 0
        });
        self.pending.is_empty()
    }

    /// Waits, asleep, for every posted send to complete.
    pub fn flush(&mut self) {
        while !self.progress() {
            std::thread::sleep(POLL);
        }
    }
}

/// Rank 0's `data` on every rank of `comm`.
fn broadcast_on(comm: &SimpleCommunicator, rank: usize, data: Vec<u8>) -> Vec<u8> {
    let root = comm.process_at_rank(0);
    let mut len = data.len() as u64;
    root.broadcast_into(&mut len);
    let mut buf = if rank == 0 {
        data
    } else {
        vec![0u8; len as usize]
    };
    // Sent in pieces: MPI counts are C ints.
    for piece in buf.chunks_mut(1 << 30) {
        root.broadcast_into(piece);
    }
    buf
}

/// Every rank's `mine`, in rank order, on rank 0 of `comm` (`rank` of `size`);
/// `None` elsewhere. `mine` must not be empty: OpenMPI's MPI_IN_PLACE is the address
/// an empty buffer has, and a rank other than the root may not send in place.
fn gather_on(
    comm: &SimpleCommunicator,
    rank: usize,
    size: usize,
    mine: &[u8],
) -> Option<Vec<Vec<u8>>> {
    let root = comm.process_at_rank(0);
    let len = count_or_abort(comm, mine.len(), "gather");
    if rank != 0 {
        root.gather_into(&len);
        root.gather_varcount_into(mine);
        return None;
    }
    let mut counts: Vec<Count> = vec![0; size];
    root.gather_into_root(&len, &mut counts[..]);
    let displs: Vec<Count> = counts
        .iter()
        .scan(0usize, |acc, &c| {
            let d = *acc;
            *acc += c as usize;
            Some(d)
        })
        .map(|d| count_or_abort(comm, d, "gather"))
        .collect();
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let mut buf = vec![0u8; total];
    {
        let mut part = mpi::datatype::PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
        root.gather_varcount_into_root(mine, &mut part);
    }
    Some(
        counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
            .collect(),
    )
}

/// MPI message sizes are C ints; a larger one cannot be sent, so the run stops (on the
/// rank that sees it, which takes the others down with it).
fn count_or_abort(comm: &SimpleCommunicator, n: usize, what: &str) -> Count {
    Count::try_from(n).unwrap_or_else(|_| {
        eprintln!(
            "edp: rank {}: {what} of {n} bytes exceeds the largest MPI message; aborting the run",
            SimpleCommunicator::world().rank()
        );
        comm.abort(1)
    })
}

/// True on every rank of `comm` iff `ok` is true on every rank (waiting asleep).
fn all_true_on(comm: &SimpleCommunicator, ok: bool) -> bool {
    let mine: c_int = ok.into();
    let mut all: c_int = 0;
    mpi::request::scope(|scope| {
        wait_asleep(comm.immediate_all_reduce_into(
            scope,
            &mine,
            &mut all,
            mpi::collective::SystemOperation::min(),
        ));
    });
    all == 1
}

/// How often a rank waiting for others looks again.
const POLL: std::time::Duration = std::time::Duration::from_micros(500);

/// Waits for `request` to complete, testing it every [`POLL`] and sleeping between:
/// OpenMPI's blocking calls poll at full speed, so a waiting rank would take a core
/// from the ranks (and threads) still working on the node.
fn wait_asleep<'a, D: ?Sized, S: mpi::request::Scope<'a>>(
    mut request: mpi::request::Request<'a, D, S>,
) {
    loop {
        match request.test() {
            Ok(_) => return,
            Err(r) => request = r,
        }
        std::thread::sleep(POLL);
    }
}

/// A group of consecutive ranks writing one granule together (see [`World::groups`]);
/// a group of one when the world is serial or groups are of size 1.
pub struct Group {
    comm: Option<SimpleCommunicator>,
    /// Which group of the world this is.
    index: usize,
    rank: usize,
    size: usize,
    world_rank: usize,
}

impl Group {
    /// Which group of the world this rank belongs to.
    pub fn index(&self) -> usize {
        self.index
    }

    /// This rank's index in its group (0 leads: it records the group's granules).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in this group.
    pub fn size(&self) -> usize {
        self.size
    }

    /// This rank's index in the world.
    pub fn world_rank(&self) -> usize {
        self.world_rank
    }

    /// Rank 0's `data` on every rank of the group.
    pub fn broadcast_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        match &self.comm {
            Some(c) => broadcast_on(c, self.rank, data),
            None => data,
        }
    }

    /// True on every rank of the group iff `ok` is true on every rank of it.
    pub fn all_true(&self, ok: bool) -> bool {
        match &self.comm {
            Some(c) => all_true_on(c, ok),
            None => ok,
        }
    }

    /// `Ok` on every rank iff no rank of the group brought a `failure`; otherwise `Err`
    /// everywhere, with the lowest failing rank and its message on the group's first
    /// rank (`None` on the others).
    pub fn all_ok(&self, failure: Option<&str>) -> Result<(), Option<(usize, String)>> {
        if self.all_true(failure.is_none()) {
            return Ok(());
        }
        let Some(c) = &self.comm else {
            return Err(failure.map(|f| (0, f.to_string())));
        };
        // A failure is its message behind a 1; success a lone 0 (never nothing: an
        // empty buffer's address reads as OpenMPI's MPI_IN_PLACE).
        let mine: Vec<u8> = match failure {
            Some(f) => std::iter::once(1).chain(f.bytes()).collect(),
            None => vec![0],
        };
        let all = gather_on(c, self.rank, self.size, &mine);
        Err(all.and_then(|all| {
            all.iter()
                .enumerate()
                .find_map(|(r, m)| match m.split_first() {
                    Some((1, text)) => Some((r, String::from_utf8_lossy(text).into_owned())),
                    _ => None,
                })
        }))
    }
}

/// Tag of the chunk messages of a group writing one file by gathering.
const GATHER_TAG: mpi::Tag = 14;

impl crate::ncio::group::RankGroup for Group {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    #[cfg(feature = "parallel-hdf5")]
    fn comm(&self) -> mpi::ffi::MPI_Comm {
        match &self.comm {
            Some(c) => c.as_raw(),
            // A group of one (the runner writes those serially): MPI_COMM_SELF.
            None => mpi::topology::SimpleCommunicator::self_comm().as_raw(),
        }
    }
    fn broadcast_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        Group::broadcast_bytes(self, data)
    }
    fn all_true(&self, ok: bool) -> bool {
        Group::all_true(self, ok)
    }
    fn all_ok(&self, failure: Option<&str>) -> Result<(), Option<(usize, String)>> {
        Group::all_ok(self, failure)
    }
    fn all_min_f32(&self, values: &mut [f32]) {
        if let Some(c) = &self.comm {
            let mine = values.to_vec();
            c.all_reduce_into(&mine[..], values, mpi::collective::SystemOperation::min());
        }
    }
    fn all_sum_u64(&self, value: u64) -> u64 {
        match &self.comm {
            Some(c) => {
                let mut total = 0u64;
                c.all_reduce_into(&value, &mut total, mpi::collective::SystemOperation::sum());
                total
            }
            None => value,
        }
    }
    fn send_to_first(&self, bytes: &[u8]) {
        let Some(c) = &self.comm else {
            return;
        };
        count_or_abort(c, bytes.len(), "a chunk message");
        let first = c.process_at_rank(0);
        // Asleep while the first rank is busy writing: this rank's threads compress.
        mpi::request::scope(|scope| {
            wait_asleep(first.immediate_send_with_tag(scope, bytes, GATHER_TAG));
        });
    }
    fn try_receive(&self) -> Option<(usize, Vec<u8>)> {
        let c = self.comm.as_ref()?;
        let probed = c
            .any_process()
            .immediate_matched_probe_with_tag(GATHER_TAG)?;
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        Some((status.source_rank() as usize, bytes))
    }
}

/// Hostname of this node, for the records.
pub fn host() -> String {
    crate::storage::lock::host()
}

/// A panic in any thread of any rank ends the whole MPI job with a message: the other
/// ranks would otherwise wait forever in the next collective.
fn install_panic_abort() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            let world = SimpleCommunicator::world();
            eprintln!(
                "edp: rank {} of {} panicked (see above); aborting the MPI job",
                world.rank(),
                world.size()
            );
            world.abort(PANIC_EXIT);
        }
    }));
}
