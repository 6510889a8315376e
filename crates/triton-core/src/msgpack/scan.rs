//! Finding where one record ends without building values.
//!
//! The scanner reads only headers and skips payloads, so finding record
//! boundaries costs a fraction of decoding. Nested values are skipped with a
//! counter of items still owed instead of recursion: input nested a million
//! levels deep cannot exhaust the stack.

use super::{family, RecordDefect, DEFAULT_MAX_RECORD_SIZE};

/// Outcome of scanning the bytes at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// One whole record occupies this many bytes.
    Complete(usize),
    /// The buffer ends inside the record.
    Incomplete,
}

/// What a header says about the value it starts.
enum Head {
    /// A value with no children: `len` bytes including the header.
    Leaf { len: usize },
    /// An array or map header of `len` bytes followed by `children` values.
    Container { len: usize, children: u64 },
    /// The never-used byte `0xc1`.
    Reserved,
}

#[inline]
fn be_len(buf: &[u8], at: usize, width: usize) -> Option<usize> {
    let b = buf.get(at..at + width)?;
    let mut n = 0usize;
    for &x in b {
        n = (n << 8) | usize::from(x);
    }
    Some(n)
}

/// Decodes the header at `p`; `None` when the buffer ends inside it.
#[inline]
fn head(buf: &[u8], p: usize) -> Option<Head> {
    let m = *buf.get(p)?;
    let leaf = |len| Some(Head::Leaf { len });
    let sized = |width: usize, extra: usize| {
        be_len(buf, p + 1, width).map(|n| Head::Leaf {
            len: 1 + width + extra + n,
        })
    };
    let container = |width: usize, per: u64| {
        be_len(buf, p + 1, width).map(|n| Head::Container {
            len: 1 + width,
            children: n as u64 * per,
        })
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => leaf(1),
        0x80..=0x8f => Some(Head::Container {
            len: 1,
            children: u64::from(m & 0x0f) * 2,
        }),
        0x90..=0x9f => Some(Head::Container {
            len: 1,
            children: u64::from(m & 0x0f),
        }),
        0xa0..=0xbf => leaf(1 + usize::from(m & 0x1f)),
        0xc1 => Some(Head::Reserved),
        0xc4 | 0xd9 => sized(1, 0),
        0xc5 | 0xda => sized(2, 0),
        0xc6 | 0xdb => sized(4, 0),
        0xc7 => sized(1, 1),
        0xc8 => sized(2, 1),
        0xc9 => sized(4, 1),
        0xca => leaf(5),
        0xcb => leaf(9),
        0xcc | 0xd0 => leaf(2),
        0xcd | 0xd1 => leaf(3),
        0xce | 0xd2 => leaf(5),
        0xcf | 0xd3 => leaf(9),
        0xd4 => leaf(3),
        0xd5 => leaf(4),
        0xd6 => leaf(6),
        0xd7 => leaf(10),
        0xd8 => leaf(18),
        0xdc => container(2, 1),
        0xdd => container(4, 1),
        0xde => container(2, 2),
        0xdf => container(4, 2),
    }
}

fn is_str(m: u8) -> bool {
    matches!(m, 0xa0..=0xbf | 0xd9 | 0xda | 0xdb)
}

/// Skips `owed` values starting at `p`; returns the end or `None` if the
/// buffer ends first. `max_len` bounds how far a record may reach, so a
/// header claiming billions of items fails fast instead of waiting for data.
fn skip(
    buf: &[u8],
    mut p: usize,
    mut owed: u64,
    max_len: usize,
) -> Result<Option<usize>, (usize, RecordDefect)> {
    while owed > 0 {
        // Each owed value takes at least one byte.
        if owed > (max_len.saturating_sub(p)) as u64 {
            return Err((p, RecordDefect::TooLarge { max: max_len }));
        }
        owed -= 1;
        match head(buf, p) {
            None => return Ok(None),
            Some(Head::Leaf { len }) => p = p.saturating_add(len),
            Some(Head::Container { len, children }) => {
                p += len;
                owed += children;
            }
            Some(Head::Reserved) => return Err((p, RecordDefect::ReservedByte)),
        }
    }
    if p > buf.len() {
        return if p > max_len {
            Err((0, RecordDefect::TooLarge { max: max_len }))
        } else {
            Ok(None)
        };
    }
    Ok(Some(p))
}

