//! Waiting out outages of the archive store and the checkpoint database:
//! the archiver never gives up data it holds, and says what it waits for.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use triton_core::retry::Backoff;

/// What is being waited for, which sets the pace.
#[derive(Clone, Copy, Debug)]
pub(super) enum Waiting {
    /// The checkpoint database: every 0.5 s to 30 s.
    Database,
    /// The archive store: every 1 s to 15 s (capped low: waiting is cheap,
    /// and the store should notice soon that an outage is over).
    Store,
}

/// Runs `attempt` until it succeeds, logging each failure as a warning
/// that names `key` and says `what` the archiver waits for.
pub(super) async fn until_ok<T, E: Display, F: Future<Output = Result<T, E>>>(
    waiting: Waiting,
    what: &str,
    key: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut backoff = match waiting {
        Waiting::Database => Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        Waiting::Store => Backoff::new(Duration::from_secs(1), Duration::from_secs(15)),
    };
    loop {
        match attempt().await {
            Ok(t) => return t,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(key, error = %e, retry_in_ms = delay.as_millis() as u64, "{what}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
