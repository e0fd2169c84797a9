//! The command line as a new user meets it (issue 23): configuration errors before any
//! work, no silent empties, one spelling of options, messages that say what to do.
//! Every test runs the real binary on temporary directories and checks the exit status,
//! the message, and what is or is not written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Sample;

fn edp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(args)
        .env("EDP_MPI", "off")
        .env_remove("RUST_LOG")
        .output()
        .expect("edp runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `edp: error:` lines of a run.
fn error_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("edp: error:"))
        .map(str::to_string)
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small sample (LLC8, 2 levels, two months of SSH's inputs) and a jobs file.
fn sample() -> (Sample, std::path::PathBuf) {
    let sample = Sample::new(8, 2, 2, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let jobs = sample.dir.path().join("jobs.txt");
    std::fs::write(&jobs, "[0, 'native', 'AVG_MON', 'all']\n").unwrap();
    (sample, jobs)
}

/// Asserts exit 2 with one error line containing every `want`, and nothing at `dest`.
fn config_error(o: &Output, want: &[&str], dest: &Path) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let errors = error_lines(o);
    assert_eq!(errors.len(), 1, "one error line: {t}");
    for w in want {
        assert!(errors[0].contains(w), "{w:?} not in {t}");
    }
    assert!(!dest.exists(), "{} was written: {t}", dest.display());
}

#[test]
fn shared_configuration_is_checked_once_before_any_work() {
    let (sample, jobs) = sample();
    let dest = sample.dir.path().join("dest");
    let run = |grid: &str, extra: &[&str]| {
        let mut a = vec![
            "run",
            "--jobs",
            s(&jobs),
            "--source",
            sample.dir.path().to_str().unwrap(),
            "--dest",
            s(&dest),
            "--grid",
            grid,
            "--progress",
            "0",
        ];
        a.extend(extra);
        edp(&a)
    };
    // A grid that does not exist.
    config_error(
        &run("/nonexistent/grid", &[]),
        &["grid /nonexistent/grid"],
        &dest,
    );
    // The model output given as the grid.
    let source = sample.source();
    config_error(&run(&source, &[]), &["model output, not a grid"], &dest);
    // A grid of another LLC size than the inputs.
    let other = Sample::new(4, 2, 1, &["SSH"]);
    let other_grid = other.grid_dir();
    config_error(
        &run(s(&other_grid), &[]),
        &["is LLC4 but the input", "8 x 104"],
        &dest,
    );
    // Factors and metadata that cannot be used.
    let grid = sample.grid_dir();
    config_error(
        &run(s(&grid), &["--factors", "/nonexistent/f.edpf"]),
        &["--factors /nonexistent/f.edpf"],
        &dest,
    );
    config_error(
        &run(s(&grid), &["--metadata", "/nonexistent/meta"]),
        &["/nonexistent/meta"],
        &dest,
    );
    // A destination that cannot be a directory.
    let file_dest = sample.dir.path().join("a-file");
    std::fs::write(&file_dest, "x").unwrap();
    let o = edp(&[
        "run",
        "--jobs",
        s(&jobs),
        "--source",
        sample.dir.path().to_str().unwrap(),
        "--dest",
        s(&file_dest.join("out")),
        "--grid",
        s(&grid),
    ]);
    config_error(&o, &["a-file"], &file_dest.join("out"));
    // A source root that does not exist.
    config_error(
        &edp(&[
            "run",
            "--jobs",
            s(&jobs),
            "--source",
            "/nonexistent/src",
            "--dest",
            s(&dest),
            "--grid",
            s(&grid),
        ]),
        &["source root /nonexistent/src"],
        &dest,
    );

    // A task list with no grid, and one whose inputs are gone (wrong or moved root).
    let list = sample.dir.path().join("tasks.json");
    let o = edp(&[
        "tasks",
        "--jobs",
        s(&jobs),
        "--source",
        sample.dir.path().to_str().unwrap(),
        "--dest",
        s(&dest),
        "--grid",
        s(&grid),
        "-o",
        s(&list),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let tasks = std::fs::read_to_string(&list).unwrap();
    let no_grid = sample.dir.path().join("no-grid.json");
    let mut value: serde_json::Value = serde_json::from_str(&tasks).unwrap();
    for t in value.as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("ecco_grid_loc");
    }
    std::fs::write(&no_grid, value.to_string()).unwrap();
    config_error(
        &edp(&["run", "--tasks", s(&no_grid)]),
        &["2 task(s) name no grid location", "--grid"],
        &dest,
    );
    let moved = sample.dir.path().join("V4r4-moved");
    std::fs::rename(sample.source(), &moved).unwrap();
    config_error(
        &edp(&["run", "--tasks", s(&list)]),
        &["input directories of the tasks exists"],
        &dest,
    );
    std::fs::rename(&moved, sample.source()).unwrap();
    // And the list itself runs.
    let o = edp(&["run", "--tasks", s(&list), "--progress", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn tasks_needs_a_grid_that_opens() {
    let (sample, jobs) = sample();
    let list = sample.dir.path().join("tasks.json");
    let base = [
        "tasks",
        "--jobs",
        s(&jobs),
        "--source",
        sample.dir.path().to_str().unwrap(),
        "--dest",
        "out",
        "-o",
        s(&list),
    ];
    config_error(&edp(&base), &["edp tasks needs --grid"], &list);
    let mut with = base.to_vec();
    with.extend(["--grid", "/nonexistent/grid"]);
    config_error(&edp(&with), &["grid /nonexistent/grid"], &list);
}

#[test]
fn no_silent_empties() {
    let (sample, jobs) = sample();
    let grid = sample.grid_dir();
    let list = sample.dir.path().join("tasks.json");
    let tasks = |jobs_text: &str, source: &str| {
        std::fs::write(&jobs, jobs_text).unwrap();
        edp(&[
            "tasks",
            "--jobs",
            s(&jobs),
            "--source",
            source,
            "--dest",
            "out",
            "--grid",
            s(&grid),
            "-o",
            s(&list),
        ])
    };
    let root = sample.dir.path().to_str().unwrap();
    // A step that does not exist.
    let o = tasks("[0, 'native', 'AVG_MON', [99999]]\n", root);
    config_error(
        &o,
        &[
            &format!("{} gives no tasks", jobs.display()),
            "at step(s) [99999]",
            "searched",
            &format!("{root}/V4r4/diags_monthly"),
        ],
        &list,
    );
    // The monthly directory given as the source root (a common slip).
    let monthly = format!("{}/diags_monthly", sample.source());
    let o = tasks("[0, 'native', 'AVG_MON', 'all']\n", &monthly);
    config_error(
        &o,
        &[
            "gives no tasks",
            &format!("{monthly}/diags_monthly"),
            "--source names the directory above diags_monthly/",
        ],
        &list,
    );
    // An id meant for the other product: said which grouping each product's id is.
    let o = tasks("[9, 'native', 'AVG_MON', 'all']\n", root);
    config_error(
        &o,
        &[
            "native grouping 9 (SEA_ICE_HORIZ_VOLUME_FLUX)",
            "latlon grouping 9 is OCEAN_TEMPERATURE_SALINITY",
        ],
        &list,
    );
    // The README's ids of the time-invariant groupings are accepted.
    for (job, granule) in [
        (
            "[21, 'native', 'TI', 'all']",
            "GRID_GEOMETRY_ECCO_V4r4_native_llc0090.nc",
        ),
        (
            "[13, 'latlon', 'TI', 'all']",
            "GRID_GEOMETRY_ECCO_V4r4_latlon_0p50deg.nc",
        ),
    ] {
        let o = tasks(job, root);
        assert_eq!(o.status.code(), Some(0), "{job}: {}", text(&o));
        let written = std::fs::read_to_string(&list).unwrap();
        assert!(written.contains(granule), "{job}: {written}");
        std::fs::remove_file(&list).unwrap();
    }
    // 14 is the lat-lon mixing coefficients: a grouping (no inputs here), not out of range.
    let o = tasks("[14, 'latlon', 'TI', 'all']", root);
    config_error(&o, &["latlon grouping 14 (OCEAN_3D_MIXING_COEFFS)"], &list);
    let o = tasks("[15, 'latlon', 'TI', 'all']", root);
    config_error(
        &o,
        &["numbered 0 to 14", "edp groupings --product latlon"],
        &list,
    );
    // An empty task list is not a run.
    let empty = sample.dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let dest = sample.dir.path().join("dest");
    config_error(
        &edp(&["run", "--tasks", s(&empty), "--dest", s(&dest)]),
        &["holds no tasks"],
        &dest,
    );
    // A jobs file that cannot be read: no `:0:` line number.
    let o = edp(&[
        "tasks",
        "--jobs",
        "nope.txt",
        "--source",
        root,
        "--dest",
        "out",
        "--grid",
        s(&grid),
    ]);
    config_error(&o, &["nope.txt: cannot read"], &list);
}

#[test]
fn groupings_lists_ids_names_and_frequencies() {
    let o = edp(&["groupings", "--product", "latlon"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let row = |id: &str, name: &str| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[0] == "latlon" && f[1] == id && f[2] == name
        })
    };
    assert!(row("9", "OCEAN_TEMPERATURE_SALINITY"), "{t}");
    assert!(row("13", "GRID_GEOMETRY"), "{t}");
    assert!(row("14", "OCEAN_3D_MIXING_COEFFS"), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("native")), "{t}");
    let o = edp(&["groupings"]);
    let t = text(&o);
    assert!(
        t.lines()
            .any(|l| l.starts_with("native") && l.contains(" 21  GRID_GEOMETRY")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains(" 0  SEA_SURFACE_HEIGHT") && l.contains("AVG_DAY,AVG_MON,SNAP")),
        "{t}"
    );
    let o = edp(&["groupings", "--product", "1x"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
