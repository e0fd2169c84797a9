//! The local scratch cache for inputs that live on S3, so that the memory-mapped readers
//! (MDS fields, the grid, mapping factors) work unchanged on local files.
//!
//! Layout under the scratch root (`--scratch-dir`/`EDP_SCRATCH_DIR`, default
//! `$TMPDIR/edp-scratch-<uid>`), owned by the process's [`super::Storage`]:
//!
//! - `proc-<host>-<pid>/in/<bucket>/<key>`: model-output files fetched for this process's
//!   tasks, bounded by `EDP_SCRATCH_LIMIT` (least recently used first out; files of the
//!   task in progress are pinned). `…/out/` stages granules before their upload.
//! - `node-<host>/`: what every rank of a node shares and must keep for the whole run —
//!   the grid (an archive unpacked once), mapping factors, metadata. Each entry is fetched
//!   by one process under a lock file while the others on the node wait, then validated
//!   by its ETag, so it is fetched once per node, not once per rank or task.
//! - `users/<host>-<pid>`: one marker per live process. The last process of a node to
//!   leave removes `node-<host>/`; any process starting removes what dead processes of
//!   its node left behind (their `proc-` directories, and `node-` if nobody is left), so
//!   the cache is cleaned at exit and on restart after a crash.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::archive::{self, ArchiveError};
use super::lock::NodeLock;
use super::s3::{ObjectInfo, S3Error, S3Url, S3};

/// Default bound of the per-process input cache.
const DEFAULT_LIMIT: u64 = 32 << 30;

/// What went wrong in the scratch cache, naming the file or object.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("scratch cache {root:?}: cannot {action} {path:?}")]
    Io {
        root: PathBuf,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("EDP_SCRATCH_LIMIT={0:?} is not a size (e.g. 500M, 20G, 1T or bytes)")]
    BadLimit(String),
    #[error("scratch cache is full: fetching {url} ({size} bytes) would exceed EDP_SCRATCH_LIMIT={limit} bytes with {pinned} bytes in use by the current task; raise EDP_SCRATCH_LIMIT")]
    Full {
        url: String,
        size: u64,
        limit: u64,
        pinned: u64,
    },
    #[error("cannot start the scratch cache: {0}")]
    Init(String),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{url} has no objects")]
    Empty { url: String },
}

/// Parses a size: bytes, or a number with K, M, G or T (binary multiples).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mult) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some((v * mult as f64) as u64)
}

use super::lock::{host, pid_alive};

/// The cache's own lock (`<root>/.lock`), held while a process cleans or accounts.
fn lock_in(root: &Path, what: &str) -> Result<NodeLock, CacheError> {
    lock_in_file(root, &root.join(".lock"), what)
}

fn lock_in_file(root: &Path, path: &Path, what: &str) -> Result<NodeLock, CacheError> {
    NodeLock::acquire(path, what).map_err(|source| CacheError::Io {
        root: root.to_path_buf(),
        action: "create lock file",
        path: path.to_path_buf(),
        source,
    })
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// The scratch root: `given` (`--scratch-dir`/`EDP_SCRATCH_DIR`), else a per-user
/// directory in the temp dir (node-local on most clusters, which is what "once per
/// node" wants).
pub fn root_or_default(given: Option<&Path>) -> PathBuf {
    given
        .filter(|v| !v.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("edp-scratch-{}", uid())))
}

/// The per-process bound of fetched inputs: `given` (`--scratch-limit` /
/// `EDP_SCRATCH_LIMIT`), else 32 GiB.
pub fn limit_or_default(given: Option<&str>) -> Result<u64, CacheError> {
    match given {
        Some(v) if !v.trim().is_empty() => {
            parse_size(v).ok_or_else(|| CacheError::BadLimit(v.to_string()))
        }
        _ => Ok(DEFAULT_LIMIT),
    }
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    size: u64,
    used: u64,
    pins: usize,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<S3Url, Entry>,
    total: u64,
    clock: u64,
}

/// The process's view of the scratch cache.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
    host: String,
    proc_dir: PathBuf,
    node_dir: PathBuf,
    user_marker: PathBuf,
    limit: u64,
    state: Mutex<State>,
    /// One fetch per object at a time within the process.
    fetching: Mutex<HashMap<S3Url, Arc<Mutex<()>>>>,
    /// Node entries this process has already validated.
    node_seen: Mutex<HashMap<String, PathBuf>>,
}

/// A fetched input, kept in the cache (not evicted) while this is alive.
#[derive(Debug)]
pub struct Pinned {
    pub url: S3Url,
    pub path: PathBuf,
    scratch: Arc<Scratch>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut st = self.scratch.lock_state();
        if let Some(e) = st.entries.get_mut(&self.url) {
            e.pins = e.pins.saturating_sub(1);
        }
    }
}

