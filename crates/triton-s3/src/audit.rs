//! Auditing a stream's archives: which sequence ranges each shard's archives
//! cover (from their metadata sidecars), where they overlap (duplicated
//! records), archives without a sidecar, sidecars that do not match their
//! archive, and checkpoints beyond what is archived (lost records).
//!
//! Kinesis sequence numbers are not contiguous, so a hole between two
//! archived ranges cannot be seen from the numbers; what can be seen is an
//! overlap, and a checkpoint past the last archived number of its shard.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use triton_core::checkpoint::{Checkpoint, UploadIntent};
use triton_core::source::SequenceNumber;

use crate::archiver::{sha256_hex, Metadata, METADATA_SUFFIX};
use crate::error::StoreError;
use crate::reader::{list_archives, ArchiveQuery, ListError};
use crate::store::ArchiveStore;

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
    /// Two archives hold records of the same sequence range of a shard.
    Overlap {
        /// The shard.
        shard: String,
        /// The earlier range.
        first: Covered,
        /// The range that starts inside it.
        second: Covered,
    },
    /// An archive without a metadata sidecar: its ranges are unknown.
    MissingSidecar {
        /// The archive.
        archive: String,
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
    /// A checkpoint past the last archived record of its shard: the records
    /// between were acknowledged but are in no archive of the range.
    Gap {
        /// The shard.
        shard: String,
        /// The checkpoint.
        checkpoint: String,
        /// The last archived sequence number.
        last_archived: String,
    },
}

/// The result of an audit.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AuditReport {
    /// Archives examined.
    pub archives: usize,
    /// Records in them, by their sidecars.
    pub records: u64,
    /// Per shard, the ranges covered, in order.
    pub shards: BTreeMap<String, Vec<Covered>>,
    /// Everything wrong; empty when clean.
    pub findings: Vec<Finding>,
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
pub enum AuditError {
    /// Listing the archives failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// Reading an archive or sidecar failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Audits the archives of `query`. `checkpoints` (the stream's, for the
/// client that wrote the archives) are compared with the last archived
/// number of each shard; pass them only when the range reaches today, or
/// every later archive would look missing. `intents` (the client's pending
/// uploads) are listed as pending. With `verify`, each archive is
/// downloaded and its SHA-256 compared with its sidecar.
pub async fn audit(
    store: Arc<dyn ArchiveStore>,
    query: &ArchiveQuery,
    checkpoints: &[Checkpoint],
    intents: &[UploadIntent],
    verify: bool,
) -> Result<AuditReport, AuditError> {
    let archives = list_archives(store.clone(), query).await?;
    let mut report = AuditReport {
        archives: archives.len(),
        pending: intents
            .iter()
            .filter(|i| i.stream == query.stream)
            .map(|i| i.key.clone())
            .collect(),
        ..AuditReport::default()
    };
    // Sidecars first: a moved archive's sidecar names the keys it could
    // not take, whose objects are not ours.
    let mut sidecars = Vec::with_capacity(archives.len());
    let mut moved_away: BTreeMap<String, (String, String)> = BTreeMap::new();
    for archive in &archives {
        let key = archive.key.to_string();
        let sidecar_key = format!("{key}{METADATA_SUFFIX}");
        let sidecar = read_all(&*store, &sidecar_key)
            .await?
            .map(|bytes| read_sidecar(&bytes));
        if let Some(Ok(metadata)) = &sidecar {
            for moved in &metadata.moved_from {
                moved_away.insert(moved.key.clone(), (key.clone(), moved.reason.clone()));
            }
        }
        sidecars.push((archive, key, sidecar_key, sidecar));
    }
    for (archive, key, sidecar_key, sidecar) in sidecars {
        let mut problems = Vec::new();
        let sidecar = match sidecar {
            // An upload in progress puts its sidecar last.
            None if report.pending.contains(&key) => continue,
            None => {
                problems.push(Finding::MissingSidecar {
                    archive: key.clone(),
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
                if sidecar.size != archive.size {
                    problems.push(Finding::Mismatch {
                        archive: key.clone(),
                        detail: format!(
                            "{} bytes, the sidecar says {}",
                            archive.size, sidecar.size
                        ),
                    });
                } else if verify {
                    let sha = sha256_of(&*store, &key).await?;
                    if sha != sidecar.sha256 {
                        problems.push(Finding::Mismatch {
                            archive: key.clone(),
                            detail: format!("SHA-256 {sha}, the sidecar says {}", sidecar.sha256),
                        });
                    }
                }
                Some(sidecar)
            }
        };
        // An object at a key one of our archives moved away from, which
        // its own sidecar (if any) does not describe: someone else's.
        if let Some((moved_to, reason)) = moved_away.get(&key).filter(|_| !problems.is_empty()) {
            report.foreign.push(Foreign {
                key: key.clone(),
                moved_to: moved_to.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        report.findings.extend(problems);
        let Some(sidecar) = sidecar else { continue };
        report.records += sidecar.record_count;
        for (shard, range) in sidecar.shards {
            report.shards.entry(shard).or_default().push(Covered {
                archive: key.clone(),
                min: range.min_sequence_number,
                max: range.max_sequence_number,
            });
        }
    }
    let number = |s: &str| SequenceNumber::new(s).ok();
    for (shard, ranges) in &mut report.shards {
        ranges.sort_by_key(|c| number(&c.min));
        for pair in ranges.windows(2) {
            if number(&pair[1].min) <= number(&pair[0].max) {
                report.findings.push(Finding::Overlap {
                    shard: shard.clone(),
                    first: pair[0].clone(),
                    second: pair[1].clone(),
                });
            }
        }
    }
    // A shard in no archive of the range may well be archived before it:
    // only shards the range holds are compared.
    for cp in checkpoints.iter().filter(|c| c.stream == query.stream) {
        let Some(last) = report
            .shards
            .get(&cp.shard)
            .and_then(|r| r.iter().filter_map(|c| number(&c.max)).max())
        else {
            continue;
        };
        if cp.sequence > last {
            report.findings.push(Finding::Gap {
                shard: cp.shard.clone(),
                checkpoint: cp.sequence.to_string(),
                last_archived: last.to_string(),
            });
        }
    }
    Ok(report)
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

/// The whole object, or `None` if it does not exist.
async fn read_all(store: &dyn ArchiveStore, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let mut body = match store.get(key, 0).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while body.reader.read_into(&mut out).await? > 0 {}
    Ok(Some(out))
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
