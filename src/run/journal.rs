//! Per-rank journals: one JSON line per finished task, flushed and fsynced before the
//! next task starts, so a run killed at any instant leaves a record of everything it
//! completed and a restart can skip it.
//!
//! Journals live in `<dest>/.edp/journal-<rank>.jsonl`. Rank 0 folds them into the
//! manifest at the end of a run (and at the start of the next one, after a crash),
//! then removes them. A line torn by a kill mid-write is ignored on reading.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tasks::Task;

/// Directory under the destination that holds journals and other run state.
pub const STATE_DIR: &str = ".edp";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// `action`: "create directory", "open journal", "append to journal", "read
    /// journal", "list", "remove journal".
    #[error("cannot {action} {path:?}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot encode the record of {granule}")]
    Encode {
        granule: String,
        source: serde_json::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

/// An input file as it was when the granule was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    /// `None` when the file could not be examined (the error is in the record).
    pub size: Option<u64>,
    /// Modification time, UTC, `YYYY-MM-DDThh:mm:ssZ`.
    pub mtime: Option<String>,
}

/// What happened to one task: the unit of the journals and of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Granule path relative to the destination directory: the key of the manifest.
    pub granule: String,
    pub status: Status,
    /// Position of the task in the run's task list.
    pub task: usize,
    /// sha256 of the task's JSON: a changed task is redone even if its granule exists.
    pub task_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// ETag of the object, for a granule uploaded to S3 (recorded once the upload completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Non-finite values in wet cells written as fill (`--nonfinite fill`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonfinite_filled: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub inputs: Vec<InputFile>,
    pub started: String,
    pub finished: String,
    /// Wall time of the task, seconds (making the granule, then checksumming it).
    pub seconds: f64,
    pub rank: usize,
    pub host: String,
    pub run_id: String,
    pub edp_version: String,
    /// Variables BitRound-quantized in the granule and the significant bits kept
    /// (`--significant-bits`; absent when the granule is exact).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub significant_bits: BTreeMap<String, u8>,
    /// Quick-look PNG written beside the granule (`--quicklook`), its file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quicklook: Option<String>,
    /// Fields of the granule's grouping it was made without (no input at its step;
    /// `--missing-fields`): `edp verify --content` accepts their absence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_fields: Vec<String>,
}

/// The journal of one rank, opened for appending.
pub struct JournalWriter {
    path: PathBuf,
    file: File,
}

/// `<dest>/.edp`.
pub fn state_dir(dest: &Path) -> PathBuf {
    dest.join(STATE_DIR)
}

/// `<dest>/.edp/journal-<rank>.jsonl`.
pub fn journal_path(dest: &Path, rank: usize) -> PathBuf {
    state_dir(dest).join(format!("journal-{rank}.jsonl"))
}

impl JournalWriter {
    pub fn open(dest: &Path, rank: usize) -> Result<JournalWriter, JournalError> {
        let dir = state_dir(dest);
        fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
        let path = journal_path(dest, rank);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("open journal", &path))?;
        Ok(JournalWriter { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line in one write, then fsyncs: once this returns the
    /// record survives a crash of the process or the node.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|source| JournalError::Encode {
            granule: record.granule.clone(),
            source,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("append to journal", &self.path))
    }
}

