//! Counters of an [`Archiver`](super::Archiver), read by metrics exporters.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{gauge, histogram, Histogram};

use super::tally::{Level, Tally};
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
    stream: String,
    records_in: Tally,
    bytes_in: Tally,
    invalid_records: Tally,
    archives_uploaded: Tally,
    dead_letters_uploaded: Tally,
    bytes_uploaded: Tally,
    uploads: AtomicU64,
    upload_micros: AtomicU64,
    upload_seconds: Histogram,
    commit_seconds: Histogram,
    /// Unix seconds of the last checkpoint commit (0: none yet).
    last_checkpoint: Level,
    spool_bytes: Level,
    pending_uploads: Level,
    /// The source's last [`behind`](triton_core::source::RecordSource::behind)
    /// figures.
    behind: Mutex<Vec<(String, i64)>>,
    /// Each shard's last committed sequence number.
    committed: Mutex<HashMap<String, String>>,
    /// Bytes read from each shard.
    shard_bytes: Mutex<HashMap<String, u64>>,
}

impl Default for ArchiverStats {
    /// Statistics exported with an empty `stream` label.
    fn default() -> ArchiverStats {
        ArchiverStats::new("")
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
    describe_counter!(
        "triton_kpl_aggregates_total",
        "KPL aggregated records read (their user records are the records)."
    );
    describe_counter!(
        "triton_kpl_outside_hash_range_total",
        "User records of aggregates whose hash key is outside their shard's range (kept, not dropped)."
    );
    describe_counter!(
        "triton_kpl_damaged_total",
        "Aggregates whose protobuf does not decode, kept whole as one invalid record."
    );
}

impl ArchiverStats {
    /// Statistics of an archiver of `stream`, exported with that label.
    pub fn new(stream: &str) -> ArchiverStats {
        let histogram = |name| histogram!(name, "stream" => stream.to_owned());
        ArchiverStats {
            stream: stream.to_owned(),
            records_in: Tally::new("triton_store_records_total", stream),
            bytes_in: Tally::new("triton_store_record_bytes_total", stream),
            invalid_records: Tally::new("triton_store_invalid_records_total", stream),
            archives_uploaded: Tally::new("triton_store_archives_uploaded_total", stream),
            dead_letters_uploaded: Tally::new(
                "triton_store_dead_letter_archives_uploaded_total",
                stream,
            ),
            bytes_uploaded: Tally::new("triton_store_uploaded_bytes_total", stream),
            uploads: AtomicU64::new(0),
            upload_micros: AtomicU64::new(0),
            upload_seconds: histogram("triton_store_upload_seconds"),
            commit_seconds: histogram("triton_store_commit_seconds"),
            last_checkpoint: Level::new("triton_store_last_checkpoint_timestamp_seconds", stream),
            spool_bytes: Level::new("triton_store_spool_bytes", stream),
            pending_uploads: Level::new("triton_store_pending_uploads", stream),
            behind: Mutex::default(),
            committed: Mutex::default(),
            shard_bytes: Mutex::default(),
        }
    }

    /// Records read from the source.
    pub fn records_in(&self) -> u64 {
        self.records_in.get()
    }

    /// Bytes of the records read.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.get()
    }

    /// Records that were not one MessagePack map.
    pub fn invalid_records(&self) -> u64 {
        self.invalid_records.get()
    }

    /// Archives uploaded (not sidecars or dead-letter archives).
    pub fn archives_uploaded(&self) -> u64 {
        self.archives_uploaded.get()
    }

    /// Bytes uploaded.
    pub fn bytes_uploaded(&self) -> u64 {
        self.bytes_uploaded.get()
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
        Some(self.last_checkpoint.get()).filter(|&t| t > 0)
    }

    /// Bytes of sealed archives waiting in the spool directory.
    pub fn spool_bytes(&self) -> u64 {
        self.spool_bytes.get()
    }

    /// Each sub-source (shard) with how many milliseconds it is behind.
    pub fn behind(&self) -> Vec<(String, i64)> {
        self.behind.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The archiver dropped what it held (a lost lease): nothing is
    /// spooled or waiting for upload any more.
    pub(crate) fn nothing_pending(&self) {
        self.spool_bytes.set(0);
        self.pending_uploads.set(0);
    }

    pub(crate) fn set_behind(&self, behind: Vec<(String, i64)>) {
        let gauge = |shard: &str| gauge!("triton_store_millis_behind_latest", "stream" => self.stream.clone(), "shard" => shard.to_owned());
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
        self.records_in.add(records);
        self.bytes_in.add(bytes);
        self.invalid_records.add(invalid);
    }

    pub(crate) fn spooled(&self, sealed: &Sealed) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let bytes: u64 = sealed.spool_files().map(|p| size(p)).sum();
        self.spool_bytes.add(bytes);
        self.pending_uploads.add(1);
    }

    pub(crate) fn unspooled(&self, path: &Path) {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        self.spool_bytes.sub(bytes);
    }

    /// A sealed archive is uploaded: `archive` when it holds valid records
    /// (not only dead letters), `dead_letters` when it has a dead-letter
    /// archive.
    pub(crate) fn uploaded(&self, bytes: u64, took: Duration, archive: bool, dead_letters: bool) {
        self.archives_uploaded.add(u64::from(archive));
        self.dead_letters_uploaded.add(u64::from(dead_letters));
        self.bytes_uploaded.add(bytes);
        self.pending_uploads.sub(1);
        self.upload_seconds.record(took.as_secs_f64());
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn checkpointed(&self, took: Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_checkpoint.set(now);
        self.commit_seconds.record(took.as_secs_f64());
    }
}
