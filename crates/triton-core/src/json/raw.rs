//! The JSON view written straight from MessagePack bytes, without building
//! values: no allocation per record beyond the output, which is what makes
//! `triton decode` fast. It prints exactly what [`super::write_record`]
//! prints for the same record.

use super::{write_base64, write_f32, write_f64, write_int, write_str, write_uint};
use crate::msgpack::MAX_DEPTH;
use crate::value::Timestamp;

/// A map entry as written in wire order: where its key is in the input (for
/// sorting) and where its `"key":value` text is in the output.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The key's first eight bytes, big-endian, zero-padded: orders most
    /// keys without touching the input again.
    prefix: u64,
    key_start: usize,
    key_end: usize,
    out_start: usize,
    out_end: usize,
}

/// Reusable scratch space for [`super::write_raw_record`]; keep one per
/// output stream.
#[derive(Debug, Default)]
pub struct RawWriter {
    entries: Vec<Entry>,
    /// A map's entries in wire order while they are put in key order.
    text: Vec<u8>,
}

/// The record has something the fast path does not handle (a non-string key
/// in a nested map, or bytes that are not a whole record): the caller uses
/// the value path, which handles or reports everything.
pub(super) struct Fallback;

type Result<T> = std::result::Result<T, Fallback>;

struct Cursor<'a> {
    buf: &'a [u8],
}

