//! Checks that the synthetic LLC dataset is a believable LLC grid with
//! believable fields, written in EDP's input layout, deterministically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use edp::llc::{compact_to_tiles, NTILES};
use edp::mds::{MdsMeta, Precision};
use edp::synth::{self, analytic, llc_geometry, SynthConfig, SynthGrid, EARTH_RADIUS_M};

/// Edges of a tile, in index terms.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// i = 0
    West,
    /// i = n − 1
    East,
    /// j = 0
    South,
    /// j = n − 1
    North,
}

/// The LLC connectivity the grid must have: (tile, edge) → neighbour tile, or
/// `None` on the Antarctic boundary.
fn neighbour(tile: usize, edge: Edge) -> Option<usize> {
    use Edge::*;
    match (tile, edge) {
        // Face 1: west is face 5's east (j = n−1) edge, south to north 12, 11, 10.
        (0..=2, West) => Some(12 - tile),
        (0..=2, East) => Some(tile + 3),
        (0, South) | (3, South) => None,
        (1..=2, South) | (4..=5, South) => Some(tile - 1),
        (0..=1, North) | (3..=4, North) => Some(tile + 1),
        (2, North) | (5, North) => Some(6),
        // Face 2: east is face 4's south (j = 0) edge.
        (3..=5, West) => Some(tile - 3),
        (3..=5, East) => Some(12 - tile),
        // Cap.
        (6, South) => Some(5),
        (6, East) => Some(7),
        (6, North) => Some(10),
        (6, West) => Some(2),
        // Faces 4 and 5: i runs south, j east.
        (7, West) => Some(6),
        (8..=9, West) | (11..=12, West) => Some(tile - 1),
        (7..=8, East) | (10..=11, East) => Some(tile + 1),
        (9, East) | (12, East) => None,
        (7..=9, South) => Some(12 - tile),
        (7..=9, North) => Some(tile + 3),
        (10, West) => Some(6),
        (10..=12, South) => Some(tile - 3),
        (10..=12, North) => Some(12 - tile),
        _ => unreachable!("tile {tile}"),
    }
}

fn unit(lon: f64, lat: f64) -> [f64; 3] {
    let (sl, cl) = lon.to_radians().sin_cos();
    let (sp, cp) = lat.to_radians().sin_cos();
    [cp * cl, cp * sl, sp]
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    EARTH_RADIUS_M * d.clamp(-1.0, 1.0).acos()
}

fn edge_cells(n: usize, edge: Edge) -> Vec<(usize, usize)> {
    (0..n)
        .map(|k| match edge {
            Edge::West => (k, 0),
            Edge::East => (k, n - 1),
            Edge::South => (0, k),
            Edge::North => (n - 1, k),
        })
        .collect()
}

/// Every edge cell has its neighbouring tile's adjacent centre within 1.5 local
/// cell widths, and that centre is the one `llc::neighbour_cell` names (the
/// crate's connectivity table and this geometry agree).
fn check_seamless(g: &SynthGrid) {
    let n = g.n;
    let centre = |t, j, i| {
        let p = g.index(t, j, i);
        unit(g.xc[p], g.yc[p])
    };
    let mut worst: f64 = 0.0;
    for t in 0..NTILES {
        for edge in [Edge::West, Edge::East, Edge::South, Edge::North] {
            let Some(nb) = neighbour(t, edge) else {
                continue;
            };
            let candidates: Vec<((usize, usize), [f64; 3])> =
                [Edge::West, Edge::East, Edge::South, Edge::North]
                    .iter()
                    .flat_map(|&e| edge_cells(n, e))
                    .map(|(j, i)| ((j, i), centre(nb, j, i)))
                    .collect();
            for (j, i) in edge_cells(n, edge) {
                let p = g.index(t, j, i);
                let width = g.metrics.dxg[p].max(g.metrics.dyg[p]);
                let here = centre(t, j, i);
                let (nearest, at) = candidates.iter().map(|&(ji, c)| (dist(here, c), ji)).fold(
                    (f64::INFINITY, (0, 0)),
                    |a, b| if b.0 < a.0 { b } else { a },
                );
                worst = worst.max(nearest / width);
                assert!(
                    nearest <= 1.5 * width,
                    "N={n} tile {t} {edge:?} cell ({j},{i}): nearest centre on tile {nb} is \
                     {nearest:.0} m away, cell width {width:.0} m"
                );
                let (oj, oi) = match edge {
                    Edge::West => (j as isize, -1),
                    Edge::East => (j as isize, n as isize),
                    Edge::South => (-1, i as isize),
                    Edge::North => (n as isize, i as isize),
                };
                let linked = edp::llc::neighbour_cell(n, t, oj, oi);
                let (lt, lj, li) = linked.expect("llc has a neighbour");
                assert_eq!(lt, nb, "tile {t} {edge:?}");
                let d = dist(here, centre(lt, lj, li));
                assert!(
                    (lj, li) == at || d <= nearest * (1.0 + 1e-9),
                    "N={n} tile {t} {edge:?} cell ({j},{i}): llc names ({lj},{li}) at {d:.0} m, \
                     nearest is {at:?} at {nearest:.0} m"
                );
            }
        }
    }
    eprintln!("N={n}: worst neighbour distance {worst:.2} cell widths");
}

