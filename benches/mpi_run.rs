//! Benchmark of `edp run` over MPI ranks: wall time, parallel efficiency at 1 and 2
//! ranks, and load imbalance (slowest rank's busy time / mean), on a mixed task list of
//! 2D and 3D groupings, native and (when the build has lat-lon output) lat-lon.
//!
//! `cargo bench --bench mpi_run`; EDP_BENCH_N (tile size, default 90), EDP_BENCH_MONTHS
//! (default 3) and EDP_BENCH_DIR (keep the data there) tune it. Needs mpirun (OpenMPI);
//! as root it sets OMPI_ALLOW_RUN_AS_ROOT{,_CONFIRM} for the runs it starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use edp::metadata::{MetadataSet, Product};
use edp::run::journal::Status;
use edp::run::manifest::Manifest;
use edp::synth::{self, SynthConfig};
use edp::tasks::{self, Locations, Task};
use edp::time::{DailyDate, Frequency};

const EDP: &str = env!("CARGO_BIN_EXE_edp");
/// Two 2D groupings (SSH: 4 fields, stress: 4) and two 3D (T/S: 2, velocity: 3).
const GROUPINGS: &[&str] = &[
    "SEA_SURFACE_HEIGHT",
    "OCEAN_AND_ICE_SURFACE_STRESS",
    "OCEAN_TEMPERATURE_SALINITY",
    "OCEAN_VELOCITY",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn tasks_for(
    m: &MetadataSet,
    product: Product,
    steps: &[u64],
    source: &str,
    loc: &Locations,
) -> Vec<Task> {
    let mut out = Vec::new();
    for g in GROUPINGS {
        let Some(g) = m.grouping_by_filename(product, g) else {
            continue;
        };
        out.extend(tasks::tasks_for_steps(
            g,
            Frequency::AvgMon,
            steps,
            source,
            &m.release,
            DailyDate::default(),
            loc,
        ));
    }
    out
}

struct Result {
    label: String,
    ranks: usize,
    wall: f64,
    run: f64,
    done: usize,
    failed: usize,
    imbalance: f64,
    busy: Vec<f64>,
}

fn run(np: usize, threads: usize, task_file: &Path, dest: &Path) -> Result {
    let _ = std::fs::remove_dir_all(dest);
    let t = Instant::now();
    let status = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &np.to_string(), EDP])
        .args(["run", "--log-level", "warn", "--progress", "0", "--threads"])
        .arg(threads.to_string())
        .arg("--tasks")
        .arg(task_file)
        .arg("--dest")
        .arg(dest)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mpirun (OpenMPI) must be on PATH: scripts/setup.sh");
    let wall = t.elapsed().as_secs_f64();
    let m = Manifest::read(&dest.join("edp-manifest.json")).expect("manifest");
    let r = m.last_run.clone().expect("last run");
    if !status.success() {
        for g in m
            .granules
            .iter()
            .filter(|g| g.status == Status::Failed)
            .take(3)
        {
            eprintln!(
                "  failed: {}: {}",
                g.granule,
                g.error.as_deref().unwrap_or("")
            );
        }
    }
    Result {
        label: format!("{np} rank(s) x {threads} thread(s)"),
        ranks: np,
        wall,
        run: r.seconds,
        done: r.done,
        failed: r.failed,
        imbalance: r.imbalance,
        busy: r.busy_seconds,
    }
}

/// Prints the measured seconds per kind of task next to the cost model's estimate
/// (per unit of estimate), from the one-rank run's manifest.
fn calibrate(r: Result, list: &[Task], dest: &Path) -> Result {
    let m = Manifest::read(&dest.join("edp-manifest.json")).expect("manifest");
    let mut kinds: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for t in list {
        let Some(rec) = m
            .granules
            .iter()
            .find(|g| t.granule.ends_with(&g.granule) && g.status == Status::Done)
        else {
            continue;
        };
        let product = if t.granule.contains("_latlon_") {
            "lat-lon"
        } else {
            "native"
        };
        let kind = format!(
            "{product} {} {} var(s)",
            t.dynamic_metadata.dimension,
            t.variables.len()
        );
        let e = kinds.entry(kind).or_default();
        e.0 += 1;
        e.1 += rec.seconds;
        e.2 += edp::run::cost::estimate(t);
    }
    println!("\ncost model check (1 rank x 1 thread):");
    println!(
        "{:<28} {:>5} {:>10} {:>12} {:>14}",
        "task kind", "n", "mean s", "mean est MB", "s per est GB"
    );
    for (k, (n, s, c)) in &kinds {
        println!(
            "{:<28} {:>5} {:>10.3} {:>12.1} {:>14.2}",
            k,
            n,
            s / *n as f64,
            c / *n as f64 / 1e6,
            s / c * 1e9
        );
    }
    r
}

