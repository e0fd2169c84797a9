//! The ECCO model grid a granule needs, read from where it lies on disk: horizontal
//! coordinates and cell corners, rotation angles, cell areas, depth, the vertical
//! coordinates, and the partial-cell fractions (hFac) that decide which points are wet
//! at each level.
//!
//! Loaded from an MDS grid directory (what MITgcm writes: `XC.data/.meta`, …) or from
//! a `GRID_GEOMETRY_*_native_*.nc` file. An MDS grid stays memory-mapped and is read
//! **per tile** ([`Grid::read_tile`], [`Grid::read_bounds_tile`]) or per level (hFac),
//! so a rank's memory does not grow with the grid: native granules stream their
//! coordinates tile by tile (LLC1080: 60 MB per whole horizontal array, LLC4320:
//! 1 GB). Whole arrays ([`Grid::horizontal`], [`Grid::bounds`]) are read on first
//! use and kept, for the users that need every point at once (building mapping
//! factors, rotating vectors for lat-lon granules). A `GRID_GEOMETRY` file is read
//! whole at open (ECCO ships it for LLC90 and LLC270).
//!
//! This is the production reader of a grid. [`crate::synth`] has the two other grid
//! types: `SynthGrid` (the synthetic grid's exact float64 values in memory, for tests
//! to check against) and `geometry::Metrics` (what the synthetic map computes for one
//! tile before it is written as MDS grid files).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::llc::{self, PointType, NTILES};
use crate::mds::{MdsError, MdsFile};
use crate::ncio::{self, AttrValue, Compression, DatasetDef, NcError, NcReader, VarData, VarDef};

#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error(transparent)]
    Mds(#[from] MdsError),
    #[error(transparent)]
    Nc(#[from] NcError),
    #[error("grid location {0} has neither MDS grid files (XC.meta) nor a GRID_GEOMETRY *native*.nc file")]
    NotAGrid(PathBuf),
    #[error("grid file {path}: {what}")]
    Shape { path: PathBuf, what: String },
    #[error("cannot read grid location {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Per-level fractions of one point type.
#[derive(Debug)]
enum Levels {
    /// Memory-mapped MDS file, read one level at a time.
    Mds(Arc<MdsFile>),
    /// `nz × 13·n²` values in tile order.
    Memory(Vec<f32>),
}

/// The horizontal (one-level) grid variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridVar {
    /// Cell-centre longitude.
    Xc,
    /// Cell-centre latitude.
    Yc,
    /// South-west corner longitude.
    Xg,
    /// South-west corner latitude.
    Yg,
    /// cos of the angle from east to model +x.
    AngleCs,
    /// sin of that angle.
    AngleSn,
    /// Cell area.
    RAc,
    /// Model depth.
    Depth,
}

impl GridVar {
    pub const ALL: [GridVar; 8] = [
        GridVar::Xc,
        GridVar::Yc,
        GridVar::Xg,
        GridVar::Yg,
        GridVar::AngleCs,
        GridVar::AngleSn,
        GridVar::RAc,
        GridVar::Depth,
    ];

    /// Name of the MDS grid file.
    pub fn mds_name(self) -> &'static str {
        ["XC", "YC", "XG", "YG", "AngleCS", "AngleSN", "RAC", "Depth"][self as usize]
    }

    /// Name in a `GRID_GEOMETRY` file.
    pub fn nc_name(self) -> &'static str {
        ["XC", "YC", "XG", "YG", "CS", "SN", "rA", "Depth"][self as usize]
    }
}

/// Where the horizontal variables are read from.
#[derive(Debug)]
enum Horizontal {
    /// Memory-mapped MDS files (in [`GridVar::ALL`] order), read per tile; bounds from
    /// the directory's GRID_GEOMETRY file when it has one (EDP copies its bounds), else
    /// worked out from the corners.
    Mds {
        files: Vec<Arc<MdsFile>>,
        bounds_nc: Option<PathBuf>,
    },
    /// Everything in memory, tile order (a GRID_GEOMETRY file).
    Memory {
        arrays: Vec<Vec<f32>>,
        xc_bnds: Vec<f32>,
        yc_bnds: Vec<f32>,
    },
}

