//! The 1D collections with everything on S3 (the test server on 127.0.0.1): their
//! time-series inputs found under an `s3://` source root (`<root>/<release>/1D/`),
//! fetched for the run, the granules uploaded below an `s3://` destination, and
//! `edp verify` of that tree counting them (exit 0). The granules downloaded hold the
//! input's record.

mod s3_support;

use std::process::Output;

use edp::storage::S3Url;
use s3_support::edp;

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn one_d_granules_from_and_to_s3() {
    let Some(ep) = s3_support::server("one_d_granules_from_and_to_s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n: 12,
        nz: 4,
        months: 1,
        variables: Some(vec!["SSH".to_string()]),
        ..Default::default()
    };
    edp::synth::generate(&cfg, dir.path()).unwrap();
    let inputs = dir.path().join("V4r4").join("1D");
    edp::synth::oned::write_inputs(&inputs, 3, 2).unwrap();
    let b = s3_support::bucket(&ep, "edp-oned");
    // Only the 1D inputs go up: s3://b/src/V4r4/1D/*.nc.
    assert_eq!(s3_support::upload_tree(&inputs, &b, "src/V4r4/1D"), 4);
    std::fs::write(
        dir.path().join("jobs.txt"),
        "['GLOBAL_MEAN_SEA_LEVEL', '1D', 'AVG_MON', 'all']\n[2, '1D', 'SNAP', 'all']\n",
    )
    .unwrap();
    let scratch = dir.path().join("scratch");
    let dest = format!("s3://{b}/out");
    let tasks = dir.path().join("tasks.json");
    let o = edp(&ep, &scratch)
        .current_dir(dir.path())
        .args(["tasks", "--jobs", "jobs.txt", "--grid", "grid"])
        .args(["--source", &format!("s3://{b}/src"), "--dest", &dest, "-o"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp tasks");
    let list = edp::tasks::read_task_list(&tasks).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].variables["global_mean_sea_level_anomaly"][0][0],
        format!("s3://{b}/src/V4r4/1D/GMSL.nc")
    );
    let o = edp(&ep, &scratch)
        .current_dir(dir.path())
        .env("EDP_MPI", "off")
        .args(["run", "--tasks", "tasks.json"])
        .output()
        .unwrap();
    ok(&o, "edp run");
    let o = edp(&ep, &scratch).args(["verify", &dest]).output().unwrap();
    ok(&o, "edp verify");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("2 granule(s)"), "{text}");
    // The monthly GMSL granule holds the input's two months.
    let d = edp::oned::DATASETS[2];
    let got = dir.path().join("gmsl.nc");
    s3_support::s3()
        .download(
            &S3Url {
                bucket: b.clone(),
                key: format!("out/{}", d.relative_path().unwrap()),
            },
            &got,
        )
        .unwrap();
    let r = edp::ncio::NcReader::open(&got).unwrap();
    assert_eq!(r.read_i32("time").unwrap().len(), 2);
    assert_eq!(
        r.read_as_f64("global_mean_barystatic_sea_level_anomaly")
            .unwrap()
            .len(),
        2
    );
}
