//! The I/O-free `.tri` decoder.
//!
//! [`Decoder`] turns file bytes into records without doing any I/O, so the
//! same code serves [`ArchiveReader`](super::ArchiveReader) over `std::io::Read`
//! and async callers that receive bytes from a network body.
//!
//! ```text
//!  file bytes ──feed()──► chunks ──verify CRC, decompress──► data buffer
//!                                                              │
//!           records ◄──next_raw()/next_record()── scan one map ┘
//! ```
//!
//! | state of the data buffer         | `next_raw()`         | at end of file (`finish`) |
//! |----------------------------------|----------------------|---------------------------|
//! | empty                            | `Ok(None)`           | clean end                 |
//! | holds a whole record             | `Ok(Some(record))`   | -                         |
//! | holds part of a record           | `Ok(None)`: feed more| `TruncatedRecord`         |
//! | holds bytes that are not a record| `Err(Record{..})`    | -                         |
//!
//! A stream identifier chunk may appear again anywhere (files are
//! concatenations of framed streams, docs/format.md §3). After any error the
//! decoder is fused: it returns the same kind of answer no more.

use std::ops::Range;

use serde::Deserialize;

use super::error::{ArchiveError, ArchiveErrorKind};
use super::frame::{self, ChunkKind};
use crate::msgpack::scan::{scan_record, Scan};
use crate::msgpack::{self, RecordDefect, RecordRef, DEFAULT_MAX_RECORD_SIZE};
use crate::value::Record;

/// Decodes `.tri` bytes fed to it into records.
#[derive(Debug)]
pub struct Decoder {
    /// Decompressed bytes; records are taken from `pos`.
    data: Vec<u8>,
    pos: usize,
    /// (index in `data`, file offset of the chunk those bytes came from),
    /// ascending; lets a record error name the chunk it starts in.
    segments: Vec<(usize, u64)>,
    /// File offset of the next chunk.
    offset: u64,
    /// Bytes of decompressed data before `data[0]`.
    data_base: u64,
    chunks: Chunks,
    failed: bool,
    records: u64,
    max_record: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

/// File offset of the chunk holding decompressed byte `i`, given the
/// decoder's segments and the offset of its next chunk.
fn chunk_offset(segments: &[(usize, u64)], next_chunk: u64, i: usize) -> u64 {
    let n = segments.partition_point(|&(s, _)| s <= i);
    match n.checked_sub(1) {
        Some(k) => segments[k].1,
        None => next_chunk,
    }
}

impl Decoder {
    /// A decoder at the start of a file.
    pub fn new() -> Decoder {
        Decoder {
            data: Vec::with_capacity(2 * frame::MAX_BLOCK),
            pos: 0,
            segments: Vec::new(),
            offset: 0,
            data_base: 0,
            chunks: Chunks::new(),
            failed: false,
            records: 0,
            max_record: DEFAULT_MAX_RECORD_SIZE,
        }
    }

    /// Sets the largest record accepted; a record that would be larger is an
    /// error instead of a reason to buffer without bound.
    pub fn set_max_record_size(&mut self, max: usize) {
        self.max_record = max;
    }

    /// File offset of the next chunk to be fed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records delivered so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn fail(&mut self, offset: u64, kind: ArchiveErrorKind) -> ArchiveError {
        self.failed = true;
        ArchiveError {
            offset,
            record: self.records,
            kind,
        }
    }

