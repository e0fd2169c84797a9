//! Restarting into an existing destination: where the run's state lives, folding a
//! killed run's journals into the manifest, clearing its partial files, and deciding
//! which tasks are already done.
//!
//! A task is skipped only if its record says done, was made from the same task (same
//! task sha256) and its granule still has the recorded size (and, with `--verify`, the
//! recorded sha256). Anything else is redone.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::journal::{self, JournalError, Record, Status};
use super::manifest::{Manifest, ManifestError};
use crate::storage::{self, ObjectInfo, S3Url};
use crate::tasks::{GranuleName, Task};

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("the tasks' granules share no destination directory; give one with --dest")]
    NoDest,
    #[error("task {index}: granule {granule} is not under the destination {dest:?}")]
    NotUnderDest {
        index: usize,
        granule: String,
        dest: PathBuf,
    },
    #[error(
        "task {index}: granule {granule} is on S3 but the destination is local; give \
         --dest s3://bucket/prefix (or no --dest)"
    )]
    Remote { index: usize, granule: String },
    #[error("tasks {first} and {second} both write {granule}")]
    Duplicate {
        first: usize,
        second: usize,
        granule: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot clear partial files under {dir:?}")]
    Temps {
        dir: PathBuf,
        source: storage::StorageError,
    },
    #[error("cannot list {dir:?}")]
    Walk { dir: PathBuf, source: io::Error },
}

/// The root of an EDP layout `<root>/<version>/<product>/<freq>/<GROUPING>/<file>`, or
/// the granule's directory when the path does not follow that layout.
fn layout_root(granule: &Path) -> PathBuf {
    let parent = granule.parent().unwrap_or(Path::new("")).to_path_buf();
    let Some(name) = granule.to_str().and_then(|g| GranuleName::parse(g).ok()) else {
        return parent;
    };
    let expect = [
        name.prefix.as_str(),
        name.freq.output_token(),
        name.product.name(),
        name.version.as_str(),
    ];
    let mut dir = parent.as_path();
    for want in expect {
        if dir.file_name().and_then(|n| n.to_str()) != Some(want) {
            return parent;
        }
        dir = dir.parent().unwrap_or(Path::new(""));
    }
    dir.to_path_buf()
}

/// The destination directory of a task list: the common root of its granules' EDP
/// layouts. `None` if the granules share nothing (e.g. `/a/…` and `/b/…`).
/// (S3 granules: see [`super::remote::destination`].)
pub fn dest_root(tasks: &[Task]) -> Option<PathBuf> {
    let mut common: Option<Vec<Component<'_>>> = None;
    let roots: Vec<PathBuf> = tasks
        .iter()
        .map(|t| layout_root(Path::new(&t.granule)))
        .collect();
    for r in &roots {
        let comps: Vec<Component<'_>> = r.components().collect();
        common = Some(match common {
            None => comps,
            Some(c) => c
                .iter()
                .zip(&comps)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    let common = common?;
    let path: PathBuf = common.iter().collect();
    if path.as_os_str().is_empty() {
        // Relative granule paths with nothing in common: the working directory.
        return (!tasks.iter().any(|t| Path::new(&t.granule).is_absolute()))
            .then(|| PathBuf::from("."));
    }
    if path == Path::new("/") {
        return None;
    }
    Some(path)
}

/// A granule's path relative to `dest`, `/`-separated: its key in the manifest.
pub fn relative_granule(dest: &Path, index: usize, granule: &str) -> Result<String, RestartError> {
    let g = Path::new(granule);
    let rel = if dest == Path::new(".") && g.is_relative() {
        g.strip_prefix(".").unwrap_or(g)
    } else {
        g.strip_prefix(dest)
            .map_err(|_| RestartError::NotUnderDest {
                index,
                granule: granule.into(),
                dest: dest.to_path_buf(),
            })?
    };
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(RestartError::NotUnderDest {
            index,
            granule: granule.into(),
            dest: dest.to_path_buf(),
        });
    }
    Ok(parts.join("/"))
}

/// The manifest keys of every task, rejecting two tasks that write the same granule.
pub fn granule_keys(dest: &Path, tasks: &[Task]) -> Result<Vec<String>, RestartError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        // S3 granules are keyed against an S3 destination (`remote::key_root`) only.
        if t.granule.contains("://") && !dest.to_string_lossy().starts_with("s3://") {
            return Err(RestartError::Remote {
                index: i,
                granule: t.granule.clone(),
            });
        }
        let k = relative_granule(dest, i, &t.granule)?;
        if let Some(&first) = seen.get(&k) {
            return Err(RestartError::Duplicate {
                first,
                second: i,
                granule: t.granule.clone(),
            });
        }
        seen.insert(k.clone(), i);
        keys.push(k);
    }
    Ok(keys)
}

