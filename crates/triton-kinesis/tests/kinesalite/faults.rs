//! Throttling, server errors, expired iterators and partial PutRecords
//! failures, injected into the real client's traffic with an interceptor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextMut,
    FinalizerInterceptorContextMut,
};
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents, SharedInterceptor};
use aws_sdk_kinesis::operation::put_records::{PutRecordsInput, PutRecordsOutput};
use aws_sdk_kinesis::types::PutRecordsResultEntry;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use triton_core::source::SourceRecord;
use triton_kinesis::{
    BackgroundOptions, BackgroundProducer, KinesisReader, ProduceError, Producer, ProducerOptions,
    ProducerStats, ReaderOptions, StartPosition, WhenFull,
};

use crate::support::*;

/// Replaces some GetRecords answers with errors and drops some PutRecords
/// entries, answering them as throttled. Clones share their state, so the
/// test keeps one to look at the counters.
#[derive(Clone, Debug, Default)]
struct Faults(Arc<FaultState>);

impl std::ops::Deref for Faults {
    type Target = FaultState;
    fn deref(&self) -> &FaultState {
        &self.0
    }
}

#[derive(Debug, Default)]
struct FaultState {
    /// Error answers (status, `__type`) for every third GetRecords call.
    get_records: Mutex<VecDeque<(u16, &'static str)>>,
    get_calls: AtomicUsize,
    injected: AtomicUsize,
    /// While set, every GetRecords call is answered ExpiredIterator.
    expire_all: std::sync::atomic::AtomicBool,
    /// PutRecords calls that still get every other entry refused.
    put_calls_to_fail: AtomicUsize,
    /// Indexes taken out of the current PutRecords call.
    removed: Mutex<Vec<usize>>,
}

/// The operation being called, e.g. `GetRecords`.
fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map_or("", |m| m.name())
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(input) = ctx.input_mut().downcast_mut::<PutRecordsInput>() else {
            return Ok(());
        };
        if self.put_calls_to_fail.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.put_calls_to_fail.fetch_sub(1, Ordering::SeqCst);
        let records = input.records.take().unwrap_or_default();
        let mut kept = Vec::new();
        let mut removed = self.removed.lock().unwrap();
        for (i, r) in records.into_iter().enumerate() {
            if i % 2 == 1 {
                removed.push(i);
            } else {
                kept.push(r);
            }
        }
        input.records = Some(kept);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if operation(cfg) != "GetRecords" {
            return Ok(());
        }
        let call = self.get_calls.fetch_add(1, Ordering::SeqCst);
        let (status, kind) = if self.expire_all.load(Ordering::SeqCst) {
            (400, "ExpiredIteratorException")
        } else if call % 3 != 2 {
            return Ok(());
        } else {
            let Some(fault) = self.get_records.lock().unwrap().pop_front() else {
                return Ok(());
            };
            fault
        };
        let body = format!(r#"{{"__type":"{kind}","message":"injected by the test"}}"#);
        let mut response = Response::new(StatusCode::try_from(status)?, SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *ctx.response_mut() = response;
        self.injected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut removed = self.removed.lock().unwrap();
        if removed.is_empty() {
            return Ok(());
        }
        let Some(Ok(output)) = ctx.output_or_error_mut() else {
            return Ok(());
        };
        let Some(out) = output.downcast_mut::<PutRecordsOutput>() else {
            return Ok(());
        };
        for &i in removed.iter() {
            out.records.insert(
                i,
                PutRecordsResultEntry::builder()
                    .error_code("ProvisionedThroughputExceededException")
                    .error_message("Rate exceeded for shard (injected by the test)")
                    .build(),
            );
        }
        out.failed_record_count = Some(out.failed_record_count.unwrap_or(0) + removed.len() as i32);
        removed.clear();
        Ok(())
    }
}

/// A reader of `stream` from its oldest record, through a client without
/// faults.
async fn read_back(stream: &str) -> KinesisReader {
    let options = ReaderOptions {
        start: StartPosition::TrimHorizon,
        poll_interval: Duration::from_millis(200),
        ..ReaderOptions::default()
    };
    let plain = crate::support::client().await;
    KinesisReader::open(plain, stream, options, None)
        .await
        .unwrap()
}

/// Writes 2,000 records through a client whose first three PutRecords
/// calls have every other entry refused, and reads them back.
async fn put_through_partial_failures(strict_order: bool) -> (ProducerStats, Vec<SourceRecord>) {
    let faults = Faults::default();
    faults.put_calls_to_fail.store(3, Ordering::SeqCst);
    let client = client_with(vec![SharedInterceptor::new(faults.clone())]).await;
    let stream = create_stream(&client, "partial", 2).await;
    let options = ProducerOptions {
        backoff: Duration::from_millis(10),
        strict_order,
        ..ProducerOptions::default()
    };
    let mut producer = Producer::new(client.clone(), &stream, options);
    for n in 0..2000 {
        producer.send_serialize(&event(n, 40)).await.unwrap();
    }
    let receipts = producer.flush().await.unwrap();
    assert_eq!(receipts.len(), 2000);
    assert_eq!(faults.put_calls_to_fail.load(Ordering::SeqCst), 0);
    let stats = producer.stats();
    assert_eq!(stats.records, 2000);
    assert!(stats.retries >= 3, "{stats:?}");

    let mut reader = read_back(&stream.name).await;
    (
        stats,
        read_n(&mut reader, 2000, Duration::from_secs(60)).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_put_failures_resend_only_the_failed_entries() {
    let (stats, got) = put_through_partial_failures(false).await;
    // Each faulty call of 500 entries over 40 keys refused 250, and Kinesis
    // took later entries of the same keys: counted, not hidden.
    assert_eq!(stats.retries, 3 * 250, "{stats:?}");
    assert!(stats.reordered > 0, "{stats:?}");
    // Written exactly once each: resends were only of refused entries.
    assert_eq!(sorted_ns(&got), (0..2000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_order_keeps_every_key_in_order_through_partial_failures() {
    let (stats, got) = put_through_partial_failures(true).await;
    assert_eq!(stats.reordered, 0, "{stats:?}");
    assert!(
        stats.calls >= 2000 / 40,
        "one record per key and call: {stats:?}"
    );
    assert_once_in_key_order(&got, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_expired_iterators_are_survived() {
    let plain = client().await;
    let stream = create_stream(&plain, "faults", 2).await;
    let mut producer = Producer::new(plain.clone(), &stream, ProducerOptions::default());
    for n in 0..3000 {
        producer.send_serialize(&event(n, 30)).await.unwrap();
    }
    producer.flush().await.unwrap();

    let faults = Faults::default();
    faults.get_records.lock().unwrap().extend([
        (400, "ProvisionedThroughputExceededException"),
        (500, "InternalFailure"),
        (400, "ExpiredIteratorException"),
        (503, "ServiceUnavailable"),
        (400, "ProvisionedThroughputExceededException"),
        (400, "ExpiredIteratorException"),
    ]);
    let client = client_with(vec![SharedInterceptor::new(faults.clone())]).await;
    // Small GetRecords results, so that many calls are made and faults
    // land between records.
    let options = ReaderOptions {
        start: StartPosition::TrimHorizon,
        poll_interval: Duration::from_millis(200),
        limit: 100,
        ..ReaderOptions::default()
    };
    let mut reader = KinesisReader::open(client, &stream.name, options, None)
        .await
        .unwrap();
    let got = read_n(&mut reader, 3000, Duration::from_secs(90)).await;
    assert_once_in_key_order(&got, 3000);
    assert_eq!(
        faults.injected.load(Ordering::SeqCst),
        6,
        "every fault was injected"
    );
}

/// A shard opened at LATEST whose iterator expires before its first record
/// (an outage) is renewed where the first iterator stood, not at a new
/// LATEST that would skip what arrived meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterator_at_latest_that_expires_before_any_record_skips_nothing() {
    let plain = client().await;
    let stream = create_stream(&plain, "latest-expiry", 1).await;
    let faults = Faults::default();
    let client = client_with(vec![SharedInterceptor::new(faults.clone())]).await;
    let options = ReaderOptions {
        start: StartPosition::Latest,
        poll_interval: Duration::from_millis(200),
        ..ReaderOptions::default()
    };
    let mut reader = KinesisReader::open(client, &stream.name, options, None)
        .await
        .unwrap();
    let calls_reach = |n: usize| {
        let faults = faults.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while faults.get_calls.load(Ordering::SeqCst) < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the reader stopped polling"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The LATEST iterator stands, answering nothing.
    calls_reach(2).await;
    // An outage: every answer says the iterator expired, while records
    // arrive; several renewals come after them.
    faults.expire_all.store(true, Ordering::SeqCst);
    let mut producer = Producer::new(plain.clone(), &stream, ProducerOptions::default());
    for n in 0..200 {
        producer.send_serialize(&event(n, 20)).await.unwrap();
    }
    producer.flush().await.unwrap();
    calls_reach(faults.get_calls.load(Ordering::SeqCst) + 3).await;
    faults.expire_all.store(false, Ordering::SeqCst);
    let got = read_n(&mut reader, 200, Duration::from_secs(30)).await;
    assert_once_in_key_order(&got, 200);
}

/// Eight tasks send 4,000 records at once through one background producer
/// whose first PutRecords calls have every other entry refused, then close
/// it: each record's delivery names a distinct place, and reading back
/// finds every record once, in key order (each task owns its keys).
async fn background_through_partial_failures(aggregation: Option<triton_kpl::Limits>) {
    const TASKS: u64 = 8;
    const RECORDS: u64 = 4000;
    let faults = Faults::default();
    faults.put_calls_to_fail.store(5, Ordering::SeqCst);
    let client = client_with(vec![SharedInterceptor::new(faults.clone())]).await;
    let stream = create_stream(&client, "background", 2).await;
    let options = BackgroundOptions {
        producer: ProducerOptions {
            backoff: Duration::from_millis(10),
            aggregation,
            ..ProducerOptions::default()
        },
        queue: 256,
        max_buffered: Duration::from_millis(20),
        ..BackgroundOptions::default()
    };
    let producer = BackgroundProducer::spawn(client.clone(), &stream, options);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let producer = producer.clone();
            tokio::spawn(async move {
                let mut deliveries = Vec::new();
                // n % 40 is the key, and n % 8 the task: keys are the task's.
                for n in (t..RECORDS).step_by(TASKS as usize) {
                    deliveries.push(producer.send_serialize(&event(n, 40)).await.unwrap());
                }
                let mut receipts = Vec::new();
                for d in deliveries {
                    receipts.push(d.await.expect("every record is delivered"));
                }
                receipts
            })
        })
        .collect();
    let mut places = std::collections::HashSet::new();
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(
                places.insert((
                    r.shard_id.clone(),
                    r.sequence_number.clone(),
                    r.sub_sequence
                )),
                "two records delivered to {r:?}"
            );
            assert_eq!(r.sub_sequence.is_some(), aggregation.is_some(), "{r:?}");
        }
    }
    let stats = producer.close().await.unwrap();
    assert_eq!(places.len() as u64, RECORDS);
    assert_eq!(stats.records, RECORDS, "{stats:?}");
    assert!(stats.retries > 0, "the faults were hit: {stats:?}");
    assert_eq!(faults.put_calls_to_fail.load(Ordering::SeqCst), 0);
    if aggregation.is_some() {
        assert!(stats.kinesis_records < RECORDS / 4, "{stats:?}");
    }
    assert!(matches!(
        producer.send_serialize(&event(0, 40)).await,
        Err(ProduceError::Closed)
    ));

    let mut reader = read_back(&stream.name).await;
    let got = read_n(&mut reader, RECORDS as usize, Duration::from_secs(60)).await;
    assert_once_in_key_order(&got, RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_producer_delivers_every_record_once_through_partial_failures() {
    background_through_partial_failures(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_producer_aggregates_through_partial_failures() {
    let limits = triton_kpl::Limits {
        max_bytes: 4096,
        ..triton_kpl::Limits::default()
    };
    background_through_partial_failures(Some(limits)).await;
}

/// On one thread the sending task cannot run while the test sends without
/// awaiting, so the queue's fill is exact: with `WhenFull::Error` the
/// fifth record of a queue of four is refused; with `Wait` it waits for
/// room and goes through.
#[tokio::test]
async fn a_full_queue_errors_or_waits_as_configured() {
    let client = crate::support::client().await;
    let stream = create_stream(&client, "full", 1).await;
    for when_full in [WhenFull::Error, WhenFull::Wait] {
        let options = BackgroundOptions {
            queue: 4,
            when_full,
            ..BackgroundOptions::default()
        };
        let producer = BackgroundProducer::spawn(client.clone(), &stream, options);
        let mut deliveries = Vec::new();
        for n in 0..4 {
            deliveries.push(producer.send_serialize(&event(n, 3)).await.unwrap());
        }
        let fifth = tokio::time::timeout(
            Duration::from_secs(10),
            producer.send_serialize(&event(4, 3)),
        )
        .await
        .expect("a full queue never blocks for long");
        match when_full {
            WhenFull::Error => assert!(
                matches!(fifth, Err(ProduceError::QueueFull(4))),
                "{fifth:?}"
            ),
            WhenFull::Wait => deliveries.push(fifth.unwrap()),
        }
        for d in deliveries {
            d.await.unwrap();
        }
        producer.close().await.unwrap();
    }
}
