//! One granule written by a group of MPI ranks through parallel NetCDF-4/HDF5.
//!
//! A fine-grid granule (LLC1080 3D, LLC4320) is too much work for one rank's time, so a
//! group of ranks writes it together. Every rank of the group builds the same
//! [`DatasetDef`] (the inputs are memory-mapped on each); here the ranks create one file
//! collectively, define it with identical calls (checked first), and each produces and
//! writes its own share of every variable: whole chunks along the slab dimension (depth
//! levels) or along the outermost dimension (tiles of the coordinates). HDF5 writes
//! compressed chunks in parallel only with collective access (HDF5 ≥ 1.10.2), so every
//! write is collective; ranks with nothing left to write join with an empty selection.
//!
//! The ranks agree after each step, so a failure on one rank stops all of them at the
//! same point instead of leaving the others waiting in a collective call. The group's
//! first rank names the temporary file and renames it into place only after the
//! collective close succeeded on every rank; on any failure it removes the file, and
//! every rank returns an error (its own, or [`NcError::Peer`], which on the first rank
//! carries the failing rank's message).
//!
//! Only built with the `parallel-hdf5` feature: netCDF-C and HDF5 must be the MPI builds.

use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::chunked::{f32_fill, finish_range, merge_range, value_range};
use super::ffi::{self, H5File};
use super::gather::{Agreement, RankGroup};
use super::write::{
    block_extents, chunk_share, define_dataset, header_digest, local_ranges, row_major_index,
    set_ranges, var_shapes, SlabBlock, TempGuard,
};
use super::{
    debug_failure, injected, AttrValue, DatasetDef, GroupFn, NcError, SlabGroup, Values, VarData,
    WriteReport, SLAB_BUFFER_BUDGET_BYTES,
};
use crate::storage;

/// Writes `def` as one NetCDF-4 file from every rank of `group`; it appears at
/// `final_path` only once complete. Every rank of the group must call this with the same
/// definition (global attributes excepted: rank 0's creation time and UUID are used).
pub fn write_collective(
    mut def: DatasetDef,
    final_path: &Path,
    group: &dyn RankGroup,
) -> Result<WriteReport, NcError> {
    let start = Instant::now();
    let path = final_path;
    let mut agree = Agreement::validated(&def, path, group)?;
    let shapes = agree_on_definition(&mut def, &agree)?;
    // Rank 0 removes the temporary file on every failure, panics included; declared
    // before the file so that the file is closed first.
    let (temp, guard) = name_temp_file(path, group)?;
    agree.temp = Some(temp.clone());
    ffi::quiet_hdf5_errors();
    let mut file = create_and_define(&def, &temp, &agree)?;
    let (data_bytes, ranges) = write_shares(&mut file, def.vars, shapes, &agree)?;
    let bytes = close_and_commit(file, &temp, guard, &ranges, &mut agree)?;
    Ok(WriteReport {
        bytes,
        data_bytes,
        elapsed: start.elapsed(),
    })
}

/// Step 1: One definition: rank 0's global attributes everywhere, the value ranges of
/// in-memory values combined over the group, then the whole header compared, so the
/// collective define calls are identical on every rank. Returns the variables' shapes.
fn agree_on_definition(
    def: &mut DatasetDef,
    agree: &Agreement,
) -> Result<Vec<Vec<usize>>, NcError> {
    let (group, path) = (agree.group, agree.path);
    let root = group.rank() == 0;
    let globals = group.broadcast_bytes(if root {
        serde_json::to_vec(&def.global_attrs).unwrap_or_default()
    } else {
        Vec::new()
    });
    let globals: Option<Vec<(String, AttrValue)>> = serde_json::from_slice(&globals).ok();
    let decoded = globals.is_some();
    if let Some(g) = globals {
        def.global_attrs = g;
    }
    let shapes = var_shapes(def);
    // Produced shared values (grid coordinates read per tile) stream by tiles.
    for v in &mut def.vars {
        v.data = std::mem::replace(&mut v.data, VarData::I32(Vec::new())).stream_produced();
    }
    // valid_min/valid_max of in-memory values are known now; those of streamed values
    // are folded as each rank writes its slabs (read once), combined over the group and
    // set by rank 0 after the collective close.
    let streamed: Vec<bool> = def
        .vars
        .iter()
        .map(|v| matches!(v.data, VarData::SlabsF32 { .. } | VarData::GroupF32 { .. }))
        .collect();
    let found = local_ranges(
        &def.vars,
        &shapes,
        &streamed,
        Some((group.rank(), group.size())),
        path,
    );
    let mut found = agree.on(found, "finding value ranges")?;
    let mut mins: Vec<f32> = found
        .iter()
        .flatten()
        .flat_map(|&(lo, hi)| [lo, -hi])
        .collect();
    group.all_min_f32(&mut mins);
    for (r, m) in found.iter_mut().flatten().zip(mins.chunks_exact(2)) {
        *r = (m[0], -m[1]);
    }
    set_ranges(&mut def.vars, found);
    agree.same_definition(header_digest(def, true), decoded)?;
    Ok(shapes)
}

