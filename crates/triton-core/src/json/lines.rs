//! Whole archives to JSON lines, formatting on several threads.
//!
//! Formatting JSON costs several times what reading the archive does, and
//! records are independent, so batches of records are formatted on worker
//! threads and written in their original order. The reading thread only
//! delimits records; at most two batches per worker are in flight, so memory
//! stays bounded whatever the file size.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use super::{write_raw_record, RawWriter};
use crate::archive::{ArchiveError, ArchiveReader};
use crate::msgpack::RecordError;

/// Raw MessagePack bytes per batch: large enough that handing a batch to a
/// thread costs little per record, small enough to keep output flowing.
const BATCH_BYTES: usize = 256 * 1024;

/// Why [`write_lines`] stopped early. Every record before the failing one
/// has been written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinesError {
    /// The archive is damaged or could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Record `index` (0-based, in the archive) could not be printed.
    #[error("record {index}: {error}")]
    Record {
        /// Index of the record in the archive.
        index: u64,
        /// What is wrong with it.
        error: RecordError,
    },
    /// Writing the output failed.
    #[error("writing output")]
    Write(#[source] io::Error),
}

/// Writes every record of `reader` to `out` as one JSON line each (the view
/// of [`write_raw_record`]), using `threads` formatting threads (1 formats
/// on the caller's thread). Returns the number of records written.
///
/// Output is written in large pieces; wrap `out` in nothing.
pub fn write_lines<R: Read, W: Write>(
    reader: &mut ArchiveReader<R>,
    out: &mut W,
    threads: usize,
) -> Result<u64, LinesError> {
    if threads <= 1 {
        return write_sequential(reader, out);
    }
    let result = thread::scope(|scope| {
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            scope.spawn(move || format_batches(&queue));
        }
        let mut pending = VecDeque::new();
        let mut written = 0;
        let ended = loop {
            let mut batch = Batch::default();
            let ended = batch.fill(reader);
            if !batch.ends.is_empty() {
                let (reply, result) = mpsc::sync_channel(1);
                // Fails only if every worker is gone, which `take` reports.
                let _ = jobs.send(Job { batch, reply });
                pending.push_back(result);
            }
            while pending.len() > 2 * threads {
                written += take(&mut pending, out)?;
            }
            if let Some(ended) = ended {
                break ended;
            }
        };
        while !pending.is_empty() {
            written += take(&mut pending, out)?;
        }
        ended.map(|()| written)
    });
    // What was written before a failure must reach the reader of `out`.
    out.flush().map_err(LinesError::Write)?;
    result
}

fn write_sequential<R: Read, W: Write>(
    reader: &mut ArchiveReader<R>,
    out: &mut W,
) -> Result<u64, LinesError> {
    let mut buf = Vec::with_capacity(2 * BATCH_BYTES);
    let mut scratch = RawWriter::new();
    let mut written = 0;
    let result = loop {
        let index = reader.records_read();
        match reader.next_raw() {
            Ok(Some(raw)) => {
                if let Err(error) = write_raw_record(&mut buf, &mut scratch, raw) {
                    break Err(LinesError::Record { index, error });
                }
                buf.push(b'\n');
                written += 1;
                if buf.len() >= BATCH_BYTES {
                    out.write_all(&buf).map_err(LinesError::Write)?;
                    buf.clear();
                }
            }
            Ok(None) => break Ok(written),
            Err(e) => break Err(e.into()),
        }
    };
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(LinesError::Write)?;
    result
}

/// Consecutive raw records.
#[derive(Default)]
struct Batch {
    /// Index in the archive of the first record.
    first: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Takes records until the batch is full (`None`), or the archive ends
    /// (`Some(Ok)`) or fails (`Some(Err)`).
    fn fill<R: Read>(&mut self, reader: &mut ArchiveReader<R>) -> Option<Result<(), LinesError>> {
        self.first = reader.records_read();
        while self.bytes.len() < BATCH_BYTES {
            match reader.next_raw() {
                Ok(Some(raw)) => {
                    self.bytes.extend_from_slice(raw);
                    self.ends.push(self.bytes.len());
                }
                Ok(None) => return Some(Ok(())),
                Err(e) => return Some(Err(e.into())),
            }
        }
        None
    }
}

struct Job {
    batch: Batch,
    reply: SyncSender<Formatted>,
}

/// A formatted batch: the JSON lines of its records up to the first that
/// failed, and that failure.
struct Formatted {
    json: Vec<u8>,
    records: u64,
    error: Option<LinesError>,
}

