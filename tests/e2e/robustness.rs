//! The reader on damaged input: mutations of real archives (truncations, bit
//! flips, chunk type and length corruption, random byte damage) must give
//! records then a typed error, never a panic, never wrong records, and never
//! unbounded memory. Deterministic (seeded), so a failure reproduces; the
//! iteration counts bound the time.

use std::io::{self, Read};

use triton_core::archive::{frame, ArchiveReader, Decoder};
use triton_core::msgpack::encode_record;
use triton_core::value::Record;
use triton_tests::{read_all, read_go_fixture, Rng};

/// Bytes of each record, as the encoder would write them; comparing these
/// avoids NaN != NaN.
fn encoded(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|r| {
            let mut v = Vec::new();
            encode_record(r, &mut v);
            v
        })
        .collect()
}

/// Offsets of every chunk header in a valid archive.
fn chunk_offsets(file: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + frame::HEADER_LEN <= file.len() {
        out.push(at);
        let (_, len) = frame::parse_header([file[at], file[at + 1], file[at + 2], file[at + 3]]);
        at += frame::HEADER_LEN + len;
    }
    out
}

/// An error as (file offset, record index, message), for comparing readers.
type Failure = (u64, u64, String);

/// Every record (re-encoded) up to the first error, and that error.
fn read_records<R: io::Read>(
    mut r: ArchiveReader<R>,
    original: usize,
    what: &str,
) -> (Vec<Vec<u8>>, Option<Failure>) {
    let mut got = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                let mut v = Vec::new();
                encode_record(&rec, &mut v);
                got.push(v);
                assert!(got.len() <= original * 2 + 16, "{what}: runaway");
            }
            Ok(None) => return (got, None),
            Err(e) => {
                // Display must work for every error.
                let message = e.to_string();
                assert!(!message.is_empty());
                // Fused: nothing more after an error.
                assert!(matches!(r.next_record(), Ok(None)), "{what}: not fused");
                return (got, Some((e.offset, e.record, message)));
            }
        }
    }
}

/// Reads a mutated archive; whatever it yields before its error must be a
/// prefix of the original's records when `must_be_prefix`. Returns whether
/// the reader reported an error, and how many records it gave.
fn check_mutant(
    original: &[Vec<u8>],
    mutant: &[u8],
    must_be_prefix: bool,
    what: &str,
) -> (bool, usize) {
    // A small record limit bounds memory on hostile lengths.
    let direct = ArchiveReader::new(mutant).with_max_record_size(1 << 20);
    let (got, error) = read_records(direct, original.len(), what);
    // The read-ahead thread must change nothing: same records, same error.
    let ahead = ArchiveReader::with_read_ahead(io::Cursor::new(mutant.to_vec()))
        .expect("spawn")
        .with_max_record_size(1 << 20);
    let (got_ahead, error_ahead) = read_records(ahead, original.len(), what);
    assert_eq!(got, got_ahead, "{what}: read-ahead records differ");
    assert_eq!(error, error_ahead, "{what}: read-ahead error differs");
    let failed = error.is_some();
    if must_be_prefix {
        assert!(
            got.len() <= original.len(),
            "{what}: more records than the original"
        );
        assert_eq!(got[..], original[..got.len()], "{what}: wrong records");
    }
    (failed, got.len())
}

fn fixture_records(name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let file = read_go_fixture(name);
    let (records, err) = read_all(&file);
    assert!(err.is_none());
    (file, encoded(&records))
}

#[test]
fn every_truncation_gives_a_prefix_then_an_error() {
    for name in ["small.tri", "exotic.tri"] {
        let (file, original) = fixture_records(name);
        for cut in 0..file.len() {
            let (failed, _) = check_mutant(
                &original,
                &file[..cut],
                true,
                &format!("{name} cut at {cut}"),
            );
            // A cut inside a chunk is always an error (a cut between chunks
            // is a shorter valid archive: the format cannot tell).
            if !chunk_offsets(&file).contains(&cut) && cut > 0 {
                assert!(failed, "{name} cut at {cut} read cleanly");
            }
        }
    }
}

#[test]
fn every_bit_flip_in_chunk_data_is_caught() {
    let (file, original) = fixture_records("small.tri");
    let headers = chunk_offsets(&file);
    for at in 0..file.len() {
        let in_header = headers
            .iter()
            .any(|&h| (h..h + frame::HEADER_LEN).contains(&at));
        for bit in 0..8 {
            let mut m = file.clone();
            m[at] ^= 1 << bit;
            // Payload damage is either reported or harmless: a flipped copy
            // offset can point at identical bytes, and then the CRC of the
            // (identical) output rightly matches; then every record is there.
            let what = format!("flip byte {at} bit {bit}");
            let (failed, n) = check_mutant(&original, &m, !in_header, &what);
            if !in_header {
                assert!(
                    failed || n == original.len(),
                    "{what}: records lost silently"
                );
            }
        }
    }
}

