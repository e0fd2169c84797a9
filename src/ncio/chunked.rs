//! The direct writer's data path: a file's compressed chunked variables, produced,
//! shuffled and deflated on every thread and handed to HDF5 chunk by chunk.
//!
//! Work is cut into units that are each one row of chunks along a streamed variable's
//! slab dimension (one depth level of a 3D field, with all its members when the slabs
//! come from a [`SlabGroup`]), or one in-memory variable. Rayon's threads take units in
//! order and each produces its unit (read, decode, check, regrid, rotate, value range)
//! and compresses it, so with two threads or more, level k+1 is read and regridded while
//! level k compresses. A writer thread hands each finished chunk to HDF5 through a
//! bounded channel. A rank uses the threads it was given and no more: a thread producing
//! ahead of one compressing thread made one-thread granules faster only by borrowing a
//! second core, and two-thread ones no faster (measured in one bench run, README).
//!
//! So only a few levels are ever in memory. [`SharedValues`] keep their compressed
//! chunks for the next file. When several processes write one file, a [`UnitShare`]
//! says which units this one makes and where they go (the gather writer deals them out
//! and sends them to the group's first rank, which writes them all); this file knows no
//! more of groups than that trait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use rayon::prelude::*;

use super::compress::{ChunkCodec, CompressError};
use super::ffi::H5File;
use super::{
    AttrValue, ChunkKey, ChunkList, NcError, SharedValues, SlabGroup, SlabProducer, Values,
    VarData, VarDef,
};
use std::path::Path;

/// Compressed chunks of one variable: (element offset, zlib bytes).
pub(super) type Chunks = Arc<ChunkList>;

/// Does this variable go through direct chunk writes? Chunked, deflated ones do.
pub(super) fn goes_direct(v: &VarDef) -> bool {
    v.chunks.is_some()
        && v.compression
            .is_some_and(|c| (1..=9).contains(&c.deflate_level))
}

/// (min, max) over values that are neither `fill` nor NaN; (+inf, -inf) when none.
///
/// Sixteen independent lanes of branch-free compares, so the compiler vectorises it
/// with four vectors per bound (with eight it was three times slower, each min and max
/// waiting for the last): it runs over every value of every streamed level.
pub(super) fn value_range(values: &[f32], fill: Option<f32>) -> (f32, f32) {
    const LANES: usize = 16;
    // NaN equals nothing: with no fill, nothing is left out for being the fill.
    let fill = fill.unwrap_or(f32::NAN);
    // `x == x` is false for NaN.
    #[allow(clippy::eq_op)]
    let keep = |x: f32| (x == x) & (x != fill);
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut blocks = values.chunks_exact(LANES);
    for block in &mut blocks {
        for lane in 0..LANES {
            let x = block[lane];
            let (a, b) = if keep(x) {
                (x, x)
            } else {
                (f32::INFINITY, f32::NEG_INFINITY)
            };
            lo[lane] = if a < lo[lane] { a } else { lo[lane] };
            hi[lane] = if b > hi[lane] { b } else { hi[lane] };
        }
    }
    let (mut l, mut h) = (f32::INFINITY, f32::NEG_INFINITY);
    for &x in blocks.remainder().iter().filter(|&&x| keep(x)) {
        l = if x < l { x } else { l };
        h = if x > h { x } else { h };
    }
    for (&a, &b) in lo.iter().zip(&hi) {
        l = if a < l { a } else { l };
        h = if b > h { b } else { h };
    }
    (l, h)
}

