//! [`recover`]: finishes, before a store reads anything new, the uploads a
//! crash interrupted (exactly-once archiving).
//!
//! Each pending upload intent says which archive was being uploaded and
//! which records of each shard it holds. If the objects are in the store
//! and match the recorded size and SHA-256, only the checkpoints were
//! missing. Otherwise exactly the recorded ranges are read again from the
//! stream, the archive is rebuilt and uploaded under the same key
//! (create-only), and then the checkpoints advance, with the intent deleted
//! in the same transaction. Records after the ranges are read normally
//! afterwards, from those checkpoints.

use std::path::PathBuf;
use std::sync::Arc;
use triton_core::error::Report;

use triton_core::checkpoint::{Checkpoint, CheckpointError, IntentStore, UploadIntent};
use triton_core::key::ArchiveKey;
use triton_core::retry::{policies, retry};
use triton_core::source::{Replay, SequenceRange, SourceError};

use super::metadata::Metadata;
use super::retry::{until_ok, Waiting};
use super::spool::{find_spooled, Sealed, Spool, SpoolError};
use super::stats::ArchiverStats;
use super::{complete, ArchiverOptions, Uploader};
use crate::audit::sha256_of;
use crate::error::StoreError;
use crate::store::ArchiveStore;

/// What [`recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Archives found whole in the store: only their checkpoints were
    /// committed.
    pub confirmed: Vec<String>,
    /// Archives uploaded from the spool file the crashed store left (its
    /// copy matched the recorded size and SHA-256).
    pub restored: Vec<String>,
    /// Archives rebuilt from the stream and uploaded.
    pub rebuilt: Vec<String>,
    /// Records that could not be read again.
    pub lost: Vec<LostRecords>,
    /// Keys of interrupted uploads found holding another object (left
    /// alone; the archive moved to the next free key).
    pub foreign: Vec<String>,
}

/// Records of an interrupted upload that the stream no longer holds (past
/// its retention period): they are in no archive. (`triton audit --repair`
/// reports them the same way.)
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LostRecords {
    /// The archive that should have held them.
    pub archive: String,
    /// The shard.
    pub shard: String,
    /// Which records, as sequence numbers and counts.
    pub detail: String,
}

/// Why recovery could not finish (nothing was committed for the intent at
/// hand; a later run tries again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// An intent that cannot be read.
    #[error("upload intent {key} in the checkpoint database: {detail}")]
    BadIntent {
        /// The intent's key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint database refused (not an outage: those are waited out).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Reading the ranges again failed.
    #[error("reading the records of {key} again")]
    Replay {
        /// The archive being rebuilt.
        key: String,
        /// The failure.
        source: SourceError,
    },
    /// The spool directory could not be written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The leases the recovery ran under were lost: it stopped (the next
    /// owner finishes the intent).
    #[error("lease lost: {0}")]
    LeaseLost(String),
}

/// Finishes every pending upload intent of `options.stream` and
/// `options.client` in `db`; see the module documentation.
pub async fn recover(
    store: Arc<dyn ArchiveStore>,
    db: Arc<dyn IntentStore>,
    replay: &dyn Replay,
    options: &ArchiverOptions,
) -> Result<Recovery, RecoveryError> {
    let intents = load(&*db, options).await?;
    recover_intents(store, db, replay, options, intents).await
}

