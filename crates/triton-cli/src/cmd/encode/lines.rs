//! JSON lines to records, parsing on several threads.
//!
//! Parsing JSON costs several times what compressing the records does, and
//! lines are independent, so batches of whole lines are transcoded on
//! worker threads and written in their original order, as `triton decode`
//! formats its lines. At most two batches per worker are in flight, so
//! memory stays bounded whatever the input size.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use triton_core::archive::ArchiveWriter;
use triton_core::msgpack::RecordBatch;

use super::super::common::json_line_error;
use crate::error::{CliError, CliResult};

/// Input bytes per batch: large enough that handing a batch to a thread
/// costs little per line, small enough to keep the writer busy.
const BATCH_BYTES: usize = 64 * 1024;

/// Reads JSON lines from `input` into `writer` on `threads` parsing threads
/// (1 parses on the caller's thread). Each line is written as MessagePack
/// straight from the JSON tokens (no values built).
pub(super) fn encode_lines<W: Write>(
    name: &str,
    input: &mut dyn BufRead,
    writer: &mut ArchiveWriter<W>,
    threads: usize,
) -> CliResult {
    if threads <= 1 {
        let (mut batch, mut out, mut next_line) = (Lines::default(), Encoded::default(), 1);
        loop {
            let ended = batch.fill(name, input, &mut next_line)?;
            out.clear();
            transcode(name, &batch, &mut out);
            write(name, &mut out, writer)?;
            if ended {
                return Ok(());
            }
        }
    }
    thread::scope(|scope| {
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            scope.spawn(move || transcode_batches(name, &queue));
        }
        let (mut pending, mut next_line) = (VecDeque::new(), 1);
        loop {
            let mut batch = Lines::default();
            let ended = batch.fill(name, input, &mut next_line)?;
            let (reply, result) = mpsc::sync_channel(1);
            // Fails only if every worker is gone, which `take` reports.
            let _ = jobs.send(Job { batch, reply });
            pending.push_back(result);
            while pending.len() > 2 * threads || (ended && !pending.is_empty()) {
                take(name, &mut pending, writer)?;
            }
            if ended {
                return Ok(());
            }
        }
    })
}

/// Whole lines of the input, and the number of the first.
#[derive(Default)]
struct Lines {
    first_line: usize,
    text: Vec<u8>,
    count: usize,
}

impl Lines {
    /// Reads lines, numbered from `*next_line` on, until the batch is full
    /// (`false`) or the input ends (`true`).
    fn fill(
        &mut self,
        name: &str,
        input: &mut dyn BufRead,
        next_line: &mut usize,
    ) -> Result<bool, CliError> {
        self.first_line = *next_line;
        self.text.clear();
        self.count = 0;
        let ended = loop {
            if self.text.len() >= BATCH_BYTES {
                break false;
            }
            let n = input
                .read_until(b'\n', &mut self.text)
                .map_err(|e| CliError::io(format!("{name} line {}", *next_line), e))?;
            if n == 0 {
                break true;
            }
            self.count += 1;
            *next_line += 1;
        };
        Ok(ended)
    }

    /// Each line with its number.
    fn each(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let text = self.text.strip_suffix(b"\n").unwrap_or(&self.text);
        text.split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, line)| (self.first_line + i, line))
            .take(self.count)
    }
}

/// The records of a batch and the line number of each, up to the first
/// line that failed, and that failure.
#[derive(Default)]
struct Encoded {
    records: RecordBatch,
    lines: Vec<usize>,
    error: Option<CliError>,
}

impl Encoded {
    fn clear(&mut self) {
        self.records.clear();
        self.lines.clear();
        self.error = None;
    }
}

fn transcode(name: &str, batch: &Lines, out: &mut Encoded) {
    for (line_no, line) in batch.each() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if is_blank(line) {
            continue;
        }
        // A `str` reader: serde_json then checks no string's UTF-8 again,
        // which its byte reader does character by character.
        let Ok(line) = std::str::from_utf8(line) else {
            out.error = Some(CliError::new(format!(
                "{name} line {line_no}: stream did not contain valid UTF-8"
            )));
            return;
        };
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = out
            .records
            .push_transcoded(&mut de)
            .and_then(|()| de.end().inspect_err(|_| out.records.pop()));
        if let Err(e) = parsed {
            out.error = Some(json_line_error(name, line_no, &e));
            return;
        }
        out.lines.push(line_no);
    }
}

