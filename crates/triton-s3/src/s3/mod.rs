//! [`S3Store`]: archives in an S3 bucket through `aws-sdk-s3`.

mod client;
mod options;
mod stall;
mod upload;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use triton_core::error::Report;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use aws_sdk_s3::Client;
use triton_core::retry::{policies, retry, Budget};

pub use self::client::{client, client_from, sdk_config};
pub use self::options::{check_tags, parse_storage_class, parse_tag};
use self::stall::{unless_stalled, Progress};
use crate::error::{ErrorKind, Result, StoreError};
use crate::store::{ArchiveStore, BodyRead, ObjectBody, ObjectInfo, PutOptions, PutReceipt};

/// Server-side encryption requested for written objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sse {
    /// `AES256`: keys managed by S3.
    Aes256,
    /// `aws:kms`, with the bucket's default key or the given key id or ARN.
    Kms {
        /// The KMS key; `None` uses the account's default S3 key.
        key_id: Option<String>,
    },
}

/// How an [`S3Store`] writes and retries.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Size of multipart upload parts; files larger than one part are
    /// uploaded in parts. At least 5 MiB (S3's minimum), default 8 MiB.
    pub part_size: u64,
    /// Parts uploaded at once, default 4. Memory for uploads is not
    /// proportional to it: parts are streamed from the file.
    pub upload_concurrency: usize,
    /// Server-side encryption of written objects.
    pub sse: Option<Sse>,
    /// Attempts per request before a transient failure is returned,
    /// default 6 (about 10 s of backoff in total).
    pub max_attempts: u32,
    /// First retry delay, doubling up to 10 s; default 200 ms.
    pub retry_base: Duration,
    /// A body that delivers nothing for this long counts as a dropped
    /// connection (the SDK's timeouts stop once headers arrived); default
    /// 60 s.
    pub idle_timeout: Duration,
    /// A request that makes no progress for this long (no byte of its body
    /// sent, no answer) is given up and retried, with a warning naming the
    /// key; default 30 s.
    pub stall_timeout: Duration,
    /// The storage class of written objects (archives, sidecars,
    /// dead-letter archives); `None` leaves it to the bucket (`STANDARD`).
    /// See [`parse_storage_class`]. Classes that need a restore before a
    /// read (`GLACIER`, `DEEP_ARCHIVE`) make `triton cat` and `audit` fail
    /// on the objects until they are restored.
    pub storage_class: Option<StorageClass>,
    /// Tags of every written object (PutObject and CreateMultipartUpload
    /// send them as `x-amz-tagging`, which needs `s3:PutObjectTagging`);
    /// see [`parse_tag`] and [`check_tags`] for S3's limits.
    pub tags: Vec<(String, String)>,
}

/// S3's smallest part size (except the last part).
pub const MIN_PART_SIZE: u64 = 5 << 20;

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            part_size: 8 << 20,
            upload_concurrency: 4,
            sse: None,
            max_attempts: 6,
            retry_base: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(30),
            storage_class: None,
            tags: Vec::new(),
        }
    }
}

/// A bucket, or a prefix inside one, used as an archive store.
///
/// Keys given to the store and returned by its listings are relative to
/// the prefix: with the prefix `team/archive/`, the key
/// `20241030/events-store-1730246400.tri` is the object
/// `team/archive/20241030/events-store-1730246400.tri`.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// `""` or ending with `/`.
    prefix: String,
    options: S3Options,
    /// The `x-amz-tagging` header made from `options.tags`.
    tagging: Option<String>,
}

/// Where [`ArchiveStore::check_writable`] writes its probe objects (below
/// the store's prefix). No listing of archives reads it: readers list day
/// prefixes (`20241030/…`) and `_invalid/` only.
pub(crate) const PROBE_PREFIX: &str = "_triton/probe/";

