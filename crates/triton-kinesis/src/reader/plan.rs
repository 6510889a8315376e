//! Where each shard starts when the reader opens: the pure part of
//! resuming, kept apart so that its rules are tested without a server.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use triton_core::source::SequenceNumber;

use crate::shards::ShardInfo;

/// Where to start the shards that have no checkpoint (and no checkpointed
/// relative, see [`plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// Only records that arrive from now on (the default, as in go-triton).
    #[default]
    Latest,
    /// The oldest record still in the stream.
    TrimHorizon,
    /// The first record that arrived at or after this time.
    AtTimestamp(SystemTime),
}

/// Where one shard's reading begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    After(SequenceNumber),
    /// At this record (re-reading a recorded range).
    At(SequenceNumber),
    /// Inside this aggregated record, after its user record `sub` (a
    /// consumer stopped there: see `CheckpointStore::save_subsequences`).
    Inside {
        sequence: SequenceNumber,
        sub: u32,
    },
    TrimHorizon,
    Latest,
    AtTimestamp(SystemTime),
}

/// What to do with a shard found when the reader opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Read it from `Start` (once its parents are finished).
    Read(Start),
    /// Nothing to read: its data was consumed before, or is older than
    /// where the caller asked to start.
    Skip,
}

/// Decides each shard's start, in this order of rules:
/// 1. a checkpoint: just after it;
/// 2. a descendant has a checkpoint: skip, the shard was finished before
///    its children were read;
/// 3. another shard of its lineage (linked through splits and merges,
///    including parents that expired from the stream) has a checkpoint:
///    from its first record, because this consumer was reading that family
///    and this shard holds what followed, or ran beside, what it read;
/// 4. otherwise the caller's `start`; with `Latest`, closed shards are
///    skipped (nothing new will arrive in them).
pub(crate) fn plan(
    shards: &[ShardInfo],
    checkpoints: &HashMap<String, SequenceNumber>,
    start: &StartPosition,
) -> HashMap<String, Plan> {
    // Parent links include parents no longer listed: their checkpoints
    // still say that the family was being read.
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut links: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in shards {
        for p in s.parents() {
            children.entry(p).or_default().push(&s.id);
            links.entry(p).or_default().push(&s.id);
            links.entry(&s.id).or_default().push(p);
        }
    }
    // True when a shard reachable from `from` along `edges` has a checkpoint.
    let reaches_checkpoint = |from: &str, edges: &HashMap<&str, Vec<&str>>| -> bool {
        let mut seen = HashSet::from([from]);
        let mut todo: Vec<&str> = edges.get(from).cloned().unwrap_or_default();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            if checkpoints.contains_key(id) {
                return true;
            }
            todo.extend(edges.get(id).into_iter().flatten().copied());
        }
        false
    };

    shards
        .iter()
        .map(|s| {
            let plan = if let Some(seq) = checkpoints.get(&s.id) {
                Plan::Read(Start::After(seq.clone()))
            } else if reaches_checkpoint(&s.id, &children) {
                Plan::Skip
            } else if reaches_checkpoint(&s.id, &links) {
                Plan::Read(Start::TrimHorizon)
            } else {
                match start {
                    StartPosition::TrimHorizon => Plan::Read(Start::TrimHorizon),
                    StartPosition::AtTimestamp(t) => Plan::Read(Start::AtTimestamp(*t)),
                    StartPosition::Latest if s.is_open() => Plan::Read(Start::Latest),
                    StartPosition::Latest => Plan::Skip,
                }
            };
            (s.id.clone(), plan)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], open: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parents.first().map(|p| p.to_string()),
            adjacent_parent: parents.get(1).map(|p| p.to_string()),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            starting_sequence_number: "1".into(),
            ending_sequence_number: (!open).then(|| "9".into()),
        }
    }

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::new(s).unwrap()
    }

    /// a was split into b and c; b and c were merged into d.
    fn family() -> Vec<ShardInfo> {
        vec![
            shard("a", &[], false),
            shard("b", &["a"], false),
            shard("c", &["a"], false),
            shard("d", &["b", "c"], true),
            shard("e", &[], true),
        ]
    }

    fn get<'a>(p: &'a HashMap<String, Plan>, id: &str) -> &'a Plan {
        &p[id]
    }

    #[test]
    fn without_checkpoints_follows_the_start_position() {
        let none = HashMap::new();
        let latest = plan(&family(), &none, &StartPosition::Latest);
        for closed in ["a", "b", "c"] {
            assert_eq!(get(&latest, closed), &Plan::Skip);
        }
        assert_eq!(get(&latest, "d"), &Plan::Read(Start::Latest));
        assert_eq!(get(&latest, "e"), &Plan::Read(Start::Latest));

        let all = plan(&family(), &none, &StartPosition::TrimHorizon);
        assert!(all.values().all(|p| *p == Plan::Read(Start::TrimHorizon)));
    }

    #[test]
    fn a_checkpoint_resumes_its_shard_reads_descendants_whole_and_skips_ancestors() {
        let cps = HashMap::from([("b".to_string(), seq("42"))]);
        let p = plan(&family(), &cps, &StartPosition::Latest);
        assert_eq!(get(&p, "b"), &Plan::Read(Start::After(seq("42"))));
        assert_eq!(
            get(&p, "a"),
            &Plan::Skip,
            "a was finished before b was read"
        );
        assert_eq!(get(&p, "d"), &Plan::Read(Start::TrimHorizon));
        // b's sibling: its records ran beside b's and come before d's.
        assert_eq!(get(&p, "c"), &Plan::Read(Start::TrimHorizon));
        // Not of the family: the caller's choice.
        assert_eq!(get(&p, "e"), &Plan::Read(Start::Latest));
    }

    #[test]
    fn a_checkpoint_of_an_expired_parent_still_counts() {
        // b and c were split from a, which expired from the stream.
        let shards = vec![shard("b", &["a"], true), shard("c", &["a"], true)];
        let cps = HashMap::from([("a".to_string(), seq("7"))]);
        let p = plan(&shards, &cps, &StartPosition::Latest);
        assert_eq!(get(&p, "b"), &Plan::Read(Start::TrimHorizon));
        assert_eq!(get(&p, "c"), &Plan::Read(Start::TrimHorizon));
    }

    #[test]
    fn expired_parents_do_not_matter() {
        let shards = vec![shard("d", &["gone1", "gone2"], true)];
        let p = plan(&shards, &HashMap::new(), &StartPosition::Latest);
        assert_eq!(get(&p, "d"), &Plan::Read(Start::Latest));
    }
}
