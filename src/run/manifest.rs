//! The completion manifest: one JSON file next to the output, `<dest>/edp-manifest.json`,
//! that says which granule of the tree came from which task, with its size and sha256.
//!
//! It is what a restart trusts to skip work and what `edp verify` checks the tree
//! against. Records are keyed by granule path (relative to the destination, so the tree
//! can be moved); a newer record of a granule replaces the older one, so the manifest
//! accumulates every run made into the same destination. It is replaced atomically
//! (temporary file, fsync, rename), never edited in place.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::{Record, Status};
use crate::storage;

pub const MANIFEST_NAME: &str = "edp-manifest.json";
pub const SUMMARY_NAME: &str = "edp-summary.txt";
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
    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
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

/// The human summary of a run: what was done, skipped and failed, time and throughput.
pub fn summary_text(dest: &Path, run: &RunInfo, manifest: &Manifest) -> String {
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
    }
    s.push_str(&format!(
        "manifest: {} granule(s) done, {} failed\n",
        manifest.count(Status::Done),
        manifest.count(Status::Failed)
    ));
    for r in manifest
        .granules
        .iter()
        .filter(|r| r.status == Status::Failed && r.run_id == run.run_id)
    {
        s.push_str(&format!(
            "FAILED task {} {}: {}\n",
            r.task,
            r.granule,
            r.error.as_deref().unwrap_or("?")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(granule: &str, status: Status, run: &str) -> Record {
        Record {
            run_id: run.into(),
            ..Record::for_test(granule, status)
        }
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
