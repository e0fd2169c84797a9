//! `edp demo`: the whole pipeline on synthetic LLC inputs, in one command.

use std::time::Instant;

use anyhow::Context as _;

use super::{init_threads, print_summary, DemoArgs, EXIT_OK, EXIT_TASKS_FAILED};
use crate::granule::Encoding;
use crate::grid::Grid;
use crate::metadata::Product;
use crate::run::{self, Overrides, Shared};
use crate::synth::{self, SynthConfig};
use crate::tasks::{self, Locations};
use crate::time::{DailyDate, Frequency};

/// Native groupings the synthetic data covers (by granule prefix).
const DEMO_GROUPINGS: &[&str] = &[
    "SEA_SURFACE_HEIGHT",
    "OCEAN_TEMPERATURE_SALINITY",
    "OCEAN_AND_ICE_SURFACE_STRESS",
    "OCEAN_VELOCITY",
];

pub fn run(a: &DemoArgs) -> anyhow::Result<u8> {
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
    println!(
        "synthesised LLC{} x {} levels, {} month(s): {} files, {:.1} MB in {:.1} s",
        cfg.n,
        cfg.nz,
        cfg.months,
        report.files_written,
        report.bytes_written as f64 / 1e6,
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

    let mut shared = Shared::new(
        Overrides {
            grid: Some(grid_dir.clone()),
            metadata: None,
        },
        Encoding::default(),
    )?;
    let m = shared.metadata();
    let loc = Locations {
        dest_root: a.out.join("output").to_string_lossy().into_owned(),
        grid: Some(grid_dir.to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let source = input.join(&cfg.release).to_string_lossy().into_owned();
    let mut list = Vec::new();
    for prefix in DEMO_GROUPINGS {
        let g = m
            .grouping_by_filename(Product::Native, prefix)
            .with_context(|| format!("grouping {prefix} is not in the metadata"))?;
        list.extend(tasks::tasks_for_steps(
            g,
            Frequency::AvgMon,
            &report.monthly_steps,
            &source,
            &m.release,
            DailyDate::default(),
            &loc,
        ));
    }
    let task_file = a.out.join("tasks.json");
    tasks::write_task_list(&task_file, &list)?;
    println!("wrote {} ({} tasks)", task_file.display(), list.len());

    let summary = run::run_serial(&list, &mut shared);
    for o in &summary.outcomes {
        if let Ok(p) = &o.result {
            println!(
                "  {}  {:.1} MB  {:.2} s",
                p.path.display(),
                p.bytes as f64 / 1e6,
                o.elapsed.as_secs_f64()
            );
        }
    }
    print_summary(&summary);
    println!("demo finished in {:.1} s", total.elapsed().as_secs_f64());
    Ok(if summary.failed() > 0 {
        EXIT_TASKS_FAILED
    } else {
        EXIT_OK
    })
}
