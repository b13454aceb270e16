//! Positional reads from images: the only I/O abstraction the format and key-slot code see, so
//! they can be tested on byte vectors and fuzzed without files.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Read-only positional access to an image (or part of one).
pub trait ReadAt: Send + Sync {
    /// Fill `buf` from byte `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= self.len());
        match start.and_then(|s| s.checked_add(buf.len()).filter(|&e| e <= self.len()).map(|e| (s, e))) {
            Some((s, e)) => {
                buf.copy_from_slice(&self[s..e]);
                Ok(())
            }
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end")),
        }
    }
    fn size(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.as_slice().len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

/// A window `[base, base + len)` of another reader, e.g. the LUKS header embedded in a qcow2 file.
pub struct Window<R> {
    inner: R,
    base: u64,
    len: u64,
}

impl<R: ReadAt> Window<R> {
    /// The bytes `[base, base + len)` of `inner`.
    pub fn new(inner: R, base: u64, len: u64) -> Self {
        Window { inner, base, len }
    }
}

impl<R: ReadAt> ReadAt for Window<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.len);
        match end.and_then(|_| self.base.checked_add(offset)) {
            Some(abs) => self.inner.read_exact_at(buf, abs),
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the embedded header")),
        }
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

/// Read `n` bytes at `offset` into a new buffer; `n` must already be bounded by the caller.
pub fn read_vec(r: &dyn ReadAt, offset: u64, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    r.read_exact_at(&mut v, offset)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_windows_bound_reads() {
        let v: Vec<u8> = (0..100).collect();
        let mut b = [0u8; 4];
        v.read_exact_at(&mut b, 96).unwrap();
        assert_eq!(b, [96, 97, 98, 99]);
        assert!(v.read_exact_at(&mut b, 97).is_err());
        assert!(v.read_exact_at(&mut b, u64::MAX).is_err());
        let w = Window::new(v, 10, 20);
        w.read_exact_at(&mut b, 16).unwrap();
        assert_eq!(b, [26, 27, 28, 29]);
        assert!(w.read_exact_at(&mut b, 17).is_err());
    }
}
