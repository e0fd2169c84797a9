//! Benchmark of whole granules as `edp run` makes them, against the compression floor.
//!
//! Inputs are MDS files on disk written by `edp synth` (LLC90, 50 levels, a few months),
//! mapping factors by `edp factors`, task lists by `edp tasks`. For each granule kind
//! (2D and 3D, native and lat-lon, scalar and vector) and thread count (1 and 2) it runs
//! the `edp` binary itself (`edp run --tasks … --threads T`, one rank, one granule per
//! month) and reads each granule's `seconds` from the run's record store: what a run
//! records, commit (fsync, rename, checksum read-back) included. Beside it:
//!
//! - **floor**: the data-variable chunks of the very granules the run made, read back,
//!   then shuffled and deflated in memory with the writer's compressor and the granule's
//!   own deflate level on a pool of T threads: the fastest deflate we have for the same
//!   bytes on the same threads (libdeflate; its version and build flags are printed);
//! - **in-process**: the same tasks made in this process through the run's own
//!   pipeline (`edp::run::produce_pipelined`, commits in the background as in a run),
//!   timed from outside: the bench's own figure, which must agree with the run's.
//!
//! This machine's absolute speed varies about 2x, and drifts over minutes: so a kind is
//! measured in rounds, each a run, its floor and the in-process figure one right after
//! the other; a ratio (run/floor, in-process/run) is taken within a round, and the table
//! gives the median over rounds (with the lowest and highest round). Within a round,
//! medians over the granules (months); the first granule of a run also compresses the
//! shared coordinates.
//!
//! `cargo bench --bench granules`; EDP_BENCH_N (default 90), EDP_BENCH_MONTHS (granules
//! per kind, default 3), EDP_BENCH_2D_COPIES (a 2D kind makes each month's granule this
//! many times a run, into directories of their own, default 8: a run of three 2D
//! granules is mostly start-up), EDP_BENCH_ROUNDS (default 3), EDP_BENCH_THREADS
//! (default `1,2`), EDP_BENCH_ONLY (a part of the kind labels), EDP_BENCH_DIR keeps the
//! inputs and granules.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use edp::granule::{Context, Encoding};
use edp::grid::Grid;
use edp::metadata::MetadataSet;
use edp::ncio::compress::ChunkCodec;
use edp::ncio::NcReader;
use edp::run::store::Store;
use edp::run::{Producing, WriteOptions};
use edp::tasks::Task;

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// RssAnon of process `pid` in bytes (0 once it is gone).
fn rss_anon(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of process `pid` so far (all its threads, ended ones included), in seconds:
/// utime + stime of /proc/<pid>/stat, in USER_HZ ticks (100 a second on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses; utime and stime are
    // fields 14 and 15, so the 12th and 13th after it.
    let rest = s.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    let (u, k) = (
        f.next()?.parse::<f64>().ok()?,
        f.next()?.parse::<f64>().ok()?,
    );
    Some((u + k) / 100.0)
}

/// The machine's load averages (1, 5, 15 min).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut t: Vec<f64>) -> f64 {
    assert!(!t.is_empty(), "median of nothing");
    t.sort_by(f64::total_cmp);
    let n = t.len();
    if n % 2 == 1 {
        t[n / 2]
    } else {
        (t[n / 2 - 1] + t[n / 2]) / 2.0
    }
}

fn ms(s: f64) -> String {
    format!("{:.0}", s * 1e3)
}

/// Runs `edp` with `args`, MPI off; panics with its stderr if it fails. Returns the
/// wall time, the peak RssAnon of the process and its CPU time (both sampled every
/// 2 ms, so the CPU time misses at most its last 2 ms).
fn edp(args: &[&str]) -> (Duration, u64, f64) {
    let t = Instant::now();
    let child = Command::new(EDP)
        .args(args)
        .env("EDP_MPI", "off")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start edp");
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (Arc::clone(&peak), Arc::clone(&done), child.id());
        std::thread::spawn(move || {
            let mut cpu = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon(pid), Ordering::Relaxed);
                if let Some(c) = cpu_seconds(&pid.to_string()) {
                    cpu = cpu.max(c);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            cpu
        })
    };
    let out = child.wait_with_output().expect("wait for edp");
    done.store(true, Ordering::Relaxed);
    let cpu = sampler.join().unwrap_or(0.0);
    assert!(
        out.status.success(),
        "edp {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (t.elapsed(), peak.load(Ordering::Relaxed), cpu)
}