/// Step 2: Rank 0 names the temporary file (and creates its directory), and alone holds
/// the guard that removes it on failure.
fn name_temp_file(
    path: &Path,
    group: &dyn RankGroup,
) -> Result<(PathBuf, Option<TempGuard>), NcError> {
    let root = group.rank() == 0;
    let peer = |stage: &str| NcError::Peer {
        path: path.to_path_buf(),
        stage: stage.to_string(),
        failed: None,
    };
    let prepared = if root {
        storage::prepare(path).map_err(NcError::from)
    } else {
        Ok(PathBuf::new())
    };
    let name = group.broadcast_bytes(match &prepared {
        Ok(t) if root => t.as_os_str().as_bytes().to_vec(),
        _ => Vec::new(),
    });
    if name.is_empty() {
        return Err(prepared
            .err()
            .unwrap_or_else(|| peer("preparing the temporary file")));
    }
    let temp = PathBuf::from(OsString::from_vec(name));
    let guard = root.then(|| TempGuard(Some(temp.clone())));
    Ok((temp, guard))
}

/// Step 3: Creates the file at `temp` and defines `def` in it, collectively.
fn create_and_define(
    def: &DatasetDef,
    temp: &Path,
    agree: &Agreement,
) -> Result<netcdf::FileMut, NcError> {
    let (group, path) = (agree.group, agree.path);
    let peer = |stage: &str| NcError::Peer {
        path: path.to_path_buf(),
        stage: stage.to_string(),
        failed: None,
    };
    let created = ffi::create_par(temp, group.comm());
    let mut file = match (group.all_true(created.is_ok()), created) {
        (true, Ok(f)) => f,
        (false, Ok(f)) => {
            // Closing is collective and the ranks that failed would never join it: this
            // rank leaves its handle open rather than hang the group.
            std::mem::forget(f);
            return Err(peer("creating the file"));
        }
        (_, Err(source)) => {
            return Err(NcError::Create {
                path: path.to_path_buf(),
                temp: temp.to_path_buf(),
                source,
            })
        }
    };
    let defined = define_dataset(&mut file, def, path).and_then(|()| {
        // Compressed chunks can only be written collectively in parallel HDF5.
        for v in &def.vars {
            let var = file.variable(&v.name).ok_or_else(|| NcError::Missing {
                path: path.to_path_buf(),
                what: format!("variable `{}` just defined", v.name),
            })?;
            var.access_collective().map_err(|source| NcError::Define {
                path: path.to_path_buf(),
                what: format!("collective access to variable `{}`", v.name),
                source,
            })?;
        }
        Ok(())
    });
    agree.on(defined, "defining the file")?;
    Ok(file)
}

/// (variable, this rank's value range) of the streamed variables that want one.
type Ranges = Vec<(String, (f32, f32))>;