/// CPU control: how many cores' worth of compute this process gets right now. The same
/// fixed work (sha256 of 256 MB) on 1 thread, then on 2 threads at once; 2 × T1 / T2 is
/// 2.0 on two idle cores and lower when other work (or a CPU quota) takes a share.
fn effective_cores() -> f64 {
    use sha2::{Digest, Sha256};
    let work = || {
        let buf = vec![7u8; 1 << 20];
        let mut h = Sha256::new();
        for _ in 0..256 {
            h.update(&buf);
        }
        h.finalize()
    };
    let t = Instant::now();
    std::hint::black_box(work());
    let t1 = t.elapsed().as_secs_f64();
    let t = Instant::now();
    std::thread::scope(|s| {
        let a = s.spawn(work);
        let b = s.spawn(work);
        std::hint::black_box((a.join().is_ok(), b.join().is_ok()));
    });
    let t2 = t.elapsed().as_secs_f64();
    2.0 * t1 / t2
}

/// The machine's 1-minute load average: other work on the cores skews every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let cores_before = effective_cores();
    println!(
        "{} core(s), load average {} at start; CPU control: {cores_before:.2} cores' worth available",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load()
    );
    let n = env_usize("EDP_BENCH_N", 90);
    let months = env_usize("EDP_BENCH_MONTHS", 3);
    let keep = std::env::var_os("EDP_BENCH_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("bench dir");

    let t = Instant::now();
    let cfg = SynthConfig {
        n,
        months,
        ..SynthConfig::default()
    };
    let input = root.join("input");
    let report = synth::generate(&cfg, &input).expect("synth");
    let grid = input.join("grid");
    println!(
        "synthesised LLC{n} x {} levels, {months} month(s) in {:.1} s",
        cfg.nz,
        t.elapsed().as_secs_f64()
    );

    // Lat-lon needs mapping factors; a build without `edp factors` runs native only.
    let factors = root.join("factors.edpf");
    let have_latlon = Command::new(EDP)
        .args(["factors", "--log-level", "warn", "--grid"])
        .arg(&grid)
        .arg("--out")
        .arg(&factors)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);

    let m = MetadataSet::embedded().expect("metadata");
    let out = root.join("out");
    let loc = Locations {
        dest_root: out.to_string_lossy().into_owned(),
        grid: Some(grid.to_string_lossy().into_owned()),
        factors: have_latlon.then(|| factors.to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let source = input.join(&cfg.release).to_string_lossy().into_owned();
    let mut list = tasks_for(&m, Product::Native, &report.monthly_steps, &source, &loc);
    if have_latlon {
        list.extend(tasks_for(
            &m,
            Product::Latlon,
            &report.monthly_steps,
            &source,
            &loc,
        ));
    }
    let task_file = root.join("tasks.json");
    tasks::write_task_list(&task_file, &list).expect("task list");
    println!(
        "{} tasks: 2D and 3D, native{}",
        list.len(),
        if have_latlon {
            " and lat-lon"
        } else {
            " only (no `edp factors` in this build)"
        }
    );

    let results = [
        calibrate(run(1, 1, &task_file, &out), &list, &out),
        run(2, 1, &task_file, &out),
        run(1, 2, &task_file, &out),
    ];
    let base = results[0].run;
    println!(
        "\n{:<24} {:>8} {:>8} {:>8} {:>10} {:>10}  busy s by rank",
        "configuration", "wall s", "run s", "speedup", "efficiency", "imbalance"
    );
    for r in &results {
        let speedup = base / r.run;
        let workers = if r.label.contains("x 2") { 2 } else { r.ranks };
        let busy: Vec<String> = r.busy.iter().map(|b| format!("{b:.2}")).collect();
        println!(
            "{:<24} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>10.3}  [{}]{}",
            r.label,
            r.wall,
            r.run,
            speedup,
            speedup / workers as f64,
            r.imbalance,
            busy.join(", "),
            if r.failed > 0 {
                format!("  ({} done, {} FAILED)", r.done, r.failed)
            } else {
                String::new()
            }
        );
    }
    let cores_after = effective_cores();
    println!(
        "load average {} at the end; CPU control: {cores_after:.2} cores' worth available",
        load()
    );
    let avail = 0.5 * (cores_before + cores_after);
    println!(
        "2 ranks: speed-up {:.2} with {avail:.2} cores' worth available -> efficiency {:.2} of the available",
        base / results[1].run,
        base / results[1].run / avail.max(1.0)
    );
    println!(
        "\nwall s includes mpirun start-up; run s is edp's own (manifest); efficiency = \
         T(1 rank x 1 thread) / (workers x T); imbalance = slowest rank's busy time / mean"
    );
}
