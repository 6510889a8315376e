//! Waiting out outages of the archive store and the checkpoint database:
//! the archiver never gives up data it holds, and says what it waits for.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use triton_core::retry::Backoff;

/// How often an attempt that has not answered is logged: a database or
/// store that hangs (no answer at all, rather than an error) must not be
/// silent. Store attempts are uploads, which may take minutes while making
/// progress (S3 requests that stop moving are given up and logged by the
/// S3 store itself), so they are logged less often.
fn still_waiting(waiting: Waiting) -> Duration {
    match waiting {
        Waiting::Database => Duration::from_secs(30),
        Waiting::Store => Duration::from_secs(120),
    }
}

/// Awaits `attempt`, calling `waiting` with the time waited so far each
/// `every` it has not answered. The attempt is not given up here: the
/// store and the database bound their own requests (a store's stalled
/// upload, a database's operation timeout) and fail them, which is retried.
async fn patiently<T>(
    attempt: impl Future<Output = T>,
    every: Duration,
    mut waiting: impl FnMut(Duration),
) -> T {
    tokio::pin!(attempt);
    let started = tokio::time::Instant::now();
    let mut next = started + every;
    loop {
        tokio::select! {
            done = &mut attempt => return done,
            () = tokio::time::sleep_until(next) => {
                waiting(next - started);
                next += every;
            }
        }
    }
}

/// What is being waited for, which sets the pace.
#[derive(Clone, Copy, Debug)]
pub(super) enum Waiting {
    /// The checkpoint database: every 0.5 s to 30 s.
    Database,
    /// The archive store: every 1 s to 15 s (capped low: waiting is cheap,
    /// and the store should notice soon that an outage is over).
    Store,
}

impl Waiting {
    /// The `operation` label of the retry counter.
    fn operation(self) -> &'static str {
        match self {
            Waiting::Database => "checkpoint_database",
            Waiting::Store => "archive_store",
        }
    }
}

/// Runs `attempt` until it succeeds, logging each failure as a warning
/// that names `key` and says `what` the archiver waits for.
pub(super) async fn until_ok<T, E: Display, F: Future<Output = Result<T, E>>>(
    waiting: Waiting,
    what: &str,
    key: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    loop {
        // (Never an error: none ends the retries.)
        if let Ok(t) = until_ok_or(waiting, what, key, &mut attempt, |_| false).await {
            return t;
        }
    }
}

/// [`until_ok`], except that an error for which `ends` is true is returned
/// at once (a fenced write refused because the lease is lost: retrying
/// would never succeed, and must not).
pub(super) async fn until_ok_or<T, E: Display, F: Future<Output = Result<T, E>>>(
    waiting: Waiting,
    what: &str,
    key: &str,
    mut attempt: impl FnMut() -> F,
    ends: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut backoff = match waiting {
        Waiting::Database => Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        Waiting::Store => Backoff::new(Duration::from_secs(1), Duration::from_secs(15)),
    };
    let health = triton_core::health::health();
    // Set at the first failure, cleared when this returns: readiness turns
    // off while an upload or commit retries for long.
    let mut failing = None;
    loop {
        health.beat();
        let answered = patiently(attempt(), still_waiting(waiting), |waited| {
            tracing::warn!(
                key,
                waited_s = waited.as_secs(),
                "no answer for {} s yet: {what}",
                waited.as_secs()
            );
        });
        match answered.await {
            Ok(t) => return Ok(t),
            Err(e) if ends(&e) => return Err(e),
            Err(e) => {
                let delay = backoff.next_delay();
                failing.get_or_insert_with(|| health.failing(what));
                ::metrics::counter!("triton_retries_total", "operation" => waiting.operation())
                    .increment(1);
                tracing::warn!(key, error = %e, retry_in_ms = delay.as_millis() as u64, "{what}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whether a checkpoint error ends the retries of a fenced write.
pub(super) fn refused(e: &triton_core::checkpoint::CheckpointError) -> bool {
    use triton_core::checkpoint::CheckpointError as E;
    matches!(e, E::Fenced { .. } | E::KeyTaken { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_attempt_without_an_answer_is_reported_every_interval() {
        let mut reported = Vec::new();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(95)).await;
            7
        };
        let got = patiently(slow, Duration::from_secs(30), |w| {
            reported.push(w.as_secs())
        })
        .await;
        assert_eq!(got, 7);
        assert_eq!(reported, [30, 60, 90]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_answer_is_not_reported() {
        let mut reported = 0;
        let got = patiently(async { 1 }, Duration::from_secs(30), |_| reported += 1).await;
        assert_eq!((got, reported), (1, 0));
    }
}
