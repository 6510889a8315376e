//! The JSON view of records, as printed by `triton decode` and `triton cat`.
//!
//! For every value go-triton's `triton cat` could print, the output is byte
//! for byte what it printed (Go's `encoding/json`), so existing pipelines and
//! diffs keep working:
//!
//! | MessagePack value        | JSON                                                   |
//! |--------------------------|--------------------------------------------------------|
//! | map                      | object, keys sorted by bytes (as Go sorts them)        |
//! | int, uint                | exact integer (all 64 bits, no float rounding)         |
//! | float64                  | shortest form that reads back the same; exponent form below 1e-6 and from 1e21 (`1e-7`, `1e+21`); whole numbers without `.0` |
//! | float32                  | shortest float32 form (`3.14`, not `3.140000104904175`) |
//! | NaN, +Inf, -Inf          | the strings `"NaN"`, `"+Inf"`, `"-Inf"` (Go failed here) |
//! | str                      | string; `<`, `>`, `&`, U+2028, U+2029 escaped as Go does; each invalid UTF-8 byte becomes U+FFFD |
//! | bin                      | standard padded base64 string                           |
//! | timestamp (ext 5 or -1)  | RFC 3339 UTC string with nanoseconds, trailing zeros trimmed |
//! | other ext (incl. complex)| `{"Data":"<base64>","Type":<code>}` (Go's form for unknown ext) |
//! | non-string map key       | the key's JSON text, as a string                        |
//!
//! Writing never fails and never aborts on an odd value: every record
//! produces one line.

mod lines;
mod raw;

use base64::Engine as _;

pub use self::lines::{write_lines, LinesError};
pub use self::raw::RawWriter;
use crate::msgpack::{self, RecordError};
use crate::value::{Record, Str, Timestamp, Value};

/// Appends the JSON view of a record given as MessagePack bytes (as
/// [`ArchiveReader::next_raw`](crate::archive::ArchiveReader::next_raw)
/// yields them), without building values. Prints exactly what
/// [`write_record`] prints for the decoded record; `scratch` is reused
/// between calls.
pub fn write_raw_record(
    out: &mut Vec<u8>,
    scratch: &mut RawWriter,
    record: &[u8],
) -> Result<(), RecordError> {
    if scratch.write(out, record).is_ok() {
        return Ok(());
    }
    // Rare shapes (non-string keys in nested maps) and invalid input take
    // the value path, which handles, or reports, everything.
    let rec = msgpack::decode_record(record)?;
    write_record(out, &rec);
    Ok(())
}

/// Appends the JSON view of `record` (no trailing newline) to `out`.
pub fn write_record(out: &mut Vec<u8>, record: &Record) {
    let mut fields: Vec<&(Str, Value)> = record.fields().iter().collect();
    // Stable, so duplicate keys keep their wire order.
    fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k.as_bytes());
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Appends the JSON view of one value to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::F32(f) => write_f32(out, *f),
        Value::F64(f) => write_f64(out, *f),
        Value::Str(s) => write_str(out, s.as_bytes()),
        Value::Bin(b) => write_base64(out, b),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Map(pairs) => write_map(out, pairs),
        Value::Ext(ty, data) => write_ext(out, *ty, data),
        Value::Timestamp(ts) => write_timestamp(out, ts),
    }
}

fn write_ext(out: &mut Vec<u8>, ty: i8, data: &[u8]) {
    out.extend_from_slice(b"{\"Data\":");
    write_base64(out, data);
    out.extend_from_slice(b",\"Type\":");
    write_int(out, i64::from(ty));
    out.push(b'}');
}

