//! KPL aggregated records through the reader against the local server:
//! user records one by one, batches that end at Kinesis records, and a
//! resume inside an aggregate that repeats and skips nothing.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;
use triton_core::checkpoint::{CheckpointStore, MemoryCheckpoints};
use triton_core::config::StreamConfig;
use triton_core::source::{Position, RecordSource, SourceRecord};
use triton_kinesis::{Checkpointing, KinesisReader, ReaderOptions, StartPosition};
use triton_kpl::UserRecord;

use crate::support::*;

fn options() -> ReaderOptions {
    ReaderOptions {
        start: StartPosition::TrimHorizon,
        poll_interval: Duration::from_millis(200),
        rediscover_interval: Duration::from_secs(1),
        ..ReaderOptions::default()
    }
}

fn user_record(n: u64) -> UserRecord {
    let e = event(n, 7);
    UserRecord {
        partition_key: e.user.clone(),
        explicit_hash_key: None,
        data: rmp_serde::to_vec_named(&e).unwrap(),
        tags: Vec::new(),
    }
}

async fn put(client: &Client, stream: &StreamConfig, key: &str, data: Vec<u8>) -> String {
    client
        .put_record()
        .stream_name(&stream.name)
        .partition_key(key)
        .data(Blob::new(data))
        .send()
        .await
        .unwrap()
        .sequence_number
}

/// Puts, in order: plain records and aggregates of 1 to 9 user records
/// (events 0..count in all, interleaved), then a damaged aggregate (its
/// digest matches, its protobuf does not decode). Returns the sequence
/// numbers of the aggregates and their sizes.
async fn put_mixed(client: &Client, stream: &StreamConfig, count: u64) -> Vec<(String, usize)> {
    let mut aggregates = Vec::new();
    let mut n = 0;
    let mut size = 1;
    while n < count {
        if n % 3 == 0 {
            let data = rmp_serde::to_vec_named(&event(n, 7)).unwrap();
            put(client, stream, &event(n, 7).user, data).await;
            n += 1;
            continue;
        }
        let users: Vec<UserRecord> = (n..(n + size).min(count)).map(user_record).collect();
        let seq = put(
            client,
            stream,
            &users[0].partition_key,
            triton_kpl::aggregate(&users),
        )
        .await;
        aggregates.push((seq, users.len()));
        n += users.len() as u64;
        size = size % 9 + 1;
    }
    aggregates
}

fn damaged_aggregate() -> Vec<u8> {
    use md5::Digest;
    // Field 3 (records) says 100 bytes follow; none do.
    let message = [0x1a, 100];
    let mut out = triton_kpl::MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&md5::Md5::digest(message));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_records_come_one_by_one_in_batches_that_end_at_kinesis_records() {
    let client = client().await;
    let stream = create_stream(&client, "kpl", 1).await;
    let aggregates = put_mixed(&client, &stream, 300).await;
    let damaged = put(&client, &stream, "k", damaged_aggregate()).await;
    let mut reader = KinesisReader::open(client.clone(), &stream.name, options(), None)
        .await
        .unwrap();
    let mut all: Vec<SourceRecord> = Vec::new();
    while all.len() < 301 {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next_batch(4))
            .await
            .expect("records in time")
            .unwrap()
            .unwrap();
        let last = batch.last().unwrap();
        assert!(
            last.position.ends_kinesis_record(),
            "a batch ended inside an aggregate at {}",
            last.position
        );
        let cut_at_max = batch.len() <= 4;
        let rest_of_one = batch[..batch.len() - 1]
            .iter()
            .skip(3)
            .all(|r| r.position.sequence() == last.position.sequence());
        assert!(
            cut_at_max || rest_of_one,
            "a batch of {} went past the aggregate that the fourth record is in",
            batch.len()
        );
        reader.ack(&last.source, &last.position).await.unwrap();
        all.extend(batch);
    }
    let (events, invalid): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.validate().is_ok());
    assert_once_in_key_order(&events, 300);
    assert_eq!(invalid.len(), 1, "the damaged aggregate, kept whole");
    assert_eq!(invalid[0].data, damaged_aggregate());
    assert_eq!(seq(&invalid[0].position), damaged);
    // Each aggregate's user records: sub-sequences 0.., the last at the
    // Kinesis record's own sequence number, each with its own key.
    for (sequence, size) in &aggregates {
        let users: Vec<&SourceRecord> = events
            .iter()
            .filter(|r| r.position.sequence().map(|s| s.as_str()) == Some(sequence.as_str()))
            .collect();
        assert_eq!(users.len(), *size, "aggregate {sequence}");
        for (i, r) in users.iter().enumerate() {
            let meta = r.meta.aggregate.expect("aggregate meta");
            assert_eq!((meta.sub as usize, meta.records as usize), (i, *size));
            let expected = if i + 1 == *size {
                Position::Sequence(sequence.parse().unwrap())
            } else {
                Position::SubSequence {
                    sequence: sequence.parse().unwrap(),
                    sub: i as u32,
                }
            };
            assert_eq!(r.position, expected);
            let e: Event = r.deserialize().unwrap();
            assert_eq!(r.meta.partition_key.as_deref(), Some(e.user.as_str()));
        }
    }
}

