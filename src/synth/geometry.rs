//! The synthetic LLC-N horizontal geometry: one continuous map per tile.
//!
//! Every point of a tile (centre, corner, U or V face, and points half a cell
//! outside the tile) comes from the same closed-form map of *half-indices*
//! `(jh, ih)` — `2·j` for a corner/face row, `2·j + 1` for a centre row — so
//! adjacent tiles meet exactly where the real LLC's do, and metrics (distances,
//! areas, angles) are derived from positions rather than invented separately.
//!
//! Lat-lon faces: longitude is uniform (90°/N per cell); latitude follows a
//! Mercator-like law (isotropic cells at high latitude) with an equatorial
//! refinement chosen so that 3N rows span exactly −80° … 67°. The Arctic cap maps
//! the index square [−1, 1]² to the polar disk: longitude is the square's
//! perimeter angle (linear along each edge, so the cap's edge points land on the
//! faces' evenly spaced northern corners) and colatitude a gentle quadratic of
//! `max(|x|, |y|)` whose slope at the edge matches the faces' row spacing.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// Earth radius used for every distance and area (metres).
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;
/// Southern edge of the lat-lon faces (degrees; Antarctic land lies beneath).
pub const LAT_SOUTH: f64 = -80.0;
/// Latitude where the lat-lon faces meet the Arctic cap (degrees).
pub const LAT_CAP: f64 = 67.0;
/// Western longitude of faces 1, 2, 4, 5 (degrees, unwrapped).
const FACE_LON0: [f64; 4] = [-37.0, 53.0, 143.0, 233.0];
/// Cap longitude = perimeter angle + this offset, so the cap's j=0 edge runs
/// 53° → 143° like face 2's northern edge.
const CAP_LON_OFFSET: f64 = 188.0;
/// Half-width (radians of latitude) of the equatorial refinement.
const EQ_WIDTH: f64 = 0.2;
/// Half-indices kept beyond each face end in the latitude table (one is needed
/// for the centres just outside a tile).
const HALO: i64 = 2;

/// The continuous LLC-N map from (tile, half-index j, half-index i) to the sphere.
#[derive(Debug, Clone)]
pub struct LlcMap {
    n: usize,
    /// Latitude (degrees) of face row half-index `H`, stored at `H + HALO`.
    lat_rows: Vec<f64>,
    /// Linear coefficient of the cap's colatitude law `a·r + (1 − a)·r²`.
    cap_a: f64,
}

/// The face latitude law `G(φ) = asinh(tan φ) + A·tanh(φ / w)` (φ in radians):
/// Mercator plus an equatorial bump that refines rows near the equator.
fn lat_law(phi: f64, a: f64) -> f64 {
    phi.tan().asinh() + a * (phi / EQ_WIDTH).tanh()
}

/// Its derivative, `sec φ + (A/w)·sech²(φ/w)`.
fn lat_law_deriv(phi: f64, a: f64) -> f64 {
    let s = 1.0 / (phi / EQ_WIDTH).cosh();
    1.0 / phi.cos() + a / EQ_WIDTH * s * s
}

impl LlcMap {
    /// Builds the map for tile size `n` (n ≥ 1).
    pub fn new(n: usize) -> LlcMap {
        let (south, north) = (LAT_SOUTH.to_radians(), LAT_CAP.to_radians());
        // Choose the equatorial bump so that 3N rows of isotropic-at-high-latitude
        // spacing ((π/2)/N per row in G) span exactly south..north.
        let merc = north.tan().asinh() - south.tan().asinh();
        let bump = (north / EQ_WIDTH).tanh() - (south / EQ_WIDTH).tanh();
        let a = (1.5 * PI - merc) / bump;
        let g_south = lat_law(south, a);
        let rows = 6 * n as i64;
        let lat_rows = (-HALO..=rows + HALO)
            .map(|h| {
                if h == 0 {
                    LAT_SOUTH
                } else if h == rows {
                    LAT_CAP
                } else {
                    let target = g_south + FRAC_PI_2 * h as f64 / (2 * n) as f64;
                    invert_lat_law(target, a).to_degrees()
                }
            })
            .collect();
        // Cap colatitude slope at its edge equal to the faces' top-row spacing:
        // faces advance G by (π/2)/N per row; the cap advances x by 2/N per cell.
        let c = (90.0 - LAT_CAP).to_radians();
        let edge_slope = FRAC_PI_4 / (c * lat_law_deriv(north, a));
        LlcMap {
            n,
            lat_rows,
            cap_a: 2.0 - edge_slope,
        }
    }

