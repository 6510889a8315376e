//! Put and read rates against the local Kinesis server (kinesalite), beside
//! the server's own rate for plain GetRecords calls made with the SDK, in
//! the same run: the reader's cost is the gap between the two. The same
//! records aggregated (KPL format) are put and read beside them.
//!
//! Run: `eval "$(scripts/services start)"; cargo bench -p triton-kinesis --bench local`

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize;
use tokio::runtime::Runtime;
use triton_core::config::StreamConfig;
use triton_core::source::RecordSource;
use triton_kinesis::{KinesisReader, Producer, ProducerOptions, ReaderOptions, StartPosition};

const RECORDS: u64 = 10_000;
const SHARDS: i32 = 4;

#[derive(Serialize)]
struct Event {
    user: String,
    n: u64,
    kind: &'static str,
    payload: String,
}

fn event(n: u64) -> Event {
    Event {
        user: format!("user-{}", n % 101),
        n,
        kind: "click",
        payload: "x".repeat(64),
    }
}

async fn client() -> Client {
    let url = std::env::var("AWS_ENDPOINT_URL_KINESIS")
        .expect("AWS_ENDPOINT_URL_KINESIS: start the local server with scripts/services start");
    assert!(url.starts_with("http://127.0.0.1:"), "{url} is not local");
    let sdk = triton_kinesis::sdk_config("us-east-1")
        .await
        .to_builder()
        .endpoint_url(url)
        .build();
    Client::new(&sdk)
}

async fn create(client: &Client, tag: &str) -> StreamConfig {
    let name = format!("bench-{tag}-{}", std::process::id());
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(SHARDS)
        .send()
        .await
        .expect("CreateStream");
    tokio::time::sleep(Duration::from_millis(500)).await;
    StreamConfig {
        name,
        partition_key: Some("user".into()),
        region: "us-east-1".into(),
    }
}

async fn put(client: &Client, stream: &StreamConfig) -> triton_kinesis::ProducerStats {
    put_with(client, stream, ProducerOptions::default()).await
}

fn aggregated() -> ProducerOptions {
    ProducerOptions {
        aggregation: Some(triton_kpl::Limits::default()),
        ..ProducerOptions::default()
    }
}

async fn put_with(
    client: &Client,
    stream: &StreamConfig,
    options: ProducerOptions,
) -> triton_kinesis::ProducerStats {
    let mut p = Producer::new(client.clone(), stream, options);
    for n in 0..RECORDS {
        p.send_serialize(&event(n)).await.expect("send");
    }
    p.flush().await.expect("flush");
    p.stats()
}

async fn read(client: &Client, stream: &StreamConfig) {
    let options = ReaderOptions {
        start: StartPosition::TrimHorizon,
        ..ReaderOptions::default()
    };
    let mut reader = KinesisReader::open(client.clone(), &stream.name, options, None)
        .await
        .expect("open");
    let mut n = 0;
    while n < RECORDS {
        let batch = reader
            .next_batch(10_000)
            .await
            .expect("read")
            .expect("not ended");
        let last = batch.last().expect("non-empty");
        reader.ack(&last.source, &last.position).await.expect("ack");
        n += batch.len() as u64;
    }
}

/// The floor: each shard read with plain GetShardIterator + GetRecords
/// calls, concurrently, no conversion.
async fn raw_get_records(client: &Client, stream: &StreamConfig) {
    let shards = triton_kinesis::list_shards(client, &stream.name)
        .await
        .expect("shards");
    let mut tasks = tokio::task::JoinSet::new();
    for s in shards {
        let (client, name) = (client.clone(), stream.name.clone());
        tasks.spawn(async move {
            let mut it = client
                .get_shard_iterator()
                .stream_name(&name)
                .shard_id(&s.id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator;
            let mut n = 0u64;
            while let Some(i) = it {
                let out = client
                    .get_records()
                    .shard_iterator(i)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("GetRecords");
                n += out.records.len() as u64;
                if out.records.is_empty() {
                    break;
                }
                it = out.next_shard_iterator;
            }
            n
        });
    }
    let total: u64 = tasks.join_all().await.into_iter().sum();
    assert_eq!(total, RECORDS);
}

/// The floor for writing: the same records, encoded beforehand, in
/// PutRecords calls of 500 made one after another as the producer does.
async fn raw_put_records(
    client: &Client,
    stream: &StreamConfig,
    entries: &[PutRecordsRequestEntry],
) {
    for chunk in entries.chunks(500) {
        let out = client
            .put_records()
            .stream_name(&stream.name)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await
            .expect("PutRecords");
        assert_eq!(out.failed_record_count, Some(0));
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let client = rt.block_on(client());
    let filled = rt.block_on(async {
        let s = create(&client, "read").await;
        let stats = put(&client, &s).await;
        eprintln!("plain put: {stats:?}");
        s
    });
    let filled_aggregated = rt.block_on(async {
        let s = create(&client, "read-kpl").await;
        let stats = put_with(&client, &s, aggregated()).await;
        eprintln!("aggregated put: {stats:?}");
        s
    });
    let mut g = c.benchmark_group("kinesalite");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("raw_get_records", |b| {
        b.iter(|| rt.block_on(raw_get_records(&client, &filled)))
    });
    g.bench_function("reader", |b| b.iter(|| rt.block_on(read(&client, &filled))));
    g.bench_function("reader_aggregated", |b| {
        b.iter(|| rt.block_on(read(&client, &filled_aggregated)))
    });
    let sink = rt.block_on(create(&client, "put"));
    let entries: Vec<PutRecordsRequestEntry> = (0..RECORDS)
        .map(|n| {
            let e = event(n);
            let data = triton_core::msgpack::to_record_vec(&e).expect("encode");
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(e.user)
                .build()
                .expect("entry")
        })
        .collect();
    g.bench_function("raw_put_records", |b| {
        b.iter(|| rt.block_on(raw_put_records(&client, &sink, &entries)))
    });
    g.bench_function("producer", |b| b.iter(|| rt.block_on(put(&client, &sink))));
    g.bench_function("producer_aggregated", |b| {
        b.iter(|| rt.block_on(put_with(&client, &sink, aggregated())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
