//! Timestamps through serde, so that typed records
//! (`#[derive(Deserialize)]`) can hold go-triton's `time.Time` (ext 5) and
//! MessagePack timestamps (ext -1).
//!
//! MessagePack extensions travel through serde as rmp-serde writes and
//! reads them: a newtype struct named [`EXT_STRUCT`] holding the pair
//! `(type, data)`. [`Timestamp`] implements `Serialize` and `Deserialize`
//! that way; for a `SystemTime` field use `#[serde(with =
//! "triton_core::value::system_time")]`, and convert a [`Timestamp`] into
//! the common time crates through `SystemTime` (`chrono::DateTime<Utc>` and
//! `time::OffsetDateTime` both implement `From<SystemTime>`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use super::{Timestamp, Value};

/// The newtype-struct name rmp-serde gives MessagePack extensions
/// (`rmp_serde::MSGPACK_EXT_STRUCT_NAME`).
pub const EXT_STRUCT: &str = "_ExtStruct";

/// An extension's payload, from whatever form the deserializer gives it.
pub(super) struct ExtData(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for ExtData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExtData, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("extension data (bytes)")
            }
            fn visit_bytes<E>(self, b: &[u8]) -> Result<ExtData, E> {
                Ok(ExtData(b.to_vec()))
            }
            fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<ExtData, E> {
                Ok(ExtData(b))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExtData, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ExtData(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Reads the `(type, data)` pair of an extension.
pub(super) fn ext_pair<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(i8, Vec<u8>), A::Error> {
    let tag: i8 = seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(0, &"an extension type and its data"))?;
    let data: ExtData = seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(1, &"an extension type and its data"))?;
    Ok((tag, data.0))
}

/// Visits an extension as rmp-serde hands it over: a newtype struct whose
/// content is the `(type, data)` sequence (or that sequence directly).
struct ExtVisitor;

impl<'de> Visitor<'de> for ExtVisitor {
    type Value = (i8, Vec<u8>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack timestamp (ext 5, go-triton's time.Time, or ext -1)")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, ExtVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ext_pair(seq)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let (tag, data) = d.deserialize_newtype_struct(EXT_STRUCT, ExtVisitor)?;
        Timestamp::from_ext(tag, &data).ok_or_else(|| {
            de::Error::custom(format!(
                "ext type {tag} of {} bytes is not a timestamp (go-triton's time.Time is ext 5 \
                 of 12 bytes; MessagePack's timestamp is ext -1 of 4, 8 or 12 bytes)",
                data.len()
            ))
        })
    }
}

/// Bytes serialized as bytes (not as a sequence of integers).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Timestamp {
    /// As the extension it was read as (ext 5 for [`Timestamp::new`]), so a
    /// typed record written back holds the same bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Text formats (JSON) get the RFC 3339 form `triton decode` prints.
        if s.is_human_readable() {
            return s.collect_str(self);
        }
        let data = self.to_ext_data();
        s.serialize_newtype_struct(EXT_STRUCT, &(self.ext_type(), Bytes(&data)))
    }
}

/// A [`Timestamp`] beyond what the platform's `SystemTime` can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {0} is outside the range of SystemTime")]
pub struct OutOfRange(pub Timestamp);

impl TryFrom<Timestamp> for SystemTime {
    type Error = OutOfRange;

    fn try_from(t: Timestamp) -> Result<SystemTime, OutOfRange> {
        let secs = Duration::from_secs(t.secs().unsigned_abs());
        let whole = if t.secs() >= 0 {
            UNIX_EPOCH.checked_add(secs)
        } else {
            UNIX_EPOCH.checked_sub(secs)
        };
        whole
            .and_then(|w| w.checked_add(Duration::from_nanos(u64::from(t.nanos()))))
            .ok_or(OutOfRange(t))
    }
}

impl From<SystemTime> for Timestamp {
    /// Written as go-triton writes `time.Time` (ext 5).
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::new(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Timestamp::new(-secs, 0),
                    n => Timestamp::new(-secs - 1, 1_000_000_000 - n),
                }
            }
        }
    }
}

/// `#[serde(with = "triton_core::value::system_time")]` for a `SystemTime`
/// field of a typed record: read from ext 5 or ext -1, written as ext 5.
pub mod system_time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::value::Timestamp;

    /// Writes `t` as go-triton writes `time.Time`.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        Timestamp::from(*t).serialize(s)
    }

    /// Reads a timestamp extension.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let t = Timestamp::deserialize(d)?;
        SystemTime::try_from(t).map_err(serde::de::Error::custom)
    }
}

/// A value's extension, as [`Value::Timestamp`] where it is one.
pub(super) fn ext_value(tag: i8, data: Vec<u8>) -> Value {
    match Timestamp::from_ext(tag, &data) {
        Some(t) => Value::Timestamp(t),
        None => Value::Ext(tag, data),
    }
}
