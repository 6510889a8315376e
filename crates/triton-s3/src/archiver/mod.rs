//! [`Archiver`]: the pipeline of `triton store`. Records from any
//! [`RecordSource`] go into an archive spooled on local disk; the archive is
//! sealed on a timer or at a size, uploaded, and only then are the source's
//! positions acknowledged and committed (checkpointed), so a crash at any
//! moment loses nothing: what was not committed is read again. With upload
//! intents ([`ArchiverOptions::intents`]) nothing is archived twice either:
//! each upload is recorded before it starts and completed with the
//! checkpoints in one transaction, and [`recover`] finishes what a crash
//! interrupted.
//!
//! ```text
//!  source ─► validate ─► spool file ─(seal)─► uploader task ─► store
//!     ▲                     └► dead-letter spool        │
//!     └──────── ack + commit (checkpoints) ◄── uploaded ┘
//! ```
//!
//! Reading goes on while earlier archives upload; at most
//! `max_pending_uploads` sealed archives wait, after which reading pauses
//! until one is uploaded (backpressure), so memory and spool stay bounded.

pub mod fleet;
mod fuse;
mod metadata;
mod recovery;
mod retry;
mod rotation;
mod spool;
mod stats;
mod tally;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use triton_core::error::Report;

use tokio::sync::mpsc;
use triton_core::checkpoint::{Checkpoint, CheckpointError, IntentId, IntentStore, UploadIntent};
use triton_core::retry::policies;
use triton_core::source::{Position, RecordSource, SourceError, SourceRecord};

pub use self::fuse::Fuse;
pub use self::metadata::{Metadata, MovedFrom, ShardRange, METADATA_FORMAT_VERSION};
pub(crate) use self::recovery::{not_read_again, read_again, ReadAgainError};
pub use self::recovery::{recover, recover_intents, LostRecords, Recovery, RecoveryError};
use self::retry::{refused, until_ok, until_ok_or, Waiting, Watch};
pub use self::rotation::rotation_deadline;
pub(crate) use self::spool::sha256_hex;
use self::spool::Spool;
pub use self::spool::{clean_stale, Sealed, SpoolError, DEAD_LETTER_PREFIX};
pub use self::stats::{describe_metrics, ArchiverStats};
use crate::error::{ErrorKind, StoreError};
use crate::store::{ArchiveStore, PutOptions};
use triton_core::key::ArchiveKey;

/// Suffix of the metadata sidecar uploaded beside each archive.
pub const METADATA_SUFFIX: &str = ".metadata";

/// How often the archiver looks whether a shard of the current archive has
/// ended (the source says so through `RecordSource::ended`).
const END_CHECK: Duration = Duration::from_secs(1);

/// The clock archives are opened and rotated by (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How an [`Archiver`] names, rotates and uploads archives.
#[derive(Clone)]
pub struct ArchiverOptions {
    /// The real stream name, for archive keys.
    pub stream: String,
    /// The client name, for archive keys (and the source's checkpoints).
    pub client: String,
    /// Seal an archive this long after it was opened at the latest
    /// (default 1 h, at least 1 s); archives are also sealed at every UTC
    /// hour boundary.
    pub max_file_age: Duration,
    /// Seal an archive when it reaches this size (default 1 GiB).
    pub max_file_size: u64,
    /// Where archives are written before upload.
    pub spool_dir: PathBuf,
    /// Sealed archives that may wait for upload before reading pauses
    /// (default 2).
    pub max_pending_uploads: usize,
    /// Records asked of the source at a time (default 10,000).
    pub batch: usize,
    /// Options of every upload (always create-only: an archive never
    /// replaces another; on a clash it takes the next second's key).
    pub put: PutOptions,
    /// The time.
    pub clock: Clock,
    /// Exactly-once: record an upload intent in this database before each
    /// upload, and afterwards save the checkpoints and delete the intent
    /// in one transaction (instead of the source's `commit`); [`recover`]
    /// finishes what a crash left. `None`: at-least-once.
    pub intents: Option<Arc<dyn IntentStore>>,
    /// Trips when the leases this archiver works under are lost (a fleet
    /// worker's): then it stops at once, uploading and committing nothing
    /// more, and drops what it read but did not commit. `None`: never.
    pub fuse: Option<Fuse>,
    /// Test hook (feature `test-hooks`): see
    /// [`pause_before_commit`](ArchiverOptions::pause_before_commit).
    #[cfg(feature = "test-hooks")]
    pause_before_commit: Duration,
}

