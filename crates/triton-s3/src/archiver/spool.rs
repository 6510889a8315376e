//! The archive being filled: a `.tri` file in the spool directory, and
//! beside it, when invalid records arrive, a dead-letter archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use triton_core::archive::{frame, ArchiveError, ArchiveErrorKind, ArchiveWriter};
use triton_core::key::ArchiveKey;
use triton_core::source::{Position, SourceRecord};
use triton_core::value::{Record, Str, Timestamp, Value};

/// Top-level prefix of dead-letter archives: readers of the normal layout
/// list `<YYYYMMDD>/…` and never see it.
pub const DEAD_LETTER_PREFIX: &str = "_invalid/";

/// Suffix of spool files; [`clean_stale`] recognises them by it.
const SPOOL_SUFFIX: &str = ".spool";

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One archive file being written, with its own statistics.
struct SpoolFile {
    path: PathBuf,
    writer: ArchiveWriter<BufWriter<File>>,
}

impl SpoolFile {
    fn create(path: PathBuf) -> std::io::Result<SpoolFile> {
        let file = File::create(&path)?;
        Ok(SpoolFile {
            writer: ArchiveWriter::new(BufWriter::with_capacity(1 << 20, file)),
            path,
        })
    }

    /// Flushes and closes the file.
    fn finish(self) -> Result<(), ArchiveError> {
        let mut inner = self.writer.finish()?;
        inner.flush().map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> ArchiveError {
    ArchiveError {
        offset: 0,
        record: 0,
        kind: ArchiveErrorKind::Io(e),
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
    pub(crate) count: u64,
    pub(crate) invalid_count: u64,
}

/// A sealed archive, ready to upload.
#[derive(Debug)]
pub struct Sealed {
    /// Object key of the archive.
    pub key: String,
    /// The Unix seconds in the key.
    pub timestamp: u64,
    /// The spool file holding it.
    pub path: PathBuf,
    /// Records in it.
    pub records: u64,
    /// The dead-letter archive (key, spool file, records), if any record
    /// was invalid.
    pub invalid: Option<(String, PathBuf, u64)>,
    /// Per shard, the last position it contains.
    pub positions: Vec<(Arc<str>, Position)>,
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
            count: 0,
            invalid_count: 0,
        })
    }

    /// The archive's size so far: chunks written, plus the records not yet
    /// compressed counted at full size (an upper bound; blocks are exactly
    /// `MAX_BLOCK` bytes of records, so what is buffered is the rest).
    pub(crate) fn size(&self) -> u64 {
        let stats = self.records.writer.stats();
        stats.bytes_out + stats.bytes_in % frame::MAX_BLOCK as u64
    }

    /// Appends a record as it is if it is one MessagePack map (validated,
    /// never decoded), or else keeps it in the dead-letter archive; returns
    /// whether it was valid.
    pub(crate) fn write(&mut self, r: &SourceRecord, now: SystemTime) -> Result<bool, SpoolError> {
        match self.records.writer.write_raw(&r.data) {
            Ok(()) => {
                self.count += 1;
                self.positions.insert(r.source.clone(), r.position.clone());
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
            Position::Sequence(s) => s.to_string(),
            Position::Index(i) => i.to_string(),
        };
        record.push("sequence_number", position);
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
        self.positions.insert(r.source.clone(), r.position.clone());
        Ok(())
    }

    /// Finishes the files; `None` for an archive without records (its file
    /// is removed).
    pub(crate) fn seal(self) -> Result<Option<Sealed>, SpoolError> {
        let key = self.key.to_string();
        let path = self.records.path.clone();
        self.records
            .finish()
            .map_err(|e| SpoolError::Write(path.clone(), e))?;
        let invalid = match self.invalid {
            Some(file) => {
                let p = file.path.clone();
                file.finish().map_err(|e| SpoolError::Write(p.clone(), e))?;
                Some((format!("{DEAD_LETTER_PREFIX}{key}"), p, self.invalid_count))
            }
            None => None,
        };
        if self.count == 0 && invalid.is_none() {
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(Sealed {
            timestamp: self.key.timestamp(),
            key,
            path,
            records: self.count,
            invalid,
            positions: self.positions.into_iter().collect(),
        }))
    }
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A spool file could not be created.
    #[error("spool file {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    /// Writing to a spool file failed.
    #[error("writing spool file {path}: {error}", path = .0.display(), error = .1)]
    Write(PathBuf, ArchiveError),
    /// The stream or client name cannot be used in archive names.
    #[error(transparent)]
    Key(triton_core::key::KeyError),
}

/// Removes spool files of `stream` and `client` left in `dir` by processes
/// that no longer run: their records were never checkpointed, so they will
/// be read from Kinesis again, and uploading them would duplicate them.
/// Returns the removed paths.
pub fn clean_stale(dir: &Path, stream: &str, client: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{stream}-{client}-");
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(SPOOL_SUFFIX))
        else {
            continue;
        };
        // <secs>-<pid>-<n>.tri or .invalid
        let fields: Vec<&str> = rest.split(['-', '.']).collect();
        let Some(pid) = fields.get(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || process_running(pid) {
            continue;
        }
        std::fs::remove_file(entry.path())?;
        removed.push(entry.path());
    }
    Ok(removed)
}

fn process_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
