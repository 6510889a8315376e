//! `triton audit --repair`: puts back, from the stream, what an audit
//! found missing.
//!
//! Each missing archive is read again from the stream (the replay that
//! exactly-once recovery uses) and uploaded create-only under the key its
//! neighbours' links name, so that the chain closes. Its range comes from
//! its sidecar where that remains (exact: first and last record and count
//! of each shard), or else from the links: after the last record of the
//! archive before, through the record the archive after links to. A missing
//! dead-letter archive is rebuilt from its archive's recorded ranges, and a
//! lost sidecar from its archive and its neighbours' links, once the
//! records read again are those its archive holds.
//!
//! Repair never writes over an archive and never touches checkpoints. The
//! objects it replaces are the sidecar of a missing archive, which must
//! describe the rebuilt bytes (records read again may come in another
//! order across shards), and the sidecar of an archive whose dead letters
//! it puts back (they carry the time they were read again).

use std::collections::BTreeMap;
use std::sync::Arc;
use triton_core::error::Report;

use sha2::{Digest, Sha256};
use triton_core::archive::ArchiveReader;
use triton_core::key::ArchiveKey;
use triton_core::source::{RangeStart, Replay, SequenceNumber, SequenceRange, SourceError};

use crate::archiver::{
    not_read_again, read_again, ArchiverOptions, LostRecords, Metadata, ReadAgainError, Sealed,
    ShardRange, SpoolError, METADATA_SUFFIX,
};
use crate::audit::{sha256_of, AuditReport, Finding, Link};
use crate::error::{ErrorKind, StoreError};
use crate::reader::{read_sidecar, SidecarError};
use crate::store::read_object;
use crate::store::{ArchiveStore, PutOptions};

/// What [`repair`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// Objects written.
    pub repaired: Vec<Repaired>,
    /// Records the stream no longer holds: in no archive, left alone.
    pub lost: Vec<LostRecords>,
    /// What repair could not put back, and why.
    pub left: Vec<Left>,
    /// Archives whose repair failed (the store or the stream failed): what
    /// was written before stays, a later repair goes on.
    pub failed: Vec<Left>,
}

/// One object put back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repaired {
    /// Its key.
    pub key: String,
    /// What it is: `archive`, `dead letters` or `sidecar`.
    pub what: &'static str,
    /// Records in it (for a sidecar: in its archive).
    pub records: u64,
}

/// Something repair did not put back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Left {
    /// The archive concerned.
    pub archive: String,
    /// Why.
    pub reason: String,
}

/// Why a repair could not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// The archive store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The spool directory could not be written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Reading the stream again failed.
    #[error("reading the records of {key} again")]
    Replay {
        /// The archive being rebuilt.
        key: String,
        /// The failure.
        source: SourceError,
    },
}

/// What is to be put back for one archive key.
#[derive(Default)]
struct Plan {
    /// The archive is missing.
    missing: bool,
    /// Per shard, where the missing archive's records lie by the links.
    archive: BTreeMap<String, Link>,
    /// Its dead-letter archive is missing (the archive is there).
    dead_letters: bool,
    /// Its sidecar is missing (the archive is there); per shard, where its
    /// records lie.
    sidecar: Option<Vec<Link>>,
}

impl Plan {
    /// The archive is missing, and `link` says where its records of a shard
    /// lie (the first finding of the shard counts).
    fn missing_link(&mut self, link: Link) {
        self.missing = true;
        self.archive.entry(link.shard.clone()).or_insert(link);
    }
}

