//! Where files come from and where they land: the local file system, and S3 behind the
//! same few calls, so that the three modes of ECCO Dataset Production (local;
//! local/remote; remote) differ only in the locations given, never in the code that
//! reads MDS files or writes granules.
//!
//! - [`local`] (re-exported here): temporary names, fsync, rename, stale-temp clean-up —
//!   the single place that creates and renames output paths.
//! - [`s3`]: the S3 handle (blocking calls over a runtime it owns).
//! - [`cache`]: the bounded local scratch cache that turns S3 inputs into local files the
//!   memory-mapped readers use unchanged; shared entries (grid, factors) once per node.
//!
//! A process makes one [`Storage`] from its [`Settings`] and passes it down: it owns the
//! S3 handle and the scratch cache (opened on first use, cleaned when it is dropped).
//! - [`full_disk`]: whether a failed write found its file system full.
//! - [`archive`]: unpacking a grid shipped as one `.tar`/`.tar.gz`/`.zip`.
//!
//! A location is S3 exactly when it starts with `s3://` (EDP's rule); anything else is a
//! local path.

pub mod archive;
pub mod cache;
pub mod full_disk;
mod local;
pub mod lock;
pub mod s3;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use local::{
    commit, commit_now, dir_entries, discard, file_size, is_temp_name, prepare, remove_stale_temps,
    sha256_file, temp_path_for, Committer, PendingCommit, StorageError,
};
pub use s3::{ObjectInfo, S3Config, S3Error, S3Url, Uploaded, S3};

use crate::settings::Settings;
use cache::{CacheError, Pinned, Scratch};

/// What went wrong making a location usable, naming it.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{loc}: no such object or prefix")]
    NotFound { loc: String },
    #[error("{loc}: no such object")]
    NoObject { loc: String },
    #[error("{loc}: no such bucket {bucket:?}")]
    NoBucket { loc: String, bucket: String },
    #[error("cannot read {path:?}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// True if `loc` names an S3 location.
pub fn is_s3(loc: &str) -> bool {
    loc.starts_with("s3://")
}

/// The S3 location `loc` names, `None` for a local path.
pub fn s3_url(loc: &str) -> Option<Result<S3Url, S3Error>> {
    S3Url::parse(loc)
}

fn parse(loc: &str) -> Result<Option<S3Url>, LocationError> {
    Ok(S3Url::parse(loc).transpose()?)
}

/// A process's storage: the S3 handle and the scratch cache, made once from the
/// [`Settings`] and passed down. The scratch cache is opened (and dead processes'
/// leftovers cleaned) on first use; dropping the `Storage` removes this process's part.
#[derive(Debug)]
pub struct Storage {
    s3: S3,
    scratch_root: PathBuf,
    scratch_limit: Option<String>,
    /// Opened on first use: a run with only local files never touches the scratch root.
    scratch: OnceLock<Result<Arc<Scratch>, String>>,
    /// The committing thread of this process's granules (fsync + rename).
    committer: Committer,
}

impl Storage {
    pub fn new(settings: &Settings) -> Storage {
        Storage {
            s3: S3::new(S3Config::new(settings)),
            scratch_root: cache::root_or_default(settings.scratch_dir.as_deref()),
            scratch_limit: settings.scratch_limit.clone(),
            scratch: OnceLock::new(),
            committer: Committer::default(),
        }
    }

    /// The committing thread (fsync and rename of finished files beside the next work).
    pub fn committer(&self) -> &Committer {
        &self.committer
    }

    /// The S3 handle.
    pub fn s3(&self) -> &S3 {
        &self.s3
    }

    /// The process's scratch cache, opened on first use.
    pub fn scratch(&self) -> Result<&Arc<Scratch>, CacheError> {
        self.scratch
            .get_or_init(|| {
                let limit = cache::limit_or_default(self.scratch_limit.as_deref())
                    .map_err(|e| e.to_string())?;
                Scratch::open(&self.scratch_root, limit)
                    .map(Arc::new)
                    .map_err(|e| crate::error::chain(&e))
            })
            .as_ref()
            .map_err(|e| CacheError::Init(e.clone()))
    }

