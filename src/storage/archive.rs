//! Unpacking a grid archive (`.tar`, `.tar.gz`/`.tgz`, `.zip`), as EDP's local/remote
//! example ships the ECCO grid: one zipped tarball object instead of ~40 files.
//!
//! Entries that would land outside the destination (absolute paths, `..`) are refused,
//! so an archive cannot write anywhere but its own directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong unpacking an archive, naming it.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open archive {path:?}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack archive {path:?} into {dest:?}")]
    Unpack {
        path: PathBuf,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive {path:?} has an entry {entry:?} outside its own directory")]
    Unsafe { path: PathBuf, entry: String },
}

/// Archive kinds, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    TarGz,
    Zip,
}

/// The archive kind of a file name, or `None` if it is not one.
pub fn kind_of(name: &str) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Some(Kind::TarGz)
    } else if n.ends_with(".tar") {
        Some(Kind::Tar)
    } else if n.ends_with(".zip") {
        Some(Kind::Zip)
    } else {
        None
    }
}

/// Unpacks `archive` (of kind `kind`) into the directory `dest`, which must exist.
pub fn unpack(archive: &Path, kind: Kind, dest: &Path) -> Result<(), ArchiveError> {
    let file = fs::File::open(archive).map_err(|source| ArchiveError::Open {
        path: archive.to_path_buf(),
        source,
    })?;
    let failed = |source: io::Error| ArchiveError::Unpack {
        path: archive.to_path_buf(),
        dest: dest.to_path_buf(),
        source,
    };
    match kind {
        Kind::Tar => unpack_tar(tar::Archive::new(io::BufReader::new(file)), archive, dest),
        Kind::TarGz => unpack_tar(
            tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file))),
            archive,
            dest,
        ),
        Kind::Zip => {
            let mut z = zip::ZipArchive::new(file).map_err(|e| failed(io::Error::other(e)))?;
            for i in 0..z.len() {
                let mut entry = z.by_index(i).map_err(|e| failed(io::Error::other(e)))?;
                let Some(rel) = entry.enclosed_name() else {
                    return Err(ArchiveError::Unsafe {
                        path: archive.to_path_buf(),
                        entry: entry.name().to_string(),
                    });
                };
                let out = dest.join(rel);
                if entry.is_dir() {
                    fs::create_dir_all(&out).map_err(failed)?;
                    continue;
                }
                if let Some(parent) = out.parent() {
                    fs::create_dir_all(parent).map_err(failed)?;
                }
                let mut f = fs::File::create(&out).map_err(failed)?;
                io::copy(&mut entry, &mut f).map_err(failed)?;
            }
            Ok(())
        }
    }
}

fn unpack_tar<R: io::Read>(
    mut a: tar::Archive<R>,
    archive: &Path,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let failed = |source: io::Error| ArchiveError::Unpack {
        path: archive.to_path_buf(),
        dest: dest.to_path_buf(),
        source,
    };
    for entry in a.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        // `unpack_in` refuses entries escaping `dest` by returning false.
        if !entry.unpack_in(dest).map_err(failed)? {
            let name = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(ArchiveError::Unsafe {
                path: archive.to_path_buf(),
                entry: name,
            });
        }
    }
    Ok(())
}

/// The directory of an unpacked grid: `dir` itself if it holds `XC.meta` or a native
/// GRID_GEOMETRY file, else the single sub-directory that does (archives usually wrap
/// their files in one top-level folder).
pub fn grid_root(dir: &Path) -> PathBuf {
    let mut cur = dir.to_path_buf();
    for _ in 0..4 {
        let Ok(rd) = fs::read_dir(&cur) else {
            break;
        };
        let mut subdirs = Vec::new();
        let mut is_grid = false;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "XC.meta" || (name.contains("native") && name.ends_with(".nc")) {
                is_grid = true;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) && !name.starts_with('.') {
                subdirs.push(e.path());
            }
        }
        if is_grid || subdirs.len() != 1 {
            break;
        }
        cur = subdirs.remove(0);
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(kind_of("grid.tar.gz"), Some(Kind::TarGz));
        assert_eq!(kind_of("GRID.TGZ"), Some(Kind::TarGz));
        assert_eq!(kind_of("g.tar"), Some(Kind::Tar));
        assert_eq!(kind_of("g.zip"), Some(Kind::Zip));
        assert_eq!(kind_of("GRID_GEOMETRY_native.nc"), None);
    }

    #[test]
    fn tar_gz_and_zip_unpack_to_the_grid_root() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src/ECCO_grid");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("XC.meta"), b"meta").unwrap();
        fs::write(src.join("XC.data"), vec![7u8; 1000]).unwrap();

        let tgz = dir.path().join("grid.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                fs::File::create(&tgz).unwrap(),
                flate2::Compression::default(),
            );
            let mut t = tar::Builder::new(gz);
            t.append_dir_all("ECCO_grid", &src).unwrap();
            t.into_inner().unwrap().finish().unwrap();
        }
        let out = dir.path().join("out-tgz");
        fs::create_dir_all(&out).unwrap();
        unpack(&tgz, Kind::TarGz, &out).unwrap();
        let root = grid_root(&out);
        assert_eq!(root, out.join("ECCO_grid"));
        assert_eq!(fs::read(root.join("XC.data")).unwrap(), vec![7u8; 1000]);

        let zpath = dir.path().join("grid.zip");
        {
            let mut z = zip::ZipWriter::new(fs::File::create(&zpath).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file("XC.meta", opts).unwrap();
            io::Write::write_all(&mut z, b"meta").unwrap();
            z.start_file("../evil", opts).unwrap();
            z.finish().unwrap();
        }
        let out = dir.path().join("out-zip");
        fs::create_dir_all(&out).unwrap();
        let err = unpack(&zpath, Kind::Zip, &out).unwrap_err();
        assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
        assert!(!dir.path().join("evil").exists());
        assert_eq!(fs::read(out.join("XC.meta")).unwrap(), b"meta");
    }
}
