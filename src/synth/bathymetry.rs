//! Vertical grid, analytic bathymetry and MITgcm partial cells for the synthetic grid.
//!
//! The sea floor is a closed-form function of (lon, lat): continents are unions
//! of spherical caps plus an Antarctic coast near 70°S; offshore the depth rises
//! over a shelf, a continental slope and an abyssal plain with ridges. The cell
//! fractions `hFacC` follow MITgcm's `ini_masks_etc` rule, and `hFacW`/`hFacS`
//! take the minimum of the two adjacent centres, where the centre beyond a tile
//! edge is the neighbouring tile's cell (via [`crate::llc::neighbour_cell`]), as
//! MITgcm's halo exchange would give.

use super::geometry::{great_circle, xyz, LlcMap, EARTH_RADIUS_M};
use crate::llc::NTILES;
use rayon::prelude::*;

/// ECCO V4r4 level thicknesses (metres), top to bottom.
pub const DRF_V4R4: [f64; 50] = [
    10.00, 10.00, 10.00, 10.00, 10.00, 10.00, 10.00, 10.01, 10.03, 10.11, 10.32, 10.80, 11.76,
    13.42, 16.04, 19.82, 24.85, 31.10, 38.42, 46.50, 55.00, 63.50, 71.58, 78.90, 85.15, 90.18,
    93.96, 96.58, 98.25, 99.25, 100.01, 101.33, 104.56, 111.33, 122.83, 139.09, 158.94, 180.83,
    203.55, 226.50, 249.50, 272.50, 295.50, 318.50, 341.50, 364.50, 387.50, 410.50, 433.50, 456.50,
];

/// MITgcm `hFacMin` (ECCO V4 value); `hFacMinDr` is taken as 0.
pub const HFAC_MIN: f64 = 0.2;

/// The vertical grid of the first `nz` V4r4 levels (MITgcm sign convention:
/// `rf`, `rc` ≤ 0, thicknesses positive).
#[derive(Debug, Clone, PartialEq)]
pub struct VerticalGrid {
    /// Level thicknesses, `nz` values.
    pub drf: Vec<f64>,
    /// Level interfaces, `nz + 1` values from 0 downward.
    pub rf: Vec<f64>,
    /// Level centres, `nz` values.
    pub rc: Vec<f64>,
    /// Centre-to-centre spacing, `nz + 1` values (first and last are half
    /// levels, as MITgcm's `drC(Nr+1)` and xmitgcm's `drC(k_p1)`).
    pub drc: Vec<f64>,
}

impl VerticalGrid {
    /// The first `nz` levels (1 ≤ nz ≤ 50, checked by the caller).
    pub fn new(nz: usize) -> VerticalGrid {
        let drf = DRF_V4R4[..nz].to_vec();
        let mut rf = Vec::with_capacity(nz + 1);
        let mut z = 0.0;
        rf.push(z);
        for d in &drf {
            z -= d;
            rf.push(z);
        }
        let rc: Vec<f64> = (0..nz).map(|k| 0.5 * (rf[k] + rf[k + 1])).collect();
        let mut drc = Vec::with_capacity(nz + 1);
        drc.push(-rc[0]);
        drc.extend((1..nz).map(|k| rc[k - 1] - rc[k]));
        drc.push(rc[nz - 1] - rf[nz]);
        VerticalGrid { drf, rf, rc, drc }
    }

    /// Number of levels.
    pub fn nz(&self) -> usize {
        self.drf.len()
    }

    /// Depth of the domain bottom (metres, positive).
    pub fn total_depth(&self) -> f64 {
        -self.rf[self.nz()]
    }
}

/// A spherical-cap "continent": centre (lon, lat in degrees) and radius (km).
const CONTINENTS: [(f64, f64, f64); 22] = [
    // Eurasia
    (20.0, 52.0, 1500.0),
    (60.0, 55.0, 2000.0),
    (100.0, 56.0, 2200.0),
    (115.0, 40.0, 1500.0),
    (78.0, 22.0, 800.0),
    (45.0, 25.0, 900.0),
    (103.0, 15.0, 600.0),
    // Africa
    (18.0, 8.0, 2300.0),
    (26.0, -18.0, 1500.0),
    (40.0, 6.0, 800.0),
    // Australia
    (134.0, -25.0, 1700.0),
    // North and Central America, Greenland
    (-100.0, 45.0, 2200.0),
    (-110.0, 58.0, 1800.0),
    (-75.0, 52.0, 1000.0),
    (-90.0, 17.0, 600.0),
    (-42.0, 73.0, 900.0),
    // South America
    (-60.0, -8.0, 2000.0),
    (-66.0, -33.0, 1000.0),
    (-71.0, -46.0, 500.0),
    // Islands big enough to show at LLC90: Japan-ish, Madagascar-ish, New Zealand-ish
    (138.0, 37.0, 350.0),
    (47.0, -19.0, 450.0),
    (172.0, -42.0, 400.0),
];

