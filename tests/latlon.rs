//! Lat-lon regridding: factors re-derived by brute force, known fields mapped within
//! the grid spacing, masks, refusal of other grids' factors, and vector rotation
//! across every kind of tile edge. Small LLC sizes keep this fast.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::Sample;
use edp::grid::Grid;
use edp::llc::{self, Edge, PointType, NTILES};
use edp::regrid::factors::{self, BuildOptions, FactorSet};
use edp::regrid::{self, apply, format, store, vector, Factors, RegridError, TargetGrid};
use edp::synth::{self, analytic};
use rayon::prelude::*;

const FILL: f32 = edp::granule::FILL_F32;
/// pyresample's sphere (m), restated here.
const R: f64 = 6_370_997.0;

fn unit(lon: f64, lat: f64) -> [f64; 3] {
    let (lo, la) = (lon.to_radians(), lat.to_radians());
    [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()]
}

fn arc_m(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let c = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    2.0 * (c / 2.0).asin() * R
}

fn grid_of(sample: &Sample) -> Grid {
    Grid::open(&sample.grid_dir()).unwrap()
}

fn build(grid: &Grid, levels: usize) -> FactorSet {
    factors::build(
        grid,
        &BuildOptions {
            target: TargetGrid::ecco_half_degree(),
            levels,
        },
    )
    .unwrap()
}

/// Reads a big-endian float64 MDS grid file into tile order.
fn read_tiles_f64(path: &std::path::Path, n: usize) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let compact: Vec<f64> = bytes
        .chunks_exact(8)
        .take(NTILES * n * n)
        .map(|c| f64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let mut tiles = vec![0.0; compact.len()];
    llc::compact_to_tiles(n, &compact, &mut tiles);
    tiles
}

#[test]
fn factors_match_a_brute_force_rederivation() {
    let sample = Sample::new(8, 4, 0, &["SSH"]);
    let grid = grid_of(&sample);
    let set = build(&grid, 4);
    let target = set.header.target;
    let n = grid.n;

    // Cell sides against the synthetic generator's own DXG/DYG files.
    let dxg = read_tiles_f64(&sample.grid_dir().join("DXG.data"), n);
    let dyg = read_tiles_f64(&sample.grid_dir().join("DYG.data"), n);
    let sides = dxg.iter().chain(&dyg).filter(|d| **d > 0.0);
    let (lo, hi) = sides.fold((f64::MAX, 0f64), |(a, b), &d| (a.min(d), b.max(d)));
    assert!(
        (set.header.min_l / lo - 1.0).abs() < 1e-3,
        "min_L {} vs DXG/DYG {lo}",
        set.header.min_l
    );
    assert!(
        (set.header.max_l / hi - 1.0).abs() < 1e-3,
        "max_L {} vs DXG/DYG {hi}",
        set.header.max_l
    );

    // EDP's rules, by brute force over every source point.
    let pts: Vec<[f64; 3]> = grid
        .horizontal(edp::grid::GridVar::Xc)
        .unwrap()
        .iter()
        .zip(grid.horizontal(edp::grid::GridVar::Yc).unwrap())
        .map(|(&x, &y)| unit(x as f64, y as f64))
        .collect();
    let max_radius = (0..target.nlat)
        .map(|j| target.radius(j))
        .fold(0.0, f64::max);
    let cap = (((2.0 * max_radius / set.header.min_l).powi(2)) as usize).clamp(1, 100);
    assert_eq!(set.header.neighbours, cap);
    let per_target: Vec<(Vec<u32>, Option<u32>)> = (0..target.len())
        .into_par_iter()
        .map(|t| {
            let (j, i) = (t / target.nlon, t % target.nlon);
            let q = unit(target.lon(i), target.lat(j));
            // Order by squared chord (exact ties broken by index): converting every
            // distance to metres first would merge near-ties by rounding. Only the
            // points within the search radius, and the nearest, matter.
            let c2 = |x: &[f64; 3]| {
                (q[0] - x[0]).powi(2) + (q[1] - x[1]).powi(2) + (q[2] - x[2]).powi(2)
            };
            let to_m = |c2: f64| 2.0 * (c2.sqrt() / 2.0).asin() * R;
            let mut best = (f64::INFINITY, u32::MAX);
            let mut d: Vec<(f64, u32)> = Vec::new();
            for (p, x) in pts.iter().enumerate() {
                let c = (c2(x), p as u32);
                if c.0 < best.0 {
                    best = c;
                }
                if to_m(c.0) <= max_radius.trunc() {
                    d.push(c);
                }
            }
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let d: Vec<(f64, u32)> = d.into_iter().map(|(c, p)| (to_m(c), p)).collect();
            let within: Vec<u32> = d
                .iter()
                .take(cap)
                .filter(|c| c.0 <= target.radius(j))
                .map(|c| c.1)
                .collect();
            let nearest = (to_m(best.0) <= set.header.max_l.trunc()).then_some(best.1);
            (within, nearest)
        })
        .collect();
    let mut hfac = vec![0f32; grid.level_len()];
    for (k, lf) in set.levels.iter().enumerate() {
        grid.hfac_level(PointType::C, k, &mut hfac).unwrap();
        let wet = |p: u32| hfac[p as usize] > 0.0;
        let mut rows = Vec::new();
        for (t, (within, nearest)) in per_target.iter().enumerate() {
            let row: Vec<u32> = match (within.first(), nearest) {
                (Some(&c), _) if wet(c) => within.iter().copied().filter(|&p| wet(p)).collect(),
                (None, Some(p)) if wet(*p) => vec![*p],
                _ => continue,
            };
            rows.push((t as u32, row));
        }
        let got: Vec<(u32, Vec<u32>)> = lf
            .targets
            .iter()
            .enumerate()
            .map(|(r, &t)| {
                let (a, b) = (lf.row_ptr[r] as usize, lf.row_ptr[r + 1] as usize);
                for w in &lf.weights[a..b] {
                    assert_eq!(
                        *w,
                        1.0 / (b - a) as f32,
                        "level {k} target {t}: equal weights"
                    );
                }
                (t, lf.cols[a..b].to_vec())
            })
            .collect();
        assert_eq!(got.len(), rows.len(), "level {k}: number of rows");
        assert!(
            got == rows,
            "level {k}: rows differ from the brute-force derivation"
        );
        let ocean = (0..target.len())
            .filter(|t| lf.ocean[t / 8] & (1 << (t % 8)) != 0)
            .count();
        assert_eq!(ocean, rows.len(), "level {k}: ocean mask = rows");
    }
    assert!(set.levels[0].targets.len() > 100_000, "surface rows");
    assert_eq!(R, regrid::EARTH_RADIUS_DISTANCE_M);
}

