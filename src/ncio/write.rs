//! Writing a [`DatasetDef`] as a NetCDF-4 file that appears under its final name only
//! once complete: the entry point of every writer that uses netCDF-C to define the file
//! (the direct and netCDF-only writers, and the gather group's).

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::commit::{Commit, Staged};
use super::layout::{Layout, Producer, Stream};
use super::sink::{Alone, ChunkSink};
use super::{
    chunked, ffi, AttrValue, DType, DatasetDef, NcError, Values, VarData, VarDef, WriteMethod,
    WriteReport,
};
use crate::storage;

/// Writes `def` as a NetCDF-4 file that appears at `final_path` only once complete.
///
/// Parent directories are created; the file is written under a temporary name in the
/// same directory, closed, fsynced and renamed (replacing any existing file), and the
/// directory fsynced. On any error, slab producer errors included, the temporary file is
/// removed and an existing file at `final_path` is left untouched.
pub fn write_atomic(def: DatasetDef, final_path: &Path) -> Result<WriteReport, NcError> {
    write_atomic_with(def, final_path, WriteMethod::default())
}

/// [`write_atomic`] with a chosen [`WriteMethod`].
pub fn write_atomic_with(
    def: DatasetDef,
    final_path: &Path,
    method: WriteMethod,
) -> Result<WriteReport, NcError> {
    write(def, final_path, method, Commit::Now)?.wait()
}

/// A file written and closed under its temporary name, being made durable and renamed
/// into place ([`Commit`]).
pub struct PendingWrite {
    commit: storage::PendingCommit,
    final_path: PathBuf,
    data_bytes: u64,
    /// Time spent writing, before the commit was handed over.
    written: std::time::Duration,
}

impl PendingWrite {
    /// Waits until the file is durable under its final name (the report's `elapsed`
    /// counts the writing and this wait, not what ran meanwhile).
    pub fn wait(self) -> Result<WriteReport, NcError> {
        self.wait_checksummed().map(|(report, _)| report)
    }

    /// [`PendingWrite::wait`], with the sha256 of the file in place when it was taken
    /// on the committing thread ([`Commit::Background`] takes it).
    pub fn wait_checksummed(self) -> Result<(WriteReport, Option<String>), NcError> {
        let waited = Instant::now();
        let sha256 = self.commit.wait()?;
        let bytes = storage::file_size(&self.final_path)?;
        log::debug!(
            "{}: written in {:.1} ms, committed (fsync, rename{}) {:.1} ms later",
            self.final_path.display(),
            self.written.as_secs_f64() * 1e3,
            if sha256.is_some() { ", checksum" } else { "" },
            waited.elapsed().as_secs_f64() * 1e3
        );
        let report = WriteReport {
            bytes,
            data_bytes: self.data_bytes,
            elapsed: self.written + waited.elapsed(),
        };
        Ok((report, sha256))
    }
}

/// Writes `def` under a temporary name beside `final_path` with `method`, closes it and
/// commits it as `commit` says: the file is in place only once
/// [`PendingWrite::wait_checksummed`] returned `Ok`.
pub fn write(
    def: DatasetDef,
    final_path: &Path,
    method: WriteMethod,
    commit: Commit<'_>,
) -> Result<PendingWrite, NcError> {
    let start = Instant::now();
    validate(&def).map_err(|reason| NcError::Invalid {
        path: final_path.to_path_buf(),
        reason,
    })?;
    ffi::quiet_hdf5_errors();
    // Removes the temporary file on every early return and on panics in producers.
    let staged = Staged::prepare(final_path)?;
    // Measured before the stage discards the partial file and frees its blocks.
    let data_bytes = write_file(def, staged.temp(), final_path, method, &Alone)
        .map_err(|e| staged.explain(e))?;
    Ok(PendingWrite {
        commit: commit.of(staged),
        final_path: final_path.to_path_buf(),
        data_bytes,
        written: start.elapsed(),
    })
}