/// Signed distance (km) from the nearest coast; negative on land.
fn coast_distance_km(lon: f64, lat: f64) -> f64 {
    let p = xyz(lon, lat);
    let mut d = f64::INFINITY;
    for &(clon, clat, r) in &CONTINENTS {
        d = d.min(great_circle(p, xyz(clon, clat)) / 1000.0 - r);
    }
    // Antarctica: a wavy coast around 70°S.
    let l = lon.to_radians();
    let coast = -70.0 + 3.0 * (2.0 * l).sin() + 1.5 * (3.0 * l + 1.0).cos();
    let km_per_deg = EARTH_RADIUS_M * std::f64::consts::PI / 180.0 / 1000.0;
    d.min((lat - coast) * km_per_deg)
}

/// Depth of the abyssal plain (metres): 4.7 km ± 0.6 km with a mid-Atlantic
/// ridge and an East-Pacific rise.
fn abyss(lon: f64, lat: f64) -> f64 {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    let lon_gap = |a: f64, b: f64| {
        let d = (a - b).rem_euclid(360.0);
        d.min(360.0 - d)
    };
    let atlantic_axis = -28.0 + 10.0 * (lat / 25.0).sin();
    let ridge_a = (-(lon_gap(lon, atlantic_axis) * p.cos() / 6.0).powi(2)).exp();
    let ridge_p =
        (-(lon_gap(lon, -112.0) * p.cos() / 8.0).powi(2)).exp() * (-(lat / 40.0).powi(2)).exp();
    4700.0 + 600.0 * (2.0 * l + p).sin() * p.cos() - 2000.0 * ridge_a - 1500.0 * ridge_p
}

/// The analytic sea-floor depth (metres, positive; 0 on land) of the full
/// 50-level grid, before partial cells.
pub fn raw_depth(lon: f64, lat: f64) -> f64 {
    let d = coast_distance_km(lon, lat);
    if d <= 0.0 {
        return 0.0;
    }
    // Shelf to ~180 m within ~100 km, then slope down to the abyss by ~450 km.
    let shelf = 180.0 * (d / 90.0).tanh();
    let t = ((d - 100.0) / 350.0).clamp(0.0, 1.0);
    let s = t * t * (3.0 - 2.0 * t);
    shelf + (abyss(lon, lat) - 180.0).max(0.0) * s
}

/// MITgcm's partial-cell rule for one level: the fraction of the level above
/// the floor, rounded to 0 or `HFAC_MIN` when it is below `HFAC_MIN`.
pub fn hfac(depth: f64, top: f64, drf: f64) -> f64 {
    let f = ((depth - top) / drf).clamp(0.0, 1.0);
    if f < 0.5 * HFAC_MIN {
        0.0
    } else {
        f.max(HFAC_MIN)
    }
}

/// Bathymetry on the tiles plus one halo row (j = −1) and column (i = −1) per
/// tile, enough for `hFacW`/`hFacS` at the west and south tile edges.
#[derive(Debug, Clone)]
pub struct Bathymetry {
    n: usize,
    vertical: VerticalGrid,
    /// Scaled raw depth at centres, `(tile, j+1, i+1)` on an (N+1)² block.
    ext: Vec<f64>,
}

impl Bathymetry {
    /// Evaluates the depth at every centre of `map`, scaled to the first `nz`
    /// levels: for nz < 50 the whole relief is compressed by
    /// (Σ first nz DRF)/(Σ 50 DRF) so coastlines stay the same and every level
    /// still has land, partial cells and ocean.
    pub fn new(map: &LlcMap, vertical: VerticalGrid) -> Bathymetry {
        let n = map.n();
        let scale = vertical.total_depth() / VerticalGrid::new(50).total_depth();
        let at = |t: usize, j: i64, i: i64| {
            let (lon, lat) = map.lonlat_raw(t, 2 * j + 1, 2 * i + 1);
            raw_depth(lon, lat) * scale
        };
        let inner: Vec<f64> = (0..NTILES * n)
            .into_par_iter()
            .flat_map_iter(|row| {
                let (t, j) = (row / n, (row % n) as i64);
                (0..n as i64).map(move |i| at(t, j, i))
            })
            .collect();
        // The halo holds the neighbouring tile's cell (what MITgcm's exchange
        // gives hFacW/hFacS); only beyond the open Antarctic boundary, where
        // there is no neighbour, does the tile's own map continue.
        let m = n + 1;
        let ext = (0..NTILES * m)
            .into_par_iter()
            .flat_map_iter(|row| {
                let (t, jj) = (row / m, row % m);
                let inner = &inner;
                (0..m).map(move |ii| {
                    if jj > 0 && ii > 0 {
                        return inner[(t * n + jj - 1) * n + ii - 1];
                    }
                    let (j, i) = (jj as isize - 1, ii as isize - 1);
                    match crate::llc::neighbour_cell(n, t, j, i) {
                        Some((t2, j2, i2)) => inner[(t2 * n + j2) * n + i2],
                        None => at(t, j as i64, i as i64),
                    }
                })
            })
            .collect();
        Bathymetry { n, vertical, ext }
    }