/// Step 4: Each rank writes its share of every variable; returns the data size and this
/// rank's (variable, value range) of the streamed variables that want one.
fn write_shares(
    file: &mut netcdf::FileMut,
    vars: Vec<super::VarDef>,
    shapes: Vec<Vec<usize>>,
    agree: &Agreement,
) -> Result<(u64, Ranges), NcError> {
    let (group, path) = (agree.group, agree.path);
    let fail_here = debug_failure(path, group.rank());
    let mut data_bytes = 0u64;
    let mut groups: Vec<MetGroup> = Vec::new();
    // (variable, this rank's range) of the streamed variables that want one.
    let mut ranges: Vec<(String, (f32, f32))> = Vec::new();
    for (v, shape) in vars.into_iter().zip(shapes) {
        data_bytes += (shape.iter().product::<usize>() * v.dtype.size()) as u64;
        let chunk0 = v
            .chunks
            .as_ref()
            .and_then(|c| c.first().copied())
            .unwrap_or(shape.first().copied().unwrap_or(1));
        let along = |slab_dim: usize| v.chunks.as_ref().map_or(1, |c| c[slab_dim]);
        let mut var = file.variable_mut(&v.name).ok_or_else(|| NcError::Missing {
            path: path.to_path_buf(),
            what: format!("variable `{}` just defined", v.name),
        })?;
        let put_err = |source| NcError::Put {
            path: path.to_path_buf(),
            var: v.name.clone(),
            source,
        };
        let put = match &v.data {
            VarData::F32(x) => put_share(&mut var, x, &shape, chunk0, group).map_err(put_err),
            VarData::F64(x) => put_share(&mut var, x, &shape, chunk0, group).map_err(put_err),
            VarData::I32(x) => put_share(&mut var, x, &shape, chunk0, group).map_err(put_err),
            VarData::I8(x) => put_share(&mut var, x, &shape, chunk0, group).map_err(put_err),
            VarData::Shared(x) => match x.values() {
                Some(Values::F32(x)) => put_share(&mut var, x, &shape, chunk0, group),
                Some(Values::F64(x)) => put_share(&mut var, x, &shape, chunk0, group),
                Some(Values::I32(x)) => put_share(&mut var, x, &shape, chunk0, group),
                Some(Values::I8(x)) => put_share(&mut var, x, &shape, chunk0, group),
                // Made a stream at the start.
                None => Ok(()),
            }
            .map_err(put_err),
            VarData::SlabsF32 { .. } | VarData::GroupF32 { .. } => Ok(()),
        };
        agree.on(put, &format!("writing variable `{}`", v.name))?;
        let chunk_along = match &v.data {
            VarData::SlabsF32 { slab_dim, .. } | VarData::GroupF32 { slab_dim, .. } => {
                along(*slab_dim)
            }
            _ => 1,
        };
        let (fill, wants_range) = (f32_fill(&v), v.valid_range);
        match v.data {
            VarData::SlabsF32 { slab_dim, produce } => {
                let one = |s: usize, outs: &mut [&mut [f32]]| produce(s, &mut *outs[0]);
                let slabs = SlabShare {
                    shape: &shape,
                    slab_dim,
                    chunk_along,
                    fail_first: fail_here,
                };
                let r = slabs.put(file, &[v.name.as_str()], &[fill], &one, agree)?;
                if wants_range {
                    ranges.push((v.name.clone(), r[0]));
                }
            }
            VarData::GroupF32 {
                slab_dim,
                group: g,
                member,
            } => {
                // Written once all members are met, as the serial writer does.
                let at = match groups.iter().position(|m| Arc::ptr_eq(&m.group, &g)) {
                    Some(p) => p,
                    None => {
                        groups.push(MetGroup {
                            names: vec![None; g.members],
                            fills: vec![None; g.members],
                            wants_range: vec![false; g.members],
                            group: g,
                            slab_dim,
                            shape: shape.clone(),
                            chunk_along,
                        });
                        groups.len() - 1
                    }
                };
                groups[at].names[member] = Some(v.name.clone());
                groups[at].fills[member] = fill;
                groups[at].wants_range[member] = wants_range;
            }
            _ => {}
        }
    }
    for m in groups {
        let names: Vec<&str> = m.names.iter().flatten().map(String::as_str).collect();
        if names.len() != m.group.members {
            // Every rank has the same definition, so every rank stops here.
            return Err(NcError::Invalid {
                path: path.to_path_buf(),
                reason: "a slab group has members missing from the dataset".to_string(),
            });
        }
        let slabs = SlabShare {
            shape: &m.shape,
            slab_dim: m.slab_dim,
            chunk_along: m.chunk_along,
            fail_first: fail_here,
        };
        let r = slabs.put(file, &names, &m.fills, &*m.group.produce, agree)?;
        for ((name, r), wants) in names.iter().zip(r).zip(&m.wants_range) {
            if *wants {
                ranges.push((name.to_string(), r));
            }
        }
    }
    Ok((data_bytes, ranges))
}

