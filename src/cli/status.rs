//! `edp status DEST` and `edp manifest export DEST`: a destination's run state as a
//! person or an EDP-era tool reads it. DEST is reached as `edp run` reaches it: a
//! directory, or `s3://bucket/prefix` with its local state directory (`--state-dir`);
//! with no local state, an S3 destination's published manifest is read.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::run::destination::Destination;
use crate::run::manifest::{self, MANIFEST_NAME};
use crate::run::store::Store;
use crate::storage::Storage;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The destination: a directory or s3://bucket/prefix.
    dest: String,
}

#[derive(Args, Debug)]
pub struct ManifestArgs {
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Subcommand, Debug)]
enum ManifestCommand {
    /// Write the destination's manifest as one `edp-manifest.json` (EDP-era JSON).
    Export {
        /// The destination: a directory or s3://bucket/prefix.
        dest: String,
        /// Where to write it (default: DEST/edp-manifest.json, or the state
        /// directory's for an S3 destination).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

/// The state directory of `dest` as `edp run` would use it, and a temporary directory
/// holding an S3 destination's published manifest when there is no local state.
fn state_of(
    dest: &str,
    settings: &crate::settings::Settings,
    storage: &Storage,
) -> anyhow::Result<(PathBuf, Option<tempfile_dir::TempDir>)> {
    let d = Destination::new(Some(dest), &[], settings.state_dir.as_deref())?;
    let state = d.state_dir().to_path_buf();
    let local = Store::at(&state).exists()
        || manifest::manifest_path(&state).exists()
        || !crate::run::journal::journal_files(&state)
            .unwrap_or_default()
            .is_empty();
    match d.s3() {
        Some(url) if !local => {
            let tmp = tempfile_dir::TempDir::new()?;
            let published = url.join(MANIFEST_NAME);
            if storage.s3().head(&published)?.is_none() {
                anyhow::bail!("{dest} has no run state here ({}) and no published {MANIFEST_NAME}; give --state-dir", state.display());
            }
            storage
                .s3()
                .download(&published, &manifest::manifest_path(tmp.path()))?;
            log::info!(
                "no local run state at {}: reading {published}",
                state.display()
            );
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
        _ => Ok((state, None)),
    }
}

/// Exit 0 when every task is done, 1 when some failed or are not run, 2 when there is
/// no run state.
pub fn status(
    a: &StatusArgs,
    settings: &crate::settings::Settings,
    storage: &Storage,
) -> anyhow::Result<u8> {
    let (state, _tmp) = state_of(&a.dest, settings, storage)?;
    let report = match crate::run::status::status(&state) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            return Ok(EXIT_USAGE);
        }
    };
    print!("{}", report.text(&a.dest));
    let c = report.counts();
    Ok(if c.failed == 0 && c.not_run == 0 {
        EXIT_OK
    } else {
        EXIT_TASKS_FAILED
    })
}

pub fn manifest(
    a: &ManifestArgs,
    settings: &crate::settings::Settings,
    storage: &Storage,
) -> anyhow::Result<u8> {
    match &a.command {
        ManifestCommand::Export { dest, out } => {
            let (state, _tmp) = state_of(dest, settings, storage)?;
            let out = out
                .clone()
                .unwrap_or_else(|| manifest::manifest_path(&state));
            if !Store::at(&state).exists() {
                // A destination of an earlier edp: its manifest is already this file.
                let old = manifest::manifest_path(&state);
                if old.exists() {
                    if old != out {
                        std::fs::copy(&old, &out)?;
                    }
                    println!("{}", out.display());
                    return Ok(EXIT_OK);
                }
            }
            let n = manifest::export(&state, &out)
                .map_err(|e| anyhow::anyhow!(crate::error::chain(&e)))?;
            log::info!("{n} record(s) exported");
            println!("{}", out.display());
            Ok(EXIT_OK)
        }
    }
}

/// A temporary directory removed on drop (tempfile is a dev-dependency only).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<TempDir> {
            let p = std::env::temp_dir().join(format!(
                "edp-status-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(TempDir(p))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
