//! The completion manifest: which granule of the tree came from which task, with its
//! size and sha256; what a restart trusts to skip work and what `edp verify` checks the
//! tree against.
//!
//! Its truth is the destination's record store ([`super::store`]: appended to, never
//! rewritten). `<dest>/edp-manifest.json` is its export in EDP-era JSON
//! (`edp manifest export`, and published next to S3 granules), and a manifest of that
//! form written by an earlier `edp` is imported into the store by streaming on the
//! next run. Records are keyed by granule path (relative to the destination, so the tree
//! can be moved); a newer record of a granule replaces the older one.
//!
//! The summary is bounded whatever the run's size: counts per grouping x product x
//! frequency, the first [`SUMMARY_FAILURES`] failures in full, and every failure as one
//! line of `edp-failures.txt`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::journal::{Record, Status};
use super::store::{key_hash, Store, StoreError};
use crate::storage;

pub const MANIFEST_NAME: &str = "edp-manifest.json";
pub const SUMMARY_NAME: &str = "edp-summary.txt";
/// Every failure of the last run, one line each.
pub const FAILURES_NAME: &str = "edp-failures.txt";
/// Failures the summary shows in full.
pub const SUMMARY_FAILURES: usize = 50;
const FORMAT: &str = "edp-manifest/1";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path:?}")]
    Read { path: PathBuf, source: io::Error },
    #[error("manifest {path:?} is not an edp manifest")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("manifest {path:?} has format {found:?}; this edp reads {FORMAT:?}")]
    Format { path: PathBuf, found: String },
    #[error("cannot write {path:?}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot place {path:?}")]
    Place {
        path: PathBuf,
        source: storage::StorageError,
    },
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error("{0:?} holds no run state (no record store under .edp/ and no {MANIFEST_NAME})")]
    NoState(PathBuf),
}

impl From<StoreError> for ManifestError {
    fn from(e: StoreError) -> Self {
        ManifestError::Store(Box::new(e))
    }
}

/// Figures of the last run into this destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub started: String,
    pub finished: String,
    pub seconds: f64,
    pub ranks: usize,
    pub threads_per_rank: usize,
    /// Tasks in the task list.
    pub tasks: usize,
    pub done: usize,
    pub failed: usize,
    /// Skipped because a previous run had done them.
    pub skipped: usize,
    /// Not attempted because the run was interrupted.
    pub not_run: usize,
    pub interrupted: bool,
    /// Bytes of the granules written by this run.
    pub bytes: u64,
    /// Seconds each rank spent on tasks, by rank.
    pub busy_seconds: Vec<f64>,
    /// Slowest rank's busy time over the mean (1 = perfect balance).
    pub imbalance: f64,
    /// The host each rank ran on, by rank.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Tasks each rank recorded, by rank (handed out in batches as ranks ask).
    #[serde(default)]
    pub tasks_by_rank: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub edp_version: String,
    pub updated: String,
    #[serde(default)]
    pub last_run: Option<RunInfo>,
    /// One record per granule, sorted by granule path.
    pub granules: Vec<Record>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT.into(),
            edp_version: env!("CARGO_PKG_VERSION").into(),
            updated: String::new(),
            last_run: None,
            granules: Vec::new(),
        }
    }
}

pub fn manifest_path(dest: &Path) -> PathBuf {
    dest.join(MANIFEST_NAME)
}

