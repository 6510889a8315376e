//! The behaviour every finite [`RecordSource`] must have, as a check that
//! implementations run against their real backends (feature `test-util`).
//!
//! It panics with a message naming the broken rule.

use super::{Position, RecordSource, SequenceNumber, SourceError, SourceRecord};

/// Batch sizes asked for in turn, small ones included, so that sources which
/// split their internal batches are exercised.
const MAX_SIZES: [usize; 5] = [1, 3, 1000, 2, 64];

/// A position after `p` that no source delivered.
fn beyond(p: &Position) -> Position {
    match p {
        Position::Index(i) => Position::Index(i + 1_000_000),
        Position::Sequence(s) | Position::SubSequence { sequence: s, .. } => Position::Sequence(
            SequenceNumber::new(format!("{s}0")).unwrap_or_else(|e| panic!("{e}")),
        ),
    }
}

/// Reads `source` to its end and checks that it delivers exactly `expected`
/// (in order), in batches of 1 to the size asked for, that it refuses
/// acknowledgements it cannot honour, and that its end stays the end.
pub async fn check_finite(source: &mut dyn RecordSource, expected: &[SourceRecord]) {
    let bad_ack = |r: Result<(), SourceError>, what: &str| match r {
        Err(SourceError::BadAck { .. }) => {}
        other => panic!("{what}: expected BadAck, got {other:?}"),
    };
    bad_ack(
        source.ack("never-delivered", &Position::Index(0)).await,
        "ack of a sub-source never delivered",
    );
    let mut got: Vec<SourceRecord> = Vec::new();
    for round in 0.. {
        let max = MAX_SIZES[round % MAX_SIZES.len()];
        let Some(batch) = source.next_batch(max).await.expect("next_batch") else {
            break;
        };
        assert!(
            !batch.is_empty() && batch.len() <= max,
            "asked for at most {max}, got a batch of {}",
            batch.len()
        );
        let last = batch.last().expect("non-empty");
        bad_ack(
            source.ack(&last.source, &beyond(&last.position)).await,
            "ack of a position not delivered yet",
        );
        source
            .ack(&last.source, &last.position)
            .await
            .expect("ack of the last delivered record");
        if let Some(first) = batch.first().filter(|f| f.position < last.position) {
            if first.source == last.source {
                bad_ack(
                    source.ack(&first.source, &first.position).await,
                    "ack going backwards",
                );
            }
        }
        source.commit().await.expect("commit");
        got.extend(batch);
    }
    assert_eq!(got.len(), expected.len(), "number of records delivered");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "record {i} differs");
    }
    for pair in got.windows(2) {
        if pair[0].source == pair[1].source {
            assert!(
                pair[0].position < pair[1].position,
                "positions within {} must increase: {} then {}",
                pair[0].source,
                pair[0].position,
                pair[1].position
            );
        }
    }
    for _ in 0..2 {
        assert!(
            source
                .next_batch(10)
                .await
                .expect("next_batch after the end")
                .is_none(),
            "the end must stay the end"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveWriter;
    use crate::source::{FileSource, MemorySource};

    fn record(i: u64) -> Vec<u8> {
        let mut out = vec![0x81, 0xa1, b'n', 0xcf];
        out.extend_from_slice(&i.to_be_bytes());
        out
    }

    #[tokio::test]
    async fn memory_source() {
        let data: Vec<Vec<u8>> = (0..100).map(record).collect();
        let id: std::sync::Arc<str> = "m".into();
        let expected: Vec<SourceRecord> = (0..100)
            .map(|i| SourceRecord {
                source: id.clone(),
                position: Position::Index(i),
                data: record(i),
                meta: Default::default(),
            })
            .collect();
        check_finite(&mut MemorySource::from_data("m", data), &expected).await;
    }

    #[tokio::test]
    async fn file_source() {
        let dir = std::env::temp_dir().join(format!("triton-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut paths = Vec::new();
        let mut expected = Vec::new();
        for f in 0..3u64 {
            let path = dir.join(format!("{f}.tri"));
            let mut w = ArchiveWriter::new(Vec::new());
            let id: std::sync::Arc<str> = path.display().to_string().into();
            for i in 0..(50 * f) {
                w.write_raw(&record(i)).expect("write");
                expected.push(SourceRecord {
                    source: id.clone(),
                    position: Position::Index(i),
                    data: record(i),
                    meta: Default::default(),
                });
            }
            std::fs::write(&path, w.finish().expect("finish")).expect("write file");
            paths.push(path);
        }
        check_finite(&mut FileSource::new(paths), &expected).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
