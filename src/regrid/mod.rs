//! Native LLC → regular lat-lon regridding, the way ECCO's lat-lon products are made.
//!
//! EDP maps every native field to a 0.5° grid with precomputed "mapping factors":
//! for each target cell and level, the wet source cells inside the cell's radius of
//! influence averaged with equal weights, else the nearest wet source within the
//! largest native cell size, else nothing. This module builds those factors
//! ([`factors`], on a k-d tree of unit vectors, [`kdtree`]), stores them in one
//! little-endian file every rank memory-maps read-only ([`format`]), applies them
//! level by level ([`apply`]), brings vector components from U/V points to cell
//! centres across tile edges and rotates them to east/north ([`vector`]), and finds
//! or builds the factors a run needs ([`store`]).

pub mod apply;
pub mod factors;
pub mod format;
pub mod kdtree;
pub mod store;
pub mod vector;

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::grid::{Grid, GridError, GridVar};
use crate::llc::{PointType, NTILES};

pub use format::Factors;

/// Sphere radius for distances (m): the one pyresample's k-d tree uses, so radii of
/// influence select the same source points as EDP's.
pub const EARTH_RADIUS_DISTANCE_M: f64 = 6_370_997.0;
/// Sphere radius for target cell areas (m): ecco_cloud_utils' authalic radius.
pub const EARTH_RADIUS_AREA_M: f64 = 6_371_008.8;

#[derive(Debug, thiserror::Error)]
pub enum RegridError {
    #[error(transparent)]
    Io(#[from] crate::error::FileError),
    #[error("mapping factors {}: {what}", path.display())]
    Format { path: PathBuf, what: String },
    #[error(
        "mapping factors {} were built for grid {file_hash}, but the grid in use ({}) is {grid_hash}; rebuild them with `edp factors --grid {}`",
        path.display(), grid_source.display(), grid_source.display()
    )]
    GridMismatch {
        path: PathBuf,
        file_hash: GridHash,
        grid_hash: GridHash,
        grid_source: PathBuf,
    },
    #[error("{0}")]
    Shape(String),
    #[error("bad regridding request: {0}")]
    Config(String),
    #[error(transparent)]
    Grid(#[from] GridError),
}

/// SHA-256 of what the factors depend on: LLC size, level count, the C and G point
/// positions and the wet/dry pattern of every level (not the hFac values, which
/// change nothing as long as wet stays wet).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GridHash(pub [u8; 32]);

impl fmt::Display for GridHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for GridHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GridHash({self})")
    }
}

impl GridHash {
    /// The first 16 hex digits, for file names and log lines.
    pub fn short(&self) -> String {
        self.to_string()[..16].to_string()
    }
}

/// Hashes the parts of `grid` the factors depend on, for `levels` levels.
pub fn grid_hash(grid: &Grid, levels: usize) -> Result<GridHash, RegridError> {
    if levels > grid.nz {
        return Err(RegridError::Shape(format!(
            "{levels} levels asked for, but the grid {} has {}",
            grid.source.display(),
            grid.nz
        )));
    }
    let mut h = Sha256::new();
    h.update(b"edp-grid-hash-v1");
    h.update((grid.n as u64).to_le_bytes());
    h.update((levels as u64).to_le_bytes());
    // Tile by tile: the same bytes as the whole arrays in tile order.
    let mut tile = vec![0f32; grid.n * grid.n];
    for v in [GridVar::Xc, GridVar::Yc, GridVar::Xg, GridVar::Yg] {
        for t in 0..NTILES {
            grid.read_tile(v, t, &mut tile)?;
            for x in &tile {
                h.update(x.to_le_bytes());
            }
        }
    }
    for k in 0..levels {
        h.update(grid.wet_level(PointType::C, k)?);
    }
    Ok(GridHash(h.finalize().into()))
}

/// A global regular lat-lon grid: `nlat × nlon` cells of `resolution` degrees,
/// rows south to north, columns west to east from −180°.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetGrid {
    pub resolution: f64,
    pub nlat: usize,
    pub nlon: usize,
}

impl TargetGrid {
    /// The global grid of this resolution (degrees); 180 must be a whole number of cells.
    pub fn global(resolution: f64) -> Result<TargetGrid, RegridError> {
        let cells = 180.0 / resolution;
        if !(resolution.is_finite() && resolution > 0.0)
            || (cells - cells.round()).abs() > 1e-9
            || cells.round() < 1.0
        {
            return Err(RegridError::Config(format!(
                "resolution {resolution}° does not divide 180° into whole cells"
            )));
        }
        let nlat = cells.round() as usize;
        Ok(TargetGrid {
            resolution,
            nlat,
            nlon: 2 * nlat,
        })
    }

