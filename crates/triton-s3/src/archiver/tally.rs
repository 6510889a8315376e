//! Figures kept in the process (the archiver and its callers read them) and
//! exported through the [`metrics`] facade, updated by one call so that the
//! two never disagree.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, gauge, Counter, Gauge};

/// A total that only grows, exported as a counter.
#[derive(Debug)]
pub(crate) struct Tally {
    value: AtomicU64,
    exported: Counter,
}

impl Tally {
    /// Registered at zero, labelled with `stream`.
    pub(crate) fn new(name: &'static str, stream: &str) -> Tally {
        Tally {
            value: AtomicU64::new(0),
            exported: counter!(name, "stream" => stream.to_owned()),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.exported.increment(n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down, exported as a gauge.
#[derive(Debug)]
pub(crate) struct Level {
    value: AtomicU64,
    exported: Gauge,
}

impl Level {
    /// Registered at zero, labelled with `stream`.
    pub(crate) fn new(name: &'static str, stream: &str) -> Level {
        Level {
            value: AtomicU64::new(0),
            exported: gauge!(name, "stream" => stream.to_owned()),
        }
    }

    pub(crate) fn set(&self, n: u64) {
        self.value.store(n, Ordering::Relaxed);
        self.exported.set(n as f64);
    }

    pub(crate) fn add(&self, n: u64) {
        let now = self.value.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        self.exported.set(now as f64);
    }

    /// Lowers the level by `n`, never below zero.
    pub(crate) fn sub(&self, n: u64) {
        let before = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            })
            .unwrap_or(0);
        self.exported.set(before.saturating_sub(n) as f64);
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}