/// The data variables of a written granule, cut into their stored chunks (each chunk a
/// whole trailing block, as every granule kind here has), and the deflate level and
/// shuffle the granule records for them.
fn data_chunks(path: &Path, task: &Task) -> (Vec<Vec<u8>>, ChunkCodec) {
    let r = NcReader::open(path).expect("open granule");
    let mut chunks = Vec::new();
    let mut codec = None;
    for name in task.variables.keys() {
        let values = r.read_f32(name).expect("read data variable");
        let shape: Vec<usize> = r
            .var_dims(name)
            .expect("dims")
            .iter()
            .map(|d| r.dims().iter().find(|(n, _)| n == d).expect("dim").1)
            .collect();
        let storage = r.var_storage(name).expect("storage");
        let c = storage.chunking.expect("chunked");
        let lead = c.iter().take_while(|&&x| x == 1).count();
        assert_eq!(
            &c[lead..],
            &shape[lead..],
            "{name}: chunks {c:?} are not whole trailing blocks of {shape:?}"
        );
        let this = ChunkCodec {
            level: storage.deflate.expect("deflated"),
            shuffle: storage.shuffle,
            elem_size: 4,
        };
        assert_eq!(*codec.get_or_insert(this), this, "{name}: another codec");
        let len: usize = c.iter().product();
        chunks.extend(
            bytemuck::cast_slice::<f32, u8>(&values)
                .chunks(len * 4)
                .map(<[u8]>::to_vec),
        );
    }
    (chunks, codec.expect("a data variable"))
}

/// Seconds to shuffle and deflate `chunks` on `pool` (median of three), and the CPU
/// seconds of this process per time (mean of the three).
fn floor(pool: &rayon::ThreadPool, chunks: &[Vec<u8>], codec: ChunkCodec) -> (f64, f64) {
    let cpu = cpu_seconds("self").unwrap_or(0.0);
    let times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let total: usize = pool.install(|| {
                chunks
                    .par_iter()
                    .map(|c| codec.compress(c).expect("compress").len())
                    .sum()
            });
            assert!(total > 0);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let cpu = (cpu_seconds("self").unwrap_or(0.0) - cpu) / 3.0;
    (median(times), cpu)
}

/// The libdeflate in this benchmark (and in `edp`, the same crate): the version of the
/// `libdeflate-sys` crate in Cargo.lock (libdeflate 1.26 for 1.26.x) and the compiler
/// flags its C was built with, as the compiler recorded them in the debug information of
/// the `edp` binary (`DW_AT_producer`).
fn libdeflate_build() -> String {
    let lock = include_str!("../Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"libdeflate-sys\""))
        .and_then(|p| p.lines().find(|l| l.starts_with("version")))
        .map_or("?".to_string(), |l| {
            l.trim_start_matches("version = ").trim_matches('"').into()
        });
    let flags = std::fs::read(EDP).ok().and_then(|bin| {
        let needle = b"GNU C17 ";
        let at = bin.windows(needle.len()).position(|w| w == needle)?;
        let end = bin[at..].iter().position(|&b| b == 0)? + at;
        Some(String::from_utf8_lossy(&bin[at..end]).into_owned())
    });
    format!(
        "libdeflate-sys {version} (libdeflate C, built by cc); compiler: {}",
        flags.unwrap_or_else(|| "not recorded (no debug information)".into())
    )
}

/// One granule kind: label, jobs line (grouping id and product), 3D or not.
struct Kind {
    label: &'static str,
    job: &'static str,
    is_3d: bool,
}

