//! The process's health, as a service manager or load balancer asks for it:
//! alive (its loops are turning) and ready (doing its work, not starting,
//! recovering or stuck retrying).
//!
//! One per process, like the `tracing` and `metrics` registries: readiness
//! is a property of the process, whatever number of archivers it runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening its database, stream and bucket.
    Starting,
    /// Finishing work a previous run left (upload intents).
    Recovering,
    /// Reading, or waiting normally (for records, for a free lease).
    Running,
    /// Stopping gracefully.
    Stopping,
}

/// The process's health; see [`health`].
#[derive(Debug)]
pub struct Health {
    phase: AtomicU8,
    started: Instant,
    /// Milliseconds since `started` of the last beat.
    beat: AtomicU64,
    next_id: AtomicU64,
    /// Operations retrying now: id -> (what, since).
    failing: Mutex<BTreeMap<u64, (String, Instant)>>,
}

/// The process's [`Health`].
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(|| Health {
        phase: AtomicU8::new(0),
        started: Instant::now(),
        beat: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        failing: Mutex::new(BTreeMap::new()),
    })
}

/// A retry loop in trouble, from its first failure until it is dropped
/// (on success or when the loop gives up).
#[derive(Debug)]
pub struct Failing {
    id: u64,
}

impl Drop for Failing {
    fn drop(&mut self) {
        if let Ok(mut f) = health().failing.lock() {
            f.remove(&self.id);
        }
    }
}

/// What [`Health::report`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The loops are turning.
    pub live: bool,
    /// Doing its work.
    pub ready: bool,
    /// Why not ready or not live, or `ok`: one line.
    pub reason: String,
}

impl Health {
    /// Sets the phase.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
        self.beat();
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Recovering,
            2 => Phase::Running,
            _ => Phase::Stopping,
        }
    }

    /// Says a loop of the process turned.
    pub fn beat(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.beat.store(now, Ordering::Relaxed);
    }

    /// Marks `what` as retrying from now until the guard is dropped.
    pub fn failing(&self, what: &str) -> Failing {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failing.lock() {
            f.insert(id, (what.to_owned(), Instant::now()));
        }
        Failing { id }
    }

    /// The operation retrying the longest, and for how long.
    pub fn longest_failing(&self) -> Option<(String, Duration)> {
        let f = self.failing.lock().ok()?;
        f.values()
            .min_by_key(|(_, since)| *since)
            .map(|(what, since)| (what.clone(), since.elapsed()))
    }

    /// Live when a loop beat within `stale_after`; ready when running and no
    /// operation has been retrying for `unready_after` or more.
    pub fn report(&self, unready_after: Duration, stale_after: Duration) -> Report {
        let since_beat = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.beat.load(Ordering::Relaxed)));
        let live = since_beat < stale_after;
        let failing = self.longest_failing();
        let (ready, reason) = match (self.phase(), failing) {
            _ if !live => (
                false,
                format!("no loop turned for {} s", since_beat.as_secs()),
            ),
            (Phase::Starting, _) => (false, "starting".to_owned()),
            (Phase::Recovering, _) => (false, "recovering unfinished uploads".to_owned()),
            (Phase::Stopping, _) => (false, "stopping".to_owned()),
            (Phase::Running, Some((what, for_how_long))) if for_how_long >= unready_after => (
                false,
                format!("{what}: retrying for {} s", for_how_long.as_secs()),
            ),
            (Phase::Running, _) => (true, "ok".to_owned()),
        };
        Report {
            live,
            ready,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_running_and_not_stuck() {
        let h = health();
        h.set_phase(Phase::Starting);
        let long = Duration::from_secs(3600);
        assert!(!h.report(long, long).ready);
        h.set_phase(Phase::Running);
        assert!(h.report(long, long).ready);
        let failing = h.failing("uploading");
        assert!(h.report(long, long).ready, "not yet for long");
        let r = h.report(Duration::ZERO, long);
        assert!(!r.ready && r.live, "{r:?}");
        assert!(
            r.reason.starts_with("uploading: retrying for"),
            "{}",
            r.reason
        );
        drop(failing);
        assert!(h.report(Duration::ZERO, long).ready);
        assert!(!h.report(long, Duration::ZERO).live);
    }
}
