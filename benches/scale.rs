//! Benchmark of large granules: one native 2D granule (SSH grouping, 4 fields) and one 3D
//! granule (OCEAN_VELOCITY, 3 fields) written by 1, 2 and 3 ranks per granule through
//! `edp run --ranks-per-granule G` under mpirun, by each group writer of the build
//! (`--group-writer gather`, and `collective` in the parallel-HDF5 build), in the same
//! run on the same data. Prints per configuration the run's wall time, the granule's own
//! time (from the manifest), and the peak anonymous (RssAnon) and file-backed (RssFile:
//! memory-mapped inputs) memory of every rank (largest first), sampled every 20 ms from
//! /proc, with the load average at its start; and checks that every multi-rank granule
//! holds the same values as the one-rank granule (the one-rank run is the reference of
//! each row).
//!
//! The 2D granule is also written twice by one process ("2D, next granule"): the
//! grid's coordinates are compressed once per grid per process, so the second granule
//! shows what every granule after the first costs; beside it, its compression floor
//! (the granule's four data fields read back, cut into the same chunks and shuffled +
//! deflated at the same level on one thread, in the same run).
//!
//! Both group writers: `scripts/cargo-par bench --bench scale` (the serial build
//! measures `gather` only). EDP_SCALE_WRITERS: the group writers (default: the build's).
//! EDP_SCALE_DATA: an `edp synth` output to use (e.g. `edp synth --n 1080 --levels 50
//! --months 1 --out /work/llc1080`); default: an LLC90 set synthesised in a temporary
//! directory. EDP_SCALE_RANKS: the group sizes (default `1,2,3`); EDP_SCALE_THREADS:
//! threads per rank (default 1); EDP_SCALE_ONLY=2D or 3D: those rows only. Granules are written under EDP_SCALE_OUT (default: a
//! temporary directory) and removed after each row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edp::metadata::{MetadataSet, Product};
use edp::ncio::compress::ChunkCodec;
use edp::ncio::{DType, NcReader};
use edp::run::manifest::Manifest;
use edp::synth::{self, SynthConfig};
use edp::tasks::{self, Locations, Task};
use edp::time::{DailyDate, Frequency};
use sha2::{Digest, Sha256};

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// Peak (RssAnon, RssFile) in bytes per process running the edp binary, sampled from
/// /proc until stopped.
struct ProcSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<BTreeMap<u32, (u64, u64)>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

fn status_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

impl ProcSampler {
    fn start() -> ProcSampler {
        let exe = std::fs::canonicalize(EDP).unwrap_or_else(|_| PathBuf::from(EDP));
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peaks));
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                        continue;
                    };
                    if std::fs::read_link(e.path().join("exe")).ok().as_deref()
                        != Some(exe.as_path())
                    {
                        continue;
                    }
                    let Ok(st) = std::fs::read_to_string(e.path().join("status")) else {
                        continue;
                    };
                    let (a, f) = (status_kb(&st, "RssAnon:"), status_kb(&st, "RssFile:"));
                    let mut m = p.lock().unwrap();
                    let peak = m.entry(pid).or_insert((0, 0));
                    peak.0 = peak.0.max(a);
                    peak.1 = peak.1.max(f);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ProcSampler {
            stop,
            peaks,
            handle: Some(handle),
        }
    }

    /// Per-process peaks (RssAnon, RssFile), largest RssAnon first.
    fn finish(mut self) -> Vec<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let mut peaks: Vec<(u64, u64)> = self.peaks.lock().unwrap().values().copied().collect();
        peaks.sort_by(|a, b| b.cmp(a));
        peaks
    }
}

/// sha256 of each variable's values (as stored bits), by name.
fn digests(path: &Path) -> BTreeMap<String, String> {
    let r = NcReader::open(path).expect("open granule");
    let mut out = BTreeMap::new();
    for v in r.var_names() {
        let mut h = Sha256::new();
        match r.var_type(&v).unwrap() {
            DType::F32 => h.update(bytemuck::cast_slice::<f32, u8>(&r.read_f32(&v).unwrap())),
            DType::F64 => h.update(bytemuck::cast_slice::<f64, u8>(&r.read_f64(&v).unwrap())),
            DType::I32 => h.update(bytemuck::cast_slice::<i32, u8>(&r.read_i32(&v).unwrap())),
            DType::I8 => h.update(bytemuck::cast_slice::<i8, u8>(&r.read_i8(&v).unwrap())),
        }
        out.insert(v, format!("{:x}", h.finalize()));
    }
    out
}

