//! The dynamic record model.
//!
//! [`Value`] keeps every distinction MessagePack makes that archives are known
//! to contain: signed vs unsigned integers, float32 vs float64, `str` vs `bin`,
//! extension types with their code, and timestamps (go-triton's `time.Time`
//! ext type 5 and the standard ext type -1). A [`Record`] is the top level of
//! an event: one map with string keys.

mod de;
mod str;
mod timestamp;
mod timestamp_serde;

use std::fmt;

pub use self::str::Str;
pub use self::timestamp::{Timestamp, TimestampEncoding};
pub use self::timestamp_serde::{system_time, OutOfRange, EXT_STRUCT};

/// One MessagePack value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer (`int 8..64`, negative fixint, and positive fixint,
    /// which is how go-triton writes every non-negative Go `int`).
    Int(i64),
    /// An unsigned integer (`uint 8..64`).
    UInt(u64),
    /// `float 32`.
    F32(f32),
    /// `float 64`.
    F64(f64),
    /// `str` (see [`Str`] for invalid UTF-8).
    Str(Str),
    /// `bin`.
    Bin(Vec<u8>),
    /// `array`.
    Array(Vec<Value>),
    /// A nested `map`. Keys are usually strings, but MessagePack allows any
    /// value and nested maps are kept as they are.
    Map(Vec<(Value, Value)>),
    /// An extension value that is not a timestamp.
    Ext(i8, Vec<u8>),
    /// A timestamp (ext type 5 written by go-triton, or ext type -1).
    Timestamp(Timestamp),
}

impl Value {
    /// The MessagePack family name, as used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::F32(_) => "float32",
            Value::F64(_) => "float64",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
            Value::Timestamp(_) => "timestamp",
        }
    }

    /// The text of a `str` that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => s.as_str(),
            _ => None,
        }
    }

    /// The value of an integer that fits in `i64`, whichever family it used.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value of a float of either width, or of an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(f) => Some(f64::from(f)),
            Value::F64(f) => Some(f),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Str::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Str::from(s))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        Value::UInt(u)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::F64(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// One event: a MessagePack map whose keys are all strings.
///
/// Fields keep the order they had on the wire (go-triton wrote Go maps, so
/// that order is random); use [`Record::get`] rather than positions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(Str, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// A record from its fields, in wire order.
    pub fn from_fields(fields: Vec<(Str, Value)>) -> Record {
        Record { fields }
    }

    /// Appends a field (no check for duplicates: MessagePack allows them and
    /// archives are passed through as they are).
    pub fn push(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        self.fields.push((key.into(), value.into()));
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// The fields in wire order.
    pub fn fields(&self) -> &[(Str, Value)] {
        &self.fields
    }

    /// Takes the fields out.
    pub fn into_fields(self) -> Vec<(Str, Value)> {
        self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The record as a [`Value::Map`].
    pub fn into_value(self) -> Value {
        Value::Map(
            self.fields
                .into_iter()
                .map(|(k, v)| (Value::Str(k), v))
                .collect(),
        )
    }

    /// The record from a [`Value`], which must be a map with string keys.
    pub fn from_value(value: Value) -> Result<Record, NotARecord> {
        match value {
            Value::Map(pairs) => {
                let mut fields = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    match k {
                        Value::Str(s) => fields.push((s, v)),
                        other => {
                            return Err(NotARecord {
                                found: format!("a map with a {} key", other.kind()),
                            })
                        }
                    }
                }
                Ok(Record { fields })
            }
            other => Err(NotARecord {
                found: other.kind().to_string(),
            }),
        }
    }
}

impl<K: Into<Str>, V: Into<Value>> FromIterator<(K, V)> for Record {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Record {
        Record {
            fields: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// A value that cannot be a record because it is not a map with string keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotARecord {
    /// What was found instead, e.g. `array` or `a map with a int key`.
    pub found: String,
}

impl fmt::Display for NotARecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a record must be a map with string keys, found {}",
            self.found
        )
    }
}

impl std::error::Error for NotARecord {}
