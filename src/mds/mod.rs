//! MITgcm MDS files: a `.meta` text header plus a raw big-endian `.data`
//! file, read through a memory map one level at a time.
//!
//! This layer knows files, records and levels; it hands horizontal levels to
//! [`crate::llc`] for the 13-tile layout and never holds a whole 3-D field, so
//! LLC1080/LLC4320 inputs stay within a level-sized buffer. [`MdsWriter`]
//! writes the same format for synthetic inputs and tests.

mod meta;
mod writer;

pub use meta::MdsMeta;
pub use writer::{write_vector_f64, MdsWriter};

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::FileError;
use crate::llc;

/// Floating-point width of the values in a `.data` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Big-endian IEEE single (`float32`, `real*4`).
    F32,
    /// Big-endian IEEE double (`float64`, `real*8`).
    F64,
}

impl Precision {
    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }

    /// The `dataprec` spelling MITgcm writes.
    pub fn meta_name(self) -> &'static str {
        match self {
            Precision::F32 => "float32",
            Precision::F64 => "float64",
        }
    }
}

/// Everything that can go wrong reading or writing MDS files; each variant
/// names the file and what was expected versus found.
#[derive(Debug, thiserror::Error)]
pub enum MdsError {
    /// The OS refused an operation on the file.
    #[error(transparent)]
    Io(#[from] crate::error::FileError),
    /// The `.meta` text is not `key = value` items.
    #[error("{}:{line}: malformed .meta: {message}", path.display())]
    MetaSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A key needed to read the data is absent.
    #[error("{}: .meta has no `{key}` (needed to read the .data file)", path.display())]
    MissingKey { path: PathBuf, key: &'static str },
    /// A key has a value of the wrong kind.
    #[error("{}:{line}: `{key}` is {found:?}, expected {expected}", path.display())]
    BadValue {
        path: PathBuf,
        key: &'static str,
        line: usize,
        found: Box<str>,
        expected: &'static str,
    },
    /// `dataprec` is not a precision we can decode.
    #[error("{}: unknown dataprec {found:?} (expected 'float32', 'float64', 'real*4' or 'real*8')", path.display())]
    UnknownPrecision { path: PathBuf, found: String },
    /// `nDims` is outside 1..=3.
    #[error("{}: nDims = {ndims}, only 1 to 3 dimensions are supported", path.display())]
    UnsupportedDims { path: PathBuf, ndims: usize },
    /// `dimList` does not hold one triple per dimension.
    #[error("{}: nDims = {ndims} needs {} dimList values (one [size, start, end] triple per dimension), found {values}", path.display(), 3 * ndims)]
    DimListMismatch {
        path: PathBuf,
        ndims: usize,
        values: usize,
    },
    /// A `dimList` triple is not `1 ≤ start ≤ end ≤ size`.
    #[error("{}: dimList triple {dim} is [{size}, {start}, {end}], expected 1 <= start <= end <= size", path.display())]
    BadDimTriple {
        path: PathBuf,
        dim: usize,
        size: usize,
        start: usize,
        end: usize,
    },
    /// `nrecords` disagrees with the number of `fldList` names.
    #[error("{}: nrecords = {nrecords} but fldList has {fields} names", path.display())]
    FieldCountMismatch {
        path: PathBuf,
        nrecords: usize,
        fields: usize,
    },
    /// The `.data` size is not what the `.meta` describes (e.g. truncated).
    /// Boxed so the enum stays small enough to wrap in other errors.
    #[error(
        "{}: {} bytes, but {} describes {} bytes (dims {:?} x {} records x {} bytes); truncated or mismatched file?",
        .0.path.display(), .0.found, .0.meta.display(), .0.expected, .0.dims, .0.nrecords, .0.bytes
    )]
    DataSize(Box<DataSizeMismatch>),
    /// No record carries the requested name.
    #[error("{}: no field {field:?} (fields: {available:?})", path.display())]
    UnknownField {
        path: PathBuf,
        field: Box<str>,
        available: Box<[String]>,
    },
    /// Record index beyond `nrecords`.
    #[error("{}: record {record} out of range, the file has {nrecords} records", path.display())]
    RecordOutOfRange {
        path: PathBuf,
        record: usize,
        nrecords: usize,
    },
    /// Level index beyond the number of levels per record.
    #[error("{}: level {level} out of range, records have {nz} levels", path.display())]
    LevelOutOfRange {
        path: PathBuf,
        level: usize,
        nz: usize,
    },
    /// A caller's buffer has the wrong length.
    #[error("{}: {what} buffer holds {found} values, expected {expected}", path.display())]
    BufferSize {
        path: PathBuf,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// The horizontal shape is not the compact 13N×N of the expected grid.
    #[error("{}: horizontal shape is {nx} x {ny} (x by y), an LLC{n} grid expects {n} x {}", path.display(), 13 * n)]
    NotLlc {
        path: PathBuf,
        nx: usize,
        ny: usize,
        n: usize,
    },
    /// The writer was given bad parameters.
    #[error("{}: {message}", path.display())]
    Writer { path: PathBuf, message: String },
}

/// Details of [`MdsError::DataSize`].
#[derive(Debug)]
pub struct DataSizeMismatch {
    /// The `.data` file.
    pub path: PathBuf,
    /// The `.meta` file that describes it.
    pub meta: PathBuf,
    /// Bytes the `.meta` describes.
    pub expected: u64,
    /// Bytes on disk.
    pub found: u64,
    /// `dims` from the `.meta`.
    pub dims: Vec<usize>,
    /// `nrecords` from the `.meta`.
    pub nrecords: usize,
    /// Bytes per value.
    pub bytes: usize,
}

/// Values an MDS level can be decoded into.
pub trait Sample: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn from_f32(v: f32) -> Self;
    #[doc(hidden)]
    fn from_f64(v: f64) -> Self;
    /// The value as a file of `precision` stores it (big-endian; f64 to f32 rounds).
    #[doc(hidden)]
    fn encode(self, precision: Precision, out: &mut Vec<u8>);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Sample for f32 {
    #[inline]
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[inline]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline]
    fn encode(self, precision: Precision, out: &mut Vec<u8>) {
        match precision {
            Precision::F32 => out.extend(self.to_be_bytes()),
            Precision::F64 => out.extend(f64::from(self).to_be_bytes()),
        }
    }
}

