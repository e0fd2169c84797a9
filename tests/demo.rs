//! `edp demo` runs through the same SPMD runner as `edp run` (a world of one rank): its
//! granules get journal records, a manifest and a summary, and a second demo in the same
//! directory skips what the first one finished. Its four 1D granules are among them.

mod common;

use std::process::Command;

use common::files_under;
use edp::run::journal::Status;
use edp::run::manifest::Manifest;

#[test]
fn demo_goes_through_the_spmd_runner() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = || {
        Command::new(env!("CARGO_BIN_EXE_edp"))
            .args(["demo", "--n", "8", "--months", "1", "--out"])
            .arg(&out)
            .env("EDP_MPI", "off")
            .output()
            .unwrap()
    };
    let first = demo();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let granules: Vec<_> = files_under(&out.join("output"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nc"))
        .collect();
    assert!(granules.len() >= 8, "{granules:?}");
    let manifest = Manifest::read(&out.join("output").join("edp-manifest.json")).unwrap();
    assert_eq!(manifest.granules.len(), granules.len());
    assert!(manifest.granules.iter().all(|r| r.status == Status::Done));
    // The four 1D collections are run and recorded with the others.
    let one_d = manifest
        .granules
        .iter()
        .filter(|r| r.granule.starts_with("V4r4/1D/"))
        .count();
    assert_eq!(
        one_d,
        4,
        "{:?}",
        manifest
            .granules
            .iter()
            .map(|r| &r.granule)
            .collect::<Vec<_>>()
    );
    assert!(out.join("output").join("edp-summary.txt").is_file());

    // The restart logic of the SPMD runner: nothing is redone.
    let second = demo();
    assert_eq!(second.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains(&format!("0 done, 0 failed, {} skipped", granules.len())),
        "{stdout}"
    );
}
