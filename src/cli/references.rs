//! `edp references DEST [-o DIR]`: one kerchunk reference file per collection found
//! under DEST (see [`crate::references`]).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::references;

#[derive(Args, Debug)]
pub struct ReferencesArgs {
    /// Local output root (the run's --dest), holding release/product/frequency/GROUPING.
    dest: PathBuf,
    /// Directory for the reference files (default: DEST/references); granule paths in
    /// them are relative to it.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Exit 0 when every collection has its file, 1 when some failed, 2 when DEST cannot
/// be listed or holds no granules.
pub fn run(a: &ReferencesArgs) -> anyhow::Result<u8> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.dest.join("references"));
    Ok(write_for(&a.dest, &out))
}

/// Writes the references of every collection under `dest` into `out`, reporting each;
/// returns the exit code.
pub fn write_for(dest: &Path, out: &Path) -> u8 {
    match references::write_all(dest, out) {
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            EXIT_USAGE
        }
        Ok(done) if done.is_empty() => {
            eprintln!(
                "edp: error: no granules under {} (expected release/product/frequency/GROUPING/*.nc)",
                dest.display()
            );
            EXIT_USAGE
        }
        Ok(done) => {
            let mut failed = 0;
            for (c, r) in done {
                match r {
                    Ok(path) => println!(
                        "wrote {} ({} granule(s) of {})",
                        path.display(),
                        c.granules.len(),
                        c.name
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("edp: error: {}: {}", c.name, crate::error::chain(&e));
                    }
                }
            }
            if failed > 0 {
                EXIT_TASKS_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}
