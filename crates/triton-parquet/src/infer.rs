//! Schema inference: what each field of the records holds, seen over every
//! record, resolved into one column type per field.
//!
//! [`Inference`] takes records one by one and keeps, per field, which kinds
//! of values it saw (and for integers their range, for timestamps whether
//! they fit nanoseconds); [`Inference::schema`] resolves them by the rules
//! of [`ColumnType`]. Inference sees every record, so every record fits the
//! schema it gives: a field whose values do not share a type becomes a JSON
//! text column, never a column that drops or rounds them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use triton_core::value::{Record, Value};

/// The type of one column.
///
/// How MessagePack values map:
/// - `nil` and absent fields are nulls in any column; a field never seen
///   with anything else is [`ColumnType::Null`].
/// - `bool` → [`Bool`](ColumnType::Bool).
/// - Integers: [`Int64`](ColumnType::Int64) when every value fits a signed
///   64-bit integer and at least one was written signed (go-triton writes a
///   non-negative Go `int` as a positive fixint, which reads as signed);
///   [`UInt64`](ColumnType::UInt64) when all were written unsigned, or some
///   pass `i64::MAX` and none is negative; a field holding both negative
///   values and values past `i64::MAX` is JSON (no 64-bit type holds both).
/// - Floats: [`Float32`](ColumnType::Float32) when every value was a
///   `float 32`, else [`Float64`](ColumnType::Float64). Integers in a float
///   field make it `Float64` if each is exact as a double (within ±2^53),
///   else JSON.
/// - `str` → [`Utf8`](ColumnType::Utf8); a field with a string that is not
///   valid UTF-8 is [`Binary`](ColumnType::Binary) (its bytes kept as they
///   are); `bin` → `Binary`.
/// - go-triton's `time.Time` (ext 5) and MessagePack timestamps (ext -1) →
///   [`TimestampNanos`](ColumnType::TimestampNanos) (UTC) when each fits
///   nanoseconds since the epoch (years 1677 to 2262), else JSON (Go's zero
///   time, year 1, does not fit).
/// - A map with string keys → [`Struct`](ColumnType::Struct) of its fields,
///   inferred the same way, in the order they were first seen. A map only
///   ever empty is JSON (`{}`): Parquet has no struct without fields. Maps
///   with other keys are JSON.
/// - An array → [`List`](ColumnType::List) of its elements' type (only
///   empty arrays: a list of [`Null`](ColumnType::Null)).
/// - Other extension types → JSON.
/// - Values of different kinds in one field (a string here, a number
///   there; a map here, a list there) → [`Json`](ColumnType::Json): each
///   value as the JSON text `triton decode` prints, and the reason in the
///   schema report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    /// Only nulls.
    Null,
    /// Booleans.
    Bool,
    /// Signed 64-bit integers.
    Int64,
    /// Unsigned 64-bit integers.
    #[serde(rename = "uint64")]
    UInt64,
    /// 32-bit floats.
    Float32,
    /// 64-bit floats.
    Float64,
    /// UTF-8 strings.
    Utf8,
    /// Bytes.
    Binary,
    /// Nanoseconds since the Unix epoch, UTC.
    TimestampNanos,
    /// A list of values of one type.
    List {
        /// The elements' type.
        item: Box<ColumnType>,
    },
    /// Named fields.
    Struct {
        /// The fields, in the order first seen.
        fields: Vec<Field>,
    },
    /// The value as JSON text.
    Json {
        /// Why the field is not typed.
        reason: String,
    },
}

/// A named column (or struct field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The MessagePack key.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub ty: ColumnType,
    /// Whether some record lacks it or holds `nil` there (when a schema
    /// written by hand leaves it out: true).
    #[serde(default = "nullable_by_default")]
    pub nullable: bool,
}

fn nullable_by_default() -> bool {
    true
}

/// The columns of a set of records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The top-level fields, in the order first seen.
    pub fields: Vec<Field>,
}