/// Only whitespace, Unicode's included (checked only when the line starts
/// with a byte that is not ASCII).
fn is_blank(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.is_empty() || (t[0] >= 0x80 && std::str::from_utf8(t).is_ok_and(|s| s.trim().is_empty()))
}

fn write<W: Write>(name: &str, encoded: &mut Encoded, writer: &mut ArchiveWriter<W>) -> CliResult {
    let first = writer.stats().records;
    writer.write_batch(&encoded.records).map_err(|e| {
        let line = usize::try_from(e.record - first)
            .ok()
            .and_then(|i| encoded.lines.get(i));
        match line {
            Some(line_no) => {
                CliError::new(format!("writing record from {name} line {line_no}: {e}"))
            }
            None => CliError::new(format!("writing records from {name}: {e}")),
        }
    })?;
    encoded.error.take().map_or(Ok(()), Err)
}

struct Job {
    batch: Lines,
    reply: SyncSender<Encoded>,
}

fn transcode_batches(name: &str, queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(Job { batch, reply }) = job else {
            return;
        };
        let mut out = Encoded {
            records: RecordBatch::with_capacity(batch.text.len()),
            ..Encoded::default()
        };
        transcode(name, &batch, &mut out);
        let _ = reply.send(out);
    }
}

/// Writes the oldest batch in flight.
fn take<W: Write>(
    name: &str,
    pending: &mut VecDeque<Receiver<Encoded>>,
    writer: &mut ArchiveWriter<W>,
) -> CliResult {
    let Some(next) = pending.pop_front() else {
        return Ok(());
    };
    let mut encoded = next
        .recv()
        .map_err(|_| CliError::new(format!("{name}: a parsing thread stopped")))?;
    write(name, &mut encoded, writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(input: &[u8], threads: usize) -> Result<Vec<u8>, String> {
        let mut w = ArchiveWriter::new(Vec::new());
        encode_lines("in.jsonl", &mut &input[..], &mut w, threads).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())
    }

    /// Lines over many batches, with blank and CRLF lines and no final
    /// newline.
    fn input(lines: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..lines {
            match i % 7 {
                3 => s.push_str(" \t\u{a0}\n"),
                5 => s.push_str(&format!("{{\"i\":{i},\"s\":\"é{i}\"}}\r\n")),
                _ => s.push_str(&format!(
                    "{{\"i\":{i},\"pad\":\"{}\"}}\n",
                    "x".repeat(i % 300)
                )),
            }
        }
        s.push_str("{\"last\":true}");
        s.into_bytes()
    }

    #[test]
    fn threads_write_what_one_thread_writes() {
        let text = input(20_000);
        assert!(text.len() > 8 * BATCH_BYTES);
        let one = encode(&text, 1).unwrap();
        assert_eq!(encode(&text, 3).unwrap(), one);
        let mut r = triton_core::archive::ArchiveReader::new(&one[..]);
        let mut n = 0;
        while r.next_raw().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 20_000 - 20_000 / 7 + 1);
    }

    #[test]
    fn errors_name_the_line_in_any_batch() {
        let original = input(20_000);
        // Line 15,001 (far past the first batch) is not an object, and line
        // 17,001 not UTF-8: the first is reported, by every thread count.
        let mut lines: Vec<&[u8]> = original.split(|&b| b == b'\n').collect();
        lines[15_000] = b"[1,2]";
        lines[17_000] = b"{\"bad\":\"\xff\"}";
        let text = lines.join(&b'\n');
        for threads in [1, 2, 3] {
            let e = encode(&text, threads).unwrap_err();
            assert!(e.starts_with("in.jsonl line 15001"), "{threads}: {e}");
        }
        lines[15_000] = b"{}";
        let text = lines.join(&b'\n');
        for threads in [1, 3] {
            let e = encode(&text, threads).unwrap_err();
            assert_eq!(e, "in.jsonl line 17001: stream did not contain valid UTF-8");
        }
    }
}