/// Folds two ranges of [`value_range`].
pub(super) fn merge_range(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// The attribute values of a folded range: NaN when nothing was valid.
pub(super) fn finish_range(r: (f32, f32)) -> (f32, f32) {
    if r.0 > r.1 {
        (f32::NAN, f32::NAN)
    } else {
        r
    }
}

/// The float32 fill of a variable, if it has one.
pub(super) fn f32_fill(v: &VarDef) -> Option<f32> {
    match v.fill {
        Some(AttrValue::F32(x)) => Some(x),
        _ => None,
    }
}

/// One variable written directly.
struct Target {
    name: String,
    shape: Vec<usize>,
    chunks: Vec<usize>,
    codec: ChunkCodec,
    fill: Option<f32>,
    valid_range: bool,
}

/// Slabs of one or more variables produced together.
struct Stream {
    /// Target index of each member, in the producer's order.
    members: Vec<usize>,
    slab_dim: usize,
    produce: StreamProducer,
}

enum StreamProducer {
    One(SlabProducer),
    Group(Arc<SlabGroup>),
}

enum Job {
    Array {
        target: usize,
        values: Values,
    },
    Shared {
        target: usize,
        values: Arc<SharedValues>,
    },
    /// A unit: produced and compressed by the thread that takes it.
    Unit(usize),
}

/// A file's direct variables split up: their targets, the jobs of the in-memory ones,
/// the streams of the produced ones.
type Split = (Vec<Target>, Vec<Job>, Vec<Stream>);

/// One unit: a stream and a row of chunk indices along its slab dimensions.
type Unit = (usize, Vec<usize>);

/// The values of one unit, per member: (target, values, range if wanted).
type Slabs = Vec<(usize, Vec<f32>, Option<(f32, f32)>)>;

/// The next unit nobody has taken yet, taken (units go out in order).
fn take(next: &AtomicUsize, units: usize) -> Option<usize> {
    let u = next.fetch_add(1, Ordering::Relaxed);
    (u < units).then_some(u)
}

/// What the compressing threads do next: the units in order, then the in-memory
/// variables.
struct Work<'a> {
    units: usize,
    next: &'a AtomicUsize,
    memory: std::vec::IntoIter<Job>,
}

impl Iterator for Work<'_> {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        match take(self.next, self.units) {
            Some(u) => Some(Job::Unit(u)),
            None => self.memory.next(),
        }
    }
}

/// How the units of work of one file are shared among the processes writing it (the
/// gather writer's group of ranks); a process writing a file alone has none.
pub(super) trait UnitShare {
    /// Whether this process makes unit `index` (units in their writing order).
    fn makes(&self, index: usize) -> bool;
    /// Whether this process writes the file (and so makes the in-memory variables).
    fn writes(&self) -> bool;
    /// Whether a test asks this process to fail its first unit of `path`
    /// ([`super::DEBUG_FAIL_VAR`]).
    fn fails_first_unit(&self, path: &Path) -> bool;
    /// Takes this process's messages (`local`) where they go: into `write` together
    /// with the other processes' on the process that writes, to that process on the
    /// others. `made` is the outcome of making them, known once `local` has ended.
    fn deliver(
        &self,
        local: Receiver<Msg>,
        write: Box<WriteFn<'_>>,
        made: Box<MadeFn<'_>>,
        path: &Path,
    ) -> Result<(), NcError>;
    /// `e`, a failure of the writing process before it took any unit, once what the
    /// other processes send (whatever happens) has been taken and dropped.
    fn abandon(&self, e: NcError) -> NcError;
}

/// The outcome of making this process's units, known once they are all made.
pub(super) type MadeFn<'a> = dyn FnOnce() -> Result<(), NcError> + 'a;

/// The chunk writer: takes every message and writes it into the file.
pub(super) type WriteFn<'a> = dyn FnOnce(&mut dyn Iterator<Item = Msg>) -> Result<(), NcError> + 'a;

/// One unit's compressed chunks of one variable, on their way to the chunk writer.
pub(super) struct Msg {
    pub(super) target: usize,
    pub(super) chunks: Chunks,
    pub(super) range: Option<(f32, f32)>,
}