#[test]
fn neighbouring_tiles_meet_seamlessly() {
    check_seamless(&llc_geometry(13, 3));
    check_seamless(&llc_geometry(24, 3));
}

#[test]
fn llc90_geometry() {
    let g = llc_geometry(90, 50);
    check_seamless(&g);
    let area: f64 = g.metrics.rac.iter().sum();
    let sphere = 4.0 * std::f64::consts::PI * EARTH_RADIUS_M * EARTH_RADIUS_M;
    assert!(
        (area / sphere - 1.0).abs() < 0.02,
        "area ratio {}",
        area / sphere
    );
    // Like the real LLC90: ~1° cells, refined towards the equator.
    let p = g.index(1, 45, 45);
    assert!(
        g.metrics.dyg[p] < 0.6 * g.metrics.dxg[p],
        "equatorial rows not refined"
    );
    let max_d = g.depth.iter().cloned().fold(0.0, f64::max);
    assert!((4500.0..=6134.5).contains(&max_d), "max depth {max_d}");
    let wet0 = g.hfac_c[0].iter().filter(|&&h| h > 0.0).count() as f64;
    let frac = wet0 / g.hfac_c[0].len() as f64;
    assert!((0.5..0.85).contains(&frac), "ocean fraction {frac}");
}

#[test]
fn coordinates_and_angles_are_plausible() {
    let g = llc_geometry(16, 5);
    let n = g.n;
    for (&x, &y) in
        g.xc.iter()
            .zip(&g.yc)
            .chain(g.metrics.xg.iter().zip(&g.metrics.yg))
    {
        assert!(x > -180.0 && x <= 180.0, "lon {x}");
        assert!((-80.0..=90.0).contains(&y), "lat {y}");
    }
    let min_lat = g.yc.iter().cloned().fold(f64::MAX, f64::min);
    let max_lat = g.yc.iter().cloned().fold(f64::MIN, f64::max);
    assert!(min_lat < -78.0 && max_lat > 85.0, "{min_lat} {max_lat}");
    // Face 1 spans −37..53, face 4 spans 143..233 (i.e. 143..180, −180..−127).
    for t in 0..3 {
        for p in t * n * n..(t + 1) * n * n {
            assert!((-37.0..=53.0).contains(&g.xc[p]));
            assert!(g.yc[p] < 67.0);
        }
    }
    for p in 7 * n * n..10 * n * n {
        assert!(
            g.xc[p] >= 143.0 || g.xc[p] <= -127.0,
            "face 4 lon {}",
            g.xc[p]
        );
    }
    // Cap north of the faces.
    for p in 6 * n * n..7 * n * n {
        assert!(g.yc[p] > 67.0);
    }
    for (t, (cs, sn)) in (0..NTILES * n * n).map(|p| (p / (n * n), (g.angle_cs[p], g.angle_sn[p])))
    {
        assert!((cs * cs + sn * sn - 1.0).abs() < 1e-9);
        match t {
            0..=5 => assert!(
                (cs - 1.0).abs() < 1e-9 && sn.abs() < 1e-9,
                "tile {t}: {cs} {sn}"
            ),
            7..=12 => assert!(
                cs.abs() < 1e-9 && (sn + 1.0).abs() < 1e-9,
                "tile {t}: {cs} {sn}"
            ),
            _ => {}
        }
    }
    // On the cap the model axes turn through every direction.
    let cap = 6 * n * n..7 * n * n;
    assert!(g.angle_cs[cap.clone()].iter().any(|&c| c < -0.5));
    assert!(g.angle_sn[cap].iter().any(|&s| s > 0.5));
    // Metrics are positive and cells ~ 90/N degrees.
    let nominal = EARTH_RADIUS_M * (90.0 / n as f64).to_radians();
    for a in [
        &g.metrics.dxg,
        &g.metrics.dyg,
        &g.metrics.dxc,
        &g.metrics.dyc,
    ] {
        assert!(a.iter().all(|&d| d > 0.05 * nominal && d < 1.5 * nominal));
    }
}

