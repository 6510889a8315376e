//! [`KinesisReader`]: every shard of a stream as one [`RecordSource`],
//! resuming from checkpoints and following splits and merges.

mod plan;
mod records;
mod replay;
mod shard;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use triton_core::error::Report;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use triton_core::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, SubCheckpoint};
use triton_core::error::{BoxError, Context, SharedError};
use triton_core::source::{
    Origin, Position, RecordSource, SequenceNumber, SourceError, SourceRecord,
};

pub use self::plan::StartPosition;
use self::plan::{Plan, Start};
pub use self::replay::KinesisReplay;
use self::shard::{Event, ShardTask};
use crate::error::KinesisError;
use crate::shards::{list_shards, ShardInfo};

/// How the reader polls.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// The wait between GetRecords calls of a shard that is caught up
    /// (go-triton's `MinPollInterval`). A shard that is behind is polled
    /// as fast as Kinesis allows (5 calls a second).
    pub poll_interval: Duration,
    /// Records per GetRecords call, 1 to 10,000 (go-triton's `RequestLimit`).
    pub limit: u16,
    /// GetRecords results a shard may hold before the consumer takes them;
    /// a slow consumer slows polling instead of growing buffers.
    pub prefetch: usize,
    /// How often to look for new shards besides when a shard closes.
    pub rediscover_interval: Duration,
    /// A closed shard whose children have waited this long for its records
    /// to be acknowledged is logged once, as a warning: a consumer that
    /// never acknowledges would otherwise stop at the first reshard without
    /// a word. Default 60 s.
    pub ack_warning: Duration,
    /// Read only these shards (a fleet worker's leases), leaving the others
    /// to other readers; `None`: every shard. Shards outside the set count
    /// as finished, so a leased child starts at once: whoever leased it out
    /// made sure its parents were done.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// Where to note each shard of `only` (or each shard) once it is read
    /// to its end and every record it delivered is acknowledged.
    pub finished: Option<triton_core::lease::FinishedShards>,
}

impl Default for ReaderOptions {
    fn default() -> ReaderOptions {
        ReaderOptions {
            start: StartPosition::Latest,
            poll_interval: Duration::from_secs(1),
            limit: 10_000,
            prefetch: 2,
            rediscover_interval: Duration::from_secs(30),
            ack_warning: Duration::from_secs(60),
            only: None,
            finished: None,
        }
    }
}

/// Where the reader saves acknowledged positions, and under which client.
#[derive(Clone, Debug)]
pub struct Checkpointing {
    /// The checkpoint database.
    pub store: Arc<dyn CheckpointStore>,
    /// The consumer's name (`store` for `triton store`).
    pub client: String,
    /// Start each shard just after its checkpoint (normally true). False
    /// ignores stored checkpoints when opening (e.g. `--skip-to-latest`)
    /// but still saves new ones.
    pub resume: bool,
}

/// Why the reader could not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Listing the stream's shards failed.
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    /// Loading checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A bad option.
    #[error("{0}")]
    Options(String),
}

