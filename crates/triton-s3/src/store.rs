//! [`ArchiveStore`]: the object store interface archives are written to and
//! read from, with an S3 and a local-directory backend.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::{Result, StoreError};

/// One object in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object key (`20150710/stream-store-1436553581.tri`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a write may require of the store.
#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Fail with [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists)
    /// instead of replacing an existing object (S3 `If-None-Match: *`; on a
    /// local directory, an atomic link that refuses to overwrite).
    pub create_only: bool,
    /// The object's `Content-Type`.
    pub content_type: String,
}

impl Default for PutOptions {
    fn default() -> PutOptions {
        PutOptions {
            create_only: false,
            content_type: ARCHIVE_CONTENT_TYPE.to_string(),
        }
    }
}

/// Content type of `.tri` archives: they are opaque binary to HTTP clients.
pub const ARCHIVE_CONTENT_TYPE: &str = "application/octet-stream";

/// What a completed write produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// Bytes written.
    pub size: u64,
    /// The store's version tag (S3 ETag; for a local file, see
    /// [`ObjectBody::etag`]).
    pub etag: String,
    /// Number of parts (1 for a single request).
    pub parts: usize,
}

/// Reads an object body chunk by chunk.
#[async_trait]
pub trait BodyRead: Send {
    /// Appends the next chunk of the body to `buf` and returns its length;
    /// 0 means the end of the body.
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize>;
}

/// An object body being streamed, and the version of the object it comes
/// from.
pub struct ObjectBody {
    /// The body, from the requested offset on.
    pub reader: Box<dyn BodyRead>,
    /// The object's version tag (the S3 ETag; for a local file, made from
    /// its inode, modification time and size), so that a read resumed at an
    /// offset can check it continues the same object.
    pub etag: String,
    /// Bytes this body will deliver, when the store said: a body that ends
    /// before is a broken connection, not the end of the object.
    pub len: Option<u64>,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("etag", &self.etag)
            .finish()
    }
}

/// An object store holding archives: S3 ([`S3Store`](crate::S3Store)) or a
/// local directory ([`LocalStore`](crate::LocalStore)); open either from a
/// user's `--bucket` value with [`Location`](crate::Location).
///
/// Keys are `/`-separated paths relative to the bucket (or directory).
/// Implementations retry transient failures themselves; an error they
/// return has already been retried.
#[async_trait]
pub trait ArchiveStore: Send + Sync + fmt::Debug {
    /// How users name this store: `s3://bucket` or `file:///path`.
    fn url(&self) -> String;

    /// Every object whose key starts with `prefix`, in key order, following
    /// pagination to the end.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// The object's size, or `None` if it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;

    /// Streams the object's bytes from `offset` on (which must be less than
    /// its size).
    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody>;

    /// Writes the file at `path` as `key`, streaming it (large files in
    /// parts, never whole in memory). The object appears whole or not at all.
    async fn put_file(&self, key: &str, path: &Path, options: &PutOptions) -> Result<PutReceipt>;

    /// Writes `data` as `key` (small objects such as sidecars).
    async fn put_bytes(&self, key: &str, data: Vec<u8>, options: &PutOptions)
        -> Result<PutReceipt>;

    /// Deletes the object; deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Checks at start-up that archives can be written here, by writing a
    /// small probe object and deleting it; no listing of archives sees it.
    ///
    /// S3: HeadBucket (a missing bucket: [`ErrorKind::Fatal`](crate::ErrorKind::Fatal)
    /// with the code `NoSuchBucket`; refused credentials or permissions:
    /// [`StoreError::is_access_denied`]), then a PutObject below
    /// `_triton/probe/` of the store's prefix, with the storage class, tags
    /// and encryption of archives, then its DeleteObject (a delete that
    /// fails is logged, not returned: archiving never deletes). A local
    /// directory is created if missing, and a hidden probe file is written
    /// in it and removed. Transient failures are retried as for any
    /// request, then returned as [`ErrorKind::Transient`](crate::ErrorKind::Transient):
    /// the caller decides whether to wait for the store.
    async fn check_writable(&self) -> Result<()>;
}

