//! Building the mapping factors of a native grid, as EDP defines them
//! (`mapping_factors_utils.py`, `ecco_cloud_utils.mapping`):
//!
//! 1. Source points are the 13·N² C points (unit vectors); `min_L`/`max_L` are the
//!    smallest and largest native cell side (dxG/dyG, here measured between
//!    neighbouring G points on the sphere, so any grid source works).
//! 2. Each target cell has radius `sqrt(area / π)` ("method_1", V4r4's).
//! 3. Neighbour search over all points: the `min(100, ⌊(2·max_radius / min_L)²⌋)`
//!    nearest within `⌊max_radius⌋` metres, kept if within the cell's own radius
//!    (closest first); separately the single nearest within `⌊max_L⌋`.
//! 4. Per level: the target is ocean if its closest in-radius point (or, with none in
//!    radius, its nearest point within `max_L`) is wet — EDP's land mask. Its row is
//!    then the wet in-radius points with equal weights, or the nearest point with
//!    weight 1.
//!
//! EDP searches a separate tree of each level's wet points for the rows; filtering
//! the all-points candidates by wetness gives the same rows (the nearest wet point is
//! the nearest point whenever the mask says ocean) unless the neighbour cap cuts a
//! list short, which at ECCO's resolutions (≤ a handful of points per 0.5° cell, cap
//! ≥ 9) does not happen. One search then serves all levels.

use rayon::prelude::*;

use super::kdtree::KdTree;
use super::{
    chord_of_metres, grid_hash, metres_of_chord, unit_vector, GridHash, RegridError, TargetGrid,
};
use crate::grid::{Grid, GridError, GridVar};
use crate::llc::{self, PointType, NTILES};

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    pub target: TargetGrid,
    /// Levels to build (1 ..= the grid's nz).
    pub levels: usize,
}

/// The factors of one level: a CSR matrix over the target cells that get a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelFactors {
    /// Target cell (`lat_row · nlon + lon_col`) of each row, strictly increasing.
    pub targets: Vec<u32>,
    /// Row `r` is `cols[row_ptr[r]..row_ptr[r+1]]` (length `targets.len() + 1`).
    pub row_ptr: Vec<u32>,
    /// Source C point of each entry, in tile order `(tile·N + j)·N + i`.
    pub cols: Vec<u32>,
    pub weights: Vec<f32>,
    /// EDP's lat-lon land mask as a bit set over target cells (bit set = ocean).
    pub ocean: Vec<u8>,
}

/// What a set of factors was built from and for: the header of a factors file, shared
/// by the built [`FactorSet`] and the opened [`super::Factors`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorsHeader {
    pub n: usize,
    pub target: TargetGrid,
    pub grid_hash: GridHash,
    /// Smallest native cell side (m).
    pub min_l: f64,
    /// Largest native cell side (m).
    pub max_l: f64,
    /// Neighbour cap of the radius search.
    pub neighbours: usize,
}

/// Factors of all levels, with what they were built from.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorSet {
    pub header: FactorsHeader,
    pub levels: Vec<LevelFactors>,
}

