//! [`ArchiveWriter`]: streaming records into a `.tri` file.

use std::io::Write;

use serde::Serialize;

use super::error::{ArchiveError, ArchiveErrorKind};
use super::frame;
use super::parallel::{pack, Pool};
use crate::msgpack::{self, RecordBatch, RecordDefect, RecordError, DEFAULT_MAX_RECORD_SIZE};
use crate::value::{Record, Value};

/// Counters of what a writer has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Records written.
    pub records: u64,
    /// MessagePack bytes written (before compression).
    pub bytes_in: u64,
    /// File bytes produced so far (chunks handed to the inner writer).
    pub bytes_out: u64,
}

/// Writes records as one Snappy framed stream of 64 KiB chunks.
///
/// Records may span chunks, as in go-triton's files. Data is compressed a
/// block at a time; a block that would not shrink by at least 1/8 is stored
/// uncompressed (as the reference framing encoder does). [`finish`]
/// must be called: dropping a writer does not flush, so an error can never
/// pass silently and a half-written archive is never mistaken for a whole
/// one.
///
/// An archive with no records is an empty file (a valid, empty archive, as
/// go-triton writes it).
///
/// A record larger than readers accept ([`DEFAULT_MAX_RECORD_SIZE`] unless
/// set otherwise) is refused with [`RecordDefect::Oversized`]: writer and
/// reader agree on one limit, so every archive written can be read back.
///
/// [`finish`]: ArchiveWriter::finish
#[derive(Debug)]
pub struct ArchiveWriter<W: Write> {
    inner: W,
    block: Vec<u8>,
    compressed: Vec<u8>,
    scratch: Vec<u8>,
    encoder: snap::raw::Encoder,
    started: bool,
    stats: WriteStats,
    max_record: usize,
    /// Compression threads allowed (1: the caller's thread only).
    threads: usize,
    /// Started once the archive outgrows [`PARALLEL_AFTER`] blocks.
    pool: Option<Pool>,
    blocks: u64,
}

/// Blocks compressed on the caller's thread before a writer with threads
/// starts them: an archive smaller than this (256 KiB of records) never
/// pays for starting threads.
const PARALLEL_AFTER: u64 = 4;

impl<W: Write> ArchiveWriter<W> {
    /// A writer that writes the archive to `inner`.
    pub fn new(inner: W) -> ArchiveWriter<W> {
        ArchiveWriter {
            inner,
            block: Vec::with_capacity(frame::MAX_BLOCK),
            compressed: vec![0; snap::raw::max_compress_len(frame::MAX_BLOCK)],
            scratch: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            started: false,
            stats: WriteStats::default(),
            max_record: DEFAULT_MAX_RECORD_SIZE,
            threads: 1,
            pool: None,
            blocks: 0,
        }
    }

    /// Compresses on up to `threads` threads (`available_parallelism` is a
    /// good choice) once the archive holds more than 256 KiB of records;
    /// smaller archives, and `threads` of 0 or 1, compress on the caller's
    /// thread. The file is the same either way: blocks are compressed out
    /// of order and written in order, at most two per thread in flight.
    pub fn with_threads(mut self, threads: usize) -> ArchiveWriter<W> {
        self.threads = threads;
        self
    }

    /// Sets the largest record written (the default is the readers'
    /// default limit); give readers of the archive the same with
    /// [`ArchiveReader::with_max_record_size`](super::ArchiveReader::with_max_record_size).
    pub fn with_max_record_size(mut self, max: usize) -> ArchiveWriter<W> {
        self.max_record = max;
        self
    }

    fn error(&self, kind: ArchiveErrorKind) -> ArchiveError {
        ArchiveError {
            offset: self.stats.bytes_out,
            record: self.stats.records,
            kind,
        }
    }

    fn invalid(&self, e: RecordError) -> ArchiveError {
        self.error(ArchiveErrorKind::Record {
            data_offset: self.stats.bytes_in + e.offset as u64,
            defect: e.defect,
        })
    }