/// Writes the data of `vars` (all [`goes_direct`], each with its shape) into the
/// netCDF-4 file at `temp`, then their `valid_range` attributes. `define` makes that
/// file (netCDF-C defines it and closes it): it runs on the chunk writer's thread while
/// the first chunks compress on rayon's.
///
/// With a `share`, this process makes only its share of the units
/// ([`UnitShare::makes`]), which the share delivers from the calling thread (the one
/// that may call MPI); a process that does not write touches no file.
pub(super) fn write_direct(
    vars: Vec<(VarDef, Vec<usize>)>,
    temp: &Path,
    path: &Path,
    define: impl FnOnce() -> Result<(), NcError> + Send,
    share: Option<&dyn UnitShare>,
) -> Result<(), NcError> {
    let (targets, mut memory_jobs, streams) = targets_of(vars, path)?;
    let mut units = interleaved_units(&streams, &targets);

    if let Some(sh) = share {
        units = units
            .into_iter()
            .enumerate()
            .filter(|(i, _)| sh.makes(*i))
            .map(|(_, unit)| unit)
            .collect();
        // Whole values (coordinates: compressed once per process, then kept) are the
        // writing process's.
        if !sh.writes() {
            memory_jobs.clear();
        }
    }
    // Tests: this process fails its first unit (EDP_DEBUG_FAIL_WRITE).
    let inject = &AtomicBool::new(share.is_some_and(|sh| sh.fails_first_unit(path)));

    let mut streamed = vec![false; targets.len()];
    for s in &streams {
        for &m in &s.members {
            streamed[m] = true;
        }
    }
    let in_flight = 2 * rayon::current_num_threads() + 2;
    let (tx, rx) = sync_channel::<Msg>(in_flight);
    let targets = &targets;
    let streams = &streams;
    let (units, next) = (&units, &AtomicUsize::new(0));
    std::thread::scope(|scope| {
        let work = Work {
            units: units.len(),
            next,
            memory: memory_jobs.into_iter(),
        };
        let write = move |msgs: &mut dyn Iterator<Item = Msg>| -> Result<(), NcError> {
            super::ffi::quiet_hdf5_errors();
            define()?;
            write_chunks(msgs, temp, path, targets, &streamed)
        };
        let produce = move || {
            work.par_bridge()
                .try_for_each_with(tx, |tx, job| -> Result<(), NcError> {
                    if inject.swap(false, Ordering::Relaxed) {
                        return Err(injected(&job, units, streams, targets, path));
                    }
                    match job {
                        Job::Array { target, values } => {
                            let t = &targets[target];
                            let chunks = compress_array(t, values.bytes(), path)?;
                            send(tx, target, Arc::new(chunks), None)
                        }
                        Job::Shared { target, values } => {
                            let t = &targets[target];
                            let chunks = shared_chunks(t, &values, path)?;
                            send(tx, target, chunks, None)
                        }
                        Job::Unit(u) => {
                            let (s, row) = &units[u];
                            run_unit(&streams[*s], row, targets, path)?
                                .into_iter()
                                .try_for_each(|(m, c, r)| send(tx, m, Arc::new(c), r))
                        }
                    }
                })
        };
        let Some(sh) = share else {
            let writer = scope.spawn(move || write(&mut rx.into_iter()));
            let work = produce();
            // The writer's own error explains a closed channel better than the send did.
            let written = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            return written.and(work);
        };
        // MPI is called from this thread only: the units are made on the others.
        let work = scope.spawn(produce);
        let joined = move || work.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        sh.deliver(rx, Box::new(write), Box::new(joined), path)
    })
}