#[test]
fn every_chunk_type_in_every_position() {
    let (file, original) = fixture_records("incompressible.tri");
    for &h in &chunk_offsets(&file) {
        for ty in 0..=255u8 {
            let mut m = file.clone();
            m[h] = ty;
            // Turning a data chunk into a skippable one drops its data, so
            // later records may differ; only absence of panics is required.
            check_mutant(
                &original,
                &m,
                false,
                &format!("chunk at {h} as type {ty:#04x}"),
            );
        }
    }
}

#[test]
fn corrupt_chunk_lengths() {
    let (file, original) = fixture_records("small.tri");
    let mut rng = Rng::new(7);
    for &h in &chunk_offsets(&file) {
        for _ in 0..300 {
            let mut m = file.clone();
            let len = match rng.below(4) {
                0 => rng.below(16) as usize,
                1 => 0xff_ffff,
                2 => frame::MAX_BLOCK + frame::CRC_LEN + rng.below(64) as usize,
                _ => rng.below(1 << 24) as usize,
            };
            m[h + 1..h + 4].copy_from_slice(&frame::header(0, len)[1..]);
            check_mutant(&original, &m, false, &format!("chunk at {h} length {len}"));
        }
    }
}

#[test]
fn random_damage_never_panics() {
    let (file, original) = fixture_records("multiflush.tri");
    let file = &file[..200_000];
    let mut rng = Rng::new(42);
    for i in 0..400 {
        let mut m = file.to_vec();
        for _ in 0..=rng.below(8) {
            let at = rng.below(m.len() as u64) as usize;
            match rng.below(3) {
                0 => m[at] = rng.next_u64() as u8,
                1 => {
                    m.truncate(at);
                    if m.is_empty() {
                        break;
                    }
                }
                _ => {
                    let extra: Vec<u8> = (0..rng.below(32)).map(|_| rng.next_u64() as u8).collect();
                    m.splice(at..at, extra);
                }
            }
        }
        check_mutant(&original, &m, false, &format!("random mutant {i}"));
    }
}

/// A reader that hands out at most `step` bytes per call, so chunk headers
/// and payloads arrive split at every possible place.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn reads_split_anywhere_give_the_same_records() {
    let (file, original) = fixture_records("small.tri");
    for step in [1, 2, 3, 5, 7, 4096] {
        let mut r = ArchiveReader::new(Trickle { data: &file, step });
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().expect("reads") {
            got.push(rec);
        }
        assert_eq!(encoded(&got), original, "step {step}");
    }
}

#[test]
fn the_io_free_decoder_fed_a_byte_at_a_time() {
    let (file, original) = fixture_records("multiflush.tri");
    let mut dec = Decoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    // Feed in small uneven pieces, as a network body might arrive.
    let mut rng = Rng::new(3);
    let mut at = 0;
    while at < file.len() {
        let n = (1 + rng.below(9000) as usize).min(file.len() - at);
        pending.extend_from_slice(&file[at..at + n]);
        at += n;
        loop {
            let used = dec.feed(&pending).expect("valid input");
            if used == 0 {
                break;
            }
            pending.drain(..used);
            while let Some(raw) = dec.next_raw().expect("valid records") {
                got.push(raw.to_vec());
            }
        }
    }
    dec.finish(&pending).expect("clean end");
    assert_eq!(got.len(), 12_915);
    // Raw bytes are Go's encoding; compare through our decoder.
    let decoded: Vec<Record> = got
        .iter()
        .map(|b| triton_core::msgpack::decode_record(b).expect("valid"))
        .collect();
    assert_eq!(encoded(&decoded), original);
}

#[test]
fn a_record_larger_than_the_limit_is_an_error_not_a_buffer() {
    // One record holding a 300 KiB string, read with a 64 KiB limit.
    let mut w = triton_core::archive::ArchiveWriter::new(Vec::new());
    let rec: Record = [("s", "x".repeat(300 << 10))].into_iter().collect();
    w.write_record(&rec).expect("write");
    let file = w.finish().expect("finish");
    let mut r = ArchiveReader::new(&file[..]).with_max_record_size(64 << 10);
    let err = r.next_record().expect_err("over the limit");
    assert!(err.to_string().contains("limit"), "{err}");
}
