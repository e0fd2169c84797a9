//! Generic NetCDF-4 writing and reading: the crate's only door to netCDF-C and HDF5.
//!
//! Everything that calls the C libraries lives here, so their global lock, their error
//! codes and their file-format quirks stay in one place, and so the way a granule is put
//! on disk (today: serial `netcdf` crate calls, slab by slab) can later become chunk-level
//! or parallel writing without touching callers. This module knows nothing of ECCO: a
//! dataset is described as plain Rust values ([`DatasetDef`]) and written atomically
//! with [`write_atomic`] (temporary file + rename, see [`crate::storage`]); [`NcReader`]
//! reads such files back (grid geometry inputs, tests).
//!
//! Layout guarantees: dimensions, variables, variable attributes and global attributes
//! appear in the file in the order of their `Vec`s (NetCDF-4 keeps creation order, which
//! `ncdump -h` shows), with `_FillValue` first when a variable has one.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::{AttributeValue, Options};

use crate::storage::{self, StorageError};

/// Error a slab producer returns; its message is kept as the `source` of
/// [`NcError::Slab`].
pub type SlabError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Producer of one slab of a streamed variable (see [`VarData::SlabsF32`]).
pub type SlabProducer = Box<dyn FnMut(usize, &mut [f32]) -> Result<(), SlabError> + Send>;

/// Upper bound on the slab buffer when several slabs are gathered into one write to
/// cover a whole chunk row (see `put_slabs`).
const SLAB_BUFFER_BUDGET_BYTES: usize = 256 << 20;

/// An attribute value, with the netCDF type it is written as.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// NC_CHAR text, as xarray writes Python strings (`:x = "..."` in ncdump).
    Str(String),
    /// NC_FLOAT (`1.5f` in ncdump).
    F32(f32),
    /// NC_DOUBLE.
    F64(f64),
    /// NC_INT.
    I32(i32),
    /// NC_DOUBLE array (`-0.5, 0.5`). A one-element array reads back as [`AttrValue::F64`].
    F64s(Vec<f64>),
    /// NC_FLOAT array. A one-element array reads back as [`AttrValue::F32`].
    F32s(Vec<f32>),
    /// NC_INT array. A one-element array reads back as [`AttrValue::I32`].
    I32s(Vec<i32>),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<f32> for AttrValue {
    fn from(x: f32) -> Self {
        AttrValue::F32(x)
    }
}
impl From<f64> for AttrValue {
    fn from(x: f64) -> Self {
        AttrValue::F64(x)
    }
}
impl From<i32> for AttrValue {
    fn from(x: i32) -> Self {
        AttrValue::I32(x)
    }
}

impl AttrValue {
    fn to_nc(&self) -> AttributeValue {
        match self {
            AttrValue::Str(s) => AttributeValue::Str(s.clone()),
            AttrValue::F32(x) => AttributeValue::Float(*x),
            AttrValue::F64(x) => AttributeValue::Double(*x),
            AttrValue::I32(x) => AttributeValue::Int(*x),
            AttrValue::F64s(v) => AttributeValue::Doubles(v.clone()),
            AttrValue::F32s(v) => AttributeValue::Floats(v.clone()),
            AttrValue::I32s(v) => AttributeValue::Ints(v.clone()),
        }
    }

    /// Converts what the library read; gives back values of types this module does not
    /// write.
    fn from_nc(v: AttributeValue) -> Result<Self, AttributeValue> {
        Ok(match v {
            AttributeValue::Str(s) => AttrValue::Str(s),
            AttributeValue::Float(x) => AttrValue::F32(x),
            AttributeValue::Double(x) => AttrValue::F64(x),
            AttributeValue::Int(x) => AttrValue::I32(x),
            AttributeValue::Floats(v) => AttrValue::F32s(v),
            AttributeValue::Doubles(v) => AttrValue::F64s(v),
            AttributeValue::Ints(v) => AttrValue::I32s(v),
            other => return Err(other),
        })
    }

