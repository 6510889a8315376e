//! Kinesis records as source records: plain records as they are, the user
//! records of aggregates (the KPL's format) one by one.

use std::sync::Arc;

use triton_core::error::Report;
use triton_core::source::{AggregateMeta, Position, RecordMeta, SequenceNumber, SourceRecord};

use crate::error::KinesisError;
use crate::shards::ShardInfo;

/// What converting needs to know of the shard beside its id.
#[derive(Debug)]
pub(crate) struct Converter {
    stream: String,
    shard: Arc<str>,
    /// The shard's hash key range, where known: user records put outside
    /// it are counted (the KCL drops their whole aggregate; triton keeps
    /// them).
    range: Option<(u128, u128)>,
    /// Whether the first user record outside the range was logged.
    warned_outside: bool,
}

impl Converter {
    pub(crate) fn new(stream: &str, shard: &Arc<str>, info: Option<&ShardInfo>) -> Converter {
        let range = info.and_then(|i| {
            Some((
                i.starting_hash_key.parse().ok()?,
                i.ending_hash_key.parse().ok()?,
            ))
        });
        Converter {
            stream: stream.to_owned(),
            shard: shard.clone(),
            range,
            warned_outside: false,
        }
    }

    /// The source records of `records`, in order. A Kinesis record that is
    /// an aggregate becomes its user records: all but the last at
    /// [`Position::SubSequence`], the last at the Kinesis record's own
    /// sequence number, so that a batch ending there ends at a Kinesis
    /// record and acknowledging it acknowledges the whole aggregate. An
    /// aggregate whose protobuf is damaged (its digest matches) is kept as
    /// one plain record, which consumers treat as any invalid record.
    pub(crate) fn convert(
        &mut self,
        records: Vec<aws_sdk_kinesis::types::Record>,
    ) -> Result<Vec<SourceRecord>, KinesisError> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let seq = SequenceNumber::new(r.sequence_number).map_err(|e| {
                KinesisError::fatal(
                    "GetRecords",
                    &self.stream,
                    format!("shard {}: {e}", self.shard),
                )
            })?;
            let arrival_ms = r
                .approximate_arrival_timestamp
                .and_then(|t| t.to_millis().ok());
            let data = r.data.into_inner();
            match triton_kpl::deaggregate(&data) {
                Ok(Some(users)) => {
                    self.user_records(&mut out, seq, arrival_ms, users);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        shard = %self.shard, sequence_number = %seq, error = %Report(&e),
                        "a damaged aggregated record (its digest matches, its protobuf does not \
                         decode) is kept as one record"
                    );
                    metrics::counter!("triton_kpl_damaged_total", "stream" => self.stream.clone())
                        .increment(1);
                }
            }
            // A plain record, or a damaged aggregate kept as one.
            out.push(SourceRecord {
                source: self.shard.clone(),
                position: Position::Sequence(seq),
                data,
                meta: RecordMeta {
                    arrival_ms,
                    partition_key: r.partition_key,
                    ..RecordMeta::default()
                },
            });
        }
        Ok(out)
    }

    fn user_records(
        &mut self,
        out: &mut Vec<SourceRecord>,
        seq: SequenceNumber,
        arrival_ms: Option<i64>,
        users: Vec<triton_kpl::UserRecord>,
    ) {
        metrics::counter!("triton_kpl_aggregates_total", "stream" => self.stream.clone())
            .increment(1);
        if users.is_empty() {
            tracing::debug!(shard = %self.shard, sequence_number = %seq, "an aggregate without user records");
            return;
        }
        // An aggregate holds at most 1 MiB, so fewer user records than a u32 counts.
        let records = u32::try_from(users.len()).unwrap_or(u32::MAX);
        let last = users.len() - 1;
        let mut outside = 0u64;
        for (i, user) in users.into_iter().enumerate() {
            let sub = u32::try_from(i).unwrap_or(u32::MAX);
            if let Some((start, end)) = self.range {
                if user.hash_key().is_none_or(|h| h < start || h > end) {
                    outside += 1;
                }
            }
            let position = if i == last {
                Position::Sequence(seq.clone())
            } else {
                Position::SubSequence {
                    sequence: seq.clone(),
                    sub,
                }
            };
            out.push(SourceRecord {
                source: self.shard.clone(),
                position,
                data: user.data,
                meta: RecordMeta {
                    arrival_ms,
                    partition_key: Some(user.partition_key),
                    explicit_hash_key: user.explicit_hash_key,
                    aggregate: Some(AggregateMeta { sub, records }),
                },
            });
        }
        if outside > 0 {
            metrics::counter!(
                "triton_kpl_outside_hash_range_total",
                "stream" => self.stream.clone(), "shard" => self.shard.to_string()
            )
            .increment(outside);
            if !self.warned_outside {
                self.warned_outside = true;
                tracing::warn!(
                    shard = %self.shard, sequence_number = %seq, records = outside,
                    "user records of an aggregate have hash keys outside the shard's range \
                     (the producer put them with the aggregate's key); they are kept, not \
                     dropped as the KCL does, and counted in triton_kpl_outside_hash_range_total"
                );
            }
        }
    }
}
