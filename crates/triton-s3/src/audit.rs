//! Auditing a stream's archives: that they hold every record exactly once.
//!
//! Kinesis sequence numbers are not contiguous, so a hole between two
//! archives cannot be seen from their numbers. Every sidecar written by
//! `triton store` (format 2) therefore carries a chain: per shard, the
//! record its records continue from and the archive holding it, or how
//! reading began, and whether it holds the shard's last record. The audit
//! walks each shard's chain and reports every link that does not meet its
//! archive ([`Finding::Gap`]), besides overlaps (records archived twice),
//! archives without a sidecar or whose sidecar does not match, dead-letter
//! archives that are missing or do not match, archives that carry no chain
//! (go-triton's), and checkpoints that are not where the archives end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use triton_core::checkpoint::{Checkpoint, UploadIntent};
use triton_core::key::ArchiveKey;
use triton_core::source::SequenceNumber;

use crate::archiver::{sha256_hex, Metadata, METADATA_SUFFIX};
use crate::error::StoreError;
use crate::reader::{list_with_sidecars, Archive, ArchiveQuery, ListError, Listing};
use crate::store::{read_object, ArchiveStore};

/// One archive's sequence range in one shard.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Covered {
    /// The archive's key.
    pub archive: String,
    /// Its first sequence number of the shard.
    pub min: String,
    /// Its last sequence number of the shard.
    pub max: String,
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Records of a shard are in no archive: a link of the chain names an
    /// archive that is not there, or one that does not end where the link
    /// says.
    Gap {
        /// The shard whose records are missing.
        shard: String,
        /// The key of the archive that should hold them, from the link
        /// (`None` when the link does not name one).
        missing_archive: Option<String>,
        /// The missing records come after this sequence number (the last
        /// record of the archive before), if there is one in the range.
        after: Option<String>,
        /// ...up to and including this one.
        through: String,
        /// The archive before the gap, if any.
        previous: Option<String>,
        /// The archive after the gap (whose link points into it).
        next: String,
        /// The missing records end the shard (a child's link to its
        /// parent's end points into them).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shard_end: bool,
    },
    /// A shard's chain begins again (a start position instead of a link)
    /// after earlier archives of it: records between may be missing.
    Restarted {
        /// The shard.
        shard: String,
        /// The archive that starts again.
        archive: String,
        /// How it started (`LATEST`, `AT_TIMESTAMP`, `TRIM_HORIZON`).
        start: String,
        /// The archive before it.
        previous: String,
    },
    /// Two archives hold records of the same sequence range of a shard.
    Overlap {
        /// The shard.
        shard: String,
        /// The earlier range.
        first: Covered,
        /// The range that starts inside it.
        second: Covered,
    },
    /// A sidecar whose archive is missing, and that no link or checkpoint
    /// names (the newest archives of a shard, or an audit without the
    /// checkpoint database).
    MissingArchive {
        /// The archive's key.
        archive: String,
        /// Records in it, by the sidecar.
        records: u64,
    },
    /// An archive without a metadata sidecar: what it holds is known only
    /// from the links of the archives around it.
    MissingSidecar {
        /// The archive.
        archive: String,
        /// Per shard, where its records lie by those links.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Link>,
    },
    /// A sidecar that does not describe its archive (size or SHA-256).
    Mismatch {
        /// The archive.
        archive: String,
        /// What differs.
        detail: String,
    },
    /// A sidecar that cannot be read as one.
    BadSidecar {
        /// The sidecar's key.
        sidecar: String,
        /// Why.
        detail: String,
    },
    /// The dead-letter archive a sidecar names is missing or does not
    /// match (size or SHA-256).
    DeadLetters {
        /// The archive whose sidecar names it.
        archive: String,
        /// The dead-letter archive.
        dead_letters: String,
        /// What is wrong.
        detail: String,
    },
    /// An archive whose sidecar carries no chain (written by go-triton or
    /// an older triton): what it holds cannot be proven complete.
    Unverifiable {
        /// The archive.
        archive: String,
    },
    /// A checkpoint past the last archived record of its shard: the records
    /// between were acknowledged but are in no archive of the range.
    CheckpointAhead {
        /// The shard.
        shard: String,
        /// The checkpoint.
        checkpoint: String,
        /// The last archived sequence number (`None`: no archive of the
        /// shard is in the range, while the archive holding its checkpoint
        /// should be).
        last_archived: Option<String>,
        /// The archive holding it.
        last_archive: Option<String>,
        /// The archive the database says holds the checkpoint, when it is
        /// not in the range.
        missing_archive: Option<String>,
    },
    /// The last archive of a shard ends past its checkpoint, with no upload
    /// pending: records archived but never checkpointed (they will be read
    /// and archived again).
    CheckpointBehind {
        /// The shard.
        shard: String,
        /// The checkpoint.
        checkpoint: String,
        /// The last archived sequence number.
        last_archived: String,
    },
}