/// The native LLC grid.
#[derive(Debug)]
pub struct Grid {
    /// Tile size N (90 for LLC90).
    pub n: usize,
    /// Number of vertical levels.
    pub nz: usize,
    /// Cell-centre depths (negative, nz).
    pub rc: Vec<f64>,
    /// Cell-face depths (negative, nz + 1).
    pub rf: Vec<f64>,
    /// Cell thicknesses (nz).
    pub drf: Vec<f64>,
    horizontal: Horizontal,
    /// Whole arrays of an MDS grid, read on first use ([`GridVar::ALL`] order).
    whole: [OnceLock<Vec<f32>>; 8],
    /// Whole cell-corner bounds, made on first use.
    whole_bounds: OnceLock<(Vec<f32>, Vec<f32>)>,
    hfac: [Levels; 3],
    /// The hFac level last read from an MDS file ((point slot, level), values): the
    /// fields of a granule ask for the same level one after another (every field of a
    /// 2D granule wants level 0 of hFacC), and one level is all it keeps.
    recent_hfac: Mutex<Option<RecentLevel>>,
    /// The wet masks made so far ([`Grid::wet_level`]), one slot per (point slot,
    /// level); empty when the grid's masks would not all fit [`WET_MASK_BUDGET`].
    wet: Vec<OnceLock<WetLevel>>,
    /// Where the grid came from, for messages.
    pub source: PathBuf,
}

/// Which points of a level are wet: 1 where hFac > 0, else 0, in tile order.
pub type WetLevel = Arc<[u8]>;

/// The most bytes of wet masks a grid keeps: every level of the three hFac point
/// types of LLC90 (16 MB) or LLC180 fits; LLC270 and finer make each mask afresh
/// when asked (reading its hFac level, as before there was a cache), so a rank's
/// memory stays flat for the large grids.
pub const WET_MASK_BUDGET: usize = 64 << 20;

/// The empty mask slots of a grid of `n` and `nz` levels: 3·nz, or none over budget.
fn wet_slots(n: usize, nz: usize) -> Vec<OnceLock<WetLevel>> {
    let bytes = 3 * nz * NTILES * n * n;
    if bytes > WET_MASK_BUDGET {
        return Vec::new();
    }
    (0..3 * nz).map(|_| OnceLock::new()).collect()
}

/// One hFac level kept: ((point slot, level), values).
type RecentLevel = ((usize, usize), Vec<f32>);

fn hfac_slot(p: PointType) -> Option<usize> {
    match p {
        PointType::C => Some(0),
        PointType::U => Some(1),
        PointType::V => Some(2),
        PointType::G => None,
    }
}

impl Grid {
    /// Values per horizontal level (13·N²).
    pub fn level_len(&self) -> usize {
        NTILES * self.n * self.n
    }

    /// Opens a local grid location: an MDS grid directory, a directory holding a
    /// GRID_GEOMETRY native file, or that file itself. (An S3 location or an archive is
    /// first made local by [`crate::storage::Storage::grid_path`].)
    pub fn open(loc: &Path) -> Result<Grid, GridError> {
        if loc.is_file() {
            return Grid::from_geometry_nc(loc);
        }
        if loc.join("XC.meta").is_file() {
            return Grid::from_mds_dir(loc);
        }
        match find_geometry_nc(loc)? {
            Some(nc) => Grid::from_geometry_nc(&nc),
            None => Err(GridError::NotAGrid(loc.to_path_buf())),
        }
    }

