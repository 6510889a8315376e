//! The store pipeline's harness: a scripted source (shards of numbered
//! records, logging every ack and commit) and its replay, a local store
//! that logs every upload and can fail or hold uploads, checkpoints that
//! log every intent, and the checks the tests make of what was archived.
//! Included by `tests/archiver.rs` beside `support/mod.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use triton_core::archive::ArchiveReader;
use triton_core::checkpoint::{
    Checkpoint, CheckpointStore, IntentId, IntentStore, MemoryCheckpoints, Result, SavedCheckpoint,
    UploadIntent,
};
use triton_core::source::{
    Position, RecordSource, Replay, SequenceNumber, SequenceRange, SourceError, SourceRecord,
};
use triton_s3::archiver::{recover, Archiver, ArchiverOptions, Metadata, Recovery};
use triton_s3::{ArchiveStore, LocalStore, PutOptions, PutReceipt, StoreError};
use triton_tests::TempDir;

use crate::support::{transient, Hooked, Hooks};

/// What happened, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An object was uploaded holding these (shard, index) records.
    Uploaded(String, Vec<(String, u64)>),
    /// The source committed these per-shard acknowledged indexes.
    Committed(HashMap<String, u64>),
}

pub type Log = Arc<Mutex<Vec<Event>>>;

pub fn seq(i: u64) -> Position {
    Position::Sequence(SequenceNumber::new(format!("{}", 1_000_000 + i)).unwrap())
}

pub fn index_of(p: &Position) -> u64 {
    match p {
        Position::Sequence(s) => s.as_str().parse::<u64>().unwrap() - 1_000_000,
        Position::Index(i) => *i,
        other => panic!("no user records here: {other}"),
    }
}

/// Raw MessagePack `{"shard": s, "i": i}`.
pub fn record(shard: &str, i: u64) -> Vec<u8> {
    let mut out = vec![0x82, 0xa5];
    out.extend_from_slice(b"shard");
    out.push(0xa0 | shard.len() as u8);
    out.extend_from_slice(shard.as_bytes());
    out.extend_from_slice(&[0xa1, b'i', 0xcf]);
    out.extend_from_slice(&i.to_be_bytes());
    out
}

/// Delivers `batches`, then either ends or (live) waits forever.
pub struct Script {
    pub batches: std::collections::VecDeque<Vec<SourceRecord>>,
    /// Pause before each batch.
    pub gap: Duration,
    /// When the next batch is due (kept across cancelled calls: the
    /// archiver drops a waiting call on its timers, and a source must not
    /// start its wait again).
    due: Option<tokio::time::Instant>,
    pub live: bool,
    /// Fail (for good) once the batches are delivered.
    pub fail_at_end: bool,
    acked: HashMap<String, u64>,
    log: Log,
    pub delivered: Arc<AtomicUsize>,
}

