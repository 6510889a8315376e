//! Timestamps: go-triton's `time.Time` (ext type 5) and MessagePack's standard
//! timestamp extension (ext type -1).

use std::fmt;

/// Extension type go-triton's `msgp` library uses for `time.Time`.
pub const GO_TIME_EXT: i8 = 5;
/// The standard MessagePack timestamp extension type.
pub const MSGPACK_TIMESTAMP_EXT: i8 = -1;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// How a timestamp was (or will be) written, so that re-encoding a decoded
/// record gives back the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampEncoding {
    /// ext 5, 12 bytes: big-endian `i64` seconds then `i32` nanoseconds
    /// (go-triton / `msgp` `time.Time`).
    GoTime,
    /// ext -1, 4 bytes: `u32` seconds.
    Ext32,
    /// ext -1, 8 bytes: 30-bit nanoseconds and 34-bit seconds.
    Ext64,
    /// ext -1, 12 bytes: `u32` nanoseconds then `i64` seconds.
    Ext96,
}

/// An instant in UTC with nanosecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
    encoding: TimestampEncoding,
}

impl Timestamp {
    /// A timestamp that will be written as go-triton writes `time.Time`
    /// (ext type 5), so that go-triton readers understand it. Nanoseconds of
    /// one second or more carry into the seconds.
    pub fn new(secs: i64, nanos: u32) -> Timestamp {
        let carry = i64::from(nanos / NANOS_PER_SEC);
        Timestamp {
            secs: secs.saturating_add(carry),
            nanos: nanos % NANOS_PER_SEC,
            encoding: TimestampEncoding::GoTime,
        }
    }

    /// The same instant written as the standard ext -1 timestamp, in its
    /// smallest form.
    pub fn standard(self) -> Timestamp {
        let encoding = if self.secs >> 34 != 0 {
            TimestampEncoding::Ext96
        } else if self.nanos == 0 && self.secs <= i64::from(u32::MAX) {
            TimestampEncoding::Ext32
        } else {
            TimestampEncoding::Ext64
        };
        Timestamp { encoding, ..self }
    }

    /// Seconds since the Unix epoch.
    pub fn secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second (always below 1,000,000,000).
    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// The wire encoding.
    pub fn encoding(&self) -> TimestampEncoding {
        self.encoding
    }

    /// The extension type this timestamp is written with.
    pub fn ext_type(&self) -> i8 {
        match self.encoding {
            TimestampEncoding::GoTime => GO_TIME_EXT,
            _ => MSGPACK_TIMESTAMP_EXT,
        }
    }

    /// Interprets extension data; `None` when the type or the data is not a
    /// well-formed timestamp (the caller then keeps it as a plain ext value,
    /// so nothing is lost).
    pub fn from_ext(ext_type: i8, data: &[u8]) -> Option<Timestamp> {
        let (secs, nanos, encoding) = match (ext_type, data.len()) {
            (GO_TIME_EXT, 12) => {
                let secs = i64::from_be_bytes(data[..8].try_into().ok()?);
                let nanos = i32::from_be_bytes(data[8..].try_into().ok()?);
                (secs, u32::try_from(nanos).ok()?, TimestampEncoding::GoTime)
            }
            (MSGPACK_TIMESTAMP_EXT, 4) => {
                let secs = u32::from_be_bytes(data.try_into().ok()?);
                (i64::from(secs), 0, TimestampEncoding::Ext32)
            }
            (MSGPACK_TIMESTAMP_EXT, 8) => {
                let v = u64::from_be_bytes(data.try_into().ok()?);
                let nanos = (v >> 34) as u32;
                let secs = (v & ((1 << 34) - 1)) as i64;
                (secs, nanos, TimestampEncoding::Ext64)
            }
            (MSGPACK_TIMESTAMP_EXT, 12) => {
                let nanos = u32::from_be_bytes(data[..4].try_into().ok()?);
                let secs = i64::from_be_bytes(data[4..].try_into().ok()?);
                (secs, nanos, TimestampEncoding::Ext96)
            }
            _ => return None,
        };
        if nanos >= NANOS_PER_SEC {
            return None;
        }
        Some(Timestamp {
            secs,
            nanos,
            encoding,
        })
    }

    /// The extension payload (without the ext header).
    pub fn to_ext_data(&self) -> Vec<u8> {
        match self.encoding {
            TimestampEncoding::GoTime => {
                let mut v = self.secs.to_be_bytes().to_vec();
                // nanos < 1e9 always fits in i32.
                v.extend_from_slice(&(self.nanos as i32).to_be_bytes());
                v
            }
            TimestampEncoding::Ext32 => (self.secs as u32).to_be_bytes().to_vec(),
            TimestampEncoding::Ext64 => {
                let v = (u64::from(self.nanos) << 34) | (self.secs as u64 & ((1 << 34) - 1));
                v.to_be_bytes().to_vec()
            }
            TimestampEncoding::Ext96 => {
                let mut v = self.nanos.to_be_bytes().to_vec();
                v.extend_from_slice(&self.secs.to_be_bytes());
                v
            }
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nanoseconds, as Go's `time.RFC3339Nano`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(32);
        crate::time::write_rfc3339_nanos(self.secs, self.nanos, &mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let cases = [
            Timestamp::new(1_436_553_581, 123_456_789),
            Timestamp::new(-5, 1),
            Timestamp::new(1_436_553_581, 0).standard(),
            Timestamp::new(1_436_553_581, 7).standard(),
            Timestamp::new(1 << 40, 7).standard(),
            Timestamp::new(-1, 999_999_999).standard(),
        ];
        for ts in cases {
            let back = Timestamp::from_ext(ts.ext_type(), &ts.to_ext_data());
            assert_eq!(back, Some(ts), "{ts:?}");
        }
    }

    #[test]
    fn malformed_payloads_are_not_timestamps() {
        assert_eq!(Timestamp::from_ext(5, &[0; 11]), None);
        assert_eq!(Timestamp::from_ext(-1, &[0; 5]), None);
        let mut bad_nanos = 0i64.to_be_bytes().to_vec();
        bad_nanos.extend_from_slice(&1_000_000_000i32.to_be_bytes());
        assert_eq!(Timestamp::from_ext(5, &bad_nanos), None);
        assert_eq!(Timestamp::from_ext(42, &[0; 4]), None);
    }

    #[test]
    fn standard_timestamp_fixture_decodes() {
        // exotic.tri's ext -1 value: 5fd32540 = 1607673152 s.
        let ts = Timestamp::from_ext(-1, &[0x5f, 0xd3, 0x25, 0x40]);
        assert_eq!(ts.map(|t| t.secs()), Some(1_607_673_152));
    }
}
