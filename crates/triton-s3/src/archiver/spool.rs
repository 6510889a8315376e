//! The archive being filled: a `.tri` file in the spool directory, and
//! beside it, when invalid records arrive, a dead-letter archive.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use triton_core::archive::{frame, ArchiveError, ArchiveErrorKind, ArchiveWriter};
use triton_core::key::ArchiveKey;
use triton_core::source::{Position, SourceRecord};
use triton_core::value::{Record, Str, Timestamp, Value};

use super::metadata::{Metadata, ShardRange};

/// Top-level prefix of dead-letter archives: readers of the normal layout
/// list `<YYYYMMDD>/…` and never see it.
pub const DEAD_LETTER_PREFIX: &str = "_invalid/";

/// Suffix of spool files; [`clean_stale`] recognises them by it.
const SPOOL_SUFFIX: &str = ".spool";

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hashes what passes through it, so that the archive's SHA-256 costs no
/// second read.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The digest as lowercase hex, as sidecars hold it.
pub(crate) fn sha256_hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One archive file being written, with its own statistics.
struct SpoolFile {
    path: PathBuf,
    writer: ArchiveWriter<Hashing<BufWriter<File>>>,
}

impl SpoolFile {
    fn create(path: PathBuf) -> std::io::Result<SpoolFile> {
        let file = File::create(&path)?;
        Ok(SpoolFile {
            writer: ArchiveWriter::new(Hashing {
                inner: BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
            }),
            path,
        })
    }

    /// Flushes and closes the file; returns its size and SHA-256 (hex).
    fn finish(self) -> Result<(u64, String), ArchiveError> {
        let (mut inner, stats) = self.writer.finish_with_stats()?;
        inner.flush().map_err(io_error)?;
        Ok((stats.bytes_out, sha256_hex(inner.hasher)))
    }
}

fn io_error(e: std::io::Error) -> ArchiveError {
    ArchiveError {
        offset: 0,
        record: 0,
        kind: ArchiveErrorKind::Io(e),
    }
}

impl Sealed {
    /// Its spool files: the archive's and the dead letters', if any.
    pub(crate) fn spool_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.path.iter().chain(self.invalid.as_ref().map(|i| &i.1))
    }

    /// An upload as `recorded` describes it, of the files given (the parts
    /// still to upload).
    pub(crate) fn recorded(
        key: &str,
        timestamp: u64,
        recorded: &Metadata,
        path: Option<PathBuf>,
        dead_path: Option<PathBuf>,
    ) -> Sealed {
        let invalid = dead_path.and_then(|p| {
            let key = recorded.invalid_archive.clone()?;
            Some((key, p, recorded.invalid_record_count))
        });
        Sealed {
            key: key.to_owned(),
            timestamp,
            path,
            records: recorded.record_count,
            invalid,
            positions: Vec::new(),
            metadata: recorded.clone(),
        }
    }

    /// An upload of nothing under `key` (recovery when no record of an
    /// interrupted upload could be read again).
    pub(crate) fn empty(key: String, timestamp: u64) -> Sealed {
        Sealed {
            key,
            timestamp,
            path: None,
            records: 0,
            invalid: None,
            positions: Vec::new(),
            metadata: Metadata::empty(),
        }
    }
}

/// The archive currently being filled.
pub(crate) struct Spool {
    key: ArchiveKey,
    records: SpoolFile,
    invalid: Option<SpoolFile>,
    dir: PathBuf,
    base: String,
    /// The last position of each shard in this archive (invalid records
    /// included): what the checkpoint moves to once it is uploaded.
    positions: HashMap<Arc<str>, Position>,
    /// The first position of each shard in this archive.
    first: HashMap<Arc<str>, Position>,
    /// Records of each shard (invalid ones included).
    /// Per shard: (records, Kinesis records). They differ for aggregated
    /// Kinesis records, whose user records are the archive's records.
    per_shard: HashMap<Arc<str>, (u64, u64)>,
    count: u64,
    invalid_count: u64,
}