    /// Reads the fractions of point type `p` at level `k` into `out` (13·N² values).
    /// G points have no hFac of their own: every point counts as wet.
    pub fn hfac_level(&self, p: PointType, k: usize, out: &mut [f32]) -> Result<(), GridError> {
        let Some(slot) = hfac_slot(p) else {
            out.fill(1.0);
            return Ok(());
        };
        match &self.hfac[slot] {
            Levels::Mds(f) => {
                let mut recent = self.recent_hfac.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((key, v)) = recent.as_ref() {
                    if *key == (slot, k) && v.len() == out.len() {
                        out.copy_from_slice(v);
                        return Ok(());
                    }
                }
                // Not under the lock: other threads may read other levels meanwhile.
                let kept = recent.take();
                drop(recent);
                f.read_level_tiles(0, k, self.n, out)?;
                let mut buf = kept.map(|(_, v)| v).unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(out);
                let mut recent = self.recent_hfac.lock().unwrap_or_else(|e| e.into_inner());
                *recent = Some(((slot, k), buf));
                Ok(())
            }
            Levels::Memory(v) => {
                let len = self.level_len();
                out.copy_from_slice(&v[k * len..(k + 1) * len]);
                Ok(())
            }
        }
    }

    /// The wet mask of point type `p` at level `k` (G points: all wet). Kept once made
    /// for a grid within [`WET_MASK_BUDGET`]: every granule reads the same masks, and
    /// decoding an hFac level (float64 in MITgcm's grid files) cost more than the
    /// field's own level.
    pub fn wet_level(&self, p: PointType, k: usize) -> Result<WetLevel, GridError> {
        let kept = hfac_slot(p).and_then(|slot| self.wet.get(slot * self.nz + k));
        if let Some(m) = kept.and_then(OnceLock::get) {
            return Ok(Arc::clone(m));
        }
        let mut h = vec![0f32; self.level_len()];
        self.hfac_level(p, k, &mut h)?;
        let made: WetLevel = h.iter().map(|&x| u8::from(x > 0.0)).collect();
        Ok(match kept {
            Some(slot) => Arc::clone(slot.get_or_init(|| made)),
            None => made,
        })
    }

    /// Reads tile `t` of `var` into `out` (N² values, `(j, i)`).
    pub fn read_tile(&self, var: GridVar, t: usize, out: &mut [f32]) -> Result<(), GridError> {
        let n = self.n;
        if t >= NTILES || out.len() != n * n {
            return Err(GridError::Shape {
                path: self.source.clone(),
                what: format!("tile {t} of {} into {} values", var.mds_name(), out.len()),
            });
        }
        match &self.horizontal {
            Horizontal::Mds { files, .. } => {
                let f = &files[var as usize];
                if t < 7 {
                    // Faces 1, 2 and the cap: one contiguous block.
                    f.read_values(0, llc::compact_index(n, t, 0, 0), out)?;
                } else {
                    for (j, row) in out.chunks_exact_mut(n).enumerate() {
                        f.read_values(0, llc::compact_index(n, t, j, 0), row)?;
                    }
                }
            }
            Horizontal::Memory { arrays, .. } => {
                out.copy_from_slice(&arrays[var as usize][t * n * n..(t + 1) * n * n]);
            }
        }
        Ok(())
    }

    /// One value of `var` at `(t, j, i)`.
    fn point(&self, var: GridVar, t: usize, j: usize, i: usize) -> Result<f32, GridError> {
        let n = self.n;
        match &self.horizontal {
            Horizontal::Mds { files, .. } => {
                let mut v = [0f32];
                files[var as usize].read_values(0, llc::compact_index(n, t, j, i), &mut v)?;
                Ok(v[0])
            }
            Horizontal::Memory { arrays, .. } => Ok(arrays[var as usize][(t * n + j) * n + i]),
        }
    }

    /// The whole array of `var` in tile order (13·N² values), read on first use and kept.
    pub fn horizontal(&self, var: GridVar) -> Result<&[f32], GridError> {
        match &self.horizontal {
            Horizontal::Memory { arrays, .. } => Ok(&arrays[var as usize]),
            Horizontal::Mds { files, .. } => {
                let slot = &self.whole[var as usize];
                if let Some(v) = slot.get() {
                    return Ok(v);
                }
                let mut v = vec![0f32; self.level_len()];
                files[var as usize].read_level_tiles(0, 0, self.n, &mut v)?;
                Ok(slot.get_or_init(|| v))
            }
        }
    }

