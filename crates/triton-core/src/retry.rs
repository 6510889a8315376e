//! One retry policy for every call triton retries: exponential backoff with
//! jitter (so that many shards or processes retrying at once spread out
//! instead of hitting the service together) and an optional budget.
//!
//! [`retry`] runs an operation under a [`Policy`] with a classifier that
//! says which errors are worth another attempt. Loops that do more between
//! attempts than wait (a reader that keeps its call rate, renews its
//! iterator or keeps what it has read) draw their delays from a
//! [`Backoff`] of the same policy instead. The policies of the call sites
//! are named in [`policies`], in one place, so that their pace can be read
//! and compared side by side.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How a kind of call is retried: delays of `base * 2^n`, capped at `cap`,
/// each drawn uniformly from its upper half ("equal jitter": never zero,
/// never more than the cap), for as long as the [`Budget`] allows.
///
/// ```
/// use std::time::Duration;
/// use triton_core::retry::{Budget, Policy};
///
/// let policy = Policy::new(Duration::from_millis(100), Duration::from_secs(5))
///     .with_budget(Budget::Attempts(3));
/// let mut backoff = policy.backoff();
/// let first = backoff.next_delay().unwrap();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// assert!(backoff.next_delay().is_some());
/// // Three attempts in all: the first and two retries.
/// assert_eq!(backoff.next_delay(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    base: Duration,
    cap: Duration,
    budget: Budget,
}

/// How long a [`Policy`] keeps retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Budget {
    /// Until the operation succeeds or fails for good: what a service that
    /// holds data it must not give up (an archive, a checkpoint) waits out.
    Unlimited,
    /// At most this many attempts in all, the first included.
    Attempts(u32),
    /// No retry once this long has passed since the first failure.
    Elapsed(Duration),
}

impl Policy {
    /// Delays starting at `base` and growing to at most `cap`, without a
    /// budget.
    pub const fn new(base: Duration, cap: Duration) -> Policy {
        Policy {
            base,
            cap,
            budget: Budget::Unlimited,
        }
    }

    /// The same delays under another budget.
    #[must_use]
    pub const fn with_budget(self, budget: Budget) -> Policy {
        Policy { budget, ..self }
    }

    /// The same cap and budget from another first delay (a caller's option).
    #[must_use]
    pub const fn with_base(self, base: Duration) -> Policy {
        Policy { base, ..self }
    }

    /// The first delay.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The longest delay.
    pub const fn cap(&self) -> Duration {
        self.cap
    }

    /// How long it keeps retrying.
    pub const fn budget(&self) -> Budget {
        self.budget
    }

    /// A fresh sequence of delays, with random jitter.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            failures: 0,
            first_failure: None,
            jitter: Jitter::random(),
        }
    }

    /// The delay after `failures` failed retries (0 = the first retry) for
    /// a jitter draw `unit` in [0, 1), ignoring the budget.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << failures.min(20))
            .min(self.cap);
        full / 2 + full.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// Where the jitter of a [`Backoff`] comes from: random by default; tests
/// and simulations inject their own draws in [0, 1).
#[derive(Clone)]
pub struct Jitter(Arc<dyn Fn() -> f64 + Send + Sync>);

impl Jitter {
    /// Draws from a randomly keyed hasher (all the randomness jitter needs).
    pub fn random() -> Jitter {
        Jitter(Arc::new(random_unit))
    }

    /// Draws from `draw`, which should return numbers in [0, 1) (others
    /// are clamped).
    pub fn from_fn(draw: impl Fn() -> f64 + Send + Sync + 'static) -> Jitter {
        Jitter(Arc::new(draw))
    }

    fn draw(&self) -> f64 {
        (self.0)()
    }
}

impl fmt::Debug for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Jitter")
    }
}

/// The delays of one operation's successive failures under a [`Policy`].
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
    first_failure: Option<Instant>,
    jitter: Jitter,
}

impl Backoff {
    /// The same delays with jitter drawn from `jitter`.
    #[must_use]
    pub fn with_jitter(self, jitter: Jitter) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The delay before the next attempt after a failure, or `None` when the
    /// policy's budget is spent and the failure should be returned.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        let spent = match self.policy.budget {
            Budget::Unlimited => false,
            Budget::Attempts(n) => self.failures.saturating_add(1) >= n,
            Budget::Elapsed(limit) => first.elapsed() >= limit,
        };
        if spent {
            return None;
        }
        let delay = self.policy.delay(self.failures, self.jitter.draw());
        self.failures = self.failures.saturating_add(1);
        Some(delay)
    }

    /// The delay after `failures` failed retries (0 = the first retry),
    /// ignoring the budget: for callers that count attempts themselves (per
    /// queued record, say).
    pub fn delay_after(&self, failures: u32) -> Duration {
        self.policy.delay(failures, self.jitter.draw())
    }

    /// Retries since the last success.
    pub fn attempts(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure starts again from the base delay
    /// and a full budget.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.first_failure = None;
    }
}