/// Smallest and largest side of the native cells (m): the great-circle lengths of
/// the south (dxG) and west (dyG) faces, from G points across tile edges where
/// needed.
pub fn cell_side_range(grid: &Grid) -> Result<(f64, f64), GridError> {
    let n = grid.n;
    let (xg, yg) = (grid.horizontal(GridVar::Xg)?, grid.horizontal(GridVar::Yg)?);
    let g = |t: usize, j: usize, i: usize| {
        let p = (t * n + j) * n + i;
        unit_vector(xg[p] as f64, yg[p] as f64)
    };
    let (lo, hi) = (0..NTILES * n)
        .into_par_iter()
        .map(|row| {
            let (t, j) = (row / n, row % n);
            let mut lo = f64::INFINITY;
            let mut hi = 0f64;
            for i in 0..n {
                let here = g(t, j, i);
                for (jg, ig) in [(j, i + 1), (j + 1, i)] {
                    if let Some(other) = llc::corner(n, t, jg, ig, g) {
                        let c = ((here[0] - other[0]).powi(2)
                            + (here[1] - other[1]).powi(2)
                            + (here[2] - other[2]).powi(2))
                        .sqrt();
                        let d = metres_of_chord(c);
                        if d > 0.0 {
                            lo = lo.min(d);
                            hi = hi.max(d);
                        }
                    }
                }
            }
            (lo, hi)
        })
        .reduce(|| (f64::INFINITY, 0.0), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    Ok((lo, hi))
}

/// The level-independent part: each target's in-radius candidates (closest first)
/// and its nearest point within `max_L`.
struct Candidates {
    ptr: Vec<u32>,
    ids: Vec<u32>,
    nearest: Vec<u32>,
}

const NONE: u32 = u32::MAX;

/// Builds the factors of `grid` (every level of `opts.levels`, in parallel).
pub fn build(grid: &Grid, opts: &BuildOptions) -> Result<FactorSet, RegridError> {
    let n = grid.n;
    if opts.levels == 0 || opts.levels > grid.nz {
        return Err(RegridError::Config(format!(
            "{} levels asked for, but the grid {} has {} (1 ..= {} possible)",
            opts.levels,
            grid.source.display(),
            grid.nz,
            grid.nz
        )));
    }
    let len = grid.level_len();
    if len > u32::MAX as usize {
        return Err(RegridError::Config(format!(
            "LLC{n} has too many points for 32-bit factor indices"
        )));
    }
    let hash = grid_hash(grid, opts.levels)?;
    let target = opts.target;
    let (min_l, max_l) = cell_side_range(grid)?;
    if !(min_l.is_finite() && max_l > 0.0) {
        return Err(RegridError::Config(format!(
            "grid {} has degenerate cell sizes (min {min_l} m, max {max_l} m)",
            grid.source.display()
        )));
    }
    let radius: Vec<f64> = (0..target.nlat).map(|j| target.radius(j)).collect();
    let max_radius = radius.iter().cloned().fold(0.0, f64::max);
    // EDP: int((2·max_radius / min_L)²), at most 100 (and at least one).
    let neighbours = (((2.0 * max_radius / min_l).powi(2)) as usize).clamp(1, 100);

    let points: Vec<[f64; 3]> = grid
        .horizontal(GridVar::Xc)?
        .iter()
        .zip(grid.horizontal(GridVar::Yc)?)
        .map(|(&x, &y)| unit_vector(x as f64, y as f64))
        .collect();
    let tree = KdTree::new(&points);
    // pyresample takes integer radii of influence (metres).
    let search = chord_of_metres(max_radius.trunc());
    let nearest_search = chord_of_metres(max_l.trunc());

    let rows: Vec<(Vec<u32>, u32)> = (0..target.len())
        .into_par_iter()
        .map_init(Vec::new, |buf, t| {
            let (jlat, ilon) = (t / target.nlon, t % target.nlon);
            let q = unit_vector(target.lon(ilon), target.lat(jlat));
            tree.k_nearest_within(&q, neighbours, search, buf);
            let r = radius[jlat];
            let within: Vec<u32> = buf
                .iter()
                .filter(|(c, _)| metres_of_chord(*c) <= r)
                .map(|&(_, i)| i)
                .collect();
            let nearest = tree
                .nearest_within(&q, nearest_search)
                .map_or(NONE, |(i, _)| i);
            (within, nearest)
        })
        .collect();
    let mut cand = Candidates {
        ptr: Vec::with_capacity(rows.len() + 1),
        ids: Vec::new(),
        nearest: Vec::with_capacity(rows.len()),
    };
    cand.ptr.push(0);
    for (within, nearest) in rows {
        cand.ids.extend_from_slice(&within);
        cand.ptr.push(cand.ids.len() as u32);
        cand.nearest.push(nearest);
    }

    let levels = (0..opts.levels)
        .into_par_iter()
        .map(|k| {
            let mut hfac = vec![0f32; len];
            grid.hfac_level(PointType::C, k, &mut hfac)?;
            Ok(level_factors(&cand, &hfac, target.len()))
        })
        .collect::<Result<Vec<_>, RegridError>>()?;
    Ok(FactorSet {
        header: FactorsHeader {
            n,
            target,
            grid_hash: hash,
            min_l,
            max_l,
            neighbours,
        },
        levels,
    })
}

fn level_factors(cand: &Candidates, hfac: &[f32], ntarget: usize) -> LevelFactors {
    let wet = |i: u32| hfac[i as usize] > 0.0;
    let mut f = LevelFactors {
        ocean: vec![0u8; ntarget.div_ceil(8)],
        row_ptr: vec![0],
        ..LevelFactors::default()
    };
    for t in 0..ntarget {
        let within = &cand.ids[cand.ptr[t] as usize..cand.ptr[t + 1] as usize];
        let nearest = cand.nearest[t];
        let row_start = f.cols.len();
        match within.first() {
            // The land mask takes the closest in-radius point's wetness ...
            Some(&closest) if wet(closest) => {
                let wet_ids: Vec<u32> = within.iter().copied().filter(|&i| wet(i)).collect();
                let w = 1.0 / wet_ids.len() as f32;
                f.cols.extend_from_slice(&wet_ids);
                f.weights.extend(std::iter::repeat(w).take(wet_ids.len()));
            }
            Some(_) => continue,
            // ... or, with none in radius, the nearest point's within max_L.
            None if nearest != NONE && wet(nearest) => {
                f.cols.push(nearest);
                f.weights.push(1.0);
            }
            None => continue,
        }
        f.ocean[t / 8] |= 1 << (t % 8);
        if f.cols.len() > row_start {
            f.targets.push(t as u32);
            f.row_ptr.push(f.cols.len() as u32);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(rows: &[(&[u32], u32)]) -> Candidates {
        let mut c = Candidates {
            ptr: vec![0],
            ids: vec![],
            nearest: vec![],
        };
        for (w, n) in rows {
            c.ids.extend_from_slice(w);
            c.ptr.push(c.ids.len() as u32);
            c.nearest.push(*n);
        }
        c
    }

    #[test]
    fn rows_follow_edps_rules() {
        // Sources 0..4; 1 and 3 are dry.
        let hfac = [1.0, 0.0, 0.5, 0.0];
        let c = cand(&[
            (&[0, 1, 2], 0), // closest wet: mean of the wet ones (0, 2)
            (&[1, 0], 1),    // closest dry: land, even with a wet point in radius
            (&[], 2),        // none in radius, nearest wet: weight 1
            (&[], 3),        // none in radius, nearest dry: land
            (&[], NONE),     // nothing near: land
            (&[2], 2),       // one wet point in radius
        ]);
        let f = level_factors(&c, &hfac, 6);
        assert_eq!(f.targets, vec![0, 2, 5]);
        assert_eq!(f.row_ptr, vec![0, 2, 3, 4]);
        assert_eq!(f.cols, vec![0, 2, 2, 2]);
        assert_eq!(f.weights, vec![0.5, 0.5, 1.0, 1.0]);
        assert_eq!(f.ocean, vec![0b0010_0101]);
    }
}