/// The manifest of `dest` with the records of any journals left behind (by a killed run)
/// folded in. If there were journals, the merged manifest is written and the journals
/// removed, so the ranks of this run start with empty journals.
pub fn consolidate(dest: &Path) -> Result<Manifest, RestartError> {
    let mut manifest = Manifest::load_or_default(dest)?;
    let journals = journal::journal_files(dest)?;
    if journals.is_empty() {
        return Ok(manifest);
    }
    let mut n = 0;
    for j in &journals {
        let records = journal::read_journal(j)?;
        n += records.len();
        manifest.merge(records);
    }
    log::info!(
        "folding {n} record(s) from {} journal(s) of an earlier run into the manifest",
        journals.len()
    );
    // The manifest must be durable before the journals go.
    manifest.write(dest)?;
    journal::remove_journals(&journals)?;
    Ok(manifest)
}

/// Removes the temporary files that killed writers left anywhere under `dest` and
/// returns how many. Only safe while nothing else writes there.
pub fn remove_stale_temps_tree(dest: &Path) -> Result<usize, RestartError> {
    let mut removed = 0;
    // Not following symbolic links: only the destination's own tree.
    for e in walkdir::WalkDir::new(dest) {
        let e = match e {
            Ok(e) => e,
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) =>
            {
                continue
            }
            Err(e) => {
                return Err(RestartError::Walk {
                    dir: e.path().unwrap_or(dest).to_path_buf(),
                    source: e.into(),
                })
            }
        };
        if !e.file_type().is_dir() {
            continue;
        }
        let dir = e.path();
        removed += storage::remove_stale_temps(dir).map_err(|source| RestartError::Temps {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(removed)
}

/// Where a granule of the destination is, as the done decision sees it.
#[derive(Debug, Clone, Copy)]
pub enum Placed<'a> {
    /// A local file.
    Local(&'a Path),
    /// An object of an S3 destination, from the run's one listing (`None`: not listed).
    Remote {
        object: Option<&'a ObjectInfo>,
        url: &'a S3Url,
    },
}

impl Placed<'_> {
    fn size(&self) -> Option<u64> {
        match self {
            Placed::Local(path) => fs::metadata(path).ok().map(|m| m.len()),
            Placed::Remote { object, .. } => object.map(|o| o.size),
        }
    }

    /// The granule's sha256 (read back locally; stored with the object on S3).
    fn sha256(&self) -> Result<Option<String>, String> {
        let unreadable =
            |e: &dyn std::error::Error| format!("unreadable: {}", crate::error::chain(e));
        match self {
            Placed::Local(path) => crate::storage::sha256_file(path)
                .map(Some)
                .map_err(|e| unreadable(&e)),
            Placed::Remote { url, .. } => crate::storage::s3::head(url)
                .map(|h| h.and_then(|(_, sha)| sha))
                .map_err(|e| unreadable(&e)),
        }
    }
}

/// Whether a task of a previous run is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A done record of the same task, its granule in place with the recorded size (and,
    /// with `verify`, the recorded sha256): skip it.
    Done,
    /// Produce it (again), and why.
    Redo(String),
}

/// The done decision, the same for a local and an S3 destination.
pub fn decide(
    record: Option<&Record>,
    task_sha256: &str,
    granule: Placed<'_>,
    verify: bool,
) -> Decision {
    match done_or_reason(record, task_sha256, granule, verify) {
        Ok(()) => Decision::Done,
        Err(reason) => Decision::Redo(reason),
    }
}