/// A sealed archive, ready to upload.
#[derive(Debug)]
pub struct Sealed {
    /// Object key of the archive.
    pub key: String,
    /// The Unix seconds in the key.
    pub timestamp: u64,
    /// The spool file holding it; `None` when every record was invalid
    /// (then only the dead-letter archive is uploaded).
    pub path: Option<PathBuf>,
    /// Records in it.
    pub records: u64,
    /// The dead-letter archive (key, spool file, records), if any record
    /// was invalid.
    pub invalid: Option<(String, PathBuf, u64)>,
    /// Per shard, the last position it contains.
    pub positions: Vec<(Arc<str>, Position)>,
    /// What the metadata sidecar says of it.
    pub metadata: Metadata,
}

impl Spool {
    /// A new spool file in `dir` for an archive of `stream` by `client`
    /// opened at `secs` (Unix seconds). Names are unique per process (pid and counter).
    pub(crate) fn open(
        dir: &Path,
        stream: &str,
        client: &str,
        secs: u64,
    ) -> Result<Spool, SpoolError> {
        let key = ArchiveKey::new(stream, client, secs).map_err(SpoolError::Key)?;
        let n = SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{stream}-{client}-{secs}-{}-{n}", std::process::id());
        let path = dir.join(format!("{base}.tri{SPOOL_SUFFIX}"));
        let records = SpoolFile::create(path.clone()).map_err(|e| SpoolError::Io(path, e))?;
        Ok(Spool {
            key,
            records,
            invalid: None,
            dir: dir.to_path_buf(),
            base,
            positions: HashMap::new(),
            first: HashMap::new(),
            per_shard: HashMap::new(),
            count: 0,
            invalid_count: 0,
        })
    }

    /// The archive's size so far, dead-letter archive included: chunks
    /// written, plus the records not yet compressed counted at full size
    /// (an upper bound; blocks are exactly `MAX_BLOCK` bytes of records, so
    /// what is buffered is the rest).
    pub(crate) fn size(&self) -> u64 {
        let size = |w: &ArchiveWriter<Hashing<BufWriter<File>>>| {
            let stats = w.stats();
            stats.bytes_out + stats.bytes_in % frame::MAX_BLOCK as u64
        };
        size(&self.records.writer) + self.invalid.as_ref().map_or(0, |f| size(&f.writer))
    }

    /// The shards it holds records of.
    pub(crate) fn shards(&self) -> impl Iterator<Item = &str> {
        self.positions.keys().map(|s| &**s)
    }

    /// The key's Unix seconds.
    pub(crate) fn timestamp(&self) -> u64 {
        self.key.timestamp()
    }

    /// Appends a record as it is if it is one MessagePack map (validated,
    /// never decoded), or else keeps it in the dead-letter archive; returns
    /// whether it was valid.
    fn write(&mut self, r: &SourceRecord, now: SystemTime) -> Result<bool, SpoolError> {
        match self.records.writer.write_raw(&r.data) {
            Ok(()) => {
                self.count += 1;
                Ok(true)
            }
            Err(ArchiveError {
                kind: ArchiveErrorKind::Record { defect, .. },
                ..
            }) => {
                self.write_invalid(r, &defect.to_string(), now)?;
                Ok(false)
            }
            Err(e) => Err(SpoolError::Write(self.records.path.clone(), e)),
        }
    }

    /// Writes a batch (see [`write`](Spool::write)) and notes its
    /// positions; returns how many records were invalid.
    pub(crate) fn write_batch(
        &mut self,
        batch: &[SourceRecord],
        now: SystemTime,
    ) -> Result<u64, SpoolError> {
        let mut invalid = 0;
        for r in batch {
            if !self.write(r, now)? {
                invalid += 1;
            }
        }
        self.written(batch);
        Ok(invalid)
    }