/// Puts back what `audit` found missing, reading `replay`; see the module
/// documentation. `options` names the stream and client of the audited
/// archives, the spool directory and the upload options.
pub async fn repair(
    store: Arc<dyn ArchiveStore>,
    replay: &dyn Replay,
    audit: &AuditReport,
    options: &ArchiverOptions,
) -> Result<RepairReport, RepairError> {
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    for finding in &audit.findings {
        match finding {
            Finding::Gap {
                shard,
                missing_archive: Some(key),
                after,
                through,
                previous,
                shard_end,
                ..
            } => plans.entry(key.clone()).or_default().missing_link(Link {
                shard: shard.clone(),
                after: after.clone(),
                after_archive: previous.clone(),
                through: through.clone(),
                shard_end: *shard_end,
            }),
            Finding::CheckpointAhead {
                shard,
                checkpoint,
                last_archived,
                last_archive,
                missing_archive: Some(key),
            } => plans.entry(key.clone()).or_default().missing_link(Link {
                shard: shard.clone(),
                after: last_archived.clone(),
                after_archive: last_archive.clone(),
                through: checkpoint.clone(),
                shard_end: false,
            }),
            Finding::MissingArchive { archive, .. } => {
                plans.entry(archive.clone()).or_default().missing = true;
            }
            Finding::DeadLetters { archive, .. } => {
                plans.entry(archive.clone()).or_default().dead_letters = true;
            }
            Finding::MissingSidecar { archive, links } => {
                plans.entry(archive.clone()).or_default().sidecar = Some(links.clone());
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(&options.spool_dir)
        .map_err(|e| SpoolError::Io(options.spool_dir.clone(), e))?;
    let mut repair = Repair {
        store,
        replay,
        options,
        report: RepairReport::default(),
    };
    // Archives whose records are not known (no sidecar, or missing, or
    // being uploaded): a range read from links must not pass one of them,
    // or it could take records that archive holds.
    let uncertain: Vec<(u64, String)> = plans
        .iter()
        .filter(|(_, p)| p.missing || p.sidecar.is_some())
        .map(|(k, _)| k.clone())
        .chain(audit.pending.iter().cloned())
        .filter_map(|k| Some((timestamp_of(&k)?, k)))
        .collect();
    for (key, plan) in &plans {
        let done = if plan.missing {
            repair.archive(key, &plan.archive, &uncertain).await
        } else if let Some(links) = &plan.sidecar {
            repair.sidecar(key, links).await
        } else if plan.dead_letters {
            repair.dead_letters(key).await
        } else {
            Ok(())
        };
        if let Err(e) = done {
            tracing::error!(key, error = %Report(&e), "repair failed");
            repair.report.failed.push(Left {
                archive: key.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok(repair.report)
}

/// The chain of a rebuilt shard range, as its neighbours' link says it.
fn continue_from(range: &mut ShardRange, link: &Link) {
    range.after.clone_from(&link.after);
    range.after_archive.clone_from(&link.after_archive);
    range.shard_end = link.shard_end;
}

/// The timestamp in an archive key, if it is one.
fn timestamp_of(key: &str) -> Option<u64> {
    ArchiveKey::parse(key).ok().map(|k| k.timestamp())
}

struct Repair<'a> {
    store: Arc<dyn ArchiveStore>,
    replay: &'a dyn Replay,
    options: &'a ArchiverOptions,
    report: RepairReport,
}

impl Repair<'_> {
    /// Puts back the missing archive `key`: from its sidecar's ranges if it
    /// remains, else from `links`.
    async fn archive(
        &mut self,
        key: &str,
        links: &BTreeMap<String, Link>,
        uncertain: &[(u64, String)],
    ) -> Result<(), RepairError> {
        let recorded = match self.read_sidecar(key).await? {
            Some(Ok(m)) => Some(m),
            Some(Err(detail)) => {
                tracing::warn!(key, detail, "the missing archive's sidecar cannot be read; repairing from its neighbours' links");
                None
            }
            None => None,
        };
        if recorded.is_none() {
            // Between the archive before and this one, another whose
            // records are unknown: the links' range may hold its records
            // too. It is repaired first; a later round comes back here.
            let until = timestamp_of(key).unwrap_or(0);
            for link in links.values() {
                let since = link
                    .after_archive
                    .as_deref()
                    .and_then(timestamp_of)
                    .unwrap_or(0);
                if let Some((_, other)) = uncertain
                    .iter()
                    .find(|(t, k)| *t > since && *t < until && k != key)
                {
                    return self.leave(
                        key,
                        format!("{other}, between it and the archive before it, is not known yet: repair again once it is"),
                    );
                }
            }
        }
        let ranges = match &recorded {
            Some(m) => recorded_ranges(m),
            None => link_ranges(links.values()),
        };
        let ranges = match ranges {
            Ok(r) if r.is_empty() => {
                return self.leave(key, "nothing says what it held".into());
            }
            Ok(r) => r,
            Err(reason) => return self.leave(key, reason),
        };
        if recorded.is_none() {
            let gone = self.starts_gone(key, &ranges).await?;
            if !gone.is_empty() {
                for (shard, detail) in gone {
                    self.lose(key, &shard, detail);
                }
                return Ok(());
            }
        }
        let sealed = self.read_again(key, ranges).await?;
        let rebuilt = sealed.as_ref().map(|s| &s.metadata);
        let lost = match &recorded {
            Some(m) => not_read_again(m, rebuilt),
            None => not_through(links.values(), rebuilt),
        };
        if !lost.is_empty() {
            for (shard, detail) in lost {
                self.lose(key, &shard, detail);
            }
            return Ok(());
        }
        let Some(mut sealed) = sealed else {
            return Ok(());
        };
        // The rebuilt archive continues what the lost one continued.
        for (shard, range) in &mut sealed.metadata.shards {
            match recorded.as_ref().and_then(|m| m.shards.get(shard)) {
                Some(want) => range.take_chain(want),
                None => {
                    if let Some(link) = links.get(shard) {
                        continue_from(range, link);
                    }
                }
            }
        }
        if let Some(m) = &recorded {
            sealed.metadata.moved_from.clone_from(&m.moved_from);
        }
        sealed.metadata.rebuilt = Some(format!(
            "the archive, read again from the stream by triton audit --repair on {} (from {})",
            now(),
            if recorded.is_some() {
                "its sidecar's ranges"
            } else {
                "its neighbours' links"
            }
        ));
        let dead_key = recorded.as_ref().and_then(|m| m.invalid_archive.clone());
        self.upload(sealed, dead_key, recorded.as_ref()).await
    }

    /// Puts back the missing dead-letter archive of `key` (whose sidecar
    /// names it), from the archive's recorded ranges.
    async fn dead_letters(&mut self, key: &str) -> Result<(), RepairError> {
        let recorded = match self.read_sidecar(key).await? {
            Some(Ok(m)) => m,
            _ => return self.leave(key, "its sidecar cannot be read".into()),
        };
        let Some(dead_key) = recorded.invalid_archive.clone() else {
            return Ok(());
        };
        if self.store.head(&dead_key).await?.is_some() {
            return self.leave(
                &dead_key,
                "the dead-letter archive is there but does not match its sidecar; repair never writes over an object".into(),
            );
        }
        let ranges = match recorded_ranges(&recorded) {
            Ok(r) => r,
            Err(reason) => return self.leave(key, reason),
        };
        let sealed = self.read_again(key, ranges).await?;
        let lost = not_read_again(&recorded, sealed.as_ref().map(|s| &s.metadata));
        let dead = sealed.as_ref().and_then(|s| s.invalid.clone());
        let same_count = sealed
            .as_ref()
            .is_some_and(|s| s.metadata.invalid_record_count == recorded.invalid_record_count);
        let (Some(sealed), Some((_, path, records)), true, true) =
            (&sealed, dead, lost.is_empty(), same_count)
        else {
            if lost.is_empty() {
                return self.leave(
                    &dead_key,
                    "the records read again are not those its archive's sidecar records".into(),
                );
            }
            for (shard, detail) in lost {
                self.lose(&dead_key, &shard, detail);
            }
            return Ok(());
        };
        if !self.put_file(&dead_key, &path).await? {
            return self.taken(&dead_key);
        }
        self.repaired(&dead_key, "dead letters", records);
        let mut metadata = recorded;
        metadata.invalid_size = sealed.metadata.invalid_size;
        metadata
            .invalid_sha256
            .clone_from(&sealed.metadata.invalid_sha256);
        metadata.rebuilt = Some(format!(
            "the dead-letter archive, read again from the stream by triton audit --repair on {}",
            now()
        ));
        self.put_sidecar(key, &metadata, true).await
    }

    /// Writes the lost sidecar of the archive `key` again: the records of
    /// `links` are read again, and once they are exactly the archive's own
    /// (dead letters aside), the sidecar describes the archive as it is.
    async fn sidecar(&mut self, key: &str, links: &[Link]) -> Result<(), RepairError> {
        if links.is_empty() {
            return self.leave(
                key,
                "no archive links to it: what it holds cannot be told".into(),
            );
        }
        let ranges = match link_ranges(links.iter()) {
            Ok(r) => r,
            Err(reason) => return self.leave(key, reason),
        };
        let gone = self.starts_gone(key, &ranges).await?;
        if let Some((shard, detail)) = gone.first() {
            return self.leave(
                key,
                format!("shard {shard}, {detail}: the sidecar cannot be rebuilt"),
            );
        }
        let Some(sealed) = self.read_again(key, ranges).await? else {
            return self.leave(
                key,
                "the stream no longer holds its records: the sidecar cannot be rebuilt".into(),
            );
        };
        let lost = not_through(links.iter(), Some(&sealed.metadata));
        let ours = match &sealed.path {
            Some(path) => Some(record_digests_of_file(path)?),
            None => None,
        };
        let theirs = record_digests(&*self.store, key).await?;
        if !lost.is_empty() || ours.as_ref() != Some(&theirs) {
            return self.leave(
                key,
                format!(
                    "its {} records are not the {} its neighbours' links say the stream holds for it: the sidecar cannot be rebuilt",
                    theirs.len(),
                    ours.as_ref().map_or(0, Vec::len)
                ),
            );
        }
        let mut metadata = sealed.metadata.clone();
        for link in links {
            if let Some(range) = metadata.shards.get_mut(&link.shard) {
                continue_from(range, link);
            }
        }
        // The archive as it is, not the copy read again.
        metadata.archive = Some(key.to_owned());
        metadata.size = self.store.head(key).await?.map_or(0, |i| i.size);
        metadata.sha256 = sha256_of(&*self.store, key).await?;
        metadata.record_count = theirs.len() as u64;
        if let Some((dead_key, path, records)) = sealed.invalid.clone() {
            match self.store.head(&dead_key).await? {
                // The archive's own dead letters, whose bytes may differ
                // from the copy read again.
                Some(info) => {
                    metadata.invalid_size = Some(info.size);
                    metadata.invalid_sha256 = Some(sha256_of(&*self.store, &dead_key).await?);
                }
                None if self.put_file(&dead_key, &path).await? => {
                    self.repaired(&dead_key, "dead letters", records);
                }
                None => {
                    return self.taken(&dead_key);
                }
            }
        }
        metadata.rebuilt = Some(format!(
            "the sidecar, from its archive and its neighbours' links, by triton audit --repair on {}",
            now()
        ));
        self.put_sidecar(key, &metadata, false).await
    }

    /// Uploads a rebuilt archive and its dead letters create-only, then its
    /// sidecar (replacing the lost archive's). Dead letters of the lost
    /// archive that are still there are kept.
    async fn upload(
        &mut self,
        sealed: Rebuilt,
        dead_key: Option<String>,
        recorded: Option<&Metadata>,
    ) -> Result<(), RepairError> {
        let key = sealed.key.clone();
        let mut metadata = sealed.metadata.clone();
        if let Some(path) = &sealed.path {
            if !self.put_file(&key, path).await? {
                return self.taken(&key);
            }
            self.repaired(&key, "archive", sealed.records);
        }
        if let Some((default_key, path, records)) = &sealed.invalid {
            let dead = dead_key.unwrap_or_else(|| default_key.clone());
            metadata.invalid_archive = Some(dead.clone());
            let kept = recorded.filter(|m| m.invalid_archive.as_deref() == Some(dead.as_str()));
            match self.store.head(&dead).await? {
                Some(info) => {
                    metadata.invalid_size = Some(info.size);
                    metadata.invalid_sha256 = match kept.and_then(|m| m.invalid_sha256.clone()) {
                        Some(sha) if kept.and_then(|m| m.invalid_size) == Some(info.size) => {
                            Some(sha)
                        }
                        _ => Some(sha256_of(&*self.store, &dead).await?),
                    };
                }
                None if self.put_file(&dead, path).await? => {
                    self.repaired(&dead, "dead letters", *records);
                }
                None => {
                    return self.taken(&dead);
                }
            }
        }
        // (Only dead letters came back: the sidecar says there is no
        // archive, as the store writes it.)
        self.put_sidecar(&key, &metadata, true).await
    }

    /// Each range whose record it starts after the stream no longer holds:
    /// its beginning may have gone with the stream's retention without a
    /// sign.
    async fn starts_gone(
        &self,
        key: &str,
        ranges: &[SequenceRange],
    ) -> Result<Vec<(String, String)>, RepairError> {
        let mut gone = Vec::new();
        for range in ranges {
            let RangeStart::After(after) = &range.start else {
                continue;
            };
            let probe = SequenceRange::inclusive(range.shard.clone(), after.clone(), after.clone());
            let failed = |source| RepairError::Replay {
                key: key.to_owned(),
                source,
            };
            let mut source = self.replay.replay(vec![probe]).await.map_err(failed)?;
            let mut found = false;
            while let Some(batch) = source.next_batch(1).await.map_err(failed)? {
                found |= !batch.is_empty();
            }
            if !found {
                gone.push((
                    range.shard.clone(),
                    format!(
                        "records after {after} through {}: the stream no longer holds {after}, so whether it holds them all cannot be told",
                        range.last
                    ),
                ));
            }
        }
        Ok(gone)
    }

    /// Reads `ranges` again into a spool for `key`.
    async fn read_again(
        &self,
        key: &str,
        ranges: Vec<SequenceRange>,
    ) -> Result<Option<Rebuilt>, RepairError> {
        let timestamp = ArchiveKey::parse(key).map(|k| k.timestamp()).map_err(|e| {
            StoreError::new(
                "repair",
                key,
                ErrorKind::Fatal,
                format!("not an archive key: {e}"),
            )
        })?;
        tracing::info!(key, "reading the records of the archive again");
        let mut sealed = read_again(self.replay, self.options, ranges, timestamp)
            .await
            .map_err(|e| match e {
                ReadAgainError::Replay(source) => RepairError::Replay {
                    key: key.to_owned(),
                    source,
                },
                ReadAgainError::Spool(e) => RepairError::Spool(e),
            })?;
        if let Some(s) = &mut sealed {
            // The spool names the key by the options' stream and client,
            // which are the audited archives'.
            s.key = key.to_owned();
            if s.metadata.archive.is_some() {
                s.metadata.archive = Some(key.to_owned());
            }
        }
        Ok(sealed.map(Rebuilt))
    }

    /// The sidecar of `key`: `None` if there is none, `Some(Err)` if it is
    /// not one.
    async fn read_sidecar(
        &self,
        key: &str,
    ) -> Result<Option<Result<Metadata, String>>, RepairError> {
        match read_sidecar(&*self.store, key).await {
            Ok(found) => Ok(found.map(Ok)),
            Err(SidecarError::Invalid { reason, .. }) => Ok(Some(Err(reason))),
            Err(SidecarError::Store(e)) => Err(e.into()),
        }
    }

    /// Uploads `path` as `key` create-only; false if the key is taken.
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<bool, RepairError> {
        let options = PutOptions {
            create_only: true,
            ..self.options.put.clone()
        };
        match self.store.put_file(key, path, &options).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts the sidecar of `key`; `replace` allows writing over the lost
    /// archive's sidecar.
    async fn put_sidecar(
        &mut self,
        key: &str,
        metadata: &Metadata,
        replace: bool,
    ) -> Result<(), RepairError> {
        let sidecar = format!("{key}{METADATA_SUFFIX}");
        let options = PutOptions {
            create_only: !replace,
            ..self.options.put.clone()
        };
        match self
            .store
            .put_bytes(&sidecar, metadata.to_json(), &options)
            .await
        {
            Ok(_) => {
                self.repaired(&sidecar, "sidecar", metadata.record_count);
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::AlreadyExists => self.taken(&sidecar),
            Err(e) => Err(e.into()),
        }
    }

    fn repaired(&mut self, key: &str, what: &'static str, records: u64) {
        tracing::info!(key, what, records, "put back");
        self.report.repaired.push(Repaired {
            key: key.to_owned(),
            what,
            records,
        });
    }

    fn lose(&mut self, archive: &str, shard: &str, detail: String) {
        tracing::error!(
            archive,
            shard,
            detail,
            "LOST: the stream no longer holds records of a missing archive"
        );
        self.report.lost.push(LostRecords {
            archive: archive.to_owned(),
            shard: shard.to_owned(),
            detail,
        });
    }

    /// Notes what is not repaired (and goes on with the rest).
    fn leave(&mut self, archive: &str, reason: String) -> Result<(), RepairError> {
        tracing::warn!(archive, reason, "not repaired");
        self.report.left.push(Left {
            archive: archive.to_owned(),
            reason,
        });
        Ok(())
    }

    fn taken(&mut self, key: &str) -> Result<(), RepairError> {
        self.leave(
            key,
            "the key holds an object now; repair never writes over one".into(),
        )
    }
}

/// The ranges a sidecar records, from each shard's first record.
fn recorded_ranges(m: &Metadata) -> Result<Vec<SequenceRange>, String> {
    m.shards
        .iter()
        .map(|(shard, range)| {
            let (first, last) = range.sequences().ok_or_else(|| {
                format!("shard {shard}: its sidecar's range is not of sequence numbers")
            })?;
            Ok(SequenceRange::inclusive(shard.clone(), first, last))
        })
        .collect()
}

/// The ranges links say, after each shard's record before.
fn link_ranges<'a>(links: impl Iterator<Item = &'a Link>) -> Result<Vec<SequenceRange>, String> {
    links
        .map(|link| {
            let Some(after) = &link.after else {
                return Err(format!(
                    "where its records of {} begin is unknown: its sidecar is gone and no archive before it is in the range (repair with an earlier --start-date)",
                    link.shard
                ));
            };
            let number = |s: &str| {
                SequenceNumber::new(s).map_err(|e| format!("shard {}: {e}", link.shard))
            };
            Ok(SequenceRange::after(
                link.shard.clone(),
                number(after)?,
                number(&link.through)?,
            ))
        })
        .collect()
}

/// Each link whose range did not come back to its last record.
fn not_through<'a>(
    links: impl Iterator<Item = &'a Link>,
    rebuilt: Option<&Metadata>,
) -> Vec<(String, String)> {
    links
        .filter_map(|link| {
            let got = rebuilt.and_then(|m| m.shards.get(&link.shard));
            match got {
                Some(r) if r.max_sequence_number == link.through => None,
                Some(r) => Some((
                    link.shard.clone(),
                    format!(
                        "records {}: only {}..{} came back",
                        describe(link),
                        r.min_sequence_number,
                        r.max_sequence_number
                    ),
                )),
                None => Some((
                    link.shard.clone(),
                    format!("all records {}", describe(link)),
                )),
            }
        })
        .collect()
}

fn describe(link: &Link) -> String {
    match &link.after {
        Some(after) => format!("after {after} through {}", link.through),
        None => format!("up to {}", link.through),
    }
}

/// The time, for the `rebuilt` note.
fn now() -> String {
    triton_core::value::Timestamp::from(std::time::SystemTime::now()).to_string()
}

/// A rebuilt archive in the spool directory; its files go when it does,
/// whatever the path out (uploaded, left, or an error).
struct Rebuilt(Sealed);

impl std::ops::Deref for Rebuilt {
    type Target = Sealed;
    fn deref(&self) -> &Sealed {
        &self.0
    }
}

impl std::ops::DerefMut for Rebuilt {
    fn deref_mut(&mut self) -> &mut Sealed {
        &mut self.0
    }
}

impl Drop for Rebuilt {
    fn drop(&mut self) {
        for path in self.0.spool_files() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The SHA-256 of each record of an archive, sorted: its records as a set,
/// whatever their order across shards.
fn digests(bytes: impl std::io::Read, name: &str) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut reader = ArchiveReader::new(bytes);
    let mut out = Vec::new();
    loop {
        match reader.next_raw() {
            Ok(Some(raw)) => out.push(Sha256::digest(raw).into()),
            Ok(None) => break,
            Err(e) => {
                return Err(StoreError::new(
                    "read",
                    name,
                    ErrorKind::Fatal,
                    format!("not a readable archive: {e}"),
                ))
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

async fn record_digests(store: &dyn ArchiveStore, key: &str) -> Result<Vec<[u8; 32]>, StoreError> {
    let bytes = read_object(store, key).await?.unwrap_or_default();
    digests(std::io::Cursor::new(bytes), key)
}

fn record_digests_of_file(path: &std::path::Path) -> Result<Vec<[u8; 32]>, StoreError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| StoreError::io("read", name.clone(), e))?;
    digests(std::io::BufReader::new(file), &name)
}
