//! Positional reads: the one interface every layer of the stack consumes and provides.
//!
//! A file or block device ([`file::FileSource`]), a window of another reader (a partition:
//! [`window::Window`]), an extent map (LVM segments), a qcow2 guest disk and a decrypted LUKS
//! volume all implement [`ReadAt`], so layers stack in any order. Errors are [`crate::Error`]s and
//! keep their class through every layer: a read past the end of what a layer holds is
//! [`crate::ErrorKind::Corrupt`] (a truncated image), an operating-system failure is
//! [`crate::ErrorKind::Io`].

pub mod file;
pub mod window;

pub use file::FileSource;
pub use window::Window;

use crate::{Error, Result};
use std::sync::Arc;

/// Read-only positional access to a byte range: a file, or any layer built on one.
pub trait ReadAt: Send + Sync {
    /// Fill `buf` from byte `offset`. A range that does not lie within [`ReadAt::size`] is an
    /// error ([`crate::ErrorKind::Corrupt`]: the data the caller was promised is not there).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// Size in bytes (fixed when the layer was opened).
    fn size(&self) -> u64;
    /// The checks that only a read of every byte can complete, made after one (`verify`): a
    /// Cinder backup's md5 of each of its objects. Layers that check what they read as they
    /// read it have none.
    fn finish_checks(&self) -> Result<()> {
        Ok(())
    }
}

/// The error for a read of `len` bytes at `offset` that does not lie within `size` bytes.
pub fn past_end(what: &str, offset: u64, len: usize, size: u64) -> Error {
    Error::corrupt(format!("{what} is truncated: {len} bytes at byte {offset} lie past its end ({size} bytes)"))
}

/// Whether `[offset, offset + len)` lies within `size` bytes.
pub fn within(offset: u64, len: usize, size: u64) -> bool {
    offset.checked_add(len as u64).is_some_and(|end| end <= size)
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !within(offset, buf.len(), self.len() as u64) {
            return Err(past_end("the buffer", offset, buf.len(), self.len() as u64));
        }
        let s = offset as usize;
        buf.copy_from_slice(&self[s..s + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn finish_checks(&self) -> Result<()> {
        (**self).finish_checks()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn finish_checks(&self) -> Result<()> {
        (**self).finish_checks()
    }
}

/// Read `n` bytes at `offset` into a new buffer; `n` must already be bounded by the caller.
pub fn read_vec(r: &dyn ReadAt, offset: u64, n: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    r.read_exact_at(&mut v, offset)?;
    Ok(v)
}

/// Read up to `n` bytes at `offset` (fewer where the reader ends first); `n` must be bounded.
pub fn read_upto(r: &dyn ReadAt, offset: u64, n: usize) -> Result<Vec<u8>> {
    let avail = r.size().saturating_sub(offset).min(n as u64) as usize;
    read_vec(r, offset.min(r.size()), avail)
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
        assert_eq!(v.read_exact_at(&mut b, 97).unwrap_err().kind(), crate::ErrorKind::Corrupt);
        assert!(v.read_exact_at(&mut b, u64::MAX).is_err());
        let w = Window::new(Arc::new(v), 10, 20, "window").unwrap();
        w.read_exact_at(&mut b, 16).unwrap();
        assert_eq!(b, [26, 27, 28, 29]);
        assert!(w.read_exact_at(&mut b, 17).is_err());
        assert_eq!(read_upto(&w, 18, 10).unwrap(), vec![28, 29]);
    }
}
