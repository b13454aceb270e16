//! L1/L2 table entries: decoding and validation (pure), including the compressed cluster
//! descriptor (QEMU `docs/interop/qcow2.rst`, "Compressed Clusters Descriptor").

use super::header::Qcow2Error;

/// Host-offset bits of L1 and standard L2 entries (bits 9..=55).
pub const OFFSET_MASK: u64 = 0x00FF_FFFF_FFFF_FE00;
/// L2 entry bit 62: compressed cluster.
pub const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0 (v3, standard L2): the cluster reads as zeros.
pub const ZERO: u64 = 1;
/// Reserved bits of a standard L2 entry for an uncompressed cluster (bits 1..=8 and 56..=61).
const L2_RESERVED: u64 = 0x3F00_0000_0000_01FE;
/// Subclusters per cluster with extended L2 entries.
pub const SUBCLUSTERS: u64 = 32;
/// Compressed data is counted in sectors of this size.
pub const COMPRESSED_SECTOR: u64 = 512;
/// Host offsets above 2^56 (64 PB) are not allowed, compressed or not.
const MAX_HOST_BITS: u32 = 56;

/// How a stretch of guest bytes is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Encrypted data at this host offset.
    Data(u64),
    /// Reads as zeros: the zero flag is set (the cluster may still own host space).
    Zero,
    /// Not allocated: reads as zeros (luksfs never uses a backing file).
    Unallocated,
    /// A compressed cluster (readable only in a plain image; never written by QEMU into an
    /// encrypted one).
    Compressed(Compressed),
}

/// Where a compressed cluster's data lies on the host: `len` bytes from `host` (not aligned).
/// The data may end before `host + len`: the descriptor counts whole 512-byte sectors, and
/// decompression stops once it has produced one cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compressed {
    /// Host offset of the first byte of compressed data.
    pub host: u64,
    /// Bytes from `host` to the end of the last sector the descriptor names (at most two
    /// clusters).
    pub len: u64,
}

/// The L2 table offset an L1 entry points to (`None` when unallocated).
pub fn l1_entry(entry: u64, cluster_size: u64) -> Result<Option<u64>, Qcow2Error> {
    let off = entry & OFFSET_MASK;
    if off == 0 {
        return Ok(None);
    }
    if !off.is_multiple_of(cluster_size) {
        return Err(Qcow2Error::Invalid(format!("L2 table offset 0x{off:x} is not cluster-aligned")));
    }
    Ok(Some(off))
}

/// Decode the compressed cluster descriptor in bits 0..=61 of an L2 entry with bit 62 set
/// (the same layout in versions 2 and 3). With `x = 62 - (cluster_bits - 8)`, bits `0..x` are
/// the host offset of the compressed data (any alignment; bits at 56 and above must be 0) and
/// bits `x..=61` the number of 512-byte sectors it uses beyond the one holding that offset.
pub fn compressed_entry(entry: u64, cluster_bits: u32) -> Result<Compressed, Qcow2Error> {
    let size_bits = cluster_bits
        .checked_sub(8)
        .filter(|b| (1..=14).contains(b))
        .ok_or_else(|| Qcow2Error::Invalid(format!("cluster_bits {cluster_bits} cannot hold compressed clusters")))?;
    let shift = 62 - size_bits;
    let host = entry & ((1u64 << shift) - 1);
    if host >> MAX_HOST_BITS != 0 {
        return Err(Qcow2Error::Invalid(format!(
            "compressed cluster descriptor 0x{entry:016x}: host offset 0x{host:x} is beyond 2^{MAX_HOST_BITS}"
        )));
    }
    let sectors = (entry >> shift & ((1u64 << size_bits) - 1)) + 1;
    // At most 2^(cluster_bits - 8) sectors = 2 clusters: no overflow in u64.
    let len = sectors * COMPRESSED_SECTOR - host % COMPRESSED_SECTOR;
    Ok(Compressed { host, len })
}

/// Decode a standard (64-bit) L2 entry.
pub fn l2_entry(entry: u64, version: u32, cluster_size: u64) -> Result<Storage, Qcow2Error> {
    if entry & COMPRESSED != 0 {
        return compressed_entry(entry, cluster_size.trailing_zeros()).map(Storage::Compressed);
    }
    if version >= 3 && entry & ZERO != 0 {
        return Ok(Storage::Zero);
    }
    if entry & L2_RESERVED != 0 {
        return Err(Qcow2Error::Invalid(format!("L2 entry 0x{entry:016x} has reserved bits set")));
    }
    let off = entry & OFFSET_MASK;
    if off == 0 {
        return Ok(Storage::Unallocated);
    }
    if !off.is_multiple_of(cluster_size) {
        return Err(Qcow2Error::Invalid(format!("data cluster offset 0x{off:x} is not cluster-aligned")));
    }
    Ok(Storage::Data(off))
}

