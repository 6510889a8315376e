//! [`ThrottledStore`]: waits before each operation of the store it wraps,
//! as object_store's `ThrottledStore` does, to test timeouts, progress
//! reports and concurrency against a slow store.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::{ArchiveStore, ObjectBody, ObjectInfo, PutOptions, PutReceipt};
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

/// A store that sleeps (on tokio's clock, so a paused test clock skips
/// the waits) before passing each call to `inner`.
#[derive(Debug)]
pub struct ThrottledStore<S> {
    inner: S,
    config: Mutex<ThrottleConfig>,
}

impl<S: ArchiveStore> ThrottledStore<S> {
    /// `inner`, with the waits of `config`.
    pub fn new(inner: S, config: ThrottleConfig) -> ThrottledStore<S> {
        ThrottledStore {
            inner,
            config: Mutex::new(config),
        }
    }

    /// Changes the waits of calls made from now on.
    pub fn config_mut(&self, change: impl FnOnce(&mut ThrottleConfig)) {
        change(&mut self.config.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The waits now.
    pub fn config(&self) -> ThrottleConfig {
        *self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn wait(&self, pick: impl FnOnce(&ThrottleConfig) -> Duration) {
        let wait = pick(&self.config());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl<S: ArchiveStore> ArchiveStore for ThrottledStore<S> {
    fn url(&self) -> String {
        self.inner.url()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.wait(|c| c.wait_list).await;
        self.inner.list(prefix).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.wait(|c| c.wait_head).await;
        self.inner.head(key).await
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        self.wait(|c| c.wait_get).await;
        self.inner.get(key, offset).await
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.wait(|c| c.wait_put).await;
        self.inner.put_file(key, path, options).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.wait(|c| c.wait_put).await;
        self.inner.put_bytes(key, data, options).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.wait(|c| c.wait_delete).await;
        self.inner.delete(key).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.wait(|c| c.wait_check).await;
        self.inner.check_writable().await
    }
}
