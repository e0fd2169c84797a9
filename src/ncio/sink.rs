//! Where the direct writer's compressed chunks go: the [`ChunkSink`] trait.
//!
//! The pipeline (`chunked.rs`) produces and compresses units of work on rayon's threads
//! and puts each unit's chunks on a bounded channel; a sink decides which units this
//! process makes and takes the channel to the chunk writer. [`Alone`] is the process
//! that writes the file by itself (its chunk writer runs beside the pipeline); the
//! gather writer's sink (`gather.rs`) deals the units out over a group of ranks and
//! sends them to the group's first rank. The collective writer is not a sink: parallel
//! HDF5 compresses and writes the chunks itself, inside collective `H5Dwrite` calls
//! (see `collective.rs`). Dependencies point one way: the pipeline and `write.rs` know
//! this trait and [`Alone`]; the gather writer implements it, and neither of them
//! knows the gather writer.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::{ChunkList, NcError};

/// One unit's compressed chunks of one variable, on their way to the chunk writer.
pub(super) struct Msg {
    /// Index of the variable among the file's direct variables.
    pub(super) target: usize,
    pub(super) chunks: Arc<ChunkList>,
    pub(super) range: Option<(f32, f32)>,
}

/// The pipeline: makes this process's units, sending their chunks on the channel whose
/// receiver the sink gets; its outcome is known once the channel has closed.
pub(super) type ProduceFn<'a> = dyn FnOnce() -> Result<(), NcError> + Send + 'a;

/// The chunk writer: takes every message and writes it into the file.
pub(super) type WriteFn<'a> =
    dyn FnOnce(&mut dyn Iterator<Item = Msg>) -> Result<(), NcError> + Send + 'a;

/// What a sink takes: the pipeline, its channel's receiving end and the chunk writer.
pub(super) struct Pipe<'a> {
    /// Makes this process's units, sending their chunks into `local`.
    pub(super) produce: Box<ProduceFn<'a>>,
    pub(super) local: Receiver<Msg>,
    pub(super) write: Box<WriteFn<'a>>,
}

/// Where a file's chunks go, and which units of work this process makes. The defaults
/// are those of a process that writes the file alone ([`Alone`]).
pub(super) trait ChunkSink {
    /// Whether other processes share the file's units (a group's sink).
    fn shared(&self) -> bool {
        false
    }
    /// Whether this process makes unit `index` (units in their writing order).
    fn makes(&self, _index: usize) -> bool {
        true
    }
    /// Whether this process writes the file (and so makes the in-memory variables).
    fn writes(&self) -> bool {
        true
    }
    /// Whether a test asks this process to fail its first unit of `path`
    /// ([`super::DEBUG_FAIL_VAR`]).
    fn fails_first_unit(&self, _path: &Path) -> bool {
        false
    }
    /// `e`, a failure of the writing process before it took any unit, once what other
    /// processes send (whatever happens) has been taken and dropped.
    fn abandon(&self, e: NcError) -> NcError {
        e
    }
    /// Runs the pipeline and takes its messages where they go: into the chunk writer
    /// (with other processes' messages, for a group) on the process that writes, to
    /// that process on the others.
    fn deliver(&self, pipe: Pipe<'_>, path: &Path) -> Result<(), NcError>;
}

/// The sink of a process that writes the file alone: every unit is its own, and the
/// chunk writer takes them on a thread of its own while the calling thread (rayon's,
/// when the caller runs in a pool) makes them.
pub(super) struct Alone;

impl ChunkSink for Alone {
    fn deliver(&self, pipe: Pipe<'_>, _: &Path) -> Result<(), NcError> {
        std::thread::scope(|scope| {
            let (write, local) = (pipe.write, pipe.local);
            let writer = scope.spawn(move || write(&mut local.into_iter()));
            let work = (pipe.produce)();
            // The writer's own error explains a closed channel better than the send did.
            let written = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            written.and(work)
        })
    }
}
