//! [`BackgroundProducer`]: a cloneable handle that application tasks send
//! records to without waiting on Kinesis; one task batches them (and
//! aggregates them, if asked) and tells each record where it went.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use triton_core::config::StreamConfig;
use triton_core::msgpack;
use triton_core::value::Record;

use super::{ProduceError, Producer, ProducerOptions, ProducerStats, Receipt};

/// What [`BackgroundProducer::send`] does when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room (backpressure: the sender slows to Kinesis' pace).
    #[default]
    Wait,
    /// Fail at once with [`ProduceError::QueueFull`].
    Error,
}

/// How a [`BackgroundProducer`] buffers and flushes.
#[derive(Clone, Debug)]
pub struct BackgroundOptions {
    /// How records are sent (keys, retries, order, aggregation).
    pub producer: ProducerOptions,
    /// Records that may wait in the queue for the sending task (default
    /// 10,000).
    pub queue: usize,
    /// What `send` does when the queue is full.
    pub when_full: WhenFull,
    /// The longest a record waits before its batch is sent (default 100
    /// ms, the KPL's `RecordMaxBufferedTime`; go-triton's writer flushed
    /// every second).
    pub max_buffered: Duration,
    /// Send once this many records are buffered (default 500, one
    /// PutRecords call). Sending finishes the aggregates being filled, so
    /// with aggregation raise it (to some thousands) and let `max_buffered`
    /// bound the wait, or the aggregates stay small.
    pub max_records: usize,
    /// Send once this many bytes are buffered (default 5 MiB, one call).
    pub max_bytes: usize,
}

impl Default for BackgroundOptions {
    fn default() -> BackgroundOptions {
        BackgroundOptions {
            producer: ProducerOptions::default(),
            queue: 10_000,
            when_full: WhenFull::Wait,
            max_buffered: Duration::from_millis(100),
            max_records: 500,
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

enum Command {
    Record {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Receipt, ProduceError>>,
    },
    Flush(oneshot::Sender<Result<(), ProduceError>>),
    Close(oneshot::Sender<Result<ProducerStats, ProduceError>>),
}

/// Writes records to one stream from any number of tasks: [`send`]
/// queues a record and returns at once (unless the queue is full, see
/// [`WhenFull`]) with a [`Delivery`] that resolves to where the record
/// went, or to why it was not written after the producer's retries. One
/// task sends the queue in batches: when `max_records` or `max_bytes`
/// are buffered, or `max_buffered` after the oldest buffered record came,
/// whichever is first. Records of one key are written in the order they
/// were queued (with [`ProducerOptions::strict_order`], the default).
///
/// Clones share the queue. [`flush`](Self::flush) waits until everything
/// queued before it is delivered; [`close`](Self::close) flushes and stops
/// the task; dropping every handle does too, after the last records are
/// sent.
///
/// [`send`]: BackgroundProducer::send
#[derive(Clone, Debug)]
pub struct BackgroundProducer {
    tx: mpsc::Sender<Command>,
    when_full: WhenFull,
    capacity: usize,
}

/// Where one record went, once the background task has sent it.
#[derive(Debug)]
pub struct Delivery(oneshot::Receiver<Result<Receipt, ProduceError>>);

impl Future for Delivery {
    type Output = Result<Receipt, ProduceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ProduceError::Closed)))
    }
}

impl BackgroundProducer {
    /// Starts the sending task (on the current Tokio runtime) for the
    /// stream `config` describes.
    pub fn spawn(
        client: Client,
        config: &StreamConfig,
        options: BackgroundOptions,
    ) -> BackgroundProducer {
        let capacity = options.queue.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let producer = Producer::new(client, config, options.producer.clone());
        // Ends when closed or when every handle is gone.
        tokio::spawn(run(producer, rx, options.clone()));
        BackgroundProducer {
            tx,
            when_full: options.when_full,
            capacity,
        }
    }

    /// Queues a dynamic record.
    pub async fn send(&self, record: &Record) -> Result<Delivery, ProduceError> {
        let mut data = Vec::new();
        msgpack::encode_record(record, &mut data);
        self.send_raw(data).await
    }

    /// Queues any value that serializes to a map.
    pub async fn send_serialize<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Delivery, ProduceError> {
        self.send_raw(msgpack::to_record_vec(value)?).await
    }

