//! Property tests of the codec and the key names, through the public API
//! only, so they run with and without the default features.
//!
//! - records written with [`ArchiveWriter`] read back equal by every reader
//!   (direct, read-ahead, the I/O-free [`Decoder`]), however the input is
//!   cut into reads and however records fall across 64 KiB chunks;
//! - archive keys format and parse back to the same key, and parsing any
//!   string returns (never panics), giving back that very string when it
//!   accepts it.
//!
//! The case counts are kept small so that the whole file runs in seconds.

use std::io::{self, Read};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use triton_core::archive::{ArchiveError, ArchiveReader, ArchiveWriter, Decoder};
use triton_core::key::{client_prefix, day_prefix, ArchiveKey, KeyError};
use triton_core::msgpack::{decode_record, encode_record, RecordRef};
use triton_core::time::Date;
use triton_core::value::{Record, Str, Timestamp, Value};

/// `cases` per property. A failing case is saved beside this file
/// (`properties.proptest-regressions`, to commit) and tried first on the
/// next run; `WithSource` because the default looks for a `lib.rs` that an
/// integration test does not have, and says so on every run.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---- values and records -----------------------------------------------------

/// Bytes for `str` and `bin`, mostly short, sometimes past the inline size
/// of `Str` (22) and the one-byte length headers (255); not always UTF-8.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..24),
        1 => vec(any::<u8>(), 24..300),
    ]
}

fn text() -> impl Strategy<Value = Str> {
    prop_oneof![
        3 => "[a-z_]{0,12}".prop_map(|s| Str::from(s.as_str())),
        1 => any::<String>().prop_map(|s| Str::from(s.as_str())),
        1 => bytes().prop_map(|b| Str::from_bytes(&b)),
    ]
}

/// Every scalar the record model holds, each in the form the decoder gives
/// back: an unsigned value below 128 is written as a positive fixint, which
/// reads as `Int`, and ext types 5 and -1 read as timestamps, so those are
/// generated as `Int` and `Timestamp` instead. NaN is left out because it
/// is not equal to itself; the byte comparison in the tests would still
/// catch a changed bit pattern of any other float.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-40i64..300).prop_map(Value::Int),
        (128u64..).prop_map(Value::UInt),
        any::<f32>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::F32),
        any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::F64),
        text().prop_map(Value::Str),
        bytes().prop_map(Value::Bin),
        (
            any::<i8>().prop_filter("timestamp ext", |t| *t != 5 && *t != -1),
            bytes()
        )
            .prop_map(|(ty, data)| Value::Ext(ty, data)),
        (any::<i64>(), 0u32..1_000_000_000, any::<bool>()).prop_map(|(secs, nanos, std)| {
            let ts = Timestamp::new(secs, nanos);
            Value::Timestamp(if std { ts.standard() } else { ts })
        }),
        (0i64..1 << 35, prop_oneof![Just(0u32), 0u32..1_000_000_000])
            .prop_map(|(secs, nanos)| Value::Timestamp(Timestamp::new(secs, nanos).standard())),
    ]
}

/// Scalars, arrays and maps nested a few levels; nested map keys may be
/// any value, as MessagePack allows.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

/// A large `bin` that makes records cross chunk boundaries: `len` bytes,
/// random (stored uncompressed) or repetitive (compressed).
fn filler(len: usize, seed: u64, random: bool) -> Value {
    let mut x = seed | 1;
    let data = (0..len)
        .map(|i| {
            if random {
                // xorshift64: cheap bytes that snappy cannot shrink.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                (i % 7) as u8
            }
        })
        .collect();
    Value::Bin(data)
}

fn record() -> impl Strategy<Value = Record> {
    let fields = vec((text(), value()), 0..8);
    let big = prop_oneof![
        3 => Just(None),
        1 => (0usize..100_000, any::<u64>(), any::<bool>()).prop_map(Some),
    ];
    (fields, big).prop_map(|(mut fields, big)| {
        if let Some((len, seed, random)) = big {
            fields.push((Str::from("filler"), filler(len, seed, random)));
        }
        Record::from_fields(fields)
    })
}

/// How a record is handed to the writer.
#[derive(Clone, Copy, Debug)]
enum WriteAs {
    Record,
    Value,
    Raw,
}

fn write_mode() -> impl Strategy<Value = WriteAs> {
    prop_oneof![
        Just(WriteAs::Record),
        Just(WriteAs::Value),
        Just(WriteAs::Raw)
    ]
}

fn encoded(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(record, &mut out);
    out
}

