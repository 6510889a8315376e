use proptest::prelude::*;

use super::*;

fn user(key: &str, data: &[u8]) -> UserRecord {
    UserRecord {
        partition_key: key.into(),
        data: data.to_vec(),
        ..UserRecord::default()
    }
}

/// `message` framed as an aggregate.
fn framed(message: &[u8]) -> Vec<u8> {
    [&MAGIC[..], message, Md5::digest(message).as_slice()].concat()
}

#[test]
fn reads_a_hand_written_aggregate() {
    // {partition_key_table: ["a"], records: [{partition_key_index: 0, data: "x"}]}
    let message = [0x0a, 0x01, b'a', 0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, b'x'];
    let records = deaggregate(&framed(&message)).unwrap().unwrap();
    assert_eq!(records, vec![user("a", b"x")]);
}

#[test]
fn round_trips_keys_hash_keys_tags_and_empty_data() {
    let records = vec![
        UserRecord {
            explicit_hash_key: Some("340282366920938463463374607431768211455".into()),
            tags: vec![
                Tag {
                    key: "k".into(),
                    value: Some("v".into()),
                },
                Tag {
                    key: "bare".into(),
                    value: None,
                },
            ],
            ..user("p1", b"")
        },
        user("p2", b"two"),
        user("p1", &[0xff; 3000]),
    ];
    let bytes = aggregate(&records);
    assert!(is_aggregated(&bytes));
    assert_eq!(deaggregate(&bytes).unwrap(), Some(records));
}

#[test]
fn keys_are_written_once_each() {
    let records: Vec<UserRecord> = (0..1000)
        .map(|i| user(&format!("k{}", i % 3), b"d"))
        .collect();
    let bytes = aggregate(&records);
    let message = &bytes[MAGIC.len()..bytes.len() - DIGEST_LEN];
    let decoded = proto::AggregatedRecord::decode(message).unwrap();
    assert_eq!(decoded.partition_key_table, ["k0", "k1", "k2"]);
    assert_eq!(deaggregate(&bytes).unwrap().unwrap(), records);
}

#[test]
fn plain_records_are_not_aggregates() {
    let good = aggregate(&[user("a", b"x")]);
    let mut wrong_digest = good.clone();
    let last = wrong_digest.len() - 1;
    wrong_digest[last] ^= 1;
    let mut wrong_magic = good.clone();
    wrong_magic[0] = 0x81;
    for plain in [
        &b""[..],
        &MAGIC[..],
        &[&MAGIC[..], &[0u8; 16][..]].concat(),
        &wrong_digest,
        &wrong_magic,
        b"\x81\xa1a\x01",
    ] {
        assert!(!is_aggregated(plain), "{plain:?}");
        assert_eq!(deaggregate(plain), Ok(None), "{plain:?}");
    }
    // No user record: magic and digest only, a plain record by the length rule.
    assert_eq!(deaggregate(&aggregate(&[])), Ok(None));
}

#[test]
fn damage_behind_a_matching_digest_is_a_typed_error() {
    // Truncated inside the second field: the digest is of the bytes as they are.
    let message = [0x0a, 0x01, b'a', 0x1a, 0x05, 0x08, 0x00, 0x1a];
    let err = deaggregate(&framed(&message)).unwrap_err();
    assert!(matches!(err, KplError::Protobuf { end: 12, .. }), "{err}");
    // A record naming a partition key the table does not have.
    let message = [0x0a, 0x01, b'a', 0x1a, 0x05, 0x08, 0x07, 0x1a, 0x01, b'x'];
    let err = deaggregate(&framed(&message)).unwrap_err();
    assert_eq!(
        err,
        KplError::KeyIndex {
            record: 0,
            table: "partition key",
            index: 7,
            len: 1
        }
    );
    assert!(err.to_string().contains("user record 0"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes, with or without the magic and a matching digest: an
    /// answer, never a panic.
    #[test]
    fn never_panics(message in proptest::collection::vec(any::<u8>(), 0..256), frame in any::<bool>()) {
        let data = if frame { framed(&message) } else { message };
        let _ = deaggregate(&data);
    }

    #[test]
    fn round_trips(records in proptest::collection::vec(
        ("[a-z]{0,4}", proptest::option::of("[0-9]{1,39}"), proptest::collection::vec(any::<u8>(), 0..64)),
        0..40,
    )) {
        let records: Vec<UserRecord> = records
            .into_iter()
            .map(|(partition_key, explicit_hash_key, data)| UserRecord { partition_key, explicit_hash_key, data, tags: vec![] })
            .collect();
        let bytes = aggregate(&records);
        let back = deaggregate(&bytes).unwrap();
        if records.is_empty() {
            // Magic and digest only: not longer than both, so a plain record.
            prop_assert_eq!(back, None);
        } else {
            prop_assert_eq!(back, Some(records));
        }
    }
}

#[test]
fn hash_keys_are_kinesis_own() {
    // MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
    assert_eq!(partition_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661_u128);
    let mut r = user("a", b"");
    assert_eq!(r.hash_key(), Some(partition_hash("a")));
    r.explicit_hash_key = Some("340282366920938463463374607431768211455".into());
    assert_eq!(r.hash_key(), Some(u128::MAX));
    r.explicit_hash_key = Some("not a number".into());
    assert_eq!(r.hash_key(), None);
}