impl Cursor<'_> {
    fn get(&self, at: usize, n: usize) -> Result<&[u8]> {
        at.checked_add(n)
            .and_then(|end| self.buf.get(at..end))
            .ok_or(Fallback)
    }

    fn be(&self, at: usize, n: usize) -> Result<u64> {
        Ok(self
            .get(at, n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// For a `str` header at `at`: (payload start, payload end).
    fn str_at(&self, at: usize) -> Result<Option<(usize, usize)>> {
        let m = *self.buf.get(at).ok_or(Fallback)?;
        let (start, len) = match m {
            0xa0..=0xbf => (at + 1, usize::from(m & 0x1f)),
            0xd9 => (at + 2, self.be(at + 1, 1)? as usize),
            0xda => (at + 3, self.be(at + 1, 2)? as usize),
            0xdb => (at + 5, self.be(at + 1, 4)? as usize),
            _ => return Ok(None),
        };
        self.get(start, len)?;
        Ok(Some((start, start + len)))
    }
}

fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// Byte order of two entries' keys.
fn order(c: &Cursor<'_>, a: &Entry, b: &Entry) -> std::cmp::Ordering {
    a.prefix
        .cmp(&b.prefix)
        .then_with(|| c.buf[a.key_start..a.key_end].cmp(&c.buf[b.key_start..b.key_end]))
}

impl RawWriter {
    /// A writer with empty scratch space.
    pub fn new() -> RawWriter {
        RawWriter::default()
    }

    /// Writes the `n` pairs of a map starting at `p` (keys sorted); returns
    /// where the map ends.
    ///
    /// Each pair is written in wire order, then the pairs' text is put in
    /// key order if the wire order was not sorted: one pass over the input,
    /// where finding each value's end first would take two.
    fn map(
        &mut self,
        out: &mut Vec<u8>,
        c: &Cursor<'_>,
        n: usize,
        mut p: usize,
        depth: usize,
    ) -> Result<usize> {
        let base = self.entries.len();
        out.push(b'{');
        let start = out.len();
        let mut sorted = true;
        for i in 0..n {
            let Some((key_start, key_end)) = c.str_at(p)? else {
                return Err(Fallback);
            };
            let out_start = out.len();
            write_str(out, &c.buf[key_start..key_end]);
            out.push(b':');
            p = self.value(out, c, key_end, depth)?;
            out.push(b',');
            let e = Entry {
                prefix: prefix(&c.buf[key_start..key_end]),
                key_start,
                key_end,
                out_start,
                out_end: out.len(),
            };
            if i > 0 && sorted {
                sorted = order(c, &self.entries[base + i - 1], &e).is_le();
            }
            self.entries.push(e);
        }
        if !sorted {
            // Stable, so duplicate keys keep their wire order as in the value path.
            self.entries[base..].sort_by(|a, b| order(c, a, b));
            self.text.clear();
            self.text.extend_from_slice(&out[start..]);
            out.truncate(start);
            for e in &self.entries[base..] {
                out.extend_from_slice(&self.text[e.out_start - start..e.out_end - start]);
            }
        }
        if n > 0 {
            // The last pair's comma becomes the closing brace.
            out.pop();
        }
        out.push(b'}');
        self.entries.truncate(base);
        Ok(p)
    }

    /// Writes the value at `at`, `depth` levels down; returns where it ends.
    fn value(
        &mut self,
        out: &mut Vec<u8>,
        c: &Cursor<'_>,
        at: usize,
        depth: usize,
    ) -> Result<usize> {
        // Deeper input goes to the value path, which reports it: recursion
        // here must stay bounded whatever the input.
        if depth > MAX_DEPTH {
            return Err(Fallback);
        }
        let depth = depth + 1;
        let m = *c.buf.get(at).ok_or(Fallback)?;
        let p = at + 1;
        Ok(match m {
            0x00..=0x7f => {
                write_uint(out, u64::from(m));
                p
            }
            0xe0..=0xff => {
                write_int(out, i64::from(m as i8));
                p
            }
            0xc0 => {
                out.extend_from_slice(b"null");
                p
            }
            0xc2 => {
                out.extend_from_slice(b"false");
                p
            }
            0xc3 => {
                out.extend_from_slice(b"true");
                p
            }
            0xcc..=0xcf => {
                let w = 1 << (m - 0xcc);
                write_uint(out, c.be(p, w)?);
                p + w
            }
            0xd0..=0xd3 => {
                let w = 1 << (m - 0xd0);
                let raw = c.be(p, w)?;
                // Sign-extend from the encoded width.
                let shift = 64 - 8 * w as u32;
                write_int(out, ((raw << shift) as i64) >> shift);
                p + w
            }
            0xca => {
                write_f32(out, f32::from_bits(c.be(p, 4)? as u32));
                p + 4
            }
            0xcb => {
                write_f64(out, f64::from_bits(c.be(p, 8)?));
                p + 8
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                let (s, e) = c.str_at(at)?.ok_or(Fallback)?;
                write_str(out, &c.buf[s..e]);
                e
            }
            0xc4..=0xc6 => {
                let w = 1 << (m - 0xc4);
                let n = c.be(p, w)? as usize;
                write_base64(out, c.get(p + w, n)?);
                p + w + n
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let (n, ty_at) = if m >= 0xd4 {
                    (1usize << (m - 0xd4), p)
                } else {
                    let w = 1 << (m - 0xc7);
                    (c.be(p, w)? as usize, p + w)
                };
                let ty = *c.buf.get(ty_at).ok_or(Fallback)? as i8;
                let data = c.get(ty_at + 1, n)?;
                match Timestamp::from_ext(ty, data) {
                    Some(ts) => super::write_timestamp(out, &ts),
                    None => super::write_ext(out, ty, data),
                }
                ty_at + 1 + n
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let (n, mut q) = match m {
                    0xdc => (c.be(p, 2)? as usize, p + 2),
                    0xdd => (c.be(p, 4)? as usize, p + 4),
                    _ => (usize::from(m & 0x0f), p),
                };
                out.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    q = self.value(out, c, q, depth)?;
                }
                out.push(b']');
                q
            }
            0x80..=0x8f => self.map(out, c, usize::from(m & 0x0f), p, depth)?,
            0xde => self.map(out, c, c.be(p, 2)? as usize, p + 2, depth)?,
            0xdf => self.map(out, c, c.be(p, 4)? as usize, p + 4, depth)?,
            0xc1 => return Err(Fallback),
        })
    }

    /// Appends the JSON view of one record given as its MessagePack bytes;
    /// on `Fallback` nothing is appended.
    pub(super) fn write(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<()> {
        let start = out.len();
        let c = Cursor { buf: record };
        self.entries.clear();
        let is_map = matches!(record.first(), Some(0x80..=0x8f | 0xde | 0xdf));
        match self.value(out, &c, 0, 0) {
            Ok(end) if is_map && end == record.len() => Ok(()),
            _ => {
                out.truncate(start);
                Err(Fallback)
            }
        }
    }
}
