//! The `edp` binary: parse arguments, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    edp::cli::main_entry()
}
