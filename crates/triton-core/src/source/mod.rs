//! [`RecordSource`]: the one interface through which consumers read records,
//! whether they come from Kinesis shards, S3 archives or local files.
//!
//! A source hands out batches of [`SourceRecord`]s, each tagged with where it
//! came from (a shard id, an archive key or path) and its [`Position`] there.
//! The consumer acknowledges what it has durably handled with
//! [`RecordSource::ack`]; a source that checkpoints (the Kinesis reader)
//! checkpoints only acknowledged positions, never what it merely fetched.
//!
//! The end of the data is `Ok(None)`; damaged data is an error for which
//! [`SourceError::is_corrupt`] is true, so a consumer can tell the two apart
//! and may call `next_batch` again to go on with the next archive.
//!
//! This module has the in-process implementations: [`FileSource`] over local
//! `.tri` files and [`MemorySource`] for tests and benchmarks. Adapter crates
//! add the network backends.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod file;
mod memory;
mod position;
mod reader;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::BoxError;
use crate::msgpack::{self, RecordError};
use crate::value::Record;

pub use self::file::FileSource;
pub use self::memory::MemorySource;
pub use self::position::{InvalidSequenceNumber, Position, SequenceNumber};
pub use self::reader::RecordReader;

/// One record as a source delivers it: raw MessagePack bytes plus where they
/// came from.
///
/// The bytes are not validated by every source (a Kinesis blob can hold
/// anything a producer sent); [`SourceRecord::record`] validates and decodes.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// The sub-source: a shard id, an archive key or a file path.
    pub source: Arc<str>,
    /// Position within `source`.
    pub position: Position,
    /// The record's MessagePack bytes.
    pub data: Vec<u8>,
    /// What else the source knows of the record.
    pub meta: RecordMeta,
}

/// What a source knows of a record beside its bytes and position: the
/// live stream knows these, archives do not (they keep records only, as
/// go-triton wrote them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// When the stream received the record (Kinesis' approximate arrival
    /// time), in milliseconds since the Unix epoch.
    pub arrival_ms: Option<i64>,
    /// The partition key it was written with (a user record's own, for a
    /// record of an aggregate).
    pub partition_key: Option<String>,
    /// The explicit hash key of a user record of an aggregate, if it was
    /// put with one (Kinesis does not return a plain record's).
    pub explicit_hash_key: Option<String>,
    /// For a user record of an aggregated Kinesis record (the KPL's
    /// format): its index in the aggregate (the KCL's sub-sequence number)
    /// and how many user records the aggregate holds.
    pub aggregate: Option<AggregateMeta>,
}

/// Where a user record sits in its aggregated Kinesis record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateMeta {
    /// Its index (0 = the first).
    pub sub: u32,
    /// User records in the aggregate.
    pub records: u32,
}

impl SourceRecord {
    /// Checks that the bytes are exactly one record (one MessagePack map),
    /// without building values. Sources deliver records that fail this as
    /// they are, so that consumers can keep them (a dead-letter archive)
    /// instead of losing them.
    pub fn validate(&self) -> Result<(), RecordError> {
        msgpack::validate_record(&self.data)
    }

    /// Decodes the bytes as one record.
    pub fn record(&self) -> Result<Record, RecordError> {
        msgpack::decode_record(&self.data)
    }

