//! [`ArchiveSource`]: the records of a list of archives, read from a store
//! as a [`RecordSource`].
//!
//! ```text
//!  opener task: get(next key) ──► fetch task: stream body ─► Decoder ──batches──► bounded channel ──► next_batch
//! ```
//!
//! One task makes each archive's request while the previous archive is
//! still being decoded, another streams and decodes bodies while the
//! consumer works on earlier batches. Memory is bounded by the channel (a
//! few batches of at most `batch_bytes`), the decoder's buffer of one chunk
//! and one waiting response, whatever the archive sizes.

mod codec;
mod listing;
mod sidecar;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use triton_core::error::Report;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::io::StreamReader;
use triton_core::archive::ArchiveError;
use triton_core::error::SharedError;
use triton_core::retry::{policies, Backoff, Budget};
use triton_core::source::{Acks, Position, RecordSource, SourceError, SourceRecord};

use self::codec::{CodecError, RecordCodec};
pub use self::listing::{
    list_archives, list_from, list_with_sidecars, Archive, ArchiveQuery, FromQuery, ListError,
    Listing,
};
pub use self::sidecar::{read_sidecar, SidecarError};
use crate::archiver::sha256_hex;
use crate::error::{ErrorKind, StoreError};
use crate::store::{ArchiveStore, ObjectBody};
use sha2::{Digest, Sha256};

/// Tuning of an [`ArchiveSource`].
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Most records per batch handed over by the fetch task (default 1,024).
    pub batch_records: usize,
    /// Most record bytes per batch (default 1 MiB).
    pub batch_bytes: usize,
    /// Batches the fetch task may run ahead of the consumer (default 4).
    pub prefetch_batches: usize,
    /// Archives whose requests are made ahead of the one being read, at
    /// once (default 4): the time to each first byte is waited for side by
    /// side instead of in turn. Their bodies wait in their connections (TCP
    /// bounds what is buffered).
    pub archives_ahead: usize,
    /// Times a body that breaks off is fetched again from the byte it
    /// stopped at, per archive (default 5).
    pub max_resumes: u32,
    /// Hash each archive read to its end, for [`ArchiveSource::sha256`]
    /// (default false).
    pub sha256: bool,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            batch_records: 1024,
            batch_bytes: 1 << 20,
            prefetch_batches: 4,
            archives_ahead: 4,
            max_resumes: 5,
            sha256: false,
        }
    }
}

/// How far the fetch task has got (it runs a few batches ahead of what the
/// consumer has received).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadProgress {
    /// Archives read to their end (or skipped as corrupt).
    pub archives_done: u64,
    /// Archives in the list.
    pub archives_total: u64,
    /// Archive bytes fetched.
    pub bytes_read: u64,
    /// Sum of the archive sizes.
    pub bytes_total: u64,
}

#[derive(Debug, Default)]
struct Counters {
    archives_done: AtomicU64,
    bytes_read: AtomicU64,
    /// SHA-256 (hex) of the archives read to their end, by key, with
    /// `ReadOptions::sha256`.
    digests: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

enum Message {
    Batch(Vec<SourceRecord>),
    Error(SourceError),
    /// Every archive was read: the only way a clean end is told apart from
    /// a fetch task that died.
    End,
}

/// Records of archives in the order given (see [`list_archives`]). Positions
/// are record indexes within each archive, and the source id is the object
/// key. Must be created inside a Tokio runtime.
///
/// A corrupt archive gives [`SourceError::Corrupt`] naming the key, the
/// record index and the byte offset, after every record before the damage
/// was delivered; calling `next_batch` again goes on with the next archive.
/// A store that stays unreachable gives [`SourceError::Unavailable`], and
/// every later call returns it again.
#[derive(Debug)]
pub struct ArchiveSource {
    rx: mpsc::Receiver<Message>,
    pending: VecDeque<SourceRecord>,
    acks: Acks,
    counters: Arc<Counters>,
    archives_total: u64,
    bytes_total: u64,
    /// The outage that stopped the fetch task, repeated to later calls.
    failed: Option<(String, SharedError)>,
    /// The fetch task said it read every archive.
    ended: bool,
    /// The opener and fetch tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Batch(b) => write!(f, "Batch({} records)", b.len()),
            Message::Error(e) => write!(f, "Error({e})"),
            Message::End => write!(f, "End"),
        }
    }
}

