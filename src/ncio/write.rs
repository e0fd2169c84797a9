//! Writing a [`DatasetDef`] as a NetCDF-4 file that appears under its final name only
//! once complete.

use std::ffi::c_int;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::chunked::UnitShare;
use super::SLAB_BUFFER_BUDGET_BYTES;
use super::{
    chunked, ffi, AttrValue, DType, DatasetDef, GroupFn, NcError, NcGroup, SlabGroup, Values,
    VarData, VarDef, WriteMethod, WriteReport,
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
    write_closed(def, final_path, method, storage::commit_now)?.wait()
}

/// A file written and closed under its temporary name, being made durable and renamed
/// into place on the committing thread ([`storage::Committer`]).
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
    /// on the committing thread ([`write_pending`] takes it).
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

/// [`write_atomic_with`] up to the closed temporary file; its commit (fsync, rename,
/// directory fsync) and then its checksum (the file read back, for the manifest) run on
/// `committer`'s thread while the caller goes on. The file is in place only once
/// [`PendingWrite::wait_checksummed`] returned `Ok`, with its sha256.
pub fn write_pending(
    def: DatasetDef,
    final_path: &Path,
    method: WriteMethod,
    committer: &storage::Committer,
) -> Result<PendingWrite, NcError> {
    write_closed(def, final_path, method, |temp, fin| {
        committer.commit_in_background(temp, fin, true)
    })
}

/// Writes `def` under a temporary name beside `final_path`, closes it and hands it to
/// `commit`.
fn write_closed(
    def: DatasetDef,
    final_path: &Path,
    method: WriteMethod,
    commit: impl FnOnce(&Path, &Path) -> storage::PendingCommit,
) -> Result<PendingWrite, NcError> {
    let start = Instant::now();
    validate(&def).map_err(|reason| NcError::Invalid {
        path: final_path.to_path_buf(),
        reason,
    })?;
    ffi::quiet_hdf5_errors();
    let temp = storage::prepare(final_path)?;
    // Removes the temporary file on every early return and on panics in producers.
    let guard = TempGuard(Some(temp.clone()));
    // Measured before the guard discards the partial file and frees its blocks.
    let data_bytes = write_file(def, &temp, final_path, method, None)
        .map_err(|e| told_as_full_disk(e, &temp))?;
    // The commit removes the temporary file itself if it fails.
    guard.disarm();
    Ok(PendingWrite {
        commit: commit(&temp, final_path),
        final_path: final_path.to_path_buf(),
        data_bytes,
        written: start.elapsed(),
    })
}

/// The multi-index of the `flat`-th element of `shape` in row-major order (the outer,
/// pre-slab dimensions of a variable).
pub(super) fn row_major_index(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0usize; shape.len()];
    let mut rem = flat;
    for (d, &len) in shape.iter().enumerate().rev() {
        idx[d] = rem % len;
        rem /= len;
    }
    idx
}

/// `e`, told as a full disk when the file system of `temp` (the partial file, not yet
/// discarded) is (nearly) full.
pub(super) fn told_as_full_disk(e: NcError, temp: &Path) -> NcError {
    match storage::full_disk::measure(temp) {
        Some(full) => NcError::DiskFull {
            dir: full.dir,
            available: full.available,
            source: Box::new(e),
        },
        None => e,
    }
}

/// Discards the temporary file when dropped, unless disarmed after a commit.
pub(super) struct TempGuard(pub(super) Option<PathBuf>);