impl S3Store {
    /// A store over the top of `bucket` with `client` (see [`client`] for
    /// the standard configuration); [`with_prefix`](S3Store::with_prefix)
    /// moves it below a prefix. A part size under 5 MiB is raised to 5 MiB.
    pub fn new(client: Client, bucket: impl Into<String>, mut options: S3Options) -> S3Store {
        options.part_size = options.part_size.max(MIN_PART_SIZE);
        options.upload_concurrency = options.upload_concurrency.max(1);
        options.max_attempts = options.max_attempts.max(1);
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: String::new(),
            tagging: options::tagging_header(&options.tags),
            options,
        }
    }

    /// The same store below `prefix` of the bucket: every key is prefixed
    /// with it on the way to S3 and stripped from listed keys. A prefix
    /// that does not end with `/` gets one; `""` is the top of the bucket.
    /// [`Location::parse`](crate::Location::parse) checks what users write.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> S3Store {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.prefix = prefix;
        self
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix: `""` or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object's key in the bucket.
    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    /// Runs `call` until it succeeds, fails for good, or has used
    /// `max_attempts`; each retry is logged. An attempt that makes no
    /// progress for [`S3Options::stall_timeout`] is given up and retried;
    /// `call` gets the attempt's [`Progress`] to track the body it sends.
    async fn retry<T, F, Fut>(&self, target: &str, call: F) -> Result<T>
    where
        F: FnMut(Arc<Progress>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retry_within(target, self.options.stall_timeout, call)
            .await
    }

    /// [`retry`](S3Store::retry) with another stall bound, for requests S3
    /// may take minutes to answer (it answers CompleteMultipartUpload with
    /// whitespace until done, which the SDK reads as one answer).
    async fn retry_within<T, F, Fut>(&self, target: &str, stall: Duration, mut call: F) -> Result<T>
    where
        F: FnMut(Arc<Progress>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let policy = policies::S3_REQUEST
            .with_base(self.options.retry_base)
            .with_budget(Budget::Attempts(self.options.max_attempts));
        retry(
            &policy,
            || {
                let progress = Progress::new();
                let attempt = call(progress.clone());
                async move { unless_stalled(&progress, stall, target, attempt).await }
            },
            StoreError::is_transient,
            |e, r| tracing::warn!(target, error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "S3 request failed; retrying"),
        )
        .await
    }
}

impl S3Store {
    /// HeadBucket: a missing bucket is a fatal error saying so (code
    /// `NoSuchBucket`), an answer of 403 one saying access is denied.
    async fn check_bucket(&self) -> Result<()> {
        let target = format!("s3://{}", self.bucket);
        let found = self
            .retry(&target, |_| async {
                self.client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("HeadBucket", &target, e))
            })
            .await;
        match found {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(StoreError::bucket_missing("HeadBucket", target)),
            Err(mut e) if e.is_access_denied() && e.code.as_deref() == Some("Forbidden") => {
                // A HEAD answer has no body, hence no code or message.
                e.message = "access denied (HTTP 403): the credentials are not valid for this bucket or lack s3:ListBucket on it".to_string();
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a small object below [`PROBE_PREFIX`], with the storage
    /// class, tags and encryption of archives, and deletes it.
    async fn write_probe(&self) -> Result<()> {
        let key = format!("{PROBE_PREFIX}{}", crate::store::probe_name());
        let version = upload::put_probe(self, &key).await?;
        let target = self.target(&key);
        let deleted = self
            .retry(&target, |_| async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(&key))
                    .set_version_id(version.clone())
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("DeleteObject", &target, e))
            })
            .await;
        // Archiving never deletes: a store that may write but not delete
        // is usable, and keeps the probe.
        if let Err(e) = deleted {
            tracing::warn!(key = target, error = %Report(&e), "wrote the write probe but could not delete it; delete it by hand");
        }
        Ok(())
    }
}

/// An S3 object body, with an idle timeout per chunk.
struct S3Body {
    body: ByteStream,
    target: String,
    idle_timeout: Duration,
}