impl ArchiveSource {
    /// Starts reading `archives` from `store`.
    pub fn new(
        store: Arc<dyn ArchiveStore>,
        archives: Vec<Archive>,
        options: ReadOptions,
    ) -> ArchiveSource {
        let (tx, rx) = mpsc::channel(options.prefetch_batches.max(1));
        let counters = Arc::new(Counters::default());
        let archives_total = archives.len() as u64;
        let bytes_total = archives.iter().map(|a| a.size).sum();
        let (opened_tx, opened_rx) = mpsc::channel(1);
        let opener = tokio::spawn(Fetch::open_all(
            store.clone(),
            archives,
            options.max_resumes,
            options.archives_ahead,
            opened_tx,
        ));
        let fetch = Fetch {
            options,
            tx,
            counters: counters.clone(),
        };
        ArchiveSource {
            rx,
            pending: VecDeque::new(),
            acks: Acks::default(),
            counters,
            archives_total,
            bytes_total,
            failed: None,
            ended: false,
            tasks: vec![
                opener,
                tokio::spawn(fetch.run(archives_total as usize, opened_rx)),
            ],
        }
    }

    /// Stops reading and waits until the background tasks are gone (no
    /// request of theirs is left in flight, e.g. before a runtime shuts
    /// down). Dropping the source stops them too, without waiting.
    pub async fn close(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        drop(self);
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// How far reading has got.
    pub fn progress(&self) -> ReadProgress {
        ReadProgress {
            archives_done: self.counters.archives_done.load(Ordering::Relaxed),
            archives_total: self.archives_total,
            bytes_read: self.counters.bytes_read.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
        }
    }

    /// The SHA-256 (hex) of archive `key`'s bytes, once it was read to its
    /// end (with [`ReadOptions::sha256`]): known for certain once a record
    /// of a later archive, or the end of all of them, has been handed over
    /// (its last batch may be sent before its body is seen to end). `None`
    /// for an archive read only up to damage. Taken: a second call gives
    /// `None`.
    pub fn take_sha256(&self, key: &str) -> Option<String> {
        self.counters
            .digests
            .lock()
            .ok()
            .and_then(|mut d| d.remove(key))
    }

    /// The last acknowledged position of each archive.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&str, &Position)> {
        self.acks.acknowledged()
    }
}

impl Drop for ArchiveSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl RecordSource for ArchiveSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        if self.pending.is_empty() {
            let message = match &self.failed {
                None => self.rx.recv().await,
                Some(_) => None,
            };
            match message {
                Some(Message::Batch(batch)) => self.pending = batch.into(),
                Some(Message::Error(e)) => {
                    let e = match e {
                        SourceError::Unavailable { what, source } => {
                            let source = SharedError::new(source);
                            self.failed = Some((what.clone(), source.clone()));
                            SourceError::unavailable(what, source)
                        }
                        e => e,
                    };
                    return Err(e);
                }
                Some(Message::End) => {
                    self.ended = true;
                    return Ok(None);
                }
                None if self.ended => return Ok(None),
                None => {
                    let (what, source) = self.failed.get_or_insert_with(|| {
                        (
                            "archive reader".to_string(),
                            SharedError::new("the fetch task stopped unexpectedly"),
                        )
                    });
                    return Err(SourceError::unavailable(what.clone(), source.clone()));
                }
            }
        }
        let n = max.clamp(1, self.pending.len());
        let batch: Vec<SourceRecord> = self.pending.drain(..n).collect();
        if let Some(last) = batch.last() {
            self.acks.delivered(last);
        }
        Ok(Some(batch))
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        self.acks.ack(source, position)
    }

    /// Nothing to do: archives are read-only and keep no checkpoints.
    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The fetch task's state.
