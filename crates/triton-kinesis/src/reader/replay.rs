//! [`KinesisReplay`]: reads recorded sequence ranges of a stream again, for
//! exactly-once recovery (an archive whose upload was lost is rebuilt from
//! exactly the records it held).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use triton_core::retry::Backoff;
use triton_core::source::{
    Position, RecordSource, Replay, SequenceNumber, SequenceRange, SourceError, SourceRecord,
};

use super::plan::Start;
use super::shard::{convert, shard_iterator, MIN_CALL_GAP};
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
        }))
    }
}

/// Reads each range from `AT_SEQUENCE_NUMBER` of its first record until its
/// last record, the shard's end, or the shard's tip (then the rest is not
/// in the stream).
struct RangeReader {
    client: Client,
    stream: String,
    ranges: VecDeque<SequenceRange>,
    iterator: Option<String>,
    /// The last record delivered of the current range.
    delivered: Option<SequenceNumber>,
}

impl RangeReader {
    /// Goes on with the next range.
    fn next_range(&mut self) {
        self.ranges.pop_front();
        self.iterator = None;
        self.delivered = None;
    }

    fn fail(&self, e: KinesisError) -> SourceError {
        SourceError::Unavailable {
            what: format!("Kinesis stream {}", self.stream),
            detail: e.to_string(),
        }
    }
}

#[async_trait]
impl RecordSource for RangeReader {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
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
                        None => Start::At(range.first.clone()),
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
                        ErrorKind::NotFound => self.next_range(),
                        _ if e.is_retryable() => {
                            self.iterator = Some(iterator);
                            let delay = backoff.next_delay().max(MIN_CALL_GAP);
                            tracing::warn!(shard = %shard, error = %e, retry_in = ?delay, "GetRecords failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                        _ => return Err(self.fail(e)),
                    }
                    continue;
                }
            };
            backoff.reset();
            let caught_up = out.records.is_empty() && out.millis_behind_latest.unwrap_or(0) == 0;
            let mut records =
                convert(&self.stream, &shard, out.records).map_err(|e| self.fail(e))?;
            let before = records.len();
            records.retain(|r| matches!(&r.position, Position::Sequence(s) if *s <= range.last));
            let reached_last = records.len() < before
                || records
                    .last()
                    .is_some_and(|r| r.position == Position::Sequence(range.last.clone()));
            if let Some(Position::Sequence(seq)) = records.last().map(|r| &r.position) {
                self.delivered = Some(seq.clone());
            }
            match out.next_shard_iterator {
                Some(next) if !reached_last && !caught_up => self.iterator = Some(next),
                _ => {
                    if !reached_last {
                        tracing::debug!(shard = %shard, "the shard ends before the range's last record");
                    }
                    self.next_range();
                }
            }
            if !records.is_empty() {
                return Ok(Some(records));
            }
            if self.iterator.is_some() {
                tokio::time::sleep(MIN_CALL_GAP).await;
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