#[test]
fn smooth_fields_map_within_the_search_distance_and_constants_stay_constant() {
    let sample = Sample::new(16, 3, 0, &["SSH"]);
    let grid = grid_of(&sample);
    let set = build(&grid, 3);
    let f = Factors::from_set(&set).unwrap();
    let target = set.header.target;
    // No source farther than the larger of a cell's radius and max_L contributes.
    let reach = (0..target.nlat)
        .map(|j| target.radius(j))
        .fold(set.header.max_l, f64::max);
    let pts: Vec<[f64; 3]> = grid
        .horizontal(edp::grid::GridVar::Xc)
        .unwrap()
        .iter()
        .zip(grid.horizontal(edp::grid::GridVar::Yc).unwrap())
        .map(|(&x, &y)| unit(x as f64, y as f64))
        .collect();
    // Components of the unit vector are 1-Lipschitz in chord (≤ arc) distance.
    for axis in 0..3 {
        let src: Vec<f32> = pts.iter().map(|p| p[axis] as f32).collect();
        let mut out = vec![0f32; target.len()];
        apply::regrid_level(&f, 0, &src, &mut out, FILL).unwrap();
        let mut worst = 0f64;
        let mut wet = 0;
        for (t, v) in out.iter().enumerate() {
            if *v == FILL {
                continue;
            }
            wet += 1;
            let q = unit(target.lon(t % target.nlon), target.lat(t / target.nlon));
            worst = worst.max((f64::from(*v) - q[axis]).abs());
        }
        assert!(wet > target.len() / 2, "axis {axis}: {wet} wet targets");
        assert!(
            worst <= reach / R + 1e-6,
            "axis {axis}: error {worst} beyond the search distance {} rad",
            reach / R
        );
    }
    // A constant stays constant on every wet target, level by level.
    let src = vec![3.25f32; grid.level_len()];
    for k in 0..3 {
        let mut out = vec![0f32; target.len()];
        apply::regrid_level(&f, k, &src, &mut out, FILL).unwrap();
        let rows = f.level(k).unwrap().targets.len();
        assert_eq!(out.iter().filter(|v| **v != FILL).count(), rows);
        for v in out.iter().filter(|v| **v != FILL) {
            assert!((v - 3.25).abs() < 1e-6, "level {k}: {v}");
        }
    }
}

