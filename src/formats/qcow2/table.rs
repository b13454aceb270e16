//! L1/L2 table entries: decoding and validation (pure).

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

/// How a stretch of guest bytes is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Encrypted data at this host offset.
    Data(u64),
    /// Reads as zeros: the zero flag is set (the cluster may still own host space).
    Zero,
    /// Not allocated: reads as zeros (luksfs never uses a backing file).
    Unallocated,
    /// A compressed cluster: not valid in an encrypted image.
    Compressed,
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

/// Decode a standard (64-bit) L2 entry.
pub fn l2_entry(entry: u64, version: u32, cluster_size: u64) -> Result<Storage, Qcow2Error> {
    if entry & COMPRESSED != 0 {
        return Ok(Storage::Compressed);
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

/// Decode subcluster `sc` of an extended L2 entry (`entry`, `bitmap`).
pub fn ext_l2_entry(entry: u64, bitmap: u64, sc: u64, cluster_size: u64) -> Result<Storage, Qcow2Error> {
    if entry & COMPRESSED != 0 {
        return Ok(Storage::Compressed);
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
        assert_eq!(l2_entry(COMPRESSED | 5, 3, c), Ok(Storage::Compressed));
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
    }
}