#[async_trait]
impl BodyRead for S3Body {
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let failed = |kind, m: String| StoreError::new("GetObject", self.target.clone(), kind, m);
        let deadline = tokio::time::Instant::now() + self.idle_timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.try_next()).await {
                Err(_) => {
                    let m = format!("no data for {} s", self.idle_timeout.as_secs());
                    return Err(failed(ErrorKind::Transient, m));
                }
                Ok(Err(e)) => {
                    // The SDK checks the object's checksum at the end of the
                    // body: a mismatch is bad data, not a broken connection.
                    let m = format!("reading the body: {}", triton_core::error::Report(&e));
                    let kind = if m.to_ascii_lowercase().contains("checksum") {
                        ErrorKind::Fatal
                    } else {
                        ErrorKind::Transient
                    };
                    return Err(failed(kind, m));
                }
                // An empty frame is not the end of the body.
                Ok(Ok(Some(bytes))) if bytes.is_empty() => continue,
                Ok(Ok(Some(bytes))) => {
                    buf.extend_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                Ok(Ok(None)) => return Ok(0),
            }
        }
    }
}

#[async_trait]
impl ArchiveStore for S3Store {
    fn url(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let target = self.target(prefix);
        let full_prefix = self.object_key(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retry(&target, |_| async {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full_prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| StoreError::from_sdk("ListObjectsV2", &target, e))
                })
                .await?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            tracing::debug!(prefix, objects = out.len(), "listed a page");
            token = match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => Some(next.to_string()),
                (Some(true), None) => {
                    return Err(StoreError::new(
                        "ListObjectsV2",
                        target,
                        ErrorKind::Fatal,
                        "the listing is truncated but has no continuation token",
                    ))
                }
                _ => break,
            };
        }
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let target = self.target(key);
        let head = self
            .retry(&target, |_| async {
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("HeadObject", &target, e))
            })
            .await;
        match head {
            Ok(h) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
            })),
            // HEAD answers have no body, so a missing bucket is a bare 404
            // too: tell the two apart.
            Err(e) if e.is_not_found() => match self.check_bucket().await {
                Ok(()) => Ok(None),
                Err(e) if e.code.as_deref() == Some("NoSuchBucket") => {
                    Err(StoreError::bucket_missing("HeadObject", target))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody> {
        let target = self.target(key);
        let range = (offset > 0).then(|| format!("bytes={offset}-"));
        let out = self
            .retry(&target, |_| async {
                self.client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .set_range(range.clone())
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("GetObject", &target, e))
            })
            .await?;
        // A server that ignores Range sends the whole object, which read as
        // a continuation would deliver its first records twice.
        let range_start = out
            .content_range()
            .and_then(|r| r.strip_prefix("bytes "))
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse::<u64>().ok());
        if offset > 0 && range_start != Some(offset) {
            return Err(StoreError::new(
                "GetObject",
                target,
                ErrorKind::Fatal,
                format!(
                    "asked for the bytes from {offset} on, got Content-Range {:?}",
                    out.content_range()
                ),
            ));
        }
        Ok(ObjectBody {
            len: out.content_length().and_then(|n| u64::try_from(n).ok()),
            etag: out.e_tag().unwrap_or_default().to_string(),
            reader: Box::new(S3Body {
                body: out.body,
                target,
                idle_timeout: self.options.idle_timeout,
            }),
        })
    }

    async fn put_file(&self, key: &str, path: &Path, options: &PutOptions) -> Result<PutReceipt> {
        upload::put_file(self, key, path, options).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        options: &PutOptions,
    ) -> Result<PutReceipt> {
        upload::put_bytes(self, key, data, options).await
    }

    async fn check_writable(&self) -> Result<()> {
        self.check_bucket().await?;
        self.write_probe().await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let target = self.target(key);
        let deleted = self
            .retry(&target, |_| async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("DeleteObject", &target, e))
            })
            .await;
        match deleted {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}
