//! Transfers: the [`S3`] handle and its blocking calls. The client is `object_store`'s
//! `AmazonS3` (retries with exponential backoff on throttling and 5xx, per-request
//! timeouts, multipart uploads), one per bucket, driven by a small tokio runtime that the
//! handle owns and starts on first use; callers (rank threads, rayon workers) block on it.
//! Downloads land under a temporary name and are renamed whole; uploads store the
//! object's sha256 with it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use sha2::{Digest, Sha256};

use super::config::{build_client, S3Config};
use super::{ObjectInfo, S3Error, S3Url, Uploaded, SHA256_META};

/// A process's way to S3: its settings, one client per bucket and the runtime that
/// drives them. Cheap to clone (shared).
#[derive(Clone)]
pub struct S3 {
    inner: Arc<Inner>,
}

struct Inner {
    config: S3Config,
    /// Started on the first request (a run without S3 starts no threads).
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
    clients: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl S3 {
    pub fn new(config: S3Config) -> S3 {
        S3 {
            inner: Arc::new(Inner {
                config,
                runtime: OnceLock::new(),
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, S3Error> {
        let rt = self.inner.runtime.get_or_init(|| {
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

    /// Runs `fut` to completion on the handle's runtime.
    fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, S3Error>>,
    ) -> Result<T, S3Error> {
        self.runtime()?.block_on(fut)
    }

    /// The (cached) client of a bucket.
    fn client(&self, bucket: &str) -> Result<Arc<AmazonS3>, S3Error> {
        let mut map = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(bucket) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(build_client(bucket, &self.inner.config)?);
        map.insert(bucket.to_string(), Arc::clone(&c));
        Ok(c)
    }

    /// Every object under `url` taken as a directory (`<key>/…`), all pages of the listing.
    pub fn list(&self, url: &S3Url) -> Result<Vec<ObjectInfo>, S3Error> {
        let store = self.client(&url.bucket)?;
        let prefix = (!url.key.is_empty()).then(|| url.path()).transpose()?;
        self.block_on(async {
            store
                .list(prefix.as_ref())
                .map_ok(|m| info(&m))
                .try_collect()
                .await
                .map_err(request("listing", url))
        })
    }

    /// The immediate "sub-directories" (full keys, no trailing `/`) and objects under `url`.
    pub fn list_dir(&self, url: &S3Url) -> Result<(Vec<String>, Vec<ObjectInfo>), S3Error> {
        let store = self.client(&url.bucket)?;
        let prefix = (!url.key.is_empty()).then(|| url.path()).transpose()?;
        self.block_on(async {
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
    pub fn head(&self, url: &S3Url) -> Result<Option<(ObjectInfo, Option<String>)>, S3Error> {
        let store = self.client(&url.bucket)?;
        if url.key.is_empty() {
            return Ok(None);
        }
        let path = url.path()?;
        self.block_on(async {
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
    pub fn download(&self, url: &S3Url, dest: &Path) -> Result<ObjectInfo, S3Error> {
        self.download_known(url, dest, None)
    }

    /// [`S3::download`] of an object whose size and ETag a listing or HEAD already gave.
    pub fn download_known(
        &self,
        url: &S3Url,
        dest: &Path,
        known: Option<&ObjectInfo>,
    ) -> Result<ObjectInfo, S3Error> {
        let store = self.client(&url.bucket)?;
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
        let temp = crate::storage::temp_path_for(dest).map_err(|e| S3Error::Local {
            action: "name a temporary file for",
            path: dest.to_path_buf(),
            url: url.to_string(),
            source: io::Error::other(e.to_string()),
        })?;
        let part = self.inner.config.part_size;
        let result = self.block_on(async {
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
                    .buffer_unordered(self.inner.config.concurrency)
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
                    crate::storage::discard(&temp);
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
                crate::storage::discard(&temp);
                Err(e)
            }
        }
    }

    /// Uploads the local file `src` to `url`: one PUT below the part size, else a multipart
    /// upload with a few parts in flight. The object appears under its key only when the
    /// upload completes; a failed multipart upload is aborted, so nothing is left behind.
    /// The file's sha256 is stored with the object (`x-amz-meta-sha256`).
    pub fn upload_file(&self, src: &Path, url: &S3Url) -> Result<Uploaded, S3Error> {
        let local = |action: &'static str| {
            move |source| S3Error::Local {
                action,
                path: src.to_path_buf(),
                url: url.to_string(),
                source,
            }
        };
        let size = fs::metadata(src).map_err(local("stat"))?.len();
        let part = self.inner.config.part_size;
        if size < part {
            return self.put_bytes(url, fs::read(src).map_err(local("read"))?);
        }
        let sha256 = crate::storage::sha256_file(src).map_err(local("read"))?;
        let store = self.client(&url.bucket)?;
        let path = url.path()?;
        let mut file = fs::File::open(src).map_err(local("open"))?;
        self.block_on(async {
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
                    w.wait_for_capacity(self.inner.config.concurrency)
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

    /// The whole object at `url` in memory (small files: task lists, manifests, metadata).
    pub fn get_bytes(&self, url: &S3Url) -> Result<Vec<u8>, S3Error> {
        let store = self.client(&url.bucket)?;
        let path = url.path()?;
        self.block_on(async {
            let r = store.get(&path).await.map_err(request("GET", url))?;
            let b = r.bytes().await.map_err(request("GET", url))?;
            Ok(b.to_vec())
        })
    }

    /// The size and sha256 of the object's bytes as S3 serves them now, streamed (never
    /// held whole nor written locally): what `edp verify` compares with the manifest,
    /// rather than the sha256 stored beside the object when it was uploaded.
    pub fn sha256_of(&self, url: &S3Url) -> Result<(u64, String), S3Error> {
        let store = self.client(&url.bucket)?;
        let path = url.path()?;
        self.block_on(async {
            let got = store.get(&path).await.map_err(request("GET", url))?;
            let mut stream = got.into_stream();
            let (mut h, mut n) = (Sha256::new(), 0u64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(request("GET", url))?;
                h.update(&chunk);
                n += chunk.len() as u64;
            }
            Ok((n, hex::encode(h.finalize())))
        })
    }

    /// Stores `bytes` as the object at `url` (with their sha256), in one PUT.
    pub fn put_bytes(&self, url: &S3Url, bytes: Vec<u8>) -> Result<Uploaded, S3Error> {
        let store = self.client(&url.bucket)?;
        let path = url.path()?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let opts = PutOptions {
            attributes: sha_attributes(&sha256),
            ..PutOptions::default()
        };
        let r = self.block_on(async {
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

    /// The objects under the prefix `url`, by key relative to it (one paginated listing):
    /// what a restart or `edp sync` compares against instead of one HEAD per granule.
    pub fn objects_under(&self, url: &S3Url) -> Result<HashMap<String, ObjectInfo>, S3Error> {
        let base = url.dir_prefix();
        Ok(self
            .list(url)?
            .into_iter()
            .filter_map(|o| {
                let rel = o.key.strip_prefix(&base)?.to_string();
                Some((rel, o))
            })
            .collect())
    }

    /// Deletes the object at `url` (a missing object is fine).
    pub fn delete(&self, url: &S3Url) -> Result<(), S3Error> {
        let store = self.client(&url.bucket)?;
        let path = url.path()?;
        self.block_on(async {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(request("DELETE", url)(e)),
            }
        })
    }
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