    /// The local directory or file to open the grid location `loc` from (see
    /// [`Storage::local_grid`]): `loc` itself when it is one already.
    pub fn grid_path(&self, loc: &Path) -> Result<PathBuf, LocationError> {
        Ok(self.local_grid(loc)?.unwrap_or_else(|| loc.to_path_buf()))
    }

    /// Fetches the S3 ones among `paths` into the scratch cache.
    pub fn fetch_inputs<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<LocalInputs, LocationError> {
        let mut out = LocalInputs::default();
        for p in paths {
            if out.map.contains_key(p) {
                continue;
            }
            let Some(url) = parse(p)? else {
                continue;
            };
            let pin = self.scratch()?.fetch_input(&self.s3, &url)?;
            out.map
                .insert(p.to_string(), pin.path.to_string_lossy().into_owned());
            out._pins.push(pin);
        }
        Ok(out)
    }

    /// A local directory or file to open a grid location from, or `None` if `loc` is one
    /// already. A grid may be an S3 prefix (mirrored once per node), an S3 object that is a
    /// `.tar`/`.tar.gz`/`.zip` of the grid directory (fetched and unpacked once per node), a
    /// prefix holding only such an archive (EDP's convention), a GRID_GEOMETRY NetCDF
    /// object, or a local archive (unpacked once per node).
    pub fn local_grid(&self, loc: &Path) -> Result<Option<PathBuf>, LocationError> {
        let text = loc.to_string_lossy();
        let Some(url) = parse(&text)? else {
            let Some(kind) = loc
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(archive::kind_of)
            else {
                return Ok(None);
            };
            if !loc.is_file() {
                return Ok(None);
            }
            let meta = std::fs::metadata(loc).map_err(|source| LocationError::Local {
                path: loc.to_path_buf(),
                source,
            })?;
            let abs = std::fs::canonicalize(loc).unwrap_or_else(|_| loc.to_path_buf());
            let identity = format!(
                "{} {} {:?}",
                abs.display(),
                meta.len(),
                meta.modified().ok()
            );
            let dir = self.scratch()?.node_unpacked(loc, kind, &identity)?;
            return Ok(Some(archive::grid_root(&dir)));
        };
        let scratch = self.scratch()?;
        let unpack = |obj: &ObjectInfo| -> Result<Option<PathBuf>, LocationError> {
            let url = S3Url {
                bucket: url.bucket.clone(),
                key: obj.key.clone(),
            };
            let local = scratch.node_object(&self.s3, &url, obj)?;
            match archive::kind_of(url.file_name()) {
                Some(kind) => {
                    let identity =
                        format!("{url} {} {}", obj.size, obj.etag.as_deref().unwrap_or(""));
                    let dir = scratch.node_unpacked(&local, kind, &identity)?;
                    Ok(Some(archive::grid_root(&dir)))
                }
                None => Ok(Some(local)),
            }
        };
        match find(&self.s3, &url)? {
            Found::Object(obj) => unpack(&obj),
            Found::Prefix(objects) => {
                let archives: Vec<&ObjectInfo> = objects
                    .iter()
                    .filter(|o| archive::kind_of(&o.key).is_some())
                    .collect();
                let has_mds = objects.iter().any(|o| o.key.ends_with("/XC.meta"));
                if archives.len() == 1 && !has_mds {
                    return unpack(archives[0]);
                }
                Ok(Some(archive::grid_root(
                    &scratch.node_prefix(&self.s3, &url)?,
                )))
            }
        }
    }

    /// A local file for `loc`: itself if local, else the node-shared copy of the S3 object
    /// (fetched once per node; e.g. mapping factors, which are then memory-mapped).
    pub fn local_file(&self, loc: &str) -> Result<PathBuf, LocationError> {
        let Some(url) = parse(loc)? else {
            return Ok(PathBuf::from(loc));
        };
        match self.s3.head(&url)? {
            Some((info, _)) => Ok(self.scratch()?.node_object(&self.s3, &url, &info)?),
            None => Err(self.why_absent(loc, &url)),
        }
    }

