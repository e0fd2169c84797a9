//! Writing the synthetic files and keeping count of what was written.
//!
//! Model-output fields (float32) go through [`crate::mds::MdsWriter`]. Grid
//! files must be float64 at full precision, which that writer (it takes `f32`
//! levels) cannot carry, so this module streams float64 LLC levels itself and
//! borrows [`MdsMeta::to_text`] so the `.meta` text is the same as everywhere else.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SynthError;
use crate::llc::{self, NTILES};
use crate::mds::{MdsMeta, Precision};

/// `base` + `suffix` (MDS bases have no extension of their own).
pub fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Files and bytes written so far.
#[derive(Debug, Default)]
pub struct Tally {
    pub files: usize,
    pub bytes: u64,
}

impl Tally {
    /// Counts a finished file by its size on disk.
    pub fn add(&mut self, path: &Path) -> Result<(), SynthError> {
        let len = std::fs::metadata(path)
            .map_err(|source| SynthError::Io {
                path: path.to_path_buf(),
                action: "stat the written file",
                source,
            })?
            .len();
        self.files += 1;
        self.bytes += len;
        Ok(())
    }

    /// Counts an MDS pair.
    pub fn add_pair(&mut self, base: &Path) -> Result<(), SynthError> {
        self.add(&with_suffix(base, ".data"))?;
        self.add(&with_suffix(base, ".meta"))
    }
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(path).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        action: "create the directory",
        source,
    })
}

/// Writes a small text file.
pub fn write_text(path: &Path, text: &str) -> Result<(), SynthError> {
    std::fs::write(path, text).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        action: "write the file",
        source,
    })
}

/// Streams an LLC float64 field level by level (13 tiles per level) into
/// `base.data`, then writes `base.meta`.
pub struct F64Writer {
    data_path: PathBuf,
    meta: MdsMeta,
    n: usize,
    out: BufWriter<File>,
    compact: Vec<f64>,
    bytes: Vec<u8>,
}

impl F64Writer {
    /// Starts a field of `nz` levels (`None`: 2D) named `name`.
    pub fn create(
        base: &Path,
        n: usize,
        nz: Option<usize>,
        name: &str,
    ) -> Result<F64Writer, SynthError> {
        let data_path = with_suffix(base, ".data");
        let file = File::create(&data_path).map_err(|source| SynthError::Io {
            path: data_path.clone(),
            action: "create the .data file",
            source,
        })?;
        let mut dims = vec![n, NTILES * n];
        dims.extend(nz);
        let meta = MdsMeta {
            path: with_suffix(base, ".meta"),
            ndims: dims.len(),
            dims,
            precision: Precision::F64,
            nrecords: 1,
            time_step: None,
            fields: vec![name.to_string()],
        };
        Ok(F64Writer {
            data_path,
            meta,
            n,
            out: BufWriter::new(file),
            compact: vec![0.0; NTILES * n * n],
            bytes: Vec::new(),
        })
    }

    /// Appends one level given in tile order.
    pub fn write_level(&mut self, tiles: &[f64]) -> Result<(), SynthError> {
        llc::tiles_to_compact(self.n, tiles, &mut self.compact);
        self.bytes.clear();
        self.bytes
            .extend(self.compact.iter().flat_map(|v| v.to_be_bytes()));
        self.out
            .write_all(&self.bytes)
            .map_err(|source| SynthError::Io {
                path: self.data_path.clone(),
                action: "write the .data file",
                source,
            })
    }

    /// Flushes the data and writes the `.meta`.
    pub fn finish(self) -> Result<(), SynthError> {
        let path = self.data_path;
        self.out
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(|source| SynthError::Io {
                path: path.clone(),
                action: "flush the .data file",
                source,
            })?;
        write_text(&self.meta.path, &self.meta.to_text())
    }
}

/// Writes a 2D float64 grid file in one go.
pub fn write_2d_f64(
    dir: &Path,
    name: &str,
    n: usize,
    tiles: &[f64],
    tally: &mut Tally,
) -> Result<(), SynthError> {
    let base = dir.join(name);
    let mut w = F64Writer::create(&base, n, None, name)?;
    w.write_level(tiles)?;
    w.finish()?;
    tally.add_pair(&base)
}
