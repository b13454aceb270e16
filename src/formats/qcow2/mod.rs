//! qcow2 address mapping: guest offset → host offset, zero, unallocated or compressed, through
//! the L1 table and (cached) L2 tables. It maps addresses and does not decrypt; [`header`],
//! [`table`] and [`compress`] are the pure parsers underneath, [`reader`] reads the guest disk of
//! an unencrypted image.

pub mod compress;
pub mod header;
pub mod reader;
pub mod table;

use crate::io::ReadAt;
use crate::{Error, Result};
use header::Header;
use std::sync::Arc;
use table::{Compressed, Storage};

/// Memory budget for cached L2 tables, per image.
const L2_CACHE_BYTES: u64 = 4 << 20;

/// Bytes read to find the header and its extensions; the whole first cluster (up to 2 MiB) is
/// read only when the extensions reach further.
const HEADER_PROBE: u64 = 64 << 10;
/// Longest backing file name QEMU accepts.
const MAX_BACKING_NAME: u32 = 1023;

/// Read and parse the header of a qcow2 file, and the backing file name if it has one.
pub fn read_header(file: &dyn ReadAt, file_len: u64) -> Result<Header> {
    let buf = crate::io::read_vec(file, 0, file_len.min(HEADER_PROBE) as usize)?;
    let mut h = match Header::parse(&buf, file_len) {
        Err(header::Qcow2Error::Truncated(_)) if file_len > HEADER_PROBE => {
            let n = file_len.min(1 << header::MAX_CLUSTER_BITS) as usize;
            Header::parse(&crate::io::read_vec(file, 0, n)?, file_len)?
        }
        r => r?,
    };
    if h.backing_file_offset != 0 {
        let (off, n) = (h.backing_file_offset, h.backing_file_size.min(MAX_BACKING_NAME));
        if off.checked_add(u64::from(n)).is_some_and(|e| e <= file_len.min(h.cluster_size())) {
            let name = crate::io::read_vec(file, off, n as usize)?;
            h.backing_file = Some(String::from_utf8_lossy(&name).into_owned());
        }
    }
    Ok(h)
}

/// A read-only qcow2 address mapper.
pub struct Qcow2 {
    header: Header,
    file: Arc<dyn ReadAt>,
    file_len: u64,
    l1: Vec<u64>,
    /// Byte ranges holding metadata that data clusters must not point into.
    metadata: Vec<(u64, u64)>,
    l2_cache: quick_cache::sync::Cache<u64, Arc<[u64]>>,
}

impl std::fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2").field("header", &self.header).finish_non_exhaustive()
    }
}

impl Qcow2 {
    /// Load the L1 table of an already parsed `header`.
    pub fn new(header: Header, file: Arc<dyn ReadAt>, file_len: u64) -> Result<Qcow2> {
        let n = header.l1_size as usize;
        let raw = crate::io::read_vec(&*file, header.l1_table_offset, n * 8)
            .map_err(|e| e.context("reading the L1 table"))?;
        let l1 = raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let cs = header.cluster_size();
        let mut metadata = vec![(0, cs), (header.l1_table_offset, header.l1_table_offset + n as u64 * 8)];
        if let Some((off, len)) = header.crypto_header {
            metadata.push((off, off + len));
        }
        if header.refcount_table_clusters > 0 {
            let rt = header.refcount_table_offset;
            metadata.push((rt, rt + u64::from(header.refcount_table_clusters) * cs));
        }
        let tables = (L2_CACHE_BYTES / cs).max(4) as usize;
        Ok(Qcow2 { header, file, file_len, l1, metadata, l2_cache: quick_cache::sync::Cache::new(tables) })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The image file this maps into.
    pub fn file(&self) -> &Arc<dyn ReadAt> {
        &self.file
    }

    /// The size of the image file (every mapping lies below it).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn check_host(&self, off: u64, len: u64, what: &str) -> Result<()> {
        let end = off.checked_add(len).filter(|&e| e <= self.file_len);
        if end.is_none() {
            return Err(Error::corrupt(format!("{what} at 0x{off:x} lies past the end of the file")));
        }
        if let Some(&(a, b)) = self.metadata.iter().find(|&&(a, b)| off < b && a < off + len) {
            return Err(Error::corrupt(format!("{what} at 0x{off:x} overlaps image metadata at [0x{a:x}, 0x{b:x})")));
        }
        Ok(())
    }

