//! Jobs file → task list: discovery on synthesised trees, every V4r4 grouping, time
//! rules against independently computed dates, and the round trips through `edp run`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::Sample;
use edp::jobs::{Job, Steps};
use edp::metadata::{MetadataSet, Product};
use edp::tasks::{self, plan::input_fields, Locations};
use edp::time::{DailyDate, Frequency, ModelClock};

fn edp_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edp"))
}

/// Creates empty `.data`/`.meta` pairs for `vars` at `steps` (discovery reads names only).
fn touch_inputs(root: &Path, freq: Frequency, vars: &[String], steps: &[u64]) {
    for v in vars {
        let dir = root
            .join(freq.input_dir())
            .join(format!("{v}_{}", freq.input_token()));
        std::fs::create_dir_all(&dir).unwrap();
        for s in steps {
            for ext in ["data", "meta"] {
                std::fs::write(
                    dir.join(format!("{v}_{}.{s:010}.{ext}", freq.input_token())),
                    b"",
                )
                .unwrap();
            }
        }
    }
}

#[test]
fn every_v4r4_grouping_product_and_frequency_gives_its_tasks() {
    let m = MetadataSet::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("V4r4");
    let steps = [732u64, 1428];
    let mut jobs = Vec::new();
    let mut expected = Vec::new();
    for product in [Product::Native, Product::Latlon] {
        for g in m.groupings(product) {
            for &freq in &g.frequencies {
                let inputs: Vec<String> =
                    g.fields.iter().flat_map(|f| input_fields(g, f)).collect();
                touch_inputs(&root, freq, &inputs, &steps);
                jobs.push(Job {
                    line: jobs.len() + 1,
                    grouping: g.index,
                    product,
                    freq,
                    steps: Steps::All,
                });
                expected.push((g, freq));
            }
        }
    }
    assert!(
        jobs.len() > 50,
        "V4r4 has native and lat-lon groupings at 2-3 frequencies each"
    );
    let loc = Locations {
        dest_root: "/dest".into(),
        ..Locations::default()
    };
    let plan = tasks::build_from_jobs(&jobs, &m, dir.path(), &loc, DailyDate::default(), None);
    // Two steps per job; a time-invariant job makes one granule, from the newest step.
    let per_job = |f: &Frequency| if *f == Frequency::Ti { 1 } else { 2 };
    let total: usize = expected.iter().map(|(_, f)| per_job(f)).sum();
    assert_eq!(plan.tasks.len(), total, "two steps per job, one per TI job");
    let mut first = 0;
    for (g, freq) in expected.iter() {
        let count = per_job(freq);
        let job_tasks = &plan.tasks[first..first + count];
        first += count;
        for (k, task) in job_tasks.iter().enumerate() {
            let step = if count == 1 { steps[1] } else { steps[k] };
            let name = tasks::GranuleName::parse(&task.granule).unwrap();
            assert_eq!(name.prefix, g.filename);
            assert_eq!(name.freq, *freq);
            assert_eq!(name.product, g.product);
            assert!(task.granule.starts_with(&format!(
                "/dest/V4r4/{}/{}/{}/",
                g.product.name(),
                freq.output_token(),
                g.filename
            )));
            // Every field is there, renamed, with x then y components for vectors.
            let outs: Vec<&str> = g.fields.iter().map(|f| g.output_name(f)).collect();
            assert_eq!(
                task.variables
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                outs
            );
            for f in &g.fields {
                let comps = &task.variables[g.output_name(f)];
                let want = input_fields(g, f);
                assert_eq!(comps.len(), want.len(), "{} {f}", g.filename);
                for (pair, var) in comps.iter().zip(&want) {
                    assert!(
                        pair[0].ends_with(&format!(
                            "{var}_{tok}/{var}_{tok}.{step:010}.data",
                            tok = freq.input_token()
                        )),
                        "{pair:?}"
                    );
                    assert!(pair[1].ends_with(".meta"));
                }
            }
            assert_eq!(task.dynamic_metadata.dimension, g.dimension);
        }
    }
    // The lat-lon vector groupings carry their components and orientations.
    let stress = plan
        .tasks
        .iter()
        .find(|t| {
            t.granule.contains("/latlon/") && t.granule.contains("OCEAN_AND_ICE_SURFACE_STRESS")
        })
        .unwrap();
    assert!(stress.variables["EXFtaue"][0][0].contains("EXFtaux_"));
    assert!(stress.variables["EXFtaue"][1][0].contains("EXFtauy_"));
    assert_eq!(
        stress.dynamic_metadata.field_orientations.as_ref().unwrap()["oceTAUN"],
        "meridional"
    );
}

