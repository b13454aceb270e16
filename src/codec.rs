//! A cursor over untrusted bytes (rustls `codec::Reader` style): every read is bounds-checked and a
//! short buffer is an error naming what was missing, never a panic.

use std::fmt;

/// What a [`Reader`] could not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// The field being read.
    pub what: &'static str,
    /// Offset of the field in the buffer.
    pub offset: usize,
    /// Bytes the field needs.
    pub need: usize,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "truncated: {} needs {} bytes at offset {}", self.what, self.need, self.offset)
    }
}

impl std::error::Error for Truncated {}

/// A bounds-checked big-/little-endian reader over a byte slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Current offset from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Truncated { what, offset: self.pos, need: n }),
        }
    }
    /// Take exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Truncated> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Truncated> {
        self.take(n, what).map(|_| ())
    }
    /// Big-endian u16.
    pub fn be_u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_be_bytes)
    }
    /// Big-endian u32.
    pub fn be_u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_be_bytes)
    }
    /// Big-endian u64.
    pub fn be_u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_be_bytes)
    }
    /// Little-endian u16.
    pub fn le_u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_le_bytes)
    }
    /// Little-endian u32.
    pub fn le_u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_le_bytes)
    }
    /// Little-endian u64.
    pub fn le_u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_le_bytes)
    }
    /// A fixed-size NUL-padded string field (`n` bytes); the text up to the first NUL, lossily UTF-8.
    pub fn cstr(&mut self, n: usize, what: &'static str) -> Result<String, Truncated> {
        let s = self.take(n, what)?;
        Ok(cstr(s))
    }
}

/// The text of a NUL-padded byte field up to its first NUL (lossy UTF-8).
pub fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let b = [0, 1, 0, 0, 0, 2, b'a', b'b', 0, 0];
        let mut r = Reader::new(&b);
        assert_eq!(r.be_u16("x").unwrap(), 1);
        assert_eq!(r.be_u32("y").unwrap(), 2);
        assert_eq!(r.cstr(4, "s").unwrap(), "ab");
        let e = r.be_u16("z").unwrap_err();
        assert_eq!(e, Truncated { what: "z", offset: 10, need: 2 });
        assert!(r.take(usize::MAX, "huge").is_err());
    }

    #[test]
    fn little_endian() {
        let b = [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        let mut r = Reader::new(&b);
        assert_eq!(r.le_u16("a").unwrap(), 1);
        assert_eq!(r.le_u32("b").unwrap(), 2);
        assert_eq!(r.le_u64("c").unwrap(), 3);
        assert!(r.le_u16("d").is_err());
    }
}