/// A consumer that stops in the middle of an aggregate (acknowledging a
/// user record that is not its last) resumes after that user record: the
/// sub-sequence checkpoint says where, the shard's checkpoint stays at the
/// last whole Kinesis record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_inside_an_aggregate_repeats_and_skips_nothing() {
    let client = client().await;
    let stream = create_stream(&client, "kpl-resume", 1).await;
    let before = rmp_serde::to_vec_named(&event(0, 7)).unwrap();
    let whole = put(&client, &stream, "user-0", before).await;
    let users: Vec<UserRecord> = (1..10).map(user_record).collect();
    let aggregate = put(&client, &stream, "user-1", triton_kpl::aggregate(&users)).await;
    put(
        &client,
        &stream,
        "user-3",
        rmp_serde::to_vec_named(&event(10, 7)).unwrap(),
    )
    .await;
    let store = Arc::new(MemoryCheckpoints::default());
    let checkpointing = Checkpointing {
        store: store.clone(),
        client: "tests".into(),
        resume: true,
    };
    let open = || {
        KinesisReader::open(
            client.clone(),
            &stream.name,
            options(),
            Some(checkpointing.clone()),
        )
    };
    let mut reader = open().await.unwrap();
    let mut first = Vec::new();
    while first.len() < 11 {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next_batch(100));
        first.extend(batch.await.expect("records in time").unwrap().unwrap());
    }
    // Handled: event 0 and the aggregate's first four user records.
    let stop = &first[4];
    assert_eq!(
        stop.position,
        Position::SubSequence {
            sequence: aggregate.parse().unwrap(),
            sub: 3
        }
    );
    reader
        .ack(&first[0].source, &first[0].position)
        .await
        .unwrap();
    reader.commit().await.unwrap();
    reader.ack(&stop.source, &stop.position).await.unwrap();
    reader.commit().await.unwrap();
    drop(reader);
    let saved = store.list("tests").await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        saved[0].checkpoint.sequence.as_str(),
        whole,
        "the last whole record"
    );
    let subs = store.subsequences("tests").await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(
        (subs[0].sequence.as_str(), subs[0].sub),
        (aggregate.as_str(), 3)
    );

    let mut reader = open().await.unwrap();
    let rest = read_n(&mut reader, 6, Duration::from_secs(30)).await;
    let mut all = first[..5].to_vec();
    all.extend(rest.iter().cloned());
    assert_once_in_key_order(&all, 11);
    assert_eq!(
        rest[0].meta.aggregate.map(|a| a.sub),
        Some(4),
        "resumed at the fifth user record"
    );
    // Acknowledging the aggregate's last user record makes the checkpoint
    // whole again and the sub-sequence stale.
    let last = &rest[rest.len() - 1];
    reader.ack(&last.source, &last.position).await.unwrap();
    reader.commit().await.unwrap();
    drop(reader);
    let mut reader = open().await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_secs(2), reader.next_batch(10)).await;
    assert!(nothing.is_err(), "nothing is left to read: {nothing:?}");
}

/// Sends events `ns` and flushes: each event with its receipt.
async fn round(
    producer: &mut triton_kinesis::Producer,
    ns: std::ops::Range<u64>,
) -> Vec<(Event, triton_kinesis::Receipt)> {
    let events: Vec<Event> = ns.map(|n| event(n, 40)).collect();
    for e in &events {
        producer.send_serialize(e).await.unwrap();
    }
    let receipts = producer.flush().await.unwrap();
    events.into_iter().zip(receipts).collect()
}

/// After a split, the producer's shard map is stale: the first aggregates
/// go where the stream now sends their keys, and the producer, seeing an
/// aggregate land in another shard than its map said, lists the shards
/// again; from then on every user record is in the shard its key maps to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_lists_the_shards_again_when_an_aggregate_lands_elsewhere() {
    use triton_kinesis::{list_shards, Producer, ProducerOptions};

    let client = client().await;
    let stream = create_stream(&client, "kpl-split", 1).await;
    let options = ProducerOptions {
        aggregation: Some(triton_kpl::Limits {
            max_bytes: 2048,
            ..triton_kpl::Limits::default()
        }),
        ..ProducerOptions::default()
    };
    let mut producer = Producer::new(client.clone(), &stream, options);
    round(&mut producer, 0..200).await;
    let s0 = list_shards(&client, &stream.name).await.unwrap().remove(0);
    let hi: u128 = s0.ending_hash_key.parse().unwrap();
    client
        .split_shard()
        .stream_name(&stream.name)
        .shard_to_split(&s0.id)
        .new_starting_hash_key((hi / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, &stream.name).await;
    let shards = list_shards(&client, &stream.name).await.unwrap();
    let range_of = |id: &str| {
        let s = shards.iter().find(|s| s.id == id).unwrap();
        let lo: u128 = s.starting_hash_key.parse().unwrap();
        let hi: u128 = s.ending_hash_key.parse().unwrap();
        lo..=hi
    };
    // Packed under the old map: one shard for every key.
    round(&mut producer, 200..400).await;
    // Listed again: each aggregate holds keys of its own shard only.
    let placed = round(&mut producer, 400..800).await;
    for (e, receipt) in &placed {
        assert_ne!(receipt.shard_id, s0.id, "the closed parent");
        assert!(
            range_of(&receipt.shard_id).contains(&triton_kpl::partition_hash(&e.user)),
            "{} put in {} outside its range",
            e.user,
            receipt.shard_id
        );
    }
}
