//! A window `[base, base + len)` of another reader: a partition of a disk, the LUKS header
//! embedded in a qcow2 file, the data area after a header.

use super::{ReadAt, past_end, within};
use crate::{Error, Result};
use std::sync::Arc;

/// The bytes `[base, base + len)` of `inner`.
pub struct Window {
    inner: Arc<dyn ReadAt>,
    base: u64,
    len: u64,
    what: &'static str,
}

impl Window {
    /// The window `[base, base + len)` of `inner`; `what` names it in errors ("partition").
    /// A window reaching past the end of `inner` is refused ([`crate::ErrorKind::Corrupt`]).
    pub fn new(inner: Arc<dyn ReadAt>, base: u64, len: u64, what: &'static str) -> Result<Window> {
        let end = base.checked_add(len).ok_or_else(|| Error::corrupt(format!("{what}: {base} + {len} overflows")))?;
        if end > inner.size() {
            return Err(Error::corrupt(format!(
                "{what} ends at byte {end}, past the end of what holds it ({} bytes): truncated",
                inner.size()
            )));
        }
        Ok(Window { inner, base, len, what })
    }

    /// Where the window starts in the reader below.
    pub fn base(&self) -> u64 {
        self.base
    }
}

impl ReadAt for Window {
    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !within(offset, buf.len(), self.len) {
            return Err(past_end(self.what, offset, buf.len(), self.len));
        }
        self.inner.read_exact_at(buf, self.base + offset)
    }
    fn size(&self) -> u64 {
        self.len
    }
}