    /// Consumes at most one whole chunk from the front of `input` and returns
    /// how many bytes it used: 0 means `input` holds no whole chunk yet.
    /// Call [`Decoder::next_raw`] until it returns `None` before feeding more,
    /// so that the buffer holds at most one partial record.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ArchiveError> {
        let Some(h) = input.get(..frame::HEADER_LEN) else {
            return Ok(0);
        };
        let (ty, len) = frame::parse_header([h[0], h[1], h[2], h[3]]);
        if self.offset == 0 && ty != frame::STREAM_IDENTIFIER && !self.failed {
            // Not an archive: say so now rather than wait for a "chunk" as
            // long as the first bytes happen to announce.
            let kind = ArchiveErrorKind::MissingStreamIdentifier { found: ty };
            return Err(self.fail(0, kind));
        }
        let total = frame::HEADER_LEN + len;
        match input.get(frame::HEADER_LEN..total) {
            Some(payload) => {
                self.chunk(ty, payload)?;
                Ok(total)
            }
            None => Ok(0),
        }
    }

    /// Processes one chunk given its type and payload. `feed` calls this;
    /// readers that parse headers themselves may call it directly.
    pub fn chunk(&mut self, chunk_type: u8, payload: &[u8]) -> Result<(), ArchiveError> {
        if self.failed {
            return Ok(());
        }
        let at = self.offset;
        self.compact();
        let start = self.data.len();
        if let Err(kind) = self.chunks.chunk(chunk_type, payload, &mut self.data) {
            return Err(self.fail(at, kind));
        }
        self.appended(start, at);
        self.offset = at + (frame::HEADER_LEN + payload.len()) as u64;
        Ok(())
    }

    /// Takes data that a [`Chunks`] stage elsewhere (a read-ahead thread)
    /// took from the chunk at file offset `at`; the next chunk starts at
    /// `next`.
    pub(crate) fn push_data(&mut self, at: u64, next: u64, data: &[u8]) {
        if self.failed {
            return;
        }
        self.compact();
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.appended(start, at);
        self.offset = next;
    }

    /// Records a failure that a [`Chunks`] stage elsewhere found at `at`.
    pub(crate) fn fail_at(&mut self, at: u64, kind: ArchiveErrorKind) -> ArchiveError {
        self.offset = at;
        self.fail(at, kind)
    }

    /// Like [`Decoder::finish`], for a [`Chunks`] stage elsewhere that ended
    /// with the next chunk at `offset`.
    pub(crate) fn finish_at(&mut self, offset: u64, unconsumed: &[u8]) -> Result<(), ArchiveError> {
        self.offset = offset;
        self.finish(unconsumed)
    }

    fn appended(&mut self, start: usize, chunk_at: u64) {
        if self.data.len() > start {
            self.segments.push((start, chunk_at));
        }
    }

    /// Moves the unread tail (at most one partial record) to the front.
    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        let pos = self.pos;
        self.data.copy_within(pos.., 0);
        self.data.truncate(self.data.len() - pos);
        self.data_base += pos as u64;
        self.pos = 0;
        // Keep the segment the tail starts in, and those after it.
        let keep_from = self
            .segments
            .partition_point(|&(s, _)| s <= pos)
            .saturating_sub(1);
        self.segments.drain(..keep_from);
        for seg in &mut self.segments {
            seg.0 = seg.0.saturating_sub(pos);
        }
    }

    /// File offset of the chunk holding decompressed byte `i` of `data`.
    fn chunk_offset_of(&self, i: usize) -> u64 {
        chunk_offset(&self.segments, self.offset, i)
    }

    pub(crate) fn next_range(&mut self) -> Result<Option<Range<usize>>, ArchiveError> {
        if self.failed || self.pos == self.data.len() {
            return Ok(None);
        }
        let buf = &self.data[self.pos..];
        match scan_record(buf, self.max_record) {
            Ok(Scan::Complete(n)) => {
                let r = self.pos..self.pos + n;
                self.pos += n;
                self.records += 1;
                Ok(Some(r))
            }
            Ok(Scan::Incomplete) if buf.len() > self.max_record => Err(self.record_error(
                0,
                RecordDefect::TooLarge {
                    max: self.max_record,
                },
            )),
            Ok(Scan::Incomplete) => Ok(None),
            Err((at, defect)) => Err(self.record_error(at, defect)),
        }
    }

    fn record_error(&mut self, at_in_record: usize, defect: RecordDefect) -> ArchiveError {
        let offset = self.chunk_offset_of(self.pos);
        let data_offset = self.data_base + (self.pos + at_in_record) as u64;
        self.fail(
            offset,
            ArchiveErrorKind::Record {
                data_offset,
                defect,
            },
        )
    }

    pub(crate) fn slice(&self, r: Range<usize>) -> &[u8] {
        &self.data[r]
    }

    /// The next whole record's MessagePack bytes, validated as one map with
    /// string keys; `Ok(None)` when more input is needed.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>, ArchiveError> {
        Ok(self.next_range()?.map(|r| &self.data[r]))
    }

    /// The next whole record as a view over its bytes ([`RecordRef`]);
    /// `Ok(None)` when more input is needed.
    pub fn next_ref(&mut self) -> Result<Option<RecordRef<'_>>, ArchiveError> {
        Ok(self.next_raw()?.map(RecordRef::new_unchecked))
    }

    /// The next whole record decoded into values; `Ok(None)` when more input
    /// is needed.
    ///
    /// Decodes in one pass (no separate scan): running out of data means
    /// "feed more", which costs a retry only for the one record per chunk
    /// that spans a chunk boundary.
    pub fn next_record(&mut self) -> Result<Option<Record>, ArchiveError> {
        if self.failed || self.pos == self.data.len() {
            return Ok(None);
        }
        let buf = &self.data[self.pos..];
        match msgpack::decode_prefix(buf) {
            Ok((rec, n)) => {
                self.pos += n;
                self.records += 1;
                Ok(Some(rec))
            }
            Err((_, RecordDefect::Truncated)) if buf.len() > self.max_record => {
                let max = self.max_record;
                Err(self.record_error(0, RecordDefect::TooLarge { max }))
            }
            Err((_, RecordDefect::Truncated)) => Ok(None),
            Err((at, defect)) => Err(self.record_error(at, defect)),
        }
    }

    /// The next whole record read into `T`, or `Ok(None)` when more input is
    /// needed. One pass over the bytes, with no scan first and no values
    /// built; strings and bytes are borrowed from the decoder's buffer where
    /// `T` borrows them.
    ///
    /// A record that does not fit `T` (a missing field, a wrong type) is an
    /// error naming it and is passed over: the next call reads the record
    /// after it. Bytes that are not a record fuse the decoder, as with
    /// [`next_raw`](Decoder::next_raw).
    pub fn next_typed<'a, T: Deserialize<'a>>(&'a mut self) -> Result<Option<T>, ArchiveError> {
        if self.failed || self.pos == self.data.len() {
            return Ok(None);
        }
        // Fields, not methods, from here on: `T` may borrow `data` for as
        // long as the caller keeps it, while `pos` and the counters move.
        let data: &'a [u8] = &self.data;
        let buf = &data[self.pos..];
        let err = match msgpack::de::from_prefix::<T>(buf) {
            Ok((v, n)) => {
                self.pos += n;
                self.records += 1;
                return Ok(Some(v));
            }
            Err(e) => e,
        };
        let (at, defect) = match err.defect {
            RecordDefect::Truncated if buf.len() > self.max_record => (
                0,
                RecordDefect::TooLarge {
                    max: self.max_record,
                },
            ),
            RecordDefect::Truncated => return Ok(None),
            typed @ RecordDefect::Typed { .. } => match scan_record(buf, self.max_record) {
                Ok(Scan::Complete(n)) => {
                    let e = ArchiveError {
                        offset: chunk_offset(&self.segments, self.offset, self.pos),
                        record: self.records,
                        kind: ArchiveErrorKind::Record {
                            data_offset: self.data_base + (self.pos + err.at) as u64,
                            defect: typed,
                        },
                    };
                    self.pos += n;
                    self.records += 1;
                    return Err(e);
                }
                Ok(Scan::Incomplete) if buf.len() > self.max_record => (
                    0,
                    RecordDefect::TooLarge {
                        max: self.max_record,
                    },
                ),
                Ok(Scan::Incomplete) => return Ok(None),
                Err(found) => found,
            },
            other => (err.at, other),
        };
        self.failed = true;
        Err(ArchiveError {
            offset: chunk_offset(&self.segments, self.offset, self.pos),
            record: self.records,
            kind: ArchiveErrorKind::Record {
                data_offset: self.data_base + (self.pos + at) as u64,
                defect,
            },
        })
    }

    /// Declares the end of the input. `unconsumed` is how many input bytes
    /// were left that `feed` did not take (a partial chunk). Succeeds only at
    /// a clean end: no partial chunk and no partial record.
    pub fn finish(&mut self, unconsumed: &[u8]) -> Result<(), ArchiveError> {
        if self.failed {
            return Ok(());
        }
        if self.offset == 0 && !unconsumed.is_empty() {
            // Nothing whole was read: a file shorter than the "chunk" its
            // first bytes announce (a JSON file, text) is not an archive,
            // unless it is the start of a stream identifier chunk.
            let n = unconsumed.len().min(frame::STREAM_IDENTIFIER_CHUNK.len());
            if unconsumed[..n] != frame::STREAM_IDENTIFIER_CHUNK[..n] {
                let kind = match unconsumed[0] {
                    frame::STREAM_IDENTIFIER => ArchiveErrorKind::BadStreamIdentifier,
                    found => ArchiveErrorKind::MissingStreamIdentifier { found },
                };
                return Err(self.fail(0, kind));
            }
        }
        if !unconsumed.is_empty() {
            let expected = match unconsumed.get(..frame::HEADER_LEN) {
                Some(h) => frame::HEADER_LEN + frame::parse_header([h[0], h[1], h[2], h[3]]).1,
                None => frame::HEADER_LEN,
            };
            let at = self.offset;
            return Err(self.fail(
                at,
                ArchiveErrorKind::TruncatedChunk {
                    expected,
                    got: unconsumed.len(),
                },
            ));
        }
        if self.pos < self.data.len() {
            let got = self.data.len() - self.pos;
            let at = self.chunk_offset_of(self.pos);
            return Err(self.fail(at, ArchiveErrorKind::TruncatedRecord { got }));
        }
        Ok(())
    }
}

