//! One granule written by a group of ranks that gathers compressed chunks to its first
//! rank.
//!
//! A fine-grid granule (LLC1080 3D, LLC4320) is too much work for one rank's time. Here
//! every rank of the group produces and compresses its share of the chunks (one row of
//! chunks along a streamed variable's slab dimension at a time, rows dealt round-robin)
//! with the single-rank writer's own pipeline (`chunked.rs`, `compress.rs`) feeding
//! this writer's [`ChunkSink`], which sends
//! the compressed chunks to the group's first rank. That rank defines the file with
//! netCDF-C, writes its own and the received chunks with HDF5 direct chunk writes, and
//! commits the file (fsync, rename) as every write does ([`Staged`]). Only MPI messages are needed,
//! no parallel HDF5, so the serial build has it too ([`super::collective`] is the
//! parallel-HDF5 alternative).
//!
//! Memory stays bounded: a rank sends each unit of chunks as it is made, with a bounded
//! queue between its compressing threads and the sender, and the first rank takes a
//! message only when it can write it.
//!
//! Failures: the ranks agree after each step ([`super::group::Agreement`]), so none
//! waits forever for another. A rank whose share fails tells the first rank with its
//! last message; the first rank removes the temporary file, and its error (the task's
//! record) carries the failing rank's message.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::commit::Staged;
use super::group::{Agreement, RankGroup};
use super::layout::unit_owner;
use super::sink::{ChunkSink, Msg, Pipe};
use super::write::{header_digest, write_file};
use super::{debug_failure, ffi, DatasetDef, NcError, WriteMethod, WriteReport};

/// Writes `def` as one NetCDF-4 file from every rank of `group`, gathering the
/// compressed chunks to the group's first rank; the file appears at `path` only once
/// complete. Every rank calls this with the same definition (global attributes
/// excepted: only the first rank's are written).
pub fn write_gathered(
    def: DatasetDef,
    path: &Path,
    group: &dyn RankGroup,
) -> Result<WriteReport, NcError> {
    let start = Instant::now();
    let mut agree = Agreement::validated(&def, path, group)?;
    // The ranks deal out the same chunks only if they cut the same variables.
    agree.same_definition(header_digest(&def, false), true)?;
    let root = group.rank() == 0;
    // The first rank's stage removes the temporary file on every failure, panics
    // included.
    let prepared = if root {
        Staged::prepare(path).map(Some)
    } else {
        Ok(None)
    };
    let staged = agree.on(prepared, "preparing the temporary file")?;
    agree.temp = staged.as_ref().map(|s| s.temp().to_path_buf());
    ffi::quiet_hdf5_errors();
    // The other ranks never touch the file: they send what they make.
    let written = write_file(
        def,
        staged.as_ref().map_or(path, |s| s.temp()),
        path,
        WriteMethod::Direct,
        &Gathered(group),
    );
    let data_bytes = agree.on(written, "writing its share of the chunks")?;
    let committed = staged.map_or(Ok(0), Staged::commit_now);
    agree.temp = None;
    let bytes = agree.on(committed, "putting the file in place")?;
    Ok(WriteReport {
        bytes,
        data_bytes,
        elapsed: start.elapsed(),
    })
}

/// The gather writer's [`ChunkSink`]: units dealt round-robin over the group
/// ([`unit_owner`]), sent to its first rank, which writes them all.
struct Gathered<'a>(&'a dyn RankGroup);

impl ChunkSink for Gathered<'_> {
    fn shared(&self) -> bool {
        true
    }

    fn makes(&self, index: usize) -> bool {
        unit_owner(index, self.0.size()) == self.0.rank()
    }

    fn writes(&self) -> bool {
        self.0.rank() == 0
    }

    fn fails_first_unit(&self, path: &Path) -> bool {
        debug_failure(path, self.0.rank())
    }

    fn abandon(&self, e: NcError) -> NcError {
        drop_shares(self.0, e)
    }

    fn deliver(&self, pipe: Pipe<'_>, path: &Path) -> Result<(), NcError> {
        // MPI is called from this thread only: the units are made on another.
        std::thread::scope(|scope| {
            let work = scope.spawn(pipe.produce);
            let made = move || work.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            if self.0.rank() > 0 {
                return send_share(self.0, pipe.local, made);
            }
            let mut incoming = Incoming::new(self.0, pipe.local);
            let written = (pipe.write)(&mut incoming);
            // Another rank's failure explains this rank's closed channel better.
            let peers = incoming.finish(path);
            written.and(peers).and(made())
        })
    }
}