impl Schema {
    /// Every column that is JSON text, by its dotted path (`a.b`; `[]` for
    /// list items), with the reason: the schema report.
    pub fn json_columns(&self) -> Vec<(String, String)> {
        fn walk(prefix: &str, ty: &ColumnType, out: &mut Vec<(String, String)>) {
            match ty {
                ColumnType::Json { reason } => out.push((prefix.to_owned(), reason.clone())),
                ColumnType::List { item } => walk(&format!("{prefix}[]"), item, out),
                ColumnType::Struct { fields } => {
                    for f in fields {
                        walk(&format!("{prefix}.{}", f.name), &f.ty, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for f in &self.fields {
            walk(&f.name, &f.ty, &mut out);
        }
        out
    }
}

/// Seconds since the epoch that nanoseconds in an `i64` reach either way.
const NANOS_SECS: i64 = i64::MAX / 1_000_000_000;

/// Integers a double holds exactly.
const EXACT_IN_DOUBLE: i128 = 1 << 53;

/// What one field was seen holding.
#[derive(Clone, Debug, Default)]
struct Shape {
    null: bool,
    bool: bool,
    /// Smallest and largest integer, and whether any was written signed or
    /// unsigned.
    ints: Option<(i128, i128)>,
    signed: bool,
    unsigned: bool,
    f32: bool,
    f64: bool,
    str: bool,
    invalid_str: bool,
    bin: bool,
    timestamps: bool,
    timestamp_out_of_range: bool,
    list: Option<Box<Shape>>,
    map: Option<Fields>,
    /// Maps with keys that are not strings.
    other_map: bool,
    ext: bool,
}

/// Fields in the order first seen, and how many maps were seen (to tell
/// absent fields).
#[derive(Clone, Debug, Default)]
struct Fields {
    order: Vec<String>,
    shapes: HashMap<String, (Shape, u64)>,
    maps: u64,
}

impl Fields {
    fn add<'a>(&mut self, entries: impl Iterator<Item = (&'a str, &'a Value)>) {
        self.maps += 1;
        for (key, value) in entries {
            let (shape, seen) = match self.shapes.get_mut(key) {
                Some(s) => s,
                None => {
                    self.order.push(key.to_owned());
                    self.shapes.entry(key.to_owned()).or_default()
                }
            };
            *seen += 1;
            shape.add(value);
        }
    }

    fn resolve(&self) -> Vec<Field> {
        self.order
            .iter()
            .filter_map(|name| {
                let (shape, seen) = self.shapes.get(name)?;
                Some(Field {
                    name: name.clone(),
                    ty: shape.resolve(),
                    nullable: shape.null || *seen < self.maps,
                })
            })
            .collect()
    }
}

impl Shape {
    fn add(&mut self, v: &Value) {
        match v {
            Value::Nil => self.null = true,
            Value::Bool(_) => self.bool = true,
            Value::Int(i) => {
                self.signed = true;
                self.int(i128::from(*i));
            }
            Value::UInt(u) => {
                self.unsigned = true;
                self.int(i128::from(*u));
            }
            Value::F32(_) => self.f32 = true,
            Value::F64(_) => self.f64 = true,
            Value::Str(s) => match s.as_str() {
                Some(_) => self.str = true,
                None => self.invalid_str = true,
            },
            Value::Bin(_) => self.bin = true,
            Value::Timestamp(t) => {
                self.timestamps = true;
                // The last second in range may overflow with its nanoseconds.
                if t.secs() < -NANOS_SECS || t.secs() >= NANOS_SECS {
                    self.timestamp_out_of_range = true;
                }
            }
            Value::Ext(..) => self.ext = true,
            Value::Array(items) => {
                let item = self.list.get_or_insert_with(Box::default);
                for i in items {
                    item.add(i);
                }
            }
            Value::Map(entries) => {
                let keys: Option<Vec<(&str, &Value)>> = entries
                    .iter()
                    .map(|(k, v)| match k {
                        Value::Str(s) => s.as_str().map(|s| (s, v)),
                        _ => None,
                    })
                    .collect();
                match keys {
                    Some(keys) => self
                        .map
                        .get_or_insert_with(Fields::default)
                        .add(keys.into_iter()),
                    None => self.other_map = true,
                }
            }
        }
    }

    fn int(&mut self, i: i128) {
        self.ints = Some(match self.ints {
            Some((lo, hi)) => (lo.min(i), hi.max(i)),
            None => (i, i),
        });
    }

    /// The kinds seen, by name, for a conflict's reason.
    fn kinds(&self) -> Vec<&'static str> {
        let numeric = self.ints.is_some() || self.f32 || self.f64;
        [
            (self.bool, "bool"),
            (numeric, "number"),
            (self.str || self.invalid_str, "str"),
            (self.bin, "bin"),
            (self.timestamps, "timestamp"),
            (self.list.is_some(), "array"),
            (self.map.is_some() || self.other_map, "map"),
            (self.ext, "ext"),
        ]
        .into_iter()
        .filter_map(|(seen, name)| seen.then_some(name))
        .collect()
    }

    fn resolve(&self) -> ColumnType {
        let json = |reason: String| ColumnType::Json { reason };
        let kinds = self.kinds();
        match kinds.as_slice() {
            [] => ColumnType::Null,
            [_, _, ..] => json(format!("values of several kinds: {}", kinds.join(", "))),
            ["bool"] => ColumnType::Bool,
            ["number"] => self.number(),
            ["str"] if self.invalid_str => ColumnType::Binary,
            ["str"] => ColumnType::Utf8,
            ["bin"] => ColumnType::Binary,
            ["timestamp"] if self.timestamp_out_of_range => json(
                "a timestamp outside the years 1677 to 2262 (nanoseconds since the epoch)".into(),
            ),
            ["timestamp"] => ColumnType::TimestampNanos,
            ["array"] => ColumnType::List {
                item: Box::new(
                    self.list
                        .as_deref()
                        .map_or(ColumnType::Null, Shape::resolve),
                ),
            },
            ["map"] if self.other_map => json("a map with keys that are not strings".into()),
            ["map"] => match self.map.as_ref().map(Fields::resolve) {
                Some(fields) if !fields.is_empty() => ColumnType::Struct { fields },
                _ => json("only empty maps (Parquet has no struct without fields)".into()),
            },
            _ => json("an extension type".into()),
        }
    }

    fn number(&self) -> ColumnType {
        let floats = self.f32 || self.f64;
        match (self.ints, floats) {
            (None, _) if self.f64 => ColumnType::Float64,
            (None, _) => ColumnType::Float32,
            (Some((lo, hi)), true) if lo >= -EXACT_IN_DOUBLE && hi <= EXACT_IN_DOUBLE => {
                ColumnType::Float64
            }
            (Some(_), true) => ColumnType::Json {
                reason: "floats and integers a double does not hold exactly".into(),
            },
            (Some((lo, hi)), false) => {
                let fits_signed = lo >= i128::from(i64::MIN) && hi <= i128::from(i64::MAX);
                if fits_signed && self.signed {
                    ColumnType::Int64
                } else if lo >= 0 {
                    ColumnType::UInt64
                } else {
                    ColumnType::Json {
                        reason: "negative integers and integers past i64::MAX".into(),
                    }
                }
            }
        }
    }
}

/// Collects what the fields of records hold; see the module documentation.
#[derive(Debug, Default)]
pub struct Inference {
    fields: Fields,
}

impl Inference {
    /// Nothing seen yet.
    pub fn new() -> Inference {
        Inference::default()
    }

    /// Notes a record. Keys that are not valid UTF-8 are kept lossily.
    pub fn add(&mut self, record: &Record) {
        let fields: Vec<(std::borrow::Cow<'_, str>, &Value)> = record
            .fields()
            .iter()
            .map(|(k, v)| (k.to_string_lossy(), v))
            .collect();
        self.fields
            .add(fields.iter().map(|(k, v)| (k.as_ref(), *v)));
    }

    /// Records seen.
    pub fn records(&self) -> u64 {
        self.fields.maps
    }

    /// The schema of every record seen.
    pub fn schema(&self) -> Schema {
        Schema {
            fields: self.fields.resolve(),
        }
    }
}

#[cfg(test)]
mod tests;