/// The targets of `vars` (each with its shape), the jobs of the in-memory ones and the
/// streams of the produced ones (a slab group's members in one stream).
fn targets_of(vars: Vec<(VarDef, Vec<usize>)>, path: &Path) -> Result<Split, NcError> {
    let mut targets = Vec::with_capacity(vars.len());
    let mut memory_jobs = Vec::new();
    let mut streams: Vec<Stream> = Vec::new();
    let mut groups: Vec<(Arc<SlabGroup>, usize)> = Vec::new();
    for (v, shape) in vars {
        let t = targets.len();
        let (Some(chunks), Some(c)) = (v.chunks.clone(), v.compression) else {
            return Err(NcError::Invalid {
                path: path.to_path_buf(),
                reason: format!("variable `{}` is not chunked and compressed", v.name),
            });
        };
        targets.push(Target {
            name: v.name.clone(),
            codec: ChunkCodec {
                level: c.deflate_level,
                shuffle: c.shuffle,
                elem_size: v.dtype.size(),
            },
            fill: f32_fill(&v),
            valid_range: v.valid_range,
            shape,
            chunks,
        });
        let data = match v.data.into_array() {
            Ok(values) => {
                memory_jobs.push(Job::Array { target: t, values });
                continue;
            }
            Err(data) => data,
        };
        match data {
            VarData::Shared(values) => memory_jobs.push(Job::Shared { target: t, values }),
            VarData::SlabsF32 { slab_dim, produce } => streams.push(Stream {
                members: vec![t],
                slab_dim,
                produce: StreamProducer::One(produce),
            }),
            VarData::GroupF32 {
                slab_dim,
                group,
                member,
            } => {
                let s = match groups.iter().position(|(g, _)| Arc::ptr_eq(g, &group)) {
                    Some(p) => groups[p].1,
                    None => {
                        streams.push(Stream {
                            members: vec![usize::MAX; group.members],
                            slab_dim,
                            produce: StreamProducer::Group(Arc::clone(&group)),
                        });
                        groups.push((group, streams.len() - 1));
                        streams.len() - 1
                    }
                };
                streams[s].members[member] = t;
            }
            // Arrays were taken above.
            VarData::F32(_) | VarData::F64(_) | VarData::I32(_) | VarData::I8(_) => {}
        }
    }
    for s in &streams {
        if s.members.contains(&usize::MAX) {
            return Err(NcError::Invalid {
                path: path.to_path_buf(),
                reason: "a slab group has members missing from the dataset".to_string(),
            });
        }
    }

    Ok((targets, memory_jobs, streams))
}

/// The chunk writer: reopens the defined file at `temp` through HDF5, writes every
/// message's chunks into it, then the `valid_range` of the `streamed` targets (folded
/// from the messages), and closes it.
fn write_chunks(
    msgs: &mut dyn Iterator<Item = Msg>,
    temp: &Path,
    path: &Path,
    targets: &[Target],
    streamed: &[bool],
) -> Result<(), NcError> {
    let file = H5File::open_rw(temp, path)?;
    let sets = targets
        .iter()
        .map(|t| file.dataset(&t.name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); targets.len()];
    for msg in msgs {
        for (offset, bytes) in msg.chunks.iter() {
            sets[msg.target].write_chunk(offset, bytes)?;
        }
        if let Some(r) = msg.range {
            ranges[msg.target] = merge_range(ranges[msg.target], r);
        }
    }
    for (((t, set), r), &streamed) in targets.iter().zip(&sets).zip(ranges).zip(streamed) {
        // In-memory variables had theirs set before the file was defined.
        if t.valid_range && streamed {
            let (lo, hi) = finish_range(r);
            set.set_f32_attr("valid_min", lo)?;
            set.set_f32_attr("valid_max", hi)?;
        }
    }
    drop(sets);
    file.close()
}

/// Units of all streams interleaved row by row: level k of every field before level
/// k+1, so a group's members and the fields progress together. They come first, so
/// they compress while the file is being defined; in-memory and shared values (mostly
/// compressed already) after.
fn interleaved_units(streams: &[Stream], targets: &[Target]) -> Vec<Unit> {
    let rows: Vec<Vec<Vec<usize>>> = streams
        .iter()
        .map(|s| {
            let t = &targets[s.members[0]];
            chunk_rows(&t.shape[..=s.slab_dim], &t.chunks[..=s.slab_dim])
        })
        .collect();
    let mut units: Vec<Unit> = Vec::with_capacity(rows.iter().map(Vec::len).sum::<usize>());
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..longest {
        for (s, list) in rows.iter().enumerate() {
            if let Some(row) = list.get(r) {
                units.push((s, row.clone()));
            }
        }
    }

    units
}

