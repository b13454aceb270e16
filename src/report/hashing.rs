//! The hashes `verify` computes over a source: SHA-256, the Glance sidecar's `os_hash_algo`
//! and an image signature's hash method, one thread each, from one read of the source.

use crate::io::ReadAt;
use crate::signature::HashMethod;
use crate::{Error, Result};
use sha2::Digest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes per read of the ciphertext file.
pub(crate) const FILE_CHUNK: usize = 4 << 20;

/// Glance `os_hash_algo` values luksfs can check (no MD5: luksfs has no MD5 implementation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OsAlgo {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl OsAlgo {
    pub(crate) fn from_name(s: &str) -> Option<OsAlgo> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Some(OsAlgo::Sha1),
            "sha224" => Some(OsAlgo::Sha224),
            "sha256" => Some(OsAlgo::Sha256),
            "sha384" => Some(OsAlgo::Sha384),
            "sha512" => Some(OsAlgo::Sha512),
            _ => None,
        }
    }
    /// The algorithm an image signature's hash method is.
    pub(crate) fn of_signature(h: HashMethod) -> OsAlgo {
        match h {
            HashMethod::Sha224 => OsAlgo::Sha224,
            HashMethod::Sha256 => OsAlgo::Sha256,
            HashMethod::Sha384 => OsAlgo::Sha384,
            HashMethod::Sha512 => OsAlgo::Sha512,
        }
    }
    pub(crate) fn hasher(self) -> Hasher {
        match self {
            OsAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            OsAlgo::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            OsAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            OsAlgo::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            OsAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A running hash of one of the [`OsAlgo`]s.
pub(crate) enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha224(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    #[cfg(test)]
    pub(crate) fn finish(self) -> String {
        hex::encode(self.finish_bytes())
    }
    pub(crate) fn finish_bytes(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Hash all of `src` (the image file, or whatever layer its bytes come from) with `h`; `done`
/// counts the bytes hashed.
pub(crate) fn hash_source(src: &dyn ReadAt, h: Hasher, done: &AtomicU64, stop: &AtomicBool) -> Result<String> {
    let mut d = hash_source_all(src, vec![h], done, stop)?;
    Ok(hex::encode(d.pop().unwrap_or_default()))
}

/// Chunks read ahead of the slowest hash in [`hash_source_all`].
pub(crate) const HASH_QUEUE: usize = 3;

/// Hash all of `src` with each of `hashers`, reading it once: this thread reads [`FILE_CHUNK`]s
/// and hands each to one thread per hash (SHA-512 has no CPU instructions here and would hold
/// SHA-256 back; a source read over the network is fetched once). `done` counts the bytes every
/// hash has taken. Returns the digests in the order of `hashers`.
pub(crate) fn hash_source_all(
    src: &dyn ReadAt,
    hashers: Vec<Hasher>,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Result<Vec<Vec<u8>>> {
    let size = src.size();
    hash_stream(hashers, done, |send| {
        // Buffers go round: one is reused once every hash thread has let go of it.
        let mut pool: std::collections::VecDeque<Arc<Vec<u8>>> = std::collections::VecDeque::new();
        let mut off = 0u64;
        while off < size {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::io("stopped"));
            }
            let n = (size - off).min(FILE_CHUNK as u64) as usize;
            let reuse = pool.front_mut().is_some_and(|b| Arc::get_mut(b).is_some());
            let mut buf =
                if reuse { pool.pop_front().unwrap_or_default() } else { Arc::new(Vec::with_capacity(FILE_CHUNK)) };
            // unique here (fresh, or released by every hash thread): no copy is made
            let b = Arc::make_mut(&mut buf);
            b.resize(n, 0);
            src.read_exact_at(b, off)?;
            send(buf.clone())?;
            off += n as u64;
            pool.push_back(buf);
            if pool.len() > HASH_QUEUE + 2 {
                pool.pop_front();
            }
        }
        Ok(())
    })
}

/// Hash the chunks `feed` hands to the sender it is given (in order) with each of `hashers`, one
/// thread per hash, at most [`HASH_QUEUE`] chunks queued for each; `done` counts the bytes every
/// hash has taken. Returns the digests in the order of `hashers`, or the first error of `feed`.
pub(crate) fn hash_stream(
    hashers: Vec<Hasher>,
    done: &AtomicU64,
    feed: impl FnOnce(&mut dyn FnMut(Arc<Vec<u8>>) -> Result<()>) -> Result<()>,
) -> Result<Vec<Vec<u8>>> {
    let taken: Vec<AtomicU64> = hashers.iter().map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        let taken = &taken;
        let mut senders = Vec::with_capacity(hashers.len());
        let mut workers = Vec::with_capacity(hashers.len());
        for (i, mut h) in hashers.into_iter().enumerate() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(HASH_QUEUE);
            senders.push(tx);
            workers.push(s.spawn(move || {
                for chunk in rx {
                    h.update(&chunk);
                    taken[i].fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let all = taken.iter().map(|t| t.load(Ordering::Relaxed)).min().unwrap_or(0);
                    done.fetch_max(all, Ordering::Relaxed);
                }
                h.finish_bytes()
            }));
        }
        let mut send = |buf: Arc<Vec<u8>>| {
            if senders.iter().any(|tx| tx.send(buf.clone()).is_err()) {
                return Err(Error::io("a ciphertext hashing thread failed"));
            }
            Ok(())
        };
        let result = feed(&mut send);
        drop(senders);
        let digests: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        result?;
        digests.into_iter().map(|d| d.map_err(|_| Error::io("a ciphertext hashing thread failed"))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    #[test]
    fn os_hash_algorithms() {
        let mut h = OsAlgo::from_name("SHA512").unwrap().hasher();
        h.update(b"abc");
        assert!(h.finish().starts_with("ddaf35a193617aba"));
        assert!(OsAlgo::from_name("md5").is_none());
        let mut h = OsAlgo::Sha1.hasher();
        h.update(b"abc");
        assert_eq!(h.finish(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    /// One read of the source feeds every hash, through reused buffers: the digests are those of
    /// the whole data, whatever the number of chunks and hashes.
    #[test]
    fn one_read_many_hashes() {
        let data: Vec<u8> = (0..(3 * FILE_CHUNK + 12345)).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let algos = [OsAlgo::Sha256, OsAlgo::Sha512, OsAlgo::Sha384, OsAlgo::Sha1];
        let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
        let got = hash_source_all(&data, algos.iter().map(|a| a.hasher()).collect(), &done, &stop).unwrap();
        for (a, d) in algos.iter().zip(&got) {
            let mut h = a.hasher();
            h.update(&data);
            assert_eq!(hex::encode(d), h.finish(), "{a:?}");
        }
        assert_eq!(done.load(Ordering::Relaxed), data.len() as u64);
        assert_eq!(hash_source(&data[..0].to_vec(), OsAlgo::Sha256.hasher(), &done, &stop).unwrap().len(), 64);
        stop.store(true, Ordering::Relaxed);
        assert!(hash_source_all(&data, vec![OsAlgo::Sha256.hasher()], &done, &stop).is_err());
    }
}
