//! [`RecordBatch`]: records known to be valid, back to back.

use serde::Deserializer;

use super::RecordError;

/// Records that were validated, or written by the transcoder, when they
/// were added: a thread that parses or checks records hands a batch to an
/// [`ArchiveWriter`](crate::archive::ArchiveWriter), whose
/// [`write_batch`](crate::archive::ArchiveWriter::write_batch) then copies
/// them without checking them a second time on the writing thread.
#[derive(Clone, Debug, Default)]
pub struct RecordBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> RecordBatch {
        RecordBatch::default()
    }

    /// An empty batch with room for `bytes` bytes of records.
    pub fn with_capacity(bytes: usize) -> RecordBatch {
        RecordBatch {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// Adds a record given as MessagePack bytes, which must be exactly one
    /// map with string keys.
    pub fn push_raw(&mut self, record: &[u8]) -> Result<(), RecordError> {
        super::validate_record(record)?;
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
        Ok(())
    }

    /// Adds the record `d` holds (a map with string keys), written by
    /// [`transcode_record`](super::transcode_record). On error the batch is
    /// as it was.
    pub fn push_transcoded<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        let start = self.bytes.len();
        match super::transcode_record(d, &mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Removes the last record (one the caller's input turned out not to
    /// end with, say).
    pub fn pop(&mut self) {
        if self.ends.pop().is_some() {
            self.bytes.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all records.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Removes every record, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// The records' bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_in_whole_or_not_at_all() {
        let mut b = RecordBatch::new();
        b.push_raw(&[0x81, 0xa1, b'a', 0x01]).unwrap();
        assert!(b.push_raw(&[0x91, 0x01]).is_err());
        b.push_raw(&[0x80]).unwrap();
        let records: Vec<&[u8]> = b.iter().collect();
        assert_eq!(records, [&[0x81, 0xa1, b'a', 0x01][..], &[0x80][..]]);
        b.pop();
        assert_eq!(b.len(), 1);
        assert_eq!(b.bytes_len(), 4);
        b.pop();
        b.pop();
        assert!(b.is_empty());
        assert_eq!(b.bytes_len(), 0);
    }
}
