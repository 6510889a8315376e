//! Clients for the local server, throwaway streams, and reading helpers.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::config::SharedInterceptor;
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use serde::{Deserialize, Serialize};
use triton_core::config::StreamConfig;
use triton_core::source::{Position, RecordSource, SourceRecord};

pub use triton_aws::testing::REGION;

/// The local Kinesis endpoint (loopback only).
pub fn endpoint() -> String {
    triton_tests::local_endpoint("AWS_ENDPOINT_URL_KINESIS")
}

/// A client built like the library builds it, pointed at the local server
/// with dummy credentials, plus optional interceptors.
pub async fn client_with(interceptors: Vec<SharedInterceptor>) -> Client {
    let sdk = triton_aws::testing::local_config().await;
    let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk).endpoint_url(endpoint());
    for i in interceptors {
        conf.push_interceptor(i);
    }
    Client::from_conf(conf.build())
}

pub async fn client() -> Client {
    client_with(Vec::new()).await
}

/// Creates a stream with a unique name and waits until it is active.
pub async fn create_stream(client: &Client, prefix: &str, shards: i32) -> StreamConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("{prefix}-{}-{nanos}", std::process::id());
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    wait_active(client, &name).await;
    StreamConfig {
        name,
        partition_key: Some("user".into()),
        region: REGION.into(),
    }
}

pub async fn wait_active(client: &Client, name: &str) {
    for _ in 0..200 {
        let d = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("DescribeStreamSummary");
        if d.stream_description_summary.map(|s| s.stream_status) == Some(StreamStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} did not become active");
}

/// The record the tests write: `n` counts across the whole test, so the
/// records of one user must arrive with `n` increasing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub user: String,
    pub n: u64,
    pub payload: String,
}

pub fn event(n: u64, users: u64) -> Event {
    Event {
        user: format!("user-{}", n % users),
        n,
        payload: format!("event number {n} {}", "x".repeat((n % 50) as usize)),
    }
}

/// Reads until `n` records arrived (acknowledging each batch as it comes),
/// failing the test after `limit`.
pub async fn read_n<S: RecordSource>(
    source: &mut S,
    n: usize,
    limit: Duration,
) -> Vec<SourceRecord> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while got.len() < n {
        let batch = tokio::time::timeout_at(deadline, source.next_batch(n - got.len()))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records after {limit:?}", got.len()))
            .expect("next_batch")
            .expect("the stream ended");
        let last = batch.last().expect("batches are never empty");
        source.ack(&last.source, &last.position).await.expect("ack");
        got.extend(batch);
    }
    got
}

/// Checks that the events came exactly once each (n = 0..count) and, per
/// user, in the order they were written.
pub fn assert_once_in_key_order(records: &[SourceRecord], count: u64) {
    let mut seen = vec![0u32; count as usize];
    let mut last_per_user: HashMap<String, u64> = HashMap::new();
    for r in records {
        let e: Event = r.deserialize().expect("typed record");
        seen[e.n as usize] += 1;
        if let Some(prev) = last_per_user.insert(e.user.clone(), e.n) {
            assert!(prev < e.n, "{}: {} came after {}", e.user, e.n, prev);
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let repeated: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty(),
        "{} records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        repeated.is_empty(),
        "{} records repeated, e.g. {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(10)]
    );
}

/// The `n` of every event, sorted: for checks of "each exactly once" where
/// order across keys does not matter.
pub fn sorted_ns(records: &[SourceRecord]) -> Vec<u64> {
    let mut ns: Vec<u64> = records
        .iter()
        .map(|r| r.deserialize::<Event>().expect("typed record").n)
        .collect();
    ns.sort_unstable();
    ns
}

pub fn seq(p: &Position) -> String {
    match p {
        Position::Sequence(s) => s.to_string(),
        other => panic!("not a sequence number: {other}"),
    }
}
