//! Benchmark: the control plane at release scale. Builds an empty-file tree of the
//! exact V4r4 shape (every input field of every grouping at the frequencies the
//! groupings list: 26 years of daily means, monthly means and daily snapshots), writes a
//! jobs file of every grouping x product x frequency with `'all'`, then for this build
//! of `edp` (and, with `EDP_BASELINE_BIN=<path>`, another one in the same run, e.g.
//! main's) measures:
//!
//! - `edp tasks -o`: tasks, wall, peak RssAnon (sampled from /proc/<pid>/status);
//! - `edp run --tasks` of that plan on one rank, every task failing fast on its empty
//!   input: wall, peak RssAnon and RssFile, run state bytes on disk (per granule),
//!   granules/s; then `edp status` (wall, and that it reports every task failed);
//! - the restart fold: the run's records as one journal folded into a copy of the store
//!   and the done digest rebuilt (this build only).
//!
//! - (2) one model year of every native grouping's monthly and daily jobs at LLC8
//!   (`edp synth --variables all --n 8`) under `mpirun -np 2`: a clean reference run;
//!   the same work elsewhere SIGKILLed three times at random moments (one rank, the
//!   whole job, then either), each followed by a resume (the restart fold timed), a run
//!   that skips everything (wall), `edp verify --content`, every granule's data against
//!   the reference's; peak RssAnon per rank, run state bytes per granule, granules/s,
//!   and the projection of the per-granule figures to V4r4 and V4r5;
//! - (3) the fixed cost of a 2D LLC8 native granule (define, metadata, commit, journal:
//!   its data is 832 values): the marginal wall per granule between runs of 73 and 365.
//!
//! `EDP_RELEASE_PARTS` (comma list of `plan`, `run`, `llc8`, `fixed`; default all)
//! chooses the parts (`run` is the 1-rank fail-fast pass of part (1), ~30 min at 26
//! years). `EDP_RELEASE_YEARS` (default 26) shortens the tree; `EDP_RELEASE_DIR` keeps the tree
//! between runs (built once); `EDP_RELEASE_ONLY=baseline` measures the baseline alone;
//! `EDP_THIS_BIN` names a copy of this build's binary to measure.
//! The lat-lon mapping factors a run builds once from the LLC8 grid are not run state
//! and are left out of its bytes. Run with `cargo bench --bench release`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edp::metadata::{MetadataSet, Product};
use edp::tasks::plan::input_fields;
use edp::time::{days_from_civil, Frequency};

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// This build's binary, or a copy of it (`EDP_THIS_BIN`) so that rebuilding during a
/// long bench does not change what is measured.
fn this_bin() -> PathBuf {
    std::env::var_os("EDP_THIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(EDP))
}

fn status_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Runs `cmd`, sampling the peak RssAnon and RssFile of the child every 20 ms.
/// Returns (wall s, peak RssAnon, peak RssFile, exit code, stdout).
fn measured(mut cmd: Command) -> (f64, u64, u64, Option<i32>, String) {
    let t = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn edp");
    let pid = child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new((0u64, 0u64)));
    let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
    let sampler = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let (a, f) = (status_kb(&st, "RssAnon:"), status_kb(&st, "RssFile:"));
                let mut m = p.lock().unwrap();
                m.0 = m.0.max(a);
                m.1 = m.1.max(f);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let out = child.wait_with_output().expect("wait edp");
    let wall = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (a, f) = *peak.lock().unwrap();
    (
        wall,
        a,
        f,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// [`measured`] of a command whose standard output is already set (not captured).
fn measured_quiet(mut cmd: Command) -> (f64, u64, u64, Option<i32>, String) {
    let t = Instant::now();
    let mut child = cmd
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn edp");
    let pid = child.id();
    let mut peak = (0u64, 0u64);
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait edp") {
            break st.code();
        }
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            peak.0 = peak.0.max(status_kb(&st, "RssAnon:"));
            peak.1 = peak.1.max(status_kb(&st, "RssFile:"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        t.elapsed().as_secs_f64(),
        peak.0,
        peak.1,
        code,
        String::new(),
    )
}

/// Model steps (hours from 1992-01-01T12) ending each day / month of `years` years.
fn steps(freq: Frequency, years: i64) -> Vec<u64> {
    let day0 = days_from_civil(1992, 1, 1);
    match freq {
        Frequency::AvgMon => (0..years * 12)
            .map(|m| {
                let (y, mo) = (1992 + (m + 1) / 12, ((m + 1) % 12) as u32 + 1);
                ((days_from_civil(y, mo, 1) - day0) * 24 - 12) as u64
            })
            .collect(),
        _ => {
            let days = days_from_civil(1992 + years, 1, 1) - day0;
            (0..days).map(|d| (12 + 24 * d) as u64).collect()
        }
    }
}

/// The empty-file tree and the jobs file; returns (jobs file, files made).
fn build_tree(m: &MetadataSet, root: &Path, years: i64) -> (PathBuf, usize) {
    let jobs_file = root.join("jobs.txt");
    let mut jobs = String::new();
    let mut vars: std::collections::BTreeMap<Frequency, std::collections::BTreeSet<String>> =
        Default::default();
    for product in [Product::Native, Product::Latlon] {
        for g in m.groupings(product) {
            for &f in &g.frequencies {
                if f == Frequency::Ti {
                    continue;
                }
                jobs.push_str(&format!(
                    "[{}, '{}', '{}', 'all']\n",
                    g.index,
                    product.name(),
                    f.job_name()
                ));
                for field in &g.fields {
                    vars.entry(f).or_default().extend(input_fields(g, field));
                }
            }
        }
    }
    std::fs::write(&jobs_file, &jobs).expect("jobs file");
    let marker = root.join("tree.done");
    if marker.exists() {
        return (jobs_file, 0);
    }
    let src = root.join("src").join("V4r4");
    let mut files = 0;
    for (freq, vs) in &vars {
        let st = steps(*freq, years);
        for v in vs {
            let dir = src
                .join(freq.input_dir())
                .join(format!("{v}_{}", freq.input_token()));
            std::fs::create_dir_all(&dir).expect("input dir");
            for s in &st {
                for ext in ["data", "meta"] {
                    std::fs::File::create(
                        dir.join(format!("{v}_{}.{s:010}.{ext}", freq.input_token())),
                    )
                    .expect("input file");
                    files += 1;
                }
            }
        }
    }
    std::fs::write(&marker, b"").expect("marker");
    (jobs_file, files)
}

/// Bytes of the run state under `dir`: everything but the lat-lon mapping factors the
/// run builds once from the grid (`edp_factors`, not run state).
fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != "edp_factors")
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

struct Row {
    label: String,
    tasks: usize,
    tasks_wall: f64,
    tasks_anon: u64,
    run_wall: f64,
    run_anon: u64,
    run_file: u64,
    state: u64,
    status_wall: f64,
    status_ok: bool,
    run_code: Option<i32>,
}

/// Whether `EDP_RELEASE_PARTS` (a comma list of `plan`, `run`, `llc8`, `fixed`;
/// default all) asks for `part`.
fn part(name: &str) -> bool {
    match std::env::var("EDP_RELEASE_PARTS") {
        Ok(v) => v.split(',').any(|p| p.trim() == name),
        Err(_) => true,
    }
}

fn measure(label: &str, bin: &Path, root: &Path, jobs: &Path, grid: &Path) -> Row {
    let work = root.join(format!("work-{label}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let dest = work.join("out");
    let list = work.join("tasks.json");
    let mut c = Command::new(bin);
    c.args(["tasks", "--jobs"])
        .arg(jobs)
        .arg("--source")
        .arg(root.join("src").join("V4r4"))
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(grid)
        .arg("-o")
        .arg(&list)
        .env("RUST_LOG", "error");
    // The input tree's directories into the page cache first (a warm-up run, not
    // counted), so that neither measured run pays for reading them cold.
    let _ = Command::new(bin)
        .args(c.get_args())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let (tasks_wall, tasks_anon, _, code, _) = measured(c);
    assert_eq!(code, Some(0), "{label}: edp tasks failed");
    // Beside it in the same run: the list to standard output (streamed too, through an
    // unlinked file in the scratch directory, copied out after the metadata gate).
    let mut c = Command::new(bin);
    c.args(["tasks", "--jobs"])
        .arg(jobs)
        .arg("--source")
        .arg(root.join("src").join("V4r4"))
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(grid)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null());
    let (held_wall, held_anon, _, _, _) = measured_quiet(c);
    println!(
        "{label}: edp tasks -o (streamed) {tasks_wall:.1} s, {:.0} MB peak RssAnon; \
         the same plan to stdout: {held_wall:.1} s, {:.0} MB",
        mb(tasks_anon),
        mb(held_anon)
    );
    // Tasks in the list: its "granule" keys, counted by streaming.
    let tasks = {
        use std::io::BufRead;
        let f = std::io::BufReader::new(std::fs::File::open(&list).expect("task list"));
        f.lines()
            .map_while(Result::ok)
            .filter(|l| l.trim_start().starts_with("\"granule\":"))
            .count()
    };
    if !part("run") {
        return Row {
            label: label.into(),
            tasks,
            tasks_wall,
            tasks_anon,
            run_wall: 0.0,
            run_anon: 0,
            run_file: 0,
            state: 0,
            status_wall: 0.0,
            status_ok: false,
            run_code: None,
        };
    }
    let mut c = Command::new(bin);
    c.args(["run", "--tasks"])
        .arg(&list)
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(grid)
        .args(["--progress", "0", "--threads", "1"])
        .env("EDP_MPI", "off")
        .env("RUST_LOG", "off");
    let (run_wall, run_anon, run_file, run_code, _) = measured(c);
    let state = dir_bytes(&dest);
    let t = Instant::now();
    let out = Command::new(this_bin())
        .args(["status"])
        .arg(&dest)
        .env("RUST_LOG", "error")
        .output()
        .expect("edp status");
    let status_wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    let want = format!("{tasks} tasks: 0 done, {tasks} failed, 0 not run");
    let status_ok = last == want;
    println!("{label}: edp status last line: {last:?} (want {want:?})");
    Row {
        label: label.into(),
        tasks,
        tasks_wall,
        tasks_anon,
        run_wall,
        run_anon,
        run_file,
        state,
        status_wall,
        status_ok,
        run_code,
    }
}

/// The restart fold: every record of the run's store as one journal of a killed run,
/// folded into a copy of the store, then the done digest rebuilt.
fn fold_time(dest: &Path) -> Option<(f64, usize)> {
    let store = edp::run::store::Store::at(dest);
    if !store.exists() {
        return None;
    }
    let copy = dest.with_file_name("fold-copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join(".edp")).ok()?;
    for name in [edp::run::store::STORE_NAME, edp::run::store::INDEX_NAME] {
        std::fs::copy(dest.join(".edp").join(name), copy.join(".edp").join(name)).ok()?;
    }
    {
        use std::io::Write;
        let mut j = std::io::BufWriter::new(
            std::fs::File::create(edp::run::journal::journal_path(&copy, 0)).ok()?,
        );
        store
            .for_each_line(|line, _| {
                let _ = j.write_all(line);
                let _ = j.write_all(b"\n");
            })
            .ok()?;
    }
    let t = Instant::now();
    let priors = edp::run::destination::Destination::local(&copy)
        .consolidate()
        .ok()?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&copy);
    Some((secs, priors.len()))
}

fn main() {
    let years: i64 = std::env::var("EDP_RELEASE_YEARS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(26);
    let keep = std::env::var("EDP_RELEASE_DIR").ok().map(PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let root = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("root");
    let m = MetadataSet::embedded().expect("embedded metadata");
    let t = Instant::now();
    if !part("plan") && !part("run") {
        llc8(&root.join("llc8"), &m);
        return;
    }
    let (jobs, files) = build_tree(&m, &root, years);
    println!(
        "V4r4 shape, {years} years: {files} empty input files made in {:.1} s ({} job lines)",
        t.elapsed().as_secs_f64(),
        std::fs::read_to_string(&jobs)
            .unwrap_or_default()
            .lines()
            .count()
    );
    // A real LLC8 grid: every task reaches its (empty) inputs and fails there.
    let grid_root = root.join("grid8");
    if !grid_root.join("grid").exists() {
        let cfg = edp::synth::SynthConfig {
            n: 8,
            nz: 50,
            months: 1,
            variables: Some(vec!["SSH".into()]),
            ..Default::default()
        };
        edp::synth::generate(&cfg, &grid_root).expect("synth grid");
    }
    let grid = grid_root.join("grid");

    if part("llc8") || part("fixed") {
        llc8(&root.join("llc8"), &m);
    }
    let mut rows = Vec::new();
    if let Ok(base) = std::env::var("EDP_BASELINE_BIN") {
        rows.push(measure("baseline", Path::new(&base), &root, &jobs, &grid));
    }
    // EDP_RELEASE_ONLY=baseline measures the baseline alone (a long run, started first).
    if std::env::var("EDP_RELEASE_ONLY").as_deref() != Ok("baseline") {
        rows.push(measure("this", &this_bin(), &root, &jobs, &grid));
    }
    let fold = fold_time(&root.join("work-this").join("out"));

    println!();
    println!("| edp | tasks | `edp tasks` wall s | peak RssAnon MB | `edp run` 1 rank wall s | peak RssAnon MB | peak RssFile MB | granules/s | run state MB | state bytes/granule | `edp status` s | status all failed | run exit |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} | {} | {:?} |",
            r.label,
            r.tasks,
            r.tasks_wall,
            mb(r.tasks_anon),
            r.run_wall,
            mb(r.run_anon),
            mb(r.run_file),
            r.tasks as f64 / r.run_wall.max(1e-9),
            mb(r.state),
            r.state as f64 / r.tasks.max(1) as f64,
            r.status_wall,
            r.status_ok,
            r.run_code,
        );
    }
    if let Some((secs, n)) = fold {
        println!("restart fold (this build): {n} records from one journal folded into the store and the done digest rebuilt in {secs:.1} s");
    }
    if let Some(r) = rows.last() {
        for (release, granules) in [("V4r4", 371_182.0), ("V4r5 (assumed ~10x)", 3_711_820.0)] {
            let k = granules / r.tasks.max(1) as f64;
            println!(
                "projection {release} (~{granules:.0} granules, control plane only, linear in tasks): run state {:.0} MB, plan {:.0} s, fail-fast pass {:.0} s",
                mb(r.state) * k,
                r.tasks_wall * k,
                r.run_wall * k
            );
        }
    }
}

/// The edp processes under `pid` (mpirun's ranks), with their MPI rank.
fn ranks_of(pid: u32) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            stack.push(c);
            let env = std::fs::read(format!("/proc/{c}/environ")).unwrap_or_default();
            let rank = env
                .split(|&b| b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))
                .and_then(|r| r.parse::<usize>().ok());
            let exe = std::fs::read_link(format!("/proc/{c}/exe")).unwrap_or_default();
            if let (Some(r), true) = (rank, exe.to_string_lossy().contains("edp")) {
                out.push((c, r));
            }
        }
    }
    out
}