/// Largest message sent at once (MPI counts are C ints): a larger unit goes in pieces.
const MESSAGE_BYTES: usize = 1 << 30;

// Message kinds: chunks of one variable, the sender's last message (done), or its
// last message after a failure (with the error's text).
const CHUNKS: u8 = 0;
const DONE: u8 = 1;
const FAILED: u8 = 2;

/// A rank's messages to the first rank: its units of chunks as they come from
/// `local`, then whether its share succeeded (`outcome`, called once `local` ends).
fn send_share(
    group: &dyn RankGroup,
    local: Receiver<Msg>,
    outcome: impl FnOnce() -> Result<(), NcError>,
) -> Result<(), NcError> {
    for msg in local {
        for piece in encode(&msg) {
            group.send_to_first(&piece);
        }
    }
    let outcome = outcome();
    let last = match &outcome {
        Ok(()) => vec![DONE],
        Err(e) => std::iter::once(FAILED)
            .chain(crate::error::chain(e).into_bytes())
            .collect(),
    };
    group.send_to_first(&last);
    outcome
}

/// Pieces of at most [`MESSAGE_BYTES`] (a single larger chunk alone): kind, target
/// (u32), range (flag, two f32), chunk count (u32), then per chunk its number of
/// dimensions (u8), offset (u64 each), length (u64) and bytes; little-endian.
fn encode(msg: &Msg) -> Vec<Vec<u8>> {
    let head = |n: u32| {
        let mut b = vec![CHUNKS];
        b.extend_from_slice(&(msg.target as u32).to_le_bytes());
        let (has, (lo, hi)) = match msg.range {
            Some(r) => (1u8, r),
            None => (0, (0.0, 0.0)),
        };
        b.push(has);
        b.extend_from_slice(&lo.to_le_bytes());
        b.extend_from_slice(&hi.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b
    };
    let mut pieces = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut count = 0u32;
    for (offset, bytes) in msg.chunks.iter() {
        if count > 0 && body.len() + bytes.len() > MESSAGE_BYTES {
            pieces.push([head(count), std::mem::take(&mut body)].concat());
            count = 0;
        }
        body.push(offset.len() as u8);
        for o in offset {
            body.extend_from_slice(&o.to_le_bytes());
        }
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        body.extend_from_slice(bytes);
        count += 1;
    }
    pieces.push([head(count), body].concat());
    pieces
}

/// What one message from another rank says.
enum Received {
    Chunks(Msg),
    Done,
    Failed(String),
}

/// Reads a message of [`encode`] or [`send_share`]; `None` if it is malformed.
fn decode(bytes: Vec<u8>) -> Option<Received> {
    let (&kind, rest) = bytes.split_first()?;
    match kind {
        DONE => return Some(Received::Done),
        FAILED => return Some(Received::Failed(String::from_utf8_lossy(rest).into())),
        CHUNKS => {}
        _ => return None,
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = rest.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let f32_of = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap_or_default());
    let target = u32_of(take(4)?) as usize;
    let has = take(1)?[0] == 1;
    let (lo, hi) = (f32_of(take(4)?), f32_of(take(4)?));
    let n = u32_of(take(4)?) as usize;
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let dims = take(1)?[0] as usize;
        let offset = (0..dims)
            .map(|_| take(8).map(u64_of))
            .collect::<Option<Vec<u64>>>()?;
        let len = usize::try_from(u64_of(take(8)?)).ok()?;
        chunks.push((offset, take(len)?.to_vec()));
    }
    Some(Received::Chunks(Msg {
        target,
        chunks: std::sync::Arc::new(chunks),
        range: has.then_some((lo, hi)),
    }))
}

