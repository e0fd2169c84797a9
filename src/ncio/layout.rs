//! Where a dataset's values go, worked out once per definition for every writer.
//!
//! Each writer (netCDF-only, direct chunks, gather group, collective parallel HDF5)
//! needs the same facts about a [`DatasetDef`]: each variable's shape, which variables
//! go to HDF5 as finished chunks, which streamed variables are produced together (a
//! [`SlabGroup`]'s members form one [`Stream`]), the units of work (rows of chunks along
//! a stream's slab dimension), each rank's share of them, the blocks of slabs a slab
//! loop writes, and the value ranges known before the file is defined. A [`Layout`]
//! holds them; the writers read it instead of working them out again.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{
    AttrValue, DatasetDef, NcError, SlabError, SlabGroup, SlabProducer, Values, VarData, VarDef,
    WriteMethod, SLAB_BUFFER_BUDGET_BYTES,
};

/// The layout of one dataset definition (see the module doc).
pub(super) struct Layout {
    /// Each variable's shape (dimension lengths, outermost first).
    pub(super) shapes: Vec<Vec<usize>>,
    /// Which variables go to HDF5 as finished chunks (the direct writer's).
    pub(super) direct: Vec<bool>,
    /// The streamed variables, a slab group's members together.
    pub(super) streams: Vec<Stream>,
    /// Uncompressed size of all variable values.
    pub(super) data_bytes: u64,
}

/// Slabs of one or more variables of one shape, produced together.
pub(super) struct Stream {
    /// Variable indices of the members, in the producer's order.
    pub(super) members: Vec<usize>,
    pub(super) slab_dim: usize,
    /// The members' shape.
    pub(super) shape: Vec<usize>,
    /// The first member's chunk shape, if it has one.
    pub(super) chunks: Option<Vec<usize>>,
    /// Written as finished chunks (every member is [`Layout::direct`]).
    pub(super) direct: bool,
    pub(super) produce: Producer,
}

/// What makes a stream's slabs.
pub(super) enum Producer {
    One(SlabProducer),
    Group(Arc<SlabGroup>),
}

impl Producer {
    /// Makes slab `s` of every member into `outs` (member order).
    pub(super) fn call(&self, s: usize, outs: &mut [&mut [f32]]) -> Result<(), SlabError> {
        match self {
            Producer::One(p) => p(s, &mut *outs[0]),
            Producer::Group(g) => (g.produce)(s, outs),
        }
    }
}

/// One unit of work of the direct writer: a stream and a row of chunk indices along
/// its slab dimensions.
pub(super) type Unit = (usize, Vec<usize>);

/// A block of consecutive slabs of a stream that a slab loop makes and writes at once.
pub(super) struct Block {
    /// Index of the first slab (row-major over the dimensions up to the slab dimension).
    pub(super) first: usize,
    /// Number of slabs (0: a rank with nothing left joins a collective write).
    pub(super) len: usize,
    /// Where the block lies in the variables.
    pub(super) extents: Vec<Range<usize>>,
}

impl Layout {
    /// The layout of `def` for `method`: with [`WriteMethod::Direct`] the chunked,
    /// deflated variables go direct (a slab group only if all its members do). Shared
    /// values produced by slabs that do not go direct become streams along their first
    /// dimension (only the direct writer keeps compressed chunks of them).
    pub(super) fn new(
        def: &mut DatasetDef,
        method: WriteMethod,
        path: &Path,
    ) -> Result<Layout, NcError> {
        let shapes = var_shapes(def);
        let direct = direct_vars(&def.vars, method);
        for (v, _) in def.vars.iter_mut().zip(&direct).filter(|(_, d)| !**d) {
            v.data = std::mem::replace(&mut v.data, VarData::I32(Vec::new())).stream_produced();
        }
        let data_bytes = def
            .vars
            .iter()
            .zip(&shapes)
            .map(|(v, shape)| (shape.iter().product::<usize>() * v.dtype.size()) as u64)
            .sum();
        let streams = streams_of(&def.vars, &shapes, &direct).ok_or_else(|| NcError::Invalid {
            path: path.to_path_buf(),
            reason: "a slab group has members missing from the dataset".to_string(),
        })?;
        Ok(Layout {
            shapes,
            direct,
            streams,
            data_bytes,
        })
    }