/// Step 5: Combines the value ranges, closes the file collectively, sets the ranges (rank
/// 0) and renames the file into place only once every rank closed it successfully;
/// returns its size.
fn close_and_commit(
    file: netcdf::FileMut,
    temp: &Path,
    guard: Option<TempGuard>,
    ranges: &[(String, (f32, f32))],
    agree: &mut Agreement,
) -> Result<u64, NcError> {
    let (group, path) = (agree.group, agree.path);
    let root = group.rank() == 0;
    let peer = |stage: &str| NcError::Peer {
        path: path.to_path_buf(),
        stage: stage.to_string(),
        failed: None,
    };
    let mut mins: Vec<f32> = ranges
        .iter()
        .flat_map(|(_, (lo, hi))| [*lo, -*hi])
        .collect();
    group.all_min_f32(&mut mins);

    let closed = file.close().map_err(|source| NcError::Close {
        path: path.to_path_buf(),
        source,
    });
    agree.on(closed, "closing the file")?;
    // The streamed variables' ranges, set in place (the attributes keep their order).
    let ranged = if root && !ranges.is_empty() {
        set_streamed_ranges(temp, path, ranges, &mins)
    } else {
        Ok(())
    };
    agree.on(ranged, "setting the value ranges")?;
    let committed = match guard {
        Some(g) => storage::commit(temp, path)
            .map(|()| g.disarm())
            .map_err(NcError::from),
        None => Ok(()),
    };
    agree.temp = None;
    agree.on(committed, "putting the file in place")?;
    let sized = if root {
        storage::file_size(path).map(|b| b.to_le_bytes().to_vec())
    } else {
        Ok(Vec::new())
    };
    let size = group.broadcast_bytes(sized.as_ref().cloned().unwrap_or_default());
    let bytes = match <[u8; 8]>::try_from(size.as_slice()) {
        Ok(b) => u64::from_le_bytes(b),
        Err(_) => {
            return Err(sized
                .err()
                .map(NcError::from)
                .unwrap_or_else(|| peer("sizing the file")))
        }
    };
    Ok(bytes)
}

/// Writes this rank's share (along dimension 0) of an in-memory variable; ranks without a
/// share join the collective write with an empty selection. Scalars are written by all.
fn put_share<T: netcdf::NcTypeDescriptor + Copy>(
    var: &mut netcdf::VariableMut<'_>,
    values: &[T],
    shape: &[usize],
    chunk0: usize,
    group: &dyn RankGroup,
) -> Result<(), netcdf::Error> {
    let Some((&len0, rest)) = shape.split_first() else {
        return var.put_values(values, ..);
    };
    let inner: usize = rest.iter().product();
    let mine = chunk_share(len0, chunk0, group.size(), group.rank());
    let extents: Vec<Range<usize>> =
        std::iter::once(if mine.is_empty() { 0..0 } else { mine.clone() })
            .chain(rest.iter().map(|&l| 0..l))
            .collect();
    var.put_values(&values[mine.start * inner..mine.end * inner], extents)
}

/// A streamed variable's layout, for splitting its slabs over the group.
struct SlabShare<'a> {
    shape: &'a [usize],
    slab_dim: usize,
    chunk_along: usize,
    fail_first: bool,
}

