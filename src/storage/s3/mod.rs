//! S3 (and S3-compatible stores) behind plain blocking calls, so that no other module
//! of `edp` becomes async.
//!
//! - [`url`]: `s3://bucket/key` locations.
//! - [`config`]: the client's settings, AWS credentials, region and profile.
//! - [`transfer`]: the [`S3`] handle (clients and the runtime that drives them, owned by
//!   the handle) and its calls: list, HEAD, download, upload, delete.

pub mod config;
pub mod transfer;
pub mod url;

pub use config::S3Config;
pub use transfer::S3;
pub use url::S3Url;

use std::io;
use std::path::PathBuf;

/// User metadata key under which `edp` stores an object's sha256 (`x-amz-meta-sha256`),
/// so `edp sync` and restarts can compare content without downloading it.
pub const SHA256_META: &str = "sha256";

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
