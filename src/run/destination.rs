//! Where a run's granules go, and everything that follows from it: the one place that
//! knows the output root (a local directory or an `s3://bucket/prefix`), the run's state
//! directory (manifest, summary, `.edp/` journals and run lock), where built mapping
//! factors are kept, how a granule's manifest key is taken, how the destination is listed,
//! restarting into it (folding a killed run's journals into the manifest, clearing its
//! partial files) and whether a granule of an earlier run is done.
//!
//! Rank 0 builds it once (from `--dest`, else the common root of the tasks' granules)
//! and hands it to every rank in the run header.
//!
//! Granules on S3 keep the run's state in a local state directory (`--state-dir` /
//! `EDP_STATE_DIR`, default `./edp-state/<bucket>/<prefix>`, on a file system every rank
//! sees), because journals are appended to and manifests renamed. The manifest and the
//! summary are published next to the granules after every run, and a run in a fresh
//! place starts from the published manifest. A restart trusts a record only if one
//! listing of the destination shows the granule with the recorded size (with
//! `--verify`, also the recorded sha256), so a re-run of a finished job uploads nothing.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::{self, JournalError, Record, Status};
use super::manifest::{self, ManifestError, FAILURES_NAME, MANIFEST_NAME, SUMMARY_NAME};
use super::store::{Prior, Priors, Store};
use crate::storage::{self, LocationError, ObjectInfo, S3Url, Storage};
use crate::tasks::{GranuleName, Task};

/// Default base of the state directories of runs writing to S3.
const DEFAULT_STATE_BASE: &str = "edp-state";

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("the tasks' granules share no destination directory; give one with --dest")]
    NoDest,
    #[error("the granules are partly on S3 ({s3}) and partly local ({local}); one run writes to one destination")]
    Mixed { s3: String, local: String },
    #[error("task {index}: granule {granule} is not under the destination {dest}")]
    NotUnderDest {
        index: usize,
        granule: String,
        dest: String,
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
    #[error("S3 destination {dest}")]
    Storage {
        dest: String,
        // Boxed: the storage errors are large and this travels through every Result.
        #[source]
        source: Box<LocationError>,
    },
    #[error("cannot create the run's state directory {path:?}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot clear partial files under {dir:?}")]
    Temps {
        dir: PathBuf,
        source: storage::StorageError,
    },
    #[error("cannot list {dir:?}")]
    Walk {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The output root of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Root {
    Local(PathBuf),
    S3(S3Url),
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Local(p) => write!(f, "{}", p.display()),
            Root::S3(u) => write!(f, "{u}"),
        }
    }
}

/// Where a run's granules go and where its state is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    root: Root,
    /// Manifest, summary, `.edp/`; the root itself when it is local.
    state: PathBuf,
}

/// Whether a task of an earlier run is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A done record of the same task, its granule in place with the recorded size (and,
    /// with `verify`, the recorded sha256): skip it.
    Done,
    /// Produce it (again), and why.
    Redo(Redo),
}

/// Why a task is produced (again).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Redo {
    NoRecord,
    FailedBefore,
    TaskChanged,
    RecordWithoutSize,
    Missing,
    SizeDiffers,
    RecordWithoutSha256,
    Sha256Differs,
    Unreadable(String),
}

impl fmt::Display for Redo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Redo::NoRecord => "no record",
            Redo::FailedBefore => "failed before",
            Redo::TaskChanged => "task changed",
            Redo::RecordWithoutSize => "record without size",
            Redo::Missing => "granule missing",
            Redo::SizeDiffers => "size differs",
            Redo::RecordWithoutSha256 => "record without sha256",
            Redo::Sha256Differs => "sha256 differs",
            Redo::Unreadable(why) => return write!(f, "unreadable: {why}"),
        })
    }
}

/// What a destination holds, read once before the done decisions: one paginated
/// listing of an S3 destination (a local one is looked at granule by granule).
#[derive(Debug, Default)]
pub struct Listing {
    objects: Option<HashMap<String, ObjectInfo>>,
}

