//! Applying mapping factors: one level of a native field (13 tiles, tile order) to
//! the lat-lon grid, as a sparse matrix–vector product.
//!
//! Target cells without a row (land in EDP's mask, or no source in reach) and rows
//! whose sources hold non-finite values get the fill value. EDP writes 0 for a wet
//! target whose row is empty; here such a target has no row and gets the fill.

use rayon::prelude::*;

use super::format::{Factors, LevelView};
use super::RegridError;

/// Regrids one level: `out[t] = Σ weight · src[col]` over the row of target `t`.
///
/// `src` holds 13·N² values in tile order, `out` nlat·nlon values, rows south to
/// north. Parallel over latitude rows.
pub fn regrid_level(
    factors: &Factors,
    k: usize,
    src: &[f32],
    out: &mut [f32],
    fill: f32,
) -> Result<(), RegridError> {
    let nsource = crate::llc::NTILES * factors.n * factors.n;
    if src.len() != nsource || out.len() != factors.target.len() {
        return Err(RegridError::Shape(format!(
            "regridding level {k}: {} source and {} target values, but the factors {} map LLC{} ({nsource}) to {}x{} ({})",
            src.len(),
            out.len(),
            factors.origin.display(),
            factors.n,
            factors.target.nlat,
            factors.target.nlon,
            factors.target.len()
        )));
    }
    let view = factors.level(k)?;
    apply_view(&view, factors.target.nlon, src, out, fill);
    Ok(())
}

fn apply_view(view: &LevelView<'_>, nlon: usize, src: &[f32], out: &mut [f32], fill: f32) {
    out.par_chunks_mut(nlon)
        .enumerate()
        .for_each(|(jlat, chunk)| {
            chunk.fill(fill);
            let first = (jlat * nlon) as u32;
            let lo = view.targets.partition_point(|&t| t < first);
            let hi = view.targets.partition_point(|&t| t < first + nlon as u32);
            for r in lo..hi {
                let (a, b) = (view.row_ptr[r] as usize, view.row_ptr[r + 1] as usize);
                let s: f64 = view.cols[a..b]
                    .iter()
                    .zip(&view.weights[a..b])
                    .map(|(&c, &w)| f64::from(w) * f64::from(src[c as usize]))
                    .sum();
                let v = s as f32;
                if v.is_finite() {
                    chunk[(view.targets[r] - first) as usize] = v;
                }
            }
        });
}

/// Minimum and maximum of the values that are not `fill` (NaN, NaN if none).
pub fn value_range(values: &[f32], fill: f32) -> (f32, f32) {
    let (lo, hi) = values
        .par_iter()
        .filter(|&&x| x != fill)
        .fold(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |(lo, hi), &x| (lo.min(x), hi.max(x)),
        )
        .reduce(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    if lo > hi {
        (f32::NAN, f32::NAN)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::super::factors::{FactorSet, LevelFactors};
    use super::super::{GridHash, TargetGrid};
    use super::*;

    #[test]
    fn mean_of_rows_and_fill_elsewhere() {
        // 4 x 8 target cells, LLC1 (13 sources).
        let target = TargetGrid::global(45.0).unwrap();
        let mut ocean = vec![0u8; 4];
        for t in [0usize, 9, 31] {
            ocean[t / 8] |= 1 << (t % 8);
        }
        let set = FactorSet {
            n: 1,
            target,
            grid_hash: GridHash([0; 32]),
            min_l: 1.0,
            max_l: 1.0,
            neighbours: 4,
            levels: vec![LevelFactors {
                targets: vec![0, 9, 31],
                row_ptr: vec![0, 2, 3, 4],
                cols: vec![3, 4, 12, 5],
                weights: vec![0.5, 0.5, 1.0, 1.0],
                ocean,
            }],
        };
        let f = Factors::from_set(&set).unwrap();
        let mut src: Vec<f32> = (0..13).map(|i| i as f32 * 10.0).collect();
        src[5] = f32::NAN;
        let mut out = vec![0f32; 32];
        regrid_level(&f, 0, &src, &mut out, -1.0).unwrap();
        for (t, v) in out.iter().enumerate() {
            let want = match t {
                0 => 35.0,
                9 => 120.0,
                _ => -1.0, // 31: its only source is NaN
            };
            assert_eq!(*v, want, "target {t}");
        }
        assert_eq!(value_range(&out, -1.0), (35.0, 120.0));
        assert!(value_range(&[-1.0], -1.0).0.is_nan());
        assert!(regrid_level(&f, 0, &src[..12], &mut out, -1.0).is_err());
        assert!(regrid_level(&f, 1, &src, &mut out, -1.0).is_err());
    }
}
