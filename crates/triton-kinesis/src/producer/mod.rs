//! [`Producer`]: records into `PutRecords` batches, resending only what
//! failed, optionally packed into KPL aggregates ([`aggregate`]).

mod aggregate;
mod background;

pub use self::background::{BackgroundOptions, BackgroundProducer, Delivery, WhenFull};

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use triton_core::error::Report;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, PutRecordsResultEntry};
use aws_sdk_kinesis::Client;
use serde::Serialize;
use triton_core::config::StreamConfig;
use triton_core::msgpack::{self, RecordError};
use triton_core::source::SequenceNumber;
use triton_core::value::{Record, Value};

use crate::error::{ErrorKind, KinesisError};
use triton_core::retry::policies;

/// Kinesis limits for one PutRecords call and one record.
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Data plus partition key.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
const MAX_KEY_CHARS: usize = 256;
/// The largest aggregate: a record less room for the longest key (256
/// characters of up to 4 bytes).
const MAX_AGGREGATE_BYTES: usize = MAX_RECORD_BYTES - 4 * MAX_KEY_CHARS;

/// How the producer batches and retries.
#[derive(Clone, Debug)]
pub struct ProducerOptions {
    /// Records without the partition key field get a random key instead of
    /// being refused.
    pub random_keys: bool,
    /// Attempts per record before [`Producer::flush`] gives up and returns
    /// what was not written.
    pub max_attempts: u32,
    /// First retry delay; doubles up to 10 s
    /// ([`policies::KINESIS_PUT`](triton_core::retry::policies::KINESIS_PUT)).
    pub backoff: Duration,
    /// Put at most one record of each partition key in a call (the
    /// default). Kinesis may refuse an earlier entry of a call and accept a
    /// later one of the same key; with this set that cannot happen, so
    /// every key's records are written strictly in order. It costs calls
    /// when few keys carry many records; turn it off where order does not
    /// matter, and reordering is then counted in
    /// [`ProducerStats::reordered`].
    pub strict_order: bool,
    /// Pack records into aggregated Kinesis records (the KPL's format,
    /// which every triton reader, the KCL and the KPL's ports read) within
    /// these limits; `None` (the default) sends each record as one Kinesis
    /// record. Records are grouped by the shard their partition key maps
    /// to (the shard map is listed when the producer starts and again
    /// every 30 s), so each key's records stay in one shard and in order;
    /// an aggregate goes with its first record's key. Kinesis bills and
    /// throttles per Kinesis record (on-demand streams at least 1 KiB
    /// each), so small records cost far less aggregated.
    pub aggregation: Option<triton_kpl::Limits>,
}

impl Default for ProducerOptions {
    fn default() -> ProducerOptions {
        ProducerOptions {
            random_keys: false,
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            strict_order: true,
            aggregation: None,
        }
    }
}

/// Where one record was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The shard that took it.
    pub shard_id: String,
    /// Its sequence number there (the aggregate's, for an aggregated
    /// record).
    pub sequence_number: SequenceNumber,
    /// Its index in the aggregate it was sent in, if it was aggregated.
    pub sub_sequence: Option<u32>,
}

/// Counters since the producer was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Records written.
    pub records: u64,
    /// Kinesis records written: fewer than `records` when aggregated.
    pub kinesis_records: u64,
    /// PutRecords calls that were answered.
    pub calls: u64,
    /// Entries sent again after a partial failure, and whole calls
    /// repeated after throttling or an outage.
    pub retries: u64,
    /// Records written ahead of an earlier record of their key that the
    /// same call refused (never with `strict_order`).
    pub reordered: u64,
}

