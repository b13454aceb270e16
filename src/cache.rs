//! The bounded cache of decrypted blocks, keyed by (image, block number).
//!
//! Blocks are [`BLOCK_SIZE`] bytes of plaintext (a multiple of every sector size, so a block is
//! always decrypted whole). The cache is shared by all images of a mount and bounded in bytes;
//! concurrent readers of the same block wait for one decryption (quick_cache's
//! `get_or_insert_with` is single-flight) instead of decrypting it twice.
//!
//! Only reads smaller than a page come through it (see [`DIRECT_MIN`]): the kernel's buffered
//! reads are whole pages, and the kernel page cache already keeps every page it asked for, so
//! the cache serves sub-page reads (O_DIRECT, odd offsets) and their neighbours.

use crate::Result;
use crate::io::ReadAt;
use quick_cache::Weighter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Plaintext bytes per cache block: a sub-page read decrypts 16 KiB around what it asks for,
/// enough for neighbouring small reads to hit.
pub const BLOCK_SIZE: u64 = 16 << 10;

/// Requests at least this large bypass the cache (see [`BlockCache::read`]): one page. Decrypting
/// a 4 KiB random read straight into the reply instead of a 16 KiB block through the cache took
/// fio randread (1 GiB LUKS1 image, psync, 1 job) from 26.5-29k to 37.7-38k IOPS, and 2 jobs from
/// 105-109k to 129-144k (scripts/bench.sh's fio command, this 2-core VM).
pub const DIRECT_MIN: u64 = 4 << 10;

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
    capacity: u64,
    counts: Counters,
}

/// How the cache has been used (relaxed counters: statistics, not synchronisation).
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    direct: AtomicU64,
}

/// A snapshot of a cache's counters (for `luksfs status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Block lookups answered from the cache.
    pub hits: u64,
    /// Block lookups that decrypted the block (a concurrent reader waiting for the same
    /// decryption counts as a hit).
    pub misses: u64,
    /// Reads of a page or more, decrypted straight into the reply (they never touch the cache).
    pub direct_reads: u64,
    /// Plaintext bytes cached now.
    pub bytes: u64,
    /// Plaintext bytes the cache may hold.
    pub capacity: u64,
}

impl CacheStats {
    /// Hits per block lookup, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

impl BlockCache {
    /// A cache whose plaintext, allocator slack and bookkeeping stay within `capacity_bytes`
    /// (at least one block): blocks get three quarters of it, the rest is headroom measured
    /// with `scripts/bench.sh` (peak RSS after random reads).
    pub fn new(capacity_bytes: u64) -> Self {
        let cap = (capacity_bytes / 4 * 3).max(BLOCK_SIZE);
        let items = (cap / BLOCK_SIZE) as usize;
        BlockCache {
            inner: quick_cache::sync::Cache::with_weighter(items, cap, Bytes),
            capacity: cap,
            counts: Counters::default(),
        }
    }

    /// Fill `out` with the plaintext of `image` (known to the cache as `id`) at `off`. The range
    /// must lie within the image.
    pub fn read(&self, id: u64, image: &dyn ReadAt, off: u64, out: &mut [u8]) -> Result<()> {
        if out.len() as u64 >= DIRECT_MIN {
            // Page-sized and larger reads: decrypt straight into the caller's buffer. The kernel
            // page cache keeps what it asked for, so caching it here again would only cost an
            // allocation, a larger decryption and a copy.
            self.counts.direct.fetch_add(1, Ordering::Relaxed);
            return image.read_exact_at(out, off);
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

    fn block(&self, id: u64, image: &dyn ReadAt, block: u64) -> Result<Arc<[u8]>> {
        let mut missed = false;
        let r = self.inner.get_or_insert_with(&(id, block), || {
            missed = true;
            let start = block * BLOCK_SIZE;
            let len = BLOCK_SIZE.min(image.size() - start) as usize;
            let mut v = vec![0u8; len];
            image.read_exact_at(&mut v, start)?;
            Ok(Arc::from(v))
        });
        let counter = if missed { &self.counts.misses } else { &self.counts.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// The counters so far, and what is cached now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counts.hits.load(Ordering::Relaxed),
            misses: self.counts.misses.load(Ordering::Relaxed),
            direct_reads: self.counts.direct.load(Ordering::Relaxed),
            bytes: self.inner.weight(),
            capacity: self.capacity,
        }
    }

    /// Bytes currently cached.
    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Plaintext byte `i` is `i % 251`; counts the bytes "decrypted".
    struct Fake {
        size: u64,
        decrypted: AtomicUsize,
    }

    impl ReadAt for Fake {
        fn size(&self) -> u64 {
            self.size
        }
        fn read_exact_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
            assert!(off + buf.len() as u64 <= self.size);
            std::thread::sleep(std::time::Duration::from_millis(2));
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((off + i as u64) % 251) as u8;
            }
            self.decrypted.fetch_add(buf.len(), Ordering::Relaxed);
            Ok(())
        }
    }

    fn expect(off: u64, n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| ((off + i) % 251) as u8).collect()
    }

    #[test]
    fn small_reads_are_cached_and_exact() {
        let src = Fake { size: 100_000, decrypted: AtomicUsize::new(0) };
        let c = BlockCache::new(1 << 20);
        for (off, n) in [(0u64, 4095usize), (5000, 3), (16380, 10), (99_990, 10), (4096, 100)] {
            let mut out = vec![0u8; n];
            c.read(1, &src, off, &mut out).unwrap();
            assert_eq!(out, expect(off, n), "at {off}");
        }
        // Blocks 0, 1 and the partial last one, each decrypted once.
        let last = 100_000 - 6 * BLOCK_SIZE as usize;
        assert_eq!(src.decrypted.load(Ordering::Relaxed), 2 * BLOCK_SIZE as usize + last);
        // Lookups: block 0 (miss), 0, 0 and 1 (miss), 6 (miss), 0.
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.direct_reads), (3, 3, 0));
        assert_eq!(s.hit_rate(), Some(0.5));
        assert_eq!(s.bytes, c.weight());
    }

    #[test]
    fn large_reads_bypass_the_cache() {
        let src = Fake { size: 1 << 20, decrypted: AtomicUsize::new(0) };
        let c = BlockCache::new(1 << 20);
        let mut out = vec![0u8; DIRECT_MIN as usize];
        c.read(1, &src, 12345, &mut out).unwrap();
        assert_eq!(out, expect(12345, out.len()));
        assert_eq!(c.weight(), 0);
        assert_eq!(c.stats(), CacheStats { direct_reads: 1, capacity: c.stats().capacity, ..CacheStats::default() });
        assert_eq!(c.stats().hit_rate(), None);
    }

    #[test]
    fn concurrent_readers_decrypt_a_block_once() {
        let src = Fake { size: 1 << 20, decrypted: AtomicUsize::new(0) };
        let c = BlockCache::new(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut out = vec![0u8; 512];
                    c.read(7, &src, 1024, &mut out).unwrap();
                    assert_eq!(out, expect(1024, 512));
                });
            }
        });
        assert_eq!(src.decrypted.load(Ordering::Relaxed), BLOCK_SIZE as usize);
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let src = Fake { size: 64 << 20, decrypted: AtomicUsize::new(0) };
        let budget = 256 << 10;
        let c = BlockCache::new(budget / 3 * 4);
        let mut out = vec![0u8; 100];
        for b in 0..(64 << 20) / BLOCK_SIZE {
            c.read(1, &src, b * BLOCK_SIZE + 5, &mut out).unwrap();
        }
        assert!(c.weight() <= budget, "{} > {budget}", c.weight());
    }
}
