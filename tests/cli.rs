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

/// A task list written by `edp tasks` (relative options) over a sample with 3 months.
fn three_month_list(dir: &Path, sample: &Sample, jobs: &Path) -> std::path::PathBuf {
    let list = dir.join("tasks.json");
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(sample.dir.path())
        .args([
            "tasks",
            "--jobs",
            s(jobs),
            "--source",
            ".",
            "--dest",
            "out",
            "--grid",
            "grid",
            "-o",
        ])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    list
}

#[test]
fn interrupted_and_failed_runs_say_how_to_resume_and_verify_says_incomplete() {
    let sample = Sample::new(8, 2, 3, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let jobs = sample.dir.path().join("jobs.txt");
    std::fs::write(&jobs, "[0, 'native', 'AVG_MON', 'all']\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let list = three_month_list(sample.dir.path(), &sample, &jobs);
    let listed = std::fs::read_to_string(&list).unwrap();
    // Paths that travel: the list holds absolute locations, not `out/...` or `grid`.
    assert!(
        !listed.contains("\"out/") && !listed.contains("\"grid\""),
        "{listed}"
    );
    let dest = sample.out();

    // Interrupted (SIGINT between granules): exit 3, the command that resumes.
    let child = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(elsewhere.path())
        .args([
            "run",
            "--tasks",
            s(&list),
            "--progress",
            "0",
            "--threads",
            "1",
        ])
        .env("EDP_MPI", "off")
        .env("EDP_DEBUG_TASK_DELAY_MS", "1500")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(
        t.contains("to resume (the granules already made are skipped), run again:")
            && t.contains(&format!("run --tasks {} --progress 0", list.display())),
        "{t}"
    );
    // Nothing strayed into the directory the run was started from.
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let v = edp(&["verify", s(&dest)]);
    let vt = text(&v);
    assert_eq!(v.status.code(), Some(1), "{vt}");
    assert!(
        vt.contains("INCOMPLETE the last run") && vt.contains("not run"),
        "{vt}"
    );
    assert!(vt.contains("incomplete run"), "{vt}");

    // The resumed run finishes; verify is then clean.
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(elsewhere.path())
        .args(["run", "--tasks", s(&list), "--progress", "0"])
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = edp(&["verify", s(&dest)]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));

    // A granule whose bytes changed (same size): verify says which run redoes it.
    let granule = common::files_under(&dest)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "nc"))
        .unwrap();
    let mut bytes = std::fs::read(&granule).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&granule, bytes).unwrap();
    let v = edp(&["verify", s(&dest)]);
    let vt = text(&v);
    assert_eq!(v.status.code(), Some(1), "{vt}");
    assert!(vt.contains("`edp run --verify` (same arguments)"), "{vt}");

    // A failed task: exit 1 and the command that retries it.
    let input = std::fs::read_to_string(&list).unwrap();
    let v: serde_json::Value = serde_json::from_str(&input).unwrap();
    let first_etan = v[0]["variables"]["ETAN"][0][0]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&first_etan, b"short").unwrap();
    let redo_all = elsewhere.path().join("again");
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(elsewhere.path())
        .args(["run", "--tasks", s(&list), "--dest"])
        .arg(&redo_all)
        .args(["--progress", "0"])
        .env("EDP_MPI", "off")
        .output();
    // The list's granules are under `out`, not `again`: a configuration error.
    assert_eq!(o.unwrap().status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(elsewhere.path())
        .args(["run", "--tasks", s(&list), "--progress", "0", "--verify"])
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("to retry the failed tasks (the others are skipped), run again:"),
        "{t}"
    );
    assert!(!t.contains("converted from"), "{t}");
}

/// A task list with locations relative to its own directory runs from anywhere; one
/// relative to the directory it was made in (EDP's) still runs from there.
#[test]
fn relative_task_lists_resolve_against_their_directory_or_the_current_one() {
    let (sample, jobs) = sample();
    let list = three_month_list(sample.dir.path(), &sample, &jobs);
    let root = sample.dir.path().to_str().unwrap().to_string();
    // Make it relative, as EDP writes them (relative to where it ran: the sample).
    let relative = std::fs::read_to_string(&list)
        .unwrap()
        .replace(&format!("{root}/"), "");
    assert!(relative.contains("\"grid\""), "{relative}");
    let rel_list = sample.dir.path().join("relative.json");
    std::fs::write(&rel_list, &relative).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for cwd in [elsewhere.path(), sample.dir.path()] {
        let o = Command::new(env!("CARGO_BIN_EXE_edp"))
            .current_dir(cwd)
            .args(["run", "--tasks", s(&rel_list), "--progress", "0"])
            .env("EDP_MPI", "off")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", cwd.display(), text(&o));
        // The run's state (its record store) is kept under the granules' root.
        assert!(sample.out().join(".edp").join("records.idx").is_file());
    }
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing stray"
    );
}

