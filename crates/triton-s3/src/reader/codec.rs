//! `.tri` records out of an async byte stream: core's I/O-free [`Decoder`]
//! as a `tokio_util` codec, so that `FramedRead` does the buffering.

use std::io;

use bytes::{Buf, BytesMut};
use triton_core::archive::{ArchiveError, Decoder};

/// Yields each record of an archive with its index, in order.
#[derive(Debug, Default)]
pub(super) struct RecordCodec {
    decoder: Decoder,
    finished: bool,
}

/// Why the records stopped.
#[derive(Debug)]
pub(super) enum CodecError {
    /// The archive's bytes are damaged (offsets and record index inside).
    Archive(ArchiveError),
    /// The bytes could not be read.
    Io(io::Error),
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> CodecError {
        CodecError::Io(e)
    }
}

impl From<ArchiveError> for CodecError {
    fn from(e: ArchiveError) -> CodecError {
        CodecError::Archive(e)
    }
}

impl tokio_util::codec::Decoder for RecordCodec {
    type Item = (u64, Vec<u8>);
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(u64, Vec<u8>)>, CodecError> {
        loop {
            let index = self.decoder.records();
            if let Some(raw) = self.decoder.next_raw()? {
                return Ok(Some((index, raw.to_vec())));
            }
            // Whole chunks only: the rest waits for more bytes.
            match self.decoder.feed(src)? {
                0 => return Ok(None),
                used => src.advance(used),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<(u64, Vec<u8>)>, CodecError> {
        if self.finished {
            return Ok(None);
        }
        if let Some(record) = self.decode(src)? {
            return Ok(Some(record));
        }
        self.finished = true;
        // A truncated chunk or record at the end is damage, not the end.
        self.decoder.finish(src)?;
        src.clear();
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;
    use triton_core::archive::ArchiveWriter;

    fn archive(n: u64) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new());
        #[derive(serde::Serialize)]
        struct R {
            i: u64,
        }
        for i in 0..n {
            w.write_serialize(&R { i }).unwrap();
        }
        w.finish().unwrap()
    }

    #[tokio::test]
    async fn records_come_out_in_order_whatever_the_reads() {
        let file = archive(20_000);
        // Reads of 7 bytes split every chunk and record.
        let reader = tokio_util::io::StreamReader::new(futures_util::stream::iter(
            file.chunks(7)
                .map(|c| Ok::<_, io::Error>(bytes::Bytes::copy_from_slice(c))),
        ));
        let records: Vec<(u64, Vec<u8>)> = FramedRead::new(reader, RecordCodec::default())
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(records.len(), 20_000);
        assert!(records.iter().enumerate().all(|(i, (n, _))| *n == i as u64));
    }

    #[tokio::test]
    async fn a_truncated_archive_is_damage_after_its_whole_records() {
        let file = archive(1_000);
        let cut = &file[..file.len() - 3];
        let mut frames = FramedRead::new(cut, RecordCodec::default());
        let mut good = 0;
        let error = loop {
            match frames.next().await {
                Some(Ok(_)) => good += 1,
                Some(Err(e)) => break e,
                None => panic!("a truncated archive ended cleanly after {good} records"),
            }
        };
        assert!(matches!(error, CodecError::Archive(_)), "{error:?}");
        assert!(good < 1_000);
    }
}
