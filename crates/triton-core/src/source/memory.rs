//! [`MemorySource`]: records held in memory, for tests and benchmarks.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Acks, Position, RecordSource, SourceError, SourceRecord};

/// A finite source over records held in memory.
#[derive(Debug, Default)]
pub struct MemorySource {
    records: VecDeque<SourceRecord>,
    acks: Acks,
}

impl MemorySource {
    /// A source delivering `records` in order.
    pub fn new(records: impl IntoIterator<Item = SourceRecord>) -> MemorySource {
        MemorySource {
            records: records.into_iter().collect(),
            acks: Acks::default(),
        }
    }

    /// A source delivering each of `data` from one sub-source named `source`,
    /// at positions 0, 1, 2, ...
    pub fn from_data(source: &str, data: impl IntoIterator<Item = Vec<u8>>) -> MemorySource {
        let source: Arc<str> = source.into();
        MemorySource::new(data.into_iter().enumerate().map(|(i, data)| SourceRecord {
            source: source.clone(),
            position: Position::Index(i as u64),
            data,
            meta: Default::default(),
        }))
    }

    /// The last acknowledged position of each sub-source.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&str, &Position)> {
        self.acks.acknowledged()
    }
}

#[async_trait]
impl RecordSource for MemorySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let n = max.max(1).min(self.records.len());
        if n == 0 {
            return Ok(None);
        }
        let batch: Vec<SourceRecord> = self.records.drain(..n).collect();
        for r in &batch {
            self.acks.delivered(r);
        }
        Ok(Some(batch))
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        self.acks.ack(source, position)
    }

    /// Nothing to do: this source keeps no checkpoints.
    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