#[test]
fn land_is_fill_and_the_mask_shrinks_with_depth() {
    let sample = Sample::new(12, 20, 0, &["SSH"]);
    let grid = grid_of(&sample);
    let set = build(&grid, 20);
    let f = Factors::from_set(&set).unwrap();
    let target = set.header.target;
    let src = vec![1.0f32; grid.level_len()];
    let mut previous: Option<Vec<bool>> = None;
    let mut counts = Vec::new();
    let mut hfac = vec![0f32; grid.level_len()];
    for k in 0..20 {
        let mut out = vec![0f32; target.len()];
        apply::regrid_level(&f, k, &src, &mut out, FILL).unwrap();
        let wet: Vec<bool> = out.iter().map(|v| *v != FILL).collect();
        // Targets whose every source within reach is dry must be fill (a sample of
        // targets on a few levels, by brute force).
        grid.hfac_level(PointType::C, k, &mut hfac).unwrap();
        let sample = if [0, 7, 19].contains(&k) {
            13
        } else {
            usize::MAX
        };
        for (t, &w) in wet.iter().enumerate().step_by(sample) {
            let q = unit(target.lon(t % target.nlon), target.lat(t / target.nlon));
            let reach = target.radius(t / target.nlon).max(set.header.max_l);
            let any_wet_near = grid
                .horizontal(edp::grid::GridVar::Xc)
                .unwrap()
                .iter()
                .zip(grid.horizontal(edp::grid::GridVar::Yc).unwrap())
                .zip(&hfac)
                .any(|((&x, &y), &h)| h > 0.0 && arc_m(&q, &unit(x as f64, y as f64)) <= reach);
            assert!(
                any_wet_near || !w,
                "level {k}, target {t}: value with no wet source in reach"
            );
        }
        if let Some(prev) = &previous {
            for (t, (&now, &before)) in wet.iter().zip(prev).enumerate() {
                assert!(!now || before, "level {k}: target {t} wet below a dry one");
            }
        }
        counts.push(wet.iter().filter(|w| **w).count());
        previous = Some(wet);
    }
    // The South Pole (no ocean within reach) and deep levels.
    let south_pole_row = &previous.unwrap()[..target.nlon];
    assert!(south_pole_row.iter().all(|w| !w));
    assert!(counts[19] < counts[0], "counts by level: {counts:?}");
    assert!(counts[0] > target.len() / 2, "counts by level: {counts:?}");
}

