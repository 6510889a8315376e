//! The `.tri` archive format: Snappy framed MessagePack records
//! (docs/format.md §3).
//!
//! - [`ArchiveReader`] reads records from any `std::io::Read`, chunk by chunk.
//! - [`ArchiveWriter`] writes records to any `std::io::Write`.
//! - [`Decoder`] is the I/O-free core of the reader for callers that receive
//!   bytes from elsewhere (an async network body).
//!
//! Every malformed input gives an [`ArchiveError`] carrying the byte offset;
//! nothing panics on any input.

mod ahead;
mod decoder;
mod error;
pub mod frame;
mod parallel;
mod read;
mod write;

pub use self::decoder::Decoder;
pub use self::error::{ArchiveError, ArchiveErrorKind};
pub use self::read::{ArchiveReader, Records};
pub use self::write::{ArchiveWriter, WriteStats};