/// How a run is killed: one rank (chosen at random), or the whole job (`mpirun` and
/// every rank at once, as a scheduler or a node loss would).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kill {
    Rank,
    Job,
}

/// What [`mpirun_measured`] saw: wall s, peak RssAnon by rank, exit code, and for a
/// killed run the records its journals held at the kill and the rank killed.
struct MpiRun {
    wall: f64,
    peak: [u64; 2],
    code: Option<i32>,
    killed: Option<(usize, String)>,
}

/// An `edp run` under `mpirun -np 2` sampled per rank. `kill`: SIGKILL (one rank or the
/// whole job) once this run's journals hold this many records.
fn mpirun_measured(args: &[&std::ffi::OsStr], state: &Path, kill: Option<(usize, Kill)>) -> MpiRun {
    let t = Instant::now();
    let mut child = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2"])
        .arg(this_bin())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn mpirun");
    let mut peak = [0u64; 2];
    let mut killed = None;
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait mpirun") {
            break st.code();
        }
        let ranks = ranks_of(child.id());
        for &(pid, r) in &ranks {
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if r < 2 {
                    peak[r] = peak[r].max(status_kb(&st, "RssAnon:"));
                }
            }
        }
        if let (Some((at, how)), None) = (kill, &killed) {
            let done: usize = edp::run::journal::journal_files(state)
                .unwrap_or_default()
                .iter()
                .map(|p| edp::run::journal::count_lines(p))
                .sum();
            if done >= at && ranks.len() == 2 {
                let (pids, what) = match how {
                    Kill::Rank => {
                        let (pid, r) = ranks[random_between(0, 2)];
                        (vec![pid], format!("rank {r}"))
                    }
                    Kill::Job => {
                        let mut p: Vec<u32> = ranks.iter().map(|&(p, _)| p).collect();
                        p.push(child.id());
                        (p, "whole job".to_string())
                    }
                };
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .args(pids.iter().map(u32::to_string))
                    .status();
                killed = Some((done, what));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A whole-job kill leaves no rank behind; after a rank kill mpirun ends the other.
    MpiRun {
        wall: t.elapsed().as_secs_f64(),
        peak,
        code,
        killed,
    }
}

/// The data of every granule under `dest`, by path relative to it: a sha256 of each
/// variable's name, type, shape and values (decompressed) and of the attribute names
/// (values too, but for the global attributes that hold the time of writing and a uuid).
fn data_digests(dest: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    const TIMELY: &[&str] = &[
        "date_created",
        "date_modified",
        "date_issued",
        "date_metadata_modified",
        "uuid",
    ];
    let mut out = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(dest)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "nc"))
    {
        let rel = e.path().strip_prefix(dest).unwrap_or(e.path());
        let mut h = Sha256::new();
        match netcdf::open(e.path()) {
            Ok(file) => {
                for a in file.attributes() {
                    h.update(a.name().as_bytes());
                    if !TIMELY.contains(&a.name()) {
                        h.update(format!("{:?}", a.value().ok()).as_bytes());
                    }
                }
                for var in file.variables() {
                    h.update(var.name().as_bytes());
                    h.update(format!("{:?}", var.vartype()).as_bytes());
                    for d in var.dimensions() {
                        h.update(format!("{}={};", d.name(), d.len()).as_bytes());
                    }
                    for a in var.attributes() {
                        h.update(format!("{}={:?};", a.name(), a.value().ok()).as_bytes());
                    }
                    match var.get_raw_values(..) {
                        Ok(v) => h.update(&v),
                        Err(err) => h.update(format!("unreadable: {err}").as_bytes()),
                    }
                }
            }
            Err(err) => h.update(format!("unopenable: {err}").as_bytes()),
        }
        out.insert(
            rel.to_string_lossy().into_owned(),
            hex::encode(h.finalize()),
        );
    }
    out
}

