//! How the S3 client is configured: the endpoint, retries, timeouts and transfer sizes
//! from [`Settings`] (command line, then `EDP_*`), and credentials and region from the
//! standard AWS environment variables, else the shared `~/.aws/credentials` /
//! `~/.aws/config` profile (`AWS_PROFILE`, static keys only; read with `rust-ini`).
//! Requests are path-style (`<endpoint>/<bucket>/<key>`), as S3-compatible stores expect.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};

use super::S3Error;
use crate::settings::{env_var, Settings};

/// Objects at least this large are uploaded in parts (and downloaded by ranges).
const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// S3 refuses parts below 5 MiB (except the last).
const MIN_PART_SIZE: u64 = 5 << 20;

/// The S3 settings of a process, taken once from its [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// `--s3-endpoint`; `None`: `AWS_ENDPOINT_URL`, else the profile's, else AWS.
    pub endpoint: Option<String>,
    /// Part size of multipart uploads and ranged downloads (bytes, at least 5 MiB).
    pub part_size: u64,
    /// Parts of one object in flight at once.
    pub concurrency: usize,
    pub retries: usize,
    pub retry_timeout: Duration,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl S3Config {
    pub fn new(s: &Settings) -> S3Config {
        S3Config {
            endpoint: s.s3_endpoint.clone(),
            part_size: s
                .s3_part_size
                .unwrap_or(DEFAULT_PART_SIZE)
                .max(MIN_PART_SIZE),
            concurrency: s.s3_concurrency.unwrap_or(4).clamp(1, 64) as usize,
            retries: s.s3_retries.unwrap_or(10) as usize,
            retry_timeout: s.s3_retry_timeout(),
            connect_timeout: s.s3_connect_timeout(),
            timeout: s.s3_timeout(),
        }
    }
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
pub(super) fn build_client(bucket: &str, config: &S3Config) -> Result<AmazonS3, S3Error> {
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
    let endpoint = config
        .endpoint
        .clone()
        .or_else(|| env_var("AWS_ENDPOINT_URL"))
        .or_else(|| env_var("AWS_ENDPOINT"))
        .or_else(|| profile.get("endpoint_url").cloned())
        .filter(|e| !e.is_empty());
    if let Some(ep) = &endpoint {
        b = b.with_endpoint(ep.trim_end_matches('/'));
    }
    let retry = RetryConfig {
        max_retries: config.retries,
        retry_timeout: config.retry_timeout,
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
        .with_connect_timeout(config.connect_timeout)
        .with_timeout(config.timeout);
    b.with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(options)
        .build()
        .map_err(|source| S3Error::Client {
            bucket: bucket.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
