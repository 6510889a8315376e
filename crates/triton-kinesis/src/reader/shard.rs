//! One shard's polling task: gets records and hands them to the reader, at
//! most `prefetch` batches ahead of the consumer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use triton_core::error::Report;

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use triton_core::source::{Position, SourceRecord};

use super::plan::Start;
use super::records::Converter;
use crate::error::{ErrorKind, KinesisError};
use crate::shards::ShardInfo;
use triton_core::retry::{policies, retry};

/// Kinesis allows 5 GetRecords calls per second and shard.
pub(crate) const MIN_CALL_GAP: Duration = Duration::from_millis(200);

/// How far before the first LATEST iterator a renewed one starts: more than
/// the clocks of a synchronised host and Kinesis differ.
const LATEST_CLOCK_MARGIN: Duration = Duration::from_secs(5);

/// What shard tasks tell the reader, in order per shard.
#[derive(Debug)]
pub(crate) enum Event {
    /// Records, holding one of the shard's prefetch permits until the
    /// consumer has taken them.
    Records {
        shard: Arc<str>,
        records: Vec<SourceRecord>,
        permit: OwnedSemaphorePermit,
        millis_behind: Option<i64>,
    },
    /// A call brought no record: how far behind the shard is now (so that
    /// a shard at its tip without traffic is seen caught up).
    Behind {
        shard: Arc<str>,
        millis_behind: Option<i64>,
    },
    /// The shard is closed and every record of it was sent.
    End { shard: Arc<str> },
    /// A failure that retrying cannot fix; the task has stopped.
    Failed {
        shard: Arc<str>,
        error: KinesisError,
    },
}

/// Everything a shard task needs.
pub(crate) struct ShardTask {
    pub(crate) client: Client,
    pub(crate) stream: String,
    pub(crate) shard: Arc<str>,
    /// The shard as listed (its hash key range).
    pub(crate) info: Option<ShardInfo>,
    pub(crate) start: Start,
    pub(crate) limit: i32,
    pub(crate) poll_interval: Duration,
    pub(crate) prefetch: Arc<Semaphore>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
}

impl ShardTask {
    pub(crate) async fn run(self) {
        if let Err(error) = self.poll().await {
            let shard = self.shard.clone();
            let _ = self.events.send(Event::Failed { shard, error });
        }
    }

    /// Polls until the shard ends (Ok) or fails for good (Err). Returns
    /// early, quietly, when the reader has gone away.
    async fn poll(&self) -> Result<(), KinesisError> {
        // Moves past each fetched record, so that an iterator renewed after
        // expiring goes on from the last record handed over.
        let mut start = self.start.clone();
        tracing::debug!(shard = %self.shard, ?start, "starting shard");
        // LATEST names a position only when the iterator is made: an
        // iterator renewed before anything was read must not stand later
        // than this one, or what arrived meanwhile is skipped. It is renewed
        // at the time this one was asked for, less a margin for the clocks
        // of this host and Kinesis (records of the margin are read too,
        // never records missed).
        let latest_opened = SystemTime::now()
            .checked_sub(LATEST_CLOCK_MARGIN)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let Some(mut iterator) = self.iterator(&start).await? else {
            self.gone();
            return Ok(());
        };
        if start == Start::Latest {
            start = Start::AtTimestamp(latest_opened);
        }
        let mut converter = Converter::new(&self.stream, &self.shard, self.info.as_ref());
        let mut skip_through = match &start {
            Start::Inside { sequence, sub } => Some(Position::SubSequence {
                sequence: sequence.clone(),
                sub: *sub,
            }),
            _ => None,
        };
        let mut backoff = policies::KINESIS_READ.backoff();
        let mut next_call = Instant::now();
        // The lag last told to the reader.
        let mut told_behind = None;
        loop {
            let Ok(permit) = self.prefetch.clone().acquire_owned().await else {
                return Ok(());
            };
            tokio::time::sleep_until(next_call).await;
            let called = Instant::now();
            let response = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.limit)
                .send()
                .await;
            metrics::histogram!("triton_kinesis_get_records_seconds", "stream" => self.stream.clone())
                .record(called.elapsed().as_secs_f64());
            let out = match response {
                Ok(out) => out,
                Err(e) => {
                    let e = KinesisError::from_sdk("GetRecords", &self.stream, e);
                    match e.kind {
                        ErrorKind::ExpiredIterator => {
                            tracing::info!(shard = %self.shard, "shard iterator expired; renewing it");
                            match self.iterator(&start).await? {
                                Some(it) => iterator = it,
                                None => {
                                    self.gone();
                                    return Ok(());
                                }
                            }
                            next_call = called + MIN_CALL_GAP;
                        }
                        ErrorKind::NotFound => {
                            self.gone();
                            return Ok(());
                        }
                        _ if e.is_retryable() => {
                            let Some(delay) = backoff.next_delay() else {
                                return Err(e);
                            };
                            metrics::counter!("triton_retries_total", "operation" => "get_records")
                                .increment(1);
                            metrics::counter!("triton_errors_total", "operation" => "get_records", "kind" => e.kind.label())
                                .increment(1);
                            tracing::warn!(
                                shard = %self.shard, error = %Report(&e), attempt = backoff.attempts(),
                                retry_in = ?delay, "GetRecords failed; retrying"
                            );
                            // Retries count against the shard's call rate too.
                            next_call = (Instant::now() + delay).max(called + MIN_CALL_GAP);
                        }
                        _ => return Err(e),
                    }
                    continue;
                }
            };
            backoff.reset();
            let fetched = out.records.len();
            let millis_behind = out.millis_behind_latest;
            let mut records = converter.convert(out.records)?;
            // Resuming inside an aggregate: its user records up to where
            // the consumer stopped were handled.
            if let (Some(through), false) = (&skip_through, records.is_empty()) {
                records.retain(|r| r.position > *through);
                skip_through = None;
            }
            if let Some(last) = records.last() {
                if let Position::Sequence(seq) = &last.position {
                    start = Start::After(seq.clone());
                }
                let sent = self.events.send(Event::Records {
                    shard: self.shard.clone(),
                    records,
                    permit,
                    millis_behind,
                });
                if sent.is_err() {
                    return Ok(());
                }
                told_behind = millis_behind;
            } else if millis_behind != told_behind {
                let sent = self.events.send(Event::Behind {
                    shard: self.shard.clone(),
                    millis_behind,
                });
                if sent.is_err() {
                    return Ok(());
                }
                told_behind = millis_behind;
            }
            let Some(next) = out.next_shard_iterator else {
                tracing::info!(shard = %self.shard, "shard is closed and read to its end");
                let _ = self.events.send(Event::End {
                    shard: self.shard.clone(),
                });
                return Ok(());
            };
            iterator = next;
            // Catching up: call again as soon as the rate limit allows.
            // Caught up: wait the poll interval.
            let behind = fetched as i32 >= self.limit || millis_behind.unwrap_or(0) > 0;
            let gap = if behind {
                MIN_CALL_GAP
            } else {
                self.poll_interval.max(MIN_CALL_GAP)
            };
            next_call = called + gap;
        }
    }

    /// The shard is no longer in the stream (expired past the retention
    /// period, or the stream is being deleted): it ends here, loudly.
    fn gone(&self) {
        tracing::warn!(
            shard = %self.shard,
            "the shard no longer exists (older than the retention period?); treating it as read to its end"
        );
        let _ = self.events.send(Event::End {
            shard: self.shard.clone(),
        });
    }

    async fn iterator(&self, start: &Start) -> Result<Option<String>, KinesisError> {
        shard_iterator(&self.client, &self.stream, &self.shard, start).await
    }
}

