//! [`FileSource`]: records from local `.tri` files, one file after another.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Acks, Position, RecordSource, SourceError, SourceRecord};
use crate::archive::{ArchiveError, ArchiveReader};

/// Reads local archives in the order given. Positions are record indexes
/// within each file, and the source id is the path as given.
///
/// File reads run on Tokio's blocking pool, so the source must be polled
/// inside a Tokio runtime.
#[derive(Debug)]
pub struct FileSource {
    paths: VecDeque<PathBuf>,
    current: Option<Current>,
    pending: Option<SourceError>,
    acks: Acks,
}

#[derive(Debug)]
struct Current {
    id: Arc<str>,
    reader: ArchiveReader<File>,
}

/// What one blocking read produced.
struct Chunk {
    current: Current,
    records: Vec<SourceRecord>,
    error: Option<ArchiveError>,
    done: bool,
}

fn read_some(mut current: Current, max: usize) -> Chunk {
    let mut records = Vec::with_capacity(max.min(1024));
    while records.len() < max {
        let index = current.reader.records_read();
        match current.reader.next_raw() {
            Ok(Some(raw)) => records.push(SourceRecord {
                source: current.id.clone(),
                position: Position::Index(index),
                data: raw.to_vec(),
                meta: Default::default(),
            }),
            Ok(None) => {
                return Chunk {
                    current,
                    records,
                    error: None,
                    done: true,
                }
            }
            Err(e) => {
                return Chunk {
                    current,
                    records,
                    error: Some(e),
                    done: true,
                }
            }
        }
    }
    Chunk {
        current,
        records,
        error: None,
        done: false,
    }
}

impl FileSource {
    /// A source over `paths`, read in order.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> FileSource {
        FileSource {
            paths: paths.into_iter().map(Into::into).collect(),
            current: None,
            pending: None,
            acks: Acks::default(),
        }
    }

    /// The last acknowledged position of each file.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&str, &Position)> {
        self.acks.acknowledged()
    }

    async fn open(path: PathBuf) -> Result<Current, SourceError> {
        let id: Arc<str> = path.display().to_string().into();
        let what = id.to_string();
        let opened = tokio::task::spawn_blocking(move || File::open(&path)).await;
        match opened {
            Ok(Ok(file)) => Ok(Current {
                id,
                reader: ArchiveReader::new(file),
            }),
            Ok(Err(e)) => Err(SourceError::unavailable(what, e)),
            Err(e) => Err(SourceError::unavailable(
                format!("{what}: reader task failed"),
                e,
            )),
        }
    }
}

fn to_source_error(id: &str, e: ArchiveError) -> SourceError {
    if e.is_corrupt() {
        SourceError::Corrupt {
            source_id: id.to_string(),
            position: Position::Index(e.record),
            detail: e.to_string(),
        }
    } else {
        SourceError::unavailable(id, e)
    }
}

#[async_trait]
impl RecordSource for FileSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let max = max.max(1);
        loop {
            if let Some(e) = self.pending.take() {
                return Err(e);
            }
            let current = match self.current.take() {
                Some(c) => c,
                None => match self.paths.pop_front() {
                    Some(path) => Self::open(path).await?,
                    None => return Ok(None),
                },
            };
            let id = current.id.clone();
            let chunk = tokio::task::spawn_blocking(move || read_some(current, max))
                .await
                .map_err(|e| SourceError::unavailable(format!("{id}: reader task failed"), e))?;
            if !chunk.done {
                self.current = Some(chunk.current);
            }
            if let Some(e) = chunk.error {
                self.pending = Some(to_source_error(&id, e));
            }
            if let Some(last) = chunk.records.last() {
                self.acks.delivered(last);
                return Ok(Some(chunk.records));
            }
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        self.acks.ack(source, position)
    }

    /// Nothing to do: this source keeps no checkpoints.
    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
