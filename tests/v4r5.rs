//! A V4r5 run from the V4r5 metadata set as EDP ships it (metadata/V4r5, unchanged), with
//! only its two missing commas put in (in a temporary copy): the release constants come
//! from EDP's own product_generation_config.yaml and the granules carry V4r5 names,
//! titles, DOIs and product version. Expected values are copied from the set's PO.DAAC
//! table and config file by hand, not from our output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sample;
use edp::metadata::MetadataSet;
use edp::ncio::{AttrValue, NcReader};

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// The V4r5 set as EDP ships it, copied unchanged into the repository (with its two
/// JSON syntax errors) from ECCO's metadata directory.
fn shipped_v4r5() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata/V4r5")
}

/// A copy of the V4r5 set (same directory name) with a comma after every record that
/// closes with no comma before the next one opens: the two upstream syntax errors.
fn fixed_copy(into: &Path) -> PathBuf {
    let src = shipped_v4r5();
    assert!(
        src.is_dir(),
        "the V4r5 set is expected at {}",
        src.display()
    );
    let dst = into.join("V4r5");
    std::fs::create_dir_all(&dst).unwrap();
    let mut fixed = 0;
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.file_name().unwrap() != "global_metadata_for_all_datasets.json" {
            std::fs::copy(&p, &to).unwrap();
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if l.trim() == "}" && lines.get(i + 1).is_some_and(|n| n.trim() == "{") {
                out.push(format!("{l},"));
                fixed += 1;
            } else {
                out.push(l.to_string());
            }
        }
        std::fs::write(&to, out.join("\n")).unwrap();
    }
    assert_eq!(fixed, 2, "the two missing commas");
    dst
}

fn string_attr(r: &NcReader, name: &str) -> String {
    match r
        .global_attrs()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no global attribute {name}"))
        .1
    {
        AttrValue::Str(s) => s,
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn the_release_constants_come_from_edps_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixed_copy(tmp.path());
    let m = MetadataSet::from_dir(&dir).unwrap();
    let r = &m.release;
    assert_eq!(r.version, "V4r5");
    assert_eq!(r.product_version, "Version 4, Release 5");
    assert_eq!(r.podaac_file, "PODAAC_dataset_table_V4r5_20230103.csv");
    assert_eq!(
        (r.native_label.as_str(), r.latlon_label.as_str()),
        ("llc0090", "0p50deg")
    );
    // `doi: 'CHECK THIS DOI 10.5067'`: the prefix, not the note.
    assert_eq!(r.doi_prefix, "10.5067");
    assert_eq!(r.history, "Initial distribution of ECCO V4r5 to PO.DAAC");
    assert!(
        r.tail_native.contains("release 5 (V4r5)"),
        "{}",
        r.tail_native
    );
    assert_eq!(r.clock.end.iso(), "2020-01-01T00:00:00");

    // edp_release.json still overrides the config.
    std::fs::write(
        dir.join("edp_release.json"),
        r#"{"product_version": "Version 4, Release 5 (test)"}"#,
    )
    .unwrap();
    let m = MetadataSet::from_dir(&dir).unwrap();
    assert_eq!(m.release.product_version, "Version 4, Release 5 (test)");
    assert_eq!(m.release.version, "V4r5");
}

#[test]
fn without_a_config_the_release_is_inferred_from_the_podaac_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixed_copy(tmp.path());
    std::fs::remove_file(dir.join("product_generation_config.yaml")).unwrap();
    std::fs::remove_file(dir.join("product_generation_config_updated.yaml")).unwrap();
    // Under another name, so the directory name says nothing.
    let other = tmp.path().join("metadata-set");
    std::fs::rename(&dir, &other).unwrap();
    let m = MetadataSet::from_dir(&other).unwrap();
    assert_eq!(m.release.version, "V4r5");
    assert_eq!(m.release.product_version, "Version 4, Release 5");
    assert_eq!(
        m.release.podaac_file,
        "PODAAC_dataset_table_V4r5_20230103.csv"
    );
}

#[test]
fn a_v4r5_run_writes_v4r5_names_titles_dois_and_product_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixed_copy(tmp.path());
    let s = Sample::new(12, 5, 1, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let jobs = tmp.path().join("jobs.txt");
    // Grouping 0 of V4r5's native groupings is SEA_SURFACE_HEIGHT.
    std::fs::write(&jobs, "[0, 'native', 'AVG_MON', 'all']\n").unwrap();
    let dest = tmp.path().join("out");
    let tasks = tmp.path().join("tasks.json");
    let o = Command::new(EDP)
        .args(["tasks", "--release", "V4r5", "--jobs"])
        .arg(&jobs)
        .arg("--source")
        .arg(s.source())
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(s.grid_dir())
        .arg("--metadata")
        .arg(&dir)
        .arg("-o")
        .arg(&tasks)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{text}");
    // Problems of groupings this run does not make are warned about, not fatal.
    assert!(text.contains("OBPAnoma"), "{text}");
    let o = Command::new(EDP)
        .args(["run", "--tasks"])
        .arg(&tasks)
        .arg("--metadata")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let granule = dest.join(
        "V4r5/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r5_native_llc0090.nc",
    );
    assert!(granule.is_file(), "{}", granule.display());
    let r = NcReader::open(&granule).unwrap();
    // From PODAAC_dataset_table_V4r5_20230103.csv, row of this file name.
    assert_eq!(
        string_attr(&r, "title"),
        "ECCO Sea Surface Height - Monthly Mean llc90 Grid (Version 4 Release 5)"
    );
    assert_eq!(
        string_attr(&r, "id"),
        "ECCO_L4_SSH_LLC0090GRID_MONTHLY_V4R5"
    );
    assert_eq!(
        string_attr(&r, "identifier_product_doi"),
        "10.5067/ECL5M-SSH45"
    );
    // From product_generation_config.yaml.
    assert_eq!(string_attr(&r, "product_version"), "Version 4, Release 5");
    assert_eq!(
        string_attr(&r, "history"),
        "Initial distribution of ECCO V4r5 to PO.DAAC"
    );
    assert!(!string_attr(&r, "summary").contains("V4r4"));
    assert_eq!(
        string_attr(&r, "product_name"),
        "SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r5_native_llc0090.nc"
    );
}
