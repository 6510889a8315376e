//! [`Metadata`]: what an archive holds, as its `<key>.metadata` sidecar
//! says, and as the upload intent in the checkpoint database records it
//! before the upload. One document for both, so that recovery and `triton
//! audit` read what the writer wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use triton_core::source::{Origin, Position, SequenceNumber};

/// Version of the sidecar layout: 2 adds the chain (where each shard's
/// records continue from, and shard ends); 3 adds each shard's
/// `kinesis_record_count` (user records of aggregated Kinesis records are
/// the archive's records, so `record_count` may be larger).
pub const METADATA_FORMAT_VERSION: u32 = 3;

/// The sidecar: go-triton's layout (`{"shards": {"<shard id>":
/// {"min_sequence_number": …, "max_sequence_number": …}}}`) plus counts,
/// sizes, SHA-256 and versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Per shard, the first and last record in the archive and its dead
    /// letters.
    pub shards: BTreeMap<String, ShardRange>,
    /// The archive's key (as finally uploaded).
    #[serde(default)]
    pub archive: Option<String>,
    /// Valid records in the archive.
    #[serde(default)]
    pub record_count: u64,
    /// Bytes of the archive.
    pub size: u64,
    /// SHA-256 of the archive, lowercase hex.
    pub sha256: String,
    /// Records in the dead-letter archive.
    #[serde(default)]
    pub invalid_record_count: u64,
    /// The dead-letter archive's key, if there is one.
    #[serde(default)]
    pub invalid_archive: Option<String>,
    /// Bytes of the dead-letter archive.
    #[serde(default)]
    pub invalid_size: Option<u64>,
    /// SHA-256 of the dead-letter archive.
    #[serde(default)]
    pub invalid_sha256: Option<String>,
    /// [`METADATA_FORMAT_VERSION`] of the writer (0: go-triton).
    #[serde(default)]
    pub format_version: u32,
    /// The program that wrote it.
    #[serde(default)]
    pub writer: String,
    /// Keys this archive could not take because another object held them
    /// (create-only uploads never replace one), oldest first. `triton
    /// audit` reports such an object as foreign instead of as a damaged
    /// archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_from: Vec<MovedFrom>,
    /// Set when `triton audit --repair` wrote this sidecar: what it rebuilt
    /// and from what (the archive read again from the stream, or a lost
    /// sidecar from its archive and its neighbours' links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
}

/// A key an archive was meant for and could not use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedFrom {
    /// The key.
    pub key: String,
    /// Why it could not be used.
    pub reason: String,
}

/// One shard's records in an archive (dead letters included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRange {
    /// The first record's position (a Kinesis sequence number).
    pub min_sequence_number: String,
    /// The last record's position.
    pub max_sequence_number: String,
    /// How many records of the shard it holds (user records, for
    /// aggregated Kinesis records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
    /// How many Kinesis records they came in (format version 3): fewer
    /// than `record_count` when some were aggregates. An aggregate is never
    /// split across archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis_record_count: Option<u64>,
    /// The chain: the shard's records here continue from the record with
    /// this sequence number (the checkpoint reading resumed from, or the
    /// last record of the shard in the archive before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The key of the archive holding the record `after` names, where it
    /// is known (not for checkpoints saved without upload intents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_archive: Option<String>,
    /// For the first archive of a shard in a run that did not resume from a
    /// checkpoint: how reading began (`TRIM_HORIZON`, `LATEST`,
    /// `AT_TIMESTAMP`, or `AFTER_PARENTS` for a child of a split or merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The time of a `LATEST` or `AT_TIMESTAMP` start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// For `AFTER_PARENTS`: where each parent ended, and in which archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentEnd>,
    /// The archive holds the shard's last record (the shard was closed by
    /// a split or merge and read to its end).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shard_end: bool,
}

/// Where a parent shard ended, as its child's first archive records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentEnd {
    /// The parent shard.
    pub shard: String,
    /// Its last record, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sequence_number: Option<String>,
    /// The archive holding it, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