/// The failure [`super::DEBUG_FAIL_VAR`] injects at `job`.
fn injected(
    job: &Job,
    units: &[Unit],
    streams: &[Stream],
    targets: &[Target],
    path: &Path,
) -> NcError {
    let (target, slab) = match job {
        Job::Array { target, .. } | Job::Shared { target, .. } => (*target, 0),
        Job::Unit(u) => {
            let (s, row) = &units[*u];
            let s = &streams[*s];
            let (lo, _) = unit_extent(s, row, targets);
            let shape = &targets[s.members[0]].shape;
            (
                s.members[0],
                lo.iter().zip(shape).fold(0, |acc, (l, n)| acc * n + l),
            )
        }
    };
    super::injected(path, &targets[target].name, slab)
}

fn send(
    tx: &SyncSender<Msg>,
    target: usize,
    chunks: Chunks,
    range: Option<(f32, f32)>,
) -> Result<(), NcError> {
    tx.send(Msg {
        target,
        chunks,
        range,
    })
    .map_err(|_| NcError::Hdf5 {
        path: Default::default(),
        what: "(the chunk writer stopped)".to_string(),
    })
}

/// Chunk-index tuples over the given dimensions, row-major.
fn chunk_rows(shape: &[usize], chunks: &[usize]) -> Vec<Vec<usize>> {
    let counts: Vec<usize> = shape
        .iter()
        .zip(chunks)
        .map(|(&l, &c)| l.div_ceil(c))
        .collect();
    let total: usize = counts.iter().product();
    (0..total)
        .map(|mut i| {
            let mut idx = vec![0; counts.len()];
            for d in (0..counts.len()).rev() {
                idx[d] = i % counts[d];
                i /= counts[d];
            }
            idx
        })
        .collect()
}

/// Where the values of one unit lie in its variables: first slab index and extent per
/// dimension up to the slab dimension.
fn unit_extent(s: &Stream, row: &[usize], targets: &[Target]) -> (Vec<usize>, Vec<usize>) {
    let first = &targets[s.members[0]];
    let (shape, chunks, d) = (&first.shape, &first.chunks, s.slab_dim);
    let lo: Vec<usize> = (0..=d).map(|i| row[i] * chunks[i]).collect();
    let ext: Vec<usize> = (0..=d).map(|i| chunks[i].min(shape[i] - lo[i])).collect();
    (lo, ext)
}

/// Produces one row of slabs of a stream, with the value range of each member that
/// wants one.
fn produce_unit(
    s: &Stream,
    row: &[usize],
    targets: &[Target],
    path: &Path,
) -> Result<Slabs, NcError> {
    let first = &targets[s.members[0]];
    let (shape, d) = (&first.shape, s.slab_dim);
    let (lo, ext) = unit_extent(s, row, targets);
    let inner: usize = shape[d + 1..].iter().product();
    let slabs: usize = ext.iter().product();
    let mut bufs: Vec<Vec<f32>> = s
        .members
        .iter()
        .map(|_| super::compress::take_f32(slabs * inner))
        .collect();
    for l in 0..slabs {
        // Global slab index of local slab l (row-major over dims 0..=d).
        let mut rem = l;
        let mut local = vec![0usize; d + 1];
        for i in (0..=d).rev() {
            local[i] = rem % ext[i];
            rem /= ext[i];
        }
        let slab = (0..=d).fold(0usize, |acc, i| acc * shape[i] + lo[i] + local[i]);
        let mut outs: Vec<&mut [f32]> = bufs
            .iter_mut()
            .map(|b| &mut b[l * inner..(l + 1) * inner])
            .collect();
        let produced = match &s.produce {
            StreamProducer::One(p) => p(slab, outs[0]),
            StreamProducer::Group(g) => (g.produce)(slab, &mut outs),
        };
        produced.map_err(|source| NcError::Slab {
            path: path.to_path_buf(),
            var: first.name.clone(),
            slab,
            source,
        })?;
    }
    Ok(s.members
        .iter()
        .zip(bufs)
        .map(|(&m, buf)| {
            let t = &targets[m];
            let range = t.valid_range.then(|| value_range(&buf, t.fill));
            (m, buf, range)
        })
        .collect())
}