impl ArchiverOptions {
    /// Defaults for `stream` and `client`, spooling in the system's
    /// temporary directory.
    pub fn new(stream: impl Into<String>, client: impl Into<String>) -> ArchiverOptions {
        ArchiverOptions {
            stream: stream.into(),
            client: client.into(),
            max_file_age: Duration::from_secs(3600),
            max_file_size: 1 << 30,
            spool_dir: std::env::temp_dir().join("triton-spool"),
            max_pending_uploads: 2,
            batch: 10_000,
            put: PutOptions::default(),
            clock: Arc::new(SystemTime::now),
            intents: None,
            fuse: None,
            #[cfg(feature = "test-hooks")]
            pause_before_commit: Duration::ZERO,
        }
    }

    /// Test hook: wait `pause` between each upload and its checkpoint
    /// commit, so that a crash test can kill the process there. Only builds
    /// with the `test-hooks` feature (which the tests enable) honour it;
    /// others return false and change nothing, so a release binary never
    /// pauses.
    #[doc(hidden)]
    pub fn pause_before_commit(&mut self, pause: Duration) -> bool {
        #[cfg(feature = "test-hooks")]
        {
            self.pause_before_commit = pause;
            true
        }
        #[cfg(not(feature = "test-hooks"))]
        {
            let _ = pause;
            false
        }
    }
}

