//! [`RecordReader`]: one record at a time over any [`RecordSource`], as
//! go-triton's `ReadRecord` and `Checkpoint` read a stream.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Position, RecordSource, SourceError, SourceRecord};

/// Hands out the records of a source one at a time and acknowledges them
/// for you: asking for the next record acknowledges the one before (it
/// has been handled), and [`checkpoint`](RecordReader::checkpoint)
/// acknowledges the last one handed out and makes the acknowledgements
/// durable. A consumer that never checkpoints still goes on past splits and
/// merges, whose children wait for their parents' acknowledgements.
///
/// Porting from go-triton: `ReadRecord()` is [`next_record`], `Checkpoint()`
/// is [`checkpoint`].
///
/// [`next_record`]: RecordReader::next_record
/// [`checkpoint`]: RecordReader::checkpoint
#[derive(Debug)]
pub struct RecordReader<S> {
    source: S,
    batch: VecDeque<SourceRecord>,
    /// Where the last record handed out and not yet acknowledged is.
    handed_out: Option<(Arc<str>, Position)>,
    batch_size: usize,
}

impl<S: RecordSource> RecordReader<S> {
    /// Reads `source` in batches of up to 1,000 records.
    pub fn new(source: S) -> RecordReader<S> {
        RecordReader::with_batch_size(source, 1000)
    }

    /// Reads `source` in batches of up to `batch_size` records (at least 1).
    pub fn with_batch_size(source: S, batch_size: usize) -> RecordReader<S> {
        RecordReader {
            source,
            batch: VecDeque::new(),
            handed_out: None,
            batch_size: batch_size.max(1),
        }
    }

    /// The next record, acknowledging the one handed out before; `None` at
    /// the end of a finite source. Cancel-safe as `next_batch` is.
    pub async fn next_record(&mut self) -> Result<Option<SourceRecord>, SourceError> {
        self.ack_handed_out().await?;
        loop {
            if let Some(record) = self.batch.pop_front() {
                self.handed_out = Some((record.source.clone(), record.position.clone()));
                return Ok(Some(record));
            }
            match self.source.next_batch(self.batch_size).await? {
                Some(batch) => self.batch = batch.into(),
                None => return Ok(None),
            }
        }
    }

    /// Acknowledges every record handed out, the last one included, and
    /// commits (saves checkpoints, where the source keeps them).
    pub async fn checkpoint(&mut self) -> Result<(), SourceError> {
        self.ack_handed_out().await?;
        self.source.commit().await
    }

    async fn ack_handed_out(&mut self) -> Result<(), SourceError> {
        // Taken first: an acknowledgement refused once is not retried on
        // every later call.
        if let Some((source, position)) = self.handed_out.take() {
            self.source.ack(&source, &position).await?;
        }
        Ok(())
    }

    /// The source.
    pub fn get_ref(&self) -> &S {
        &self.source
    }

    /// The source back; records fetched but not handed out are dropped
    /// (they were never acknowledged, so a checkpointing source reads them
    /// again after a restart).
    pub fn into_inner(self) -> S {
        self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;

    /// A source that logs acknowledgements and commits.
    struct Logged {
        inner: MemorySource,
        log: Vec<String>,
    }

    #[async_trait::async_trait]
    impl RecordSource for Logged {
        async fn next_batch(
            &mut self,
            max: usize,
        ) -> Result<Option<Vec<SourceRecord>>, SourceError> {
            self.inner.next_batch(max).await
        }
        async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
            self.log.push(format!("ack {source} {position}"));
            self.inner.ack(source, position).await
        }
        async fn commit(&mut self) -> Result<(), SourceError> {
            self.log.push("commit".into());
            Ok(())
        }
    }

    fn record(source: &str, i: u64) -> SourceRecord {
        SourceRecord {
            source: Arc::from(source),
            position: Position::Index(i),
            data: vec![0x80],
            meta: Default::default(),
        }
    }

    #[tokio::test]
    async fn each_record_is_acknowledged_when_the_next_is_asked_for() {
        let records = vec![record("a", 0), record("a", 1), record("b", 0)];
        let source = Logged {
            inner: MemorySource::new(records.clone()),
            log: Vec::new(),
        };
        let mut reader = RecordReader::with_batch_size(source, 2);
        let first = reader.next_record().await.unwrap();
        assert_eq!(first.as_ref(), Some(&records[0]));
        assert!(
            reader.get_ref().log.is_empty(),
            "acknowledged before handled"
        );
        assert_eq!(
            reader.next_record().await.unwrap().as_ref(),
            Some(&records[1])
        );
        reader.checkpoint().await.unwrap();
        assert_eq!(
            reader.next_record().await.unwrap().as_ref(),
            Some(&records[2])
        );
        assert_eq!(reader.next_record().await.unwrap(), None);
        // The end acknowledged the last record; a checkpoint then has
        // nothing more to acknowledge.
        reader.checkpoint().await.unwrap();
        assert_eq!(
            reader.into_inner().log,
            [
                "ack a record 0",
                "ack a record 1",
                "commit",
                "ack b record 0",
                "commit"
            ]
        );
    }
}
