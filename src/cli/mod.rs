//! The command-line surface: argument definitions, logging set-up, one function per
//! subcommand, and the exit-code contract.
//!
//! Exit codes: 0 everything asked was done; 1 some task failed (the others were
//! still produced); 2 usage or configuration error before any work; 3 interrupted.

mod check_metadata;
mod demo;
mod factors;
mod groupings;
mod plan;
mod plot;
mod preflight;
mod references;
mod run;
mod status;
mod sync;
mod synth;
mod tasks;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::storage::Storage;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// `edp --version`: the version and which netCDF/HDF5 build this binary links.
const BUILD_VERSION: &str = if cfg!(feature = "parallel-hdf5") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (parallel-hdf5: netCDF-C/HDF5 with MPI)"
    )
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (serial netCDF-C/HDF5)")
};

pub const EXIT_OK: u8 = 0;
pub const EXIT_TASKS_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 3;

/// The exit-code contract, at the end of every `--help`.
const EXIT_CODES_HELP: &str = "Exit status: 0 everything asked was done; 1 some task failed (the \
others were done; the same command retries them); 2 usage or configuration error, before \
any work; 3 interrupted (the same command resumes).
Options with [env: EDP_...] may be set by that environment variable instead.";

#[derive(Parser, Debug)]
#[command(
    name = "edp",
    version = BUILD_VERSION,
    about = "ECCO Dataset Production: MITgcm MDS output to ECCO NetCDF-4 granules",
    long_about = None
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(flatten)]
    settings: crate::settings::Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Synthesise LLC inputs, build a small task list and produce its granules.
    Demo(DemoArgs),
    /// Write a deterministic synthetic LLC-N dataset (MDS grid + model output).
    Synth(synth::SynthArgs),
    /// List the groupings a jobs file can name: id, name, dimension and frequencies.
    Groupings(groupings::GroupingsArgs),
    /// Expand a jobs file into a task list (EDP's JSON schema).
    Tasks(tasks::TasksArgs),
    /// Produce the granules of a task list (EDP's or ours).
    Run(run::RunArgs),
    /// Build the native → lat-lon mapping factors of a grid into one file.
    Factors(factors::FactorsArgs),
    /// Mirror a finished local output tree (and its manifest) to s3://bucket/prefix.
    Sync(sync::SyncArgs),
    /// Check an output tree against its manifest (sizes, sha256, extra granules).
    Verify(verify::VerifyArgs),
    /// Draw a quick-look PNG of one field of a granule (native tiles or lat-lon map).
    Plot(plot::PlotArgs),
    /// List every problem of a metadata set (file and line), as `run` and `tasks` check it.
    CheckMetadata(check_metadata::CheckMetadataArgs),
    /// Write one virtual Zarr (kerchunk JSON) reference file per collection under DEST.
    References(references::ReferencesArgs),
    /// Where a destination stands: done / failed / not run per grouping x product x
    /// frequency, the last failures and the rate, while a run is going or after.
    Status(status::StatusArgs),
    /// The destination's manifest: `edp manifest export DEST` writes edp-manifest.json.
    Manifest(status::ManifestArgs),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo writes its inputs, task list and granules.
    #[arg(
        short = 'o',
        long = "output",
        alias = "out",
        value_name = "DIR",
        default_value = "edp-demo"
    )]
    pub out: PathBuf,
    /// Tile size N of the synthetic LLC grid.
    #[arg(long, default_value_t = 90)]
    pub n: usize,
    /// Monthly means to synthesise and produce.
    #[arg(long, default_value_t = 2)]
    pub months: usize,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::settings::threads)]
    pub threads: Option<usize>,
}

fn init_logging(level: &str) {
    let env = env_logger::Env::default().default_filter_or(level);
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .format_target(false)
        .try_init();
}

pub(crate) fn init_threads(threads: Option<usize>) {
    if let Some(t) = threads {
        // Only fails if a pool already exists, which is then used as is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global();
    }
}

/// After exit 1 or 3, the command that picks the run up again (the same command: done
/// granules are skipped), quoted for a POSIX shell.
pub(crate) fn resume_hint(code: u8) -> Option<String> {
    let why = match code {
        EXIT_TASKS_FAILED => "to retry the failed tasks (the others are skipped)",
        EXIT_INTERRUPTED => "to resume (the granules already made are skipped)",
        _ => return None,
    };
    let quote = |a: String| {
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./=:,@%+-".contains(c));
        if plain {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let args: Vec<String> = std::env::args().map(quote).collect();
    let launcher = if crate::settings::env_set("OMPI_COMM_WORLD_SIZE")
        || crate::settings::env_set("PMI_RANK")
        || crate::settings::env_set("SLURM_STEP_ID")
    {
        " (under the same launcher)"
    } else {
        ""
    };
    Some(format!(
        "edp: {why}, run again{launcher}: {}",
        args.join(" ")
    ))
}

/// Runs the CLI and maps the outcome to the exit-code contract.
pub fn main_entry() -> ExitCode {
    crate::ncio::library_init();
    // Every subcommand's --help ends with the exit codes.
    let command = Cli::command()
        .after_help(EXIT_CODES_HELP)
        .mut_subcommands(|c| c.after_help(EXIT_CODES_HELP));
    let parsed = command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_logging(&cli.log_level);
    // Made once from the settings and passed down; dropping it at the end removes this
    // process's scratch files (S3 inputs, staged granules).
    let storage = Arc::new(Storage::new(&cli.settings));
    let outcome = match cli.command {
        Command::Demo(a) => demo::run(&a, &storage),
        Command::Synth(a) => synth::run(&a),
        Command::Groupings(a) => groupings::run(&a, &storage),
        Command::Tasks(a) => tasks::run(&a, &storage),
        Command::Run(a) => run::run(&a, &cli.settings, &storage),
        Command::Factors(a) => factors::run(&a, &storage),
        Command::Sync(a) => sync::run(&a, &storage),
        Command::Verify(a) => verify::run(&a, &storage),
        Command::Plot(a) => plot::run(&a),
        Command::CheckMetadata(a) => check_metadata::run(&a, &storage),
        Command::References(a) => references::run(&a, &storage),
        Command::Status(a) => status::status(&a, &cli.settings, &storage),
        Command::Manifest(a) => status::manifest(&a, &cli.settings, &storage),
    };
    drop(storage);
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("edp: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