#[test]
fn discovery_reports_missing_fields_and_keeps_partial_granules() {
    let m = MetadataSet::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ssh = &m.groupings_native[0];
    let steps = [732u64, 1428, 2172];
    touch_inputs(root, Frequency::AvgMon, &ssh.fields, &steps);
    let d = root.join("diags_monthly");
    // SSHIBC is missing at 1428; ETAN has a .data without .meta at 2172.
    std::fs::remove_file(d.join("SSHIBC_mon_mean/SSHIBC_mon_mean.0000001428.data")).unwrap();
    std::fs::remove_file(d.join("SSHIBC_mon_mean/SSHIBC_mon_mean.0000001428.meta")).unwrap();
    std::fs::remove_file(d.join("ETAN_mon_mean/ETAN_mon_mean.0000002172.meta")).unwrap();
    let job = |steps| Job {
        line: 1,
        grouping: 0,
        product: Product::Native,
        freq: Frequency::AvgMon,
        steps,
    };
    let loc = Locations {
        dest_root: "out".into(),
        ..Locations::default()
    };
    let plan = tasks::build_from_jobs(
        &[job(Steps::All)],
        &m,
        root,
        &loc,
        DailyDate::default(),
        None,
    );
    assert_eq!(plan.tasks.len(), 3);
    let fields = |i: usize| plan.tasks[i].variables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(fields(0), ["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    assert_eq!(fields(1), ["SSH", "SSHNOIBC", "ETAN"]);
    assert_eq!(fields(2), ["SSH", "SSHIBC", "SSHNOIBC"]);
    let r = &plan.jobs[0];
    assert_eq!(r.partial_steps, 2);
    assert_eq!(r.missing["SSHIBC"], 1);
    assert_eq!(r.missing["ETAN"], 1);
    // By time step, as the warning names them (not by position).
    assert_eq!(r.missing_steps["SSHIBC"], [1428]);
    assert_eq!(r.missing_steps["ETAN"], [2172]);
    // Explicit steps are checked the same way; a step with nothing gives no task.
    let plan = tasks::build_from_jobs(
        &[job(Steps::List(vec![1428, 99]))],
        &m,
        root,
        &loc,
        DailyDate::default(),
        None,
    );
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.jobs[0].empty_steps, vec![99]);
}

/// Hours from the V4r4 start 1992-01-01T12:00 to `y-m-d 00:00`, computed by counting
/// days month by month (independently of the crate's date arithmetic).
fn hours_to(y: i64, mo: u32, d: u32) -> u64 {
    let month_len = |y: i64, m: u32| match m {
        2 if y % 4 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let mut days = 0i64;
    let (mut yy, mut mm) = (1992, 1);
    while (yy, mm) < (y, mo) {
        days += month_len(yy, mm);
        mm += 1;
        if mm == 13 {
            mm = 1;
            yy += 1;
        }
    }
    days += d as i64 - 1;
    (days * 24 - 12) as u64
}

#[test]
fn time_rules_across_month_ends_and_leap_years() {
    let clock = ModelClock::v4r4();
    assert_eq!(hours_to(1992, 2, 1), 732, "the spec's first monthly step");
    // Monthly means: February 1992 and 1996 (leap years) and a December.
    for (y, m, next, days, centre) in [
        (1992, 2, (1992, 3), 29, "1992-02-15T12:00:00"),
        (1996, 2, (1996, 3), 29, "1996-02-15T12:00:00"),
        (1993, 2, (1993, 3), 28, "1993-02-15T00:00:00"),
        (1995, 12, (1996, 1), 31, "1995-12-16T12:00:00"),
    ] {
        let step = hours_to(next.0, next.1, 1);
        let cov = clock.coverage(Frequency::AvgMon, step, DailyDate::default());
        assert_eq!(cov.start.iso(), format!("{y:04}-{m:02}-01T00:00:00"));
        assert_eq!(
            cov.end.iso(),
            format!("{:04}-{:02}-01T00:00:00", next.0, next.1)
        );
        assert_eq!(cov.end.0 - cov.start.0, days * 86400);
        assert_eq!(cov.centre.iso(), centre);
        assert_eq!(cov.file_date, format!("{y:04}-{m:02}"));
    }
    // Daily means across a month end and on a leap day.
    for (y, m, d, next) in [
        (1992, 1, 31, (1992, 2, 1)),
        (1992, 2, 29, (1992, 3, 1)),
        (1996, 2, 29, (1996, 3, 1)),
    ] {
        let step = hours_to(next.0, next.1, next.2);
        let cov = clock.coverage(Frequency::AvgDay, step, DailyDate::DayAveraged);
        assert_eq!(cov.start.iso(), format!("{y:04}-{m:02}-{d:02}T00:00:00"));
        assert_eq!(cov.centre.iso(), format!("{y:04}-{m:02}-{d:02}T12:00:00"));
        assert_eq!(cov.file_date, format!("{y:04}-{m:02}-{d:02}"));
        let edp = clock.coverage(Frequency::AvgDay, step, DailyDate::PeriodEnd);
        assert_eq!(
            edp.file_date,
            format!("{:04}-{:02}-{:02}", next.0, next.1, next.2)
        );
        assert_eq!(
            edp.centre, cov.centre,
            "the convention changes the name only"
        );
    }
    // Snapshots: the instant itself.
    let step = hours_to(1996, 3, 1);
    let cov = clock.coverage(Frequency::Snap, step, DailyDate::default());
    assert_eq!((cov.start, cov.end), (cov.centre, cov.centre));
    assert_eq!(cov.centre.iso(), "1996-03-01T00:00:00");
    assert_eq!(cov.file_date, "1996-03-01T000000");
}

#[test]
fn jobs_file_to_granules_round_trip_and_bad_jobs_write_nothing() {
    let sample = Sample::new(
        8,
        4,
        2,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let jobs = sample.dir.path().join("jobs.txt");
    std::fs::write(&jobs, "# two native groupings\n[0, 'native', 'AVG_MON', 'all']\n[15, \"native\", \"avg_mon\", [732]]\n").unwrap();
    let list = sample.dir.path().join("tasks.json");
    let out = edp_bin()
        .args(["tasks", "--jobs"])
        .arg(&jobs)
        .arg("--source")
        .arg(sample.dir.path())
        .arg("--dest")
        .arg(sample.out())
        .arg("--grid")
        .arg(sample.grid_dir())
        .arg("-o")
        .arg(&list)
        .arg("--summary")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("total: 3 tasks"), "{stdout}");
    // The sample's grid is LLC8, the embedded V4r4 set's products LLC90: said, not hidden.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is LLC8 but the metadata set") && stderr.contains("describes LLC90"),
        "{stderr}"
    );
    let tasks = tasks::read_task_list(&list).unwrap();
    assert_eq!(tasks.len(), 3);
    let out = edp_bin()
        .args(["run", "--tasks"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let written: BTreeSet<String> = common::files_under(&sample.out())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nc"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = [
        "SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
        "SEA_SURFACE_HEIGHT_mon_mean_1992-02_ECCO_V4r4_native_llc0090.nc",
        "OCEAN_TEMPERATURE_SALINITY_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(written, want);

    // A bad line: error naming file and line, and no task list written.
    std::fs::write(
        &jobs,
        "[0, 'native', 'AVG_MON', 'all']\n[99, 'native', 'AVG_MON', 'all']\n",
    )
    .unwrap();
    let list2 = sample.dir.path().join("tasks2.json");
    let out = edp_bin()
        .args(["tasks", "--jobs"])
        .arg(&jobs)
        .arg("--source")
        .arg(sample.dir.path())
        .arg("--grid")
        .arg(sample.grid_dir())
        .args(["--dest", "x", "-o"])
        .arg(&list2)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("{}:2:", jobs.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("grouping id 99 is out of range"),
        "{stderr}"
    );
    assert!(!list2.exists());
}

#[test]
fn runs_a_task_list_written_by_edp() {
    // A task list in EDP's exact layout (key order, indent 4, string *_loc values,
    // a config path we do not read), pointing at synthesised inputs.
    let sample = Sample::new(8, 4, 1, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let src = sample.source();
    let pair = |v: &str| {
        format!(
            "[\n                    \"{src}/diags_monthly/{v}_mon_mean/{v}_mon_mean.0000000732.data\",\n                    \"{src}/diags_monthly/{v}_mon_mean/{v}_mon_mean.0000000732.meta\"\n                ]"
        )
    };
    let dest = sample.out();
    let text = format!(
        r#"[
    {{
        "granule": "{dest}/V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
        "variables": {{
            "SSH": [
                {ssh}
            ],
            "ETAN": [
                {etan}
            ]
        }},
        "ecco_cfg_loc": "/opt/edp/configs/config_V4r4.yaml",
        "ecco_grid_loc": "{grid}",
        "ecco_mapping_factors_loc": "/opt/edp/mapping_factors/V4r4",
        "ecco_metadata_loc": "/opt/edp/metadata/V4r4",
        "dynamic_metadata": {{
            "name": "dynamic sea surface height and model sea level anomaly",
            "dimension": "2D",
            "time_coverage_start": "1992-01-01T12:00:00",
            "time_coverage_end": "1992-02-01T00:00:00",
            "time_coverage_center": "1992-01-16T18:00:00",
            "time_long_name": "center time of averaging period",
            "time_coverage_duration": "P1M",
            "time_coverage_resolution": "P1M",
            "summary": "This dataset contains monthly-averaged dynamic sea surface height and model sea level anomaly on the native Lat-Lon-Cap 90 (LLC90) model grid from the ECCO Version 4 revision 4 (V4r4) ocean and sea-ice state estimate."
        }}
    }}
]
"#,
        dest = dest.display(),
        ssh = pair("SSH"),
        etan = pair("ETAN"),
        grid = sample.grid_dir().display(),
    );
    let list = sample.dir.path().join("edp_tasks.json");
    std::fs::write(&list, text).unwrap();
    let out = edp_bin()
        .args(["run", "--tasks"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let granule = dest.join("V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc");
    let r = edp::ncio::NcReader::open(&granule).unwrap();
    let names = r.var_names();
    assert!(names.contains(&"SSH".to_string()) && names.contains(&"ETAN".to_string()));
    assert!(
        !names.contains(&"SSHIBC".to_string()),
        "only the task's variables"
    );
}

/// An unreadable task list is a configuration error (exit 2) whose message names the
/// file and shows the parser's cause once, not twice.
#[test]
fn bad_task_list_error_shows_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("t.json");
    std::fs::write(&list, "[{\"granule\": \"unterminated").unwrap();
    let out = edp_bin()
        .args(["run", "--tasks"])
        .arg(&list)
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "task list {} is not a valid EDP task list: EOF while parsing a string",
            list.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("EOF while parsing").count(),
        1,
        "the cause is shown once: {stderr}"
    );
}

/// `edp tasks` and `edp run --jobs` share one planner and its options: for the same
/// options (here with --release and --edp-daily-dates, which `edp run` lacked before),
/// the granules `edp run` makes are exactly the tasks `edp tasks` lists (same granule
/// paths and the same task, by the sha256 the manifest records).
#[test]
fn tasks_and_run_jobs_build_identical_task_lists() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n: 8,
        nz: 2,
        months: 1,
        days: 2,
        variables: Some(
            ["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ..Default::default()
    };
    let report = edp::synth::generate(&cfg, dir.path()).unwrap();
    let jobs = dir.path().join("jobs.txt");
    std::fs::write(
        &jobs,
        "[0, 'native', 'AVG_DAY', 'all']\n[0, 'native', 'AVG_MON', 'all']\n",
    )
    .unwrap();
    let source = dir.path().join("V4r4");
    let dest = dir.path().join("out");
    let common = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec!["--jobs".into(), jobs.clone().into()];
        args.extend(["--source".into(), source.clone().into()]);
        args.extend(["--dest".into(), dest.clone().into()]);
        args.extend(["--grid".into(), report.grid_dir.clone().into()]);
        args.extend(extra.iter().map(|s| s.into()));
        args
    };
    let options = ["--release", "V4r4", "--edp-daily-dates"];
    let list_file = dir.path().join("tasks.json");
    let out = edp_bin()
        .arg("tasks")
        .args(common(&options))
        .arg("-o")
        .arg(&list_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = tasks::read_task_list(&list_file).unwrap();
    assert_eq!(listed.len(), 3, "two days and one month");

    // The option changes the daily names, so the comparison below can tell.
    let default_file = dir.path().join("default.json");
    let out = edp_bin()
        .arg("tasks")
        .args(common(&["--release", "V4r4"]))
        .arg("-o")
        .arg(&default_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let default_names: BTreeSet<String> = tasks::read_task_list(&default_file)
        .unwrap()
        .into_iter()
        .map(|t| t.granule)
        .collect();

    let out = edp_bin()
        .arg("run")
        .args(common(&options))
        .args(["--progress", "0"])
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest =
        edp::run::manifest::Manifest::read(&dest.join(edp::run::manifest::MANIFEST_NAME)).unwrap();
    let ran: BTreeSet<(String, String)> = manifest
        .granules
        .iter()
        .map(|r| (r.granule.clone(), r.task_sha256.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = listed
        .iter()
        .map(|t| {
            // The manifest names granules relative to the destination.
            let rel = Path::new(&t.granule).strip_prefix(&dest).unwrap();
            (
                rel.to_string_lossy().into_owned(),
                edp::run::journal::task_sha256(t),
            )
        })
        .collect();
    assert_eq!(ran, want);
    let listed_names: BTreeSet<String> = listed.iter().map(|t| t.granule.clone()).collect();
    assert_ne!(
        listed_names, default_names,
        "--edp-daily-dates names differ"
    );

    // A --release that is not the metadata set's is refused by both, before any work.
    for cmd in ["tasks", "run"] {
        let out = edp_bin()
            .arg(cmd)
            .args(common(&["--release", "V4r5"]))
            .env("EDP_MPI", "off")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--release V4r5 does not match"),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The demo's groupings (native and lat-lon) at the frequencies synthesised: `edp tasks`
/// to standard output writes byte for byte the `-o` file, and both are the list held
/// whole (the in-memory plan serialised at once, EDP's indent 4), same tasks in the same
/// order, though neither is ever held whole.
#[test]
fn the_list_on_stdout_is_the_o_file_and_the_plan_held_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n: 8,
        nz: 3,
        months: 2,
        days: 3,
        ..Default::default()
    };
    let report = edp::synth::generate(&cfg, dir.path()).unwrap();
    let m = MetadataSet::embedded().unwrap();
    let mut jobs = Vec::new();
    for product in [Product::Native, Product::Latlon] {
        for name in [
            "SEA_SURFACE_HEIGHT",
            "OCEAN_TEMPERATURE_SALINITY",
            "OCEAN_AND_ICE_SURFACE_STRESS",
            "OCEAN_VELOCITY",
        ] {
            let g = m.grouping_by_filename(product, name).unwrap();
            for freq in [Frequency::AvgMon, Frequency::AvgDay] {
                if g.frequencies.contains(&freq) {
                    jobs.push(Job {
                        line: jobs.len() + 1,
                        grouping: g.index,
                        product,
                        freq,
                        steps: Steps::All,
                    });
                }
            }
        }
    }
    let text: String = jobs
        .iter()
        .map(|j| {
            format!(
                "[{}, '{}', '{}', 'all']\n",
                j.grouping,
                j.product.name(),
                j.freq.job_name()
            )
        })
        .collect();
    let jobs_file = dir.path().join("jobs.txt");
    std::fs::write(&jobs_file, text).unwrap();
    let dest = dir.path().join("out");
    let cmd = || {
        let mut c = edp_bin();
        c.args(["tasks", "--jobs"])
            .arg(&jobs_file)
            .arg("--source")
            .arg(dir.path())
            .arg("--dest")
            .arg(&dest)
            .arg("--grid")
            .arg(&report.grid_dir)
            .env("EDP_SCRATCH_DIR", dir.path().join("scratch"));
        c
    };
    let list = dir.path().join("tasks.json");
    let out = cmd().arg("-o").arg(&list).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cmd().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read(&list).unwrap();
    assert!(out.stdout == file, "stdout differs from the -o file");

    // The plan held whole, serialised in one go as EDP's json.dump(indent=4) does.
    let loc = Locations {
        dest_root: dest.to_string_lossy().into_owned(),
        grid: Some(report.grid_dir.to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let plan = tasks::build_from_jobs(&jobs, &m, dir.path(), &loc, DailyDate::default(), None);
    // Two months and three days of each of the 8 groupings' jobs, none empty.
    let per_job: usize = jobs
        .iter()
        .map(|j| if j.freq == Frequency::AvgMon { 2 } else { 3 })
        .sum();
    assert_eq!(plan.tasks.len(), per_job);
    let mut want = Vec::new();
    {
        use serde::Serialize;
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut want, fmt);
        plan.tasks.serialize(&mut ser).unwrap();
        want.push(b'\n');
    }
    assert!(
        file == want,
        "the streamed list differs from the plan held whole"
    );
    // No scratch file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("scratch"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("edp-tasks-")),
        "{left:?}"
    );
}