    /// Tile size N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Longitude and latitude (degrees; longitude unwrapped, not reduced to
    /// (−180, 180]) of half-index `(jh, ih)` on `tile`. Half-indices may lie up
    /// to 2 beyond the tile (−2 … 2N+2): the map simply continues.
    pub fn lonlat_raw(&self, tile: usize, jh: i64, ih: i64) -> (f64, f64) {
        let n = self.n as i64;
        let lon_step = 90.0 / (2 * n) as f64;
        match tile {
            0..=5 => {
                let (face, o) = (tile / 3, (tile % 3) as i64);
                let row = o * 2 * n + jh;
                (FACE_LON0[face] + lon_step * ih as f64, self.lat_row(row))
            }
            6 => self.cap(jh, ih),
            _ => {
                // Faces 4 and 5: i runs southward along the face, j eastward.
                let (face, o) = if tile < 10 {
                    (2, (tile - 7) as i64)
                } else {
                    (3, (tile - 10) as i64)
                };
                let row = 6 * n - (o * 2 * n + ih);
                (FACE_LON0[face] + lon_step * jh as f64, self.lat_row(row))
            }
        }
    }

    /// Like [`LlcMap::lonlat_raw`] with longitude in (−180, 180].
    pub fn lonlat(&self, tile: usize, jh: i64, ih: i64) -> (f64, f64) {
        let (lon, lat) = self.lonlat_raw(tile, jh, ih);
        (wrap_lon(lon), lat)
    }

    /// Unit vector of half-index `(jh, ih)`.
    pub fn xyz(&self, tile: usize, jh: i64, ih: i64) -> [f64; 3] {
        let (lon, lat) = self.lonlat_raw(tile, jh, ih);
        xyz(lon, lat)
    }

    fn lat_row(&self, row: i64) -> f64 {
        let idx = row + HALO;
        assert!(
            idx >= 0 && (idx as usize) < self.lat_rows.len(),
            "face row half-index {row} outside the map's halo"
        );
        self.lat_rows[idx as usize]
    }

    /// The Arctic cap: index square → polar disk.
    fn cap(&self, jh: i64, ih: i64) -> (f64, f64) {
        let n = self.n as f64;
        let x = ih as f64 / n - 1.0;
        let y = jh as f64 / n - 1.0;
        let r = x.abs().max(y.abs());
        // Perimeter angle of the square of half-side r: linear along each edge,
        // so equal index steps give equal longitude steps like the faces.
        let theta = if r == 0.0 {
            0.0
        } else if x >= y.abs() {
            FRAC_PI_4 * y / x
        } else if y >= x.abs() {
            FRAC_PI_2 - FRAC_PI_4 * x / y
        } else if -x >= y.abs() {
            PI + FRAC_PI_4 * y / x
        } else {
            -FRAC_PI_2 - FRAC_PI_4 * x / y
        };
        let c = 90.0 - LAT_CAP;
        // g(1) = 1 exactly at the edge so the cap meets the faces at LAT_CAP.
        let g = if r == 1.0 {
            1.0
        } else {
            self.cap_a * r + (1.0 - self.cap_a) * r * r
        };
        (theta.to_degrees() + CAP_LON_OFFSET, 90.0 - c * g)
    }
}

