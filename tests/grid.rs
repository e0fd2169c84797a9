//! The ECCO grid from an MDS grid directory and from a GRID_GEOMETRY file.

mod common;

use std::sync::Arc;

use common::Sample;
use edp::granule::{self, Context, Encoding};
use edp::grid::Grid;
use edp::llc::{PointType, NTILES};
use edp::metadata::MetadataSet;
use edp::ncio::NcReader;
use edp::synth;

fn great_circle_deg(a: (f32, f32), b: (f32, f32)) -> f64 {
    let (l1, p1) = ((a.0 as f64).to_radians(), (a.1 as f64).to_radians());
    let (l2, p2) = ((b.0 as f64).to_radians(), (b.1 as f64).to_radians());
    let c = p1.sin() * p2.sin() + p1.cos() * p2.cos() * (l1 - l2).cos();
    c.clamp(-1.0, 1.0).acos().to_degrees()
}

#[test]
fn mds_grid_matches_the_synthetic_geometry() {
    let (n, nz) = (10, 5);
    let sample = Sample::new(n, nz, 1, &["SSH"]);
    let grid = Grid::open(&sample.grid_dir()).unwrap();
    let want = synth::llc_geometry(n, nz);
    assert_eq!((grid.n, grid.nz), (n, nz));
    let close = |a: &[f32], b: &[f64], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (*x as f64 - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    };
    close(&grid.xc, &want.xc, "XC");
    close(&grid.yc, &want.yc, "YC");
    close(&grid.xg, &want.xg, "XG");
    close(&grid.angle_cs, &want.angle_cs, "AngleCS");
    close(&grid.rac, &want.rac, "RAC");
    assert_eq!(grid.drf, want.drf);
    assert_eq!(grid.rf, want.rf);
    let len = grid.level_len();
    let mut h = vec![0f32; len];
    for k in 0..nz {
        grid.hfac_level(PointType::C, k, &mut h).unwrap();
        close(&h, &want.hfac_c[k], "hFacC");
        grid.hfac_level(PointType::U, k, &mut h).unwrap();
        close(&h, &want.hfac_w[k], "hFacW");
    }
}

#[test]
fn cell_corners_surround_their_centres() {
    // Computed from XG/YG and the tile connectivity (no GRID_GEOMETRY file here).
    let sample = Sample::new(12, 3, 1, &["SSH"]);
    let grid = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let n = grid.n;
    for t in 0..NTILES {
        for j in 0..n {
            for i in 0..n {
                let c = (t * n + j) * n + i;
                let centre = (grid.xc[c], grid.yc[c]);
                // The sw corner is the stored G point.
                assert_eq!(grid.xc_bnds[4 * c], grid.xg[c]);
                assert_eq!(grid.yc_bnds[4 * c], grid.yg[c]);
                let corners: Vec<(f32, f32)> = (0..4)
                    .map(|k| (grid.xc_bnds[4 * c + k], grid.yc_bnds[4 * c + k]))
                    .collect();
                let d: Vec<f64> = corners
                    .iter()
                    .map(|p| great_circle_deg(centre, *p))
                    .collect();
                let (lo, hi) = d
                    .iter()
                    .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
                // All four corners are about half a diagonal away, none missing or far off.
                assert!(
                    lo > 0.0,
                    "tile {t} ({j},{i}): a corner coincides with the centre"
                );
                assert!(
                    hi < 3.0 * lo + 1.0,
                    "tile {t} ({j},{i}): corners {d:?} around {centre:?}"
                );
            }
        }
    }
}

#[test]
fn geometry_file_round_trip_gives_the_same_granule_values() {
    let sample = Sample::new(10, 4, 1, &["THETA", "SALT"]);
    let mds = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let nc_path = sample
        .dir
        .path()
        .join("GRID_GEOMETRY_ECCO_V4r4_native_llc0010.nc");
    mds.write_geometry_nc(&nc_path).unwrap();
    let nc = Grid::open(&nc_path).unwrap();
    assert_eq!((nc.n, nc.nz), (mds.n, mds.nz));
    assert_eq!(nc.xc, mds.xc);
    assert_eq!(nc.yg, mds.yg);
    assert_eq!(nc.xc_bnds, mds.xc_bnds);
    assert_eq!(nc.rf, mds.rf);
    let len = mds.level_len();
    let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
    for p in [PointType::C, PointType::U, PointType::V] {
        for k in 0..mds.nz {
            mds.hfac_level(p, k, &mut a).unwrap();
            nc.hfac_level(p, k, &mut b).unwrap();
            assert_eq!(a, b, "{p:?} level {k}");
        }
    }
    // The same task through either grid gives the same data.
    let task = &sample.tasks("OCEAN_TEMPERATURE_SALINITY")[0];
    let meta = Arc::new(MetadataSet::embedded().unwrap());
    let mut values = Vec::new();
    for (grid, sub) in [(mds, "a"), (nc, "b")] {
        let mut t = task.clone();
        t.granule = t.granule.replace("/out/", &format!("/out-{sub}/"));
        let ctx = Context {
            metadata: Arc::clone(&meta),
            grid: Arc::new(grid),
            encoding: Encoding::default(),
        };
        let p = granule::produce(&t, &ctx).unwrap();
        let r = NcReader::open(&p.path).unwrap();
        values.push((
            r.read_f32("THETA").unwrap(),
            r.read_f32("XC_bnds").unwrap(),
            r.read_f32("Z").unwrap(),
        ));
    }
    assert_eq!(values[0], values[1]);
}

#[test]
fn a_directory_without_a_grid_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Grid::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("XC.meta"),
        "{e}"
    );
}