fn write_archive(records: &[(Record, WriteAs)]) -> Result<Vec<u8>, ArchiveError> {
    let mut w = ArchiveWriter::new(Vec::new());
    for (record, mode) in records {
        match mode {
            WriteAs::Record => w.write_record(record)?,
            WriteAs::Value => w.write_value(&record.clone().into_value())?,
            WriteAs::Raw => w.write_raw(&encoded(record))?,
        }
    }
    assert_eq!(w.stats().records, records.len() as u64);
    w.finish()
}

/// A reader that returns at most `sizes[i % len]` bytes per call, so that
/// chunk headers, payloads and records are split at varied places.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    call: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.call % self.sizes.len()];
        self.call += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn read_all<R: Read>(mut r: ArchiveReader<R>) -> Result<Vec<Record>, ArchiveError> {
    let mut records = Vec::new();
    while let Some(record) = r.next_record()? {
        records.push(record);
    }
    assert_eq!(r.records_read(), records.len() as u64);
    Ok(records)
}

/// Feeds the [`Decoder`] `step` bytes at a time, as an async caller
/// receiving a body would.
fn decode_fed(bytes: &[u8], step: usize) -> Result<Vec<Record>, ArchiveError> {
    let mut decoder = Decoder::new();
    let mut records = Vec::new();
    let mut pending = Vec::new();
    for piece in bytes.chunks(step) {
        pending.extend_from_slice(piece);
        loop {
            while let Some(record) = decoder.next_record()? {
                records.push(record);
            }
            let used = decoder.feed(&pending)?;
            if used == 0 {
                break;
            }
            pending.drain(..used);
        }
    }
    while let Some(record) = decoder.next_record()? {
        records.push(record);
    }
    decoder.finish(&pending)?;
    Ok(records)
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn records_read_back_equal(
        records in vec((record(), write_mode()), 0..24),
        sizes in vec(prop_oneof![1usize..16, 1usize..70_000], 1..6),
        step in prop_oneof![1usize..64, 64usize..200_000],
    ) {
        let file = write_archive(&records).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<Record> = records.into_iter().map(|(r, _)| r).collect();

        let direct = read_all(ArchiveReader::new(Pieces { data: &file, sizes, call: 0 }));
        let ahead = ArchiveReader::with_read_ahead(io::Cursor::new(file.clone()))
            .map_err(|e| TestCaseError::fail(e.to_string()))
            .map(read_all)?;
        let fed = decode_fed(&file, step);
        for (reader, got) in [("direct", direct), ("read-ahead", ahead), ("decoder", fed)] {
            let got = got.map_err(|e| TestCaseError::fail(format!("{reader}: {e}")))?;
            prop_assert_eq!(got.len(), expected.len(), "{}", reader);
            for (got, want) in got.iter().zip(&expected) {
                prop_assert_eq!(got, want, "{}", reader);
                // Equality treats 0.0 and -0.0 alike; the bytes do not.
                prop_assert_eq!(encoded(got), encoded(want), "{}", reader);
            }
        }
    }
}

// ---- views ---------------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// A view reads what the decoder reads: every field, nested values
    /// converted one by one, and `get` as `Record::get`.
    #[test]
    fn views_read_what_the_decoder_reads(record in record()) {
        let bytes = encoded(&record);
        let view = RecordRef::new(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(view.len(), record.len());
        prop_assert_eq!(view.as_bytes(), &bytes[..]);
        let fields: Vec<(Str, Value)> =
            view.fields().map(|(k, v)| (k.to_str(), v.to_value())).collect();
        prop_assert_eq!(encoded(&Record::from_fields(fields)), bytes.clone());
        prop_assert_eq!(encoded(&view.to_record()), bytes.clone());
        for (key, _) in record.fields() {
            let Some(key) = key.as_str() else { continue };
            let got = view.get(key).map(|v| v.to_value());
            prop_assert_eq!(got.as_ref(), record.get(key));
        }
        let absent = "\u{0}absent";
        prop_assert_eq!(view.get(absent).is_some(), record.get(absent).is_some());
    }

    /// Bytes that are not a record (a promise broken by a caller of
    /// `new_unchecked`) read as fewer fields, never as a panic; `new`
    /// refuses them.
    #[test]
    fn views_of_any_bytes_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            record().prop_map(|r| encoded(&r)).prop_flat_map(|b| {
                let n = b.len();
                (Just(b), 0..n.max(1), any::<u8>())
            }).prop_map(|(mut b, at, x)| {
                if let Some(v) = b.get_mut(at) { *v = x; }
                b
            }),
        ],
    ) {
        let view = RecordRef::new_unchecked(&bytes);
        for (k, v) in view.fields() {
            let _ = (k.to_string_lossy(), v.to_value(), format!("{v:?}"));
        }
        let _ = (view.get("type"), view.to_record(), format!("{view:?}"));
        // Valid bytes need not be the canonical encoding (an int 16 of 0,
        // say): the view gives the values the decoder gives, compared by
        // their encodings (a NaN is not equal to itself).
        if RecordRef::new(&bytes).is_ok() {
            let decoded = decode_record(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(encoded(&view.to_record()), encoded(&decoded));
        }
    }
}

