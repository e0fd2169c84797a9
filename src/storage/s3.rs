//! S3 (and S3-compatible stores) behind plain blocking functions, so that no other module
//! of `edp` becomes async.
//!
//! The client is `object_store`'s `AmazonS3`: retries with exponential backoff on
//! throttling and 5xx, per-request timeouts, multipart uploads. One small tokio runtime,
//! owned here, drives it; callers (rank threads, rayon workers) block on it. Credentials
//! and region come from the standard AWS environment variables, else from the shared
//! `~/.aws/credentials` / `~/.aws/config` profile (`AWS_PROFILE`, static keys only);
//! the endpoint of an S3-compatible store from `--s3-endpoint` or `AWS_ENDPOINT_URL`,
//! addressed path-style (`<endpoint>/<bucket>/<key>`), as such stores expect.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::settings::env_var;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};

/// User metadata key under which `edp` stores an object's sha256 (`x-amz-meta-sha256`),
/// so `edp sync` and restarts can compare content without downloading it.
pub const SHA256_META: &str = "sha256";

/// Objects at least this large are uploaded in parts (and downloaded by ranges).
const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// S3 refuses parts below 5 MiB (except the last).
const MIN_PART_SIZE: u64 = 5 << 20;

/// What went wrong talking to S3, naming the object or bucket.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// A location that is not `s3://<bucket>/<key>`.
    #[error("{url:?} is not a valid S3 location: {reason}")]
    Url { url: String, reason: String },
    /// The client for a bucket could not be configured.
    #[error("cannot configure the S3 client for bucket {bucket:?}")]
    Client {
        bucket: String,
        #[source]
        source: object_store::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the S3 runtime")]
    Runtime(#[source] io::Error),
    /// A request failed (after the client's retries). `reason` is the gist of the
    /// client's error: HTTP status, S3 error code and message, retries made.
    #[error("S3 {op} of {url} failed: {reason}")]
    Request {
        op: &'static str,
        url: String,
        reason: String,
    },
    /// A local file involved in a transfer could not be read or written.
    #[error("cannot {action} {path:?} (transfer of {url})")]
    Local {
        action: &'static str,
        path: PathBuf,
        url: String,
        #[source]
        source: io::Error,
    },
    /// A download ended with another size than the object's.
    #[error("download of {url} gave {got} bytes, the object has {expected}")]
    Truncated {
        url: String,
        expected: u64,
        got: u64,
    },
}

/// `s3://<bucket>/<key>`; the key may be empty (the bucket's root) and has no leading `/`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// `Some` if `s` has the `s3://` scheme (then `Err` if it is malformed).
    pub fn parse(s: &str) -> Option<Result<S3Url, S3Error>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let bad = |reason: &str| S3Error::Url {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        if bucket.is_empty() {
            return Some(Err(bad("no bucket name")));
        }
        let valid = bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid {
            return Some(Err(bad(
                "bucket names are lowercase letters, digits, '-', '.' and '_'",
            )));
        }
        let key = key.trim_end_matches('/');
        if key.split('/').any(|seg| seg == "." || seg == "..") || key.contains("//") {
            return Some(Err(bad("the key has an empty, '.' or '..' segment")));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }

    /// The location `rel` (a `/`-separated relative key) below this one.
    pub fn join(&self, rel: &str) -> S3Url {
        let rel = rel.trim_matches('/');
        let key = match (self.key.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.key.clone(),
            (false, false) => format!("{}/{rel}", self.key),
        };
        S3Url {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// The last segment of the key (the object's file name).
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or("")
    }

    fn path(&self) -> Result<ObjectPath, S3Error> {
        ObjectPath::parse(&self.key).map_err(|e| S3Error::Url {
            url: self.to_string(),
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An object as a listing or HEAD reports it. `key` is the full key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// What an upload left on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub size: u64,
    pub sha256: String,
    pub etag: Option<String>,
    /// Parts it was sent in (1: a single PUT).
    pub parts: usize,
}

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<AmazonS3>>>> = OnceLock::new();

/// Part size of multipart uploads and ranged downloads (`EDP_S3_PART_SIZE`, bytes).
pub fn part_size() -> u64 {
    super::settings()
        .s3_part_size
        .unwrap_or(DEFAULT_PART_SIZE)
        .max(MIN_PART_SIZE)
}

/// Parts of one object in flight at once (`EDP_S3_CONCURRENCY`).
fn concurrency() -> usize {
    super::settings().s3_concurrency.unwrap_or(4).clamp(1, 64) as usize
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, S3Error> {
    let rt = RUNTIME.get_or_init(|| {
        // Two workers are plenty to keep a few transfers per rank moving; the ranks'
        // own threads do the computing.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("edp-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| S3Error::Runtime(io::Error::other(e.clone())))
}

/// Runs `fut` to completion on the storage runtime.
fn block_on<T>(fut: impl std::future::Future<Output = Result<T, S3Error>>) -> Result<T, S3Error> {
    runtime()?.block_on(fut)
}

/// `key = value` pairs of one section of an AWS shared config/credentials file (keys
/// lower-cased; an unparsable file gives nothing, as a missing one does).
pub fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let Ok(ini) = ini::Ini::load_from_str_noescape(text) else {
        return HashMap::new();
    };
    ini.section_all(Some(section))
        .flat_map(|p| p.iter())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// Static keys, region and endpoint of the AWS profile (`AWS_PROFILE`, else `default`),
/// used only for what the environment does not set.
fn profile_settings() -> HashMap<String, String> {
    let home = env_var("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        env_var(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let profile = env_var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let mut out = HashMap::new();
    if let Some(text) = file("AWS_CONFIG_FILE", "config").and_then(|p| fs::read_to_string(p).ok()) {
        let section = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        out.extend(ini_section(&text, &section));
    }
    if let Some(text) =
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials").and_then(|p| fs::read_to_string(p).ok())
    {
        out.extend(ini_section(&text, &profile));
    }
    out
}

fn env_set(name: &str) -> bool {
    env_var(name).is_some_and(|v| !v.is_empty())
}

/// The configured endpoint: `--s3-endpoint`, else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`
/// (read by the builder itself), else the profile's `endpoint_url`.
fn build_client(bucket: &str) -> Result<AmazonS3, S3Error> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let profile = profile_settings();
    if !env_set("AWS_ACCESS_KEY_ID") {
        if let (Some(id), Some(secret)) = (
            profile.get("aws_access_key_id"),
            profile.get("aws_secret_access_key"),
        ) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(t) = profile.get("aws_session_token") {
                b = b.with_token(t);
            }
        }
    }
    if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
        if let Some(r) = profile.get("region") {
            b = b.with_region(r);
        }
    }
    let endpoint = super::settings()
        .s3_endpoint
        .clone()
        .or_else(|| env_var("AWS_ENDPOINT_URL"))
        .or_else(|| env_var("AWS_ENDPOINT"))
        .or_else(|| profile.get("endpoint_url").cloned())
        .filter(|e| !e.is_empty());
    if let Some(ep) = &endpoint {
        b = b.with_endpoint(ep.trim_end_matches('/'));
    }
    let retry = RetryConfig {
        max_retries: super::settings().s3_retries.unwrap_or(10) as usize,
        retry_timeout: super::settings().s3_retry_timeout(),
        ..RetryConfig::default()
    };
    // (The client options carry allow_http too: set here, not on the builder, which
    // these options would overwrite.)
    let options = ClientOptions::new()
        .with_allow_http(
            endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")),
        )
        .with_connect_timeout(super::settings().s3_connect_timeout())
        .with_timeout(super::settings().s3_timeout());
    b.with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(options)
        .build()
        .map_err(|source| S3Error::Client {
            bucket: bucket.to_string(),
            source,
        })
}

/// The (cached) client of a bucket.
fn client(bucket: &str) -> Result<Arc<AmazonS3>, S3Error> {
    let clients = CLIENTS.get_or_init(Default::default);
    let mut map = clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(bucket) {
        return Ok(Arc::clone(c));
    }
    let c = Arc::new(build_client(bucket)?);
    map.insert(bucket.to_string(), Arc::clone(&c));
    Ok(c)
}

/// The gist of a client error, which otherwise repeats itself through its causes and
/// carries the whole XML error document.
pub fn summarize(e: &object_store::Error) -> String {
    let text = e.to_string();
    if let object_store::Error::NotFound { .. } = e {
        return "no such object".into();
    }
    let between = |a: &str, b: &str| -> Option<String> {
        let i = text.find(a)? + a.len();
        let j = text[i..].find(b)? + i;
        Some(text[i..j].trim().to_string())
    };
    let mut parts = Vec::new();
    if let Some(status) = between("status code: ", ":") {
        parts.push(format!("HTTP {status}"));
    } else if let Some(status) = between("HTTP status server error (", ")") {
        parts.push(format!("HTTP {status}"));
    } else if let Some(status) = between("HTTP status client error (", ")") {
        parts.push(format!("HTTP {status}"));
    }
    match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(c), Some(m)) => parts.push(format!("{c}: {m}")),
        (Some(c), None) => parts.push(c),
        _ => {}
    }
    if let Some(n) = between("after ", " retries") {
        parts.push(format!("after {n} retries"));
    }
    if parts.is_empty() {
        // No recognisable structure: the message itself, bounded.
        let mut t: String = text.chars().take(400).collect();
        if t.len() < text.len() {
            t.push('…');
        }
        return t;
    }
    parts.join(", ")
}

fn request<'a>(op: &'static str, url: &'a S3Url) -> impl Fn(object_store::Error) -> S3Error + 'a {
    move |source| {
        log::debug!("S3 {op} of {url}: {source}");
        S3Error::Request {
            op,
            url: url.to_string(),
            reason: summarize(&source),
        }
    }
}

fn info(meta: &object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key: meta.location.to_string(),
        size: meta.size,
        etag: meta.e_tag.clone(),
    }
}

/// Every object under `url` taken as a directory (`<key>/…`), all pages of the listing.
pub fn list(url: &S3Url) -> Result<Vec<ObjectInfo>, S3Error> {
    let store = client(&url.bucket)?;
    let prefix = (!url.key.is_empty()).then(|| url.path()).transpose()?;
    block_on(async {
        store
            .list(prefix.as_ref())
            .map_ok(|m| info(&m))
            .try_collect()
            .await
            .map_err(request("listing", url))
    })
}

/// The immediate "sub-directories" (full keys, no trailing `/`) and objects under `url`.
pub fn list_dir(url: &S3Url) -> Result<(Vec<String>, Vec<ObjectInfo>), S3Error> {
    let store = client(&url.bucket)?;
    let prefix = (!url.key.is_empty()).then(|| url.path()).transpose()?;
    block_on(async {
        let r = store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(request("listing", url))?;
        Ok((
            r.common_prefixes.iter().map(|p| p.to_string()).collect(),
            r.objects.iter().map(info).collect(),
        ))
    })
}

/// The object at `url` and its stored sha256 (user metadata), or `None` if there is none.
pub fn head(url: &S3Url) -> Result<Option<(ObjectInfo, Option<String>)>, S3Error> {
    let store = client(&url.bucket)?;
    if url.key.is_empty() {
        return Ok(None);
    }
    let path = url.path()?;
    block_on(async {
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match store.get_opts(&path, opts).await {
            Ok(r) => {
                let sha = r
                    .attributes
                    .get(&Attribute::Metadata(SHA256_META.into()))
                    .map(|v| v.to_string());
                Ok(Some((info(&r.meta), sha)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(request("HEAD", url)(e)),
        }
    })
}

/// Downloads the object at `url` to `dest` (through a temporary name beside it, so
/// `dest` only ever holds a whole object). Large objects come in parallel ranges,
/// pinned to the ETag seen first so a concurrent overwrite cannot mix two versions.
pub fn download(url: &S3Url, dest: &Path) -> Result<ObjectInfo, S3Error> {
    download_known(url, dest, None)
}

/// [`download`] of an object whose size and ETag a listing or HEAD already gave.
pub fn download_known(
    url: &S3Url,
    dest: &Path,
    known: Option<&ObjectInfo>,
) -> Result<ObjectInfo, S3Error> {
    let store = client(&url.bucket)?;
    let path = url.path()?;
    let local = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| S3Error::Local {
            action,
            path: p.clone(),
            url: url.to_string(),
            source,
        }
    };
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(local("create directory", dir))?;
    }
    let temp = super::local::temp_path_for(dest).map_err(|e| S3Error::Local {
        action: "name a temporary file for",
        path: dest.to_path_buf(),
        url: url.to_string(),
        source: io::Error::other(e.to_string()),
    })?;
    let part = part_size();
    let result = block_on(async {
        let file = fs::File::create(&temp).map_err(local("create", &temp))?;
        let meta = match known {
            Some(k) => k.clone(),
            None => info(&store.head(&path).await.map_err(request("HEAD", url))?),
        };
        let etag = meta.etag.clone();
        let ranges: Vec<std::ops::Range<u64>> = (0..meta.size)
            .step_by(part as usize)
            .map(|s| s..(s + part).min(meta.size))
            .collect();
        let written: u64 = if ranges.len() <= 1 {
            let opts = GetOptions {
                if_match: etag,
                ..GetOptions::default()
            };
            let got = store
                .get_opts(&path, opts)
                .await
                .map_err(request("GET", url))?;
            write_stream(got, &file, 0, url, &temp).await?
        } else {
            let fetched: Vec<u64> = futures::stream::iter(ranges)
                .map(|r| {
                    let (store, path, etag, file) = (&store, &path, etag.clone(), &file);
                    let temp = temp.clone();
                    async move {
                        let opts = GetOptions {
                            range: Some(GetRange::Bounded(r.clone())),
                            if_match: etag,
                            ..GetOptions::default()
                        };
                        let got = store
                            .get_opts(path, opts)
                            .await
                            .map_err(request("ranged GET", url))?;
                        write_stream(got, file, r.start, url, &temp).await
                    }
                })
                .buffer_unordered(concurrency())
                .try_collect()
                .await?;
            fetched.iter().sum()
        };
        if written != meta.size {
            return Err(S3Error::Truncated {
                url: url.to_string(),
                expected: meta.size,
                got: written,
            });
        }
        file.sync_all().map_err(local("fsync", &temp))?;
        Ok(meta)
    });
    match result {
        Ok(meta) => {
            fs::rename(&temp, dest).map_err(|source| {
                super::local::discard(&temp);
                S3Error::Local {
                    action: "rename the download onto",
                    path: dest.to_path_buf(),
                    url: url.to_string(),
                    source,
                }
            })?;
            Ok(meta)
        }
        Err(e) => {
            super::local::discard(&temp);
            Err(e)
        }
    }
}

/// Writes a GET's body into `file` at `offset`; returns the bytes written.
async fn write_stream(
    got: object_store::GetResult,
    file: &fs::File,
    offset: u64,
    url: &S3Url,
    temp: &Path,
) -> Result<u64, S3Error> {
    use std::os::unix::fs::FileExt;
    let mut stream = got.into_stream();
    let mut at = offset;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(request("GET", url))?;
        file.write_all_at(&chunk, at)
            .map_err(|source| S3Error::Local {
                action: "write",
                path: temp.to_path_buf(),
                url: url.to_string(),
                source,
            })?;
        at += chunk.len() as u64;
    }
    Ok(at - offset)
}

fn sha_attributes(sha: &str) -> Attributes {
    let mut a = Attributes::new();
    a.insert(
        Attribute::Metadata(SHA256_META.into()),
        sha.to_string().into(),
    );
    a
}

/// Uploads the local file `src` to `url`: one PUT below the part size, else a multipart
/// upload with a few parts in flight. The object appears under its key only when the
/// upload completes; a failed multipart upload is aborted, so nothing is left behind.
/// The file's sha256 is stored with the object (`x-amz-meta-sha256`).
pub fn upload_file(src: &Path, url: &S3Url) -> Result<Uploaded, S3Error> {
    let local = |action: &'static str| {
        move |source| S3Error::Local {
            action,
            path: src.to_path_buf(),
            url: url.to_string(),
            source,
        }
    };
    let size = fs::metadata(src).map_err(local("stat"))?.len();
    let sha256 = super::sha256_file(src).map_err(local("read"))?;
    let store = client(&url.bucket)?;
    let path = url.path()?;
    let part = part_size();
    if size < part {
        let bytes = fs::read(src).map_err(local("read"))?;
        let opts = PutOptions {
            attributes: sha_attributes(&sha256),
            ..PutOptions::default()
        };
        let r = block_on(async {
            store
                .put_opts(&path, PutPayload::from(bytes), opts)
                .await
                .map_err(request("PUT", url))
        })?;
        return Ok(Uploaded {
            size,
            sha256,
            etag: r.e_tag,
            parts: 1,
        });
    }
    let mut file = fs::File::open(src).map_err(local("open"))?;
    block_on(async {
        let opts = PutMultipartOptions {
            attributes: sha_attributes(&sha256),
            ..PutMultipartOptions::default()
        };
        let upload = store
            .put_multipart_opts(&path, opts)
            .await
            .map_err(request("multipart upload start", url))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, part as usize);
        let mut buf = vec![0u8; part as usize];
        let mut parts = 0;
        let sent: Result<(), S3Error> = async {
            loop {
                let n = read_full(&mut file, &mut buf).map_err(local("read"))?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(concurrency())
                    .await
                    .map_err(request("part upload", url))?;
                w.write(&buf[..n]);
                parts += 1;
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => match w.finish().await {
                Ok(r) => Ok(Uploaded {
                    size,
                    sha256,
                    etag: r.e_tag,
                    parts,
                }),
                // `finish` aborts the upload itself when completing fails.
                Err(e) => Err(request("multipart upload", url)(e)),
            },
            Err(e) => {
                if let Err(a) = w.abort().await {
                    log::warn!("cannot abort the failed multipart upload of {url}: {a}");
                }
                Err(e)
            }
        }
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The whole object at `url` in memory (small files: task lists, manifests, metadata).
pub fn get_bytes(url: &S3Url) -> Result<Vec<u8>, S3Error> {
    let store = client(&url.bucket)?;
    let path = url.path()?;
    block_on(async {
        let r = store.get(&path).await.map_err(request("GET", url))?;
        let b = r.bytes().await.map_err(request("GET", url))?;
        Ok(b.to_vec())
    })
}

/// Stores `bytes` as the object at `url` (with their sha256), in one PUT.
pub fn put_bytes(url: &S3Url, bytes: Vec<u8>) -> Result<Uploaded, S3Error> {
    let store = client(&url.bucket)?;
    let path = url.path()?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let opts = PutOptions {
        attributes: sha_attributes(&sha256),
        ..PutOptions::default()
    };
    let r = block_on(async {
        store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
            .map_err(request("PUT", url))
    })?;
    Ok(Uploaded {
        size,
        sha256,
        etag: r.e_tag,
        parts: 1,
    })
}

/// Deletes the object at `url` (a missing object is fine).
pub fn delete(url: &S3Url) -> Result<(), S3Error> {
    let store = client(&url.bucket)?;
    let path = url.path()?;
    block_on(async {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(request("DELETE", url)(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = S3Url::parse("s3://ecco-bucket/V4r4/diags/")
            .unwrap()
            .unwrap();
        assert_eq!(u.bucket, "ecco-bucket");
        assert_eq!(u.key, "V4r4/diags");
        assert_eq!(
            u.join("SSH/a.data").to_string(),
            "s3://ecco-bucket/V4r4/diags/SSH/a.data"
        );
        assert_eq!(u.join("SSH/a.data").file_name(), "a.data");
        let root = S3Url::parse("s3://b").unwrap().unwrap();
        assert_eq!(root.key, "");
        assert_eq!(root.join("x").to_string(), "s3://b/x");
        assert!(S3Url::parse("/local/path").is_none());
        assert!(S3Url::parse("s3:///key").unwrap().is_err());
        assert!(S3Url::parse("s3://Bad_Bucket/k").unwrap().is_err());
        assert!(S3Url::parse("s3://b/a//c").unwrap().is_err());
        assert!(S3Url::parse("s3://b/a/../c").unwrap().is_err());
    }

    #[test]
    fn profile_sections_are_read() {
        let text = "[default]\naws_access_key_id = A\n# c\n[profile other]\nregion=eu-west-3\nendpoint_url = http://127.0.0.1:1\n[other]\nAWS_SECRET_ACCESS_KEY = S\n";
        assert_eq!(
            ini_section(text, "default")
                .get("aws_access_key_id")
                .map(String::as_str),
            Some("A")
        );
        let p = ini_section(text, "profile other");
        assert_eq!(p.get("region").map(String::as_str), Some("eu-west-3"));
        assert_eq!(
            p.get("endpoint_url").map(String::as_str),
            Some("http://127.0.0.1:1")
        );
        assert!(!p.contains_key("aws_access_key_id"));
        assert_eq!(
            ini_section(text, "other")
                .get("aws_secret_access_key")
                .map(String::as_str),
            Some("S")
        );
    }
}
