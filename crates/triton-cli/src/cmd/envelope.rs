//! `--with-meta`: each record as `{"<where it came from>"…, "record": {…}}`.
//!
//! Records of the live stream: `shard`, `sequence` (a string: 56 digits do
//! not fit a JSON number), `arrival` (RFC 3339, milliseconds) and
//! `partition_key` where the stream gave them; a user record of an
//! aggregated Kinesis record (the KPL's format) adds `sub_sequence` (its
//! index in the aggregate) and `explicit_hash_key` if it has one. Records of archives:
//! `archive` (the key or path) and `index` (0 = its first record).

use triton_core::json::{self, RawWriter};
use triton_core::msgpack::RecordError;
use triton_core::source::{Position, SourceRecord};
use triton_core::time::write_rfc3339_nanos;

/// Writes `r` as one JSON value (no line break): the record alone, or with
/// `meta` the envelope.
pub fn write_record(
    out: &mut Vec<u8>,
    scratch: &mut RawWriter,
    r: &SourceRecord,
    meta: bool,
) -> Result<(), RecordError> {
    if !meta {
        return json::write_raw_record(out, scratch, &r.data);
    }
    // The record first, so that an invalid one leaves nothing behind.
    let start = out.len();
    match &r.position {
        Position::Sequence(seq) | Position::SubSequence { sequence: seq, .. } => {
            out.extend_from_slice(b"{\"shard\":");
            json::write_str(out, r.source.as_bytes());
            out.extend_from_slice(b",\"sequence\":");
            json::write_str(out, seq.as_str().as_bytes());
            if let Some(aggregate) = r.meta.aggregate {
                out.extend_from_slice(format!(",\"sub_sequence\":{}", aggregate.sub).as_bytes());
            }
        }
        Position::Index(i) => {
            out.extend_from_slice(b"{\"archive\":");
            json::write_str(out, r.source.as_bytes());
            out.extend_from_slice(format!(",\"index\":{i}").as_bytes());
        }
    }
    if let Some(ms) = r.meta.arrival_ms {
        let mut time = String::with_capacity(32);
        let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0);
        write_rfc3339_nanos(ms.div_euclid(1000), nanos, &mut time);
        out.extend_from_slice(b",\"arrival\":");
        json::write_str(out, time.as_bytes());
    }
    if let Some(key) = &r.meta.partition_key {
        out.extend_from_slice(b",\"partition_key\":");
        json::write_str(out, key.as_bytes());
    }
    if let Some(key) = &r.meta.explicit_hash_key {
        out.extend_from_slice(b",\"explicit_hash_key\":");
        json::write_str(out, key.as_bytes());
    }
    out.extend_from_slice(b",\"record\":");
    if let Err(e) = json::write_raw_record(out, scratch, &r.data) {
        out.truncate(start);
        return Err(e);
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use triton_core::source::{RecordMeta, SequenceNumber};

    use super::*;

    fn line(r: &SourceRecord) -> String {
        let mut out = Vec::new();
        write_record(&mut out, &mut RawWriter::new(), r, true).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn live_and_archived_records_say_where_they_came_from() {
        let live = SourceRecord {
            source: Arc::from("shardId-000000000001"),
            position: Position::Sequence(SequenceNumber::new("4961").unwrap()),
            data: vec![0x81, 0xa1, b'a', 0x01],
            meta: RecordMeta {
                arrival_ms: Some(1_764_763_200_123),
                partition_key: Some("u\"1".into()),
                ..RecordMeta::default()
            },
        };
        assert_eq!(
            line(&live),
            r#"{"shard":"shardId-000000000001","sequence":"4961","arrival":"2025-12-03T12:00:00.123Z","partition_key":"u\"1","record":{"a":1}}"#
        );
        let user = SourceRecord {
            position: Position::SubSequence {
                sequence: SequenceNumber::new("4962").unwrap(),
                sub: 3,
            },
            meta: RecordMeta {
                arrival_ms: None,
                partition_key: Some("k".into()),
                explicit_hash_key: Some("17".into()),
                aggregate: Some(triton_core::source::AggregateMeta { sub: 3, records: 9 }),
            },
            ..live.clone()
        };
        assert_eq!(
            line(&user),
            r#"{"shard":"shardId-000000000001","sequence":"4962","sub_sequence":3,"partition_key":"k","explicit_hash_key":"17","record":{"a":1}}"#
        );
        let archived = SourceRecord {
            source: Arc::from("20261203/s-c-1.tri"),
            position: Position::Index(7),
            data: vec![0x80],
            meta: RecordMeta::default(),
        };
        assert_eq!(
            line(&archived),
            r#"{"archive":"20261203/s-c-1.tri","index":7,"record":{}}"#
        );
    }

    #[test]
    fn an_invalid_record_leaves_nothing_behind() {
        let bad = SourceRecord {
            source: Arc::from("shardId-0"),
            position: Position::Index(0),
            data: vec![0xc1],
            meta: RecordMeta::default(),
        };
        let mut out = b"kept".to_vec();
        assert!(write_record(&mut out, &mut RawWriter::new(), &bad, true).is_err());
        assert_eq!(out, b"kept");
    }
}