#[test]
fn factors_of_another_grid_are_refused() {
    // One month, so that there is a lat-lon task to take through the store.
    let sample = Sample::new(8, 3, 1, &["SSH"]);
    let grid = grid_of(&sample);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    format::write(&build(&grid, 3), &path).unwrap();
    let f = Factors::open(&path).unwrap();
    let target = TargetGrid::ecco_half_degree();
    store::check(&f, &grid, target).unwrap();

    // The same grid with one wet cell of level 0 turned dry (tile 1 is stored
    // contiguously in the compact file, so its offset is simple).
    let other = dir.path().join("grid");
    std::fs::create_dir(&other).unwrap();
    for e in std::fs::read_dir(sample.grid_dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), other.join(e.file_name())).unwrap();
    }
    let n = grid.n;
    let hfac_path = other.join("hFacC.data");
    let mut bytes = std::fs::read(&hfac_path).unwrap();
    let p = (0..n * n)
        .map(|q| n * n + q)
        .find(|&p| f64::from_be_bytes(bytes[8 * p..8 * p + 8].try_into().unwrap()) > 0.0)
        .expect("a wet cell on tile 1");
    bytes[8 * p..8 * p + 8].copy_from_slice(&0f64.to_be_bytes());
    std::fs::write(&hfac_path, bytes).unwrap();
    let changed = Grid::open(&other).unwrap();
    let err = store::check(&f, &changed, target).unwrap_err();
    assert!(matches!(err, RegridError::GridMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&f.header.grid_hash.to_string()), "{msg}");
    assert!(msg.contains("edp factors --grid"), "{msg}");

    // Through the store, as `edp run --factors` uses it.
    let s = store::FactorStore::new(store::FactorSource {
        file: Some(Ok(path.clone())),
        ..Default::default()
    });
    let task = latlon_tasks(&sample, "SEA_SURFACE_HEIGHT")
        .pop()
        .expect("a lat-lon sea-surface-height task");
    let named = task
        .ecco_mapping_factors_loc
        .as_deref()
        .map(|loc| store::Named { loc, file: None });
    let cache = sample.out().join("edp_factors");
    let err = s.get(&changed, target, named, &cache).unwrap_err();
    assert!(
        err.to_string().contains(&f.header.grid_hash.to_string()),
        "{err}"
    );
    assert!(s.get(&grid, target, named, &cache).is_ok());
    // A `--factors` this process could not have (its node failed the S3 fetch) fails
    // the lat-lon task with the reason, and builds nothing in the cache.
    let empty_cache = sample.out().join("edp_factors_unavailable");
    let unavailable = store::FactorStore::new(store::FactorSource {
        file: Some(Err("--factors s3://b/f.bin: no such object".into())),
        ..Default::default()
    });
    let err = unavailable
        .get(&grid, target, named, &empty_cache)
        .unwrap_err();
    assert!(
        err.to_string().contains("s3://b/f.bin: no such object"),
        "{err}"
    );
    assert!(
        !empty_cache.exists(),
        "factors were built in {empty_cache:?}"
    );
    // Factors at another resolution are refused too.
    assert!(store::check(&f, &grid, TargetGrid::global(1.0).unwrap()).is_err());

    // As a run's context checks them per granule: hashed once per (factors, grid)
    // pair, so a repeated check passes and another grid is still refused.
    let (f, grid, changed) = (Arc::new(f), Arc::new(grid), Arc::new(changed));
    store::check_in_use(&f, &grid, target).unwrap();
    store::check_in_use(&f, &grid, target).unwrap();
    let err = store::check_in_use(&f, &changed, target).unwrap_err();
    assert!(matches!(err, RegridError::GridMismatch { .. }), "{err}");
    assert!(store::check_in_use(&f, &grid, TargetGrid::global(1.0).unwrap()).is_err());
}

fn latlon_tasks(sample: &Sample, grouping: &str) -> Vec<edp::tasks::Task> {
    let m = edp::metadata::MetadataSet::embedded().unwrap();
    let g = m
        .grouping_by_filename(edp::metadata::Product::Latlon, grouping)
        .unwrap();
    let loc = edp::tasks::Locations {
        dest_root: sample.out().to_string_lossy().into_owned(),
        grid: Some(sample.grid_dir().to_string_lossy().into_owned()),
        ..Default::default()
    };
    edp::tasks::tasks_for_steps(
        g,
        edp::time::Frequency::AvgMon,
        &sample.report.monthly_steps,
        &sample.source(),
        &m.release,
        edp::time::DailyDate::default(),
        &loc,
    )
}

/// (east, north) of a flow as a function of latitude.
type Flow = fn(f64) -> (f64, f64);