    /// ECCO's 0.5° grid (720 × 360).
    pub fn ecco_half_degree() -> TargetGrid {
        TargetGrid {
            resolution: 0.5,
            nlat: 360,
            nlon: 720,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.nlat * self.nlon
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Centre latitude of row `j` (degrees).
    pub fn lat(&self, j: usize) -> f64 {
        -90.0 + (j as f64 + 0.5) * self.resolution
    }

    /// Centre longitude of column `i` (degrees).
    pub fn lon(&self, i: usize) -> f64 {
        -180.0 + (i as f64 + 0.5) * self.resolution
    }

    /// Exact area of a cell of row `j` on the sphere of [`EARTH_RADIUS_AREA_M`] (m²).
    pub fn cell_area(&self, j: usize) -> f64 {
        let r = EARTH_RADIUS_AREA_M;
        let s = self.resolution.to_radians();
        let lat0 = (-90.0 + j as f64 * self.resolution).to_radians();
        r * r * s * ((lat0 + s).sin() - lat0.sin())
    }

    /// EDP's default ("method_1") radius of influence of a row-`j` cell: the radius
    /// of the disc with the cell's area (m).
    pub fn radius(&self, j: usize) -> f64 {
        (self.cell_area(j) / std::f64::consts::PI).sqrt()
    }

    /// The granule-name label of this resolution (`0p50deg` for 0.5°).
    pub fn label(&self) -> String {
        format!("{:.2}deg", self.resolution).replace('.', "p")
    }
}

/// Unit vector of a longitude/latitude in degrees.
pub fn unit_vector(lon: f64, lat: f64) -> [f64; 3] {
    let (lo, la) = (lon.to_radians(), lat.to_radians());
    [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()]
}

/// Chord length on the unit sphere of a great-circle distance in metres on the
/// distance sphere.
pub fn chord_of_metres(d: f64) -> f64 {
    let theta = (d / EARTH_RADIUS_DISTANCE_M).min(std::f64::consts::PI);
    2.0 * (theta / 2.0).sin()
}

/// Great-circle distance in metres of a unit-sphere chord.
pub fn metres_of_chord(c: f64) -> f64 {
    2.0 * (c / 2.0).clamp(-1.0, 1.0).asin() * EARTH_RADIUS_DISTANCE_M
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_degree_grid_matches_ecco() {
        let g = TargetGrid::global(0.5).unwrap();
        assert_eq!(g, TargetGrid::ecco_half_degree());
        assert_eq!((g.nlat, g.nlon, g.len()), (360, 720, 259_200));
        assert_eq!(g.lat(0), -89.75);
        assert_eq!(g.lat(359), 89.75);
        assert_eq!(g.lon(0), -179.75);
        assert_eq!(g.lon(719), 179.75);
        assert_eq!(g.label(), "0p50deg");
        assert_eq!(TargetGrid::global(1.0).unwrap().label(), "1p00deg");
        assert!(TargetGrid::global(0.7).is_err());
        assert!(TargetGrid::global(0.0).is_err());
    }

    #[test]
    fn cell_areas_cover_the_sphere() {
        let g = TargetGrid::global(0.5).unwrap();
        let total: f64 = (0..g.nlat).map(|j| g.cell_area(j) * g.nlon as f64).sum();
        let sphere = 4.0 * std::f64::consts::PI * EARTH_RADIUS_AREA_M * EARTH_RADIUS_AREA_M;
        assert!((total / sphere - 1.0).abs() < 1e-12);
        // An equatorial 0.5° cell is about 55.6 km square: radius ≈ 31.4 km.
        let r = g.radius(180);
        assert!(
            (r - 55_597.0 / std::f64::consts::PI.sqrt()).abs() < 50.0,
            "{r}"
        );
    }

    #[test]
    fn chord_and_distance_invert() {
        for d in [1.0, 1e3, 31_400.0, 2e6] {
            assert!((metres_of_chord(chord_of_metres(d)) - d).abs() < 1e-6 * d.max(1.0));
        }
        let a = unit_vector(0.0, 0.0);
        let b = unit_vector(1.0, 0.0);
        let c = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        let one_degree = EARTH_RADIUS_DISTANCE_M * 1f64.to_radians();
        assert!((metres_of_chord(c) - one_degree).abs() < 1e-6);
    }
}