/// Produces one row of slabs of a stream and compresses its chunks: per member
/// (target, chunks, range if wanted).
#[allow(clippy::type_complexity)]
fn run_unit(
    s: &Stream,
    row: &[usize],
    targets: &[Target],
    path: &Path,
) -> Result<Vec<(usize, ChunkList, Option<(f32, f32)>)>, NcError> {
    let slabs = produce_unit(s, row, targets, path)?;
    compress_unit(s, row, targets, slabs, path)
}

/// Compresses the chunks of one produced unit: per member (target, chunks, range).
#[allow(clippy::type_complexity)]
fn compress_unit(
    s: &Stream,
    row: &[usize],
    targets: &[Target],
    slabs: Slabs,
    path: &Path,
) -> Result<Vec<(usize, ChunkList, Option<(f32, f32)>)>, NcError> {
    let shape = &targets[s.members[0]].shape;
    let d = s.slab_dim;
    let (lo, ext) = unit_extent(s, row, targets);
    let buf_shape: Vec<usize> = ext.iter().chain(&shape[d + 1..]).copied().collect();
    let origin: Vec<usize> = lo
        .iter()
        .copied()
        .chain(std::iter::repeat(0).take(shape.len() - d - 1))
        .collect();
    slabs
        .into_iter()
        .map(|(m, buf, range)| {
            let t = &targets[m];
            let chunks = cut_and_compress(t, bytemuck::cast_slice(&buf), &buf_shape, &origin)
                .map_err(|source| compress_err(t, path, source))?;
            super::compress::give_back_f32(buf);
            Ok((m, chunks, range))
        })
        .collect()
}

fn compress_err(t: &Target, path: &Path, source: CompressError) -> NcError {
    NcError::Compress {
        path: path.to_path_buf(),
        var: t.name.clone(),
        source,
    }
}

fn compress_array(t: &Target, bytes: &[u8], path: &Path) -> Result<ChunkList, NcError> {
    let origin = vec![0; t.shape.len()];
    cut_and_compress(t, bytes, &t.shape, &origin).map_err(|e| compress_err(t, path, e))
}

/// The compressed chunks of shared values, from the cache or made now and kept.
fn shared_chunks(t: &Target, values: &SharedValues, path: &Path) -> Result<Chunks, NcError> {
    let key = ChunkKey {
        shape: t.shape.clone(),
        chunks: t.chunks.clone(),
        codec: t.codec,
    };
    let cached = |v: &SharedValues| {
        let list = v.compressed.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| Arc::clone(c))
    };
    if let Some(c) = cached(values) {
        return Ok(c);
    }
    // Not under the lock: compressing uses rayon, and a stolen job may want the lock.
    let made = Arc::new(match (values.values(), values.producer()) {
        (Some(v), _) => compress_array(t, v.bytes(), path)?,
        (None, Some(produce)) => {
            // One row of chunks along the first dimension at a time, rows in parallel.
            let stream = Stream {
                members: vec![0],
                slab_dim: 0,
                produce: StreamProducer::One(Arc::clone(produce)),
            };
            let rows = chunk_rows(&t.shape[..1], &t.chunks[..1]);
            let made: Vec<ChunkList> = rows
                .into_par_iter()
                .map(|row| {
                    let unit = run_unit(&stream, &row, std::slice::from_ref(t), path)?;
                    Ok(unit.into_iter().flat_map(|(_, chunks, _)| chunks).collect())
                })
                .collect::<Result<_, NcError>>()?;
            made.into_iter().flatten().collect()
        }
        (None, None) => Vec::new(),
    });
    let mut list = values.compressed.lock().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|(k, _)| *k == key) {
        list.push((key, Arc::clone(&made)));
    }
    Ok(made)
}

