//! [`FaultyStore`]: fails chosen operations of the store it wraps.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Hook, Hooked};
use crate::store::ArchiveStore;
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

/// The faults of a [`FaultyStore`], checked in the order they were added;
/// the first that applies fails the call.
#[derive(Default)]
pub struct Faults {
    faults: Mutex<Vec<Fault>>,
    injected: Mutex<Vec<(Op, String)>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("injected", &self.injected)
            .finish_non_exhaustive()
    }
}

/// A store whose chosen operations fail before reaching the wrapped store
/// (nothing is written or read by a failed call).
pub type FaultyStore<S> = Hooked<S, Faults>;

impl<S: ArchiveStore> Hooked<S, Faults> {
    /// `inner`, failing nothing yet.
    pub fn new(inner: S) -> FaultyStore<S> {
        Hooked::with_hook(inner, Faults::default())
    }

    /// Fails the next `times` calls of `op` with `kind`.
    pub fn fail(&self, op: Op, times: usize, kind: ErrorKind) -> &Self {
        self.hook().add(op, Some(times), Box::new(|_| true), kind);
        self
    }

    /// Fails every call of `op` whose key `when` picks, with `kind`.
    pub fn fail_when(
        &self,
        op: Op,
        kind: ErrorKind,
        when: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.hook().add(op, None, Box::new(when), kind);
        self
    }

    /// Drops every fault not yet used up.
    pub fn heal(&self) {
        lock(&self.hook().faults).clear();
    }

    /// The calls failed so far: (operation, key).
    pub fn injected(&self) -> Vec<(Op, String)> {
        lock(&self.hook().injected).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    fn add(&self, op: Op, remaining: Option<usize>, when: Predicate, kind: ErrorKind) {
        lock(&self.faults).push(Fault {
            op,
            remaining,
            when,
            kind,
            message: format!("injected {kind:?} fault"),
        });
    }
}

#[async_trait]
impl Hook for Faults {
    /// The error for this call, if a fault applies (using it up).
    async fn before(&self, op: Op, key: &str) -> Result<(), StoreError> {
        let mut faults = lock(&self.faults);
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
        lock(&self.injected).push((op, key.to_owned()));
        Err(error)
    }
}
