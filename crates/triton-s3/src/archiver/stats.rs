//! Counters of an [`Archiver`](super::Archiver), read by metrics exporters.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::Sealed;

/// Totals since the archiver started (every figure only grows except the
/// spool's), kept for the archiver itself and its callers, and exported
/// through the [`metrics`] facade for whichever recorder the process
/// installed (`triton store` serves them to Prometheus):
///
/// - counters `triton_store_records_total`, `triton_store_record_bytes_total`,
///   `triton_store_invalid_records_total` (dead letters),
///   `triton_store_archives_uploaded_total` (archives, not sidecars),
///   `triton_store_dead_letter_archives_uploaded_total`,
///   `triton_store_uploaded_bytes_total`;
/// - histograms `triton_store_upload_seconds` (an archive with its
///   sidecar, retries included) and `triton_store_commit_seconds`;
/// - gauges `triton_store_spool_bytes`, `triton_store_pending_uploads`,
///   `triton_store_millis_behind_latest{shard}` and
///   `triton_store_last_checkpoint_timestamp_seconds`.
///
/// Every series has the label `stream`.
#[derive(Debug)]
pub struct ArchiverStats {
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    invalid_records: AtomicU64,
    archives_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    uploads: AtomicU64,
    upload_micros: AtomicU64,
    /// Unix seconds of the last checkpoint commit (0: none yet).
    last_checkpoint: AtomicU64,
    spool_bytes: AtomicU64,
    pending_uploads: AtomicU64,
    /// The source's last [`behind`](triton_core::source::RecordSource::behind)
    /// figures.
    behind: Mutex<Vec<(String, i64)>>,
    /// Each shard's last committed sequence number.
    committed: Mutex<HashMap<String, String>>,
    /// Bytes read from each shard.
    shard_bytes: Mutex<HashMap<String, u64>>,
    exported: Exported,
}

impl Default for ArchiverStats {
    /// Statistics exported with an empty `stream` label.
    fn default() -> ArchiverStats {
        ArchiverStats::new("")
    }
}

/// The metric handles, registered once (so that every series exists from
/// the start, at zero).
#[derive(Debug)]
struct Exported {
    stream: String,
    records: Counter,
    record_bytes: Counter,
    invalid: Counter,
    archives: Counter,
    dead_letters: Counter,
    uploaded_bytes: Counter,
    upload_seconds: Histogram,
    commit_seconds: Histogram,
    spool_bytes: Gauge,
    pending_uploads: Gauge,
    last_checkpoint: Gauge,
}

impl Exported {
    fn new(stream: &str) -> Exported {
        let label = || [("stream", stream.to_owned())];
        Exported {
            stream: stream.to_owned(),
            records: counter!("triton_store_records_total", &label()),
            record_bytes: counter!("triton_store_record_bytes_total", &label()),
            invalid: counter!("triton_store_invalid_records_total", &label()),
            archives: counter!("triton_store_archives_uploaded_total", &label()),
            dead_letters: counter!("triton_store_dead_letter_archives_uploaded_total", &label()),
            uploaded_bytes: counter!("triton_store_uploaded_bytes_total", &label()),
            upload_seconds: histogram!("triton_store_upload_seconds", &label()),
            commit_seconds: histogram!("triton_store_commit_seconds", &label()),
            spool_bytes: gauge!("triton_store_spool_bytes", &label()),
            pending_uploads: gauge!("triton_store_pending_uploads", &label()),
            last_checkpoint: gauge!("triton_store_last_checkpoint_timestamp_seconds", &label()),
        }
    }
}

/// Descriptions of the exported metrics, for recorders that show them.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "triton_store_records_total",
        "Records read from the stream."
    );
    describe_counter!(
        "triton_store_record_bytes_total",
        Unit::Bytes,
        "Bytes of the records read."
    );
    describe_counter!(
        "triton_store_invalid_records_total",
        "Records that were not one MessagePack map (kept in dead-letter archives)."
    );
    describe_counter!(
        "triton_store_archives_uploaded_total",
        "Archives uploaded (not their sidecars, not dead-letter archives)."
    );
    describe_counter!(
        "triton_store_dead_letter_archives_uploaded_total",
        "Dead-letter archives uploaded."
    );
    describe_counter!(
        "triton_store_uploaded_bytes_total",
        Unit::Bytes,
        "Bytes uploaded (archives, dead letters, sidecars)."
    );
    describe_histogram!(
        "triton_store_upload_seconds",
        Unit::Seconds,
        "Time to upload an archive and its sidecar, retries included."
    );
    describe_histogram!(
        "triton_store_commit_seconds",
        Unit::Seconds,
        "Time to commit an archive's checkpoints, retries included."
    );
    describe_gauge!(
        "triton_store_spool_bytes",
        Unit::Bytes,
        "Bytes of sealed archives waiting for upload."
    );
    describe_gauge!(
        "triton_store_pending_uploads",
        "Sealed archives waiting for upload."
    );
    describe_gauge!(
        "triton_store_last_checkpoint_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last checkpoint commit (0: none yet)."
    );
    describe_gauge!(
        "triton_store_millis_behind_latest",
        Unit::Milliseconds,
        "How far each shard's last read was behind the tip of the stream."
    );
    describe_counter!(
        "triton_retries_total",
        "Retried failures, by operation (archive_store, checkpoint_database, get_records, ...)."
    );
}