/// Solves `G(φ) = target` by bisection (monotone on (−90°, 90°); deterministic).
fn invert_lat_law(target: f64, a: f64) -> f64 {
    let lim = 89.999_f64.to_radians();
    let (mut lo, mut hi) = (-lim, lim);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if lat_law(mid, a) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Reduces a longitude to (−180, 180].
pub fn wrap_lon(lon: f64) -> f64 {
    let mut l = lon % 360.0;
    if l > 180.0 {
        l -= 360.0;
    } else if l <= -180.0 {
        l += 360.0;
    }
    l
}

/// Unit vector of (lon, lat) in degrees.
pub fn xyz(lon: f64, lat: f64) -> [f64; 3] {
    let (sl, cl) = lon.to_radians().sin_cos();
    let (sp, cp) = lat.to_radians().sin_cos();
    [cp * cl, cp * sl, sp]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Great-circle distance (metres) between two unit vectors; the atan2 form
/// stays accurate for the short distances between neighbouring points.
pub fn great_circle(a: [f64; 3], b: [f64; 3]) -> f64 {
    EARTH_RADIUS_M * norm(cross(a, b)).atan2(dot(a, b))
}

/// Area (m²) of the spherical triangle a, b, c (Van Oosterom–Strackee).
fn triangle_area(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> f64 {
    let num = dot(a, cross(b, c)).abs();
    let den = 1.0 + dot(a, b) + dot(b, c) + dot(c, a);
    2.0 * num.atan2(den) * EARTH_RADIUS_M * EARTH_RADIUS_M
}

/// Area (m²) of the spherical quadrilateral a, b, c, d (in order).
pub fn quad_area(a: [f64; 3], b: [f64; 3], c: [f64; 3], d: [f64; 3]) -> f64 {
    triangle_area(a, b, c) + triangle_area(a, c, d)
}

/// (cos, sin) of the angle from geographic east to the chord `from → to`,
/// measured in the tangent plane at `at` (counter-clockwise towards north).
pub fn direction_angle(at: (f64, f64), from: [f64; 3], to: [f64; 3]) -> (f64, f64) {
    let (sl, cl) = at.0.to_radians().sin_cos();
    let (sp, cp) = at.1.to_radians().sin_cos();
    let east = [-sl, cl, 0.0];
    let north = [-sp * cl, -sp * sl, cp];
    let d = [to[0] - from[0], to[1] - from[1], to[2] - from[2]];
    let (e, nn) = (dot(d, east), dot(d, north));
    let h = e.hypot(nn);
    if h == 0.0 {
        (1.0, 0.0)
    } else {
        (e / h, nn / h)
    }
}

/// Positions and model-axis angles of one kind of point (C, U or V) for all 13
/// tiles, in tile order `(tile, j, i)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointGeometry {
    /// Longitude, degrees in (−180, 180].
    pub lon: Vec<f64>,
    /// Latitude, degrees.
    pub lat: Vec<f64>,
    /// cos of the angle between the model +x direction and geographic east.
    pub cs: Vec<f64>,
    /// sin of that angle.
    pub sn: Vec<f64>,
}

/// Which point of a cell a [`PointGeometry`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stagger {
    /// Cell centre, half-index (2j+1, 2i+1).
    C,
    /// West face, (2j+1, 2i).
    U,
    /// South face, (2j, 2i+1).
    V,
}

impl LlcMap {
    /// Positions and angles of every point of type `s` (parallel over rows).
    pub fn point_geometry(&self, s: Stagger) -> PointGeometry {
        use rayon::prelude::*;
        let n = self.n;
        let (dj, di) = match s {
            Stagger::C => (1, 1),
            Stagger::U => (1, 0),
            Stagger::V => (0, 1),
        };
        let rows: Vec<Vec<[f64; 4]>> = (0..crate::llc::NTILES * n)
            .into_par_iter()
            .map(|row| {
                let (t, j) = (row / n, (row % n) as i64);
                (0..n as i64)
                    .map(|i| {
                        let (jh, ih) = (2 * j + dj, 2 * i + di);
                        let (lon, lat) = self.lonlat(t, jh, ih);
                        // Model +x is the local direction of increasing i.
                        let (cs, sn) = direction_angle(
                            (lon, lat),
                            self.xyz(t, jh, ih - 1),
                            self.xyz(t, jh, ih + 1),
                        );
                        [lon, lat, cs, sn]
                    })
                    .collect()
            })
            .collect();
        let mut g = PointGeometry::default();
        for p in rows.iter().flatten() {
            g.lon.push(p[0]);
            g.lat.push(p[1]);
            g.cs.push(p[2]);
            g.sn.push(p[3]);
        }
        g
    }
}

/// The 2D metric fields of the grid files, tile order `(tile, j, i)`: the map's output
/// on its way to the MDS grid files (and into [`super::SynthGrid`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// South-west corner longitude (degrees, (−180, 180]).
    pub xg: Vec<f64>,
    /// South-west corner latitude (degrees).
    pub yg: Vec<f64>,
    /// Length of the cell's south face (corner (j,i) → (j,i+1)), metres.
    pub dxg: Vec<f64>,
    /// Length of the cell's west face (corner (j,i) → (j+1,i)), metres.
    pub dyg: Vec<f64>,
    /// Distance between centres (j,i−1) and (j,i), metres (U point).
    pub dxc: Vec<f64>,
    /// Distance between centres (j−1,i) and (j,i), metres (V point).
    pub dyc: Vec<f64>,
    /// Cell area, m².
    pub rac: Vec<f64>,
}