/// Reads every shard of one stream concurrently.
///
/// Records come in batches from one shard each. Acknowledge what you have
/// handled with [`RecordSource::ack`] and make it durable with
/// [`RecordSource::commit`]: checkpoints only ever hold acknowledged
/// positions, never records that were fetched but not yet handled. A shard
/// created by a split or merge is read only after its parents were read to
/// their end and acknowledged, so records of one partition key come in
/// order.
///
/// **Consumers must therefore acknowledge what they read, even when they
/// keep no checkpoints**: a reader whose records are never acknowledged
/// stops at the first split or merge (after
/// [`ReaderOptions::ack_warning`] it says so in a warning naming the
/// shard). Acknowledge the last record of each batch once it is handled:
///
/// ```no_run
/// # use triton_core::source::RecordSource;
/// # async fn consume(mut reader: triton_kinesis::KinesisReader) -> Result<(), triton_core::source::SourceError> {
/// while let Some(batch) = reader.next_batch(500).await? {
///     for record in &batch {
///         println!("{:?}", record.record());
///     }
///     let last = &batch[batch.len() - 1];
///     reader.ack(&last.source, &last.position).await?;
///     reader.commit().await?; // saves checkpoints, if the reader keeps them
/// }
/// # Ok(()) }
/// ```
///
/// Or, as go-triton's `ReadRecord` and `Checkpoint` did, one record at a
/// time through [`RecordReader`](triton_core::source::RecordReader), which
/// acknowledges each record when the next is asked for:
///
/// ```no_run
/// # async fn consume(reader: triton_kinesis::KinesisReader) -> Result<(), triton_core::source::SourceError> {
/// use triton_core::source::RecordReader;
///
/// let mut records = RecordReader::new(reader);
/// while let Some(record) = records.next_record().await? {
///     println!("{:?}", record.record());
///     records.checkpoint().await?; // as often as you like
/// }
/// # Ok(()) }
/// ```
///
/// Data that is not one MessagePack map is delivered like any other record;
/// [`SourceRecord::validate`] tells it apart.
///
/// Aggregated records (the KPL's format) come as their user records, one
/// by one, at [`Position::SubSequence`] and, for the last of each
/// aggregate, at the Kinesis record's sequence number; a batch never ends
/// inside an aggregate (it holds more than asked for instead), and an
/// acknowledgement inside one is saved as a sub-sequence checkpoint beside
/// the shard's checkpoint (see `docs/kinesis.md`).
///
/// Dropping the reader stops its polling tasks.
#[derive(Debug)]
pub struct KinesisReader {
    client: Client,
    stream: String,
    options: ReaderOptions,
    checkpointing: Option<Checkpointing>,
    shards: HashMap<Arc<str>, ShardState>,
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    tasks: JoinSet<()>,
    /// A batch being handed out in pieces, with the permit it holds.
    pending: VecDeque<SourceRecord>,
    pending_permit: Option<OwnedSemaphorePermit>,
    next_discovery: Instant,
    /// A failure retrying cannot fix; every later call reports it again.
    failed: Option<SharedError>,
}

#[derive(Debug)]
struct ShardState {
    info: ShardInfo,
    phase: Phase,
    /// The last record handed out (batches end at Kinesis records, so a
    /// sequence number).
    delivered: Option<Position>,
    /// The last acknowledged position: inside an aggregate when a consumer
    /// cut a batch there.
    acked: Option<Position>,
    /// The last acknowledged whole Kinesis record.
    acked_whole: Option<SequenceNumber>,
    /// The checkpoint saved.
    committed: Option<SequenceNumber>,
    /// The position inside an aggregate saved (a sub-sequence checkpoint).
    committed_sub: Option<Position>,
    millis_behind: Option<i64>,
    /// When the shard was read to its end; cleared once the warning that
    /// its children wait for acknowledgements was logged.
    drained_at: Option<Instant>,
    /// Where its reading began, once it began.
    origin: Option<Origin>,
}

