//! `edp check-metadata` and the same gate in `edp tasks` / `edp run`, on the embedded
//! V4r4 set and on the V4r5 set as EDP ships it (metadata/V4r5, a verbatim copy).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// The V4r5 set as EDP ships it, copied unchanged into the repository (with its two
/// JSON syntax errors) from ECCO's metadata directory.
fn v4r5() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata/V4r5")
}

fn edp(args: &[&str]) -> Output {
    Command::new(EDP).args(args).output().expect("run edp")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A copy of a metadata set (same directory name) to damage.
fn copy_of(src: &Path, into: &Path) -> PathBuf {
    let dst = into.join(src.file_name().unwrap());
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    dst
}

#[test]
fn the_embedded_v4r4_set_passes() {
    let o = edp(&["check-metadata"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("no problems"));
}

#[test]
fn the_v4r4_directory_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata/V4r4");
    let o = edp(&["check-metadata", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn the_v4r5_set_as_shipped_lists_every_problem_with_file_and_line() {
    let dir = v4r5();
    assert!(
        dir.is_dir(),
        "the V4r5 set is expected at {}",
        dir.display()
    );
    let o = edp(&["check-metadata", dir.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let globals = dir.join("global_metadata_for_all_datasets.json");
    // Both missing commas, each with its line (the second found after recovering
    // from the first), checked against the file itself: the line before each starts
    // a record's closing brace with no comma.
    let content = std::fs::read_to_string(&globals).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    for l in [149usize, 154] {
        assert_eq!(lines[l - 2].trim(), "}", "line {}", l - 1);
        assert_eq!(lines[l - 1].trim(), "{", "line {l}");
        let want = format!("{}:{l}: JSON syntax error", globals.display());
        assert!(t.contains(&want), "{want} not in:\n{t}");
    }
    // The checks after the syntax errors still ran: fields without variable records
    // (OBPAnoma is in V4r5's grouping but in no variable file).
    let groupings = dir.join("groupings_for_native_datasets.json");
    assert!(
        t.contains(&format!("{}:", groupings.display())) && t.contains("OBPAnoma"),
        "{t}"
    );
    let raw = std::fs::read_to_string(dir.join("variable_metadata.json")).unwrap();
    assert!(!raw.contains("\"OBPAnoma\""));
    // A grouping without a frequency.
    assert!(
        t.contains("OCEAN_3D_MOMENTUM_TEND_X (native) declares no frequency"),
        "{t}"
    );
    // One line per problem, counted in the head line.
    let n: usize = t
        .lines()
        .next()
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("count in the head line");
    assert_eq!(t.lines().filter(|l| l.starts_with("  ")).count(), n);
    // Each problem said once, and only with the set's own paths (issue 23: warnings
    // were printed twice, once naming an internal temporary copy).
    let mut seen = std::collections::BTreeSet::new();
    for l in t.lines() {
        assert!(seen.insert(l), "said twice: {l}\n{t}");
    }
    for l in t.lines().filter(|l| l.contains(".json:")) {
        assert!(l.contains(dir.to_str().unwrap()), "not the set's path: {l}");
    }
}

#[test]
fn tasks_and_run_refuse_a_bad_set_before_any_work_listing_all_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let v4r4 = Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata/V4r4");
    let dir = copy_of(&v4r4, tmp.path());
    // Two problems in two files: a syntax error, and a field without a record.
    let vars = dir.join("ECCOv4r4_variable_metadata.json");
    let text_v = std::fs::read_to_string(&vars).unwrap();
    std::fs::write(
        &vars,
        text_v.replacen("\"name\": \"THETA\"", "\"name\": \"THETA_GONE\"", 1),
    )
    .unwrap();
    let coords = dir.join("ECCOv4r4_coordinate_metadata_for_native_datasets.json");
    let text_c = std::fs::read_to_string(&coords).unwrap();
    let broken = text_c.replacen("},", "}", 1);
    std::fs::write(&coords, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.trim_start().starts_with('{'))
        .map(|first| {
            broken
                .lines()
                .enumerate()
                .skip(first + 1)
                .find(|(_, l)| l.trim_start().starts_with('{'))
                .unwrap()
                .0
                + 1
        })
        .unwrap();

    let jobs = tmp.path().join("jobs.txt");
    std::fs::write(&jobs, "[0, 'native', 'AVG_MON', 'all']\n").unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let dest = tmp.path().join("out");
    let d = dir.to_str().unwrap();
    let o = edp(&["check-metadata", d]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    // The syntax error, and THETA in the native and the lat-lon grouping.
    assert!(t.contains("3 problem(s)"), "{t}");
    assert!(
        t.contains(&format!("{}:{line}: JSON syntax error", coords.display())),
        "{t}"
    );
    assert!(
        t.contains("lists field THETA, which has no record in the variable metadata"),
        "{t}"
    );
    // tasks and run stop at the problem of the whole set, before any work.
    for cmd in ["tasks", "run"] {
        let args = [
            cmd,
            "--jobs",
            jobs.to_str().unwrap(),
            "--source",
            src.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--metadata",
            d,
            // `edp tasks` needs a grid; the set's problems are found before it is opened.
            "--grid",
            src.to_str().unwrap(),
        ];
        let o = edp(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains("1 problem(s)"), "{args:?}: {t}");
        assert!(
            t.contains(&format!("{}:{line}: JSON syntax error", coords.display())),
            "{args:?}: {t}"
        );
    }
    // Nothing was produced.
    assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().next().is_none());
}
