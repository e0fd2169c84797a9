//! The mapping-factor file: one little-endian binary file, memory-mapped read-only
//! by every rank so the ranks of a node share one copy in the page cache.
//!
//! EDP keeps its factors as LZMA-compressed Python pickles, which nothing but Python
//! reads; this format is ours, versioned, and validated when opened.
//!
//! Layout (all integers little-endian; every array starts on an 8-byte boundary,
//! padded with zeros):
//!
//! ```text
//! offset size  header (128 bytes)
//!   0     8    magic "EDPFACTR"
//!   8     4    format version (u32, = 1)
//!  12     4    header size in bytes (u32, = 128)
//!  16     4    LLC tile size N (u32)
//!  20     4    levels L (u32)
//!  24     4    nlat (u32)                 target grid: rows south → north,
//!  28     4    nlon (u32)                 columns west → east from −180°
//!  32     8    resolution (f64, degrees)
//!  40     8    min_L (f64, m)             smallest native cell side
//!  48     8    max_L (f64, m)             largest native cell side (nearest search)
//!  56     4    neighbour cap of the radius search (u32)
//!  60     4    reserved (0)
//!  64    32    grid hash (SHA-256, see `regrid::grid_hash`)
//!  96     8    file size in bytes (u64)
//! 104    24    reserved (0)
//! 128  16·L    level directory, per level: block offset (u64), rows R (u32), entries E (u32)
//!
//! level block (at its offset):
//!   targets  R × u32   target cell t = lat_row·nlon + lon_col of each row, increasing
//!   row_ptr  (R+1) × u32   row r = entries row_ptr[r] .. row_ptr[r+1]; row_ptr[R] = E
//!   cols     E × u32   native C point, tile order (tile·N + j)·N + i, of one level
//!   weights  E × f32   (1/count of the row: EDP's equal-weight mean)
//!   ocean    ⌈nlat·nlon/8⌉ bytes: EDP's land mask, bit t%8 of byte t/8 set = ocean
//! ```
//!
//! A target cell with no row gets the fill value.

use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::factors::{FactorSet, FactorsHeader};
use super::{GridHash, RegridError, TargetGrid};
use crate::error::FileError;
use crate::llc::NTILES;

pub const MAGIC: &[u8; 8] = b"EDPFACTR";
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 128;
const DIR_ENTRY: usize = 16;

fn pad8(v: &mut Vec<u8>) {
    while v.len() % 8 != 0 {
        v.push(0);
    }
}

/// Appends `xs` as little-endian bytes, padded to 8 bytes.
fn put<T: Copy, const N: usize>(out: &mut Vec<u8>, xs: &[T], le: fn(T) -> [u8; N]) {
    out.reserve(xs.len() * N);
    for &x in xs {
        out.extend_from_slice(&le(x));
    }
    pad8(out);
}

/// Serialises a factor set in the documented layout.
pub fn to_bytes(set: &FactorSet) -> Vec<u8> {
    let mut out = vec![0u8; HEADER + DIR_ENTRY * set.levels.len()];
    pad8(&mut out);
    let mut dir = Vec::with_capacity(set.levels.len());
    for lf in &set.levels {
        let offset = out.len() as u64;
        put(&mut out, &lf.targets, u32::to_le_bytes);
        put(&mut out, &lf.row_ptr, u32::to_le_bytes);
        put(&mut out, &lf.cols, u32::to_le_bytes);
        put(&mut out, &lf.weights, f32::to_le_bytes);
        put(&mut out, &lf.ocean, |b: u8| [b]);
        dir.push((offset, lf.targets.len() as u32, lf.cols.len() as u32));
    }
    let total = out.len() as u64;
    let h = &mut out[..HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER as u32).to_le_bytes());
    h[16..20].copy_from_slice(&(set.header.n as u32).to_le_bytes());
    h[20..24].copy_from_slice(&(set.levels.len() as u32).to_le_bytes());
    h[24..28].copy_from_slice(&(set.header.target.nlat as u32).to_le_bytes());
    h[28..32].copy_from_slice(&(set.header.target.nlon as u32).to_le_bytes());
    h[32..40].copy_from_slice(&set.header.target.resolution.to_le_bytes());
    h[40..48].copy_from_slice(&set.header.min_l.to_le_bytes());
    h[48..56].copy_from_slice(&set.header.max_l.to_le_bytes());
    h[56..60].copy_from_slice(&(set.header.neighbours as u32).to_le_bytes());
    h[64..96].copy_from_slice(&set.header.grid_hash.0);
    h[96..104].copy_from_slice(&total.to_le_bytes());
    for (k, (offset, rows, nnz)) in dir.into_iter().enumerate() {
        let e = HEADER + DIR_ENTRY * k;
        out[e..e + 8].copy_from_slice(&offset.to_le_bytes());
        out[e + 8..e + 12].copy_from_slice(&rows.to_le_bytes());
        out[e + 12..e + 16].copy_from_slice(&nnz.to_le_bytes());
    }
    out
}