impl SlabShare<'_> {
    /// Produces and writes this rank's slabs (whole chunks along `slab_dim`) of the
    /// variables `names` (a slab group's members, in the producer's order), in blocks of
    /// at most one chunk row. Every rank makes the same number of collective writes, and
    /// the group agrees after producing each block and after writing each variable.
    /// Returns this rank's value range of each member (see [`value_range`]).
    fn put(
        &self,
        file: &mut netcdf::FileMut,
        names: &[&str],
        fills: &[Option<f32>],
        produce: &GroupFn<'_>,
        agree: &Agreement<'_>,
    ) -> Result<Vec<(f32, f32)>, NcError> {
        let (group, path) = (agree.group, agree.path);
        let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); names.len()];
        let shape = self.shape;
        let n = shape[self.slab_dim];
        let outer_shape = &shape[..self.slab_dim];
        let inner_shape = &shape[self.slab_dim + 1..];
        let outer: usize = outer_shape.iter().product();
        let slab_len: usize = inner_shape.iter().product();
        let budget = (SLAB_BUFFER_BUDGET_BYTES / (slab_len.max(1) * 4 * names.len())).max(1);
        let block = self.chunk_along.clamp(1, budget).min(n.max(1));
        let share = |r: usize| chunk_share(n, self.chunk_along, group.size(), r);
        let rounds = (0..group.size())
            .map(|r| share(r).len().div_ceil(block))
            .max()
            .unwrap_or(0);
        let mine = share(group.rank());
        let buf_len = if mine.is_empty() { 0 } else { block * slab_len };
        let mut bufs: Vec<Vec<f32>> = names.iter().map(|_| vec![0f32; buf_len]).collect();
        let name = names.first().copied().unwrap_or_default();
        let mut fail_first = self.fail_first;
        for o in 0..outer {
            let outer_idx = row_major_index(o, outer_shape);
            for round in 0..rounds {
                let k0 = mine.start + round * block;
                let kn = if k0 < mine.end {
                    block.min(mine.end - k0)
                } else {
                    0
                };
                let slab_block = SlabBlock {
                    first: o * n + k0,
                    len: kn,
                    slab_len,
                };
                let produced = if kn > 0 && std::mem::take(&mut fail_first) {
                    Err(injected(path, name, slab_block.first))
                } else {
                    slab_block.produce(produce, &mut bufs, path, name)
                };
                agree.on(produced, &format!("producing variable `{name}`"))?;
                for ((r, buf), fill) in ranges.iter_mut().zip(&bufs).zip(fills) {
                    *r = merge_range(*r, value_range(&buf[..kn * slab_len], *fill));
                }
                let along = if kn == 0 { 0..0 } else { k0..k0 + kn };
                let extents = block_extents(&outer_idx, along, inner_shape);
                for (vname, buf) in names.iter().zip(&bufs) {
                    let put = match file.variable_mut(vname) {
                        Some(mut var) => var
                            .put_values(&buf[..kn * slab_len], extents.clone())
                            .map_err(|source| NcError::Put {
                                path: path.to_path_buf(),
                                var: vname.to_string(),
                                source,
                            }),
                        None => Err(NcError::Missing {
                            path: path.to_path_buf(),
                            what: format!("variable `{vname}` just defined"),
                        }),
                    };
                    agree.on(put, &format!("writing variable `{name}`"))?;
                }
            }
        }
        Ok(ranges)
    }
}

/// Sets `valid_min`/`valid_max` of the streamed variables `ranges` (names; `mins` holds
/// the group's `[min, -max]` pairs in the same order) in the closed file at `temp`.
fn set_streamed_ranges(
    temp: &Path,
    path: &Path,
    ranges: &[(String, (f32, f32))],
    mins: &[f32],
) -> Result<(), NcError> {
    let file = H5File::open_rw(temp, path)?;
    for ((name, _), m) in ranges.iter().zip(mins.chunks_exact(2)) {
        let (lo, hi) = finish_range((m[0], -m[1]));
        let set = file.dataset(name)?;
        set.set_f32_attr("valid_min", lo)?;
        set.set_f32_attr("valid_max", hi)?;
    }
    file.close()
}

/// A slab group met among the variables: written once all its members are known.
struct MetGroup {
    group: Arc<SlabGroup>,
    slab_dim: usize,
    /// Member names in the producer's order, as met.
    names: Vec<Option<String>>,
    /// Member fill values and whether each wants its value range.
    fills: Vec<Option<f32>>,
    wants_range: Vec<bool>,
    shape: Vec<usize>,
    chunk_along: usize,
}

#[cfg(test)]
mod tests {
    use super::chunk_share;

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
}
