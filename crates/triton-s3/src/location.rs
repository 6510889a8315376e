//! Where archives live, as users write it: a bucket name, `s3://bucket`,
//! `s3://bucket/prefix/`, `file:///path` or a path.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::local::LocalStore;
use crate::s3::{self, S3Options, S3Store};
use crate::store::ArchiveStore;

/// A parsed `--bucket` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3 bucket, or a prefix inside one.
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key prefix archives live under: `""` (the top of the
        /// bucket) or `/`-separated names ending with one `/` (`a/b/`).
        prefix: String,
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
    /// - `s3://NAME/PREFIX` or `s3://NAME/PREFIX/`: archives below that
    ///   prefix of the bucket (normalised to end with one `/`; no empty,
    ///   `.` or `..` names in it);
    /// - `file:///PATH`, or anything containing `/`, or starting with `.` or
    ///   `~/` (the home directory): a local directory (so `./archive` is the
    ///   directory `archive`).
    pub fn parse(input: &str) -> Result<Location, LocationError> {
        let fail = |reason: &str| LocationError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("s3://") {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            check_bucket(bucket).map_err(|r| fail(&r))?;
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: check_prefix(path).map_err(|r| fail(&r))?,
            });
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
        })?;
        Ok(Location::S3 {
            bucket: input.to_string(),
            prefix: String::new(),
        })
    }

    /// Opens the store: an S3 client for `region` (the stream config's), or
    /// the directory. S3 stores use `options`.
    pub async fn open(&self, region: &str, options: S3Options) -> Arc<dyn ArchiveStore> {
        match self {
            Location::S3 { bucket, prefix } => Arc::new(
                S3Store::new(s3::client(region).await, bucket.clone(), options).with_prefix(prefix),
            ),
            Location::Local(dir) => Arc::new(LocalStore::new(dir.clone())),
        }
    }

    /// Opens the store with AWS configuration the caller loaded (a
    /// profile, an endpoint, the bucket's own region); a directory needs
    /// none.
    pub fn open_with(
        &self,
        aws: Option<&aws_config::SdkConfig>,
        options: S3Options,
    ) -> Result<Arc<dyn ArchiveStore>, LocationError> {
        match (self, aws) {
            (Location::S3 { bucket, prefix }, Some(aws)) => Ok(Arc::new(
                S3Store::new(s3::client_from(aws), bucket.clone(), options).with_prefix(prefix),
            )),
            (Location::S3 { .. }, None) => Err(LocationError {
                input: self.to_string(),
                reason: "an S3 bucket needs AWS configuration".to_string(),
            }),
            (Location::Local(dir), _) => Ok(Arc::new(LocalStore::new(dir.clone()))),
        }
    }

    /// True for an S3 bucket, false for a local directory.
    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// S3's bucket naming rules (3 to 63 lowercase letters, digits, `.` and
/// `-`, starting and ending with a letter or digit).
fn check_bucket(name: &str) -> Result<(), String> {
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
    Ok(())
}

/// The path after `s3://bucket/` as a key prefix: `""`, or names ending
/// with exactly one `/`.
fn check_prefix(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Ok(String::new());
    }
    let names = path.strip_suffix('/').unwrap_or(path);
    for name in names.split('/') {
        match name {
            "" => {
                return Err(format!(
                    "the prefix {path:?} has an empty name (two '/' in a row, or a leading or trailing '//')"
                ))
            }
            "." | ".." => {
                return Err(format!(
                    "the prefix {path:?} has a {name:?} name; S3 keys are not paths, write the prefix in full"
                ))
            }
            _ if name.chars().any(char::is_control) => {
                return Err(format!(
                    "the prefix {path:?} has a control character"
                ))
            }
            _ => {}
        }
    }
    Ok(format!("{names}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_urls_and_paths() {
        let s3 = |b: &str| Location::S3 {
            bucket: b.into(),
            prefix: String::new(),
        };
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

    #[test]
    fn prefixes_inside_a_bucket() {
        let s3 = |b: &str, p: &str| Location::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        for (input, bucket, prefix, shown) in [
            ("s3://bkt", "bkt", "", "s3://bkt"),
            ("s3://bkt/", "bkt", "", "s3://bkt"),
            ("s3://bkt/a", "bkt", "a/", "s3://bkt/a/"),
            ("s3://bkt/a/b", "bkt", "a/b/", "s3://bkt/a/b/"),
            ("s3://bkt/a/b/", "bkt", "a/b/", "s3://bkt/a/b/"),
            (
                "s3://bkt/team x/_arch.v1",
                "bkt",
                "team x/_arch.v1/",
                "s3://bkt/team x/_arch.v1/",
            ),
        ] {
            let parsed = Location::parse(input).unwrap();
            assert_eq!(parsed, s3(bucket, prefix), "{input}");
            assert_eq!(parsed.to_string(), shown, "{input}");
            // What Display gives parses back to the same location.
            assert_eq!(Location::parse(shown).unwrap(), parsed, "{input}");
        }
        for (bad, why) in [
            ("s3://bkt//x", "empty name"),
            ("s3://bkt//", "empty name"),
            ("s3://bkt/a//b", "empty name"),
            ("s3://bkt/a/b//", "empty name"),
            ("s3://bkt/../x", "\"..\""),
            ("s3://bkt/a/./b", "\".\""),
            ("s3://bkt/a/..", "\"..\""),
            ("s3://bkt/a\tb", "control"),
            ("s3://Bad_Bucket/a", "bucket name"),
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.reason.contains(why), "{bad}: {e}");
        }
    }
}
