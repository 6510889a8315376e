//! [`Archiver`]: the pipeline of `triton store`. Records from any
//! [`RecordSource`] go into an archive spooled on local disk; the archive is
//! sealed on a timer or at a size, uploaded, and only then are the source's
//! positions acknowledged and committed (checkpointed), so a crash at any
//! moment loses nothing: what was not committed is read again.
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

mod rotation;
mod spool;
mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use triton_core::retry::Backoff;
use triton_core::source::{RecordSource, SourceError};

pub use self::rotation::rotation_deadline;
use self::spool::Spool;
pub use self::spool::{clean_stale, Sealed, SpoolError, DEAD_LETTER_PREFIX};
pub use self::stats::ArchiverStats;
use crate::error::ErrorKind;
use crate::store::{ArchiveStore, PutOptions};
use triton_core::key::ArchiveKey;

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
    /// (default 1 h); archives are also sealed at every UTC hour boundary.
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
            .finish_non_exhaustive()
    }
}

/// Why the archiver stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// The source failed for good.
    #[error("reading: {0}")]
    Source(SourceError),
    /// The spool directory could not be written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The uploader task ended unexpectedly.
    #[error("the upload task stopped unexpectedly")]
    UploaderGone,
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
    pub fn new(source: S, store: Arc<dyn ArchiveStore>, options: ArchiverOptions) -> Archiver<S> {
        Archiver {
            source,
            store,
            options,
            stats: Arc::new(ArchiverStats::default()),
            last_opened: None,
        }
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
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, ArchiverError> {
        std::fs::create_dir_all(&self.options.spool_dir)
            .map_err(|e| SpoolError::Io(self.options.spool_dir.clone(), e))?;
        let (sealed_tx, sealed_rx) = mpsc::channel(self.options.max_pending_uploads.max(1));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let uploader = tokio::spawn(upload_loop(
            Uploader {
                store: self.store.clone(),
                put: PutOptions {
                    create_only: true,
                    ..self.options.put.clone()
                },
                stream: self.options.stream.clone(),
                client: self.options.client.clone(),
                stats: self.stats.clone(),
            },
            sealed_rx,
            done_tx,
        ));
        let mut pending = 0usize;
        let mut summary = Summary::default();
        let mut current: Option<(Spool, tokio::time::Instant)> = None;
        let mut failure = None;
        tokio::pin!(shutdown);
        loop {
            let deadline = current.as_ref().map(|(_, d)| *d);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = done_rx.recv() => {
                    pending -= 1;
                    self.checkpoint(done, &mut summary).await;
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    if let Some((spool, _)) = current.take() {
                        pending += self.seal(spool, &sealed_tx).await?;
                    }
                }
                batch = self.source.next_batch(self.options.batch) => {
                    let batch = match batch {
                        Ok(Some(batch)) => batch,
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(ArchiverError::Source(e));
                            break;
                        }
                    };
                    let now = (self.options.clock)();
                    let (spool, _) = match &mut current {
                        Some(c) => c,
                        None => current.insert(self.open(now)?),
                    };
                    for r in &batch {
                        self.stats.record_in(r.data.len());
                        if !spool.write(r, now)? {
                            self.stats.invalid();
                        }
                    }
                    self.stats.set_behind(self.source.behind());
                    if spool.size() >= self.options.max_file_size {
                        if let Some((spool, _)) = current.take() {
                            pending += self.seal(spool, &sealed_tx).await?;
                        }
                    }
                }
            }
        }
        // Stopping: the current archive is uploaded and checkpointed too.
        if let Some((spool, _)) = current.take() {
            pending += self.seal(spool, &sealed_tx).await?;
        }
        drop(sealed_tx);
        while pending > 0 {
            let Some(done) = done_rx.recv().await else {
                return Err(ArchiverError::UploaderGone);
            };
            pending -= 1;
            self.checkpoint(done, &mut summary).await;
        }
        let _ = uploader.await;
        match failure {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    fn open(&mut self, now: SystemTime) -> Result<(Spool, tokio::time::Instant), ArchiverError> {
        // Keys hold whole seconds: two archives opened in one second (size
        // rotation) get consecutive ones rather than the same key.
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let secs = self
            .last_opened
            .map_or(now_secs, |last| now_secs.max(last + 1));
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

    /// Seals `spool` and queues it for upload (waiting while the queue is
    /// full); returns how many archives were queued (0 or 1).
    async fn seal(
        &self,
        spool: Spool,
        sealed_tx: &mpsc::Sender<Sealed>,
    ) -> Result<usize, ArchiverError> {
        let Some(sealed) = spool.seal()? else {
            return Ok(0);
        };
        self.stats.spooled(&sealed);
        tracing::debug!(
            key = sealed.key,
            records = sealed.records,
            "sealed an archive"
        );
        if sealed_tx.capacity() == 0 {
            tracing::info!("uploads are behind; reading pauses until one finishes");
        }
        sealed_tx
            .send(sealed)
            .await
            .map_err(|_| ArchiverError::UploaderGone)?;
        Ok(1)
    }

    /// After an upload: acknowledge each shard's last position in the
    /// archive and commit, retrying until the checkpoint store answers;
    /// then the spool files go.
    async fn checkpoint(&mut self, done: Sealed, summary: &mut Summary) {
        for (shard, position) in &done.positions {
            if let Err(e) = self.source.ack(shard, position).await {
                // Only a bug can get here: positions come from the source.
                tracing::error!(error = %e, "acknowledgement refused");
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while let Err(e) = self.source.commit().await {
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "waiting for the checkpoint store");
            tokio::time::sleep(delay).await;
        }
        self.stats.checkpointed();
        summary.archives += 1;
        summary.records += done.records;
        summary.invalid += done.invalid.as_ref().map_or(0, |i| i.2);
        for path in std::iter::once(&done.path).chain(done.invalid.as_ref().map(|i| &i.1)) {
            self.stats.unspooled(path);
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a spool file");
            }
        }
        tracing::info!(
            key = done.key,
            records = done.records,
            "archive uploaded and checkpointed"
        );
    }
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
}

/// Uploads sealed archives one after another (so checkpoints advance in
/// order), retrying without end: the process stays up and says what it is
/// waiting for.
async fn upload_loop(
    up: Uploader,
    mut sealed_rx: mpsc::Receiver<Sealed>,
    done_tx: mpsc::UnboundedSender<Sealed>,
) {
    while let Some(mut sealed) = sealed_rx.recv().await {
        let started = Instant::now();
        let mut bytes = up.upload_archive(&mut sealed).await;
        if let Some((key, path, _)) = &mut sealed.invalid {
            *key = format!("{DEAD_LETTER_PREFIX}{}", sealed.key);
            bytes += up.upload(key, path).await;
        }
        let archives = 1 + u64::from(sealed.invalid.is_some());
        up.stats.uploaded(bytes, started.elapsed(), archives);
        if done_tx.send(sealed).is_err() {
            return;
        }
    }
}

impl Uploader {
    /// Uploads the archive create-only. A key that exists already (another
    /// process wrote an archive in the same second, e.g. a store restarted
    /// at once) is never overwritten: the archive takes the next second.
    async fn upload_archive(&self, sealed: &mut Sealed) -> u64 {
        loop {
            match self.try_upload(&sealed.key, &sealed.path).await {
                Ok(size) => return size,
                Err(_) => {
                    sealed.timestamp += 1;
                    let next = ArchiveKey::new(&self.stream, &self.client, sealed.timestamp)
                        .map(|k| k.to_string());
                    match next {
                        Ok(key) => {
                            tracing::warn!(
                                taken = sealed.key,
                                instead = key,
                                "the archive key exists already; using the next second"
                            );
                            sealed.key = key;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "no free archive key");
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                }
            }
        }
    }

    /// Uploads `path` as `key`, whatever it takes, but create-only.
    async fn upload(&self, key: &str, path: &std::path::Path) -> u64 {
        loop {
            match self.try_upload(key, path).await {
                Ok(size) => return size,
                Err(()) => {
                    tracing::error!(
                        key,
                        "the dead-letter key exists already; retrying in a minute"
                    );
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }
    }

    /// Retries every failure but "already exists" (`Err`).
    async fn try_upload(&self, key: &str, path: &std::path::Path) -> Result<u64, ()> {
        // Capped at 15 s: a store that waits is cheap, and it should notice
        // soon that the outage is over.
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
        loop {
            match self.store.put_file(key, path, &self.put).await {
                Ok(receipt) => return Ok(receipt.size),
                Err(e) if e.kind == ErrorKind::AlreadyExists => return Err(()),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(key, error = %e, retry_in_ms = delay.as_millis() as u64, "waiting for the archive store; the archive stays spooled");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
