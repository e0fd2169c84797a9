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
//! It is not a `ChunkSink` like the direct and gather writers: parallel HDF5 compresses
//! the chunks itself, inside the collective `H5Dwrite` that every rank must enter with
//! its values, so there are no finished chunks to hand over. It reads the same
//! `Layout` (shapes, streams, each rank's share, slab blocks, value ranges) and the
//! same commit (`Staged`) as the other writers.
//!
//! Only built with the `parallel-hdf5` feature: netCDF-C and HDF5 must be the MPI builds.

use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::commit::Staged;
use super::ffi::{self, H5File};
use super::group::{Agreement, RankGroup};
use super::layout::{
    chunk_share, f32_fill, finish_range, merge_range, set_ranges, value_range, Layout, Stream,
};
use super::write::{define_dataset, header_digest};
use super::{
    debug_failure, injected, AttrValue, DatasetDef, NcError, Values, VarData, VarDef, WriteMethod,
    WriteReport,
};

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
    let layout = agree_on_definition(&mut def, &agree)?;
    // Rank 0's stage removes the temporary file on every failure, panics included;
    // declared before the file so that the file is closed first.
    let (temp, staged) = name_temp_file(path, group)?;
    agree.temp = Some(temp.clone());
    ffi::quiet_hdf5_errors();
    let mut file = create_and_define(&def, &temp, &agree)?;
    let ranges = write_shares(&mut file, def.vars, &layout, &agree)?;
    let bytes = close_and_commit(file, &temp, staged, &ranges, &mut agree)?;
    Ok(WriteReport {
        bytes,
        data_bytes: layout.data_bytes,
        elapsed: start.elapsed(),
    })
}

/// Step 1: One definition: rank 0's global attributes everywhere, the value ranges of
/// in-memory values combined over the group, then the whole header compared, so the
/// collective define calls are identical on every rank. Returns the definition's layout.
fn agree_on_definition(def: &mut DatasetDef, agree: &Agreement) -> Result<Layout, NcError> {
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
    // Produced shared values (grid coordinates read per tile) stream by tiles: no
    // variable goes direct, parallel HDF5 compresses them all.
    let layout = Layout::new(def, WriteMethod::NetCdf, path);
    let layout = agree.on(layout, "laying out the variables")?;
    // valid_min/valid_max of in-memory values are known now; those of streamed values
    // are folded as each rank writes its slabs (read once), combined over the group and
    // set by rank 0 after the collective close.
    let found = layout.known_ranges(&def.vars, false, path);
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
    Ok(layout)
}

/// Step 2: Rank 0 names the temporary file (and creates its directory), and alone holds
/// the stage that removes it on failure.
fn name_temp_file(
    path: &Path,
    group: &dyn RankGroup,
) -> Result<(PathBuf, Option<Staged>), NcError> {
    let root = group.rank() == 0;
    let peer = |stage: &str| NcError::Peer {
        path: path.to_path_buf(),
        stage: stage.to_string(),
        failed: None,
    };
    let prepared = if root {
        Staged::prepare(path).map(Some)
    } else {
        Ok(None)
    };
    let name = group.broadcast_bytes(match &prepared {
        Ok(Some(t)) => t.temp().as_os_str().as_bytes().to_vec(),
        _ => Vec::new(),
    });
    if name.is_empty() {
        return Err(prepared
            .err()
            .unwrap_or_else(|| peer("preparing the temporary file")));
    }
    let temp = PathBuf::from(OsString::from_vec(name));
    Ok((temp, prepared.ok().flatten()))
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

/// Step 4: Each rank writes its share of every variable, in the order the netCDF-only
/// writer puts them (a slab group's once all its members are met); returns this
/// rank's (variable, value range) of the streamed variables that want one.
fn write_shares(
    file: &mut netcdf::FileMut,
    vars: Vec<VarDef>,
    layout: &Layout,
    agree: &Agreement,
) -> Result<Ranges, NcError> {
    let (group, path) = (agree.group, agree.path);
    let mut fail_first = debug_failure(path, group.rank());
    let mut ranges: Ranges = Vec::new();
    let mut put_stream = |file: &mut netcdf::FileMut, s: &Stream| -> Result<(), NcError> {
        let r = put_stream_share(file, &vars, s, agree, &mut fail_first)?;
        for (&m, r) in s.members.iter().zip(r) {
            if vars[m].valid_range {
                ranges.push((vars[m].name.clone(), r));
            }
        }
        Ok(())
    };
    for (i, (v, shape)) in vars.iter().zip(&layout.shapes).enumerate() {
        let chunk0 = v
            .chunks
            .as_ref()
            .and_then(|c| c.first().copied())
            .unwrap_or(shape.first().copied().unwrap_or(1));
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
            VarData::F32(x) => put_share(&mut var, x, shape, chunk0, group).map_err(put_err),
            VarData::F64(x) => put_share(&mut var, x, shape, chunk0, group).map_err(put_err),
            VarData::I32(x) => put_share(&mut var, x, shape, chunk0, group).map_err(put_err),
            VarData::I8(x) => put_share(&mut var, x, shape, chunk0, group).map_err(put_err),
            VarData::Shared(x) => match x.values() {
                Some(Values::F32(x)) => put_share(&mut var, x, shape, chunk0, group),
                Some(Values::F64(x)) => put_share(&mut var, x, shape, chunk0, group),
                Some(Values::I32(x)) => put_share(&mut var, x, shape, chunk0, group),
                Some(Values::I8(x)) => put_share(&mut var, x, shape, chunk0, group),
                // Made a stream by the layout.
                None => Ok(()),
            }
            .map_err(put_err),
            VarData::SlabsF32 { .. } | VarData::GroupF32 { .. } => Ok(()),
        };
        agree.on(put, &format!("writing variable `{}`", v.name))?;
        if let VarData::SlabsF32 { .. } = v.data {
            if let Some(s) = layout.streams.iter().find(|s| s.members == [i]) {
                put_stream(file, s)?;
            }
        }
    }
    for s in layout.streams.iter().filter(|s| is_group(&vars, s)) {
        put_stream(file, s)?;
    }
    Ok(ranges)
}

