//! Benchmark of whole granules against the compression floor, on synthetic LLC inputs.
//!
//! For each granule kind (2D and 3D, native and lat-lon, scalar and vector) at 1 and 2
//! threads it prints wall time per granule (min and median over repeats) with the
//! default (direct) writer and with the netCDF-only writer, granules made one after
//! another as a run makes them (each one's fsync and rename overlap the next one's
//! work: the time of a granule is from its start to its own write's end plus the wait
//! for the previous one's commit), the output size, the peak
//! anonymous memory (RssAnon, sampled every millisecond; memory-mapped inputs are file
//! pages and not in it), and the floor: the granule's data-variable chunks, shuffled and
//! deflated in memory with the writer's compressor and level on the same number of
//! threads, then the ratio of granule time to floor. All in one run, on the same bytes.
//!
//! "Threads" are the rayon threads, the ones that read, regrid and compress (the floor's
//! and the granule's alike). Beside them a granule has, as in a run, the chunk writer's
//! thread (netCDF-C defines the file, HDF5 takes the finished chunks) and the committing
//! thread (fsync, rename, the checksum read-back), so a granule's process uses a little
//! more than its threads where the floor uses exactly them: the CPU column (mean CPU time
//! of the whole process per granule and per floor, all threads, from /proc/self/stat in
//! 10 ms ticks) shows how
//! much. The RssAnon sampler is a thread too (under 1% of a core).
//!
//! `cargo bench --bench granules`; EDP_BENCH_N=270 for LLC270 (default 90),
//! EDP_BENCH_REPEATS (3D repeats, default 5; 2D use 4×), EDP_BENCH_ONLY (a part of the
//! granule labels to run only those), EDP_BENCH_DIR keeps the inputs; for profiling,
//! EDP_BENCH_THREADS (e.g. `1`; default `1,2`) and EDP_BENCH_NETCDF=0 (no netCDF-only
//! column) narrow what runs.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use edp::granule::{Context, Encoding};
use edp::grid::Grid;
use edp::metadata::{MetadataSet, Product};
use edp::ncio::compress::ChunkCodec;
use edp::ncio::{NcReader, WriteMethod};
use edp::run::{Producing, WriteOptions};
use edp::synth::{self, SynthConfig};
use edp::tasks::{self, Locations, Task};
use edp::time::{DailyDate, Frequency};

