//! Where finished local files land: the one place that creates, renames and removes
//! output paths on a file system.
//!
//! A granule must appear under its final name only when it is complete, so every writer
//! produces it under a temporary name beside the final one and [`commit`]s it with a
//! rename (atomic within one directory on POSIX file systems), with the fsyncs that make
//! the new name durable. A crashed or killed run leaves at most a temporary file, whose
//! name ([`temp_path_for`]) starts with a dot and does not end in `.nc`, so granule globs
//! never pick it up and [`remove_stale_temps`] can recognise it on a restart.
//!
//! A [`Committer`] (one per process, owned by its `Storage`) does the commit on one
//! thread, so a rank's next granule is made while the disk syncs the last one; it can
//! also read the committed file back for its checksum there.
//!
//! On S3 (see [`super::s3`]) the same file is then uploaded, and the completion of the
//! upload plays the role of the rename.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Marker between the final file name and the unique suffix of a temporary name.
pub(super) const TEMP_MARKER: &str = ".tmp-";

/// What went wrong while placing a file, always naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The final path has no file-name component (e.g. `/` or `..`).
    #[error("output path {path:?} has no file name")]
    NoFileName { path: PathBuf },
    /// Creating the directory that will hold the file failed.
    #[error("cannot create directory {path:?}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Flushing the finished temporary file to stable storage failed.
    #[error("cannot fsync {path:?}")]
    SyncFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Renaming the temporary file onto the final name failed.
    #[error("cannot rename {from:?} to {to:?}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The rename happened (the final file is complete) but the directory entry could
    /// not be made durable.
    #[error("cannot fsync directory {path:?} after renaming the file into it")]
    SyncDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Listing a directory failed.
    #[error("cannot list directory {path:?}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a file failed.
    #[error("cannot remove {path:?}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading a file's metadata failed.
    #[error("cannot stat {path:?}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is in place, but reading it back for its checksum failed.
    #[error("{path:?} was written but cannot be read back for its checksum")]
    ReadBack {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Directory that holds (or will hold) `path`; `.` for a bare relative file name.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Temporary name beside `final_path`: `.<final name>.tmp-<pid>-<random>`.
///
/// The pid tells a human which run left it behind; the random part keeps two writers of
/// the same granule (e.g. a retried task in the same process) from colliding.
pub fn temp_path_for(final_path: &Path) -> Result<PathBuf, StorageError> {
    let name = final_path
        .file_name()
        .ok_or_else(|| StorageError::NoFileName {
            path: final_path.to_path_buf(),
        })?;
    let random = uuid::Uuid::new_v4().simple().to_string();
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(
        "{TEMP_MARKER}{}-{}",
        std::process::id(),
        &random[..12]
    ));
    Ok(parent_dir(final_path).join(temp))
}

/// Creates the directories leading to `final_path` and returns a fresh temporary path
/// (see [`temp_path_for`]) in the same directory, ready for a writer to create.
pub fn prepare(final_path: &Path) -> Result<PathBuf, StorageError> {
    let temp = temp_path_for(final_path)?;
    let dir = parent_dir(final_path);
    fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir { path: dir, source })?;
    Ok(temp)
}

/// The process id in a temporary file's name ([`temp_path_for`]).
pub fn temp_pid(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.rsplit_once(TEMP_MARKER)?;
    suffix.split_once('-')?.0.parse().ok()
}

/// True if `path`'s file name is one that [`temp_path_for`] produces.
pub fn is_temp_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((final_name, suffix)) = rest.rsplit_once(TEMP_MARKER) else {
        return false;
    };
    let Some((pid, random)) = suffix.split_once('-') else {
        return false;
    };
    !final_name.is_empty()
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !random.is_empty()
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Makes the complete file at `temp` durable and visible as `final_path`.
///
/// fsync of the file, rename (replacing any existing `final_path` in one step), fsync of
/// the directory. If the fsync or the rename fails the temporary file is removed; if
/// only the directory fsync fails the final file is complete and stays in place.
pub fn commit(temp: &Path, final_path: &Path) -> Result<(), StorageError> {
    let synced = fs::File::open(temp).and_then(|f| f.sync_all());
    if let Err(source) = synced {
        discard(temp);
        return Err(StorageError::SyncFile {
            path: temp.to_path_buf(),
            source,
        });
    }
    if let Err(source) = fs::rename(temp, final_path) {
        discard(temp);
        return Err(StorageError::Rename {
            from: temp.to_path_buf(),
            to: final_path.to_path_buf(),
            source,
        });
    }
    let dir = parent_dir(final_path);
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::SyncDir { path: dir, source })
}

