//! `edp verify s3://bucket/prefix`: the checks of [`super::verify`] on a tree that
//! `edp run` (or `edp sync`) published to S3, through the same storage handle a run uses.
//!
//! The manifest is the one published beside the granules. One paginated listing gives
//! every object and its size; a checksum is taken of the bytes S3 serves now (streamed,
//! never held whole), not of the sha256 stored with the object at upload, which a later
//! overwrite by another tool would not change. `--content` downloads each granule into
//! the scratch cache, checks it there and removes it. A run's journals stay in its local
//! state directory, so a pending (unfinished) run is not visible from here.

use super::journal::Record;
use super::manifest::{Manifest, MANIFEST_NAME};
use super::verify::{Problem, VerifyError, VerifyReport};
use super::verify_content;
use crate::metadata::MetadataSet;
use crate::storage::{self, ObjectInfo, S3Url, Storage};

/// The manifest's URL and the tree's root for a location that names either the
/// manifest object or the prefix holding it.
pub fn manifest_and_root(url: &S3Url) -> (S3Url, S3Url) {
    if url.file_name() == MANIFEST_NAME {
        let key = url
            .key
            .trim_end_matches(MANIFEST_NAME)
            .trim_end_matches('/');
        let root = S3Url {
            bucket: url.bucket.clone(),
            key: key.to_string(),
        };
        (url.clone(), root)
    } else {
        (url.join(MANIFEST_NAME), url.clone())
    }
}

fn read_manifest(storage: &Storage, url: &S3Url) -> Result<Manifest, VerifyError> {
    let loc = url.to_string();
    let bytes = storage
        .s3()
        .get_bytes(url)
        .map_err(|source| VerifyError::S3 {
            loc: loc.clone(),
            what: "cannot read the manifest",
            source: Box::new(source.into()),
        })?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|source| VerifyError::S3Parse {
        loc: loc.clone(),
        source,
    })?;
    let format = Manifest::default().format;
    if m.format != format {
        return Err(VerifyError::S3Format {
            loc,
            found: m.format,
            format,
        });
    }
    Ok(m)
}

/// Checks the tree under `loc` (an S3 prefix, or its manifest) against its manifest.
/// Returns the manifest's URL with the report.
pub fn verify(
    storage: &Storage,
    loc: &S3Url,
    checksum: bool,
    content: Option<&MetadataSet>,
) -> Result<(S3Url, VerifyReport), VerifyError> {
    let (manifest_url, root) = manifest_and_root(loc);
    let manifest = read_manifest(storage, &manifest_url)?;
    let objects = storage
        .s3()
        .objects_under(&root)
        .map_err(|source| VerifyError::S3 {
            loc: root.to_string(),
            what: "cannot list",
            source: Box::new(source.into()),
        })?;
    let (done, mut problems) = super::verify::done_problems(&manifest, |r| {
        let url = root.join(&r.granule);
        object_problems(storage, r, &url, objects.get(&r.granule), checksum, content)
    });
    let mut keys: Vec<String> = objects.keys().cloned().collect();
    keys.sort();
    problems.extend(super::verify::failed_and_strays(&manifest, &done, keys));
    Ok((
        manifest_url,
        VerifyReport {
            checked: done.len(),
            bytes: done.iter().filter_map(|r| r.size).sum(),
            problems,
        },
    ))
}

/// What differs between the object at `url` (as listed: `listed`) and its record.
fn object_problems(
    storage: &Storage,
    r: &Record,
    url: &S3Url,
    listed: Option<&ObjectInfo>,
    checksum: bool,
    content: Option<&MetadataSet>,
) -> Vec<Problem> {
    let granule = r.granule.clone();
    let unreadable = |e: &dyn std::error::Error| Problem::Unreadable {
        granule: granule.clone(),
        error: crate::error::chain(e),
    };
    let Some(obj) = listed else {
        return vec![Problem::Missing { granule }];
    };
    let want = r.size.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    if obj.size != want {
        out.push(Problem::Size {
            granule: granule.clone(),
            want,
            got: obj.size,
        });
    }
    if let Some(m) = content {
        // The content check needs a local file: the sha256 is taken of that copy.
        let local = match storage.staging_path(url) {
            Ok(p) => p,
            Err(e) => return vec![unreadable(&e)],
        };
        let fetched = storage.s3().download_known(url, &local, Some(obj));
        let problems = match fetched {
            Err(e) => vec![unreadable(&e)],
            Ok(_) => {
                let mut p = Vec::new();
                if checksum && out.is_empty() {
                    match storage::sha256_file(&local) {
                        Ok(sha) if Some(sha.as_str()) == r.sha256.as_deref() => {}
                        Ok(_) => p.push(Problem::Checksum {
                            granule: granule.clone(),
                        }),
                        Err(e) => p.push(unreadable(&e)),
                    }
                }
                p.extend(
                    verify_content::check(&local, &r.granule, &r.missing_fields, m)
                        .into_iter()
                        .map(|what| Problem::Content {
                            granule: granule.clone(),
                            what,
                        }),
                );
                p
            }
        };
        storage::discard(&local);
        out.extend(problems);
    } else if checksum && out.is_empty() {
        match storage.s3().sha256_of(url) {
            Ok((_, sha)) if Some(sha.as_str()) == r.sha256.as_deref() => {}
            Ok(_) => out.push(Problem::Checksum { granule }),
            Err(e) => out.push(unreadable(&e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> S3Url {
        S3Url::parse(s).unwrap().unwrap()
    }

    #[test]
    fn a_prefix_or_its_manifest_names_the_tree() {
        let (m, root) = manifest_and_root(&url("s3://b/out/v1"));
        assert_eq!(m.to_string(), "s3://b/out/v1/edp-manifest.json");
        assert_eq!(root.to_string(), "s3://b/out/v1");
        let (m, root) = manifest_and_root(&url("s3://b/out/v1/edp-manifest.json"));
        assert_eq!(m.to_string(), "s3://b/out/v1/edp-manifest.json");
        assert_eq!(root.to_string(), "s3://b/out/v1");
        let (m, root) = manifest_and_root(&url("s3://b/edp-manifest.json"));
        assert_eq!(m.to_string(), "s3://b/edp-manifest.json");
        assert_eq!(root.key, "");
    }
}
