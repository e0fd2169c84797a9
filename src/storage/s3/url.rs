//! S3 locations: `s3://<bucket>/<key>` parsed, checked and joined. A location is S3
//! exactly when it starts with `s3://` (EDP's rule).

use object_store::path::Path as ObjectPath;

use super::S3Error;

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

    /// The key as a directory: with a trailing `/`, or empty at the bucket's root (what
    /// the keys of the objects under this location start with).
    pub fn dir_prefix(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            format!("{}/", self.key)
        }
    }

    /// The last segment of the key (the object's file name).
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or("")
    }

    /// The key as the client's path type.
    pub(super) fn path(&self) -> Result<ObjectPath, S3Error> {
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
}
