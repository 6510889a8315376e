//! Where archives live, as users write it: a bucket name, `s3://bucket`,
//! `file:///path` or a path.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::local::LocalStore;
use crate::s3::{self, S3Options, S3Store};
use crate::store::ArchiveStore;

/// A parsed `--bucket` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3 bucket.
    S3 {
        /// The bucket name.
        bucket: String,
    },
    /// A local directory used as a bucket.
    Local(PathBuf),
}

/// A `--bucket` value that names neither a bucket nor a directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket {input:?}: {reason}")]
pub struct LocationError {
    /// The rejected value.
    pub input: String,
    /// Why.
    pub reason: String,
}

impl Location {
    /// Parses a bucket or directory:
    ///
    /// - `s3://NAME` or a plain `NAME` (no `/`): an S3 bucket;
    /// - `file:///PATH`, or anything containing `/`, or starting with `.` or
    ///   `~/` (the home directory): a local directory (so `./archive` is the
    ///   directory `archive`).
    pub fn parse(input: &str) -> Result<Location, LocationError> {
        let fail = |reason: &str| LocationError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("s3://") {
            let bucket = rest.strip_suffix('/').unwrap_or(rest);
            if bucket.contains('/') {
                return Err(fail("a prefix inside the bucket is not supported; archives live at the top of the bucket"));
            }
            return check_bucket(bucket).map_err(|r| fail(&r));
        }
        if let Some(rest) = input.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(fail(
                    "a file URL needs an absolute path: file:///path/to/dir",
                ));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if input.contains("://") {
            return Err(fail("only s3:// and file:// URLs are supported"));
        }
        // `~` may reach us unexpanded (from TRITON_BUCKET, or quoted).
        if let Some(rest) = input.strip_prefix('~') {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Err(fail(
                    "~user paths are not expanded; write the directory in full",
                ));
            }
            let home = std::env::var_os("HOME").ok_or_else(|| fail("HOME is not set"))?;
            return Ok(Location::Local(
                PathBuf::from(home).join(rest.trim_start_matches('/')),
            ));
        }
        if input.contains('/') || input.starts_with('.') {
            return Ok(Location::Local(PathBuf::from(input)));
        }
        check_bucket(input).map_err(|r| {
            fail(&format!(
                "{r} (for a local directory write ./{input} or file:///absolute/path)"
            ))
        })
    }

    /// Opens the store: an S3 client for `region` (the stream config's), or
    /// the directory. S3 stores use `options`.
    pub async fn open(&self, region: &str, options: S3Options) -> Arc<dyn ArchiveStore> {
        match self {
            Location::S3 { bucket } => Arc::new(S3Store::new(
                s3::client(region).await,
                bucket.clone(),
                options,
            )),
            Location::Local(dir) => Arc::new(LocalStore::new(dir.clone())),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 { bucket } => write!(f, "s3://{bucket}"),
            Location::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// S3's bucket naming rules (3 to 63 lowercase letters, digits, `.` and
/// `-`, starting and ending with a letter or digit).
fn check_bucket(name: &str) -> Result<Location, String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !valid_chars
        || !ends_ok(name.as_bytes().first())
        || !ends_ok(name.as_bytes().last())
    {
        return Err(
            "not a valid S3 bucket name (3 to 63 lowercase letters, digits, '.' and '-')"
                .to_string(),
        );
    }
    Ok(Location::S3 {
        bucket: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_urls_and_paths() {
        let s3 = |b: &str| Location::S3 { bucket: b.into() };
        let dir = |p: &str| Location::Local(PathBuf::from(p));
        assert_eq!(Location::parse("my-archive").unwrap(), s3("my-archive"));
        assert_eq!(
            Location::parse("s3://my.archive/").unwrap(),
            s3("my.archive")
        );
        assert_eq!(Location::parse("file:///var/tri").unwrap(), dir("/var/tri"));
        assert_eq!(Location::parse("/var/tri").unwrap(), dir("/var/tri"));
        assert_eq!(Location::parse("./tri").unwrap(), dir("./tri"));
        assert_eq!(Location::parse("tri/x").unwrap(), dir("tri/x"));
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(
            Location::parse("~/tri").unwrap(),
            Location::Local(home.join("tri"))
        );
        assert_eq!(Location::parse("~").unwrap(), Location::Local(home));
        for bad in [
            "s3://b/prefix",
            "file://host/x",
            "gs://b",
            "My_Bucket",
            "ab",
            "s3://",
            "-ab",
            "~bob/x",
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert_eq!(e.input, bad);
        }
        let e = Location::parse("Archive").unwrap_err();
        assert!(e.to_string().contains("./Archive"), "{e}");
    }
}
