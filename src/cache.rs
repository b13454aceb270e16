//! The bounded cache of decrypted blocks, keyed by (image, block number).
//!
//! Blocks are [`BLOCK_SIZE`] bytes of plaintext (a multiple of every sector size, so a block is
//! always decrypted whole). The cache is shared by all images of a mount and bounded in bytes;
//! concurrent readers of the same block wait for one decryption (quick_cache's
//! `get_or_insert_with` is single-flight) instead of decrypting it twice.

use crate::Result;
use crate::image::Image;
use quick_cache::Weighter;
use std::sync::Arc;

/// Plaintext bytes per cache block.
pub const BLOCK_SIZE: u64 = 64 << 10;

/// Requests at least this large bypass the cache (see [`BlockCache::read`]).
pub const DIRECT_MIN: u64 = BLOCK_SIZE;

/// Default cache budget.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

#[derive(Clone)]
struct Bytes;

impl Weighter<(u64, u64), Arc<[u8]>> for Bytes {
    fn weight(&self, _key: &(u64, u64), val: &Arc<[u8]>) -> u64 {
        val.len() as u64
    }
}

/// A byte-bounded, thread-safe cache of decrypted blocks.
pub struct BlockCache {
    inner: quick_cache::sync::Cache<(u64, u64), Arc<[u8]>, Bytes>,
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` of plaintext (at least one block).
    pub fn new(capacity_bytes: u64) -> Self {
        let cap = capacity_bytes.max(BLOCK_SIZE);
        let items = (cap / BLOCK_SIZE) as usize;
        BlockCache { inner: quick_cache::sync::Cache::with_weighter(items, cap, Bytes) }
    }

    /// Fill `out` with the plaintext of `image` (known to the cache as `id`) at `off`. The range
    /// must lie within the image.
    pub fn read(&self, id: u64, image: &Image, off: u64, out: &mut [u8]) -> Result<()> {
        if out.len() as u64 >= DIRECT_MIN {
            // Streaming reads: decrypt straight into the caller's buffer. The kernel page cache
            // keeps what it asked for, so caching it here again would only evict useful blocks.
            return image.read_plain(off, out);
        }
        let mut done = 0usize;
        while done < out.len() {
            let pos = off + done as u64;
            let (block, within) = (pos / BLOCK_SIZE, (pos % BLOCK_SIZE) as usize);
            let data = self.block(id, image, block)?;
            let n = (data.len() - within).min(out.len() - done);
            out[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn block(&self, id: u64, image: &Image, block: u64) -> Result<Arc<[u8]>> {
        self.inner.get_or_insert_with(&(id, block), || {
            let start = block * BLOCK_SIZE;
            let len = BLOCK_SIZE.min(image.size() - start) as usize;
            let mut v = vec![0u8; len];
            image.read_plain(start, &mut v)?;
            Ok(Arc::from(v))
        })
    }

    /// Bytes currently cached.
    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }
}
