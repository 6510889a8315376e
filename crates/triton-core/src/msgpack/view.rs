//! Reading a record in place: [`RecordRef`] and [`ValueRef`] borrow the
//! record's bytes and decode a field only when it is asked for.
//!
//! A view is built over bytes that were validated as one record (by the
//! reader, or by [`RecordRef::new`]), so reading it cannot fail; should the
//! bytes be malformed anyway (a caller of [`RecordRef::new_unchecked`] broke
//! its promise), iteration ends early and values read as `Nil` instead of a
//! panic.

use std::borrow::Cow;
use std::fmt;

use super::scan::skip_value;
use super::RecordError;
use crate::value::{Record, Str, Timestamp, Value};

/// A record read in place: the MessagePack of one map with string keys.
///
/// Nothing is decoded up front: [`get`](RecordRef::get) walks the fields,
/// skipping values it does not want, and strings are borrowed. Convert to
/// the owned [`Record`] with [`to_record`](RecordRef::to_record), or print
/// it with [`json::write_raw_record`](crate::json::write_raw_record) over
/// [`as_bytes`](RecordRef::as_bytes).
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    bytes: &'a [u8],
    fields: MapRef<'a>,
}

impl<'a> RecordRef<'a> {
    /// A view of `bytes`, which must be exactly one record.
    pub fn new(bytes: &'a [u8]) -> Result<RecordRef<'a>, RecordError> {
        super::validate_record(bytes)?;
        Ok(RecordRef::new_unchecked(bytes))
    }

    /// A view of bytes already validated as one record (what
    /// [`Decoder::next_raw`](crate::archive::Decoder::next_raw) returns).
    /// Not `unsafe`: malformed bytes read as fewer fields, never as a crash.
    pub fn new_unchecked(bytes: &'a [u8]) -> RecordRef<'a> {
        let fields = match container(bytes, 0) {
            Some((Container::Map, len, start)) => MapRef {
                items: bytes.get(start..).unwrap_or_default(),
                len,
            },
            _ => MapRef::EMPTY,
        };
        RecordRef { bytes, fields }
    }

    /// The record's MessagePack, exactly as stored.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The value of the first field named `key` (as [`Record::get`]).
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        self.fields.get(key)
    }

    /// The fields in wire order.
    pub fn fields(&self) -> Entries<'a> {
        self.fields.iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.len == 0
    }

    /// The owned record (every value decoded).
    pub fn to_record(&self) -> Record {
        super::decode_prefix(self.bytes)
            .map(|(rec, _)| rec)
            .unwrap_or_default()
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.fields()).finish()
    }
}

/// One MessagePack value read in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer (and positive fixint, as [`Value::Int`]).
    Int(i64),
    /// An unsigned integer (`uint 8..64`).
    UInt(u64),
    /// `float 32`.
    F32(f32),
    /// `float 64`.
    F64(f64),
    /// `str`.
    Str(StrRef<'a>),
    /// `bin`.
    Bin(&'a [u8]),
    /// `array`.
    Array(ArrayRef<'a>),
    /// `map`.
    Map(MapRef<'a>),
    /// An extension value that is not a timestamp.
    Ext(i8, &'a [u8]),
    /// A timestamp (ext type 5 written by go-triton, or ext type -1).
    Timestamp(Timestamp),
}

impl<'a> ValueRef<'a> {
    /// The text of a `str` that is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => s.as_str(),
            _ => None,
        }
    }

    /// The value of an integer that fits in `i64`, whichever family it used.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ValueRef::Int(i) => Some(i),
            ValueRef::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value of a float of either width, or of an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::F32(f) => Some(f64::from(f)),
            ValueRef::F64(f) => Some(f),
            ValueRef::Int(i) => Some(i as f64),
            ValueRef::UInt(u) => Some(u as f64),
            _ => None,
        }
    }

    /// The owned value.
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Nil => Value::Nil,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::UInt(u) => Value::UInt(u),
            ValueRef::F32(f) => Value::F32(f),
            ValueRef::F64(f) => Value::F64(f),
            ValueRef::Str(s) => Value::Str(s.to_str()),
            ValueRef::Bin(b) => Value::Bin(b.to_vec()),
            ValueRef::Array(a) => Value::Array(a.iter().map(|v| v.to_value()).collect()),
            ValueRef::Map(m) => Value::Map(
                m.pairs()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
            ValueRef::Ext(ty, data) => Value::Ext(ty, data.to_vec()),
            ValueRef::Timestamp(ts) => Value::Timestamp(ts),
        }
    }
}

