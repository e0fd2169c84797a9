//! Generic NetCDF-4 writing and reading: the crate's only door to netCDF-C and HDF5.
//!
//! Everything that calls the C libraries lives here, so their global lock, their error
//! codes and their file-format quirks stay in one place, and so the way a granule is put
//! on disk (netCDF-C defines the file; chunks are compressed on every thread and handed
//! to HDF5 finished, or everything goes through netCDF-C: [`WriteMethod`]) stays out of
//! callers' sight. This module knows nothing of ECCO: a
//! dataset is described as plain Rust values ([`DatasetDef`]) and written atomically
//! with [`write_atomic`] (temporary file + rename, see [`crate::storage`]); [`NcReader`]
//! reads such files back (grid geometry inputs, tests).
//!
//! Layout guarantees: dimensions, variables, variable attributes and global attributes
//! appear in the file in the order of their `Vec`s (NetCDF-4 keeps creation order, which
//! `ncdump -h` shows), with `_FillValue` first when a variable has one.
//!
//! The write path, dependencies pointing one way: `layout.rs` works out once per
//! definition where the values go (shapes, streams, units, shares, value ranges);
//! `chunked.rs` is the pipeline that produces and compresses units (with
//! `compress.rs`, shuffle + deflate in Rust) and feeds a `ChunkSink` (`sink.rs`: the
//! process writing alone, or `gather.rs`'s group sink); `write.rs` is the entry point
//! ([`write`], [`write_atomic`]); `gather.rs` and `collective.rs` (parallel HDF5
//! build) write one file from a group of MPI ranks; `commit.rs` is the one way every
//! writer's temporary file reaches its final name. `read.rs` reads files back
//! ([`NcReader`]) and where their chunks lie ([`stored_chunks`]); `ffi.rs` holds every
//! call into the C libraries, under their one lock; this file holds the types all share
//! and the error enum.

mod chunked;
mod commit;
pub mod compress;
mod ffi;
pub mod gather;
pub mod group;
mod layout;
mod read;
mod sink;
mod template;
mod write;

pub use commit::Commit;
pub use ffi::ChunkLocation;
pub use read::NcReader;
pub use write::{write, write_atomic, write_atomic_with, PendingWrite};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::AttributeValue;

use crate::storage::StorageError;

#[cfg(feature = "parallel-hdf5")]
pub mod collective;

/// Error a slab producer returns; its message is kept as the `source` of
/// [`NcError::Slab`].
pub type SlabError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Producer of one slab of a streamed variable (see [`VarData::SlabsF32`]). It is
/// called from several threads at once, for different slabs.
pub type SlabProducer = Arc<dyn Fn(usize, &mut [f32]) -> Result<(), SlabError> + Send + Sync>;

/// Producer of slab `s` of every member of a [`SlabGroup`] at once: `outs[m]` is member
/// `m`'s slab. Called from several threads at once, for different slabs.
pub type GroupProducer = Arc<GroupFn<'static>>;

/// The function behind a [`GroupProducer`].
pub type GroupFn<'a> = dyn Fn(usize, &mut [&mut [f32]]) -> Result<(), SlabError> + Send + Sync + 'a;

/// Compressed chunks of one variable: (element offset, zlib bytes).
type ChunkList = Vec<(Vec<u64>, Vec<u8>)>;

/// Variables of one shape whose slabs come from one computation (the east and north
/// components of a vector pair): each slab index is produced once for all members.
pub struct SlabGroup {
    /// Members, in the order the producer fills them.
    pub members: usize,
    pub produce: GroupProducer,
}

/// How a file's data reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriteMethod {
    /// netCDF-C defines the file; compressed chunked variables are shuffled and deflated
    /// on every thread ([`compress`]) and handed to HDF5 with direct chunk writes;
    /// [`SharedValues`] are compressed once.
    #[default]
    Direct,
    /// Everything through netCDF-C (`nc_put_vara`): HDF5 compresses each chunk itself, on
    /// one thread under the library lock. The reference the direct writer is checked
    /// against.
    NetCdf,
}