    /// The vertical grid.
    pub fn vertical(&self) -> &VerticalGrid {
        &self.vertical
    }

    fn ext_at(&self, t: usize, j: i64, i: i64) -> f64 {
        let m = self.n + 1;
        self.ext[(t * m + (j + 1) as usize) * m + (i + 1) as usize]
    }

    fn hfac_c_at(&self, k: usize, t: usize, j: i64, i: i64) -> f64 {
        let v = &self.vertical;
        hfac(self.ext_at(t, j, i), -v.rf[k], v.drf[k])
    }

    /// `(hFacC, hFacW, hFacS)` of level `k`, tile order.
    pub fn hfacs(&self, k: usize) -> [Vec<f64>; 3] {
        let n = self.n;
        let per_row = |row: usize| {
            let (t, j) = (row / n, (row % n) as i64);
            (0..n as i64).map(move |i| {
                let c = self.hfac_c_at(k, t, j, i);
                let w = c.min(self.hfac_c_at(k, t, j, i - 1));
                let s = c.min(self.hfac_c_at(k, t, j - 1, i));
                (c, w, s)
            })
        };
        let all: Vec<(f64, f64, f64)> = (0..NTILES * n)
            .into_par_iter()
            .flat_map_iter(per_row)
            .collect();
        [
            all.iter().map(|a| a.0).collect(),
            all.iter().map(|a| a.1).collect(),
            all.iter().map(|a| a.2).collect(),
        ]
    }

    /// Model depth `Σ hFacC·DRF` (metres, 0 on land), tile order; this is what
    /// MITgcm writes as `Depth` after applying partial cells.
    pub fn depth(&self) -> Vec<f64> {
        let n = self.n;
        let nz = self.vertical.nz();
        (0..NTILES * n)
            .into_par_iter()
            .flat_map_iter(|row| {
                let (t, j) = (row / n, (row % n) as i64);
                (0..n as i64).map(move |i| {
                    (0..nz)
                        .map(|k| self.hfac_c_at(k, t, j, i) * self.vertical.drf[k])
                        .sum::<f64>()
                })
            })
            .collect()
    }

    /// Number of wet levels at each C, U and V point (tile order). Masks are
    /// monotone in depth, so `mask[k] = k < count`.
    pub fn wet_levels(&self) -> [Vec<u16>; 3] {
        let n = self.n;
        let nz = self.vertical.nz();
        let count = |t: usize, j: i64, i: i64| {
            (0..nz)
                .take_while(|&k| self.hfac_c_at(k, t, j, i) > 0.0)
                .count() as u16
        };
        let all: Vec<(u16, u16, u16)> = (0..NTILES * n)
            .into_par_iter()
            .flat_map_iter(|row| {
                let (t, j) = (row / n, (row % n) as i64);
                (0..n as i64).map(move |i| {
                    let c = count(t, j, i);
                    (c, c.min(count(t, j, i - 1)), c.min(count(t, j - 1, i)))
                })
            })
            .collect();
        [
            all.iter().map(|a| a.0).collect(),
            all.iter().map(|a| a.1).collect(),
            all.iter().map(|a| a.2).collect(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4r4_levels_sum_to_6134_5() {
        let v = VerticalGrid::new(50);
        assert!((v.total_depth() - 6134.5).abs() < 1e-9);
        assert_eq!(v.rf.len(), 51);
        assert_eq!(v.drc.len(), 51);
        assert!((v.drc.iter().sum::<f64>() - 6134.5).abs() < 1e-9);
    }

    #[test]
    fn partial_cell_rule() {
        assert_eq!(hfac(0.0, 0.0, 10.0), 0.0);
        assert_eq!(hfac(0.9, 0.0, 10.0), 0.0);
        assert_eq!(hfac(1.5, 0.0, 10.0), HFAC_MIN);
        assert_eq!(hfac(5.0, 0.0, 10.0), 0.5);
        assert_eq!(hfac(50.0, 0.0, 10.0), 1.0);
        assert_eq!(hfac(50.0, 60.0, 10.0), 0.0);
    }
}