    /// The units of the direct streams interleaved row by row: level k of every field
    /// before level k+1, so a group's members and the fields progress together.
    pub(super) fn units(&self) -> Vec<Unit> {
        let rows: Vec<Vec<Vec<usize>>> = self
            .streams
            .iter()
            .map(|s| match (&s.chunks, s.direct) {
                (Some(c), true) => chunk_rows(&s.shape[..=s.slab_dim], &c[..=s.slab_dim]),
                _ => Vec::new(),
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

    /// Folded value ranges (see [`value_range`]) of the `valid_range` variables that
    /// can be known before the file is defined: in-memory values and, with `streams`,
    /// the streams that do not go direct (one extra pass over their slabs, for the
    /// netCDF-only writer; the others fold them as they write).
    pub(super) fn known_ranges(
        &self,
        vars: &[VarDef],
        streams: bool,
        path: &Path,
    ) -> Result<Vec<Option<(f32, f32)>>, NcError> {
        let mut found: Vec<Option<(f32, f32)>> = vec![None; vars.len()];
        for (i, v) in vars.iter().enumerate().filter(|(_, v)| v.valid_range) {
            let fill = f32_fill(v);
            match &v.data {
                VarData::F32(x) => found[i] = Some(value_range(x, fill)),
                VarData::Shared(x) => {
                    if let Some(Values::F32(x)) = x.values() {
                        found[i] = Some(value_range(x, fill));
                    }
                }
                _ => {}
            }
        }
        for s in self.streams.iter().filter(|s| streams && !s.direct) {
            if !s.members.iter().any(|&m| vars[m].valid_range) {
                continue;
            }
            let fills: Vec<Option<f32>> = s.members.iter().map(|&m| f32_fill(&vars[m])).collect();
            let name = &vars[s.members[0]].name;
            let r = s.ranges(&fills, path, name)?;
            for (&m, r) in s.members.iter().zip(r) {
                found[m] = Some(r).filter(|_| vars[m].valid_range);
            }
        }
        Ok(found)
    }
}

impl Stream {
    /// Values in one slab.
    pub(super) fn slab_len(&self) -> usize {
        self.shape[self.slab_dim + 1..].iter().product()
    }

    /// Folded value ranges of each member over all slabs (in parallel).
    fn ranges(
        &self,
        fills: &[Option<f32>],
        path: &Path,
        name: &str,
    ) -> Result<Vec<(f32, f32)>, NcError> {
        use rayon::prelude::*;
        let members = self.members.len();
        let slab_len = self.slab_len();
        let empty = vec![(f32::INFINITY, f32::NEG_INFINITY); members];
        let slabs: usize = self.shape[..=self.slab_dim].iter().product();
        (0..slabs)
            .into_par_iter()
            .map(|s| {
                let mut bufs: Vec<Vec<f32>> = (0..members).map(|_| vec![0f32; slab_len]).collect();
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
                self.produce
                    .call(s, &mut outs)
                    .map_err(|source| slab_error(path, name, s, source))?;
                Ok(bufs
                    .iter()
                    .zip(fills)
                    .map(|(b, f)| value_range(b, *f))
                    .collect::<Vec<_>>())
            })
            .try_reduce(
                || empty.clone(),
                |a, b| {
                    Ok(a.into_iter()
                        .zip(b)
                        .map(|(x, y)| merge_range(x, y))
                        .collect())
                },
            )
    }

    /// The blocks a slab loop makes and writes, for rank `rank` of `ranks` (its
    /// [`chunk_share`] along the slab dimension; `0` of `1` for all): runs of at most
    /// `chunk_along` slabs (whole chunks along the slab dimension, so HDF5 compresses
    /// each chunk once), fewer if the buffers would pass their budget. Every rank gets
    /// as many blocks as the rank with the most, the extra ones empty, so that
    /// collective writes pair up.
    pub(super) fn blocks(&self, chunk_along: usize, rank: usize, ranks: usize) -> Vec<Block> {
        let d = self.slab_dim;
        let n = self.shape[d];
        let outer_shape = &self.shape[..d];
        let inner_shape = &self.shape[d + 1..];
        let outer: usize = outer_shape.iter().product();
        let budget =
            (SLAB_BUFFER_BUDGET_BYTES / (self.slab_len().max(1) * 4 * self.members.len())).max(1);
        let block = chunk_along.clamp(1, budget).min(n.max(1));
        let share = |r: usize| chunk_share(n, chunk_along, ranks, r);
        let rounds = (0..ranks)
            .map(|r| share(r).len().div_ceil(block))
            .max()
            .unwrap_or(0);
        let mine = share(rank);
        let mut blocks = Vec::with_capacity(outer * rounds);
        for o in 0..outer {
            let outer_idx = row_major_index(o, outer_shape);
            for round in 0..rounds {
                let k0 = mine.start + round * block;
                let len = if k0 < mine.end {
                    block.min(mine.end - k0)
                } else {
                    0
                };
                let along = if len == 0 { 0..0 } else { k0..k0 + len };
                let extents = outer_idx
                    .iter()
                    .map(|&i| i..i + 1)
                    .chain(std::iter::once(along))
                    .chain(inner_shape.iter().map(|&l| 0..l))
                    .collect();
                blocks.push(Block {
                    first: o * n + k0,
                    len,
                    extents,
                });
            }
        }
        blocks
    }

    /// Fills `bufs[m][..block.len * slab_len]` with member `m`'s slabs of `block`; an
    /// error names `var` (the first member) and the slab.
    pub(super) fn produce_block(
        &self,
        block: &Block,
        bufs: &mut [Vec<f32>],
        path: &Path,
        var: &str,
    ) -> Result<(), NcError> {
        let len = self.slab_len();
        for dk in 0..block.len {
            let s = block.first + dk;
            let mut outs: Vec<&mut [f32]> = bufs
                .iter_mut()
                .map(|b| &mut b[dk * len..(dk + 1) * len])
                .collect();
            self.produce
                .call(s, &mut outs)
                .map_err(|source| slab_error(path, var, s, source))?;
        }
        Ok(())
    }

    /// Where the values of unit `row` lie: first slab index and extent per dimension up
    /// to the slab dimension (direct streams, which have chunks).
    pub(super) fn unit_extent(&self, row: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let (shape, d) = (&self.shape, self.slab_dim);
        let chunks = self.chunks.as_deref().unwrap_or(&self.shape);
        let lo: Vec<usize> = (0..=d).map(|i| row[i] * chunks[i]).collect();
        let ext: Vec<usize> = (0..=d).map(|i| chunks[i].min(shape[i] - lo[i])).collect();
        (lo, ext)
    }
}

/// The error of a slab producer.
pub(super) fn slab_error(path: &Path, var: &str, slab: usize, source: SlabError) -> NcError {
    NcError::Slab {
        path: path.to_path_buf(),
        var: var.to_string(),
        slab,
        source,
    }
}

/// The streams of `vars` (a slab group's members in one, in the producer's order);
/// `None` if a group has members missing from the dataset.
fn streams_of(vars: &[VarDef], shapes: &[Vec<usize>], direct: &[bool]) -> Option<Vec<Stream>> {
    let mut streams: Vec<Stream> = Vec::new();
    let mut groups: Vec<(*const SlabGroup, usize)> = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        let (slab_dim, produce, member) = match &v.data {
            VarData::SlabsF32 { slab_dim, produce } => {
                (*slab_dim, Producer::One(Arc::clone(produce)), None)
            }
            VarData::GroupF32 {
                slab_dim,
                group,
                member,
            } => {
                if let Some(&(_, s)) = groups.iter().find(|(g, _)| *g == Arc::as_ptr(group)) {
                    streams[s].members[*member] = i;
                    continue;
                }
                groups.push((Arc::as_ptr(group), streams.len()));
                let p = Producer::Group(Arc::clone(group));
                (*slab_dim, p, Some((*member, group.members)))
            }
            _ => continue,
        };
        let members = match member {
            None => vec![i],
            Some((m, n)) => {
                let mut members = vec![usize::MAX; n];
                members[m] = i;
                members
            }
        };
        streams.push(Stream {
            members,
            slab_dim,
            shape: shapes[i].clone(),
            chunks: v.chunks.clone(),
            direct: direct[i],
            produce,
        });
    }
    streams
        .iter()
        .all(|s| !s.members.contains(&usize::MAX))
        .then_some(streams)
}

/// Each variable's shape (dimension lengths, outermost first).
pub(super) fn var_shapes(def: &DatasetDef) -> Vec<Vec<usize>> {
    let dim_len: std::collections::HashMap<&str, usize> =
        def.dims.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    def.vars
        .iter()
        .map(|v| {
            v.dims
                .iter()
                .map(|d| dim_len.get(d.as_str()).copied().unwrap_or(1))
                .collect()
        })
        .collect()
}

/// Does this variable go through direct chunk writes? Chunked, deflated ones do.
pub(super) fn goes_direct(v: &VarDef) -> bool {
    v.chunks.is_some()
        && v.compression
            .is_some_and(|c| (1..=9).contains(&c.deflate_level))
}

/// Which variables the direct writer hands to HDF5 as finished chunks: the chunked,
/// deflated ones (a slab group only if all its members are).
fn direct_vars(vars: &[VarDef], method: WriteMethod) -> Vec<bool> {
    let mut direct: Vec<bool> = vars
        .iter()
        .map(|v| method == WriteMethod::Direct && goes_direct(v))
        .collect();
    for (i, v) in vars.iter().enumerate() {
        if let VarData::GroupF32 { group, .. } = &v.data {
            let all = vars.iter().zip(&direct).all(|(w, &d)| match &w.data {
                VarData::GroupF32 { group: g, .. } if Arc::ptr_eq(g, group) => d,
                _ => true,
            });
            direct[i] = all;
        }
    }
    direct
}

/// The part of `0..len` that member `index` of `parts` writes when a group of ranks
/// writes one file: contiguous runs of whole chunks, as even as the chunks allow (so no
/// chunk is shared by two ranks).
pub(super) fn chunk_share(len: usize, chunk: usize, parts: usize, index: usize) -> Range<usize> {
    let chunk = chunk.max(1);
    let parts = parts.max(1);
    let chunks = len.div_ceil(chunk);
    let (base, extra) = (chunks / parts, chunks % parts);
    let c0 = index * base + index.min(extra);
    let c1 = c0 + base + usize::from(index < extra);
    (c0 * chunk).min(len)..(c1 * chunk).min(len)
}

/// Which rank of a group of `ranks` makes unit `index` (see [`Layout::units`]) when
/// the gather writer deals them out: round-robin, so every rank works on the same few
/// levels at a time and the writing rank takes their chunks as they come.
pub(super) fn unit_owner(index: usize, ranks: usize) -> usize {
    index % ranks.max(1)
}

/// The multi-index of the `flat`-th element of `shape` in row-major order.
pub(super) fn row_major_index(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0usize; shape.len()];
    let mut rem = flat;
    for (d, &len) in shape.iter().enumerate().rev() {
        idx[d] = rem % len;
        rem /= len;
    }
    idx
}

/// Chunk-index tuples over the given dimensions, row-major.
pub(super) fn chunk_rows(shape: &[usize], chunks: &[usize]) -> Vec<Vec<usize>> {
    let counts: Vec<usize> = shape
        .iter()
        .zip(chunks)
        .map(|(&l, &c)| l.div_ceil(c))
        .collect();
    let total: usize = counts.iter().product();
    (0..total).map(|i| row_major_index(i, &counts)).collect()
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

/// Sets the `valid_min`/`valid_max` placeholders of the variables with a found range.
pub(super) fn set_ranges(vars: &mut [VarDef], found: Vec<Option<(f32, f32)>>) {
    for (v, r) in vars.iter_mut().zip(found) {
        let Some(r) = r.filter(|_| v.valid_range) else {
            continue;
        };
        let (lo, hi) = finish_range(r);
        for (name, value) in v.attrs.iter_mut() {
            match name.as_str() {
                "valid_min" => *value = AttrValue::F32(lo),
                "valid_max" => *value = AttrValue::F32(hi),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn shares_cover_whole_chunks_once() {
        for (len, chunk, parts) in [(50, 1, 3), (13, 13, 2), (13, 1, 3), (7, 3, 2), (2, 1, 3)] {
            let mut next = 0;
            for r in 0..parts {
                let s = chunk_share(len, chunk, parts, r);
                if s.is_empty() {
                    continue;
                }
                assert_eq!(s.start, next, "{len} {chunk} {parts}");
                assert_eq!(s.start % chunk, 0);
                next = s.end;
            }
            assert_eq!(next, len);
        }
        assert_eq!(chunk_share(50, 1, 3, 0), 0..17);
        assert_eq!(chunk_share(50, 1, 3, 2), 34..50);
        assert_eq!(chunk_share(13, 13, 2, 1), 13..13);
    }

    #[test]
    fn units_go_round_robin() {
        let owners: Vec<usize> = (0..5).map(|i| unit_owner(i, 2)).collect();
        assert_eq!(owners, [0, 1, 0, 1, 0]);
        assert_eq!(unit_owner(4, 3), 1);
    }

    #[test]
    fn every_rank_has_as_many_blocks_and_together_they_cover_the_slabs_once() {
        let produce: SlabProducer = Arc::new(|_, _| Ok(()));
        // (outer 2, levels 7, 3 values a slab), chunks of 2 levels.
        let s = Stream {
            members: vec![0],
            slab_dim: 1,
            shape: vec![2, 7, 3],
            chunks: Some(vec![1, 2, 3]),
            direct: false,
            produce: Producer::One(produce),
        };
        let all = s.blocks(2, 0, 1);
        assert_eq!(all.len(), 2 * 4);
        assert_eq!(all[1].extents, vec![0..1, 2..4, 0..3]);
        assert_eq!((all[7].first, all[7].len), (13, 1));
        let shares: Vec<Vec<Block>> = (0..3).map(|r| s.blocks(2, r, 3)).collect();
        assert!(shares.iter().all(|b| b.len() == shares[0].len()));
        let mut slabs: Vec<usize> = shares
            .iter()
            .flatten()
            .flat_map(|b| b.first..b.first + b.len)
            .collect();
        slabs.sort_unstable();
        assert_eq!(slabs, (0..14).collect::<Vec<_>>());
    }
}
