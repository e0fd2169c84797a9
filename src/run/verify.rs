//! `edp verify`: does the output tree match its manifest?
//!
//! Every granule the manifest lists as done must exist with its recorded size and
//! sha256, and no other granule (`*.nc`) nor partial file may sit in the tree. Failed
//! tasks in the manifest are reported too: the dataset is incomplete.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::journal::{self, Record, Status, STATE_DIR};
use super::manifest::{Manifest, ManifestError};
use super::verify_content;
use crate::metadata::MetadataSet;
use crate::storage;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot list {dir:?}")]
    Walk { dir: PathBuf, source: io::Error },
    /// A tree on S3 ([`super::verify_s3`]): its manifest or listing.
    #[error("{what} {loc}")]
    S3 {
        loc: String,
        what: &'static str,
        #[source]
        source: Box<crate::storage::LocationError>,
    },
    #[error("manifest {loc} is not an edp manifest")]
    S3Parse {
        loc: String,
        source: serde_json::Error,
    },
    #[error("manifest {loc} has format {found:?}; this edp reads {format:?}")]
    S3Format {
        loc: String,
        found: String,
        format: String,
    },
}

/// One way the tree differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        granule: String,
    },
    Size {
        granule: String,
        want: u64,
        got: u64,
    },
    Checksum {
        granule: String,
    },
    Unreadable {
        granule: String,
        error: String,
    },
    Extra {
        path: String,
    },
    Partial {
        path: String,
    },
    Failed {
        granule: String,
        error: String,
    },
    /// `--content`: the granule's layout, values or time are wrong.
    Content {
        granule: String,
        what: String,
    },
    /// A journal of a run that did not finish: the manifest is not up to date.
    Pending {
        path: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { granule } => write!(f, "MISSING  {granule}"),
            Problem::Size { granule, want, got } => {
                write!(f, "SIZE     {granule}: {got} bytes, manifest says {want}")
            }
            Problem::Checksum { granule } => {
                write!(f, "SHA256   {granule}: content differs from the manifest")
            }
            Problem::Unreadable { granule, error } => write!(f, "UNREAD   {granule}: {error}"),
            Problem::Extra { path } => write!(f, "EXTRA    {path}: not in the manifest"),
            Problem::Partial { path } => write!(f, "PARTIAL  {path}: left by a killed writer"),
            Problem::Failed { granule, error } => write!(f, "FAILED   {granule}: {error}"),
            Problem::Content { granule, what } => write!(f, "CONTENT  {granule}: {what}"),
            Problem::Pending { path } => write!(
                f,
                "PENDING  {path}: journal of an unfinished run (re-run edp run to fold it in)"
            ),
        }
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Granules listed as done and checked.
    pub checked: usize,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

/// Checks the tree around `manifest_path` (its directory) against it. Without
/// `checksum` only existence and sizes are checked. With `content`, each granule of the
/// right size is also re-opened and its content checked against the metadata set
/// ([`super::verify_content`]).
pub fn verify(
    manifest_path: &Path,
    checksum: bool,
    content: Option<&MetadataSet>,
) -> Result<VerifyReport, VerifyError> {
    let manifest = Manifest::read(manifest_path)?;
    let dest = match manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (done, mut problems) = done_problems(&manifest, |r| {
        let path = dest.join(&r.granule);
        let first = file_problem(r, &path, checksum);
        let content = match (&first, content) {
            (None | Some(Problem::Size { .. } | Problem::Checksum { .. }), Some(m)) => {
                verify_content::check(&path, &r.granule, &r.missing_fields, m)
            }
            _ => Vec::new(),
        };
        first
            .into_iter()
            .chain(content.into_iter().map(|what| Problem::Content {
                granule: r.granule.clone(),
                what,
            }))
            .collect()
    });
    problems.extend(failed_and_strays(&manifest, &done, tree_files(&dest)?));
    for j in journal::journal_files(&dest).unwrap_or_default() {
        problems.push(Problem::Pending {
            path: j.display().to_string(),
        });
    }
    Ok(VerifyReport {
        checked: done.len(),
        bytes: done.iter().filter_map(|r| r.size).sum(),
        problems,
    })
}

/// The manifest's done records, and the problems `check` finds in each (in parallel),
/// local or on S3.
pub(super) fn done_problems(
    manifest: &Manifest,
    check: impl Fn(&Record) -> Vec<Problem> + Sync,
) -> (Vec<&Record>, Vec<Problem>) {
    let done: Vec<&Record> = manifest
        .granules
        .iter()
        .filter(|r| r.status == Status::Done)
        .collect();
    let problems = done.par_iter().flat_map_iter(|r| check(r)).collect();
    (done, problems)
}

/// What differs between the granule at `path` and its manifest record `r`, if anything.
fn file_problem(r: &Record, path: &Path, checksum: bool) -> Option<Problem> {
    let granule = r.granule.clone();
    let got = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(_) => return Some(Problem::Missing { granule }),
    };
    let want = r.size.unwrap_or(u64::MAX);
    if got != want {
        return Some(Problem::Size { granule, want, got });
    }
    if checksum {
        match crate::storage::sha256_file(path) {
            Ok(sha) if Some(sha.as_str()) == r.sha256.as_deref() => {}
            Ok(_) => return Some(Problem::Checksum { granule }),
            Err(e) => {
                return Some(Problem::Unreadable {
                    granule,
                    error: crate::error::chain(&e),
                })
            }
        }
    }
    None
}

/// The manifest's failed granules, and the files of the tree (`files`, relative names)
/// that are left-over temporaries or granules the manifest does not list as done.
pub(super) fn failed_and_strays(
    manifest: &Manifest,
    done: &[&Record],
    files: impl IntoIterator<Item = String>,
) -> Vec<Problem> {
    let mut problems: Vec<Problem> = manifest
        .granules
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| Problem::Failed {
            granule: r.granule.clone(),
            error: r.error.clone().unwrap_or_default(),
        })
        .collect();
    let listed: BTreeSet<&str> = done.iter().map(|r| r.granule.as_str()).collect();
    for rel in files {
        if storage::is_temp_name(Path::new(&rel)) {
            problems.push(Problem::Partial { path: rel });
        } else if rel.ends_with(".nc") && !listed.contains(rel.as_str()) {
            problems.push(Problem::Extra { path: rel });
        }
    }
    problems
}

/// Files under `dest` (not following links, not in `.edp`), `/`-separated relative paths.
fn tree_files(dest: &Path) -> Result<Vec<String>, VerifyError> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(dest)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            !(e.depth() == 1 && e.file_name() == STATE_DIR && e.file_type().is_dir())
        });
    for e in walk {
        let e = e.map_err(|e| VerifyError::Walk {
            dir: e.path().unwrap_or(dest).to_path_buf(),
            source: e.into(),
        })?;
        if e.file_type().is_file() {
            out.push(relative(dest, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// `path` relative to `root`, `/`-separated.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
