//! [`KinesisReplay`]: reads recorded sequence ranges of a stream again, for
//! exactly-once recovery (an archive whose upload was lost is rebuilt from
//! exactly the records it held).

use std::collections::VecDeque;
use std::sync::Arc;
use triton_core::error::Report;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use tokio::time::Instant;
use triton_core::error::BoxError;
use triton_core::retry::{policies, Backoff};
use triton_core::source::{
    Position, RangeStart, RecordSource, Replay, SequenceNumber, SequenceRange, SourceError,
    SourceRecord,
};

use super::plan::Start;
use super::records::Converter;
use super::shard::{shard_iterator, MIN_CALL_GAP};
use crate::error::{ErrorKind, KinesisError};

/// Replays ranges of one stream (its real name).
#[derive(Clone, Debug)]
pub struct KinesisReplay {
    client: Client,
    stream: String,
}

impl KinesisReplay {
    /// Ranges of `stream` through `client`.
    pub fn new(client: Client, stream: impl Into<String>) -> KinesisReplay {
        KinesisReplay {
            client,
            stream: stream.into(),
        }
    }
}

#[async_trait]
impl Replay for KinesisReplay {
    async fn replay(
        &self,
        ranges: Vec<SequenceRange>,
    ) -> Result<Box<dyn RecordSource>, SourceError> {
        Ok(Box::new(RangeReader {
            client: self.client.clone(),
            stream: self.stream.clone(),
            ranges: ranges.into(),
            iterator: None,
            delivered: None,
            at_tip: 0,
            next_call: Instant::now(),
            backoff: policies::KINESIS_READ.backoff(),
        }))
    }
}

/// Empty answers at the stream's tip after which a range with nothing
/// delivered is taken as gone (about 2 s at the call rate limit).
const TIP_POLLS: u32 = 10;

/// Reads each range from `AT_SEQUENCE_NUMBER` of its first record (or
/// `AFTER_SEQUENCE_NUMBER` of the record before) until its
/// last record or the shard's end. Reaching the stream's tip first is an
/// error once records of the range came (everything up to its last record
/// is newer than them, so it cannot have expired); with nothing delivered,
/// the range is gone (past retention).
struct RangeReader {
    client: Client,
    stream: String,
    ranges: VecDeque<SequenceRange>,
    iterator: Option<String>,
    /// The last record delivered of the current range.
    delivered: Option<SequenceNumber>,
    /// Empty answers in a row at the tip.
    at_tip: u32,
    /// Kinesis allows 5 GetRecords calls per second and shard.
    next_call: Instant,
    backoff: Backoff,
}

impl RangeReader {
    /// Goes on with the next range.
    fn next_range(&mut self) {
        self.ranges.pop_front();
        self.iterator = None;
        self.delivered = None;
        self.at_tip = 0;
    }

    fn fail(&self, e: impl Into<BoxError>) -> SourceError {
        SourceError::unavailable(format!("Kinesis stream {}", self.stream), e)
    }
}

#[async_trait]
impl RecordSource for RangeReader {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        loop {
            let Some(range) = self.ranges.front().cloned() else {
                return Ok(None);
            };
            let shard: Arc<str> = range.shard.as_str().into();
            let iterator = match self.iterator.take() {
                Some(it) => it,
                None => {
                    let start = match &self.delivered {
                        Some(seq) => Start::After(seq.clone()),
                        None => match &range.start {
                            RangeStart::At(first) => Start::At(first.clone()),
                            RangeStart::After(after) => Start::After(after.clone()),
                        },
                    };
                    match shard_iterator(&self.client, &self.stream, &shard, &start)
                        .await
                        .map_err(|e| self.fail(e))?
                    {
                        Some(it) => it,
                        None => {
                            tracing::error!(shard = %shard, "the shard is no longer in the stream: its range cannot be read again");
                            self.next_range();
                            continue;
                        }
                    }
                }
            };
            tokio::time::sleep_until(self.next_call).await;
            self.next_call = Instant::now() + MIN_CALL_GAP;
            let limit = i32::try_from(max.clamp(1, 10_000)).unwrap_or(10_000);
            let response = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit)
                .send()
                .await;
            let out = match response {
                Ok(out) => out,
                Err(e) => {
                    let e = KinesisError::from_sdk("GetRecords", &self.stream, e);
                    match e.kind {
                        // A new iterator from the last record delivered.
                        ErrorKind::ExpiredIterator => {}
                        ErrorKind::NotFound => {
                            tracing::error!(shard = %shard, "the shard is no longer in the stream: its range cannot be read again");
                            self.next_range();
                        }
                        _ if e.is_retryable() => {
                            self.iterator = Some(iterator);
                            let Some(delay) = self.backoff.next_delay() else {
                                return Err(self.fail(e));
                            };
                            let delay = delay.max(MIN_CALL_GAP);
                            tracing::warn!(shard = %shard, error = %Report(&e), retry_in = ?delay, "GetRecords failed; retrying");
                            self.next_call = Instant::now() + delay;
                        }
                        _ => return Err(self.fail(e)),
                    }
                    continue;
                }
            };
            self.backoff.reset();
            let behind = out.millis_behind_latest.unwrap_or(0) > 0;
            self.at_tip = if out.records.is_empty() && !behind {
                self.at_tip + 1
            } else {
                0
            };
            // (Ranges are whole Kinesis records: an aggregate comes whole.)
            let mut records = Converter::new(&self.stream, &shard, None)
                .convert(out.records)
                .map_err(|e| self.fail(e))?;
            let before = records.len();
            records.retain(|r| r.position.sequence().is_some_and(|s| *s <= range.last));
            let reached_last = records.len() < before
                || records
                    .last()
                    .is_some_and(|r| r.position == Position::Sequence(range.last.clone()));
            if let Some(seq) = records.last().and_then(|r| r.position.sequence()) {
                self.delivered = Some(seq.clone());
            }
            match out.next_shard_iterator {
                Some(_) if self.at_tip >= TIP_POLLS => match &self.delivered {
                    None => {
                        tracing::debug!(shard = %shard, "nothing of the range is in the stream");
                        self.next_range();
                    }
                    Some(seq) => {
                        return Err(self.fail(format!(
                            "shard {shard}: the stream ends at {seq}, before the range's last record {}",
                            range.last
                        )))
                    }
                },
                Some(next) if !reached_last => self.iterator = Some(next),
                // The range's last record, or the end of a closed shard.
                _ => self.next_range(),
            }
            if !records.is_empty() {
                return Ok(Some(records));
            }
        }
    }

    async fn ack(&mut self, _source: &str, _position: &Position) -> Result<(), SourceError> {
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
