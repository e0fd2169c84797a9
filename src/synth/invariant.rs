//! Synthetic time-invariant model inputs: the mixing coefficients of ECCO's
//! `OCEAN_3D_MIXING_COEFFS` grouping (DIFFKR, KAPGM, KAPREDI) as 3D float32 MDS files
//! in the layout `edp tasks` reads for `TI` jobs:
//! `<out>/<release>/time_invariant/<VAR>_TI/<VAR>_TI.0000000000.{data,meta}`.
//!
//! Values are closed forms of position and depth around ECCO's first guesses
//! (1e-5 m² s⁻¹ for DIFFKR, 1e3 m² s⁻¹ for the other two), 0 on land, so tests can
//! recompute any cell.

use std::path::{Path, PathBuf};

use super::bathymetry::{Bathymetry, VerticalGrid};
use super::geometry::{LlcMap, Stagger};
use super::output::{self, Tally};
use super::SynthError;
use crate::llc::NTILES;
use crate::mds::{MdsWriter, Precision};

/// The mixing coefficients written, in the grouping's order.
pub const MIXING_FIELDS: [&str; 3] = ["DIFFKR", "KAPGM", "KAPREDI"];

/// Step number in the files' names (the optimisation's iteration; any will do).
pub const INVARIANT_STEP: u64 = 0;

/// Value of a mixing coefficient at (lon°, lat°, z m, negative down).
pub fn mixing_value(var: &str, lon: f64, lat: f64, z: f64) -> f64 {
    let (lo, la) = (lon.to_radians(), lat.to_radians());
    let depth = (-z / 1000.0).clamp(0.0, 6.0);
    match var {
        "DIFFKR" => 1e-5 * (1.0 + 0.5 * (2.0 * lo).sin() * la.cos() + 0.2 * depth),
        "KAPGM" => 1e3 * (1.0 + 0.4 * la.cos() * (3.0 * lo).cos()) / (1.0 + 0.1 * depth),
        _ => 1e3 * (0.8 + 0.3 * (2.0 * la).sin().abs() + 0.05 * depth),
    }
}

/// Base path (without `.data`/`.meta`) of a time-invariant input.
pub fn invariant_base(release_dir: &Path, var: &str) -> PathBuf {
    let p = format!("{var}_TI");
    release_dir
        .join("time_invariant")
        .join(&p)
        .join(format!("{p}.{INVARIANT_STEP:010}"))
}

/// Writes the three mixing coefficients for LLC-`n` × `nz` levels under `release_dir`.
pub fn write_mixing(n: usize, nz: usize, release_dir: &Path) -> Result<Tally, SynthError> {
    let map = LlcMap::new(n.max(1));
    let bathy = Bathymetry::new(&map, VerticalGrid::new(nz));
    let c = map.point_geometry(Stagger::C);
    let [wet, _, _] = bathy.wet_levels();
    let v = bathy.vertical();
    let mut tally = Tally::default();
    for var in MIXING_FIELDS {
        let base = invariant_base(release_dir, var);
        if let Some(dir) = base.parent() {
            output::create_dir(dir)?;
        }
        let mut w = MdsWriter::create(
            &base,
            n,
            Some(nz),
            Precision::F32,
            var,
            Some(INVARIANT_STEP),
        )?;
        let mut level = vec![0f32; NTILES * n * n];
        for k in 0..nz {
            for (p, out) in level.iter_mut().enumerate() {
                *out = if usize::from(wet[p]) > k {
                    mixing_value(var, c.lon[p], c.lat[p], v.rc[k]) as f32
                } else {
                    0.0
                };
            }
            w.write_level_tiles(&level)?;
        }
        w.finish()?;
        tally.add_pair(&base)?;
    }
    Ok(tally)
}
