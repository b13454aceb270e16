//! The guest disk of an unencrypted qcow2 image (crypt_method 0) as a positional reader, for
//! images used as a container (a VM disk holding GPT, LUKS, LVM, ...). Data clusters are read in
//! place, host-contiguous runs in one read; zero and unallocated clusters read as zeros (a backing
//! file is refused, never opened); compressed clusters are decompressed, and the last few are
//! kept so that small sequential reads inside one of them decompress it once.
//!
//! Encrypted images are not read here: their clusters go through the LUKS layer
//! ([`crate::image`]), which refuses compressed clusters.

use super::compress;
use super::header::Encryption;
use super::table::{Compressed, Storage};
use super::{Qcow2, read_header};
use crate::io::ReadAt;
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Memory for decompressed clusters kept for later reads, per image.
pub const DECOMPRESSED_CACHE_BYTES: u64 = 4 << 20;
/// Fewest and most decompressed clusters kept (2 MiB clusters: 2; 64 KiB and smaller: 16).
const DECOMPRESSED_CACHE_MIN: usize = 2;
const DECOMPRESSED_CACHE_MAX: usize = 16;

/// Key of a decompressed cluster: where its compressed bytes are (offset and length).
type Key = (u64, u64);

/// The last few decompressed clusters, most recently used last (a handful of entries: a linear
/// scan is cheaper than any map).
struct Recent {
    entries: Vec<(Key, Arc<[u8]>)>,
    cap: usize,
}

impl Recent {
    fn get(&mut self, key: Key) -> Option<Arc<[u8]>> {
        let i = self.entries.iter().position(|(k, _)| *k == key)?;
        let e = self.entries.remove(i);
        let data = e.1.clone();
        self.entries.push(e);
        Some(data)
    }

    fn put(&mut self, key: Key, data: Arc<[u8]>) {
        self.entries.retain(|(k, _)| *k != key);
        if self.entries.len() >= self.cap {
            self.entries.remove(0);
        }
        self.entries.push((key, data));
    }
}

/// Reads the guest disk of an unencrypted qcow2 image.
pub struct Qcow2Reader {
    q: Arc<Qcow2>,
    file: Arc<dyn ReadAt>,
    recent: Mutex<Recent>,
    decompressed: AtomicU64,
}

impl std::fmt::Debug for Qcow2Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Reader").field("qcow2", &self.q).finish_non_exhaustive()
    }
}

fn read_error(host: u64, e: Error) -> Error {
    e.context(format!("qcow2: reading host bytes at 0x{host:x}"))
}

impl Qcow2Reader {
    /// Parse the qcow2 image in `file` and open its guest disk. Refused images (backing file,
    /// external data file, unknown features, ...) and encrypted ones fail with
    /// [`crate::ErrorKind::Unsupported`], damaged ones with [`crate::ErrorKind::Corrupt`].
    pub fn open(file: Arc<dyn ReadAt>) -> Result<Qcow2Reader> {
        let len = file.size();
        let h = read_header(&*file, len)?;
        Self::check(&h)?;
        Self::new(Arc::new(Qcow2::new(h, file, len)?))
    }

    /// The guest disk of an already opened mapper, which must be an unencrypted image luksfs
    /// does not refuse.
    pub fn new(q: Arc<Qcow2>) -> Result<Qcow2Reader> {
        Self::check(q.header())?;
        let per = usize::try_from(DECOMPRESSED_CACHE_BYTES / q.header().cluster_size()).unwrap_or(usize::MAX);
        let cap = per.clamp(DECOMPRESSED_CACHE_MIN, DECOMPRESSED_CACHE_MAX);
        let file = q.file().clone();
        Ok(Qcow2Reader {
            q,
            file,
            recent: Mutex::new(Recent { entries: Vec::with_capacity(cap), cap }),
            decompressed: AtomicU64::new(0),
        })
    }

    fn check(h: &super::header::Header) -> Result<()> {
        if let Some(why) = h.refusal() {
            return Err(Error::unsupported(why));
        }
        match h.encryption() {
            Encryption::Plain => Ok(()),
            _ => Err(Error::unsupported("qcow2 image is encrypted: its guest disk is read through its LUKS header")),
        }
    }

    /// The mapper underneath.
    pub fn qcow2(&self) -> &Arc<Qcow2> {
        &self.q
    }

    /// Size of the guest disk in bytes.
    pub fn size(&self) -> u64 {
        self.q.header().size
    }

