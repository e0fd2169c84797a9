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

const SUBCOMMANDS: &[&str] = &[
    "demo",
    "synth",
    "groupings",
    "tasks",
    "run",
    "factors",
    "sync",
    "verify",
    "plot",
    "check-metadata",
    "references",
];

#[test]
fn every_help_lists_exit_codes_and_describes_every_option() {
    for cmd in std::iter::once("").chain(SUBCOMMANDS.iter().copied()) {
        let args: Vec<&str> = [cmd, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let o = edp(&args);
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(0), "{cmd}: {t}");
        assert!(
            t.contains("Exit status: 0 everything asked was done; 1 some task failed")
                && t.contains("2 usage or configuration error")
                && t.contains("3 interrupted"),
            "{cmd}: {t}"
        );
        // In the long help an option's line is followed by its description.
        let lines: Vec<&str> = t.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let opt = l.trim_start();
            let is_option = opt.starts_with("--")
                || (opt.starts_with('-')
                    && opt.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic));
            if !(l.starts_with("  ") && is_option) {
                continue;
            }
            let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
            let same_line = opt.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            assert!(
                same_line || (!next.is_empty() && !next.starts_with('[')),
                "{cmd}: option without a description: {opt}"
            );
        }
        // One spelling of the output option.
        if ["demo", "synth", "tasks", "factors", "plot", "references"].contains(&cmd) {
            assert!(t.contains("-o, --output <"), "{cmd}: {t}");
            assert!(!t.contains("--out <"), "{cmd}: {t}");
        }
    }
    // The jobs grammar, the documented settings and their variables.
    for cmd in ["tasks", "run"] {
        let t = text(&edp(&[cmd, "--help"]));
        assert!(t.contains("'SNAP'|'AVG_DAY'|'AVG_MON'|'TI'"), "{cmd}: {t}");
        for opt in [
            "--scratch-dir <DIR>",
            "[env: EDP_SCRATCH_DIR=]",
            "--scratch-limit <SIZE>",
            "[env: EDP_SCRATCH_LIMIT=]",
            "--s3-retries <N>",
            "[env: EDP_S3_RETRIES=]",
            "[env: EDP_STATE_DIR=]",
        ] {
            assert!(t.contains(opt), "{cmd}: {opt} not in {t}");
        }
    }
}

#[test]
fn malformed_values_exit_2_naming_the_option_and_its_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("synth");
    let check = |o: Output, want: &[&str]| {
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{want:?}: {t}");
        for w in want {
            assert!(t.contains(w), "{w} not in {t}");
        }
        assert!(!out.exists(), "{t}");
    };
    let synth = ["synth", "-o", s(&out), "--n", "2", "--levels", "1"];
    for (var, value, option) in [
        ("EDP_SCRATCH_LIMIT", "abc", "--scratch-limit"),
        ("EDP_S3_RETRIES", "many", "--s3-retries"),
        ("EDP_S3_TIMEOUT", "-1", "--s3-timeout"),
        ("EDP_S3_PART_SIZE", "0", "--s3-part-size"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_edp"))
            .args(synth)
            .env(var, value)
            .output()
            .unwrap();
        check(o, &[option, var, value]);
        let given = format!("{option}={value}");
        let mut args = synth.to_vec();
        args.push(&given);
        check(edp(&args), &[option, var]);
    }
    for cmd in [
        &synth[..],
        &["verify", "x.json"],
        &["factors", "--grid", "g", "-o", "f"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--threads", "0"]);
        check(edp(&args), &["--threads", "at least 1"]);
    }
    // A variable no grouping writes, before any work.
    let (sample, jobs) = sample();
    let dest = sample.dir.path().join("dest");
    let grid = sample.grid_dir();
    let o = edp(&[
        "run",
        "--jobs",
        s(&jobs),
        "--source",
        sample.dir.path().to_str().unwrap(),
        "--dest",
        s(&dest),
        "--grid",
        s(&grid),
        "--significant-bits",
        "SSH=10,NOPE=10",
    ]);
    config_error(&o, &["--significant-bits: NOPE is not a variable"], &dest);

    // The old spelling still works (hidden alias), and synth says what it wrote in words.
    let o = edp(&[
        "synth",
        "--out",
        s(&out),
        "--n",
        "2",
        "--levels",
        "1",
        "--months",
        "1",
        "--variables",
        "ETAN",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!t.contains("SynthReport") && !t.contains('{'), "{t}");
    assert!(t.contains("1 variable(s); 1 monthly"), "{t}");
    assert!(out.join("grid").is_dir());
}
