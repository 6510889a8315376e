//! The hand-off planned from archives in a local directory and a stream on
//! the local Kinesis server (kinesalite) that was split after the archives.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use triton_core::key::ArchiveKey;
use triton_core::source::RecordSource;
use triton_core::source::SequenceNumber;
use triton_replay::plan::Start;
use triton_replay::{load, LoadError, ReplayOptions, ReplaySource};
use triton_s3::{Archive, ArchiveStore, LocalStore, PutOptions};
use triton_tests::TempDir;

async fn client() -> Client {
    let sdk = triton_aws::testing::local_config().await;
    let conf = aws_sdk_kinesis::config::Builder::from(&sdk)
        .endpoint_url(triton_tests::local_endpoint("AWS_ENDPOINT_URL_KINESIS"));
    Client::from_conf(conf.build())
}

async fn wait_active(client: &Client, name: &str) {
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

/// A client and a new one-shard stream named after `tag`.
async fn new_stream(tag: &str) -> (Client, String) {
    let kinesis = client().await;
    let stream = format!("{tag}-{}", std::process::id());
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, &stream).await;
    (kinesis, stream)
}

/// An archive and, if `range` is given, its sidecar naming shard 0's first
/// and last record.
async fn put(
    store: &dyn ArchiveStore,
    stream: &str,
    ts: u64,
    range: Option<(&str, &str)>,
) -> Archive {
    let key = ArchiveKey::new(stream, "store", ts).unwrap();
    let options = PutOptions::default();
    store
        .put_bytes(&key.to_string(), Vec::new(), &options)
        .await
        .unwrap();
    if let Some((min, max)) = range {
        let sidecar = format!(
            r#"{{"shards":{{"shardId-000000000000":{{"min_sequence_number":"{min}","max_sequence_number":"{max}","record_count":2}}}},"size":0,"sha256":"","format_version":2}}"#
        );
        store
            .put_bytes(&format!("{key}.metadata"), sidecar.into_bytes(), &options)
            .await
            .unwrap();
    }
    Archive { key, size: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_zero_resumes_after_its_archives_and_its_children_follow() {
    let (kinesis, stream) = new_stream("replay-handoff").await;
    // Split after the archives end: two children of shard 0.
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, &stream).await;

    let tmp = TempDir::new("replay-handoff");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalStore::new(tmp.path().join("bucket")));
    let a1 = put(&*store, &stream, 100, Some(("11", "12"))).await;
    let a2 = put(&*store, &stream, 200, Some(("13", "14"))).await;
    // Uploaded, its sidecar not yet: read live instead.
    let a3 = put(&*store, &stream, 300, None).await;

    let loaded = load(
        store.clone(),
        &kinesis,
        &stream,
        vec![a1.clone(), a2.clone(), a3.clone()],
        100,
        250,
    )
    .await
    .unwrap();
    assert_eq!(loaded.archives, vec![a1.clone(), a2.clone()]);
    let h = loaded.handoff;
    assert_eq!(
        h.starts["shardId-000000000000"],
        Start::After(SequenceNumber::new("14").unwrap())
    );
    assert_eq!(h.starts["shardId-000000000001"], Start::TrimHorizon);
    assert_eq!(h.starts["shardId-000000000002"], Start::TrimHorizon);
    assert_eq!(h.starts.len(), 3);
    assert_eq!(h.archived["shardId-000000000000"], 4);
    assert!(h.lost.is_empty(), "{:?}", h.lost);

    // An archive without sidecar that is not recent is refused, last or not
    // (go-triton's archives have none).
    let e = load(
        store.clone(),
        &kinesis,
        &stream,
        vec![a1.clone(), a3.clone()],
        100,
        300,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, LoadError::MissingSidecar { .. }), "{e}");
    // A missing sidecar before one that is there cannot be passed over.
    let e = load(store.clone(), &kinesis, &stream, vec![a3, a1], 100, 250)
        .await
        .unwrap_err();
    assert!(matches!(e, LoadError::MissingSidecar { .. }), "{e}");
    assert!(e.to_string().contains("audit --repair"), "{e}");

    // An unknown stream is an error naming it.
    let e = load(store, &kinesis, "no-such-stream-replay", vec![a2], 100, 250)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-stream-replay"), "{e}");
}

/// A record `{"n": n}` and its bytes.
fn record(n: u64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct R {
        n: u64,
    }
    triton_core::msgpack::to_record_vec(&R { n }).unwrap()
}

fn n_of(r: &triton_core::source::SourceRecord) -> u64 {
    #[derive(serde::Deserialize)]
    struct R {
        n: u64,
    }
    r.deserialize::<R>().unwrap().n
}

/// Puts records `ns` with partition keys spread over the hash range; returns
/// their sequence numbers.
async fn produce(kinesis: &Client, stream: &str, ns: std::ops::Range<u64>) -> Vec<String> {
    let mut seqs = Vec::new();
    for n in ns {
        let out = kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(format!("user-{}", n % 7))
            .data(aws_sdk_kinesis::primitives::Blob::new(record(n)))
            .send()
            .await
            .unwrap();
        seqs.push(out.sequence_number);
    }
    seqs
}

/// Reads until `want` records came, acknowledging each batch.
async fn read(source: &mut ReplaySource, got: &mut Vec<(String, u64)>, want: usize) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < want {
            let batch = source
                .next_batch(100)
                .await
                .unwrap()
                .expect("a live source never ends");
            if let Some(last) = batch.last() {
                source.ack(&last.source, &last.position).await.unwrap();
            }
            got.extend(batch.iter().map(|r| (r.source.to_string(), n_of(r))));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {want} records: {got:?}", got.len()));
}