fn format_batches(queue: &Mutex<Receiver<Job>>) {
    let mut scratch = RawWriter::new();
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(Job { batch, reply }) = job else {
            return;
        };
        let _ = reply.send(format(&batch, &mut scratch));
    }
}

fn format(batch: &Batch, scratch: &mut RawWriter) -> Formatted {
    // JSON is about twice the MessagePack size for typical events.
    let mut json = Vec::with_capacity(batch.bytes.len() * 2 + 1024);
    let mut start = 0;
    for (i, &end) in batch.ends.iter().enumerate() {
        if let Err(error) = write_raw_record(&mut json, scratch, &batch.bytes[start..end]) {
            return Formatted {
                json,
                records: i as u64,
                error: Some(LinesError::Record {
                    index: batch.first + i as u64,
                    error,
                }),
            };
        }
        json.push(b'\n');
        start = end;
    }
    Formatted {
        json,
        records: batch.ends.len() as u64,
        error: None,
    }
}

/// Writes the oldest pending batch; returns its record count.
fn take<W: Write>(
    pending: &mut VecDeque<Receiver<Formatted>>,
    out: &mut W,
) -> Result<u64, LinesError> {
    let Some(result) = pending.pop_front() else {
        return Ok(0);
    };
    let formatted = result
        .recv()
        .map_err(|_| LinesError::Write(io::Error::other("a JSON formatting thread stopped")))?;
    out.write_all(&formatted.json).map_err(LinesError::Write)?;
    match formatted.error {
        Some(e) => Err(e),
        None => Ok(formatted.records),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveWriter;
    use crate::value::{Record, Value};

    /// An archive of `n` records over several batches, and the expected
    /// JSON lines.
    fn archive(n: usize) -> (Vec<u8>, Vec<u8>) {
        let mut w = ArchiveWriter::new(Vec::new());
        let mut want = Vec::new();
        for i in 0..n {
            let mut rec = Record::new();
            rec.push("i", Value::Int(i as i64));
            // Some records are large, so batches hold different counts.
            rec.push(
                "pad",
                Value::from("x".repeat(if i % 97 == 0 { 40_000 } else { i % 50 })),
            );
            w.write_record(&rec).unwrap();
            super::super::write_record(&mut want, &rec);
            want.push(b'\n');
        }
        (w.finish().unwrap(), want)
    }

    fn run(file: &[u8], threads: usize) -> (Vec<u8>, Result<u64, LinesError>) {
        let mut out = Vec::new();
        let mut r = ArchiveReader::new(file);
        let res = write_lines(&mut r, &mut out, threads);
        (out, res)
    }

    #[test]
    fn every_thread_count_prints_the_same_lines_in_order() {
        let (file, want) = archive(20_000);
        for threads in 1..=3 {
            let (out, res) = run(&file, threads);
            assert_eq!(res.unwrap(), 20_000, "threads {threads}");
            assert!(out == want, "threads {threads}: output differs");
        }
    }

    #[test]
    fn a_damaged_archive_prints_every_record_before_the_damage() {
        let (file, want) = archive(20_000);
        let cut = &file[..file.len() * 2 / 3];
        let (direct, direct_err) = run(cut, 1);
        let direct_err = match direct_err {
            Err(LinesError::Archive(e)) => e,
            other => panic!("expected an archive error, got {other:?}"),
        };
        assert!(want.starts_with(&direct) && direct.len() > want.len() / 2);
        for threads in 2..=3 {
            let (out, res) = run(cut, threads);
            assert!(out == direct, "threads {threads}: output differs");
            match res {
                Err(LinesError::Archive(e)) => {
                    assert_eq!((e.offset, e.record), (direct_err.offset, direct_err.record))
                }
                other => panic!("threads {threads}: {other:?}"),
            }
        }
    }

    /// Accepts `left` bytes, then fails as a closed pipe does.
    struct Closing {
        left: usize,
    }

    impl Write for Closing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
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
    fn a_closed_output_stops_the_work_with_a_write_error() {
        let (file, _) = archive(20_000);
        for threads in 1..=3 {
            let mut r = ArchiveReader::new(&file[..]);
            let res = write_lines(&mut r, &mut Closing { left: 100_000 }, threads);
            match res {
                Err(LinesError::Write(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
                other => panic!("threads {threads}: {other:?}"),
            }
            // It stopped early rather than reading the whole archive.
            assert!(r.records_read() < 20_000, "threads {threads}");
        }
    }
}