impl Sample for f64 {
    #[inline]
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    #[inline]
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[inline]
    fn encode(self, precision: Precision, out: &mut Vec<u8>) {
        match precision {
            Precision::F32 => out.extend((self as f32).to_be_bytes()),
            Precision::F64 => out.extend(self.to_be_bytes()),
        }
    }
}

/// Decodes big-endian values from `bytes` into `out` (lengths must agree).
#[inline]
fn decode<T: Sample>(precision: Precision, bytes: &[u8], out: &mut [T]) {
    debug_assert_eq!(bytes.len(), out.len() * precision.bytes());
    match precision {
        Precision::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = T::from_f32(f32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        Precision::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = T::from_f64(f64::from_be_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]));
            }
        }
    }
}

/// Appends `suffix` to a path without touching its existing dots
/// (`SSH_mon_mean.0000000732` + `.data`).
pub(crate) fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// An open MDS pair: the parsed `.meta` and the memory-mapped `.data`.
#[derive(Debug)]
pub struct MdsFile {
    meta: MdsMeta,
    data_path: PathBuf,
    map: Mmap,
}

impl MdsFile {
    /// Opens `data_path` described by `meta_path`, checking that the data
    /// size matches the `.meta` before mapping it.
    pub fn open(data_path: &Path, meta_path: &Path) -> Result<MdsFile, MdsError> {
        let meta = MdsMeta::parse(meta_path)?;
        let io = |action| FileError::at(data_path, action);
        let file = File::open(data_path).map_err(io("open the .data file"))?;
        let found = file.metadata().map_err(io("stat the .data file"))?.len();
        let bytes = meta.precision.bytes();
        let expected = (meta.record_len() as u64)
            .saturating_mul(meta.nrecords as u64)
            .saturating_mul(bytes as u64);
        if found != expected {
            return Err(MdsError::DataSize(Box::new(DataSizeMismatch {
                path: data_path.to_path_buf(),
                meta: meta_path.to_path_buf(),
                expected,
                found,
                dims: meta.dims.clone(),
                nrecords: meta.nrecords,
                bytes,
            })));
        }
        // SAFETY: the map is read-only and the file is an input we do not
        // modify; like every reader of MITgcm output we rely on nobody
        // truncating it while it is open (the size was checked just above).
        let map = unsafe { Mmap::map(&file) }.map_err(io("memory-map the .data file"))?;
        Ok(MdsFile {
            meta,
            data_path: data_path.to_path_buf(),
            map,
        })
    }