impl Script {
    /// `n` records per shard over `shards` shards, interleaved, in batches
    /// of `batch`; every `bad`-th record (if any) is not MessagePack.
    pub fn new(shards: usize, n: u64, batch: usize, bad: Option<u64>, log: Log) -> Script {
        let mut all = Vec::new();
        for i in 0..n {
            for s in 0..shards {
                let shard = format!("shard-{s}");
                let data = match bad {
                    Some(b) if i % b == b - 1 => vec![0xc1, i as u8],
                    _ => record(&shard, i),
                };
                all.push(SourceRecord {
                    source: shard.as_str().into(),
                    position: seq(i),
                    data,
                    meta: Default::default(),
                });
            }
        }
        Script {
            batches: all.chunks(batch).map(<[SourceRecord]>::to_vec).collect(),
            gap: Duration::ZERO,
            due: None,
            live: false,
            fail_at_end: false,
            acked: HashMap::new(),
            log,
            delivered: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl RecordSource for Script {
    async fn next_batch(&mut self, _max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        if self.delivered.load(Ordering::SeqCst) > 0 {
            let due = *self
                .due
                .get_or_insert_with(|| tokio::time::Instant::now() + self.gap);
            tokio::time::sleep_until(due).await;
        }
        self.due = None;
        match self.batches.pop_front() {
            Some(b) => {
                self.delivered.fetch_add(b.len(), Ordering::SeqCst);
                Ok(Some(b))
            }
            None if self.live => std::future::pending().await,
            None if self.fail_at_end => Err(SourceError::unavailable(
                "the test source",
                "gone (injected)",
            )),
            None => Ok(None),
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        self.acked.insert(source.to_string(), index_of(position));
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Committed(self.acked.clone()));
        Ok(())
    }
}

/// A local store that logs what each upload holds, and can refuse the
/// first uploads or hold them until released.
#[derive(Debug)]
pub struct Watched {
    inner: LocalStore,
    log: Log,
    pub fail_first: AtomicUsize,
    pub hold: AtomicBool,
    pub lose_answer: AtomicBool,
}

/// [`Watched`] as a store.
pub type WatchedStore = Hooked<Watched>;

impl Watched {
    pub fn new(dir: &Path, log: Log) -> Arc<WatchedStore> {
        Arc::new(Hooked(Watched {
            inner: LocalStore::new(dir),
            log,
            fail_first: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
            lose_answer: AtomicBool::new(false),
        }))
    }
}

/// The (shard, index) of every record in an archive file; dead-letter
/// records give theirs through `sequence_number`.
pub fn contents(path: &Path) -> Vec<(String, u64)> {
    let mut reader = ArchiveReader::new(std::fs::File::open(path).unwrap());
    let mut all = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        let shard = r.get("shard").and_then(|v| v.as_str()).unwrap().to_string();
        let i = match r.get("sequence_number").and_then(|v| v.as_str()) {
            Some(seq) => seq.parse::<u64>().unwrap() - 1_000_000,
            None => r.get("i").and_then(|v| v.as_i64()).unwrap() as u64,
        };
        all.push((shard, i));
    }
    all
}

#[async_trait]
impl Hooks for Watched {
    fn inner(&self) -> &dyn ArchiveStore {
        &self.inner
    }

    async fn before_put(&self, key: &str) -> Result<(), StoreError> {
        while self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(transient("PutObject", key, "injected outage"));
        }
        Ok(())
    }

    fn after_put(
        &self,
        key: &str,
        path: &Path,
        receipt: PutReceipt,
    ) -> Result<PutReceipt, StoreError> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Uploaded(key.to_string(), contents(path)));
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            // Stored, but the caller never hears of it.
            return Err(transient(
                "PutObject",
                key,
                "connection reset after the upload (injected)",
            ));
        }
        Ok(receipt)
    }
}

/// A scratch directory, an event log and a watched store in it.
pub fn setup(tag: &str) -> (TempDir, Log, Arc<WatchedStore>) {
    let tmp = TempDir::new(tag);
    let log: Log = Arc::default();
    let store = Watched::new(&tmp.path().join("bucket"), log.clone());
    (tmp, log, store)
}

/// Runs an archiver until its source ends.
pub async fn run_to_end(
    source: impl RecordSource,
    store: Arc<dyn ArchiveStore>,
    options: ArchiverOptions,
) -> triton_s3::archiver::Summary {
    Archiver::new(source, store, options)
        .run(std::future::pending())
        .await
        .unwrap()
}

pub fn options(dir: &Path) -> ArchiverOptions {
    let mut o = ArchiverOptions::new("events", "store");
    o.spool_dir = dir.join("spool");
    o
}

/// A clock that stays at `secs`.
pub fn fixed_clock(secs: u64) -> triton_s3::archiver::Clock {
    Arc::new(move || UNIX_EPOCH + Duration::from_secs(secs))
}