/// How a group of ranks writes one file together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupWriteMethod {
    /// Every rank compresses its share of the chunks and sends them to the group's
    /// first rank, which writes the file ([`gather`]); MPI only, any build.
    #[default]
    Gather,
    /// All ranks open the file through parallel HDF5 and write their shares with
    /// collective filtered writes (`collective`; the `parallel-hdf5` build only).
    Collective,
}

/// The value named `s` among two `choices`, or the message naming the `what` asked.
fn one_of<T: Copy>(s: &str, choices: [(&str, T); 2], what: &str) -> Result<T, String> {
    match choices.iter().find(|(name, _)| *name == s) {
        Some((_, v)) => Ok(*v),
        None => Err(format!(
            "unknown {what} {s:?} ({} or {})",
            choices[0].0, choices[1].0
        )),
    }
}

impl std::str::FromStr for GroupWriteMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let choices = [("gather", Self::Gather), ("collective", Self::Collective)];
        one_of(s, choices, "group writer")
    }
}

impl std::str::FromStr for WriteMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        one_of(
            s,
            [("direct", Self::Direct), ("netcdf", Self::NetCdf)],
            "writer",
        )
    }
}

/// Values shared by many files (grid coordinates and bounds): the writer keeps their
/// compressed chunks, so each chunking and compression is done once per process.
///
/// They are either held in memory, or produced slab by slab along the first dimension
/// (one tile of a grid coordinate, read from the memory-mapped grid files) and never
/// held whole: only their compressed chunks are kept (`LLC1080`: ~15 M values per
/// coordinate, a few tens of MB compressed).
pub struct SharedValues {
    source: SharedSource,
    /// Compressed chunks (offset, bytes) per (shape, chunks, codec).
    compressed: Mutex<Vec<(ChunkKey, Arc<ChunkList>)>>,
    /// (min, max) of the finite values, found on first request.
    extent: OnceLock<Option<(f64, f64)>>,
}

enum SharedSource {
    Values(Values),
    /// `len` f32 values in `slabs` slabs along the first dimension.
    Slabs {
        len: usize,
        slabs: usize,
        produce: SlabProducer,
    },
}
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChunkKey {
    shape: Vec<usize>,
    chunks: Vec<usize>,
    codec: compress::ChunkCodec,
}

/// In-memory values of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I8(Vec<i8>),
}

impl Values {
    fn dtype(&self) -> DType {
        match self {
            Values::F32(_) => DType::F32,
            Values::F64(_) => DType::F64,
            Values::I32(_) => DType::I32,
            Values::I8(_) => DType::I8,
        }
    }
    fn len(&self) -> usize {
        match self {
            Values::F32(x) => x.len(),
            Values::F64(x) => x.len(),
            Values::I32(x) => x.len(),
            Values::I8(x) => x.len(),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Values::F32(x) => bytemuck::cast_slice(x),
            Values::F64(x) => bytemuck::cast_slice(x),
            Values::I32(x) => bytemuck::cast_slice(x),
            Values::I8(x) => bytemuck::cast_slice(x),
        }
    }
}

impl SharedValues {
    pub fn new(values: Values) -> Arc<SharedValues> {
        Arc::new(SharedValues {
            source: SharedSource::Values(values),
            compressed: Mutex::new(Vec::new()),
            extent: OnceLock::new(),
        })
    }

    /// f32 values of `len` elements in `slabs` equal slabs along the first dimension,
    /// slab `s` made by `produce(s, out)` whenever the values are needed (compressing
    /// them, which happens once per chunking; writing them without compression).
    pub fn slabs(len: usize, slabs: usize, produce: SlabProducer) -> Arc<SharedValues> {
        Arc::new(SharedValues {
            source: SharedSource::Slabs {
                len,
                slabs,
                produce,
            },
            compressed: Mutex::new(Vec::new()),
            extent: OnceLock::new(),
        })
    }

    /// The values, when they are held in memory.
    pub fn values(&self) -> Option<&Values> {
        match &self.source {
            SharedSource::Values(v) => Some(v),
            SharedSource::Slabs { .. } => None,
        }
    }

    /// The slab producer of values that are not held in memory.
    fn producer(&self) -> Option<&SlabProducer> {
        match &self.source {
            SharedSource::Values(_) => None,
            SharedSource::Slabs { produce, .. } => Some(produce),
        }
    }

