//! Waiting out outages of the archive store and the checkpoint database:
//! the archiver never gives up data it holds, and says what it waits for.

use std::future::Future;
use std::time::Duration;
use triton_core::error::Report;

use triton_core::health::{health, Failing};
use triton_core::retry::{policies, retry, Policy, Retrying};

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
    /// The checkpoint database ([`policies::CHECKPOINT_DATABASE`]).
    Database,
    /// The archive store ([`policies::ARCHIVE_STORE`]).
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

    fn policy(self) -> &'static Policy {
        match self {
            Waiting::Database => &policies::CHECKPOINT_DATABASE,
            Waiting::Store => &policies::ARCHIVE_STORE,
        }
    }
}

/// Runs `attempt` until it succeeds, logging each failure as a warning
/// that names `key` and says `what` the archiver waits for.
pub(super) async fn until_ok<T, E: std::error::Error, F: Future<Output = Result<T, E>>>(
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
pub(super) async fn until_ok_or<T, E: std::error::Error, F: Future<Output = Result<T, E>>>(
    waiting: Waiting,
    what: &str,
    key: &str,
    mut attempt: impl FnMut() -> F,
    ends: impl Fn(&E) -> bool,
) -> Result<T, E> {
    watched(
        waiting.policy(),
        waiting.operation(),
        what,
        || {
            patiently(attempt(), still_waiting(waiting), move |waited| {
                tracing::warn!(
                    key,
                    waited_s = waited.as_secs(),
                    "no answer for {} s yet: {what}",
                    waited.as_secs()
                );
            })
        },
        |e| !ends(e),
        |e, r| tracing::warn!(key, error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "{what}"),
    )
    .await
}

/// A service's retry loop as its operators see it: each attempt is a
/// heartbeat; from the first failure until the loop ends the process
/// reports `what` as failing (readiness turns off if it lasts), and each
/// retry is counted in `triton_retries_total{operation}`.
pub(crate) struct Watch<'a> {
    operation: &'static str,
    what: &'a str,
    failing: Option<Failing>,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(operation: &'static str, what: &'a str) -> Watch<'a> {
        Watch {
            operation,
            what,
            failing: None,
        }
    }

    /// Before an attempt.
    pub(crate) fn attempting() {
        health().beat();
    }

    /// After a failed attempt that will be retried.
    pub(crate) fn retrying(&mut self) {
        let what = self.what;
        self.failing.get_or_insert_with(|| health().failing(what));
        ::metrics::counter!("triton_retries_total", "operation" => self.operation).increment(1);
    }
}

/// [`retry`] under a [`Watch`]; `log` says what failed.
pub(crate) async fn watched<T, E, F: Future<Output = Result<T, E>>>(
    policy: &Policy,
    operation: &'static str,
    what: &str,
    mut op: impl FnMut() -> F,
    retryable: impl Fn(&E) -> bool,
    mut log: impl FnMut(&E, Retrying),
) -> Result<T, E> {
    let mut watch = Watch::new(operation, what);
    retry(
        policy,
        || {
            Watch::attempting();
            op()
        },
        retryable,
        |e, r| {
            watch.retrying();
            log(e, r);
        },
    )
    .await
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