/// Checks everything the library would otherwise reject halfway through (or accept
/// wrongly, like a zero length meaning "unlimited"), before any file exists.
pub(super) fn validate(def: &DatasetDef) -> Result<(), String> {
    let mut dim_len = std::collections::HashMap::new();
    for (name, len) in &def.dims {
        if name.is_empty() {
            return Err("a dimension has an empty name".into());
        }
        if *len == 0 {
            // nc_def_dim treats 0 as NC_UNLIMITED.
            return Err(format!("dimension `{name}` has length 0"));
        }
        if dim_len.insert(name.as_str(), *len).is_some() {
            return Err(format!("dimension `{name}` is defined twice"));
        }
    }
    let mut var_names = std::collections::HashSet::new();
    for v in &def.vars {
        let name = &v.name;
        if name.is_empty() {
            return Err("a variable has an empty name".into());
        }
        if !var_names.insert(name.as_str()) {
            return Err(format!("variable `{name}` is defined twice"));
        }
        let mut shape = Vec::with_capacity(v.dims.len());
        for d in &v.dims {
            let len = dim_len
                .get(d.as_str())
                .ok_or_else(|| format!("variable `{name}` uses undefined dimension `{d}`"))?;
            shape.push(*len);
        }
        if v.data.dtype() != v.dtype {
            return Err(format!(
                "variable `{name}` is declared {:?} but its data is {:?}",
                v.dtype,
                v.data.dtype()
            ));
        }
        let count: usize = shape.iter().product();
        let data_len = match &v.data {
            VarData::F32(x) => Some(x.len()),
            VarData::F64(x) => Some(x.len()),
            VarData::I32(x) => Some(x.len()),
            VarData::I8(x) => Some(x.len()),
            VarData::Shared(x) => Some(x.len()),
            VarData::SlabsF32 { slab_dim, .. } | VarData::GroupF32 { slab_dim, .. } => {
                if *slab_dim >= shape.len() {
                    return Err(format!(
                        "variable `{name}` has slab_dim {slab_dim} but only {} dimensions",
                        shape.len()
                    ));
                }
                None
            }
        };
        if let Some(n) = data_len {
            if n != count {
                return Err(format!(
                    "variable `{name}` has {n} values for shape {shape:?} ({count} expected)"
                ));
            }
        }
        if v.valid_range {
            for a in ["valid_min", "valid_max"] {
                if !v
                    .attrs
                    .iter()
                    .any(|(n, x)| n == a && matches!(x, AttrValue::F32(_)))
                {
                    return Err(format!(
                        "variable `{name}` asks for its valid range but has no float32 `{a}` attribute"
                    ));
                }
            }
            if v.dtype != DType::F32 {
                return Err(format!(
                    "variable `{name}` asks for a valid range but is not F32"
                ));
            }
        }
        if let VarData::GroupF32 { group, member, .. } = &v.data {
            if *member >= group.members {
                return Err(format!(
                    "variable `{name}` is member {member} of a group of {}",
                    group.members
                ));
            }
        }
        if let Some(fill) = &v.fill {
            if fill.scalar_dtype() != Some(v.dtype) {
                return Err(format!(
                    "variable `{name}` is {:?} but its fill value is {fill:?}",
                    v.dtype
                ));
            }
        }
        for (a, _) in &v.attrs {
            if a.is_empty() {
                return Err(format!(
                    "variable `{name}` has an attribute with an empty name"
                ));
            }
            if a == "_FillValue" {
                return Err(format!(
                    "variable `{name}` lists `_FillValue` among its attributes; use `fill`"
                ));
            }
        }
        if let Some(c) = &v.compression {
            if c.deflate_level > 9 {
                return Err(format!(
                    "variable `{name}` has deflate level {} (0–9)",
                    c.deflate_level
                ));
            }
            if shape.is_empty() {
                return Err(format!("scalar variable `{name}` cannot be compressed"));
            }
        }
        if let Some(chunks) = &v.chunks {
            if chunks.len() != shape.len() {
                return Err(format!(
                    "variable `{name}` has chunks {chunks:?} for {} dimensions",
                    shape.len()
                ));
            }
            if chunks.iter().zip(&shape).any(|(&c, &l)| c == 0 || c > l) {
                return Err(format!(
                    "variable `{name}` has chunks {chunks:?} outside shape {shape:?}"
                ));
            }
        }
    }
    for (a, _) in &def.global_attrs {
        if a.is_empty() {
            return Err("a global attribute has an empty name".into());
        }
    }
    Ok(())
}