impl Destination {
    /// The destination of a run: `given` (`--dest`, a directory or `s3://bucket/prefix`),
    /// else the common root of the tasks' granules. Runs writing to S3 keep their state
    /// under `state_base` (`--state-dir`; default `./edp-state`), made absolute so every
    /// rank agrees on it.
    pub fn new(
        given: Option<&str>,
        tasks: &[Task],
        state_base: Option<&Path>,
    ) -> Result<Destination, DestinationError> {
        let granules: Vec<&str> = tasks.iter().map(|t| t.granule.as_str()).collect();
        Destination::for_granules(given, &granules, state_base)
    }

    /// [`Destination::new`] from the tasks' granules alone.
    pub fn for_granules<S: AsRef<str>>(
        given: Option<&str>,
        granules: &[S],
        state_base: Option<&Path>,
    ) -> Result<Destination, DestinationError> {
        let root = match given {
            Some(d) => match storage::s3_url(d) {
                Some(url) => Root::S3(url.map_err(|e| storage_error(d, e.into()))?),
                None => Root::Local(PathBuf::from(d)),
            },
            None => common_root(granules)?,
        };
        let state = match &root {
            Root::Local(dir) => dir.clone(),
            Root::S3(url) => {
                let base = state_base
                    .filter(|b| !b.as_os_str().is_empty())
                    .unwrap_or(Path::new(DEFAULT_STATE_BASE));
                let dir = base.join(&url.bucket).join(&url.key);
                fs::create_dir_all(&dir).map_err(|source| DestinationError::StateDir {
                    path: dir.clone(),
                    source,
                })?;
                fs::canonicalize(&dir).unwrap_or(dir)
            }
        };
        Ok(Destination { root, state })
    }