    /// A view of the bytes as one record, fields decoded as they are read
    /// (validates the bytes first; see [`RecordRef`](msgpack::RecordRef)).
    pub fn view(&self) -> Result<msgpack::RecordRef<'_>, RecordError> {
        msgpack::RecordRef::new(&self.data)
    }

    /// Reads the bytes into any serde type, in one pass and without building
    /// values; strings and bytes are borrowed where `T` borrows them.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, RecordError> {
        msgpack::from_record_slice(&self.data)
    }
}

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The data of `source` is damaged from `position` on; records before it
    /// were delivered. Calling `next_batch` again goes on with the next
    /// sub-source, if the source has one.
    #[error("{source_id}: {detail}")]
    Corrupt {
        /// The sub-source (archive key, path, shard).
        source_id: String,
        /// The first record that could not be read.
        position: Position,
        /// What is wrong, with byte offsets where known.
        detail: String,
    },
    /// The backing service or file could not be reached or read; retrying
    /// may succeed. The cause (a Kinesis or S3 error, an I/O error) is the
    /// error's [`source`](std::error::Error::source).
    #[error("{what}")]
    Unavailable {
        /// What was being accessed.
        what: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// What the source reads does not exist (a missing stream); retrying
    /// will not help.
    #[error("{what}")]
    NotFound {
        /// What is missing, e.g. `Kinesis stream events`.
        what: String,
        /// The service's answer.
        #[source]
        source: BoxError,
    },
    /// The backing service refused for good (access denied, a bad option);
    /// retrying will not help.
    #[error("{what}")]
    Failed {
        /// What was being accessed.
        what: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// An acknowledgement for a source or position the source never
    /// delivered.
    #[error("cannot acknowledge {position} of {source_id}: {reason}")]
    BadAck {
        /// The sub-source named in the acknowledgement.
        source_id: String,
        /// The position named in it.
        position: Position,
        /// Why it was refused.
        reason: String,
    },
}

impl SourceError {
    /// [`SourceError::Unavailable`]: `what` could not be reached because of
    /// `cause` (an error, or a message).
    pub fn unavailable(what: impl Into<String>, cause: impl Into<BoxError>) -> SourceError {
        SourceError::Unavailable {
            what: what.into(),
            source: cause.into(),
        }
    }

    /// [`SourceError::NotFound`].
    pub fn not_found(what: impl Into<String>, cause: impl Into<BoxError>) -> SourceError {
        SourceError::NotFound {
            what: what.into(),
            source: cause.into(),
        }
    }

    /// [`SourceError::Failed`].
    pub fn failed(what: impl Into<String>, cause: impl Into<BoxError>) -> SourceError {
        SourceError::Failed {
            what: what.into(),
            source: cause.into(),
        }
    }

    /// True when data is damaged (as opposed to the end of the data, or an
    /// outage).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, SourceError::Corrupt { .. })
    }
}

/// A stream of records that a consumer reads in batches and acknowledges.
#[async_trait]
pub trait RecordSource: Send {
    /// The next batch of at most `max` records (at least one), or `None` at
    /// the end of a finite source. A batch never ends inside an aggregated
    /// Kinesis record ([`Position::SubSequence`]): it holds more than `max`
    /// records rather than split one. Live sources wait for data instead of
    /// returning an empty batch. Must be cancel-safe: a call dropped before
    /// it returns (a consumer waiting on a timer too) loses no record, and
    /// a wait it began goes on in the next call instead of starting again
    /// (the archiver drops a waiting call every second while an archive is
    /// open, to look for ended shards).
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError>;

    /// Records that everything of `source` up to and including `position`
    /// has been durably handled by the consumer.
    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError>;

    /// Makes the acknowledgements so far durable, all or none, where the
    /// source keeps checkpoints (the Kinesis reader saves them in one
    /// transaction); sources without checkpoints do nothing. A consumer
    /// calls it after handing records on durably, e.g. after an upload.
    async fn commit(&mut self) -> Result<(), SourceError>;

    /// How far each sub-source is behind the newest data, in milliseconds,
    /// where the source knows (the Kinesis reader: each shard's
    /// `MillisBehindLatest`); empty otherwise. For metrics.
    fn behind(&self) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// Where the records of `source` begin in this run, where the source
    /// knows: archives record it, so that an audit can tell where a
    /// shard's archived records continue from.
    fn origin(&self, _source: &str) -> Option<Origin> {
        None
    }

    /// True once every record of `source` was delivered and it will never
    /// have more (a Kinesis shard closed by a split or merge, read to its
    /// end).
    fn ended(&self, _source: &str) -> bool {
        false
    }
}

/// Where a sub-source's records begin in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Just after this position (a checkpoint).
    After(Position),
    /// At the oldest record the stream keeps.
    TrimHorizon,
    /// At the newest record when reading began, at about this time.
    Latest(std::time::SystemTime),
    /// At the first record that arrived at or after this time.
    AtTimestamp(std::time::SystemTime),
    /// At the first record of a shard made by a split or merge, after its
    /// parents (these shard ids) were read to their ends.
    AfterParents(Vec<String>),
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: RecordSource + ?Sized> RecordSource for Box<S> {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        (**self).next_batch(max).await
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        (**self).ack(source, position).await
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        (**self).commit().await
    }

    fn behind(&self) -> Vec<(String, i64)> {
        (**self).behind()
    }

    fn origin(&self, source: &str) -> Option<Origin> {
        (**self).origin(source)
    }

    fn ended(&self, source: &str) -> bool {
        (**self).ended(source)
    }
}

