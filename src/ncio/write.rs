//! Writing a [`DatasetDef`] as a NetCDF-4 file that appears under its final name only
//! once complete.

use std::ffi::c_int;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use netcdf::Options;

use super::SLAB_BUFFER_BUDGET_BYTES;
use super::{raw, AttrValue, DType, DatasetDef, NcError, SlabProducer, VarData, WriteReport};
use crate::storage;

/// Writes `def` as a NetCDF-4 file that appears at `final_path` only once complete.
///
/// Parent directories are created; the file is written under a temporary name in the
/// same directory, closed, fsynced and renamed (replacing any existing file), and the
/// directory fsynced. On any error, slab producer errors included, the temporary file is
/// removed and an existing file at `final_path` is left untouched.
pub fn write_atomic(def: DatasetDef, final_path: &Path) -> Result<WriteReport, NcError> {
    let start = Instant::now();
    validate(&def).map_err(|reason| NcError::Invalid {
        path: final_path.to_path_buf(),
        reason,
    })?;
    raw::quiet_hdf5_errors();
    let temp = storage::prepare(final_path)?;
    // Removes the temporary file on every early return and on panics in producers.
    let guard = TempGuard(Some(temp.clone()));
    let data_bytes = write_file(def, &temp, final_path)?;
    storage::commit(&temp, final_path)?;
    guard.disarm();
    let bytes = storage::file_size(final_path)?;
    Ok(WriteReport {
        bytes,
        data_bytes,
        elapsed: start.elapsed(),
    })
}

/// Discards the temporary file when dropped, unless disarmed after a commit.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
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
fn validate(def: &DatasetDef) -> Result<(), String> {
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
            VarData::SlabsF32 { slab_dim, .. } => {
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
fn write_file(def: DatasetDef, temp: &Path, path: &Path) -> Result<u64, NcError> {
    let define = |what: String| {
        move |source| NcError::Define {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    // NOCLOBBER: the temporary name is fresh; an existing file there is not ours.
    let mut file =
        netcdf::create_with(temp, Options::NETCDF4 | Options::NOCLOBBER).map_err(|source| {
            NcError::Create {
                path: path.to_path_buf(),
                temp: temp.to_path_buf(),
                source,
            }
        })?;

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
    let dim_len: std::collections::HashMap<&str, usize> =
        def.dims.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    for v in &def.vars {
        let vname = &v.name;
        let dims: Vec<&str> = v.dims.iter().map(String::as_str).collect();
        let mut var = match v.dtype {
            DType::F32 => file.add_variable::<f32>(vname, &dims),
            DType::F64 => file.add_variable::<f64>(vname, &dims),
            DType::I32 => file.add_variable::<i32>(vname, &dims),
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

    let mut data_bytes = 0u64;
    for v in def.vars {
        let shape: Vec<usize> = v
            .dims
            .iter()
            .map(|d| dim_len.get(d.as_str()).copied().unwrap_or(1))
            .collect();
        data_bytes += (shape.iter().product::<usize>() * v.dtype.size()) as u64;
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
            VarData::SlabsF32 { slab_dim, produce } => {
                put_slabs(&mut var, &shape, slab_dim, produce, path, &v.name)?
            }
        }
    }

    // Closing flushes HDF5's chunk cache and metadata: errors here are real write errors.
    file.close().map_err(|source| NcError::Close {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(data_bytes)
}

/// Streams a [`VarData::SlabsF32`] variable into the file.
///
/// Slabs are gathered into blocks that span whole chunks along `slab_dim`, so HDF5
/// compresses each chunk once instead of re-reading partly written chunks.
fn put_slabs(
    var: &mut netcdf::VariableMut<'_>,
    shape: &[usize],
    slab_dim: usize,
    mut produce: SlabProducer,
    path: &Path,
    name: &str,
) -> Result<(), NcError> {
    let n = shape[slab_dim];
    let outer_shape = &shape[..slab_dim];
    let inner_shape = &shape[slab_dim + 1..];
    let outer: usize = outer_shape.iter().product();
    let slab_len: usize = inner_shape.iter().product();
    let chunk_along = var
        .chunking()
        .ok()
        .flatten()
        .and_then(|c| c.get(slab_dim).copied())
        .unwrap_or(1);
    let budget = (SLAB_BUFFER_BUDGET_BYTES / (slab_len.max(1) * 4)).max(1);
    let block = chunk_along.clamp(1, budget).min(n);
    let mut buf = vec![0f32; block * slab_len];

    for o in 0..outer {
        // Row-major multi-index of the outer (pre-slab_dim) dimensions.
        let mut outer_idx = vec![0usize; outer_shape.len()];
        let mut rem = o;
        for (d, &len) in outer_shape.iter().enumerate().rev() {
            outer_idx[d] = rem % len;
            rem /= len;
        }
        let mut k0 = 0;
        while k0 < n {
            let kn = block.min(n - k0);
            for dk in 0..kn {
                let s = o * n + k0 + dk;
                produce(s, &mut buf[dk * slab_len..(dk + 1) * slab_len]).map_err(|source| {
                    NcError::Slab {
                        path: path.to_path_buf(),
                        var: name.to_string(),
                        slab: s,
                        source,
                    }
                })?;
            }
            let extents: Vec<Range<usize>> = outer_idx
                .iter()
                .map(|&i| i..i + 1)
                .chain(std::iter::once(k0..k0 + kn))
                .chain(inner_shape.iter().map(|&l| 0..l))
                .collect();
            var.put_values(&buf[..kn * slab_len], extents)
                .map_err(|source| NcError::Put {
                    path: path.to_path_buf(),
                    var: name.to_string(),
                    source,
                })?;
            k0 += kn;
        }
    }
    Ok(())
}