/// Finishes `intents` (pending intents of `options.stream` and
/// `options.client` in `db`), as [`recover`] does for all of them: a fleet
/// worker finishes those of the shards it takes over.
pub async fn recover_intents(
    store: Arc<dyn ArchiveStore>,
    db: Arc<dyn IntentStore>,
    replay: &dyn Replay,
    options: &ArchiverOptions,
    mut intents: Vec<UploadIntent>,
) -> Result<Recovery, RecoveryError> {
    let mut report = Recovery::default();
    if intents.is_empty() {
        return Ok(report);
    }
    std::fs::create_dir_all(&options.spool_dir)
        .map_err(|e| SpoolError::Io(options.spool_dir.clone(), e))?;
    // Oldest first: checkpoints must advance in the order records came.
    let mut keyed = Vec::with_capacity(intents.len());
    for intent in intents.drain(..) {
        let key = ArchiveKey::parse(&intent.key).map_err(|e| bad(&intent, &e.to_string()))?;
        keyed.push((key.timestamp(), intent));
    }
    keyed.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
    tracing::info!(
        intents = keyed.len(),
        "finishing uploads a previous run left unfinished"
    );
    let mut uploader = Uploader::new(store.clone(), options, Arc::new(ArchiverStats::default()));
    // Whatever the run's mode, an archive that moves takes its intent with
    // it, in the transaction that records the new key: an intent left under
    // the old key would be rebuilt on every start.
    uploader.intents = Some(db.clone());
    // Keys of the interrupted uploads: an archive that moves onto one of
    // them met an archive of ours, not a foreign object.
    let pending: std::collections::HashSet<String> =
        keyed.iter().map(|(_, i)| i.key.clone()).collect();
    for (timestamp, intent) in keyed {
        let recorded = Metadata::parse(intent.document.as_bytes()).map_err(|e| bad(&intent, &e))?;
        let ranges = ranges(&intent, &recorded)?;
        // Each shard's checkpoint after the intent: its last recorded record.
        let checkpoints: Vec<Checkpoint> = ranges
            .iter()
            .map(|r| Checkpoint {
                client: options.client.clone(),
                stream: options.stream.clone(),
                shard: r.shard.clone(),
                sequence: r.last.clone(),
            })
            .collect();
        let archive_ok = match &recorded.archive {
            Some(key) => matches(&*store, key, recorded.size, &recorded.sha256).await,
            None => true,
        };
        let dead_ok = match (&recorded.invalid_archive, &recorded.invalid_sha256) {
            (Some(key), Some(sha)) => {
                matches(&*store, key, recorded.invalid_size.unwrap_or(0), sha).await
            }
            (Some(_), None) => false,
            (None, _) => true,
        };
        let restored = if archive_ok && dead_ok {
            None
        } else {
            spooled(options, &recorded, archive_ok, dead_ok).await
        };
        let key = if archive_ok && dead_ok {
            uploader
                .put_sidecar(
                    recorded.archive.as_deref().unwrap_or(&intent.key),
                    &recorded,
                )
                .await;
            tracing::info!(
                key = intent.key,
                "the archive is in the store; committing its checkpoints"
            );
            report.confirmed.push(intent.key.clone());
            intent.key.clone()
        } else {
            let from_spool = restored.is_some();
            let mut sealed = match restored {
                Some((path, dead_path)) => {
                    Sealed::recorded(&intent.key, timestamp, &recorded, path, dead_path)
                }
                None => {
                    let mut sealed = rebuild(
                        replay,
                        options,
                        &intent,
                        &recorded,
                        ranges,
                        timestamp,
                        &mut report,
                    )
                    .await?;
                    keep_uploaded(&mut sealed, &recorded, archive_ok, dead_ok);
                    sealed
                }
            };
            let earlier = sealed.metadata.moved_from.len();
            let uploaded = uploader.upload_sealed(&mut sealed).await;
            remove_spool_files(&sealed);
            uploaded.map_err(RecoveryError::LeaseLost)?;
            report_foreign(&intent.key, &sealed, earlier, &pending, &mut report);
            if from_spool {
                tracing::warn!(
                    key = sealed.key,
                    "uploaded the archive from the spool file the interrupted store left"
                );
                report.restored.push(sealed.key.clone());
            } else {
                tracing::warn!(
                    key = sealed.key,
                    "rebuilt the archive from the stream and uploaded it"
                );
                report.rebuilt.push(sealed.key.clone());
            }
            sealed.key
        };
        complete(&*db, options, &key, &checkpoints)
            .await
            .map_err(RecoveryError::LeaseLost)?;
    }
    Ok(report)
}

/// Says, once and loudly, that the keys an interrupted upload could not use
/// hold objects that are not ours: they are left alone and never counted
/// as archives (the moved archive's sidecar names them, for `audit`).
fn report_foreign(
    intended: &str,
    sealed: &Sealed,
    earlier: usize,
    pending: &std::collections::HashSet<String>,
    report: &mut Recovery,
) {
    // Only the moves of this recovery (the interrupted run's own are in the
    // recorded document already), and only onto objects not of ours.
    for moved in sealed.metadata.moved_from.iter().skip(earlier) {
        if moved.key != intended && pending.contains(&moved.key) {
            continue;
        }
        tracing::error!(
            key = moved.key,
            reason = moved.reason,
            archive = sealed.key,
            intent = intended,
            "FOREIGN: the key of an interrupted upload holds an object that is not its archive; \
             it is left alone, and the archive was uploaded under the next free key"
        );
        report.foreign.push(moved.key.clone());
    }
}