    /// Why the object at `url` is absent: S3 answers a HEAD with 404 alike for a missing
    /// key and a missing bucket, a listing tells them apart (`NoSuchBucket`). Only asked
    /// on the way to an error.
    fn why_absent(&self, loc: &str, url: &S3Url) -> LocationError {
        match self.s3.list_dir(url) {
            Ok(_) => LocationError::NoObject {
                loc: loc.to_string(),
            },
            Err(S3Error::Request { reason, .. }) if reason.contains("NoSuchBucket") => {
                LocationError::NoBucket {
                    loc: loc.to_string(),
                    bucket: url.bucket.clone(),
                }
            }
            Err(e) => e.into(),
        }
    }

    /// A local directory for `loc`: itself if local, else the node-shared mirror of the S3
    /// prefix (e.g. a metadata directory).
    pub fn local_dir(&self, loc: &str) -> Result<PathBuf, LocationError> {
        let Some(url) = parse(loc)? else {
            return Ok(PathBuf::from(loc));
        };
        Ok(self.scratch()?.node_prefix(&self.s3, &url)?)
    }

    /// A local path for `loc`, file or directory: itself if local; else the node-shared copy
    /// of the S3 object, or the mirror of the prefix.
    pub fn local_path(&self, loc: &str) -> Result<PathBuf, LocationError> {
        let Some(url) = parse(loc)? else {
            return Ok(PathBuf::from(loc));
        };
        match find(&self.s3, &url)? {
            Found::Object(info) => Ok(self.scratch()?.node_object(&self.s3, &url, &info)?),
            Found::Prefix(_) => Ok(self.scratch()?.node_prefix(&self.s3, &url)?),
        }
    }

    /// The whole content of a small file or object (a task list, a manifest).
    pub fn read_bytes(&self, loc: &str) -> Result<Vec<u8>, LocationError> {
        match parse(loc)? {
            Some(url) => Ok(self.s3.get_bytes(&url)?),
            None => std::fs::read(loc).map_err(|source| LocationError::Local {
                path: PathBuf::from(loc),
                source,
            }),
        }
    }

    /// Where a granule bound for `url` is written locally before its upload.
    pub fn staging_path(&self, url: &S3Url) -> Result<PathBuf, LocationError> {
        Ok(self.scratch()?.staging_path(url))
    }

    /// Uploads a staged granule to `url` and removes the local copy, whether or not the
    /// upload succeeded (a failed task is redone from scratch).
    pub fn upload_granule(&self, staged: &Path, url: &S3Url) -> Result<Uploaded, LocationError> {
        let t = std::time::Instant::now();
        let r = self.s3.upload_file(staged, url);
        discard(staged);
        let up = r?;
        log::debug!(
            "uploaded {url} ({:.1} MB in {} part(s), {:.2} s)",
            up.size as f64 / 1e6,
            up.parts,
            t.elapsed().as_secs_f64()
        );
        Ok(up)
    }
}

impl Drop for Storage {
    /// Cleans this process's part of the scratch cache, if it was ever opened.
    fn drop(&mut self) {
        if let Some(Ok(s)) = self.scratch.get() {
            s.leave();
        }
    }
}

/// Local paths standing in for a task's input paths: S3 inputs fetched into the scratch
/// cache (and kept there while this value lives), local ones unchanged.
#[derive(Debug, Default)]
pub struct LocalInputs {
    map: HashMap<String, String>,
    _pins: Vec<Pinned>,
}

impl LocalInputs {
    /// True when no input was on S3.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The local path to read for `path` (itself when it is local).
    pub fn local<'a>(&'a self, path: &'a str) -> &'a str {
        self.map.get(path).map(String::as_str).unwrap_or(path)
    }
}

/// The object at `url` with its size, or the objects under it if it is a prefix.
enum Found {
    Object(ObjectInfo),
    Prefix(Vec<ObjectInfo>),
}

fn find(s3: &S3, url: &S3Url) -> Result<Found, LocationError> {
    if let Some((info, _)) = s3.head(url)? {
        return Ok(Found::Object(info));
    }
    let objects = s3.list(url)?;
    if objects.is_empty() {
        return Err(LocationError::NotFound {
            loc: url.to_string(),
        });
    }
    Ok(Found::Prefix(objects))
}
