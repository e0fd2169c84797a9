//! Benchmark of lat-lon regridding on a synthetic LLC90 × 50-level grid: factor
//! creation, regridding one 3D scalar field and one 3D vector pair, with the peak
//! resident memory (VmHWM, reset between phases) of each.
//!
//! `cargo bench --bench regrid`; EDP_BENCH_N (tile size, default 90) and
//! EDP_BENCH_DIR (keep the synthetic data there) tune it.

use std::path::Path;
use std::time::Instant;

use edp::granule::FILL_F32;
use edp::grid::{Grid, GridVar};
use edp::llc::PointType;
use edp::mds::MdsFile;
use edp::regrid::factors::{self, BuildOptions};
use edp::regrid::{apply, format, vector, Factors, TargetGrid};
use edp::synth::{self, SynthConfig};

/// Peak resident set size of this process so far (MB), from /proc/self/status.
fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak to the current resident size (Linux: "5" > clear_refs).
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn open(dir: &Path, var: &str, step: u64) -> MdsFile {
    let base = format!("V4r4/diags_monthly/{var}_mon_mean/{var}_mon_mean.{step:010}");
    MdsFile::open(
        &dir.join(format!("{base}.data")),
        &dir.join(format!("{base}.meta")),
    )
    .expect("input")
}

fn main() {
    let n: usize = std::env::var("EDP_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let keep = std::env::var_os("EDP_BENCH_DIR");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let cfg = SynthConfig {
        n,
        nz: 50,
        months: 1,
        variables: Some(vec!["THETA".into(), "UVEL".into(), "VVEL".into()]),
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let report = synth::generate(&cfg, &dir).expect("synth");
    let step = report.monthly_steps[0];
    println!(
        "synthesised LLC{n} x 50 levels (THETA, UVEL, VVEL) in {:.1} s; threads: {}",
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let grid = Grid::open(&report.grid_dir).expect("grid");

    reset_hwm();
    let base = vm_hwm_mb();
    let t = Instant::now();
    let set = factors::build(
        &grid,
        &BuildOptions {
            target: TargetGrid::ecco_half_degree(),
            levels: 50,
        },
    )
    .expect("factors");
    let build_s = t.elapsed().as_secs_f64();
    let build_peak = vm_hwm_mb();
    let path = dir.join("factors.bin");
    let t = Instant::now();
    let bytes = format::write(&set, &path).expect("write factors");
    let write_s = t.elapsed().as_secs_f64();
    drop(set);
    println!(
        "factor creation LLC{n} x 50 levels -> 720x360: {build_s:.2} s (+ {write_s:.2} s to write {:.1} MB); peak RSS {build_peak:.0} MB ({base:.0} MB before)",
        bytes as f64 / 1e6
    );

    reset_hwm();
    let base = vm_hwm_mb();
    let t = Instant::now();
    let f = Factors::open(&path).expect("open factors");
    let open_s = t.elapsed().as_secs_f64();
    let nt = f.header.target.len();
    let len = grid.level_len();
    let theta = open(&dir, "THETA", step);
    let mut out = vec![0f32; 50 * nt];
    let mut src = vec![0f32; len];
    // Warm the page cache and the factor mapping once, then time.
    for k in 0..50 {
        theta.read_level_tiles(0, k, n, &mut src).expect("read");
        apply::regrid_level(&f, k, &src, &mut out[k * nt..(k + 1) * nt], FILL_F32).expect("regrid");
    }
    let t = Instant::now();
    let mut read_s = 0.0;
    for k in 0..50 {
        let r = Instant::now();
        theta.read_level_tiles(0, k, n, &mut src).expect("read");
        read_s += r.elapsed().as_secs_f64();
        apply::regrid_level(&f, k, &src, &mut out[k * nt..(k + 1) * nt], FILL_F32).expect("regrid");
    }
    let scalar_s = t.elapsed().as_secs_f64();
    let scalar_peak = vm_hwm_mb();
    println!(
        "regrid one 3D scalar (THETA, 50 levels): {scalar_s:.3} s ({read_s:.3} s of it reading MDS); factors opened in {:.3} s; peak RSS {scalar_peak:.0} MB ({base:.0} MB before)",
        open_s
    );

    reset_hwm();
    let base = vm_hwm_mb();
    let (uf, vf) = (open(&dir, "UVEL", step), open(&dir, "VVEL", step));
    let mut east = vec![0f32; 50 * nt];
    let mut north = vec![0f32; 50 * nt];
    let t = Instant::now();
    let (mut u, mut v) = (vec![0f32; len], vec![0f32; len]);
    let (mut uc, mut vc) = (vec![0f32; len], vec![0f32; len]);
    for k in 0..50 {
        uf.read_level_tiles(0, k, n, &mut u).expect("read U");
        vf.read_level_tiles(0, k, n, &mut v).expect("read V");
        vector::to_centres(n, (PointType::U, &u), (PointType::V, &v), &mut uc, &mut vc)
            .expect("centres");
        vector::rotate(
            grid.horizontal(GridVar::AngleCs).unwrap(),
            grid.horizontal(GridVar::AngleSn).unwrap(),
            &uc,
            &vc,
            &mut u,
            &mut v,
        );
        let s = k * nt..(k + 1) * nt;
        apply::regrid_level(&f, k, &u, &mut east[s.clone()], FILL_F32).expect("regrid");
        apply::regrid_level(&f, k, &v, &mut north[s], FILL_F32).expect("regrid");
    }
    let vector_s = t.elapsed().as_secs_f64();
    println!(
        "regrid one 3D vector pair (UVEL/VVEL -> EVEL/NVEL, 50 levels): {vector_s:.3} s; peak RSS {:.0} MB ({base:.0} MB before)",
        vm_hwm_mb()
    );
    let wet = out.iter().filter(|x| **x != FILL_F32).count();
    println!("check: {wet} wet THETA values on the lat-lon grid");
}
