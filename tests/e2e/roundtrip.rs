//! Records written by our writer read back identically: through our own
//! reader (random records, including ones larger than a chunk), and through
//! an independent decoder (Python `msgpack` + `cramjam`), since Python
//! services read these archives too.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value as Json};
use triton_core::archive::{ArchiveReader, ArchiveWriter};
use triton_core::msgpack::encode_record;
use triton_core::value::{Record, Str, Timestamp, Value};
use triton_tests::{Rng, TempDir};

fn random_str(rng: &mut Rng, max: u64) -> String {
    let alphabet = ["a", "Z", "0", " ", "é", "宇", "🚀", "\"", "\\", "\n", "<"];
    (0..rng.below(max + 1))
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
        .collect()
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let pick = rng.below(if depth > 3 { 12 } else { 15 });
    match pick {
        0 => Value::Nil,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::Int(rng.next_u64() as i64 >> rng.below(64)),
        3 => Value::UInt(rng.next_u64() >> rng.below(64)),
        4 => Value::F32(f32::from_bits(rng.next_u64() as u32)),
        5 => Value::F64(f64::from_bits(rng.next_u64())),
        6 => Value::from(random_str(rng, 40)),
        7 => Value::Bin((0..rng.below(300)).map(|_| rng.next_u64() as u8).collect()),
        8 => Value::Ext(
            rng.below(100) as i8,
            (0..rng.below(20)).map(|_| rng.next_u64() as u8).collect(),
        ),
        9 => Value::Timestamp(Timestamp::new(
            rng.next_u64() as i64 >> 30,
            rng.below(1_000_000_000) as u32,
        )),
        10 => Value::Timestamp(
            Timestamp::new(rng.below(1 << 40) as i64, rng.below(1_000_000_000) as u32).standard(),
        ),
        11 => Value::from(random_str(rng, 3)),
        12 => Value::Array(
            (0..rng.below(6))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        13 => Value::Map(
            // Distinct keys: Python dicts would fold duplicates.
            (0..rng.below(6))
                .map(|j| {
                    (
                        Value::from(format!("m{j}{}", random_str(rng, 8))),
                        random_value(rng, depth + 1),
                    )
                })
                .collect(),
        ),
        _ => Value::Str(Str::from_bytes(&[0x61, 0xff, 0xfe])),
    }
}

fn random_record(rng: &mut Rng) -> Record {
    let mut r = Record::new();
    for i in 0..rng.below(12) {
        r.push(
            format!("k{i}_{}", random_str(rng, 6)).as_str(),
            random_value(rng, 0),
        );
    }
    // Now and then a record larger than one 64 KiB chunk.
    if rng.below(50) == 0 {
        r.push("big", "y".repeat(70_000 + rng.below(100_000) as usize));
    }
    r
}

fn bytes_of(r: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    encode_record(r, &mut v);
    v
}

#[test]
fn random_records_round_trip_through_our_reader() {
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let records: Vec<Record> = (0..rng.below(400))
            .map(|_| random_record(&mut rng))
            .collect();
        let mut w = ArchiveWriter::new(Vec::new());
        for r in &records {
            w.write_record(r).expect("write");
        }
        let stats = w.stats();
        let file = w.finish().expect("finish");
        assert_eq!(stats.records, records.len() as u64);
        assert_eq!(
            stats.bytes_in,
            records
                .iter()
                .map(|r| bytes_of(r).len() as u64)
                .sum::<u64>()
        );

        let mut reader = ArchiveReader::new(&file[..]);
        let mut scratch = triton_core::json::RawWriter::new();
        let mut n = 0;
        while let Some(raw) = reader.next_raw().expect("read") {
            assert_eq!(raw, &bytes_of(&records[n])[..], "seed {seed} record {n}");
            // Both JSON paths agree on every shape of value.
            let (mut a, mut b) = (Vec::new(), Vec::new());
            triton_core::json::write_raw_record(&mut a, &mut scratch, raw).expect("valid");
            triton_core::json::write_record(&mut b, &records[n]);
            assert_eq!(a, b, "seed {seed} record {n}");
            n += 1;
        }
        assert_eq!(n, records.len(), "seed {seed}");
    }
}

#[test]
fn writer_counts_file_bytes_and_writes_nothing_for_no_records() {
    let w = ArchiveWriter::new(Vec::new());
    assert!(w.finish().expect("finish").is_empty());
    let mut w = ArchiveWriter::new(Vec::new());
    w.write_raw(&[0x81, 0xa1, b'a', 0x01])
        .expect("valid record");
    assert!(
        w.write_raw(&[0x91, 0x01]).is_err(),
        "an array is not a record"
    );
    let (file, stats) = w.finish_with_stats().expect("finish");
    assert_eq!(stats.bytes_out, file.len() as u64);
    assert_eq!(stats.records, 1);
}