/// A shard's records from `start` through `last`, to be read again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceRange {
    /// The shard id.
    pub shard: String,
    /// Where the range begins.
    pub start: RangeStart,
    /// The last record's sequence number.
    pub last: SequenceNumber,
}

/// Where a [`SequenceRange`] begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeStart {
    /// At the record with this sequence number (an archive's first record,
    /// as its sidecar records it).
    At(SequenceNumber),
    /// After the record with this sequence number (the last record of the
    /// archive before: how a chain's link names where records continue).
    After(SequenceNumber),
}

impl SequenceRange {
    /// The records of `shard` from `first` through `last`.
    pub fn inclusive(
        shard: impl Into<String>,
        first: SequenceNumber,
        last: SequenceNumber,
    ) -> SequenceRange {
        SequenceRange {
            shard: shard.into(),
            start: RangeStart::At(first),
            last,
        }
    }

    /// Whether the record `sequence` of the range's shard is in it.
    pub fn contains(&self, sequence: &SequenceNumber) -> bool {
        let started = match &self.start {
            RangeStart::At(first) => sequence >= first,
            RangeStart::After(after) => sequence > after,
        };
        started && *sequence <= self.last
    }

    /// The records of `shard` after `after` through `last`.
    pub fn after(
        shard: impl Into<String>,
        after: SequenceNumber,
        last: SequenceNumber,
    ) -> SequenceRange {
        SequenceRange {
            shard: shard.into(),
            start: RangeStart::After(after),
            last,
        }
    }
}

/// A stream that can deliver recorded ranges again (Kinesis, within its
/// retention period): exactly-once recovery rebuilds an archive whose
/// upload was lost from them.
#[async_trait]
pub trait Replay: Send + Sync {
    /// A finite source of the records of each range in turn, in order.
    /// Records the stream no longer holds are missing, not an error: the
    /// caller compares what came with what it expected.
    async fn replay(
        &self,
        ranges: Vec<SequenceRange>,
    ) -> Result<Box<dyn RecordSource>, SourceError>;
}

/// Helpers available on every [`RecordSource`].
#[async_trait]
pub trait RecordSourceExt: RecordSource {
    /// Reads a finite source to its end. Stops at the first error.
    async fn read_to_end(&mut self) -> Result<Vec<SourceRecord>, SourceError> {
        let mut all = Vec::new();
        while let Some(batch) = self.next_batch(1024).await? {
            all.extend(batch);
        }
        Ok(all)
    }
}

impl<S: RecordSource + ?Sized> RecordSourceExt for S {}

/// Remembers the last acknowledged position of each sub-source, refusing
/// acknowledgements that go backwards or name positions never delivered:
/// the bookkeeping every [`RecordSource::ack`] needs, for implementations
/// in other crates too.
#[derive(Debug, Default)]
pub struct Acks {
    delivered: std::collections::HashMap<Arc<str>, Position>,
    acked: std::collections::HashMap<Arc<str>, Position>,
}

impl Acks {
    /// Notes that `r` (the last of a batch) was delivered.
    pub fn delivered(&mut self, r: &SourceRecord) {
        self.delivered.insert(r.source.clone(), r.position.clone());
    }

    /// Records an acknowledgement, or refuses it with [`SourceError::BadAck`].
    pub fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        let refuse = |reason: &str| SourceError::BadAck {
            source_id: source.to_string(),
            position: position.clone(),
            reason: reason.to_string(),
        };
        let Some((key, last)) = self.delivered.get_key_value(source) else {
            return Err(refuse("no record of it was delivered"));
        };
        if position > last {
            return Err(refuse("it was not delivered yet"));
        }
        if self.acked.get(source).is_some_and(|prev| position < prev) {
            return Err(refuse("a later position was already acknowledged"));
        }
        self.acked.insert(key.clone(), position.clone());
        Ok(())
    }

    /// The last acknowledged position of each sub-source.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&str, &Position)> {
        self.acked.iter().map(|(k, v)| (&**k, v))
    }
}
