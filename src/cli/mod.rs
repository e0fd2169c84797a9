//! The command-line surface: argument definitions, logging set-up, one function per
//! subcommand, and the exit-code contract.
//!
//! Exit codes: 0 everything asked was done; 1 some task failed (the others were
//! still produced); 2 usage or configuration error before any work; 3 interrupted.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::granule::Encoding;
use crate::run::{self, Overrides, Shared};
use crate::synth::{self, SynthConfig};
use crate::tasks;

pub const EXIT_OK: u8 = 0;
pub const EXIT_TASKS_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "edp",
    version,
    about = "ECCO Dataset Production: MITgcm MDS output to ECCO NetCDF-4 granules",
    long_about = None
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Synthesise LLC inputs, build a small task list and produce its granules.
    Demo(DemoArgs),
    /// Write a deterministic synthetic LLC-N dataset (MDS grid + model output).
    Synth(SynthArgs),
    /// Produce the granules of a task list (EDP's or ours).
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo writes its inputs, task list and granules.
    #[arg(long, default_value = "edp-demo")]
    pub out: PathBuf,
    /// Tile size N of the synthetic LLC grid.
    #[arg(long, default_value_t = 90)]
    pub n: usize,
    /// Monthly means to synthesise and produce.
    #[arg(long, default_value_t = 2)]
    pub months: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Output directory (grid in <out>/grid, model output in <out>/<release>/diags_*).
    #[arg(long)]
    out: PathBuf,
    /// Tile size N (90 = LLC90).
    #[arg(long, default_value_t = 90)]
    n: usize,
    /// Vertical levels.
    #[arg(long, default_value_t = 50)]
    levels: usize,
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
    /// Only these variables (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    variables: Option<Vec<String>>,
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Task list (JSON array of tasks, as EDP's edp_create_job_task_list writes).
    #[arg(long)]
    tasks: PathBuf,
    /// Grid location for every task, overriding the tasks' ecco_grid_loc.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// ECCO metadata directory (default: the embedded V4r4 set).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// zlib level of data variables (EDP: 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9))]
    deflate: u8,
    #[arg(long)]
    threads: Option<usize>,
}

fn init_logging(level: &str) {
    let env = env_logger::Env::default().default_filter_or(level);
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .format_target(false)
        .try_init();
}

fn init_threads(threads: Option<usize>) {
    if let Some(t) = threads {
        // Only fails if a pool already exists, which is then used as is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global();
    }
}

/// Runs the CLI and maps the outcome to the exit-code contract.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_logging(&cli.log_level);
    let outcome = match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Synth(a) => cmd_synth(&a),
        Command::Run(a) => cmd_run(&a),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("edp: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn cmd_synth(a: &SynthArgs) -> anyhow::Result<u8> {
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
    println!(
        "synthesised LLC{} x {} levels into {} ({report:?}) in {:.1} s",
        a.n,
        a.levels,
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(EXIT_OK)
}

fn cmd_run(a: &RunArgs) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let list = tasks::read_task_list(&a.tasks)?;
    let mut shared = Shared::new(
        Overrides {
            grid: a.grid.clone(),
            metadata: a.metadata.clone(),
        },
        Encoding {
            deflate_level: a.deflate,
            shuffle: true,
        },
    )?;
    let summary = run::run_serial(&list, &mut shared);
    print_summary(&summary);
    Ok(if summary.failed() > 0 {
        EXIT_TASKS_FAILED
    } else {
        EXIT_OK
    })
}

pub(crate) fn print_summary(s: &run::RunSummary) {
    let secs = s.elapsed.as_secs_f64();
    println!(
        "{} done, {} failed, {:.1} MB written in {:.2} s ({:.1} granules/s)",
        s.done(),
        s.failed(),
        s.bytes() as f64 / 1e6,
        secs,
        if secs > 0.0 {
            s.done() as f64 / secs
        } else {
            0.0
        }
    );
    for o in &s.outcomes {
        if let Err(e) = &o.result {
            println!("FAILED task {} {}: {e}", o.index, o.granule);
        }
    }
}