/// [`commit`], then, if asked, the sha256 of the committed file read back.
fn commit_and_checksum(
    temp: &Path,
    final_path: &Path,
    checksum: bool,
) -> Result<Option<String>, StorageError> {
    commit(temp, final_path)?;
    checksum
        .then(|| {
            sha256_file(final_path).map_err(|source| StorageError::ReadBack {
                path: final_path.to_path_buf(),
                source,
            })
        })
        .transpose()
}

/// A [`commit`] handed to the committing thread ([`Committer::commit_in_background`]).
pub struct PendingCommit {
    done: std::sync::mpsc::Receiver<Result<Option<String>, StorageError>>,
    temp: PathBuf,
}

impl PendingCommit {
    /// Waits until the file is durable under its final name, or the commit failed;
    /// gives the file's sha256 if it was asked for.
    pub fn wait(self) -> Result<Option<String>, StorageError> {
        self.done.recv().unwrap_or_else(|_| {
            // The committing thread is gone (it panicked): the file may not be durable.
            discard(&self.temp);
            Err(StorageError::SyncFile {
                path: self.temp.clone(),
                source: io::Error::other("the committing thread stopped"),
            })
        })
    }
}

/// Temporary file, final path, checksum wanted, where to answer.
type CommitJob = (
    PathBuf,
    PathBuf,
    bool,
    std::sync::mpsc::Sender<Result<Option<String>, StorageError>>,
);

/// [`commit`] on one thread, in the order asked, so that the fsyncs (waits on the disk)
/// of a finished file overlap the making of the next one; the checksum of the
/// committed file (read back for the manifest) is taken there too. The file is under
/// its final name, durable, once [`PendingCommit::wait`] returns `Ok`: record it as
/// done only then. Dropping a handle does not stop its commit. Owned by the process's
/// [`super::Storage`]; the thread starts on first use and ends once the committer is
/// dropped and its queue is done.
#[derive(Debug, Default)]
pub struct Committer {
    queue: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<CommitJob>>>,
}

impl Committer {
    /// Hands `temp` → `final_path` to the committing thread (or commits here if that
    /// thread cannot be had); with `checksum`, the committed file is then read back
    /// there for its sha256.
    pub fn commit_in_background(
        &self,
        temp: &Path,
        final_path: &Path,
        checksum: bool,
    ) -> PendingCommit {
        use std::sync::mpsc::channel;
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = channel::<CommitJob>();
            std::thread::Builder::new()
                .name("edp-commit".into())
                .spawn(move || {
                    for (temp, final_path, checksum, reply) in rx {
                        let _ = reply.send(commit_and_checksum(&temp, &final_path, checksum));
                    }
                })
                .map_or_else(
                    |e| log::warn!("no committing thread ({e}): commits run in place"),
                    drop,
                );
            std::sync::Mutex::new(tx)
        });
        let (reply, done) = channel();
        let job = (
            temp.to_path_buf(),
            final_path.to_path_buf(),
            checksum,
            reply,
        );
        let sent = queue.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        if let Err(std::sync::mpsc::SendError((temp, final_path, checksum, reply))) = sent {
            // No committing thread: commit here.
            let _ = reply.send(commit_and_checksum(&temp, &final_path, checksum));
        }
        PendingCommit {
            done,
            temp: temp.to_path_buf(),
        }
    }
}

/// [`commit`] now, as a [`PendingCommit`] that is already done (for callers that
/// wait at once).
pub fn commit_now(temp: &Path, final_path: &Path) -> PendingCommit {
    let (reply, done) = std::sync::mpsc::channel();
    let _ = reply.send(commit(temp, final_path).map(|()| None));
    PendingCommit {
        done,
        temp: temp.to_path_buf(),
    }
}

/// Removes a temporary file after a failed write; a missing file is fine.
///
/// The file is emptied first: after a write failed on a full disk, HDF5 can keep the
/// file open (its close could not flush), and an unlinked file still open keeps its
/// blocks, so the disk would stay full for the journal and every later granule.
///
/// Never fails: it runs on error paths, where the original error is what matters.
/// Other removal failures are logged.
pub fn discard(temp: &Path) {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(temp) {
        if let Err(e) = f.set_len(0) {
            log::warn!("cannot empty temporary file {temp:?}: {e}");
        }
    }
    match fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove temporary file {temp:?}: {e}"),
    }
}

/// The paths of the entries of `dir`, in no particular order; a missing directory has
/// none.
pub fn dir_entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        entries => entries?.map(|e| e.map(|e| e.path())).collect(),
    }
}

