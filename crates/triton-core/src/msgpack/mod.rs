//! MessagePack records: validation, decoding to [`Record`], encoding, and
//! serde-typed access.
//!
//! A record on the wire is exactly one map with string keys: nothing before
//! it and nothing after it (docs/format.md §2).

mod batch;
pub(crate) mod de;
mod decode;
mod encode;
pub(crate) mod scan;
mod transcode;
mod view;

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::value::Record;

pub use self::batch::RecordBatch;
pub use self::encode::{encode_record, encode_value};
pub use self::transcode::transcode_record;
pub use self::view::{ArrayRef, Entries, Items, MapRef, Pairs, RecordRef, StrRef, ValueRef};

/// Largest record accepted by default: far above Kinesis' record limit, low
/// enough that a corrupt length cannot make a reader buffer gigabytes.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 64 << 20;

/// Deepest nesting decoded into values. Scanning and raw mode have no limit;
/// building values recurses, so a bound keeps hostile input off the stack.
pub const MAX_DEPTH: usize = 512;

/// Why some bytes are not one valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordDefect {
    /// The top-level value is not a map.
    NotAMap {
        /// The MessagePack family found (`array`, `int`, ...).
        found: &'static str,
    },
    /// A top-level key is not a `str`.
    NonStringKey {
        /// The MessagePack family found.
        found: &'static str,
    },
    /// The byte `0xc1`, which MessagePack never uses.
    ReservedByte,
    /// The data ends inside the record.
    Truncated,
    /// Bytes follow the record (a Kinesis blob holds exactly one record).
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The record would be larger than the configured maximum.
    TooLarge {
        /// The maximum in bytes.
        max: usize,
    },
    /// A record given to a writer is larger than readers accept
    /// ([`DEFAULT_MAX_RECORD_SIZE`]): it is refused, so that no archive is
    /// written that cannot be read back.
    Oversized {
        /// The record's size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// serde could not map the record onto the requested type (includes
    /// invalid UTF-8 in a field read as `String`).
    Typed {
        /// The deserializer's message.
        message: String,
    },
}

impl fmt::Display for RecordDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordDefect::NotAMap { found } => {
                write!(f, "a record must be a map, found {found}")
            }
            RecordDefect::NonStringKey { found } => {
                write!(f, "a record's keys must be strings, found {found} key")
            }
            RecordDefect::ReservedByte => f.write_str("reserved byte 0xc1 is not MessagePack"),
            RecordDefect::Truncated => f.write_str("data ends inside the record"),
            RecordDefect::TrailingBytes { count } => {
                write!(f, "{count} bytes follow the record")
            }
            RecordDefect::TooLarge { max } => {
                write!(f, "record is larger than the {max}-byte limit")
            }
            RecordDefect::Oversized { size, max } => write!(
                f,
                "the record is {size} bytes, more than the {max} bytes readers accept"
            ),
            RecordDefect::TooDeep => write!(f, "values nested deeper than {MAX_DEPTH} levels"),
            RecordDefect::Typed { message } => write!(f, "cannot read record as type: {message}"),
        }
    }
}

/// Some bytes that are not exactly one valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid record at byte {offset}: {defect}")]
pub struct RecordError {
    /// Offset of the offending byte within the record's bytes.
    pub offset: usize,
    /// What is wrong.
    pub defect: RecordDefect,
}

/// The MessagePack family a marker byte starts, for error messages.
pub(crate) fn family(m: u8) -> &'static str {
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xd0..=0xd3 => "int",
        0xcc..=0xcf => "uint",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc0 => "nil",
        0xc1 => "reserved 0xc1",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "bin",
        0xc7..=0xc9 | 0xd4..=0xd8 => "ext",
        0xca => "float32",
        0xcb => "float64",
    }
}

/// Checks that `bytes` is exactly one record, without building values.
pub fn validate_record(bytes: &[u8]) -> Result<(), RecordError> {
    validate_record_with_limit(bytes, DEFAULT_MAX_RECORD_SIZE.max(bytes.len()))
}