/// Why records could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The record is not one MessagePack map.
    #[error("record is not a MessagePack map")]
    Invalid(#[from] RecordError),
    /// The record has no usable partition key.
    #[error("{0}")]
    PartitionKey(String),
    /// The record is over Kinesis' 1 MiB limit (data plus key).
    #[error("record of {size} bytes (with its partition key) is over the Kinesis limit of 1 MiB")]
    TooLarge {
        /// Data plus partition key, in bytes.
        size: usize,
    },
    /// Kinesis kept failing. `unwritten` are the records (MessagePack
    /// bytes, in order) that were not written; `written` has the receipts
    /// of those that were, since the last flush.
    #[error("{} records not written: {cause}", unwritten.len())]
    Unwritten {
        /// The last error.
        cause: Box<KinesisError>,
        /// Records not written, oldest first.
        unwritten: Vec<Vec<u8>>,
        /// Receipts of the records written since the last flush.
        written: Vec<Receipt>,
    },
    /// The record was not written (a [`BackgroundProducer`]'s delivery):
    /// Kinesis kept failing, for this reason.
    #[error("record not written: {0}")]
    NotWritten(Box<KinesisError>),
    /// A [`BackgroundProducer`]'s queue is full and
    /// [`WhenFull::Error`] was chosen.
    #[error("the producer's queue of {0} records is full")]
    QueueFull(usize),
    /// The [`BackgroundProducer`] was closed.
    #[error("the producer is closed")]
    Closed,
}

/// One Kinesis record to put: a record, or an aggregate of records.
struct Entry {
    data: Vec<u8>,
    key: String,
    /// What a call holds at most one entry of in strict order: the
    /// partition key, or for an aggregate the shard it is meant for.
    order_key: String,
    /// Indexes among the records sent since the last flush of the records
    /// it holds (one unless it is an aggregate).
    indexes: Vec<usize>,
    aggregated: bool,
    attempts: u32,
}

impl Entry {
    /// Record `index` sent as one Kinesis record, ordered by `order_key`.
    fn plain(data: Vec<u8>, key: String, order_key: String, index: usize) -> Entry {
        Entry {
            data,
            key,
            order_key,
            indexes: vec![index],
            aggregated: false,
            attempts: 0,
        }
    }

    fn size(&self) -> usize {
        self.data.len() + self.key.len()
    }

    /// The records it holds, as they were sent.
    fn into_records(self) -> Vec<Vec<u8>> {
        if !self.aggregated {
            return vec![self.data];
        }
        match triton_kpl::deaggregate(&self.data) {
            Ok(Some(users)) => users.into_iter().map(|u| u.data).collect(),
            // Written here a moment ago: cannot fail.
            _ => vec![self.data],
        }
    }
}

