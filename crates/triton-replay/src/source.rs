//! [`ReplaySource`]: the archives, then the live stream from the hand-off.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use triton_core::checkpoint::{
    Checkpoint, CheckpointStore, MemoryCheckpoints, ReplayEnd, ReplayPosition, ReplayStore,
};
use triton_core::key::ArchiveKey;
use triton_core::source::{Position, RecordSource, SequenceNumber, SourceError, SourceRecord};
use triton_kinesis::{
    Checkpointing, Client, KinesisReader, OpenError, ReaderOptions, StartPosition,
};
use triton_s3::{ArchiveSource, ArchiveStore, ReadOptions};

use crate::load::Loaded;
use crate::plan::{Lost, Start};
use crate::probe::probe;
use crate::resume::{HandoffThenSaved, Progress, Resume};

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
    /// Where the replay ends (inclusive): the live part leaves out each
    /// shard's records that arrived after `to_ms`, and the source ends once
    /// every shard got there (a record after it, its end, or its tip after
    /// that time). Wins over `follow`. The archives to read end there too:
    /// see [`Loaded::until`].
    pub end: Option<ReplayEnd>,
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
    /// Where the consumer is, when the replay is resumable.
    progress: Option<Progress>,
    /// `None` to follow; else how long a live read may bring nothing
    /// before the source checks whether it is caught up.
    quiet: Option<Duration>,
    end: Option<ReplayEnd>,
    /// Shards that brought a record after the end.
    past: HashSet<Arc<str>>,
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
    /// Where the live reader's positions come from and go.
    saved: Option<Arc<dyn ReplayStore>>,
    /// The client its checkpoints are saved under.
    client: String,
    /// Shards whose records go on in archives after the end.
    covered: BTreeSet<String>,
    /// The reader resumes from the saved checkpoints alone: the hand-off
    /// was saved by an earlier run.
    resumed_live: bool,
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
        ReplaySource::build(store, kinesis, stream, loaded, options, None)
    }

    /// As [`new`](Self::new), for the saved replay `resume` describes: it
    /// goes on after the last record handled, in the archives or live, and
    /// [`commit`](RecordSource::commit) saves how far the consumer has got
    /// (the live part as checkpoints under the consumer name). `loaded`
    /// must be loaded from the saved replay's archives and time, so that
    /// the hand-off is the one of the first run. An error if the saved
    /// position names an archive that is not among them.
    pub fn resume(
        store: Arc<dyn ArchiveStore>,
        kinesis: Client,
        stream: &str,
        mut loaded: Loaded,
        options: ReplayOptions,
        resume: Resume,
    ) -> Result<ReplaySource, SourceError> {
        let skip = match &resume.position {
            ReplayPosition::Start => None,
            ReplayPosition::Live => {
                loaded.archives.clear();
                None
            }
            ReplayPosition::Archive { key, index } => {
                let Some(at) = loaded
                    .archives
                    .iter()
                    .position(|a| a.key.to_string() == *key)
                else {
                    return Err(SourceError::failed(
                        format!("the replay of {} on {stream}", resume.consumer),
                        format!("its saved position is in archive {key}, which is not among its archives"),
                    ));
                };
                loaded.archives.drain(..at);
                Some((key.clone(), *index))
            }
        };
        Ok(ReplaySource::build(
            store,
            kinesis,
            stream,
            loaded,
            options,
            Some((resume, skip)),
        ))
    }

    fn build(
        store: Arc<dyn ArchiveStore>,
        kinesis: Client,
        stream: &str,
        loaded: Loaded,
        options: ReplayOptions,
        resume: Option<(Resume, Option<(String, u64)>)>,
    ) -> ReplaySource {
        let resumed_live = resume
            .as_ref()
            .is_some_and(|(r, _)| r.position == ReplayPosition::Live);
        let mut checkpoints = Vec::new();
        let mut probes = Vec::new();
        let client = match &resume {
            Some((r, _)) => r.consumer.clone(),
            None => HANDOFF_CLIENT.to_owned(),
        };
        // A replay resumed live goes on from its saved checkpoints: no
        // hand-off to give or probe.
        let handoff = (!resumed_live).then_some(&loaded.handoff.starts);
        for (shard, start) in handoff.into_iter().flatten() {
            if let Start::After(seq) = start {
                probes.push((shard.clone(), seq.clone()));
            }
            // The live reader resumes a shard after its checkpoint, skips a
            // shard whose descendant has one, and reads a descendant of one
            // from its beginning after its parents: the hand-off's rules.
            if let Start::After(seq) | Start::Ended(seq) = start {
                checkpoints.push(Checkpoint {
                    client: client.clone(),
                    stream: stream.to_owned(),
                    shard: shard.clone(),
                    sequence: seq.clone(),
                });
            }
        }
        let quiet =
            (!options.follow || options.end.is_some()).then(|| options.live.poll_interval * 2);
        let mut live_options = options.live;
        live_options.start =
            StartPosition::AtTimestamp(UNIX_EPOCH + Duration::from_secs(loaded.from));
        let (saved, progress) = match resume {
            Some((r, skip)) => (
                Some(r.store.clone()),
                Some(Progress::new(r, stream, skip, checkpoints.clone())),
            ),
            None => (None, None),
        };
        let live = Live {
            kinesis,
            stream: stream.to_owned(),
            options: live_options,
            checkpoints,
            probes,
            saved,
            client,
            resumed_live,
            covered: loaded.handoff.covered.clone(),
        };
        ReplaySource {
            phase: Phase::Archives(
                ArchiveSource::new(store, loaded.archives, options.read),
                Box::new(live),
            ),
            // The run that saved the hand-off reported them.
            lost: if resumed_live {
                Vec::new()
            } else {
                loaded.handoff.lost
            },
            progress,
            quiet,
            end: options.end,
            past: HashSet::new(),
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
                // Archives opened after the end hold what follows: not lost.
                Ok(Some(l)) if live.covered.contains(&l.shard) => tracing::warn!(
                    shard = %l.shard,
                    after = ?l.after,
                    "the stream no longer holds the records after the archives read, and \
                     archives opened after the end hold them: those that arrived before the end \
                     are not printed"
                ),
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
        let handoff = MemoryCheckpoints::new();
        handoff
            .save_many(&live.checkpoints)
            .await
            .map_err(|e| SourceError::failed("the hand-off positions", e))?;
        let store: Arc<dyn CheckpointStore> = match &live.saved {
            None => Arc::new(handoff),
            Some(saved) if live.resumed_live => Arc::new(saved.clone()),
            Some(saved) => Arc::new(HandoffThenSaved::new(handoff, saved.clone())),
        };
        let checkpointing = Checkpointing {
            store,
            client: live.client.clone(),
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

/// Leaves out the records that arrived after `to_ms`, and those after
/// them in their shard, noting their shards in `past`.
fn keep_until(batch: &mut Vec<SourceRecord>, to_ms: i64, past: &mut HashSet<Arc<str>>) {
    batch.retain(|r| {
        if past.contains(&r.source) {
            return false;
        }
        if r.meta.arrival_ms.is_some_and(|a| a > to_ms) {
            past.insert(r.source.clone());
            return false;
        }
        true
    });
}

/// Without an end: every shard is read to its end, or was at the tip at
/// its last read. With one: every shard is past it, finished, at the tip
/// after it, or waiting for parents that are (a child's records all
/// arrived after its parents').
fn ended(reader: &KinesisReader, end: Option<ReplayEnd>, past: &HashSet<Arc<str>>) -> bool {
    let Some(end) = end else {
        return reader.status().iter().all(|s| match s.phase {
            "finished" | "drained" => true,
            "reading" => s.millis_behind == Some(0),
            _ => false,
        });
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    reader.status().iter().all(|s| {
        let is_past = past.contains(s.shard.as_str());
        match s.phase {
            "finished" | "waiting" => true,
            // Drained but not finished: what it delivered is not all
            // acknowledged, and its children have not started.
            "drained" => is_past,
            "reading" => is_past || (s.millis_behind == Some(0) && now_ms > end.to_ms),
            _ => false,
        }
    })
}

#[async_trait]
impl RecordSource for ReplaySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        loop {
            match &mut self.phase {
                Phase::Archives(archives, live) => {
                    if let Some(mut batch) = archives.next_batch(max).await? {
                        if let Some(progress) = &mut self.progress {
                            progress.skip_handled(&mut batch);
                            if batch.is_empty() {
                                continue;
                            }
                            progress.delivered(&batch);
                        }
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
                        Ok(Ok(Some(mut batch))) => {
                            if let Some(end) = self.end {
                                keep_until(&mut batch, end.to_ms, &mut self.past);
                            }
                            if !batch.is_empty() {
                                return Ok(Some(batch));
                            }
                            if ended(reader, self.end, &self.past) {
                                return Ok(None);
                            }
                        }
                        Ok(other) => return other,
                        Err(_) if ended(reader, self.end, &self.past) => return Ok(None),
                        Err(_) => continue,
                    }
                }
            }
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        match &mut self.phase {
            Phase::Archives(archives, _) => archives.ack(source, position).await?,
            // An archive record acknowledged after the last archive was
            // read: archives keep no checkpoints.
            Phase::Live(_) if ArchiveKey::parse(source).is_ok() => {}
            Phase::Live(reader) => return reader.ack(source, position).await,
        }
        if let (Some(progress), Position::Index(i)) = (&mut self.progress, position) {
            progress.acked(source, *i);
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        let live = matches!(self.phase, Phase::Live(_));
        let saved_live = match &mut self.progress {
            Some(progress) => progress.save(live).await?,
            None => live,
        };
        match &mut self.phase {
            Phase::Archives(archives, _) => archives.commit().await,
            // Live checkpoints only once the hand-off is saved: before,
            // a restart would read the archives again.
            Phase::Live(reader) if saved_live => reader.commit().await,
            Phase::Live(_) => Ok(()),
        }
    }

    fn behind(&self) -> Vec<(String, i64)> {
        match &self.phase {
            Phase::Archives(..) => Vec::new(),
            Phase::Live(reader) => reader.behind(),
        }
    }
}
