//! `edp run` as users launch it: the real binary, alone and under OpenMPI's mpirun
//! (oversubscribed) at 1, 2 and 3 ranks, on synthetic demo data. Checks the granule set
//! and data across rank counts, the manifest, restart, failure isolation, SIGKILL and
//! SIGUSR1 mid-run, panics, configuration errors and `edp verify`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, Sample};
use edp::metadata::{MetadataSet, Product};
use edp::ncio::NcReader;
use edp::run::manifest::Manifest;
use edp::storage;
use edp::tasks::Task;
use serde_json::Value;

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// Two 2D and two 3D groupings, as `edp demo` produces.
const GROUPINGS: &[&str] = &[
    "SEA_SURFACE_HEIGHT",
    "OCEAN_TEMPERATURE_SALINITY",
    "OCEAN_AND_ICE_SURFACE_STRESS",
    "OCEAN_VELOCITY",
];

fn sample(n: usize, nz: usize, months: usize) -> Sample {
    Sample::new(n, nz, months, &[])
}

/// The demo groupings' monthly tasks with granules under `dest`, written to a task list.
fn task_list(s: &Sample, dest: &Path) -> (PathBuf, Vec<Task>) {
    let groupings: Vec<_> = GROUPINGS.iter().map(|&g| (Product::Native, g)).collect();
    s.task_list_at(&dest.with_extension("tasks.json"), dest, &groupings)
}

/// `edp <args>` under `mpirun -np <np>`, or alone when `np` is 0.
fn edp_cmd(np: usize, args: &[&str]) -> Command {
    let mut c = if np == 0 {
        Command::new(EDP)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-np", &np.to_string(), EDP]);
        c
    };
    c.args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("EDP_MPI")
        .stdin(Stdio::null());
    c
}

/// Runs to completion within `limit`, killing the whole process group on a hang.
fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().expect("spawn edp / mpirun");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            kill_group(pid, "KILL");
            panic!("edp did not finish within {limit:?}: a hang");
        }
    }
}

fn edp(np: usize, args: &[&str]) -> Output {
    run_limited(edp_cmd(np, args), Duration::from_secs(120))
}

/// Sends `signal` to `pid` and all its descendants at once. OpenMPI puts every rank in a
/// process group of its own, so killing mpirun's group would leave the ranks running.
fn kill_group(pid: u32, signal: &str) {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the comm may hold spaces, so split after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) && !pids.contains(&child) {
                pids.push(child);
            }
        }
        i += 1;
    }
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{signal} {pids:?}");
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn manifest(dest: &Path) -> Manifest {
    Manifest::read(&dest.join("edp-manifest.json")).expect("manifest")
}

/// Granules (`.nc`) under `dest`, relative paths.
fn granules(dest: &Path) -> Vec<String> {
    files_under(dest)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nc"))
        .map(|p| p.strip_prefix(dest).unwrap().to_string_lossy().into_owned())
        .collect()
}

fn temp_files(dest: &Path) -> Vec<PathBuf> {
    files_under(dest)
        .into_iter()
        .filter(|p| storage::is_temp_name(p))
        .collect()
}

/// The ranks' journals (`.edp/journal-<rank>.jsonl`; the run's lock lies beside them).
fn journals(dest: &Path) -> Vec<PathBuf> {
    files_under(&dest.join(".edp"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("journal-"))
        })
        .collect()
}

/// Every variable's values as bit patterns, by name.
fn data(path: &Path) -> BTreeMap<String, Vec<u64>> {
    let r = NcReader::open(path).unwrap();
    let mut out = BTreeMap::new();
    for v in r.var_names() {
        let bits = common::value_bits(&r, &v);
        out.insert(v, bits);
    }
    out
}

fn mtimes(dest: &Path) -> BTreeMap<String, std::time::SystemTime> {
    granules(dest)
        .into_iter()
        .map(|g| {
            let t = std::fs::metadata(dest.join(&g))
                .unwrap()
                .modified()
                .unwrap();
            (g, t)
        })
        .collect()
}