impl ShardState {
    /// A shard not read yet, whose checkpoint is `committed`.
    fn new(info: ShardInfo, phase: Phase, committed: Option<SequenceNumber>) -> ShardState {
        ShardState {
            info,
            phase,
            delivered: None,
            // Not the checkpoint: a shard that falls back to its oldest
            // record acknowledges positions before it.
            acked: None,
            acked_whole: None,
            committed,
            committed_sub: None,
            millis_behind: None,
            drained_at: None,
            origin: None,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Phase {
    /// Not started: waiting for its parents to finish.
    Waiting(Start),
    Reading,
    /// Read to its end; finished once everything delivered is acknowledged.
    Drained,
    Finished,
}

/// What the reader knows of one shard, for progress and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard id.
    pub shard: String,
    /// `waiting` (for its parents), `reading`, `drained` (closed, waiting
    /// for acknowledgements) or `finished`.
    pub phase: &'static str,
    /// The last acknowledged sequence number.
    pub acknowledged: Option<SequenceNumber>,
    /// How far the shard's last GetRecords result was behind the tip.
    pub millis_behind: Option<i64>,
}

impl KinesisReader {
    /// Lists the shards of `stream` (its real name), loads checkpoints and
    /// starts reading the shards that have no unfinished parent.
    pub async fn open(
        client: Client,
        stream: &str,
        options: ReaderOptions,
        checkpointing: Option<Checkpointing>,
    ) -> Result<KinesisReader, OpenError> {
        if !(1..=10_000).contains(&options.limit) {
            return Err(OpenError::Options(format!(
                "GetRecords limit {} is outside 1..=10000",
                options.limit
            )));
        }
        if options.prefetch == 0 {
            return Err(OpenError::Options("prefetch must be at least 1".into()));
        }
        let shards = list_shards(&client, stream).await?;
        let mut saved = HashMap::new();
        // Shards where the consumer stopped inside an aggregate, past
        // their checkpoint.
        let mut inside: HashMap<String, (SequenceNumber, u32)> = HashMap::new();
        if let Some(c) = &checkpointing {
            for s in c.store.list(&c.client).await? {
                if s.checkpoint.stream == stream {
                    saved.insert(s.checkpoint.shard, s.checkpoint.sequence);
                }
            }
            for sub in c.store.subsequences(&c.client).await? {
                let stale = saved.get(&sub.shard).is_some_and(|cp| *cp >= sub.sequence);
                if sub.stream == stream && !stale {
                    inside.insert(sub.shard, (sub.sequence, sub.sub));
                }
            }
        }
        let resume_from = match &checkpointing {
            Some(c) if c.resume => {
                let mut from = saved.clone();
                // Planned as a checkpoint (the shard was being read) and
                // started inside the aggregate below.
                from.extend(
                    inside
                        .iter()
                        .map(|(shard, (seq, _))| (shard.clone(), seq.clone())),
                );
                from
            }
            _ => HashMap::new(),
        };
        let mut plans = plan::plan(&shards, &resume_from, &options.start);
        if checkpointing.as_ref().is_some_and(|c| c.resume) {
            for (shard, (sequence, sub)) in inside {
                if let Some(Plan::Read(start)) = plans.get_mut(&shard) {
                    *start = Start::Inside { sequence, sub };
                }
            }
        }
        let (sender, events) = mpsc::unbounded_channel();
        let mut reader = KinesisReader {
            client,
            stream: stream.to_string(),
            next_discovery: Instant::now() + options.rediscover_interval,
            options,
            checkpointing,
            shards: HashMap::new(),
            events,
            sender,
            tasks: JoinSet::new(),
            pending: VecDeque::new(),
            pending_permit: None,
            failed: None,
        };
        for info in shards {
            let mine = reader.reads(&info.id);
            let phase = match plans.remove(&info.id) {
                Some(Plan::Read(start)) if mine => Phase::Waiting(start),
                _ => Phase::Finished,
            };
            if mine && phase == Phase::Finished {
                if let Some(f) = &reader.options.finished {
                    f.finish(&info.id, None);
                }
            }
            let committed = saved.get(&info.id).cloned();
            reader.shards.insert(
                info.id.as_str().into(),
                ShardState::new(info, phase, committed),
            );
        }
        tracing::info!(
            stream,
            shards = reader.shards.len(),
            "opened Kinesis stream"
        );
        reader.start_ready();
        Ok(reader)
    }

    /// Whether this reader reads `shard` (see [`ReaderOptions::only`]).
    fn reads(&self, shard: &str) -> bool {
        self.options.only.as_ref().is_none_or(|o| o.contains(shard))
    }

    /// The stream's real name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Every known shard, by id.
    pub fn status(&self) -> Vec<ShardStatus> {
        let mut all: Vec<ShardStatus> = self
            .shards
            .iter()
            .map(|(id, s)| ShardStatus {
                shard: id.to_string(),
                phase: match s.phase {
                    Phase::Waiting(_) => "waiting",
                    Phase::Reading => "reading",
                    Phase::Drained => "drained",
                    Phase::Finished => "finished",
                },
                acknowledged: s.acked.as_ref().and_then(Position::sequence).cloned(),
                millis_behind: s.millis_behind,
            })
            .collect();
        all.sort_by(|a, b| a.shard.cmp(&b.shard));
        all
    }

    /// Starts every waiting shard whose parents are finished (or expired
    /// from the stream).
    fn start_ready(&mut self) {
        let ready: Vec<Arc<str>> = self
            .shards
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Waiting(_)))
            .filter(|(_, s)| {
                s.info.parents().all(|p| {
                    self.shards
                        .get(p)
                        .is_none_or(|parent| parent.phase == Phase::Finished)
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        let known: std::collections::HashSet<String> =
            self.shards.keys().map(|k| k.to_string()).collect();
        for id in ready {
            let Some(state) = self.shards.get_mut(&id) else {
                continue;
            };
            let Phase::Waiting(start) = std::mem::replace(&mut state.phase, Phase::Reading) else {
                continue;
            };
            let parents: Vec<String> = state.info.parents().map(str::to_owned).collect();
            state.origin = Some(match &start {
                Start::After(seq) | Start::At(seq) => {
                    Origin::After(Position::Sequence(seq.clone()))
                }
                Start::Inside { sequence, sub } => Origin::After(Position::SubSequence {
                    sequence: sequence.clone(),
                    sub: *sub,
                }),
                // A child is read from its start once its parents are done;
                // a shard whose parents expired from the stream is not.
                Start::TrimHorizon if parents.iter().any(|p| known.contains(p.as_str())) => {
                    Origin::AfterParents(parents)
                }
                Start::TrimHorizon => Origin::TrimHorizon,
                Start::Latest => Origin::Latest(std::time::SystemTime::now()),
                Start::AtTimestamp(t) => Origin::AtTimestamp(*t),
            });
            let task = ShardTask {
                client: self.client.clone(),
                stream: self.stream.clone(),
                shard: id.clone(),
                info: Some(state.info.clone()),
                start,
                limit: i32::from(self.options.limit),
                poll_interval: self.options.poll_interval,
                prefetch: Arc::new(Semaphore::new(self.options.prefetch)),
                events: self.sender.clone(),
            };
            self.tasks.spawn(task.run());
        }
    }

    /// Marks a drained shard finished once all it delivered is
    /// acknowledged, and starts the children that were waiting for it.
    fn finish_if_done(&mut self, id: &str) {
        let Some(s) = self.shards.get_mut(id) else {
            return;
        };
        if s.phase == Phase::Drained
            && s.delivered
                .as_ref()
                .is_none_or(|d| s.acked.as_ref() == Some(d))
        {
            tracing::info!(shard = id, "shard finished");
            s.phase = Phase::Finished;
            s.drained_at = None;
            if let Some(f) = &self.options.finished {
                let last = s.delivered.as_ref().and_then(Position::sequence);
                f.finish(id, last.map(|d| d.as_str().to_owned()));
            }
            self.start_ready();
        }
    }

    /// Looks for shards created since the last look; false when listing
    /// failed. New shards are read from their first record (after their
    /// parents). A failure is logged and retried at the next interval: the
    /// shards already known go on.
    async fn discover(&mut self) -> bool {
        self.next_discovery = Instant::now() + self.options.rediscover_interval;
        let shards = match list_shards(&self.client, &self.stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %Report(&e), "looking for new shards failed; will try again");
                return false;
            }
        };
        for info in shards {
            if self.shards.contains_key(info.id.as_str()) {
                continue;
            }
            tracing::info!(shard = %info.id, parents = ?info.parents().collect::<Vec<_>>(), "new shard");
            let phase = match self.reads(&info.id) {
                true => Phase::Waiting(Start::TrimHorizon),
                false => Phase::Finished,
            };
            self.shards
                .insert(info.id.as_str().into(), ShardState::new(info, phase, None));
        }
        self.start_ready();
        true
    }

    /// Warns, once per shard, about a closed shard whose children have
    /// waited longer than [`ReaderOptions::ack_warning`] for its records to
    /// be acknowledged. Returns when the next such warning may be due.
    fn warn_unacknowledged(&mut self) -> Option<Instant> {
        // Called on every turn of `next_batch`: nothing to do (the usual
        // case) costs one pass and no allocation.
        if !self.shards.values().any(|s| s.drained_at.is_some()) {
            return None;
        }
        let bound = self.options.ack_warning;
        let mut next = None;
        let waiting: Vec<(Arc<str>, Vec<String>)> = self
            .shards
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Waiting(_)))
            .map(|(id, s)| (id.clone(), s.info.parents().map(str::to_owned).collect()))
            .collect();
        for (id, s) in &mut self.shards {
            let (Phase::Drained, Some(since)) = (&s.phase, s.drained_at) else {
                continue;
            };
            let children: Vec<&str> = waiting
                .iter()
                .filter(|(_, parents)| parents.iter().any(|p| **p == **id))
                .map(|(child, _)| &**child)
                .collect();
            // Children not seen yet come with the next discovery, which
            // wakes the reader anyway.
            if children.is_empty() {
                continue;
            }
            let due = since + bound;
            if Instant::now() < due {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
                continue;
            }
            tracing::warn!(
                shard = &**id,
                children = ?children,
                waited_s = since.elapsed().as_secs(),
                delivered = ?s.delivered.as_ref().map(Position::to_string),
                acknowledged = ?s.acked.as_ref().map(Position::to_string),
                "a closed shard's children wait until every record it delivered is acknowledged: \
                 acknowledge what you read (RecordSource::ack), or read through RecordReader"
            );
            s.drained_at = None;
        }
        next
    }