    /// The scalar type of a fill value, if it is one.
    fn scalar_dtype(&self) -> Option<DType> {
        match self {
            AttrValue::F32(_) => Some(DType::F32),
            AttrValue::F64(_) => Some(DType::F64),
            AttrValue::I32(_) => Some(DType::I32),
            _ => None,
        }
    }
}

/// Element type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// NC_FLOAT.
    F32,
    /// NC_DOUBLE.
    F64,
    /// NC_INT.
    I32,
}

impl DType {
    fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
        }
    }

    fn from_nc(t: &NcVariableType) -> Option<DType> {
        match t {
            NcVariableType::Float(FloatType::F32) => Some(DType::F32),
            NcVariableType::Float(FloatType::F64) => Some(DType::F64),
            NcVariableType::Int(IntType::I32) => Some(DType::I32),
            _ => None,
        }
    }
}

/// zlib ("deflate") compression of a variable's chunks, optionally after byte shuffling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// 1–9 (0 is accepted by netCDF but stores uncompressed through the filter).
    pub deflate_level: u8,
    /// Apply the HDF5 shuffle filter before deflate.
    pub shuffle: bool,
}

/// One variable: its definition and its values.
#[derive(Debug)]
pub struct VarDef {
    pub name: String,
    pub dtype: DType,
    /// Dimension names, outermost first; each must be in [`DatasetDef::dims`].
    pub dims: Vec<String>,
    /// Written in this order, after `_FillValue`; must not contain `_FillValue`.
    pub attrs: Vec<(String, AttrValue)>,
    /// `_FillValue` (of the variable's own type). `None` writes no `_FillValue` attribute
    /// (as EDP does for coordinates); the library default fill still backs unwritten
    /// storage, which stays invisible because every value is written.
    pub fill: Option<AttrValue>,
    pub compression: Option<Compression>,
    /// Chunk shape (one entry per dimension, each 1..=dimension length). `None` lets
    /// netCDF choose: contiguous if uncompressed, its default chunks otherwise.
    pub chunks: Option<Vec<usize>>,
    pub data: VarData,
}

impl VarDef {
    /// A variable with no attributes, no fill, no compression and default chunking; the
    /// type follows `data`.
    pub fn new(name: impl Into<String>, dims: &[&str], data: VarData) -> Self {
        VarDef {
            name: name.into(),
            dtype: data.dtype(),
            dims: dims.iter().map(|d| d.to_string()).collect(),
            attrs: Vec::new(),
            fill: None,
            compression: None,
            chunks: None,
            data,
        }
    }
}

/// The values of a variable, row-major over its dimensions.
pub enum VarData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    /// Values produced slab by slab so a large field (one LLC4320 3D field is several
    /// GB) streams through a bounded buffer.
    ///
    /// Slab `s` is the `s`-th index, in row-major order, over dimensions
    /// `0..=slab_dim`: with dims `(time=1, k, tile, j, i)` and `slab_dim = 1`, slab `s`
    /// is depth level `s`, and `out` holds `tile·j·i` values. The producer is called
    /// exactly once per slab; today in increasing order, but callers should not rely on
    /// the order. An error aborts the write and is kept as the error's source.
    SlabsF32 {
        slab_dim: usize,
        produce: SlabProducer,
    },
}

impl VarData {
    /// The element type of these values.
    pub fn dtype(&self) -> DType {
        match self {
            VarData::F32(_) | VarData::SlabsF32 { .. } => DType::F32,
            VarData::F64(_) => DType::F64,
            VarData::I32(_) => DType::I32,
        }
    }
}

impl fmt::Debug for VarData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarData::F32(v) => write!(f, "F32([{} values])", v.len()),
            VarData::F64(v) => write!(f, "F64([{} values])", v.len()),
            VarData::I32(v) => write!(f, "I32([{} values])", v.len()),
            VarData::SlabsF32 { slab_dim, .. } => write!(f, "SlabsF32 {{ slab_dim: {slab_dim} }}"),
        }
    }
}