fn validate_record_with_limit(bytes: &[u8], max: usize) -> Result<(), RecordError> {
    match scan::scan_record(bytes, max) {
        Ok(scan::Scan::Complete(n)) if n == bytes.len() => Ok(()),
        Ok(scan::Scan::Complete(n)) => Err(RecordError {
            offset: n,
            defect: RecordDefect::TrailingBytes {
                count: bytes.len() - n,
            },
        }),
        Ok(scan::Scan::Incomplete) => Err(RecordError {
            offset: bytes.len(),
            defect: RecordDefect::Truncated,
        }),
        Err((offset, defect)) => Err(RecordError { offset, defect }),
    }
}

/// Decodes exactly one record from `bytes`.
pub fn decode_record(bytes: &[u8]) -> Result<Record, RecordError> {
    match decode::record(bytes) {
        Ok((rec, n)) if n == bytes.len() => Ok(rec),
        Ok((_, n)) => Err(RecordError {
            offset: n,
            defect: RecordDefect::TrailingBytes {
                count: bytes.len() - n,
            },
        }),
        Err(e) => {
            let (offset, defect) = *e;
            Err(RecordError { offset, defect })
        }
    }
}

/// Decodes the record at the start of `buf`, returning it and its length.
/// `Err((_, RecordDefect::Truncated))` means `buf` ends inside the record.
pub(crate) fn decode_prefix(buf: &[u8]) -> Result<(Record, usize), (usize, RecordDefect)> {
    decode::record(buf).map_err(|e| *e)
}

/// Reads one record into any serde type (structs read from maps by field
/// name), straight from the bytes in one pass; strings and bytes are
/// borrowed where `T` borrows them. The bytes must be exactly one record.
pub fn from_record_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, RecordError> {
    match de::from_prefix(bytes) {
        Ok((v, n)) if n == bytes.len() => Ok(v),
        Ok((_, n)) => Err(RecordError {
            offset: n,
            defect: RecordDefect::TrailingBytes {
                count: bytes.len() - n,
            },
        }),
        Err(e) => Err(RecordError {
            offset: e.at,
            defect: e.defect,
        }),
    }
}

/// Encodes any serde value as one record. Structs are written as maps with
/// their field names (never as arrays); anything that does not serialize to
/// a map with string keys is refused.
pub fn to_record_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RecordError> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| RecordError {
        offset: 0,
        defect: RecordDefect::Typed {
            message: e.to_string(),
        },
    })?;
    validate_record(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Event {
        user_id: u64,
        kind: String,
        amount: Option<f64>,
        tags: Vec<String>,
    }

    #[test]
    fn typed_round_trip_uses_maps() {
        let e = Event {
            user_id: 7,
            kind: "click".into(),
            amount: None,
            tags: vec!["a".into()],
        };
        let bytes = to_record_vec(&e).unwrap();
        let rec = decode_record(&bytes).unwrap();
        assert_eq!(rec.get("kind"), Some(&Value::from("click")));
        assert_eq!(rec.get("amount"), Some(&Value::Nil));
        let back: Event = from_record_slice(&bytes).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn non_maps_are_refused_with_what_was_found() {
        let err = to_record_vec(&(1, 2)).unwrap_err();
        assert_eq!(err.defect, RecordDefect::NotAMap { found: "array" });
        let err = to_record_vec(&5u8).unwrap_err();
        assert_eq!(err.defect, RecordDefect::NotAMap { found: "int" });
        let err = decode_record(&[0x80, 0xc0]).unwrap_err();
        assert_eq!(err.defect, RecordDefect::TrailingBytes { count: 1 });
        assert_eq!(err.offset, 1);
        let err = decode_record(&[0x81, 0xa1]).unwrap_err();
        assert_eq!(err.defect, RecordDefect::Truncated);
    }

    #[test]
    fn invalid_utf8_fails_only_where_a_string_is_required() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            s: String,
        }
        let bytes = [0x81, 0xa1, b's', 0xa2, 0xff, 0xfe];
        assert!(decode_record(&bytes).is_ok());
        let err = from_record_slice::<S>(&bytes).unwrap_err();
        assert!(matches!(err.defect, RecordDefect::Typed { .. }), "{err}");
    }
}
