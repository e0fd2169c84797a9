//! Writing MDS pairs the way MITgcm does, so synthetic inputs and test
//! fixtures go through exactly the reader (ours and xmitgcm's) that real
//! ECCO output does.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{with_suffix, MdsError, MdsMeta, Precision, Sample};
use crate::error::FileError;
use crate::llc;

/// Streams one LLC field, level by level from the 13-tile layout, into
/// `base.data`; [`MdsWriter::finish`] then writes `base.meta`.
#[derive(Debug)]
pub struct MdsWriter {
    data_path: PathBuf,
    meta: MdsMeta,
    n: usize,
    levels: usize,
    written: usize,
    out: BufWriter<File>,
    // Level-sized scratch, allocated on first use of each input type.
    compact32: Vec<f32>,
    compact64: Vec<f64>,
    bytes: Vec<u8>,
}

impl MdsWriter {
    /// Starts `base.data` for an LLC-`n` field with `nz` levels (`None`: a
    /// 2-D field, `nDims = 2`) and one record named `field_name`.
    pub fn create(
        base: &Path,
        n: usize,
        nz: Option<usize>,
        precision: Precision,
        field_name: &str,
        time_step: Option<u64>,
    ) -> Result<MdsWriter, MdsError> {
        let data_path = with_suffix(base, ".data");
        let meta_path = with_suffix(base, ".meta");
        if n == 0 || nz == Some(0) {
            return Err(MdsError::Writer {
                path: data_path,
                message: format!("cannot write an LLC field with n = {n} and nz = {nz:?}"),
            });
        }
        let field = field_name.trim();
        if field.is_empty() || field.contains(['\'', '\n']) {
            return Err(MdsError::Writer {
                path: data_path,
                message: format!("field name {field_name:?} cannot go into a fldList"),
            });
        }
        // A stale .meta next to a new, partial .data would describe the wrong
        // file; it is rewritten by `finish`.
        match std::fs::remove_file(&meta_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(FileError::at(&meta_path, "remove the old .meta file")(e).into())
            }
            _ => {}
        }
        let file =
            File::create(&data_path).map_err(FileError::at(&data_path, "create the .data file"))?;
        let mut dims = vec![n, 13 * n];
        dims.extend(nz);
        let meta = MdsMeta {
            path: meta_path,
            ndims: dims.len(),
            dims,
            precision,
            nrecords: 1,
            time_step,
            fields: vec![field.to_string()],
        };
        Ok(MdsWriter {
            data_path,
            meta,
            n,
            levels: nz.unwrap_or(1),
            written: 0,
            out: BufWriter::new(file),
            compact32: Vec::new(),
            compact64: Vec::new(),
            bytes: Vec::new(),
        })
    }

    /// Appends the next level, given as 13 tiles `(tile, j, i)`.
    pub fn write_level_tiles(&mut self, tiles_level: &[f32]) -> Result<(), MdsError> {
        let mut compact = std::mem::take(&mut self.compact32);
        let written = self.write_tiles(tiles_level, &mut compact);
        self.compact32 = compact;
        written
    }

    /// [`MdsWriter::write_level_tiles`] from f64 tiles (rounded to f32 for a
    /// float32 file, as MITgcm does with `writeBinaryPrec = 32`).
    pub fn write_level_tiles_f64(&mut self, tiles_level: &[f64]) -> Result<(), MdsError> {
        let mut compact = std::mem::take(&mut self.compact64);
        let written = self.write_tiles(tiles_level, &mut compact);
        self.compact64 = compact;
        written
    }

    /// Reorders a level of tiles into `compact` (kept between levels) and writes it.
    fn write_tiles<T: Sample + Default>(
        &mut self,
        tiles_level: &[T],
        compact: &mut Vec<T>,
    ) -> Result<(), MdsError> {
        self.check_next(tiles_level.len())?;
        compact.resize(tiles_level.len(), T::default());
        llc::tiles_to_compact(self.n, tiles_level, compact);
        self.bytes.clear();
        for v in compact.iter() {
            v.encode(self.meta.precision, &mut self.bytes);
        }
        self.emit()
    }

    /// Checks a level of `len` values may be written next.
    fn check_next(&self, len: usize) -> Result<(), MdsError> {
        let expected = llc::NTILES * self.n * self.n;
        if len != expected {
            return Err(MdsError::BufferSize {
                path: self.data_path.clone(),
                what: "tiled level",
                expected,
                found: len,
            });
        }
        if self.written == self.levels {
            return Err(MdsError::Writer {
                path: self.data_path.clone(),
                message: format!("all {} levels already written", self.levels),
            });
        }
        Ok(())
    }

    /// Writes the encoded level in `self.bytes`.
    fn emit(&mut self) -> Result<(), MdsError> {
        self.out
            .write_all(&self.bytes)
            .map_err(FileError::at(&self.data_path, "write the .data file"))?;
        self.written += 1;
        Ok(())
    }

    /// Checks every level was written, flushes the data and writes the `.meta`.
    pub fn finish(self) -> Result<(), MdsError> {
        if self.written != self.levels {
            return Err(MdsError::Writer {
                path: self.data_path,
                message: format!("{} of {} levels written", self.written, self.levels),
            });
        }
        let io = |action| FileError::at(&self.data_path, action);
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io("write the .data file"))?;
        file.sync_all().map_err(io("sync the .data file"))?;
        write_meta(&self.meta)
    }
}

fn write_meta(meta: &MdsMeta) -> Result<(), MdsError> {
    std::fs::write(&meta.path, meta.to_text())
        .map_err(FileError::at(&meta.path, "write the .meta file"))?;
    Ok(())
}

/// Writes a 1-D vertical grid file (`RC`, `RF`, `DRF`, `DRC`, …) the way
/// MITgcm lays it out: `nDims = 3`, dims `[1, 1, nz]`, float64, one record
/// named `name`.
pub fn write_vector_f64(base: &Path, values: &[f64], name: &str) -> Result<(), MdsError> {
    let data_path = with_suffix(base, ".data");
    let name = name.trim();
    if values.is_empty() || name.is_empty() || name.contains(['\'', '\n']) {
        return Err(MdsError::Writer {
            path: data_path,
            message: format!(
                "need values and a plain name (got {} values, name {name:?})",
                values.len()
            ),
        });
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(&data_path, bytes).map_err(FileError::at(&data_path, "write the .data file"))?;
    write_meta(&MdsMeta {
        path: with_suffix(base, ".meta"),
        ndims: 3,
        dims: vec![1, 1, values.len()],
        precision: Precision::F64,
        nrecords: 1,
        time_step: None,
        fields: vec![name.to_string()],
    })
}