/// Where one shard's records in an archive lie, as the archives around it
/// say: after the last record of the archive before, through the record
/// the archive after links to (or the shard's checkpoint).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    /// The shard.
    pub shard: String,
    /// The records come after this one (`None`: no archive before them in
    /// the range).
    pub after: Option<String>,
    /// The archive holding `after`.
    pub after_archive: Option<String>,
    /// ...through this one.
    pub through: String,
    /// The last of them is the shard's last record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shard_end: bool,
}

/// A first archive of a shard in the range whose link points before the
/// range: where the audited range begins, not a gap.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Boundary {
    /// The shard.
    pub shard: String,
    /// The first archive of the shard in the range.
    pub archive: String,
    /// The record it continues from.
    pub after: String,
    /// The archive holding that record, if the link names it.
    pub after_archive: Option<String>,
}

/// The result of an audit.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AuditReport {
    /// Archives examined (foreign objects not counted).
    pub archives: usize,
    /// Records in them, by their sidecars.
    pub records: u64,
    /// Per shard, the ranges covered, in order.
    pub shards: BTreeMap<String, Vec<Covered>>,
    /// Everything wrong; empty when clean.
    pub findings: Vec<Finding>,
    /// Where shards' chains continue from archives before the range.
    pub boundaries: Vec<Boundary>,
    /// Keys of uploads in progress, or interrupted and finished by the next
    /// `triton store` start (upload intents in the checkpoint database).
    /// Not a problem.
    pub pending: Vec<String>,
    /// Objects under archive keys that are not archives of this store: an
    /// archive meant for the key found it taken and moved (its sidecar
    /// says so). A warning, not a problem; they are not counted.
    pub foreign: Vec<Foreign>,
}

/// An object at a key an archive could not take.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Foreign {
    /// The object's key.
    pub key: String,
    /// Where the archive meant for it went.
    pub moved_to: String,
    /// Why the archive moved, as its writer saw it.
    pub reason: String,
}

impl AuditReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Listing the archives failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// Reading an archive or sidecar failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the checkpoint database says of the client that wrote the
/// archives; all empty without one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checkpointed<'a> {
    /// The stream's checkpoints. Pass them only when the range reaches
    /// today, or every later archive would look missing.
    pub checkpoints: &'a [Checkpoint],
    /// Which archive holds each checkpoint (shard, key).
    pub archives: &'a [(String, String)],
    /// Pending uploads, listed as such.
    pub intents: &'a [UploadIntent],
}

/// Objects read or verified at once.
const CONCURRENCY: usize = 16;

/// One archive as the audit sees it.
struct Examined {
    key: String,
    sidecar: Option<Metadata>,
}

/// Audits the archives of `query` (listed now); see [`audit_archives`].
pub async fn audit(
    store: Arc<dyn ArchiveStore>,
    query: &ArchiveQuery,
    db: &Checkpointed<'_>,
    verify: bool,
) -> Result<AuditReport, AuditError> {
    let listing = list_with_sidecars(store.clone(), query).await?;
    audit_archives(store, query, listing, db, verify).await
}

