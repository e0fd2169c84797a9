//! `edp sync LOCAL_TREE s3://bucket/prefix`: mirror a finished local output tree (with
//! its manifest) to S3, for runs that compute and write locally and publish afterwards.
//!
//! One listing of the destination tells which objects exist and their sizes; an object of
//! the same size is skipped when its stored sha256 (`x-amz-meta-sha256`, which `edp`
//! writes on every upload) equals the local file's — taken from the manifest when the
//! manifest records it for a file of that size, computed otherwise. The manifest and the
//! summary go last, and only when every granule is there, so a manifest on S3 never
//! names an object that is missing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use rayon::prelude::*;

use super::{EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::storage::{self, ObjectInfo, S3Url, Storage};

/// Files written after the granules (they describe them).
const LAST: [&str; 2] = ["edp-manifest.json", "edp-summary.txt"];

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The local output tree (a `--dest` of `edp run`).
    local: PathBuf,
    /// The S3 destination, `s3://bucket/prefix`.
    dest: String,
    /// Only say what would be uploaded.
    #[arg(long)]
    dry_run: bool,
}

/// Per file: uploaded (or would be, with --dry-run) and bytes sent, or the failure.
type Outcome = Result<(bool, u64), String>;

/// What to do with one local file.
#[derive(Debug)]
enum Plan {
    Upload { reason: &'static str },
    Skip,
}

/// Files under `root` (relative, `/`-separated), leaving out hidden files and directories
/// (journals in `.edp/`, temporary files of unfinished writes).
fn walk(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let hidden = |e: &walkdir::DirEntry| {
        e.depth() > 0
            && (e.file_name().to_string_lossy().starts_with('.') || storage::is_temp_name(e.path()))
    };
    for e in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| !hidden(e))
    {
        let e = e.with_context(|| format!("listing {}", root.display()))?;
        if e.file_type().is_file() {
            out.push(crate::run::verify::relative(root, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Size and sha256 per granule as the manifest records them (empty without a manifest).
fn manifest_checksums(
    root: &Path,
) -> anyhow::Result<std::collections::HashMap<String, (u64, String)>> {
    let path = root.join(LAST[0]);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut out = std::collections::HashMap::new();
    for r in v["granules"].as_array().into_iter().flatten() {
        if let (Some(g), Some(size), Some(sha)) = (
            r["granule"].as_str(),
            r["size"].as_u64(),
            r["sha256"].as_str(),
        ) {
            out.insert(g.to_string(), (size, sha.to_string()));
        }
    }
    Ok(out)
}

pub fn run(a: &SyncArgs, storage: &Storage) -> anyhow::Result<u8> {
    let s3 = storage.s3();
    let t = Instant::now();
    let dest = match storage::s3_url(&a.dest) {
        Some(Ok(u)) => u,
        Some(Err(e)) => return Err(e.into()),
        None => {
            eprintln!(
                "edp: error: the destination of sync must be s3://bucket/prefix, not {}",
                a.dest
            );
            return Ok(EXIT_USAGE);
        }
    };
    if !a.local.is_dir() {
        eprintln!("edp: error: {} is not a directory", a.local.display());
        return Ok(EXIT_USAGE);
    }
    // The manifest goes up as its export, current with the record store.
    if crate::run::store::Store::at(&a.local).exists() {
        crate::run::manifest::export(&a.local, &a.local.join(LAST[0]))
            .map_err(|e| anyhow::anyhow!(crate::error::chain(&e)))?;
    }
    let files = walk(&a.local)?;
    let recorded = manifest_checksums(&a.local)?;
    let remote = s3
        .objects_under(&dest)
        .with_context(|| format!("listing {dest}"))?;
    log::info!(
        "{} local file(s) under {}, {} object(s) under {dest}",
        files.len(),
        a.local.display(),
        remote.len()
    );

    let decide = |rel: &String| -> anyhow::Result<Plan> {
        let local = a.local.join(rel);
        let size = std::fs::metadata(&local)
            .with_context(|| format!("stat {}", local.display()))?
            .len();
        let Some(obj): Option<&ObjectInfo> = remote.get(rel) else {
            return Ok(Plan::Upload { reason: "new" });
        };
        if obj.size != size {
            return Ok(Plan::Upload {
                reason: "size differs",
            });
        }
        let url = dest.join(rel);
        let remote_sha = s3.head(&url)?.and_then(|(_, sha)| sha);
        let Some(remote_sha) = remote_sha else {
            return Ok(Plan::Upload {
                reason: "no checksum on S3",
            });
        };
        let local_sha = match recorded.get(rel) {
            Some((s, sha)) if *s == size => sha.clone(),
            _ => crate::storage::sha256_file(&local)
                .with_context(|| format!("reading {}", local.display()))?,
        };
        Ok(if local_sha == remote_sha {
            Plan::Skip
        } else {
            Plan::Upload {
                reason: "content differs",
            }
        })
    };

    let (last, granules): (Vec<&String>, Vec<&String>) =
        files.iter().partition(|f| LAST.contains(&f.as_str()));
    let upload = |rel: &String| -> Outcome {
        let plan = decide(rel).map_err(|e| format!("{rel}: {e:#}"))?;
        match plan {
            Plan::Skip => Ok((false, 0)),
            Plan::Upload { reason } => {
                let url: S3Url = dest.join(rel);
                if a.dry_run {
                    println!("would upload {rel} -> {url} ({reason})");
                    return Ok((true, 0));
                }
                let up = s3
                    .upload_file(&a.local.join(rel), &url)
                    .map_err(|e| format!("{rel}: {}", crate::error::chain(&e)))?;
                log::info!("uploaded {url} ({reason}, {:.1} MB)", up.size as f64 / 1e6);
                Ok((true, up.size))
            }
        }
    };
    let mut results: Vec<(&String, Outcome)> =
        granules.par_iter().map(|rel| (*rel, upload(rel))).collect();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if failed == 0 {
        results.extend(last.iter().map(|rel| (*rel, upload(rel))));
    } else if !last.is_empty() {
        log::warn!("not uploading the manifest: {failed} granule(s) failed");
    }
    let uploaded: Vec<u64> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().filter(|(u, _)| *u).map(|(_, b)| *b))
        .collect();
    let skipped = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok((false, _))))
        .count();
    let failures: Vec<&String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    println!(
        "{} {} file(s) ({:.1} MB), {skipped} already there, {} failed, in {:.2} s",
        if a.dry_run {
            "would upload"
        } else {
            "uploaded"
        },
        uploaded.len(),
        uploaded.iter().sum::<u64>() as f64 / 1e6,
        failures.len(),
        t.elapsed().as_secs_f64()
    );
    for f in &failures {
        println!("FAILED {f}");
    }
    Ok(if failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_TASKS_FAILED
    })
}
