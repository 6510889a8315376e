//! Resumable replays: how far the consumer has got, saved on commit.

use std::sync::Arc;

use async_trait::async_trait;
use triton_core::checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, MemoryCheckpoints, ReplayPosition, ReplayStore,
    SavedCheckpoint, SubCheckpoint,
};
use triton_core::source::{Position, SequenceNumber, SourceError, SourceRecord};

/// A saved replay to go on with (see [`ReplaySource::resume`](crate::ReplaySource::resume)).
#[derive(Clone, Debug)]
pub struct Resume {
    /// Where the replay is saved; the live part's checkpoints go there too.
    pub store: Arc<dyn ReplayStore>,
    /// The replay's name: the client of its live checkpoints.
    pub consumer: String,
    /// Where the saved replay is ([`ReplayPosition::Start`] for one just
    /// saved).
    pub position: ReplayPosition,
}

/// How far the consumer of a resumable replay has got.
pub(crate) struct Progress {
    resume: Resume,
    stream: String,
    /// Records already handled by an earlier run: of this archive, up to
    /// this index (the first archive read).
    skip: Option<(String, u64)>,
    /// The last archive record handed out.
    delivered: Option<(Arc<str>, u64)>,
    /// The last archive record acknowledged.
    acked: Option<(String, u64)>,
    /// The archive position last saved.
    saved: Option<(String, u64)>,
    /// The replay is saved as live: its hand-off checkpoints are saved.
    live_saved: bool,
    /// The hand-off, saved with the move to live.
    handoff: Vec<Checkpoint>,
}

impl Progress {
    pub(crate) fn new(
        resume: Resume,
        stream: &str,
        skip: Option<(String, u64)>,
        handoff: Vec<Checkpoint>,
    ) -> Progress {
        let live_saved = resume.position == ReplayPosition::Live;
        Progress {
            resume,
            stream: stream.to_owned(),
            saved: skip.clone(),
            skip,
            delivered: None,
            acked: None,
            live_saved,
            handoff,
        }
    }

    /// Drops the records an earlier run handled.
    pub(crate) fn skip_handled(&mut self, batch: &mut Vec<SourceRecord>) {
        let Some((key, last)) = &self.skip else {
            return;
        };
        let handled = |r: &SourceRecord| {
            *r.source == **key && matches!(r.position, Position::Index(i) if i <= *last)
        };
        // Records come in order: once one is new, the rest are.
        let past = batch.iter().any(|r| !handled(r));
        batch.retain(|r| !handled(r));
        if past {
            self.skip = None;
        }
    }

    /// Notes the last archive record of a batch handed out.
    pub(crate) fn delivered(&mut self, batch: &[SourceRecord]) {
        if let Some(SourceRecord {
            source,
            position: Position::Index(i),
            ..
        }) = batch.last()
        {
            self.delivered = Some((source.clone(), *i));
        }
    }

    /// Notes an acknowledged archive record.
    pub(crate) fn acked(&mut self, key: &str, index: u64) {
        self.acked = Some((key.to_owned(), index));
    }

    /// Saves how far the consumer has got: once `live` and every archive
    /// record handed out is acknowledged, the move to live with the
    /// hand-off; else the last archive record acknowledged. True once the
    /// live part's own checkpoints may be saved.
    pub(crate) async fn save(&mut self, live: bool) -> Result<bool, SourceError> {
        if self.live_saved {
            return Ok(true);
        }
        let all_acked = match (&self.delivered, &self.acked) {
            (None, _) => true,
            (Some((dk, di)), Some((ak, ai))) => **dk == **ak && di == ai,
            (Some(_), None) => false,
        };
        let store = &self.resume.store;
        let consumer = &self.resume.consumer;
        if live && all_acked {
            store
                .move_replay(consumer, &self.stream, &ReplayPosition::Live, &self.handoff)
                .await
                .map_err(|e| self.error(e))?;
            self.live_saved = true;
            tracing::info!(consumer = %consumer, "replay: the archives are handled; saved the hand-off");
            return Ok(true);
        }
        if self.acked != self.saved {
            if let Some((key, index)) = &self.acked {
                let position = ReplayPosition::Archive {
                    key: key.clone(),
                    index: *index,
                };
                store
                    .move_replay(consumer, &self.stream, &position, &[])
                    .await
                    .map_err(|e| self.error(e))?;
                self.saved = self.acked.clone();
            }
        }
        Ok(false)
    }

    fn error(&self, e: CheckpointError) -> SourceError {
        let what = format!(
            "the replay position of {} on {}",
            self.resume.consumer, self.stream
        );
        if e.is_retryable() {
            SourceError::unavailable(what, e)
        } else {
            SourceError::failed(what, e)
        }
    }
}

/// The live reader's checkpoints when a resumable replay goes live: it
/// opens from the hand-off (not saved yet: it is saved with the move to
/// live, once the archive records are acknowledged) and saves to the
/// replay's store. The reader lists checkpoints only when it opens.
#[derive(Debug)]
pub(crate) struct HandoffThenSaved {
    handoff: MemoryCheckpoints,
    saved: Arc<dyn ReplayStore>,
}

impl HandoffThenSaved {
    pub(crate) fn new(handoff: MemoryCheckpoints, saved: Arc<dyn ReplayStore>) -> Self {
        HandoffThenSaved { handoff, saved }
    }
}

#[async_trait]
impl CheckpointStore for HandoffThenSaved {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>, CheckpointError> {
        match self.saved.last(client, stream, shard).await? {
            Some(seq) => Ok(Some(seq)),
            None => self.handoff.last(client, stream, shard).await,
        }
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<(), CheckpointError> {
        self.saved.save_many(checkpoints).await
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>, CheckpointError> {
        self.handoff.list(client).await
    }

    async fn save_subsequences(&self, subs: &[SubCheckpoint]) -> Result<(), CheckpointError> {
        self.saved.save_subsequences(subs).await
    }

    /// None: the reader compares sub-sequences with the checkpoints it
    /// lists, which are the hand-off's, so rows saved before (a tail of
    /// the same name) would start shards past records the hand-off has
    /// not covered.
    async fn subsequences(&self, client: &str) -> Result<Vec<SubCheckpoint>, CheckpointError> {
        self.handoff.subsequences(client).await
    }
}
