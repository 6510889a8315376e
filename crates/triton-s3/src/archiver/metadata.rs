//! [`Metadata`]: what an archive holds, as its `<key>.metadata` sidecar
//! says, and as the upload intent in the checkpoint database records it
//! before the upload. One document for both, so that recovery and `triton
//! audit` read what the writer wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use triton_core::source::{Position, SequenceNumber};

/// Version of the sidecar layout.
pub const METADATA_FORMAT_VERSION: u32 = 1;

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
    /// How many records of the shard it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
}

impl ShardRange {
    /// A range of `records` records from `first` to `last`.
    pub fn new(first: &Position, last: &Position, records: u64) -> ShardRange {
        ShardRange {
            min_sequence_number: position_text(first),
            max_sequence_number: position_text(last),
            record_count: Some(records),
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
        Position::Sequence(s) => s.to_string(),
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
