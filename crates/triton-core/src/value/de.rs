//! Building values from any serde data format (used to turn JSON lines into
//! records for `triton encode`).
//!
//! Numbers follow go-triton's writer: a non-negative integer becomes a signed
//! [`Value::Int`] (Go `int`), only integers above `i64::MAX` become
//! [`Value::UInt`]; every other number is a [`Value::F64`].

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Record, Str, Value};

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::UInt(u), Value::Int))
    }

    fn visit_f32<E>(self, f: f32) -> Result<Value, E> {
        Ok(Value::F32(f))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::F64(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(Str::from(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(Str::from(s)))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(b.to_vec()))
    }

    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(b))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    /// MessagePack extensions, as rmp-serde hands them over: a timestamp
    /// where the type and data are one, else the extension as it is.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        struct Ext;
        impl<'de> Visitor<'de> for Ext {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MessagePack extension (type, data)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
                let (tag, data) = super::timestamp_serde::ext_pair(seq)?;
                Ok(super::timestamp_serde::ext_value(tag, data))
            }
        }
        d.deserialize_tuple(2, Ext)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with string keys (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            fields.push((Str::from(key), value));
        }
        Ok(Record::from_fields(fields))
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_follow_the_go_writer() {
        let r: Record = serde_json::from_str(
            r#"{"a":1,"b":-2,"c":18446744073709551615,"d":1.5,"e":null,"f":[true,"x"],"g":{"h":{}}}"#,
        )
        .unwrap();
        assert_eq!(r.get("a"), Some(&Value::Int(1)));
        assert_eq!(r.get("b"), Some(&Value::Int(-2)));
        assert_eq!(r.get("c"), Some(&Value::UInt(u64::MAX)));
        assert_eq!(r.get("d"), Some(&Value::F64(1.5)));
        assert_eq!(r.get("e"), Some(&Value::Nil));
        assert_eq!(
            r.get("f"),
            Some(&Value::Array(vec![Value::Bool(true), Value::from("x")]))
        );
        assert_eq!(
            r.get("g"),
            Some(&Value::Map(vec![(Value::from("h"), Value::Map(vec![]))]))
        );
    }

    #[test]
    fn a_record_must_be_an_object() {
        let err = serde_json::from_str::<Record>("[1]").unwrap_err();
        assert!(err.to_string().contains("a map with string keys"), "{err}");
    }
}
