//! Command-line surface.
use std::process::ExitCode;
pub fn main_entry() -> ExitCode { ExitCode::SUCCESS }