/// A failed attempt that is about to be retried, as [`retry`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retrying {
    /// Retries so far, this one included (1 = the first retry).
    pub attempt: u32,
    /// How long it waits before the attempt.
    pub delay: Duration,
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or
/// the policy's budget is spent; the last error is returned. Before each
/// wait `notify` hears of the failure (to log it, count it, or say that a
/// service is unhealthy).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use std::time::Duration;
/// use triton_core::retry::{retry, Policy};
///
/// let policy = Policy::new(Duration::from_millis(10), Duration::from_secs(1));
/// let mut calls = 0;
/// let got: Result<u32, &str> = retry(
///     &policy,
///     || {
///         calls += 1;
///         let n = calls;
///         async move { if n < 3 { Err("busy") } else { Ok(n) } }
///     },
///     |e| *e == "busy",
///     |_, _| {},
/// )
/// .await;
/// assert_eq!(got, Ok(3));
/// # });
/// ```
pub async fn retry<T, E, F: Future<Output = Result<T, E>>>(
    policy: &Policy,
    op: impl FnMut() -> F,
    retryable: impl Fn(&E) -> bool,
    notify: impl FnMut(&E, Retrying),
) -> Result<T, E> {
    retry_with(&mut policy.backoff(), op, retryable, notify).await
}

/// [`retry`] with delays drawn from `backoff` (a chosen jitter, or one
/// sequence of delays shared across calls).
pub async fn retry_with<T, E, F: Future<Output = Result<T, E>>>(
    backoff: &mut Backoff,
    mut op: impl FnMut() -> F,
    retryable: impl Fn(&E) -> bool,
    mut notify: impl FnMut(&E, Retrying),
) -> Result<T, E> {
    loop {
        let e = match op().await {
            Ok(t) => {
                backoff.reset();
                return Ok(t);
            }
            Err(e) => e,
        };
        if !retryable(&e) {
            return Err(e);
        }
        let Some(delay) = backoff.next_delay() else {
            return Err(e);
        };
        notify(
            &e,
            Retrying {
                attempt: backoff.attempts(),
                delay,
            },
        );
        tokio::time::sleep(delay).await;
    }
}

/// A random number in [0, 1). `RandomState` is randomly keyed per instance,
/// which is all the randomness jitter needs.
fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The policy of each call site, side by side. Reads of a live stream and
/// waits for a store that holds data retry without end (the data must not
/// be given up; an outage is reported through logs, metrics and readiness
/// meanwhile); one-shot commands give up after a few attempts.
pub mod policies {
    use super::{Budget, Policy};
    use std::time::Duration;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Kinesis GetRecords and GetShardIterator of the live and replay
    /// readers: 0.1 s to 10 s, without end.
    pub const KINESIS_READ: Policy = Policy::new(ms(100), s(10));
    /// Kinesis PutRecords of the producer: from its `backoff` option
    /// (0.1 s by default) to 10 s; the producer counts attempts per record.
    pub const KINESIS_PUT: Policy = Policy::new(ms(100), s(10));
    /// Kinesis ListShards: 0.2 s to 5 s, 6 attempts (a command answers or
    /// says why soon).
    pub const KINESIS_LIST: Policy = Policy::new(ms(200), s(5)).with_budget(Budget::Attempts(6));
    /// One S3 request of the archive store: from its `retry_base` option
    /// (0.2 s by default) to 10 s, `max_attempts` attempts (6 by default).
    pub const S3_REQUEST: Policy = Policy::new(ms(200), s(10)).with_budget(Budget::Attempts(6));
    /// Resuming an S3 archive download that broke off: 0.2 s to 5 s, up to
    /// the reader's `max_resumes` (5 by default) in a row.
    pub const S3_RESUME: Policy = Policy::new(ms(200), s(5)).with_budget(Budget::Attempts(6));
    /// The archiver waiting for the checkpoint database: 0.5 s to 30 s,
    /// without end.
    pub const CHECKPOINT_DATABASE: Policy = Policy::new(ms(500), s(30));
    /// The archiver waiting for the archive store: 1 s to 15 s, without end
    /// (capped low: waiting is cheap, and the store should notice soon that
    /// an outage is over).
    pub const ARCHIVE_STORE: Policy = Policy::new(s(1), s(15));
    /// A store worker waiting for the lease database or the stream: 0.5 s
    /// to 10 s, without end (capped below the lease duration's scale, so
    /// that a worker is back soon after an outage).
    pub const FLEET: Policy = Policy::new(ms(500), s(10));
    /// `triton store` opening what it cannot start without: 1 s to 30 s,
    /// without end (a service started before its database waits for it).
    pub const STARTUP: Policy = Policy::new(s(1), s(30));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn fixed(unit: f64) -> Jitter {
        Jitter::from_fn(move || unit)
    }