/// A `str` read in place; its bytes need not be UTF-8 (see [`Str`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrRef<'a>(&'a [u8]);

impl<'a> StrRef<'a> {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// The text with each invalid UTF-8 sequence replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }

    /// The owned string.
    pub fn to_str(&self) -> Str {
        Str::from_bytes(self.0)
    }
}

impl fmt::Debug for StrRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

impl PartialEq<str> for StrRef<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// An array read in place.
#[derive(Clone, Copy, PartialEq)]
pub struct ArrayRef<'a> {
    items: &'a [u8],
    len: usize,
}

impl<'a> ArrayRef<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the array has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items in order.
    pub fn iter(&self) -> Items<'a> {
        Items {
            buf: self.items,
            pos: 0,
            left: self.len,
        }
    }
}

impl fmt::Debug for ArrayRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A map read in place. Keys may be any value; [`get`](MapRef::get) and
/// [`iter`](MapRef::iter) see the string-keyed entries.
#[derive(Clone, Copy, PartialEq)]
pub struct MapRef<'a> {
    items: &'a [u8],
    len: usize,
}

impl<'a> MapRef<'a> {
    const EMPTY: MapRef<'static> = MapRef { items: &[], len: 0 };

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of the first entry whose key is the string `key`.
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        self.pairs()
            .find_map(|(k, v)| matches!(k, ValueRef::Str(s) if s == *key).then_some(v))
    }

    /// The entries with string keys, in wire order.
    pub fn iter(&self) -> Entries<'a> {
        Entries(self.pairs())
    }

    /// Every entry, whatever its key.
    pub fn pairs(&self) -> Pairs<'a> {
        Pairs {
            items: Items {
                buf: self.items,
                pos: 0,
                left: self.len.saturating_mul(2),
            },
        }
    }
}

impl fmt::Debug for MapRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pairs()).finish()
    }
}

/// The values of an array (or the keys and values of a map, alternating).
#[derive(Clone)]
pub struct Items<'a> {
    buf: &'a [u8],
    pos: usize,
    left: usize,
}

impl Items<'_> {
    fn stop<T>(&mut self) -> Option<T> {
        self.left = 0;
        None
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = ValueRef<'a>;

    fn next(&mut self) -> Option<ValueRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match value(self.buf, self.pos) {
            Some((v, end)) => {
                self.pos = end;
                Some(v)
            }
            None => self.stop(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// The key-value pairs of a map.
#[derive(Clone)]
pub struct Pairs<'a> {
    items: Items<'a>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (ValueRef<'a>, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.items.next()?;
        let v = self.items.next()?;
        Some((k, v))
    }
}

/// The string-keyed entries of a map (a record's fields).
#[derive(Clone)]
pub struct Entries<'a>(Pairs<'a>);