const KINDS: [Kind; 6] = [
    Kind {
        label: "SSH native (2D)",
        job: "[0, 'native', 'AVG_MON', 'all']",
        is_3d: false,
    },
    Kind {
        label: "SSH lat-lon (2D)",
        job: "[0, 'latlon', 'AVG_MON', 'all']",
        is_3d: false,
    },
    Kind {
        label: "THETA/SALT native",
        job: "[15, 'native', 'AVG_MON', 'all']",
        is_3d: true,
    },
    Kind {
        label: "THETA/SALT lat-lon",
        job: "[9, 'latlon', 'AVG_MON', 'all']",
        is_3d: true,
    },
    Kind {
        label: "UVEL/VVEL/WVEL native",
        job: "[17, 'native', 'AVG_MON', 'all']",
        is_3d: true,
    },
    Kind {
        label: "EVEL/NVEL/WVEL lat-lon",
        job: "[11, 'latlon', 'AVG_MON', 'all']",
        is_3d: true,
    },
];

/// What one round measured for one kind at one thread count: per granule, in seconds.
struct Round {
    run: Vec<f64>,
    floor: Vec<f64>,
    in_process: Vec<f64>,
}

/// What was measured for one kind at one thread count, over all rounds.
struct Row {
    rounds: Vec<Round>,
    size: u64,
    peak: u64,
    /// CPU seconds of the whole `edp run` processes (start-up included) and of the
    /// floors, all granules of all rounds together.
    run_cpu: f64,
    floor_cpu: f64,
}

impl Row {
    /// `f` of each round's medians (run, floor, in-process), a value per round.
    fn per_round(&self, f: impl Fn(f64, f64, f64) -> f64) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|r| {
                f(
                    median(r.run.clone()),
                    median(r.floor.clone()),
                    median(r.in_process.clone()),
                )
            })
            .collect()
    }

    /// The median over rounds of [`Row::per_round`]: a ratio is taken within a round,
    /// whose parts saw the same machine.
    fn median_of_rounds(&self, f: impl Fn(f64, f64, f64) -> f64) -> f64 {
        median(self.per_round(f))
    }

    /// The lowest and highest of [`Row::per_round`].
    fn spread(&self, f: impl Fn(f64, f64, f64) -> f64) -> (f64, f64) {
        self.per_round(f)
            .into_iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    }
}

/// The same tasks made in this process through the run's pipeline, into `dest`; the
/// time of each from its start to the end of its write, plus the wait for the previous
/// one's commit (as the run records it: the commit overlaps the next granule).
fn in_process(tasks: &[Task], ctx: &Context, pool: &rayon::ThreadPool) -> Vec<f64> {
    let storage = edp::storage::Storage::new(&Default::default());
    let options = WriteOptions::default();
    let mut previous: Option<Producing> = None;
    let mut times = Vec::new();
    for task in tasks {
        let t = Instant::now();
        let p = pool
            .install(|| edp::run::produce_pipelined(task, ctx, options, &storage))
            .expect("granule");
        if let Some(prev) = previous.replace(p) {
            prev.finish().expect("commit");
        }
        times.push(t.elapsed().as_secs_f64());
    }
    if let Some(prev) = previous {
        prev.finish().expect("commit");
    }
    times
}