struct Fetch {
    options: ReadOptions,
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

/// An archive and its opened download.
type Opened = (Archive, Result<Download, StoreError>);

/// Why reading one archive stopped early.
enum Stop {
    /// The consumer is gone.
    Closed,
    /// The archive is damaged; go on with the next.
    Corrupt(SourceError),
    /// The store is unreachable; stop.
    Unavailable(SourceError),
}

impl Fetch {
    /// Makes the archives' requests in order, `ahead` at a time, ahead of
    /// the fetch task.
    async fn open_all(
        store: Arc<dyn ArchiveStore>,
        archives: Vec<Archive>,
        max_resumes: u32,
        ahead: usize,
        opened_tx: mpsc::Sender<Opened>,
    ) {
        let opens = futures_util::stream::iter(archives)
            .map(|archive| {
                let store = store.clone();
                async move {
                    let key = archive.key.to_string();
                    (archive, Download::open(store, key, max_resumes).await)
                }
            })
            .buffered(ahead.max(1));
        let mut opens = std::pin::pin!(opens);
        while let Some(opened) = opens.next().await {
            if opened_tx.send(opened).await.is_err() {
                return;
            }
        }
    }

    async fn run(self, total: usize, mut opened_rx: mpsc::Receiver<Opened>) {
        let mut read = 0;
        while let Some((archive, download)) = opened_rx.recv().await {
            read += 1;
            let stop = self.read(&archive, download).await;
            self.counters.archives_done.fetch_add(1, Ordering::Relaxed);
            let error = match stop {
                Ok(()) => continue,
                Err(Stop::Closed) => return,
                Err(Stop::Corrupt(e)) => e,
                Err(Stop::Unavailable(e)) => {
                    let _ = self.tx.send(Message::Error(e)).await;
                    return;
                }
            };
            if self.tx.send(Message::Error(error)).await.is_err() {
                return;
            }
        }
        // Fewer than all: the opening task died. Not sending End makes the
        // consumer report it.
        if read == total {
            let _ = self.tx.send(Message::End).await;
        }
    }

    /// Streams one archive through a decoder into batches. Records before a
    /// failure are sent before it is reported.
    async fn read(
        &self,
        archive: &Archive,
        download: Result<Download, StoreError>,
    ) -> Result<(), Stop> {
        let key = archive.key.to_string();
        let unavailable =
            |e: StoreError| Stop::Unavailable(SourceError::unavailable(key.clone(), e));
        let download = download.map_err(unavailable)?;
        let counters = self.counters.clone();
        let hasher = self.options.sha256.then(Sha256::new);
        let state = (download, hasher);
        let bytes = futures_util::stream::unfold(state, move |(mut download, mut hasher)| {
            let counters = counters.clone();
            async move {
                let mut buf = Vec::new();
                match download.read_into(&mut buf).await {
                    Ok(0) => {
                        // Before the decoder sees the end, so before the
                        // archive's last batch is sent.
                        if let (Some(h), Ok(mut digests)) = (hasher, counters.digests.lock()) {
                            digests.insert(download.key.clone(), sha256_hex(h));
                        }
                        None
                    }
                    Ok(n) => {
                        counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                        if let Some(h) = &mut hasher {
                            h.update(&buf);
                        }
                        Some((Ok(Bytes::from(buf)), (download, hasher)))
                    }
                    // Carried through the byte stream, taken out below.
                    Err(e) => Some((Err(io::Error::other(e)), (download, hasher))),
                }
            }
        });
        let mut records = FramedRead::with_capacity(
            StreamReader::new(Box::pin(bytes)),
            RecordCodec::default(),
            READ_SIZE,
        );
        let mut batch = Batch::new(key.as_str().into(), &self.options);
        while let Some(next) = records.next().await {
            match next {
                Ok((index, raw)) => {
                    if batch.push(index, raw) {
                        self.flush(&mut batch).await?;
                    }
                }
                Err(CodecError::Archive(e)) => {
                    self.flush(&mut batch).await?;
                    return Err(Stop::Corrupt(to_corrupt(&key, e)));
                }
                Err(CodecError::Io(e)) => {
                    self.flush(&mut batch).await?;
                    let e = match e.downcast::<StoreError>() {
                        Ok(store) => store,
                        Err(e) => StoreError::new("GetObject", key.as_str(), ErrorKind::Fatal, e),
                    };
                    return Err(unavailable(e));
                }
            }
        }
        self.flush(&mut batch).await
    }

