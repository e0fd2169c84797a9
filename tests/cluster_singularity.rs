//! singularity/edp.def, checked as far as a machine without apptainer allows (Debian 12
//! packages neither apptainer nor singularity): `singularity/check-def.sh` parses it
//! (stage headers, sections, `%files` sources, `sh -n` of every script section) and
//! must also reject broken definitions. The deeper check, debootstrap + every stage's
//! %post in a chroot + %test, takes minutes and a release build; it is run by hand with
//! `singularity/check-def.sh --chroot DIR --host-rust` (see README).

mod cluster;

use std::path::Path;
use std::process::Command;

use cluster::*;

fn check(def: &Path) -> std::process::Output {
    run(Command::new(repo().join("singularity/check-def.sh")).arg(def))
}

#[test]
fn the_definition_parses_and_has_runscript_test_and_help() {
    let def = repo().join("singularity/edp.def");
    let out = check(&def);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("parse ok: 2 stage(s)"), "{said}");
    let text = std::fs::read_to_string(&def).unwrap();
    // The build stage copies what cargo needs from the checkout, the final stage the
    // binary from the build stage.
    for needle in [
        "Stage: build",
        "Stage: final",
        "%files from build",
        "cargo build --release --locked",
        "libnetcdf-dev libhdf5-dev libopenmpi-dev",
        "exec /usr/local/bin/edp \"$@\"",
    ] {
        assert!(text.contains(needle), "edp.def lacks {needle:?}");
    }
}

#[test]
fn broken_definitions_are_rejected() {
    let good = std::fs::read_to_string(repo().join("singularity/edp.def")).unwrap();
    let dir = workdir("singularity-broken");
    let cases = [
        (
            "%files from build",
            "%files from nowhere",
            "not an earlier stage",
        ),
        ("%runscript", "%runscrpt", "unknown section %runscrpt"),
        (
            "    set -eu\n    edp --version\n    tmp=",
            "    set -eu\n    if then\n    tmp=",
            "%test is not valid sh",
        ),
        (
            "    Cargo.lock /opt",
            "    Cargo.lockx /opt",
            "Cargo.lockx does not exist",
        ),
        (
            "Bootstrap: debootstrap\nOSVersion",
            "Bootstrap: docker\nOSVersion",
            "only debootstrap",
        ),
        ("%help", "%labels\n", "no %help"),
    ];
    for (i, (from, to, why)) in cases.iter().enumerate() {
        assert!(good.contains(from), "case {i}: {from:?} not in edp.def");
        let def = dir.join(format!("broken-{i}.def"));
        std::fs::write(&def, good.replacen(from, to, 1)).unwrap();
        let out = check(&def);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} ({why}) passed:\n{said}");
        assert!(said.contains(why), "case {i}: expected {why:?} in:\n{said}");
    }
}
