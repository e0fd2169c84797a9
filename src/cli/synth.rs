//! `edp synth`: write a deterministic synthetic LLC-N dataset.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{init_threads, EXIT_OK};
use crate::synth::{self, SynthConfig};

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (grid in <out>/grid, model output in <out>/<release>/diags_*).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Tile size N (90 = LLC90).
    #[arg(long, default_value_t = 90)]
    n: usize,
    /// Vertical levels.
    #[arg(long, default_value_t = 50)]
    levels: usize,
    /// Release label: the model output goes under <out>/<release>/ (EDP's layout).
    #[arg(long, default_value = "V4r4")]
    release: String,
    /// Monthly means to write.
    #[arg(long, default_value_t = 2)]
    months: usize,
    /// Daily means to write.
    #[arg(long, default_value_t = 0)]
    days: usize,
    /// Daily snapshots to write.
    #[arg(long, default_value_t = 0)]
    snapshots: usize,
    /// Only these variables (comma-separated); default: the 13 of the synthetic table.
    /// `all`: every field the metadata's groupings read (2D and 3D, C/U/V/G points),
    /// enough to make every grouping.
    #[arg(long, value_delimiter = ',')]
    variables: Option<Vec<String>>,
    /// Also write the time-invariant mixing coefficients (DIFFKR, KAPGM, KAPREDI) under
    /// <out>/<release>/time_invariant/.
    #[arg(long)]
    invariant: bool,
    /// Also write the 1D collections' time-series inputs (Pa_global.nc, GMSL.nc,
    /// GMSL_day.nc, SBO_global.nc) into OUT/<release>/1D: hourly snapshots and daily means
    /// over --days (at least 3), monthly means over --months.
    #[arg(long)]
    one_d: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::settings::threads)]
    threads: Option<usize>,
}

pub fn run(a: &SynthArgs) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let cfg = SynthConfig {
        n: a.n,
        nz: a.levels,
        release: a.release.clone(),
        months: a.months,
        days: a.days,
        snapshots: a.snapshots,
        variables: a.variables.clone(),
    };
    let t = std::time::Instant::now();
    let report = synth::generate(&cfg, &a.out)
        .with_context(|| format!("synthesising LLC{} data into {}", a.n, a.out.display()))?;
    if a.one_d {
        let dir = report.release_dir.join("1D");
        synth::oned::write_inputs(&dir, a.days.max(3), a.months)
            .with_context(|| format!("synthesising 1D inputs into {}", dir.display()))?;
    }
    if a.invariant {
        synth::invariant::write_mixing(cfg.n, cfg.nz, &report.release_dir).with_context(|| {
            format!("synthesising mixing coefficients into {}", a.out.display())
        })?;
    }
    println!(
        "synthesised LLC{} x {} levels into {} in {:.1} s: {} file(s), {:.1} MB; grid {}; \
         model output {} ({} variable(s); {} monthly, {} daily, {} snapshot step(s))",
        a.n,
        a.levels,
        a.out.display(),
        t.elapsed().as_secs_f64(),
        report.files_written,
        report.bytes_written as f64 / 1e6,
        report.grid_dir.display(),
        report.release_dir.display(),
        report.variables.len(),
        report.monthly_steps.len(),
        report.daily_steps.len(),
        report.snapshot_steps.len()
    );
    Ok(EXIT_OK)
}
