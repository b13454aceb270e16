//! GPT (UEFI spec, chapter 5): the header at LBA 1 (or its backup at the last LBA) and the
//! partition entry array it points to. Pure parsing: [`parse_header`] checks one header sector
//! (signature, size, CRC32, its own LBA, bounds of every field), [`parse_entries`] checks the
//! array's CRC32 and decodes the used entries. Choosing between primary and backup, and reading,
//! is the driver's job ([`super::read_table`]).

use crate::codec::{Reader, Truncated};

/// `EFI PART`.
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Smallest header (the fields of revision 1.0).
pub const MIN_HEADER_SIZE: u32 = 92;
/// Entry size bounds: the spec asks for 128 × 2^n; gdisk accepts multiples of 8 up to a sector.
pub const MIN_ENTRY_SIZE: u32 = 128;
pub const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest entry array read (sgdisk and fdisk write 128 × 128 bytes = 16 KiB; 1 MiB is 8192
/// such entries).
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1 << 20;
/// Bytes of the UTF-16LE name field of an entry (36 code units).
const NAME_BYTES: usize = 72;
/// Legacy-BIOS-bootable attribute bit.
pub const ATTR_LEGACY_BOOTABLE: u64 = 1 << 2;

/// Why a GPT header (with its entry array) cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GptError {
    #[error("header {0}")]
    Truncated(Truncated),
    #[error("no \"EFI PART\" signature")]
    NoSignature,
    #[error("header size {0} outside {MIN_HEADER_SIZE}..={1} (the sector size)")]
    HeaderSize(u32, u32),
    #[error("header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("header says it is at LBA {stored}, but it was read from LBA {actual}")]
    WrongLba { stored: u64, actual: u64 },
    #[error("usable range LBA {first}..={last} is empty or overlaps the header at LBA {header}")]
    UsableRange { first: u64, last: u64, header: u64 },
    #[error("partition entry size {0} is not a multiple of 8 in {MIN_ENTRY_SIZE}..={MAX_ENTRY_SIZE}")]
    EntrySize(u32),
    #[error("{count} partition entries of {size} bytes exceed the {MAX_ENTRY_ARRAY_BYTES}-byte limit")]
    TooManyEntries { count: u32, size: u32 },
    #[error("partition entry array at LBA {lba} ({sectors} sectors) lies outside LBA 2..{end} or over the header")]
    EntriesOutside { lba: u64, sectors: u64, end: u64 },
    #[error("partition entry array CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    EntriesCrc { stored: u32, computed: u32 },
}

impl From<Truncated> for GptError {
    fn from(t: Truncated) -> Self {
        GptError::Truncated(t)
    }
}

/// A checked GPT header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Where this header is (1 for the primary, the last LBA for the backup).
    pub my_lba: u64,
    /// Where the other copy should be.
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    /// Disk GUID, canonical lowercase text.
    pub disk_guid: String,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
    /// Logical sector size the header was read with.
    pub sector_size: u32,
}

impl Header {
    /// Bytes of the entry array (bounded by [`MAX_ENTRY_ARRAY_BYTES`] by [`parse_header`]).
    pub fn entries_len(&self) -> usize {
        self.entry_count as usize * self.entry_size as usize
    }
    /// Byte offset of the entry array on the disk (checked against the disk by [`parse_header`]).
    pub fn entries_offset(&self) -> u64 {
        self.entries_lba * u64::from(self.sector_size)
    }
}

