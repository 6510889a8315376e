//! Counters of an [`Archiver`](super::Archiver), read by metrics exporters.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Sealed;

/// Totals since the archiver started; every field only grows except
/// `spool_bytes`.
#[derive(Debug, Default)]
pub struct ArchiverStats {
    /// Records read from the source.
    pub records_in: AtomicU64,
    /// Their bytes.
    pub bytes_in: AtomicU64,
    /// Records that were not one MessagePack map (kept in dead-letter
    /// archives).
    pub invalid_records: AtomicU64,
    /// Archives (and dead-letter archives) uploaded.
    pub archives_uploaded: AtomicU64,
    /// Their bytes.
    pub bytes_uploaded: AtomicU64,
    /// Uploads timed, and their total time in microseconds.
    pub uploads: AtomicU64,
    /// Total upload time, microseconds.
    pub upload_micros: AtomicU64,
    /// Unix seconds of the last checkpoint commit (0: none yet).
    pub last_checkpoint: AtomicU64,
    /// Bytes of sealed archives waiting in the spool directory.
    pub spool_bytes: AtomicU64,
    /// The source's last [`behind`](triton_core::source::RecordSource::behind)
    /// figures.
    behind: Mutex<Vec<(String, i64)>>,
    /// Each shard's last committed sequence number.
    committed: Mutex<HashMap<String, String>>,
    /// Bytes read from each shard.
    shard_bytes: Mutex<HashMap<String, u64>>,
}

impl ArchiverStats {
    /// Each sub-source (shard) with how many milliseconds it is behind.
    pub fn behind(&self) -> Vec<(String, i64)> {
        self.behind.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub(crate) fn set_behind(&self, behind: Vec<(String, i64)>) {
        if let Ok(mut b) = self.behind.lock() {
            *b = behind;
        }
    }

    /// The last sequence number committed of `shard`, if any was.
    pub fn last_committed(&self, shard: &str) -> Option<String> {
        self.committed.lock().ok()?.get(shard).cloned()
    }

    pub(crate) fn committed(&self, shard: &str, sequence: &str) {
        if let Ok(mut c) = self.committed.lock() {
            c.insert(shard.to_owned(), sequence.to_owned());
        }
    }

    /// Bytes read so far from each shard.
    pub fn shard_bytes(&self) -> HashMap<String, u64> {
        self.shard_bytes
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    pub(crate) fn read_shard(&self, shard: &str, bytes: u64) {
        if let Ok(mut b) = self.shard_bytes.lock() {
            *b.entry(shard.to_owned()).or_default() += bytes;
        }
    }

    pub(crate) fn read(&self, records: u64, bytes: u64, invalid: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.invalid_records.fetch_add(invalid, Ordering::Relaxed);
    }

    pub(crate) fn spooled(&self, sealed: &Sealed) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let bytes: u64 = sealed.spool_files().map(|p| size(p)).sum();
        self.spool_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn unspooled(&self, path: &Path) {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let _ = self
            .spool_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
    }

    pub(crate) fn uploaded(&self, bytes: u64, took: Duration, archives: u64) {
        self.archives_uploaded
            .fetch_add(archives, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn checkpointed(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_checkpoint.store(now, Ordering::Relaxed);
    }
}
