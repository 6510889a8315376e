//! Local `.tri` files into one Parquet file: a first pass infers the
//! schema from every record (unless one is given), a second writes row
//! groups of a bounded number of records, so memory stays at one row group
//! whatever the files' size.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use triton_core::archive::{ArchiveError, ArchiveReader};
use triton_core::value::Record;

use crate::infer::{Inference, Schema};
use crate::write::{Codec, ParquetWriter, WriteError};

/// How files are converted.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Page compression.
    pub codec: Codec,
    /// Records per row group (default 65,536).
    pub row_group: usize,
    /// The schema to write; `None` infers it from the records.
    pub schema: Option<Schema>,
}

impl Default for ConvertOptions {
    fn default() -> ConvertOptions {
        ConvertOptions {
            codec: Codec::Snappy,
            row_group: 65_536,
            schema: None,
        }
    }
}

/// A file that could not be read to its end: its records before the
/// damage are converted, the rest of it is not.
#[derive(Debug)]
pub struct Damaged {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and where.
    pub error: ArchiveError,
}

/// What a conversion did.
#[derive(Debug)]
pub struct Converted {
    /// The schema written.
    pub schema: Schema,
    /// Records written.
    pub records: u64,
    /// Files that could not be read to their end.
    pub damaged: Vec<Damaged>,
}

/// Why files could not be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A file could not be opened.
    #[error("{}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the Parquet file failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Reads every record of `paths`, in order, handing each to `each`;
/// returns the files that are damaged (their records before the damage
/// were handed over).
fn read_all(
    paths: &[PathBuf],
    mut each: impl FnMut(Record, usize) -> Result<(), ConvertError>,
) -> Result<Vec<Damaged>, ConvertError> {
    let mut damaged = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        let file = File::open(path).map_err(|source| ConvertError::Open {
            path: path.clone(),
            source,
        })?;
        let mut reader = ArchiveReader::new(std::io::BufReader::with_capacity(1 << 20, file));
        loop {
            match reader.next_record() {
                Ok(Some(r)) => each(r, n)?,
                Ok(None) => break,
                Err(error) => {
                    damaged.push(Damaged {
                        path: path.clone(),
                        error,
                    });
                    break;
                }
            }
        }
    }
    Ok(damaged)
}

/// The schema of every record of `paths` (and the damaged files).
pub fn infer_files(paths: &[PathBuf]) -> Result<(Schema, Vec<Damaged>), ConvertError> {
    let mut inference = Inference::new();
    let damaged = read_all(paths, |r, _| {
        inference.add(&r);
        Ok(())
    })?;
    Ok((inference.schema(), damaged))
}

/// Converts `paths` into one Parquet file written to `out`.
pub fn convert_files<W: Write + Send>(
    paths: &[PathBuf],
    out: W,
    options: &ConvertOptions,
) -> Result<(W, Converted), ConvertError> {
    let schema = match &options.schema {
        Some(s) => s.clone(),
        None => infer_files(paths)?.0,
    };
    let mut writer = ParquetWriter::new(out, schema.clone(), options.codec)?
        .reject_unknown_fields(options.schema.is_some());
    let row_group = options.row_group.max(1);
    let mut pending = Vec::with_capacity(row_group.min(65_536));
    // Where each pending record comes from: (file, index in it).
    let mut at: Vec<(usize, u64)> = Vec::new();
    let mut next = (usize::MAX, 0u64);
    let mut records = 0u64;
    let mut flush = |pending: &mut Vec<Record>, at: &mut Vec<(usize, u64)>| {
        writer.write(pending).map_err(|e| {
            e.locate(|i| match at.get(i as usize) {
                Some(&(file, index)) => (paths[file].display().to_string(), index),
                None => (String::new(), i),
            })
        })?;
        records += pending.len() as u64;
        pending.clear();
        at.clear();
        Ok::<(), WriteError>(())
    };
    let damaged = read_all(paths, |r, file| {
        if next.0 != file {
            next = (file, 0);
        }
        at.push(next);
        next.1 += 1;
        pending.push(r);
        if pending.len() >= row_group {
            flush(&mut pending, &mut at)?;
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        flush(&mut pending, &mut at)?;
    }
    let out = writer.finish()?;
    Ok((
        out,
        Converted {
            schema,
            records,
            damaged,
        },
    ))
}

/// Converts `paths` into the Parquet file `dest`, written beside it under
/// a temporary name and renamed into place, so that a failed conversion
/// leaves no partial file.
pub fn convert_to_path(
    paths: &[PathBuf],
    dest: &Path,
    options: &ConvertOptions,
) -> Result<Converted, ConvertError> {
    let name = dest.file_name().map_or_else(
        || "out.parquet".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let io = |source, path: &Path| {
        ConvertError::Write(WriteError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let file = File::create(&tmp).map_err(|e| io(e, &tmp))?;
    let result = convert_files(paths, std::io::BufWriter::new(file), options);
    let (out, converted) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let finished = out
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, dest));
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e, dest));
    }
    Ok(converted)
}