    /// Queues a record given as MessagePack bytes (one map). A record the
    /// producer refuses (no partition key, too large) resolves its
    /// delivery to the error.
    pub async fn send_raw(&self, data: Vec<u8>) -> Result<Delivery, ProduceError> {
        let (reply, delivery) = oneshot::channel();
        let command = Command::Record { data, reply };
        match self.when_full {
            WhenFull::Wait => self
                .tx
                .send(command)
                .await
                .map_err(|_| ProduceError::Closed)?,
            WhenFull::Error => self.tx.try_send(command).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ProduceError::QueueFull(self.capacity),
                mpsc::error::TrySendError::Closed(_) => ProduceError::Closed,
            })?,
        }
        Ok(Delivery(delivery))
    }

    /// Waits until every record queued before the call is delivered
    /// (written, or given up on); an error says that some were not
    /// written (their deliveries say which).
    pub async fn flush(&self) -> Result<(), ProduceError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Flush(reply))
            .await
            .map_err(|_| ProduceError::Closed)?;
        done.await.unwrap_or(Err(ProduceError::Closed))
    }

    /// Delivers everything queued, then stops the task for every clone
    /// (later sends fail with [`ProduceError::Closed`], and so does a
    /// second close); returns the producer's counters, or the error if
    /// some records were not written (their deliveries say which).
    pub async fn close(&self) -> Result<ProducerStats, ProduceError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Close(reply))
            .await
            .map_err(|_| ProduceError::Closed)?;
        done.await.unwrap_or(Err(ProduceError::Closed))
    }
}

/// The sending task: takes commands, sends when a limit is reached or the
/// oldest buffered record has waited `max_buffered`, and resolves each
/// record's delivery.
async fn run(mut producer: Producer, mut rx: mpsc::Receiver<Command>, options: BackgroundOptions) {
    let mut waiting: Vec<oneshot::Sender<Result<Receipt, ProduceError>>> = Vec::new();
    let mut bytes = 0usize;
    let mut oldest: Option<Instant> = None;
    loop {
        let deadline = oldest.map(|t| t + options.max_buffered);
        let command = tokio::select! {
            c = rx.recv() => c,
            () = sleep_until(deadline), if deadline.is_some() => {
                deliver(&mut producer, &mut waiting).await;
                (bytes, oldest) = (0, None);
                continue;
            }
        };
        match command {
            None => {
                deliver(&mut producer, &mut waiting).await;
                return;
            }
            Some(Command::Close(reply)) => {
                let failed = deliver(&mut producer, &mut waiting).await;
                rx.close();
                // Commands that were queued behind the close.
                while let Some(late) = rx.recv().await {
                    refuse(late);
                }
                let _ = reply.send(match failed {
                    None => Ok(producer.stats()),
                    Some(e) => Err(ProduceError::NotWritten(Box::new(e))),
                });
                return;
            }
            Some(Command::Flush(reply)) => {
                let failed = deliver(&mut producer, &mut waiting).await;
                (bytes, oldest) = (0, None);
                let _ = reply.send(match failed {
                    None => Ok(()),
                    Some(e) => Err(ProduceError::NotWritten(Box::new(e))),
                });
            }
            Some(Command::Record { data, reply }) => {
                let size = data.len();
                match producer.enqueue_raw(data).await {
                    Ok(()) => waiting.push(reply),
                    Err(ProduceError::Unwritten { cause, .. }) => {
                        // A batch failed for good; this record was queued
                        // and shares the outcome of the others.
                        waiting.push(reply);
                        resolve(&mut producer, &mut waiting, Some(&cause));
                        (bytes, oldest) = (0, None);
                        continue;
                    }
                    // Refused before it was queued.
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                }
                bytes += size;
                oldest.get_or_insert_with(Instant::now);
                if waiting.len() >= options.max_records || bytes >= options.max_bytes {
                    deliver(&mut producer, &mut waiting).await;
                    (bytes, oldest) = (0, None);
                }
            }
        }
    }
}

/// Answers a command that came after the close.
fn refuse(command: Command) {
    match command {
        Command::Record { reply, .. } => drop(reply.send(Err(ProduceError::Closed))),
        Command::Flush(reply) => drop(reply.send(Err(ProduceError::Closed))),
        Command::Close(reply) => drop(reply.send(Err(ProduceError::Closed))),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends everything buffered and resolves the deliveries; returns the
/// error if some records were not written.
async fn deliver(
    producer: &mut Producer,
    waiting: &mut Vec<oneshot::Sender<Result<Receipt, ProduceError>>>,
) -> Option<super::KinesisError> {
    if waiting.is_empty() {
        return None;
    }
    let cause = match producer.drain().await {
        Ok(()) => None,
        Err(ProduceError::Unwritten { cause, .. }) => Some(*cause),
        Err(other) => Some(super::KinesisError::fatal(
            "PutRecords",
            &producer.stream,
            other.to_string(),
        )),
    };
    resolve(producer, waiting, cause.as_ref());
    cause
}

/// Tells each waiting record where it went, or `cause` if it was not
/// written.
fn resolve(
    producer: &mut Producer,
    waiting: &mut Vec<oneshot::Sender<Result<Receipt, ProduceError>>>,
    cause: Option<&super::KinesisError>,
) {
    let receipts = producer.take_receipts();
    for (reply, receipt) in waiting
        .drain(..)
        .zip(receipts.into_iter().chain(std::iter::repeat(None)))
    {
        let outcome = match (receipt, cause) {
            (Some(r), _) => Ok(r),
            (None, Some(e)) => Err(ProduceError::NotWritten(Box::new(e.clone()))),
            (None, None) => Err(ProduceError::Closed),
        };
        let _ = reply.send(outcome);
    }
}
