//! Writing MessagePack straight from another serde format (JSON lines for
//! `triton encode`), without building [`Value`](crate::value::Value)s: the
//! bytes are those [`encode_record`](super::encode_record) writes for the
//! record the same input deserializes to, by the same type rules
//! ([`value`](crate::value)'s `Deserialize`): integers signed (unsigned only
//! above `i64::MAX`), other numbers float64, null nil, objects maps.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::encode::{int, len_header, str_bytes, uint};

/// Appends the record `d` holds (it must be a map with string keys) to
/// `out` as MessagePack. On error `out` may hold part of the record.
pub fn transcode_record<'de, D: Deserializer<'de>>(
    d: D,
    out: &mut Vec<u8>,
) -> Result<(), D::Error> {
    d.deserialize_map(Record(out))
}

struct Record<'a>(&'a mut Vec<u8>);

struct Any<'a>(&'a mut Vec<u8>);

struct Key<'a>(&'a mut Vec<u8>);

/// The largest container header: a marker and a 32-bit count.
const HEADER_ROOM: usize = 5;

/// Reserves room for a container's header before its unknown number of
/// items is written.
fn open(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_ROOM]);
    at
}

/// Writes the smallest header for `n` items at `at`, closing the gap.
fn close(out: &mut Vec<u8>, at: usize, n: usize, fix: u8, m16: u8) {
    let h = if n <= 15 {
        out[at] = fix | n as u8;
        1
    } else if let Ok(n) = u16::try_from(n) {
        out[at] = m16;
        out[at + 1..at + 3].copy_from_slice(&n.to_be_bytes());
        3
    } else {
        out[at] = m16 + 1;
        out[at + 1..at + 5].copy_from_slice(&(n as u32).to_be_bytes());
        5
    };
    if h < HEADER_ROOM {
        out.copy_within(at + HEADER_ROOM.., at + h);
        out.truncate(out.len() - (HEADER_ROOM - h));
    }
}

fn entries<'de, A: MapAccess<'de>>(out: &mut Vec<u8>, mut map: A) -> Result<(), A::Error> {
    let at = open(out);
    let mut n = 0;
    while map.next_key_seed(Key(out))?.is_some() {
        map.next_value_seed(Any(out))?;
        n += 1;
    }
    close(out, at, n, 0x80, 0xde);
    Ok(())
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with string keys (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        entries(self.0, map)
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        str_bytes(self.0, s.as_bytes());
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Any<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Any<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(0xc0);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(0xc0);
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.0.push(if b { 0xc3 } else { 0xc2 });
        Ok(())
    }

    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        int(self.0, i);
        Ok(())
    }

    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        match i64::try_from(u) {
            Ok(i) => int(self.0, i),
            Err(_) => uint(self.0, u),
        }
        Ok(())
    }

    fn visit_f32<E>(self, f: f32) -> Result<(), E> {
        self.0.push(0xca);
        self.0.extend_from_slice(&f.to_be_bytes());
        Ok(())
    }

    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        self.0.push(0xcb);
        self.0.extend_from_slice(&f.to_be_bytes());
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        str_bytes(self.0, s.as_bytes());
        Ok(())
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<(), E> {
        len_header(self.0, b.len(), None, Some(0xc4), 0xc5);
        self.0.extend_from_slice(b);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = open(self.0);
        let mut n = 0;
        while seq.next_element_seed(Any(self.0))?.is_some() {
            n += 1;
        }
        close(self.0, at, n, 0x90, 0xdc);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys of nested maps may be any value.
        let at = open(self.0);
        let mut n = 0;
        while map.next_key_seed(Any(self.0))?.is_some() {
            map.next_value_seed(Any(self.0))?;
            n += 1;
        }
        close(self.0, at, n, 0x80, 0xde);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::encode_record;
    use crate::value::Record as Rec;

    fn both(json: &str) -> (Vec<u8>, Vec<u8>) {
        let rec: Rec = serde_json::from_str(json).unwrap();
        let mut want = Vec::new();
        encode_record(&rec, &mut want);
        let mut got = Vec::new();
        let mut de = serde_json::Deserializer::from_str(json);
        transcode_record(&mut de, &mut got).unwrap();
        de.end().unwrap();
        (got, want)
    }

    #[test]
    fn writes_what_the_value_path_writes() {
        let long: Vec<String> = (0..70_000).map(|i| i.to_string()).collect();
        let wide: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{i}")).collect();
        for json in [
            r#"{}"#,
            r#"{"a":1,"b":-2,"c":18446744073709551615,"d":1.5,"e":null,"f":[true,"x"],"g":{"h":{}}}"#,
            r#"{"s":"é\n\u0000","big":-9223372036854775808,"u":9223372036854775807,"f":-0.0,"e":1e300}"#,
            &format!(r#"{{"many":[{}],"x":[[],[[1]]]}}"#, long.join(",")),
            &format!("{{{}}}", wide.join(",")),
            &format!(r#"{{"nested":{{{}}},"dup":1,"dup":2}}"#, wide.join(",")),
        ] {
            let (got, want) = both(json);
            assert!(got == want, "{json:.80}");
        }
    }

    #[test]
    fn a_record_must_be_an_object() {
        for json in ["[1]", "1", "\"x\"", "null"] {
            let mut de = serde_json::Deserializer::from_str(json);
            let err = transcode_record(&mut de, &mut Vec::new()).unwrap_err();
            assert!(
                err.to_string().contains("a map with string keys"),
                "{json}: {err}"
            );
        }
    }
}