/// Whether a stream is a slab group's (written after every variable was met).
fn is_group(vars: &[VarDef], s: &Stream) -> bool {
    matches!(vars[s.members[0]].data, VarData::GroupF32 { .. })
}

/// Step 5: Combines the value ranges, closes the file collectively, sets the ranges (rank
/// 0) and renames the file into place only once every rank closed it successfully;
/// returns its size.
fn close_and_commit(
    file: netcdf::FileMut,
    temp: &Path,
    staged: Option<Staged>,
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
    // Rank 0 commits, then tells the others the size of the file in place.
    let committed = staged.map(Staged::commit_now).transpose();
    agree.temp = None;
    let committed = agree.on(committed, "putting the file in place")?;
    let size = group.broadcast_bytes(committed.map_or(Vec::new(), |b| b.to_le_bytes().to_vec()));
    <[u8; 8]>::try_from(size.as_slice())
        .map(u64::from_le_bytes)
        .map_err(|_| peer("sizing the file"))
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

/// Produces and writes this rank's slabs of stream `s` (whole chunks along the slab
/// dimension, [`Stream::blocks`]) of its members, one block at a time. Every rank makes
/// the same number of collective writes, and the group agrees after producing each
/// block and after writing each variable. Returns this rank's value range of each
/// member (see [`value_range`]). With `fail_first` (tests), the first non-empty block
/// fails instead.
fn put_stream_share(
    file: &mut netcdf::FileMut,
    vars: &[VarDef],
    s: &Stream,
    agree: &Agreement<'_>,
    fail_first: &mut bool,
) -> Result<Vec<(f32, f32)>, NcError> {
    let (group, path) = (agree.group, agree.path);
    let names: Vec<&str> = s.members.iter().map(|&m| vars[m].name.as_str()).collect();
    let fills: Vec<Option<f32>> = s.members.iter().map(|&m| f32_fill(&vars[m])).collect();
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); names.len()];
    let chunk_along = s.chunks.as_ref().map_or(1, |c| c[s.slab_dim]);
    let blocks = s.blocks(chunk_along, group.rank(), group.size());
    let slab_len = s.slab_len();
    let most = blocks.iter().map(|b| b.len).max().unwrap_or(0);
    let mut bufs: Vec<Vec<f32>> = names.iter().map(|_| vec![0f32; most * slab_len]).collect();
    let name = names[0];
    for block in &blocks {
        let produced = if block.len > 0 && std::mem::take(fail_first) {
            Err(injected(path, name, block.first))
        } else {
            s.produce_block(block, &mut bufs, path, name)
        };
        agree.on(produced, &format!("producing variable `{name}`"))?;
        let kn = block.len * slab_len;
        for ((r, buf), fill) in ranges.iter_mut().zip(&bufs).zip(&fills) {
            *r = merge_range(*r, value_range(&buf[..kn], *fill));
        }
        for (vname, buf) in names.iter().zip(&bufs) {
            let put = match file.variable_mut(vname) {
                Some(mut var) => {
                    var.put_values(&buf[..kn], block.extents.clone())
                        .map_err(|source| NcError::Put {
                            path: path.to_path_buf(),
                            var: vname.to_string(),
                            source,
                        })
                }
                None => Err(NcError::Missing {
                    path: path.to_path_buf(),
                    what: format!("variable `{vname}` just defined"),
                }),
            };
            agree.on(put, &format!("writing variable `{name}`"))?;
        }
    }
    Ok(ranges)
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