/// Writes records to one stream.
///
/// Records are queued and sent 500 at a time (or 5 MiB); `send` waits for
/// a call when a batch is full, so memory stays at about one batch.
/// [`flush`](Producer::flush) sends the rest and returns where each record
/// went.
///
/// Ordering: one call is in flight at a time, entries that failed go back
/// to the head of the queue ahead of every later record, and by default a
/// call holds at most one record of each key
/// ([`ProducerOptions::strict_order`]), so each key's records are written
/// in the order they were sent.
pub struct Producer {
    client: Client,
    stream: String,
    key_field: Option<String>,
    options: ProducerOptions,
    queue: VecDeque<Entry>,
    queued_bytes: usize,
    receipts: Vec<Option<Receipt>>,
    stats: ProducerStats,
    random_state: u64,
    /// Records being packed into aggregates (with aggregation on).
    packing: Option<aggregate::Packing>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.stream)
            .field("key_field", &self.key_field)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Producer {
    /// A producer for the stream `config` describes: its real name and its
    /// partition key field.
    pub fn new(client: Client, config: &StreamConfig, options: ProducerOptions) -> Producer {
        Producer {
            client,
            stream: config.name.clone(),
            key_field: config.partition_key().map(str::to_string),
            queue: VecDeque::new(),
            queued_bytes: 0,
            receipts: Vec::new(),
            stats: ProducerStats::default(),
            random_state: seed(),
            packing: options.aggregation.map(|limits| {
                aggregate::Packing::new(triton_kpl::Limits {
                    // An aggregate and its partition key must fit a record.
                    max_bytes: limits.max_bytes.min(MAX_AGGREGATE_BYTES),
                    ..limits
                })
            }),
            options,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ProducerStats {
        self.stats
    }

    /// Queues a dynamic record.
    pub async fn send(&mut self, record: &Record) -> Result<(), ProduceError> {
        let key = self.key_of(record)?;
        let mut data = Vec::new();
        msgpack::encode_record(record, &mut data);
        let sent = self.enqueue(data, key).await;
        self.forget_on_failure(sent)
    }

    /// After a failure that handed the caller the receipts so far, starts
    /// counting again.
    fn forget_on_failure(&mut self, r: Result<(), ProduceError>) -> Result<(), ProduceError> {
        if matches!(r, Err(ProduceError::Unwritten { .. })) {
            self.receipts.clear();
        }
        r
    }

    /// Queues any value that serializes to a map.
    pub async fn send_serialize<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), ProduceError> {
        let data = msgpack::to_record_vec(value)?;
        self.send_raw(data).await
    }

    /// Queues a record given as MessagePack bytes; they must be one map.
    pub async fn send_raw(&mut self, data: Vec<u8>) -> Result<(), ProduceError> {
        let sent = self.enqueue_raw(data).await;
        self.forget_on_failure(sent)
    }

    /// [`send_raw`](Producer::send_raw), keeping the receipts after a
    /// failure (a background producer reads them per record).
    async fn enqueue_raw(&mut self, data: Vec<u8>) -> Result<(), ProduceError> {
        let record = msgpack::decode_record(&data)?;
        let key = self.key_of(&record)?;
        self.enqueue(data, key).await
    }

    fn key_of(&mut self, record: &Record) -> Result<String, ProduceError> {
        let Some(field) = &self.key_field else {
            if self.options.random_keys {
                return Ok(self.random_key());
            }
            return Err(ProduceError::PartitionKey(format!(
                "stream {} has no partition_key field in its config (or allow random keys)",
                self.stream
            )));
        };
        let key = match record.get(field) {
            Some(Value::Str(s)) => match s.as_str() {
                Some(s) => s.to_string(),
                None => {
                    return Err(ProduceError::PartitionKey(format!(
                        "partition key field {field:?} is not valid UTF-8"
                    )))
                }
            },
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::UInt(u)) => u.to_string(),
            Some(other) => {
                return Err(ProduceError::PartitionKey(format!(
                    "partition key field {field:?} is a {}, not a string or an integer",
                    other.kind()
                )))
            }
            None if self.options.random_keys => return Ok(self.random_key()),
            None => {
                return Err(ProduceError::PartitionKey(format!(
                    "record has no partition key field {field:?}"
                )))
            }
        };
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(ProduceError::PartitionKey(format!(
                "partition key field {field:?} has {chars} characters; Kinesis takes 1 to 256"
            )));
        }
        Ok(key)
    }

    fn random_key(&mut self) -> String {
        // xorshift64*: spreads records over shards; no need for more.
        let mut x = self.random_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random_state = x;
        format!("{:016x}", x.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    async fn enqueue(&mut self, data: Vec<u8>, key: String) -> Result<(), ProduceError> {
        let size = data.len() + key.len();
        if size > MAX_RECORD_BYTES {
            return Err(ProduceError::TooLarge { size });
        }
        if let Some(packing) = &mut self.packing {
            if let Some(packed) = packing.refresh(&self.client, &self.stream).await {
                for entry in packed {
                    self.push(entry);
                }
                // Under the new map a key may go to another shard (another
                // order key): what was packed before goes out first.
                while !self.queue.is_empty() {
                    self.put_batch().await?;
                }
            }
        }
        let index = self.receipts.len();
        self.receipts.push(None);
        match &mut self.packing {
            Some(packing) => {
                for entry in packing.add(data, key, index) {
                    self.push(entry);
                }
            }
            None => self.push(Entry::plain(data, key.clone(), key, index)),
        }
        if self.queue.len() >= MAX_BATCH_RECORDS || self.queued_bytes >= MAX_BATCH_BYTES {
            self.put_batch().await?;
        }
        Ok(())
    }

    fn push(&mut self, entry: Entry) {
        self.queued_bytes += entry.size();
        self.queue.push_back(entry);
    }

    /// Sends everything queued and returns the receipts of the records
    /// sent since the last flush, in the order they were sent.
    pub async fn flush(&mut self) -> Result<Vec<Receipt>, ProduceError> {
        let drained = self.drain().await;
        let receipts = std::mem::take(&mut self.receipts);
        drained.map(|()| receipts.into_iter().flatten().collect())
    }

    /// Sends everything queued (the aggregates being packed too).
    async fn drain(&mut self) -> Result<(), ProduceError> {
        if let Some(packing) = &mut self.packing {
            for entry in packing.finish_all() {
                self.push(entry);
            }
        }
        while !self.queue.is_empty() {
            self.put_batch().await?;
        }
        Ok(())
    }

    /// Where each record sent since the last flush went (`None`: not
    /// written), and counting starts again.
    fn take_receipts(&mut self) -> Vec<Option<Receipt>> {
        std::mem::take(&mut self.receipts)
    }

    /// One PutRecords call with the head of the queue; failed entries go
    /// back to the head. Waits out a backoff first when the head was tried
    /// before.
    async fn put_batch(&mut self) -> Result<(), ProduceError> {
        let batch = self.take_batch();
        let attempts = batch.iter().map(|e| e.attempts).max().unwrap_or(0);
        if attempts > 0 {
            let backoff = policies::KINESIS_PUT
                .with_base(self.options.backoff)
                .backoff();
            tokio::time::sleep(backoff.delay_after(attempts - 1)).await;
        }
        let entries = batch
            .iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(e.data.clone()))
                    .partition_key(&e.key)
                    .build()
                    .map_err(|err| KinesisError::fatal("PutRecords", &self.stream, err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>();
        let response = match entries {
            Ok(entries) => {
                self.client
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(entries))
                    .send()
                    .await
            }
            Err(e) => return Err(self.give_up(batch, e)),
        };
        let out = match response {
            Ok(out) => out,
            Err(e) => {
                let e = KinesisError::from_sdk("PutRecords", &self.stream, e);
                return self.requeue_all(batch, e);
            }
        };
        self.stats.calls += 1;
        // One result per entry, in order; an entry without one counts as
        // failed rather than vanishing.
        let mut results = out.records.into_iter();
        let mut failed = Vec::new();
        let mut accepted_keys = Vec::new();
        let mut last_error = None;
        for entry in batch {
            let result = results.next().unwrap_or_else(|| {
                PutRecordsResultEntry::builder()
                    .error_code("MissingResult")
                    .error_message("the response had fewer results than entries")
                    .build()
            });
            let seq = result
                .sequence_number
                .as_deref()
                .and_then(|s| SequenceNumber::new(s).ok());
            match (result.error_code, seq, result.shard_id) {
                (None, Some(sequence_number), Some(shard_id)) => {
                    // An aggregate that landed in another shard than the
                    // map said: the stream was resharded. List it again
                    // before packing more (the records sent are kept by
                    // triton's readers; the KCL would drop them).
                    if entry.aggregated && entry.order_key != shard_id {
                        if let Some(packing) = &mut self.packing {
                            packing.stale(&shard_id, &entry.order_key);
                        }
                    }
                    self.stats.records += entry.indexes.len() as u64;
                    self.stats.kinesis_records += 1;
                    accepted_keys.push((entry.indexes[0], entry.order_key.clone()));
                    for (sub, &index) in entry.indexes.iter().enumerate() {
                        self.receipts[index] = Some(Receipt {
                            shard_id: shard_id.clone(),
                            sequence_number: sequence_number.clone(),
                            sub_sequence: entry
                                .aggregated
                                .then(|| u32::try_from(sub).unwrap_or(u32::MAX)),
                        });
                    }
                }
                (code, _, _) => {
                    last_error = Some((code, result.error_message));
                    failed.push(entry);
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        let reordered = count_reordered(&failed, &accepted_keys);
        if reordered > 0 {
            self.stats.reordered += reordered;
            tracing::warn!(
                reordered,
                "Kinesis accepted records ahead of an earlier record of their partition key \
                 that it refused in the same call; use strict order to rule this out"
            );
        }
        let (code, message) = last_error.unwrap_or_default();
        let kind = match code.as_deref() {
            Some("ProvisionedThroughputExceededException") => ErrorKind::Throttled,
            _ => ErrorKind::Transient,
        };
        let error = KinesisError {
            operation: "PutRecords",
            stream: self.stream.clone(),
            kind,
            message: format!(
                "{} of the call's entries failed, last with {}: {}",
                failed.len(),
                code.as_deref().unwrap_or("no error code"),
                message.unwrap_or_default()
            ),
            code,
        };
        self.requeue_all(failed, error)
    }

    /// Takes the next call's entries from the head of the queue. In strict
    /// order, an entry whose key is already in the call stays queued, and
    /// so do the later entries of that key.
    fn take_batch(&mut self) -> Vec<Entry> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut keys = HashSet::new();
        let mut skipped = VecDeque::new();
        while let Some(e) = self.queue.pop_front() {
            if batch.len() == MAX_BATCH_RECORDS || bytes + e.size() > MAX_BATCH_BYTES {
                self.queue.push_front(e);
                break;
            }
            if self.options.strict_order && !keys.insert(e.order_key.clone()) {
                skipped.push_back(e);
                continue;
            }
            bytes += e.size();
            self.queued_bytes -= e.size();
            batch.push(e);
        }
        while let Some(e) = skipped.pop_back() {
            self.queue.push_front(e);
        }
        batch
    }

    /// Puts `entries` back at the head of the queue for another attempt, or
    /// gives up when the error is not retryable or they were tried enough.
    fn requeue_all(
        &mut self,
        entries: Vec<Entry>,
        error: KinesisError,
    ) -> Result<(), ProduceError> {
        let exhausted = entries
            .iter()
            .any(|e| e.attempts + 1 >= self.options.max_attempts);
        if !error.is_retryable() || exhausted {
            return Err(self.give_up(entries, error));
        }
        tracing::warn!(error = %Report(&error), entries = entries.len(), "PutRecords failed; retrying those entries");
        self.stats.retries += entries.len() as u64;
        for mut e in entries.into_iter().rev() {
            e.attempts += 1;
            self.queued_bytes += e.size();
            self.queue.push_front(e);
        }
        Ok(())
    }

    /// Empties the queue into an error holding everything not written.
    fn give_up(&mut self, head: Vec<Entry>, cause: KinesisError) -> ProduceError {
        let packed = self
            .packing
            .as_mut()
            .map(aggregate::Packing::finish_all)
            .unwrap_or_default();
        let mut unwritten: Vec<(usize, Vec<u8>)> = head
            .into_iter()
            .chain(self.queue.drain(..))
            .chain(packed)
            .flat_map(|e| e.indexes.clone().into_iter().zip(e.into_records()))
            .collect();
        // Oldest first: records still being packed may be older than
        // queued aggregates of other shards.
        unwritten.sort_by_key(|(index, _)| *index);
        let unwritten = unwritten.into_iter().map(|(_, data)| data).collect();
        self.queued_bytes = 0;
        let written = self.receipts.iter().flatten().cloned().collect();
        ProduceError::Unwritten {
            cause: Box::new(cause),
            unwritten,
            written,
        }
    }
}

/// Accepted entries that came after a refused entry of the same key.
fn count_reordered(failed: &[Entry], accepted: &[(usize, String)]) -> u64 {
    let mut first_failed: HashMap<&str, usize> = HashMap::new();
    for e in failed {
        first_failed
            .entry(e.order_key.as_str())
            .or_insert(e.indexes[0]);
    }
    accepted
        .iter()
        .filter(|(index, key)| first_failed.get(key.as_str()).is_some_and(|f| f < index))
        .count() as u64
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(1);
    h.finish() | 1
}
