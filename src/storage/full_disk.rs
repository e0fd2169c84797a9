//! Telling a full disk apart from other write failures. netCDF-C reports a write that
//! ran out of space as "NetCDF: HDF error" and HDF5's own errors do not carry the
//! errno either, so the free space of the file system is measured instead: when a
//! temporary file is discarded after a failed write ([`super::discard`]), before its
//! blocks are given back, and kept here for whoever reports that failure
//! ([`take_for`]).
//!
//! `statvfs` comes from `rustix` (already in the dependency tree through `tar` and
//! `tempfile`): a safe call, so no C FFI outside the one module that holds it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Space available to us below which a file system counts as full for granule writes.
/// A write that failed for want of space leaves next to nothing (HDF5 retries short
/// writes until the kernel says ENOSPC); 16 MiB is far above that and far below what
/// any real destination keeps free.
pub const NEARLY_FULL_BYTES: u64 = 16 << 20;

/// Findings kept at most (a finding nobody takes must not pile up).
const KEPT: usize = 64;

/// A file system found (nearly) full when a temporary file was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullDisk {
    /// The directory the file was written in.
    pub dir: PathBuf,
    /// Bytes available to unprivileged writers (`f_bavail` × `f_frsize`).
    pub available: u64,
}

/// Bytes available to unprivileged writers on the file system of `dir`.
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// (final path, finding), newest last.
static FOUND: Mutex<Vec<(PathBuf, FullDisk)>> = Mutex::new(Vec::new());

/// Measures the file system of `temp` (about to be discarded) and keeps the finding
/// under the final path the file was for, if the file system is (nearly) full.
pub(super) fn note(temp: &Path) {
    let dir = match temp.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(available) = available_bytes(&dir) else {
        return;
    };
    if available >= NEARLY_FULL_BYTES {
        return;
    }
    let key = final_path_of(temp).unwrap_or_else(|| temp.to_path_buf());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    found.retain(|(k, _)| *k != key);
    if found.len() >= KEPT {
        found.remove(0);
    }
    found.push((key, FullDisk { dir, available }));
}

/// The finding for the file meant to become `final_path` (taken: asked once).
pub fn take_for(final_path: &Path) -> Option<FullDisk> {
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    let i = found.iter().position(|(k, _)| k == final_path)?;
    Some(found.remove(i).1)
}

/// `dir/NAME` for a temporary name `dir/.NAME.tmp-<pid>-<random>`
/// ([`super::temp_path_for`]).
fn final_path_of(temp: &Path) -> Option<PathBuf> {
    if !super::is_temp_name(temp) {
        return None;
    }
    let name = temp.file_name()?.to_str()?.strip_prefix('.')?;
    let (final_name, _) = name.rsplit_once(super::local::TEMP_MARKER)?;
    Some(temp.with_file_name(final_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_name_gives_its_final_path() {
        let fin = Path::new("/d/sub/X_1992-01.nc");
        let temp = super::super::temp_path_for(fin).unwrap();
        assert_eq!(final_path_of(&temp).as_deref(), Some(fin));
        assert_eq!(final_path_of(fin), None);
    }
}