impl TempGuard {
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            storage::discard(&p);
        }
    }
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
/// With a `share`, the chunked variables' data are shared out among the processes
/// writing the file: the one that writes it writes the file, the others only make and
/// send their share (`temp` is not touched there).
pub(super) fn write_file(
    mut def: DatasetDef,
    temp: &Path,
    path: &Path,
    method: WriteMethod,
    share: Option<&dyn UnitShare>,
) -> Result<u64, NcError> {
    let sends_only = share.is_some_and(|sh| !sh.writes());
    let abandon = |e| match share {
        Some(sh) => sh.abandon(e),
        None => e,
    };
    let shapes = var_shapes(&def);
    let direct = direct_vars(&def.vars, method);
    // Only the direct writer keeps compressed chunks of produced shared values.
    for (v, _) in def.vars.iter_mut().zip(&direct).filter(|(_, d)| !**d) {
        v.data = std::mem::replace(&mut v.data, VarData::I32(Vec::new())).stream_produced();
    }
    if !sends_only {
        known_ranges(&mut def.vars, &shapes, &direct, path).map_err(abandon)?;
    }
    let data_bytes = def
        .vars
        .iter()
        .zip(&shapes)
        .map(|(v, shape)| (shape.iter().product::<usize>() * v.dtype.size()) as u64)
        .sum();

    // The direct variables' values go to the chunk path; their definitions stay.
    let mut deferred = Vec::new();
    for ((v, shape), &is_direct) in def.vars.iter_mut().zip(&shapes).zip(&direct) {
        if is_direct {
            let data = std::mem::replace(&mut v.data, VarData::I32(Vec::new()));
            deferred.push((
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
                shape.clone(),
            ));
        }
    }
    if sends_only {
        chunked::write_direct(deferred, temp, path, || Ok(()), share)?;
        return Ok(data_bytes);
    }
    if deferred.is_empty() && share.is_none() {
        return define_and_put(def, &direct, &shapes, temp, path).map(|()| data_bytes);
    }
    // netCDF-C defines the file on the chunk writer's thread while the first chunks
    // compress, unless defining it produces streamed values (a producer may use
    // rayon, whose threads could be waiting for that writer).
    let streamed_put =
        def.vars.iter().zip(&direct).any(|(v, &d)| {
            !d && matches!(v.data, VarData::SlabsF32 { .. } | VarData::GroupF32 { .. })
        });
    let started = std::time::Instant::now();
    if streamed_put {
        define_and_put(def, &direct, &shapes, temp, path).map_err(abandon)?;
        chunked::write_direct(deferred, temp, path, || Ok(()), share)?;
    } else {
        // One writer: the header may come from the definition's template.
        let alone = share.is_none();
        let define = move || {
            if alone {
                super::template::define_and_put(def, &direct, &shapes, temp, path)
            } else {
                define_and_put(def, &direct, &shapes, temp, path)
            }
        };
        chunked::write_direct(deferred, temp, path, define, share)?;
    }
    log::debug!(
        "{}: defined and chunks written in {:.1} ms",
        path.display(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(data_bytes)
}

/// Creates the netCDF file at `temp`, defines `def` in it, puts the values of the
/// variables that are not `direct` and closes it.
pub(super) fn define_and_put(
    def: DatasetDef,
    direct: &[bool],
    shapes: &[Vec<usize>],
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

    let mut groups: Vec<NcGroup> = Vec::new();
    for ((v, shape), &is_direct) in def.vars.into_iter().zip(shapes).zip(direct) {
        if is_direct {
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
        match v.data {
            VarData::F32(x) => var.put_values(&x, ..).map_err(put_err)?,
            VarData::F64(x) => var.put_values(&x, ..).map_err(put_err)?,
            VarData::I32(x) => var.put_values(&x, ..).map_err(put_err)?,
            VarData::I8(x) => var.put_values(&x, ..).map_err(put_err)?,
            VarData::Shared(x) => match x.values() {
                Some(Values::F32(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::F64(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::I32(x)) => var.put_values(x, ..).map_err(put_err)?,
                Some(Values::I8(x)) => var.put_values(x, ..).map_err(put_err)?,
                // Made a stream above.
                None => {
                    return Err(NcError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("shared values of `{}` are not in memory", v.name),
                    })
                }
            },
            VarData::SlabsF32 { slab_dim, produce } => {
                let group = |s: usize, outs: &mut [&mut [f32]]| produce(s, &mut *outs[0]);
                drop(var);
                put_slabs(&mut file, &[v.name.as_str()], shape, slab_dim, &group, path)?
            }
            VarData::GroupF32 {
                slab_dim,
                group,
                member,
            } => {
                let g = match groups.iter().position(|(g, ..)| Arc::ptr_eq(g, &group)) {
                    Some(p) => p,
                    None => {
                        let n = group.members;
                        groups.push((group, slab_dim, vec![None; n], shape.clone()));
                        groups.len() - 1
                    }
                };
                groups[g].2[member] = Some(v.name.clone());
            }
        }
    }
    for (group, slab_dim, names, shape) in groups {
        let names: Vec<&str> = names
            .iter()
            .map(|n| {
                n.as_deref().ok_or_else(|| NcError::Invalid {
                    path: path.to_path_buf(),
                    reason: "a slab group has members missing from the dataset".to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        put_slabs(&mut file, &names, &shape, slab_dim, &*group.produce, path)?;
    }

    // Closing flushes HDF5's chunk cache and metadata: errors here are real write errors.
    file.close().map_err(|source| NcError::Close {
        path: path.to_path_buf(),
        source,
    })
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

/// Which variables the direct writer hands to HDF5 as finished chunks: the chunked,
/// deflated ones (a slab group only if all its members are).
fn direct_vars(vars: &[VarDef], method: WriteMethod) -> Vec<bool> {
    let mut direct: Vec<bool> = vars
        .iter()
        .map(|v| method == WriteMethod::Direct && chunked::goes_direct(v))
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

/// Sets the `valid_min`/`valid_max` placeholders that can be known before the file is
/// defined: in-memory values, and streamed values the netCDF writer will put (one
/// extra pass over their slabs). The direct writer finds the others as it writes.
fn known_ranges(
    vars: &mut [VarDef],
    shapes: &[Vec<usize>],
    direct: &[bool],
    path: &Path,
) -> Result<(), NcError> {
    let found = local_ranges(vars, shapes, direct, None, path)?;
    set_ranges(vars, found);
    Ok(())
}

/// Folded value ranges (see [`chunked::value_range`]) of the `valid_range` variables
/// that can be known before the file is defined: in-memory values, and streamed values
/// the netCDF writer will put (not `direct`), over all slabs or, with `share =
/// Some((rank, ranks))`, over that rank's [`chunk_share`] of them (collective writing).
pub(super) fn local_ranges(
    vars: &[VarDef],
    shapes: &[Vec<usize>],
    direct: &[bool],
    share: Option<(usize, usize)>,
    path: &Path,
) -> Result<Vec<Option<(f32, f32)>>, NcError> {
    let mut found: Vec<Option<(f32, f32)>> = vec![None; vars.len()];
    let mut group_done: Vec<*const SlabGroup> = Vec::new();
    for i in 0..vars.len() {
        let v = &vars[i];
        if !v.valid_range {
            continue;
        }
        let fill = chunked::f32_fill(v);
        match &v.data {
            VarData::F32(x) => found[i] = Some(chunked::value_range(x, fill)),
            VarData::Shared(x) => {
                if let Some(Values::F32(x)) = x.values() {
                    found[i] = Some(chunked::value_range(x, fill));
                }
            }
            VarData::SlabsF32 { slab_dim, produce } if !direct[i] => {
                let group = |s: usize, outs: &mut [&mut [f32]]| produce(s, &mut *outs[0]);
                let slabs = slab_list(&shapes[i], *slab_dim, v.chunks.as_deref(), share);
                let len = shapes[i][slab_dim + 1..].iter().product();
                let r = slab_ranges(len, &slabs, 1, &[fill], &group, path, &v.name)?;
                found[i] = Some(r[0]);
            }
            VarData::GroupF32 {
                slab_dim, group, ..
            } if !direct[i] => {
                if group_done.contains(&Arc::as_ptr(group)) {
                    continue;
                }
                group_done.push(Arc::as_ptr(group));
                // Members in producer order.
                let mut members = vec![usize::MAX; group.members];
                for (j, w) in vars.iter().enumerate() {
                    if let VarData::GroupF32 {
                        group: g, member, ..
                    } = &w.data
                    {
                        if Arc::ptr_eq(g, group) {
                            members[*member] = j;
                        }
                    }
                }
                let fills: Vec<Option<f32>> = members
                    .iter()
                    .map(|&j| vars.get(j).and_then(chunked::f32_fill))
                    .collect();
                let slabs = slab_list(&shapes[i], *slab_dim, v.chunks.as_deref(), share);
                let r = slab_ranges(
                    shapes[i][slab_dim + 1..].iter().product(),
                    &slabs,
                    group.members,
                    &fills,
                    &*group.produce,
                    path,
                    &v.name,
                )?;
                for (&j, r) in members.iter().zip(r) {
                    if j < found.len() {
                        found[j] = Some(r);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Sets the `valid_min`/`valid_max` placeholders of the variables with a found range.
pub(super) fn set_ranges(vars: &mut [VarDef], found: Vec<Option<(f32, f32)>>) {
    for (v, r) in vars.iter_mut().zip(found) {
        let Some(r) = r.filter(|_| v.valid_range) else {
            continue;
        };
        let (lo, hi) = chunked::finish_range(r);
        for (name, value) in v.attrs.iter_mut() {
            match name.as_str() {
                "valid_min" => *value = AttrValue::F32(lo),
                "valid_max" => *value = AttrValue::F32(hi),
                _ => {}
            }
        }
    }
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

/// Slab indices of a stream (see [`VarData::SlabsF32`]): all, or with `share = Some((rank,
/// ranks))` those of that rank's [`chunk_share`] along `slab_dim`, for every outer index.
fn slab_list(
    shape: &[usize],
    slab_dim: usize,
    chunks: Option<&[usize]>,
    share: Option<(usize, usize)>,
) -> Vec<usize> {
    let n = shape[slab_dim];
    let outer: usize = shape[..slab_dim].iter().product();
    let along = match share {
        Some((rank, ranks)) => chunk_share(n, chunks.map_or(1, |c| c[slab_dim]), ranks, rank),
        None => 0..n,
    };
    (0..outer)
        .flat_map(|o| along.clone().map(move |k| o * n + k))
        .collect()
}

/// Folded value ranges of each member of a stream, over the given slabs (in parallel).
fn slab_ranges(
    slab_len: usize,
    slabs: &[usize],
    members: usize,
    fills: &[Option<f32>],
    produce: &GroupFn<'_>,
    path: &Path,
    name: &str,
) -> Result<Vec<(f32, f32)>, NcError> {
    use rayon::prelude::*;
    let empty = vec![(f32::INFINITY, f32::NEG_INFINITY); members];
    slabs
        .par_iter()
        .map(|&s| {
            let mut bufs: Vec<Vec<f32>> = (0..members).map(|_| vec![0f32; slab_len]).collect();
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            produce(s, &mut outs).map_err(|source| NcError::Slab {
                path: path.to_path_buf(),
                var: name.to_string(),
                slab: s,
                source,
            })?;
            Ok(bufs
                .iter()
                .zip(fills)
                .map(|(b, f)| chunked::value_range(b, *f))
                .collect::<Vec<_>>())
        })
        .try_reduce(
            || empty.clone(),
            |a, b| {
                Ok(a.into_iter()
                    .zip(b)
                    .map(|(x, y)| chunked::merge_range(x, y))
                    .collect())
            },
        )
}

/// Streams the slabs of one or more variables of one shape (a group's members, in the
/// producer's order) into the file through netCDF-C.
///
/// Slabs are gathered into blocks that span whole chunks along `slab_dim`, so HDF5
/// compresses each chunk once instead of re-reading partly written chunks.
fn put_slabs(
    file: &mut netcdf::FileMut,
    names: &[&str],
    shape: &[usize],
    slab_dim: usize,
    produce: &GroupFn<'_>,
    path: &Path,
) -> Result<(), NcError> {
    let n = shape[slab_dim];
    let outer_shape = &shape[..slab_dim];
    let inner_shape = &shape[slab_dim + 1..];
    let outer: usize = outer_shape.iter().product();
    let slab_len: usize = inner_shape.iter().product();
    let chunk_along = file
        .variable(names[0])
        .and_then(|v| v.chunking().ok().flatten())
        .and_then(|c| c.get(slab_dim).copied())
        .unwrap_or(1);
    let budget = (SLAB_BUFFER_BUDGET_BYTES / (slab_len.max(1) * 4 * names.len())).max(1);
    let block = chunk_along.clamp(1, budget).min(n);
    let mut bufs: Vec<Vec<f32>> = names.iter().map(|_| vec![0f32; block * slab_len]).collect();

    for o in 0..outer {
        let outer_idx = row_major_index(o, outer_shape);
        let mut k0 = 0;
        while k0 < n {
            let kn = block.min(n - k0);
            let slab_block = SlabBlock {
                first: o * n + k0,
                len: kn,
                slab_len,
            };
            slab_block.produce(produce, &mut bufs, path, names[0])?;
            let extents = block_extents(&outer_idx, k0..k0 + kn, inner_shape);
            for (name, buf) in names.iter().zip(&bufs) {
                let mut var = file.variable_mut(name).ok_or_else(|| NcError::Missing {
                    path: path.to_path_buf(),
                    what: format!("variable `{name}` just defined"),
                })?;
                var.put_values(&buf[..kn * slab_len], extents.clone())
                    .map_err(|source| NcError::Put {
                        path: path.to_path_buf(),
                        var: name.to_string(),
                        source,
                    })?;
            }
            k0 += kn;
        }
    }
    Ok(())
}

/// `len` consecutive slabs from slab `first` on, each `slab_len` values, made into
/// buffers of one slab group's members (the netCDF and collective slab loops).
pub(super) struct SlabBlock {
    pub(super) first: usize,
    pub(super) len: usize,
    pub(super) slab_len: usize,
}

impl SlabBlock {
    /// Fills `bufs[m][..len * slab_len]` with member `m`'s slabs; an error names `var`
    /// (the group's first member) and the slab.
    pub(super) fn produce(
        &self,
        produce: &GroupFn<'_>,
        bufs: &mut [Vec<f32>],
        path: &Path,
        var: &str,
    ) -> Result<(), NcError> {
        let len = self.slab_len;
        for dk in 0..self.len {
            let s = self.first + dk;
            let mut outs: Vec<&mut [f32]> = bufs
                .iter_mut()
                .map(|b| &mut b[dk * len..(dk + 1) * len])
                .collect();
            produce(s, &mut outs).map_err(|source| NcError::Slab {
                path: path.to_path_buf(),
                var: var.to_string(),
                slab: s,
                source,
            })?;
        }
        Ok(())
    }
}

/// The extents of a block of slabs `along` the slab dimension at the outer index
/// `outer_idx`, whole along the inner dimensions.
pub(super) fn block_extents(
    outer_idx: &[usize],
    along: Range<usize>,
    inner_shape: &[usize],
) -> Vec<Range<usize>> {
    outer_idx
        .iter()
        .map(|&i| i..i + 1)
        .chain(std::iter::once(along))
        .chain(inner_shape.iter().map(|&l| 0..l))
        .collect()
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