/// Removes leftovers of crashed runs (files named by [`temp_path_for`]) from `dir` and
/// returns how many were removed. A missing directory has none.
///
/// Call it only when no other writer is working in `dir` (e.g. before a restart's ranks
/// start writing): a live writer's temporary file looks the same as a stale one.
pub fn remove_stale_temps(dir: &Path) -> Result<usize, StorageError> {
    let entries = dir_entries(dir).map_err(|source| StorageError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut removed = 0;
    for path in entries {
        if !is_temp_name(&path) {
            continue;
        }
        // A writer still alive on this host keeps its file (another host's writers
        // are kept off by the destination lock).
        if let Some(pid) = temp_pid(&path) {
            if pid != std::process::id() && super::lock::pid_alive(pid) {
                log::warn!(
                    "{} belongs to live process {pid}: left in place",
                    path.display()
                );
                continue;
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            // Another process cleaned it up first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StorageError::Remove { path, source }),
        }
    }
    Ok(removed)
}

/// Size in bytes of the file at `path`.
pub fn file_size(path: &Path) -> Result<u64, StorageError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| StorageError::Stat {
            path: path.to_path_buf(),
            source,
        })
}

/// Lower-case hex sha256 of a file's contents (manifests, restart checks, uploads).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_hidden_from_nc_globs() {
        let t = temp_path_for(Path::new("/out/SSH/SSH_1992-01.nc")).unwrap();
        assert_eq!(t.parent(), Some(Path::new("/out/SSH")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".SSH_1992-01.nc.tmp-"), "{name}");
        assert!(!name.ends_with(".nc"));
        assert!(is_temp_name(&t));
        assert!(!is_temp_name(Path::new("/out/SSH/SSH_1992-01.nc")));
        assert!(!is_temp_name(Path::new(".hidden")));
        assert!(!is_temp_name(Path::new(".x.tmp-12-zz")));
        assert!(!is_temp_name(Path::new(".x.tmp--ab")));
        assert_ne!(
            t,
            temp_path_for(Path::new("/out/SSH/SSH_1992-01.nc")).unwrap()
        );
        let bare = temp_path_for(Path::new("a.nc")).unwrap();
        assert_eq!(bare.parent(), Some(Path::new(".")));
        assert!(temp_path_for(Path::new("/")).is_err());
    }

    #[test]
    fn commit_replaces_and_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let final_path = dir.path().join("sub/dir/x.nc");
        let temp = prepare(&final_path).unwrap();
        fs::write(&temp, b"new").unwrap();
        fs::write(&final_path, b"old").unwrap();
        commit(&temp, &final_path).unwrap();
        assert_eq!(fs::read(&final_path).unwrap(), b"new");
        assert!(!temp.exists());
        assert_eq!(file_size(&final_path).unwrap(), 3);

        let stale = temp_path_for(&final_path).unwrap();
        fs::write(&stale, b"partial").unwrap();
        let sub = final_path.parent().unwrap();
        assert_eq!(remove_stale_temps(sub).unwrap(), 1);
        assert!(!stale.exists());
        assert!(final_path.exists());
        assert_eq!(remove_stale_temps(&dir.path().join("missing")).unwrap(), 0);
        discard(&stale); // already gone: no error
    }

    #[test]
    fn background_commits_keep_their_order_and_report_failures() {
        let committer = Committer::default();
        let dir = tempfile::tempdir().unwrap();
        let final_path = dir.path().join("g.nc");
        let pending: Vec<PendingCommit> = (0..3)
            .map(|i| {
                let temp = prepare(&final_path).unwrap();
                fs::write(&temp, format!("version {i}")).unwrap();
                committer.commit_in_background(&temp, &final_path, false)
            })
            .collect();
        for p in pending {
            assert_eq!(p.wait().unwrap(), None);
        }
        // The last asked is the last renamed.
        assert_eq!(fs::read_to_string(&final_path).unwrap(), "version 2");
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 0);

        // Asked for, the checksum is that of the committed file (FIPS 180-2's "abc").
        let temp = prepare(&final_path).unwrap();
        fs::write(&temp, "abc").unwrap();
        let sha = committer
            .commit_in_background(&temp, &final_path, true)
            .wait();
        assert_eq!(
            sha.unwrap().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );

        let missing = temp_path_for(&dir.path().join("h.nc")).unwrap();
        let err = committer
            .commit_in_background(&missing, &dir.path().join("h.nc"), true)
            .wait()
            .unwrap_err();
        assert!(matches!(err, StorageError::SyncFile { .. }), "{err}");
        assert!(!dir.path().join("h.nc").exists());
    }
}
