//! [`ArchiveReader`]: streaming records out of any `std::io::Read`.

use std::io::{self, BufReader, Read};

use serde::de::DeserializeOwned;

use super::decoder::Decoder;
use super::error::{ArchiveError, ArchiveErrorKind};
use super::frame;
use crate::msgpack::RecordDefect;
use crate::value::Record;

/// Reads records from a `.tri` archive, one chunk at a time: memory use is
/// bounded by the largest record, never by the file.
///
/// ```
/// use triton_core::archive::{ArchiveReader, ArchiveWriter};
/// use triton_core::value::Record;
///
/// let mut w = ArchiveWriter::new(Vec::new());
/// w.write_record(&[("type", "click")].into_iter().collect::<Record>())?;
/// let bytes = w.finish()?;
///
/// let mut r = ArchiveReader::new(&bytes[..]);
/// while let Some(rec) = r.next_record()? {
///     assert_eq!(rec.get("type").and_then(|v| v.as_str()), Some("click"));
/// }
/// # Ok::<(), triton_core::archive::ArchiveError>(())
/// ```
#[derive(Debug)]
pub struct ArchiveReader<R> {
    inner: BufReader<R>,
    decoder: Decoder,
    payload: Vec<u8>,
    at_end: bool,
}

/// Read buffer size: two full chunks, so most chunks need one `read` call.
const BUFFER: usize = 128 * 1024;

/// Reads until `buf` is full or the input ends; returns bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> ArchiveReader<R> {
    /// A reader over `inner`, which it buffers itself.
    pub fn new(inner: R) -> ArchiveReader<R> {
        ArchiveReader {
            inner: BufReader::with_capacity(BUFFER, inner),
            decoder: Decoder::new(),
            payload: Vec::new(),
            at_end: false,
        }
    }

    /// Sets the largest record accepted (default
    /// [`DEFAULT_MAX_RECORD_SIZE`](crate::msgpack::DEFAULT_MAX_RECORD_SIZE)).
    pub fn with_max_record_size(mut self, max: usize) -> ArchiveReader<R> {
        self.decoder.set_max_record_size(max);
        self
    }

    fn io_error(&self, e: io::Error) -> ArchiveError {
        ArchiveError {
            offset: self.decoder.offset(),
            record: self.decoder.records(),
            kind: ArchiveErrorKind::Io(e),
        }
    }

    /// Reads the next chunk into the decoder; false at the end of input.
    fn fill(&mut self) -> Result<bool, ArchiveError> {
        if self.at_end {
            return Ok(false);
        }
        let mut h = [0u8; frame::HEADER_LEN];
        let got = read_full(&mut self.inner, &mut h).map_err(|e| self.io_error(e))?;
        if got < h.len() {
            self.at_end = true;
            self.decoder.finish(&h[..got])?;
            return Ok(false);
        }
        let (ty, len) = frame::parse_header(h);
        if self.payload.len() < len {
            self.payload.resize(len, 0);
        }
        let got =
            read_full(&mut self.inner, &mut self.payload[..len]).map_err(|e| self.io_error(e))?;
        if got < len {
            self.at_end = true;
            let mut partial = h.to_vec();
            partial.extend_from_slice(&self.payload[..got]);
            self.decoder.finish(&partial)?;
            return Ok(false);
        }
        self.decoder.chunk(ty, &self.payload[..len])?;
        Ok(true)
    }

    /// The next record's MessagePack bytes (one map with string keys,
    /// validated without building values), or `None` at the end.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>, ArchiveError> {
        loop {
            // A range, not a slice, so the borrow does not outlive the loop.
            if let Some(r) = self.decoder.next_range()? {
                return Ok(Some(self.decoder.slice(r)));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The next record decoded into values, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, ArchiveError> {
        loop {
            if let Some(rec) = self.decoder.next_record()? {
                return Ok(Some(rec));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The next record read into any serde type, or `None` at the end.
    pub fn next_typed<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ArchiveError> {
        let offset = self.decoder.offset();
        let record = self.decoder.records();
        let Some(raw) = self.next_raw()? else {
            return Ok(None);
        };
        rmp_serde::from_slice(raw)
            .map(Some)
            .map_err(|e| ArchiveError {
                offset,
                record,
                kind: ArchiveErrorKind::Record {
                    data_offset: 0,
                    defect: RecordDefect::Typed {
                        message: e.to_string(),
                    },
                },
            })
    }

    /// Records delivered so far.
    pub fn records_read(&self) -> u64 {
        self.decoder.records()
    }

    /// File bytes consumed so far (the offset of the next chunk).
    pub fn offset(&self) -> u64 {
        self.decoder.offset()
    }

    /// An iterator over the records; it ends after the first error.
    pub fn records(self) -> Records<R> {
        Records { reader: self }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// The underlying reader. Reading from it directly desynchronises the
    /// archive reader.
    pub fn get_mut(&mut self) -> &mut R {
        self.inner.get_mut()
    }

    /// The underlying reader; input buffered but not yet decoded is lost.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }
}

/// Iterator over an archive's records (see [`ArchiveReader::records`]).
#[derive(Debug)]
pub struct Records<R> {
    reader: ArchiveReader<R>,
}

impl<R: Read> Iterator for Records<R> {
    type Item = Result<Record, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next_record().transpose()
    }
}
