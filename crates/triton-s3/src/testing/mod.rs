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

crate::store::forward_archive_store!(
    [S: ArchiveStore, H: Hook] Hooked<S, H>,
    |s| s.inner,
    before |s, op, key| s.hook.before(op, key).await
);