/// Cuts a block of values (`buf_shape`, first element at `origin` in the variable) into
/// the variable's chunks and compresses each; edge chunks are padded with zeros (HDF5
/// stores whole chunks; readers never see the padding).
fn cut_and_compress(
    t: &Target,
    buf: &[u8],
    buf_shape: &[usize],
    origin: &[usize],
) -> Result<ChunkList, CompressError> {
    let esize = t.codec.elem_size;
    let offset = |start: &[usize]| -> Vec<u64> {
        origin
            .iter()
            .zip(start)
            .map(|(&o, &s)| (o + s) as u64)
            .collect()
    };
    if buf_shape == t.chunks.as_slice() {
        let zero = vec![0; buf_shape.len()];
        return Ok(vec![(offset(&zero), t.codec.compress(buf)?)]);
    }
    let starts: Vec<Vec<usize>> = chunk_rows(buf_shape, &t.chunks)
        .into_iter()
        .map(|idx| idx.iter().zip(&t.chunks).map(|(i, c)| i * c).collect())
        .collect();
    let chunk_len: usize = t.chunks.iter().product::<usize>() * esize;
    starts
        .into_par_iter()
        .map(|start| {
            let count: Vec<usize> = start
                .iter()
                .zip(&t.chunks)
                .zip(buf_shape)
                .map(|((&s, &c), &l)| c.min(l - s))
                .collect();
            let mut raw = vec![0u8; chunk_len];
            copy_block(buf, buf_shape, &start, &mut raw, &t.chunks, &count, esize);
            Ok((offset(&start), t.codec.compress(&raw)?))
        })
        .collect()
}

/// Copies the box `count` at `start` of a row-major `src` (shape `src_shape`) to the
/// origin of a row-major `dst` (shape `dst_shape`); elements are `esize` bytes.
fn copy_block(
    src: &[u8],
    src_shape: &[usize],
    start: &[usize],
    dst: &mut [u8],
    dst_shape: &[usize],
    count: &[usize],
    esize: usize,
) {
    let nd = src_shape.len();
    let strides = |shape: &[usize]| {
        let mut s = vec![1usize; nd];
        for i in (0..nd.saturating_sub(1)).rev() {
            s[i] = s[i + 1] * shape[i + 1];
        }
        s
    };
    let (ss, ds) = (strides(src_shape), strides(dst_shape));
    let row = count[nd - 1] * esize;
    let rows: usize = count[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd];
    for _ in 0..rows {
        let so: usize = (0..nd).map(|i| (start[i] + idx[i]) * ss[i]).sum::<usize>() * esize;
        let dof: usize = (0..nd).map(|i| idx[i] * ds[i]).sum::<usize>() * esize;
        dst[dof..dof + row].copy_from_slice(&src[so..so + row]);
        // Next row-major index over dims 0..nd-1.
        for i in (0..nd - 1).rev() {
            idx[i] += 1;
            if idx[i] < count[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_block_takes_the_box() {
        // 3 × 4 source, box of 2 × 3 at (1, 1) into a 2 × 4 chunk (one column padding).
        let src: Vec<u8> = (0..12).collect();
        let mut dst = vec![0u8; 8];
        copy_block(&src, &[3, 4], &[1, 1], &mut dst, &[2, 4], &[2, 3], 1);
        assert_eq!(dst, [5, 6, 7, 0, 9, 10, 11, 0]);
    }

    #[test]
    fn value_ranges_leave_out_fill_and_nan() {
        let fill = 9.969_21e36_f32;
        let mut v: Vec<f32> = (0..37).map(|i| i as f32 - 10.0).collect();
        v[3] = f32::NAN;
        v[5] = fill;
        v[36] = fill;
        assert_eq!(value_range(&v, Some(fill)), (-10.0, 25.0));
        v[0] = f32::NEG_INFINITY;
        assert_eq!(value_range(&v, Some(fill)), (f32::NEG_INFINITY, 25.0));
        assert_eq!(value_range(&v, None), (f32::NEG_INFINITY, fill));
        let none = value_range(&[fill, f32::NAN], Some(fill));
        assert!(none.0 > none.1);
    }

    #[test]
    fn rows_are_row_major() {
        assert_eq!(
            chunk_rows(&[2, 5], &[1, 2]),
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
    }
}
