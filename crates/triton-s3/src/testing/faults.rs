//! [`FaultyStore`]: fails chosen operations of the store it wraps.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{ArchiveStore, ObjectBody, ObjectInfo, PutOptions, PutReceipt};
use crate::{ErrorKind, StoreError};

/// An operation of [`ArchiveStore`], to say which ones fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`ArchiveStore::list`].
    List,
    /// [`ArchiveStore::head`].
    Head,
    /// [`ArchiveStore::get`].
    Get,
    /// [`ArchiveStore::put_file`].
    PutFile,
    /// [`ArchiveStore::put_bytes`].
    PutBytes,
    /// [`ArchiveStore::delete`].
    Delete,
    /// [`ArchiveStore::check_writable`].
    CheckWritable,
}

impl Op {
    /// The S3 request the operation stands for, as [`StoreError::operation`].
    pub fn request(self) -> &'static str {
        match self {
            Op::List => "ListObjectsV2",
            Op::Head => "HeadObject",
            Op::Get => "GetObject",
            Op::PutFile | Op::PutBytes => "PutObject",
            Op::Delete => "DeleteObject",
            Op::CheckWritable => "HeadBucket",
        }
    }
}

type Predicate = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// One fault: which operation, on which keys, how many more times.
struct Fault {
    op: Op,
    /// `None`: every time.
    remaining: Option<usize>,
    /// Of the key (the prefix for [`Op::List`], "" for
    /// [`Op::CheckWritable`]).
    when: Predicate,
    kind: ErrorKind,
    message: String,
}

/// A store whose chosen operations fail before reaching `inner` (nothing
/// is written or read by a failed call). Faults are checked in the order
/// they were added; the first that applies fails the call.
pub struct FaultyStore<S> {
    inner: S,
    faults: Mutex<Vec<Fault>>,
    injected: Mutex<Vec<(Op, String)>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: ArchiveStore> FaultyStore<S> {
    /// `inner`, failing nothing yet.
    pub fn new(inner: S) -> FaultyStore<S> {
        FaultyStore {
            inner,
            faults: Mutex::new(Vec::new()),
            injected: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Fails the next `times` calls of `op` with `kind`.
    pub fn fail(&self, op: Op, times: usize, kind: ErrorKind) -> &Self {
        self.add(op, Some(times), Box::new(|_| true), kind)
    }

    /// Fails every call of `op` whose key `when` picks, with `kind`.
    pub fn fail_when(
        &self,
        op: Op,
        kind: ErrorKind,
        when: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.add(op, None, Box::new(when), kind)
    }

    /// Drops every fault not yet used up.
    pub fn heal(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The calls failed so far: (operation, key).
    pub fn injected(&self) -> Vec<(Op, String)> {
        self.injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn add(&self, op: Op, remaining: Option<usize>, when: Predicate, kind: ErrorKind) -> &Self {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Fault {
                op,
                remaining,
                when,
                kind,
                message: format!("injected {kind:?} fault"),
            });
        self
    }

    /// The error for this call, if a fault applies (using it up).
    fn check(&self, op: Op, key: &str) -> Result<(), StoreError> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fault) = faults
            .iter_mut()
            .find(|f| f.op == op && f.remaining != Some(0) && (f.when)(key))
        else {
            return Ok(());
        };
        if let Some(n) = &mut fault.remaining {
            *n -= 1;
        }
        let error = StoreError {
            operation: op.request(),
            target: key.to_owned(),
            kind: fault.kind,
            code: None,
            message: fault.message.clone(),
        };
        drop(faults);
        self.injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((op, key.to_owned()));
        Err(error)
    }
}

#[async_trait]
impl<S: ArchiveStore> ArchiveStore for FaultyStore<S> {
    fn url(&self) -> String {
        self.inner.url()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.check(Op::List, prefix)?;
        self.inner.list(prefix).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.check(Op::Head, key)?;
        self.inner.head(key).await
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        self.check(Op::Get, key)?;
        self.inner.get(key, offset).await
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.check(Op::PutFile, key)?;
        self.inner.put_file(key, path, options).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        options: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.check(Op::PutBytes, key)?;
        self.inner.put_bytes(key, data, options).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(Op::Delete, key)?;
        self.inner.delete(key).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.check(Op::CheckWritable, "")?;
        self.inner.check_writable().await
    }
}