    /// The next at most `max` pending records, and the rest of an
    /// aggregate they would end inside: a batch ends at a Kinesis record,
    /// so that consumers which cut archives between batches (`triton
    /// store`) never split an aggregate, and checkpoints stay whole.
    fn take_pending(&mut self, max: usize) -> Vec<SourceRecord> {
        let mut n = max.max(1).min(self.pending.len());
        while n < self.pending.len() && !self.pending[n - 1].position.ends_kinesis_record() {
            n += 1;
        }
        let batch: Vec<SourceRecord> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            self.pending_permit = None;
        }
        if let Some(last) = batch.last() {
            if let Some(s) = self.shards.get_mut(&last.source) {
                s.delivered = Some(last.position.clone());
            }
        }
        batch
    }
}

fn unavailable(what: String, cause: impl Into<BoxError>) -> SourceError {
    SourceError::unavailable(what, cause)
}

#[async_trait]
impl RecordSource for KinesisReader {
    /// Waits for records; `Ok(None)` only once every shard is finished and
    /// no new one appeared (the stream is gone or has no open shard).
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        loop {
            if let Some(failure) = &self.failed {
                return Err(unavailable(
                    format!("Kinesis stream {}", self.stream),
                    failure.clone(),
                ));
            }
            if !self.pending.is_empty() {
                return Ok(Some(self.take_pending(max)));
            }
            if Instant::now() >= self.next_discovery {
                self.discover().await;
            }
            // The end only when a fresh listing confirms it.
            if self.shards.values().all(|s| s.phase == Phase::Finished)
                && self.discover().await
                && self.shards.values().all(|s| s.phase == Phase::Finished)
            {
                return Ok(None);
            }
            let wake = match self.warn_unacknowledged() {
                Some(due) => due.min(self.next_discovery),
                None => self.next_discovery,
            };
            let event = tokio::select! {
                e = tokio::time::timeout_at(wake, self.events.recv()) => e,
                Some(Err(e)) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if e.is_panic() {
                        self.failed = Some(SharedError::new(Context::new("a shard reader task panicked", e)));
                    }
                    continue;
                }
            };
            match event {
                Err(_elapsed) => continue,
                // The reader holds a sender, so the channel never closes.
                Ok(None) => return Ok(None),
                Ok(Some(Event::Records {
                    shard,
                    records,
                    permit,
                    millis_behind,
                })) => {
                    if let Some(s) = self.shards.get_mut(&shard) {
                        s.millis_behind = millis_behind;
                    }
                    self.pending = records.into();
                    self.pending_permit = Some(permit);
                }
                Ok(Some(Event::Behind {
                    shard,
                    millis_behind,
                })) => {
                    if let Some(s) = self.shards.get_mut(&shard) {
                        s.millis_behind = millis_behind;
                    }
                }
                Ok(Some(Event::End { shard })) => {
                    if let Some(s) = self.shards.get_mut(&shard) {
                        s.phase = Phase::Drained;
                        s.drained_at = Some(Instant::now());
                    }
                    self.finish_if_done(&shard);
                    // Its children exist now; no need to wait for the timer.
                    self.discover().await;
                }
                Ok(Some(Event::Failed { shard, error })) => {
                    self.failed = Some(SharedError::new(Context::new(
                        format!("shard {shard}"),
                        error,
                    )));
                }
            }
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        let refuse = |reason: &str| SourceError::BadAck {
            source_id: source.to_string(),
            position: position.clone(),
            reason: reason.to_string(),
        };
        if position.sequence().is_none() {
            return Err(refuse("Kinesis positions are sequence numbers"));
        }
        let Some(s) = self.shards.get_mut(source) else {
            return Err(refuse("no such shard"));
        };
        match &s.delivered {
            None => return Err(refuse("no record of it was delivered")),
            Some(d) if position > d => return Err(refuse("it was not delivered yet")),
            Some(_) => {}
        }
        if s.acked.as_ref().is_some_and(|a| position < a) {
            return Err(refuse("a later position was already acknowledged"));
        }
        if let Position::Sequence(seq) = position {
            s.acked_whole = Some(seq.clone());
        }
        s.acked = Some(position.clone());
        self.finish_if_done(source);
        Ok(())
    }

    /// Saves every shard's acknowledged position that changed since the
    /// last commit, in one transaction: the last whole Kinesis record as
    /// its checkpoint and, for a shard acknowledged inside an aggregate,
    /// where in it (saved first: on its own it already says where to
    /// resume, so a failure between the two repeats nothing).
    async fn commit(&mut self) -> Result<(), SourceError> {
        let Some(c) = &self.checkpointing else {
            return Ok(());
        };
        let mut subs = Vec::new();
        let mut changed = Vec::new();
        for (id, s) in &self.shards {
            if let Some(Position::SubSequence { sequence, sub }) = &s.acked {
                if s.committed_sub.as_ref() != s.acked.as_ref() {
                    subs.push(SubCheckpoint {
                        client: c.client.clone(),
                        stream: self.stream.clone(),
                        shard: id.to_string(),
                        sequence: sequence.clone(),
                        sub: *sub,
                    });
                }
            }
            match &s.acked_whole {
                Some(a) if s.committed.as_ref() != Some(a) => changed.push(Checkpoint {
                    client: c.client.clone(),
                    stream: self.stream.clone(),
                    shard: id.to_string(),
                    sequence: a.clone(),
                }),
                _ => {}
            }
        }
        if !subs.is_empty() {
            c.store
                .save_subsequences(&subs)
                .await
                .map_err(|e| unavailable("checkpoints".into(), e))?;
            for sub in subs {
                if let Some(s) = self.shards.get_mut(sub.shard.as_str()) {
                    s.committed_sub = Some(Position::SubSequence {
                        sequence: sub.sequence,
                        sub: sub.sub,
                    });
                }
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        c.store
            .save_many(&changed)
            .await
            .map_err(|e| unavailable("checkpoints".into(), e))?;
        for cp in changed {
            if let Some(s) = self.shards.get_mut(cp.shard.as_str()) {
                s.committed = Some(cp.sequence);
            }
        }
        Ok(())
    }

    fn behind(&self) -> Vec<(String, i64)> {
        self.status()
            .into_iter()
            .filter_map(|s| Some((s.shard, s.millis_behind?)))
            .collect()
    }

    fn origin(&self, source: &str) -> Option<Origin> {
        self.shards.get(source)?.origin.clone()
    }

    fn ended(&self, source: &str) -> bool {
        self.shards
            .get(source)
            .is_some_and(|s| matches!(s.phase, Phase::Drained | Phase::Finished))
    }
}