/// The end of the one value at `p`, or `None` if the buffer ends first
/// (records are bounded by [`DEFAULT_MAX_RECORD_SIZE`] here; readers with
/// another limit check the record's size themselves).
pub(crate) fn skip_value(buf: &[u8], p: usize) -> Result<Option<usize>, (usize, RecordDefect)> {
    skip(buf, p, 1, DEFAULT_MAX_RECORD_SIZE.max(buf.len()))
}

/// Scans one record (a map with string keys) at the start of `buf`.
///
/// Errors carry the offset of the offending byte within `buf`.
pub(crate) fn scan_record(buf: &[u8], max_len: usize) -> Result<Scan, (usize, RecordDefect)> {
    let pairs = match head(buf, 0) {
        None => return Ok(Scan::Incomplete),
        Some(Head::Container { children, .. }) if matches!(buf[0], 0x80..=0x8f | 0xde | 0xdf) => {
            children / 2
        }
        Some(_) => {
            return Err((
                0,
                RecordDefect::NotAMap {
                    found: family(buf[0]),
                },
            ))
        }
    };
    let mut p = match buf[0] {
        0xde => 3,
        0xdf => 5,
        _ => 1,
    };
    for _ in 0..pairs {
        let Some(&m) = buf.get(p) else {
            return Ok(Scan::Incomplete);
        };
        if !is_str(m) {
            return Err((p, RecordDefect::NonStringKey { found: family(m) }));
        }
        // The key, then its value.
        match skip(buf, p, 2, max_len)? {
            Some(end) => p = end,
            None => return Ok(Scan::Incomplete),
        }
    }
    Ok(Scan::Complete(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn finds_the_end_of_each_prefix() {
        // {"a": [1, "xy", {"b": nil}], "c": 1.5f64}
        let rec: &[u8] = &[
            0x82, 0xa1, b'a', 0x93, 0x01, 0xa2, b'x', b'y', 0x81, 0xa1, b'b', 0xc0, 0xa1, b'c',
            0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
        ];
        for cut in 0..rec.len() {
            assert_eq!(scan_record(&rec[..cut], MAX), Ok(Scan::Incomplete), "{cut}");
        }
        assert_eq!(scan_record(rec, MAX), Ok(Scan::Complete(rec.len())));
        let mut two = rec.to_vec();
        two.extend_from_slice(rec);
        assert_eq!(scan_record(&two, MAX), Ok(Scan::Complete(rec.len())));
    }

    #[test]
    fn rejects_what_is_not_a_record() {
        assert_eq!(
            scan_record(&[0x91, 0x01], MAX),
            Err((0, RecordDefect::NotAMap { found: "array" }))
        );
        assert_eq!(
            scan_record(&[0x81, 0x01, 0x01], MAX),
            Err((1, RecordDefect::NonStringKey { found: "int" }))
        );
        assert_eq!(
            scan_record(&[0x81, 0xa1, b'a', 0xc1], MAX),
            Err((3, RecordDefect::ReservedByte))
        );
    }

    #[test]
    fn huge_claims_fail_fast() {
        // An array32 claiming 4 billion items inside a 10-byte buffer.
        let rec = [0x81, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01];
        assert!(matches!(
            scan_record(&rec, MAX),
            Err((_, RecordDefect::TooLarge { .. }))
        ));
        // A str32 claiming 4 GiB.
        let rec = [0x81, 0xa1, b'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            scan_record(&rec, MAX),
            Err((_, RecordDefect::TooLarge { .. }))
        ));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut rec = vec![0x81, 0xa1, b'a'];
        rec.extend(std::iter::repeat_n(0x91, 500_000));
        rec.push(0xc0);
        assert_eq!(scan_record(&rec, MAX), Ok(Scan::Complete(rec.len())));
    }
}
