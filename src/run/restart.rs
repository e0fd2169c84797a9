//! Restarting into an existing destination: folding a killed run's journals into the
//! manifest and clearing its partial files. Which tasks are already done is the
//! destination's decision ([`super::destination::Destination::decide`]).

use std::io;
use std::path::{Path, PathBuf};

use super::journal::{self, JournalError};
use super::manifest::{Manifest, ManifestError};
use crate::storage;

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
