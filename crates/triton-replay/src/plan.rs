//! The hand-off from the archives to the live stream, per shard.
//!
//! Pure: the archives' sidecars and the stream's shard list in, a start per
//! shard and the lost ranges out, so that every rule is tested without a
//! server. The rules mirror the Kinesis reader's own plan from checkpoints
//! (`triton_kinesis::reader::plan`): a shard archived to a point resumes
//! just after it; a shard whose descendant was archived is done; a
//! descendant of an archived shard (a split or merge after the archives
//! end) starts at its beginning, after its parents; any other shard starts
//! at the time of the first archive.

use std::collections::{BTreeMap, BTreeSet};

use triton_core::key::ArchiveKey;
use triton_core::source::SequenceNumber;
use triton_kinesis::ShardInfo;
use triton_s3::archiver::Metadata;

/// One archive that was read, with its sidecar.
#[derive(Clone, Debug)]
pub struct Archived {
    /// Its key.
    pub key: ArchiveKey,
    /// Its sidecar.
    pub sidecar: Metadata,
}

/// Where the live reader starts on one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Just after this record, the shard's last archived one.
    After(SequenceNumber),
    /// Nowhere: the archives hold the shard's last record, this one.
    Ended(SequenceNumber),
    /// Nowhere: a descendant was archived, so the shard was read to its end.
    Done,
    /// At the shard's beginning, once its parents are read (a split or merge
    /// of archived shards after the archives end).
    TrimHorizon,
    /// At the first records that arrived at this Unix second or later (a
    /// shard none of whose lineage is in the archives read: if it began
    /// after that time, this is its beginning).
    AtTimestamp(u64),
}

/// Records that are neither in the archives read nor readable from the
/// stream, reported instead of skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The shard.
    pub shard: String,
    /// The range begins after this record (`None`: at the shard's start).
    pub after: Option<String>,
    /// The range ends before this record (`None`: at the shard's end).
    pub before: Option<String>,
    /// Why.
    pub reason: String,
}

/// The hand-off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handoff {
    /// Where the live reader starts on each shard of the stream.
    pub starts: BTreeMap<String, Start>,
    /// Records of each shard in the archives read (dead letters included,
    /// as the sidecars count them).
    pub archived: BTreeMap<String, u64>,
    /// What cannot be read.
    pub lost: Vec<Lost>,
    /// Shards whose records go on in archives that are not read (opened
    /// after the replay's end, [`Loaded::until`](crate::Loaded::until)).
    pub covered: BTreeSet<String>,
}

/// A shard's end in the archives read.
struct End {
    last: String,
    shard_end: bool,
}

/// Plans the hand-off after `archives` (in reading order) to the stream
/// whose shards are `shards`; `from` is the Unix second unrelated shards
/// start at (the first archive's opening time, or the replay's start when
/// no archive was read).
pub fn plan(archives: &[Archived], shards: &[ShardInfo], from: u64) -> Handoff {
    let mut handoff = Handoff::default();
    let mut ends: BTreeMap<&str, End> = BTreeMap::new();
    for a in archives {
        for (shard, range) in &a.sidecar.shards {
            if let (Some(prev), Some(after)) = (ends.get(shard.as_str()), &range.after) {
                // The chain: this archive must go on from the shard's last
                // record in the archive before.
                if *after != prev.last {
                    handoff.lost.push(Lost {
                        shard: shard.clone(),
                        after: Some(prev.last.clone()),
                        before: Some(range.min_sequence_number.clone()),
                        reason: format!(
                            "the archive before {} is missing from the chain (it goes on after {after})",
                            a.key
                        ),
                    });
                }
            }
            ends.insert(
                shard,
                End {
                    last: range.max_sequence_number.clone(),
                    shard_end: range.shard_end,
                },
            );
            *handoff.archived.entry(shard.clone()).or_default() += range.record_count.unwrap_or(0);
        }
    }

    starts(&mut handoff, &ends, shards, from, true);
    handoff
}

/// Plans the hand-off from the checkpoints of the store that wrote the
/// archives, taken before they were listed (for archives without sidecars,
/// such as go-triton's): each checkpointed shard goes on after its
/// checkpoint, with the rules of [`plan`] for the others. Counts of
/// archived records are unknown. A checkpointed shard no longer in the
/// stream is not reported: a store keeps the checkpoints of shards it read
/// to their end, which expire after a reshard.
pub fn plan_from_checkpoints(
    checkpoints: &BTreeMap<String, SequenceNumber>,
    shards: &[ShardInfo],
    from: u64,
) -> Handoff {
    let mut handoff = Handoff::default();
    let ends: BTreeMap<&str, End> = checkpoints
        .iter()
        .map(|(shard, seq)| {
            let end = End {
                last: seq.as_str().to_owned(),
                // A closed shard's reader reads nothing after its last
                // record, then goes on with its children.
                shard_end: false,
            };
            (shard.as_str(), end)
        })
        .collect();
    starts(&mut handoff, &ends, shards, from, false);
    handoff
}

