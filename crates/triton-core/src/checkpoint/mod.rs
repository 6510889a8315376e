//! [`CheckpointStore`]: where readers remember, per shard, the last record
//! that was durably handled (docs/format.md §5).
//!
//! The Kinesis reader and `triton store` use this trait and never a database
//! type, so they can be tested against [`MemoryCheckpoints`] and run against
//! the SQL backends of `triton-checkpoint`.
//!
//! A checkpoint is the sequence number of the last record processed: a reader
//! resumes *after* it (`AFTER_SEQUENCE_NUMBER`).

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod memory;
mod replay;

use async_trait::async_trait;

use crate::source::SequenceNumber;

pub use self::memory::MemoryCheckpoints;
pub use self::replay::{
    archives_from_text, archives_to_text, ReplayEnd, ReplayPosition, ReplayState, ReplayStore,
};

/// One shard's checkpoint: the last sequence number `client` processed in
/// `shard` of `stream` (the real stream name, as in archive keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The consumer's name (`store` for `triton store`).
    pub client: String,
    /// The real Kinesis stream name.
    pub stream: String,
    /// The shard id, e.g. `shardId-000000000000`.
    pub shard: String,
    /// The last sequence number processed.
    pub sequence: SequenceNumber,
}

/// Where a consumer stopped inside an aggregated Kinesis record (the KPL's
/// format): it handled every record of `shard` before `sequence`, and the
/// user records 0 through `sub` of it. Kept in a table of its own, never
/// in `triton_checkpoint` (whose rows go-triton reads as whole records); it
/// counts only while it is past the shard's checkpoint, so a later
/// checkpoint makes it stale without deleting it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubCheckpoint {
    /// The consumer's name.
    pub client: String,
    /// The real Kinesis stream name.
    pub stream: String,
    /// The shard id.
    pub shard: String,
    /// The aggregated record's sequence number.
    pub sequence: SequenceNumber,
    /// The last user record of it that was handled (0 = the first).
    pub sub: u32,
}

/// A checkpoint as stored, with the time of its last update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Unix seconds of the last save.
    pub updated: i64,
}

/// An upload about to be made, recorded before it starts so that a store
/// restarted after a crash knows what may be half done (exactly-once
/// archiving). Completing it advances the checkpoints and deletes it in one
/// transaction ([`IntentStore::complete_intent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadIntent {
    /// The consumer's name.
    pub client: String,
    /// The real Kinesis stream name.
    pub stream: String,
    /// The archive's key: the intent's identity.
    pub key: String,
    /// What the upload holds, as its writer describes it (for `triton
    /// store`, the metadata sidecar's JSON: per-shard sequence ranges and
    /// counts, sizes, SHA-256). Opaque to the store.
    pub document: String,
}

impl UploadIntent {
    /// The intent's identity.
    pub fn id(&self) -> IntentId<'_> {
        IntentId {
            client: &self.client,
            stream: &self.stream,
            key: &self.key,
        }
    }
}

/// Which upload intent: the client and stream it belongs to and the key of
/// its archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntentId<'a> {
    /// The consumer's name.
    pub client: &'a str,
    /// The real Kinesis stream name.
    pub stream: &'a str,
    /// The archive's key.
    pub key: &'a str,
}

/// The underlying error of a [`CheckpointError`] (a driver's, a task's).
pub use crate::error::BoxError;

