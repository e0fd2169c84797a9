//! How every writer's file reaches its final name: one temporary file, one commit.
//!
//! The single-rank writers (direct and netCDF-only), the gather group's first rank and
//! the collective group's first rank all write under a temporary name beside the final
//! one and then commit it (fsync, rename, directory fsync; [`crate::storage`] does the
//! file-system part). A [`Staged`] is that temporary file: it is named by
//! [`Staged::prepare`], tells a failure on a (nearly) full file system as such
//! ([`Staged::explain`], measured before the partial file is removed), is committed now
//! ([`Staged::commit_now`]) or handed to the process's committing thread with its
//! checksum ([`Staged::commit_in_background`]), and is discarded when dropped
//! uncommitted (every early return, panics in producers included). An `s3://` granule
//! is the same commit onto its staging path, then uploaded (`run::produce`).

use std::path::{Path, PathBuf};

use super::NcError;
use crate::storage;

/// A file being written under a temporary name beside its final one; removed when
/// dropped before it is committed.
#[derive(Debug)]
pub(super) struct Staged {
    /// `None` once committed (the commit owns the file then).
    temp: Option<PathBuf>,
    final_path: PathBuf,
}

impl Staged {
    /// A fresh temporary name beside `final_path`, whose directories are created.
    pub(super) fn prepare(final_path: &Path) -> Result<Staged, NcError> {
        let temp = storage::prepare(final_path)?;
        Ok(Staged {
            temp: Some(temp),
            final_path: final_path.to_path_buf(),
        })
    }

    /// The temporary file's path.
    pub(super) fn temp(&self) -> &Path {
        self.temp.as_deref().unwrap_or(&self.final_path)
    }

    /// `e`, told as a full disk when the temporary file's file system is (nearly) full.
    pub(super) fn explain(&self, e: NcError) -> NcError {
        told_as_full_disk(e, self.temp())
    }

    /// fsync, rename onto the final name, directory fsync, now; the file's size. On
    /// failure the temporary file is gone.
    pub(super) fn commit_now(mut self) -> Result<u64, NcError> {
        let temp = self.temp.take().unwrap_or_default();
        // The commit removes the temporary file itself if it fails.
        storage::commit(&temp, &self.final_path)?;
        Ok(storage::file_size(&self.final_path)?)
    }

    /// The commit (and then, with `checksum`, the sha256 of the file in place) on
    /// `committer`'s thread, while the caller goes on.
    pub(super) fn commit_in_background(
        mut self,
        committer: &storage::Committer,
        checksum: bool,
    ) -> storage::PendingCommit {
        let temp = self.temp.take().unwrap_or_default();
        committer.commit_in_background(&temp, &self.final_path, checksum)
    }

    /// [`Staged::commit_now`] as a commit already done, for callers that take either.
    pub(super) fn committed_now(mut self) -> storage::PendingCommit {
        let temp = self.temp.take().unwrap_or_default();
        storage::commit_now(&temp, &self.final_path)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            storage::discard(&t);
        }
    }
}

/// `e`, told as a full disk when the file system of `temp` (the partial file, not yet
/// discarded) is (nearly) full: netCDF-C's own message ("NetCDF: HDF error") does not
/// say so.
pub(super) fn told_as_full_disk(e: NcError, temp: &Path) -> NcError {
    match storage::full_disk::measure(temp) {
        Some(full) => NcError::DiskFull {
            dir: full.dir,
            available: full.available,
            source: Box::new(e),
        },
        None => e,
    }
}

/// How a finished file is committed by the writer that has no group.
#[derive(Clone, Copy)]
pub enum Commit<'a> {
    /// Before the write returns.
    Now,
    /// On the process's committing thread, then its sha256 taken there.
    Background(&'a storage::Committer),
}

impl Commit<'_> {
    /// Commits `staged` as asked.
    pub(super) fn of(self, staged: Staged) -> storage::PendingCommit {
        match self {
            Commit::Now => staged.committed_now(),
            Commit::Background(c) => staged.commit_in_background(c, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_stage_is_removed_and_a_committed_one_is_in_place() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fin = dir.path().join("sub/a.nc");
        let staged = Staged::prepare(&fin).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(staged.temp(), b"x").unwrap_or_else(|e| panic!("{e}"));
        let temp = staged.temp().to_path_buf();
        drop(staged);
        assert!(!temp.exists() && !fin.exists());

        let staged = Staged::prepare(&fin).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(staged.temp(), b"xyz").unwrap_or_else(|e| panic!("{e}"));
        let temp = staged.temp().to_path_buf();
        assert_eq!(staged.commit_now().unwrap_or_else(|e| panic!("{e}")), 3);
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&fin).unwrap_or_default(), b"xyz");
    }
}
