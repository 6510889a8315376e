//! [`ReplaySource`]: the archives, then the live stream from the hand-off.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use triton_core::checkpoint::{Checkpoint, CheckpointStore, MemoryCheckpoints};
use triton_core::key::ArchiveKey;
use triton_core::source::{Position, RecordSource, SequenceNumber, SourceError, SourceRecord};
use triton_kinesis::{
    Checkpointing, Client, KinesisReader, OpenError, ReaderOptions, StartPosition,
};
use triton_s3::{ArchiveSource, ArchiveStore, ReadOptions};

use crate::load::Loaded;
use crate::plan::{Lost, Start};
use crate::probe::probe;

/// The client name the hand-off positions are given to the live reader
/// under (in memory: nothing is saved).
const HANDOFF_CLIENT: &str = "replay";

/// Tuning of a [`ReplaySource`].
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// The archive reader's.
    pub read: ReadOptions,
    /// The live reader's; its `start` is set from the hand-off.
    pub live: ReaderOptions,
    /// Keep reading the live stream (`next_batch` waits for records); when
    /// false, the source ends once every shard is caught up with the tip
    /// and nothing came for two poll intervals.
    pub follow: bool,
}

/// The records of a stream's archives, in order, then of the live stream
/// from where the archives end, shard by shard ([`plan`](crate::plan)):
/// the live reader starts each shard just after its last archived record,
/// reads children of a split or merge after their parents, and other shards
/// from the first archive's time. No record the archives hold is read
/// twice. Ranges that can be read from neither are in [`lost`](Self::lost).
///
/// With [`ReplayOptions::follow`] it reads the live stream until dropped;
/// without, it ends once the live stream is read to its tip.
///
/// Archive records come with the archive key as source and their index as
/// position, live ones with their shard and sequence number. Acknowledge
/// as with any source; the archive part keeps no checkpoints.
pub struct ReplaySource {
    phase: Phase,
    lost: Vec<Lost>,
    /// `None` to follow; else how long a live read may bring nothing
    /// before the source checks whether it is caught up.
    quiet: Option<Duration>,
}

enum Phase {
    Archives(ArchiveSource, Box<Live>),
    Live(KinesisReader),
}

/// What the live reader is opened from, once the archives are read.
struct Live {
    kinesis: Client,
    stream: String,
    options: ReaderOptions,
    checkpoints: Vec<Checkpoint>,
    /// Shards that go on after a record: the stream must still hold it.
    probes: Vec<(String, SequenceNumber)>,
}

/// Probes made at once.
const PROBES: usize = 16;

impl ReplaySource {
    /// Starts reading `loaded` (see [`load`](crate::load())) from `store`,
    /// then `stream` through `kinesis`. Must be created inside a Tokio
    /// runtime.
    pub fn new(
        store: Arc<dyn ArchiveStore>,
        kinesis: Client,
        stream: &str,
        loaded: Loaded,
        options: ReplayOptions,
    ) -> ReplaySource {
        let mut checkpoints = Vec::new();
        let mut probes = Vec::new();
        for (shard, start) in &loaded.handoff.starts {
            if let Start::After(seq) = start {
                probes.push((shard.clone(), seq.clone()));
            }
            // The live reader resumes a shard after its checkpoint, skips a
            // shard whose descendant has one, and reads a descendant of one
            // from its beginning after its parents: the hand-off's rules.
            if let Start::After(seq) | Start::Ended(seq) = start {
                checkpoints.push(Checkpoint {
                    client: HANDOFF_CLIENT.into(),
                    stream: stream.to_owned(),
                    shard: shard.clone(),
                    sequence: seq.clone(),
                });
            }
        }
        let quiet = (!options.follow).then(|| options.live.poll_interval * 2);
        let mut live_options = options.live;
        live_options.start =
            StartPosition::AtTimestamp(UNIX_EPOCH + Duration::from_secs(loaded.from));
        let live = Live {
            kinesis,
            stream: stream.to_owned(),
            options: live_options,
            checkpoints,
            probes,
        };
        ReplaySource {
            phase: Phase::Archives(
                ArchiveSource::new(store, loaded.archives, options.read),
                Box::new(live),
            ),
            lost: loaded.handoff.lost,
            quiet,
        }
    }