/// A clock one second further at each reading (from 2024-10-30 00:00 UTC),
/// so that size rotation, at most once a second, can seal every batch.
pub fn stepping_clock() -> triton_s3::archiver::Clock {
    let step = Arc::new(AtomicUsize::new(0));
    Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(1_730_246_400 + step.fetch_add(1, Ordering::SeqCst) as u64)
    })
}

/// Every commit names only positions whose records, and every earlier one
/// of the shard, are in uploaded objects.
pub fn assert_commits_follow_uploads(log: &[Event]) {
    let mut uploaded: HashMap<String, std::collections::BTreeSet<u64>> = HashMap::new();
    let mut commits = 0;
    for e in log {
        match e {
            Event::Uploaded(_, held) => {
                for (shard, i) in held {
                    uploaded.entry(shard.clone()).or_default().insert(*i);
                }
            }
            Event::Committed(acked) => {
                commits += 1;
                for (shard, i) in acked {
                    let have = uploaded
                        .get(shard)
                        .map_or(0, |s| s.range(..=*i).count() as u64);
                    assert_eq!(
                        have,
                        i + 1,
                        "checkpoint of {shard} at {i} with only {have} of its records uploaded"
                    );
                }
            }
        }
    }
    assert!(commits > 0, "nothing was committed");
}

/// The day the stepping clock's archives are in, as audit queries it.
pub fn audited_day() -> triton_s3::ArchiveQuery {
    let day = triton_core::time::Date::parse_yyyymmdd("20241030").unwrap();
    triton_s3::ArchiveQuery {
        stream: "events".into(),
        start: day,
        end: day,
        client: Some("store".into()),
    }
}

/// Keys of the archives in `dir` (not dead letters), sorted.
pub fn archive_keys(dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for day in std::fs::read_dir(dir).into_iter().flatten() {
        let day = day.unwrap();
        let name = day.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || !day.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(day.path()).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            if !f.starts_with('.') && f.ends_with(".tri") {
                keys.push(format!("{name}/{f}"));
            }
        }
    }
    keys.sort();
    keys
}

/// The `<key>.metadata` sidecar matches the archive: records, size,
/// SHA-256 and each shard's first and last sequence number.
pub fn check_sidecar(bucket: &Path, key: &str) {
    use sha2::{Digest, Sha256};
    let archive = std::fs::read(bucket.join(key)).unwrap();
    let text = std::fs::read(bucket.join(format!("{key}.metadata"))).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let sha: String = Sha256::digest(&archive)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(json["sha256"], sha.as_str(), "{key}");
    assert_eq!(json["size"], archive.len() as u64, "{key}");
    assert_eq!(json["archive"], key);
    assert_eq!(
        json["format_version"],
        triton_s3::archiver::METADATA_FORMAT_VERSION
    );
    let mut held = contents(&bucket.join(key));
    assert_eq!(json["record_count"], held.len() as u64, "{key}");
    // Ranges include the dead letters.
    if let Some(dead) = json["invalid_archive"].as_str() {
        held.extend(contents(&bucket.join(dead)));
    }
    let mut ranges: HashMap<String, (u64, u64)> = HashMap::new();
    for (shard, i) in held {
        let r = ranges.entry(shard).or_insert((i, i));
        r.0 = r.0.min(i);
        r.1 = r.1.max(i);
    }
    let shards = json["shards"].as_object().unwrap();
    assert_eq!(shards.len(), ranges.len(), "{key}");
    for (shard, (min, max)) in ranges {
        let s = &shards[&shard];
        assert_eq!(
            s["min_sequence_number"],
            (1_000_000 + min).to_string(),
            "{key} {shard}"
        );
        assert_eq!(
            s["max_sequence_number"],
            (1_000_000 + max).to_string(),
            "{key} {shard}"
        );
    }
}

/// Reads ranges again from the records a [`Script`] delivers, except the
/// first `expired` records of each shard (gone past the retention period).
pub struct ScriptReplay {
    pub all: Vec<SourceRecord>,
    pub expired: usize,
}