    async fn flush(&self, batch: &mut Batch) -> Result<(), Stop> {
        if let Some(records) = batch.take() {
            self.tx
                .send(Message::Batch(records))
                .await
                .map_err(|_| Stop::Closed)?;
        }
        Ok(())
    }
}

/// The decoding buffer of one archive (S3 bodies come in frames of tens of
/// KiB, local files in reads of 1 MiB).
const READ_SIZE: usize = 1 << 20;

/// One object's bytes. A connection that breaks (or a body that ends before
/// its announced length) is resumed at the byte where it stopped, as long as
/// the object is still the same version.
struct Download {
    store: Arc<dyn ArchiveStore>,
    key: String,
    body: ObjectBody,
    etag: String,
    received: u64,
    end: Option<u64>,
    /// Resumes in a row, bounded by the reader's `max_resumes`.
    resumes: Backoff,
}

impl Download {
    async fn open(
        store: Arc<dyn ArchiveStore>,
        key: String,
        max_resumes: u32,
    ) -> Result<Download, StoreError> {
        let body = store.get(&key, 0).await?;
        Ok(Download {
            store,
            key,
            etag: body.etag.clone(),
            end: body.len,
            body,
            received: 0,
            resumes: policies::S3_RESUME
                .with_budget(Budget::Attempts(max_resumes.saturating_add(1)))
                .backoff(),
        })
    }

    /// Appends the next bytes to `buf`; 0 at the end of the object.
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, StoreError> {
        loop {
            let failure = match self.body.reader.read_into(buf).await {
                Ok(0) if self.end.is_none_or(|end| self.received >= end) => return Ok(0),
                Ok(0) => StoreError::new(
                    "GetObject",
                    self.key.as_str(),
                    ErrorKind::Transient,
                    format!(
                        "the body ended at byte {} of {}",
                        self.received,
                        self.end.unwrap_or_default()
                    ),
                ),
                Ok(n) => {
                    self.received += n as u64;
                    // The budget is for failures in a row, not per object:
                    // a long read may meet several unrelated breaks.
                    self.resumes.reset();
                    return Ok(n);
                }
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            if self.end == Some(self.received) {
                return Ok(0); // broke off after the last byte
            }
            let Some(delay) = self.resumes.next_delay() else {
                return Err(failure);
            };
            tracing::warn!(key = self.key, at = self.received, error = %Report(&failure), "archive download broke off; resuming at the same byte");
            tokio::time::sleep(delay).await;
            let body = match self.store.get(&self.key, self.received).await {
                // S3 answers 416 when the object is now shorter than that.
                Err(e) if e.code.as_deref() == Some("InvalidRange") => Err(changed(&self.key)),
                other => other,
            }?;
            if body.etag != self.etag {
                return Err(changed(&self.key));
            }
            self.body = body;
        }
    }
}

fn changed(key: &str) -> StoreError {
    StoreError::new(
        "GetObject",
        key,
        ErrorKind::Fatal,
        "the object changed while it was being read",
    )
}

fn to_corrupt(key: &str, e: ArchiveError) -> SourceError {
    SourceError::Corrupt {
        source_id: key.to_string(),
        position: Position::Index(e.record),
        detail: e.to_string(),
    }
}

/// Records collected for the next send.
struct Batch {
    id: Arc<str>,
    records: Vec<SourceRecord>,
    bytes: usize,
    max_records: usize,
    max_bytes: usize,
}

impl Batch {
    fn new(id: Arc<str>, options: &ReadOptions) -> Batch {
        Batch {
            id,
            records: Vec::new(),
            bytes: 0,
            max_records: options.batch_records.max(1),
            max_bytes: options.batch_bytes.max(1),
        }
    }

    /// Adds a record; true when the batch is full.
    fn push(&mut self, index: u64, data: Vec<u8>) -> bool {
        self.bytes += data.len();
        self.records.push(SourceRecord {
            source: self.id.clone(),
            position: Position::Index(index),
            data,
            meta: Default::default(),
        });
        self.records.len() >= self.max_records || self.bytes >= self.max_bytes
    }

    fn take(&mut self) -> Option<Vec<SourceRecord>> {
        self.bytes = 0;
        (!self.records.is_empty()).then(|| std::mem::take(&mut self.records))
    }
}
