//! `edp demo`: the whole pipeline on synthetic LLC inputs, in one command.

use std::time::Instant;

use anyhow::Context as _;

use super::{init_threads, DemoArgs, EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::granule::Encoding;
use crate::grid::Grid;
use crate::metadata::{MetadataSet, Product};
use crate::regrid::factors::{self, BuildOptions};
use crate::regrid::store::FactorSource;
use crate::regrid::{format, TargetGrid};
use crate::run::mpi::World;
use crate::run::signal::StopFlag;
use crate::run::spmd::{self, RunEnd, SpmdConfig};
use crate::run::Overrides;
use crate::synth::{self, SynthConfig};
use crate::tasks::{self, Locations};
use crate::time::{DailyDate, Frequency};

/// Groupings the synthetic data covers (by granule prefix), per product.
const DEMO_GROUPINGS: &[(Product, &str)] = &[
    (Product::Native, "SEA_SURFACE_HEIGHT"),
    (Product::Native, "OCEAN_TEMPERATURE_SALINITY"),
    (Product::Native, "OCEAN_AND_ICE_SURFACE_STRESS"),
    (Product::Native, "OCEAN_VELOCITY"),
    (Product::Latlon, "SEA_SURFACE_HEIGHT"),
    (Product::Latlon, "OCEAN_TEMPERATURE_SALINITY"),
    (Product::Latlon, "OCEAN_AND_ICE_SURFACE_STRESS"),
    (Product::Latlon, "OCEAN_VELOCITY"),
];

/// The time-invariant datasets (geometry from the grid, mixing from MDS inputs).
const DEMO_INVARIANT: &[&str] = &["GRID_GEOMETRY", "OCEAN_3D_MIXING_COEFFS"];

pub fn run(a: &DemoArgs, storage: &std::sync::Arc<crate::storage::Storage>) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let total = Instant::now();
    let input = a.out.join("input");
    let grid_dir = input.join("grid");
    let cfg = SynthConfig {
        n: a.n,
        months: a.months,
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let report = synth::generate(&cfg, &input)
        .with_context(|| format!("synthesising inputs into {}", input.display()))?;
    let mixing = synth::invariant::write_mixing(cfg.n, cfg.nz, &report.release_dir)
        .with_context(|| format!("synthesising mixing coefficients into {}", input.display()))?;
    println!(
        "synthesised LLC{} x {} levels, {} month(s): {} files, {:.1} MB in {:.1} s",
        cfg.n,
        cfg.nz,
        cfg.months,
        report.files_written + mixing.files,
        (report.bytes_written + mixing.bytes) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // ECCO grid directories carry the GRID_GEOMETRY file beside the MDS grid.
    let t = Instant::now();
    let grid = Grid::from_mds_dir(&grid_dir)?;
    let geometry = grid_dir.join(format!(
        "GRID_GEOMETRY_ECCO_{}_native_llc{:04}.nc",
        cfg.release, cfg.n
    ));
    grid.write_geometry_nc(&geometry)?;
    println!(
        "wrote {} in {:.1} s",
        geometry.display(),
        t.elapsed().as_secs_f64()
    );

    // Mapping factors for the lat-lon granules, built once (`edp factors`).
    let t = Instant::now();
    let factors_file = a
        .out
        .join("factors")
        .join(format!("edp_factors_llc{:04}_0p50deg.bin", cfg.n));
    let set = factors::build(
        &grid,
        &BuildOptions {
            target: TargetGrid::ecco_half_degree(),
            levels: grid.nz,
        },
    )?;
    let bytes = format::write(&set, &factors_file)?;
    println!(
        "wrote {} ({:.1} MB) in {:.1} s",
        factors_file.display(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let list = demo_tasks(&cfg, &report, &input, &grid_dir, &factors_file, &a.out)?;
    let task_file = a.out.join("tasks.json");
    tasks::write_task_list(&task_file, &list)?;
    println!("wrote {} ({} tasks)", task_file.display(), list.len());

    // The same SPMD runner as `edp run`, as a world of one rank: journal, manifest
    // (<out>/output/edp-manifest.json) and summary included.
    let cfg = SpmdConfig {
        dest: Some(a.out.join("output").to_string_lossy().into_owned()),
        state_dir: None,
        storage: std::sync::Arc::clone(storage),
        overrides: Overrides {
            grid: Some(grid_dir.clone()),
            metadata: None,
            factors: FactorSource {
                file: Some(Ok(factors_file.clone())),
                ..Default::default()
            },
        },
        encoding: Encoding::default(),
        nonfinite: Default::default(),
        threads: rayon::current_num_threads(),
        verify: false,
        progress_every: std::time::Duration::ZERO,
        debug: Default::default(),
        ranks_per_granule: None,
        group_writer: Default::default(),
    };
    let stop = StopFlag::install().unwrap_or_default();
    let (end, message) = spmd::run_spmd(&World::serial(), &cfg, &stop, &|| Ok(list.clone().into()));
    if let Some(m) = message {
        eprintln!("edp: error: {m}");
    }
    let one_d_failed = one_d_collections(a, &report.release_dir)?;
    println!("demo finished in {:.1} s", total.elapsed().as_secs_f64());
    Ok(match end {
        RunEnd::AllDone if one_d_failed => EXIT_TASKS_FAILED,
        RunEnd::AllDone => EXIT_OK,
        RunEnd::SomeFailed => EXIT_TASKS_FAILED,
        RunEnd::Config => EXIT_USAGE,
        RunEnd::Interrupted => EXIT_INTERRUPTED,
    })
}

/// The demo's task list: the monthly granules of [`DEMO_GROUPINGS`] and the
/// time-invariant ones of [`DEMO_INVARIANT`], both products.
fn demo_tasks(
    cfg: &SynthConfig,
    report: &synth::SynthReport,
    input: &std::path::Path,
    grid_dir: &std::path::Path,
    factors_file: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<Vec<tasks::Task>> {
    let m = MetadataSet::embedded()?;
    let mut release = m.release.clone();
    // V4r4's label says llc0090; a demo on another grid size says what it is.
    release.native_label = format!("llc{:04}", cfg.n);
    let loc = Locations {
        dest_root: out.join("output").to_string_lossy().into_owned(),
        grid: Some(grid_dir.to_string_lossy().into_owned()),
        factors: Some(factors_file.to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let source = input.join(&cfg.release).to_string_lossy().into_owned();
    let mut list = Vec::new();
    for (product, prefix) in DEMO_GROUPINGS {
        let g = m.grouping_by_filename(*product, prefix).with_context(|| {
            format!(
                "{} grouping {prefix} is not in the metadata",
                product.name()
            )
        })?;
        list.extend(tasks::tasks_for_steps(
            g,
            Frequency::AvgMon,
            &report.monthly_steps,
            &source,
            &release,
            DailyDate::default(),
            &loc,
        ));
    }
    for product in [Product::Native, Product::Latlon] {
        for prefix in DEMO_INVARIANT {
            let g = m.grouping_named(product, prefix).with_context(|| {
                format!(
                    "{} grouping {prefix} is not in the metadata",
                    product.name()
                )
            })?;
            list.extend(tasks::tasks_for_steps(
                g,
                Frequency::Ti,
                &[synth::invariant::INVARIANT_STEP],
                &source,
                &release,
                DailyDate::default(),
                &loc,
            ));
        }
    }
    Ok(list)
}

/// The four 1D collections, from synthetic time series (a week of hourly snapshots and
/// daily means, the demo's months), into a tree of their own: they are made outside the
/// run (no task, no manifest record yet), so <out>/output still verifies. True when one
/// failed.
fn one_d_collections(a: &DemoArgs, release_dir: &std::path::Path) -> anyhow::Result<bool> {
    let one_d_in = release_dir.join("1D");
    crate::synth::oned::write_inputs(&one_d_in, 7, a.months)
        .with_context(|| format!("synthesising 1D inputs into {}", one_d_in.display()))?;
    let mut one_d_failed = false;
    for d in crate::oned::DATASETS {
        match crate::oned::write(&d, &one_d_in, &a.out.join("output-1D")) {
            Ok(p) => println!("wrote {}", p.display()),
            Err(e) => {
                one_d_failed = true;
                eprintln!("edp: error: 1D {}: {}", d.input, crate::error::chain(&e));
            }
        }
    }
    Ok(one_d_failed)
}