#[async_trait]
impl Replay for ScriptReplay {
    async fn replay(
        &self,
        ranges: Vec<SequenceRange>,
    ) -> Result<Box<dyn RecordSource>, SourceError> {
        let mut batches = std::collections::VecDeque::new();
        for range in ranges {
            let held: Vec<SourceRecord> = self
                .all
                .iter()
                .filter(|r| *r.source == range.shard)
                .skip(self.expired)
                .filter(|r| matches!(&r.position, Position::Sequence(s) if range.contains(s)))
                .cloned()
                .collect();
            batches.extend(held.chunks(7).map(<[SourceRecord]>::to_vec));
        }
        let mut source = Script::new(0, 0, 1, None, Log::default());
        source.batches = batches;
        Ok(Box::new(source))
    }
}

/// Runs an exactly-once archiver until it pauses between an upload and its
/// checkpoint commit, and drops it there (a crash). Returns the database
/// with the pending intents and every record the source had.
pub async fn crash_before_commit(
    tmp: &Path,
    store: Arc<WatchedStore>,
    bad: Option<u64>,
) -> (Arc<MemoryCheckpoints>, Vec<SourceRecord>) {
    let db = Arc::new(MemoryCheckpoints::new());
    let source = Script::new(2, 400, 100, bad, Log::default());
    let all: Vec<SourceRecord> = source.batches.iter().flatten().cloned().collect();
    let mut o = options(tmp);
    o.max_file_size = 2 << 10;
    o.clock = stepping_clock();
    o.intents = Some(db.clone());
    assert!(
        o.pause_before_commit(Duration::from_secs(3600)),
        "built without test-hooks"
    );
    let run = Archiver::new(source, store.clone() as Arc<dyn ArchiveStore>, o)
        .run(std::future::pending());
    let stopped = tokio::time::timeout(Duration::from_secs(2), run).await;
    assert!(stopped.is_err(), "the run ended instead of pausing");
    (db, all)
}

fn recovery_options(tmp: &Path, db: &Arc<MemoryCheckpoints>) -> ArchiverOptions {
    let mut o = options(tmp);
    o.intents = Some(db.clone());
    o
}

/// Recovers the uploads whose intents `db` holds, reading the stream
/// again through `replay`.
pub async fn recover_pending(
    tmp: &Path,
    store: Arc<WatchedStore>,
    db: &Arc<MemoryCheckpoints>,
    replay: &ScriptReplay,
) -> Recovery {
    recover(store, db.clone(), replay, &recovery_options(tmp, db))
        .await
        .unwrap()
}

/// What another process wrote, where a test puts it with
/// [`put_someone_elses`].
pub const SOMEONE_ELSES: &[u8] = b"someone else's";

/// Another process's object at `key`.
pub async fn put_someone_elses(store: &WatchedStore, key: &str) {
    store
        .put_bytes(key, SOMEONE_ELSES.to_vec(), &PutOptions::default())
        .await
        .unwrap();
}

/// Checkpoints in memory, logging every intent recorded: (key, its shard
/// ranges).
#[derive(Debug, Default)]
pub struct IntentLog {
    pub inner: MemoryCheckpoints,
    pub recorded: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl CheckpointStore for IntentLog {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>> {
        self.inner.last(client, stream, shard).await
    }
    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        self.inner.save_many(checkpoints).await
    }
    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>> {
        self.inner.list(client).await
    }
}

#[async_trait]
impl IntentStore for IntentLog {
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()> {
        let m = Metadata::parse(intent.document.as_bytes()).unwrap();
        self.recorded
            .lock()
            .unwrap()
            .push((intent.key.clone(), format!("{:?}", m.shards)));
        self.inner.record_intent(intent, replaces).await
    }
    async fn complete_intent(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        self.inner.complete_intent(intent, checkpoints).await
    }
    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>> {
        self.inner.intents(client, stream).await
    }
    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>> {
        self.inner.checkpoint_archives(client, stream).await
    }
}
