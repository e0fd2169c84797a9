//! Benchmark of opt-in BitRound (`edp run --significant-bits`): granule size saved and
//! largest relative error for N = 7, 10, 13 significant bits on THETA (3D) and SSH (2D)
//! native LLC90 monthly granules, beside the exact granule (the reference) written in
//! the same run, with the same deflate level 5 + shuffle.
//!
//! `cargo bench --bench bitround`. The synthetic fields are smooth closed forms, so the
//! exact granules already compress well; real ECCO fields carry more noise in their low
//! bits and gain more.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use edp::granule::FILL_F32;
use edp::ncio::NcReader;
use edp::synth::{self, SynthConfig};

fn granule(dest: &Path, grouping: &str) -> std::path::PathBuf {
    dest.join(format!(
        "V4r4/native/mon_mean/{grouping}/{grouping}_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc"
    ))
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let cfg = SynthConfig {
        n: 90,
        nz: 50,
        months: 1,
        variables: Some(vec!["THETA".into(), "SSH".into()]),
        ..SynthConfig::default()
    };
    synth::generate(&cfg, dir).expect("synth");
    let jobs = dir.join("jobs.txt");
    std::fs::write(
        &jobs,
        "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n",
    )
    .expect("jobs");
    let run = |dest: &Path, bits: Option<u8>| -> f64 {
        let t = Instant::now();
        let mut c = Command::new(env!("CARGO_BIN_EXE_edp"));
        c.args(["run", "--jobs"])
            .arg(&jobs)
            .arg("--source")
            .arg(dir.join("V4r4"))
            .arg("--dest")
            .arg(dest)
            .arg("--grid")
            .arg(dir.join("grid"))
            .arg("--progress")
            .arg("0")
            .env("EDP_MPI", "off")
            .env("RUST_LOG", "warn");
        if let Some(n) = bits {
            c.arg("--significant-bits")
                .arg(format!("THETA={n},SSH={n}"));
        }
        let out = c.output().expect("edp run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    let exact = dir.join("exact");
    let exact_secs = run(&exact, None);
    println!("BitRound on synthetic LLC90 native monthly granules (deflate 5 + shuffle)");
    println!("| variable | N | granule MB | exact MB | saved | max rel. error | bound 2^-(N+1) | run s (exact s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in [7u8, 10, 13] {
        let dest = dir.join(format!("bits{n}"));
        let secs = run(&dest, Some(n));
        for (grouping, var) in [
            ("OCEAN_TEMPERATURE_SALINITY", "THETA"),
            ("SEA_SURFACE_HEIGHT", "SSH"),
        ] {
            let (pe, pq) = (granule(&exact, grouping), granule(&dest, grouping));
            let size = |p: &Path| std::fs::metadata(p).expect("granule").len() as f64 / 1e6;
            let (se, sq) = (size(&pe), size(&pq));
            let ev = NcReader::open(&pe)
                .and_then(|r| r.read_f32(var))
                .expect("exact");
            let qv = NcReader::open(&pq)
                .and_then(|r| r.read_f32(var))
                .expect("quantized");
            let max_rel = ev
                .iter()
                .zip(&qv)
                .filter(|(a, _)| **a != FILL_F32 && **a != 0.0)
                .map(|(a, b)| (f64::from(*b) - f64::from(*a)).abs() / f64::from(*a).abs())
                .fold(0.0, f64::max);
            println!(
                "| {var} | {n} | {sq:.2} | {se:.2} | {:.0}% | {max_rel:.2e} | {:.2e} | {secs:.1} ({exact_secs:.1}) |",
                100.0 * (1.0 - sq / se),
                2f64.powi(-(i32::from(n) + 1))
            );
        }
    }
    println!("(granule MB is the whole file: THETA's holds SALT-free THETA + coordinates, SSH's SSH + coordinates)");
}