    /// Ranges of records neither the archives nor the stream hold: those
    /// the sidecars show from the start, and, once the archives are read,
    /// those of shards whose last archived record the stream no longer
    /// holds.
    pub fn lost(&self) -> &[Lost] {
        &self.lost
    }

    /// True once the archives are read and the live stream is.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live(_))
    }

    /// Checks that the stream still holds each shard's last archived record;
    /// returns the ranges that may be lost. A probe that fails is logged
    /// and passed over: the reader goes on after the record either way.
    async fn check_handoff(live: &Live) -> Vec<Lost> {
        let found: Vec<_> = futures_util::stream::iter(live.probes.clone())
            .map(|(shard, last)| {
                let (kinesis, stream) = (live.kinesis.clone(), live.stream.clone());
                async move {
                    let found = probe(&kinesis, &stream, &shard, &last).await;
                    (shard, found)
                }
            })
            .buffered(PROBES)
            .collect()
            .await;
        let mut lost = Vec::new();
        for (shard, result) in found {
            match result {
                Ok(None) => {}
                Ok(Some(l)) => {
                    tracing::error!(
                        shard = %l.shard,
                        after = ?l.after,
                        before = ?l.before,
                        reason = %l.reason,
                        "LOST: records between the archives and the stream"
                    );
                    lost.push(l);
                }
                Err(e) => tracing::warn!(
                    shard = %shard,
                    error = %e,
                    "could not check that the stream still holds the last archived record"
                ),
            }
        }
        lost
    }

    async fn go_live(live: &Live) -> Result<KinesisReader, SourceError> {
        let store = MemoryCheckpoints::new();
        store
            .save_many(&live.checkpoints)
            .await
            .map_err(|e| SourceError::failed("the hand-off positions", e))?;
        let checkpointing = Checkpointing {
            store: Arc::new(store),
            client: HANDOFF_CLIENT.into(),
            resume: true,
        };
        KinesisReader::open(
            live.kinesis.clone(),
            &live.stream,
            live.options.clone(),
            Some(checkpointing),
        )
        .await
        .map_err(|e| match e {
            OpenError::Kinesis(e) => SourceError::unavailable(live.stream.clone(), e),
            other => SourceError::failed(live.stream.clone(), other),
        })
    }
}

/// Every shard is read to its end, or was at the tip at its last read.
fn caught_up(reader: &KinesisReader) -> bool {
    reader.status().iter().all(|s| match s.phase {
        "finished" | "drained" => true,
        "reading" => s.millis_behind == Some(0),
        _ => false,
    })
}

#[async_trait]
impl RecordSource for ReplaySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        loop {
            match &mut self.phase {
                Phase::Archives(archives, live) => {
                    if let Some(batch) = archives.next_batch(max).await? {
                        return Ok(Some(batch));
                    }
                    // Opened before the phase changes, so that a failure
                    // (or a cancelled call) tries again on the next call.
                    let lost = ReplaySource::check_handoff(live).await;
                    let reader = ReplaySource::go_live(live).await?;
                    self.lost.extend(lost);
                    self.phase = Phase::Live(reader);
                }
                Phase::Live(reader) => {
                    let Some(quiet) = self.quiet else {
                        return reader.next_batch(max).await;
                    };
                    // The reader's next_batch is cancel-safe: a timeout
                    // loses nothing.
                    match tokio::time::timeout(quiet, reader.next_batch(max)).await {
                        Ok(batch) => return batch,
                        Err(_) if caught_up(reader) => return Ok(None),
                        Err(_) => continue,
                    }
                }
            }
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        match &mut self.phase {
            Phase::Archives(archives, _) => archives.ack(source, position).await,
            // An archive record acknowledged after the last archive was
            // read: archives keep no checkpoints.
            Phase::Live(_) if ArchiveKey::parse(source).is_ok() => Ok(()),
            Phase::Live(reader) => reader.ack(source, position).await,
        }
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        match &mut self.phase {
            Phase::Archives(archives, _) => archives.commit().await,
            Phase::Live(reader) => reader.commit().await,
        }
    }

    fn behind(&self) -> Vec<(String, i64)> {
        match &self.phase {
            Phase::Archives(..) => Vec::new(),
            Phase::Live(reader) => reader.behind(),
        }
    }
}