impl Manifest {
    /// The manifest at `path`: a destination's `edp-manifest.json` (or its directory's
    /// path joined with it) is read from the destination's record store when it has
    /// one (the store is the truth; an export may be older), else from the JSON file.
    /// The whole manifest is in memory: for small destinations, tests and verify.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let state = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let store = Store::at(state);
        if store.exists() {
            let store_err = |e: StoreError| ManifestError::Store(Box::new(e));
            let idx = store.index().map_err(store_err)?;
            return Ok(Manifest {
                updated: idx.updated,
                last_run: idx.last_run,
                granules: store.latest().map_err(store_err)?,
                ..Manifest::default()
            });
        }
        Manifest::read_json(path)
    }

    /// Reads a manifest JSON file (an export, or one written by an earlier `edp`).
    pub fn read_json(path: &Path) -> Result<Manifest, ManifestError> {
        let text = fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if m.format != FORMAT {
            return Err(ManifestError::Format {
                path: path.to_path_buf(),
                found: m.format,
            });
        }
        Ok(m)
    }

    /// The manifest of `dest`, or an empty one if there is none yet.
    pub fn load_or_default(dest: &Path) -> Result<Manifest, ManifestError> {
        let path = manifest_path(dest);
        match Manifest::read(&path) {
            Err(ManifestError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(Manifest::default())
            }
            other => other,
        }
    }

    /// Records by granule path.
    pub fn by_granule(&self) -> BTreeMap<String, Record> {
        self.granules
            .iter()
            .map(|r| (r.granule.clone(), r.clone()))
            .collect()
    }

    /// Applies newer records: each replaces the record of the same granule.
    pub fn merge(&mut self, newer: impl IntoIterator<Item = Record>) {
        let mut map = self.by_granule();
        for r in newer {
            map.insert(r.granule.clone(), r);
        }
        self.granules = map.into_values().collect();
    }

    pub fn count(&self, status: Status) -> usize {
        self.granules.iter().filter(|r| r.status == status).count()
    }

    /// Writes the manifest to `<dest>/edp-manifest.json`, atomically and durably.
    pub fn write(&mut self, dest: &Path) -> Result<PathBuf, ManifestError> {
        self.updated = crate::granule::now_utc();
        self.edp_version = env!("CARGO_PKG_VERSION").into();
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        let path = manifest_path(dest);
        write_file_atomic(&path, &text)?;
        Ok(path)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), ManifestError> {
    let place = |source| ManifestError::Place {
        path: path.to_path_buf(),
        source,
    };
    let temp = storage::prepare(path).map_err(place)?;
    let written = fs::File::create(&temp).and_then(|mut f| f.write_all(bytes));
    if let Err(source) = written {
        storage::discard(&temp);
        return Err(ManifestError::Write { path: temp, source });
    }
    storage::commit(&temp, path).map_err(place)
}

/// Streams the records of a manifest JSON file (an export, or one written by an
/// earlier `edp`) into `sink` without holding them; returns the file's last run.
pub fn stream_json(
    path: &Path,
    sink: &mut dyn FnMut(Record) -> Result<(), StoreError>,
) -> Result<Option<RunInfo>, ManifestError> {
    let file = fs::File::open(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_reader(io::BufReader::with_capacity(1 << 16, file));
    let (format, last_run) = Top { sink }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    if format != FORMAT {
        return Err(ManifestError::Format {
            path: path.to_path_buf(),
            found: format,
        });
    }
    Ok(last_run)
}

/// The manifest object, visited key by key so that `granules` streams.
struct Top<'a> {
    sink: &'a mut dyn FnMut(Record) -> Result<(), StoreError>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = (String, Option<RunInfo>);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = (String, Option<RunInfo>);
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an edp manifest object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut format, mut last_run) = (String::new(), None);
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "format" => format = map.next_value()?,
                "last_run" => last_run = map.next_value()?,
                "granules" => map.next_value_seed(Granules {
                    sink: &mut *self.sink,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((format, last_run))
    }
}

struct Granules<'a> {
    sink: &'a mut dyn FnMut(Record) -> Result<(), StoreError>,
}

impl<'de> DeserializeSeed<'de> for Granules<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Granules<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of granule records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<Record>()? {
            (self.sink)(r).map_err(|e| A::Error::custom(crate::error::chain(&e)))?;
        }
        Ok(())
    }
}

/// Imports a manifest JSON file of an earlier `edp` into the (new) store of `state`,
/// streaming; returns the number of records.
pub fn import_json(state: &Path, json: &Path) -> Result<u64, ManifestError> {
    let store = Store::at(state);
    let mut app = store.appender()?;
    let last_run = stream_json(json, &mut |r| app.push(&r))?;
    let n = app.added();
    app.commit(last_run)?;
    Ok(n)
}