/// A number in [lo, hi) from the clock (the moment of the kill).
fn random_between(lo: usize, hi: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    lo + nanos % (hi - lo).max(1)
}

/// Parts (2) and (3): one model year of every native grouping's monthly and daily jobs
/// at LLC8 (`edp synth --variables all --n 8`), 2 ranks, one rank killed at a random
/// moment, the restart, a run that skips everything, `verify --content`; then the fixed
/// cost of a 2D LLC8 native granule.
fn llc8(root: &Path, m: &MetadataSet) {
    std::fs::create_dir_all(root).expect("llc8 dir");
    let src = root.join("src");
    let marker = root.join("synth.done");
    if !marker.exists() {
        let t = Instant::now();
        let out = Command::new(this_bin())
            .args([
                "synth", "--n", "8", "--levels", "50", "--months", "12", "--days", "365",
            ])
            .args(["--variables", "all", "-o"])
            .arg(&src)
            .output()
            .expect("edp synth");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&marker, b"").expect("marker");
        println!(
            "LLC8 one model year, every field: synthesised in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let mut jobs = String::new();
    for g in m.groupings(Product::Native) {
        for &f in &g.frequencies {
            if matches!(f, Frequency::AvgMon | Frequency::AvgDay) {
                jobs.push_str(&format!(
                    "[{}, 'native', '{}', 'all']\n",
                    g.index,
                    f.job_name()
                ));
            }
        }
    }
    let jobs_file = root.join("jobs.txt");
    std::fs::write(&jobs_file, &jobs).expect("jobs file");
    let grid = src.join("grid");
    let source = src.join("V4r4");
    if part("llc8") {
        llc8_kills(root, &jobs_file, &source, &grid);
    }
    if part("fixed") {
        fixed_cost(root, m, &source, &grid);
    }
}

/// Part (3): the fixed cost of a 2D LLC8 native granule (SEA_SURFACE_HEIGHT daily:
/// 832 values per field, so define, metadata, commit and journal are nearly all of
/// it): the marginal wall per granule between a run of 73 and one of 365 steps, one
/// rank, one thread; and the records' own seconds (begin to commit, no journal).
fn fixed_cost(root: &Path, m: &MetadataSet, source: &Path, grid: &Path) {
    let g = m
        .grouping_by_filename(Product::Native, "SEA_SURFACE_HEIGHT")
        .expect("SSH grouping");
    let steps = steps(Frequency::AvgDay, 1);
    let mut walls = Vec::new();
    let mut secs = Vec::new();
    for n in [73usize, 365] {
        let list: Vec<String> = steps[..n].iter().map(|s| s.to_string()).collect();
        let jobs = root.join(format!("fixed-{n}.txt"));
        std::fs::write(
            &jobs,
            format!(
                "[{}, 'native', 'AVG_DAY', [{}]]\n",
                g.index,
                list.join(", ")
            ),
        )
        .expect("jobs");
        let dest = root.join(format!("fixed-{n}"));
        let _ = std::fs::remove_dir_all(&dest);
        let mut c = Command::new(this_bin());
        c.args(["run", "--jobs"])
            .arg(&jobs)
            .arg("--source")
            .arg(source)
            .arg("--dest")
            .arg(&dest)
            .arg("--grid")
            .arg(grid)
            .args(["--threads", "1", "--progress", "0"])
            .env("EDP_MPI", "off")
            .env("RUST_LOG", "error");
        let (w, _, _, code, _) = measured(c);
        assert_eq!(code, Some(0), "fixed-cost run of {n}");
        walls.push((n, w));
        let mut s: Vec<f64> = Vec::new();
        edp::run::store::Store::at(&dest)
            .for_each(|r| s.push(r.seconds))
            .expect("records");
        s.sort_by(f64::total_cmp);
        secs.push(s.get(s.len() / 2).copied().unwrap_or(0.0));
    }
    let marginal = (walls[1].1 - walls[0].1) / (walls[1].0 - walls[0].0) as f64;
    println!();
    println!("| 2D LLC8 native granule (SEA_SURFACE_HEIGHT daily), 1 rank x 1 thread | value |");
    println!("|---|---|");
    println!(
        "| run of {} granules, wall | {:.2} s |",
        walls[0].0, walls[0].1
    );
    println!(
        "| run of {} granules, wall (reference) | {:.2} s |",
        walls[1].0, walls[1].1
    );
    println!(
        "| marginal wall per granule (all fixed work + 832 values per field) | {:.2} ms |",
        marginal * 1e3
    );
    println!("| median record seconds (begin to committed, without the journal) | {:.2} ms ({:.2} ms in the short run) |", secs[1] * 1e3, secs[0] * 1e3);
}

/// The task list of `jobs` for granules under `dest` (`edp tasks -o`); its task count.
fn task_list(jobs: &Path, source: &Path, grid: &Path, dest: &Path, list: &Path) -> usize {
    let out = Command::new(this_bin())
        .args(["tasks", "--jobs"])
        .arg(jobs)
        .arg("--source")
        .arg(source)
        .arg("--dest")
        .arg(dest)
        .arg("--grid")
        .arg(grid)
        .arg("-o")
        .arg(list)
        .env("RUST_LOG", "error")
        .output()
        .expect("edp tasks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    edp::tasks::TaskList::map(list).expect("task list").len()
}

/// Part (2): a clean reference run; then the same work into another destination
/// killed three times at random moments (one rank, the whole job, then either), each
/// kill followed by a resume (the first two resumes are themselves the next kill's
/// run), the last resume finishing; a run that skips everything; `verify --content`;
/// and every granule's data compared with the reference run's. Prints the table and
/// the projection to V4r4 and V4r5.
fn llc8_kills(root: &Path, jobs: &Path, source: &Path, grid: &Path) {
    let (dest_ref, dest) = (root.join("out-ref"), root.join("out"));
    let _ = std::fs::remove_dir_all(&dest_ref);
    let _ = std::fs::remove_dir_all(&dest);
    let (list_ref, list) = (root.join("tasks-ref.json"), root.join("tasks.json"));
    let tasks = task_list(jobs, source, grid, &dest_ref, &list_ref);
    assert_eq!(task_list(jobs, source, grid, &dest, &list), tasks);
    let args_of = |list: &Path, dest: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "run".into(),
            "--tasks".into(),
            list.into(),
            "--dest".into(),
            dest.into(),
            "--threads".into(),
            "1".into(),
            "--progress".into(),
            "0".into(),
        ]
    };
    let (a_ref, a) = (args_of(&list_ref, &dest_ref), args_of(&list, &dest));
    let (a_ref, a): (Vec<&std::ffi::OsStr>, Vec<&std::ffi::OsStr>) = (
        a_ref.iter().map(|s| s.as_os_str()).collect(),
        a.iter().map(|s| s.as_os_str()).collect(),
    );
    let store_len = |d: &Path| {
        let mut n = 0usize;
        let _ = edp::run::store::Store::at(d).for_each(|r| {
            n += usize::from(r.status == edp::run::journal::Status::Done);
        });
        n
    };
    // (label, run, granules made by it, restart fold s before it)
    let mut rows: Vec<(String, MpiRun, usize, Option<f64>)> = Vec::new();
    let reference = mpirun_measured(&a_ref, &dest_ref, None);
    assert_eq!(reference.code, Some(0), "the reference run failed");
    rows.push(("clean reference run".into(), reference, tasks, None));
    let mut fold_secs = Vec::new();
    let mut before = 0usize;
    let modes = [
        Kill::Rank,
        Kill::Job,
        if random_between(0, 2) == 0 {
            Kill::Rank
        } else {
            Kill::Job
        },
    ];
    // The fold of a killed run's journals, timed before the resume that follows it.
    let mut fold: Option<f64> = None;
    for (k, how) in modes.into_iter().enumerate() {
        // A random moment within what is left to do (between a tenth and a half of it).
        let left = tasks - before;
        let at = random_between(left / 10, left / 2).max(1);
        let r = mpirun_measured(&a, &dest, Some((at, how)));
        let label = match &r.killed {
            Some((n, what)) => format!(
                "{} killed ({what} SIGKILLed at {n} records of this run)",
                if k == 0 {
                    "first run".to_string()
                } else {
                    format!("resume {k}")
                }
            ),
            None => format!("resume {k} (finished before its kill)"),
        };
        let prior_fold = fold.take();
        let f = fold_now(&dest);
        fold_secs.push(f);
        fold = Some(f);
        let done = store_len(&dest);
        rows.push((label, r, done.saturating_sub(before), prior_fold));
        before = done;
    }
    let last = mpirun_measured(&a, &dest, None);
    let done = store_len(&dest);
    rows.push((
        "resume 3 (finishes)".into(),
        last,
        done.saturating_sub(before),
        fold,
    ));
    let skipped = mpirun_measured(&a, &dest, None);
    let skip_run = edp::run::store::Store::at(&dest)
        .index()
        .ok()
        .and_then(|i| i.last_run);
    rows.push(("second run (all skipped)".into(), skipped, 0, None));
    let t = Instant::now();
    let v = Command::new(this_bin())
        .args(["verify", "--content"])
        .arg(&dest)
        .env("RUST_LOG", "error")
        .output()
        .expect("edp verify");
    let verify_wall = t.elapsed().as_secs_f64();
    let verified = String::from_utf8_lossy(&v.stdout).trim().to_string();
    let t = Instant::now();
    let (want, got) = (data_digests(&dest_ref), data_digests(&dest));
    let digest_wall = t.elapsed().as_secs_f64();
    let differ = want.iter().filter(|(k, d)| got.get(*k) != Some(*d)).count()
        + got.keys().filter(|k| !want.contains_key(*k)).count();
    let state = dir_bytes(&dest.join(".edp"));
    let state_ref = dir_bytes(&dest_ref.join(".edp"));
    println!();
    println!("LLC8, one model year of every native grouping's monthly and daily jobs, {tasks} tasks, mpirun -np 2, 1 thread per rank (measured):");
    println!("| run | tasks made | wall s | granules/s | peak RssAnon rank 0 MB | peak RssAnon rank 1 MB | restart fold s | exit |");
    println!("|---|---|---|---|---|---|---|---|");
    for (label, r, n, fold) in &rows {
        println!(
            "| {label} | {n} | {:.1} | {} | {:.0} | {:.0} | {} | {:?} |",
            r.wall,
            if *n > 0 {
                format!("{:.0}", *n as f64 / r.wall.max(1e-9))
            } else {
                "-".into()
            },
            mb(r.peak[0]),
            mb(r.peak[1]),
            fold.map(|f| format!("{f:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.code
        );
    }
    if let Some(r) = &skip_run {
        println!(
            "second run: {} tasks, {} skipped, {} done; tasks by rank {:?}",
            r.tasks, r.skipped, r.done, r.tasks_by_rank
        );
    }
    println!(
        "run state {:.2} MB ({:.0} bytes/granule; the clean reference's {:.0} bytes/granule); \
         verify --content {verify_wall:.1} s: {verified} (exit {:?})",
        mb(state),
        state as f64 / tasks.max(1) as f64,
        state_ref as f64 / tasks.max(1) as f64,
        v.status.code()
    );
    println!(
        "data against the clean reference run ({} granules each, every variable's values, \
         types, shapes and attributes; {digest_wall:.1} s): {}",
        want.len(),
        if differ == 0 && want.len() == tasks {
            "identical".to_string()
        } else {
            format!("{differ} granule(s) differ or are missing")
        }
    );
    // Projection: per-granule figures measured above, times the release's granules.
    let reference = &rows[0].1;
    let per_granule_state = state as f64 / tasks.max(1) as f64;
    let rank0_per_task = reference.peak[0] as f64 / tasks.max(1) as f64;
    let rate = tasks as f64 / reference.wall.max(1e-9);
    println!();
    println!("Projection (not measured): the per-granule figures of the clean reference run above times the release's granules; linear in tasks.");
    println!("| release | granules | run state (projected) | rank-0 peak RssAnon, upper bound (projected) | wall at this rate, 2 ranks (projected) |");
    println!("|---|---|---|---|---|");
    for (release, granules) in [("V4r4", 371_182.0f64), ("V4r5 (assumed ~10x)", 3_711_820.0)] {
        println!(
            "| {release} | {granules:.0} | {:.0} MB | {:.0} MB | {:.1} h |",
            per_granule_state * granules / 1e6,
            rank0_per_task * granules / 1e6,
            granules / rate / 3600.0
        );
    }
    println!(
        "(measured per granule: {per_granule_state:.0} B of run state, {:.0} B of rank-0 peak RssAnon \
         (all of it counted as per task: an upper bound; part (1) measures rank 0 at 371,182 tasks), \
         {rate:.0} granules/s at LLC8 (the control plane and LLC8-sized data: LLC90 granules cost more))",
        rank0_per_task
    );
    assert_eq!(fold_secs.len(), 3);
}

/// The fold a restart does first (journals of the killed run into the record store),
/// done and timed here: s.
fn fold_now(dest: &Path) -> f64 {
    let t = Instant::now();
    edp::run::destination::Destination::local(dest)
        .consolidate()
        .expect("fold the journals");
    t.elapsed().as_secs_f64()
}
