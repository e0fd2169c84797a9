//! Shared helpers of the cluster tests (tests/cluster_*.rs): the demo dataset, task
//! lists, reading the completion manifest and checking a destination against it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The four native groupings the synthetic data covers, monthly, all steps.
pub const JOBS: &str = "# the demo's groupings, every month\n\
    [0, 'native', 'AVG_MON', 'all']\n\
    [6, 'native', 'AVG_MON', 'all']\n\
    [15, 'native', 'AVG_MON', 'all']\n\
    [17, 'native', 'AVG_MON', 'all']\n";
/// Months in the dataset; 4 granules a month.
pub const MONTHS: usize = 3;
pub const TASKS: usize = 4 * MONTHS;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn edp() -> &'static str {
    env!("CARGO_BIN_EXE_edp")
}

/// Cluster tests share the machine's two cores (and the one Slurm node): one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when the environment says these tests must run rather than skip (CI).
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Runs a command, panicking with its output if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The demo dataset (synthetic LLC90, 50 levels, [`MONTHS`] monthly means), made once
/// under the target directory and reused by later runs.
pub fn dataset() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join(format!("cluster-data-llc90-{MONTHS}m"));
        if dir.join("complete").exists() {
            return dir;
        }
        // Built beside, then renamed into place: a half-written dataset is never reused.
        let part = root.join(format!("cluster-data-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&part);
        let out = run(Command::new(edp())
            .args(["synth", "--months", &MONTHS.to_string(), "--out"])
            .arg(&part));
        assert!(out.status.success(), "edp synth: {}", text(&out));
        std::fs::write(part.join("complete"), "").unwrap();
        if std::fs::rename(&part, &dir).is_err() {
            // Another process made it first.
            let _ = std::fs::remove_dir_all(&part);
        }
        assert!(dir.join("complete").exists());
        dir
    })
}

/// A fresh working directory for one test, under the target directory.
pub fn workdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cluster")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the jobs file into `dir`.
pub fn jobs_file(dir: &Path) -> PathBuf {
    let p = dir.join("jobs.txt");
    std::fs::write(&p, JOBS).unwrap();
    p
}

/// A task list for the dataset with granules under `dest`, by `edp tasks`.
pub fn task_list(dir: &Path, dest: &Path) -> PathBuf {
    let data = dataset();
    let list = dir.join("tasks.json");
    let out = run(Command::new(edp())
        .args(["tasks", "--jobs"])
        .arg(jobs_file(dir))
        .arg("--source")
        .arg(data)
        .arg("--dest")
        .arg(dest)
        .arg("--grid")
        .arg(data.join("grid"))
        .arg("-o")
        .arg(&list));
    assert!(out.status.success(), "edp tasks: {}", text(&out));
    let v: Value = serde_json::from_slice(&std::fs::read(&list).unwrap()).unwrap();
    let n = v.as_array().map(|a| a.len());
    assert_eq!(n, Some(TASKS), "tasks in {}", list.display());
    list
}

/// `<dest>/edp-manifest.json`.
pub fn manifest(dest: &Path) -> Value {
    let p = dest.join("edp-manifest.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The manifest's records by granule path (relative to `dest`).
pub fn records(m: &Value) -> BTreeMap<String, Value> {
    m["granules"]
        .as_array()
        .expect("manifest granules")
        .iter()
        .map(|r| (r["granule"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

pub fn done(m: &Value) -> BTreeMap<String, Value> {
    records(m)
        .into_iter()
        .filter(|(_, r)| r["status"] == "done")
        .collect()
}

pub fn last_run(m: &Value, field: &str) -> Value {
    m["last_run"][field].clone()
}

/// Every file under `dir`, relative to it.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn granules_on_disk(dest: &Path) -> Vec<String> {
    files(dest)
        .into_iter()
        .filter(|f| f.ends_with(".nc") && !f.starts_with(".edp/"))
        .collect()
}

pub fn sha256(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    format!("{:x}", Sha256::digest(&bytes))
}

/// The destination agrees with its manifest: every granule on disk has a done record
/// with its size and sha256, and no temporary file is left anywhere. Returns the
/// number of done granules.
pub fn check_consistent(dest: &Path) -> usize {
    let m = manifest(dest);
    let done = done(&m);
    let on_disk = granules_on_disk(dest);
    let temps: Vec<_> = files(dest)
        .into_iter()
        .filter(|f| f.contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert_eq!(
        on_disk,
        done.keys().cloned().collect::<Vec<_>>(),
        "granules on disk vs done in the manifest"
    );
    for (g, r) in &done {
        let p = dest.join(g);
        let size = std::fs::metadata(&p).unwrap().len();
        assert_eq!(r["size"].as_u64(), Some(size), "size of {g}");
        assert_eq!(
            r["sha256"].as_str(),
            Some(sha256(&p).as_str()),
            "sha256 of {g}"
        );
    }
    done.len()
}

/// The destination holds every task's granule, checked against the manifest.
pub fn check_complete(dest: &Path) {
    let n = check_consistent(dest);
    assert_eq!(n, TASKS, "granules done");
    let m = manifest(dest);
    assert_eq!(records(&m).len(), TASKS, "records in the manifest");
    assert_eq!(last_run(&m, "failed"), 0);
    assert_eq!(last_run(&m, "interrupted"), false);
}

/// This machine's short host name, as a PBS node file or Open MPI's hostfile names it.
pub fn hostname() -> String {
    let out = run(Command::new("hostname").arg("-s"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Open MPI refuses root without these (CI runs as root).
pub fn mpi_env(cmd: &mut Command) -> &mut Command {
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("EDP_BIN", edp())
}
