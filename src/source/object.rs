//! One object of an [`ObjectStore`] read in place as a layer ([`ObjectReader`]): a LUKS or qcow2
//! image file kept in a Swift container or an S3 bucket is probed and decrypted by range
//! requests, never downloaded. Reads go by aligned blocks, and the few most recent blocks are
//! kept, so a probe's many small header reads and a stream's 128 KiB FUSE reads cost one
//! request per block, not one per read.

use super::ObjectStore;
use crate::io::{ReadAt, past_end, within};
use crate::{Error, Result};
use std::sync::{Arc, Mutex};

/// Bytes fetched per range request.
pub const BLOCK: u64 = 1 << 20;
/// Blocks kept (the most recently used).
const KEPT: usize = 4;

/// One object, read by range.
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    name: String,
    size: u64,
    /// Most recently used last: (block index, bytes).
    recent: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

impl ObjectReader {
    /// Object `name` of `store`, `size` bytes long (as the store's listing says).
    pub fn new(store: Arc<dyn ObjectStore>, name: &str, size: u64) -> ObjectReader {
        ObjectReader { store, name: name.to_string(), size, recent: Mutex::new(Vec::with_capacity(KEPT)) }
    }

    /// The object's name in its store.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn block(&self, index: u64) -> Result<Arc<Vec<u8>>> {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = recent.iter().position(|(b, _)| *b == index) {
                let hit = recent.remove(i);
                let data = hit.1.clone();
                recent.push(hit);
                return Ok(data);
            }
        }
        let start = index * BLOCK;
        let len = (self.size - start).min(BLOCK) as usize;
        let what = || format!("object {} of {}", self.name, self.store.describe());
        let data = self
            .store
            .get_range(&self.name, start, len)
            .map_err(|e| e.context(what()))?
            .ok_or_else(|| Error::corrupt(format!("{} is gone (it was listed)", what())))?;
        if data.len() != len {
            return Err(Error::corrupt(format!("{}: {} bytes at {start} instead of {len}", what(), data.len())));
        }
        let data = Arc::new(data);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= KEPT {
            recent.remove(0);
        }
        recent.push((index, data.clone()));
        Ok(data)
    }
}

impl ReadAt for ObjectReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !within(offset, buf.len(), self.size) {
            return Err(past_end(&format!("object {}", self.name), offset, buf.len(), self.size));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let data = self.block(pos / BLOCK)?;
            let at = (pos % BLOCK) as usize;
            let n = (data.len() - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[at..at + n]);
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemStore;

    #[test]
    fn reads_across_blocks_and_refuses_past_the_end() {
        let data: Vec<u8> = (0..(3 * BLOCK + 17)).map(|i| (i * 7 % 251) as u8).collect();
        let mut m = MemStore::default();
        m.objects.insert("img".into(), data.clone());
        let r = ObjectReader::new(Arc::new(m), "img", data.len() as u64);
        for (off, len) in [(0u64, 10usize), (BLOCK - 5, 10), (BLOCK * 2 - 1, BLOCK as usize + 2), (3 * BLOCK, 17)] {
            let mut b = vec![0u8; len];
            r.read_exact_at(&mut b, off).unwrap();
            assert_eq!(b, data[off as usize..off as usize + len]);
        }
        let mut b = vec![0u8; 18];
        assert_eq!(r.read_exact_at(&mut b, 3 * BLOCK).unwrap_err().kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn an_object_gone_or_shorter_than_listed_is_an_error() {
        let mut m = MemStore::default();
        m.objects.insert("img".into(), vec![1u8; 100]);
        let m = Arc::new(m);
        let short = ObjectReader::new(m.clone(), "img", 200);
        assert!(short.read_exact_at(&mut [0u8; 10], 150).is_err());
        let gone = ObjectReader::new(m, "other", 100);
        assert_eq!(gone.read_exact_at(&mut [0u8; 10], 0).unwrap_err().kind(), crate::ErrorKind::Corrupt);
    }
}