/// The spool copies of the missing parts of an interrupted upload (archive,
/// dead letters), if every missing part has one: after a crash of the
/// process (not of the machine: spool files are not synced) they hold the
/// very bytes recorded, and need no reading from the stream, whose
/// retention may have passed.
async fn spooled(
    options: &ArchiverOptions,
    recorded: &Metadata,
    archive_ok: bool,
    dead_ok: bool,
) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
    let dir = options.spool_dir.clone();
    let (stream, client) = (options.stream.clone(), options.client.clone());
    let recorded = recorded.clone();
    // Hashing files is blocking work.
    tokio::task::spawn_blocking(move || {
        let find = |size: u64, sha: &str| find_spooled(&dir, &stream, &client, size, sha);
        let archive = match &recorded.archive {
            Some(_) if !archive_ok => Some(find(recorded.size, &recorded.sha256)?),
            _ => None,
        };
        let dead = match (&recorded.invalid_archive, &recorded.invalid_sha256) {
            (Some(_), Some(sha)) if !dead_ok => {
                Some(find(recorded.invalid_size.unwrap_or(0), sha)?)
            }
            (Some(_), None) if !dead_ok => return None,
            _ => None,
        };
        Some((archive, dead))
    })
    .await
    .ok()
    .flatten()
}

/// The pending intents, waiting out database outages.
async fn load(
    db: &dyn IntentStore,
    options: &ArchiverOptions,
) -> Result<Vec<UploadIntent>, RecoveryError> {
    retry(
        &policies::CHECKPOINT_DATABASE,
        || db.intents(&options.client, &options.stream),
        CheckpointError::is_retryable,
        |e, r| tracing::warn!(error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "waiting for the checkpoint store"),
    )
    .await
    .map_err(RecoveryError::from)
}

fn bad(intent: &UploadIntent, detail: &str) -> RecoveryError {
    RecoveryError::BadIntent {
        key: intent.key.clone(),
        detail: detail.to_owned(),
    }
}

fn ranges(intent: &UploadIntent, recorded: &Metadata) -> Result<Vec<SequenceRange>, RecoveryError> {
    recorded
        .shards
        .iter()
        .map(|(shard, range)| {
            let (first, last) = range.sequences().ok_or_else(|| {
                bad(
                    intent,
                    &format!("shard {shard}: the range is not of sequence numbers"),
                )
            })?;
            Ok(SequenceRange::inclusive(shard.clone(), first, last))
        })
        .collect()
}

/// Whether `key` holds `size` bytes whose SHA-256 is `sha256`. Store
/// outages are waited out: a guess here would duplicate or lose records.
async fn matches(store: &dyn ArchiveStore, key: &str, size: u64, sha256: &str) -> bool {
    until_ok(
        Waiting::Store,
        "waiting for the archive store",
        key,
        || async move {
            match store.head(key).await? {
                Some(info) if info.size == size => match sha256_of(store, key).await {
                    Ok(sha) => Ok(sha == sha256),
                    // Deleted between the two requests.
                    Err(e) if e.is_not_found() => Ok(false),
                    Err(e) => Err(e),
                },
                _ => Ok::<_, StoreError>(false),
            }
        },
    )
    .await
}

/// Reads the recorded ranges again into a new spool under the intent's
/// key, and notes what the stream no longer holds.
async fn rebuild(
    replay: &dyn Replay,
    options: &ArchiverOptions,
    intent: &UploadIntent,
    recorded: &Metadata,
    ranges: Vec<SequenceRange>,
    timestamp: u64,
    report: &mut Recovery,
) -> Result<Sealed, RecoveryError> {
    let failed = |source| RecoveryError::Replay {
        key: intent.key.clone(),
        source,
    };
    tracing::warn!(
        key = intent.key,
        "the archive is not in the store; reading its records again"
    );
    // Nothing of a failed rebuild is kept: the next start reads again.
    let sealed = read_again(replay, options, ranges, timestamp)
        .await
        .map_err(|e| match e {
            ReadAgainError::Replay(e) => failed(e),
            ReadAgainError::Spool(e) => RecoveryError::Spool(e),
        })?;
    for (shard, detail) in not_read_again(recorded, sealed.as_ref().map(|s| &s.metadata)) {
        tracing::error!(
            key = intent.key, shard, detail,
            "LOST: records of an interrupted upload are no longer in the stream (past its retention period?)"
        );
        report.lost.push(LostRecords {
            archive: intent.key.clone(),
            shard,
            detail,
        });
    }
    // The rebuilt archive continues what the lost one continued.
    let mut sealed = sealed;
    if let Some(s) = &mut sealed {
        for (shard, range) in &mut s.metadata.shards {
            if let Some(want) = recorded.shards.get(shard) {
                range.take_chain(want);
            }
        }
        s.metadata.moved_from.clone_from(&recorded.moved_from);
    }
    // Nothing could be read: an empty intent completes the checkpoints.
    Ok(sealed.unwrap_or_else(|| Sealed::empty(intent.key.clone(), timestamp)))
}

