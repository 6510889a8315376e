//! A serde `Deserializer` straight over the wire format: typed records
//! without building [`Value`](crate::value::Value)s, in one pass (no scan
//! first), borrowing strings and bytes where the target type borrows.
//!
//! It reads MessagePack as rmp-serde does, so that types written for
//! rmp-serde read the same: structs from maps (by field name) or arrays,
//! `Option` from nil, enums from a string (unit variant) or a one-entry map,
//! extensions as the newtype struct [`EXT_STRUCT`] holding `(type, data)`
//! ([`Timestamp`](crate::value::Timestamp) reads them), and a `str` that is
//! not UTF-8 as bytes (so a `String` field refuses it and a bytes field
//! takes it).
//!
//! The top level must be a map with string keys, as every record is
//! (docs/format.md §2).

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::scan;
use super::{family, RecordDefect, MAX_DEPTH};
use crate::value::EXT_STRUCT;

/// Why deserializing failed, and where (the offset in the record's bytes).
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) at: usize,
    pub(crate) defect: RecordDefect,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.defect, self.at)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        // The offset is filled in by `from_prefix`, which knows where the
        // deserializer stood.
        Error {
            at: usize::MAX,
            defect: RecordDefect::Typed {
                message: msg.to_string(),
            },
        }
    }
}

/// Reads a `T` from the record at the start of `buf`; returns it and the
/// record's length. `RecordDefect::Truncated` means `buf` ends inside the
/// record (feed more); any other error is the record's.
pub(crate) fn from_prefix<'de, T: de::Deserialize<'de>>(
    buf: &'de [u8],
) -> Result<(T, usize), Error> {
    let mut de = Deserializer {
        buf,
        pos: 0,
        depth: 0,
    };
    match buf.first() {
        None => return Err(de.truncated()),
        Some(&m) if !matches!(m, 0x80..=0x8f | 0xde | 0xdf) => {
            return Err(de.error(RecordDefect::NotAMap { found: family(m) }));
        }
        Some(_) => {}
    }
    match T::deserialize(&mut de) {
        Ok(v) => Ok((v, de.pos)),
        Err(mut e) => {
            if e.at == usize::MAX {
                e.at = de.pos;
            }
            Err(e)
        }
    }
}

/// `b` as a `str`, if it is UTF-8.
///
/// Keys and most values are short ASCII strings: checking that inline is
/// several times cheaper than a call to `std::str::from_utf8` per string,
/// which took as long as the Snappy decompression of the whole archive in
/// `decode/typed_borrowed`.
#[inline]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

struct Deserializer<'de> {
    buf: &'de [u8],
    pos: usize,
    /// Containers open around the value being read.
    depth: usize,
}

impl<'de> Deserializer<'de> {
    fn error(&self, defect: RecordDefect) -> Error {
        Error {
            at: self.pos,
            defect,
        }
    }

    fn truncated(&self) -> Error {
        Error {
            at: self.buf.len(),
            defect: RecordDefect::Truncated,
        }
    }

