//! Runs whose granules go to S3 (the local/remote and remote modes).
//!
//! The granules live under `s3://bucket/prefix`, but the run's own state — the rank
//! journals, the working copy of the manifest and the summary — needs a file system that
//! can be appended to and renamed in: a local state directory (`EDP_STATE_DIR`, default
//! `./edp-state/<bucket>/<prefix>`, on a file system every rank sees). The manifest and
//! summary are published next to the granules at the end of every run, and a run in a
//! fresh place (a new container) starts from the published manifest.
//!
//! A restart trusts a manifest record only if one listing of the destination shows the
//! granule with the recorded size (with `--verify`, also the recorded sha256 stored on
//! the object), so a re-run of a finished job uploads nothing and a granule deleted from
//! the bucket is made again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::manifest::{self, MANIFEST_NAME, SUMMARY_NAME};
use crate::storage::{self, LocationError, ObjectInfo, S3Url};
use crate::tasks::Task;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the granules are partly on S3 ({s3}) and partly local ({local}); one run writes to one destination")]
    Mixed { s3: String, local: String },
    #[error("the tasks' S3 granules share no bucket and prefix; give one with --dest s3://bucket/prefix")]
    NoDest,
    #[error("S3 destination {dest}")]
    Storage {
        dest: String,
        // Boxed: the storage errors are large and this travels through every Result.
        #[source]
        source: Box<LocationError>,
    },
    #[error("cannot create the run's local state directory {path:?}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The S3 destination of a run: `--dest` if it is `s3://…`, else the common root of the
/// tasks' granules when they are on S3; `None` for a local destination.
pub fn destination(dest: Option<&Path>, tasks: &[Task]) -> Result<Option<S3Url>, RemoteError> {
    let wrap = |dest: &str| {
        let dest = dest.to_string();
        move |e: storage::S3Error| RemoteError::Storage {
            dest,
            source: Box::new(e.into()),
        }
    };
    if let Some(d) = dest {
        let text = d.to_string_lossy();
        return storage::s3_url(&text).transpose().map_err(wrap(&text));
    }
    let s3 = tasks.iter().find(|t| storage::is_s3(&t.granule));
    let local = tasks.iter().find(|t| !storage::is_s3(&t.granule));
    match (s3, local) {
        (None, _) => Ok(None),
        (Some(s), Some(l)) => Err(RemoteError::Mixed {
            s3: s.granule.clone(),
            local: l.granule.clone(),
        }),
        (Some(_), None) => {
            // The common root, computed on path components, loses one '/' of "s3://".
            let root = super::restart::dest_root(tasks).ok_or(RemoteError::NoDest)?;
            let text = root.to_string_lossy();
            let text = match text.strip_prefix("s3:/") {
                Some(rest) if !rest.starts_with('/') => format!("s3://{rest}"),
                _ => text.into_owned(),
            };
            match storage::s3_url(&text) {
                Some(Ok(u)) if !u.bucket.is_empty() => Ok(Some(u)),
                Some(Err(e)) => Err(wrap(&text)(e)),
                _ => Err(RemoteError::NoDest),
            }
        }
    }
}

/// The path against which granule keys are taken (`s3://bucket/prefix` as a path; its
/// components match those of the granules' URLs).
pub fn key_root(url: &S3Url) -> PathBuf {
    PathBuf::from(url.to_string().trim_end_matches('/'))
}

/// The local state directory of a run into `url` (absolute, so every rank agrees).
pub fn state_dir(url: &S3Url) -> Result<PathBuf, RemoteError> {
    let dir = storage::state_dir(url);
    std::fs::create_dir_all(&dir).map_err(|source| RemoteError::StateDir {
        path: dir.clone(),
        source,
    })?;
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

fn storage_err(url: &S3Url) -> impl Fn(LocationError) -> RemoteError + '_ {
    move |source| RemoteError::Storage {
        dest: url.to_string(),
        source: Box::new(source),
    }
}

