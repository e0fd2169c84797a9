//! `edp run --significant-bits`: BitRound of named variables, checked against the same
//! run without it (values within the bound, attribute present, manifest records it),
//! and off by default.

mod common;

use std::path::Path;
use std::process::Command;

use common::{have, Sample};
use edp::granule::quantize::ATTR;
use edp::granule::FILL_F32;
use edp::ncio::{AttrValue, NcReader};
use edp::run::manifest::Manifest;

fn run(sample: &Sample, dest: &Path, extra: &[&str]) {
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n";
    assert_eq!(
        sample.run_jobs(jobs, dest, extra),
        Some(0),
        "edp run {extra:?}"
    );
}

fn granule(dest: &Path, grouping: &str) -> std::path::PathBuf {
    dest.join(format!(
        "V4r4/native/mon_mean/{grouping}/{grouping}_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc"
    ))
}

fn attr(r: &NcReader, var: &str, key: &str) -> Option<AttrValue> {
    r.var_attrs(var)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[test]
fn significant_bits_round_within_the_bound_and_are_recorded() {
    let sample = Sample::new(18, 6, 1, &["SSH", "THETA", "SALT"]);
    let exact = sample.dir.path().join("exact");
    let quantized = sample.dir.path().join("quantized");
    let table = sample.dir.path().join("bits.txt");
    std::fs::write(&table, "# table file\nSSH 7\nTHETA 3\n").unwrap();
    run(&sample, &exact, &[]);
    // The command line wins over the table for THETA.
    run(
        &sample,
        &quantized,
        &[
            "--significant-bits-file",
            table.to_str().unwrap(),
            "--significant-bits",
            "THETA=10",
        ],
    );

    for (grouping, var, nsb) in [
        ("OCEAN_TEMPERATURE_SALINITY", "THETA", 10u8),
        ("SEA_SURFACE_HEIGHT", "SSH", 7),
    ] {
        let e = NcReader::open(&granule(&exact, grouping)).unwrap();
        let q = NcReader::open(&granule(&quantized, grouping)).unwrap();
        assert_eq!(attr(&e, var, ATTR), None, "default is exact");
        assert_eq!(attr(&q, var, ATTR), Some(AttrValue::I32(i32::from(nsb))));
        let (ev, qv) = (e.read_f32(var).unwrap(), q.read_f32(var).unwrap());
        let bound = 2f64.powi(-(i32::from(nsb) + 1));
        let mut changed = 0;
        for (a, b) in ev.iter().zip(&qv) {
            if *a == FILL_F32 {
                assert_eq!(*b, FILL_F32);
                continue;
            }
            let rel =
                (f64::from(*b) - f64::from(*a)).abs() / f64::from(*a).abs().max(f64::MIN_POSITIVE);
            assert!(rel <= bound, "{var}: {a} -> {b}");
            assert_eq!(b.to_bits() & ((1u32 << (23 - nsb)) - 1), 0, "{b}");
            changed += usize::from(a != b);
        }
        assert!(
            changed > ev.len() / 4,
            "{var}: only {changed} values changed"
        );
        // The valid range still holds every value.
        let Some(AttrValue::F32(hi)) = attr(&q, var, "valid_max") else {
            panic!("valid_max")
        };
        let Some(AttrValue::F32(lo)) = attr(&q, var, "valid_min") else {
            panic!("valid_min")
        };
        assert!(qv
            .iter()
            .filter(|v| **v != FILL_F32)
            .all(|v| *v >= lo && *v <= hi));
        // SALT, not named, stays exact.
        if var == "THETA" {
            assert_eq!(e.read_f32("SALT").unwrap(), q.read_f32("SALT").unwrap());
            assert_eq!(attr(&q, "SALT", ATTR), None);
        }
        if have("ncdump") {
            let o = Command::new("ncdump")
                .arg("-h")
                .arg(granule(&quantized, grouping))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains(&format!("{var}:{ATTR} = {nsb} ;")),
                "ncdump -h shows the attribute"
            );
        }
    }

    let me = Manifest::read(&exact.join("edp-manifest.json")).unwrap();
    assert!(me.granules.iter().all(|r| r.significant_bits.is_empty()));
    let mq = Manifest::read(&quantized.join("edp-manifest.json")).unwrap();
    let bits = |g: &str| {
        mq.granules
            .iter()
            .find(|r| r.granule.contains(g))
            .map(|r| r.significant_bits.clone())
            .unwrap()
    };
    assert_eq!(bits("OCEAN_TEMPERATURE_SALINITY").get("THETA"), Some(&10));
    assert_eq!(bits("OCEAN_TEMPERATURE_SALINITY").len(), 1);
    assert_eq!(bits("SEA_SURFACE_HEIGHT").get("SSH"), Some(&7));
    // The EDP-era manifest, exported from the record store, carries them too.
    let exported = quantized.join("exported-manifest.json");
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["manifest", "export"])
        .arg(&quantized)
        .arg("-o")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.contains("\"significant_bits\""));
}

#[test]
fn bad_significant_bits_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .args([
            "run",
            "--tasks",
            "none.json",
            "--significant-bits",
            "THETA=30",
        ])
        .env("EDP_MPI", "off")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("THETA=30") && err.contains("1 to 23"), "{err}");
}
