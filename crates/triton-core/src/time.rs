//! UTC calendar dates and timestamp formatting, without a date/time dependency.
//!
//! Triton only needs two things from a calendar: the UTC day an archive was
//! opened (archive keys are grouped in `YYYYMMDD/` directories) and Go's
//! `RFC3339Nano` rendering of record timestamps (so JSON output is byte-for-byte
//! what go-triton prints). Both are small enough that pulling in a full
//! date/time crate is not worth the compile time and API surface, so the
//! proleptic Gregorian conversions below follow Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms
//! (<https://howardhinnant.github.io/date_algorithms.html>).

use std::fmt;
use std::str::FromStr;

const SECS_PER_DAY: i64 = 86_400;
const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
///
/// Works on `i64` so the same code serves both [`Date`] (years 0..=9999) and
/// [`write_rfc3339_nanos`], whose input may be any `i64` second count.
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Counting years from March puts the leap day at the end of the year,
    // which makes the day-of-year formula independent of leap years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (month + 9) % 12; // March = 0 ... February = 11
    let doy = (153 * mp + 2) / 5 + day - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)` of a day count.
const fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month as u8, day as u8)
}

const fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in `month` (1-12) of `year`; 0 for an invalid month.
const fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A day of the proleptic Gregorian calendar, in UTC, between years 0 and 9999.
///
/// The range is limited to four-digit years because that is what the
/// `YYYYMMDD` directory names of the archive layout can express; keeping the
/// invariant in the type means [`Display`](fmt::Display) always produces
/// exactly eight digits and parsing it back always succeeds.
///
/// Ordering is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    // Field order matters: the derived `Ord` compares year, then month, then day.
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// The earliest representable date, 0000-01-01.
    pub const MIN: Date = Date {
        year: 0,
        month: 1,
        day: 1,
    };

    /// The latest representable date, 9999-12-31.
    pub const MAX: Date = Date {
        year: 9999,
        month: 12,
        day: 31,
    };

    const MIN_DAYS: i64 = days_from_civil(0, 1, 1);
    const MAX_DAYS: i64 = days_from_civil(9999, 12, 31);

    /// Builds a date, checking that it exists in the calendar.
    ///
    /// Fails for years outside 0..=9999 (not expressible as `YYYYMMDD`), for
    /// months outside 1..=12, and for days that the month does not have
    /// (including February 29 outside leap years).
    pub fn new(year: i32, month: u8, day: u8) -> Result<Date, DateError> {
        Date::checked(year, month, day).map_err(|kind| DateError {
            input: format!("{year:04}-{month:02}-{day:02}"),
            kind,
        })
    }

    fn checked(year: i32, month: u8, day: u8) -> Result<Date, DateErrorKind> {
        if !(0..=9999).contains(&year) {
            return Err(DateErrorKind::YearOutOfRange { year });
        }
        if !(1..=12).contains(&month) {
            return Err(DateErrorKind::MonthOutOfRange { month });
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateErrorKind::DayOutOfRange { year, month, day });
        }
        Ok(Date { year, month, day })
    }

    /// The UTC day containing the unix timestamp `secs`.
    ///
    /// Timestamps before 1970 are fine. Timestamps outside years 0..=9999 are
    /// clamped to [`Date::MIN`] / [`Date::MAX`] rather than failing, because
    /// callers derive dates from clocks and file names where such values can
    /// only be garbage, and a total function keeps those call sites simple.
    pub fn from_unix(secs: i64) -> Date {
        Date::from_days(secs.div_euclid(SECS_PER_DAY))
    }

    /// Midnight UTC at the start of this day, as a unix timestamp.
    pub fn to_unix(&self) -> i64 {
        self.days() * SECS_PER_DAY
    }

    /// Parses the `YYYYMMDD` form used for archive directories.
    ///
    /// Exactly eight ASCII digits are accepted: no signs, separators or
    /// surrounding whitespace, so that each date has exactly one spelling and
    /// an S3 prefix built from a parsed date matches the original key.
    pub fn parse_yyyymmdd(s: &str) -> Result<Date, DateError> {
        Date::parse_kind(s).map_err(|kind| DateError {
            input: s.to_owned(),
            kind,
        })
    }

    /// Like [`Date::parse_yyyymmdd`] but without allocating on error, for
    /// callers (archive key parsing) that report the reason in their own error.
    pub(crate) fn parse_kind(s: &str) -> Result<Date, DateErrorKind> {
        let b = s.as_bytes();
        if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
            return Err(DateErrorKind::NotEightDigits);
        }
        let digit = |i: usize| b[i] - b'0';
        let year = i32::from(digit(0)) * 1000
            + i32::from(digit(1)) * 100
            + i32::from(digit(2)) * 10
            + i32::from(digit(3));
        let month = digit(4) * 10 + digit(5);
        let day = digit(6) * 10 + digit(7);
        Date::checked(year, month, day)
    }

    /// The following day; saturates at [`Date::MAX`] instead of overflowing.
    pub fn succ(&self) -> Date {
        Date::from_days(self.days() + 1)
    }

    /// The year, 0..=9999.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, 1..=31.
    pub fn day(&self) -> u8 {
        self.day
    }

    fn days(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        )
    }

    fn from_days(days: i64) -> Date {
        let (year, month, day) = civil_from_days(days.clamp(Date::MIN_DAYS, Date::MAX_DAYS));
        Date {
            // Cannot truncate: the clamp keeps the year within 0..=9999.
            year: year as i32,
            month,
            day,
        }
    }
}

impl fmt::Display for Date {
    /// Formats as `YYYYMMDD`, the archive directory name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Date, DateError> {
        Date::parse_yyyymmdd(s)
    }
}

/// Every date from `start` to `end`, both included; empty if `end < start`.
///
/// Readers use this to enumerate the day directories covering a time range.
pub fn days_inclusive(start: Date, end: Date) -> impl Iterator<Item = Date> {
    // Iterating over day numbers (rather than calling `succ` until `end`)
    // terminates even when `end` is `Date::MAX`, where `succ` saturates.
    (start.days()..=end.days()).map(Date::from_days)
}

/// A date that does not exist or could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{input}\" is not a date: {kind}")]
pub struct DateError {
    input: String,
    kind: DateErrorKind,
}

impl DateError {
    /// The rejected input: the string given to [`Date::parse_yyyymmdd`], or
    /// `YYYY-MM-DD` built from the numbers given to [`Date::new`].
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why the input was rejected.
    pub fn kind(&self) -> DateErrorKind {
        self.kind
    }
}

/// Why a date was rejected; the `Display` text is the reason alone, so other
/// errors (such as invalid archive keys) can embed it after their own context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DateErrorKind {
    /// The text is not exactly eight ASCII digits.
    #[error("expected 8 digits YYYYMMDD")]
    NotEightDigits,
    /// The year cannot be written with four digits.
    #[error("year {year} is out of range (0 to 9999)")]
    YearOutOfRange {
        /// The rejected year.
        year: i32,
    },
    /// The month is not 1..=12.
    #[error("month {month} is out of range")]
    MonthOutOfRange {
        /// The rejected month.
        month: u8,
    },
    /// The month does not have this day.
    #[error(
        "day {day} is out of range ({year:04}-{month:02} has {} days)",
        days_in_month(*.year, *.month)
    )]
    DayOutOfRange {
        /// The year, which decides whether February has 29 days.
        year: i32,
        /// The month, valid.
        month: u8,
        /// The rejected day.
        day: u8,
    },
}

/// Appends the UTC instant `secs` + `nanos` exactly as Go's
/// `time.Time.MarshalJSON` (`time.RFC3339Nano` in UTC) renders it, without the
/// surrounding quotes: `2015-07-10T18:39:41Z`, `2015-07-10T18:39:41.1234Z`.
///
/// The fraction has its trailing zeros trimmed and is left out entirely when
/// `nanos` is 0, as in Go.
///
/// This never panics, for any input:
/// - `nanos` of a second or more is carried into `secs` (saturating at
///   `i64::MAX`), so a caller's unnormalized pair still prints a real instant.
/// - Years outside 0..=9999 make Go's `MarshalJSON` fail; here they are
///   printed as Go's `Format` does instead: at least four digits, as many more
///   as needed, with a leading `-` for years before year 0 (e.g.
///   `10000-01-01T00:00:00Z`, `-0001-12-31T23:59:59Z`). Failing would force
///   every JSON writer to handle an error for values that, from real records,
///   cannot occur.
///
/// Called once per record when exporting JSON, so it formats into a stack
/// buffer and only touches `out` with a single `push_str`.
pub fn write_rfc3339_nanos(secs: i64, nanos: u32, out: &mut String) {
    let secs = secs.saturating_add(i64::from(nanos / NANOS_PER_SEC));
    let nanos = nanos % NANOS_PER_SEC;
    let days = secs.div_euclid(SECS_PER_DAY);
    let sec_of_day = secs.rem_euclid(SECS_PER_DAY) as u32;
    let (year, month, day) = civil_from_days(days);

    // Longest output: '-' + 12 year digits (i64 seconds span about ±2.9e11
    // years) + "-MM-DDTHH:MM:SS" + ".nnnnnnnnn" + "Z" = 39 bytes.
    let mut buf = [0u8; 48];
    let mut len = 0;
    let mut push = |b: u8| {
        buf[len] = b;
        len += 1;
    };

    if year < 0 {
        push(b'-');
    }
    let abs_year = year.unsigned_abs();
    let year_digits = {
        let mut n = 4;
        let mut limit = 10_000u64;
        while n < 20 && abs_year >= limit {
            n += 1;
            limit = limit.saturating_mul(10);
        }
        n
    };
    for i in (0..year_digits).rev() {
        push(b'0' + (abs_year / 10u64.pow(i) % 10) as u8);
    }
    let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let [m1, m0] = two(u32::from(month));
    let [d1, d0] = two(u32::from(day));
    let [h1, h0] = two(sec_of_day / 3600);
    let [i1, i0] = two(sec_of_day / 60 % 60);
    let [s1, s0] = two(sec_of_day % 60);
    for b in [
        b'-', m1, m0, b'-', d1, d0, b'T', h1, h0, b':', i1, i0, b':', s1, s0,
    ] {
        push(b);
    }

    if nanos != 0 {
        push(b'.');
        let mut frac = nanos;
        let mut width = 9;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        for i in (0..width).rev() {
            push(b'0' + (frac / 10u32.pow(i) % 10) as u8);
        }
    }
    push(b'Z');

    // Only ASCII digits and punctuation were written, so this cannot fail.
    out.push_str(std::str::from_utf8(&buf[..len]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(secs: i64, nanos: u32) -> String {
        let mut s = String::new();
        write_rfc3339_nanos(secs, nanos, &mut s);
        s
    }

    fn date(y: i32, m: u8, d: u8) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn every_day_1900_to_2100_round_trips() {
        // Walk the calendar naively, independently of Hinnant's formulas.
        let mut expected_unix = date(1900, 1, 1).to_unix();
        assert_eq!(expected_unix, -2_208_988_800);
        let mut count = 0;
        for year in 1900..=2100 {
            for month in 1..=12u8 {
                for day in 1..=days_in_month(year, month) {
                    let d = date(year, month, day);
                    assert_eq!(d.to_unix(), expected_unix, "{d}");
                    assert_eq!(Date::from_unix(expected_unix), d);
                    assert_eq!(Date::from_unix(expected_unix + 86_399), d);
                    assert_eq!(Date::from_unix(expected_unix - 1).succ(), d);
                    assert_eq!(d.to_string().parse::<Date>(), Ok(d));
                    expected_unix += 86_400;
                    count += 1;
                }
            }
        }
        let all: Vec<Date> = days_inclusive(date(1900, 1, 1), date(2100, 12, 31)).collect();
        assert_eq!(all.len(), count);
        assert!(all.windows(2).all(|w| w[0] < w[1] && w[0].succ() == w[1]));
    }

    #[test]
    fn known_values() {
        assert_eq!(Date::from_unix(0).to_string(), "19700101");
        assert_eq!(Date::from_unix(1_436_553_581).to_string(), "20150710");
        assert_eq!(Date::from_unix(1_795_962_403).to_string(), "20261129");
        assert_eq!(Date::from_unix(-1).to_string(), "19691231");
        assert_eq!(Date::from_unix(-86_400).to_string(), "19691231");
        assert_eq!(Date::from_unix(-86_401).to_string(), "19691230");
        assert_eq!(date(2015, 7, 10).to_unix(), 1_436_486_400);
        let d = date(2015, 7, 10);
        assert_eq!((d.year(), d.month(), d.day()), (2015, 7, 10));
    }

    #[test]
    fn leap_years() {
        assert!(Date::new(2000, 2, 29).is_ok());
        assert!(Date::new(2024, 2, 29).is_ok());
        assert!(Date::new(1900, 2, 29).is_err());
        assert!(Date::new(2023, 2, 29).is_err());
        assert_eq!(date(2000, 2, 28).succ(), date(2000, 2, 29));
        assert_eq!(date(1900, 2, 28).succ(), date(1900, 3, 1));
        assert_eq!(date(2024, 2, 29).succ(), date(2024, 3, 1));
        assert_eq!(date(2024, 12, 31).succ(), date(2025, 1, 1));
        assert_eq!("20240229".parse::<Date>(), Ok(date(2024, 2, 29)));
        assert_eq!(
            "19000229".parse::<Date>().unwrap_err().to_string(),
            "\"19000229\" is not a date: day 29 is out of range (1900-02 has 28 days)"
        );
    }

    #[test]
    fn range_limits() {
        assert_eq!(Date::MIN.to_string(), "00000101");
        assert_eq!(Date::MAX.to_string(), "99991231");
        assert_eq!(Date::from_unix(i64::MIN), Date::MIN);
        assert_eq!(Date::from_unix(i64::MAX), Date::MAX);
        assert_eq!(Date::from_unix(-62_167_219_200), Date::MIN);
        assert_eq!(Date::MIN.to_unix(), -62_167_219_200);
        assert_eq!(Date::from_unix(253_402_300_799), Date::MAX);
        assert_eq!(Date::MAX.succ(), Date::MAX);
        assert_eq!(days_inclusive(date(9999, 12, 30), Date::MAX).count(), 2);
        assert_eq!(days_inclusive(Date::MAX, Date::MAX).count(), 1);
        assert_eq!(
            days_inclusive(date(2015, 8, 2), date(2015, 8, 1)).count(),
            0
        );
        assert_eq!(
            Date::new(10_000, 1, 1).unwrap_err().to_string(),
            "\"10000-01-01\" is not a date: year 10000 is out of range (0 to 9999)"
        );
        assert!(Date::new(-1, 1, 1).is_err());
    }

    #[test]
    fn days_inclusive_crosses_months() {
        let days: Vec<String> = days_inclusive(date(2015, 7, 30), date(2015, 8, 2))
            .map(|d| d.to_string())
            .collect();
        assert_eq!(days, ["20150730", "20150731", "20150801", "20150802"]);
    }

    #[test]
    fn parse_errors() {
        let err = |s: &str| Date::parse_yyyymmdd(s).unwrap_err();
        assert_eq!(
            err("2015080").to_string(),
            "\"2015080\" is not a date: expected 8 digits YYYYMMDD"
        );
        assert_eq!(
            err("20151301").to_string(),
            "\"20151301\" is not a date: month 13 is out of range"
        );
        assert_eq!(
            err("20150001").kind(),
            DateErrorKind::MonthOutOfRange { month: 0 }
        );
        assert_eq!(
            err("20150431").to_string(),
            "\"20150431\" is not a date: day 31 is out of range (2015-04 has 30 days)"
        );
        assert_eq!(err("20150400").input(), "20150400");
        for bad in [
            "",
            "201508011",
            "+2015080",
            "2015-8-1",
            " 20150801",
            "2015080a",
            "２015080",
        ] {
            assert_eq!(err(bad).kind(), DateErrorKind::NotEightDigits, "{bad:?}");
        }
        assert_eq!(
            Date::new(2015, 2, 30).unwrap_err().to_string(),
            "\"2015-02-30\" is not a date: day 30 is out of range (2015-02 has 28 days)"
        );
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc(1_436_553_581, 0), "2015-07-10T18:39:41Z");
        assert_eq!(rfc(1_436_553_581, 123_400_000), "2015-07-10T18:39:41.1234Z");
        assert_eq!(rfc(1_795_962_403, 0), "2026-11-29T14:26:43Z");
        assert_eq!(rfc(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc(0, 1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(rfc(0, 100_000_000), "1970-01-01T00:00:00.1Z");
        assert_eq!(rfc(0, 999_999_999), "1970-01-01T00:00:00.999999999Z");
        assert_eq!(rfc(0, 10), "1970-01-01T00:00:00.00000001Z");
        assert_eq!(rfc(951_825_600, 0), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn rfc3339_before_1970() {
        assert_eq!(rfc(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(rfc(-1, 500_000_000), "1969-12-31T23:59:59.5Z");
        assert_eq!(rfc(-86_400, 0), "1969-12-31T00:00:00Z");
        assert_eq!(rfc(-2_208_988_800, 0), "1900-01-01T00:00:00Z");
        assert_eq!(rfc(-62_167_219_200, 0), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_normalizes_nanos() {
        assert_eq!(rfc(0, 1_000_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(rfc(-1, 1_500_000_000), "1970-01-01T00:00:00.5Z");
        assert_eq!(rfc(0, u32::MAX), "1970-01-01T00:00:04.294967295Z");
    }

    #[test]
    fn rfc3339_years_outside_0_to_9999() {
        assert_eq!(rfc(253_402_300_799, 0), "9999-12-31T23:59:59Z");
        assert_eq!(rfc(253_402_300_800, 0), "10000-01-01T00:00:00Z");
        assert_eq!(rfc(-62_167_219_201, 0), "-0001-12-31T23:59:59Z");
        let max = rfc(i64::MAX, u32::MAX);
        assert_eq!(max, "292277026596-12-04T15:30:07.294967295Z");
        let min = rfc(i64::MIN, 0);
        assert_eq!(min, "-292277022657-01-27T08:29:52Z");
    }

    #[test]
    fn rfc3339_appends() {
        let mut s = String::from("{\"t\":\"");
        write_rfc3339_nanos(1_436_553_581, 5, &mut s);
        s.push_str("\"}");
        assert_eq!(s, "{\"t\":\"2015-07-10T18:39:41.000000005Z\"}");
    }
}