/// On the first rank, when it failed before taking any chunks: `e`, once the other
/// ranks' messages (which they send whatever happens here) are taken and dropped.
fn drop_shares(group: &dyn RankGroup, e: NcError) -> NcError {
    if group.rank() == 0 {
        let (_, nothing) = std::sync::mpsc::sync_channel(0);
        let _ = Incoming::new(group, nothing).finish(Path::new(""));
    }
    e
}

/// On the first rank: its own units (`local`) and the other ranks' messages, in the
/// order they come, until every rank sent its last message.
struct Incoming<'a> {
    group: &'a dyn RankGroup,
    local: Option<Receiver<Msg>>,
    /// Ranks whose last message has not come yet.
    open: usize,
    /// The lowest failing rank and its message.
    failed: Option<(usize, String)>,
}

/// How long the first rank waits for its own next unit before it looks for other
/// ranks' messages again.
const POLL: Duration = Duration::from_millis(1);

impl<'a> Incoming<'a> {
    fn new(group: &'a dyn RankGroup, local: Receiver<Msg>) -> Incoming<'a> {
        Incoming {
            group,
            local: Some(local),
            open: group.size().saturating_sub(1),
            failed: None,
        }
    }

    /// A message from another rank, if one is waiting; their last messages are
    /// counted here.
    fn next_from_peer(&mut self) -> Option<Msg> {
        while self.open > 0 {
            let (rank, bytes) = self.group.try_receive()?;
            let text = match decode(bytes) {
                Some(Received::Chunks(msg)) if self.failed.is_none() => return Some(msg),
                // After a failure the file is discarded: what still comes is dropped.
                Some(Received::Chunks(_)) => continue,
                Some(Received::Done) => None,
                Some(Received::Failed(text)) => Some(text),
                None => Some("sent a malformed message".to_string()),
            };
            self.open -= 1;
            if let Some(text) = text {
                if self.failed.as_ref().map_or(true, |(r, _)| rank < *r) {
                    self.failed = Some((rank, text));
                }
            }
        }
        None
    }

    /// Ends the exchange (after the writer stopped, perhaps early): stops taking this
    /// rank's units, drains the other ranks' messages until each sent its last, and
    /// returns `Err` with the lowest failing rank's message if one failed.
    fn finish(mut self, path: &Path) -> Result<(), NcError> {
        self.local = None;
        while self.open > 0 {
            if self.next_from_peer().is_none() && self.open > 0 {
                std::thread::sleep(POLL);
            }
        }
        match self.failed {
            None => Ok(()),
            Some(failed) => Err(NcError::Peer {
                path: path.to_path_buf(),
                stage: "producing its share of the chunks".to_string(),
                failed: Some(failed),
            }),
        }
    }
}

impl Iterator for Incoming<'_> {
    type Item = Msg;

    fn next(&mut self) -> Option<Msg> {
        loop {
            if let Some(m) = self.next_from_peer() {
                return Some(m);
            }
            if self.failed.is_some() {
                // Nothing more is written; `finish` drains the rest.
                return None;
            }
            match &self.local {
                // No other rank left to hear from: wait for this rank's own units only.
                Some(rx) if self.open == 0 => return rx.recv().ok(),
                Some(rx) => match rx.recv_timeout(POLL) {
                    Ok(m) => return Some(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.local = None,
                },
                None if self.open == 0 => return None,
                None => std::thread::sleep(POLL),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn messages_read_back_as_sent() {
        let msg = Msg {
            target: 7,
            chunks: Arc::new(vec![(vec![0, 3, 0], vec![1, 2, 3]), (vec![9], Vec::new())]),
            range: Some((-1.5, 2.25)),
        };
        let pieces = encode(&msg);
        assert_eq!(pieces.len(), 1);
        let Some(Received::Chunks(back)) = decode(pieces[0].clone()) else {
            panic!("not chunks");
        };
        assert_eq!(back.target, 7);
        assert_eq!(back.range, Some((-1.5, 2.25)));
        assert_eq!(*back.chunks, *msg.chunks);
        // A cut message is refused, not misread.
        assert!(decode(pieces[0][..pieces[0].len() - 1].to_vec()).is_none());
        assert!(matches!(decode(vec![DONE]), Some(Received::Done)));
        assert!(matches!(
            decode(b"\x02boom".to_vec()),
            Some(Received::Failed(t)) if t == "boom"
        ));
    }
}
