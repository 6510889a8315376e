//! A small connection pool shared by both backends: at most `size`
//! operations at once, idle connections reused.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use triton_core::checkpoint::Result;

use crate::failed;

pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
    permits: Semaphore,
}

impl<C> Pool<C> {
    pub(crate) fn new(size: usize) -> Pool<C> {
        Pool {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        }
    }

    /// Waits for a turn; returns it with an idle connection, if there is
    /// one (else the caller connects). Hold the permit for the operation.
    pub(crate) async fn checkout(&self, db: &str) -> Result<(SemaphorePermit<'_>, Option<C>)> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| failed(db, "the connection pool is closed"))?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Ok((permit, idle))
    }

    /// Returns a connection whose operation succeeded. One whose operation
    /// failed is dropped instead: its transaction state (and, in SQLite, the
    /// write lock) may be broken.
    pub(crate) fn give_back(&self, conn: C) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}