    /// How many compressed clusters were decompressed so far (reads served from the kept
    /// clusters do not count).
    pub fn decompressed_clusters(&self) -> u64 {
        self.decompressed.load(Ordering::Relaxed)
    }

    /// Fill `buf` with guest bytes from `off`; a range not within [`Qcow2Reader::size`] is an
    /// error ([`crate::ErrorKind::Corrupt`], as for every [`ReadAt`]).
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        self.read_exact_at(buf, off)
    }

    /// Fill `buf` with guest bytes from `offset` (the layer-stack spelling of
    /// [`Qcow2Reader::read_at`]).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size()) {
            return Err(crate::io::past_end("the qcow2 guest disk", offset, buf.len(), self.size()));
        }
        let mut done = 0usize;
        // A mapping looked up while extending a data run and not used by it.
        let mut ahead: Option<(Storage, u64)> = None;
        while done < buf.len() {
            let guest = offset + done as u64;
            let left = (buf.len() - done) as u64;
            let (st, mut n) = match ahead.take() {
                Some(m) => m,
                None => self.q.map(guest, left)?,
            };
            match st {
                Storage::Zero | Storage::Unallocated => buf[done..done + n as usize].fill(0),
                Storage::Data(host) => {
                    // Coalesce clusters that are contiguous on the host into one read.
                    while n < left {
                        let next = self.q.map(guest + n, left - n)?;
                        if next.0 != Storage::Data(host + n) {
                            ahead = Some(next);
                            break;
                        }
                        n += next.1;
                    }
                    let chunk = &mut buf[done..done + n as usize];
                    self.file.read_exact_at(chunk, host).map_err(|e| read_error(host, e))?;
                }
                Storage::Compressed(c) => {
                    let chunk = &mut buf[done..done + n as usize];
                    self.read_compressed(c, guest, chunk)?;
                }
            }
            done += n as usize;
        }
        Ok(())
    }

    /// Guest bytes `[guest, guest + out.len())`, all inside the compressed cluster `c`.
    fn read_compressed(&self, c: Compressed, guest: u64, out: &mut [u8]) -> Result<()> {
        let cs = self.q.header().cluster_size();
        let in_cluster = (guest % cs) as usize;
        if out.len() as u64 == cs {
            // A whole cluster: straight into the caller's buffer, nothing kept.
            return self.decompress(c, guest, out);
        }
        let key = (c.host, c.len);
        let hit = self.recent.lock().unwrap_or_else(PoisonError::into_inner).get(key);
        let data = match hit {
            Some(d) => d,
            None => {
                let mut d = vec![0u8; cs as usize];
                self.decompress(c, guest, &mut d)?;
                let d: Arc<[u8]> = d.into();
                self.recent.lock().unwrap_or_else(PoisonError::into_inner).put(key, d.clone());
                d
            }
        };
        out.copy_from_slice(&data[in_cluster..in_cluster + out.len()]);
        Ok(())
    }

    /// Read the compressed bytes of `c` and decompress them into `out` (one cluster).
    fn decompress(&self, c: Compressed, guest: u64, out: &mut [u8]) -> Result<()> {
        // `map` bounded c.len by two clusters and the file.
        let input = crate::io::read_vec(&*self.file, c.host, c.len as usize).map_err(|e| read_error(c.host, e))?;
        compress::decompress(self.q.header().compression, &input, out).map_err(|e| {
            let cs = self.q.header().cluster_size();
            Error::from(e).context(format!("guest cluster at {} (host 0x{:x})", guest / cs * cs, c.host))
        })?;
        self.decompressed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl crate::io::ReadAt for Qcow2Reader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        Qcow2Reader::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> u64 {
        Qcow2Reader::size(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_last_few() {
        let mut r = Recent { entries: Vec::new(), cap: 2 };
        let d = |b: u8| -> Arc<[u8]> { vec![b; 4].into() };
        r.put((1, 1), d(1));
        r.put((2, 1), d(2));
        assert_eq!(r.get((1, 1)).unwrap()[0], 1); // 1 is now the most recent
        r.put((3, 1), d(3)); // evicts 2
        assert!(r.get((2, 1)).is_none());
        assert!(r.get((1, 1)).is_some() && r.get((3, 1)).is_some());
        r.put((3, 1), d(4));
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.get((3, 1)).unwrap()[0], 4);
    }
}