/// Without a local manifest, starts from the one published with the granules, if any.
pub fn adopt_published_manifest(url: &S3Url, state: &Path) -> Result<(), RemoteError> {
    let local = manifest::manifest_path(state);
    if local.exists() {
        return Ok(());
    }
    let published = url.join(MANIFEST_NAME);
    if storage::s3::head(&published)
        .map_err(|e| storage_err(url)(e.into()))?
        .is_none()
    {
        return Ok(());
    }
    storage::s3::download(&published, &local).map_err(|e| storage_err(url)(e.into()))?;
    log::info!("starting from the published manifest {published}");
    Ok(())
}

/// The objects under the destination, by key relative to it (one paginated listing).
pub fn listing(url: &S3Url) -> Result<HashMap<String, ObjectInfo>, RemoteError> {
    storage::remote_objects(url).map_err(storage_err(url))
}

/// Publishes the manifest and the summary of the state directory next to the granules.
pub fn publish(url: &S3Url, state: &Path) -> Result<(), RemoteError> {
    for name in [MANIFEST_NAME, SUMMARY_NAME] {
        let local = state.join(name);
        if local.exists() {
            storage::s3::upload_file(&local, &url.join(name))
                .map_err(|e| storage_err(url)(e.into()))?;
        }
    }
    log::info!("manifest published: {}", url.join(MANIFEST_NAME));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::journal::{Record, Status};
    use crate::run::restart::{self, Decision, Placed};

    fn task(granule: &str) -> Task {
        Task::for_test(granule)
    }

    #[test]
    fn destination_of_s3_granules_and_their_keys() {
        let g = |d: &str| {
            format!(
                "s3://b/out/V4r4/native/mon_mean/SSH/SSH_mon_mean_{d}_ECCO_V4r4_native_llc0090.nc"
            )
        };
        let tasks = vec![task(&g("1992-01")), task(&g("1992-02"))];
        let url = destination(None, &tasks).unwrap().unwrap();
        assert_eq!(url.to_string(), "s3://b/out");
        let keys = super::super::restart::granule_keys(&key_root(&url), &tasks).unwrap();
        assert_eq!(
            keys[0],
            "V4r4/native/mon_mean/SSH/SSH_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc"
        );
        assert!(destination(None, &[task("/local/x.nc")]).unwrap().is_none());
        assert!(matches!(
            destination(None, &[task(&g("1992-01")), task("/local/x.nc")]),
            Err(RemoteError::Mixed { .. })
        ));
        let given = destination(Some(Path::new("s3://b/out/")), &tasks)
            .unwrap()
            .unwrap();
        assert_eq!(given, url);
    }

    #[test]
    fn done_needs_the_object_with_the_recorded_size() {
        let rec = Record {
            task_sha256: "t".into(),
            size: Some(10),
            sha256: Some("s".into()),
            ..Record::for_test("k", Status::Done)
        };
        let obj = |size| ObjectInfo {
            key: "p/k".into(),
            size,
            etag: None,
        };
        let url = S3Url {
            bucket: "b".into(),
            key: "p/k".into(),
        };
        let decide = |rec: Option<&Record>, sha: &str, object: Option<&ObjectInfo>| {
            restart::decide(rec, sha, Placed::Remote { object, url: &url }, false)
        };
        assert_eq!(decide(Some(&rec), "t", Some(&obj(10))), Decision::Done);
        assert_eq!(
            decide(Some(&rec), "t", Some(&obj(9))),
            Decision::Redo("size differs".into())
        );
        assert_eq!(
            decide(Some(&rec), "t", None),
            Decision::Redo("granule missing".into())
        );
        assert_eq!(
            decide(Some(&rec), "other", Some(&obj(10))),
            Decision::Redo("task changed".into())
        );
        assert_eq!(decide(None, "t", None), Decision::Redo("no record".into()));
    }
}
