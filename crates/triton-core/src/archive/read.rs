//! [`ArchiveReader`]: streaming records out of any `std::io::Read`.

use std::io::{self, BufReader, Read};

use serde::de::DeserializeOwned;

use super::ahead::ReadAhead;
use super::decoder::Decoder;
use super::error::{ArchiveError, ArchiveErrorKind};
use super::frame;
use crate::msgpack::RecordRef;
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
    input: Input<R>,
    decoder: Decoder,
    /// The input ended, cleanly or not: nothing more is read from it, but
    /// it is kept for [`ArchiveReader::into_inner`].
    ended: bool,
}

/// Where the decoder's chunks come from.
#[derive(Debug)]
enum Input<R> {
    /// Read and decompressed on the caller's thread.
    Direct {
        inner: BufReader<R>,
        payload: Vec<u8>,
    },
    /// Read and decompressed ahead on a helper thread, which owns the
    /// inner reader.
    Ahead(ReadAhead),
}

/// Read buffer size: two full chunks, so most chunks need one `read` call.
pub(super) const BUFFER: usize = 128 * 1024;

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

/// One step of reading chunks from a file.
pub(super) enum ChunkRead {
    /// A whole chunk whose payload is in the first `len` bytes of the buffer.
    Chunk { chunk_type: u8, len: usize },
    /// The input ended; `unconsumed` holds a partial chunk, if any.
    End { unconsumed: Vec<u8> },
}

/// Reads the next chunk's header and payload; the payload goes in `payload`.
pub(super) fn read_chunk<R: Read>(r: &mut R, payload: &mut Vec<u8>) -> io::Result<ChunkRead> {
    let mut h = [0u8; frame::HEADER_LEN];
    let got = read_full(r, &mut h)?;
    if got < h.len() {
        let unconsumed = h[..got].to_vec();
        return Ok(ChunkRead::End { unconsumed });
    }
    let (chunk_type, len) = frame::parse_header(h);
    if payload.len() < len {
        payload.resize(len, 0);
    }
    let got = read_full(r, &mut payload[..len])?;
    if got < len {
        let mut unconsumed = h.to_vec();
        unconsumed.extend_from_slice(&payload[..got]);
        return Ok(ChunkRead::End { unconsumed });
    }
    Ok(ChunkRead::Chunk { chunk_type, len })
}

impl<R: Read> ArchiveReader<R> {
    /// A reader over `inner`, which it buffers itself.
    pub fn new(inner: R) -> ArchiveReader<R> {
        ArchiveReader {
            input: Input::Direct {
                inner: BufReader::with_capacity(BUFFER, inner),
                payload: Vec::new(),
            },
            decoder: Decoder::new(),
            ended: false,
        }
    }

    /// A reader that reads, checks and decompresses chunks on a helper
    /// thread, a few chunks ahead of the caller, which then only turns data
    /// into records. Worth it for whole files on a machine with a spare
    /// core (`triton decode` uses it); results and errors are the same as
    /// with [`ArchiveReader::new`].
    ///
    /// Fails only if the thread cannot be started.
    pub fn with_read_ahead(inner: R) -> io::Result<ArchiveReader<R>>
    where
        R: Send + 'static,
    {
        Ok(ArchiveReader {
            input: Input::Ahead(ReadAhead::spawn(inner)?),
            decoder: Decoder::new(),
            ended: false,
        })
    }

    /// Sets the largest record accepted (default
    /// [`DEFAULT_MAX_RECORD_SIZE`](crate::msgpack::DEFAULT_MAX_RECORD_SIZE)).
    pub fn with_max_record_size(mut self, max: usize) -> ArchiveReader<R> {
        self.decoder.set_max_record_size(max);
        self
    }