// ---- archive keys -------------------------------------------------------------

/// Stream names as `ArchiveKey::new` accepts them: non-empty, no `/`;
/// `-`, dots and `.tri` included on purpose.
fn stream_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.-]{1,24}",
        "[a-z]{1,8}(-[a-z0-9]{1,8}){1,3}",
        "[a-z]{1,8}\\.tri",
        "[^/]{1,16}",
    ]
}

/// Client names: non-empty, neither `-` nor `/`.
fn client_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_.]{1,16}", Just("store".to_owned()), "[^/-]{1,12}"]
}

/// The last second of 9999-12-31, the last day a directory can name.
const LAST_SECOND: u64 = 253_402_300_799;

#[test]
fn last_second_is_the_end_of_the_last_day() {
    assert_eq!(Date::from_unix(LAST_SECOND as i64), Date::MAX);
    assert_eq!(Date::MAX.to_unix() + 86_399, LAST_SECOND as i64);
}

/// Unix seconds that `ArchiveKey::new` accepts.
fn timestamp() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=LAST_SECOND,
        1_400_000_000u64..1_900_000_000,
        Just(LAST_SECOND)
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (0i32..=9999, 1u8..=12, 1u8..=31)
        .prop_filter_map("no such day", |(y, m, d)| Date::new(y, m, d).ok())
}

/// Strings that often look like keys and often do not quite.
fn key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{6,9}/[a-z0-9/.-]{0,12}-[0-9a]{0,22}(\\.tri)?",
        "[0-9/.tri-]{0,30}",
        (date(), stream_name(), "[a-z-]{0,4}", "0?[0-9]{1,21}")
            .prop_map(|(d, s, c, t)| format!("{d}/{s}-{c}-{t}.tri")),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn new_keys_display_and_parse_back(
        stream in stream_name(),
        client in client_name(),
        ts in timestamp(),
    ) {
        let key = ArchiveKey::new(stream.clone(), client.clone(), ts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(key.date(), Date::from_unix(ts as i64));
        let text = key.to_string();
        prop_assert_eq!(ArchiveKey::parse(&text), Ok(key.clone()));
        prop_assert_eq!(text.parse::<ArchiveKey>(), Ok(key.clone()));
        prop_assert!(key.matches(&stream, Some(&client)));
        prop_assert!(text.starts_with(&day_prefix(key.date(), &stream)));
        prop_assert!(text.starts_with(&client_prefix(key.date(), &stream, &client)));
    }

    /// Parsing does not check the directory against the timestamp, and
    /// takes any 64-bit timestamp; every such key keeps its spelling.
    #[test]
    fn formatted_parts_parse_back(
        date in date(),
        stream in stream_name(),
        client in client_name(),
        ts in any::<u64>(),
    ) {
        let text = format!("{date}/{stream}-{client}-{ts}.tri");
        let key = ArchiveKey::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            (key.date(), key.stream(), key.client(), key.timestamp()),
            (date, stream.as_str(), client.as_str(), ts)
        );
        prop_assert_eq!(key.to_string(), text);
        prop_assert_eq!(date.to_string().parse::<Date>().ok(), Some(date));
    }

    #[test]
    fn parsing_any_string_returns_and_keeps_the_spelling(text in key_like()) {
        match ArchiveKey::parse(&text) {
            Ok(key) => prop_assert_eq!(key.to_string(), text),
            Err(KeyError::InvalidKey { key, .. }) => prop_assert_eq!(key, text),
            Err(other) => prop_assert!(false, "not an InvalidKey: {other:?}"),
        }
    }

    #[test]
    fn invalid_parts_are_refused(
        stream in stream_name(),
        client in client_name(),
        ts in timestamp(),
        late in 1u64..=u64::MAX - LAST_SECOND,
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![Just('/'), Just('-')],
    ) {
        // A `-` is fine in a stream name, a `/` in neither.
        let mut broken = client.clone();
        let boundaries: Vec<usize> =
            client.char_indices().map(|(i, _)| i).chain([client.len()]).collect();
        broken.insert(boundaries[at.index(boundaries.len())], bad);
        prop_assert!(ArchiveKey::new(stream.clone(), broken, ts).is_err());
        let slashed = format!("{stream}/");
        prop_assert!(ArchiveKey::new(slashed, client.clone(), ts).is_err());
        let timestamp = LAST_SECOND + late;
        prop_assert_eq!(
            ArchiveKey::new(stream, client, timestamp),
            Err(KeyError::TimestampOutOfRange { timestamp })
        );
    }
}
