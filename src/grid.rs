//! The ECCO model grid a granule needs: horizontal coordinates and cell corners,
//! rotation angles, cell areas, depth, the vertical coordinates, and the partial-cell
//! fractions (hFac) that decide which points are wet at each level.
//!
//! Loaded from an MDS grid directory (what MITgcm writes: `XC.data/.meta`, …) or from
//! a `GRID_GEOMETRY_*_native_*.nc` file. Horizontal arrays are held in tile order as
//! f32 (what granules store); hFac stays memory-mapped when it comes from MDS and is
//! read one level at a time, so large grids do not need every level in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The native LLC grid.
#[derive(Debug)]
pub struct Grid {
    /// Tile size N (90 for LLC90).
    pub n: usize,
    /// Number of vertical levels.
    pub nz: usize,
    pub xc: Vec<f32>,
    pub yc: Vec<f32>,
    pub xg: Vec<f32>,
    pub yg: Vec<f32>,
    /// Cell corners `(tile, j, i, 4)`: sw, se, ne, nw in index space, as ECCO's
    /// GRID_GEOMETRY files and EDP's `XC_bnds`.
    pub xc_bnds: Vec<f32>,
    pub yc_bnds: Vec<f32>,
    pub angle_cs: Vec<f32>,
    pub angle_sn: Vec<f32>,
    pub rac: Vec<f32>,
    pub depth: Vec<f32>,
    /// Cell-centre depths (negative, nz).
    pub rc: Vec<f64>,
    /// Cell-face depths (negative, nz + 1).
    pub rf: Vec<f64>,
    /// Cell thicknesses (nz).
    pub drf: Vec<f64>,
    hfac: [Levels; 3],
    /// Where the grid came from, for messages.
    pub source: PathBuf,
}

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
            Levels::Mds(f) => Ok(f.read_level_tiles(0, k, self.n, out)?),
            Levels::Memory(v) => {
                let len = self.level_len();
                out.copy_from_slice(&v[k * len..(k + 1) * len]);
                Ok(())
            }
        }
    }

    /// Loads an MDS grid directory as MITgcm writes it.
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
        let len = NTILES * n * n;
        let horizontal = |f: &MdsFile| -> Result<Vec<f32>, GridError> {
            let mut v = vec![0f32; len];
            f.read_level_tiles(0, 0, n, &mut v)?;
            Ok(v)
        };
        let h = |name: &str| -> Result<Vec<f32>, GridError> { horizontal(&open(name)?) };
        let vertical =
            |name: &str| -> Result<Vec<f64>, GridError> { Ok(open(name)?.read_all_f64(0)?) };
        let xc = horizontal(&xc_file)?;
        let (yc, xg, yg) = (h("YC")?, h("XG")?, h("YG")?);
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
        let (xc_bnds, yc_bnds) = match find_geometry_nc(dir)? {
            // ECCO grid directories ship the GRID_GEOMETRY file; EDP copies its bounds.
            Some(nc) => {
                let r = NcReader::open(&nc)?;
                (r.read_as_f32("XC_bnds")?, r.read_as_f32("YC_bnds")?)
            }
            None => corner_bounds(n, &xg, &yg),
        };
        Ok(Grid {
            n,
            nz,
            xc,
            yc,
            xg,
            yg,
            xc_bnds,
            yc_bnds,
            angle_cs: h("AngleCS")?,
            angle_sn: h("AngleSN")?,
            rac: h("RAC")?,
            depth: h("Depth")?,
            rc,
            rf,
            drf,
            hfac,
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
        let h = |name: &str| -> Result<Vec<f32>, GridError> {
            let v = r.read_as_f32(name)?;
            if v.len() != len {
                return Err(shape(format!(
                    "{name} has {} values, expected {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let levels = |name: &str| -> Result<Levels, GridError> {
            let v = r.read_as_f32(name)?;
            if v.len() != nz * len {
                return Err(shape(format!(
                    "{name} has {} values, expected {}",
                    v.len(),
                    nz * len
                )));
            }
            Ok(Levels::Memory(v))
        };
        let rf = r.read_as_f64("Zp1")?;
        let drf = r.read_as_f64("drF")?;
        Ok(Grid {
            n,
            nz,
            xc: h("XC")?,
            yc: h("YC")?,
            xg: h("XG")?,
            yg: h("YG")?,
            xc_bnds: r.read_as_f32("XC_bnds")?,
            yc_bnds: r.read_as_f32("YC_bnds")?,
            angle_cs: h("CS")?,
            angle_sn: h("SN")?,
            rac: h("rA")?,
            depth: h("Depth")?,
            rc: r.read_as_f64("Z")?,
            rf,
            drf,
            hfac: [levels("hFacC")?, levels("hFacW")?, levels("hFacS")?],
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
        let mut vars = vec![
            var(
                "XC",
                &["tile", "j", "i"],
                VarData::F32(self.xc.clone()),
                tile_chunks.clone(),
            ),
            var(
                "YC",
                &["tile", "j", "i"],
                VarData::F32(self.yc.clone()),
                tile_chunks.clone(),
            ),
            var(
                "XG",
                &["tile", "j_g", "i_g"],
                VarData::F32(self.xg.clone()),
                tile_chunks.clone(),
            ),
            var(
                "YG",
                &["tile", "j_g", "i_g"],
                VarData::F32(self.yg.clone()),
                tile_chunks.clone(),
            ),
            var(
                "XC_bnds",
                &["tile", "j", "i", "nb"],
                VarData::F32(self.xc_bnds.clone()),
                None,
            ),
            var(
                "YC_bnds",
                &["tile", "j", "i", "nb"],
                VarData::F32(self.yc_bnds.clone()),
                None,
            ),
            var(
                "CS",
                &["tile", "j", "i"],
                VarData::F32(self.angle_cs.clone()),
                tile_chunks.clone(),
            ),
            var(
                "SN",
                &["tile", "j", "i"],
                VarData::F32(self.angle_sn.clone()),
                tile_chunks.clone(),
            ),
            var(
                "rA",
                &["tile", "j", "i"],
                VarData::F32(self.rac.clone()),
                tile_chunks.clone(),
            ),
            var(
                "Depth",
                &["tile", "j", "i"],
                VarData::F32(self.depth.clone()),
                tile_chunks,
            ),
            var("Z", &["k"], VarData::F64(self.rc.clone()), None),
            var("Zp1", &["k_p1"], VarData::F64(self.rf.clone()), None),
            var("drF", &["k"], VarData::F64(self.drf.clone()), None),
        ];
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
    let corner = |t: usize, jg: usize, ig: usize| -> (f64, f64) {
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
    let len = NTILES * n * n;
    let mut xb = vec![0f32; 4 * len];
    let mut yb = vec![0f32; 4 * len];
    for t in 0..NTILES {
        for j in 0..n {
            for i in 0..n {
                let base = 4 * ((t * n + j) * n + i);
                for (c, (dj, di)) in [(0, 0), (0, 1), (1, 1), (1, 0)].into_iter().enumerate() {
                    let (x, y) = corner(t, j + dj, i + di);
                    xb[base + c] = x as f32;
                    yb[base + c] = y as f32;
                }
            }
        }
    }
    (xb, yb)
}