/// A shard iterator for `start`, retrying throttling and outages for as
/// long as it takes; `None` when the shard no longer exists. A
/// checkpoint the shard does not hold (older than the retention period)
/// falls back to the oldest record, loudly.
pub(crate) async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    start: &Start,
) -> Result<Option<String>, KinesisError> {
    // Set once the shard has refused `start`: later attempts (after an
    // outage) read from the oldest record without asking again.
    let fell_back = AtomicBool::new(false);
    let fell_back = &fell_back;
    retry(
        &policies::KINESIS_READ,
        || async move {
            let mut start = match fell_back.load(Ordering::Relaxed) {
                true => Start::TrimHorizon,
                false => start.clone(),
            };
            loop {
                let request = client
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(shard);
                let request = match &start {
                    Start::After(seq) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(seq.as_str()),
                    Start::At(seq) | Start::Inside { sequence: seq, .. } => request
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .starting_sequence_number(seq.as_str()),
                    Start::TrimHorizon => {
                        request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                    }
                    Start::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
                    Start::AtTimestamp(t) => request
                        .shard_iterator_type(ShardIteratorType::AtTimestamp)
                        .timestamp(DateTime::from(*t)),
                };
                let e = match request.send().await {
                    Ok(out) => {
                        return match out.shard_iterator {
                            Some(it) => Ok(Some(it)),
                            None => Err(KinesisError::fatal(
                                "GetShardIterator",
                                stream,
                                format!("no iterator returned for shard {}", shard),
                            )),
                        }
                    }
                    Err(e) => KinesisError::from_sdk("GetShardIterator", stream, e),
                };
                match (e.kind, &start) {
                    (
                        ErrorKind::InvalidArgument,
                        Start::After(seq) | Start::At(seq) | Start::Inside { sequence: seq, .. },
                    ) => {
                        tracing::warn!(
                            shard = %shard, sequence_number = %seq, error = %Report(&e),
                            "the shard does not hold this record (older than the stream's \
                             retention period?); reading from the oldest record \
                             (TRIM_HORIZON), records between are lost"
                        );
                        start = Start::TrimHorizon;
                        fell_back.store(true, Ordering::Relaxed);
                    }
                    (ErrorKind::NotFound, _) => return Ok(None),
                    _ => return Err(e),
                }
            }
        },
        KinesisError::is_retryable,
        |e, r| {
            tracing::warn!(
                shard = %shard, error = %Report(&e), attempt = r.attempt,
                retry_in = ?r.delay, "GetShardIterator failed; retrying"
            );
        },
    )
    .await
}
