//! Read-ahead: reading, checking and decompressing chunks on a helper thread
//! while the caller's thread turns the data into records.
//!
//! Decompression and checksums are about half the work of raw decoding, so
//! on a machine with a spare core this nearly halves the wall time of
//! `triton decode`. The thread stays at most [`DEPTH`] chunks ahead, so
//! memory stays bounded; dropping the receiving side ends it at its next
//! chunk.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use super::decoder::{Chunks, Decoder};
use super::error::{ArchiveError, ArchiveErrorKind};
use super::frame;
use super::read::{read_chunk, ChunkRead, BUFFER};

/// Chunks decoded ahead of the consumer (each at most 64 KiB of data).
const DEPTH: usize = 8;

/// What the helper thread found next in the file.
enum Block {
    /// Data of the chunk at file offset `at`; the next chunk is at `next`.
    Data { at: u64, next: u64, data: Vec<u8> },
    /// The input ended with the next chunk due at `offset`; `unconsumed` is
    /// a partial chunk (empty at a clean end).
    End { offset: u64, unconsumed: Vec<u8> },
    /// The chunk at `at` is bad, or reading it failed.
    Failed { at: u64, kind: ArchiveErrorKind },
}

/// The consumer's side of a read-ahead thread.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    blocks: Receiver<Block>,
}

impl ReadAhead {
    /// Starts the helper thread over `inner`.
    pub(crate) fn spawn<R: Read + Send + 'static>(inner: R) -> io::Result<ReadAhead> {
        let (tx, blocks) = mpsc::sync_channel(DEPTH);
        thread::Builder::new()
            .name("triton-read-ahead".into())
            .spawn(move || produce(BufReader::with_capacity(BUFFER, inner), &tx))?;
        Ok(ReadAhead { blocks })
    }

    /// Moves the next chunk's data into `decoder`; false at the end of input.
    pub(crate) fn fill(&mut self, decoder: &mut Decoder) -> Result<bool, ArchiveError> {
        match self.blocks.recv() {
            Ok(Block::Data { at, next, data }) => {
                decoder.push_data(at, next, &data);
                Ok(true)
            }
            Ok(Block::End { offset, unconsumed }) => {
                decoder.finish_at(offset, &unconsumed)?;
                Ok(false)
            }
            Ok(Block::Failed { at, kind }) => Err(decoder.fail_at(at, kind)),
            // The thread only stops early after sending `End` or `Failed`,
            // so this means it panicked.
            Err(_) => Err(decoder.fail_at(
                decoder.offset(),
                ArchiveErrorKind::Io(io::Error::other("the read-ahead thread stopped")),
            )),
        }
    }
}

/// The helper thread: reads chunks until the end, an error, or until the
/// consumer hangs up.
fn produce<R: Read>(mut inner: BufReader<R>, tx: &SyncSender<Block>) {
    let mut chunks = Chunks::new();
    let mut payload = Vec::new();
    let mut offset = 0u64;
    loop {
        let block = match read_chunk(&mut inner, &mut payload) {
            Err(e) => Block::Failed {
                at: offset,
                kind: ArchiveErrorKind::Io(e),
            },
            Ok(ChunkRead::End { unconsumed }) => Block::End { offset, unconsumed },
            Ok(ChunkRead::Chunk { chunk_type, len }) => {
                let at = offset;
                offset += (frame::HEADER_LEN + len) as u64;
                let mut data = Vec::new();
                match chunks.chunk(chunk_type, &payload[..len], &mut data) {
                    Ok(()) if data.is_empty() => continue,
                    Ok(()) => Block::Data {
                        at,
                        next: offset,
                        data,
                    },
                    Err(kind) => Block::Failed { at, kind },
                }
            }
        };
        let last = !matches!(block, Block::Data { .. });
        if tx.send(block).is_err() || last {
            return;
        }
    }
}