/// The result of a checkpoint store operation.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// Why a checkpoint operation failed.
///
/// When a driver's error caused it, that error is the [`source`]
/// (`std::error::Error::source`) and is not repeated in the Display text:
/// print the chain joined by `": "` for the whole story (the Display of
/// `Unavailable` is then `checkpoint database {db} is unavailable`, and
/// the chain `checkpoint database {db} is unavailable: {cause}: …`).
///
/// [`source`]: std::error::Error::source
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The database cannot be reached (connection refused, timed out, locked
    /// for too long); trying again later may succeed.
    #[error("checkpoint database {db} is unavailable{}", colon(.message))]
    Unavailable {
        /// The database, with any password redacted.
        db: String,
        /// What went wrong, beside [`source`](std::error::Error::source)
        /// (may be empty when the source says it all).
        message: String,
        /// The error that caused it, if any.
        source: Option<BoxError>,
    },
    /// The database answered with an error (a missing table, a constraint,
    /// bad SQL); trying again will not help.
    #[error("checkpoint database {db}{}", colon(.message))]
    Failed {
        /// The database, with any password redacted.
        db: String,
        /// What went wrong, beside [`source`](std::error::Error::source)
        /// (may be empty when the source says it all).
        message: String,
        /// The error that caused it, if any.
        source: Option<BoxError>,
    },
    /// A stored row holds something that is not a checkpoint.
    #[error(
        "checkpoint database {db}: row ({client}, {stream}, {shard}) holds {value:?}, \
         which is not a sequence number"
    )]
    BadRow {
        /// The database, with any password redacted.
        db: String,
        /// The row's client.
        client: String,
        /// The row's stream.
        stream: String,
        /// The row's shard.
        shard: String,
        /// What the row holds.
        value: String,
    },

    /// A fenced write found that the writer no longer holds a lease it
    /// read under (another worker took it): nothing was written.
    #[error("checkpoint database {db}: lease lost: {message}")]
    Fenced {
        /// The database, with any password redacted.
        db: String,
        /// Which lease, held by whom.
        message: String,
    },
    /// An upload intent of another live worker has this key: nothing was
    /// written (the archive takes the next second's key).
    #[error("checkpoint database {db}: the archive key {key} is another worker's upload")]
    KeyTaken {
        /// The database, with any password redacted.
        db: String,
        /// The key.
        key: String,
    },
}

/// `": message"`, or nothing for an empty message.
fn colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl CheckpointError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CheckpointError::Unavailable { .. })
    }
}

/// Storage of checkpoints, shared by every reader of a process.
///
/// Implementations must make [`save_many`](CheckpointStore::save_many)
/// atomic: after a failure, every checkpoint keeps its earlier value.
#[async_trait]
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// The last sequence number saved for (client, stream, shard), if any.
    async fn last(&self, client: &str, stream: &str, shard: &str)
        -> Result<Option<SequenceNumber>>;

    /// Saves one checkpoint, replacing the shard's earlier one.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.save_many(std::slice::from_ref(checkpoint)).await
    }

    /// Saves several checkpoints in one transaction: all or none. `triton
    /// store` saves every shard covered by one upload this way.
    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()>;

    /// Every checkpoint of `client`, ordered by stream then shard.
    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>>;

    /// Saves where consumers stopped inside aggregated records, replacing
    /// each shard's earlier one, all or none. A store that keeps none (this
    /// default) makes a reader that stopped inside an aggregate resume at
    /// the aggregate's start: user records it handled come again, none is
    /// skipped.
    async fn save_subsequences(&self, subs: &[SubCheckpoint]) -> Result<()> {
        let _ = subs;
        Ok(())
    }

    /// Every [`SubCheckpoint`] of `client`, stale ones included (the
    /// reader compares them with the checkpoints).
    async fn subsequences(&self, client: &str) -> Result<Vec<SubCheckpoint>> {
        let _ = client;
        Ok(Vec::new())
    }
}

/// Upload intents (exactly-once archiving), kept in the same database as
/// the checkpoints they advance: completing an intent saves checkpoints in
/// the intent's transaction, so an intent store is a checkpoint store too.
/// A reader that only resumes from checkpoints needs a [`CheckpointStore`]
/// alone; `triton store` with exactly-once takes an `IntentStore`.
#[async_trait]
pub trait IntentStore: CheckpointStore {
    /// Records `intent`, replacing the intent of the same key (a rebuilt
    /// archive is described anew) and, in the same transaction, the intent
    /// `replaces` of the same client and stream (an archive moved to
    /// another key).
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()>;