impl LlcMap {
    /// Centre of cell `(j, i)` of `tile`, where one step outside the tile is
    /// the neighbouring tile's cell; beyond the open Antarctic boundary the
    /// tile's own map continues.
    fn centre_xyz(&self, tile: usize, j: i64, i: i64) -> [f64; 3] {
        let n = self.n;
        match crate::llc::neighbour_cell(n, tile, j as isize, i as isize) {
            Some((t, jj, ii)) => self.xyz(t, 2 * jj as i64 + 1, 2 * ii as i64 + 1),
            None => self.xyz(tile, 2 * j + 1, 2 * i + 1),
        }
    }

    /// Corner positions, distances and areas (parallel over rows). At tile
    /// edges DXC/DYC reach the neighbouring tile's centre.
    pub fn metrics(&self) -> Metrics {
        use rayon::prelude::*;
        let n = self.n;
        let rows: Vec<Vec<[f64; 7]>> = (0..crate::llc::NTILES * n)
            .into_par_iter()
            .map(|row| {
                let (t, j) = (row / n, (row % n) as i64);
                (0..n as i64)
                    .map(|i| {
                        let (jc, ic) = (2 * j, 2 * i);
                        let sw = self.xyz(t, jc, ic);
                        let se = self.xyz(t, jc, ic + 2);
                        let ne = self.xyz(t, jc + 2, ic + 2);
                        let nw = self.xyz(t, jc + 2, ic);
                        let centre = self.xyz(t, jc + 1, ic + 1);
                        let (lon, lat) = self.lonlat(t, jc, ic);
                        [
                            lon,
                            lat,
                            great_circle(sw, se),
                            great_circle(sw, nw),
                            great_circle(self.centre_xyz(t, j, i - 1), centre),
                            great_circle(self.centre_xyz(t, j - 1, i), centre),
                            quad_area(sw, se, ne, nw),
                        ]
                    })
                    .collect()
            })
            .collect();
        let mut m = Metrics::default();
        for p in rows.iter().flatten() {
            m.xg.push(p[0]);
            m.yg.push(p[1]);
            m.dxg.push(p[2]);
            m.dyg.push(p[3]);
            m.dxc.push(p[4]);
            m.dyc.push(p[5]);
            m.rac.push(p[6]);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_span_the_intended_latitudes() {
        let m = LlcMap::new(9);
        assert_eq!(m.lonlat(0, 0, 0).1, LAT_SOUTH);
        assert_eq!(m.lonlat(2, 18, 0).1, LAT_CAP);
        // Rows are monotone, finer at the equator than at 60°.
        let lat: Vec<f64> = (0..=54).map(|h| m.lat_row(h)).collect();
        assert!(lat.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn cap_edges_meet_face_corners() {
        let n = 6;
        let m = LlcMap::new(n);
        let nn = 2 * n as i64;
        for k in 0..=nn {
            // Cap j=0 edge ↔ tile 5 north edge (same direction).
            close(m.xyz(6, 0, k), m.xyz(5, nn, k));
            // Cap i=n edge ↔ tile 7 i=0 edge (same direction).
            close(m.xyz(6, k, nn), m.xyz(7, k, 0));
            // Cap j=n edge ↔ tile 10 i=0 edge, reversed.
            close(m.xyz(6, nn, k), m.xyz(10, nn - k, 0));
            // Cap i=0 edge ↔ tile 2 north edge, reversed.
            close(m.xyz(6, k, 0), m.xyz(2, nn, nn - k));
        }
    }

    fn close(a: [f64; 3], b: [f64; 3]) {
        let d = great_circle(a, b);
        assert!(d < 1e-3, "points {a:?} and {b:?} are {d} m apart");
    }
}
