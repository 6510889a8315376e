//! Archives written by go-triton decode to exactly the values and JSON it
//! produced itself (tests/data/go-triton, copied from shared/fixtures).

use serde_json::Value as Json;
use triton_core::archive::{ArchiveErrorKind, ArchiveReader};
use triton_core::json;
use triton_core::msgpack::RecordDefect;
use triton_core::value::{Record, Value};
use triton_tests::{read_all, read_go_fixture};

/// The JSON view of every record of a fixture through the raw path (bytes
/// straight to JSON), which `triton decode` uses.
fn raw_json_lines(tri: &str) -> Vec<String> {
    let file = read_go_fixture(tri);
    let mut r = ArchiveReader::new(&file[..]);
    let mut scratch = json::RawWriter::new();
    let mut lines = Vec::new();
    while let Some(raw) = r.next_raw().expect("fixture reads") {
        let mut out = Vec::new();
        json::write_raw_record(&mut out, &mut scratch, raw).expect("valid record");
        lines.push(String::from_utf8(out).expect("UTF-8"));
    }
    lines
}

#[test]
fn raw_json_path_prints_what_the_value_path_prints() {
    for tri in [
        "small.tri",
        "exotic.tri",
        "multiflush.tri",
        "incompressible.tri",
    ] {
        let (records, _) = read_all(&read_go_fixture(tri));
        assert_eq!(raw_json_lines(tri), json_lines(&records), "{tri}");
    }
}

fn json_lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            json::write_record(&mut out, r);
            String::from_utf8(out).expect("JSON view is UTF-8")
        })
        .collect()
}

