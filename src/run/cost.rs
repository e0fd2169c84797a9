//! Cost model and static distribution of tasks over ranks.
//!
//! A granule's time is dominated by the bytes it reads, transforms and compresses, so a
//! task's cost is its input bytes (the sizes of its `.data` files, which also captures
//! 2D vs 3D, the number of variables and the grid size), weighted up for lat-lon output
//! (regridding and a larger output grid), plus a fixed per-granule overhead. When an
//! input cannot be examined the cost falls back to the dimension the task declares
//! (3D ≈ 50 × 2D, one LLC90 level per 2D field).
//!
//! The partition is static and deterministic: largest task first, each to the rank with
//! the least cost so far (LPT; within 4/3 of the optimum). It needs no messages while
//! the run goes on, and the run's summary reports the imbalance it achieved.

use std::collections::BTreeSet;
use std::fs;

use crate::metadata::Product;
use crate::tasks::{GranuleName, Task};

/// Bytes of one LLC90 float32 level (13 × 90 × 90 × 4), the fallback unit.
const LEVEL_BYTES: f64 = 421_200.0;
/// Fixed per-granule work (file creation, coordinates, attributes), in input bytes:
/// about 8 levels' worth, fitted to LLC90 native granules (2D ≈ 0.15 s, 3D ≈ 1.4 s).
const OVERHEAD_BYTES: f64 = 8.0 * LEVEL_BYTES;
/// Lat-lon granules: interpolation onto a 0.5° grid of 2.5× as many points per level;
/// measured (benches/mpi_run.rs) at about 2× a native granule of the same inputs.
const LATLON_FACTOR: f64 = 2.0;

/// Estimated cost of a task, in equivalent input bytes.
pub fn estimate(task: &Task) -> f64 {
    let latlon = matches!(
        GranuleName::parse(&task.granule).map(|n| n.product),
        Ok(Product::Latlon)
    );
    estimate_with(task, latlon)
}

/// [`estimate`] of a task whose product is known (`latlon`: a lat-lon granule).
pub fn estimate_with(task: &Task, latlon: bool) -> f64 {
    // Each input file once: a lat-lon vector pair names the same x and y files for
    // both of its output components, and they are read once.
    let files: BTreeSet<&str> = task
        .variables
        .values()
        .flatten()
        .map(|[data, _meta]| data.as_str())
        .collect();
    let input: f64 = files
        .iter()
        .map(|data| match fs::metadata(data) {
            Ok(m) => m.len() as f64,
            Err(_) => fallback_field_bytes(task),
        })
        .sum();
    let factor = if latlon { LATLON_FACTOR } else { 1.0 };
    OVERHEAD_BYTES + input * factor
}

fn fallback_field_bytes(task: &Task) -> f64 {
    if task.dynamic_metadata.dimension.eq_ignore_ascii_case("3D") {
        50.0 * LEVEL_BYTES
    } else {
        LEVEL_BYTES
    }
}

/// Assigns each task (by position in `costs`) to one of `ranks` ranks: largest first,
/// to the least-loaded rank (lowest rank on ties). Returns, per rank, its task positions
/// in the order to run them (largest first).
pub fn partition(costs: &[f64], ranks: usize) -> Vec<Vec<usize>> {
    let ranks = ranks.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; ranks];
    let mut out = vec![Vec::new(); ranks];
    for i in order {
        let r = (0..ranks)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[r] += costs[i];
        out[r].push(i);
    }
    out
}

/// Ranks per granule for the tasks of one run: `Some(g)` for a task written by a group
/// of `g` ranks, `None` for a task written by one rank.
///
/// Only 3D granules on a local path are split (the group writers divide depth levels; a
/// 2D granule has one). `fixed` (`--ranks-per-granule`) gives every such task
/// that group size. Otherwise the cost decides: a task costlier than one rank's fair
/// share of the whole run (total / ranks) would set the run's length alone, so it gets
/// as many ranks as fair shares it holds (at most `ranks`); small granules stay on one
/// rank each, where they are cheapest. A group needs no more memory per rank than one
/// rank writing alone (each rank holds a few levels at a time; the gathering first rank
/// also one received message), so memory per rank does not limit the group size.
pub fn group_sizes(
    costs: &[f64],
    splittable: &[bool],
    ranks: usize,
    fixed: Option<usize>,
) -> Vec<Option<usize>> {
    let total: f64 = costs.iter().sum();
    let fair = total / ranks.max(1) as f64;
    costs
        .iter()
        .zip(splittable)
        .map(|(&c, &split)| {
            if !split || ranks < 2 {
                return None;
            }
            let g = match fixed {
                Some(g) => g,
                None if fair > 0.0 && c > fair => (c / fair).ceil() as usize,
                None => 1,
            };
            Some(g.min(ranks)).filter(|&g| g > 1)
        })
        .collect()
}

