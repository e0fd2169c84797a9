//! CF-1.8 and ACDD-1.3 scores of the IOOS compliance-checker (`cchecker.py`, installed
//! by scripts/setup.sh; it runs offline) on native and lat-lon granules, 2D and 3D,
//! held as floors. EDP's own SSH monthly native granule scores CF 515/531 and ACDD
//! 55/67, as ours did before the additions of `edp::granule::compliance`. The four 1D
//! collections (made by `edp run --jobs` from synthetic time series) have floors of
//! their own.

mod common;

use std::process::Command;

use common::{require, Sample};
use serde_json::Value;

/// (granule below the destination, CF scored, CF failed, ACDD scored, ACDD failed):
/// the scores measured when the floors were set; a granule must score at least as
/// many points and fail at most as many. The ACDD floors were lowered when the extents
/// became those of the cells' bounds (EDP's ±90/±180 and 0/−6134.5): the checker's
/// `geospatial_*_extents_match` compares them with the coordinate (centre) values,
/// which the bounds rightly exceed by half a cell (README, compliance section).
const FLOORS: [(&str, u64, u64, u64, u64); 4] = [
    (
        "V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
        521, 15, 62, 6,
    ),
    (
        "V4r4/native/mon_mean/OCEAN_TEMPERATURE_SALINITY/OCEAN_TEMPERATURE_SALINITY_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
        670, 14, 62, 4,
    ),
    (
        "V4r4/latlon/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_latlon_0p50deg.nc",
        332, 3, 56, 9,
    ),
    (
        "V4r4/latlon/mon_mean/OCEAN_TEMPERATURE_SALINITY/OCEAN_TEMPERATURE_SALINITY_mon_mean_1992-01_ECCO_V4r4_latlon_0p50deg.nc",
        348, 4, 58, 8,
    ),
];

#[test]
fn cf_and_acdd_scores_hold_their_floors() {
    require("cchecker.py");
    // LLC90 x 50 levels, every synthetic variable, January 1992 (as EDP's granules).
    let sample = Sample::new(90, 50, 1, &[]);
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n\
                [0, 'latlon', 'AVG_MON', 'all']\n[9, 'latlon', 'AVG_MON', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    check_floors(&sample, &out, &FLOORS);
}

/// The 1D floors. What the checker still counts against them is deliberate: no CF
/// `standard_name` exists for these global means (the metadata's is empty, and not
/// written); global means have no geospatial extents; `time_coverage_start/end` are the
/// release's, as ECCO's script sets them, not the record's (here a few synthetic days);
/// `time_bnds` keeps the metadata's own `long_name`/`comment`, which CF 7.1 would have
/// equal to `time`'s (README, 1D section).
const FLOORS_1D: [(&str, u64, u64, u64, u64); 4] = [
    (
        "V4r4/1D/snap/GLOBAL_MEAN_ATM_SURFACE_PRES/GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc",
        125, 0, 36, 14,
    ),
    (
        "V4r4/1D/day_mean/GLOBAL_MEAN_SEA_LEVEL/GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc",
        191, 1, 39, 17,
    ),
    (
        "V4r4/1D/mon_mean/GLOBAL_MEAN_SEA_LEVEL/GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc",
        191, 1, 38, 18,
    ),
    (
        "V4r4/1D/snap/SBO_CORE_PRODUCTS/SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc",
        820, 0, 85, 40,
    ),
];

#[test]
fn the_1d_granules_hold_their_floors() {
    require("cchecker.py");
    let sample = Sample::new(18, 5, 1, &["SSH"]);
    edp::synth::oned::write_inputs(&std::path::Path::new(&sample.source()).join("1D"), 4, 3)
        .unwrap();
    let out = sample.out();
    let jobs = "[0, '1D', 'SNAP', 'all']\n[1, '1D', 'AVG_DAY', 'all']\n\
                [1, '1D', 'AVG_MON', 'all']\n[2, '1D', 'SNAP', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    check_floors(&sample, &out, &FLOORS_1D);
}

/// Runs the checker on each granule of `floors` below `out` and fails on any below its
/// floor.
fn check_floors(sample: &Sample, out: &std::path::Path, floors: &[(&str, u64, u64, u64, u64)]) {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for &(rel, cf_min, cf_fail, acdd_min, acdd_fail) in floors {
        let json = sample.dir.path().join("cc.json");
        let o = Command::new("cchecker.py")
            .args(["-t", "cf:1.8", "-t", "acdd:1.3", "-f", "json", "-o"])
            .arg(&json)
            .arg(out.join(rel))
            .output()
            .unwrap();
        let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "cchecker.py wrote no report for {rel} ({e}): {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        let v: Value = serde_json::from_str(&text).unwrap();
        for (test, min, max_fail) in [
            ("cf:1.8", cf_min, cf_fail),
            ("acdd:1.3", acdd_min, acdd_fail),
        ] {
            let scored = v[test]["scored_points"].as_u64().unwrap();
            let possible = v[test]["possible_points"].as_u64().unwrap();
            report.push(format!("{test} {scored}/{possible} {rel}"));
            if scored < min || possible - scored > max_fail {
                failures.push(format!(
                    "{rel}: {test} {scored}/{possible}, floor {min} scored and at most {max_fail} failed"
                ));
            }
        }
        let _ = std::fs::remove_file(&json);
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