fn done_or_reason(
    record: Option<&Record>,
    task_sha256: &str,
    granule: Placed<'_>,
    verify: bool,
) -> Result<(), String> {
    let r = record.ok_or("no record")?;
    if r.status != Status::Done {
        return Err("failed before".into());
    }
    if r.task_sha256 != task_sha256 {
        return Err("task changed".into());
    }
    let want = r.size.ok_or("record without size")?;
    let size = granule.size().ok_or("granule missing")?;
    if size != want {
        return Err("size differs".into());
    }
    if verify {
        let want = r.sha256.as_deref().ok_or("record without sha256")?;
        if granule.sha256()?.as_deref() != Some(want) {
            return Err("sha256 differs".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(granule: &str) -> Task {
        Task::for_test(granule)
    }

    const G1: &str = "/o/V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";
    const G2: &str = "/o/V4r4/native/mon_mean/OCEAN_VELOCITY/OCEAN_VELOCITY_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";

    #[test]
    fn destination_is_the_root_of_the_edp_layout() {
        assert_eq!(dest_root(&[task(G1)]), Some(PathBuf::from("/o")));
        assert_eq!(dest_root(&[task(G1), task(G2)]), Some(PathBuf::from("/o")));
        assert_eq!(
            dest_root(&[task("/x/y/a.nc"), task("/x/z/b.nc")]),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(dest_root(&[task("/x/a.nc"), task("/y/b.nc")]), None);
        assert_eq!(dest_root(&[task("a.nc")]), Some(PathBuf::from(".")));
        assert_eq!(dest_root(&[]), None);
    }

    #[test]
    fn keys_are_relative_and_unique() {
        let dest = Path::new("/o");
        let keys = granule_keys(dest, &[task(G1), task(G2)]).unwrap();
        assert!(keys[0].starts_with("V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/"));
        let err = granule_keys(dest, &[task(G1), task(G2), task(G1)]).unwrap_err();
        assert!(matches!(
            err,
            RestartError::Duplicate {
                first: 0,
                second: 2,
                ..
            }
        ));
        assert!(matches!(
            relative_granule(Path::new("/p"), 4, G1),
            Err(RestartError::NotUnderDest { index: 4, .. })
        ));
        assert!(relative_granule(dest, 0, "/o/../etc/x.nc").is_err());
        assert!(matches!(
            granule_keys(dest, &[task("s3://bucket/V4r4/x.nc")]),
            Err(RestartError::Remote { index: 0, .. })
        ));
        assert_eq!(
            relative_granule(Path::new("."), 0, "./a/b.nc").unwrap(),
            "a/b.nc"
        );
    }

    #[test]
    fn done_only_with_same_task_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.nc");
        fs::write(&p, b"12345").unwrap();
        let sha = crate::storage::sha256_file(&p).unwrap();
        let mut r = Record {
            task_sha256: "t".into(),
            size: Some(5),
            sha256: Some(sha),
            ..Record::for_test("g.nc", Status::Done)
        };
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), true),
            Decision::Done
        );
        assert_ne!(decide(None, "t", Placed::Local(&p), false), Decision::Done);
        assert_eq!(
            decide(Some(&r), "u", Placed::Local(&p), false),
            Decision::Redo("task changed".into())
        );
        fs::write(&p, b"12346").unwrap(); // same size, other content
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), false),
            Decision::Done
        );
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), true),
            Decision::Redo("sha256 differs".into())
        );
        fs::write(&p, b"1234").unwrap();
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), false),
            Decision::Redo("size differs".into())
        );
        fs::remove_file(&p).unwrap();
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), false),
            Decision::Redo("granule missing".into())
        );
        r.status = Status::Failed;
        assert_eq!(
            decide(Some(&r), "t", Placed::Local(&p), false),
            Decision::Redo("failed before".into())
        );
    }

    #[test]
    fn stale_temps_are_removed_in_the_whole_tree() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c.nc");
        let t1 = storage::prepare(&deep).unwrap();
        fs::write(&t1, b"partial").unwrap();
        let t2 = storage::prepare(&dir.path().join("top.nc")).unwrap();
        fs::write(&t2, b"partial").unwrap();
        fs::write(&deep, b"whole").unwrap();
        assert_eq!(remove_stale_temps_tree(dir.path()).unwrap(), 2);
        assert!(deep.exists() && !t1.exists() && !t2.exists());
    }
}
