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
//! chunks for the next file. The streams and units come from the file's [`Layout`];
//! the finished chunks go to a [`ChunkSink`], which also says which units this process
//! makes (a process writing alone makes all; the gather writer's sink deals them out
//! and sends them to the group's first rank). This file knows no more of groups.
//!
//! [`SlabGroup`]: super::SlabGroup

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use rayon::prelude::*;

use super::compress::{ChunkCodec, CompressError};
use super::ffi::H5File;
use super::layout::{
    chunk_rows, f32_fill, finish_range, merge_range, slab_error, value_range, Layout, Producer,
    Stream, Unit,
};
use super::sink::{ChunkSink, Msg, Pipe};
use super::{ChunkKey, ChunkList, NcError, SharedValues, Values, VarData, VarDef};

/// Compressed chunks of one variable: (element offset, zlib bytes).
pub(super) type Chunks = Arc<ChunkList>;

/// One variable written directly.
struct Target {
    name: String,
    shape: Vec<usize>,
    chunks: Vec<usize>,
    codec: ChunkCodec,
    fill: Option<f32>,
    valid_range: bool,
}

/// A stream of the [`Layout`] with its members as targets (empty for a stream that
/// does not go direct).
struct Streamed<'l> {
    members: Vec<usize>,
    stream: &'l Stream,
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

/// Writes the data of `vars` (the [`Layout::direct`] variables, each with its index in
/// the dataset) into the netCDF-4 file at `temp`, then their `valid_range` attributes.
/// `define` makes that file (netCDF-C defines it and closes it): it runs on the chunk
/// writer's thread while the first chunks compress on rayon's.
///
/// The `sink` says which units this process makes ([`ChunkSink::makes`]) and takes
/// their chunks to the chunk writer; a process that does not write touches no file.
pub(super) fn write_direct(
    vars: Vec<(usize, VarDef)>,
    layout: &Layout,
    temp: &Path,
    path: &Path,
    define: impl FnOnce() -> Result<(), NcError> + Send,
    sink: &dyn ChunkSink,
) -> Result<(), NcError> {
    let (targets, mut memory_jobs, streams) = targets_of(vars, layout, path)?;
    let units: Vec<Unit> = layout
        .units()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| sink.makes(*i))
        .map(|(_, unit)| unit)
        .collect();
    // Whole values (coordinates: compressed once per process, then kept) are the
    // writing process's.
    if !sink.writes() {
        memory_jobs.clear();
    }
    // Tests: this process fails its first unit (EDP_DEBUG_FAIL_WRITE).
    let inject = &AtomicBool::new(sink.fails_first_unit(path));

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
    let pipe = Pipe {
        produce: Box::new(produce),
        local: rx,
        write: Box::new(write),
    };
    sink.deliver(pipe, path)
}

/// The targets of `vars` (the direct variables with their index in the dataset), the
/// jobs of the in-memory ones and the [`Layout`]'s streams with their members as
/// targets.
#[allow(clippy::type_complexity)]
fn targets_of<'l>(
    vars: Vec<(usize, VarDef)>,
    layout: &'l Layout,
    path: &Path,
) -> Result<(Vec<Target>, Vec<Job>, Vec<Streamed<'l>>), NcError> {
    let mut targets = Vec::with_capacity(vars.len());
    let mut memory_jobs = Vec::new();
    let mut target_of = vec![usize::MAX; layout.shapes.len()];
    for (i, v) in vars {
        let t = targets.len();
        target_of[i] = t;
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
            shape: layout.shapes[i].clone(),
            chunks,
        });
        match v.data.into_array() {
            Ok(values) => memory_jobs.push(Job::Array { target: t, values }),
            Err(VarData::Shared(values)) => memory_jobs.push(Job::Shared { target: t, values }),
            // Streams: the layout holds their producers.
            Err(_) => {}
        }
    }
    let streams = layout
        .streams
        .iter()
        .map(|stream| Streamed {
            members: match stream.direct {
                true => stream.members.iter().map(|&m| target_of[m]).collect(),
                false => Vec::new(),
            },
            stream,
        })
        .collect();
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

/// The failure [`super::DEBUG_FAIL_VAR`] injects at `job`.
fn injected(
    job: &Job,
    units: &[Unit],
    streams: &[Streamed<'_>],
    targets: &[Target],
    path: &Path,
) -> NcError {
    let (target, slab) = match job {
        Job::Array { target, .. } | Job::Shared { target, .. } => (*target, 0),
        Job::Unit(u) => {
            let (s, row) = &units[*u];
            let s = &streams[*s];
            let (lo, _) = s.stream.unit_extent(row);
            let shape = &s.stream.shape;
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

/// Produces one row of slabs of a stream, with the value range of each member that
/// wants one.
fn produce_unit(
    s: &Streamed<'_>,
    row: &[usize],
    targets: &[Target],
    path: &Path,
) -> Result<Slabs, NcError> {
    let first = &targets[s.members[0]];
    let (shape, d) = (&s.stream.shape, s.stream.slab_dim);
    let (lo, ext) = s.stream.unit_extent(row);
    let inner = s.stream.slab_len();
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
        s.stream
            .produce
            .call(slab, &mut outs)
            .map_err(|source| slab_error(path, &first.name, slab, source))?;
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
    s: &Streamed<'_>,
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
    s: &Streamed<'_>,
    row: &[usize],
    targets: &[Target],
    slabs: Slabs,
    path: &Path,
) -> Result<Vec<(usize, ChunkList, Option<(f32, f32)>)>, NcError> {
    let shape = &s.stream.shape;
    let d = s.stream.slab_dim;
    let (lo, ext) = s.stream.unit_extent(row);
    let buf_shape: Vec<usize> = ext.iter().chain(&shape[d + 1..]).copied().collect();
    let origin: Vec<usize> = lo
        .iter()
        .copied()
        .chain(std::iter::repeat(0).take(shape.len() - d - 1))
        .collect();
    // Members in parallel: a 2D unit is all of its granule's work (one chunk a member),
    // and compressing its members one after another left the other threads idle.
    slabs
        .into_par_iter()
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
                shape: t.shape.clone(),
                chunks: Some(t.chunks.clone()),
                direct: true,
                produce: Producer::One(Arc::clone(produce)),
            };
            let one = Streamed {
                members: vec![0],
                stream: &stream,
            };
            let rows = chunk_rows(&t.shape[..1], &t.chunks[..1]);
            let made: Vec<ChunkList> = rows
                .into_par_iter()
                .map(|row| {
                    let unit = run_unit(&one, &row, std::slice::from_ref(t), path)?;
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
}