/// A field missing at one step: one policy everywhere. `edp tasks` names the step; the
/// run writes the granule without it, warns, records `missing_fields` (store and exported
/// manifest) and counts it in the summary; `edp verify --content` accepts what was
/// recorded (and only that); `--missing-fields fail` (or EDP_MISSING_FIELDS) fails it.
#[test]
fn a_missing_field_is_warned_recorded_counted_and_accepted_or_failed_by_option() {
    let (sample, jobs) = sample();
    let step = sample.report.monthly_steps[0];
    let etan = Path::new(&sample.source()).join("diags_monthly/ETAN_mon_mean");
    let mut removed = 0;
    for e in std::fs::read_dir(&etan).unwrap() {
        let p = e.unwrap().path();
        if p.to_str().unwrap().contains(&format!(".{step:010}.")) {
            std::fs::remove_file(&p).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 2, ".data and .meta of ETAN at step {step}");
    let plan = |dest: &Path, list: &Path| {
        let o = edp(&[
            "tasks",
            "--jobs",
            s(&jobs),
            "--source",
            &sample.source(),
            "--grid",
            s(&sample.grid_dir()),
            "--dest",
            s(dest),
            "-o",
            s(list),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o)
    };
    let dest = sample.dir.path().join("dest");
    let list = sample.dir.path().join("tasks.json");
    let t = plan(&dest, &list);
    assert!(
        t.contains(&format!(
            "1 of 2 steps miss some fields (ETAN at step {step})"
        )),
        "{t}"
    );

    // Default: written without ETAN, with a warning, a record and a count.
    let o = edp(&["run", "--tasks", s(&list), "--progress", "0"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("is written without ETAN"), "{t}");
    assert!(
        t.contains("1 granule(s) written without some fields") && t.contains("ETAN 1"),
        "{t}"
    );
    let o = edp(&["manifest", "export", s(&dest)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = edp::run::manifest::Manifest::read_json(&dest.join("edp-manifest.json")).unwrap();
    assert_eq!(m.granules.len(), 2);
    let (mut partial, mut whole) = (None, None);
    for r in &m.granules {
        let vars = edp::ncio::NcReader::open(&dest.join(&r.granule))
            .unwrap()
            .var_names();
        // The record says exactly what the file lacks.
        let has_etan = vars.iter().any(|v| v == "ETAN");
        assert!(vars.iter().any(|v| v == "SSH"), "{}", r.granule);
        if has_etan {
            assert!(r.missing_fields.is_empty(), "{}", r.granule);
            whole = Some(r.granule.clone());
        } else {
            assert_eq!(r.missing_fields, ["ETAN"], "{}", r.granule);
            partial = Some(r.granule.clone());
        }
    }
    let (partial, whole) = (partial.expect("one granule lacks ETAN"), whole.unwrap());
    let o = edp(&["verify", "--content", s(&dest)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify accepts the record: {}",
        text(&o)
    );
    // Only what was recorded: the granule without ETAN in place of the whole one fails.
    std::fs::copy(dest.join(&partial), dest.join(&whole)).unwrap();
    let o = edp(&["verify", "--content", s(&dest)]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("ETAN") && l.contains("missing") && l.contains(&whole)),
        "{t}"
    );

    // --missing-fields fail, here through its variable: that task fails, the other is done.
    let dest = sample.dir.path().join("strict");
    let list = sample.dir.path().join("strict.json");
    plan(&dest, &list);
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["run", "--tasks", s(&list), "--progress", "0"])
        .env("EDP_MPI", "off")
        .env("EDP_MISSING_FIELDS", "fail")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("no input for ETAN at this step"), "{t}");
    assert!(!dest.join(&partial).exists(), "{t}");
    assert!(dest.join(&whole).is_file(), "{t}");
    let help = text(&edp(&["run", "--help"]));
    assert!(
        help.contains("--missing-fields <write|fail>")
            && help.contains("[env: EDP_MISSING_FIELDS="),
        "{help}"
    );
    let o = edp(&["run", "--tasks", s(&list), "--missing-fields", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("EDP_MISSING_FIELDS"), "{}", text(&o));
}

/// The demo's task list (its output given relative) holds absolute paths: run from
/// another directory it finds everything, and nothing stray appears there.
#[test]
fn the_demo_task_list_runs_from_any_directory() {
    let here = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(here.path())
        .args(["demo", "-o", "demo", "--n", "8", "--months", "1"])
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list = here.path().join("demo/tasks.json");
    let tasks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&list).unwrap()).unwrap();
    let tasks = tasks.as_array().unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        for key in ["granule", "ecco_grid_loc"] {
            let p = t[key].as_str().unwrap();
            assert!(Path::new(p).is_absolute(), "{key}: {p}");
        }
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(elsewhere.path())
        .args(["run", "--tasks", s(&list), "--progress", "0"])
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("0 failed"), "{t}");
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing stray"
    );
}

/// Messages in words, each path said once (issue 23, "Output"): a re-run of a finished
/// plan says there is nothing to redo (not `redoing 0 ()`), a run of one rank does not
/// say `(0 by groups of 1)`, and a task list that cannot be written names its path once.
#[test]
fn messages_are_in_words_and_say_each_path_once() {
    let (sample, jobs) = sample();
    let dest = sample.out();
    let grid = sample.grid_dir();
    let source = sample.dir.path().to_str().unwrap().to_string();
    let run = || {
        edp(&[
            "run",
            "--jobs",
            s(&jobs),
            "--source",
            &source,
            "--dest",
            s(&dest),
            "--grid",
            s(&grid),
            "--progress",
            "0",
        ])
    };
    let first = run();
    let t = text(&first);
    assert_eq!(first.status.code(), Some(0), "{t}");
    assert!(!t.contains("by groups of"), "{t}");
    let again = run();
    let t = text(&again);
    assert_eq!(again.status.code(), Some(0), "{t}");
    assert!(t.contains("nothing to redo"), "{t}");
    assert!(!t.contains("redoing 0") && !t.contains("()"), "{t}");

    // A task list under a regular file (no directory can be made there): it fails,
    // saying the path once.
    let list = jobs.join("tasks.json");
    let o = edp(&[
        "tasks",
        "--jobs",
        s(&jobs),
        "--source",
        &source,
        "--dest",
        s(&dest),
        "--grid",
        s(&grid),
        "-o",
        s(&list),
    ]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert_eq!(t.matches(s(&list)).count(), 1, "{t}");
    assert!(!list.exists());
}