/// Current RssAnon of this process in bytes.
fn rss_anon() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Samples RssAnon every millisecond on its own thread; `take` returns the peak since
/// the last call.
struct PeakSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakSampler {
    fn start() -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(rss_anon()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_anon(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        PeakSampler { peak, stop }
    }
    fn take(&self) -> u64 {
        self.peak.swap(rss_anon(), Ordering::Relaxed)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The machine's load averages (1, 5, 15 min), printed beside the figures: they are
/// relative to the floor measured in the same run, but a loaded machine spreads them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU time of this process so far (all its threads, ended ones included), in
/// seconds: utime + stime of /proc/self/stat, in USER_HZ ticks (100 a second on Linux).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses; utime and stime
            // are fields 14 and 15, so 12th and 13th after it.
            let rest = s.rsplit_once(')')?.1;
            let mut f = rest.split_whitespace().skip(11);
            let (u, k) = (
                f.next()?.parse::<f64>().ok()?,
                f.next()?.parse::<f64>().ok()?,
            );
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn ms(s: f64) -> String {
    format!("{:.0}", s * 1e3)
}

fn task_of(
    m: &MetadataSet,
    product: Product,
    grouping: &str,
    steps: &[u64],
    source: &str,
    dest: &Path,
    grid: &Path,
) -> Task {
    let g = m.grouping_by_filename(product, grouping).expect("grouping");
    let loc = Locations {
        dest_root: dest.to_string_lossy().into_owned(),
        grid: Some(grid.to_string_lossy().into_owned()),
        ..Locations::default()
    };
    tasks::tasks_for_steps(
        g,
        Frequency::AvgMon,
        &steps[..1],
        source,
        &m.release,
        DailyDate::default(),
        &loc,
    )
    .into_iter()
    .next()
    .expect("one task")
}

/// The data variables of a written granule, whole, and their chunk length (each chunk
/// a whole trailing block, as every granule kind here has, and one length for all):
/// one allocation per variable, which goes back to the system when dropped.
fn data_chunks(path: &Path, task: &Task) -> (Vec<Vec<f32>>, usize) {
    let r = NcReader::open(path).expect("open granule");
    let mut vars = Vec::new();
    let mut chunk_len = None;
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
        let len: usize = c.iter().product();
        assert_eq!(
            *chunk_len.get_or_insert(len),
            len,
            "{name}: another chunk size"
        );
        vars.push(values);
    }
    (vars, chunk_len.unwrap_or(1))
}

fn main() {
    // RUST_LOG=edp::ncio=debug shows where a granule's write time goes.
    let _ = env_logger::try_init();
    let n: usize = std::env::var("EDP_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let repeats: usize = std::env::var("EDP_BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let keep = std::env::var_os("EDP_BENCH_DIR");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let cfg = SynthConfig {
        n,
        nz: 50,
        months: 1,
        variables: Some(
            [
                "SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT", "UVEL", "VVEL", "WVELMASS",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let report = synth::generate(&cfg, &dir).expect("synth");
    println!(
        "synthesised LLC{n} x 50 levels in {:.1} s; {} cores; load average {}",
        t.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load()
    );
    let m = Arc::new(MetadataSet::embedded().expect("metadata"));
    let grid_dir = report.grid_dir.clone();
    let grid = Arc::new(Grid::open(&grid_dir).expect("grid"));
    let source = dir.join(&cfg.release).to_string_lossy().into_owned();
    let out = dir.join("out");
    // Mapping factors for the lat-lon granules, built once as a run's context holds them.
    let factors = edp::regrid::store::FactorStore::new(Default::default())
        .get(
            &grid,
            edp::regrid::TargetGrid::ecco_half_degree(),
            None,
            &out.join("edp_factors"),
        )
        .expect("mapping factors");
    let encoding = Encoding::default();
    let codec = ChunkCodec {
        level: encoding.deflate_level,
        shuffle: encoding.shuffle,
        elem_size: 4,
    };
    let kinds = [
        (
            "SSH native (2D)",
            Product::Native,
            "SEA_SURFACE_HEIGHT",
            false,
        ),
        (
            "SSH lat-lon (2D)",
            Product::Latlon,
            "SEA_SURFACE_HEIGHT",
            false,
        ),
        (
            "THETA/SALT native",
            Product::Native,
            "OCEAN_TEMPERATURE_SALINITY",
            true,
        ),
        (
            "THETA/SALT lat-lon",
            Product::Latlon,
            "OCEAN_TEMPERATURE_SALINITY",
            true,
        ),
        (
            "UVEL/VVEL/WVEL native",
            Product::Native,
            "OCEAN_VELOCITY",
            true,
        ),
        (
            "EVEL/NVEL/WVEL lat-lon",
            Product::Latlon,
            "OCEAN_VELOCITY",
            true,
        ),
    ];
    let sampler = PeakSampler::start();
    println!(
        "deflate {} + shuffle; direct = this writer, netcdf = netCDF-only path; floor = data chunks, libdeflate, same threads; times in ms",
        encoding.deflate_level
    );
    println!(
        "| granule (LLC{n}) | threads | direct min | direct median | floor min | ratio (min/min) | CPU ms: direct / floor | netcdf min | size MB | peak RssAnon MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    let only = std::env::var("EDP_BENCH_ONLY").unwrap_or_default();
    let thread_counts: Vec<usize> = std::env::var("EDP_BENCH_THREADS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 2]);
    let with_netcdf = std::env::var("EDP_BENCH_NETCDF").map_or(true, |v| v != "0");
    for (label, product, grouping, is_3d) in kinds {
        if !label.contains(only.as_str()) {
            continue;
        }
        let task = task_of(
            &m,
            product,
            grouping,
            &report.monthly_steps,
            &source,
            &out,
            &grid_dir,
        );
        let path = PathBuf::from(&task.granule);
        let reps = if is_3d { repeats } else { 4 * repeats };
        for &threads in &thread_counts {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let ctx_for = |method: WriteMethod| {
                let ctx = Context {
                    metadata: Arc::clone(&m),
                    grid: Arc::clone(&grid),
                    encoding,
                    nonfinite: Default::default(),
                    factors: Some(Arc::clone(&factors)),
                    coords: Default::default(),
                };
                let options = WriteOptions {
                    method,
                    quicklook: false,
                };
                (ctx, options)
            };
            let (direct_ctx, netcdf_ctx) =
                (ctx_for(WriteMethod::Direct), ctx_for(WriteMethod::NetCdf));
            let storage = edp::storage::Storage::new(&Default::default());
            // The granule whose commit is in flight.
            let previous: RefCell<Option<Producing>> = RefCell::new(None);
            let settle = || {
                if let Some(p) = previous.borrow_mut().take() {
                    p.finish().expect("commit");
                }
            };
            let once = |(ctx, options): &(Context, WriteOptions)| {
                let t = Instant::now();
                let p = pool
                    .install(|| edp::run::produce_pipelined(&task, ctx, *options, &storage))
                    .expect("granule");
                settle();
                *previous.borrow_mut() = Some(p);
                t.elapsed().as_secs_f64()
            };
            // Warm-up (factors, shared coordinates, page cache), kept out of the peak.
            once(&direct_ctx);
            settle();
            // The granule's own peak, before the floor's input is read (memory freed
            // by the process stays in its heap, and in RssAnon).
            let _ = sampler.take();
            once(&direct_ctx);
            settle();
            let peak = sampler.take();
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            let (values, chunk_len) = data_chunks(&path, &task);
            let chunks: Vec<&[u8]> = values
                .iter()
                .flat_map(|v| bytemuck::cast_slice::<f32, u8>(v).chunks(chunk_len * 4))
                .collect();
            // Granule and floor alternate, so both see the same machine load.
            let (mut direct, mut floor) = (Vec::new(), Vec::new());
            let (mut direct_cpu, mut floor_cpu) = (0.0, 0.0);
            for _ in 0..reps {
                let cpu = cpu_seconds();
                direct.push(once(&direct_ctx));
                direct_cpu += cpu_seconds() - cpu;
                let cpu = cpu_seconds();
                let t = Instant::now();
                let total: usize = pool.install(|| {
                    chunks
                        .par_iter()
                        .map(|c| codec.compress(c).expect("compress").len())
                        .sum()
                });
                assert!(total > 0);
                floor.push(t.elapsed().as_secs_f64());
                floor_cpu += cpu_seconds() - cpu;
            }
            drop(chunks);
            drop(values);
            let netcdf = if with_netcdf {
                once(&netcdf_ctx);
                let times: Vec<f64> = (0..reps.min(3)).map(|_| once(&netcdf_ctx)).collect();
                ms(stats(times).0)
            } else {
                "-".to_string()
            };
            settle();
            let (dmin, dmed) = stats(direct);
            let (fmin, _) = stats(floor);
            println!(
                "| {label} | {threads} | {} | {} | {} | {:.2} | {} / {} | {netcdf} | {:.1} | {:.0} |",
                ms(dmin),
                ms(dmed),
                ms(fmin),
                dmin / fmin,
                ms(direct_cpu / reps as f64),
                ms(floor_cpu / reps as f64),
                size as f64 / 1e6,
                peak as f64 / 1e6
            );
            summary.push((label, threads, dmin));
        }
    }
    println!("\nload average at the end: {}", load());
    for (label, _, _) in summary.iter().filter(|(_, t, _)| *t == 1) {
        let one = summary.iter().find(|(l, t, _)| l == label && *t == 1);
        let two = summary.iter().find(|(l, t, _)| l == label && *t == 2);
        if let (Some(a), Some(b)) = (one, two) {
            println!("{label}: 2 threads {:.2}x faster than 1", a.2 / b.2);
        }
    }
}