    fn dtype(&self) -> DType {
        match &self.source {
            SharedSource::Values(v) => v.dtype(),
            SharedSource::Slabs { .. } => DType::F32,
        }
    }

    fn len(&self) -> usize {
        match &self.source {
            SharedSource::Values(v) => v.len(),
            SharedSource::Slabs { len, .. } => *len,
        }
    }

    /// Minimum and maximum of the finite float values (`None` for integers, for no
    /// finite value, or when a slab cannot be produced: the write reports that).
    /// Produced values are visited slab by slab; the answer is kept.
    pub fn finite_extent(&self) -> Option<(f64, f64)> {
        *self.extent.get_or_init(|| {
            let fold = |acc: Option<(f64, f64)>, x: f64| {
                if !x.is_finite() {
                    return acc;
                }
                Some(match acc {
                    Some((lo, hi)) => (lo.min(x), hi.max(x)),
                    None => (x, x),
                })
            };
            match &self.source {
                SharedSource::Values(Values::F32(v)) => {
                    v.iter().fold(None, |a, &x| fold(a, f64::from(x)))
                }
                SharedSource::Values(Values::F64(v)) => v.iter().fold(None, |a, &x| fold(a, x)),
                SharedSource::Values(Values::I32(_) | Values::I8(_)) => None,
                SharedSource::Slabs {
                    len,
                    slabs,
                    produce,
                } => {
                    let mut buf = vec![0f32; len / (*slabs).max(1)];
                    let mut acc = None;
                    for s in 0..*slabs {
                        produce(s, &mut buf).ok()?;
                        acc = buf.iter().fold(acc, |a, &x| fold(a, f64::from(x)));
                    }
                    acc
                }
            }
        })
    }
}

impl fmt::Debug for SharedValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedValues({:?}, {} values{})",
            self.dtype(),
            self.len(),
            if self.values().is_some() {
                ""
            } else {
                ", produced by slabs"
            }
        )
    }
}

impl VarData {
    /// Shared values that are produced by slabs become a streamed variable along the
    /// first dimension, for the writers that do not keep compressed chunks.
    pub(crate) fn stream_produced(self) -> VarData {
        match self {
            VarData::Shared(x) => match x.producer() {
                Some(p) => VarData::SlabsF32 {
                    slab_dim: 0,
                    produce: Arc::clone(p),
                },
                None => VarData::Shared(x),
            },
            other => other,
        }
    }
}

/// Upper bound on the slab buffer when several slabs are gathered into one write to
/// cover a whole chunk row (see `put_slabs`).
const SLAB_BUFFER_BUDGET_BYTES: usize = 256 << 20;

/// An attribute value, with the netCDF type it is written as.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
/// `From` for the values an attribute holds as they are.
macro_rules! attr_value_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<$t> for AttrValue {
            fn from(x: $t) -> Self {
                AttrValue::$variant(x)
            }
        }
    )*};
}
attr_value_from!(String => Str, f32 => F32, f64 => F64, i32 => I32);

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

    /// A numeric scalar's value as f64 (`None` for strings and arrays).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::F32(x) => Some(f64::from(*x)),
            AttrValue::F64(x) => Some(*x),
            AttrValue::I32(x) => Some(f64::from(*x)),
            _ => None,
        }
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
    /// NC_BYTE (ECCO's boolean masks, as xarray stores a `bool`).
    I8,
}

impl DType {
    fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
            DType::I8 => 1,
        }
    }

    fn from_nc(t: &NcVariableType) -> Option<DType> {
        match t {
            NcVariableType::Float(FloatType::F32) => Some(DType::F32),
            NcVariableType::Float(FloatType::F64) => Some(DType::F64),
            NcVariableType::Int(IntType::I32) => Some(DType::I32),
            NcVariableType::Int(IntType::I8) => Some(DType::I8),
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
    /// The writer sets the float32 attributes `valid_min` and `valid_max` (which `attrs`
    /// must hold, placeholders, at the place they are to appear) to the minimum and
    /// maximum of the values that are neither the fill value nor NaN (NaN if none), so
    /// streamed values are produced once.
    pub valid_range: bool,
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
            valid_range: false,
            data,
        }
    }
}