impl<'a> Iterator for Entries<'a> {
    type Item = (StrRef<'a>, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.0.next()? {
                (ValueRef::Str(k), v) => return Some((k, v)),
                _ => continue,
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Container {
    Array,
    Map,
}

/// The container header at `p`: its kind, item count and where its items
/// start.
fn container(buf: &[u8], p: usize) -> Option<(Container, usize, usize)> {
    let m = *buf.get(p)?;
    let be = |width: usize| be_uint(buf.get(p + 1..p + 1 + width)?);
    Some(match m {
        0x80..=0x8f => (Container::Map, usize::from(m & 0x0f), p + 1),
        0x90..=0x9f => (Container::Array, usize::from(m & 0x0f), p + 1),
        0xdc => (Container::Array, be(2)?, p + 3),
        0xdd => (Container::Array, be(4)?, p + 5),
        0xde => (Container::Map, be(2)?, p + 3),
        0xdf => (Container::Map, be(4)?, p + 5),
        _ => return None,
    })
}

/// The value at `p` and where it ends: one match on the marker byte, as
/// the decoder reads; only a container is walked to its end.
#[inline]
fn value(buf: &[u8], p: usize) -> Option<(ValueRef<'_>, usize)> {
    let m = *buf.get(p)?;
    let at = p + 1;
    // A length of `w` bytes at `at`, then that many bytes.
    let sized = |w: usize| {
        let n = be_uint(take(buf, at, w)?)?;
        Some((take(buf, at + w, n)?, at + w + n))
    };
    let fixed = |n: usize| Some((take(buf, at, n)?, at + n));
    Some(match m {
        0x00..=0x7f => (ValueRef::Int(i64::from(m)), at),
        0xe0..=0xff => (ValueRef::Int(i64::from(m as i8)), at),
        0xa0..=0xbf => {
            let (s, end) = fixed(usize::from(m & 0x1f))?;
            (ValueRef::Str(StrRef(s)), end)
        }
        0x80..=0x9f | 0xdc..=0xdf => return container_value(buf, p),
        0xc0 => (ValueRef::Nil, at),
        0xc1 => return None,
        0xc2 => (ValueRef::Bool(false), at),
        0xc3 => (ValueRef::Bool(true), at),
        0xc4..=0xc6 => {
            let (b, end) = sized(1 << (m - 0xc4))?;
            (ValueRef::Bin(b), end)
        }
        0xd9..=0xdb => {
            let (s, end) = sized(1 << (m - 0xd9))?;
            (ValueRef::Str(StrRef(s)), end)
        }
        0xc7..=0xc9 => {
            // The length counts the data, which follows the type byte.
            let w = 1 << (m - 0xc7);
            let n = be_uint(take(buf, at, w)?)?;
            let ty = *buf.get(at + w)? as i8;
            (ext(ty, take(buf, at + w + 1, n)?), at + w + 1 + n)
        }
        0xd4..=0xd8 => {
            let n = 1 << (m - 0xd4);
            let ty = *buf.get(at)? as i8;
            (ext(ty, take(buf, at + 1, n)?), at + 1 + n)
        }
        0xca => {
            let (b, end) = fixed(4)?;
            (ValueRef::F32(f32::from_bits(be_u64(b) as u32)), end)
        }
        0xcb => {
            let (b, end) = fixed(8)?;
            (ValueRef::F64(f64::from_bits(be_u64(b))), end)
        }
        0xcc..=0xcf => {
            let (b, end) = fixed(1 << (m - 0xcc))?;
            (ValueRef::UInt(be_u64(b)), end)
        }
        0xd0..=0xd3 => {
            let (b, end) = fixed(1 << (m - 0xd0))?;
            // Sign-extend the big-endian bytes.
            let shift = 64 - 8 * b.len() as u32;
            (ValueRef::Int(((be_u64(b) << shift) as i64) >> shift), end)
        }
    })
}

fn container_value(buf: &[u8], p: usize) -> Option<(ValueRef<'_>, usize)> {
    let (kind, len, start) = container(buf, p)?;
    let end = skip_value(buf, p).ok()??;
    let items = buf.get(start..end)?;
    let v = match kind {
        Container::Array => ValueRef::Array(ArrayRef { items, len }),
        Container::Map => ValueRef::Map(MapRef { items, len }),
    };
    Some((v, end))
}

/// `n` bytes at `at`, if the buffer has them.
#[inline]
fn take(buf: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    buf.get(at..at.checked_add(n)?)
}

fn be_uint(b: &[u8]) -> Option<usize> {
    usize::try_from(be_u64(b)).ok()
}

fn be_u64(b: &[u8]) -> u64 {
    b.iter().fold(0, |n, &x| (n << 8) | u64::from(x))
}

fn ext(ty: i8, data: &[u8]) -> ValueRef<'_> {
    match Timestamp::from_ext(ty, data) {
        Some(ts) => ValueRef::Timestamp(ts),
        None => ValueRef::Ext(ty, data),
    }
}