/// EDP_BENCH_2D_COPIES (default 8).
fn copies_2d() -> usize {
    std::env::var("EDP_BENCH_2D_COPIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .max(1)
}

/// A 2D kind's tasks made `EDP_BENCH_2D_COPIES` times (default 8), each copy into a
/// directory of its own under `dest`, and written back to `tasks_file`: a 2D granule
/// takes milliseconds, so a run of a few is mostly the process warming up (buffers,
/// mappings, the shared coordinates), where a release's run makes thousands.
fn repeated(tasks: Vec<Task>, dest: &Path, tasks_file: &Path) -> Vec<Task> {
    let all: Vec<Task> = (0..copies_2d())
        .flat_map(|c| {
            tasks.iter().map(move |t| {
                let rel = Path::new(&t.granule)
                    .strip_prefix(dest)
                    .expect("granule under dest");
                let mut t = t.clone();
                t.granule = dest
                    .join(format!("copy{c}"))
                    .join(rel)
                    .to_string_lossy()
                    .into_owned();
                t
            })
        })
        .collect();
    std::fs::write(tasks_file, serde_json::to_vec(&all).expect("task list")).expect("tasks");
    all
}

#[allow(clippy::too_many_arguments)]
fn measure(
    kind: &Kind,
    threads: usize,
    dir: &Path,
    source: &Path,
    grid_dir: &Path,
    factors_file: &Path,
    ctx: &Context,
    rounds: usize,
) -> Row {
    let name = format!(
        "{}-t{threads}",
        kind.label.replace(['/', ' ', '(', ')'], "")
    );
    let dest = dir.join("run").join(&name);
    let _ = std::fs::remove_dir_all(&dest);
    let jobs = dir.join(format!("{name}.jobs"));
    std::fs::write(&jobs, format!("{}\n", kind.job)).expect("jobs file");
    let tasks_file = dir.join(format!("{name}.json"));
    let s = |p: &Path| p.to_string_lossy().into_owned();
    edp(&[
        "tasks",
        "--jobs",
        &s(&jobs),
        "--source",
        &s(source),
        "--dest",
        &s(&dest),
        "--grid",
        &s(grid_dir),
        "--factors",
        &s(factors_file),
        "-o",
        &s(&tasks_file),
    ]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let tasks: Vec<Task> =
        serde_json::from_slice(&std::fs::read(&tasks_file).expect("tasks")).expect("task list");
    let tasks = match kind.is_3d {
        true => tasks,
        false => repeated(tasks, &dest, &tasks_file),
    };
    let mut row = Row {
        rounds: Vec::new(),
        size: 0,
        peak: 0,
        run_cpu: 0.0,
        floor_cpu: 0.0,
    };
    // Rounds of (run, floor, in-process), each part right after the other: the machine's
    // speed drifts over minutes, so each round's parts are compared with one another.
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(&dest);
        let (_, peak, run_cpu) = edp(&[
            "run",
            "--tasks",
            &s(&tasks_file),
            "--threads",
            &threads.to_string(),
        ]);
        row.peak = row.peak.max(peak);
        row.run_cpu += run_cpu;
        let mut records = Vec::new();
        Store::at(&dest)
            .for_each(|r| records.push(r))
            .expect("record store");
        assert_eq!(records.len(), tasks.len(), "{name}: a record per task");
        let mut round = Round {
            run: Vec::new(),
            floor: Vec::new(),
            in_process: Vec::new(),
        };
        for r in &records {
            assert_eq!(r.status, edp::run::journal::Status::Done, "{}", r.granule);
            let task = &tasks[r.task];
            let (chunks, codec) = data_chunks(Path::new(&task.granule), task);
            round.run.push(r.seconds);
            let (secs, cpu) = floor(&pool, &chunks, codec);
            round.floor.push(secs);
            row.floor_cpu += cpu;
            row.size = row.size.max(r.size.unwrap_or(0));
        }
        // The same tasks in this process, into a destination of their own.
        let own = dir.join("in-process").join(&name);
        let _ = std::fs::remove_dir_all(&own);
        let moved: Vec<Task> = tasks
            .iter()
            .map(|t| {
                let mut t = t.clone();
                let rel = Path::new(&t.granule)
                    .strip_prefix(&dest)
                    .expect("granule under dest");
                t.granule = s(&own.join(rel));
                t
            })
            .collect();
        round.in_process = in_process(&moved, ctx, &pool);
        row.rounds.push(round);
    }
    row
}

fn main() {
    let n: usize = std::env::var("EDP_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let months: usize = std::env::var("EDP_BENCH_MONTHS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let thread_counts: Vec<usize> = std::env::var("EDP_BENCH_THREADS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 2]);
    let rounds: usize = std::env::var("EDP_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("EDP_BENCH_ONLY").unwrap_or_default();
    let keep = std::env::var_os("EDP_BENCH_DIR");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench directory");
    let input = dir.join("input");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let (took, _, _) = edp(&[
        "synth",
        "-o",
        &s(&input),
        "--n",
        &n.to_string(),
        "--months",
        &months.to_string(),
        "--variables",
        "SSH,SSHIBC,SSHNOIBC,ETAN,THETA,SALT,UVEL,VVEL,WVELMASS",
    ]);
    let grid_dir = input.join("grid");
    let source = input.join("V4r4");
    let factors_file = dir.join("factors.bin");
    edp(&["factors", "--grid", &s(&grid_dir), "-o", &s(&factors_file)]);
    println!(
        "edp synth LLC{n} x 50 levels, {months} month(s), in {:.1} s; {} cores; load average {}",
        took.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load()
    );
    println!("{}", libdeflate_build());

    // The in-process pipeline's context, as a run's holds it.
    let metadata = Arc::new(MetadataSet::embedded().expect("metadata"));
    let grid = Arc::new(Grid::open(&grid_dir).expect("grid"));
    let factors = edp::regrid::store::FactorStore::new(Default::default())
        .get(
            &grid,
            edp::regrid::TargetGrid::ecco_half_degree(),
            Some(edp::regrid::store::Named {
                loc: &s(&factors_file),
                file: Some(&factors_file),
            }),
            &dir.join("edp_factors"),
        )
        .expect("mapping factors");

    println!(
        "run = `edp run --threads T` (1 rank), per-granule `seconds` of its record store; floor = \
         the data chunks of the same granules, shuffle + deflate (the granules' level) in memory \
         on T threads; in-process = the same tasks through edp::run::produce_pipelined in the \
         bench; {rounds} round(s) of (run, floor, in-process) one after another, each over \
         {months} granule(s) a 3D kind and {} a 2D kind (EDP_BENCH_2D_COPIES copies of each \
         month's): times are the median over rounds of each round's median \
         (ms), ratios the median over rounds of each round's ratio (its lowest and highest in \
         parentheses); CPU run / floor = CPU time of the whole `edp run` processes (all \
         threads, start-up included) over that of the floors, which the machine's load does \
         not stretch as it does wall times",
        months * copies_2d()
    );
    println!(
        "| granule (LLC{n}) | threads | run | floor | run / floor | CPU run / floor | in-process | in-process / run | size MB | run peak RssAnon MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for kind in KINDS.iter().filter(|k| k.label.contains(only.as_str())) {
        for &threads in &thread_counts {
            let ctx = Context {
                metadata: Arc::clone(&metadata),
                grid: Arc::clone(&grid),
                encoding: Encoding::default(),
                nonfinite: Default::default(),
                factors: Some(Arc::clone(&factors)),
                coords: Default::default(),
            };
            let row = measure(
                kind,
                threads,
                &dir,
                &source,
                &grid_dir,
                &factors_file,
                &ctx,
                rounds,
            );
            let run = row.median_of_rounds(|r, _, _| r);
            let fl = row.median_of_rounds(|_, f, _| f);
            let inp = row.median_of_rounds(|_, _, i| i);
            let ratio = row.median_of_rounds(|r, f, _| r / f);
            let (lo, hi) = row.spread(|r, f, _| r / f);
            let agreement = row.median_of_rounds(|r, _, i| i / r);
            println!(
                "| {} | {threads} | {} | {} | {:.2} ({:.2}-{:.2}) | {:.2} | {} | {:.2} | {:.1} | {:.0} |",
                kind.label,
                ms(run),
                ms(fl),
                ratio,
                lo,
                hi,
                row.run_cpu / row.floor_cpu.max(1e-9),
                ms(inp),
                agreement,
                row.size as f64 / 1e6,
                row.peak as f64 / 1e6
            );
            let goal = if kind.is_3d {
                (ratio <= 1.25, format!("run/floor {ratio:.2} <= 1.25"))
            } else {
                (run <= 0.015, format!("run {} ms <= 15", ms(run)))
            };
            let agree = (agreement - 1.0).abs() <= 0.10;
            verdicts.push(format!(
                "{} at {threads} thread(s): {} {}; in-process vs run {:+.0}% {}",
                kind.label,
                goal.1,
                if goal.0 { "ok" } else { "NOT MET" },
                (agreement - 1.0) * 100.0,
                if agree { "ok" } else { "(over 10%)" }
            ));
        }
    }
    println!("\nload average at the end: {}", load());
    for v in verdicts {
        println!("{v}");
    }
}
