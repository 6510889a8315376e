//! Wire constants of the Snappy framing format (google/snappy
//! `framing_format.txt`), which is the byte layout of a `.tri` file.

/// Chunk type of the stream identifier.
pub const STREAM_IDENTIFIER: u8 = 0xff;
/// Chunk type of Snappy-compressed data.
pub const COMPRESSED: u8 = 0x00;
/// Chunk type of uncompressed data.
pub const UNCOMPRESSED: u8 = 0x01;
/// Chunk type of padding (skipped).
pub const PADDING: u8 = 0xfe;
/// Payload of the stream identifier chunk.
pub const STREAM_IDENTIFIER_PAYLOAD: &[u8; 6] = b"sNaPpY";
/// The whole stream identifier chunk, header included.
pub const STREAM_IDENTIFIER_CHUNK: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";
/// Bytes in a chunk header: one type byte, three length bytes.
pub const HEADER_LEN: usize = 4;
/// Bytes of masked CRC-32C at the start of every data chunk.
pub const CRC_LEN: usize = 4;
/// Most uncompressed bytes one data chunk may carry.
pub const MAX_BLOCK: usize = 65_536;

/// What a reader does with a chunk type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// `0xff`: a (possibly repeated) stream identifier.
    StreamIdentifier,
    /// `0x00`.
    Compressed,
    /// `0x01`.
    Uncompressed,
    /// `0xfe` padding and `0x80..=0xfd`: skip.
    Skippable,
    /// `0x02..=0x7f`: reserved, must not be skipped.
    Unskippable,
}

impl ChunkKind {
    /// Classifies a chunk type byte.
    pub fn of(chunk_type: u8) -> ChunkKind {
        match chunk_type {
            STREAM_IDENTIFIER => ChunkKind::StreamIdentifier,
            COMPRESSED => ChunkKind::Compressed,
            UNCOMPRESSED => ChunkKind::Uncompressed,
            0x02..=0x7f => ChunkKind::Unskippable,
            _ => ChunkKind::Skippable,
        }
    }
}

/// The checksum stored in data chunks: CRC-32C of the uncompressed bytes,
/// rotated and offset so that checksumming data containing checksums is safe.
#[inline]
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Parses a chunk header into (type, payload length).
#[inline]
pub fn parse_header(h: [u8; HEADER_LEN]) -> (u8, usize) {
    (
        h[0],
        usize::from(h[1]) | usize::from(h[2]) << 8 | usize::from(h[3]) << 16,
    )
}

/// Builds a chunk header.
#[inline]
pub fn header(chunk_type: u8, len: usize) -> [u8; HEADER_LEN] {
    [chunk_type, len as u8, (len >> 8) as u8, (len >> 16) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_snappy_reference() {
        // From the framing format spec's reference: CRC-32C("123456789") = 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // Masked as the spec says: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn header_round_trips() {
        assert_eq!(parse_header(header(COMPRESSED, 0x12_3456)), (0, 0x12_3456));
    }
}