#[test]
fn bathymetry_has_continents_shelves_and_partial_cells() {
    let g = llc_geometry(20, 10);
    let n2 = g.n * g.n;
    let tile_land = |t: usize| {
        g.depth[t * n2..(t + 1) * n2]
            .iter()
            .filter(|&&d| d == 0.0)
            .count()
    };
    let tile_ocean = |t: usize| {
        g.depth[t * n2..(t + 1) * n2]
            .iter()
            .filter(|&&d| d > 0.0)
            .count()
    };
    let land_tiles = (0..NTILES).filter(|&t| tile_land(t) > 0).count();
    assert!(land_tiles >= 8, "land on {land_tiles} tiles");
    for face in [0..3, 3..6, 6..7, 7..10, 10..13] {
        assert!(
            face.clone().map(tile_ocean).sum::<usize>() > 0,
            "no ocean on {face:?}"
        );
    }
    assert!(
        tile_land(6) > 0 && tile_ocean(6) > tile_land(6),
        "cap should be partly land"
    );
    // Depth and hFacC agree, masks are nested and shrink with depth.
    let partial = g
        .hfac_c
        .iter()
        .flatten()
        .filter(|&&h| h > 0.0 && h < 1.0)
        .count();
    assert!(partial > 0, "no partial cells");
    for (p, &d) in g.depth.iter().enumerate() {
        let sum: f64 = (0..g.nz).map(|k| g.hfac_c[k][p] * g.drf[k]).sum();
        assert!((sum - d).abs() < 1e-9);
        for k in 1..g.nz {
            assert!(g.hfac_c[k][p] == 0.0 || g.hfac_c[k - 1][p] == 1.0);
        }
        for k in 0..g.nz {
            let h = g.hfac_c[k][p];
            assert!(h == 0.0 || (synth::HFAC_MIN..=1.0).contains(&h));
            assert!(g.hfac_w[k][p] <= h && g.hfac_s[k][p] <= h);
        }
    }
    // hFacW/hFacS pair each cell with its west/south neighbour, across tile
    // edges too (the neighbouring tile's cell, as MITgcm's exchange gives).
    let n = g.n;
    for t in 0..NTILES {
        for j in 0..n {
            for i in 0..n {
                let p = g.index(t, j, i);
                let other = |dj: isize, di: isize| {
                    edp::llc::neighbour_cell(n, t, j as isize + dj, i as isize + di)
                        .map(|(t2, j2, i2)| g.index(t2, j2, i2))
                };
                for k in 0..g.nz {
                    let c = g.hfac_c[k][p];
                    if let Some(q) = other(0, -1) {
                        assert_eq!(g.hfac_w[k][p], c.min(g.hfac_c[k][q]), "W {t} {j} {i}");
                    }
                    if let Some(q) = other(-1, 0) {
                        assert_eq!(g.hfac_s[k][p], c.min(g.hfac_c[k][q]), "S {t} {j} {i}");
                    }
                }
            }
        }
    }
    let wet: Vec<usize> = g
        .hfac_c
        .iter()
        .map(|l| l.iter().filter(|&&h| h > 0.0).count())
        .collect();
    assert!(wet.windows(2).all(|w| w[1] <= w[0]), "{wet:?}");
    assert!(wet[g.nz - 1] < wet[0], "{wet:?}");
    // Vertical grid: V4r4 thicknesses, RF from 0 downward, RC mid-points.
    assert_eq!(g.drf[..3], [10.0, 10.0, 10.0]);
    assert_eq!(g.rf.len(), g.nz + 1);
    assert_eq!(g.rf[0], 0.0);
    assert!((g.rc[0] + 5.0).abs() < 1e-12);
    let full = llc_geometry(2, 50);
    assert!((full.rf[50] + 6134.5).abs() < 1e-9);
}

