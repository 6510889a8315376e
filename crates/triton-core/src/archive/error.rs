//! Errors reading and writing `.tri` archives.

use std::fmt;
use std::io;

use crate::msgpack::RecordDefect;

/// An archive that cannot be read or written, and where.
///
/// `offset` is a byte offset in the archive file: the start of the chunk
/// that is bad, or for record-level problems the start of the chunk in which
/// the bad record begins (records are inside compressed chunks, so they have
/// no file offset of their own). `record` is the index of the record being
/// read (records before it were delivered).
#[derive(Debug, thiserror::Error)]
#[error("byte {offset} (record {record}): {kind}")]
pub struct ArchiveError {
    /// Byte offset in the file.
    pub offset: u64,
    /// Index of the record being read or written when it happened.
    pub record: u64,
    /// What went wrong.
    pub kind: ArchiveErrorKind,
}

impl ArchiveError {
    /// True for damaged or invalid data (as opposed to an I/O failure, which
    /// may succeed if retried).
    pub fn is_corrupt(&self) -> bool {
        !matches!(self.kind, ArchiveErrorKind::Io(_))
    }
}

/// What is wrong with an archive.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArchiveErrorKind {
    /// Reading or writing the underlying file failed.
    Io(io::Error),
    /// The first chunk is not a stream identifier (`0xff`).
    MissingStreamIdentifier {
        /// The chunk type found instead.
        found: u8,
    },
    /// A stream identifier chunk whose payload is not `sNaPpY`.
    BadStreamIdentifier,
    /// A reserved chunk type (`0x02..=0x7f`) that readers must not skip.
    UnskippableChunk {
        /// The chunk type.
        chunk_type: u8,
    },
    /// A data chunk shorter than its checksum, or longer than allowed.
    BadChunkLength {
        /// The chunk type.
        chunk_type: u8,
        /// The length in the header.
        len: usize,
    },
    /// A compressed block that does not decompress.
    BadBlock {
        /// The Snappy decoder's message.
        message: String,
    },
    /// A data chunk whose CRC-32C does not match its data.
    BadChecksum {
        /// The checksum stored in the chunk.
        expected: u32,
        /// The checksum of the data.
        actual: u32,
    },
    /// The file ends inside a chunk.
    TruncatedChunk {
        /// Bytes the chunk header announced (header included).
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The file ends inside a record.
    TruncatedRecord {
        /// Bytes of the incomplete record present.
        got: usize,
    },
    /// A record that is not one MessagePack map with string keys.
    Record {
        /// Offset of the offending byte in the decompressed data.
        data_offset: u64,
        /// What is wrong.
        defect: RecordDefect,
    },
}

impl fmt::Display for ArchiveErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ArchiveErrorKind::*;
        match self {
            Io(e) => write!(f, "I/O error: {e}"),
            MissingStreamIdentifier { found } => write!(
                f,
                "not a .tri archive: expected a Snappy stream identifier chunk (0xff), found chunk type {found:#04x}"
            ),
            BadStreamIdentifier => f.write_str("bad Snappy stream identifier (expected \"sNaPpY\")"),
            UnskippableChunk { chunk_type } => {
                write!(f, "reserved unskippable chunk type {chunk_type:#04x}")
            }
            BadChunkLength { chunk_type, len } => {
                write!(f, "chunk type {chunk_type:#04x} has invalid length {len}")
            }
            BadBlock { message } => write!(f, "corrupt Snappy block: {message}"),
            BadChecksum { expected, actual } => write!(
                f,
                "checksum mismatch (stored {expected:#010x}, computed {actual:#010x})"
            ),
            TruncatedChunk { expected, got } => write!(
                f,
                "file ends inside a chunk ({got} of {expected} bytes present)"
            ),
            TruncatedRecord { got } => write!(
                f,
                "file ends inside a record ({got} bytes of it present)"
            ),
            Record {
                data_offset,
                defect,
            } => write!(f, "invalid record at decompressed byte {data_offset}: {defect}"),
        }
    }
}

impl From<ArchiveError> for io::Error {
    /// Lets archive errors pass through `Read`/`Write` based APIs.
    fn from(e: ArchiveError) -> io::Error {
        match e.kind {
            ArchiveErrorKind::Io(inner) => inner,
            _ => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}
