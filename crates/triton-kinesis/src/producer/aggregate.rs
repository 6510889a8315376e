//! Packing records into KPL aggregates, grouped by the shard their
//! partition key maps to, so that each key's records stay in one shard and
//! in order (as the KPL does).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use tokio::time::Instant;
use triton_core::error::Report;
use triton_kpl::{Aggregator, Limits, UserRecord};

use super::Entry;
use crate::shards::list_shards;

/// How long a listed shard map is used before it is listed again.
const SHARD_MAP_AGE: Duration = Duration::from_secs(30);

/// The open shards' hash key ranges, as listed.
struct ShardMap {
    ranges: Vec<(u128, u128, String)>,
    listed: Instant,
}

impl ShardMap {
    fn shard_of(&self, hash: u128) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&hash))
            .map(|(_, _, id)| id.as_str())
    }
}

/// One aggregate being filled, with the producer's indexes of its records.
struct Open {
    aggregator: Aggregator,
    indexes: Vec<usize>,
}

/// The aggregates being filled, one per shard.
pub(super) struct Packing {
    limits: Limits,
    map: Option<ShardMap>,
    /// By order key: the shard id.
    open: HashMap<String, Open>,
    /// Order of first use of the open aggregates, so that finishing them
    /// all queues them as their records came.
    order: Vec<String>,
}

impl Packing {
    pub(super) fn new(limits: Limits) -> Packing {
        Packing {
            limits,
            map: None,
            open: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Adds record `index` (its data and partition key); returns the
    /// entries it completed: a full aggregate, or the record itself when
    /// it is too big for one (after the aggregate of its shard, so that
    /// order holds) or when no shard map is known (then records go plain:
    /// packing them per key would hold one aggregate per key in memory).
    pub(super) fn add(&mut self, data: Vec<u8>, key: String, index: usize) -> Vec<Entry> {
        let mut done = Vec::new();
        let hash = triton_kpl::partition_hash(&key);
        let Some(shard) = self.map.as_ref().and_then(|m| m.shard_of(hash)) else {
            done.push(Entry::plain(data, key.clone(), key, index));
            return done;
        };
        let order_key = shard.to_owned();
        let record = UserRecord {
            partition_key: key,
            explicit_hash_key: None,
            data,
            tags: Vec::new(),
        };
        let limits = self.limits;
        if !self.open.contains_key(&order_key) {
            self.order.push(order_key.clone());
        }
        let open = self.open.entry(order_key.clone()).or_insert_with(|| Open {
            aggregator: Aggregator::new(limits),
            indexes: Vec::new(),
        });
        let record = match open.aggregator.try_add(record) {
            Ok(()) => {
                open.indexes.push(index);
                return done;
            }
            Err(record) => record,
        };
        done.extend(finish(open, &order_key));
        match open.aggregator.try_add(record) {
            Ok(()) => open.indexes.push(index),
            Err(record) => done.push(Entry::plain(
                record.data,
                record.partition_key,
                order_key,
                index,
            )),
        }
        done
    }

    /// Notes that an aggregate meant for shard `meant` went to `took`:
    /// the map is listed again before the next record is packed.
    pub(super) fn stale(&mut self, took: &str, meant: &str) {
        if let Some(map) = self
            .map
            .as_mut()
            .filter(|m| m.listed.elapsed() < SHARD_MAP_AGE)
        {
            tracing::info!(
                meant,
                took,
                "an aggregate went to another shard than the shard map said; listing the shards again"
            );
            map.listed = Instant::now()
                .checked_sub(SHARD_MAP_AGE)
                .unwrap_or(map.listed);
        }
    }

    /// Every open aggregate, finished, in the order they were opened.
    pub(super) fn finish_all(&mut self) -> Vec<Entry> {
        let mut done = Vec::new();
        for key in std::mem::take(&mut self.order) {
            if let Some(mut open) = self.open.remove(&key) {
                done.extend(finish(&mut open, &key));
            }
        }
        done
    }

    /// Lists the shard map when it is missing or old. When it changed (a
    /// reshard, or listing failed), returns the open aggregates, finished:
    /// the caller sends them, and everything queued, before any record is
    /// packed under the new map, so that no record of a key can be
    /// overtaken by a later one that the new map sends elsewhere.
    pub(super) async fn refresh(&mut self, client: &Client, stream: &str) -> Option<Vec<Entry>> {
        if self
            .map
            .as_ref()
            .is_some_and(|m| m.listed.elapsed() < SHARD_MAP_AGE)
        {
            return None;
        }
        let ranges = match list_shards(client, stream).await {
            Ok(shards) => {
                let mut ranges: Vec<(u128, u128, String)> = shards
                    .into_iter()
                    .filter(|s| s.is_open())
                    .filter_map(|s| {
                        Some((
                            s.starting_hash_key.parse().ok()?,
                            s.ending_hash_key.parse().ok()?,
                            s.id,
                        ))
                    })
                    .collect();
                ranges.sort();
                ranges
            }
            Err(e) => {
                tracing::warn!(
                    error = %Report(&e),
                    "listing the shards to aggregate by failed; sending records plain until \
                     the next try"
                );
                Vec::new()
            }
        };
        let changed = self.map.as_ref().is_none_or(|m| m.ranges != ranges);
        self.map = Some(ShardMap {
            ranges,
            listed: Instant::now(),
        });
        changed.then(|| self.finish_all())
    }
}

fn finish(open: &mut Open, order_key: &str) -> Option<Entry> {
    let aggregate = open.aggregator.finish()?;
    Some(Entry {
        data: aggregate.data,
        key: aggregate.partition_key,
        order_key: order_key.to_owned(),
        indexes: std::mem::take(&mut open.indexes),
        aggregated: true,
        attempts: 0,
    })
}
