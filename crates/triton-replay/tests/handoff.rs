//! The hand-off planned from archives in a local directory and a stream on
//! the local Kinesis server (kinesalite) that was split after the archives.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use triton_core::key::ArchiveKey;
use triton_core::source::SequenceNumber;
use triton_replay::plan::Start;
use triton_replay::{load, LoadError};
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
    let kinesis = client().await;
    let stream = format!("replay-handoff-{}", std::process::id());
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, &stream).await;
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

    // A missing sidecar before one that is there cannot be passed over.
    let e = load(store.clone(), &kinesis, &stream, vec![a3, a1], 100)
        .await
        .unwrap_err();
    assert!(matches!(e, LoadError::MissingSidecar { .. }), "{e}");
    assert!(e.to_string().contains("audit --repair"), "{e}");

    // An unknown stream is an error naming it.
    let e = load(store, &kinesis, "no-such-stream-replay", vec![a2], 100)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-stream-replay"), "{e}");
}
