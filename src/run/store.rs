//! The record store: every record of every run into a destination, kept so that a
//! release of 10⁵–10⁶ granules costs neither a near-GB JSON rewrite per run nor the
//! whole manifest in memory.
//!
//! `<state>/.edp/records.jsonl.gz` is a sequence of gzip members, each holding records
//! as JSON Lines (the journals' own lines); a fold appends one member and never
//! rewrites what is there. `<state>/.edp/records.idx` is a small JSON file, replaced
//! atomically after the member is fsynced, that says how many bytes of the store are
//! committed (and holds the last run's figures). Readers read only the committed bytes
//! and the next append truncates anything beyond them, so a kill during the store's own
//! write leaves at most an uncommitted tail that nobody reads: no torn record is ever
//! read as done, and the journals it came from are removed only after the commit.
//!
//! A newer record of a granule supersedes the older ones. Skipping done work needs only
//! [`Priors`]: per granule a 16-byte key hash, the status, the task hash, the size and
//! the granule's sha256 (about 100 bytes, not the record).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::journal::{self, Record, Status};
use super::manifest::RunInfo;

pub const STORE_NAME: &str = "records.jsonl.gz";
pub const INDEX_NAME: &str = "records.idx";
const FORMAT: &str = "edp-records/1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `action`: "read", "open", "append to", "truncate", "sync".
    #[error("cannot {action} the record store {path:?}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("record store index {path:?} is not an edp index")]
    Index {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("record store index {path:?} has format {found:?}; this edp reads {FORMAT:?}")]
    Format { path: PathBuf, found: String },
    #[error("record store {path:?} is shorter ({len} bytes) than its index says ({committed})")]
    Short {
        path: PathBuf,
        len: u64,
        committed: u64,
    },
    #[error("cannot write the record store index {path:?}")]
    WriteIndex {
        path: PathBuf,
        source: super::manifest::ManifestError,
    },
    #[error("cannot encode the record of {granule}")]
    Encode {
        granule: String,
        source: serde_json::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// What the index says about the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreIndex {
    pub format: String,
    /// Bytes of the store that are committed (complete gzip members).
    pub committed: u64,
    /// Records in those bytes (superseded ones included).
    pub records: u64,
    pub updated: String,
    /// The figures of the last run that concluded into the store.
    #[serde(default)]
    pub last_run: Option<RunInfo>,
}

/// The record store of a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    state: PathBuf,
    dir: PathBuf,
}

/// A 16-byte hash of a granule key: what the done decisions key on.
pub type KeyHash = u128;

pub fn key_hash(key: &str) -> KeyHash {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

/// A sha256 given as hex, as its 32 bytes (any other text: the sha256 of that text, so
/// equal texts still compare equal).
fn sha_bytes(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    match hex::decode_to_slice(text, &mut out) {
        Ok(()) => out,
        Err(_) => Sha256::digest(text.as_bytes()).into(),
    }
}

/// What a restart needs of a granule's latest record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    pub status: Status,
    /// sha256 of the task that made it.
    pub task_sha256: [u8; 32],
    pub size: Option<u64>,
    pub sha256: Option<[u8; 32]>,
}

impl Prior {
    pub fn of(r: &Record) -> Prior {
        Prior {
            status: r.status,
            task_sha256: sha_bytes(&r.task_sha256),
            size: r.size,
            sha256: r.sha256.as_deref().map(sha_bytes),
        }
    }

    /// Whether the record was made by the task whose sha256 (hex) is `task_sha256`.
    pub fn same_task(&self, task_sha256: &str) -> bool {
        sha_bytes(task_sha256) == self.task_sha256
    }

    /// Whether the granule's sha256 is the recorded one.
    pub fn same_sha256(&self, sha256: Option<&str>) -> bool {
        self.sha256.is_some() && sha256.map(sha_bytes) == self.sha256
    }
}

/// The latest record of every granule of a destination, compactly.
#[derive(Debug, Default)]
pub struct Priors {
    map: HashMap<KeyHash, Prior>,
}