/// Largest load over the mean load of a partition (1 = perfect).
pub fn imbalance(loads: &[f64]) -> f64 {
    let n = loads.len();
    if n == 0 {
        return 1.0;
    }
    let mean = loads.iter().sum::<f64>() / n as f64;
    let max = loads.iter().cloned().fold(0.0, f64::max);
    if mean > 0.0 {
        max / mean
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpt_balances_and_covers_every_task_once() {
        // One 3D task (50) and twenty 2D tasks (1..): LPT puts the 3D one alone.
        let mut costs = vec![50.0];
        costs.extend((0..20).map(|i| 1.0 + i as f64 * 0.1));
        let parts = partition(&costs, 2);
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..costs.len()).collect::<Vec<_>>());
        assert_eq!(parts[0][0], 0, "largest first on rank 0");
        let loads: Vec<f64> = parts
            .iter()
            .map(|p| p.iter().map(|&i| costs[i]).sum())
            .collect();
        assert!(imbalance(&loads) < 1.3, "{loads:?}");
        // Within a rank, largest first.
        for p in &parts {
            assert!(p.windows(2).all(|w| costs[w[0]] >= costs[w[1]]));
        }
        // More ranks than tasks: some ranks idle, none twice.
        let parts = partition(&[3.0, 2.0], 3);
        assert_eq!(parts, vec![vec![0], vec![1], vec![]]);
        assert_eq!(partition(&[], 2), vec![Vec::<usize>::new(), vec![]]);
    }

    fn task(granule: &str, dim: &str, vars: &[(&str, &[&str])]) -> Task {
        let variables: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .map(|(v, files)| {
                let pairs: Vec<[String; 2]> = files
                    .iter()
                    .map(|f| [f.to_string(), f.replace(".data", ".meta")])
                    .collect();
                (v.to_string(), serde_json::json!(pairs))
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "granule": granule,
            "variables": variables,
            "dynamic_metadata": {"name": "n", "dimension": dim,
                "time_coverage_start": "", "time_coverage_end": "", "time_coverage_center": "",
                "time_long_name": "", "time_coverage_duration": "",
                "time_coverage_resolution": "", "summary": ""}
        }))
        .unwrap()
    }

    #[test]
    fn cost_counts_each_input_once_and_weights_latlon() {
        let dir = tempfile::tempdir().unwrap();
        let u = dir.path().join("U.data");
        let v = dir.path().join("V.data");
        fs::write(&u, vec![0u8; 1_000_000]).unwrap();
        fs::write(&v, vec![0u8; 1_000_000]).unwrap();
        let (u, v) = (u.to_str().unwrap(), v.to_str().unwrap());
        let native = "/o/X_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";
        let latlon = "/o/X_mon_mean_1992-01_ECCO_V4r4_latlon_0p50deg.nc";
        let pair: &[&str] = &[u, v];
        let once = estimate(&task(latlon, "3D", &[("E", pair)]));
        let twice = estimate(&task(latlon, "3D", &[("E", pair), ("N", pair)]));
        assert_eq!(once, twice, "the same files read once");
        assert_eq!(once, OVERHEAD_BYTES + 2e6 * LATLON_FACTOR);
        assert_eq!(
            estimate(&task(native, "3D", &[("U", &[u]), ("V", &[v])])),
            OVERHEAD_BYTES + 2e6
        );
        // Missing inputs: by declared dimension, 3D = 50 x 2D.
        let missing: &[&str] = &["/no/such.data"];
        let d3 = estimate(&task(native, "3D", &[("T", missing)])) - OVERHEAD_BYTES;
        let d2 = estimate(&task(native, "2D", &[("T", missing)])) - OVERHEAD_BYTES;
        assert_eq!(d3, 50.0 * d2);
    }

    #[test]
    fn only_dominant_splittable_tasks_get_groups() {
        // One 3D granule of 30 among 2D ones of 1 on 4 ranks: fair share 10 → 3 ranks.
        let mut costs = vec![30.0];
        costs.extend([1.0; 10]);
        let mut split = vec![true];
        split.extend([false; 10]);
        let g = group_sizes(&costs, &split, 4, None);
        assert_eq!(g[0], Some(3));
        assert!(g[1..].iter().all(Option::is_none));
        // Balanced 3D tasks stay on one rank each; a fixed size applies to 3D only.
        assert_eq!(
            group_sizes(&[5.0, 5.0], &[true, true], 2, None),
            vec![None, None]
        );
        assert_eq!(
            group_sizes(&[5.0, 5.0], &[true, false], 3, Some(2)),
            vec![Some(2), None]
        );
        // Never more than the ranks there are; one rank never groups.
        assert_eq!(group_sizes(&[100.0], &[true], 3, Some(8)), vec![Some(3)]);
        assert_eq!(group_sizes(&[100.0], &[true], 1, Some(8)), vec![None]);
    }

    #[test]
    fn imbalance_of_loads() {
        assert_eq!(imbalance(&[2.0, 2.0]), 1.0);
        assert_eq!(imbalance(&[3.0, 1.0]), 1.5);
        assert_eq!(imbalance(&[]), 1.0);
    }
}