    /// Cell-corner bounds of tile `t` into `xb`, `yb` (`(j, i, 4)`, 4·N² values each):
    /// sw, se, ne, nw in index space, as ECCO's GRID_GEOMETRY files and EDP's `XC_bnds`.
    pub fn read_bounds_tile(
        &self,
        t: usize,
        xb: &mut [f32],
        yb: &mut [f32],
    ) -> Result<(), GridError> {
        let n = self.n;
        let len = 4 * n * n;
        if t >= NTILES || xb.len() != len || yb.len() != len {
            return Err(GridError::Shape {
                path: self.source.clone(),
                what: format!("bounds of tile {t} into {} values", xb.len()),
            });
        }
        match &self.horizontal {
            Horizontal::Memory {
                xc_bnds, yc_bnds, ..
            } => {
                xb.copy_from_slice(&xc_bnds[t * len..(t + 1) * len]);
                yb.copy_from_slice(&yc_bnds[t * len..(t + 1) * len]);
            }
            Horizontal::Mds {
                bounds_nc: Some(nc),
                ..
            } => {
                let r = NcReader::open(nc)?;
                for (name, out) in [("XC_bnds", xb), ("YC_bnds", yb)] {
                    let v = r.read_box_as_f32(name, &[t, 0, 0, 0], &[1, n, n, 4])?;
                    if v.len() != len {
                        return Err(GridError::Shape {
                            path: nc.clone(),
                            what: format!("{name} has no tile {t} of {n}x{n}x4"),
                        });
                    }
                    out.copy_from_slice(&v);
                }
            }
            Horizontal::Mds {
                bounds_nc: None, ..
            } => {
                let mut xg = vec![0f32; n * n];
                let mut yg = vec![0f32; n * n];
                self.read_tile(GridVar::Xg, t, &mut xg)?;
                self.read_tile(GridVar::Yg, t, &mut yg)?;
                // Corners of the tile itself from its arrays, the others (north and
                // east edges) read point by point from the neighbouring tiles.
                let failed = std::cell::Cell::new(None);
                let g = |tt: usize, j: usize, i: usize| -> (f64, f64) {
                    if tt == t {
                        let p = j * n + i;
                        return (xg[p] as f64, yg[p] as f64);
                    }
                    let read = self
                        .point(GridVar::Xg, tt, j, i)
                        .and_then(|x| Ok((x, self.point(GridVar::Yg, tt, j, i)?)));
                    match read {
                        Ok((x, y)) => (x as f64, y as f64),
                        Err(e) => {
                            failed.set(Some(e));
                            (f64::NAN, f64::NAN)
                        }
                    }
                };
                corner_bounds_tile(n, t, &g, xb, yb);
                if let Some(e) = failed.take() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The whole cell-corner bounds `(tile, j, i, 4)` (see [`Grid::read_bounds_tile`]),
    /// made on first use and kept.
    pub fn bounds(&self) -> Result<(&[f32], &[f32]), GridError> {
        if let Horizontal::Memory {
            xc_bnds, yc_bnds, ..
        } = &self.horizontal
        {
            return Ok((xc_bnds, yc_bnds));
        }
        if let Some((x, y)) = self.whole_bounds.get() {
            return Ok((x, y));
        }
        let len = 4 * self.n * self.n;
        let mut xb = vec![0f32; NTILES * len];
        let mut yb = vec![0f32; NTILES * len];
        for t in 0..NTILES {
            self.read_bounds_tile(
                t,
                &mut xb[t * len..(t + 1) * len],
                &mut yb[t * len..(t + 1) * len],
            )?;
        }
        let (x, y) = self.whole_bounds.get_or_init(|| (xb, yb));
        Ok((x, y))
    }

    /// Loads an MDS grid directory as MITgcm writes it; horizontal files stay mapped.
    pub fn from_mds_dir(dir: &Path) -> Result<Grid, GridError> {
        let open = |name: &str| -> Result<MdsFile, GridError> {
            Ok(MdsFile::open(
                &dir.join(format!("{name}.data")),
                &dir.join(format!("{name}.meta")),
            )?)
        };
        let xc_file = open("XC")?;
        let n = xc_file.nx();
        if n == 0 || xc_file.ny() != NTILES * n {
            return Err(GridError::Shape {
                path: dir.join("XC.meta"),
                what: format!(
                    "dimensions {}x{} are not an LLC compact layout (N x 13N)",
                    xc_file.nx(),
                    xc_file.ny()
                ),
            });
        }
        let mut files = vec![Arc::new(xc_file)];
        for var in &GridVar::ALL[1..] {
            let f = open(var.mds_name())?;
            // Every later read is in range once the shape is checked here.
            f.check_llc(n)?;
            files.push(Arc::new(f));
        }
        let vertical =
            |name: &str| -> Result<Vec<f64>, GridError> { Ok(open(name)?.read_all_f64(0)?) };
        let rf = vertical("RF")?;
        let nz = rf.len().saturating_sub(1);
        let rc = vertical("RC")?;
        let drf = vertical("DRF")?;
        if rc.len() != nz || drf.len() != nz {
            return Err(GridError::Shape {
                path: dir.to_path_buf(),
                what: format!(
                    "RF has {} values but RC has {} and DRF {} (expected RF = nz + 1)",
                    rf.len(),
                    rc.len(),
                    drf.len()
                ),
            });
        }
        let hfac = |name: &str| -> Result<Levels, GridError> {
            let f = open(name)?;
            if f.nz() != nz {
                return Err(GridError::Shape {
                    path: dir.join(format!("{name}.meta")),
                    what: format!("{} levels, but RF describes {nz}", f.nz()),
                });
            }
            Ok(Levels::Mds(Arc::new(f)))
        };
        let hfac = [hfac("hFacC")?, hfac("hFacW")?, hfac("hFacS")?];
        // ECCO grid directories ship the GRID_GEOMETRY file; EDP copies its bounds.
        let bounds_nc = match find_geometry_nc(dir)? {
            Some(nc) => {
                let r = NcReader::open(&nc)?;
                let want = NTILES * n * n * 4;
                for name in ["XC_bnds", "YC_bnds"] {
                    let len: usize = r
                        .var_dims(name)?
                        .iter()
                        .map(|d| r.dims().iter().find(|(k, _)| k == d).map_or(0, |(_, l)| *l))
                        .product();
                    if len != want {
                        return Err(GridError::Shape {
                            path: nc,
                            what: format!("{name} has {len} values, expected {want}"),
                        });
                    }
                }
                Some(nc)
            }
            None => None,
        };
        Ok(Grid {
            n,
            nz,
            rc,
            rf,
            drf,
            horizontal: Horizontal::Mds { files, bounds_nc },
            whole: Default::default(),
            whole_bounds: OnceLock::new(),
            hfac,
            recent_hfac: Mutex::new(None),
            wet: wet_slots(n, nz),
            source: dir.to_path_buf(),
        })
    }

    /// Loads a `GRID_GEOMETRY_*_native_*.nc` file (ECCO's native grid geometry).
    pub fn from_geometry_nc(path: &Path) -> Result<Grid, GridError> {
        let r = NcReader::open(path)?;
        let dims = r.dims();
        let dim = |name: &str| dims.iter().find(|(d, _)| d == name).map(|(_, l)| *l);
        let shape = |what: String| GridError::Shape {
            path: path.to_path_buf(),
            what,
        };
        let n = dim("i").ok_or_else(|| shape("no dimension 'i'".into()))?;
        let nz = dim("k").ok_or_else(|| shape("no dimension 'k'".into()))?;
        if dim("tile") != Some(NTILES) || dim("j") != Some(n) {
            return Err(shape(format!("expected tile = 13 and j = i = {n}")));
        }
        let len = NTILES * n * n;
        let sized = |name: &str, want: usize| -> Result<Vec<f32>, GridError> {
            let v = r.read_as_f32(name)?;
            if v.len() != want {
                return Err(shape(format!(
                    "{name} has {} values, expected {want}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let levels = |name: &str| -> Result<Levels, GridError> {
            Ok(Levels::Memory(sized(name, nz * len)?))
        };
        let arrays = GridVar::ALL
            .iter()
            .map(|v| sized(v.nc_name(), len))
            .collect::<Result<Vec<_>, _>>()?;
        let rf = r.read_as_f64("Zp1")?;
        let drf = r.read_as_f64("drF")?;
        Ok(Grid {
            n,
            nz,
            rc: r.read_as_f64("Z")?,
            rf,
            drf,
            horizontal: Horizontal::Memory {
                arrays,
                xc_bnds: sized("XC_bnds", 4 * len)?,
                yc_bnds: sized("YC_bnds", 4 * len)?,
            },
            whole: Default::default(),
            whole_bounds: OnceLock::new(),
            hfac: [levels("hFacC")?, levels("hFacW")?, levels("hFacS")?],
            recent_hfac: Mutex::new(None),
            wet: wet_slots(n, nz),
            source: path.to_path_buf(),
        })
    }

    /// Writes this grid as a `GRID_GEOMETRY` native file (the subset of ECCO's
    /// geometry variables this crate reads back), atomically.
    pub fn write_geometry_nc(&self, path: &Path) -> Result<ncio::WriteReport, GridError> {
        let n = self.n;
        let nz = self.nz;
        let zip = Some(Compression {
            deflate_level: 5,
            shuffle: true,
        });
        let var = |name: &str, dims: &[&str], data: VarData, chunks: Option<Vec<usize>>| {
            let mut v = VarDef::new(name, dims, data);
            v.compression = zip;
            v.chunks = chunks;
            v
        };
        let tile_chunks = Some(vec![NTILES, n, n]);
        let mut vars = Vec::new();
        for v in GridVar::ALL {
            let (jd, id) = match v {
                GridVar::Xg | GridVar::Yg => ("j_g", "i_g"),
                _ => ("j", "i"),
            };
            vars.push(var(
                v.nc_name(),
                &["tile", jd, id],
                VarData::F32(self.horizontal(v)?.to_vec()),
                tile_chunks.clone(),
            ));
        }
        let (xb, yb) = self.bounds()?;
        for (name, b) in [("XC_bnds", xb), ("YC_bnds", yb)] {
            vars.push(var(
                name,
                &["tile", "j", "i", "nb"],
                VarData::F32(b.to_vec()),
                None,
            ));
        }
        vars.extend([
            var("Z", &["k"], VarData::F64(self.rc.clone()), None),
            var("Zp1", &["k_p1"], VarData::F64(self.rf.clone()), None),
            var("drF", &["k"], VarData::F64(self.drf.clone()), None),
        ]);
        for (name, p, jd, id) in [
            ("hFacC", PointType::C, "j", "i"),
            ("hFacW", PointType::U, "j", "i_g"),
            ("hFacS", PointType::V, "j_g", "i"),
        ] {
            let mut all = vec![0f32; nz * self.level_len()];
            for k in 0..nz {
                let len = self.level_len();
                self.hfac_level(p, k, &mut all[k * len..(k + 1) * len])?;
            }
            vars.push(var(
                name,
                &["k", "tile", jd, id],
                VarData::F32(all),
                Some(vec![1, NTILES, n, n]),
            ));
        }
        let def = DatasetDef {
            dims: vec![
                ("i".into(), n),
                ("i_g".into(), n),
                ("j".into(), n),
                ("j_g".into(), n),
                ("k".into(), nz),
                ("k_p1".into(), nz + 1),
                ("tile".into(), NTILES),
                ("nb".into(), 4),
            ],
            vars,
            global_attrs: vec![(
                "title".into(),
                AttrValue::Str(format!("ECCO native LLC{n} grid geometry (written by edp)")),
            )],
        };
        Ok(ncio::write_atomic(def, path)?)
    }
}

fn find_geometry_nc(dir: &Path) -> Result<Option<PathBuf>, GridError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(source) => {
            return Err(GridError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut hits: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("native") && n.ends_with(".nc") && !n.starts_with('.'))
        })
        .collect();
    hits.sort();
    Ok(hits.into_iter().next())
}

fn to_xyz(lon: f64, lat: f64) -> [f64; 3] {
    let (lo, la) = (lon.to_radians(), lat.to_radians());
    [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()]
}

fn to_lonlat(p: [f64; 3]) -> (f64, f64) {
    let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    (
        (p[1]).atan2(p[0]).to_degrees(),
        (p[2] / r).asin().to_degrees(),
    )
}

/// Cell-corner bounds from the G points, looking into neighbouring tiles for the
/// corners on a tile's north and east sides; where no tile stores a corner (the open
/// southern ends, the cube vertices) it is extrapolated along the grid line on the
/// sphere.
pub fn corner_bounds(n: usize, xg: &[f32], yg: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let g = |t: usize, j: usize, i: usize| {
        let idx = (t * n + j) * n + i;
        (xg[idx] as f64, yg[idx] as f64)
    };
    let len = 4 * n * n;
    let mut xb = vec![0f32; NTILES * len];
    let mut yb = vec![0f32; NTILES * len];
    for t in 0..NTILES {
        corner_bounds_tile(
            n,
            t,
            &g,
            &mut xb[t * len..(t + 1) * len],
            &mut yb[t * len..(t + 1) * len],
        );
    }
    (xb, yb)
}

/// [`corner_bounds`] of tile `t` only (`(j, i, 4)` into `xb`, `yb`); `g(t, j, i)` gives
/// the stored G point `(lon, lat)` of any tile.
fn corner_bounds_tile(
    n: usize,
    t: usize,
    g: &dyn Fn(usize, usize, usize) -> (f64, f64),
    xb: &mut [f32],
    yb: &mut [f32],
) {
    let corner = |jg: usize, ig: usize| -> (f64, f64) {
        // Inside the tile: its own G point (what llc::corner answers first).
        if jg < n && ig < n {
            return g(t, jg, ig);
        }
        if let Some(c) = llc::corner(n, t, jg, ig, g) {
            return c;
        }
        // Extrapolate from the two previous corners along the out-of-range index.
        let (j1, i1, j2, i2) = match (jg == n, ig == n) {
            (true, true) => (n - 1, n - 1, n.saturating_sub(2), n.saturating_sub(2)),
            (true, false) => (n - 1, ig, n.saturating_sub(2), ig),
            _ => (jg, n - 1, jg, n.saturating_sub(2)),
        };
        let a = llc::corner(n, t, j1, i1, g).unwrap_or_else(|| g(t, j1.min(n - 1), i1.min(n - 1)));
        let b = llc::corner(n, t, j2, i2, g).unwrap_or(a);
        let (pa, pb) = (to_xyz(a.0, a.1), to_xyz(b.0, b.1));
        to_lonlat([
            2.0 * pa[0] - pb[0],
            2.0 * pa[1] - pb[1],
            2.0 * pa[2] - pb[2],
        ])
    };
    for j in 0..n {
        for i in 0..n {
            let base = 4 * (j * n + i);
            for (c, (dj, di)) in [(0, 0), (0, 1), (1, 1), (1, 0)].into_iter().enumerate() {
                let (x, y) = corner(j + dj, i + di);
                xb[base + c] = x as f32;
                yb[base + c] = y as f32;
            }
        }
    }
}