/// The start of each listed shard after the archived `ends`, and, if
/// `report_gone`, the archived shards no longer listed as lost.
fn starts(
    handoff: &mut Handoff,
    ends: &BTreeMap<&str, End>,
    shards: &[ShardInfo],
    from: u64,
    report_gone: bool,
) {
    let family = Family::new(shards);
    for shard in shards {
        let id = shard.id.as_str();
        let start = match ends.get(id) {
            Some(end) => match SequenceNumber::new(end.last.clone()) {
                Ok(seq) if end.shard_end => Start::Ended(seq),
                Ok(seq) => Start::After(seq),
                Err(_) => {
                    handoff.lost.push(Lost {
                        shard: id.to_owned(),
                        after: Some(end.last.clone()),
                        before: None,
                        reason: "the sidecar's last position is not a sequence number".into(),
                    });
                    Start::TrimHorizon
                }
            },
            None if family.descendants(id).iter().any(|d| ends.contains_key(d)) => Start::Done,
            None if family.ancestors(id).iter().any(|a| ends.contains_key(a)) => Start::TrimHorizon,
            None => Start::AtTimestamp(from),
        };
        handoff.starts.insert(shard.id.clone(), start);
    }
    let listed: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    for (shard, end) in ends {
        if report_gone && !end.shard_end && !listed.contains(shard) {
            handoff.lost.push(Lost {
                shard: (*shard).to_owned(),
                after: Some(end.last.clone()),
                before: None,
                reason: "the shard is no longer in the stream (past its retention)".into(),
            });
        }
    }
}