#[test]
fn sphere_area_is_covered() {
    let g = llc_geometry(12, 1);
    let area: f64 = g.metrics.rac.iter().sum();
    let sphere = 4.0 * std::f64::consts::PI * EARTH_RADIUS_M * EARTH_RADIUS_M;
    assert!(
        (area / sphere - 1.0).abs() < 0.02,
        "area ratio {}",
        area / sphere
    );
}

fn small_config() -> SynthConfig {
    SynthConfig {
        n: 12,
        nz: 6,
        months: 2,
        days: 2,
        snapshots: 1,
        ..SynthConfig::default()
    }
}

fn with(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Reads level `k` of an LLC file into tile order (independent of the crate's reader).
fn read_level(base: &Path, n: usize, k: usize) -> Vec<f64> {
    let meta = MdsMeta::parse(with(base, ".meta")).expect("meta");
    let bytes = std::fs::read(with(base, ".data")).expect("data");
    let len = NTILES * n * n;
    let compact: Vec<f64> = match meta.precision {
        Precision::F32 => bytes[k * len * 4..(k + 1) * len * 4]
            .chunks_exact(4)
            .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect(),
        Precision::F64 => bytes[k * len * 8..(k + 1) * len * 8]
            .chunks_exact(8)
            .map(|b| f64::from_be_bytes(b.try_into().expect("8 bytes")))
            .collect(),
    };
    let mut tiles = vec![0.0; len];
    compact_to_tiles(n, &compact, &mut tiles);
    tiles
}

#[test]
fn output_tree_follows_the_edp_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small_config();
    let report = synth::generate(&cfg, dir.path()).expect("generate");
    assert_eq!(report.monthly_steps, vec![732, 1428]);
    assert_eq!(report.daily_steps, vec![12, 36]);
    assert_eq!(report.snapshot_steps, vec![12]);
    assert_eq!(report.variables.len(), 13);
    let r = dir.path().join("V4r4");
    for rel in [
        "diags_monthly/SSH_mon_mean/SSH_mon_mean.0000000732",
        "diags_monthly/THETA_mon_mean/THETA_mon_mean.0000001428",
        "diags_monthly/oceTAUX_mon_mean/oceTAUX_mon_mean.0000000732",
        "diags_daily/WVELMASS_day_mean/WVELMASS_day_mean.0000000036",
        "diags_daily/EXFtauy_day_mean/EXFtauy_day_mean.0000000012",
        "diags_inst/ETAN_day_snap/ETAN_day_snap.0000000012",
        "diags_inst/VVEL_day_snap/VVEL_day_snap.0000000012",
    ] {
        let base = r.join(rel);
        let meta = MdsMeta::parse(with(&base, ".meta")).expect("meta");
        let step: u64 = rel
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("step");
        let var = rel
            .split('/')
            .nth(1)
            .and_then(|d| d.rsplit_once('_'))
            .map(|x| x.0);
        let var = var
            .and_then(|v| v.rsplit_once('_'))
            .map(|x| x.0)
            .expect("var");
        assert_eq!(meta.time_step, Some(step), "{rel}");
        assert_eq!(meta.fields, vec![var.to_string()], "{rel}");
        assert_eq!(meta.precision, Precision::F32);
        let three_d = ["THETA", "SALT", "UVEL", "VVEL", "WVELMASS"].contains(&var);
        let dims = if three_d {
            vec![12, 156, 6]
        } else {
            vec![12, 156]
        };
        assert_eq!(meta.dims, dims, "{rel}");
        let size = std::fs::metadata(with(&base, ".data")).expect("data").len();
        assert_eq!(size, 4 * 13 * 144 * if three_d { 6 } else { 1 });
    }
    let grid = dir.path().join("grid");
    for name in [
        "XC", "YC", "XG", "YG", "DXG", "DYG", "DXC", "DYC", "RAC", "RAS", "RAW", "RAZ", "AngleCS",
        "AngleSN", "Depth", "hFacC", "hFacW", "hFacS", "RC", "RF", "DRF", "DRC", "PHrefC",
        "PHrefF",
    ] {
        let meta = MdsMeta::parse(grid.join(format!("{name}.meta"))).expect("grid meta");
        assert_eq!(meta.precision, Precision::F64, "{name}");
        assert!(grid.join(format!("{name}.data")).is_file());
    }
    assert!(grid.join("available_diagnostics.log").is_file());
    // 24 grid pairs + log + 13 variables × 5 steps pairs.
    assert_eq!(report.files_written, 24 * 2 + 1 + 13 * 5 * 2);
    let total: u64 = walk(dir.path()).values().map(|b| b.len() as u64).sum();
    assert_eq!(report.bytes_written, total);

    // The grid files hold the in-memory grid.
    let g = llc_geometry(cfg.n, cfg.nz);
    assert_eq!(read_level(&grid.join("XC"), cfg.n, 0), g.xc);
    assert_eq!(read_level(&grid.join("hFacW"), cfg.n, 3), g.hfac_w[3]);
}

#[test]
fn fields_are_masked_and_match_the_analytic_ocean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        n: 16,
        nz: 8,
        months: 1,
        variables: Some(vec![
            "THETA".into(),
            "UVEL".into(),
            "VVEL".into(),
            "SSH".into(),
        ]),
        ..SynthConfig::default()
    };
    let report = synth::generate(&cfg, dir.path()).expect("generate");
    // Generation follows the table order, not the request order.
    assert_eq!(report.variables, ["SSH", "THETA", "UVEL", "VVEL"]);
    let g = llc_geometry(cfg.n, cfg.nz);
    let t = analytic::time_days(732);
    let base = |v: &str| {
        dir.path().join(format!(
            "V4r4/diags_monthly/{v}_mon_mean/{v}_mon_mean.0000000732"
        ))
    };
    let mut land = 0;
    for k in [0, 7] {
        let theta = read_level(&base("THETA"), cfg.n, k);
        let u = read_level(&base("UVEL"), cfg.n, k);
        let v = read_level(&base("VVEL"), cfg.n, k);
        for p in 0..theta.len() {
            if g.hfac_c[k][p] == 0.0 {
                assert_eq!(
                    theta[p].to_bits(),
                    0.0f64.to_bits(),
                    "land THETA not exactly 0"
                );
                land += 1;
            } else {
                let want = analytic::theta(g.xc[p], g.yc[p], g.rc[k], t) as f32 as f64;
                assert_eq!(theta[p], want);
                assert!((-1.8..=30.0).contains(&theta[p]));
            }
            if g.hfac_w[k][p] == 0.0 {
                assert_eq!(u[p], 0.0);
            } else {
                let up = &g.u_points;
                let (e, nn) = analytic::velocity_en(up.lon[p], up.lat[p], g.rc[k], t);
                let want = analytic::to_model_xy(e, nn, up.cs[p], up.sn[p]).0;
                assert_eq!(u[p], want as f32 as f64);
            }
            if g.hfac_s[k][p] == 0.0 {
                assert_eq!(v[p], 0.0);
            } else {
                let vp = &g.v_points;
                let (e, nn) = analytic::velocity_en(vp.lon[p], vp.lat[p], g.rc[k], t);
                let want = analytic::to_model_xy(e, nn, vp.cs[p], vp.sn[p]).1;
                assert_eq!(v[p], want as f32 as f64);
            }
        }
    }
    assert!(land > 0);
    // Face 4 is rotated: model x points south, so UVEL there is −(north velocity).
    let p = g.index(8, 5, 5);
    if g.hfac_w[0][p] > 0.0 {
        let up = &g.u_points;
        let (_, nn) = analytic::velocity_en(up.lon[p], up.lat[p], g.rc[0], t);
        let u = read_level(&base("UVEL"), cfg.n, 0)[p];
        assert!((u + nn).abs() < 1e-6);
    }
    let ssh = read_level(&base("SSH"), cfg.n, 0);
    assert!(ssh.iter().all(|s| s.abs() < 1.0));
    assert!(ssh.iter().any(|&s| s != 0.0));
}