    /// Opens `base.data` with `base.meta` (`base` is the path without suffix,
    /// e.g. `…/SSH_mon_mean.0000000732`).
    pub fn open_base(base: &Path) -> Result<MdsFile, MdsError> {
        MdsFile::open(&with_suffix(base, ".data"), &with_suffix(base, ".meta"))
    }

    /// The parsed `.meta`.
    pub fn meta(&self) -> &MdsMeta {
        &self.meta
    }

    /// The `.data` file's path.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Values per row (Fortran x).
    pub fn nx(&self) -> usize {
        self.meta.dims[0]
    }

    /// Rows per level (Fortran y; 1 for a 1-D file).
    pub fn ny(&self) -> usize {
        self.meta.dims.get(1).copied().unwrap_or(1)
    }

    /// Levels per record (`dims[2]`, or 1 for a 2-D file).
    pub fn nz(&self) -> usize {
        self.meta.dims.get(2).copied().unwrap_or(1)
    }

    /// Number of records.
    pub fn nrecords(&self) -> usize {
        self.meta.nrecords
    }

    /// Value precision.
    pub fn precision(&self) -> Precision {
        self.meta.precision
    }

    /// The name a file without `fldList` gives its single record: the file
    /// name up to its first dot (xmitgcm's rule).
    pub fn prefix(&self) -> &str {
        let name = self
            .data_path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        name.split('.').next().unwrap_or(name)
    }

    /// Index of the record named `field` in `fldList` (names compared without
    /// padding). A single-record file also answers to its file prefix, which
    /// is its only name when it has no `fldList`.
    pub fn record_index(&self, field: &str) -> Result<usize, MdsError> {
        let field = field.trim();
        if let Some(k) = self.meta.fields.iter().position(|f| f == field) {
            return Ok(k);
        }
        if self.meta.nrecords == 1 && field == self.prefix() {
            return Ok(0);
        }
        let available = if self.meta.fields.is_empty() {
            vec![self.prefix().to_string()]
        } else {
            self.meta.fields.clone()
        };
        Err(MdsError::UnknownField {
            path: self.data_path.clone(),
            field: field.into(),
            available: available.into(),
        })
    }

    /// The bytes of `count` values starting at value `offset` of `record`.
    fn bytes(&self, record: usize, offset: usize, count: usize) -> Result<&[u8], MdsError> {
        if record >= self.meta.nrecords {
            return Err(MdsError::RecordOutOfRange {
                path: self.data_path.clone(),
                record,
                nrecords: self.meta.nrecords,
            });
        }
        let b = self.meta.precision.bytes();
        let start = (record * self.meta.record_len() + offset) * b;
        // In range: the map's size was checked against the .meta at open.
        Ok(&self.map[start..start + count * b])
    }

