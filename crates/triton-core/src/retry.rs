//! Exponential backoff with jitter, so that many shards (or processes)
//! retrying at once spread out instead of hitting the service together.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays for successive attempts: `base * 2^n`, capped, each drawn
/// uniformly from its upper half ("equal jitter": never zero, never more
/// than the cap).
///
/// ```
/// use std::time::Duration;
/// use triton_core::retry::Backoff;
///
/// let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// let first = b.next_delay();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays starting at `base` and growing to at most `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The delay after `failures` earlier failed attempts (0 = the first
    /// retry), for callers that count attempts themselves.
    pub fn delay(&self, failures: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << failures.min(20))
            .min(self.cap);
        full / 2 + full.mul_f64(random_unit() / 2.0)
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A random number in [0, 1). `RandomState` is randomly keyed per instance,
/// which is all the randomness jitter needs.
fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
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
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> =
            (0..32).map(|_| (random_unit() * 1e9) as u64).collect();
        assert!(draws.len() > 16, "{draws:?}");
    }
}