    /// Moves the next chunk into the decoder; false at the end of input.
    fn fill(&mut self) -> Result<bool, ArchiveError> {
        if self.ended {
            return Ok(false);
        }
        let more = match &mut self.input {
            Input::Direct { inner, payload } => match read_chunk(inner, payload) {
                Ok(ChunkRead::Chunk { chunk_type, len }) => self
                    .decoder
                    .chunk(chunk_type, &payload[..len])
                    .map(|()| true),
                Ok(ChunkRead::End { unconsumed }) => {
                    self.decoder.finish(&unconsumed).map(|()| false)
                }
                Err(e) => {
                    let at = self.decoder.offset();
                    Err(self.decoder.fail_at(at, ArchiveErrorKind::Io(e)))
                }
            },
            // After its last block the helper thread has already ended.
            Input::Ahead(ahead) => ahead.fill(&mut self.decoder),
        };
        self.ended = !matches!(more, Ok(true));
        more
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

    /// The next record as a view over its bytes, or `None` at the end: the
    /// cost of [`next_raw`](ArchiveReader::next_raw), with fields decoded
    /// only when read ([`RecordRef::get`]) and strings borrowed.
    pub fn next_ref(&mut self) -> Result<Option<RecordRef<'_>>, ArchiveError> {
        Ok(self.next_raw()?.map(RecordRef::new_unchecked))
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

    /// The next record read into any serde type, or `None` at the end: in
    /// one pass over the record's bytes, without building values (see
    /// [`Decoder::next_typed`](super::Decoder::next_typed), which also lends
    /// borrowed strings: a reader that refills its buffer between records
    /// cannot hand out borrows of it). A record that does not fit `T` is an
    /// error, and the next call goes on with the record after it.
    pub fn next_typed<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ArchiveError> {
        loop {
            if let Some(v) = self.decoder.next_typed()? {
                return Ok(Some(v));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
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

    /// The inner reader, or `None` for a reader made by
    /// [`ArchiveReader::with_read_ahead`], whose helper thread owns it.
    ///
    /// The reader reads ahead of the records it has returned (a buffer of
    /// up to 128 KiB and the chunk being decoded), so the inner reader's
    /// position says how much was read, not how much was decoded.
    ///
    /// ```
    /// use std::io::Cursor;
    /// use triton_core::archive::{ArchiveReader, ArchiveWriter};
    /// use triton_core::value::Record;
    ///
    /// let mut w = ArchiveWriter::new(Vec::new());
    /// for n in 0..3u64 {
    ///     w.write_record(&[("n", n)].into_iter().collect::<Record>())?;
    /// }
    /// let bytes = w.finish()?;
    ///
    /// let mut r = ArchiveReader::new(Cursor::new(&bytes[..]));
    /// assert!(r.next_record()?.is_some());
    /// // One record returned, but the whole small file was read already.
    /// assert_eq!(r.get_ref().map(Cursor::position), Some(bytes.len() as u64));
    /// # Ok::<(), triton_core::archive::ArchiveError>(())
    /// ```
    pub fn get_ref(&self) -> Option<&R> {
        match &self.input {
            Input::Direct { inner, .. } => Some(inner.get_ref()),
            Input::Ahead(_) => None,
        }
    }

    /// The inner reader, as [`ArchiveReader::get_ref`] gives it. Reading
    /// from it or seeking it while this reader is still used makes this
    /// reader skip or misread data: its buffer no longer follows the input.
    pub fn get_mut(&mut self) -> Option<&mut R> {
        match &mut self.input {
            Input::Direct { inner, .. } => Some(inner.get_mut()),
            Input::Ahead(_) => None,
        }
    }

    /// The inner reader, or `None` for a reader made by
    /// [`ArchiveReader::with_read_ahead`]. Input read but not yet decoded
    /// (see [`ArchiveReader::get_ref`]) is lost with this reader; none is
    /// left once the reader has returned the end of the archive.
    ///
    /// ```
    /// use std::io::Cursor;
    /// use triton_core::archive::{ArchiveReader, ArchiveWriter};
    ///
    /// let bytes = ArchiveWriter::new(Vec::new()).finish()?;
    /// let mut r = ArchiveReader::new(Cursor::new(bytes.clone()));
    /// assert!(r.next_record()?.is_none());
    /// let cursor = r.into_inner();
    /// assert_eq!(cursor.map(Cursor::into_inner), Some(bytes));
    /// # Ok::<(), triton_core::archive::ArchiveError>(())
    /// ```
    pub fn into_inner(self) -> Option<R> {
        match self.input {
            Input::Direct { inner, .. } => Some(inner.into_inner()),
            Input::Ahead(_) => None,
        }
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::archive::ArchiveWriter;
    use crate::msgpack::RecordDefect;
    use crate::value::Value;

    fn archive(records: u64) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new());
        for n in 0..records {
            w.write_record(&[("n", n)].into_iter().collect::<Record>())
                .unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn the_inner_reader_stays_reachable_through_the_end() {
        let bytes = archive(3);
        let mut r = ArchiveReader::new(Cursor::new(bytes.clone()));
        assert_eq!(r.get_ref().map(Cursor::position), Some(0));
        while r.next_record().unwrap().is_some() {}
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(r.get_ref().map(Cursor::position), Some(bytes.len() as u64));
        // Rewinding the inner reader of an ended reader reads nothing more.
        r.get_mut().unwrap().set_position(0);
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(r.into_inner().map(Cursor::into_inner), Some(bytes));
    }

    #[test]
    fn the_inner_reader_survives_an_error() {
        let mut bytes = archive(3);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let mut r = ArchiveReader::new(Cursor::new(bytes.clone()));
        let end = loop {
            match r.next_record() {
                Ok(Some(_)) => {}
                other => break other,
            }
        };
        assert!(end.is_err(), "{end:?}");
        assert_eq!(r.into_inner().map(Cursor::into_inner), Some(bytes));
    }

    #[test]
    fn a_read_ahead_reader_does_not_hold_its_inner_reader() {
        let bytes = archive(2);
        let mut r = ArchiveReader::with_read_ahead(Cursor::new(bytes)).unwrap();
        assert!(r.get_ref().is_none());
        assert!(r.get_mut().is_none());
        assert_eq!(r.records().filter_map(Result::ok).count(), 2);
        let r = ArchiveReader::with_read_ahead(Cursor::new(archive(1))).unwrap();
        assert!(r.into_inner().is_none());
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Event {
        n: u64,
        pad: String,
    }

    /// Records large enough that many of them are cut by chunk boundaries.
    fn padded_archive(records: u64) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new());
        for n in 0..records {
            let mut rec = Record::new();
            rec.push("pad", "x".repeat(n as usize % 700));
            rec.push("n", n);
            w.write_record(&rec).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn typed_records_cross_chunk_boundaries() {
        let bytes = padded_archive(3000);
        let mut r = ArchiveReader::new(Cursor::new(bytes));
        let mut n = 0;
        while let Some(e) = r.next_typed::<Event>().unwrap() {
            assert_eq!(
                e,
                Event {
                    n,
                    pad: "x".repeat(n as usize % 700)
                }
            );
            n += 1;
        }
        assert_eq!(n, 3000);
        assert_eq!(r.records_read(), 3000);
    }

    #[test]
    fn a_record_that_does_not_fit_is_an_error_and_the_next_one_reads() {
        let mut w = ArchiveWriter::new(Vec::new());
        for n in 0..3u64 {
            let mut rec = Record::new();
            rec.push(
                "pad",
                if n == 1 {
                    Value::from(5i64)
                } else {
                    Value::from("p")
                },
            );
            rec.push("n", n);
            w.write_record(&rec).unwrap();
        }
        let mut r = ArchiveReader::new(Cursor::new(w.finish().unwrap()));
        assert_eq!(r.next_typed::<Event>().unwrap().map(|e| e.n), Some(0));
        let e = r.next_typed::<Event>().unwrap_err();
        assert_eq!(e.record, 1, "{e}");
        assert!(
            matches!(
                e.kind,
                ArchiveErrorKind::Record {
                    defect: RecordDefect::Typed { .. },
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(r.next_typed::<Event>().unwrap().map(|e| e.n), Some(2));
        assert_eq!(r.next_typed::<Event>().unwrap(), None);
    }

    #[test]
    fn the_decoder_lends_strings_across_chunk_boundaries() {
        #[derive(serde::Deserialize)]
        struct Borrowed<'a> {
            n: u64,
            pad: &'a str,
        }
        let bytes = padded_archive(2000);
        let mut d = crate::archive::Decoder::new();
        let (mut at, mut n) = (0, 0u64);
        loop {
            // One chunk at a time: a record a chunk boundary cuts waits for the next.
            let used = d.feed(&bytes[at..]).unwrap();
            at += used;
            while let Some(b) = d.next_typed::<Borrowed<'_>>().unwrap() {
                assert_eq!((b.n, b.pad.len()), (n, n as usize % 700));
                n += 1;
            }
            if used == 0 {
                break;
            }
        }
        d.finish(&bytes[at..]).unwrap();
        assert_eq!(n, 2000);
    }
}