    /// The part of a compressed cluster's sectors that lies in the file, checked like a data
    /// cluster (not in metadata, not in its own L2 table). Only the tail of the last sector may
    /// lie past the end of the file: QEMU writes compressed data up to its last byte, and reads
    /// of the rest of that sector past the end of the file give zeros.
    fn check_compressed(&self, c: Compressed, l2_off: u64) -> Result<Compressed> {
        let end = c
            .host
            .checked_add(c.len)
            .ok_or_else(|| Error::corrupt(format!("compressed cluster at 0x{:x} overflows", c.host)))?;
        let last_sector = (end - 1) / table::COMPRESSED_SECTOR * table::COMPRESSED_SECTOR;
        if c.host >= self.file_len || last_sector.max(c.host) >= self.file_len {
            return Err(Error::corrupt(format!(
                "compressed cluster at 0x{:x} ({} bytes) lies past the end of the file ({} bytes)",
                c.host, c.len, self.file_len
            )));
        }
        let c = Compressed { host: c.host, len: end.min(self.file_len) - c.host };
        self.check_host(c.host, c.len, "compressed cluster")?;
        let cs = self.header.cluster_size();
        if c.host < l2_off + cs && l2_off < c.host + c.len {
            return Err(Error::corrupt(format!("compressed cluster at 0x{:x} lies in its own L2 table", c.host)));
        }
        Ok(c)
    }

    fn l2_table(&self, off: u64) -> Result<Arc<[u64]>> {
        self.l2_cache.get_or_insert_with(&off, || {
            let cs = self.header.cluster_size();
            self.check_host(off, cs, "L2 table")?;
            let raw = crate::io::read_vec(&*self.file, off, cs as usize)
                .map_err(|e| e.context(format!("reading the L2 table at 0x{off:x}")))?;
            Ok(raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect())
        })
    }

    /// How the guest bytes starting at `guest` are stored, and for how many bytes (at most
    /// `max_len`, never past the end of a cluster or of a run of equal subclusters).
    pub fn map(&self, guest: u64, max_len: u64) -> Result<(Storage, u64)> {
        let h = &self.header;
        let cs = h.cluster_size();
        let in_cluster = guest % cs;
        let l1_index = guest / h.l2_coverage();
        let entries_per_l2 = cs / h.l2_entry_len();
        let l2_index = (guest / cs) % entries_per_l2;
        let l1e = *self
            .l1
            .get(l1_index as usize)
            .ok_or_else(|| Error::corrupt(format!("guest offset {guest} is beyond the L1 table")))?;
        let cluster_left = (cs - in_cluster).min(max_len);
        let Some(l2_off) = table::l1_entry(l1e, cs)? else {
            return Ok((Storage::Unallocated, cluster_left));
        };
        let l2 = self.l2_table(l2_off)?;
        if !h.extended_l2() {
            let e = l2[l2_index as usize];
            let st = table::l2_entry(e, h.version, cs)?;
            if let Storage::Compressed(c) = st {
                return Ok((Storage::Compressed(self.check_compressed(c, l2_off)?), cluster_left));
            }
            if let Storage::Data(host) = st {
                self.check_host(host + in_cluster, cluster_left, "data cluster")?;
                if host == l2_off {
                    return Err(Error::corrupt(format!("data cluster at 0x{host:x} is its own L2 table")));
                }
                return Ok((Storage::Data(host + in_cluster), cluster_left));
            }
            return Ok((st, cluster_left));
        }
        let (e, bitmap) = (l2[2 * l2_index as usize], l2[2 * l2_index as usize + 1]);
        let scs = cs / table::SUBCLUSTERS;
        let sc = in_cluster / scs;
        let first = table::ext_l2_entry(e, bitmap, sc, cs)?;
        if let Storage::Compressed(c) = first {
            return Ok((Storage::Compressed(self.check_compressed(c, l2_off)?), cluster_left));
        }
        // Extend over following subclusters of the same kind (contiguous on the host too).
        let mut len = scs - in_cluster % scs;
        let mut next = sc + 1;
        while len < cluster_left && next < table::SUBCLUSTERS {
            let st = table::ext_l2_entry(e, bitmap, next, cs)?;
            let same = match (first, st) {
                (Storage::Zero, Storage::Zero) | (Storage::Unallocated, Storage::Unallocated) => true,
                (Storage::Data(a), Storage::Data(b)) => b == a + (next - sc) * scs,
                _ => false,
            };
            if !same {
                break;
            }
            len += scs;
            next += 1;
        }
        let len = len.min(cluster_left);
        if let Storage::Data(host) = first {
            // Only the subclusters in use need to exist: QEMU does not allocate the rest on disk.
            let at = host + in_cluster % scs;
            self.check_host(at, len, "data subcluster")?;
            if at < l2_off + cs && l2_off < at + len {
                return Err(Error::corrupt(format!("data subcluster at 0x{at:x} lies in its own L2 table")));
            }
            return Ok((Storage::Data(at), len));
        }
        Ok((first, len))
    }
}
