//! A partition's records into Parquet files of a target size: rows are
//! gathered into row groups, and a file is closed once it reaches the
//! target, so memory stays at one row group and no file grows past the
//! target by more than one row group.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use triton_core::value::Record;

use crate::infer::Schema;
use crate::lake::{part_name, FileSource, HashingWriter, OutputFile};
use crate::write::{Codec, ParquetWriter, WriteError};

/// A closed file, in the local directory, ready to be moved to its
/// partition.
#[derive(Debug)]
pub struct Part {
    /// Where it was written.
    pub path: PathBuf,
    /// Its description for the manifest (its name in the partition is
    /// `file.name`).
    pub file: OutputFile,
}

struct Open {
    writer: ParquetWriter<HashingWriter<BufWriter<File>>>,
    path: PathBuf,
    name: String,
    sources: Vec<FileSource>,
}

/// Appends records `first_index..first_index + records` of `archive` to
/// `runs`, lengthening the last run when they follow it.
fn extend_runs(runs: &mut Vec<FileSource>, archive: &str, first_index: u64, records: u64) {
    match runs.last_mut() {
        Some(last) if last.archive == archive && last.first_index + last.records == first_index => {
            last.records += records;
        }
        _ => runs.push(FileSource {
            archive: archive.to_owned(),
            first_index,
            records,
        }),
    }
}

/// Writes a partition's records into `part-00000.parquet`,
/// `part-00001.parquet`, ... in a local directory.
pub struct PartWriter {
    dir: PathBuf,
    schema: Schema,
    codec: Codec,
    row_group: usize,
    target: u64,
    pending: Vec<Record>,
    /// Where the pending rows come from.
    pending_sources: Vec<FileSource>,
    open: Option<Open>,
    next: usize,
    strict: bool,
}

impl PartWriter {
    /// Files of `schema` in `dir` (which must exist), closed at `target`
    /// bytes, of row groups of `row_group` records.
    pub fn new(
        dir: &Path,
        schema: Schema,
        codec: Codec,
        row_group: usize,
        target: u64,
    ) -> PartWriter {
        PartWriter {
            dir: dir.to_owned(),
            schema,
            codec,
            row_group: row_group.max(1),
            target: target.max(1),
            pending: Vec::new(),
            pending_sources: Vec::new(),
            open: None,
            next: 0,
            strict: false,
        }
    }

    /// Refuse records with a field the schema has no column for (for a
    /// schema given by hand).
    pub fn reject_unknown_fields(mut self, strict: bool) -> PartWriter {
        self.strict = strict;
        self
    }

    /// Adds record `index` of archive `archive`; gives back a file when
    /// this record's row group closed one.
    pub fn push(
        &mut self,
        record: Record,
        archive: &str,
        index: u64,
    ) -> Result<Option<Part>, WriteError> {
        extend_runs(&mut self.pending_sources, archive, index, 1);
        self.pending.push(record);
        if self.pending.len() < self.row_group {
            return Ok(None);
        }
        self.write_row_group()?;
        match &self.open {
            Some(open) if open.writer.bytes_written() >= self.target => self.close(),
            _ => Ok(None),
        }
    }

    /// Writes what is pending and closes the last file, if any record was
    /// pushed since the last one closed.
    pub fn finish(mut self) -> Result<Option<Part>, WriteError> {
        if !self.pending.is_empty() {
            self.write_row_group()?;
        }
        self.close()
    }

    fn write_row_group(&mut self) -> Result<(), WriteError> {
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                let name = part_name(self.next);
                self.next += 1;
                let path = self.dir.join(&name);
                let file = File::create(&path).map_err(|source| WriteError::Io {
                    path: path.clone(),
                    source,
                })?;
                let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
                self.open.insert(Open {
                    writer: ParquetWriter::new(out, self.schema.clone(), self.codec)?
                        .reject_unknown_fields(self.strict),
                    path,
                    name,
                    sources: Vec::new(),
                })
            }
        };
        let sources = &self.pending_sources;
        open.writer.write(&self.pending).map_err(|e| {
            e.locate(|mut i| {
                for s in sources {
                    if i < s.records {
                        return (s.archive.clone(), s.first_index + i);
                    }
                    i -= s.records;
                }
                (String::new(), i)
            })
        })?;
        for s in self.pending_sources.drain(..) {
            extend_runs(&mut open.sources, &s.archive, s.first_index, s.records);
        }
        self.pending.clear();
        Ok(())
    }

    fn close(&mut self) -> Result<Option<Part>, WriteError> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let io = |source| WriteError::Io {
            path: open.path.clone(),
            source,
        };
        // No fsync: this file is a step on the way, the store's write is the
        // copy that must last.
        let (out, sha256, size) = open.writer.finish()?.finish();
        out.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(Some(Part {
            path: open.path,
            file: OutputFile {
                name: open.name,
                size,
                sha256,
                records: open.sources.iter().map(|s| s.records).sum(),
                sources: open.sources,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::Inference;

    fn records(n: u64) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let mut r = Record::new();
                r.push("i", i);
                r.push(
                    "text",
                    format!("record number {i} with some text to fill pages"),
                );
                r
            })
            .collect()
    }

    #[test]
    fn files_close_at_the_target_and_say_which_records_they_hold() {
        let dir = std::env::temp_dir().join(format!("triton-parts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let all = records(5_000);
        let mut inference = Inference::new();
        all.iter().for_each(|r| inference.add(r));
        let mut writer = PartWriter::new(&dir, inference.schema(), Codec::Snappy, 500, 8_000);
        let mut parts = Vec::new();
        for (i, r) in all.into_iter().enumerate() {
            // Two archives: the first 3,000 records, then the rest.
            let (archive, index) = match i < 3_000 {
                true => ("a.tri", i as u64),
                false => ("b.tri", i as u64 - 3_000),
            };
            parts.extend(writer.push(r, archive, index).unwrap());
        }
        parts.extend(writer.finish().unwrap());
        assert!(parts.len() > 1, "{} parts", parts.len());
        let names: Vec<&str> = parts.iter().map(|p| p.file.name.as_str()).collect();
        let expected: Vec<String> = (0..parts.len()).map(part_name).collect();
        assert_eq!(names, expected);
        let mut next = (String::from("a.tri"), 0u64);
        let mut total = 0;
        for p in &parts {
            let bytes = std::fs::read(&p.path).unwrap();
            assert_eq!(bytes.len() as u64, p.file.size);
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            sha2::Digest::update(&mut hasher, &bytes);
            assert_eq!(crate::lake::hex(hasher), p.file.sha256);
            let rows: u64 = p.file.sources.iter().map(|s| s.records).sum();
            assert_eq!(rows, p.file.records);
            for s in &p.file.sources {
                if s.archive != next.0 {
                    assert_eq!((next.0.as_str(), next.1), ("a.tri", 3_000));
                    next = (s.archive.clone(), 0);
                }
                assert_eq!(s.first_index, next.1, "{:?}", p.file.sources);
                next.1 += s.records;
            }
            total += p.file.records;
        }
        assert_eq!(total, 5_000);
        assert_eq!(next, ("b.tri".to_string(), 2_000));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_pushed_is_no_file() {
        let dir = std::env::temp_dir();
        let writer = PartWriter::new(&dir, Schema { fields: vec![] }, Codec::Zstd, 10, 10);
        assert!(writer.finish().unwrap().is_none());
    }
}