/// Journal files present under `<dest>/.edp`, in name order.
pub fn journal_files(dest: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let dir = state_dir(dest);
    let mut out: Vec<PathBuf> = crate::storage::dir_entries(&dir)
        .map_err(io_error("list", &dir))?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The records of one journal, in order. Lines that do not parse (a line torn by a
/// kill, or damage) are skipped with a warning: their tasks are simply redone.
pub fn read_journal(path: &Path) -> Result<Vec<Record>, JournalError> {
    let mut out = Vec::new();
    for_each_record(path, |_, r| out.push(r))?;
    Ok(out)
}

/// Calls `f` with each record of a journal and its JSON line, in order, streaming.
/// Lines that do not parse (a line torn by a kill, or damage) are skipped with a
/// warning: their tasks are simply redone. Returns the number of records.
pub fn for_each_record(
    path: &Path,
    mut f: impl FnMut(&[u8], Record),
) -> Result<usize, JournalError> {
    let file = File::open(path).map_err(io_error("read journal", path))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let (mut i, mut n) = (0usize, 0usize);
    loop {
        buf.clear();
        let got = reader
            .read_until(b'\n', &mut buf)
            .map_err(io_error("read journal", path))?;
        if got == 0 {
            break;
        }
        i += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => {
                n += 1;
                f(line, r)
            }
            Err(e) => log::warn!(
                "{}: line {i} is not a record ({e}); ignoring it",
                path.display()
            ),
        }
    }
    Ok(n)
}

/// Number of complete lines in a journal (for progress), 0 if it cannot be read.
pub fn count_lines(path: &Path) -> usize {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += buf[..k].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

/// Removes the given journals (after their records are safely in the manifest).
pub fn remove_journals(paths: &[PathBuf]) -> Result<(), JournalError> {
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove journal", p)(source)),
        }
    }
    Ok(())
}

/// sha256 of a task's JSON (field order is fixed by the task type).
pub fn task_sha256(task: &Task) -> String {
    let bytes = serde_json::to_vec(task).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Sizes and modification times of a task's input files.
pub fn input_files(task: &Task) -> Vec<InputFile> {
    task.variables
        .values()
        .flatten()
        .flat_map(|pair| pair.iter())
        // A NetCDF input (1D tasks) has no `.meta`: its slot is empty.
        .filter(|p| !p.is_empty())
        .map(|p| {
            let meta = fs::metadata(p).ok();
            InputFile {
                path: p.clone(),
                size: meta.as_ref().map(|m| m.len()),
                mtime: meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| format!("{}Z", crate::time::Instant(d.as_secs() as i64).iso())),
            }
        })
        .collect()
}

#[cfg(test)]
impl Record {
    /// A record for tests: `granule` with `status`, size 1, everything else empty.
    pub(crate) fn for_test(granule: &str, status: Status) -> Record {
        Record {
            granule: granule.into(),
            status,
            task: 0,
            task_sha256: String::new(),
            size: Some(1),
            sha256: None,
            etag: None,
            nonfinite_filled: None,
            error: None,
            inputs: vec![],
            started: String::new(),
            finished: String::new(),
            seconds: 0.0,
            rank: 0,
            host: String::new(),
            run_id: String::new(),
            edp_version: String::new(),
            significant_bits: Default::default(),
            quicklook: None,
            missing_fields: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(granule: &str) -> Record {
        Record {
            granule: granule.into(),
            status: Status::Done,
            task: 3,
            task_sha256: "ab".into(),
            size: Some(10),
            sha256: Some("cd".into()),
            etag: None,
            nonfinite_filled: None,
            error: None,
            inputs: vec![],
            started: "s".into(),
            finished: "f".into(),
            seconds: 1.5,
            rank: 1,
            host: "h".into(),
            run_id: "r".into(),
            edp_version: "v".into(),
            significant_bits: Default::default(),
            quicklook: None,
            missing_fields: Vec::new(),
        }
    }

    #[test]
    fn journal_round_trip_skips_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::open(dir.path(), 2).unwrap();
        w.append(&record("a/x.nc")).unwrap();
        w.append(&record("a/y.nc")).unwrap();
        drop(w);
        let path = journal_path(dir.path(), 2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"granule\":\"a/z.nc\",\"sta").unwrap();
        drop(f);
        assert_eq!(journal_files(dir.path()).unwrap(), vec![path.clone()]);
        let got = read_journal(&path).unwrap();
        assert_eq!(got, vec![record("a/x.nc"), record("a/y.nc")]);
        assert_eq!(count_lines(&path), 2);
        remove_journals(std::slice::from_ref(&path)).unwrap();
        assert!(journal_files(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            crate::storage::sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