/// Fails the test without mpirun: these tests are about MPI and never skip.
fn require_mpirun() {
    common::require("mpirun");
}

#[test]
fn same_granules_and_data_at_every_rank_count_and_without_mpirun() {
    require_mpirun();
    let s = sample(12, 5, 2);
    let mut sets = Vec::new();
    for np in [0usize, 1, 2, 3] {
        let dest = s.dir.path().join(format!("out-np{np}"));
        let (file, list) = task_list(&s, &dest);
        assert_eq!(list.len(), 8);
        let out = edp(np, &["run", "--tasks", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "np {np}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("8 tasks: 8 done, 0 failed"), "{stdout}");

        let m = manifest(&dest);
        assert_eq!(m.granules.len(), 8, "one record per task");
        assert!(m
            .granules
            .iter()
            .all(|r| r.status == edp::run::journal::Status::Done
                && r.sha256.as_ref().is_some_and(|h| h.len() == 64)
                && !r.inputs.is_empty()
                && r.inputs.iter().all(|i| i.size.is_some())));
        let run = m.last_run.as_ref().unwrap();
        assert_eq!(run.ranks, np.max(1));
        assert_eq!((run.done, run.failed, run.skipped), (8, 0, 0));
        let ranks: std::collections::BTreeSet<usize> = m.granules.iter().map(|r| r.rank).collect();
        assert_eq!(
            ranks,
            (0..np.max(1)).collect(),
            "every rank produced granules"
        );
        assert!(
            journals(&dest).is_empty(),
            "journals folded into the manifest"
        );
        assert!(dest.join("edp-summary.txt").exists());
        let set = granules(&dest);
        assert_eq!(set.len(), 8);
        for g in &set {
            let r = m.granules.iter().find(|r| &r.granule == g).unwrap();
            assert_eq!(r.size, Some(std::fs::metadata(dest.join(g)).unwrap().len()));
        }
        sets.push((dest, set));
    }
    let (ref_dest, ref_set) = &sets[0];
    for (dest, set) in &sets[1..] {
        assert_eq!(set, ref_set, "same granule set");
        for g in set {
            assert_eq!(
                data(&dest.join(g)),
                data(&ref_dest.join(g)),
                "{g}: same data in {} and {}",
                dest.display(),
                ref_dest.display()
            );
        }
    }
}

#[test]
fn restart_redoes_exactly_what_is_missing_or_changed_and_then_nothing() {
    require_mpirun();
    let s = sample(12, 5, 2);
    let dest = s.dir.path().join("out");
    let (file, _) = task_list(&s, &dest);
    let tasks = file.to_str().unwrap();
    let out = edp(2, &["run", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = manifest(&dest);
    let first_run = first.last_run.clone().unwrap().run_id;
    let verify = edp(
        0,
        &["verify", dest.join("edp-manifest.json").to_str().unwrap()],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    // Delete two granules; overwrite a third with same-size garbage.
    let set = granules(&dest);
    let deleted = [set[1].clone(), set[6].clone()];
    for g in &deleted {
        std::fs::remove_file(dest.join(g)).unwrap();
    }
    let damaged = set[3].clone();
    let mut bytes = std::fs::read(dest.join(&damaged)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(dest.join(&damaged), &bytes).unwrap();
    let before = mtimes(&dest);

    let out = edp(0, &["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    for g in &deleted {
        assert!(report.contains(&format!("MISSING  {g}")), "{report}");
    }
    assert!(report.contains(&format!("SHA256   {damaged}")), "{report}");

    // Without --verify: the two deleted granules only.
    let out = edp(3, &["run", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m = manifest(&dest);
    let run = m.last_run.clone().unwrap();
    assert_eq!((run.done, run.skipped, run.failed), (2, 6, 0), "{run:?}");
    let redone: Vec<&str> = m
        .granules
        .iter()
        .filter(|r| r.run_id == run.run_id)
        .map(|r| r.granule.as_str())
        .collect();
    assert_eq!(
        redone,
        deleted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(m
        .granules
        .iter()
        .filter(|r| !deleted.contains(&r.granule))
        .all(|r| r.run_id == first_run));
    let after = mtimes(&dest);
    for (g, t) in &before {
        assert_eq!(after.get(g), Some(t), "{g} untouched");
    }

    // With --verify: the damaged one too, and nothing else.
    let out = edp(2, &["run", "--verify", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m = manifest(&dest);
    let run = m.last_run.clone().unwrap();
    assert_eq!((run.done, run.skipped), (1, 7), "{run:?}");
    assert_eq!(
        m.granules
            .iter()
            .find(|r| r.run_id == run.run_id)
            .unwrap()
            .granule,
        damaged
    );
    let out = edp(0, &["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A second run of a complete job does no granule work.
    let before = mtimes(&dest);
    let out = edp(2, &["run", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = manifest(&dest).last_run.unwrap();
    assert_eq!((run.done, run.skipped, run.failed), (0, 8, 0));
    assert_eq!(mtimes(&dest), before);

    // A granule the manifest does not know is reported.
    std::fs::copy(dest.join(&set[0]), dest.join("stray.nc")).unwrap();
    let out = edp(0, &["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("EXTRA    stray.nc"));
}

#[test]
fn a_corrupt_input_fails_only_its_task_with_exit_1_and_a_message() {
    require_mpirun();
    let s = sample(12, 5, 2);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest);
    let victim = list
        .iter()
        .find(|t| t.variables.contains_key("THETA"))
        .unwrap();
    let data_file = victim.variables["THETA"][0][0].clone();
    let len = std::fs::metadata(&data_file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data_file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = edp(2, &["run", "--tasks", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let m = manifest(&dest);
    let failed: Vec<_> = m
        .granules
        .iter()
        .filter(|r| r.status == edp::run::journal::Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "only the task reading the damaged file");
    assert!(victim.granule.ends_with(&failed[0].granule));
    let err = failed[0].error.as_deref().unwrap();
    assert!(err.contains(&data_file), "error names the file: {err}");
    assert_eq!(m.granules.len() - failed.len(), 7);
    assert_eq!(granules(&dest).len(), 7);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED task"), "{stdout}");
    assert!(temp_files(&dest).is_empty());
    // verify reports the failed task.
    let out = edp(0, &["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
}

/// Starts a run and waits until at least `records` journal lines exist (the run is then
/// mid-way) and, with `partial`, until a granule is being written (a temporary file
/// exists).
fn start_and_wait_for_records(
    np: usize,
    args: &[&str],
    dest: &Path,
    records: usize,
    partial: bool,
) -> Child {
    let mut cmd = edp_cmd(np, args);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let t = Instant::now();
    loop {
        let lines: usize = journals(dest)
            .iter()
            .map(|j| {
                std::fs::read_to_string(j)
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum();
        if lines >= records && (!partial || !temp_files(dest).is_empty()) {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("run ended ({st:?}) before {records} journal records appeared");
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no journal records");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// True while some process's command line mentions `needle`.
fn process_alive(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(needle))
            .unwrap_or(false)
    })
}

#[test]
fn sigkill_of_the_whole_run_then_a_rerun_completes_with_no_partial_file() {
    require_mpirun();
    let s = sample(24, 10, 6);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest);
    let tasks = file.to_str().unwrap();
    let mut child = start_and_wait_for_records(2, &["run", "--tasks", tasks], &dest, 2, true);
    kill_group(child.id(), "KILL");
    // Reaps mpirun; SIGKILL leaves no way to refuse.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "mpirun died of the signal");
    let partial = temp_files(&dest).len();
    let t = Instant::now();
    while process_alive(tasks) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a rank survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !dest.join(".edp").join(edp::run::store::INDEX_NAME).exists(),
        "the run finished before the kill; the test needs a longer task list"
    );
    let done_before = granules(&dest).len();
    assert!(done_before < list.len());
    eprintln!("killed with {done_before} granule(s) done and {partial} partial file(s)");

    let out = edp(2, &["run", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m = manifest(&dest);
    let run = m.last_run.clone().unwrap();
    assert_eq!(m.granules.len(), list.len());
    assert!(run.skipped >= 2, "journaled granules were kept: {run:?}");
    assert_eq!(run.done + run.skipped, list.len());
    assert_eq!(granules(&dest).len(), list.len());
    assert!(temp_files(&dest).is_empty(), "{:?}", temp_files(&dest));
    assert!(journals(&dest).is_empty());
    let out = edp(0, &["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn sigusr1_to_mpirun_finishes_the_granules_in_hand_and_exits_3() {
    require_mpirun();
    let s = sample(24, 10, 6);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest);
    let tasks = file.to_str().unwrap();
    let child = start_and_wait_for_records(2, &["run", "--tasks", tasks], &dest, 1, false);
    let ok = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = run_wait(child, Duration::from_secs(60));
    assert_eq!(out, Some(3), "exit code 3 when interrupted");
    let m = manifest(&dest);
    let run = m.last_run.clone().unwrap();
    assert!(
        run.interrupted && run.not_run > 0 && run.done > 0,
        "{run:?}"
    );
    assert_eq!(run.done + run.not_run + run.failed, list.len());
    assert_eq!(granules(&dest).len(), run.done);
    assert!(temp_files(&dest).is_empty());
    assert!(journals(&dest).is_empty());

    // Alone (no mpirun), SIGTERM does the same: on a fresh destination, so that all
    // but the one or two granules in hand are still to do when the signal comes.
    let dest2 = s.dir.path().join("out-term");
    let (file2, list2) = task_list(&s, &dest2);
    assert!(list2.len() > 3, "{} tasks", list2.len());
    let child = start_and_wait_for_records(
        0,
        &["run", "--tasks", file2.to_str().unwrap(), "--threads", "1"],
        &dest2,
        1,
        false,
    );
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let code = run_wait(child, Duration::from_secs(60));
    let run2 = manifest(&dest2).last_run.unwrap();
    assert_eq!(code, Some(3), "exit code 3 after SIGTERM: {run2:?}");
    assert!(run2.interrupted && run2.not_run > 0, "{run2:?}");
    assert_eq!(granules(&dest2).len(), run2.done);
    assert!(temp_files(&dest2).is_empty());

    let out = edp(3, &["run", "--tasks", tasks]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run3 = manifest(&dest).last_run.unwrap();
    assert_eq!(run3.skipped, run.done);
    assert_eq!(granules(&dest).len(), list.len());
}

fn run_wait(mut child: Child, limit: Duration) -> Option<i32> {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if t.elapsed() > limit {
            kill_group(child.id(), "KILL");
            panic!("did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Uneven costs the cost model cannot see (rank 1 waits 1.2 s before each of its tasks)
/// are balanced by the schedule: rank 0 hands out batches as ranks ask, so the slow
/// rank does fewer tasks than the others (a static split would give each a third).
#[test]
fn a_slow_rank_is_given_fewer_tasks() {
    require_mpirun();
    let s = sample(12, 5, 4);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest);
    assert_eq!(list.len(), 16);
    let mut cmd = edp_cmd(3, &["run", "--tasks", file.to_str().unwrap()]);
    cmd.env("EDP_DEBUG_TASK_DELAY_MS", "1200")
        .env("EDP_DEBUG_SLOW_RANK", "1");
    let out = run_limited(cmd, Duration::from_secs(300));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m = manifest(&dest);
    let run = m.last_run.clone().unwrap();
    assert_eq!(run.done, 16);
    // The per-rank counts of the summary agree with the records' ranks.
    let mut by_rank = vec![0usize; 3];
    for r in &m.granules {
        by_rank[r.rank] += 1;
    }
    assert_eq!(run.tasks_by_rank, by_rank, "{run:?}");
    eprintln!(
        "tasks by rank (rank 1 slow): {by_rank:?}, busy seconds {:?}",
        run.busy_seconds
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "tasks by rank: [{}, {}, {}]",
            by_rank[0], by_rank[1], by_rank[2]
        )),
        "{stdout}"
    );
    assert!(
        by_rank[1] < by_rank[0] && by_rank[1] < by_rank[2] && by_rank[1] <= 4,
        "the slow rank did fewer tasks: {by_rank:?}"
    );
}

#[test]
fn a_panic_in_one_rank_aborts_the_whole_job_with_a_message() {
    require_mpirun();
    let s = sample(12, 5, 2);
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest);
    // The smallest task: the last one rank 0's largest-first order reaches, so some
    // rank other than 0 is likely to own it.
    let victim = Path::new(&list[0].granule)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut cmd = edp_cmd(3, &["run", "--tasks", file.to_str().unwrap()]);
    cmd.env(edp::run::spmd::DEBUG_PANIC_VAR, &victim);
    let out = run_limited(cmd, Duration::from_secs(60));
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("panicked"), "{err}");
    assert!(err.contains("aborting the MPI job"), "{err}");
    assert!(!dest.join(".edp").join(edp::run::store::INDEX_NAME).exists());
}

#[test]
fn configuration_errors_exit_2_on_every_rank_before_any_work() {
    require_mpirun();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-tasks.json");
    let out = edp(2, &["run", "--tasks", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-tasks.json"));

    let s = sample(12, 5, 1);
    let dest = s.dir.path().join("out");
    let (file, _) = task_list(&s, &dest);
    let out = edp(
        3,
        &[
            "run",
            "--tasks",
            file.to_str().unwrap(),
            "--metadata",
            "/no/such/metadata",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!dest.exists(), "nothing written");

    // Usage errors (clap) too, and EDP_MPI must be a known value.
    let out = edp(0, &["run"]);
    assert_eq!(out.status.code(), Some(2));
    let mut cmd = edp_cmd(0, &["run", "--tasks", file.to_str().unwrap()]);
    cmd.env("EDP_MPI", "maybe");
    let out = run_limited(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn jobs_file_input_and_forced_singleton_mpi() {
    require_mpirun();
    let s = sample(12, 5, 2);
    let m = MetadataSet::embedded().unwrap();
    let id = m
        .groupings(Product::Native)
        .iter()
        .position(|g| g.filename == "SEA_SURFACE_HEIGHT")
        .unwrap();
    let jobs = s.dir.path().join("jobs.txt");
    std::fs::write(&jobs, format!("[{id}, 'native', 'AVG_MON', 'all']\n")).unwrap();
    let dest = s.dir.path().join("out");
    let grid = s.grid_dir();
    let args = [
        "run",
        "--jobs",
        jobs.to_str().unwrap(),
        "--source",
        s.dir.path().to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
    ];
    let out = edp(2, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mf = manifest(&dest);
    assert_eq!(mf.granules.len(), 2);
    assert!(mf.granules[0]
        .granule
        .starts_with("V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/"));

    // EDP_MPI=on without a launcher: an OpenMPI singleton, one rank.
    let mut cmd = edp_cmd(0, &args);
    cmd.env("EDP_MPI", "on");
    let out = run_limited(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = manifest(&dest).last_run.unwrap();
    assert_eq!((run.ranks, run.skipped), (1, 2));
    // The EDP-era manifest file is an export of the record store.
    let out = edp(0, &["manifest", "export", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value =
        serde_json::from_slice(&std::fs::read(dest.join("edp-manifest.json")).unwrap()).unwrap();
    assert_eq!(v["format"], "edp-manifest/1");
    assert_eq!(v["granules"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["last_run"]["skipped"], 2);
}
