/*!
The aggregated record format of the Kinesis Producer Library (KPL), which
its ports (aws-kinesis-agg, fluent-bit, Vector) write too: many user records
packed into one Kinesis record.

```text
F3 89 9A C2 | AggregatedRecord (protobuf, proto2) | MD5 of the protobuf bytes (16)
```

[`deaggregate`] detects an aggregate exactly as the Kinesis Client Library
does (the magic, room for the digest, a matching MD5; anything else is a
plain record) and returns its user records; [`aggregate`] writes one, and
[`Aggregator`] packs records into aggregates up to a size, as a producer
sends them.
No AWS types: the Kinesis reader and the producer both use it, and so can
anyone holding the bytes.

The protobuf messages are written out with `prost`'s derive instead of
generated from a `.proto` file, so that building needs no `protoc`; they
follow the KPL's `messages.proto` field for field.
*/
#![deny(missing_docs)]

mod aggregator;
mod proto;

pub use self::aggregator::{Aggregate, Aggregator, Limits};

use md5::{Digest, Md5};
use prost::Message;

/// The first four bytes of every aggregate.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest that ends an aggregate.
pub(crate) const DIGEST_LEN: usize = 16;

/// One user record of an aggregate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// The partition key it was put with.
    pub partition_key: String,
    /// The explicit hash key it was put with, if any.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Vec<u8>,
    /// Its tags (the KPL writes none; the format has them).
    pub tags: Vec<Tag>,
}

/// A tag of a user record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value, if any.
    pub value: Option<String>,
}

/// Why an aggregate (magic and MD5 right) cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KplError {
    /// The protobuf message, at bytes 4 to `end` of the record, is malformed.
    #[error(
        "aggregated record: the protobuf message at bytes 4..{end} cannot be decoded: {reason}"
    )]
    Protobuf {
        /// Where the message ends (the digest follows).
        end: usize,
        /// What the protobuf decoder says.
        reason: String,
    },
    /// A user record names a key beyond its table.
    #[error(
        "aggregated record: user record {record} names {table} {index}, but the table has \
         {len} entries"
    )]
    KeyIndex {
        /// The user record (0 = the first).
        record: usize,
        /// `partition key` or `explicit hash key`.
        table: &'static str,
        /// The index it names.
        index: u64,
        /// Entries in the table.
        len: usize,
    },
}

/// The protobuf bytes of `data` if it is an aggregate as the KCL decides:
/// it starts with [`MAGIC`], is longer than the magic and the digest, and
/// the MD5 of the bytes between them is its last 16 bytes.
fn message_of(data: &[u8]) -> Option<&[u8]> {
    if data.len() <= MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (message, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    (Md5::digest(message).as_slice() == digest).then_some(message)
}

/// True when `data` is an aggregate (see [`deaggregate`]).
pub fn is_aggregated(data: &[u8]) -> bool {
    message_of(data).is_some()
}

/// The user records of `data` when it is an aggregate, in order; `None`
/// when it is a plain record (no magic, too short, or an MD5 that does not
/// match: the KCL's rules). An aggregate may hold no user record.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<UserRecord>>, KplError> {
    let Some(message) = message_of(data) else {
        return Ok(None);
    };
    let decoded = proto::AggregatedRecord::decode(message).map_err(|e| KplError::Protobuf {
        end: MAGIC.len() + message.len(),
        reason: e.to_string(),
    })?;
    let proto::AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = decoded;
    let key = |record: usize, table: &'static str, keys: &[String], index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| keys.get(i))
            .cloned()
            .ok_or(KplError::KeyIndex {
                record,
                table,
                index,
                len: keys.len(),
            })
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(UserRecord {
                partition_key: key(
                    i,
                    "partition key",
                    &partition_key_table,
                    r.partition_key_index,
                )?,
                explicit_hash_key: r
                    .explicit_hash_key_index
                    .map(|x| key(i, "explicit hash key", &explicit_hash_key_table, x))
                    .transpose()?,
                data: r.data,
                tags: r
                    .tags
                    .into_iter()
                    .map(|t| Tag {
                        key: t.key,
                        value: t.value,
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl UserRecord {
    /// The hash key that places the record in a shard, as Kinesis computes
    /// it: the explicit hash key if there is one (a decimal 128-bit
    /// number; `None` if it is not one), else the MD5 of the partition key
    /// read as a big-endian 128-bit number.
    pub fn hash_key(&self) -> Option<u128> {
        match &self.explicit_hash_key {
            Some(key) => key.parse().ok(),
            None => Some(partition_hash(&self.partition_key)),
        }
    }
}

/// The hash key Kinesis gives a partition key: its MD5 as a big-endian
/// 128-bit number.
pub fn partition_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Packs `records` into one aggregate, in order. Each distinct partition
/// key and explicit hash key is written once, in a table, as the KPL does.
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut partition_keys = KeyTable::default();
    let mut hash_keys = KeyTable::default();
    let records = records
        .iter()
        .map(|r| proto::Record {
            partition_key_index: partition_keys.index(&r.partition_key),
            explicit_hash_key_index: r.explicit_hash_key.as_deref().map(|k| hash_keys.index(k)),
            data: r.data.clone(),
            tags: r
                .tags
                .iter()
                .map(|t| proto::Tag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect(),
        })
        .collect();
    let message = proto::AggregatedRecord {
        partition_key_table: partition_keys.keys,
        explicit_hash_key_table: hash_keys.keys,
        records,
    }
    .encode_to_vec();
    let mut out = Vec::with_capacity(MAGIC.len() + message.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

/// Distinct keys in order of first use.
#[derive(Default)]
struct KeyTable {
    keys: Vec<String>,
    index: std::collections::HashMap<String, u64>,
}

impl KeyTable {
    fn index(&mut self, key: &str) -> u64 {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len() as u64;
        self.keys.push(key.to_owned());
        self.index.insert(key.to_owned(), i);
        i
    }
}

#[cfg(test)]
mod tests;