/// Each shard of `recorded` whose records did not all come back in
/// `rebuilt`, with what is missing.
pub(crate) fn not_read_again(
    recorded: &Metadata,
    rebuilt: Option<&Metadata>,
) -> Vec<(String, String)> {
    let count = |r: Option<u64>| r.map_or("?".into(), |n| n.to_string());
    recorded
        .shards
        .iter()
        .filter_map(|(shard, want)| {
            let detail = match rebuilt.and_then(|m| m.shards.get(shard)) {
                None => format!(
                    "all {} records from {} to {}",
                    count(want.record_count),
                    want.min_sequence_number,
                    want.max_sequence_number
                ),
                Some(got) if !got.same_records(want) => format!(
                    "{} of {} records came back: {}..{} instead of {}..{}",
                    count(got.record_count),
                    count(want.record_count),
                    got.min_sequence_number,
                    got.max_sequence_number,
                    want.min_sequence_number,
                    want.max_sequence_number
                ),
                Some(_) => return None,
            };
            Some((shard.clone(), detail))
        })
        .collect()
}

/// Why [`read_again`] failed.
#[derive(Debug)]
pub(crate) enum ReadAgainError {
    Replay(SourceError),
    Spool(SpoolError),
}

/// Reads `ranges` again into a new spool for an archive opened at
/// `timestamp`, and seals it (`None`: nothing came back). Nothing of a
/// failed read is kept.
pub(crate) async fn read_again(
    replay: &dyn Replay,
    options: &ArchiverOptions,
    ranges: Vec<SequenceRange>,
    timestamp: u64,
) -> Result<Option<Sealed>, ReadAgainError> {
    let mut source = replay
        .replay(ranges)
        .await
        .map_err(ReadAgainError::Replay)?;
    let mut spool = Spool::open(
        &options.spool_dir,
        &options.stream,
        &options.client,
        timestamp,
    )
    .map_err(ReadAgainError::Spool)?;
    let now = (options.clock)();
    loop {
        let written = match source.next_batch(options.batch).await {
            Ok(Some(batch)) => spool
                .write_batch(&batch, now)
                .map(drop)
                .map_err(ReadAgainError::Spool),
            Ok(None) => break,
            Err(e) => Err(ReadAgainError::Replay(e)),
        };
        if let Err(e) = written {
            spool.discard();
            return Err(e);
        }
    }
    spool.seal().map_err(ReadAgainError::Spool)
}

/// Keeps the parts of the recorded upload that are already in the store
/// (a crash between the archive and its dead letters): their rebuilt
/// copies, whose bytes may differ, are dropped, and the sidecar describes
/// what is uploaded.
fn keep_uploaded(sealed: &mut Sealed, recorded: &Metadata, archive_ok: bool, dead_ok: bool) {
    if archive_ok && recorded.archive.is_some() {
        if let Some(path) = sealed.path.take() {
            let _ = std::fs::remove_file(path);
        }
        sealed.key = recorded.archive.clone().unwrap_or_default();
        sealed.metadata.archive = recorded.archive.clone();
        // The archive kept holds the recorded ranges, whatever came back.
        sealed.metadata.shards = recorded.shards.clone();
        sealed.metadata.record_count = recorded.record_count;
        sealed.metadata.size = recorded.size;
        sealed.metadata.sha256 = recorded.sha256.clone();
    }
    match (&mut sealed.invalid, &recorded.invalid_archive) {
        (Some(_), Some(_)) if dead_ok => {
            if let Some((_, path, _)) = sealed.invalid.take() {
                let _ = std::fs::remove_file(path);
            }
            sealed.metadata.invalid_record_count = recorded.invalid_record_count;
            sealed.metadata.invalid_archive = recorded.invalid_archive.clone();
            sealed.metadata.invalid_size = recorded.invalid_size;
            sealed.metadata.invalid_sha256 = recorded.invalid_sha256.clone();
        }
        // The recorded dead-letter key, which may have moved from the
        // default.
        (Some((key, _, _)), Some(recorded_key)) => {
            key.clone_from(recorded_key);
            sealed.metadata.invalid_archive = Some(recorded_key.clone());
        }
        _ => {}
    }
}

fn remove_spool_files(sealed: &Sealed) {
    for path in sealed.spool_files() {
        let _ = std::fs::remove_file(path);
    }
}
