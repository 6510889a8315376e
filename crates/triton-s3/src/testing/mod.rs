//! Test helpers for anything built on an [`ArchiveStore`](crate::ArchiveStore)
//! (feature `test-util`), in the style of object_store's `throttle.rs` and
//! `integration.rs`:
//!
//! - [`FaultyStore`]: a store that fails chosen operations, a given number
//!   of times or for the keys a predicate picks, with a given
//!   [`ErrorKind`](crate::ErrorKind);
//! - [`ThrottledStore`]: a store that waits before each operation;
//! - [`conformance`]: what every store must do, as functions that panic
//!   naming the broken rule, run against [`LocalStore`](crate::LocalStore)
//!   and [`S3Store`](crate::S3Store) by this crate's tests.

//!
//! Both are a [`Hooked`] store: a [`Hook`] runs before each call and may
//! fail it or delay it.

pub mod conformance;
mod faults;
mod throttle;

use std::path::Path;

use async_trait::async_trait;

pub use self::faults::{Faults, FaultyStore, Op};
pub use self::throttle::{Throttle, ThrottleConfig, ThrottledStore};
use crate::store::{ArchiveStore, ObjectBody, ObjectInfo, PutOptions, PutReceipt};
use crate::StoreError;

/// What a [`Hooked`] store does before each call reaches the store it
/// wraps: an error is returned instead of calling it.
#[async_trait]
pub trait Hook: Send + Sync + std::fmt::Debug {
    /// Runs before `op` on `key` (the prefix for [`Op::List`], "" for
    /// [`Op::CheckWritable`]).
    async fn before(&self, op: Op, key: &str) -> Result<(), StoreError>;
}

/// A store that runs `hook` before passing each call to `inner`.
#[derive(Debug)]
pub struct Hooked<S, H> {
    inner: S,
    hook: H,
}

impl<S: ArchiveStore, H: Hook> Hooked<S, H> {
    /// `inner` behind `hook`.
    pub fn with_hook(inner: S, hook: H) -> Hooked<S, H> {
        Hooked { inner, hook }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: ArchiveStore, H: Hook> ArchiveStore for Hooked<S, H> {
    fn url(&self) -> String {
        self.inner.url()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.hook.before(Op::List, prefix).await?;
        self.inner.list(prefix).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.hook.before(Op::Head, key).await?;
        self.inner.head(key).await
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        self.hook.before(Op::Get, key).await?;
        self.inner.get(key, offset).await
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.hook.before(Op::PutFile, key).await?;
        self.inner.put_file(key, path, options).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.hook.before(Op::PutBytes, key).await?;
        self.inner.put_bytes(key, data, options).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.hook.before(Op::Delete, key).await?;
        self.inner.delete(key).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.hook.before(Op::CheckWritable, "").await?;
        self.inner.check_writable().await
    }
}
