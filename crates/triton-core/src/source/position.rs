//! Where a record sits in its source.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Kinesis sequence number: a decimal string of up to 128 digits (usually
/// 56), compared numerically. It does not fit in a 64-bit integer, so it is
/// never converted to one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

/// Why a string is not a sequence number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid sequence number {input:?}: expected 1 to 128 decimal digits without leading zeros"
)]
pub struct InvalidSequenceNumber {
    /// The rejected input.
    pub input: String,
}

impl SequenceNumber {
    /// Parses a sequence number.
    pub fn new(s: impl Into<String>) -> Result<SequenceNumber, InvalidSequenceNumber> {
        let s = s.into();
        // Leading zeros are refused so that equal numbers are equal strings.
        let leading_zero = s.len() > 1 && s.starts_with('0');
        if s.is_empty() || s.len() > 128 || leading_zero || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidSequenceNumber { input: s });
        }
        Ok(SequenceNumber(s))
    }

    /// The decimal digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    /// Numeric order: by length, then by digits.
    fn cmp(&self, other: &SequenceNumber) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &SequenceNumber) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for SequenceNumber {
    type Err = InvalidSequenceNumber;

    fn from_str(s: &str) -> Result<SequenceNumber, InvalidSequenceNumber> {
        SequenceNumber::new(s)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The position of a record within its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// A Kinesis sequence number within a shard.
    Sequence(SequenceNumber),
    /// The index of a record within an archive (0 = first record).
    Index(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Sequence(s) => write!(f, "sequence number {s}"),
            Position::Index(i) => write!(f, "record {i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically_not_as_text_or_u64() {
        let a = SequenceNumber::new("49590338271490256608559692538361571095921575989136588898")
            .unwrap();
        let b = SequenceNumber::new("49590338271490256608559692540925702759324208523137515618")
            .unwrap();
        let short = SequenceNumber::new("9").unwrap();
        assert!(a < b);
        assert!(short < a, "shorter is smaller even though '9' > '4'");
        assert!(SequenceNumber::new("007").is_err());
        assert!(SequenceNumber::new("0").is_ok());
        assert!(SequenceNumber::new("").is_err());
        assert!(SequenceNumber::new("12a").is_err());
        assert!(SequenceNumber::new("1".repeat(129)).is_err());
    }
}