    /// An error unless `fits`: a buffer of `found` values where `what` needs `expected`.
    fn buffer_fits(
        &self,
        fits: bool,
        what: &'static str,
        expected: usize,
        found: usize,
    ) -> Result<(), MdsError> {
        if fits {
            return Ok(());
        }
        Err(MdsError::BufferSize {
            path: self.data_path.clone(),
            what,
            expected,
            found,
        })
    }

    fn check_level(&self, level: usize) -> Result<(), MdsError> {
        if level >= self.nz() {
            return Err(MdsError::LevelOutOfRange {
                path: self.data_path.clone(),
                level,
                nz: self.nz(),
            });
        }
        Ok(())
    }

    /// Decodes one horizontal level (nx·ny values, row-major: x fastest)
    /// of `record` into `out`.
    pub fn read_level<T: Sample>(
        &self,
        record: usize,
        level: usize,
        out: &mut [T],
    ) -> Result<(), MdsError> {
        self.check_level(level)?;
        let len = self.nx() * self.ny();
        self.buffer_fits(out.len() == len, "level", len, out.len())?;
        let bytes = self.bytes(record, level * len, len)?;
        decode(self.meta.precision, bytes, out);
        Ok(())
    }

    /// Checks the horizontal shape is LLC-`n` compact (x = n, y = 13n).
    pub fn check_llc(&self, n: usize) -> Result<(), MdsError> {
        if n == 0 || self.nx() != n || self.ny() != 13 * n {
            return Err(MdsError::NotLlc {
                path: self.data_path.clone(),
                nx: self.nx(),
                ny: self.ny(),
                n,
            });
        }
        Ok(())
    }

    /// Decodes one level of an LLC-`n` field straight into the 13-tile
    /// layout `(tile, j, i)` (13·n² values), without a compact copy.
    pub fn read_level_tiles<T: Sample>(
        &self,
        record: usize,
        level: usize,
        n: usize,
        out: &mut [T],
    ) -> Result<(), MdsError> {
        self.check_llc(n)?;
        self.check_level(level)?;
        let len = llc::NTILES * n * n;
        self.buffer_fits(out.len() == len, "tiled level", len, out.len())?;
        let base = level * len;
        // Tiles 0–6 are contiguous in compact order; tiles 7–12 are n-value
        // row pieces of the rotated faces (llc::compact_index gives where).
        let head = 7 * n * n;
        decode(
            self.meta.precision,
            self.bytes(record, base, head)?,
            &mut out[..head],
        );
        for t in 7..llc::NTILES {
            for j in 0..n {
                let src = llc::compact_index(n, t, j, 0);
                let dst = (t * n + j) * n;
                decode(
                    self.meta.precision,
                    self.bytes(record, base + src, n)?,
                    &mut out[dst..dst + n],
                );
            }
        }
        Ok(())
    }

    /// Decodes the `out.len()` consecutive values of `record` that start at value
    /// `offset` (counted from the record's first value, MITgcm's compact order): one
    /// row of a tile, or one tile of faces 1–3, without decoding the rest.
    pub fn read_values<T: Sample>(
        &self,
        record: usize,
        offset: usize,
        out: &mut [T],
    ) -> Result<(), MdsError> {
        let len = self.meta.record_len();
        self.buffer_fits(
            offset + out.len() <= len,
            "values from the offset",
            len.saturating_sub(offset),
            out.len(),
        )?;
        decode(
            self.meta.precision,
            self.bytes(record, offset, out.len())?,
            out,
        );
        Ok(())
    }

    /// All values of `record` (every level) as f64; meant for small files
    /// such as the 1-D vertical grids `RC`, `RF`, `DRF`, `DRC`.
    pub fn read_all_f64(&self, record: usize) -> Result<Vec<f64>, MdsError> {
        let len = self.meta.record_len();
        let mut out = vec![0.0; len];
        decode(self.meta.precision, self.bytes(record, 0, len)?, &mut out);
        Ok(out)
    }
}
