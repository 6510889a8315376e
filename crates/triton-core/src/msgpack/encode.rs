//! Writing [`Value`]s as MessagePack, with the smallest encoding of each
//! family, as go-triton's writer does (so a decoded Go record re-encodes to
//! the same bytes, key order aside).

use crate::value::{Record, Value};

#[inline]
pub(super) fn len_header(
    out: &mut Vec<u8>,
    n: usize,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
) {
    match fix {
        Some((base, max)) if n <= max => out.push(base | n as u8),
        _ => match m8 {
            Some(m) if n <= 0xff => out.extend_from_slice(&[m, n as u8]),
            _ if n <= 0xffff => {
                out.push(m16);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                out.push(m16 + 1);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        },
    }
}

pub(super) fn str_bytes(out: &mut Vec<u8>, b: &[u8]) {
    len_header(out, b.len(), Some((0xa0, 31)), Some(0xd9), 0xda);
    out.extend_from_slice(b);
}

pub(super) fn int(out: &mut Vec<u8>, i: i64) {
    if (0..=127).contains(&i) {
        out.push(i as u8);
    } else if (-32..0).contains(&i) {
        out.push(i as i8 as u8);
    } else if i8::try_from(i).is_ok() {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if let Ok(v) = i16::try_from(i) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

pub(super) fn uint(out: &mut Vec<u8>, u: u64) {
    if u <= 127 {
        out.push(u as u8);
    } else if let Ok(v) = u8::try_from(u) {
        out.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(u) {
        out.push(0xcd);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(u) {
        out.push(0xce);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn ext(out: &mut Vec<u8>, ty: i8, data: &[u8]) {
    match data.len() {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        n => len_header(out, n, None, Some(0xc7), 0xc8),
    }
    out.push(ty as u8);
    out.extend_from_slice(data);
}

/// Appends the MessagePack encoding of `v` to `out`.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => int(out, *i),
        Value::UInt(u) => uint(out, *u),
        Value::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => str_bytes(out, s.as_bytes()),
        Value::Bin(b) => {
            len_header(out, b.len(), None, Some(0xc4), 0xc5);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            len_header(out, items.len(), Some((0x90, 15)), None, 0xdc);
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Map(pairs) => {
            len_header(out, pairs.len(), Some((0x80, 15)), None, 0xde);
            for (k, v) in pairs {
                encode_value(k, out);
                encode_value(v, out);
            }
        }
        Value::Ext(ty, data) => ext(out, *ty, data),
        Value::Timestamp(ts) => ext(out, ts.ext_type(), &ts.to_ext_data()),
    }
}

/// Appends the MessagePack encoding of a record (a map) to `out`.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    len_header(out, r.len(), Some((0x80, 15)), None, 0xde);
    for (k, v) in r.fields() {
        str_bytes(out, k.as_bytes());
        encode_value(v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::decode_record;
    use crate::value::{Str, Timestamp};

    // 3.14 and 3.14159... are the values in go-triton's fixtures, not PI.
    #[allow(clippy::approx_constant)]
    fn sample_values() -> Vec<Value> {
        let mut v = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Bool(false),
            Value::F32(3.14),
            Value::F64(-0.0),
            Value::F64(f64::NAN),
            Value::Bin(vec![]),
            Value::Bin(vec![7; 300]),
            Value::Bin(vec![7; 70_000]),
            Value::Ext(42, b"hello".to_vec()),
            Value::Ext(3, vec![1; 8]),
            Value::Ext(-7, vec![1; 300]),
            Value::Timestamp(Timestamp::new(1_436_553_581, 5)),
            Value::Timestamp(Timestamp::new(1_436_553_581, 0).standard()),
            Value::Str(Str::from_bytes(b"\xff")),
            Value::Array(vec![Value::Int(1); 20]),
            Value::Map(vec![(Value::Int(1), Value::Nil)]),
        ];
        for i in [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i64::MIN,
        ] {
            v.push(Value::Int(i));
        }
        for u in [
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            v.push(Value::UInt(u));
        }
        for n in [0, 31, 32, 255, 256, 65_535, 65_536] {
            v.push(Value::from("x".repeat(n)));
        }
        v
    }

    #[test]
    fn every_value_round_trips() {
        let mut rec = Record::new();
        for (i, v) in sample_values().into_iter().enumerate() {
            rec.push(format!("k{i}").as_str(), v);
        }
        let mut bytes = Vec::new();
        encode_record(&rec, &mut bytes);
        let back = decode_record(&bytes).unwrap();
        // NaN != NaN, so compare the re-encoding instead.
        let mut again = Vec::new();
        encode_record(&back, &mut again);
        assert_eq!(bytes, again);
        assert_eq!(back.len(), rec.len());
    }

    #[test]
    fn go_writer_encodings() {
        let enc = |v: Value| {
            let mut out = Vec::new();
            encode_value(&v, &mut out);
            out
        };
        // Go writes non-negative ints above 127 as signed int16/32/64.
        assert_eq!(enc(Value::Int(200)), [0xd1, 0x00, 0xc8]);
        assert_eq!(enc(Value::UInt(200)), [0xcc, 0xc8]);
        assert_eq!(enc(Value::Bin(vec![])), [0xc4, 0x00]);
        assert_eq!(enc(Value::from("x".repeat(32)))[..2], [0xd9, 32]);
    }
}