/// A whole NetCDF-4 dataset (root group only).
#[derive(Debug, Default)]
pub struct DatasetDef {
    /// Fixed-length dimensions (lengths ≥ 1), in file order.
    pub dims: Vec<(String, usize)>,
    pub vars: Vec<VarDef>,
    pub global_attrs: Vec<(String, AttrValue)>,
}

/// What a successful [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteReport {
    /// Size of the finished file.
    pub bytes: u64,
    /// Uncompressed size of all variable values written.
    pub data_bytes: u64,
    /// Wall time from the call to the committed file, slab production included.
    pub elapsed: Duration,
}

impl WriteReport {
    /// Uncompressed data throughput in MB/s (10⁶ bytes).
    pub fn data_mb_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.data_bytes as f64 / 1e6 / secs
        } else {
            f64::INFINITY
        }
    }
}

/// How a variable is stored, as `ncdump -s` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarStorage {
    /// Chunk shape; `None` for contiguous (or compact) storage.
    pub chunking: Option<Vec<usize>>,
    /// zlib level if the deflate filter is on.
    pub deflate: Option<u8>,
    pub shuffle: bool,
}

/// What went wrong writing or reading a netCDF file, naming the file and the part.
#[derive(Debug, thiserror::Error)]
pub enum NcError {
    /// The [`DatasetDef`] is inconsistent; nothing was created.
    #[error("invalid dataset definition for {path:?}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot create netCDF-4 file {temp:?} (for {path:?})")]
    Create {
        path: PathBuf,
        temp: PathBuf,
        #[source]
        source: netcdf::Error,
    },
    #[error("cannot define {what} in {path:?}")]
    Define {
        path: PathBuf,
        what: String,
        #[source]
        source: netcdf::Error,
    },
    #[error("cannot write values of variable `{var}` to {path:?}")]
    Put {
        path: PathBuf,
        var: String,
        #[source]
        source: netcdf::Error,
    },
    #[error("producing slab {slab} of variable `{var}` for {path:?} failed")]
    Slab {
        path: PathBuf,
        var: String,
        slab: usize,
        #[source]
        source: SlabError,
    },
    #[error("cannot close (flush) netCDF file for {path:?}")]
    Close {
        path: PathBuf,
        #[source]
        source: netcdf::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot open netCDF file {path:?}")]
    Open {
        path: PathBuf,
        #[source]
        source: netcdf::Error,
    },
    #[error("{path:?} has no {what}")]
    Missing { path: PathBuf, what: String },
    #[error("cannot read {what} from {path:?}")]
    Read {
        path: PathBuf,
        what: String,
        #[source]
        source: netcdf::Error,
    },
    #[error("variable `{var}` in {path:?} is {found}, not {expected}")]
    Type {
        path: PathBuf,
        var: String,
        /// What the caller asked for (a [`DType`] name, or the supported set).
        expected: String,
        found: String,
    },
    #[error("attribute `{attr}` of {owner} in {path:?} has an unsupported type ({found})")]
    AttrType {
        path: PathBuf,
        owner: String,
        attr: String,
        found: String,
    },
    /// A direct netCDF-C call (for what the `netcdf` crate does not expose) failed.
    #[error("cannot inquire {what} in {path:?}: netCDF error {code}: {message}")]
    Inquire {
        path: PathBuf,
        what: String,
        code: i32,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// Read access to a netCDF file's root group.
pub struct NcReader {
    path: PathBuf,
    file: netcdf::File,
}

impl fmt::Debug for NcReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NcReader")
            .field("path", &self.path)
            .finish()
    }
}

impl NcReader {
    pub fn open(path: &Path) -> Result<Self, NcError> {
        raw::quiet_hdf5_errors();
        let file = netcdf::open(path).map_err(|source| NcError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NcReader {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dimensions and their lengths, in file order.
    pub fn dims(&self) -> Vec<(String, usize)> {
        self.file
            .dimensions()
            .map(|d| (d.name(), d.len()))
            .collect()
    }

    /// Variable names, in file order.
    pub fn var_names(&self) -> Vec<String> {
        self.file.variables().map(|v| v.name()).collect()
    }

    fn var(&self, name: &str) -> Result<netcdf::Variable<'_>, NcError> {
        self.file.variable(name).ok_or_else(|| NcError::Missing {
            path: self.path.clone(),
            what: format!("variable `{name}`"),
        })
    }

    /// Dimension names of a variable, outermost first.
    pub fn var_dims(&self, name: &str) -> Result<Vec<String>, NcError> {
        Ok(self
            .var(name)?
            .dimensions()
            .iter()
            .map(|d| d.name())
            .collect())
    }

    /// Element type of a variable (an error for types this module does not write).
    pub fn var_type(&self, name: &str) -> Result<DType, NcError> {
        let t = self.var(name)?.vartype();
        DType::from_nc(&t).ok_or_else(|| NcError::Type {
            path: self.path.clone(),
            var: name.to_string(),
            expected: "F32, F64 or I32".to_string(),
            found: format!("{t:?}"),
        })
    }

    /// A variable's attributes in file order, `_FillValue` included.
    pub fn var_attrs(&self, name: &str) -> Result<Vec<(String, AttrValue)>, NcError> {
        let var = self.var(name)?;
        self.convert_attrs(var.attributes(), &format!("variable `{name}`"))
    }

    /// Global attributes in file order.
    pub fn global_attrs(&self) -> Result<Vec<(String, AttrValue)>, NcError> {
        self.convert_attrs(self.file.attributes(), "the root group")
    }

    fn convert_attrs<'a>(
        &self,
        attrs: impl Iterator<Item = netcdf::Attribute<'a>>,
        owner: &str,
    ) -> Result<Vec<(String, AttrValue)>, NcError> {
        attrs
            .map(|a| {
                let aname = a.name().to_string();
                let value = a.value().map_err(|source| NcError::Read {
                    path: self.path.clone(),
                    what: format!("attribute `{aname}` of {owner}"),
                    source,
                })?;
                let value = AttrValue::from_nc(value).map_err(|v| NcError::AttrType {
                    path: self.path.clone(),
                    owner: owner.to_string(),
                    attr: aname.clone(),
                    found: format!("{v:?}"),
                })?;
                Ok((aname, value))
            })
            .collect()
    }

    /// Reads all values of a variable whose type is exactly `expected` (no silent
    /// conversion: a type mismatch is an error).
    fn read_all<T: netcdf::NcTypeDescriptor + Copy>(
        &self,
        name: &str,
        expected: DType,
    ) -> Result<Vec<T>, NcError> {
        let var = self.var(name)?;
        let t = var.vartype();
        if DType::from_nc(&t) != Some(expected) {
            return Err(NcError::Type {
                path: self.path.clone(),
                var: name.to_string(),
                expected: format!("{expected:?}"),
                found: format!("{t:?}"),
            });
        }
        var.get_values::<T, _>(..).map_err(|source| NcError::Read {
            path: self.path.clone(),
            what: format!("values of variable `{name}`"),
            source,
        })
    }

    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, NcError> {
        self.read_all(name, DType::F32)
    }

    /// Reads all values of a numeric variable of any type (float or integer, any
    /// width), converted by netCDF-C: inputs written by other tools (netCDF4-python,
    /// xarray, MITgcm's own converters) often hold float64 where we keep f32, or the
    /// reverse. A non-numeric variable is an error naming it.
    fn read_converted<T: netcdf::NcTypeDescriptor + Copy>(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Vec<T>, NcError> {
        let var = self.var(name)?;
        let t = var.vartype();
        if !matches!(t, NcVariableType::Float(_) | NcVariableType::Int(_)) {
            return Err(NcError::Type {
                path: self.path.clone(),
                var: name.to_string(),
                expected: expected.to_string(),
                found: format!("{t:?}"),
            });
        }
        var.get_values::<T, _>(..).map_err(|source| NcError::Read {
            path: self.path.clone(),
            what: format!("values of variable `{name}` (converted from {t:?})"),
            source,
        })
    }

    /// All values of a numeric variable of any type as f32 (f64 values are rounded to
    /// the nearest f32, as the granules store them).
    pub fn read_as_f32(&self, name: &str) -> Result<Vec<f32>, NcError> {
        self.read_converted(name, "a number (read as f32)")
    }

    /// All values of a numeric variable of any type as f64 (exact for f32 and
    /// integers up to 2^53).
    pub fn read_as_f64(&self, name: &str) -> Result<Vec<f64>, NcError> {
        self.read_converted(name, "a number (read as f64)")
    }

    pub fn read_f64(&self, name: &str) -> Result<Vec<f64>, NcError> {
        self.read_all(name, DType::F64)
    }

    pub fn read_i32(&self, name: &str) -> Result<Vec<i32>, NcError> {
        self.read_all(name, DType::I32)
    }

    /// Chunking, deflate level and shuffle of a variable (what `ncdump -s` shows as
    /// `_ChunkSizes`, `_DeflateLevel`, `_Shuffle`).
    pub fn var_storage(&self, name: &str) -> Result<VarStorage, NcError> {
        let var = self.var(name)?;
        let chunking = var.chunking().map_err(|source| NcError::Read {
            path: self.path.clone(),
            what: format!("chunking of variable `{name}`"),
            source,
        })?;
        let (deflate, shuffle) = raw::inq_deflate(&self.path, name)?;
        Ok(VarStorage {
            chunking,
            deflate,
            shuffle,
        })
    }
}

/// Direct netCDF-C and HDF5 calls for what the `netcdf` crate (0.12) does not expose.
///
/// Deflate/shuffle inquiry: the crate has none and keeps its ncid/varid private, so this
/// opens the file a second time, read-only.
///
/// HDF5 error printing: netCDF-C switches HDF5's automatic error stack printing off when
/// it initialises, but the system HDF5 is thread-safe, where that switch is per thread;
/// every other thread would print `HDF5-DIAG` noise for the attributes netCDF probes and
/// does not find (`_QuantizeBitGroom...`) although nothing failed. Each thread entering
/// this module switches it off for itself. libnetcdf and libhdf5 are linked through
/// `netcdf-sys` / `hdf5-metno-sys`.
///
/// netCDF-C is not thread-safe and the crate's global lock (`netcdf_sys::libnetcdf_lock`)
/// is only reachable with `netcdf-sys` as a direct dependency, so these calls serialise
/// on a lock of their own. Until that dependency exists, do not call them while another
/// thread is inside netCDF (in practice: read-side inquiry, used by tests and checks).
mod raw {
    use super::*;

    static LOCK: Mutex<()> = Mutex::new(());
    const NC_NOWRITE: c_int = 0;
    const NC_NOERR: c_int = 0;
    /// `H5E_DEFAULT`: the calling thread's default error stack (`hid_t` is 64-bit).
    const H5E_DEFAULT: i64 = 0;

    thread_local! {
        static HDF5_QUIET: Cell<bool> = const { Cell::new(false) };
    }

    extern "C" {
        fn nc_open(path: *const c_char, mode: c_int, ncidp: *mut c_int) -> c_int;
        fn nc_close(ncid: c_int) -> c_int;
        fn nc_inq_varid(ncid: c_int, name: *const c_char, varidp: *mut c_int) -> c_int;
        fn nc_inq_var_deflate(
            ncid: c_int,
            varid: c_int,
            shufflep: *mut c_int,
            deflatep: *mut c_int,
            deflate_levelp: *mut c_int,
        ) -> c_int;
        fn nc_strerror(ncerr: c_int) -> *const c_char;
        fn H5is_library_threadsafe(is_ts: *mut bool) -> c_int;
        fn H5Eset_auto2(estack_id: i64, func: *const c_void, client_data: *mut c_void) -> c_int;
    }

    /// Switches HDF5's automatic error printing off for the calling thread (once per
    /// thread). Only a thread-safe HDF5 needs it: elsewhere the setting is global,
    /// netCDF's initialisation already made it, and an unlocked call could race.
    pub(super) fn quiet_hdf5_errors() {
        static THREADSAFE: OnceLock<bool> = OnceLock::new();
        let threadsafe = *THREADSAFE.get_or_init(|| {
            let mut ts = false;
            // SAFETY: a pure query writing one hbool_t (C `bool`) through a valid pointer.
            let rc = unsafe { H5is_library_threadsafe(&mut ts) };
            rc >= 0 && ts
        });
        if !threadsafe {
            return;
        }
        HDF5_QUIET.with(|done| {
            if !done.get() {
                // SAFETY: a null handler disables printing for this thread's default
                // stack; thread-safe HDF5 serialises the call itself. Failure would only
                // leave the noise on, so its status is ignored.
                let _ =
                    unsafe { H5Eset_auto2(H5E_DEFAULT, std::ptr::null(), std::ptr::null_mut()) };
                done.set(true);
            }
        });
    }

    fn message(code: c_int) -> String {
        // SAFETY: nc_strerror returns a pointer to a static NUL-terminated string for
        // every code.
        unsafe {
            let p = nc_strerror(code);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// `(deflate level if on, shuffle)` of variable `name` in the file at `path`.
    pub(super) fn inq_deflate(path: &Path, name: &str) -> Result<(Option<u8>, bool), NcError> {
        let fail = |what: &str, code: c_int| NcError::Inquire {
            path: path.to_path_buf(),
            what: what.to_string(),
            code,
            message: message(code),
        };
        let cpath = path_cstring(path).ok_or_else(|| NcError::Missing {
            path: path.to_path_buf(),
            what: "C-compatible path (it contains a NUL byte)".to_string(),
        })?;
        let cname = CString::new(name).map_err(|_| NcError::Missing {
            path: path.to_path_buf(),
            what: format!("variable `{name:?}` (name contains a NUL byte)"),
        })?;
        // A poisoned lock only means another inquiry panicked; the () it guards is fine.
        let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut ncid: c_int = -1;
        // SAFETY: valid NUL-terminated path and out-pointer.
        let rc = unsafe { nc_open(cpath.as_ptr(), NC_NOWRITE, &mut ncid) };
        if rc != NC_NOERR {
            return Err(fail("file (opening for storage inquiry)", rc));
        }
        let mut varid: c_int = -1;
        let (mut shuffle, mut deflate, mut level): (c_int, c_int, c_int) = (0, 0, 0);
        // SAFETY: ncid is open; all pointers are valid for writes.
        let rc = unsafe {
            let rc = nc_inq_varid(ncid, cname.as_ptr(), &mut varid);
            if rc != NC_NOERR {
                rc
            } else {
                nc_inq_var_deflate(ncid, varid, &mut shuffle, &mut deflate, &mut level)
            }
        };
        // SAFETY: ncid was opened above and is closed exactly once.
        let close_rc = unsafe { nc_close(ncid) };
        if rc != NC_NOERR {
            return Err(fail(&format!("deflate/shuffle of variable `{name}`"), rc));
        }
        if close_rc != NC_NOERR {
            return Err(fail("file (closing after storage inquiry)", close_rc));
        }
        let level = (deflate != 0).then(|| u8::try_from(level).unwrap_or(u8::MAX));
        Ok((level, shuffle != 0))
    }

    #[cfg(unix)]
    fn path_cstring(path: &Path) -> Option<CString> {
        use std::os::unix::ffi::OsStrExt;
        CString::new(path.as_os_str().as_bytes()).ok()
    }

    #[cfg(not(unix))]
    fn path_cstring(path: &Path) -> Option<CString> {
        CString::new(path.to_str()?).ok()
    }
}