    /// Writes one record given as MessagePack bytes, which must be exactly
    /// one map with string keys (validated without building values). The
    /// bytes are stored as they are.
    pub fn write_raw(&mut self, record: &[u8]) -> Result<(), ArchiveError> {
        msgpack::validate_record(record).map_err(|e| self.invalid(e))?;
        self.push(record)
    }

    /// Writes every record of `batch`, in order, without validating them
    /// again. On error, [`ArchiveError::record`] is the archive index of the
    /// record that failed (the records of the batch before it are written).
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), ArchiveError> {
        batch.iter().try_for_each(|record| self.push(record))
    }

    /// Writes one record.
    pub fn write_record(&mut self, record: &Record) -> Result<(), ArchiveError> {
        self.push_encoded(|buf| msgpack::encode_record(record, buf))
    }

    /// Encodes into a reused buffer, then appends: no allocation per record.
    fn push_encoded(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), ArchiveError> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        encode(&mut buf);
        let r = self.push(&buf);
        self.scratch = buf;
        r
    }

    /// Writes a value, which must be a map with string keys.
    pub fn write_value(&mut self, value: &Value) -> Result<(), ArchiveError> {
        let found = match value {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| !matches!(k, Value::Str(_)))
                .map(|(k, _)| RecordDefect::NonStringKey { found: k.kind() }),
            other => Some(RecordDefect::NotAMap {
                found: other.kind(),
            }),
        };
        if let Some(defect) = found {
            return Err(self.invalid(RecordError { offset: 0, defect }));
        }
        self.push_encoded(|buf| msgpack::encode_value(value, buf))
    }

    /// Writes any serde value as a record (structs become maps keyed by
    /// field name).
    pub fn write_serialize<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), ArchiveError> {
        let bytes = msgpack::to_record_vec(value).map_err(|e| self.invalid(e))?;
        self.push(&bytes)
    }

    fn push(&mut self, mut data: &[u8]) -> Result<(), ArchiveError> {
        if data.len() > self.max_record {
            return Err(self.invalid(RecordError {
                offset: 0,
                defect: RecordDefect::Oversized {
                    size: data.len(),
                    max: self.max_record,
                },
            }));
        }
        self.stats.records += 1;
        self.stats.bytes_in += data.len() as u64;
        while !data.is_empty() {
            let room = frame::MAX_BLOCK - self.block.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.extend_from_slice(now);
            data = rest;
            if self.block.len() == frame::MAX_BLOCK {
                self.emit_block()?;
            }
        }
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        if let Err(e) = self.inner.write_all(bytes) {
            return Err(self.error(ArchiveErrorKind::Io(e)));
        }
        self.stats.bytes_out += bytes.len() as u64;
        Ok(())
    }

    fn emit_block(&mut self) -> Result<(), ArchiveError> {
        if self.block.is_empty() {
            return Ok(());
        }
        if !self.started {
            self.write_all(frame::STREAM_IDENTIFIER_CHUNK)?;
            self.started = true;
        }
        self.blocks += 1;
        if self.pool.is_none() && self.threads > 1 && self.blocks > PARALLEL_AFTER {
            self.pool = Pool::start(self.threads);
        }
        if let Some(mut pool) = self.pool.take() {
            let (next, out) = pool.buffers();
            let full = std::mem::replace(&mut self.block, next);
            pool.submit(&mut self.encoder, full, out);
            let written = self.write_finished(&mut pool);
            self.pool = Some(pool);
            return written;
        }
        let packed = match pack(&mut self.encoder, &self.block, &mut self.compressed) {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                return Err(self.error(ArchiveErrorKind::BadBlock { message }));
            }
        };
        let block = std::mem::take(&mut self.block);
        let compressed = std::mem::take(&mut self.compressed);
        let result = self.chunk(
            packed.chunk_type,
            packed.crc.to_le_bytes(),
            packed.body(&block, &compressed),
        );
        self.block = block;
        self.block.clear();
        self.compressed = compressed;
        result
    }

    /// Writes the blocks the workers finished, in order, waiting while as
    /// many are in flight as memory allows.
    fn write_finished(&mut self, pool: &mut Pool) -> Result<(), ArchiveError> {
        loop {
            let wait = pool.full();
            match pool.next(wait) {
                Some(job) => self.write_job(pool, job)?,
                None => return Ok(()),
            }
        }
    }

    /// Writes every block in flight.
    fn drain(&mut self, pool: &mut Pool) -> Result<(), ArchiveError> {
        while let Some(job) = pool.next(true) {
            self.write_job(pool, job)?;
        }
        Ok(())
    }

    fn write_job(
        &mut self,
        pool: &mut Pool,
        job: Result<super::parallel::Job, String>,
    ) -> Result<(), ArchiveError> {
        let job = job.map_err(|message| self.error(ArchiveErrorKind::BadBlock { message }))?;
        let packed = match &job.packed {
            Ok(p) => p,
            Err(message) => {
                let message = message.clone();
                return Err(self.error(ArchiveErrorKind::BadBlock { message }));
            }
        };
        let r = self.chunk(
            packed.chunk_type,
            packed.crc.to_le_bytes(),
            packed.body(&job.block, &job.out),
        );
        pool.recycle(job);
        r
    }

    fn chunk(&mut self, ty: u8, crc: [u8; 4], body: &[u8]) -> Result<(), ArchiveError> {
        self.write_all(&frame::header(ty, frame::CRC_LEN + body.len()))?;
        self.write_all(&crc)?;
        self.write_all(body)
    }

    /// Counters so far (bytes still buffered in the current block are counted
    /// in `bytes_in` but not yet in `bytes_out`).
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Writes the last block, flushes, and returns the inner writer.
    pub fn finish(self) -> Result<W, ArchiveError> {
        self.finish_with_stats().map(|(inner, _)| inner)
    }

    /// Like [`finish`](ArchiveWriter::finish), also returning the final
    /// counters.
    pub fn finish_with_stats(mut self) -> Result<(W, WriteStats), ArchiveError> {
        self.emit_block()?;
        if let Some(mut pool) = self.pool.take() {
            self.drain(&mut pool)?;
        }
        if let Err(e) = self.inner.flush() {
            return Err(self.error(ArchiveErrorKind::Io(e)));
        }
        Ok((self.inner, self.stats))
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer. Writing to it directly corrupts the archive.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::archive::ArchiveReader;

    /// Records of varied sizes, some larger than a block, some repetitive
    /// (compressed) and some random (stored uncompressed).
    fn records(n: u64) -> Vec<Record> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|i| {
                let mut rec = Record::new();
                rec.push("n", i as i64);
                let noise: String = (0..(i % 97) * 40)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from(b'!' + (x % 90) as u8)
                    })
                    .collect();
                rec.push("noise", noise);
                rec.push("pad", "ab".repeat((i % 13) as usize * 9000));
                rec
            })
            .collect()
    }

    fn write(records: &[Record], threads: usize) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new()).with_threads(threads);
        for r in records {
            w.write_record(r).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn threads_write_the_same_file() {
        let recs = records(600);
        let one = write(&recs, 1);
        assert!(one.len() > 20 * frame::MAX_BLOCK, "{} bytes", one.len());
        for threads in [2, 3, 8] {
            assert!(write(&recs, threads) == one, "{threads} threads");
        }
        let mut r = ArchiveReader::new(&one[..]);
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            assert_eq!(rec, recs[n]);
            n += 1;
        }
        assert_eq!(n, recs.len());
        // Small archives never start threads, and are the same too.
        let few = records(3);
        assert!(write(&few, 4) == write(&few, 1));
    }

    /// Fails every write after `left` bytes.
    #[derive(Debug)]
    struct Short {
        left: usize,
    }

    impl io::Write for Short {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_with_threads_is_returned() {
        let mut w = ArchiveWriter::new(Short {
            left: 10 * frame::MAX_BLOCK,
        })
        .with_threads(2);
        let mut failed = None;
        for r in records(600) {
            if let Err(e) = w.write_record(&r) {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            Some(e) => e,
            None => w.finish().unwrap_err(),
        };
        assert!(matches!(e.kind, ArchiveErrorKind::Io(_)), "{e}");
    }
}