impl ShardRange {
    /// A range of `records` records from `first` to `last`.
    pub fn new(first: &Position, last: &Position, records: u64) -> ShardRange {
        ShardRange {
            min_sequence_number: position_text(first),
            max_sequence_number: position_text(last),
            record_count: Some(records),
            kinesis_record_count: None,
            after: None,
            after_archive: None,
            start: None,
            start_time: None,
            parents: Vec::new(),
            shard_end: false,
        }
    }

    /// The same records (first, last, count), whatever the chain says.
    pub fn same_records(&self, other: &ShardRange) -> bool {
        self.min_sequence_number == other.min_sequence_number
            && self.max_sequence_number == other.max_sequence_number
            && self.record_count == other.record_count
            && (self.kinesis_record_count.is_none()
                || other.kinesis_record_count.is_none()
                || self.kinesis_record_count == other.kinesis_record_count)
    }

    /// Takes the chain of `other` (a rebuilt archive continues what the
    /// recorded one continued).
    pub fn take_chain(&mut self, other: &ShardRange) {
        self.after.clone_from(&other.after);
        self.after_archive.clone_from(&other.after_archive);
        self.start.clone_from(&other.start);
        self.start_time.clone_from(&other.start_time);
        self.parents.clone_from(&other.parents);
        self.shard_end = other.shard_end;
    }

    /// Records where reading of the shard began in this run.
    pub fn set_origin(&mut self, origin: &Origin) {
        let time = |t: &std::time::SystemTime| triton_core::value::Timestamp::from(*t).to_string();
        match origin {
            Origin::After(p) => self.after = Some(position_text(p)),
            Origin::TrimHorizon => self.start = Some("TRIM_HORIZON".into()),
            Origin::Latest(t) => {
                self.start = Some("LATEST".into());
                self.start_time = Some(time(t));
            }
            Origin::AtTimestamp(t) => {
                self.start = Some("AT_TIMESTAMP".into());
                self.start_time = Some(time(t));
            }
            Origin::AfterParents(parents) => {
                self.start = Some("AFTER_PARENTS".into());
                self.parents = parents
                    .iter()
                    .map(|p| ParentEnd {
                        shard: p.clone(),
                        last_sequence_number: None,
                        archive: None,
                    })
                    .collect();
            }
        }
    }

    /// The first and last as sequence numbers, if they are.
    pub fn sequences(&self) -> Option<(SequenceNumber, SequenceNumber)> {
        Some((
            SequenceNumber::new(self.min_sequence_number.as_str()).ok()?,
            SequenceNumber::new(self.max_sequence_number.as_str()).ok()?,
        ))
    }
}

fn position_text(p: &Position) -> String {
    match p {
        Position::Sequence(s) | Position::SubSequence { sequence: s, .. } => s.to_string(),
        Position::Index(i) => i.to_string(),
    }
}

impl Metadata {
    /// Nothing yet, by this writer.
    pub(crate) fn empty() -> Metadata {
        Metadata {
            shards: BTreeMap::new(),
            archive: None,
            record_count: 0,
            size: 0,
            sha256: String::new(),
            invalid_record_count: 0,
            invalid_archive: None,
            invalid_size: None,
            invalid_sha256: None,
            format_version: METADATA_FORMAT_VERSION,
            writer: concat!("triton ", env!("CARGO_PKG_VERSION")).to_owned(),
            moved_from: Vec::new(),
            rebuilt: None,
        }
    }

    /// The sidecar's JSON, pretty and ending in a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a sidecar; the error says what is missing or malformed.
    pub fn parse(bytes: &[u8]) -> Result<Metadata, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a metadata sidecar: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_tritons_shard_layout_and_round_trips() {
        let go = br#"{"shards": {"shardId-000000000000": {"min_sequence_number": "1", "max_sequence_number": "9"}}, "size": 3, "sha256": "ab"}"#;
        let m = Metadata::parse(go).unwrap();
        let range = &m.shards["shardId-000000000000"];
        assert_eq!(range.record_count, None);
        assert_eq!(range.sequences().unwrap().1.as_str(), "9");
        assert_eq!(Metadata::parse(&m.to_json()).unwrap(), m);
        let err = Metadata::parse(b"{\"shards\": {}}").unwrap_err();
        assert!(err.contains("size"), "{err}");
    }
}