/// Audits the archives `listing` found for `query`. With `verify`, each
/// archive and dead-letter archive is downloaded and its SHA-256 compared
/// with its sidecar; otherwise sizes are compared.
pub async fn audit_archives(
    store: Arc<dyn ArchiveStore>,
    query: &ArchiveQuery,
    listing: Listing,
    db: &Checkpointed<'_>,
    verify: bool,
) -> Result<AuditReport, AuditError> {
    let Listing { archives, sidecars } = listing;
    let mut report = AuditReport {
        pending: db
            .intents
            .iter()
            .filter(|i| i.stream == query.stream)
            .map(|i| i.key.clone())
            .collect(),
        ..AuditReport::default()
    };
    let orphans = orphan_sidecars(&*store, &archives, &sidecars, &mut report).await?;
    let mut archives = archives;
    archives.extend(orphans.dead_letters_only.iter().cloned());
    let dead_only: HashSet<String> = orphans
        .dead_letters_only
        .iter()
        .map(|a| a.key.to_string())
        .collect();
    let (examined, moved) = examine(&*store, archives, &dead_only, verify, &mut report).await?;
    let listed: HashSet<&str> = examined.iter().map(|e| e.key.as_str()).collect();
    let mut by_shard: BTreeMap<String, Vec<(&Examined, &crate::archiver::ShardRange)>> =
        BTreeMap::new();
    report.archives = examined.len();
    for e in &examined {
        let Some(sidecar) = &e.sidecar else { continue };
        report.records += sidecar.record_count;
        if sidecar.format_version < 2 {
            report.findings.push(Finding::Unverifiable {
                archive: e.key.clone(),
            });
        }
        for (shard, range) in &sidecar.shards {
            by_shard.entry(shard.clone()).or_default().push((e, range));
        }
    }
    let number = |s: &str| SequenceNumber::new(s).ok();
    for (shard, ranges) in &mut by_shard {
        ranges.sort_by_key(|(_, r)| number(&r.min_sequence_number));
        report.shards.insert(
            shard.clone(),
            ranges
                .iter()
                .map(|(e, r)| Covered {
                    archive: e.key.clone(),
                    min: r.min_sequence_number.clone(),
                    max: r.max_sequence_number.clone(),
                })
                .collect(),
        );
    }
    for (shard, covered) in &report.shards {
        for pair in covered.windows(2) {
            if number(&pair[1].min) <= number(&pair[0].max) {
                report.findings.push(Finding::Overlap {
                    shard: shard.clone(),
                    first: pair[0].clone(),
                    second: pair[1].clone(),
                });
            }
        }
    }
    let mut links = HashMap::new();
    walk_chains(query, &by_shard, &listed, &moved, &mut report, &mut links);
    compare_checkpoints(query, db, &listed, &mut report, &mut links);
    missing_archives(orphans.missing, &moved, &mut report);
    for f in &mut report.findings {
        if let Finding::MissingSidecar { archive, links: l } = f {
            let mut found: Vec<Link> = links.remove(archive.as_str()).unwrap_or_default();
            found.sort_by(|a, b| a.shard.cmp(&b.shard));
            found.dedup_by(|a, b| a.shard == b.shard);
            *l = found;
        }
    }
    Ok(report)
}

/// Sidecars without their archive.
struct Orphans {
    /// Of uploads whose every record was invalid (`archive` is null): the
    /// chain goes through them, and their dead letters are checked.
    dead_letters_only: Vec<Archive>,
    /// Of archives that are gone: (key, records).
    missing: Vec<(String, u64)>,
}

/// Reads the sidecars that have no archive beside them.
async fn orphan_sidecars(
    store: &dyn ArchiveStore,
    archives: &[Archive],
    sidecars: &[String],
    report: &mut AuditReport,
) -> Result<Orphans, AuditError> {
    let keys: HashSet<String> = archives.iter().map(|a| a.key.to_string()).collect();
    let mut orphans = Orphans {
        dead_letters_only: Vec::new(),
        missing: Vec::new(),
    };
    for key in sidecars.iter().filter(|k| !keys.contains(*k)) {
        let Ok(parsed) = ArchiveKey::parse(key) else {
            continue;
        };
        let sidecar_key = format!("{key}{METADATA_SUFFIX}");
        let Some(bytes) = read_object(store, &sidecar_key).await? else {
            continue; // deleted since the listing
        };
        match read_sidecar(&bytes) {
            Ok(m) if m.archive.is_none() && m.invalid_archive.is_some() => {
                orphans.dead_letters_only.push(Archive {
                    key: parsed,
                    size: 0,
                });
            }
            // A sidecar naming another key describes an archive elsewhere.
            Ok(m) if m.archive.as_deref().is_none_or(|a| a == key) => {
                orphans.missing.push((key.clone(), m.record_count));
            }
            Ok(_) => {}
            Err(detail) => report.findings.push(Finding::BadSidecar {
                sidecar: sidecar_key,
                detail,
            }),
        }
    }
    Ok(orphans)
}

