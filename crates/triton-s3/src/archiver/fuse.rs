//! [`Fuse`]: how an archiver learns that the leases it works under are
//! lost, from its own fenced writes or from the worker renewing them.

use std::sync::Arc;

use tokio::sync::watch;

/// Trips once, with the first reason given; every clone sees it, and
/// [`wait`](Fuse::wait) wakes every waiter. An archiver whose fuse tripped
/// stops at once: no upload, no commit, its unsealed records dropped (the
/// next owner reads them again from the committed checkpoints).
#[derive(Clone, Debug)]
pub struct Fuse(Arc<watch::Sender<Option<String>>>);

impl Default for Fuse {
    fn default() -> Fuse {
        Fuse::new()
    }
}

impl Fuse {
    /// An intact fuse.
    pub fn new() -> Fuse {
        Fuse(Arc::new(watch::Sender::new(None)))
    }

    /// Trips it (a second trip keeps the first reason).
    pub fn trip(&self, why: impl Into<String>) {
        let why = why.into();
        self.0.send_if_modified(|reason| {
            if reason.is_some() {
                return false;
            }
            *reason = Some(why);
            true
        });
    }

    /// Why it tripped, if it did.
    pub fn tripped(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Waits until it trips; returns why.
    pub async fn wait(&self) -> String {
        let mut seen = self.0.subscribe();
        loop {
            if let Some(why) = seen.borrow_and_update().clone() {
                return why;
            }
            // The sender lives as long as `self`: changed() cannot fail
            // while we hold it.
            if seen.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trip_wakes_a_waiter_and_keeps_its_first_reason() {
        let fuse = Fuse::new();
        let waiter = tokio::spawn({
            let fuse = fuse.clone();
            async move { fuse.wait().await }
        });
        tokio::task::yield_now().await;
        fuse.trip("lost shardId-1");
        fuse.trip("later");
        assert_eq!(waiter.await.ok().as_deref(), Some("lost shardId-1"));
        assert_eq!(fuse.tripped().as_deref(), Some("lost shardId-1"));
    }
}