/// The values of a variable, row-major over its dimensions.
pub enum VarData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I8(Vec<i8>),
    /// Values many files share (see [`SharedValues`]).
    Shared(Arc<SharedValues>),
    /// Values produced slab by slab so a large field (one LLC4320 3D field is several
    /// GB) streams through a bounded buffer.
    ///
    /// Slab `s` is the `s`-th index, in row-major order, over dimensions
    /// `0..=slab_dim`: with dims `(time=1, k, tile, j, i)` and `slab_dim = 1`, slab `s`
    /// is depth level `s`, and `out` holds `tile·j·i` values. The producer may be
    /// called for several slabs at once, in any order, and (with
    /// [`VarDef::valid_range`] and the netCDF writer) twice per slab. An error aborts
    /// the write and is kept as the error's source.
    SlabsF32 {
        slab_dim: usize,
        produce: SlabProducer,
    },
    /// Member `member` of a [`SlabGroup`]: like [`VarData::SlabsF32`], with the slabs of
    /// all members produced together. Every member must be in the dataset, with the same
    /// shape and `slab_dim`.
    GroupF32 {
        slab_dim: usize,
        group: Arc<SlabGroup>,
        member: usize,
    },
}

impl VarData {
    /// The values of an in-memory array; any other kind of data back as it was.
    pub(crate) fn into_array(self) -> Result<Values, VarData> {
        match self {
            VarData::F32(x) => Ok(Values::F32(x)),
            VarData::F64(x) => Ok(Values::F64(x)),
            VarData::I32(x) => Ok(Values::I32(x)),
            VarData::I8(x) => Ok(Values::I8(x)),
            other => Err(other),
        }
    }

    /// The element type of these values.
    pub fn dtype(&self) -> DType {
        match self {
            VarData::F32(_) | VarData::SlabsF32 { .. } | VarData::GroupF32 { .. } => DType::F32,
            VarData::F64(_) => DType::F64,
            VarData::I32(_) => DType::I32,
            VarData::I8(_) => DType::I8,
            VarData::Shared(v) => v.dtype(),
        }
    }
}

