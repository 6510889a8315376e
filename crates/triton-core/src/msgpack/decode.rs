//! Building [`Value`]s from bytes the scanner has already delimited.
//!
//! Because the scanner proved the record is whole, running out of bytes here
//! means a bug or a lying caller; it is still reported as an error, never a
//! panic.

use super::{RecordDefect, MAX_DEPTH};
use crate::value::{Record, Str, Timestamp, Value};

/// Errors are boxed: they are rare, and a small `Result` keeps the hot
/// decode path in registers.
type Result<T> = std::result::Result<T, Box<(usize, RecordDefect)>>;

fn fail<T>(at: usize, defect: RecordDefect) -> Result<T> {
    Err(Box::new((at, defect)))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => fail(self.buf.len(), RecordDefect::Truncated),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn len(&mut self, width: usize) -> Result<usize> {
        Ok(match width {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        let start = self.pos;
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => Value::Int(i64::from(m)),
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
            0xa0..=0xbf => Value::Str(self.str(usize::from(m & 0x1f))?),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.array_of(usize::from(m & 0x0f), depth)?,
            0xc0 => Value::Nil,
            0xc1 => return fail(start, RecordDefect::ReservedByte),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                self.ext(n)?
            }
            0xca => Value::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Value::UInt(u64::from(self.byte()?)),
            0xcd => Value::UInt(u64::from(u16::from_be_bytes(self.array()?))),
            0xce => Value::UInt(u64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Value::UInt(u64::from_be_bytes(self.array()?)),
            0xd0 => Value::Int(i64::from(self.byte()? as i8)),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.ext(1 << (m - 0xd4))?,
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                Value::Str(self.str(n)?)
            }
            0xdc | 0xdd => {
                let n = self.len(if m == 0xdc { 2 } else { 4 })?;
                self.array_of(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.len(if m == 0xde { 2 } else { 4 })?;
                self.map(n, depth)?
            }
        })
    }

    fn ext(&mut self, n: usize) -> Result<Value> {
        let ty = self.byte()? as i8;
        let data = self.take(n)?;
        Ok(match Timestamp::from_ext(ty, data) {
            Some(ts) => Value::Timestamp(ts),
            None => Value::Ext(ty, data.to_vec()),
        })
    }

    /// Every item takes at least one byte, so the remaining input bounds the
    /// allocation whatever the header claims.
    fn capacity(&self, n: usize, per: usize) -> usize {
        n.min((self.buf.len() - self.pos) / per)
    }

    fn array_of(&mut self, n: usize, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return fail(self.pos, RecordDefect::TooDeep);
        }
        let mut items = Vec::with_capacity(self.capacity(n, 1));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return fail(self.pos, RecordDefect::TooDeep);
        }
        let mut pairs = Vec::with_capacity(self.capacity(n, 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }

    fn key(&mut self) -> Result<Str> {
        let start = self.pos;
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9..=0xdb => self.len(1 << (m - 0xd9))?,
            _ => {
                return fail(
                    start,
                    RecordDefect::NonStringKey {
                        found: super::family(m),
                    },
                )
            }
        };
        self.str(n)
    }

    /// A `str` payload of `n` bytes at the cursor.
    #[inline]
    fn str(&mut self, n: usize) -> Result<Str> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if let Some(s) = Str::inline_prefix(rest, n) {
            self.pos += n;
            return Ok(s);
        }
        Ok(Str::from_bytes(self.take(n)?))
    }
}

/// Decodes the record at the start of `buf` and returns it with the number
/// of bytes it took. Running out of bytes is `RecordDefect::Truncated` at
/// `buf.len()`, which a streaming caller treats as "feed more".
pub(super) fn record(buf: &[u8]) -> Result<(Record, usize)> {
    let mut c = Cursor { buf, pos: 0 };
    let m = c.byte()?;
    let n = match m {
        0x80..=0x8f => usize::from(m & 0x0f),
        0xde => c.len(2)?,
        0xdf => c.len(4)?,
        _ => {
            return fail(
                0,
                RecordDefect::NotAMap {
                    found: super::family(m),
                },
            )
        }
    };
    let mut fields = Vec::with_capacity(c.capacity(n, 2));
    for _ in 0..n {
        let k = c.key()?;
        let v = c.value(1)?;
        fields.push((k, v));
    }
    Ok((Record::from_fields(fields), c.pos))
}