impl std::fmt::Debug for ArchiverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiverOptions")
            .field("stream", &self.stream)
            .field("client", &self.client)
            .field("max_file_age", &self.max_file_age)
            .field("max_file_size", &self.max_file_size)
            .field("spool_dir", &self.spool_dir)
            .field("max_pending_uploads", &self.max_pending_uploads)
            .field("exactly_once", &self.intents.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the archiver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiverError {
    /// The source failed for good.
    #[error("reading")]
    Source(#[source] SourceError),
    /// The spool directory could not be written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The uploader task ended unexpectedly.
    #[error("the upload task stopped unexpectedly")]
    UploaderGone,
    /// The leases were lost ([`ArchiverOptions::fuse`] tripped): nothing
    /// more was uploaded or committed.
    #[error("lease lost: {0}")]
    LeaseLost(String),
}

/// What a finished run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Archives uploaded and checkpointed.
    pub archives: u64,
    /// Records in them.
    pub records: u64,
    /// Invalid records kept in dead-letter archives.
    pub invalid: u64,
}

/// Archives a source into a store; see the module documentation.
pub struct Archiver<S> {
    source: S,
    store: Arc<dyn ArchiveStore>,
    options: ArchiverOptions,
    stats: Arc<ArchiverStats>,
    /// The timestamp of the last archive opened.
    last_opened: Option<u64>,
}

impl<S: RecordSource> Archiver<S> {
    /// An archiver reading `source` (whose `commit` saves checkpoints) into
    /// `store`.
    pub fn new(
        source: S,
        store: Arc<dyn ArchiveStore>,
        mut options: ArchiverOptions,
    ) -> Archiver<S> {
        // Keys hold whole seconds: archives younger than a second would
        // need keys ahead of the clock.
        options.max_file_age = options.max_file_age.max(Duration::from_secs(1));
        let stats = Arc::new(ArchiverStats::new(&options.stream));
        Archiver {
            source,
            store,
            options,
            stats,
            last_opened: None,
        }
    }

    /// Counts into `stats` instead of counters of its own (a fleet
    /// worker's archivers, one per generation, share theirs).
    pub fn with_stats(mut self, stats: Arc<ArchiverStats>) -> Archiver<S> {
        self.stats = stats;
        self
    }

    /// Counters for metrics, updated as the archiver runs.
    pub fn stats(&self) -> Arc<ArchiverStats> {
        self.stats.clone()
    }

    /// The source, e.g. to read its status for metrics.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Runs until `shutdown` completes or the source ends: then the archive
    /// being filled is sealed, every pending archive is uploaded and
    /// checkpointed, and the run returns. Transient failures of the store
    /// or of commits are retried without end (with a log line each time):
    /// data stays spooled, and checkpoints never pass what is not uploaded.
    /// A source or spool failure ends the run the same way, after what was
    /// already sealed is uploaded and checkpointed.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, ArchiverError> {
        self.run_until(shutdown).await
    }

    /// [`run`](Archiver::run), keeping the archiver (and its source) for
    /// the caller to look at afterwards.
    pub async fn run_until(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, ArchiverError> {
        std::fs::create_dir_all(&self.options.spool_dir)
            .map_err(|e| SpoolError::Io(self.options.spool_dir.clone(), e))?;
        let (sealed_tx, sealed_rx) = mpsc::channel(self.options.max_pending_uploads.max(1));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut up = Uploader::new(self.store.clone(), &self.options, self.stats.clone());
        up.chain = Some(Chain::load(&self.options).await);
        let uploader = tokio::spawn(upload_loop(up, sealed_rx, done_tx));
        let mut run = Run {
            current: None,
            pending: 0,
            in_flight: VecDeque::new(),
            summary: Summary::default(),
            sealed_tx,
        };
        let fuse = self.options.fuse.clone();
        let mut failure = None;
        // A shard that ended (split or merge) is done only once its last
        // records are checkpointed; its children wait for that. The archive
        // holding them is sealed soon instead of at its rotation (an hour).
        let mut end_check = tokio::time::interval(END_CHECK);
        end_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            let deadline = run.current.as_ref().map(|(_, d)| *d);
            let step = tokio::select! {
                biased;
                () = &mut shutdown => break,
                why = lost(fuse.as_ref()) => Err(ArchiverError::LeaseLost(why)),
                Some(done) = done_rx.recv() => {
                    run.pending -= 1;
                    run.in_flight.pop_front();
                    self.checkpoint(done, &mut run.summary).await
                }
                () = sleep_until(deadline), if deadline.is_some() => self.seal_current(&mut run).await,
                _ = end_check.tick(), if deadline.is_some() => self.seal_if_a_shard_ended(&mut run).await,
                batch = self.source.next_batch(self.options.batch) => match batch {
                    Ok(Some(batch)) => self.write(&batch, &mut run).await,
                    Ok(None) => break,
                    Err(e) => Err(ArchiverError::Source(e)),
                },
            };
            if let Err(e) = step {
                failure = Some(e);
                break;
            }
        }
        // Stopping: the current archive is uploaded and checkpointed too,
        // unless writing it failed (then its records were not checkpointed
        // and will be read again) or the leases are lost (then nothing more
        // may be uploaded or committed: the next owner reads it all again).
        if let Some(ArchiverError::LeaseLost(why)) = failure {
            return Err(abandon(uploader, run, why, &self.stats).await);
        }
        match &failure {
            Some(ArchiverError::Spool(_)) => {
                if let Some((spool, _)) = run.current.take() {
                    spool.discard();
                }
            }
            _ => {
                if let Err(e) = self.seal_current(&mut run).await {
                    failure.get_or_insert(e);
                }
            }
        }
        let mut pending = run.pending;
        let mut summary = run.summary;
        let (closed_tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut run.sealed_tx, closed_tx));
        while pending > 0 {
            let done = tokio::select! {
                done = done_rx.recv() => done,
                why = lost(fuse.as_ref()) => return Err(abandon(uploader, run, why, &self.stats).await),
            };
            let Some(done) = done else {
                return Err(match fuse.as_ref().and_then(Fuse::tripped) {
                    Some(why) => ArchiverError::LeaseLost(why),
                    None => ArchiverError::UploaderGone,
                });
            };
            pending -= 1;
            run.in_flight.pop_front();
            self.checkpoint(done, &mut summary).await?;
        }
        let _ = uploader.await;
        match failure {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    /// Writes a batch into the current archive (opening one if needed) and
    /// seals it if it reached the size limit.
    async fn write(&mut self, batch: &[SourceRecord], run: &mut Run) -> Result<(), ArchiverError> {
        let now = (self.options.clock)();
        let spool = match &mut run.current {
            Some((spool, _)) => spool,
            None => &mut run.current.insert(self.open(now)?).0,
        };
        let invalid = spool.write_batch(batch, now)?;
        let bytes = batch.iter().map(|r| r.data.len() as u64).sum();
        self.stats.read(batch.len() as u64, bytes, invalid);
        if let Some(first) = batch.first() {
            // A batch comes from one shard.
            self.stats.read_shard(&first.source, bytes);
        }
        self.stats.set_behind(self.source.behind());
        // At most one archive a second: keys hold whole seconds, and must
        // be unique and say when the archive was opened. Until the next
        // second the archive grows past the limit.
        if spool.size() >= self.options.max_file_size && unix_secs(now) > spool.timestamp() {
            self.seal_current(run).await?;
        }
        Ok(())
    }

    fn open(&mut self, now: SystemTime) -> Result<(Spool, tokio::time::Instant), ArchiverError> {
        // Ages are at least a second, so only a clock that went back can
        // reopen within the second of the last archive; its key then takes
        // the next second.
        let secs = match self.last_opened {
            Some(last) => unix_secs(now).max(last + 1),
            None => unix_secs(now),
        };
        self.last_opened = Some(secs);
        let spool = Spool::open(
            &self.options.spool_dir,
            &self.options.stream,
            &self.options.client,
            secs,
        )?;
        let due = rotation_deadline(now, self.options.max_file_age);
        let wait = due.duration_since(now).unwrap_or_default();
        tracing::debug!(opened = ?now, seal_in_ms = wait.as_millis() as u64, "opened an archive");
        Ok((spool, tokio::time::Instant::now() + wait))
    }

    /// Seals the current archive if it holds records of a shard that has
    /// ended, so that the shard's children start (see [`END_CHECK`]).
    async fn seal_if_a_shard_ended(&self, run: &mut Run) -> Result<(), ArchiverError> {
        let Some((spool, _)) = &run.current else {
            return Ok(());
        };
        let Some(ended) = spool.shards().find(|s| self.source.ended(s)) else {
            return Ok(());
        };
        // Keys hold whole seconds: the next archive needs a later one.
        if unix_secs((self.options.clock)()) <= spool.timestamp() {
            return Ok(());
        }
        tracing::info!(
            shard = ended,
            "the shard ended; sealing its last records now, so that its children start"
        );
        self.seal_current(run).await
    }

    /// Seals the current archive, if any, and queues it for upload
    /// (waiting while the queue is full: reading pauses).
    async fn seal_current(&self, run: &mut Run) -> Result<(), ArchiverError> {
        let Some((spool, _)) = run.current.take() else {
            return Ok(());
        };
        let Some(mut sealed) = spool.seal()? else {
            return Ok(());
        };
        // Where each shard's records began in this run and whether the
        // archive holds its last one; the uploader links archives of the
        // same shard to each other (it knows their final keys).
        for (shard, range) in &mut sealed.metadata.shards {
            if let Some(origin) = self.source.origin(shard) {
                range.set_origin(&origin);
            }
            range.shard_end = self.source.ended(shard);
        }
        self.stats.spooled(&sealed);
        tracing::debug!(
            key = sealed.key,
            records = sealed.records,
            "sealed an archive"
        );
        if run.sealed_tx.capacity() == 0 {
            tracing::info!("uploads are behind; reading pauses until one finishes");
        }
        let files: Vec<PathBuf> = sealed.spool_files().cloned().collect();
        run.sealed_tx
            .send(sealed)
            .await
            .map_err(|_| ArchiverError::UploaderGone)?;
        run.pending += 1;
        run.in_flight.push_back(files);
        Ok(())
    }

    /// After an upload: acknowledge each shard's last position in the
    /// archive and commit (with exactly-once, together with deleting the
    /// upload intent), retrying until the checkpoint store answers; then
    /// the spool files go.
    async fn checkpoint(
        &mut self,
        done: Sealed,
        summary: &mut Summary,
    ) -> Result<(), ArchiverError> {
        #[cfg(feature = "test-hooks")]
        if !self.options.pause_before_commit.is_zero() {
            tracing::warn!(
                key = done.key,
                "test hook: pausing between the upload and its checkpoint commit"
            );
            tokio::time::sleep(self.options.pause_before_commit).await;
        }
        for (shard, position) in &done.positions {
            if let Err(e) = self.source.ack(shard, position).await {
                // Only a bug can get here: positions come from the source.
                tracing::error!(error = %Report(&e), "acknowledgement refused");
            }
        }
        let committing = Instant::now();
        match &self.options.intents {
            Some(db) => {
                let checkpoints = checkpoints_of(&self.options, &done.positions);
                complete(&**db, &self.options, &done.key, &checkpoints)
                    .await
                    .map_err(ArchiverError::LeaseLost)?;
            }
            None => {
                // (A loop of its own: the attempt borrows the source mutably.)
                let mut backoff = policies::CHECKPOINT_DATABASE.backoff();
                let mut watch =
                    Watch::new("checkpoint_database", "waiting for the checkpoint store");
                while let Err(e) = self.source.commit().await {
                    if let Some(why) = self.options.fuse.as_ref().and_then(Fuse::tripped) {
                        return Err(ArchiverError::LeaseLost(why));
                    }
                    watch.retrying();
                    let Some(delay) = backoff.next_delay() else {
                        return Err(ArchiverError::Source(e));
                    };
                    tracing::warn!(key = done.key, error = %Report(&e), retry_in_ms = delay.as_millis() as u64, "waiting for the checkpoint store");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        for (shard, position) in &done.positions {
            if let Position::Sequence(seq) = position {
                self.stats.committed(shard, seq.as_str());
            }
        }
        self.stats.checkpointed(committing.elapsed());
        summary.archives += 1;
        summary.records += done.records;
        summary.invalid += done.invalid.as_ref().map_or(0, |i| i.2);
        for path in done.spool_files() {
            self.stats.unspooled(path);
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %Report(&e), "could not remove a spool file");
            }
        }
        tracing::info!(
            key = done.key,
            records = done.records,
            "archive uploaded and checkpointed"
        );
        Ok(())
    }
}

/// The checkpoints an archive's positions move to (Kinesis sequence
/// numbers; other positions are not checkpointed).
fn checkpoints_of(
    options: &ArchiverOptions,
    positions: &[(Arc<str>, Position)],
) -> Vec<Checkpoint> {
    positions
        .iter()
        .filter_map(|(shard, position)| match position {
            Position::Sequence(seq) => Some(Checkpoint {
                client: options.client.clone(),
                stream: options.stream.clone(),
                shard: shard.to_string(),
                sequence: seq.clone(),
            }),
            // Archives never end inside an aggregate (batches do not).
            Position::SubSequence { .. } | Position::Index(_) => None,
        })
        .collect()
}

/// Saves `checkpoints` and deletes the intent `key` in one transaction,
/// retrying until the database answers. A fenced database that refuses
/// (the lease is lost) trips the fuse; the error says why.
async fn complete(
    db: &dyn IntentStore,
    options: &ArchiverOptions,
    key: &str,
    checkpoints: &[Checkpoint],
) -> Result<(), String> {
    until_ok_or(
        Waiting::Database,
        "waiting for the checkpoint store",
        key,
        || {
            let intent = IntentId {
                client: &options.client,
                stream: &options.stream,
                key,
            };
            db.complete_intent(intent, checkpoints)
        },
        refused,
    )
    .await
    .map_err(|e| refusal(options.fuse.as_ref(), &e))
}

/// After the leases were lost: stops the uploads and removes every spool
/// file of the run (the next owner reads those records again).
async fn abandon(
    uploader: tokio::task::JoinHandle<()>,
    mut run: Run,
    why: String,
    stats: &ArchiverStats,
) -> ArchiverError {
    uploader.abort();
    let _ = uploader.await;
    if let Some((spool, _)) = run.current.take() {
        spool.discard();
    }
    for path in run.in_flight.iter().flatten() {
        let _ = std::fs::remove_file(path);
    }
    // Archivers run one after another: nothing of this worker's is spooled
    // or waiting now.
    stats.nothing_pending();
    ArchiverError::LeaseLost(why)
}

/// Why a fenced write was refused, after tripping `fuse` with it.
fn refusal(fuse: Option<&Fuse>, e: &CheckpointError) -> String {
    let why = e.to_string();
    if let Some(fuse) = fuse {
        fuse.trip(why.clone());
    }
    why
}

/// Waits until `fuse` trips (never without one).
async fn lost(fuse: Option<&Fuse>) -> String {
    match fuse {
        Some(fuse) => fuse.wait().await,
        None => std::future::pending().await,
    }
}

/// The state of one `run`.
struct Run {
    current: Option<(Spool, tokio::time::Instant)>,
    /// Archives queued or uploading, not yet checkpointed.
    pending: usize,
    /// Their spool files, oldest first (removed if the leases are lost).
    in_flight: VecDeque<Vec<PathBuf>>,
    summary: Summary,
    sealed_tx: mpsc::Sender<Sealed>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What the upload task needs.
struct Uploader {
    store: Arc<dyn ArchiveStore>,
    put: PutOptions,
    stream: String,
    client: String,
    stats: Arc<ArchiverStats>,
    intents: Option<Arc<dyn IntentStore>>,
    fuse: Option<Fuse>,
    /// The key second of the last archive uploaded: the next one goes after
    /// it (it may have moved onto the next one's second), so that no two
    /// intents ever share a key.
    last_timestamp: Option<u64>,
    /// Links each archive to the one before of each shard (in a run; not
    /// in recovery, whose intents carry their links already).
    chain: Option<Chain>,
}

/// What the uploader knows to link archives: the last archived record of
/// each shard and its archive, from this run and from the checkpoint
/// database (the archives holding the checkpoints reading resumed from).
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// Shard -> (last sequence number archived, final archive key).
    last: HashMap<String, (String, String)>,
    /// Shard -> the archive holding its checkpoint, as the database says.
    checkpoint_archives: HashMap<String, String>,
    /// The database, for the checkpoints of parents archived by an earlier
    /// run.
    db: Option<Arc<dyn IntentStore>>,
    client: String,
    stream: String,
}

impl Chain {
    /// Reads the archives of the checkpoints (exactly-once runs keep them).
    async fn load(options: &ArchiverOptions) -> Chain {
        let mut chain = Chain {
            db: options.intents.clone(),
            client: options.client.clone(),
            stream: options.stream.clone(),
            ..Chain::default()
        };
        if let Some(db) = &options.intents {
            let rows = until_ok(
                Waiting::Database,
                "waiting for the checkpoint store to list the archives of the checkpoints",
                "",
                || db.checkpoint_archives(&options.client, &options.stream),
            )
            .await;
            chain.checkpoint_archives = rows.into_iter().collect();
        }
        chain
    }

    /// Fills in the links of `metadata`: each shard continues from the
    /// last archive of it in this run, else from the archive of the
    /// checkpoint reading resumed from; a child names where its parents
    /// ended.
    async fn link(&self, metadata: &mut Metadata) {
        for (shard, range) in &mut metadata.shards {
            if let Some((seq, key)) = self.last.get(shard) {
                range.after = Some(seq.clone());
                range.after_archive = Some(key.clone());
                range.start = None;
                range.start_time = None;
                range.parents.clear();
                continue;
            }
            if range.after.is_some() && range.after_archive.is_none() {
                range.after_archive = self.checkpoint_archives.get(shard).cloned();
            }
            for parent in &mut range.parents {
                if let Some((seq, key)) = self.last.get(&parent.shard) {
                    parent.last_sequence_number = Some(seq.clone());
                    parent.archive = Some(key.clone());
                    continue;
                }
                parent.archive = self.checkpoint_archives.get(&parent.shard).cloned();
                if let Some(db) = &self.db {
                    let last = until_ok(
                        Waiting::Database,
                        "waiting for the checkpoint store to read a parent shard's checkpoint",
                        &parent.shard,
                        || db.last(&self.client, &self.stream, &parent.shard),
                    )
                    .await;
                    parent.last_sequence_number = last.map(|s| s.to_string());
                }
            }
        }
    }

    /// Notes an uploaded archive: later archives of its shards link to it.
    fn uploaded(&mut self, key: &str, metadata: &Metadata) {
        for (shard, range) in &metadata.shards {
            self.last.insert(
                shard.clone(),
                (range.max_sequence_number.clone(), key.to_owned()),
            );
        }
    }
}

/// Uploads sealed archives one after another (so checkpoints advance in
/// order), retrying without end: the process stays up and says what it is
/// waiting for.
async fn upload_loop(
    mut up: Uploader,
    mut sealed_rx: mpsc::Receiver<Sealed>,
    done_tx: mpsc::UnboundedSender<Sealed>,
) {
    while let Some(mut sealed) = sealed_rx.recv().await {
        let started = Instant::now();
        // Lost leases: nothing more is uploaded (the fuse has tripped and
        // the archiver stops).
        let Ok((bytes, _objects)) = up.upload_sealed(&mut sealed).await else {
            return;
        };
        let archive = sealed.metadata.archive.is_some();
        up.stats
            .uploaded(bytes, started.elapsed(), archive, sealed.invalid.is_some());
        if done_tx.send(sealed).is_err() {
            return;
        }
    }
}

impl Uploader {
    fn new(
        store: Arc<dyn ArchiveStore>,
        options: &ArchiverOptions,
        stats: Arc<ArchiverStats>,
    ) -> Uploader {
        Uploader {
            store,
            put: PutOptions {
                create_only: true,
                ..options.put.clone()
            },
            stream: options.stream.clone(),
            client: options.client.clone(),
            stats,
            intents: options.intents.clone(),
            fuse: options.fuse.clone(),
            last_timestamp: None,
            chain: None,
        }
    }

    /// Why the leases are lost, if they are: then nothing more is uploaded.
    fn lost(&self) -> Result<(), String> {
        match self.fuse.as_ref().and_then(Fuse::tripped) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// With exactly-once, records what is about to be uploaded (replacing
    /// the intent of the key the archive moved from), retrying until the
    /// database answers: nothing is uploaded without an intent. Refused
    /// when the key is another worker's upload ([`Refusal::Taken`]) or the
    /// leases are lost ([`Refusal::Lost`], and the fuse trips).
    async fn record_intent(&self, sealed: &Sealed, replaces: Option<&str>) -> Result<(), Refusal> {
        let Some(db) = &self.intents else {
            return Ok(());
        };
        let intent = UploadIntent {
            client: self.client.clone(),
            stream: self.stream.clone(),
            key: sealed.key.clone(),
            document: String::from_utf8_lossy(&sealed.metadata.to_json()).into_owned(),
        };
        match until_ok_or(
            Waiting::Database,
            "waiting for the checkpoint store to record the upload intent",
            &sealed.key,
            || db.record_intent(&intent, replaces),
            refused,
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(CheckpointError::KeyTaken { .. }) => Err(Refusal::Taken),
            Err(e) => Err(Refusal::Lost(refusal(self.fuse.as_ref(), &e))),
        }
    }

    /// Records the intent of `sealed`, moving it on to the next second for
    /// as long as its key is another worker's upload.
    async fn record_moving(
        &self,
        sealed: &mut Sealed,
        replaces: Option<String>,
    ) -> Result<(), String> {
        let mut replaces = replaces;
        loop {
            match self.record_intent(sealed, replaces.as_deref()).await {
                Ok(()) => return Ok(()),
                Err(Refusal::Lost(why)) => return Err(why),
                Err(Refusal::Taken) => {
                    let taken = sealed.key.clone();
                    self.move_to(sealed, sealed.timestamp + 1);
                    tracing::info!(
                        taken,
                        instead = sealed.key,
                        "another worker is uploading under the key; using the next second"
                    );
                    // Ours, if one was recorded, moves along; another's
                    // stays (the database deletes only ours).
                    replaces.get_or_insert(taken);
                }
            }
        }
    }

    /// Uploads the archive (if `sealed.path` is set) and its dead-letter
    /// archive (if `sealed.invalid` is set), create-only, then the sidecar.
    /// A key that holds another object (another process wrote an archive
    /// in the same second) is never overwritten: the archive takes the next
    /// second, and so does its dead-letter archive. Once the archive is up,
    /// only the dead-letter key moves (its records name their shard and
    /// sequence number, so they need not pair with the archive's key).
    /// Returns the bytes and the number of objects uploaded.
    async fn upload_sealed(&mut self, sealed: &mut Sealed) -> Result<(u64, u64), String> {
        // (In recovery the archive's key already names an intent.)
        let mut moved_from = None;
        if let Some(last) = self.last_timestamp.filter(|&t| t >= sealed.timestamp) {
            moved_from = Some(sealed.key.clone());
            self.move_to(sealed, last + 1);
        }
        if let Some(chain) = &self.chain {
            chain.link(&mut sealed.metadata).await;
        }
        self.record_moving(sealed, moved_from).await?;
        let mut bytes = 0;
        let mut objects = 0;
        if let Some(path) = sealed.path.clone() {
            loop {
                self.lost()?;
                let reason = match self.upload(&sealed.key, &path).await {
                    Uploaded::Done(size) => {
                        bytes += size;
                        objects += 1;
                        break;
                    }
                    Uploaded::Taken(reason) => reason,
                };
                let taken = sealed.key.clone();
                self.move_to(sealed, sealed.timestamp + 1);
                tracing::warn!(
                    taken,
                    instead = sealed.key,
                    reason,
                    "the archive key is taken; using the next second"
                );
                // The sidecar says why, so that audit tells the object at
                // the taken key from a damaged archive of ours.
                sealed.metadata.moved_from.push(MovedFrom {
                    key: taken.clone(),
                    reason,
                });
                self.record_moving(sealed, Some(taken)).await?;
            }
        }
        self.last_timestamp = Some(sealed.timestamp);
        if let Some((dead, path, _)) = sealed.invalid.clone() {
            let mut dead = dead;
            let mut timestamp = sealed.timestamp;
            loop {
                self.lost()?;
                if let Uploaded::Done(size) = self.upload(&dead, &path).await {
                    bytes += size;
                    objects += 1;
                    break;
                }
                timestamp += 1;
                let key = format!("{DEAD_LETTER_PREFIX}{}", self.key_at(timestamp));
                tracing::warn!(taken = %dead, instead = key, "the dead-letter key is taken; using the next second");
                dead = key;
                if let Some(invalid) = &mut sealed.invalid {
                    invalid.0 = dead.clone();
                }
                sealed.metadata.invalid_archive = Some(dead.clone());
                if let Err(Refusal::Lost(why)) = self.record_intent(sealed, None).await {
                    return Err(why);
                }
            }
        }
        // Also when every record was invalid (no archive, `archive` is
        // null): the chain goes through this key, and audit checks its
        // dead letters by it.
        self.lost()?;
        bytes += self.put_sidecar(&sealed.key, &sealed.metadata).await;
        objects += 1;
        if let Some(chain) = &mut self.chain {
            chain.uploaded(&sealed.key, &sealed.metadata);
        }
        Ok((bytes, objects))
    }

    /// Gives the archive (and its dead letters) the key of `timestamp`.
    fn move_to(&self, sealed: &mut Sealed, timestamp: u64) {
        let key = self.key_at(timestamp);
        if let Some((dead, _, _)) = &mut sealed.invalid {
            *dead = format!("{DEAD_LETTER_PREFIX}{key}");
            sealed.metadata.invalid_archive = Some(dead.clone());
        }
        if sealed.metadata.archive.is_some() {
            sealed.metadata.archive = Some(key.clone());
        }
        sealed.timestamp = timestamp;
        sealed.key = key;
    }

    /// Puts the sidecar of the archive `key`, replacing an older one (it is
    /// the archive's own); returns its size.
    async fn put_sidecar(&self, key: &str, metadata: &Metadata) -> u64 {
        let sidecar = format!("{key}{METADATA_SUFFIX}");
        let json = metadata.to_json();
        let replace = PutOptions {
            create_only: false,
            ..self.put.clone()
        };
        until_ok(
            Waiting::Store,
            "waiting for the archive store to take the metadata sidecar",
            &sidecar,
            || self.store.put_bytes(&sidecar, json.clone(), &replace),
        )
        .await;
        json.len() as u64
    }

    /// The archive key for `timestamp`.
    fn key_at(&self, timestamp: u64) -> String {
        // The names were checked when the first key was made; only a
        // timestamp past year 9999 could fail.
        ArchiveKey::new(&self.stream, &self.client, timestamp).map_or_else(
            |_| format!("{}-{}-{timestamp}.tri", self.stream, self.client),
            |k| k.to_string(),
        )
    }

    /// Uploads `path` as `key` create-only, retrying every failure. An
    /// object with the same bytes already there is ours (an earlier attempt
    /// whose answer was lost) and counts as done.
    async fn upload(&self, key: &str, path: &Path) -> Uploaded {
        until_ok(
            Waiting::Store,
            "waiting for the archive store; the archive stays spooled",
            key,
            || async move {
                match self.store.put_file(key, path, &self.put).await {
                    Ok(receipt) => Ok(Uploaded::Done(receipt.size)),
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {
                        if let Some(reason) = other_object(&*self.store, key, path).await? {
                            return Ok(Uploaded::Taken(reason));
                        }
                        tracing::info!(
                            key,
                            "the archive was already uploaded by an earlier attempt"
                        );
                        let size = std::fs::metadata(path).map_or(0, |m| m.len());
                        Ok(Uploaded::Done(size))
                    }
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }
}

/// Why an intent was not recorded.
enum Refusal {
    /// The key is another live worker's upload.
    Taken,
    /// The leases are lost (why).
    Lost(String),
}

/// How a create-only upload ended.
enum Uploaded {
    /// The object is there with these bytes (its size).
    Done(u64),
    /// The key holds another object (why it is not ours).
    Taken(String),
}

/// Why the object at `key` is not the file's bytes, or `None` if it is.
async fn other_object(
    store: &dyn ArchiveStore,
    key: &str,
    path: &Path,
) -> Result<Option<String>, StoreError> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| StoreError::io("read", path.display().to_string(), e))?
        .len();
    Ok(match store.head(key).await? {
        None => {
            return Err(StoreError::new(
                "HeadObject",
                key,
                ErrorKind::Transient,
                "the key was taken, and is free again",
            ))
        }
        Some(info) if info.size != len => Some(format!(
            "it holds another object ({} bytes, not {len})",
            info.size
        )),
        Some(_) if !same_bytes(store, key, path, len).await? => Some(format!(
            "it holds another object (the same size, {len} bytes, other bytes)"
        )),
        Some(_) => None,
    })
}

/// Whether the object at `key`, of the file's size `len`, holds exactly
/// the bytes of the file, compared as both stream (archives can be large).
async fn same_bytes(
    store: &dyn ArchiveStore,
    key: &str,
    path: &Path,
    len: u64,
) -> Result<bool, StoreError> {
    use tokio::io::AsyncReadExt;
    let io = |e| StoreError::io("read", path.display().to_string(), e);
    let mut local = tokio::io::BufReader::with_capacity(
        1 << 20,
        tokio::fs::File::open(path).await.map_err(io)?,
    );
    let mut body = store.get(key, 0).await?;
    let (mut remote, mut mine, mut compared) = (Vec::new(), Vec::new(), 0u64);
    loop {
        remote.clear();
        let n = body.reader.read_into(&mut remote).await?;
        if n == 0 {
            break;
        }
        if compared + n as u64 > len {
            return Ok(false);
        }
        mine.resize(n, 0);
        local.read_exact(&mut mine).await.map_err(io)?;
        if mine != remote {
            return Ok(false);
        }
        compared += n as u64;
    }
    if compared < len {
        // A body that ends early says nothing about the object.
        return Err(StoreError::new(
            "GetObject",
            key,
            ErrorKind::Transient,
            format!("the body ended at byte {compared} of {len}"),
        ));
    }
    Ok(true)
}