/// The chunk stage of decoding: checks chunk order and types, verifies
/// checksums and decompresses. It knows nothing of records or offsets, so it
/// can run on another thread than the record stage.
#[derive(Debug)]
pub(crate) struct Chunks {
    started: bool,
    snappy: snap::raw::Decoder,
}

impl Chunks {
    pub(crate) fn new() -> Chunks {
        Chunks {
            started: false,
            snappy: snap::raw::Decoder::new(),
        }
    }

    /// Appends the data of one chunk to `out`; on error `out` is unchanged.
    pub(crate) fn chunk(
        &mut self,
        chunk_type: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ArchiveErrorKind> {
        let kind = ChunkKind::of(chunk_type);
        if !self.started && kind != ChunkKind::StreamIdentifier {
            return Err(ArchiveErrorKind::MissingStreamIdentifier { found: chunk_type });
        }
        match kind {
            ChunkKind::StreamIdentifier => {
                if payload != frame::STREAM_IDENTIFIER_PAYLOAD {
                    return Err(ArchiveErrorKind::BadStreamIdentifier);
                }
                self.started = true;
                Ok(())
            }
            ChunkKind::Compressed | ChunkKind::Uncompressed => self.data(kind, payload, out),
            ChunkKind::Skippable => Ok(()),
            ChunkKind::Unskippable => Err(ArchiveErrorKind::UnskippableChunk { chunk_type }),
        }
    }

    fn data(
        &mut self,
        kind: ChunkKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ArchiveErrorKind> {
        let chunk_type = if kind == ChunkKind::Compressed {
            frame::COMPRESSED
        } else {
            frame::UNCOMPRESSED
        };
        let bad_len = ArchiveErrorKind::BadChunkLength {
            chunk_type,
            len: payload.len(),
        };
        if payload.len() < frame::CRC_LEN {
            return Err(bad_len);
        }
        let (crc, body) = payload.split_at(frame::CRC_LEN);
        let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let start = out.len();
        if kind == ChunkKind::Compressed {
            let n = match snap::raw::decompress_len(body) {
                Ok(n) if n <= frame::MAX_BLOCK => n,
                Ok(_) => return Err(bad_len),
                Err(e) => {
                    let message = e.to_string();
                    return Err(ArchiveErrorKind::BadBlock { message });
                }
            };
            out.resize(start + n, 0);
            if let Err(e) = self.snappy.decompress(body, &mut out[start..]) {
                out.truncate(start);
                let message = e.to_string();
                return Err(ArchiveErrorKind::BadBlock { message });
            }
        } else {
            if body.len() > frame::MAX_BLOCK {
                return Err(bad_len);
            }
            out.extend_from_slice(body);
        }
        let actual = frame::masked_crc(&out[start..]);
        if actual != expected {
            out.truncate(start);
            return Err(ArchiveErrorKind::BadChecksum { expected, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveReader;

    /// The error of reading `bytes` whole, by each reader.
    fn errors(bytes: &'static [u8]) -> Vec<Option<ArchiveErrorKind>> {
        let direct = ArchiveReader::new(bytes).next_raw().err();
        let ahead = ArchiveReader::with_read_ahead(bytes)
            .expect("thread")
            .next_raw()
            .err();
        let mut decoder = Decoder::new();
        let fed = match decoder.feed(bytes) {
            Ok(used) => decoder.finish(&bytes[used..]).err(),
            Err(e) => Some(e),
        };
        [direct, ahead, fed]
            .into_iter()
            .map(|e| {
                e.map(|e| {
                    assert_eq!((e.offset, e.record), (0, 0), "{e}");
                    e.kind
                })
            })
            .collect()
    }

    #[test]
    fn input_that_is_not_an_archive_says_so_from_its_first_bytes() {
        // JSON announces a chunk of 3.8 MB; text one shorter than a header.
        for (bytes, first) in [(&b"{\"a\":1}\n"[..], b'{'), (b"{}\n", b'{')] {
            for kind in errors(bytes) {
                assert!(
                    matches!(kind, Some(ArchiveErrorKind::MissingStreamIdentifier { found }) if found == first),
                    "{kind:?}"
                );
            }
        }
        for kind in errors(b"\xff\x20\x00\x00sNaPpY") {
            assert!(
                matches!(kind, Some(ArchiveErrorKind::BadStreamIdentifier)),
                "{kind:?}"
            );
        }
        // A cut stream identifier is a truncated archive; no bytes at all
        // are an empty one.
        for kind in errors(b"\xff\x06\x00\x00sNa") {
            assert!(
                matches!(kind, Some(ArchiveErrorKind::TruncatedChunk { .. })),
                "{kind:?}"
            );
        }
        assert!(errors(b"").iter().all(Option::is_none));
    }
}