impl ArchiverStats {
    /// Statistics of an archiver of `stream`, exported with that label.
    pub fn new(stream: &str) -> ArchiverStats {
        ArchiverStats {
            records_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            invalid_records: AtomicU64::new(0),
            archives_uploaded: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            upload_micros: AtomicU64::new(0),
            last_checkpoint: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            pending_uploads: AtomicU64::new(0),
            behind: Mutex::default(),
            committed: Mutex::default(),
            shard_bytes: Mutex::default(),
            exported: Exported::new(stream),
        }
    }

    /// Records read from the source.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Bytes of the records read.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Records that were not one MessagePack map.
    pub fn invalid_records(&self) -> u64 {
        self.invalid_records.load(Ordering::Relaxed)
    }

    /// Archives uploaded (not sidecars or dead-letter archives).
    pub fn archives_uploaded(&self) -> u64 {
        self.archives_uploaded.load(Ordering::Relaxed)
    }

    /// Bytes uploaded.
    pub fn bytes_uploaded(&self) -> u64 {
        self.bytes_uploaded.load(Ordering::Relaxed)
    }

    /// Sealed archives uploaded, and the time their uploads took in all.
    pub fn upload_time(&self) -> (u64, Duration) {
        (
            self.uploads.load(Ordering::Relaxed),
            Duration::from_micros(self.upload_micros.load(Ordering::Relaxed)),
        )
    }

    /// Unix seconds of the last checkpoint commit, if any.
    pub fn last_checkpoint(&self) -> Option<u64> {
        Some(self.last_checkpoint.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Bytes of sealed archives waiting in the spool directory.
    pub fn spool_bytes(&self) -> u64 {
        self.spool_bytes.load(Ordering::Relaxed)
    }

    /// Each sub-source (shard) with how many milliseconds it is behind.
    pub fn behind(&self) -> Vec<(String, i64)> {
        self.behind.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The archiver dropped what it held (a lost lease): nothing is
    /// spooled or waiting for upload any more.
    pub(crate) fn nothing_pending(&self) {
        self.spool_bytes.store(0, Ordering::Relaxed);
        self.pending_uploads.store(0, Ordering::Relaxed);
        self.exported.spool_bytes.set(0.0);
        self.exported.pending_uploads.set(0.0);
    }

    pub(crate) fn set_behind(&self, behind: Vec<(String, i64)>) {
        let gauge = |shard: &str| gauge!("triton_store_millis_behind_latest", "stream" => self.exported.stream.clone(), "shard" => shard.to_owned());
        for (shard, millis) in &behind {
            gauge(shard).set(*millis as f64);
        }
        if let Ok(mut b) = self.behind.lock() {
            // A shard no longer read here (its lease moved, it ended) must
            // not go on reporting its last lag: its new reader reports it.
            for (gone, _) in b
                .iter()
                .filter(|(s, _)| !behind.iter().any(|(n, _)| n == s))
            {
                gauge(gone).set(0.0);
            }
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
        self.exported.records.increment(records);
        self.exported.record_bytes.increment(bytes);
        self.exported.invalid.increment(invalid);
    }

    pub(crate) fn spooled(&self, sealed: &Sealed) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let bytes: u64 = sealed.spool_files().map(|p| size(p)).sum();
        let total = self.spool_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.exported.spool_bytes.set(total as f64);
        let pending = self.pending_uploads.fetch_add(1, Ordering::Relaxed) + 1;
        self.exported.pending_uploads.set(pending as f64);
    }

    pub(crate) fn unspooled(&self, path: &Path) {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let _ = self
            .spool_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
        self.exported.spool_bytes.set(self.spool_bytes() as f64);
    }

    /// A sealed archive is uploaded: `archive` when it holds valid records
    /// (not only dead letters), `dead_letters` when it has a dead-letter
    /// archive.
    pub(crate) fn uploaded(&self, bytes: u64, took: Duration, archive: bool, dead_letters: bool) {
        self.archives_uploaded
            .fetch_add(u64::from(archive), Ordering::Relaxed);
        self.exported.archives.increment(u64::from(archive));
        self.exported
            .dead_letters
            .increment(u64::from(dead_letters));
        self.exported.uploaded_bytes.increment(bytes);
        self.exported.upload_seconds.record(took.as_secs_f64());
        let pending = self
            .pending_uploads
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            })
            .map_or(0, |v| v.saturating_sub(1));
        self.exported.pending_uploads.set(pending as f64);
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn checkpointed(&self, took: Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_checkpoint.store(now, Ordering::Relaxed);
        self.exported.last_checkpoint.set(now as f64);
        self.exported.commit_seconds.record(took.as_secs_f64());
    }
}