/// Creates, defines, fills and closes the netCDF file at `temp`; returns the
/// uncompressed data size. `path` (the final name) is what errors report.
///
/// The `sink` takes the direct variables' chunks; a group's sink shares the units out
/// among the processes writing the file: the one that writes it writes the file, the
/// others only make and send their share (`temp` is not touched there).
pub(super) fn write_file(
    mut def: DatasetDef,
    temp: &Path,
    path: &Path,
    method: WriteMethod,
    sink: &dyn ChunkSink,
) -> Result<u64, NcError> {
    let sends_only = !sink.writes();
    let layout = Layout::new(&mut def, method, path).map_err(|e| sink.abandon(e))?;
    if !sends_only {
        let found = layout
            .known_ranges(&def.vars, true, path)
            .map_err(|e| sink.abandon(e))?;
        super::layout::set_ranges(&mut def.vars, found);
    }
    // The direct variables' values go to the chunk path; their definitions stay.
    let deferred = take_direct(&mut def.vars, &layout.direct);
    if sends_only {
        chunked::write_direct(deferred, &layout, temp, path, || Ok(()), sink)?;
        return Ok(layout.data_bytes);
    }
    if deferred.is_empty() && !sink.shared() {
        return define_and_put(def, &layout, temp, path).map(|()| layout.data_bytes);
    }
    // netCDF-C defines the file on the chunk writer's thread while the first chunks
    // compress, unless defining it produces streamed values (a producer may use
    // rayon, whose threads could be waiting for that writer).
    let streamed_put = layout.streams.iter().any(|s| !s.direct);
    let started = std::time::Instant::now();
    if streamed_put {
        define_and_put(def, &layout, temp, path).map_err(|e| sink.abandon(e))?;
        chunked::write_direct(deferred, &layout, temp, path, || Ok(()), sink)?;
    } else {
        // One writer: the header may come from the definition's template.
        let alone = !sink.shared();
        let define = || {
            if alone {
                super::template::define_and_put(def, &layout, temp, path)
            } else {
                define_and_put(def, &layout, temp, path)
            }
        };
        chunked::write_direct(deferred, &layout, temp, path, define, sink)?;
    }
    log::debug!(
        "{}: defined and chunks written in {:.1} ms",
        path.display(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(layout.data_bytes)
}

/// The direct variables of `vars` (with their index), their values taken; their
/// definitions (without attributes) stay in `vars`.
fn take_direct(vars: &mut [VarDef], direct: &[bool]) -> Vec<(usize, VarDef)> {
    let mut deferred = Vec::new();
    for (i, (v, _)) in vars
        .iter_mut()
        .zip(direct)
        .enumerate()
        .filter(|(_, (_, d))| **d)
    {
        let data = std::mem::replace(&mut v.data, VarData::I32(Vec::new()));
        deferred.push((
            i,
            VarDef {
                name: v.name.clone(),
                dtype: v.dtype,
                dims: v.dims.clone(),
                attrs: Vec::new(),
                fill: v.fill.clone(),
                compression: v.compression,
                chunks: v.chunks.clone(),
                valid_range: v.valid_range,
                data,
            },
        ));
    }
    deferred
}

/// Creates the netCDF file at `temp`, defines `def` in it, puts the values of the
/// variables that are not [`Layout::direct`] and closes it.
pub(super) fn define_and_put(
    def: DatasetDef,
    layout: &Layout,
    temp: &Path,
    path: &Path,
) -> Result<(), NcError> {
    // NOCLOBBER: the temporary name is fresh; an existing file there is not ours.
    let mut file = ffi::create(temp).map_err(|source| NcError::Create {
        path: path.to_path_buf(),
        temp: temp.to_path_buf(),
        source,
    })?;

    define_dataset(&mut file, &def, path)?;

    let names: Vec<&str> = def.vars.iter().map(|v| v.name.as_str()).collect();
    // Each variable's values in order; a slab group's once all its members are defined.
    for (i, v) in def.vars.iter().enumerate() {
        if layout.direct[i] {
            continue;
        }
        let put_err = |source| NcError::Put {
            path: path.to_path_buf(),
            var: v.name.clone(),
            source,
        };
        let mut var = file.variable_mut(&v.name).ok_or_else(|| NcError::Missing {
            path: path.to_path_buf(),
            what: format!("variable `{}` just defined", v.name),
        })?;
        match &v.data {
            VarData::F32(x) => var.put_values(x, ..).map_err(put_err)?,
            VarData::F64(x) => var.put_values(x, ..).map_err(put_err)?,
            VarData::I32(x) => var.put_values(x, ..).map_err(put_err)?,
            VarData::I8(x) => var.put_values(x, ..).map_err(put_err)?,
            VarData::Shared(x) => match x.values() {
                Some(Values::F32(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::F64(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::I32(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::I8(x)) => var.put_values(x, ..).map_err(put_err)?,
                // Made a stream by the layout.
                None => {
                    return Err(NcError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("shared values of `{}` are not in memory", v.name),
                    })
                }
            },
            VarData::SlabsF32 { .. } => {
                drop(var);
                let stream = layout.streams.iter().find(|s| s.members == [i]);
                if let Some(s) = stream {
                    put_stream(&mut file, &names, s, path)?;
                }
            }
            VarData::GroupF32 { .. } => {}
        }
    }
    for s in layout.streams.iter().filter(|s| !s.direct) {
        if matches!(s.produce, Producer::Group(_)) {
            put_stream(&mut file, &names, s, path)?;
        }
    }

    // Closing flushes HDF5's chunk cache and metadata: errors here are real write errors.
    file.close().map_err(|source| NcError::Close {
        path: path.to_path_buf(),
        source,
    })
}

/// Streams the slabs of a stream's members (`names`: every variable's name) into the
/// file through netCDF-C, in the [`Stream::blocks`] that span whole chunks along the
/// slab dimension, so HDF5 compresses each chunk once instead of re-reading partly
/// written chunks.
fn put_stream(
    file: &mut netcdf::FileMut,
    names: &[&str],
    stream: &Stream,
    path: &Path,
) -> Result<(), NcError> {
    let members: Vec<&str> = stream.members.iter().map(|&m| names[m]).collect();
    let chunk_along = file
        .variable(members[0])
        .and_then(|v| v.chunking().ok().flatten())
        .and_then(|c| c.get(stream.slab_dim).copied())
        .unwrap_or(1);
    let blocks = stream.blocks(chunk_along, 0, 1);
    let slab_len = stream.slab_len();
    let most = blocks.iter().map(|b| b.len).max().unwrap_or(0);
    let mut bufs: Vec<Vec<f32>> = members
        .iter()
        .map(|_| vec![0f32; most * slab_len])
        .collect();
    for block in &blocks {
        stream.produce_block(block, &mut bufs, path, members[0])?;
        for (name, buf) in members.iter().zip(&bufs) {
            let mut var = file.variable_mut(name).ok_or_else(|| NcError::Missing {
                path: path.to_path_buf(),
                what: format!("variable `{name}` just defined"),
            })?;
            var.put_values(&buf[..block.len * slab_len], block.extents.clone())
                .map_err(|source| NcError::Put {
                    path: path.to_path_buf(),
                    var: name.to_string(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Defines `def`'s dimensions, global attributes and variables (type, fill, chunking,
/// compression, attributes) in a freshly created file, without writing values. The
/// serial and the collective writer share it, so both produce the same header.
pub(super) fn define_dataset(
    file: &mut netcdf::FileMut,
    def: &DatasetDef,
    path: &Path,
) -> Result<(), NcError> {
    let define = |what: String| {
        move |source| NcError::Define {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    for (name, len) in &def.dims {
        file.add_dimension(name, *len)
            .map_err(define(format!("dimension `{name}`")))?;
    }
    for (name, value) in &def.global_attrs {
        file.add_attribute(name, value.to_nc())
            .map_err(define(format!("global attribute `{name}`")))?;
    }

    // Define every variable before writing any values, so the file leaves define mode
    // once.
    for v in &def.vars {
        let vname = &v.name;
        let dims: Vec<&str> = v.dims.iter().map(String::as_str).collect();
        let mut var = match v.dtype {
            DType::F32 => file.add_variable::<f32>(vname, &dims),
            DType::F64 => file.add_variable::<f64>(vname, &dims),
            DType::I32 => file.add_variable::<i32>(vname, &dims),
            DType::I8 => file.add_variable::<i8>(vname, &dims),
        }
        .map_err(define(format!("variable `{vname}`")))?;
        // First, so that `_FillValue` is the first attribute in creation order.
        if let Some(fill) = &v.fill {
            match fill {
                AttrValue::F32(x) => var.set_fill_value(*x),
                AttrValue::F64(x) => var.set_fill_value(*x),
                AttrValue::I32(x) => var.set_fill_value(*x),
                // validate() only lets scalars of the variable's type through.
                other => Err(netcdf::Error::Str(format!(
                    "unsupported fill value {other:?}"
                ))),
            }
            .map_err(define(format!("_FillValue of variable `{vname}`")))?;
        }
        if let Some(chunks) = &v.chunks {
            var.set_chunking(chunks)
                .map_err(define(format!("chunking of variable `{vname}`")))?;
        }
        if let Some(c) = &v.compression {
            var.set_compression(c_int::from(c.deflate_level), c.shuffle)
                .map_err(define(format!("compression of variable `{vname}`")))?;
        }
        for (aname, value) in &v.attrs {
            var.put_attribute(aname, value.to_nc())
                .map_err(define(format!("attribute `{aname}` of variable `{vname}`")))?;
        }
    }
    Ok(())
}

/// sha256 of everything that shapes the define calls and the chunks of `def` (not the
/// values), with or without the global attributes: ranks that write one file together
/// compare it first.
pub(super) fn header_digest(def: &DatasetDef, globals: bool) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{:?}", def.dims));
    if globals {
        h.update(format!("|{:?}", def.global_attrs));
    }
    for v in &def.vars {
        h.update(format!(
            "|{}:{:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{}",
            v.name,
            v.dtype,
            v.dims,
            v.attrs,
            v.fill,
            v.compression,
            v.chunks,
            matches!(v.data, VarData::SlabsF32 { .. })
        ));
    }
    h.finalize().to_vec()
}
