//! `edp verify MANIFEST`: check an output tree against its completion manifest, local
//! or on S3 (`s3://bucket/prefix` or its `edp-manifest.json`, reached as `edp run`
//! reaches S3).

use std::path::PathBuf;

use clap::Args;

use super::{init_threads, EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::run::verify;
use crate::storage::{self, Storage};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The manifest (`<dest>/edp-manifest.json`) or the directory holding it; on S3,
    /// `s3://bucket/prefix` (a run's --dest) or its `edp-manifest.json`.
    manifest: PathBuf,
    /// Check sizes only, not sha256 (fast).
    #[arg(long)]
    no_checksum: bool,
    /// Also re-open each granule and check its content: the grouping's variables and
    /// the product's dimensions, no NaN, values within valid_min/valid_max, time and
    /// time_bnds agreeing with the file name's date.
    #[arg(long)]
    content: bool,
    /// Metadata directory giving the groupings (`--content`; default: the embedded V4r4 set).
    #[arg(long, requires = "content")]
    metadata: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::settings::threads)]
    threads: Option<usize>,
}

/// Exit 0 when the tree matches, 1 on any mismatch or an interrupted run, 2 when the
/// manifest is unreadable.
pub fn run(a: &VerifyArgs, storage: &Storage) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let metadata = if a.content {
        let m = match &a.metadata {
            Some(dir) => crate::metadata::MetadataSet::from_dir(dir),
            None => crate::metadata::MetadataSet::embedded(),
        };
        match m {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("edp: error: {}", crate::error::chain(&e));
                return Ok(EXIT_USAGE);
            }
        }
    } else {
        None
    };
    let loc = a.manifest.to_string_lossy();
    let checked = match storage::s3_url(&loc) {
        Some(Err(e)) => Err(verify::VerifyError::S3 {
            loc: loc.to_string(),
            what: "not a usable S3 location:",
            source: Box::new(e.into()),
        }),
        Some(Ok(url)) => {
            crate::run::verify_s3::verify(storage, &url, !a.no_checksum, metadata.as_ref())
                .map(|(manifest, r)| (manifest.to_string(), r))
        }
        None => {
            let path = if a.manifest.is_dir() {
                a.manifest.join(crate::run::manifest::MANIFEST_NAME)
            } else {
                a.manifest.clone()
            };
            verify::verify(&path, !a.no_checksum, metadata.as_ref())
                .map(|r| (path.display().to_string(), r))
        }
    };
    let (path, report) = match checked {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            return Ok(EXIT_USAGE);
        }
    };
    for p in &report.problems {
        println!("{p}");
    }
    let changed = report.problems.iter().any(|p| {
        matches!(
            p,
            verify::Problem::Checksum { .. } | verify::Problem::Content { .. }
        )
    });
    if changed {
        println!(
            "a plain `edp run` skips a granule whose size matches its record: `edp run --verify` \
             (same arguments) checks sha256 too and redoes the granules whose content changed"
        );
    }
    // A run that stopped before every task was attempted is not a finished tree, even
    // when everything it did write checks out.
    let incomplete = crate::run::manifest::Manifest::read(std::path::Path::new(&path))
        .ok()
        .and_then(|m| m.last_run)
        .filter(|r| r.interrupted || r.not_run > 0);
    if let Some(r) = &incomplete {
        println!(
            "INCOMPLETE the last run ({}, started {}) was interrupted: {} of {} task(s) not run; \
             the same `edp run` command finishes it",
            r.run_id, r.started, r.not_run, r.tasks
        );
    }
    println!(
        "{}: {} granule(s), {:.1} MB checked{}: {}",
        path,
        report.checked,
        report.bytes as f64 / 1e6,
        match (a.no_checksum, a.content) {
            (true, false) => " (sizes only)",
            (false, false) => " (sizes and sha256)",
            (true, true) => " (sizes and content)",
            (false, true) => " (sizes, sha256 and content)",
        },
        match (report.problems.len(), incomplete.is_some()) {
            (0, false) => "OK".to_string(),
            (0, true) => "incomplete run".to_string(),
            (n, false) => format!("{n} problem(s)"),
            (n, true) => format!("{n} problem(s), incomplete run"),
        }
    );
    Ok(if report.problems.is_empty() && incomplete.is_none() {
        EXIT_OK
    } else {
        EXIT_TASKS_FAILED
    })
}
