//! Telling a full disk apart from other write failures. netCDF-C reports a write that
//! ran out of space as "NetCDF: HDF error" and HDF5's own errors do not carry the
//! errno either, so the writer measures the free space of the file system when a
//! write fails ([`measure`]), before the partial file is discarded and its blocks are
//! given back, and tells the failure as a full disk.
//!
//! `statvfs` comes from `rustix` (already in the dependency tree through `tar` and
//! `tempfile`): a safe call, so no C FFI outside the one module that holds it.

use std::path::{Path, PathBuf};

/// Space available to us below which a file system counts as full for granule writes.
/// A write that failed for want of space leaves next to nothing (HDF5 retries short
/// writes until the kernel says ENOSPC); 16 MiB is far above that and far below what
/// any real destination keeps free.
pub const NEARLY_FULL_BYTES: u64 = 16 << 20;

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

/// The file system of `file` (a partial file a write just failed on, not yet removed,
/// so its blocks still count), when it is (nearly) full.
pub fn measure(file: &Path) -> Option<FullDisk> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let available = available_bytes(&dir).ok()?;
    (available < NEARLY_FULL_BYTES).then_some(FullDisk { dir, available })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roomy_file_system_is_not_full() {
        // The crate's own file system has more than 16 MiB free wherever tests run.
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(available_bytes(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap() > 0);
        assert_eq!(measure(&here), None);
    }
}
