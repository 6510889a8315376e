//! The reader against the local server: resuming, resharding, invalid data.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;
use triton_core::checkpoint::{Checkpoint, CheckpointStore, MemoryCheckpoints};
use triton_core::config::StreamConfig;
use triton_core::source::{RecordSource, Replay, SequenceNumber, SequenceRange, SourceRecord};
use triton_kinesis::{
    list_shards, Checkpointing, KinesisReader, KinesisReplay, Producer, ProducerOptions,
    ReaderOptions, StartPosition,
};

use crate::support::*;

fn fast(start: StartPosition) -> ReaderOptions {
    ReaderOptions {
        start,
        poll_interval: Duration::from_millis(200),
        rediscover_interval: Duration::from_secs(1),
        ..ReaderOptions::default()
    }
}

/// A reader without checkpoints, polling fast.
async fn open(client: &Client, stream: &StreamConfig, start: StartPosition) -> KinesisReader {
    KinesisReader::open(client.clone(), &stream.name, fast(start), None)
        .await
        .unwrap()
}

async fn produce(client: &Client, stream: &StreamConfig, range: std::ops::Range<u64>) {
    let mut producer = Producer::new(client.clone(), stream, ProducerOptions::default());
    for n in range {
        producer.send_serialize(&event(n, 50)).await.unwrap();
    }
    producer.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_the_last_acknowledged_record_and_never_ahead_of_it() {
    let client = client().await;
    let stream = create_stream(&client, "resume", 4).await;
    produce(&client, &stream, 0..5000).await;
    let store = Arc::new(MemoryCheckpoints::default());
    let checkpointing = Checkpointing {
        store: store.clone(),
        client: "tests".into(),
        resume: true,
    };

    // First run: take records but acknowledge only part of them, then stop.
    let mut reader = KinesisReader::open(
        client.clone(),
        &stream.name,
        fast(StartPosition::TrimHorizon),
        Some(checkpointing.clone()),
    )
    .await
    .unwrap();
    let mut first = Vec::new();
    let mut acked = Vec::new();
    while first.len() < 3000 {
        let batch = reader.next_batch(300).await.unwrap().unwrap();
        // Acknowledge up to the middle of the batch: the rest was fetched
        // and delivered but not handled.
        let mid = &batch[batch.len() / 2];
        reader.ack(&mid.source, &mid.position).await.unwrap();
        acked.push((mid.source.to_string(), seq(&mid.position)));
        first.extend(batch);
    }
    reader.commit().await.unwrap();
    drop(reader);

    // The store holds exactly the last acknowledged position of each shard.
    let saved = store.list("tests").await.unwrap();
    for s in &saved {
        let last_acked = acked
            .iter()
            .filter(|(shard, _)| *shard == s.checkpoint.shard)
            .map(|(_, q)| SequenceNumber::new(q.clone()).unwrap())
            .max()
            .unwrap();
        assert_eq!(
            s.checkpoint.sequence, last_acked,
            "shard {}",
            s.checkpoint.shard
        );
    }

    // Second run: continues after the checkpoints; nothing lost, and the
    // only repeats are records delivered but never acknowledged.
    // Shards the first run never acknowledged have no checkpoint: they
    // start where the caller says, here at their oldest record.
    let mut reader = KinesisReader::open(
        client,
        &stream.name,
        fast(StartPosition::TrimHorizon),
        Some(checkpointing),
    )
    .await
    .unwrap();
    let checkpointed = |r: &&SourceRecord| {
        saved.iter().any(|s| {
            *r.source == *s.checkpoint.shard
                && SequenceNumber::new(seq(&r.position)).unwrap() <= s.checkpoint.sequence
        })
    };
    let mut all: Vec<SourceRecord> = first.iter().filter(checkpointed).cloned().collect();
    let handled = all.len();
    let rest = read_n(&mut reader, 5000 - handled, Duration::from_secs(60)).await;
    all.extend(rest);
    assert_once_in_key_order(&all, 5000);
    assert!(
        handled < first.len(),
        "the test must leave unacknowledged records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_skips_old_records_and_a_foreign_checkpoint_falls_back_to_trim_horizon() {
    let client = client().await;
    let stream = create_stream(&client, "latest", 1).await;
    produce(&client, &stream, 0..10).await;
    let mut reader = open(&client, &stream, StartPosition::Latest).await;
    // Let the shard task take its LATEST iterator before writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce(&client, &stream, 10..20).await;
    let got = read_n(&mut reader, 10, Duration::from_secs(20)).await;
    let ns: Vec<u64> = got
        .iter()
        .map(|r| r.deserialize::<Event>().unwrap().n)
        .collect();
    assert_eq!(ns, (10..20).collect::<Vec<_>>());

    // A checkpoint the shard does not hold (taken from another stream's
    // shard 1): warn and read from the oldest record, do not crash-loop.
    let other = create_stream(&client, "latest-other", 2).await;
    let mut p = Producer::new(client.clone(), &other, ProducerOptions::default());
    let mut foreign = None;
    for n in 0..200 {
        p.send_serialize(&event(n, 50)).await.unwrap();
    }
    for r in p.flush().await.unwrap() {
        if r.shard_id.ends_with("0001") {
            foreign = Some(r.sequence_number);
        }
    }
    let store = Arc::new(MemoryCheckpoints::default());
    let shard = list_shards(&client, &stream.name).await.unwrap()[0]
        .id
        .clone();
    store
        .save(&Checkpoint {
            client: "tests".into(),
            stream: stream.name.clone(),
            shard,
            sequence: foreign.expect("a record in the other stream's shard 1"),
        })
        .await
        .unwrap();
    let mut reader = KinesisReader::open(
        client,
        &stream.name,
        fast(StartPosition::Latest),
        Some(Checkpointing {
            store,
            client: "tests".into(),
            resume: true,
        }),
    )
    .await
    .unwrap();
    let got = read_n(&mut reader, 20, Duration::from_secs(20)).await;
    assert_once_in_key_order(&got, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_timestamp_starts_with_the_first_record_at_or_after_it() {
    let client = client().await;
    let stream = create_stream(&client, "at-time", 2).await;
    produce(&client, &stream, 0..10).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = std::time::SystemTime::now();
    produce(&client, &stream, 10..30).await;
    let mut reader = open(&client, &stream, StartPosition::AtTimestamp(t)).await;
    let got = read_n(&mut reader, 20, Duration::from_secs(20)).await;
    assert_eq!(sorted_ns(&got), (10..30).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_splits_and_merges_parents_before_children() {
    let client = client().await;
    let stream = create_stream(&client, "reshard", 2).await;
    let mut reader = open(&client, &stream, StartPosition::TrimHorizon).await;
    produce(&client, &stream, 0..1000).await;
    let mut got = read_n(&mut reader, 500, Duration::from_secs(30)).await;

    // Split shard 0 in the middle of its hash key range.
    let s0 = split_first_shard(&client, &stream).await;
    produce(&client, &stream, 1000..2000).await;

    // Merge the upper child of the split with the old shard 1 (adjacent).
    let shards = list_shards(&client, &stream.name).await.unwrap();
    let open: Vec<_> = shards.iter().filter(|s| s.is_open()).collect();
    let upper_child = open
        .iter()
        .filter(|s| s.parent.as_deref() == Some(s0.as_str()))
        .max_by_key(|s| s.starting_hash_key.parse::<u128>().unwrap())
        .unwrap();
    client
        .merge_shards()
        .stream_name(&stream.name)
        .shard_to_merge(&upper_child.id)
        .adjacent_shard_to_merge(&shards[1].id)
        .send()
        .await
        .unwrap();
    wait_active(&client, &stream.name).await;
    produce(&client, &stream, 2000..3000).await;

    got.extend(read_n(&mut reader, 2500, Duration::from_secs(60)).await);
    assert_once_in_key_order(&got, 3000);
    let shards = list_shards(&client, &stream.name).await.unwrap();
    assert_eq!(shards.len(), 5, "2 + 2 from the split + 1 from the merge");
    let status = reader.status();
    for s in shards.iter().filter(|s| !s.is_open()) {
        let st = status.iter().find(|x| x.shard == s.id).unwrap();
        assert_eq!(st.phase, "finished", "{st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_data_that_is_not_a_record_as_invalid() {
    let client = client().await;
    let stream = create_stream(&client, "invalid", 1).await;
    let mut reader = open(&client, &stream, StartPosition::TrimHorizon).await;
    let payloads: Vec<Vec<u8>> = vec![
        b"not msgpack at all".to_vec(),
        vec![0x93, 1, 2, 3],    // an array, not a map
        vec![0x81, 0xa1, b'a'], // a map cut short
        vec![0x80, 0x80],       // two maps
    ];
    for p in &payloads {
        client
            .put_record()
            .stream_name(&stream.name)
            .partition_key("k")
            .data(Blob::new(p.clone()))
            .send()
            .await
            .unwrap();
    }
    produce(&client, &stream, 0..1).await;
    let got = read_n(&mut reader, 5, Duration::from_secs(20)).await;
    for (r, p) in got.iter().zip(&payloads) {
        assert_eq!(&r.data, p);
        assert!(r.validate().is_err(), "{:?}", r.data);
        assert!(r.record().is_err());
    }
    assert!(got[4].validate().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_delivers_exactly_the_recorded_ranges() {
    let client = client().await;
    let stream = create_stream(&client, "replay", 2).await;
    produce(&client, &stream, 0..2000).await;
    let mut reader = open(&client, &stream, StartPosition::TrimHorizon).await;
    let all = read_n(&mut reader, 2000, Duration::from_secs(30)).await;
    // Per shard, in order: the ranges are records 100..=700 of the first
    // shard and the single 5th record of the second.
    let mut by_shard: std::collections::BTreeMap<&str, Vec<&SourceRecord>> = Default::default();
    for r in &all {
        by_shard.entry(&r.source).or_default().push(r);
    }
    let shards: Vec<&Vec<&SourceRecord>> = by_shard.values().collect();
    assert_eq!(shards.len(), 2);
    let sequence = |r: &SourceRecord| SequenceNumber::new(seq(&r.position)).unwrap();
    let range = |records: &[&SourceRecord], from: usize, to: usize| {
        SequenceRange::inclusive(
            records[0].source.to_string(),
            sequence(records[from]),
            sequence(records[to]),
        )
    };
    // A chain's link: after one record through another.
    let after = |records: &[&SourceRecord], from: usize, to: usize| {
        SequenceRange::after(
            records[0].source.to_string(),
            sequence(records[from]),
            sequence(records[to]),
        )
    };
    let ranges = vec![
        range(shards[0], 100, 700),
        range(shards[1], 5, 5),
        after(shards[1], 9, 30),
    ];
    let mut want: Vec<SourceRecord> = shards[0][100..=700].iter().map(|r| (*r).clone()).collect();
    want.push(shards[1][5].clone());
    want.extend(shards[1][10..=30].iter().map(|r| (*r).clone()));

    let replay = KinesisReplay::new(client.clone(), stream.name.clone());
    let mut source = replay.replay(ranges).await.unwrap();
    let mut got = Vec::new();
    // Small batches: ranges end inside GetRecords answers.
    while let Some(batch) = tokio::time::timeout(Duration::from_secs(30), source.next_batch(64))
        .await
        .expect("the replay hung")
        .unwrap()
    {
        got.extend(batch);
    }
    assert_eq!(got, want);
}

/// Captured log lines, for tests that check what the reader says.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Splits the stream's first shard in the middle of its hash key range;
/// returns its id.
async fn split_first_shard(client: &Client, stream: &StreamConfig) -> String {
    let shards = list_shards(client, &stream.name).await.unwrap();
    let s0 = &shards[0];
    let lo: u128 = s0.starting_hash_key.parse().unwrap();
    let hi: u128 = s0.ending_hash_key.parse().unwrap();
    client
        .split_shard()
        .stream_name(&stream.name)
        .shard_to_split(&s0.id)
        .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(client, &stream.name).await;
    s0.id.clone()
}

/// A consumer that never acknowledges stops at a split (children wait for
/// their parent's acknowledgements), and the reader says so once, naming
/// the shard; read through RecordReader, the same consumer code goes on
/// past the split without acknowledging by hand.
#[tokio::test]
async fn a_consumer_that_never_acknowledges_is_warned_at_a_split() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let client = client().await;
    let stream = create_stream(&client, "noack", 1).await;
    produce(&client, &stream, 0..100).await;
    let options = ReaderOptions {
        ack_warning: Duration::from_secs(1),
        ..fast(StartPosition::TrimHorizon)
    };
    let mut reader = KinesisReader::open(client.clone(), &stream.name, options.clone(), None)
        .await
        .unwrap();
    let mut got = 0;
    while got < 100 {
        got += reader.next_batch(100).await.unwrap().unwrap().len();
    }
    let parent = split_first_shard(&client, &stream).await;
    produce(&client, &stream, 100..200).await;
    // Nothing acknowledged: the children never start.
    let more = tokio::time::timeout(Duration::from_secs(6), reader.next_batch(100)).await;
    assert!(
        more.is_err(),
        "a child was read before its parent was acknowledged"
    );
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("children wait until every record it delivered is acknowledged"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains(&parent), "{}", warnings[0]);

    // The same stream through RecordReader: every record, in key order,
    // with no acknowledgement written by the consumer.
    let reader = KinesisReader::open(client.clone(), &stream.name, options, None)
        .await
        .unwrap();
    let mut records = triton_core::source::RecordReader::new(reader);
    let mut all = Vec::new();
    while all.len() < 200 {
        let next = tokio::time::timeout(Duration::from_secs(30), records.next_record())
            .await
            .expect("RecordReader stopped at the split")
            .unwrap()
            .unwrap();
        all.push(next);
    }
    assert_once_in_key_order(&all, 200);
}
