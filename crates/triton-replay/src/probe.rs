//! Checking that the stream still holds a shard's last archived record,
//! so that the live part can go on right after it.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;
use triton_core::source::SequenceNumber;
use triton_kinesis::Client;

use crate::plan::Lost;

/// Empty GetRecords results followed before giving up: Kinesis may answer
/// empty pages before the first record.
const HOPS: usize = 5;

/// What a probe found: `None` when the stream still holds `last` (nothing
/// between the archives and the stream is lost), else the range that may be.
/// A failed call is reported as an error (the caller goes on without the
/// check, and says so).
pub(crate) async fn probe(
    kinesis: &Client,
    stream: &str,
    shard: &str,
    last: &SequenceNumber,
) -> Result<Option<Lost>, String> {
    let lost = |before: Option<String>, reason: &str| {
        Some(Lost {
            shard: shard.to_owned(),
            after: Some(last.as_str().to_owned()),
            before,
            reason: reason.to_owned(),
        })
    };
    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(last.as_str())
        .send()
        .await;
    let mut iterator = match iterator {
        Ok(out) => out.shard_iterator,
        Err(e) if e.code() == Some("InvalidArgumentException") => {
            return Ok(lost(
                None,
                "the stream does not hold the last archived record (past its retention, or not this stream's)",
            ))
        }
        Err(e) => return Err(triton_core::error::Report(&e).to_string()),
    };
    for _ in 0..HOPS {
        let Some(it) = iterator.take() else { break };
        let out = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(1)
            .send()
            .await
            .map_err(|e| triton_core::error::Report(&e).to_string())?;
        if let Some(first) = out.records.first() {
            return Ok(if first.sequence_number == last.as_str() {
                None
            } else {
                lost(
                    Some(first.sequence_number.clone()),
                    "the stream no longer holds the records right after the archives (past its retention): some may be lost",
                )
            });
        }
        if out.millis_behind_latest == Some(0) {
            break;
        }
        iterator = out.next_shard_iterator;
    }
    Ok(lost(
        None,
        "the stream no longer holds the last archived record (past its retention)",
    ))
}
