//! The producer against the local server.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use triton_core::value::Record;
use triton_kinesis::{
    KinesisReader, ProduceError, Producer, ProducerOptions, ReaderOptions, StartPosition,
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_read_back_10000_records_over_4_shards() {
    let client = client().await;
    let stream = create_stream(&client, "roundtrip", 4).await;
    let mut producer = Producer::new(client.clone(), &stream, ProducerOptions::default());
    for n in 0..10_000 {
        producer.send_serialize(&event(n, 97)).await.unwrap();
    }
    let receipts = producer.flush().await.unwrap();
    assert_eq!(receipts.len(), 10_000);
    assert_eq!(producer.stats().records, 10_000);
    assert!(producer.stats().calls >= 20, "500 records a call at most");
    let shards: HashSet<&str> = receipts.iter().map(|r| r.shard_id.as_str()).collect();
    assert_eq!(shards.len(), 4, "97 keys spread over all 4 shards");

    let options = ReaderOptions {
        start: StartPosition::TrimHorizon,
        poll_interval: Duration::from_millis(200),
        ..ReaderOptions::default()
    };
    let mut reader = KinesisReader::open(client, &stream.name, options, None)
        .await
        .unwrap();
    let records = read_n(&mut reader, 10_000, Duration::from_secs(60)).await;
    assert_once_in_key_order(&records, 10_000);
    // Each record is where its receipt said.
    let by_n: HashMap<u64, (String, String)> = records
        .iter()
        .map(|r| {
            let e: Event = r.deserialize().unwrap();
            (e.n, (r.source.to_string(), seq(&r.position)))
        })
        .collect();
    for (n, receipt) in receipts.iter().enumerate() {
        let (shard, sequence) = &by_n[&(n as u64)];
        assert_eq!(shard, &receipt.shard_id);
        assert_eq!(sequence, receipt.sequence_number.as_str());
    }
    // Dynamic records too, not only typed ones.
    let first = records[0].record().unwrap();
    assert!(first.get("user").is_some() && first.get("n").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_records_it_cannot_key_or_that_are_too_large() {
    let client = client().await;
    let stream = create_stream(&client, "refuse", 1).await;
    let mut producer = Producer::new(client.clone(), &stream, ProducerOptions::default());

    let mut no_key = Record::new();
    no_key.push("name", "x");
    let e = producer.send(&no_key).await.unwrap_err();
    assert!(
        matches!(&e, ProduceError::PartitionKey(m) if m.contains("\"user\"")),
        "{e}"
    );

    let mut float_key = Record::new();
    float_key.push("user", 1.5);
    let e = producer.send(&float_key).await.unwrap_err();
    assert!(e.to_string().contains("float64"), "{e}");

    let huge = Event {
        user: "u".into(),
        n: 0,
        payload: "x".repeat(1024 * 1024),
    };
    match producer.send_serialize(&huge).await.unwrap_err() {
        ProduceError::TooLarge { size } => assert!(size > 1024 * 1024),
        e => panic!("{e}"),
    }
    let e = producer.send_raw(vec![0x93, 1, 2, 3]).await.unwrap_err();
    assert!(matches!(e, ProduceError::Invalid(_)), "{e}");

    // The refusals left nothing behind; good records still go out, integer
    // keys as decimal.
    let mut int_key = Record::new();
    int_key.push("user", 42i64);
    producer.send(&int_key).await.unwrap();
    assert_eq!(producer.flush().await.unwrap().len(), 1);

    let mut random = Producer::new(
        client,
        &stream,
        ProducerOptions {
            random_keys: true,
            ..ProducerOptions::default()
        },
    );
    random.send(&no_key).await.unwrap();
    assert_eq!(random.flush().await.unwrap().len(), 1);
}