/// Writes the manifest of the state directory `state` to `out` as one EDP-era JSON
/// manifest (each granule's latest record, in the order recorded), streaming from the
/// store; atomically. Returns the number of records written.
pub fn export(state: &Path, out: &Path) -> Result<u64, ManifestError> {
    let store = Store::at(state);
    if !store.exists() {
        return Err(ManifestError::NoState(state.to_path_buf()));
    }
    let idx = store.index()?;
    let latest = store.latest_ordinals()?;
    let place = |source| ManifestError::Place {
        path: out.to_path_buf(),
        source,
    };
    let temp = storage::prepare(out).map_err(place)?;
    let write_err = |source| ManifestError::Write {
        path: temp.clone(),
        source,
    };
    let written = (|| -> Result<u64, ManifestError> {
        let file = fs::File::create(&temp).map_err(write_err)?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        // When the store last changed, not now: exporting the same store twice gives
        // the same bytes (`edp sync` compares a re-export with what it uploaded).
        let updated = if idx.updated.is_empty() {
            crate::granule::now_utc()
        } else {
            idx.updated.clone()
        };
        let head = serde_json::json!({
            "format": FORMAT,
            "edp_version": env!("CARGO_PKG_VERSION"),
            "updated": updated,
            "last_run": idx.last_run,
        });
        let head = serde_json::to_string_pretty(&head).unwrap_or_default();
        // The head object without its closing brace, then the records.
        let head = head.trim_end().trim_end_matches('}').trim_end();
        write!(w, "{head},\n  \"granules\": [").map_err(write_err)?;
        #[derive(Deserialize)]
        struct Key {
            granule: String,
        }
        let mut n = 0u64;
        let mut failed = None;
        store.for_each_line(|line, ord| {
            if failed.is_some() {
                return;
            }
            let Ok(k) = serde_json::from_slice::<Key>(line) else {
                return;
            };
            if latest.get(&key_hash(&k.granule)) != Some(&ord) {
                return;
            }
            let sep: &[u8] = if n == 0 { b"\n    " } else { b",\n    " };
            if let Err(e) = w.write_all(sep).and_then(|()| w.write_all(line)) {
                failed = Some(e);
            }
            n += 1;
        })?;
        if let Some(e) = failed {
            return Err(write_err(e));
        }
        w.write_all(b"\n  ]\n}\n").map_err(write_err)?;
        w.flush().map_err(write_err)?;
        Ok(n)
    })();
    match written {
        Ok(n) => {
            storage::commit(&temp, out).map_err(place)?;
            Ok(n)
        }
        Err(e) => {
            storage::discard(&temp);
            Err(e)
        }
    }
}

/// Grouping, product and frequency of a granule key, from its file name (`?` when the
/// name is not an ECCO granule name).
pub fn group_of(granule: &str) -> (String, String, String) {
    match crate::tasks::GranuleName::parse(granule) {
        Ok(n) => (
            n.prefix,
            n.product.name().to_string(),
            n.freq.output_token().to_string(),
        ),
        Err(_) => crate::tasks::oned::group_of(granule)
            .unwrap_or_else(|| ("?".into(), "?".into(), "?".into())),
    }
}

/// Done / failed / not run counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub done: usize,
    pub failed: usize,
    pub not_run: usize,
}

impl Counts {
    pub fn add(&mut self, status: Option<Status>) {
        match status {
            Some(Status::Done) => self.done += 1,
            Some(Status::Failed) => self.failed += 1,
            None => self.not_run += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.done + self.failed + self.not_run
    }
}

/// Counts per grouping x product x frequency, in memory proportional to the groups.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub groups: BTreeMap<(String, String, String), Counts>,
    pub all: Counts,
    /// Granules done without some of their fields (`missing_fields`).
    pub partial: usize,
    /// Field → granules done without it.
    pub missing: BTreeMap<String, usize>,
}

impl Tally {
    pub fn add(&mut self, granule: &str, status: Option<Status>) {
        self.groups
            .entry(group_of(granule))
            .or_default()
            .add(status);
        self.all.add(status);
    }

    /// Counts a record, and the fields it was done without.
    pub fn add_record(&mut self, r: &Record) {
        self.add(&r.granule, Some(r.status));
        if r.status == Status::Done && !r.missing_fields.is_empty() {
            self.partial += 1;
            for f in &r.missing_fields {
                *self.missing.entry(f.clone()).or_default() += 1;
            }
        }
    }

    /// The table of counts, one line per group.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<48} {:<7} {:<9} {:>8} {:>8} {:>8}\n",
            "grouping", "product", "frequency", "done", "failed", "not run"
        );
        for ((g, p, f), c) in &self.groups {
            s.push_str(&format!(
                "{g:<48} {p:<7} {f:<9} {:>8} {:>8} {:>8}\n",
                c.done, c.failed, c.not_run
            ));
        }
        s
    }
}

/// One line of the failures file (and of the summary): the task, its granule, the error
/// on one line.
pub fn failure_line(r: &Record) -> String {
    let err = r
        .error
        .as_deref()
        .unwrap_or("?")
        .replace(['\n', '\r'], " | ");
    format!("FAILED task {} {}: {err}", r.task, r.granule)
}

/// What a run's summary says besides the run's figures.
#[derive(Debug, Default)]
pub struct RunFailures {
    /// This run's records per grouping x product x frequency.
    pub tally: Tally,
    /// The first [`SUMMARY_FAILURES`] failures of this run, as [`failure_line`]s.
    pub first: Vec<String>,
    /// Granules done / failed in the destination after this run (latest records).
    pub destination: Counts,
}