/// Writes a factor set to `path` atomically (temporary file in the same directory,
/// synced, then renamed), creating the directory if needed.
pub fn write(set: &FactorSet, path: &Path) -> Result<u64, RegridError> {
    let io = |action: &'static str, p: &Path| FileError::at(p, action);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "factors".into());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{stamp}.tmp", std::process::id()));
    let bytes = to_bytes(set);
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result.map(|()| bytes.len() as u64)?)
}

enum Backing {
    Map(Mmap),
    /// 8-byte aligned owned copy (factors built in memory).
    Owned(Vec<u64>, usize),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v, len) => &bytemuck::cast_slice::<u64, u8>(v)[..*len],
        }
    }
}

#[derive(Debug, Clone)]
struct LevelSpan {
    targets: Range<usize>,
    row_ptr: Range<usize>,
    cols: Range<usize>,
    weights: Range<usize>,
    ocean: Range<usize>,
}

/// One level's factors, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct LevelView<'a> {
    pub targets: &'a [u32],
    pub row_ptr: &'a [u32],
    pub cols: &'a [u32],
    pub weights: &'a [f32],
    pub ocean: &'a [u8],
    /// The rows as runs of consecutive target cells (see [`Run`]), in target order.
    pub runs: &'a [Run],
}

/// Rows `row .. row + len` of a level, whose targets are the consecutive cells
/// `target .. target + len`: a regridding walks these runs, not one target at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub target: u32,
    pub row: u32,
    pub len: u32,
}

/// The runs of consecutive cells in `targets` (strictly increasing).
fn runs_of(targets: &[u32]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (r, &t) in targets.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.target + run.len == t => run.len += 1,
            _ => runs.push(Run {
                target: t,
                row: r as u32,
                len: 1,
            }),
        }
    }
    runs
}

impl LevelView<'_> {
    /// EDP's land mask at target cell `t` (true = ocean).
    pub fn is_ocean(&self, t: usize) -> bool {
        self.ocean[t / 8] & (1 << (t % 8)) != 0
    }
}

/// Mapping factors opened from a file (or built in memory), validated.
pub struct Factors {
    data: Backing,
    /// Where they came from (the file, or a description).
    pub origin: PathBuf,
    pub header: FactorsHeader,
    spans: Vec<LevelSpan>,
    /// Per level, its rows as runs of consecutive targets (found when opened).
    runs: Vec<Vec<Run>>,
    /// The grids whose hash these factors were checked against while both stay in use
    /// (see [`crate::regrid::store::check_in_use`]).
    pub(crate) hashed_grids: std::sync::Mutex<Vec<std::sync::Weak<crate::grid::Grid>>>,
}

impl std::fmt::Debug for Factors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factors")
            .field("origin", &self.origin)
            .field("n", &self.header.n)
            .field("levels", &self.spans.len())
            .field("target", &self.header.target)
            .field("grid_hash", &self.header.grid_hash)
            .finish()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_bits(u64_at(b, at))
}

impl Factors {
    /// Memory-maps and validates a factor file.
    pub fn open(path: &Path) -> Result<Factors, RegridError> {
        let f = fs::File::open(path).map_err(FileError::at(path, "open"))?;
        // SAFETY: the file is mapped read-only; factor files are replaced by rename,
        // never rewritten in place, so the mapped pages do not change under us.
        let map = unsafe { Mmap::map(&f) }.map_err(FileError::at(path, "memory-map"))?;
        Factors::parse(Backing::Map(map), path.to_path_buf())
    }

    /// Factors built in memory (no file).
    pub fn from_set(set: &FactorSet) -> Result<Factors, RegridError> {
        let bytes = to_bytes(set);
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
        Factors::parse(
            Backing::Owned(words, bytes.len()),
            PathBuf::from("<in memory>"),
        )
    }

