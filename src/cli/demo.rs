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
    // Absolute, so that its task list runs from any directory (paths that travel).
    let out = std::path::absolute(&a.out).unwrap_or_else(|_| a.out.clone());
    let input = out.join("input");
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
    let factors_file = out
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

    let list = demo_tasks(&cfg, &report, &input, &grid_dir, &factors_file, &out)?;
    let task_file = out.join("tasks.json");
    tasks::write_task_list(&task_file, &list)?;
    println!("wrote {} ({} tasks)", task_file.display(), list.len());

    // The same SPMD runner as `edp run`, as a world of one rank: journal, manifest
    // (<out>/output/edp-manifest.json) and summary included.
    let cfg = SpmdConfig {
        dest: Some(out.join("output").to_string_lossy().into_owned()),
        state_dir: None,
        storage: std::sync::Arc::clone(storage),
        overrides: Overrides {
            grid: Some(grid_dir.clone()),
            metadata: None,
            factors: FactorSource {
                file: Some(Ok(factors_file.clone())),
                ..Default::default()
            },
            ..Default::default()
        },
        encoding: Encoding::default(),
        write: Default::default(),
        nonfinite: Default::default(),
        threads: rayon::current_num_threads(),
        verify: false,
        progress_every: std::time::Duration::ZERO,
        debug: Default::default(),
        ranks_per_granule: None,
        group_method: Default::default(),
    };
    let stop = StopFlag::install().unwrap_or_default();
    let (end, message) = spmd::run_spmd(&World::serial(), &cfg, &stop, &|| Ok(list.clone().into()));
    if let Some(m) = message {
        eprintln!("edp: error: {m}");
    }
    println!("demo finished in {:.1} s", total.elapsed().as_secs_f64());
    Ok(match end {
        RunEnd::AllDone => EXIT_OK,
        RunEnd::SomeFailed => EXIT_TASKS_FAILED,
        RunEnd::Config => EXIT_USAGE,
        RunEnd::Interrupted => EXIT_INTERRUPTED,
    })
}

/// The demo's task list: the monthly granules of [`DEMO_GROUPINGS`], the
/// time-invariant ones of [`DEMO_INVARIANT`], both products, and the four 1D
/// collections.
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
    // The four 1D collections, from synthetic time series (a week of hourly snapshots
    // and daily means, the demo's months): one task each, run, recorded and verified
    // with the others (<out>/output/V4r4/1D/...).
    let one_d_in = report.release_dir.join("1D");
    crate::synth::oned::write_inputs(&one_d_in, 7, cfg.months)
        .with_context(|| format!("synthesising 1D inputs into {}", one_d_in.display()))?;
    for d in crate::oned::DATASETS {
        let input = one_d_in.join(d.input).to_string_lossy().into_owned();
        list.push(tasks::oned::build_task(&d, &input, &loc)?);
    }
    Ok(list)
}