/// The human summary of a run: what was done, skipped and failed, time and throughput,
/// counts per grouping x product x frequency and the first failures; bounded whatever
/// the run's size (every failure is in [`FAILURES_NAME`]).
pub fn summary_text(dest: &Path, run: &RunInfo, f: &RunFailures) -> String {
    let mut s = String::new();
    let rate = if run.seconds > 0.0 {
        run.done as f64 / run.seconds
    } else {
        0.0
    };
    let mb = run.bytes as f64 / 1e6;
    s.push_str(&format!(
        "edp run {} into {}\n\
         {} tasks: {} done, {} failed, {} skipped (done before), {} not run{}\n\
         {:.1} MB written in {:.2} s on {} rank(s) x {} thread(s): {:.2} granules/s, {:.1} MB/s\n",
        run.run_id,
        dest.display(),
        run.tasks,
        run.done,
        run.failed,
        run.skipped,
        run.not_run,
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        mb,
        run.seconds,
        run.ranks,
        run.threads_per_rank,
        rate,
        if run.seconds > 0.0 {
            mb / run.seconds
        } else {
            0.0
        },
    ));
    if run.ranks > 1 {
        let busy: Vec<String> = run.busy_seconds.iter().map(|b| format!("{b:.2}")).collect();
        s.push_str(&format!(
            "busy seconds by rank: [{}], load imbalance (slowest / mean) {:.3}\n",
            busy.join(", "),
            run.imbalance
        ));
        let tasks: Vec<String> = run.tasks_by_rank.iter().map(|n| n.to_string()).collect();
        s.push_str(&format!("tasks by rank: [{}]\n", tasks.join(", ")));
    }
    for (rank, host) in run.hosts.iter().enumerate() {
        s.push_str(&format!("rank {rank} on {host}\n"));
    }
    s.push_str(&format!(
        "manifest: {} granule(s) done, {} failed
",
        f.destination.done, f.destination.failed
    ));
    if !f.tally.groups.is_empty() {
        s.push_str(
            "this run by grouping x product x frequency (not run: to do but not attempted):\n",
        );
        s.push_str(&f.tally.table());
    }
    if f.tally.partial > 0 {
        let fields: Vec<String> = f
            .tally
            .missing
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            "{} granule(s) written without some fields (no input at their step; granules \
             per field: {}); each record names them in missing_fields\n",
            f.tally.partial,
            fields.join(", ")
        ));
    }
    for line in &f.first {
        s.push_str(line);
        s.push('\n');
    }
    if run.failed > f.first.len() {
        s.push_str(&format!(
            "... and {} more failure(s): every failure is in {}\n",
            run.failed - f.first.len(),
            dest.join(FAILURES_NAME).display()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(granule: &str, status: Status, run: &str) -> Record {
        crate::run::store::test_record(granule, status, "", run)
    }

    #[test]
    fn exporting_the_same_store_again_gives_the_same_bytes() {
        // `edp sync` re-exports before comparing with what it uploaded: an export
        // stamped with the time of export differed whenever a second had passed.
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::at(dir.path()).appender().unwrap();
        a.push(&rec("a.nc", Status::Done, "1")).unwrap();
        a.commit(None).unwrap();
        let (one, two) = (dir.path().join("one.json"), dir.path().join("two.json"));
        assert_eq!(export(dir.path(), &one).unwrap(), 1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(export(dir.path(), &two).unwrap(), 1);
        let first = fs::read(&one).unwrap();
        assert_eq!(first, fs::read(&two).unwrap());
        let head: serde_json::Value = serde_json::from_slice(&first).expect("the export is JSON");
        assert!(!head["updated"].as_str().unwrap_or("").is_empty(), "{head}");
    }

    #[test]
    fn newer_records_replace_older_and_the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Manifest::load_or_default(dir.path())
                .unwrap()
                .granules
                .len(),
            0
        );
        let mut m = Manifest::default();
        m.merge([
            rec("b.nc", Status::Failed, "1"),
            rec("a.nc", Status::Done, "1"),
        ]);
        m.merge([rec("b.nc", Status::Done, "2")]);
        assert_eq!(m.granules.len(), 2);
        assert_eq!(m.granules[0].granule, "a.nc");
        assert_eq!(m.granules[1].run_id, "2");
        assert_eq!(m.count(Status::Done), 2);
        let path = m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), m);

        fs::write(
            &path,
            b"{\"format\":\"other\",\"edp_version\":\"x\",\"updated\":\"\",\"granules\":[]}",
        )
        .unwrap();
        let err = Manifest::read(&path).unwrap_err().to_string();
        assert!(err.contains("\"other\""), "{err}");
        fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            Manifest::load_or_default(dir.path()),
            Err(ManifestError::Parse { .. })
        ));
    }
}