    /// Notes the last position of each shard in `batch`, once written:
    /// scanning from the end, each shard's first record is its last.
    fn written(&mut self, batch: &[SourceRecord]) {
        let mut seen: HashSet<&str> = HashSet::new();
        for r in batch.iter().rev() {
            if seen.insert(&r.source) {
                self.positions.insert(r.source.clone(), r.position.clone());
            }
        }
        // Batches mostly come from one shard: count runs, not records.
        let mut run_start = 0;
        for (i, r) in batch.iter().enumerate() {
            if i + 1 == batch.len() || batch[i + 1].source != r.source {
                let kinesis = batch[run_start..=i]
                    .iter()
                    .filter(|r| r.position.ends_kinesis_record())
                    .count();
                let counts = self.per_shard.entry(r.source.clone()).or_default();
                counts.0 += (i + 1 - run_start) as u64;
                counts.1 += kinesis as u64;
                run_start = i + 1;
            }
        }
        // The first of each shard: only shards new to this archive.
        if self.first.len() < self.positions.len() {
            for r in batch {
                if !self.first.contains_key(&r.source) {
                    self.first.insert(r.source.clone(), r.position.clone());
                }
            }
        }
    }

    /// Removes the files (after a write error: nothing of them was
    /// checkpointed, so their records will be read again).
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.records.path);
        if let Some(f) = &self.invalid {
            let _ = std::fs::remove_file(&f.path);
        }
    }

    /// Keeps an invalid record in the dead-letter archive, with where it
    /// came from and why it was refused.
    fn write_invalid(
        &mut self,
        r: &SourceRecord,
        reason: &str,
        arrival: SystemTime,
    ) -> Result<(), SpoolError> {
        if self.invalid.is_none() {
            let path = self
                .dir
                .join(format!("{}.invalid{SPOOL_SUFFIX}", self.base));
            let file = SpoolFile::create(path.clone()).map_err(|e| SpoolError::Io(path, e))?;
            self.invalid = Some(file);
        }
        let Some(file) = self.invalid.as_mut() else {
            unreachable!("created above")
        };
        let since = arrival.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut record = Record::new();
        record.push("shard", &*r.source);
        let position = match &r.position {
            Position::Sequence(s) | Position::SubSequence { sequence: s, .. } => s.to_string(),
            Position::Index(i) => i.to_string(),
        };
        record.push("sequence_number", position);
        // A user record of an aggregate: which one.
        if let Some(aggregate) = r.meta.aggregate {
            record.push("sub_sequence", u64::from(aggregate.sub));
        }
        record.push(
            "arrival",
            Value::Timestamp(Timestamp::new(since.as_secs() as i64, since.subsec_nanos())),
        );
        record.push("reason", reason);
        record.push(Str::from("data"), Value::Bin(r.data.clone()));
        file.writer
            .write_record(&record)
            .map_err(|e| SpoolError::Write(file.path.clone(), e))?;
        self.invalid_count += 1;
        Ok(())
    }

    /// Finishes the files; `None` for an archive without records (its file
    /// is removed).
    pub(crate) fn seal(self) -> Result<Option<Sealed>, SpoolError> {
        let key = self.key.to_string();
        let path = self.records.path.clone();
        let invalid_path = self.invalid.as_ref().map(|f| f.path.clone());
        let finished = self
            .records
            .finish()
            .map_err(|e| SpoolError::Write(path.clone(), e))
            .and_then(|archive| match self.invalid {
                Some(file) => {
                    let p = file.path.clone();
                    let dead = file.finish().map_err(|e| SpoolError::Write(p, e))?;
                    Ok((archive, Some(dead)))
                }
                None => Ok((archive, None)),
            });
        let ((size, sha256), dead) = match finished {
            Ok(done) => done,
            Err(e) => {
                // Nothing of it was checkpointed: its records will be read
                // again.
                for p in std::iter::once(&path).chain(&invalid_path) {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        let invalid =
            invalid_path.map(|p| (format!("{DEAD_LETTER_PREFIX}{key}"), p, self.invalid_count));
        let invalid_key = invalid.as_ref().map(|i| i.0.clone());
        // An archive without records is not uploaded.
        let path = if self.count == 0 {
            let _ = std::fs::remove_file(&path);
            None
        } else {
            Some(path)
        };
        if path.is_none() && invalid.is_none() {
            return Ok(None);
        }
        let metadata = Metadata {
            shards: self
                .positions
                .iter()
                .map(|(shard, last)| {
                    let first = self.first.get(shard).unwrap_or(last);
                    let (count, kinesis) = self.per_shard.get(shard).copied().unwrap_or((0, 0));
                    let mut range = ShardRange::new(first, last, count);
                    range.kinesis_record_count = Some(kinesis);
                    (shard.to_string(), range)
                })
                .collect(),
            archive: path.as_ref().map(|_| key.clone()),
            record_count: self.count,
            size,
            sha256,
            invalid_record_count: self.invalid_count,
            invalid_archive: invalid_key,
            invalid_size: dead.as_ref().map(|d| d.0),
            invalid_sha256: dead.map(|d| d.1),
            ..Metadata::empty()
        };
        Ok(Some(Sealed {
            timestamp: self.key.timestamp(),
            key,
            path,
            records: self.count,
            invalid,
            positions: self.positions.into_iter().collect(),
            metadata,
        }))
    }
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A spool file could not be created.
    #[error("spool file {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    /// Writing to a spool file failed.
    #[error("writing spool file {}", .0.display())]
    Write(PathBuf, #[source] ArchiveError),
    /// The stream or client name cannot be used in archive names.
    #[error(transparent)]
    Key(triton_core::key::KeyError),
}

/// Removes spool files of `stream` and `client` left in `dir` by processes
/// that no longer run: their records were never checkpointed, so they will
/// be read from Kinesis again, and uploading them would duplicate them.
/// (Run it after [`recover`](super::recover), which may use the copy of an
/// interrupted upload.) Returns the removed paths.
pub fn clean_stale(dir: &Path, stream: &str, client: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for (path, pid) in spool_files(dir, stream, client)? {
        if pid == std::process::id() || process_running(pid) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            // Another store cleaned it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The spool files of `stream` and `client` in `dir`, with the process id
/// in their names.
fn spool_files(dir: &Path, stream: &str, client: &str) -> std::io::Result<Vec<(PathBuf, u32)>> {
    let owner = format!("{stream}-{client}");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(base) = name
            .strip_suffix(".tri.spool")
            .or_else(|| name.strip_suffix(".invalid.spool"))
        else {
            continue;
        };
        // <stream>-<client>-<secs>-<pid>-<n>, parsed from the right: stream
        // names may contain '-', so a prefix match could take another
        // store's files.
        let mut fields = base.rsplitn(4, '-');
        let (Some(_n), Some(pid), Some(_secs), Some(rest)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        match pid.parse::<u32>() {
            Ok(pid) if rest == owner => files.push((entry.path(), pid)),
            _ => {}
        }
    }
    Ok(files)
}

/// A spool file of `stream` and `client` in `dir`, left by a store that is
/// gone (or by this process), of `size` bytes whose SHA-256 is `sha256`:
/// the copy of an archive that a crashed store was uploading.
pub(crate) fn find_spooled(
    dir: &Path,
    stream: &str,
    client: &str,
    size: u64,
    sha256: &str,
) -> Option<PathBuf> {
    let files = spool_files(dir, stream, client).ok()?;
    files.into_iter().find_map(|(path, pid)| {
        let ours_or_gone = pid == std::process::id() || !process_running(pid);
        let sized = std::fs::metadata(&path).is_ok_and(|m| m.len() == size);
        (ours_or_gone && sized && file_sha256(&path).ok()? == sha256).then_some(path)
    })
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(sha256_hex(hasher));
        }
        hasher.update(&buf[..n]);
    }
}

fn process_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_only_this_stores_files_of_dead_processes() {
        let dir = std::env::temp_dir().join(format!("triton-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let dead = 4_194_305; // above Linux's largest pid limit: never running
        let names = [
            format!("a-b-1730246400-{dead}-0.tri.spool"), // ours, dead: removed
            format!("a-b-1730246400-{dead}-0.invalid.spool"), // ours, dead: removed
            format!("a-b-1730246400-{me}-0.tri.spool"),   // ours, alive
            format!("a-b-c-1730246400-{dead}-0.tri.spool"), // stream a-b, client c
            format!("x-b-1730246400-{dead}-0.tri.spool"), // another stream
            "a-b-notes.txt".to_string(),
        ];
        for n in &names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        let mut removed: Vec<String> = clean_stale(&dir, "a", "b")
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(removed, vec![names[1].clone(), names[0].clone()]);
    }
}