/// The archive holds the first 6 records of the one shard; the replay reads
/// them from it, then exactly the rest from the stream, then what is
/// produced while it follows, across a split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_then_the_stream_exactly_once_across_a_split() {
    let (kinesis, stream) = new_stream("replay-source").await;
    let seqs = produce(&kinesis, &stream, 0..10).await;

    let tmp = TempDir::new("replay-source");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalStore::new(tmp.path().join("bucket")));
    let key = ArchiveKey::new(&*stream, "store", 100).unwrap();
    let mut w = triton_core::archive::ArchiveWriter::new(Vec::new());
    for n in 0..6 {
        w.write_raw(&record(n)).unwrap();
    }
    let options = PutOptions::default();
    store
        .put_bytes(&key.to_string(), w.finish().unwrap(), &options)
        .await
        .unwrap();
    let sidecar = format!(
        r#"{{"shards":{{"shardId-000000000000":{{"min_sequence_number":"{}","max_sequence_number":"{}","record_count":6}}}},"size":0,"sha256":"","format_version":2}}"#,
        seqs[0], seqs[5]
    );
    store
        .put_bytes(&format!("{key}.metadata"), sidecar.into_bytes(), &options)
        .await
        .unwrap();

    let archives = vec![Archive {
        key: key.clone(),
        size: 0,
    }];
    let loaded = load(store.clone(), &kinesis, &stream, archives, 100, 100)
        .await
        .unwrap();
    let mut options = ReplayOptions {
        follow: true,
        ..ReplayOptions::default()
    };
    options.live.poll_interval = Duration::from_millis(100);
    let mut source = ReplaySource::new(
        store.clone(),
        kinesis.clone(),
        &stream,
        loaded.clone(),
        options.clone(),
    );
    assert!(source.lost().is_empty());

    let mut got = Vec::new();
    read(&mut source, &mut got, 10).await;
    let shard0 = "shardId-000000000000".to_string();
    let expected: Vec<(String, u64)> = (0..6)
        .map(|n| (key.to_string(), n))
        .chain((6..10).map(|n| (shard0.clone(), n)))
        .collect();
    assert_eq!(got, expected);
    assert!(source.is_live());

    // Following: more records, then a split and records on both children.
    produce(&kinesis, &stream, 10..13).await;
    read(&mut source, &mut got, 13).await;
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, &stream).await;
    produce(&kinesis, &stream, 13..27).await;
    read(&mut source, &mut got, 27).await;
    let mut ns: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    assert_eq!(&ns[..13], &(0..13).collect::<Vec<_>>()[..], "{got:?}");
    ns.sort_unstable();
    assert_eq!(ns, (0..27).collect::<Vec<_>>(), "each record once: {got:?}");
    let children: std::collections::BTreeSet<&str> =
        got[13..].iter().map(|(s, _)| s.as_str()).collect();
    assert!(children.iter().all(|s| *s != shard0), "{children:?}");
    // Nothing more than was produced.
    let extra = tokio::time::timeout(Duration::from_millis(500), source.next_batch(100)).await;
    assert!(extra.is_err() || extra.unwrap().unwrap().unwrap().is_empty());

    // Without following, the same replay ends at the tip, with the same
    // records.
    options.follow = false;
    let mut bounded = ReplaySource::new(store, kinesis, &stream, loaded, options);
    let mut again = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(batch) = bounded.next_batch(100).await.unwrap() {
            if let Some(last) = batch.last() {
                bounded.ack(&last.source, &last.position).await.unwrap();
            }
            again.extend(batch.iter().map(|r| (r.source.to_string(), n_of(r))));
        }
    })
    .await
    .expect("a bounded replay ends");
    let mut sorted = again.clone();
    sorted.sort_by_key(|(_, n)| *n);
    assert_eq!(sorted, {
        let mut g = got.clone();
        g.sort_by_key(|(_, n)| *n);
        g
    });
}

/// A last archived record the stream does not hold (past its retention, or
/// another stream's) is reported when the replay goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_record_the_stream_lost_is_reported() {
    let (kinesis, stream) = new_stream("replay-lost").await;
    produce(&kinesis, &stream, 0..3).await;
    let tmp = TempDir::new("replay-lost");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalStore::new(tmp.path().join("bucket")));
    // A sequence number of the right form that this stream never had.
    let foreign = "49590338271490256608559692538361571095921575989136588898";
    let archive = put(&*store, &stream, 100, Some((foreign, foreign))).await;
    let loaded = load(store.clone(), &kinesis, &stream, vec![archive], 100, 100)
        .await
        .unwrap();
    assert!(loaded.handoff.lost.is_empty());
    let mut options = ReplayOptions::default();
    options.live.poll_interval = Duration::from_millis(100);
    let mut source = ReplaySource::new(store, kinesis, &stream, loaded, options);
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(batch) = source.next_batch(100).await.unwrap() {
            if let Some(last) = batch.last() {
                source.ack(&last.source, &last.position).await.unwrap();
            }
        }
    })
    .await
    .expect("a bounded replay ends");
    let lost = source.lost();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].shard, "shardId-000000000000");
    assert_eq!(lost[0].after.as_deref(), Some(foreign));
    assert!(lost[0].reason.contains("does not hold"), "{lost:?}");
}