fn write_timestamp(out: &mut Vec<u8>, ts: &Timestamp) {
    let mut s = String::with_capacity(40);
    crate::time::write_rfc3339_nanos(ts.secs(), ts.nanos(), &mut s);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn write_map(out: &mut Vec<u8>, pairs: &[(Value, Value)]) {
    // Keys are rendered first so that non-string keys sort by their text.
    let mut keys: Vec<(std::borrow::Cow<'_, [u8]>, &Value)> = pairs
        .iter()
        .map(|(k, v)| match k {
            Value::Str(s) => (std::borrow::Cow::Borrowed(s.as_bytes()), v),
            other => {
                let mut text = Vec::new();
                write_value(&mut text, other);
                (std::borrow::Cow::Owned(text), v)
            }
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

fn write_base64(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(
        start + base64::encoded_len(data.len(), true).unwrap_or(0),
        0,
    );
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

fn write_uint(out: &mut Vec<u8>, mut u: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i < 0 {
        out.push(b'-');
    }
    write_uint(out, i.unsigned_abs());
}

/// Go's `encoding/json` float format, given Rust's shortest round-trip
/// digits (`{}` and `{:e}` both produce the shortest representation).
fn write_float(
    out: &mut Vec<u8>,
    plain: std::fmt::Arguments<'_>,
    exp: std::fmt::Arguments<'_>,
    use_exp: bool,
) {
    use std::io::Write as _;
    if !use_exp {
        let _ = out.write_fmt(plain);
        return;
    }
    let start = out.len();
    let _ = out.write_fmt(exp);
    // Rust writes `1e21`; Go writes `1e+21` (negative exponents agree: `1e-7`).
    if let Some(e) = out[start..].iter().position(|&c| c == b'e') {
        let at = start + e + 1;
        if out.get(at) != Some(&b'-') {
            out.insert(at, b'+');
        }
    }
}

fn write_non_finite(out: &mut Vec<u8>, nan: bool, negative: bool) {
    let s: &[u8] = if nan {
        b"\"NaN\""
    } else if negative {
        b"\"-Inf\""
    } else {
        b"\"+Inf\""
    };
    out.extend_from_slice(s);
}

fn write_f64(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        return write_non_finite(out, f.is_nan(), f < 0.0);
    }
    let a = f.abs();
    let use_exp = a != 0.0 && !(1e-6..1e21).contains(&a);
    write_float(out, format_args!("{f}"), format_args!("{f:e}"), use_exp);
}

fn write_f32(out: &mut Vec<u8>, f: f32) {
    if !f.is_finite() {
        return write_non_finite(out, f.is_nan(), f < 0.0);
    }
    let a = f.abs();
    let use_exp = a != 0.0 && !(1e-6f32..1e21f32).contains(&a);
    write_float(out, format_args!("{f}"), format_args!("{f:e}"), use_exp);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that can be copied as they are: printable ASCII other than the
/// characters JSON or Go's HTML-safe escaping rewrite.
static SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0x20;
    while i < 0x80 {
        t[i] = !matches!(i as u8, b'"' | b'\\' | b'<' | b'>' | b'&');
        i += 1;
    }
    t
};

/// True when any of the eight bytes in `w` is not in [`SAFE`]: a control
/// character, non-ASCII, or one of `"` `\\` `<` `>` `&` (bit tricks from
/// "Bit Twiddling Hacks": a byte is zero / less than n).
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let equal = |c: u8| zero_byte(w ^ (ONES * u64::from(c)));
    (below_space
        | (w & HIGH)
        | equal(b'"')
        | equal(b'\\')
        | equal(b'<')
        | equal(b'>')
        | equal(b'&'))
        != 0
}

/// Appends `s` as a JSON string, escaping as Go's `encoding/json` does.
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut i = 0;
    let mut copied = 0;
    while i < s.len() {
        // Most text needs no escaping: step over it eight bytes at a time.
        while let Some(word) = s[i..].first_chunk::<8>() {
            if needs_escape(u64::from_le_bytes(*word)) {
                break;
            }
            i += 8;
        }
        let Some(&b) = s.get(i) else {
            break;
        };
        if SAFE[usize::from(b)] {
            i += 1;
            continue;
        }
        if b < 0x80 {
            out.extend_from_slice(&s[copied..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            i += 1;
            copied = i;
            continue;
        }
        // Multi-byte: copy valid UTF-8 as is, except U+2028/U+2029.
        let width = utf8_width(&s[i..]);
        if width == 0 {
            out.extend_from_slice(&s[copied..i]);
            out.extend_from_slice(b"\\ufffd");
            i += 1;
            copied = i;
            continue;
        }
        if width == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)
        {
            out.extend_from_slice(&s[copied..i]);
            out.extend_from_slice(if s[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
            copied = i;
            continue;
        }
        i += width;
    }
    out.extend_from_slice(&s[copied..]);
    out.push(b'"');
}

/// Length of the valid UTF-8 sequence at the start of `s`, or 0 if invalid.
fn utf8_width(s: &[u8]) -> usize {
    let b = s[0];
    let w = match b {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return 0,
    };
    match s.get(..w) {
        Some(seq) if std::str::from_utf8(seq).is_ok() => w,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Timestamp;

    fn json(v: Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    // 3.14 and 3.14159... are the values in go-triton's fixtures, not PI.
    #[allow(clippy::approx_constant)]
    fn floats_print_as_go_prints_them() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-6, "0.000001"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (3.141592653589793, "3.141592653589793"),
        ];
        for &(f, s) in cases {
            assert_eq!(json(Value::F64(f)), s, "{f:e}");
        }
        assert_eq!(json(Value::F32(3.14)), "3.14");
        assert_eq!(json(Value::F32(f32::MAX)), "3.4028235e+38");
        assert_eq!(json(Value::F64(f64::NAN)), "\"NaN\"");
        assert_eq!(json(Value::F32(f32::NEG_INFINITY)), "\"-Inf\"");
    }

    #[test]
    fn strings_escape_as_go_escapes_them() {
        assert_eq!(
            json(Value::from(
                "tab\tnl\ncr\rquote\"bs\\ nul\0 html<>& u2028\u{2028} del\x7f"
            )),
            concat!(
                r#""tab\tnl\ncr\rquote\"bs\\ nul\u0000 html\u003c\u003e\u0026 u2028\u2028 del"#,
                "\x7f\""
            )
        );
        assert_eq!(
            json(Value::Str(Str::from_bytes(b"bad\xff\xfeend"))),
            r#""bad\ufffd\ufffdend""#
        );
        assert_eq!(json(Value::from("føø 🚀")), "\"føø 🚀\"");
    }

    #[test]
    fn word_check_agrees_with_the_byte_table() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = b;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(w)),
                    !SAFE[usize::from(b)],
                    "{b:#x} at {pos}"
                );
            }
        }
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(json(Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(json(Value::Int(0)), "0");
    }

    #[test]
    fn ext_bin_and_time() {
        assert_eq!(
            json(Value::Ext(42, b"hello".to_vec())),
            r#"{"Data":"aGVsbG8=","Type":42}"#
        );
        assert_eq!(json(Value::Bin(vec![])), r#""""#);
        assert_eq!(
            json(Value::Timestamp(Timestamp::new(1_436_553_581, 120_000_000))),
            r#""2015-07-10T18:39:41.12Z""#
        );
    }

    #[test]
    fn records_sort_keys_and_nested_maps_render_any_key() {
        let rec: Record = [
            ("b", Value::Int(1)),
            ("a", Value::Map(vec![(Value::Int(2), Value::Nil)])),
        ]
        .into_iter()
        .collect();
        let mut out = Vec::new();
        write_record(&mut out, &rec);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":{"2":null},"b":1}"#);
    }

    /// The raw path orders keys itself (writing pairs in wire order, then
    /// moving them); it must agree with the value path on every ordering.
    #[test]
    fn raw_path_orders_keys_as_the_value_path_does() {
        let s = |k: &str| Value::from(k);
        let nested = |keys: &[&str]| {
            Value::Map(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (s(k), Value::Int(i as i64)))
                    .collect(),
            )
        };
        let cases: Vec<Vec<(&str, Value)>> = vec![
            vec![],
            vec![("only", Value::Nil)],
            vec![("b", Value::Int(1)), ("a", Value::Int(2))],
            // Keys sharing their first eight bytes and more, and a prefix of another.
            vec![
                ("same_prefix_z", Value::Int(1)),
                ("same_prefix_a", Value::Int(2)),
                ("same_prefix", Value::Int(3)),
                ("same_pr", Value::Int(4)),
                ("same_pr\0", Value::Int(5)),
            ],
            // Duplicates keep their wire order.
            vec![
                ("k", Value::Int(1)),
                ("a", Value::Int(2)),
                ("k", Value::Int(3)),
            ],
            vec![
                ("z", nested(&["y", "x", "yy", "x"])),
                ("a", Value::Array(vec![nested(&["b", "a"]), nested(&[])])),
                ("m", nested(&["sorted", "then", "unsorted", "a"])),
            ],
        ];
        for fields in cases {
            let rec: Record = fields.into_iter().collect();
            let mut raw = Vec::new();
            crate::msgpack::encode_record(&rec, &mut raw);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_raw_record(&mut a, &mut RawWriter::new(), &raw).unwrap();
            write_record(&mut b, &rec);
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
    }
}