fn walk(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("prefix").to_path_buf();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[test]
fn two_runs_are_byte_identical() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let cfg = SynthConfig {
        n: 14,
        nz: 5,
        months: 1,
        days: 1,
        ..SynthConfig::default()
    };
    synth::generate(&cfg, a.path()).expect("first");
    synth::generate(&cfg, b.path()).expect("second");
    let (fa, fb) = (walk(a.path()), walk(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(v == &fb[k], "{} differs", k.display());
    }
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = [
        SynthConfig {
            nz: 0,
            ..small_config()
        },
        SynthConfig {
            nz: 51,
            ..small_config()
        },
        SynthConfig {
            n: 0,
            ..small_config()
        },
        SynthConfig {
            release: "a/b".into(),
            ..small_config()
        },
        SynthConfig {
            variables: Some(vec!["TAUX".into()]),
            ..small_config()
        },
    ];
    for cfg in bad {
        assert!(synth::generate(&cfg, dir.path()).is_err(), "{cfg:?}");
    }
}

/// The figure the lead quotes: LLC90 × 50 levels × 2 months, all variables.
/// Run with `cargo test --release --test synth -- --ignored --nocapture`.
#[test]
#[ignore = "timing run; use --release"]
fn time_llc90_two_months() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let grid_only = SynthConfig {
        months: 0,
        ..SynthConfig::default()
    };
    synth::generate(&grid_only, dir.path()).expect("grid");
    eprintln!(
        "synth LLC90 x 50 levels, grid only: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let report = synth::generate(&SynthConfig::default(), dir.path()).expect("generate");
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "synth LLC90 x 50 levels x 2 months, 13 variables: {secs:.2} s, {} files, {:.1} MB",
        report.files_written,
        report.bytes_written as f64 / 1e6
    );
}