impl fmt::Debug for VarData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarData::F32(v) => write!(f, "F32([{} values])", v.len()),
            VarData::F64(v) => write!(f, "F64([{} values])", v.len()),
            VarData::I32(v) => write!(f, "I32([{} values])", v.len()),
            VarData::I8(v) => write!(f, "I8([{} values])", v.len()),
            VarData::Shared(v) => write!(f, "{v:?}"),
            VarData::SlabsF32 { slab_dim, .. } => write!(f, "SlabsF32 {{ slab_dim: {slab_dim} }}"),
            VarData::GroupF32 {
                slab_dim, member, ..
            } => write!(f, "GroupF32 {{ slab_dim: {slab_dim}, member: {member} }}"),
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
    /// A write that failed on a (nearly) full file system: netCDF-C's own message
    /// ("NetCDF: HDF error") does not say so.
    #[error("the file system of {dir:?} has {available} bytes free (no space left on device)")]
    DiskFull {
        dir: PathBuf,
        available: u64,
        #[source]
        source: Box<NcError>,
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
    /// A direct HDF5 call (direct chunk writes) failed; HDF5's own error stack is not
    /// printed.
    #[error("HDF5 failed {what} in {path:?}")]
    Hdf5 { path: PathBuf, what: String },
    #[error("cannot compress a chunk of variable `{var}` for {path:?}")]
    Compress {
        path: PathBuf,
        var: String,
        #[source]
        source: compress::CompressError,
    },
    /// Another rank of the group writing this file failed; this rank stopped with it
    /// and the file was not put in place. The group's first rank, which records the
    /// task, has the failing rank's message.
    #[error("{}", peer_failure(path, stage, failed.as_ref()))]
    Peer {
        path: PathBuf,
        stage: String,
        /// The failing rank of the group and its error (on the group's first rank).
        failed: Option<(usize, String)>,
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

/// The message of [`NcError::Peer`].
fn peer_failure(path: &Path, stage: &str, failed: Option<&(usize, String)>) -> String {
    match failed {
        Some((rank, message)) => {
            format!("rank {rank} of the group writing {path:?} failed {stage}: {message}")
        }
        None => format!("another rank of the group writing {path:?} failed {stage}"),
    }
}

/// How one variable's values are stored, as HDF5 sees them: what a reader needs to
/// fetch and decode the chunks itself (virtual Zarr references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunks {
    pub little_endian: bool,
    /// Allocated chunks, in HDF5's index order.
    pub chunks: Vec<ChunkLocation>,
}

/// [`StoredChunks`] of the chunked variables `vars` (name, number of dimensions) of the
/// netCDF-4 file at `path`, in the order asked. Call it with no [`NcReader`] open on
/// the same file.
pub fn stored_chunks(path: &Path, vars: &[(&str, usize)]) -> Result<Vec<StoredChunks>, NcError> {
    ffi::quiet_hdf5_errors();
    let file = ffi::H5File::open_ro(path)?;
    let mut out = Vec::with_capacity(vars.len());
    for (name, rank) in vars {
        let ds = file.dataset(name)?;
        out.push(StoredChunks {
            little_endian: ds.little_endian()?,
            chunks: ds.chunk_locations(*rank)?,
        });
    }
    Ok(out)
}

/// Environment variable injecting a failure, for tests: `SUBSTRING@RANK` makes the
/// group's rank RANK fail while producing its first slab of a file whose final path
/// contains SUBSTRING (both group writers). Read through
/// [`crate::settings::Settings::debug_fail_write`] like the other `EDP_DEBUG_*` hooks.
pub const DEBUG_FAIL_VAR: &str = "EDP_DEBUG_FAIL_WRITE";

/// The writer's testing and benchmarking hooks, from the run's settings.
#[derive(Debug, Clone, Default)]
pub struct WriteHooks {
    /// The failure to inject ([`DEBUG_FAIL_VAR`]).
    pub fail_write: Option<String>,
    /// Every header defined in full, none from a template (`EDP_DEBUG_NO_HEADER_TEMPLATE`).
    pub no_header_template: bool,
}

impl WriteHooks {
    fn of(settings: &crate::settings::Settings) -> WriteHooks {
        WriteHooks {
            fail_write: settings.debug_fail_write.clone(),
            no_header_template: settings.debug_no_header_template,
        }
    }
}

/// The hooks, set once per process.
static WRITE_HOOKS: OnceLock<WriteHooks> = OnceLock::new();

/// Sets the writer's hooks from the run's settings (the binary's edge calls this before
/// any write; library users get the environment's, [`Settings::from_env`]). The first
/// setting wins.
///
/// [`Settings::from_env`]: crate::settings::Settings::from_env
pub fn set_write_hooks(settings: &crate::settings::Settings) {
    let _ = WRITE_HOOKS.set(WriteHooks::of(settings));
}

/// The hooks of this process.
pub(super) fn write_hooks() -> &'static WriteHooks {
    WRITE_HOOKS.get_or_init(|| WriteHooks::of(&crate::settings::Settings::from_env()))
}

/// True when [`DEBUG_FAIL_VAR`] asks this group rank to fail writing `path`.
pub(super) fn debug_failure(path: &Path, rank: usize) -> bool {
    let spec = &write_hooks().fail_write;
    let Some((pattern, r)) = spec.as_deref().and_then(|s| s.rsplit_once('@')) else {
        return false;
    };
    !pattern.is_empty()
        && r.trim().parse::<usize>() == Ok(rank)
        && path.to_string_lossy().contains(pattern)
}

/// The error a [`DEBUG_FAIL_VAR`] failure reads as (at slab `slab` of variable `var`).
pub(super) fn injected(path: &Path, var: &str, slab: usize) -> NcError {
    NcError::Slab {
        path: path.to_path_buf(),
        var: var.to_string(),
        slab,
        source: format!("failure injected by {DEBUG_FAIL_VAR}").into(),
    }
}

/// Sets up netCDF-C/HDF5 for this process before any file is touched: call first in
/// `main` (see `ffi::no_hdf5_atexit` for why).
pub fn library_init() {
    ffi::no_hdf5_atexit();
}
