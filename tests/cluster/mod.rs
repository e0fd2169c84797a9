//! Shared helpers of the cluster tests (tests/cluster_*.rs): the demo dataset, task
//! lists, reading the completion manifest and checking a destination against it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

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

/// `<dest>/edp-manifest.json`, exported from the run's record store by
/// `edp manifest export` (a run keeps its state in `<dest>/.edp/`).
pub fn manifest(dest: &Path) -> Value {
    let p = dest.join("edp-manifest.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["manifest", "export"])
        .arg(dest)
        .output()
        .expect("edp manifest export");
    assert!(out.status.success(), "edp manifest export: {}", text(&out));
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

/// Starts Slurm (idempotent). False, after saying why, when it cannot be started here.
pub fn slurm_up(test: &str) -> bool {
    slurm_up_with(test, &[])
}

/// Starts Slurm with these arguments of scripts/slurm-up.sh (e.g. `--nodes 2`).
pub fn slurm_up_with(test: &str, args: &[&str]) -> bool {
    let out = run(Command::new(repo().join("scripts/slurm-up.sh")).args(args));
    if out.status.success() {
        return true;
    }
    let why = text(&out);
    if required("EDP_REQUIRE_SLURM") {
        panic!("EDP_REQUIRE_SLURM=1 but Slurm could not be started: {why}");
    }
    eprintln!("SKIPPED {test}: Slurm cannot be started on this machine: {why}");
    false
}

/// The number of nodes the running Slurm has.
pub fn nodes() -> usize {
    let out = run(Command::new("sinfo").args(["-N", "-h", "-o", "%N"]));
    let names: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    names.len()
}

/// `sbatch` in `dir` with the environment the jobs need (sbatch exports it to the job).
pub fn sbatch(dir: &Path) -> Command {
    let mut cmd = Command::new("sbatch");
    cmd.current_dir(dir).env("EDP_SRUN_MPI", "pmix");
    mpi_env(&mut cmd);
    cmd
}

/// A job's state and exit code (`ExitCode=3:0` → 3), from scontrol.
pub fn job_state(id: &str) -> (String, i32) {
    let out = run(Command::new("scontrol").args(["show", "job", "-o", id]));
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        s.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {s}"))
            .to_string()
    };
    let state = field("JobState=");
    let code = field("ExitCode=")
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (state, code)
}

pub fn finished(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
    )
}

/// Waits for a job to end (polling: faster than `sbatch --wait`'s back-off).
pub fn wait_job(id: &str, limit: Duration) -> (String, i32) {
    let t = Instant::now();
    loop {
        let (state, code) = job_state(id);
        if finished(&state) {
            return (state, code);
        }
        if t.elapsed() > limit {
            let _ = Command::new("scancel").arg(id).status();
            panic!("job {id} still {state} after {limit:?}; cancelled");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn submitted_id(stdout: &[u8]) -> String {
    // --parsable prints "<id>" or "<id>;<cluster>".
    let s = String::from_utf8_lossy(stdout);
    let id = s.trim().split(';').next().unwrap().to_string();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "job id from sbatch: {s:?}"
    );
    id
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The jobs of the 30-granule set: SSH daily and monthly, stress, T/S and velocity
/// monthly, native and 0.5° lat-lon (7 + 7 daily, 8 + 8 monthly).
pub const JOBS30: &str = "# SSH daily and monthly, stress, T/S, velocity; native and lat-lon\n\
    [0, 'native', 'AVG_MON', 'all']\n\
    [6, 'native', 'AVG_MON', 'all']\n\
    [15, 'native', 'AVG_MON', 'all']\n\
    [17, 'native', 'AVG_MON', 'all']\n\
    [0, 'latlon', 'AVG_MON', 'all']\n\
    [6, 'latlon', 'AVG_MON', 'all']\n\
    [9, 'latlon', 'AVG_MON', 'all']\n\
    [11, 'latlon', 'AVG_MON', 'all']\n\
    [0, 'native', 'AVG_DAY', 'all']\n\
    [0, 'latlon', 'AVG_DAY', 'all']\n";
pub const TASKS30: usize = 30;

/// The inputs of [`JOBS30`]: synthetic LLC90, 50 levels, 7 daily means of the SSH
/// fields and 2 monthly means of the fields the four groupings need. Made once under
/// the target directory (a shared file system for every node) and reused.
pub fn dataset30() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("cluster-data-30");
        if dir.join("complete").exists() {
            return dir;
        }
        let part = root.join(format!("cluster-data-30-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&part);
        let ssh = "SSH,SSHIBC,SSHNOIBC,ETAN";
        let monthly =
            format!("{ssh},EXFtaux,EXFtauy,oceTAUX,oceTAUY,THETA,SALT,UVEL,VVEL,WVELMASS");
        for (months, days, vars) in [("0", "7", ssh), ("2", "0", monthly.as_str())] {
            let out = run(Command::new(edp())
                .args([
                    "synth",
                    "--months",
                    months,
                    "--days",
                    days,
                    "--variables",
                    vars,
                ])
                .arg("--out")
                .arg(&part));
            assert!(out.status.success(), "edp synth: {}", text(&out));
        }
        std::fs::write(part.join("jobs.txt"), JOBS30).unwrap();
        std::fs::write(part.join("complete"), "").unwrap();
        if std::fs::rename(&part, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&part);
        }
        assert!(dir.join("complete").exists());
        dir
    })
}

/// Global attributes that differ between any two runs (creation time, identifiers).
const PER_RUN: &[&str] = &[
    "date_created",
    "date_issued",
    "date_metadata_modified",
    "date_modified",
    "uuid",
];

/// Everything in a granule but the per-run attributes: dimensions, global attributes,
/// and per variable its type, dimensions, attributes, storage (chunks, filters) and
/// values as bit patterns.
pub fn contents(path: &Path) -> BTreeMap<String, String> {
    use edp::ncio::{DType, NcReader};
    let r = NcReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    out.insert("/dims".into(), format!("{:?}", r.dims()));
    let globals: Vec<_> = r
        .global_attrs()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !PER_RUN.contains(&k.as_str()))
        .collect();
    out.insert("/globals".into(), format!("{globals:?}"));
    for v in r.var_names() {
        let t = r.var_type(&v).unwrap();
        let bits: Vec<u64> = match t {
            DType::F32 => r
                .read_f32(&v)
                .unwrap()
                .iter()
                .map(|x| x.to_bits() as u64)
                .collect(),
            DType::F64 => r
                .read_f64(&v)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect(),
            DType::I8 => r
                .read_i8(&v)
                .unwrap()
                .iter()
                .map(|&x| x as u8 as u64)
                .collect(),
            DType::I32 => r
                .read_i32(&v)
                .unwrap()
                .iter()
                .map(|x| *x as u32 as u64)
                .collect(),
        };
        let digest = Sha256::digest(
            bits.iter()
                .flat_map(|b| b.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        out.insert(
            v.clone(),
            format!(
                "{t:?} {:?} {:?} {:?} {} values {digest:x}",
                r.var_dims(&v).unwrap(),
                r.var_attrs(&v).unwrap(),
                r.var_storage(&v).unwrap(),
                bits.len()
            ),
        );
    }
    out
}

/// The granules under `a` and `b` are the same files with the same contents (see
/// [`contents`]); `what` names the comparison in a failure.
pub fn assert_same_granules(a: &Path, b: &Path, what: &str) {
    let ga = granules_on_disk(a);
    assert_eq!(ga, granules_on_disk(b), "{what}: granule names");
    for g in &ga {
        assert_eq!(contents(&a.join(g)), contents(&b.join(g)), "{what}: {g}");
    }
}