/// The whole object (small ones: sidecars, manifests), or `None` if it
/// does not exist.
pub async fn read_object(store: &dyn ArchiveStore, key: &str) -> Result<Option<Vec<u8>>> {
    let mut body = match store.get(key, 0).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while body.reader.read_into(&mut out).await? > 0 {}
    Ok(Some(out))
}

/// Implements [`ArchiveStore`] for a type by forwarding every method to
/// the store an expression gives (`|s| target`, `s: &Type`), after an
/// optional check (`before |s, op, key| check`, an expression of type
/// `Result<(), StoreError>` run with `op` a `testing::Op` name and `key`
/// the call's key). `deny(clippy::missing_trait_methods)` checks none is
/// missing. Used for `Box`, `Arc` and `&` of a store (as `RecordSource` is
/// forwarded for `Box`) and for the `testing` wrappers.
macro_rules! forward_archive_store {
    ([$($generics:tt)*] $ty:ty, |$s:ident| $target:expr) => {
        $crate::store::forward_archive_store!(
            [$($generics)*] $ty, |$s| $target, before |_s, _op, _key| Ok::<(), StoreError>(())
        );
    };
    ([$($generics:tt)*] $ty:ty, |$s:ident| $target:expr,
     before |$hs:ident, $op:ident, $key:ident| $before:expr) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<$($generics)*> ArchiveStore for $ty {
            fn url(&self) -> String {
                let $s = self;
                $target.url()
            }

            async fn list(&self, prefix: &str) -> $crate::Result<Vec<ObjectInfo>> {
                $crate::store::forward_archive_store!(@before self, List, prefix, |$hs, $op, $key| $before);
                let $s = self;
                $target.list(prefix).await
            }

            async fn head(&self, key: &str) -> $crate::Result<Option<ObjectInfo>> {
                $crate::store::forward_archive_store!(@before self, Head, key, |$hs, $op, $key| $before);
                let $s = self;
                $target.head(key).await
            }

            async fn get(&self, key: &str, offset: u64) -> $crate::Result<ObjectBody> {
                $crate::store::forward_archive_store!(@before self, Get, key, |$hs, $op, $key| $before);
                let $s = self;
                $target.get(key, offset).await
            }

            async fn put_file(&self, key: &str, path: &std::path::Path, options: &PutOptions) -> $crate::Result<PutReceipt> {
                $crate::store::forward_archive_store!(@before self, PutFile, key, |$hs, $op, $key| $before);
                let $s = self;
                $target.put_file(key, path, options).await
            }

            async fn put_bytes(&self, key: &str, data: Vec<u8>, options: &PutOptions) -> $crate::Result<PutReceipt> {
                $crate::store::forward_archive_store!(@before self, PutBytes, key, |$hs, $op, $key| $before);
                let $s = self;
                $target.put_bytes(key, data, options).await
            }

            async fn delete(&self, key: &str) -> $crate::Result<()> {
                $crate::store::forward_archive_store!(@before self, Delete, key, |$hs, $op, $key| $before);
                let $s = self;
                $target.delete(key).await
            }

            async fn check_writable(&self) -> $crate::Result<()> {
                $crate::store::forward_archive_store!(@before self, CheckWritable, "", |$hs, $op, $key| $before);
                let $s = self;
                $target.check_writable().await
            }
        }
    };
    (@before $self:ident, $name:ident, $k:expr, |$hs:ident, $op:ident, $key:ident| $before:expr) => {
        {
            let $hs = $self;
            let $op = $crate::store::forward_archive_store!(@op $name);
            let $key: &str = $k;
            $before?;
        }
    };
    (@op $name:ident) => {{
        #[cfg(any(test, feature = "test-util"))]
        let op = crate::testing::Op::$name;
        #[cfg(not(any(test, feature = "test-util")))]
        let op = ();
        op
    }};
}
pub(crate) use forward_archive_store;

forward_archive_store!([T: ArchiveStore + ?Sized] Box<T>, |s| (**s));
forward_archive_store!([T: ArchiveStore + ?Sized] std::sync::Arc<T>, |s| (**s));
forward_archive_store!([T: ArchiveStore + ?Sized] &T, |s| (**s));

/// A name for a probe object, unique between processes and within one.
pub(crate) fn probe_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}-{}-{}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