    fn parse(data: Backing, origin: PathBuf) -> Result<Factors, RegridError> {
        let bad = |what: String| RegridError::Format {
            path: origin.clone(),
            what,
        };
        if cfg!(target_endian = "big") {
            return Err(bad(
                "factor files are little-endian; this host is big-endian".into(),
            ));
        }
        let b = data.bytes();
        if b.len() < HEADER || &b[0..8] != MAGIC {
            return Err(bad("not an edp mapping-factor file (bad magic)".into()));
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, but this edp reads version {FORMAT_VERSION}; rebuild with `edp factors`"
            )));
        }
        if u32_at(b, 12) as usize != HEADER {
            return Err(bad(format!(
                "header size {} (expected {HEADER})",
                u32_at(b, 12)
            )));
        }
        let size = u64_at(b, 96);
        if size != b.len() as u64 {
            return Err(bad(format!(
                "{} bytes, but the header says {size} (truncated or damaged)",
                b.len()
            )));
        }
        let n = u32_at(b, 16) as usize;
        let levels = u32_at(b, 20) as usize;
        let (nlat, nlon) = (u32_at(b, 24) as usize, u32_at(b, 28) as usize);
        let resolution = f64_at(b, 32);
        let target = TargetGrid::global(resolution).map_err(|e| bad(e.to_string()))?;
        if target.nlat != nlat || target.nlon != nlon || n == 0 || levels == 0 {
            return Err(bad(format!(
                "inconsistent header: N={n}, {levels} levels, {nlat}x{nlon} at {resolution}°"
            )));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[64..96]);
        let ntarget = nlat * nlon;
        let nsource = NTILES * n * n;
        let mut spans = Vec::with_capacity(levels);
        let dir_end = HEADER + DIR_ENTRY * levels;
        if dir_end > b.len() {
            return Err(bad("level directory runs past the end of the file".into()));
        }
        for k in 0..levels {
            let e = HEADER + DIR_ENTRY * k;
            let offset = u64_at(b, e) as usize;
            let rows = u32_at(b, e + 8) as usize;
            let nnz = u32_at(b, e + 12) as usize;
            let mut at = offset;
            let mut take = |bytes: usize| -> Result<Range<usize>, RegridError> {
                if at % 8 != 0 || at.checked_add(bytes).map_or(true, |end| end > b.len()) {
                    return Err(bad(format!(
                        "level {k}: block outside the file or misaligned"
                    )));
                }
                let r = at..at + bytes;
                at = (at + bytes).div_ceil(8) * 8;
                Ok(r)
            };
            let span = LevelSpan {
                targets: take(4 * rows)?,
                row_ptr: take(4 * (rows + 1))?,
                cols: take(4 * nnz)?,
                weights: take(4 * nnz)?,
                ocean: take(ntarget.div_ceil(8))?,
            };
            spans.push(span);
        }
        let (min_l, max_l, neighbours) = (f64_at(b, 40), f64_at(b, 48), u32_at(b, 56) as usize);
        let mut f = Factors {
            data,
            origin: origin.clone(),
            header: FactorsHeader {
                n,
                target,
                grid_hash: GridHash(hash),
                min_l,
                max_l,
                neighbours,
            },
            spans,
            runs: Vec::new(),
            hashed_grids: Default::default(),
        };
        let mut runs = Vec::with_capacity(levels);
        for k in 0..levels {
            let v = f.level(k).map_err(|e| bad(e.to_string()))?;
            let nnz = v.cols.len();
            let ok_targets = v.targets.windows(2).all(|w| w[0] < w[1])
                && v.targets.last().map_or(true, |&t| (t as usize) < ntarget);
            let ok_ptr = v.row_ptr.first() == Some(&0)
                && v.row_ptr.last().map(|&x| x as usize) == Some(nnz)
                && v.row_ptr.windows(2).all(|w| w[0] < w[1]);
            let ok_cols = v.cols.iter().all(|&c| (c as usize) < nsource);
            let ok_weights = v.weights.iter().all(|w| w.is_finite());
            let ok_mask = v.targets.iter().all(|&t| v.is_ocean(t as usize));
            if !(ok_targets && ok_ptr && ok_cols && ok_weights && ok_mask) {
                return Err(bad(format!(
                    "level {k} is inconsistent (targets ok: {ok_targets}, row pointers ok: {ok_ptr}, sources ok: {ok_cols}, weights ok: {ok_weights}, rows inside the ocean mask: {ok_mask})"
                )));
            }
            runs.push(runs_of(v.targets));
        }
        f.runs = runs;
        Ok(f)
    }

    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.spans.len()
    }

    /// The factors of level `k`.
    pub fn level(&self, k: usize) -> Result<LevelView<'_>, RegridError> {
        let s = self.spans.get(k).ok_or_else(|| {
            RegridError::Shape(format!(
                "level {k} asked for, but the factors {} have {} level(s)",
                self.origin.display(),
                self.spans.len()
            ))
        })?;
        let b = self.data.bytes();
        Ok(LevelView {
            targets: bytemuck::cast_slice(&b[s.targets.clone()]),
            row_ptr: bytemuck::cast_slice(&b[s.row_ptr.clone()]),
            cols: bytemuck::cast_slice(&b[s.cols.clone()]),
            weights: bytemuck::cast_slice(&b[s.weights.clone()]),
            ocean: &b[s.ocean.clone()],
            runs: self.runs.get(k).map_or(&[], Vec::as_slice),
        })
    }

    /// Refuses factors built for another grid.
    pub fn check_grid(&self, hash: &GridHash, grid_source: &Path) -> Result<(), RegridError> {
        if &self.header.grid_hash != hash {
            return Err(RegridError::GridMismatch {
                path: self.origin.clone(),
                file_hash: self.header.grid_hash,
                grid_hash: *hash,
                grid_source: grid_source.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Size of the factor data in bytes.
    pub fn byte_len(&self) -> usize {
        self.data.bytes().len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::factors::{FactorSet, FactorsHeader, LevelFactors};
    use super::*;

    fn tiny() -> FactorSet {
        let target = TargetGrid::global(45.0).unwrap(); // 4 x 8
        let lf = |targets: Vec<u32>, cols: Vec<u32>| {
            let mut ocean = vec![0u8; 4];
            for &t in &targets {
                ocean[t as usize / 8] |= 1 << (t % 8);
            }
            let row_ptr = (0..=targets.len() as u32).collect();
            LevelFactors {
                weights: vec![1.0; cols.len()],
                targets,
                row_ptr,
                cols,
                ocean,
            }
        };
        FactorSet {
            header: FactorsHeader {
                n: 2,
                target,
                grid_hash: GridHash([7; 32]),
                min_l: 1.0,
                max_l: 2.0,
                neighbours: 3,
            },
            levels: vec![lf(vec![1, 5, 31], vec![0, 51, 3]), lf(vec![], vec![])],
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.edpf");
        let set = tiny();
        let bytes = write(&set, &path).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        let f = Factors::open(&path).unwrap();
        assert_eq!((f.header.n, f.levels(), f.header.neighbours), (2, 2, 3));
        assert_eq!(f.header.grid_hash, GridHash([7; 32]));
        let v = f.level(0).unwrap();
        assert_eq!(v.targets, &[1, 5, 31]);
        assert_eq!(v.cols, &[0, 51, 3]);
        assert_eq!(v.row_ptr, &[0, 1, 2, 3]);
        assert!(v.is_ocean(31) && !v.is_ocean(30));
        assert!(f.level(1).unwrap().targets.is_empty());
        assert!(f.level(2).is_err());
        // Only the temporary file's rename remains: no leftovers.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn header_fields_sit_where_documented() {
        let b = to_bytes(&tiny());
        assert_eq!(&b[0..8], b"EDPFACTR");
        assert_eq!(u32_at(&b, 8), 1);
        assert_eq!(u32_at(&b, 16), 2);
        assert_eq!(u32_at(&b, 20), 2);
        assert_eq!((u32_at(&b, 24), u32_at(&b, 28)), (4, 8));
        assert_eq!(f64_at(&b, 32), 45.0);
        assert_eq!(u64_at(&b, 96), b.len() as u64);
        let off = u64_at(&b, 128) as usize;
        assert_eq!((u32_at(&b, 136), u32_at(&b, 140)), (3, 3));
        assert_eq!(u32_at(&b, off + 8), 31, "third target of level 0");
    }

    #[test]
    fn damaged_files_are_refused() {
        let good = to_bytes(&tiny());
        let dir = tempfile::tempdir().unwrap();
        let check = |bytes: &[u8], expect: &str| {
            let p = dir.path().join("x");
            fs::write(&p, bytes).unwrap();
            let e = Factors::open(&p).unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        };
        check(&good[..good.len() - 8], "truncated");
        let mut v = good.clone();
        v[0] = b'X';
        check(&v, "bad magic");
        let mut v = good.clone();
        v[8] = 2;
        check(&v, "format version 2");
        // A source index beyond 13·N².
        let mut v = good.clone();
        let off = u64_at(&good, 128) as usize;
        let cols = off + 16 + 16; // targets (12 → 16) + row_ptr (16)
        v[cols..cols + 4].copy_from_slice(&999u32.to_le_bytes());
        check(&v, "level 0 is inconsistent");
    }

    #[test]
    fn other_grids_are_refused() {
        let f = Factors::from_set(&tiny()).unwrap();
        assert!(f.check_grid(&GridHash([7; 32]), Path::new("g")).is_ok());
        let e = f
            .check_grid(&GridHash([8; 32]), Path::new("grid/dir"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0707") && e.contains("0808") && e.contains("grid/dir"),
            "{e}"
        );
    }
}
