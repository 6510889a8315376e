//! [`ThrottledStore`]: waits before each operation of the store it wraps,
//! as object_store's `ThrottledStore` does, to test timeouts, progress
//! reports and concurrency against a slow store.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Hook, Hooked, Op};
use crate::store::ArchiveStore;
use crate::StoreError;

/// How long each operation waits before it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Before [`ArchiveStore::list`].
    pub wait_list: Duration,
    /// Before [`ArchiveStore::head`].
    pub wait_head: Duration,
    /// Before [`ArchiveStore::get`].
    pub wait_get: Duration,
    /// Before [`ArchiveStore::put_file`] and [`ArchiveStore::put_bytes`].
    pub wait_put: Duration,
    /// Before [`ArchiveStore::delete`].
    pub wait_delete: Duration,
    /// Before [`ArchiveStore::check_writable`].
    pub wait_check: Duration,
}

/// The waits of a [`ThrottledStore`].
#[derive(Debug, Default)]
pub struct Throttle(Mutex<ThrottleConfig>);

/// A store that sleeps (on tokio's clock, so a paused test clock skips
/// the waits) before passing each call to the wrapped store.
pub type ThrottledStore<S> = Hooked<S, Throttle>;

impl<S: ArchiveStore> Hooked<S, Throttle> {
    /// `inner`, with the waits of `config`.
    pub fn new(inner: S, config: ThrottleConfig) -> ThrottledStore<S> {
        Hooked::with_hook(inner, Throttle(Mutex::new(config)))
    }

    /// Changes the waits of calls made from now on.
    pub fn config_mut(&self, change: impl FnOnce(&mut ThrottleConfig)) {
        change(&mut self.hook().0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The waits now.
    pub fn config(&self) -> ThrottleConfig {
        *self.hook().0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Hook for Throttle {
    async fn before(&self, op: Op, _key: &str) -> Result<(), StoreError> {
        let c = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        let wait = match op {
            Op::List => c.wait_list,
            Op::Head => c.wait_head,
            Op::Get => c.wait_get,
            Op::PutFile | Op::PutBytes => c.wait_put,
            Op::Delete => c.wait_delete,
            Op::CheckWritable => c.wait_check,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}