/// Parent and child links of the listed shards.
struct Family<'a> {
    parents: BTreeMap<&'a str, Vec<&'a str>>,
    children: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Family<'a> {
    fn new(shards: &'a [ShardInfo]) -> Family<'a> {
        let mut family = Family {
            parents: BTreeMap::new(),
            children: BTreeMap::new(),
        };
        for s in shards {
            for p in [&s.parent, &s.adjacent_parent].into_iter().flatten() {
                family.parents.entry(&s.id).or_default().push(p);
                family.children.entry(p).or_default().push(&s.id);
            }
        }
        family
    }

    /// Every shard reached from `from` through `links`.
    fn walk(links: &BTreeMap<&'a str, Vec<&'a str>>, from: &'a str) -> Vec<&'a str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(s) = todo.pop() {
            for &next in links.get(s).into_iter().flatten() {
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen.into_iter().collect()
    }

    fn descendants(&self, id: &'a str) -> Vec<&'a str> {
        Family::walk(&self.children, id)
    }

    fn ancestors(&self, id: &'a str) -> Vec<&'a str> {
        Family::walk(&self.parents, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str]) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parents.first().map(|p| p.to_string()),
            adjacent_parent: parents.get(1).map(|p| p.to_string()),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            starting_sequence_number: "1".into(),
            ending_sequence_number: None,
        }
    }

    /// An archive opened at `ts` holding, per shard, (first, last, count,
    /// after, shard_end).
    fn archived(ts: u64, shards: &[(&str, u64, u64, Option<u64>, bool)]) -> Archived {
        let ranges: Vec<String> = shards
            .iter()
            .map(|(s, min, max, after, end)| {
                let after = after.map_or("null".to_string(), |a| format!("\"{a}\""));
                format!(
                    "\"{s}\":{{\"min_sequence_number\":\"{min}\",\"max_sequence_number\":\"{max}\",\
                     \"record_count\":{},\"after\":{after},\"shard_end\":{end}}}",
                    max - min + 1
                )
            })
            .collect();
        let json = format!(
            "{{\"shards\":{{{}}},\"size\":1,\"sha256\":\"00\",\"format_version\":2}}",
            ranges.join(",")
        );
        Archived {
            key: ArchiveKey::new("events", "store", ts).unwrap(),
            sidecar: Metadata::parse(json.as_bytes()).unwrap(),
        }
    }

    fn after(n: u64) -> Start {
        Start::After(SequenceNumber::new(n.to_string()).unwrap())
    }

    /// From a store's checkpoints: checkpointed shards go on after them,
    /// their ancestors are done, new children start at their beginning,
    /// others at the time; a checkpointed shard gone from the stream is
    /// not reported (a store keeps the checkpoints of expired parents).
    #[test]
    fn from_checkpoints() {
        let shards = [
            shard("s0", &[]),
            shard("s1", &[]),
            shard("s2", &["s0"]),
            shard("s3", &["s0"]),
            shard("s4", &["s2", "s3"]),
            shard("s5", &[]),
        ];
        let checkpoints: BTreeMap<String, SequenceNumber> = [("s1", 14), ("s2", 31), ("gone", 7)]
            .into_iter()
            .map(|(s, n)| (s.to_owned(), SequenceNumber::new(n.to_string()).unwrap()))
            .collect();
        let h = plan_from_checkpoints(&checkpoints, &shards, 100);
        let want: BTreeMap<String, Start> = [
            ("s0", Start::Done),
            ("s1", after(14)),
            ("s2", after(31)),
            ("s3", Start::AtTimestamp(100)),
            ("s4", Start::TrimHorizon),
            ("s5", Start::AtTimestamp(100)),
        ]
        .into_iter()
        .map(|(s, st)| (s.to_owned(), st))
        .collect();
        assert_eq!(h.starts, want);
        assert!(h.archived.is_empty());
        assert!(h.lost.is_empty(), "{:?}", h.lost);
    }

    /// s0 split into s2 and s3 while archiving; s2 and s3 then merged into
    /// s4 after the archives end; s1 was archived all along.
    #[test]
    fn split_during_and_merge_after_the_archives() {
        let archives = [
            archived(
                100,
                &[("s0", 10, 19, None, false), ("s1", 10, 14, None, false)],
            ),
            archived(
                200,
                &[
                    ("s0", 20, 25, Some(19), true),
                    ("s1", 15, 18, Some(14), false),
                    ("s2", 30, 31, None, false),
                ],
            ),
            archived(
                300,
                &[
                    ("s1", 19, 19, Some(18), false),
                    ("s2", 32, 40, Some(31), false),
                    ("s3", 50, 52, None, false),
                ],
            ),
        ];
        let shards = [
            shard("s0", &[]),
            shard("s1", &[]),
            shard("s2", &["s0"]),
            shard("s3", &["s0"]),
            shard("s4", &["s2", "s3"]),
        ];
        let h = plan(&archives, &shards, 100);
        let want: BTreeMap<String, Start> = [
            ("s0", Start::Ended(SequenceNumber::new("25").unwrap())),
            ("s1", after(19)),
            ("s2", after(40)),
            ("s3", after(52)),
            ("s4", Start::TrimHorizon),
        ]
        .into_iter()
        .map(|(s, st)| (s.to_string(), st))
        .collect();
        assert_eq!(h.starts, want);
        assert_eq!(h.archived["s0"], 16);
        assert_eq!(h.archived["s1"], 10);
        assert_eq!(h.archived["s2"], 11);
        assert!(h.lost.is_empty(), "{:?}", h.lost);
    }

    /// A parent no longer archived because its child was (the store read
    /// it to its end, and its end fell in an archive not read); a shard
    /// never archived; an archived shard past retention; a broken chain.
    #[test]
    fn done_unrelated_expired_and_broken_chains() {
        let archives = [
            archived(
                100,
                &[("c", 5, 9, None, false), ("gone", 1, 3, None, false)],
            ),
            archived(200, &[("c", 12, 13, Some(11), false)]),
        ];
        let shards = [shard("p", &[]), shard("c", &["p"]), shard("new", &[])];
        let h = plan(&archives, &shards, 100);
        assert_eq!(h.starts["p"], Start::Done);
        assert_eq!(h.starts["c"], after(13));
        assert_eq!(h.starts["new"], Start::AtTimestamp(100));
        assert_eq!(h.starts.len(), 3);
        let lost: Vec<(&str, Option<&str>, Option<&str>)> = h
            .lost
            .iter()
            .map(|l| (l.shard.as_str(), l.after.as_deref(), l.before.as_deref()))
            .collect();
        assert_eq!(
            lost,
            [("c", Some("9"), Some("12")), ("gone", Some("3"), None)]
        );
        // An archive without the chain (go-triton's sidecars) is trusted.
        let mut old = archives.clone();
        old[1].sidecar.shards.get_mut("c").unwrap().after = None;
        assert_eq!(plan(&old, &shards, 100).lost.len(), 1);
        // No archive read: every shard from the replay's start.
        let h = plan(&[], &shards, 42);
        assert!(h.starts.values().all(|s| *s == Start::AtTimestamp(42)));
    }
}
