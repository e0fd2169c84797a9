//! Writing the synthetic files and keeping count of what was written.
//!
//! Every MDS file goes through [`crate::mds::MdsWriter`] (grid files as float64
//! from f64 levels, model output as float32).

use std::path::{Path, PathBuf};

use super::SynthError;
use crate::error::FileError;
use crate::mds::{MdsWriter, Precision};

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
            .map_err(FileError::at(path, "stat the written file"))?
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
    std::fs::create_dir_all(path).map_err(FileError::at(path, "create the directory"))?;
    Ok(())
}

/// Writes a small text file.
pub fn write_text(path: &Path, text: &str) -> Result<(), SynthError> {
    std::fs::write(path, text).map_err(FileError::at(path, "write the file"))?;
    Ok(())
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
    let mut w = MdsWriter::create(&base, n, None, Precision::F64, name, None)?;
    w.write_level_tiles_f64(tiles)?;
    w.finish()?;
    tally.add_pair(&base)
}