/// Decode subcluster `sc` of an extended L2 entry (`entry`, `bitmap`). A compressed cluster has
/// no subclusters: its bitmap must be 0.
pub fn ext_l2_entry(entry: u64, bitmap: u64, sc: u64, cluster_size: u64) -> Result<Storage, Qcow2Error> {
    if entry & COMPRESSED != 0 {
        if bitmap != 0 {
            return Err(Qcow2Error::Invalid(format!(
                "compressed cluster has a non-zero subcluster bitmap 0x{bitmap:016x}"
            )));
        }
        return compressed_entry(entry, cluster_size.trailing_zeros()).map(Storage::Compressed);
    }
    let alloc = bitmap >> sc & 1 != 0;
    let zero = bitmap >> (32 + sc) & 1 != 0;
    match (alloc, zero) {
        (true, true) => Err(Qcow2Error::Invalid(format!("subcluster {sc} is both allocated and zero"))),
        (false, true) => Ok(Storage::Zero),
        (false, false) => Ok(Storage::Unallocated),
        (true, false) => {
            let off = entry & OFFSET_MASK;
            if off == 0 || !off.is_multiple_of(cluster_size) {
                return Err(Qcow2Error::Invalid(format!("allocated subcluster in cluster at bad offset 0x{off:x}")));
            }
            Ok(Storage::Data(off + sc * (cluster_size / SUBCLUSTERS)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_standard_entries() {
        let c = 65536;
        assert_eq!(l2_entry(0, 3, c), Ok(Storage::Unallocated));
        assert_eq!(l2_entry(0, 2, c), Ok(Storage::Unallocated));
        assert_eq!(l2_entry(0x8000_0000_0005_0000, 3, c), Ok(Storage::Data(0x50000)));
        assert_eq!(l2_entry(0x8000_0000_0005_0001, 3, c), Ok(Storage::Zero));
        assert_eq!(l2_entry(COMPRESSED | 5, 3, c), Ok(Storage::Compressed(Compressed { host: 5, len: 507 })));
        assert!(l2_entry(0x0000_0000_0005_0200, 3, c).is_err());
        assert!(l2_entry(0x0000_0000_0005_0002, 3, c).is_err());
    }

    #[test]
    fn decodes_subclusters() {
        let c = 65536;
        let bitmap = 0b01 | (0b10 << 32);
        assert_eq!(ext_l2_entry(0x50000, bitmap, 0, c), Ok(Storage::Data(0x50000)));
        assert_eq!(ext_l2_entry(0x50000, bitmap, 1, c), Ok(Storage::Zero));
        assert_eq!(ext_l2_entry(0x50000, bitmap, 2, c), Ok(Storage::Unallocated));
        assert!(ext_l2_entry(0x50000, 1 | 1 << 32, 0, c).is_err());
        assert_eq!(ext_l2_entry(0x50000, 1 << 5, 5, c), Ok(Storage::Data(0x50000 + 5 * 2048)));
        let comp = COMPRESSED | 0x50000;
        assert_eq!(ext_l2_entry(comp, 0, 7, c), Ok(Storage::Compressed(Compressed { host: 0x50000, len: 512 })));
        assert!(ext_l2_entry(comp, 1, 0, c).is_err(), "compressed with a subcluster bitmap");
    }

    /// The descriptor layout for every cluster size: offset bits 0..x, sector count bits x..=61
    /// with x = 62 - (cluster_bits - 8).
    #[test]
    fn decodes_compressed_descriptors() {
        for bits in 9..=21u32 {
            let x = 62 - (bits - 8);
            let max_sectors = 1u64 << (bits - 8);
            // offset 0x12345 (unaligned), 3 additional sectors (1 where the field has one bit)
            let add = 3.min(max_sectors - 1);
            let e = COMPRESSED | add << x | 0x12345;
            let c = compressed_entry(e, bits).unwrap();
            assert_eq!(c, Compressed { host: 0x12345, len: (add + 1) * 512 - 0x145 }, "cluster_bits {bits}");
            // the largest count: two clusters of sectors
            let all = COMPRESSED | (max_sectors - 1) << x | 0x200;
            assert_eq!(compressed_entry(all, bits).unwrap().len, max_sectors * 512, "cluster_bits {bits}");
            // the top bit of the count field is not part of the offset
            let top = COMPRESSED | 1 << 61 | 0x400;
            assert_eq!(compressed_entry(top, bits).unwrap().host, 0x400, "cluster_bits {bits}");
            // bit 63 (COPIED) is ignored
            assert_eq!(compressed_entry(e | 1 << 63, bits), Ok(c));
        }
        // 512-byte clusters: the offset field reaches bit 60; bits 56..=60 must be 0
        assert!(compressed_entry(COMPRESSED | 1 << 56, 9).is_err());
        assert_eq!(compressed_entry(COMPRESSED | 1 << 55, 9).unwrap().host, 1 << 55);
        // 2 MiB clusters: bit 49 already belongs to the count
        assert_eq!(compressed_entry(COMPRESSED | 1 << 49, 21).unwrap(), Compressed { host: 0, len: 1024 });
        assert!(compressed_entry(COMPRESSED, 8).is_err());
        assert!(compressed_entry(COMPRESSED, 23).is_err());
    }
}
