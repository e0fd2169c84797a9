//! Benchmark of `edp references`: the time to build the kerchunk reference file of one
//! collection of 1,000 granules (`EDP_BENCH_GRANULES` to change the count), beside the
//! reference measured in the same run on the same files: opening every granule and
//! reading its header (dimensions, variables, attributes) through netCDF-C, which is the
//! least a tool that re-reads each file's HDF5 metadata (kerchunk, VirtualiZarr) pays.
//!
//! `cargo bench --bench references`. The granules are daily sea-surface-height granules
//! of a small synthetic LLC18 grid, so that making 1,000 of them takes seconds.

use std::process::Command;
use std::time::Instant;

use edp::ncio::NcReader;
use edp::references;
use edp::synth::{self, SynthConfig};

fn main() {
    let count: usize = std::env::var("EDP_BENCH_GRANULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let cfg = SynthConfig {
        n: 18,
        nz: 5,
        months: 0,
        days: count,
        variables: Some(vec![
            "SSH".into(),
            "SSHIBC".into(),
            "SSHNOIBC".into(),
            "ETAN".into(),
        ]),
        ..SynthConfig::default()
    };
    let t = Instant::now();
    synth::generate(&cfg, dir).expect("synth");
    let jobs = dir.join("jobs.txt");
    std::fs::write(
        &jobs,
        "['SEA_SURFACE_HEIGHT', 'native', 'AVG_DAY', 'all']\n",
    )
    .expect("jobs");
    let dest = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["run", "--jobs"])
        .arg(&jobs)
        .arg("--source")
        .arg(dir.join("V4r4"))
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(dir.join("grid"))
        .args(["--progress", "0"])
        .env("EDP_MPI", "off")
        .env("RUST_LOG", "warn")
        .output()
        .expect("edp run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = t.elapsed().as_secs_f64();

    let collections = references::find_collections(&dest).expect("collections");
    let c = collections
        .iter()
        .find(|c| c.granules.len() == count)
        .expect("a collection of all the granules");

    // Reference: every granule's header read once through netCDF-C.
    let t = Instant::now();
    let mut vars = 0usize;
    for g in &c.granules {
        let r = NcReader::open(&dest.join(g)).expect("granule");
        vars += r.var_names().len() + r.dims().len();
        vars += r.global_attrs().expect("attributes").len();
    }
    let headers = t.elapsed().as_secs_f64();

    let out_dir = dir.join("refs");
    std::fs::create_dir_all(&out_dir).expect("refs dir");
    let t = Instant::now();
    let storage = edp::storage::Storage::new(&Default::default());
    let src = references::Source {
        tree: references::Tree::Local(dest.clone()),
        url_prefix: None,
        storage: &storage,
    };
    let refs = references::build(c, &src).expect("references");
    let built = t.elapsed().as_secs_f64();
    let keys = refs["refs"].as_object().map_or(0, |m| m.len());
    let bytes = refs.to_string().len();
    assert!(vars > 0 && keys > count);

    println!(
        "edp references on {count} granules ({}; made in {made:.1} s)",
        c.name
    );
    println!("| what | s | per granule ms |");
    println!("|---|---|---|");
    let per = |s: f64| s * 1e3 / count as f64;
    println!(
        "| build the reference file ({keys} keys, {:.1} MB JSON) | {built:.2} | {:.2} |",
        bytes as f64 / 1e6,
        per(built)
    );
    println!(
        "| reference: read every granule's header through netCDF-C | {headers:.2} | {:.2} |",
        per(headers)
    );
    println!("| ratio | {:.2} | |", built / headers);
}