/// Solid-body zonal flow (east = cos lat) and a meridional flow (north = cos lat):
/// smooth on the whole sphere, poles included.
fn flows() -> [(&'static str, Flow); 2] {
    [
        ("zonal", |lat: f64| (lat.to_radians().cos(), 0.0)),
        ("meridional", |lat: f64| (0.0, lat.to_radians().cos())),
    ]
}

#[test]
fn vector_rotation_recovers_east_and_north_on_every_tile_and_edge() {
    // The synthetic lat-lon faces are orthogonal grids, so there (and across their
    // joins, rotated or not) centre values are exact up to float32. The synthetic
    // cap is not orthogonal: its grid lines kink on its diagonals and meet its edges
    // obliquely away from their middles, so a component stored at a cap face is not
    // the normal component the other tile expects. That costs up to ~0.15 near the
    // cap corners whatever the resolution; where the cap's lines cross an edge at
    // right angles (the middle of each cap edge) the join must be exact again.
    let n = 24;
    let g = synth::llc_geometry(n, 1);
    let len = NTILES * n * n;
    let cs: Vec<f32> = g.angle_cs.iter().map(|&x| x as f32).collect();
    let sn: Vec<f32> = g.angle_sn.iter().map(|&x| x as f32).collect();
    let mut checked = std::collections::BTreeSet::new();
    for (flow, en) in flows() {
        let comp = |pg: &synth::PointGeometry, x: bool| -> Vec<f32> {
            (0..len)
                .map(|p| {
                    let (e, nn) = en(pg.lat[p]);
                    let (u, v) = analytic::to_model_xy(e, nn, pg.cs[p], pg.sn[p]);
                    (if x { u } else { v }) as f32
                })
                .collect()
        };
        let u = comp(&g.u_points, true);
        let v = comp(&g.v_points, false);
        let (mut uc, mut vc) = (vec![0f32; len], vec![0f32; len]);
        vector::to_centres(n, (PointType::U, &u), (PointType::V, &v), &mut uc, &mut vc).unwrap();
        let (mut east, mut north) = (vec![0f32; len], vec![0f32; len]);
        vector::rotate(&cs, &sn, &uc, &vc, &mut east, &mut north);
        let err = |p: usize| {
            let (e, nn) = en(g.yc[p]);
            (f64::from(east[p]) - e)
                .abs()
                .max((f64::from(north[p]) - nn).abs())
        };
        // Averaging two faces of a smooth field errs by O(spacing²).
        let smooth = (90.0 / n as f64).to_radians().powi(2);
        // A cell crosses into the cap if its east or north face lies there.
        let near_cap = |t: usize, j: usize, i: usize| {
            t == 6
                || (i == n - 1 && llc::neighbour(t, Edge::East).is_some_and(|l| l.tile == 6))
                || (j == n - 1 && llc::neighbour(t, Edge::North).is_some_and(|l| l.tile == 6))
        };
        for t in 0..NTILES {
            let at = |j: usize, i: usize| (t * n + j) * n + i;
            let interior = (0..n - 1)
                .flat_map(|j| (0..n - 1).map(move |i| (j, i)))
                .map(|(j, i)| err(at(j, i)))
                .fold(0.0, f64::max);
            let tol = if t == 6 { 0.05 } else { smooth };
            assert!(
                interior < tol,
                "{flow}, tile {t}: interior error {interior}"
            );
            // Cells whose east / north face lies in the neighbouring tile.
            for edge in [Edge::East, Edge::North] {
                let Some(link) = llc::neighbour(t, edge) else {
                    continue; // open boundary: documented fill, checked in unit tests
                };
                let cell = |q: usize| match edge {
                    Edge::East => (q, n - 1),
                    _ => (n - 1, q),
                };
                let what = format!(
                    "{flow}, tile {t} {edge:?} edge (to tile {} {:?}, reversed {}, {:?})",
                    link.tile,
                    link.edge,
                    link.reversed,
                    llc::edge_rotation(t, edge)
                );
                for q in 0..n {
                    let (j, i) = cell(q);
                    let open = (i == n - 1 && llc::neighbour(t, Edge::East).is_none())
                        || (j == n - 1 && llc::neighbour(t, Edge::North).is_none());
                    if open {
                        continue; // its other face is the open boundary's fill
                    }
                    let e = err(at(j, i));
                    let tol = match (near_cap(t, j, i), q == n / 2 - 1 || q == n / 2) {
                        (false, _) => smooth,
                        (true, true) => 0.02,
                        (true, false) => 0.2,
                    };
                    assert!(e < tol, "{what}: error {e} at cell {q} of the edge");
                }
                checked.insert((
                    format!("{:?}", link.edge),
                    link.reversed,
                    format!("{:?}", llc::edge_rotation(t, edge)),
                ));
            }
        }
    }
    // Joins of every kind were crossed: plain, reversed, and both quarter turns.
    assert!(checked.len() >= 4, "{checked:?}");
}

#[test]
fn c_point_vectors_rotate_exactly() {
    let n = 6;
    let g = synth::llc_geometry(n, 1);
    let len = NTILES * n * n;
    for (flow, en) in flows() {
        let (mut u, mut v) = (vec![0f32; len], vec![0f32; len]);
        for p in 0..len {
            let (e, nn) = en(g.yc[p]);
            let (x, y) = analytic::to_model_xy(e, nn, g.angle_cs[p], g.angle_sn[p]);
            u[p] = x as f32;
            v[p] = y as f32;
        }
        let (mut uc, mut vc) = (vec![0f32; len], vec![0f32; len]);
        vector::to_centres(n, (PointType::C, &u), (PointType::C, &v), &mut uc, &mut vc).unwrap();
        let cs: Vec<f32> = g.angle_cs.iter().map(|&x| x as f32).collect();
        let sn: Vec<f32> = g.angle_sn.iter().map(|&x| x as f32).collect();
        let (mut east, mut north) = (vec![0f32; len], vec![0f32; len]);
        vector::rotate(&cs, &sn, &uc, &vc, &mut east, &mut north);
        for p in 0..len {
            let (e, nn) = en(g.yc[p]);
            assert!((f64::from(east[p]) - e).abs() < 1e-5, "{flow} east at {p}");
            assert!(
                (f64::from(north[p]) - nn).abs() < 1e-5,
                "{flow} north at {p}"
            );
        }
    }
}

/// The factor file the store cached beside a sample's output.
fn cached_factors(sample: &Sample) -> Arc<Factors> {
    let dir = sample.out().join("edp_factors");
    let file: PathBuf = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("cached factors");
    Arc::new(Factors::open(&file).unwrap())
}

#[test]
fn stress_granule_holds_the_rotated_wind() {
    let sample = Sample::new(10, 2, 1, &["EXFtaux", "EXFtauy", "oceTAUX", "oceTAUY"]);
    let grid = grid_of(&sample);
    let factors = common::half_degree_factors(&grid, &sample.out().join("edp_factors"));
    let ctx = edp::granule::Context {
        metadata: Arc::new(edp::metadata::MetadataSet::embedded().unwrap()),
        grid: Arc::new(grid),
        encoding: edp::granule::Encoding::default(),
        nonfinite: Default::default(),
        factors: Some(factors),
        coords: Default::default(),
    };
    let tasks = latlon_tasks(&sample, "OCEAN_AND_ICE_SURFACE_STRESS");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].variables.len(),
        4,
        "{:?}",
        tasks[0].variables.keys()
    );
    let produced = edp::run::produce(
        &tasks[0],
        &ctx,
        Default::default(),
        &edp::storage::Storage::new(&Default::default()),
    )
    .unwrap();
    let f = cached_factors(&sample);
    let r = edp::ncio::NcReader::open(&produced.path).unwrap();
    let t_days = analytic::time_days(sample.report.monthly_steps[0]);
    let lv = f.level(0).unwrap();
    let grid = &ctx.grid;
    for (var, east) in [("EXFtaue", true), ("EXFtaun", false)] {
        let got = r.read_f32(var).unwrap();
        assert_eq!(got.len(), 360 * 720);
        // Expected: the factor-weighted mean of the analytic wind at the sources
        // (C-point components, so rotation is exact up to float32).
        let mut next = 0;
        for (t, v) in got.iter().enumerate() {
            if next < lv.targets.len() && lv.targets[next] as usize == t {
                let (a, b) = (lv.row_ptr[next] as usize, lv.row_ptr[next + 1] as usize);
                let want: f64 = (a..b)
                    .map(|e| {
                        let p = lv.cols[e] as usize;
                        let (we, wn) = analytic::wind_stress_en(
                            grid.horizontal(edp::grid::GridVar::Xc).unwrap()[p] as f64,
                            grid.horizontal(edp::grid::GridVar::Yc).unwrap()[p] as f64,
                            t_days,
                        );
                        f64::from(lv.weights[e]) * if east { we } else { wn }
                    })
                    .sum();
                assert!(
                    (f64::from(*v) - want).abs() < 2e-6,
                    "{var} at {t}: {v} vs {want}"
                );
                next += 1;
            } else {
                assert_eq!(*v, FILL, "{var} at {t}: land must be fill");
            }
        }
    }
    // valid_min/max describe the lat-lon values.
    let attrs = r.var_attrs("EXFtaue").unwrap();
    let got = r.read_f32("EXFtaue").unwrap();
    let lo = got
        .iter()
        .filter(|v| **v != FILL)
        .cloned()
        .fold(f32::MAX, f32::min);
    let vmin = attrs.iter().find(|(k, _)| k == "valid_min").unwrap();
    assert_eq!(vmin.1, edp::ncio::AttrValue::F32(lo));
}