/// Digest of a string, short hex (names of node entries).
fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

impl Scratch {
    /// Opens the cache under `root`: registers this process, after removing what dead
    /// processes of this host left.
    pub fn open(root: &Path, limit: u64) -> Result<Scratch, CacheError> {
        let host = host();
        let pid = std::process::id();
        let s = Scratch {
            root: root.to_path_buf(),
            proc_dir: root.join(format!("proc-{host}-{pid}")),
            node_dir: root.join(format!("node-{host}")),
            user_marker: root.join("users").join(format!("{host}-{pid}")),
            host,
            limit,
            state: Mutex::new(State::default()),
            fetching: Mutex::new(HashMap::new()),
            node_seen: Mutex::new(HashMap::new()),
        };
        s.mkdir(&s.root.join("users"))?;
        let _lock = lock_in(&s.root, "")?;
        let removed = s.sweep_dead();
        if !s.others_alive() && s.node_dir.exists() {
            s.remove_dir(&s.node_dir);
        }
        if removed > 0 {
            log::info!(
                "scratch cache {}: removed what {removed} ended process(es) left",
                s.root.display()
            );
        }
        fs::write(&s.user_marker, b"").map_err(|source| CacheError::Io {
            root: s.root.clone(),
            action: "register in",
            path: s.user_marker.clone(),
            source,
        })?;
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes of fetched inputs currently held by this process.
    pub fn held_bytes(&self) -> u64 {
        self.lock_state().total
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
        let (root, path) = (self.root.clone(), path.to_path_buf());
        move |source| CacheError::Io {
            root,
            action,
            path,
            source,
        }
    }

    fn mkdir(&self, dir: &Path) -> Result<(), CacheError> {
        fs::create_dir_all(dir).map_err(self.io("create directory", dir))
    }

    fn remove_dir(&self, dir: &Path) {
        if let Err(e) = fs::remove_dir_all(dir) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }

    /// Removes the proc dirs and user markers of dead processes of this host.
    fn sweep_dead(&self) -> usize {
        let mut removed = 0;
        let dead = |name: &str, prefix: &str| -> bool {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(&format!("{}-", self.host)))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !pid_alive(pid))
        };
        if let Ok(rd) = fs::read_dir(self.root.join("users")) {
            for e in rd.flatten() {
                if dead(&e.file_name().to_string_lossy(), "") {
                    let _ = fs::remove_file(e.path());
                    removed += 1;
                }
            }
        }
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if dead(&e.file_name().to_string_lossy(), "proc-") {
                    self.remove_dir(&e.path());
                }
            }
        }
        removed
    }

    /// Whether a live process of this host other than this one uses the cache.
    fn others_alive(&self) -> bool {
        let me = self.user_marker.file_name().map(|n| n.to_os_string());
        let prefix = format!("{}-", self.host);
        fs::read_dir(self.root.join("users"))
            .map(|rd| {
                rd.flatten().any(|e| {
                    let name = e.file_name();
                    Some(&name) != me.as_ref()
                        && name
                            .to_string_lossy()
                            .strip_prefix(&prefix)
                            .and_then(|p| p.parse::<u32>().ok())
                            .is_some_and(pid_alive)
                })
            })
            .unwrap_or(false)
    }

    /// At exit: removes this process's files; the last process of the node also removes
    /// the node's shared entries.
    pub fn leave(&self) {
        let lock = lock_in(&self.root, "");
        self.remove_dir(&self.proc_dir);
        let _ = fs::remove_file(&self.user_marker);
        if lock.is_ok() && !self.others_alive() {
            self.remove_dir(&self.node_dir);
        }
        let mut st = self.lock_state();
        st.entries.clear();
        st.total = 0;
    }

    /// Where a granule bound for `url` is written before its upload.
    pub fn staging_path(&self, url: &S3Url) -> PathBuf {
        self.proc_dir.join("out").join(&url.bucket).join(&url.key)
    }

    /// Evicts unpinned inputs, least recently used first, until `need` more bytes fit.
    fn make_room(&self, st: &mut State, url: &S3Url, need: u64) -> Result<(), CacheError> {
        while st.total + need > self.limit {
            let victim = st
                .entries
                .iter()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            let Some(k) = victim else {
                return Err(CacheError::Full {
                    url: url.to_string(),
                    size: need,
                    limit: self.limit,
                    pinned: st.total,
                });
            };
            if let Some(e) = st.entries.remove(&k) {
                st.total -= e.size;
                super::local::discard(&e.path);
            }
        }
        Ok(())
    }

    /// The local copy of the input object at `url`, fetched if this process does not
    /// hold it yet, pinned until the returned value is dropped.
    pub fn fetch_input(self: &Arc<Self>, s3: &S3, url: &S3Url) -> Result<Pinned, CacheError> {
        let gate = {
            let mut f = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(f.entry(url.clone()).or_default())
        };
        let _one = gate.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut st = self.lock_state();
            st.clock += 1;
            let now = st.clock;
            if let Some(e) = st.entries.get_mut(url) {
                if e.path.is_file() {
                    e.pins += 1;
                    e.used = now;
                    return Ok(Pinned {
                        url: url.clone(),
                        path: e.path.clone(),
                        scratch: Arc::clone(self),
                    });
                }
                let size = e.size;
                st.entries.remove(url);
                st.total -= size;
            }
        }
        let Some((meta, _)) = s3.head(url)? else {
            return Err(CacheError::S3(S3Error::Request {
                op: "HEAD",
                url: url.to_string(),
                reason: "no such object".into(),
            }));
        };
        {
            let mut st = self.lock_state();
            self.make_room(&mut st, url, meta.size)?;
            // Reserve the space now so concurrent fetches of other objects see it.
            st.total += meta.size;
        }
        let path = self.proc_dir.join("in").join(&url.bucket).join(&url.key);
        let t = Instant::now();
        let got = s3.download_known(url, &path, Some(&meta));
        let mut st = self.lock_state();
        match got {
            Ok(info) => {
                // The object may have changed size since the HEAD.
                st.total = st.total - meta.size + info.size;
                st.clock += 1;
                let used = st.clock;
                st.entries.insert(
                    url.clone(),
                    Entry {
                        path: path.clone(),
                        size: info.size,
                        used,
                        pins: 1,
                    },
                );
                log::debug!(
                    "fetched {url} ({:.1} MB, {:.2} s)",
                    info.size as f64 / 1e6,
                    t.elapsed().as_secs_f64()
                );
                Ok(Pinned {
                    url: url.clone(),
                    path,
                    scratch: Arc::clone(self),
                })
            }
            Err(e) => {
                st.total -= meta.size;
                Err(e.into())
            }
        }
    }

    /// Runs `make` under the node lock of entry `name` unless the entry's marker already
    /// holds `stamp` (then nothing is done). `make` fills `path`; the marker is written
    /// after it succeeds, so a crash mid-way leaves no valid-looking entry.
    fn node_entry(
        &self,
        name: &str,
        path: &Path,
        stamp: &str,
        what: &str,
        make: impl FnOnce() -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        let marker = self.node_dir.join(format!("{name}.ok"));
        let valid = || fs::read_to_string(&marker).is_ok_and(|m| m == stamp) && path.exists();
        if valid() {
            return Ok(());
        }
        self.mkdir(&self.node_dir)?;
        let _lock = lock_in_file(
            &self.root,
            &self.node_dir.join(format!("{name}.lock")),
            what,
        )?;
        if valid() {
            return Ok(());
        }
        let _ = fs::remove_file(&marker);
        if path.is_dir() {
            self.remove_dir(path);
        }
        make()?;
        fs::write(&marker, stamp).map_err(self.io("write", &marker))
    }

    /// The node entry `key` as this process validated it before, else `make`'s.
    fn memoized(
        &self,
        key: String,
        make: impl FnOnce() -> Result<PathBuf, CacheError>,
    ) -> Result<PathBuf, CacheError> {
        let seen = |m: &Self| {
            m.node_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned()
        };
        if let Some(p) = seen(self) {
            return Ok(p);
        }
        let path = make()?;
        self.node_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, path.clone());
        Ok(path)
    }

    /// The node-shared local copy of the object at `url` (`meta` from a HEAD or listing).
    pub fn node_object(
        &self,
        s3: &S3,
        url: &S3Url,
        meta: &ObjectInfo,
    ) -> Result<PathBuf, CacheError> {
        self.memoized(format!("object {url}"), || {
            let name = format!("obj-{}", short_hash(&url.to_string()));
            let dir = self.node_dir.join(&name);
            let path = dir.join(url.file_name());
            let stamp = format!("{url} {} {}", meta.size, meta.etag.as_deref().unwrap_or(""));
            self.node_entry(&name, &path, &stamp, &format!("fetch {url}"), || {
                let t = Instant::now();
                s3.download_known(url, &path, Some(meta))?;
                log::info!(
                    "fetched {url} ({:.1} MB, {:.2} s) into {}",
                    meta.size as f64 / 1e6,
                    t.elapsed().as_secs_f64(),
                    dir.display()
                );
                Ok(())
            })?;
            Ok(path)
        })
    }

    /// The node-shared local mirror of every object under the prefix `url`.
    pub fn node_prefix(&self, s3: &S3, url: &S3Url) -> Result<PathBuf, CacheError> {
        self.memoized(format!("prefix {url}"), || {
            let objects = s3.list(url)?;
            if objects.is_empty() {
                return Err(CacheError::Empty {
                    url: url.to_string(),
                });
            }
            let mut stamp = url.to_string();
            for o in &objects {
                stamp.push_str(&format!(
                    "\n{} {} {}",
                    o.key,
                    o.size,
                    o.etag.as_deref().unwrap_or("")
                ));
            }
            let name = format!("dir-{}", short_hash(&url.to_string()));
            let dir = self.node_dir.join(&name);
            self.node_entry(&name, &dir, &stamp, &format!("fetch {url}"), || {
                let t = Instant::now();
                let base = url.dir_prefix();
                let mut bytes = 0;
                for o in &objects {
                    let rel = o.key.strip_prefix(&base).unwrap_or(&o.key);
                    let obj = S3Url {
                        bucket: url.bucket.clone(),
                        key: o.key.clone(),
                    };
                    s3.download_known(&obj, &dir.join(rel), Some(o))?;
                    bytes += o.size;
                }
                log::info!(
                    "fetched {} object(s) under {url} ({:.1} MB, {:.2} s) into {}",
                    objects.len(),
                    bytes as f64 / 1e6,
                    t.elapsed().as_secs_f64(),
                    dir.display()
                );
                Ok(())
            })?;
            Ok(dir)
        })
    }

    /// The node-shared unpacked copy of the local archive `archive`; `identity` names the
    /// archive's version (URL and ETag, or path, size and mtime).
    pub fn node_unpacked(
        &self,
        archive: &Path,
        kind: archive::Kind,
        identity: &str,
    ) -> Result<PathBuf, CacheError> {
        self.memoized(format!("unpacked {identity}"), || {
            let name = format!("unpacked-{}", short_hash(identity));
            let dir = self.node_dir.join(&name);
            self.node_entry(
                &name,
                &dir,
                identity,
                &format!("unpack {}", archive.display()),
                || {
                    let t = Instant::now();
                    self.mkdir(&dir)?;
                    archive::unpack(archive, kind, &dir)?;
                    log::info!(
                        "unpacked {} into {} ({:.2} s)",
                        archive.display(),
                        dir.display(),
                        t.elapsed().as_secs_f64()
                    );
                    Ok(())
                },
            )?;
            Ok(dir)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("20G"), Some(20 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("2t"), Some(2 << 40));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn dead_processes_leftovers_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let h = host();
        // PIDs are below 2^22 on Linux: 99999999 is never alive.
        let dead_proc = dir.path().join(format!("proc-{h}-99999999"));
        fs::create_dir_all(dead_proc.join("in/b")).unwrap();
        fs::create_dir_all(dir.path().join("users")).unwrap();
        fs::write(dir.path().join(format!("users/{h}-99999999")), b"").unwrap();
        let node = dir.path().join(format!("node-{h}"));
        fs::create_dir_all(&node).unwrap();
        let other_host = dir.path().join("proc-elsewhere-99999999");
        fs::create_dir_all(&other_host).unwrap();

        let s = Scratch::open(dir.path(), 1 << 20).unwrap();
        assert!(!dead_proc.exists());
        assert!(!node.exists(), "nobody alive: the node entries go");
        assert!(
            other_host.exists(),
            "another host's files are not ours to judge"
        );
        assert!(s.user_marker.exists());

        // A second live user (ourselves under another name stands in for it) keeps
        // the node entries at our exit.
        fs::create_dir_all(&node).unwrap();
        let live = dir.path().join(format!("users/{h}-1"));
        fs::write(&live, b"").unwrap();
        fs::create_dir_all(&s.proc_dir).unwrap();
        s.leave();
        assert!(!s.proc_dir.exists());
        assert!(!s.user_marker.exists());
        assert!(node.exists(), "pid 1 is alive and may still use them");
        fs::remove_file(&live).unwrap();
    }

    #[test]
    fn node_entries_are_made_once_and_redone_when_their_stamp_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Scratch::open(dir.path(), 1 << 20).unwrap();
        let target = s.node_dir.join("thing");
        let mut calls = 0;
        for stamp in ["v1", "v1", "v2"] {
            s.node_entry("thing", &target, stamp, "", || {
                calls += 1;
                fs::create_dir_all(&s.node_dir).unwrap();
                fs::write(&target, stamp).unwrap();
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(calls, 2);
        assert_eq!(fs::read_to_string(&target).unwrap(), "v2");
        // A failed make leaves no marker, so the next caller tries again.
        let e = s.node_entry("bad", &s.node_dir.join("bad"), "v1", "", || {
            Err(CacheError::Init("boom".into()))
        });
        assert!(e.is_err());
        assert!(!s.node_dir.join("bad.ok").exists());
        assert!(!s.node_dir.join("bad.lock").exists());
        s.leave();
    }
}