/// Model steps present in a synth output (those of its first monthly field: `edp synth`
/// writes every field at the same steps, and `--variables` may leave SSH out).
fn steps(source: &Path) -> Vec<u64> {
    let monthly = source.join("diags_monthly");
    let dir = std::fs::read_dir(&monthly)
        .unwrap_or_else(|e| panic!("{}: {e}", monthly.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .min()
        .unwrap_or_else(|| panic!("no field under {}", monthly.display()));
    let mut s: Vec<u64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".data")?.rsplit('.').next()?.parse().ok()
        })
        .collect();
    s.sort();
    s
}

fn task(m: &MetadataSet, grouping: &str, data: &Path, dest: &Path) -> Task {
    let g = m
        .grouping_by_filename(Product::Native, grouping)
        .expect("grouping");
    let source = data.join(&m.release.version);
    let loc = Locations {
        dest_root: dest.to_string_lossy().into_owned(),
        grid: Some(data.join("grid").to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let steps = steps(&source);
    tasks::tasks_for_steps(
        g,
        Frequency::AvgMon,
        &steps[..1],
        &source.to_string_lossy(),
        &m.release,
        DailyDate::default(),
        &loc,
    )
    .into_iter()
    .next()
    .expect("a task")
}

struct Row {
    seconds: f64,
    wall: f64,
    /// Per rank (RssAnon, RssFile) peaks, largest RssAnon first.
    peaks: Vec<(u64, u64)>,
    bytes: u64,
    /// The 1-minute load average when the run started.
    load: String,
}

impl Row {
    /// One table row: `label`, ranks, writer, the figures, then `last` before the load.
    fn print(&self, label: &str, ranks: usize, writer: &str, last: &str) {
        let mb = |f: fn(&(u64, u64)) -> u64| {
            self.peaks
                .iter()
                .map(|p| format!("{:.0}", f(p) as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "| {label} | {ranks} | {writer} | {:.2} | {:.2} | {} | {} | {:.0} | {last} | {} |",
            self.seconds,
            self.wall,
            mb(|p| p.0),
            mb(|p| p.1),
            self.bytes as f64 / 1e6,
            self.load
        );
    }
}

/// The 1-minute load average now.
fn load_now() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Runs the granules `tasks` (all the same size) with groups of `ranks` writing by
/// `writer`; the row is the last granule's.
fn run(ranks: usize, writer: &str, threads: usize, tasks: &[Task], dest: &Path) -> (Row, PathBuf) {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).unwrap();
    let list = dest.join("tasks.json");
    tasks::write_task_list(&list, tasks).unwrap();
    let mut c = if ranks > 1 {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-np", &ranks.to_string(), EDP]);
        c
    } else {
        Command::new(EDP)
    };
    c.args(["run", "--log-level", "warn", "--progress", "0", "--threads"])
        .arg(threads.to_string())
        .arg("--tasks")
        .arg(&list)
        .arg("--dest")
        .arg(dest)
        .args(["--ranks-per-granule", &ranks.to_string()])
        .args(["--group-writer", writer])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::null());
    let load = load_now();
    let sampler = ProcSampler::start();
    let t = Instant::now();
    let status = c.status().expect("run edp / mpirun");
    let wall = t.elapsed().as_secs_f64();
    let peaks = sampler.finish();
    assert!(status.success(), "edp run failed at {ranks} rank(s)");
    let m = Manifest::read(&dest.join("edp-manifest.json")).expect("manifest");
    let last = Path::new(&tasks.last().expect("a task").granule)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rec = m
        .granules
        .iter()
        .find(|r| r.granule.ends_with(&last))
        .expect("a record");
    (
        Row {
            seconds: rec.seconds,
            wall,
            peaks,
            bytes: rec.size.unwrap_or(0),
            load,
        },
        dest.join(&rec.granule),
    )
}

fn main() {
    let ranks: Vec<usize> = std::env::var("EDP_SCALE_RANKS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let writers: Vec<String> = std::env::var("EDP_SCALE_WRITERS")
        .unwrap_or_else(|_| {
            if cfg!(feature = "parallel-hdf5") {
                "gather,collective".into()
            } else {
                "gather".into()
            }
        })
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|w| w == "gather" || (w == "collective" && cfg!(feature = "parallel-hdf5")))
        .collect();
    let threads: usize = std::env::var("EDP_SCALE_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = match std::env::var_os("EDP_SCALE_DATA") {
        Some(d) => PathBuf::from(d),
        None => {
            let cfg = SynthConfig {
                n: 90,
                nz: 50,
                months: 1,
                variables: Some(
                    [
                        "SSH", "SSHIBC", "SSHNOIBC", "ETAN", "UVEL", "VVEL", "WVELMASS",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ),
                ..SynthConfig::default()
            };
            synth::generate(&cfg, tmp.path()).expect("synth");
            tmp.path().to_path_buf()
        }
    };
    let out = std::env::var_os("EDP_SCALE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("out"));
    let m = MetadataSet::embedded().unwrap();
    println!(
        "edp {} — data {}; {threads} thread(s) per rank; load {}",
        if cfg!(feature = "parallel-hdf5") {
            "parallel-hdf5 build"
        } else {
            "serial build"
        },
        data.display(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{}",
        Command::new("uptime")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    println!(
        "| granule | ranks | group writer | granule s | run wall s | peak RssAnon MB per rank | peak RssFile MB per rank | size MB | values = 1 rank | load (1 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let only = std::env::var("EDP_SCALE_ONLY").unwrap_or_default();
    // 2D, next granule: the same task again under another name, in the same process.
    if "2D".starts_with(&only) {
        let dest = out.join("warm");
        let first = task(&m, "SEA_SURFACE_HEIGHT", &data, &dest);
        let mut next = first.clone();
        next.granule = next.granule.replace("_1992-01_", "_1992-02_");
        assert_ne!(
            next.granule, first.granule,
            "the first month is January 1992"
        );
        let (row, granule) = run(1, "gather", threads, &[first, next], &dest);
        let floor = compression_floor(&granule, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
        row.print(
            "2D SSH (4 fields), next granule",
            1,
            "—",
            &format!("floor {floor:.2} s"),
        );
        let _ = std::fs::remove_dir_all(&dest);
    }
    for (label, grouping) in [
        ("2D SSH (4 fields)", "SEA_SURFACE_HEIGHT"),
        ("3D velocity (3 fields)", "OCEAN_VELOCITY"),
    ]
    .into_iter()
    .filter(|(l, _)| l.starts_with(&only))
    {
        let mut reference: Option<BTreeMap<String, String>> = None;
        // One rank has no group writer; every larger group is run by each.
        let runs = ranks.iter().flat_map(|&g| {
            let by: Vec<&str> = if g == 1 {
                vec!["—"]
            } else {
                writers.iter().map(String::as_str).collect()
            };
            by.into_iter().map(move |w| (g, w))
        });
        for (g, writer) in runs {
            let dest = out.join(format!("g{g}"));
            let t = task(&m, grouping, &data, &dest);
            let as_writer = if g == 1 { "gather" } else { writer };
            let (row, granule) = run(g, as_writer, threads, std::slice::from_ref(&t), &dest);
            let same = if g == 1 {
                reference = Some(digests(&granule));
                "reference".to_string()
            } else {
                match &reference {
                    Some(r) => (digests(&granule) == *r).to_string(),
                    None => "no 1-rank run".to_string(),
                }
            };
            row.print(label, g, writer, &same);
            let _ = std::fs::remove_dir_all(&dest);
        }
    }
}

/// Seconds to shuffle + deflate (level 5, one thread) the chunks of the variables
/// `names` of a written granule: the data part of its work that no writer avoids.
fn compression_floor(granule: &Path, names: &[&str]) -> f64 {
    let r = NcReader::open(granule).expect("open granule");
    let codec = ChunkCodec {
        level: 5,
        shuffle: true,
        elem_size: 4,
    };
    let mut seconds = 0.0;
    for name in names {
        let values = r.read_f32(name).expect("read a data variable");
        let chunks: usize = r
            .var_storage(name)
            .ok()
            .and_then(|s| s.chunking)
            .map(|c| c.iter().product())
            .unwrap_or(values.len());
        let t = Instant::now();
        for c in values.chunks(chunks) {
            std::hint::black_box(codec.compress(bytemuck::cast_slice(c)).expect("compress"));
        }
        seconds += t.elapsed().as_secs_f64();
    }
    seconds
}