fn python() -> String {
    match std::env::var("TRITON_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
            assert!(
                venv.exists(),
                "the Python cross-check needs msgpack and cramjam: run scripts/setup-python \
                 (scripts/test does) or set TRITON_PYTHON"
            );
            venv.display().to_string()
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The canonical view tests/py/tri_dump.py prints, built from our values.
fn canonical(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::Str(s) => match s.as_str() {
            Some(s) => json!(s),
            None => json!({ "$badstr": hex(s.as_bytes()) }),
        },
        Value::Bin(b) => json!({ "$bin": hex(b) }),
        Value::Array(items) => Json::Array(items.iter().map(canonical).collect()),
        Value::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let Value::Str(k) = k else {
                        panic!("test data has string keys")
                    };
                    (canonical_key(k), canonical(v))
                })
                .collect(),
        ),
        Value::Ext(t, d) => json!({ "$ext": [t, hex(d)] }),
        Value::Timestamp(ts) => json!({ "$ext": [ts.ext_type(), hex(&ts.to_ext_data())] }),
    }
}

fn canonical_key(k: &Str) -> String {
    match k.as_str() {
        Some(s) => s.to_string(),
        None => format!("$badstr:{}", hex(k.as_bytes())),
    }
}

fn float(f: f64) -> Json {
    if f.is_nan() {
        json!({ "$float": "NaN" })
    } else if f.is_infinite() {
        json!({ "$float": if f > 0.0 { "inf" } else { "-inf" } })
    } else {
        json!(f)
    }
}

#[test]
fn python_msgpack_and_cramjam_read_our_archives() {
    let dir = TempDir::new("py");
    let mut rng = Rng::new(99);
    let records: Vec<Record> = (0..3_000).map(|_| random_record(&mut rng)).collect();
    let mut w = ArchiveWriter::new(Vec::new());
    for r in &records {
        w.write_record(r).expect("write");
    }
    let file = w.finish().expect("finish");
    let tri = dir.path().join("ours.tri");
    let raw = dir.path().join("ours.raw");
    std::fs::write(&tri, &file).expect("write archive");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/tri_dump.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&tri)
        .arg("--raw-out")
        .arg(&raw)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "tri_dump.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The framing decodes to exactly the MessagePack we wrote...
    let want_raw: Vec<u8> = records.iter().flat_map(bytes_of).collect();
    assert_eq!(std::fs::read(&raw).expect("raw out"), want_raw);
    // ...and msgpack-python sees the same values, record by record.
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), records.len());
    for (i, (line, rec)) in lines.iter().zip(&records).enumerate() {
        let theirs: Json = serde_json::from_str(line).expect("python json");
        let ours = canonical(&rec.clone().into_value());
        assert_eq!(theirs, ours, "record {i}");
    }
}

/// One map `{"s": "xx…"}` of exactly `size` MessagePack bytes (size >= 8).
fn record_of_size(size: usize) -> Vec<u8> {
    let n = size - 8; // fixmap, fixstr "s", str32 header
    let mut out = vec![0x81, 0xa1, b's', 0xdb];
    out.extend_from_slice(&(n as u32).to_be_bytes());
    out.resize(size, b'x');
    out
}

/// Writer and reader agree on one limit: what the writer accepts reads
/// back, and a record the reader would refuse is refused when written
/// (`triton encode` once wrote a 70 MiB record that `decode` refused).
#[test]
fn the_writer_refuses_records_the_reader_would_refuse() {
    use triton_core::archive::ArchiveErrorKind;
    use triton_core::msgpack::{RecordDefect, DEFAULT_MAX_RECORD_SIZE};
    let max = DEFAULT_MAX_RECORD_SIZE;
    let fits = record_of_size(max);
    let mut w = ArchiveWriter::new(Vec::new());
    w.write_raw(b"\x81\xa1a\x01").unwrap();
    w.write_raw(&fits).unwrap();
    let e = w.write_raw(&record_of_size(max + 1)).unwrap_err();
    assert_eq!(e.record, 2, "{e}");
    match &e.kind {
        ArchiveErrorKind::Record {
            defect: RecordDefect::Oversized { size, max: limit },
            ..
        } => assert_eq!((*size, *limit), (max + 1, max)),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&format!("{} bytes", max + 1)), "{e}");
    // The same through the typed and value paths.
    let big: Record = [("s", Value::from("x".repeat(max)))].into_iter().collect();
    assert!(w.write_record(&big).is_err());
    // Refused records leave the archive as it was: both others read back.
    let bytes = w.finish().unwrap();
    let mut r = ArchiveReader::new(&bytes[..]);
    assert_eq!(r.next_raw().unwrap().map(<[u8]>::len), Some(4));
    assert_eq!(r.next_raw().unwrap().map(<[u8]>::len), Some(max));
    assert!(r.next_raw().unwrap().is_none());
    // A lower limit, set on both sides.
    let mut w = ArchiveWriter::new(Vec::new()).with_max_record_size(1000);
    w.write_raw(&record_of_size(1000)).unwrap();
    assert!(w.write_raw(&record_of_size(1001)).is_err());
}