    /// A local directory as the destination (its own state directory).
    pub fn local(dir: &Path) -> Destination {
        Destination {
            root: Root::Local(dir.to_path_buf()),
            state: dir.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The S3 prefix of the granules, if they go to S3.
    pub fn s3(&self) -> Option<&S3Url> {
        match &self.root {
            Root::S3(u) => Some(u),
            Root::Local(_) => None,
        }
    }

    /// The local directory of the manifest and the summary.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// `<state>/.edp`: the journals and the run lock.
    pub fn journal_dir(&self) -> PathBuf {
        journal::state_dir(&self.state)
    }

    /// Where mapping factors are built and kept when `--factors`/`--factors-cache` do not
    /// say: `<state>/edp_factors`.
    pub fn factor_cache(&self) -> PathBuf {
        self.state.join("edp_factors")
    }

    /// Creates the state directories and, on S3 without a local manifest, starts from
    /// the one published with the granules.
    pub fn prepare(&self, storage: &Storage) -> Result<(), DestinationError> {
        let dir = self.journal_dir();
        fs::create_dir_all(&dir)
            .map_err(|source| DestinationError::StateDir { path: dir, source })?;
        let Some(url) = self.s3() else {
            return Ok(());
        };
        let local = manifest::manifest_path(&self.state);
        if local.exists() || Store::at(&self.state).exists() {
            return Ok(());
        }
        let published = url.join(MANIFEST_NAME);
        let err = |e: storage::S3Error| storage_error(&url.to_string(), e.into());
        if storage.s3().head(&published).map_err(err)?.is_none() {
            return Ok(());
        }
        storage.s3().download(&published, &local).map_err(err)?;
        log::info!("starting from the published manifest {published}");
        Ok(())
    }

    /// The manifest key of every task (its granule relative to the root,
    /// `/`-separated), rejecting two tasks that write the same granule.
    pub fn granule_keys(&self, tasks: &[Task]) -> Result<Vec<String>, DestinationError> {
        let granules: Vec<&str> = tasks.iter().map(|t| t.granule.as_str()).collect();
        self.keys_of(&granules)
    }

    /// [`Destination::granule_keys`] from the tasks' granules alone; duplicates are
    /// found by key hash (16 bytes a task, not a second copy of the keys).
    pub fn keys_of<S: AsRef<str>>(&self, granules: &[S]) -> Result<Vec<String>, DestinationError> {
        let mut seen: HashMap<super::store::KeyHash, usize> =
            HashMap::with_capacity(granules.len());
        let mut keys = Vec::with_capacity(granules.len());
        for (i, g) in granules.iter().enumerate() {
            let g = g.as_ref();
            let k = self.key(i, g)?;
            if let Some(&first) = seen.get(&super::store::key_hash(&k)) {
                return Err(DestinationError::Duplicate {
                    first,
                    second: i,
                    granule: g.to_string(),
                });
            }
            seen.insert(super::store::key_hash(&k), i);
            keys.push(k);
        }
        Ok(keys)
    }

    /// The manifest key of the granule of task `index`.
    pub fn key(&self, index: usize, granule: &str) -> Result<String, DestinationError> {
        let outside = || DestinationError::NotUnderDest {
            index,
            granule: granule.into(),
            dest: self.root.to_string(),
        };
        match (&self.root, storage::s3_url(granule)) {
            (Root::Local(_), Some(_)) => Err(DestinationError::Remote {
                index,
                granule: granule.into(),
            }),
            (Root::Local(dir), None) => relative_key(dir, Path::new(granule)).ok_or_else(outside),
            (Root::S3(root), Some(Ok(url))) if url.bucket == root.bucket => {
                relative_key(Path::new(&root.key), Path::new(&url.key)).ok_or_else(outside)
            }
            (Root::S3(_), _) => Err(outside()),
        }
    }

    /// The destination's contents as the done decisions need them.
    pub fn listing(&self, storage: &Storage) -> Result<Listing, DestinationError> {
        let Some(url) = self.s3() else {
            return Ok(Listing::default());
        };
        let objects = storage
            .s3()
            .objects_under(url)
            .map_err(|e| storage_error(&url.to_string(), e.into()))?;
        Ok(Listing {
            objects: Some(objects),
        })
    }

    /// Whether the granule under `key` of a task whose sha256 is `task_sha256` is done,
    /// after `record` of an earlier run; with `verify`, its sha256 is compared too.
    pub fn decide(
        &self,
        storage: &Storage,
        listing: &Listing,
        key: &str,
        record: Option<&Prior>,
        task_sha256: &str,
        verify: bool,
    ) -> Done {
        let placed = match (&self.root, &listing.objects) {
            (Root::S3(url), Some(objects)) => Placed::Remote {
                object: objects.get(key),
                url: url.join(key),
            },
            (Root::S3(url), None) => Placed::Remote {
                object: None,
                url: url.join(key),
            },
            (Root::Local(dir), _) => Placed::Local(dir.join(key)),
        };
        match done_or_redo(storage, record, task_sha256, &placed, verify) {
            Ok(()) => Done::Done,
            Err(why) => Done::Redo(why),
        }
    }

    /// Restarting into the destination: the latest record of every granule (compactly),
    /// with any journals left behind (by a killed run) folded into the record store
    /// first, streaming, and then removed, so the ranks of this run start with empty
    /// journals. A manifest JSON of an earlier `edp` (and no store) is imported first.
    pub fn consolidate(&self) -> Result<Priors, DestinationError> {
        let dest = self.state_dir();
        let store = Store::at(dest);
        let old = manifest::manifest_path(dest);
        if !store.exists() && old.exists() {
            let n = manifest::import_json(dest, &old)?;
            // The store is the truth now; the old file is kept aside, not in the way.
            let aside = self.journal_dir().join("edp-manifest.imported.json");
            fs::rename(&old, &aside).map_err(|source| DestinationError::StateDir {
                path: aside.clone(),
                source,
            })?;
            log::info!(
                "imported {n} record(s) of {} into the record store (the file is now {})",
                old.display(),
                aside.display()
            );
        }
        let journals = journal::journal_files(dest)?;
        if !journals.is_empty() {
            let n = fold_journals(&store, &journals, &mut |_| {})?;
            log::info!(
                "folded {n} record(s) from {} journal(s) of an earlier run into the record store",
                journals.len()
            );
        }
        Ok(store.priors().map_err(ManifestError::from)?)
    }

    /// Removes the temporary files that killed writers left anywhere under the state
    /// directory (the granules' tree when it is local) and returns how many. Only safe
    /// while nothing else writes there.
    pub fn remove_stale_temps(&self) -> Result<usize, DestinationError> {
        let dest = self.state_dir();
        let mut removed = 0;
        // Not following symbolic links: only the destination's own tree.
        for e in walkdir::WalkDir::new(dest) {
            let e = match e {
                Ok(e) => e,
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(DestinationError::Walk {
                        dir: e.path().unwrap_or(dest).to_path_buf(),
                        source: e.into(),
                    })
                }
            };
            if !e.file_type().is_dir() {
                continue;
            }
            let dir = e.path();
            removed +=
                storage::remove_stale_temps(dir).map_err(|source| DestinationError::Temps {
                    dir: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(removed)
    }

    /// Publishes the manifest (exported from the record store), the summary and the
    /// failures next to S3 granules (nothing locally).
    pub fn publish(&self, storage: &Storage) -> Result<(), DestinationError> {
        let Some(url) = self.s3() else {
            return Ok(());
        };
        if Store::at(&self.state).exists() {
            manifest::export(&self.state, &manifest::manifest_path(&self.state))?;
        }
        for name in [MANIFEST_NAME, SUMMARY_NAME, FAILURES_NAME] {
            let local = self.state.join(name);
            if local.exists() {
                storage
                    .s3()
                    .upload_file(&local, &url.join(name))
                    .map_err(|e| storage_error(&url.to_string(), e.into()))?;
            }
        }
        log::info!("manifest published: {}", url.join(MANIFEST_NAME));
        Ok(())
    }
}

/// Appends the records of `journals` to `store` (streaming, one member), calls `seen`
/// with each, commits, and only then removes the journals: a kill at any point leaves
/// every record either in a journal or committed in the store. Returns the number of
/// records.
pub fn fold_journals(
    store: &Store,
    journals: &[PathBuf],
    seen: &mut dyn FnMut(&Record),
) -> Result<u64, DestinationError> {
    let mut app = store.appender().map_err(ManifestError::from)?;
    let mut failed = None;
    for j in journals {
        journal::for_each_record(j, |line, r| {
            if failed.is_none() {
                match app.push_line(line) {
                    Ok(()) => seen(&r),
                    Err(e) => failed = Some(e),
                }
            }
        })?;
    }
    if let Some(e) = failed {
        return Err(ManifestError::from(e).into());
    }
    let n = app.added();
    app.commit(None).map_err(ManifestError::from)?;
    journal::remove_journals(journals)?;
    Ok(n)
}

fn storage_error(dest: &str, source: LocationError) -> DestinationError {
    DestinationError::Storage {
        dest: dest.to_string(),
        source: Box::new(source),
    }
}

/// `path` relative to `root`, `/`-separated; `None` if it is not strictly below it.
fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = if root == Path::new(".") && path.is_relative() {
        path.strip_prefix(".").unwrap_or(path)
    } else {
        path.strip_prefix(root).ok()?
    };
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The root of an EDP layout `<root>/<version>/<product>/<freq>/<GROUPING>/<file>`, or
/// the granule's directory when the path does not follow that layout.
fn layout_root(granule: &Path) -> PathBuf {
    let parent = granule.parent().unwrap_or(Path::new("")).to_path_buf();
    let Some(name) = granule.to_str().and_then(|g| GranuleName::parse(g).ok()) else {
        return crate::tasks::oned::layout_root(granule).unwrap_or(parent);
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

/// The longest common leading components of `paths` (`None` if there are none).
fn common_prefix(paths: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    paths
        .into_iter()
        .map(|p| p.components().map(|c| c.as_os_str().to_owned()).collect())
        .reduce(|common: Vec<_>, comps: Vec<_>| {
            common
                .into_iter()
                .zip(comps)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect()
        })
        .map(|c| c.iter().collect())
}

/// The common root of the tasks' granules' EDP layouts, all local or all on S3.
fn common_root<S: AsRef<str>>(granules: &[S]) -> Result<Root, DestinationError> {
    let tasks: Vec<&str> = granules.iter().map(AsRef::as_ref).collect();
    let s3 = tasks.iter().find(|t| storage::is_s3(t));
    let local = tasks.iter().find(|t| !storage::is_s3(t));
    match (s3, local) {
        (Some(s), Some(l)) => Err(DestinationError::Mixed {
            s3: s.to_string(),
            local: l.to_string(),
        }),
        (Some(_), None) => {
            let urls = tasks
                .iter()
                .filter_map(|t| storage::s3_url(t))
                .collect::<Result<Vec<S3Url>, _>>()
                .map_err(|e| storage_error(&e.to_string(), e.into()))?;
            let bucket = &urls[0].bucket;
            if urls.iter().any(|u| &u.bucket != bucket) {
                return Err(DestinationError::NoDest);
            }
            let key = common_prefix(urls.iter().map(|u| layout_root(Path::new(&u.key))))
                .ok_or(DestinationError::NoDest)?;
            Ok(Root::S3(S3Url {
                bucket: bucket.clone(),
                key: key.to_string_lossy().into_owned(),
            }))
        }
        (None, _) => {
            let path = common_prefix(tasks.iter().map(|t| layout_root(Path::new(t))))
                .ok_or(DestinationError::NoDest)?;
            if path.as_os_str().is_empty() {
                // Relative granule paths with nothing in common: the working directory.
                return match tasks.iter().any(|t| Path::new(t).is_absolute()) {
                    true => Err(DestinationError::NoDest),
                    false => Ok(Root::Local(PathBuf::from("."))),
                };
            }
            if path == Path::new("/") {
                return Err(DestinationError::NoDest);
            }
            Ok(Root::Local(path))
        }
    }
}

/// Where a granule of the destination is, as the done decision sees it.
enum Placed<'a> {
    Local(PathBuf),
    /// An object of an S3 destination, from the run's one listing (`None`: not listed).
    Remote {
        object: Option<&'a ObjectInfo>,
        url: S3Url,
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
    fn sha256(&self, storage: &Storage) -> Result<Option<String>, Redo> {
        let unreadable = |e: &dyn std::error::Error| Redo::Unreadable(crate::error::chain(e));
        match self {
            Placed::Local(path) => storage::sha256_file(path)
                .map(Some)
                .map_err(|e| unreadable(&e)),
            Placed::Remote { url, .. } => storage
                .s3()
                .head(url)
                .map(|h| h.and_then(|(_, sha)| sha))
                .map_err(|e| unreadable(&e)),
        }
    }
}

/// The done decision, the same for a local and an S3 destination.
fn done_or_redo(
    storage: &Storage,
    record: Option<&Prior>,
    task_sha256: &str,
    granule: &Placed<'_>,
    verify: bool,
) -> Result<(), Redo> {
    let r = record.ok_or(Redo::NoRecord)?;
    if r.status != Status::Done {
        return Err(Redo::FailedBefore);
    }
    if !r.same_task(task_sha256) {
        return Err(Redo::TaskChanged);
    }
    let want = r.size.ok_or(Redo::RecordWithoutSize)?;
    if granule.size().ok_or(Redo::Missing)? != want {
        return Err(Redo::SizeDiffers);
    }
    if verify {
        if r.sha256.is_none() {
            return Err(Redo::RecordWithoutSha256);
        }
        if !r.same_sha256(granule.sha256(storage)?.as_deref()) {
            return Err(Redo::Sha256Differs);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(granules: &[&str]) -> Vec<Task> {
        granules.iter().map(|g| Task::for_test(g)).collect()
    }

    fn root_of(granules: &[&str]) -> Result<Root, DestinationError> {
        // An S3 root makes its state directory: under a temporary base, not ./edp-state.
        let base = tempfile::tempdir().unwrap();
        Destination::new(None, &tasks(granules), Some(base.path())).map(|d| d.root)
    }

    const G1: &str = "/o/V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";
    const G2: &str = "/o/V4r4/native/mon_mean/OCEAN_VELOCITY/OCEAN_VELOCITY_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";

    #[test]
    fn local_root_is_the_root_of_the_edp_layout() {
        let local = |p: &str| Ok::<_, ()>(Root::Local(PathBuf::from(p)));
        let r = |g: &[&str]| root_of(g).map_err(|_| ());
        assert_eq!(r(&[G1]), local("/o"));
        assert_eq!(r(&[G1, G2]), local("/o"));
        assert_eq!(r(&["/x/y/a.nc", "/x/z/b.nc"]), local("/x"));
        assert!(matches!(
            root_of(&["/x/a.nc", "/y/b.nc"]),
            Err(DestinationError::NoDest)
        ));
        assert_eq!(r(&["a.nc"]), local("."));
        assert!(matches!(root_of(&[]), Err(DestinationError::NoDest)));
    }

    #[test]
    fn keys_are_relative_and_unique() {
        let dest = Destination::local(Path::new("/o"));
        let keys = dest.granule_keys(&tasks(&[G1, G2])).unwrap();
        assert!(keys[0].starts_with("V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/"));
        let err = dest.granule_keys(&tasks(&[G1, G2, G1])).unwrap_err();
        assert!(matches!(
            err,
            DestinationError::Duplicate {
                first: 0,
                second: 2,
                ..
            }
        ));
        assert!(matches!(
            Destination::local(Path::new("/p")).key(4, G1),
            Err(DestinationError::NotUnderDest { index: 4, .. })
        ));
        assert!(dest.key(0, "/o/../etc/x.nc").is_err());
        assert!(matches!(
            dest.granule_keys(&tasks(&["s3://bucket/V4r4/x.nc"])),
            Err(DestinationError::Remote { index: 0, .. })
        ));
        assert_eq!(
            Destination::local(Path::new("."))
                .key(0, "./a/b.nc")
                .unwrap(),
            "a/b.nc"
        );
        assert_eq!(dest.journal_dir(), Path::new("/o/.edp"));
        assert_eq!(dest.factor_cache(), Path::new("/o/edp_factors"));
    }

    #[test]
    fn s3_root_keys_and_state_dir() {
        let g = |d: &str| {
            format!(
                "s3://b/out/V4r4/native/mon_mean/SSH/SSH_mon_mean_{d}_ECCO_V4r4_native_llc0090.nc"
            )
        };
        let (g1, g2) = (g("1992-01"), g("1992-02"));
        let t = tasks(&[&g1, &g2]);
        let base = tempfile::tempdir().unwrap();
        let dest = Destination::new(None, &t, Some(base.path())).unwrap();
        assert_eq!(dest.s3().unwrap().to_string(), "s3://b/out");
        assert!(dest.state_dir().ends_with("b/out") && dest.state_dir().is_dir());
        assert!(dest.state_dir().is_absolute());
        let keys = dest.granule_keys(&t).unwrap();
        assert_eq!(
            keys[0],
            "V4r4/native/mon_mean/SSH/SSH_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc"
        );
        assert!(matches!(
            dest.key(3, "s3://other/out/V4r4/x.nc"),
            Err(DestinationError::NotUnderDest { index: 3, .. })
        ));
        assert!(dest.key(3, "/local/x.nc").is_err());
        assert!(matches!(
            root_of(&[&g1, "/local/x.nc"]),
            Err(DestinationError::Mixed { .. })
        ));
        assert!(matches!(
            root_of(&[&g1, "s3://c/out/V4r4/x.nc"]),
            Err(DestinationError::NoDest)
        ));
        let given = Destination::new(Some("s3://b/out/"), &t, Some(base.path())).unwrap();
        assert_eq!(given, dest);
        // Granules at the top of their bucket's layout: the bucket itself.
        let top =
            "s3://b/V4r4/native/mon_mean/SSH/SSH_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc";
        assert_eq!(root_of(&[top]).unwrap().to_string(), "s3://b/");
    }

    #[test]
    fn done_only_with_same_task_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::local(dir.path());
        let p = dir.path().join("g.nc");
        fs::write(&p, b"12345").unwrap();
        let sha = storage::sha256_file(&p).unwrap();
        let mut r = Record {
            task_sha256: "t".into(),
            size: Some(5),
            sha256: Some(sha),
            ..Record::for_test("g.nc", Status::Done)
        };
        let none = Listing::default();
        let storage = Storage::new(&Default::default());
        let decide = |r: Option<&Record>, t: &str, verify| {
            let prior = r.map(Prior::of);
            dest.decide(&storage, &none, "g.nc", prior.as_ref(), t, verify)
        };
        assert_eq!(decide(Some(&r), "t", true), Done::Done);
        assert_eq!(decide(None, "t", false), Done::Redo(Redo::NoRecord));
        assert_eq!(decide(Some(&r), "u", false), Done::Redo(Redo::TaskChanged));
        fs::write(&p, b"12346").unwrap(); // same size, other content
        assert_eq!(decide(Some(&r), "t", false), Done::Done);
        assert_eq!(decide(Some(&r), "t", true), Done::Redo(Redo::Sha256Differs));
        fs::write(&p, b"1234").unwrap();
        assert_eq!(decide(Some(&r), "t", false), Done::Redo(Redo::SizeDiffers));
        fs::remove_file(&p).unwrap();
        assert_eq!(decide(Some(&r), "t", false), Done::Redo(Redo::Missing));
        r.status = Status::Failed;
        assert_eq!(decide(Some(&r), "t", false), Done::Redo(Redo::FailedBefore));
        assert_eq!(Redo::Missing.to_string(), "granule missing");
    }

    #[test]
    fn s3_done_needs_the_listed_object_with_the_recorded_size() {
        let rec = Record {
            task_sha256: "t".into(),
            size: Some(10),
            sha256: Some("s".into()),
            ..Record::for_test("k", Status::Done)
        };
        let dest = Destination {
            root: Root::S3(S3Url {
                bucket: "b".into(),
                key: "p".into(),
            }),
            state: PathBuf::from("/unused"),
        };
        let listing = |size: Option<u64>| Listing {
            objects: Some(
                size.map(|size| {
                    (
                        "k".to_string(),
                        ObjectInfo {
                            key: "p/k".into(),
                            size,
                            etag: None,
                        },
                    )
                })
                .into_iter()
                .collect(),
            ),
        };
        let storage = Storage::new(&Default::default());
        let decide = |rec: Option<&Record>, sha: &str, size| {
            let prior = rec.map(Prior::of);
            dest.decide(&storage, &listing(size), "k", prior.as_ref(), sha, false)
        };
        assert_eq!(decide(Some(&rec), "t", Some(10)), Done::Done);
        assert_eq!(
            decide(Some(&rec), "t", Some(9)),
            Done::Redo(Redo::SizeDiffers)
        );
        assert_eq!(decide(Some(&rec), "t", None), Done::Redo(Redo::Missing));
        assert_eq!(
            decide(Some(&rec), "other", Some(10)),
            Done::Redo(Redo::TaskChanged)
        );
        assert_eq!(decide(None, "t", None), Done::Redo(Redo::NoRecord));
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
        assert_eq!(
            Destination::local(dir.path()).remove_stale_temps().unwrap(),
            2
        );
        assert!(deep.exists() && !t1.exists() && !t2.exists());
    }
}