/// Scaling check: LLC270 × 50 levels × 1 month, all variables (about 1.6 GB).
/// Run with `cargo test --release --test synth -- --ignored --nocapture`.
#[test]
#[ignore = "timing run; use --release"]
fn time_llc270_one_month() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let cfg = SynthConfig {
        n: 270,
        months: 1,
        ..SynthConfig::default()
    };
    let report = synth::generate(&cfg, dir.path()).expect("generate");
    eprintln!(
        "synth LLC270 x 50 levels x 1 month, 13 variables: {:.2} s, {:.1} MB",
        start.elapsed().as_secs_f64(),
        report.bytes_written as f64 / 1e6
    );
}

/// `edp synth --variables all`: every field the metadata's groupings read, so that
/// every native grouping at every frequency it lists can be made end to end at LLC8,
/// and the granules pass `edp verify --content`.
#[test]
fn all_variables_make_every_native_grouping() {
    use edp::metadata::{MetadataSet, Product};
    use edp::time::Frequency;
    let edp = env!("CARGO_BIN_EXE_edp");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = std::process::Command::new(edp)
        .args([
            "synth", "--n", "8", "--levels", "50", "--months", "2", "--days", "1",
        ])
        .args(["--snapshots", "1", "--variables", "all", "-o"])
        .arg(root.join("src"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The jobs of every time-varying native grouping, each at every frequency it has.
    let m = MetadataSet::embedded().unwrap();
    let (mut jobs, mut expected) = (String::new(), 0);
    for g in m.groupings(Product::Native) {
        for &f in &g.frequencies {
            let steps = match f {
                Frequency::AvgMon => 2,
                Frequency::AvgDay | Frequency::Snap => 1,
                _ => continue,
            };
            jobs.push_str(&format!(
                "[{}, 'native', '{}', 'all']\n",
                g.index,
                f.job_name()
            ));
            expected += steps;
        }
    }
    assert!(expected > 60, "{expected} granules");
    let jobs_file = root.join("jobs.txt");
    std::fs::write(&jobs_file, jobs).unwrap();
    let dest = root.join("out");
    let run = std::process::Command::new(edp)
        .args(["run", "--jobs"])
        .arg(&jobs_file)
        .arg("--source")
        .arg(root.join("src").join("V4r4"))
        .arg("--dest")
        .arg(&dest)
        .arg("--grid")
        .arg(root.join("src").join("grid"))
        .env("EDP_MPI", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("{expected} tasks: {expected} done, 0 failed")),
        "{stdout}"
    );
    // No field left out of any granule (a missing input would be a partial step).
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("miss some fields"), "{stderr}");
    let verify = std::process::Command::new(edp)
        .args(["verify", "--content"])
        .arg(&dest)
        .output()
        .unwrap();
    let vout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && vout.contains(&format!("{expected} granule(s)")),
        "{vout}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