    fn peek(&self) -> Result<u8, Error> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.truncated())
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated())?;
        self.pos = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A big-endian length of `width` bytes.
    fn len(&mut self, width: usize) -> Result<usize, Error> {
        Ok(match width {
            1 => usize::from(self.take(1)?[0]),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    /// Reads the value at `pos` and hands it to `visitor`.
    fn any<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        let m = self.peek()?;
        self.pos += 1;
        match m {
            0x00..=0x7f => visitor.visit_u64(u64::from(m)),
            0xe0..=0xff => visitor.visit_i64(i64::from(m as i8)),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), visitor),
            0x90..=0x9f => self.seq(usize::from(m & 0x0f), visitor),
            0xa0..=0xbf => self.str(usize::from(m & 0x1f), visitor),
            0xc0 => visitor.visit_unit(),
            0xc1 => {
                self.pos -= 1;
                Err(self.error(RecordDefect::ReservedByte))
            }
            0xc2 => visitor.visit_bool(false),
            0xc3 => visitor.visit_bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                visitor.visit_borrowed_bytes(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                self.ext(n, visitor)
            }
            0xca => visitor.visit_f32(f32::from_be_bytes(self.array()?)),
            0xcb => visitor.visit_f64(f64::from_be_bytes(self.array()?)),
            0xcc => visitor.visit_u64(u64::from(self.take(1)?[0])),
            0xcd => visitor.visit_u64(u64::from(u16::from_be_bytes(self.array()?))),
            0xce => visitor.visit_u64(u64::from(u32::from_be_bytes(self.array()?))),
            0xcf => visitor.visit_u64(u64::from_be_bytes(self.array()?)),
            0xd0 => visitor.visit_i64(i64::from(self.take(1)?[0] as i8)),
            0xd1 => visitor.visit_i64(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => visitor.visit_i64(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => visitor.visit_i64(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.ext(1 << (m - 0xd4), visitor),
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                self.str(n, visitor)
            }
            0xdc | 0xdd => {
                let n = self.len(if m == 0xdc { 2 } else { 4 })?;
                self.seq(n, visitor)
            }
            0xde | 0xdf => {
                let n = self.len(if m == 0xde { 2 } else { 4 })?;
                self.map(n, visitor)
            }
        }
    }

    fn str<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> Result<V::Value, Error> {
        let b = self.take(n)?;
        match utf8(b) {
            Some(s) => visitor.visit_borrowed_str(s),
            None => visitor.visit_borrowed_bytes(b),
        }
    }

    /// An extension of `n` data bytes, its type byte at `pos`.
    fn ext<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> Result<V::Value, Error> {
        let tag = self.take(1)?[0] as i8;
        let data = self.take(n)?;
        visitor.visit_newtype_struct(Ext { tag, data })
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(RecordDefect::TooDeep));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn seq<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> Result<V::Value, Error> {
        self.nested(|de| {
            let mut access = Items { de, left: n };
            let v = visitor.visit_seq(&mut access)?;
            access.finish()?;
            Ok(v)
        })
    }

    fn map<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> Result<V::Value, Error> {
        let top = self.depth == 0;
        self.nested(|de| {
            let mut access = Entries {
                de,
                left: n,
                string_keys: top,
            };
            let v = visitor.visit_map(&mut access)?;
            access.finish()?;
            Ok(v)
        })
    }

    /// Moves past the value at `pos` without reading it.
    fn skip(&mut self) -> Result<(), Error> {
        match scan::skip_value(self.buf, self.pos) {
            Ok(Some(end)) => {
                self.pos = end;
                Ok(())
            }
            Ok(None) => Err(self.truncated()),
            Err((at, defect)) => Err(Error { at, defect }),
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek()? == 0xc0 {
            self.pos += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == EXT_STRUCT {
            // `any` gives an extension as exactly this newtype struct.
            return self.any(visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.peek()? {
            0x81 => {
                self.pos += 1;
                self.nested(|de| visitor.visit_enum(Variant { de }))
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                let s: &'de str = de::Deserialize::deserialize(&mut *self)?;
                visitor.visit_enum(s.into_deserializer())
            }
            m => Err(de::Error::custom(format_args!(
                "an enum must be a string or a map of one entry, found {}",
                family(m)
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }
}

/// The items of an array.
struct Items<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl Items<'_, '_> {
    /// Skips the items the visitor did not read.
    fn finish(&mut self) -> Result<(), Error> {
        while self.left > 0 {
            self.left -= 1;
            self.de.skip()?;
        }
        Ok(())
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // A claimed length is only a hint: never more than the bytes left.
        Some(self.left.min(self.de.buf.len() - self.de.pos))
    }
}

/// The entries of a map.
struct Entries<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
    /// The record's own map: its keys must be strings.
    string_keys: bool,
}

impl Entries<'_, '_> {
    fn finish(&mut self) -> Result<(), Error> {
        while self.left > 0 {
            self.left -= 1;
            self.de.skip()?;
            self.de.skip()?;
        }
        Ok(())
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        if self.string_keys {
            let m = self.de.peek()?;
            if !matches!(m, 0xa0..=0xbf | 0xd9..=0xdb) {
                return Err(self
                    .de
                    .error(RecordDefect::NonStringKey { found: family(m) }));
            }
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.buf.len() - self.de.pos))
    }
}

/// An enum written as a map of one entry: variant name, then its content.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
}

/// An extension as rmp-serde presents it: a sequence of its type and data.
struct Ext<'de> {
    tag: i8,
    data: &'de [u8],
}

impl<'de> de::Deserializer<'de> for Ext<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(ExtItems { ext: self, next: 0 })
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ExtItems<'de> {
    ext: Ext<'de>,
    next: u8,
}

impl<'de> de::SeqAccess<'de> for ExtItems<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.next += 1;
        match self.next {
            1 => seed.deserialize(self.ext.tag.into_deserializer()).map(Some),
            2 => seed
                .deserialize(de::value::BorrowedBytesDeserializer::new(self.ext.data))
                .map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::msgpack::{from_record_slice, to_record_vec};
    use crate::value::{Record, Timestamp, Value};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Kind {
        Click,
        Buy { amount: f64 },
        Tagged(String),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Event {
        user_id: u64,
        delta: i32,
        ratio: f32,
        kind: String,
        amount: Option<f64>,
        tags: Vec<String>,
        props: BTreeMap<String, i64>,
        pair: (u8, bool),
        how: Kind,
        other: Kind,
        #[serde(with = "serde_bytes_compat")]
        blob: Vec<u8>,
    }

    /// Bytes as MessagePack bin, as `serde_bytes` would, without the crate.
    mod serde_bytes_compat {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, b: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(b.to_vec())
                }
            }
            d.deserialize_bytes(V)
        }
    }

    fn event() -> Event {
        Event {
            user_id: u64::MAX,
            delta: -70_000,
            ratio: 0.5,
            kind: "click".repeat(20),
            amount: None,
            tags: vec!["a".into(), "".into()],
            props: [("x".to_string(), -1), ("y".to_string(), 1 << 40)].into(),
            pair: (255, true),
            how: Kind::Buy { amount: 2.5 },
            other: Kind::Tagged("t".into()),
            blob: vec![0, 1, 2, 255],
        }
    }

    #[test]
    fn reads_what_rmp_serde_reads() {
        for e in [
            event(),
            Event {
                how: Kind::Click,
                amount: Some(-0.25),
                ..event()
            },
        ] {
            let bytes = to_record_vec(&e).unwrap();
            let (back, n) = from_prefix::<Event>(&bytes).unwrap();
            assert_eq!(n, bytes.len());
            assert_eq!(back, e);
            let theirs: Event = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(theirs, back);
        }
    }

    #[test]
    fn borrows_strings_and_skips_what_the_type_does_not_name() {
        #[derive(Deserialize)]
        struct Few<'a> {
            #[serde(borrow)]
            kind: Cow<'a, str>,
            tags: Vec<&'a str>,
        }
        let bytes = to_record_vec(&event()).unwrap();
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let (few, n) = from_prefix::<Few<'_>>(&two).unwrap();
        assert_eq!(n, bytes.len(), "the skipped fields are consumed exactly");
        assert!(matches!(few.kind, Cow::Borrowed(_)));
        assert_eq!(few.tags, ["a", ""]);
    }

    #[test]
    fn every_cut_is_truncated_not_an_error() {
        let bytes = to_record_vec(&event()).unwrap();
        for cut in 0..bytes.len() {
            let e = from_prefix::<Event>(&bytes[..cut]).unwrap_err();
            assert_eq!(e.defect, RecordDefect::Truncated, "cut at {cut}: {e}");
        }
    }

    #[test]
    fn records_and_timestamps_read_through_serde() {
        let mut rec = Record::new();
        rec.push("when", Value::Timestamp(Timestamp::new(1_700_000_000, 5)));
        rec.push("n", 3i64);
        let mut bytes = Vec::new();
        crate::msgpack::encode_record(&rec, &mut bytes);
        let (back, _) = from_prefix::<Record>(&bytes).unwrap();
        assert_eq!(back, rec);
        assert_eq!(from_record_slice::<Record>(&bytes).unwrap(), rec);
    }

    #[test]
    fn what_is_not_a_record_is_refused_with_its_offset() {
        let e = from_prefix::<Record>(&[0x91, 0x01]).unwrap_err();
        assert_eq!(e.defect, RecordDefect::NotAMap { found: "array" });
        let e = from_prefix::<Record>(&[0x81, 0x01, 0x01]).unwrap_err();
        assert_eq!(
            (e.at, e.defect),
            (1, RecordDefect::NonStringKey { found: "int" })
        );
        let e = from_prefix::<Record>(&[0x81, 0xa1, b'a', 0xc1]).unwrap_err();
        assert_eq!((e.at, e.defect), (3, RecordDefect::ReservedByte));
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            s: String,
        }
        let e = from_prefix::<S>(&[0x81, 0xa1, b's', 0x05]).unwrap_err();
        assert!(matches!(e.defect, RecordDefect::Typed { .. }), "{e}");
        assert_eq!(e.at, 4);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut rec = vec![0x81, 0xa1, b'a'];
        rec.extend(std::iter::repeat_n(0x91, 100_000));
        rec.push(0xc0);
        let e = from_prefix::<Record>(&rec).unwrap_err();
        assert_eq!(e.defect, RecordDefect::TooDeep);
    }
}
