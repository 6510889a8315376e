//! `Str`: a MessagePack `str` that stays lossless when the bytes are not UTF-8.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Capacity of the inline representation. Event field names and most short
/// values (`"type"`, `"user_id"`, `"click"`) fit, which saves one allocation
/// per key when decoding; 22 keeps `Str` at 24 bytes, the size of a `Vec`.
const INLINE: usize = 22;

/// A MessagePack `str` value.
///
/// The MessagePack spec says `str` holds UTF-8, but archives written by other
/// producers (and Go, which never checks) can contain arbitrary bytes. `Str`
/// keeps the exact bytes so that nothing is lost on a round trip, and offers
/// [`Str::as_str`] for the (usual) valid case and [`Str::to_string_lossy`]
/// for display.
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Str {
    /// Creates a `Str` holding a copy of `bytes` (which need not be UTF-8).
    pub fn from_bytes(bytes: &[u8]) -> Str {
        if bytes.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            Str(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            Str(Repr::Heap(bytes.into()))
        }
    }

    /// The first `len` bytes of `rest`, if they fit inline and `rest` has
    /// at least a whole inline buffer's worth of bytes: then the copy has a
    /// fixed size, much cheaper than a variable one for the short strings
    /// that dominate events.
    #[inline]
    pub(crate) fn inline_prefix(rest: &[u8], len: usize) -> Option<Str> {
        let window = rest.first_chunk::<INLINE>()?;
        // Bytes past `len` are never read (equality and hashing use
        // `as_bytes`), so they may keep whatever followed the string.
        (len <= INLINE).then_some(Str(Repr::Inline {
            len: len as u8,
            buf: *window,
        }))
    }

    /// The raw bytes, exactly as stored in the archive.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The text with each invalid UTF-8 sequence replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str::from_bytes(s.as_bytes())
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        if s.len() <= INLINE {
            Str::from_bytes(s.as_bytes())
        } else {
            Str(Repr::Heap(s.into_bytes().into_boxed_slice()))
        }
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    /// Byte order, which for valid UTF-8 is also code point order (and is the
    /// order Go's `sort.Strings` gives, so JSON keys sort as go-triton's did).
    fn cmp(&self, other: &Str) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => fmt::Debug::fmt(s, f),
            None => write!(f, "Str(invalid utf-8 {:?})", self.to_string_lossy()),
        }
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_hold_the_same_bytes() {
        for n in [0, 1, 21, 22, 23, 100] {
            let s: String = "x".repeat(n);
            let a = Str::from(s.as_str());
            let b = Str::from(s.clone());
            assert_eq!(a.as_str(), Some(s.as_str()));
            assert_eq!(a, b);
            assert_eq!(a.len(), n);
        }
        assert_eq!(std::mem::size_of::<Str>(), 24);
    }

    #[test]
    fn invalid_utf8_is_kept() {
        let s = Str::from_bytes(b"bad\xff\xfeend");
        assert_eq!(s.as_str(), None);
        assert_eq!(s.as_bytes(), b"bad\xff\xfeend");
        assert_eq!(s.to_string_lossy(), "bad\u{fffd}\u{fffd}end");
    }
}