/// Reports each archive whose sidecar remains and that no other finding
/// names (a link or checkpoint to it is a gap already).
fn missing_archives(
    missing: Vec<(String, u64)>,
    moved: &HashMap<String, String>,
    report: &mut AuditReport,
) {
    let named: HashSet<String> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Gap {
                missing_archive, ..
            }
            | Finding::CheckpointAhead {
                missing_archive, ..
            } => missing_archive.clone(),
            _ => None,
        })
        .collect();
    for (key, records) in missing {
        if named.contains(&key) || moved.contains_key(&key) || report.pending.contains(&key) {
            continue;
        }
        report.findings.push(Finding::MissingArchive {
            archive: key,
            records,
        });
    }
}

/// Reads each archive's sidecar, checks it and its dead letters against
/// the objects, and sets foreign objects apart.
/// Also returns, for each key an archive moved away from, where it went:
/// links written before the move name the old key.
async fn examine(
    store: &dyn ArchiveStore,
    archives: Vec<Archive>,
    dead_only: &HashSet<String>,
    verify: bool,
    report: &mut AuditReport,
) -> Result<(Vec<Examined>, HashMap<String, String>), AuditError> {
    // Sidecars first: a moved archive's sidecar names the keys it could
    // not take, whose objects are not ours.
    let sidecars: Vec<_> = futures_util::stream::iter(archives)
        .map(|archive| async move {
            let key = archive.key.to_string();
            let sidecar_key = format!("{key}{METADATA_SUFFIX}");
            let sidecar = read_object(store, &sidecar_key)
                .await?
                .map(|bytes| read_sidecar(&bytes));
            Ok::<_, StoreError>((archive, key, sidecar_key, sidecar))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut read = Vec::with_capacity(sidecars.len());
    let mut moved_away: BTreeMap<String, (String, String)> = BTreeMap::new();
    for found in sidecars {
        let (archive, key, sidecar_key, sidecar) = found?;
        if let Some(Ok(metadata)) = &sidecar {
            for moved in &metadata.moved_from {
                moved_away.insert(moved.key.clone(), (key.clone(), moved.reason.clone()));
            }
        }
        read.push((archive, key, sidecar_key, sidecar));
    }
    // The sidecar each moved archive has, to recognise a stale copy of it
    // left at the key it moved from.
    let moved_to: HashSet<&str> = moved_away.values().map(|(to, _)| to.as_str()).collect();
    let shards_of: HashMap<String, BTreeMap<String, (String, String)>> = read
        .iter()
        .filter_map(|(_, key, _, sidecar)| match sidecar {
            Some(Ok(m)) if moved_to.contains(key.as_str()) => Some((key.clone(), ranges_of(m))),
            _ => None,
        })
        .collect();
    // Each archive's and dead-letter archive's check against its sidecar,
    // several at once (downloads, when verifying).
    let checks: Vec<_> = futures_util::stream::iter(&read)
        .map(|(archive, key, _, sidecar)| async move {
            let Some(Ok(s)) = sidecar else {
                return Ok::<_, StoreError>((None, None));
            };
            // (An upload of dead letters only has no archive to compare.)
            let archive_differs = match dead_only.contains(key) {
                true => None,
                false => differs(store, key, archive.size, s.size, &s.sha256, verify).await?,
            };
            let dead_differs = dead_letters_differ(store, s, verify).await?;
            Ok((archive_differs, dead_differs))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut examined = Vec::with_capacity(read.len());
    let mut taken_by_ours = HashSet::new();
    for ((_, key, sidecar_key, sidecar), checked) in read.into_iter().zip(checks) {
        let (archive_differs, dead_differs) = checked?;
        let mut problems = Vec::new();
        let stale_copy = match (&sidecar, moved_away.get(&key)) {
            (Some(Ok(s)), Some((to, _))) => shards_of.get(to).is_some_and(|m| *m == ranges_of(s)),
            _ => false,
        };
        let sidecar = match sidecar {
            // An upload in progress puts its sidecar last.
            None if report.pending.contains(&key) => None,
            None => {
                problems.push(Finding::MissingSidecar {
                    archive: key.clone(),
                    links: Vec::new(),
                });
                None
            }
            Some(Err(detail)) => {
                problems.push(Finding::BadSidecar {
                    sidecar: sidecar_key,
                    detail,
                });
                None
            }
            Some(Ok(sidecar)) => {
                if let Some(detail) = archive_differs {
                    problems.push(Finding::Mismatch {
                        archive: key.clone(),
                        detail,
                    });
                }
                Some(sidecar)
            }
        };
        // An object at a key one of our archives moved away from, which
        // its own sidecar (if any) does not describe, or whose sidecar is
        // the moved archive's own, left from before the move (then the
        // object cannot be told from ours without downloading it):
        // someone else's.
        // An archive moved away from a key that holds another archive of
        // ours, whole and described by its own sidecar (another worker of
        // a fleet took the key first): links to that key mean it, not the
        // moved archive.
        if moved_away.contains_key(&key) && problems.is_empty() && !stale_copy && sidecar.is_some()
        {
            taken_by_ours.insert(key.clone());
        }
        if let Some((moved_to, reason)) = moved_away
            .get(&key)
            .filter(|_| !problems.is_empty() || stale_copy)
        {
            report.foreign.push(Foreign {
                key: key.clone(),
                moved_to: moved_to.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        report.findings.extend(problems);
        if let Some(s) = &sidecar {
            if let Some(detail) = dead_differs {
                report.findings.push(Finding::DeadLetters {
                    archive: key.clone(),
                    dead_letters: s.invalid_archive.clone().unwrap_or_default(),
                    detail,
                });
            }
        }
        examined.push(Examined { key, sidecar });
    }
    let moved = moved_away
        .into_iter()
        .filter(|(from, _)| !taken_by_ours.contains(from))
        .map(|(from, (to, _))| (from, to))
        .collect();
    Ok((examined, moved))
}

/// How the object at `key` differs from its sidecar, if it does.
async fn differs(
    store: &dyn ArchiveStore,
    key: &str,
    size: u64,
    want_size: u64,
    want_sha: &str,
    verify: bool,
) -> Result<Option<String>, StoreError> {
    if size != want_size {
        return Ok(Some(format!("{size} bytes, the sidecar says {want_size}")));
    }
    if verify {
        let sha = sha256_of(store, key).await?;
        if sha != want_sha {
            return Ok(Some(format!("SHA-256 {sha}, the sidecar says {want_sha}")));
        }
    }
    Ok(None)
}

/// What is wrong with the dead-letter archive a sidecar names, if anything.
async fn dead_letters_differ(
    store: &dyn ArchiveStore,
    sidecar: &Metadata,
    verify: bool,
) -> Result<Option<String>, StoreError> {
    let Some(dead) = &sidecar.invalid_archive else {
        return Ok(None);
    };
    let Some(info) = store.head(dead).await? else {
        return Ok(Some("it is missing".into()));
    };
    let (Some(size), Some(sha)) = (sidecar.invalid_size, &sidecar.invalid_sha256) else {
        return Ok(None); // a sidecar of before these fields: nothing to compare
    };
    differs(store, dead, info.size, size, sha, verify).await
}

/// Walks each shard's archives in order and checks every link. Links to
/// archives without a sidecar cannot be checked; they are kept in
/// `unknown_links`, by archive, as what is known of those archives.
fn walk_chains(
    query: &ArchiveQuery,
    by_shard: &BTreeMap<String, Vec<(&Examined, &crate::archiver::ShardRange)>>,
    listed: &HashSet<&str>,
    moved: &HashMap<String, String>,
    report: &mut AuditReport,
    unknown_links: &mut HashMap<String, Vec<Link>>,
) {
    // A link names the key its archive had when the link was written; an
    // archive moved since (its key was taken) is found through its move.
    let resolve = |key: Option<&str>| -> Option<String> {
        let mut key = key?.to_owned();
        for _ in 0..moved.len() {
            match moved.get(&key) {
                Some(to) => key.clone_from(to),
                None => break,
            }
        }
        Some(key)
    };
    let before_range = |key: &str| ArchiveKey::parse(key).is_ok_and(|k| k.date() < query.start);
    // Archives in the range without a sidecar: links to them cannot be
    // checked (they are reported as missing sidecars already).
    let unknown: HashSet<&str> = by_shard
        .values()
        .flatten()
        .map(|(e, _)| e.key.as_str())
        .collect();
    let unknown: HashSet<&str> = listed.difference(&unknown).copied().collect();
    for (shard, ranges) in by_shard {
        for (i, (e, range)) in ranges.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| ranges[p]);
            if let Some(after) = &range.after {
                let linked = resolve(range.after_archive.as_deref());
                let linked = linked.as_deref();
                match previous {
                    Some((p, prev))
                        if prev.max_sequence_number == *after
                            && linked.is_none_or(|k| k == p.key) => {}
                    Some((p, prev)) => {
                        if let Some(k) = linked.filter(|k| unknown.contains(k)) {
                            unknown_links.entry(k.to_owned()).or_default().push(Link {
                                shard: shard.clone(),
                                after: Some(prev.max_sequence_number.clone()),
                                after_archive: Some(p.key.clone()),
                                through: after.clone(),
                                shard_end: false,
                            });
                            continue;
                        }
                        report.findings.push(Finding::Gap {
                            shard: shard.clone(),
                            missing_archive: linked.filter(|k| *k != p.key).map(str::to_owned),
                            after: Some(prev.max_sequence_number.clone()),
                            through: after.clone(),
                            previous: Some(p.key.clone()),
                            next: e.key.clone(),
                            shard_end: false,
                        });
                    }
                    None => match linked {
                        Some(k) if unknown.contains(k) => {
                            unknown_links.entry(k.to_owned()).or_default().push(Link {
                                shard: shard.clone(),
                                after: None,
                                after_archive: None,
                                through: after.clone(),
                                shard_end: false,
                            });
                        }
                        Some(k) if !before_range(k) => report.findings.push(Finding::Gap {
                            shard: shard.clone(),
                            missing_archive: Some(k.to_owned()),
                            after: None,
                            through: after.clone(),
                            previous: None,
                            next: e.key.clone(),
                            shard_end: false,
                        }),
                        _ => report.boundaries.push(Boundary {
                            shard: shard.clone(),
                            archive: e.key.clone(),
                            after: after.clone(),
                            after_archive: linked.map(str::to_owned),
                        }),
                    },
                }
            } else if let (Some(start), Some((p, _))) = (&range.start, previous) {
                if start != "AFTER_PARENTS" {
                    report.findings.push(Finding::Restarted {
                        shard: shard.clone(),
                        archive: e.key.clone(),
                        start: start.clone(),
                        previous: p.key.clone(),
                    });
                }
            }
            // A child's first archive says where each parent ended: the
            // parent's archives must end there.
            for parent in &range.parents {
                let Some(last) = &parent.last_sequence_number else {
                    continue;
                };
                let archived = by_shard.get(&parent.shard);
                let linked = resolve(parent.archive.as_deref());
                let linked = linked.as_deref();
                let ends_there = archived.is_some_and(|r| {
                    r.iter().any(|(pe, pr)| {
                        pr.max_sequence_number == *last && linked.is_none_or(|k| k == pe.key)
                    })
                });
                if ends_there || (archived.is_none() && linked.is_none_or(before_range)) {
                    continue;
                }
                let previous = archived.and_then(|r| r.last());
                if let Some(k) = linked.filter(|k| unknown.contains(k)) {
                    unknown_links.entry(k.to_owned()).or_default().push(Link {
                        shard: parent.shard.clone(),
                        after: previous.map(|(_, pr)| pr.max_sequence_number.clone()),
                        after_archive: previous.map(|(pe, _)| pe.key.clone()),
                        through: last.clone(),
                        shard_end: true,
                    });
                    continue;
                }
                report.findings.push(Finding::Gap {
                    shard: parent.shard.clone(),
                    missing_archive: linked
                        .filter(|k| previous.is_none_or(|(pe, _)| pe.key != *k))
                        .map(str::to_owned),
                    after: previous.map(|(_, pr)| pr.max_sequence_number.clone()),
                    through: last.clone(),
                    previous: previous.map(|(pe, _)| pe.key.clone()),
                    next: e.key.clone(),
                    shard_end: true,
                });
            }
        }
    }
}

/// Compares each shard's last archive with its checkpoint (only shards the
/// range holds: a shard in no archive of it may be archived before). A
/// checkpoint held by an archive without a sidecar is where that archive
/// ends (kept in `unknown_links`).
fn compare_checkpoints(
    query: &ArchiveQuery,
    db: &Checkpointed<'_>,
    listed: &HashSet<&str>,
    report: &mut AuditReport,
    unknown_links: &mut HashMap<String, Vec<Link>>,
) {
    let number = |s: &str| SequenceNumber::new(s).ok();
    let holding: HashMap<&str, &str> = db
        .archives
        .iter()
        .map(|(s, k)| (s.as_str(), k.as_str()))
        .collect();
    let described: HashSet<String> = report
        .shards
        .values()
        .flatten()
        .map(|c| c.archive.clone())
        .collect();
    let in_range = |key: &str| {
        ArchiveKey::parse(key).is_ok_and(|k| k.date() >= query.start && k.date() <= query.end)
    };
    for cp in db.checkpoints.iter().filter(|c| c.stream == query.stream) {
        let held_by = holding.get(cp.shard.as_str()).copied();
        let Some(last) = report.shards.get(&cp.shard).and_then(|r| r.last()) else {
            // No archive of the shard in the range: fine, unless the
            // archive holding its checkpoint belongs in the range.
            match held_by {
                Some(k) if listed.contains(k) && !described.contains(k) => {
                    unknown_links.entry(k.to_owned()).or_default().push(Link {
                        shard: cp.shard.clone(),
                        after: None,
                        after_archive: None,
                        through: cp.sequence.to_string(),
                        shard_end: false,
                    });
                }
                Some(k)
                    if in_range(k)
                        && !listed.contains(k)
                        && !report.pending.iter().any(|p| p == k) =>
                {
                    report.findings.push(Finding::CheckpointAhead {
                        shard: cp.shard.clone(),
                        checkpoint: cp.sequence.to_string(),
                        last_archived: None,
                        last_archive: None,
                        missing_archive: Some(k.to_owned()),
                    });
                }
                _ => {}
            }
            continue;
        };
        let Some(last_max) = number(&last.max) else {
            continue;
        };
        if cp.sequence > last_max {
            if let Some(k) = held_by.filter(|k| listed.contains(k) && !described.contains(*k)) {
                // Listed, yet in no shard's archives: it has no sidecar
                // (reported as such).
                unknown_links.entry(k.to_owned()).or_default().push(Link {
                    shard: cp.shard.clone(),
                    after: Some(last.max.clone()),
                    after_archive: Some(last.archive.clone()),
                    through: cp.sequence.to_string(),
                    shard_end: false,
                });
                continue;
            }
            report.findings.push(Finding::CheckpointAhead {
                shard: cp.shard.clone(),
                checkpoint: cp.sequence.to_string(),
                last_archived: Some(last.max.clone()),
                last_archive: Some(last.archive.clone()),
                // Only an archive after the last one of the range can hold
                // a checkpoint past it.
                missing_archive: held_by
                    .filter(|k| !listed.contains(*k) && in_range(k) && *k > last.archive.as_str())
                    .map(str::to_owned),
            });
        } else if cp.sequence < last_max && !report.pending.contains(&last.archive) {
            report.findings.push(Finding::CheckpointBehind {
                shard: cp.shard.clone(),
                checkpoint: cp.sequence.to_string(),
                last_archived: last.max.clone(),
            });
        }
    }
}

/// Each shard's first and last record in a sidecar.
fn ranges_of(m: &Metadata) -> BTreeMap<String, (String, String)> {
    m.shards
        .iter()
        .map(|(s, r)| {
            (
                s.clone(),
                (r.min_sequence_number.clone(), r.max_sequence_number.clone()),
            )
        })
        .collect()
}

/// A sidecar whose ranges are sequence numbers.
fn read_sidecar(bytes: &[u8]) -> Result<Metadata, String> {
    let sidecar = Metadata::parse(bytes)?;
    for (shard, range) in &sidecar.shards {
        if range.sequences().is_none() {
            return Err(format!(
                "shard {shard}: the range is not of sequence numbers"
            ));
        }
    }
    Ok(sidecar)
}

/// SHA-256 of an object, streamed.
pub(crate) async fn sha256_of(store: &dyn ArchiveStore, key: &str) -> Result<String, StoreError> {
    let mut body = store.get(key, 0).await?;
    let mut hasher = Sha256::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if body.reader.read_into(&mut buf).await? == 0 {
            break;
        }
        hasher.update(&buf);
    }
    Ok(sha256_hex(hasher))
}