fn go_lines(name: &str) -> Vec<String> {
    String::from_utf8(read_go_fixture(name))
        .expect("fixture is UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Our JSON must equal Go's `triton cat` output line for line.
fn assert_same_json(tri: &str, go_json: &str) {
    let (records, err) = read_all(&read_go_fixture(tri));
    assert!(err.is_none(), "{tri}: {err:?}");
    let ours = json_lines(&records);
    let go = go_lines(go_json);
    assert_eq!(ours.len(), go.len(), "{tri}: record count");
    for (i, (a, b)) in ours.iter().zip(&go).enumerate() {
        assert_eq!(a, b, "{tri}: record {i}");
    }
}

#[test]
fn multiflush_four_concatenated_streams_match_go() {
    assert_same_json("multiflush.tri", "multiflush.json");
    let (records, _) = read_all(&read_go_fixture("multiflush.tri"));
    assert_eq!(records.len(), 12_915);
}

#[test]
fn incompressible_uncompressed_chunks_match_go() {
    assert_same_json("incompressible.tri", "incompressible.json");
}

#[test]
fn small_matches_go_except_the_empty_bin_go_reads_as_nil() {
    let (records, err) = read_all(&read_go_fixture("small.tri"));
    assert!(err.is_none(), "{err:?}");
    let ours = json_lines(&records);
    let go = go_lines("small.json");
    assert_eq!(ours.len(), 22);
    assert_eq!(ours.len(), go.len());
    let mut differing = Vec::new();
    for (i, (a, b)) in ours.iter().zip(&go).enumerate() {
        if a != b {
            differing.push(i);
            // Go's msgp decodes `c4 00` (empty bin) as a nil []byte, which
            // json prints as null; we keep the empty bin, printed as "".
            assert_eq!(
                a.replace(r#""empty_b":"""#, r#""empty_b":null"#)
                    .replace(r#""nil_b":"""#, r#""nil_b":null"#),
                *b,
                "record {i} differs beyond the known empty-bin case"
            );
        }
    }
    assert_eq!(differing, vec![13], "only the binary record differs");
}

#[test]
fn exotic_values_print_where_go_failed() {
    let (records, err) = read_all(&read_go_fixture("exotic.tri"));
    assert!(err.is_none(), "{err:?}");
    let ours = json_lines(&records);
    let go = go_lines("exotic.json");
    // Go's json.Marshal failed on records 0 (complex) and 1 (NaN): empty lines.
    assert_eq!(go[0], "");
    assert_eq!(go[1], "");
    assert_eq!(
        ours[0],
        r#"{"c128":{"Data":"v/gAAAAAAAA/0AAAAAAAAA==","Type":4},"c64":{"Data":"P4AAAEAAAAA=","Type":3},"kind":"complex"}"#
    );
    assert_eq!(
        ours[1],
        r#"{"f32nan":"NaN","kind":"nan_inf","nan":"NaN","ninf":"-Inf","pinf":"+Inf"}"#
    );
    // Records Go could print are identical, except the standard timestamp
    // (ext -1), which we understand and print as a time.
    assert_eq!(ours[2..5], go[2..5]);
    assert_eq!(
        go[5],
        r#"{"e":{"Data":"X9MlQA==","Type":-1},"kind":"std_timestamp_ext_minus1"}"#
    );
    assert_eq!(
        ours[5],
        r#"{"e":"2020-12-11T07:52:32Z","kind":"std_timestamp_ext_minus1"}"#
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn bits_of(node: &[Json]) -> u64 {
    let s = node[2].as_str().expect("bits");
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex bits")
}

/// Checks one decoded value against go-triton's typed view `[type, value, bits]`.
fn check_typed(path: &str, ours: &Value, node: &Json) {
    let node = node
        .as_array()
        .unwrap_or_else(|| panic!("{path}: typed node"));
    let ty = node[0].as_str().expect("type name");
    let text = node[1].as_str();
    match (ty, ours) {
        ("int64", Value::Int(i)) => assert_eq!(Some(i.to_string().as_str()), text, "{path}"),
        ("uint64", Value::UInt(u)) => assert_eq!(Some(u.to_string().as_str()), text, "{path}"),
        ("float32", Value::F32(f)) => assert_eq!(u64::from(f.to_bits()), bits_of(node), "{path}"),
        ("float64", Value::F64(f)) => assert_eq!(f.to_bits(), bits_of(node), "{path}"),
        ("string", Value::Str(s)) => assert_eq!(s.as_str(), text, "{path}"),
        ("string(invalid-utf8,hex)", Value::Str(s)) => {
            assert_eq!(s.as_bytes(), hex(text.expect("hex")), "{path}")
        }
        ("[]byte(hex)", Value::Bin(b)) => assert_eq!(*b, hex(text.expect("hex")), "{path}"),
        ("nil", Value::Nil) => {}
        ("bool", Value::Bool(b)) => assert_eq!(Some(*b), node[1].as_bool(), "{path}"),
        ("time.Time", Value::Timestamp(ts)) => {
            assert_eq!(ts.ext_type(), 5, "{path}: go time is ext 5");
            assert_eq!(Some(ts.to_string().as_str()), text, "{path}");
        }
        ("*msgp.RawExtension", v) => {
            let want_type = node[1]["type"].as_i64().expect("ext type");
            let want_data = hex(node[1]["data_hex"].as_str().expect("ext data"));
            let (t, d) = match v {
                Value::Ext(t, d) => (i64::from(*t), d.clone()),
                Value::Timestamp(ts) => (i64::from(ts.ext_type()), ts.to_ext_data()),
                other => panic!("{path}: ext decoded as {other:?}"),
            };
            assert_eq!((t, d), (want_type, want_data), "{path}");
        }
        ("complex64" | "complex128", Value::Ext(t, d)) => {
            assert_eq!(
                i64::from(*t),
                if ty == "complex64" { 3 } else { 4 },
                "{path}"
            );
            assert_eq!(d.len(), if ty == "complex64" { 8 } else { 16 }, "{path}");
        }
        ("[]interface{}", Value::Array(items)) => {
            let want = node[1].as_array().expect("array");
            assert_eq!(items.len(), want.len(), "{path}");
            for (i, (a, b)) in items.iter().zip(want).enumerate() {
                check_typed(&format!("{path}[{i}]"), a, b);
            }
        }
        ("map[string]interface{}", Value::Map(pairs)) => {
            let want = node[1].as_object().expect("map");
            assert_eq!(pairs.len(), want.len(), "{path}");
            for (k, v) in pairs {
                let Value::Str(k) = k else {
                    panic!("{path}: non-string key {k:?}")
                };
                let key = typed_key(k.as_bytes());
                let w = want
                    .get(&key)
                    .unwrap_or_else(|| panic!("{path}.{key} missing in Go's view"));
                check_typed(&format!("{path}.{key}"), v, w);
            }
        }
        (ty, v) => panic!("{path}: Go saw {ty}, we decoded {v:?}"),
    }
}

/// go-triton's typed dump names invalid UTF-8 keys `<invalid-utf8-hex:..>`.
fn typed_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) => s.to_string(),
        Err(_) => format!(
            "<invalid-utf8-hex:{}>",
            k.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn assert_typed(tri: &str, typed: &str) {
    let (records, err) = read_all(&read_go_fixture(tri));
    assert!(err.is_none(), "{tri}: {err:?}");
    let lines = go_lines(typed);
    assert_eq!(records.len(), lines.len(), "{tri}");
    for (i, (rec, line)) in records.into_iter().zip(&lines).enumerate() {
        let node: Json = serde_json::from_str(line).expect("typed json");
        check_typed(&format!("{tri}#{i}"), &rec.into_value(), &node);
    }
}

#[test]
fn small_keeps_every_type_distinction_go_wrote() {
    assert_typed("small.tri", "small.typed.json");
}

#[test]
fn exotic_keeps_ext_types_nan_bits_and_invalid_utf8() {
    assert_typed("exotic.tri", "exotic.typed.json");
}

#[test]
fn raw_mode_yields_the_exact_msgpack_bytes() {
    // small.msgpack is the decompressed content of small.tri.
    let expected = read_go_fixture("small.msgpack");
    let tri = read_go_fixture("small.tri");
    let mut r = ArchiveReader::new(&tri[..]);
    let mut joined = Vec::new();
    let mut n = 0;
    while let Some(raw) = r.next_raw().expect("small.tri reads") {
        joined.extend_from_slice(raw);
        n += 1;
    }
    assert_eq!(n, 22);
    assert_eq!(joined, expected);
}

/// Each error fixture: how many records come first, then which error, where.
#[test]
fn error_fixtures_give_records_then_the_right_error() {
    let check =
        |name: &str, records: usize, offset: u64, want: &dyn Fn(&ArchiveErrorKind) -> bool| {
            let (got, err) = read_all(&read_go_fixture(name));
            assert_eq!(got.len(), records, "{name}: records before the error");
            let err = err.unwrap_or_else(|| panic!("{name}: no error"));
            assert!(want(&err.kind), "{name}: unexpected error {err}");
            assert_eq!(err.offset, offset, "{name}: offset in {err}");
            assert_eq!(err.record, records as u64, "{name}: record index in {err}");
            assert!(err.is_corrupt());
        };
    check("notmap.tri", 1, 10, &|k| {
        matches!(
            k,
            ArchiveErrorKind::Record {
                defect: RecordDefect::NotAMap { found: "array" },
                ..
            }
        )
    });
    check("intkey.tri", 0, 10, &|k| {
        matches!(
            k,
            ArchiveErrorKind::Record {
                defect: RecordDefect::NonStringKey { found: "int" },
                ..
            }
        )
    });
    // small.tri minus 7 bytes: the second chunk (at 3215) is cut short.
    check("truncated.tri", 3, 3215, &|k| {
        matches!(
            k,
            ArchiveErrorKind::TruncatedChunk {
                expected: 1470,
                got: 1463
            }
        )
    });
    // Byte 2342 flipped lies in the first data chunk (at 10).
    check("corrupt.tri", 0, 10, &|k| {
        matches!(
            k,
            ArchiveErrorKind::BadBlock { .. } | ArchiveErrorKind::BadChecksum { .. }
        )
    });
    check("noheader.tri", 0, 0, &|k| {
        matches!(k, ArchiveErrorKind::MissingStreamIdentifier { found: 0x00 })
    });
    let (got, err) = read_all(&read_go_fixture("empty.tri"));
    assert!(
        got.is_empty() && err.is_none(),
        "empty.tri is a valid empty archive"
    );
}

/// go-triton's `time.Time` (ext 5) and MessagePack timestamps (ext -1)
/// read into typed structs, as `Timestamp` or (with the serde helper) as
/// `SystemTime`, and into `Value` fields of typed structs; any other
/// extension read as a timestamp is an error that says what it is.
#[test]
fn go_times_read_into_typed_records() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use triton_core::value::{system_time, Timestamp};

    #[derive(serde::Deserialize)]
    struct AsSystemTime {
        #[serde(with = "system_time")]
        t_utc: SystemTime,
    }
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: String,
        #[serde(default)]
        e: Option<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Standard {
        e: Timestamp,
    }

    // small.tri: the record holding go-triton's time.Time.
    let small = read_go_fixture("small.tri");
    let mut r = ArchiveReader::new(&small[..]);
    let mut found = None;
    while let Some(raw) = r.next_raw().expect("fixture reads") {
        let raw = raw.to_vec();
        let record = triton_core::msgpack::decode_record(&raw).unwrap();
        if record.get("t_utc").is_some() {
            found = Some(raw);
        }
    }
    let raw = found.expect("small.tri holds t_utc");
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Only {
        t_utc: Timestamp,
    }
    let typed: Only = triton_core::msgpack::from_record_slice(&raw).unwrap();
    assert_eq!(typed.t_utc.to_string(), "2020-12-11T07:52:48.123456789Z");
    assert_eq!(typed.t_utc.secs(), 1_607_673_168);
    let as_system: AsSystemTime = triton_core::msgpack::from_record_slice(&raw).unwrap();
    assert_eq!(
        as_system.t_utc,
        UNIX_EPOCH + Duration::new(1_607_673_168, 123_456_789)
    );
    // Written back, the timestamp is go-triton's ext 5 again.
    let again = triton_core::msgpack::to_record_vec(&Only { t_utc: typed.t_utc });
    let again = again.unwrap_or_else(|e| panic!("{e}"));
    let back = triton_core::msgpack::decode_record(&again).unwrap();
    assert_eq!(back.get("t_utc"), Some(&Value::Timestamp(typed.t_utc)));
    assert_eq!(Timestamp::from(as_system.t_utc), typed.t_utc);

    // exotic.tri: ext -1 read as a timestamp; ext 42 kept as an extension
    // in a Value, and refused, with its type named, as a timestamp.
    let exotic = read_go_fixture("exotic.tri");
    let mut r = ArchiveReader::new(&exotic[..]);
    let (mut standard, mut custom) = (None, None);
    while let Some(raw) = r.next_raw().expect("fixture reads") {
        let raw = raw.to_vec();
        let Ok(k) = triton_core::msgpack::from_record_slice::<Kind>(&raw) else {
            continue;
        };
        match k.kind.as_str() {
            "std_timestamp_ext_minus1" => standard = Some((raw, k.e)),
            "custom_ext" => custom = Some((raw, k.e)),
            _ => {}
        }
    }
    let (raw, value) = standard.expect("exotic.tri holds an ext -1 timestamp");
    match value {
        Some(Value::Timestamp(t)) => assert_eq!(t.secs(), 1_607_673_152),
        other => panic!("{other:?}"),
    }
    let typed: Standard = triton_core::msgpack::from_record_slice(&raw).unwrap();
    assert_eq!(typed.e.secs(), 1_607_673_152);
    let (raw, value) = custom.expect("exotic.tri holds an ext 42");
    assert_eq!(value, Some(Value::Ext(42, b"hello".to_vec())));
    let e = triton_core::msgpack::from_record_slice::<Standard>(&raw)
        .err()
        .expect("ext 42 is no timestamp");
    assert!(e.to_string().contains("ext type 42"), "{e}");
}