impl Priors {
    pub fn insert(&mut self, r: &Record) {
        self.map.insert(key_hash(&r.granule), Prior::of(r));
    }

    pub fn get(&self, key: &str) -> Option<&Prior> {
        self.map.get(&key_hash(key))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn count(&self, status: Status) -> usize {
        self.map.values().filter(|p| p.status == status).count()
    }
}

impl Store {
    /// The store of the state directory `state` (in `<state>/.edp`).
    pub fn at(state: &Path) -> Store {
        Store {
            state: state.to_path_buf(),
            dir: journal::state_dir(state),
        }
    }

    /// The state directory the store belongs to.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// Records the figures of the last run in the index.
    pub fn set_last_run(&self, info: RunInfo) -> Result<(), StoreError> {
        let mut idx = self.index()?;
        idx.format = FORMAT.into();
        idx.updated = crate::granule::now_utc();
        idx.last_run = Some(info);
        self.write_index(&idx)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STORE_NAME)
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_NAME)
    }

    /// Whether the store has been created (its index exists).
    pub fn exists(&self) -> bool {
        self.index_path().exists()
    }

    /// The index, or an empty one if there is no store yet.
    pub fn index(&self) -> Result<StoreIndex, StoreError> {
        let path = self.index_path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(StoreIndex {
                    format: FORMAT.into(),
                    ..StoreIndex::default()
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let idx: StoreIndex =
            serde_json::from_slice(&text).map_err(|source| StoreError::Index {
                path: path.clone(),
                source,
            })?;
        if idx.format != FORMAT {
            return Err(StoreError::Format {
                path,
                found: idx.format,
            });
        }
        Ok(idx)
    }

    fn write_index(&self, idx: &StoreIndex) -> Result<(), StoreError> {
        let path = self.index_path();
        let mut text = serde_json::to_vec_pretty(idx).unwrap_or_default();
        text.push(b'\n');
        super::manifest::write_file_atomic(&path, &text)
            .map_err(|source| StoreError::WriteIndex { path, source })
    }

    /// Opens the store for appending one member; nothing is visible to readers until
    /// [`Appender::commit`].
    pub fn appender(&self) -> Result<Appender, StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_err("open", &self.dir))?;
        let idx = self.index()?;
        let path = self.path();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let len = file.metadata().map_err(io_err("open", &path))?.len();
        if len < idx.committed {
            return Err(StoreError::Short {
                path,
                len,
                committed: idx.committed,
            });
        }
        if len > idx.committed {
            log::warn!(
                "{}: ignoring {} uncommitted byte(s) of an interrupted write",
                path.display(),
                len - idx.committed
            );
            file.set_len(idx.committed)
                .map_err(io_err("truncate", &path))?;
        }
        file.seek(SeekFrom::Start(idx.committed))
            .map_err(io_err("append to", &path))?;
        let enc = GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
        Ok(Appender {
            store: self.clone(),
            path,
            enc: Some(enc),
            idx,
            added: 0,
        })
    }

    /// Calls `f` with every committed record, oldest first (a granule's newer records
    /// come after its older ones). Returns the number of records read.
    pub fn for_each(&self, mut f: impl FnMut(Record)) -> Result<u64, StoreError> {
        self.for_each_line(|line, n| match serde_json::from_slice::<Record>(line) {
            Ok(r) => f(r),
            Err(e) => log::warn!("record store: record {n} is not a record ({e}); ignoring it"),
        })
    }

    /// Calls `f` with every committed record's JSON line and its ordinal.
    pub fn for_each_line(&self, mut f: impl FnMut(&[u8], u64)) -> Result<u64, StoreError> {
        let idx = self.index()?;
        if idx.committed == 0 {
            return Ok(0);
        }
        let path = self.path();
        let file = File::open(&path).map_err(io_err("read", &path))?;
        let committed = BufReader::new(file.take(idx.committed));
        let mut lines = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(committed));
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let got = lines
                .read_until(b'\n', &mut buf)
                .map_err(io_err("read", &path))?;
            if got == 0 {
                break;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            f(line, n);
            n += 1;
        }
        Ok(n)
    }

    /// The latest record of every granule, compactly.
    pub fn priors(&self) -> Result<Priors, StoreError> {
        let mut p = Priors::default();
        self.for_each(|r| p.insert(&r))?;
        Ok(p)
    }

    /// The latest record of every granule, sorted by granule (the whole store in
    /// memory: for small destinations, tests and `edp verify`).
    pub fn latest(&self) -> Result<Vec<Record>, StoreError> {
        let mut map = std::collections::BTreeMap::new();
        self.for_each(|r| {
            map.insert(r.granule.clone(), r);
        })?;
        Ok(map.into_values().collect())
    }

    /// The ordinal of each granule's latest record (by key hash), for streaming
    /// exports that skip superseded records.
    pub fn latest_ordinals(&self) -> Result<HashMap<KeyHash, u64>, StoreError> {
        let mut map = HashMap::new();
        #[derive(Deserialize)]
        struct Key {
            granule: String,
        }
        self.for_each_line(|line, n| {
            if let Ok(k) = serde_json::from_slice::<Key>(line) {
                map.insert(key_hash(&k.granule), n);
            }
        })?;
        Ok(map)
    }

    /// Bytes on disk of the store and its index.
    pub fn bytes(&self) -> u64 {
        [self.path(), self.index_path()]
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// `<state>/.edp/plan.txt.gz`: the granule keys of the last run's task list, in order,
/// one a line: what `edp status` counts "not run" against.
pub const PLAN_NAME: &str = "plan.txt.gz";

/// Writes the plan's keys (atomically).
pub fn write_plan(state: &Path, keys: &[String]) -> Result<(), StoreError> {
    let path = journal::state_dir(state).join(PLAN_NAME);
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for k in keys {
        let _ = enc.write_all(k.as_bytes());
        let _ = enc.write_all(b"\n");
    }
    let bytes = enc.finish().map_err(io_err("append to", &path))?;
    super::manifest::write_file_atomic(&path, &bytes)
        .map_err(|source| StoreError::WriteIndex { path, source })
}

/// Calls `f` with each key of the last plan; `Ok(None)` if no plan was recorded.
pub fn for_each_plan_key(state: &Path, mut f: impl FnMut(&str)) -> Result<Option<u64>, StoreError> {
    let path = journal::state_dir(state).join(PLAN_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let reader = BufReader::new(MultiGzDecoder::new(BufReader::new(file)));
    let mut n = 0;
    for line in reader.lines() {
        let line = line.map_err(io_err("read", &path))?;
        if !line.is_empty() {
            f(&line);
            n += 1;
        }
    }
    Ok(Some(n))
}

/// One member being appended to the store.
pub struct Appender {
    store: Store,
    path: PathBuf,
    enc: Option<GzEncoder<BufWriter<File>>>,
    idx: StoreIndex,
    added: u64,
}

impl Appender {
    /// Adds one record.
    pub fn push(&mut self, r: &Record) -> Result<(), StoreError> {
        let line = serde_json::to_vec(r).map_err(|source| StoreError::Encode {
            granule: r.granule.clone(),
            source,
        })?;
        self.push_line(&line)
    }

    /// Adds one record given as its JSON line (without the newline).
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), StoreError> {
        let path = &self.path;
        if let Some(enc) = self.enc.as_mut() {
            enc.write_all(line)
                .and_then(|()| enc.write_all(b"\n"))
                .map_err(io_err("append to", path))?;
        }
        self.added += 1;
        Ok(())
    }

    pub fn added(&self) -> u64 {
        self.added
    }

    /// Ends the member, makes it durable, then commits it in the index (with the last
    /// run's figures, if given). Before this returns, readers see none of it.
    pub fn commit(mut self, last_run: Option<RunInfo>) -> Result<StoreIndex, StoreError> {
        let path = self.path.clone();
        let mut idx = self.idx.clone();
        if let Some(enc) = self.enc.take() {
            let file = enc
                .finish()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .map_err(io_err("append to", &path))?;
            file.sync_data().map_err(io_err("sync", &path))?;
            if self.added > 0 {
                idx.committed = file.metadata().map_err(io_err("sync", &path))?.len();
                idx.records += self.added;
            }
        }
        idx.format = FORMAT.into();
        idx.updated = crate::granule::now_utc();
        if last_run.is_some() {
            idx.last_run = last_run;
        }
        self.store.write_index(&idx)?;
        Ok(idx)
    }
}

/// A record for tests: `granule` with `status`, of task `task_sha256` and run `run_id`.
#[cfg(test)]
pub(crate) fn test_record(
    granule: &str,
    status: Status,
    task_sha256: &str,
    run_id: &str,
) -> Record {
    Record {
        task_sha256: task_sha256.into(),
        run_id: run_id.into(),
        ..Record::for_test(granule, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(granule: &str, status: Status, sha: &str) -> Record {
        test_record(granule, status, sha, "")
    }

    /// A store in `dir` holding `records`, committed.
    fn store_with(dir: &Path, records: &[Record]) -> Store {
        let s = Store::at(dir);
        let mut a = s.appender().unwrap();
        for r in records {
            a.push(r).unwrap();
        }
        a.commit(None).unwrap();
        s
    }

    const A: &str = "aa00000000000000000000000000000000000000000000000000000000000000";
    const B: &str = "bb00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn appends_commit_and_newer_records_win() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::at(dir.path());
        assert!(!s.exists());
        assert_eq!(s.for_each(|_| {}).unwrap(), 0);
        let mut a = s.appender().unwrap();
        a.push(&rec("x.nc", Status::Failed, A)).unwrap();
        a.push(&rec("y.nc", Status::Done, A)).unwrap();
        a.commit(None).unwrap();
        let mut a = s.appender().unwrap();
        a.push(&rec("x.nc", Status::Done, B)).unwrap();
        let idx = a.commit(None).unwrap();
        assert_eq!(idx.records, 3);
        let p = s.priors().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.count(Status::Done), 2);
        assert!(p.get("x.nc").unwrap().same_task(B));
        assert!(!p.get("x.nc").unwrap().same_task(A));
        assert!(p.get("z.nc").is_none());
        let latest = s.latest().unwrap();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].granule, "x.nc");
        assert_eq!(latest[0].task_sha256, B);
    }

    #[test]
    fn an_uncommitted_or_torn_tail_is_never_read_and_is_dropped_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with(dir.path(), &[rec("x.nc", Status::Failed, A)]);
        let committed = fs::metadata(s.path()).unwrap().len();

        // A whole member written and fsynced but killed before the index: not read.
        let mut a = s.appender().unwrap();
        a.push(&rec("x.nc", Status::Done, A)).unwrap();
        let enc = a.enc.take().unwrap();
        enc.finish().unwrap().flush().unwrap();
        drop(a);
        assert!(fs::metadata(s.path()).unwrap().len() > committed);
        let p = s.priors().unwrap();
        assert_eq!(p.get("x.nc").unwrap().status, Status::Failed);

        // A member cut in the middle of a record (a kill mid-write): not read either.
        let full = fs::read(s.path()).unwrap();
        fs::write(s.path(), &full[..full.len() - 7]).unwrap();
        assert_eq!(s.priors().unwrap().count(Status::Done), 0);
        assert_eq!(s.for_each(|_| {}).unwrap(), 1);

        // The next append truncates the tail and its records follow the committed ones.
        let mut a = s.appender().unwrap();
        a.push(&rec("y.nc", Status::Done, A)).unwrap();
        a.commit(None).unwrap();
        let all: Vec<String> = {
            let mut v = vec![];
            s.for_each(|r| v.push(format!("{}:{:?}", r.granule, r.status)))
                .unwrap();
            v
        };
        assert_eq!(all, vec!["x.nc:Failed", "y.nc:Done"]);
    }

    #[test]
    fn a_store_shorter_than_its_index_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with(dir.path(), &[rec("x.nc", Status::Done, A)]);
        fs::write(s.path(), b"").unwrap();
        let err = s.appender().err().unwrap().to_string();
        assert!(err.contains("shorter"), "{err}");
        assert!(s.for_each(|_| {}).is_err());
    }
}
