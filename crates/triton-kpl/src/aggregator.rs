//! [`Aggregator`]: packs user records into aggregates up to a size, as a
//! producer sends them.

use std::collections::HashMap;

use prost::encoding::encoded_len_varint;

use crate::{aggregate, UserRecord, DIGEST_LEN, MAGIC};

/// How full an aggregate may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of the whole aggregate (magic, message and digest). The
    /// default, 51,200, is the KPL's `AggregationMaxSize`; Kinesis takes
    /// up to 1 MiB per record, partition key included.
    pub max_bytes: usize,
    /// Most user records per aggregate (the KPL's `AggregationMaxCount`
    /// default is 4,294,967,295: no limit but the size).
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 51_200,
            max_records: u32::MAX as usize,
        }
    }
}

/// One aggregate, ready to send as a Kinesis record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// The record's data.
    pub data: Vec<u8>,
    /// The partition key to send it with: its first user record's (the KPL's
    /// choice; the whole aggregate goes to that key's shard).
    pub partition_key: String,
    /// The explicit hash key to send it with: its first user record's.
    pub explicit_hash_key: Option<String>,
    /// User records in it.
    pub records: usize,
}

/// User records gathered into one aggregate, with its exact encoded size
/// kept as they are added, so that it never grows past its [`Limits`].
#[derive(Debug, Default)]
pub struct Aggregator {
    limits: Limits,
    records: Vec<UserRecord>,
    /// Each distinct key and its index in its table.
    partition_keys: HashMap<String, usize>,
    hash_keys: HashMap<String, usize>,
    /// The protobuf message's length.
    message_len: usize,
}

/// Bytes of a length-delimited field (tag, length, payload).
fn field_len(payload: usize) -> usize {
    1 + encoded_len_varint(payload as u64) + payload
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(limits: Limits) -> Aggregator {
        Aggregator {
            limits,
            ..Aggregator::default()
        }
    }

    /// User records gathered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no user record is gathered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The size the aggregate would have now.
    pub fn size(&self) -> usize {
        MAGIC.len() + self.message_len + DIGEST_LEN
    }

    /// The message bytes `record` would add.
    fn growth(&self, record: &UserRecord) -> usize {
        let mut grow = 0;
        let pk_index = match self.partition_keys.get(&record.partition_key) {
            Some(&i) => i,
            None => {
                grow += field_len(record.partition_key.len());
                self.partition_keys.len()
            }
        };
        let mut record_len = 1 + encoded_len_varint(pk_index as u64);
        if let Some(hash) = &record.explicit_hash_key {
            let index = match self.hash_keys.get(hash) {
                Some(&i) => i,
                None => {
                    grow += field_len(hash.len());
                    self.hash_keys.len()
                }
            };
            record_len += 1 + encoded_len_varint(index as u64);
        }
        record_len += field_len(record.data.len());
        for tag in &record.tags {
            let value = tag.value.as_ref().map_or(0, |v| field_len(v.len()));
            record_len += field_len(field_len(tag.key.len()) + value);
        }
        grow + field_len(record_len)
    }

    /// Adds `record` if the aggregate stays within its limits; else gives
    /// it back: [`finish`](Self::finish) and add it to the next one. A
    /// record too big for an empty aggregate is given back too: send it as
    /// a plain record.
    pub fn try_add(&mut self, record: UserRecord) -> Result<(), UserRecord> {
        let grow = self.growth(&record);
        if self.records.len() >= self.limits.max_records
            || self.size() + grow > self.limits.max_bytes
        {
            return Err(record);
        }
        self.message_len += grow;
        let next = self.partition_keys.len();
        self.partition_keys
            .entry(record.partition_key.clone())
            .or_insert(next);
        if let Some(hash) = &record.explicit_hash_key {
            let next = self.hash_keys.len();
            self.hash_keys.entry(hash.clone()).or_insert(next);
        }
        self.records.push(record);
        Ok(())
    }

    /// The aggregate of the records gathered, which are then gone; `None`
    /// when there are none.
    pub fn finish(&mut self) -> Option<Aggregate> {
        let first = self.records.first()?;
        let partition_key = first.partition_key.clone();
        let explicit_hash_key = first.explicit_hash_key.clone();
        let data = aggregate(&self.records);
        let records = self.records.len();
        *self = Aggregator::new(self.limits);
        Some(Aggregate {
            data,
            partition_key,
            explicit_hash_key,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{deaggregate, Tag};

    proptest! {
        /// The size kept is the size written, no aggregate passes the
        /// limit, and every record comes back once, in order.
        #[test]
        fn packs_exactly_within_the_limit(
            records in proptest::collection::vec(
                (
                    "[a-c]{1,3}",
                    proptest::option::of("[0-9]{1,3}"),
                    0usize..3000,
                    proptest::option::of(("[a-z]{0,3}", proptest::option::of("[a-z]{0,3}"))),
                ),
                1..200,
            ),
            max_bytes in 200usize..20_000,
            max_records in 1usize..50,
        ) {
            let limits = Limits { max_bytes, max_records };
            let records: Vec<UserRecord> = records
                .into_iter()
                .map(|(partition_key, explicit_hash_key, len, tag)| UserRecord {
                    partition_key,
                    explicit_hash_key,
                    data: vec![7; len],
                    tags: tag.map(|(key, value)| Tag { key, value }).into_iter().collect(),
                })
                .collect();
            let mut agg = Aggregator::new(limits);
            let mut back = Vec::new();
            let check = |a: Aggregate, back: &mut Vec<UserRecord>| {
                assert!(a.data.len() <= max_bytes && a.records <= max_records);
                let users = deaggregate(&a.data).unwrap().unwrap();
                assert_eq!(users.len(), a.records);
                assert_eq!(users[0].partition_key, a.partition_key);
                back.extend(users);
            };
            for r in &records {
                if let Err(r) = agg.try_add(r.clone()) {
                    if let Some(a) = agg.finish() {
                        check(a, &mut back);
                    }
                    if let Err(r) = agg.try_add(r) {
                        // Too big alone: sent plain.
                        assert!(aggregate(std::slice::from_ref(&r)).len() > max_bytes);
                        back.push(r);
                        continue;
                    }
                }
                let size = agg.size();
                let written = aggregate(&agg.records).len();
                prop_assert_eq!(size, written);
            }
            if let Some(a) = agg.finish() {
                check(a, &mut back);
            }
            prop_assert_eq!(back, records);
        }
    }
}
