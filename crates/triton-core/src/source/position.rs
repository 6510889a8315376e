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
///
/// Positions of one sub-source are ordered: a user record of an aggregated
/// Kinesis record ([`Position::SubSequence`]) comes before the Kinesis
/// record's own sequence number, and after the Kinesis record before it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// A Kinesis sequence number within a shard: a plain Kinesis record,
    /// or the last user record of an aggregated one (acknowledging it
    /// acknowledges the whole Kinesis record).
    Sequence(SequenceNumber),
    /// A user record of an aggregated Kinesis record (the KPL's format)
    /// other than its last: the Kinesis record's sequence number and the
    /// user record's index in it (the KCL's sub-sequence number).
    SubSequence {
        /// The aggregated Kinesis record's sequence number.
        sequence: SequenceNumber,
        /// The user record's index within it (0 = the first).
        sub: u32,
    },
    /// The index of a record within an archive (0 = first record).
    Index(u64),
}

impl Position {
    /// The Kinesis sequence number of the record this position is in, for
    /// positions in a shard.
    pub fn sequence(&self) -> Option<&SequenceNumber> {
        match self {
            Position::Sequence(s) | Position::SubSequence { sequence: s, .. } => Some(s),
            Position::Index(_) => None,
        }
    }

    /// True when the position ends a Kinesis record (every position but a
    /// [`Position::SubSequence`]): where a consumer may cut without
    /// splitting an aggregate.
    pub fn ends_kinesis_record(&self) -> bool {
        !matches!(self, Position::SubSequence { .. })
    }

    /// Order key: a sequence number's own position is after every user
    /// record inside it.
    fn key(&self) -> (u8, Option<&SequenceNumber>, u64) {
        match self {
            Position::Sequence(s) => (0, Some(s), u64::MAX),
            Position::SubSequence { sequence, sub } => (0, Some(sequence), u64::from(*sub)),
            Position::Index(i) => (1, None, *i),
        }
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Position) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Position) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Sequence(s) => write!(f, "sequence number {s}"),
            Position::SubSequence { sequence, sub } => {
                write!(f, "user record {sub} of sequence number {sequence}")
            }
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

    #[test]
    fn user_records_of_an_aggregate_sit_between_kinesis_records() {
        let seq = |s: &str| SequenceNumber::new(s).unwrap();
        let sub = |s: &str, sub| Position::SubSequence {
            sequence: seq(s),
            sub,
        };
        let whole = |s: &str| Position::Sequence(seq(s));
        let order = [
            whole("9"),
            sub("10", 0),
            sub("10", 1),
            sub("10", u32::MAX),
            whole("10"),
            sub("11", 0),
            Position::Index(0),
        ];
        for pair in order.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(sub("10", 3).sequence(), Some(&seq("10")));
        assert!(!sub("10", 3).ends_kinesis_record() && whole("10").ends_kinesis_record());
    }
}