    #[test]
    fn grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Policy::new(Duration::from_millis(100), Duration::from_secs(1)).backoff();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay().unwrap()).collect();
        let bounds = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, hi) in delays.iter().zip(bounds) {
            let hi = Duration::from_millis(hi);
            assert!(
                *d >= hi / 2 && *d <= hi,
                "{d:?} outside [{:?}, {hi:?}]",
                hi / 2
            );
        }
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert!(b.next_delay().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn injected_jitter_gives_exact_delays() {
        let policy = Policy::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut low = policy.backoff().with_jitter(fixed(0.0));
        let mut high = policy.backoff().with_jitter(fixed(0.999_999));
        let low: Vec<u128> = (0..5)
            .map(|_| low.next_delay().unwrap().as_millis())
            .collect();
        let high: Vec<u128> = (0..5)
            .map(|_| high.next_delay().unwrap().as_millis())
            .collect();
        assert_eq!(low, [50, 100, 200, 400, 500]);
        assert_eq!(high, [99, 199, 399, 799, 999]);
        // A draw outside [0, 1) is clamped, never past the cap.
        assert_eq!(policy.delay(10, 7.0), Duration::from_secs(1));
    }

    #[test]
    fn an_attempt_budget_counts_the_first_attempt() {
        let policy = Policy::new(Duration::from_millis(1), Duration::from_millis(4))
            .with_budget(Budget::Attempts(4));
        let mut b = policy.backoff();
        let retries = std::iter::from_fn(|| b.next_delay()).take(100).count();
        assert_eq!(retries, 3);
        b.reset();
        assert!(b.next_delay().is_some(), "a success renews the budget");
        let mut once = policy.with_budget(Budget::Attempts(1)).backoff();
        assert_eq!(once.next_delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_elapsed_budget_counts_from_the_first_failure() {
        let policy = Policy::new(Duration::from_secs(1), Duration::from_secs(1))
            .with_budget(Budget::Elapsed(Duration::from_secs(5)));
        let mut b = policy.backoff().with_jitter(fixed(0.0));
        tokio::time::sleep(Duration::from_secs(100)).await;
        let mut retries = 0;
        while let Some(delay) = b.next_delay() {
            retries += 1;
            tokio::time::sleep(delay).await;
        }
        // Delays of 0.5 s: the retries 0, 0.5, ... 4.5 s after the first
        // failure are within 5 s (the wait before the start does not count).
        assert_eq!(retries, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_an_error_the_classifier_refuses() {
        let policy = Policy::new(Duration::from_millis(10), Duration::from_secs(1));
        let mut calls = 0;
        let mut heard = Vec::new();
        let got: Result<(), &str> = retry(
            &policy,
            || {
                calls += 1;
                let n = calls;
                async move { Err(if n < 3 { "busy" } else { "broken" }) }
            },
            |e| *e == "busy",
            |e, r| heard.push((*e, r.attempt)),
        )
        .await;
        assert_eq!(got, Err("broken"));
        assert_eq!(calls, 3);
        assert_eq!(heard, [("busy", 1), ("busy", 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_the_last_error_when_the_budget_is_spent() {
        let policy = Policy::new(Duration::from_millis(10), Duration::from_secs(1))
            .with_budget(Budget::Attempts(3));
        let calls = AtomicU64::new(0);
        let started = Instant::now();
        let got: Result<(), u64> = retry(
            &policy,
            || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                async move { Err(n) }
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!(got, Err(2));
        // Two waits: at most 10 ms and 20 ms.
        assert!(started.elapsed() <= Duration::from_millis(30));
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> =
            (0..32).map(|_| (random_unit() * 1e9) as u64).collect();
        assert!(draws.len() > 16, "{draws:?}");
    }
}