    /// In one transaction: saves `checkpoints` and deletes the intent. A checkpoint is only ever moved forward
    /// (numerically): one already past it, saved by another writer, stays.
    /// Each checkpoint moved also records the intent's key as the archive holding it
    /// (see [`checkpoint_archives`](IntentStore::checkpoint_archives)).
    /// After a failure all are as before.
    async fn complete_intent(&self, intent: IntentId<'_>, checkpoints: &[Checkpoint])
        -> Result<()>;

    /// The intents of `client` and `stream` not yet completed, by key.
    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>>;

    /// For each shard of `client` and `stream` whose checkpoint an upload
    /// intent completed: the shard and the key of the archive holding the
    /// checkpointed record, so that the next archive of the shard can say
    /// which archive it continues (sidecar chains). Checkpoints saved
    /// otherwise (go-triton, `save_many`) have none.
    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>>;
}

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// Implements [`CheckpointStore`] or [`IntentStore`] for a type by
/// forwarding every method, the provided ones too, to the store an
/// expression gives: `forward_checkpoint_stores!(IntentStore [generics]
/// Type, |s| store_of(s))`, with `s: &Type`. `deny(clippy::missing_trait_methods)`
/// checks that no method is left to its default, which would bypass the
/// target's own. Used for `Box`, `Arc` and `&` of a store here, and by
/// `triton-checkpoint` for its URL-dispatching store.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_checkpoint_stores {
    (CheckpointStore [$($generics:tt)*] $ty:ty, |$s:ident| $target:expr) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::checkpoint::__async_trait]
        impl<$($generics)*> $crate::checkpoint::CheckpointStore for $ty {
            async fn last(
                &self,
                client: &str,
                stream: &str,
                shard: &str,
            ) -> Result<Option<$crate::source::SequenceNumber>, $crate::checkpoint::CheckpointError>
            {
                let $s = self;
                $target.last(client, stream, shard).await
            }

            async fn save(
                &self,
                checkpoint: &$crate::checkpoint::Checkpoint,
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.save(checkpoint).await
            }

            async fn save_many(
                &self,
                checkpoints: &[$crate::checkpoint::Checkpoint],
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.save_many(checkpoints).await
            }

            async fn list(
                &self,
                client: &str,
            ) -> Result<Vec<$crate::checkpoint::SavedCheckpoint>, $crate::checkpoint::CheckpointError>
            {
                let $s = self;
                $target.list(client).await
            }

            async fn save_subsequences(
                &self,
                subs: &[$crate::checkpoint::SubCheckpoint],
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.save_subsequences(subs).await
            }

            async fn subsequences(
                &self,
                client: &str,
            ) -> Result<Vec<$crate::checkpoint::SubCheckpoint>, $crate::checkpoint::CheckpointError>
            {
                let $s = self;
                $target.subsequences(client).await
            }
        }
    };
    (IntentStore [$($generics:tt)*] $ty:ty, |$s:ident| $target:expr) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::checkpoint::__async_trait]
        impl<$($generics)*> $crate::checkpoint::IntentStore for $ty {
            async fn record_intent(
                &self,
                intent: &$crate::checkpoint::UploadIntent,
                replaces: Option<&str>,
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.record_intent(intent, replaces).await
            }

            async fn complete_intent(
                &self,
                intent: $crate::checkpoint::IntentId<'_>,
                checkpoints: &[$crate::checkpoint::Checkpoint],
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.complete_intent(intent, checkpoints).await
            }

            async fn intents(
                &self,
                client: &str,
                stream: &str,
            ) -> Result<Vec<$crate::checkpoint::UploadIntent>, $crate::checkpoint::CheckpointError>
            {
                let $s = self;
                $target.intents(client, stream).await
            }

            async fn checkpoint_archives(
                &self,
                client: &str,
                stream: &str,
            ) -> Result<Vec<(String, String)>, $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.checkpoint_archives(client, stream).await
            }
        }
    };
}

forward_checkpoint_stores!(CheckpointStore [T: CheckpointStore + ?Sized] Box<T>, |s| (**s));
forward_checkpoint_stores!(CheckpointStore [T: CheckpointStore + ?Sized] std::sync::Arc<T>, |s| (**s));
forward_checkpoint_stores!(CheckpointStore [T: CheckpointStore + ?Sized] &T, |s| (**s));
forward_checkpoint_stores!(IntentStore [T: IntentStore + ?Sized] Box<T>, |s| (**s));
forward_checkpoint_stores!(IntentStore [T: IntentStore + ?Sized] std::sync::Arc<T>, |s| (**s));
forward_checkpoint_stores!(IntentStore [T: IntentStore + ?Sized] &T, |s| (**s));

/// Seconds since the Unix epoch now, as stored in `updated`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
