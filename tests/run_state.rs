//! The run state of a destination at release scale: the record store, `edp status` on a
//! destination while a run is going and after, the bounded summary and the failures
//! file, and a restart from a manifest written by the previous `edp` (EDP-era JSON).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Sample;
use edp::metadata::{MetadataSet, Product};
use edp::run::journal::Status;
use edp::run::manifest::{Manifest, FAILURES_NAME, MANIFEST_NAME, SUMMARY_NAME};
use edp::run::store::{Store, INDEX_NAME, STORE_NAME};
use edp::tasks::{self, Locations, Task};
use edp::time::DailyDate;

const EDP: &str = env!("CARGO_BIN_EXE_edp");

fn edp(args: &[&str]) -> Command {
    let mut c = Command::new(EDP);
    c.args(args).env("EDP_MPI", "off").stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Monthly native tasks of `groupings` with granules under `dest`, as a task list.
fn task_list(s: &Sample, dest: &Path, groupings: &[&str]) -> (PathBuf, Vec<Task>) {
    let groupings: Vec<_> = groupings.iter().map(|&g| (Product::Native, g)).collect();
    s.task_list_at(&dest.with_extension("tasks.json"), dest, &groupings)
}

/// The last line of `edp status`, parsed: (tasks, done, failed, not run).
fn last_line(out: &str) -> (usize, usize, usize, usize) {
    let line = out.lines().last().unwrap_or_default();
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(
        line.ends_with(" not run") && line.contains(" tasks: ") && nums.len() == 4,
        "last line: {line:?}"
    );
    (nums[0], nums[1], nums[2], nums[3])
}

#[test]
fn status_while_a_run_is_going_and_after_with_a_bounded_summary() {
    let s = Sample::new(12, 5, 2, &[]);
    let dest = s.dir.path().join("out");
    let groupings = [
        "SEA_SURFACE_HEIGHT",
        "OCEAN_TEMPERATURE_SALINITY",
        "OCEAN_VELOCITY",
    ];
    let (file, list) = task_list(&s, &dest, &groupings);
    assert_eq!(list.len(), 6);
    // One task fails: its first input is cut short.
    let bad = &list[1].variables.values().next().unwrap()[0][0];
    std::fs::write(bad, b"short").unwrap();
    let bad_granule = Path::new(&list[1].granule).file_name().unwrap().to_owned();

    let mut run = edp(&["run", "--tasks", file.to_str().unwrap(), "--progress", "0"]);
    run.env("EDP_DEBUG_TASK_DELAY_MS", "700")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = run.spawn().unwrap();
    let d = dest.to_str().unwrap();

    // While it runs: some done, some not run, all of the plan counted.
    let t = Instant::now();
    let mid = loop {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no mid-run status seen"
        );
        let o = edp(&["status", d]).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.code() == Some(2) {
            // The run has not planned yet.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let (n, done, failed, not_run) = last_line(&out);
        assert_eq!(n, 6, "{out}");
        assert_eq!(done + failed + not_run, 6, "{out}");
        if done >= 1 && not_run >= 1 {
            assert_eq!(o.status.code(), Some(1), "not all done: {out}");
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(mid.contains("a run is going"), "{mid}");
    assert!(mid.contains("SEA_SURFACE_HEIGHT"), "{mid}");
    assert!(mid.contains("OCEAN_VELOCITY"), "{mid}");

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = edp(&["status", d]).output().unwrap();
    let after = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{after}");
    assert_eq!(last_line(&after), (6, 5, 1, 0), "{after}");
    assert!(after.contains("no run is going"), "{after}");
    assert!(after.contains("granules/s"), "{after}");
    assert!(after.contains("last 1 failure(s)"), "{after}");
    assert!(after.contains(&*bad_granule.to_string_lossy()), "{after}");
    // Per grouping x product x frequency: the failed grouping's line says 1 failed.
    let group_line = |g: &str| {
        after
            .lines()
            .find(|l| l.starts_with(g) && l.contains("native") && l.contains("mon_mean"))
            .unwrap_or_else(|| panic!("no line for {g}: {after}"))
            .split_whitespace()
            .skip(3)
            .map(|n| n.parse::<usize>().unwrap())
            .collect::<Vec<_>>()
    };
    let bad_group = groupings
        .iter()
        .find(|g| list[1].granule.contains(*g))
        .unwrap();
    assert_eq!(group_line(bad_group), vec![1, 1, 0]);

    // The summary: counts, the failure in full; every failure one line in its file.
    let summary = std::fs::read_to_string(dest.join(SUMMARY_NAME)).unwrap();
    assert!(summary.contains("6 tasks: 5 done, 1 failed"), "{summary}");
    assert!(summary.contains("FAILED task 1 "), "{summary}");
    let failures = std::fs::read_to_string(dest.join(FAILURES_NAME)).unwrap();
    assert_eq!(failures.lines().count(), 1, "{failures}");
    assert!(failures.contains(&*bad_granule.to_string_lossy()));
    // Run state is the store, not an EDP-era manifest file.
    assert!(dest.join(".edp").join(STORE_NAME).exists());
    assert!(!dest.join(MANIFEST_NAME).exists());

    // Run again: the done ones are skipped, the bad one fails again.
    let out = edp(&["run", "--tasks", file.to_str().unwrap(), "--progress", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("6 tasks: 0 done, 1 failed, 5 skipped"),
        "{stdout}"
    );
    let failures = std::fs::read_to_string(dest.join(FAILURES_NAME)).unwrap();
    assert_eq!(failures.lines().count(), 1, "{failures}");
}

#[test]
fn restart_from_a_previous_version_manifest_and_a_torn_store_tail() {
    let s = Sample::new(12, 5, 2, &[]);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest, &["SEA_SURFACE_HEIGHT"]);
    assert_eq!(list.len(), 2);
    let run = || {
        let o = edp(&["run", "--tasks", file.to_str().unwrap(), "--progress", "0"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("2 tasks: 2 done"), "{first}");

    // What the previous edp left: edp-manifest.json alone (its writer is Manifest::write),
    // no record store.
    let m = Manifest::read(&dest.join(MANIFEST_NAME)).unwrap();
    assert_eq!(m.granules.len(), 2);
    std::fs::remove_dir_all(dest.join(".edp")).unwrap();
    let mut old = m.clone();
    old.write(&dest).unwrap();
    let text_before = std::fs::read_to_string(dest.join(MANIFEST_NAME)).unwrap();
    assert!(text_before.contains("\"format\": \"edp-manifest/1\""));

    // edp status reads it as it is.
    let o = edp(&["status", dest.to_str().unwrap()]).output().unwrap();
    let st = String::from_utf8_lossy(&o.stdout);
    assert_eq!(last_line(&st), (2, 2, 0, 0), "{st}");

    let second = run();
    assert!(second.contains("0 done, 0 failed, 2 skipped"), "{second}");
    assert!(dest.join(".edp").join(INDEX_NAME).exists());
    assert!(dest.join(".edp/edp-manifest.imported.json").exists());
    assert!(!dest.join(MANIFEST_NAME).exists(), "imported, set aside");
    let m2 = Manifest::read(&dest.join(MANIFEST_NAME)).unwrap();
    assert_eq!(
        m2.granules, m.granules,
        "the imported records are the store's"
    );
    assert_eq!(m2.last_run.unwrap().skipped, 2);

    // A kill during the store's own write: bytes past the committed length (here a
    // whole record's worth of gzip garbage) are never read, and the next run drops them.
    let store = dest.join(".edp").join(STORE_NAME);
    let len = std::fs::metadata(&store).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&store)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap();
    drop(f);
    let priors = Store::at(&dest).priors().unwrap();
    assert_eq!(priors.count(Status::Done), 2);
    let third = run();
    assert!(third.contains("2 skipped"), "{third}");
    assert!(std::fs::metadata(&store).unwrap().len() >= len);
    assert!(Store::at(&dest).priors().is_ok());

    // The export is the same manifest as the store's.
    let o = edp(&["manifest", "export", dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let exported = Manifest::read_json(&dest.join(MANIFEST_NAME)).unwrap();
    assert_eq!(exported.granules.len(), 2);
    let mut a = exported.granules.clone();
    a.sort_by(|x, y| x.granule.cmp(&y.granule));
    assert_eq!(
        a,
        Manifest::read(&dest.join(MANIFEST_NAME)).unwrap().granules
    );
}

#[test]
fn streamed_plan_equals_the_whole_task_list_and_maps_back_in_order() {
    let s = Sample::new(12, 5, 2, &[]);
    let m = MetadataSet::embedded().unwrap();
    // The demo's groupings, monthly and daily where the sample has them.
    let mut jobs = String::new();
    for g in [
        "SEA_SURFACE_HEIGHT",
        "OCEAN_TEMPERATURE_SALINITY",
        "OCEAN_AND_ICE_SURFACE_STRESS",
        "OCEAN_VELOCITY",
    ] {
        for product in [Product::Native, Product::Latlon] {
            let id = m
                .groupings(product)
                .iter()
                .position(|x| x.filename == g)
                .unwrap();
            jobs.push_str(&format!("[{id}, '{}', 'AVG_MON', 'all']\n", product.name()));
        }
    }
    let jobs_file = s.dir.path().join("jobs.txt");
    std::fs::write(&jobs_file, &jobs).unwrap();
    let dest = s.dir.path().join("out");
    let listed = s.dir.path().join("tasks.json");
    let o = edp(&["tasks", "--jobs"])
        .arg(&jobs_file)
        .arg("--source")
        .arg(s.source())
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(s.grid_dir())
        .arg("-o")
        .arg(&listed)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Today's list: the same jobs planned in memory, the whole array serialised at once.
    let job_list = edp::jobs::read_jobs(&jobs_file, &m).unwrap();
    let loc = Locations {
        dest_root: dest.to_string_lossy().into_owned(),
        grid: Some(s.grid_dir().to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let plan = tasks::build_from_jobs(
        &job_list,
        &m,
        Path::new(&s.source()),
        &loc,
        DailyDate::default(),
        None,
    );
    assert_eq!(plan.tasks.len(), 16, "8 jobs x 2 months");
    let mut whole = Vec::new();
    {
        use serde::Serialize;
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut whole, fmt);
        plan.tasks.serialize(&mut ser).unwrap();
        whole.push(b'\n');
    }
    let streamed = std::fs::read(&listed).unwrap();
    assert!(
        streamed == whole,
        "the streamed list differs from the whole-array one"
    );

    // Mapped back: the same tasks in the same order.
    let mapped = tasks::TaskList::map(&listed).unwrap();
    assert_eq!(mapped.len(), plan.tasks.len());
    for (i, t) in mapped.iter().enumerate() {
        assert_eq!(*t.unwrap(), plan.tasks[i], "task {i}");
    }
    let granules: Vec<String> = plan.tasks.iter().map(|t| t.granule.clone()).collect();
    assert_eq!(mapped.granules().unwrap(), granules);
}