/// A GUID in GPT's mixed-endian layout (first three fields little-endian), as canonical text.
pub fn guid(b: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..].iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Parse and check the header in `sector` (one logical sector of `sector_size` bytes) read from
/// LBA `lba` of a disk of `disk_sectors` sectors.
///
/// A header whose usable range ends past the disk is accepted (a truncated image keeps its
/// table; the partitions past the end are flagged by the caller); its entry array must lie
/// inside the disk, after LBA 1 and not over the header.
pub fn parse_header(sector: &[u8], lba: u64, sector_size: u32, disk_sectors: u64) -> Result<Header, GptError> {
    let mut r = Reader::new(sector);
    if r.array::<8>("signature")? != SIGNATURE {
        return Err(GptError::NoSignature);
    }
    let _revision = r.le_u32("revision")?;
    let header_size = r.le_u32("header size")?;
    if header_size < MIN_HEADER_SIZE || header_size > sector_size || header_size as usize > sector.len() {
        return Err(GptError::HeaderSize(header_size, sector_size));
    }
    let stored = r.le_u32("header CRC")?;
    let mut h = crc32fast::Hasher::new();
    h.update(&sector[..16]);
    h.update(&[0; 4]);
    h.update(&sector[20..header_size as usize]);
    let computed = h.finalize();
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }
    r.skip(4, "reserved")?;
    let my_lba = r.le_u64("my LBA")?;
    if my_lba != lba {
        return Err(GptError::WrongLba { stored: my_lba, actual: lba });
    }
    let alternate_lba = r.le_u64("alternate LBA")?;
    let first_usable = r.le_u64("first usable LBA")?;
    let last_usable = r.le_u64("last usable LBA")?;
    let header_inside = (first_usable..=last_usable).contains(&my_lba);
    if first_usable > last_usable || first_usable < 2 || header_inside {
        return Err(GptError::UsableRange { first: first_usable, last: last_usable, header: my_lba });
    }
    let disk_guid = guid(&r.array::<16>("disk GUID")?);
    let entries_lba = r.le_u64("partition entries LBA")?;
    let entry_count = r.le_u32("number of partition entries")?;
    let entry_size = r.le_u32("partition entry size")?;
    let entries_crc = r.le_u32("partition entry array CRC")?;
    if !(MIN_ENTRY_SIZE..=MAX_ENTRY_SIZE).contains(&entry_size) || !entry_size.is_multiple_of(8) {
        return Err(GptError::EntrySize(entry_size));
    }
    let bytes = u64::from(entry_count) * u64::from(entry_size);
    if bytes > MAX_ENTRY_ARRAY_BYTES {
        return Err(GptError::TooManyEntries { count: entry_count, size: entry_size });
    }
    let sectors = bytes.div_ceil(u64::from(sector_size));
    let end = entries_lba.checked_add(sectors);
    let over_header = sectors > 0 && (entries_lba..entries_lba + sectors).contains(&my_lba);
    if entries_lba < 2 || end.is_none_or(|e| e > disk_sectors) || over_header {
        return Err(GptError::EntriesOutside { lba: entries_lba, sectors, end: disk_sectors });
    }
    Ok(Header {
        my_lba,
        alternate_lba,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba,
        entry_count,
        entry_size,
        entries_crc,
        sector_size,
    })
}

/// One used partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based index in the array (the partition number).
    pub number: u32,
    /// Type GUID, canonical lowercase text.
    pub type_guid: String,
    /// Unique partition GUID.
    pub unique_guid: String,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
    /// UTF-16LE name up to its first NUL (unpaired surrogates become U+FFFD).
    pub name: String,
}

/// Check the array's CRC32 against the header and decode its used entries (type GUID not zero),
/// in array order. `bytes` must be the [`Header::entries_len`] bytes at [`Header::entries_lba`].
pub fn parse_entries(h: &Header, bytes: &[u8]) -> Result<Vec<Entry>, GptError> {
    let bytes = bytes.get(..h.entries_len()).ok_or(GptError::Truncated(Truncated {
        what: "partition entry array",
        offset: 0,
        need: h.entries_len(),
    }))?;
    let computed = crc32fast::hash(bytes);
    if computed != h.entries_crc {
        return Err(GptError::EntriesCrc { stored: h.entries_crc, computed });
    }
    let mut out = Vec::new();
    for (i, e) in bytes.chunks_exact(h.entry_size as usize).enumerate() {
        let mut r = Reader::new(e);
        let type_raw = r.array::<16>("partition type GUID")?;
        if type_raw == [0; 16] {
            continue;
        }
        let unique_guid = guid(&r.array::<16>("unique partition GUID")?);
        let first_lba = r.le_u64("first LBA")?;
        let last_lba = r.le_u64("last LBA")?;
        let attributes = r.le_u64("attributes")?;
        let raw_name = r.take(NAME_BYTES, "partition name")?;
        let units = raw_name.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0);
        let name = char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
        out.push(Entry {
            number: i as u32 + 1,
            type_guid: guid(&type_raw),
            unique_guid,
            first_lba,
            last_lba,
            attributes,
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_is_mixed_endian() {
        // the EFI System type GUID as stored on disk
        let b = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
        assert_eq!(guid(&b), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert_eq!(parse_header(&[0u8; 512], 1, 512, 100), Err(GptError::NoSignature));
        let mut s = vec![0u8; 512];
        s[..8].copy_from_slice(&SIGNATURE);
        s[12..16].copy_from_slice(&600u32.to_le_bytes());
        assert_eq!(parse_header(&s, 1, 512, 100), Err(GptError::HeaderSize(600, 512)));
        s[12..16].copy_from_slice(&92u32.to_le_bytes());
        assert!(matches!(parse_header(&s, 1, 512, 100), Err(GptError::HeaderCrc { .. })));
        assert!(matches!(parse_header(&s[..40], 1, 512, 100), Err(GptError::HeaderSize(92, 512))));
    }
}
