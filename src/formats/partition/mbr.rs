//! MBR (DOS) partition tables: the four entries of sector 0 and the EBRs (extended boot records)
//! of an extended partition's chain. Pure parsing of 512-byte sectors; the chain walk, which
//! reads one EBR after another, is in the driver ([`super::read_table`]).
//!
//! Sector 0 carries 0x55AA in many things that are not partition tables (FAT, NTFS and exFAT
//! boot sectors above all), so [`parse`] refuses a sector, as util-linux and the kernel do, when
//! a boot indicator is neither 0x00 nor 0x80 or when the sector is such a boot sector.

use super::types::{MBR_GPT_PROTECTIVE, is_extended};
use crate::codec::{Reader, Truncated};

/// MBR and EBR sectors are 512 bytes (luksfs reads MBRs with 512-byte logical sectors).
pub const SECTOR: usize = 512;
/// Offset of the four 16-byte entries.
pub const TABLE_OFFSET: usize = 446;
/// Offset of the 32-bit disk signature ("disk identifier").
pub const DISK_ID_OFFSET: usize = 440;
/// Largest number of EBRs followed in one extended partition (the kernel stops at its partition
/// limit too; real tables have a few dozen at most).
pub const MAX_LOGICALS: usize = 128;

/// One 16-byte partition entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index 0..4 in its sector.
    pub slot: u8,
    /// Boot indicator (0x80 active, 0x00 not).
    pub boot: u8,
    /// Partition type byte.
    pub kind: u8,
    /// First sector: absolute in the MBR; in an EBR relative to the EBR (data entries) or to the
    /// start of the extended partition (the link to the next EBR).
    pub start_lba: u32,
    /// Length in sectors (0: unused entry, as the kernel and libfdisk decide).
    pub sectors: u32,
}

impl Entry {
    /// An entry is in use when its length is not zero.
    pub fn is_used(&self) -> bool {
        self.sectors != 0
    }
    /// Holds an EBR chain.
    pub fn is_extended(&self) -> bool {
        is_extended(self.kind)
    }
}

/// A parsed MBR (sector 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mbr {
    /// Disk signature (little-endian u32 at byte 440).
    pub disk_id: u32,
    /// The four entries, used or not.
    pub entries: [Entry; 4],
}

impl Mbr {
    /// Has a GPT protective (0xEE) entry: the disk is GPT (a hybrid MBR when other entries exist).
    pub fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.kind == MBR_GPT_PROTECTIVE && e.is_used())
    }
    /// The entries in use.
    pub fn used(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.is_used())
    }
}

/// Why a sector is not an MBR (not an error: most disks' sector 0 is something else).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotMbr {
    #[error("shorter than 512 bytes")]
    Short,
    #[error("no 0x55AA signature")]
    NoSignature,
    #[error("entry {slot} has boot indicator {value:#04x} (neither 0x00 nor 0x80)")]
    BootIndicator { slot: u8, value: u8 },
    #[error("a FAT boot sector")]
    Fat,
    #[error("an NTFS boot sector")]
    Ntfs,
    #[error("an exFAT boot sector")]
    Exfat,
    #[error("an AIX boot record")]
    Aix,
}

fn read_entries(sector: &[u8]) -> Result<[Entry; 4], Truncated> {
    let mut r = Reader::new(sector);
    r.skip(TABLE_OFFSET, "boot code")?;
    let mut out = [Entry { slot: 0, boot: 0, kind: 0, start_lba: 0, sectors: 0 }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let boot = r.array::<1>("boot indicator")?[0];
        r.skip(3, "CHS start")?;
        let kind = r.array::<1>("partition type")?[0];
        r.skip(3, "CHS end")?;
        let start_lba = r.le_u32("start LBA")?;
        let sectors = r.le_u32("sector count")?;
        *e = Entry { slot: i as u8, boot, kind, start_lba, sectors };
    }
    Ok(out)
}

fn has_signature(sector: &[u8]) -> bool {
    sector.get(510..512) == Some(&[0x55, 0xaa][..])
}

/// What kind of volume boot sector `b` (at least 512 bytes) is, if it is one: FAT (a jump
/// instruction or an FS-type label, with a plausible BIOS parameter block), NTFS, exFAT, AIX.
fn boot_sector(b: &[u8]) -> Option<NotMbr> {
    match &b[3..11] {
        b"NTFS    " => return Some(NotMbr::Ntfs),
        b"EXFAT   " => return Some(NotMbr::Exfat),
        _ => {}
    }
    if b[..4] == [0xc9, 0xc2, 0xd4, 0xc1] {
        return Some(NotMbr::Aix);
    }
    let bytes_per_sector = u16::from_le_bytes([b[11], b[12]]);
    let sectors_per_cluster = b[13];
    let reserved = u16::from_le_bytes([b[14], b[15]]);
    let fats = b[16];
    let media = b[21];
    let bpb = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && sectors_per_cluster.is_power_of_two()
        && reserved >= 1
        && matches!(fats, 1 | 2)
        && (media == 0xf0 || media >= 0xf8);
    let jump = (b[0] == 0xeb && b[2] == 0x90) || b[0] == 0xe9;
    let label = matches!(&b[54..62], b"FAT12   " | b"FAT16   " | b"FAT     ") || &b[82..90] == b"FAT32   ";
    (bpb && (jump || label)).then_some(NotMbr::Fat)
}

/// Parse sector 0 as an MBR, or say why it is not one.
pub fn parse(sector: &[u8]) -> Result<Mbr, NotMbr> {
    let sector = sector.get(..SECTOR).ok_or(NotMbr::Short)?;
    if !has_signature(sector) {
        return Err(NotMbr::NoSignature);
    }
    let entries = read_entries(sector).map_err(|_| NotMbr::Short)?;
    if let Some(e) = entries.iter().find(|e| e.boot != 0 && e.boot != 0x80) {
        return Err(NotMbr::BootIndicator { slot: e.slot, value: e.boot });
    }
    if let Some(why) = boot_sector(sector) {
        return Err(why);
    }
    let disk_id = u32::from_le_bytes([sector[440], sector[441], sector[442], sector[443]]);
    Ok(Mbr { disk_id, entries })
}

/// An extended boot record: the logical partition(s) it describes and the link to the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ebr {
    /// Used, non-extended entries; `start_lba` relative to this EBR's sector. Normally one, in
    /// slot 0 (the kernel also takes the other slots, and so does luksfs).
    pub data: Vec<Entry>,
    /// The first extended-type entry: the next EBR, `start_lba` relative to the start of the
    /// extended partition. `None` ends the chain.
    pub link: Option<Entry>,
}

/// Parse an EBR sector. Boot indicators are not checked (EBRs are not boot sectors).
pub fn parse_ebr(sector: &[u8]) -> Result<Ebr, NotMbr> {
    let sector = sector.get(..SECTOR).ok_or(NotMbr::Short)?;
    if !has_signature(sector) {
        return Err(NotMbr::NoSignature);
    }
    let entries = read_entries(sector).map_err(|_| NotMbr::Short)?;
    let data = entries.iter().filter(|e| e.is_used() && !e.is_extended()).copied().collect();
    let link = entries.iter().find(|e| e.is_used() && e.is_extended()).copied();
    Ok(Ebr { data, link })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(entries: &[(u8, u8, u32, u32)]) -> Vec<u8> {
        let mut s = vec![0u8; SECTOR];
        s[440..444].copy_from_slice(&0x1234_abcd_u32.to_le_bytes());
        for (i, &(boot, kind, start, len)) in entries.iter().enumerate() {
            let o = TABLE_OFFSET + 16 * i;
            s[o] = boot;
            s[o + 4] = kind;
            s[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
            s[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn entries_and_refusals() {
        let s = sector(&[(0x80, 0x83, 2048, 4096), (0, 0x05, 8192, 100)]);
        let m = parse(&s).unwrap();
        assert_eq!(m.disk_id, 0x1234_abcd);
        assert_eq!(m.used().count(), 2);
        assert!(m.entries[1].is_extended());
        assert!(!m.is_protective());

        assert_eq!(parse(&s[..511]), Err(NotMbr::Short));
        let mut bad = s.clone();
        bad[510] = 0;
        assert_eq!(parse(&bad), Err(NotMbr::NoSignature));
        let mut bad = s.clone();
        bad[TABLE_OFFSET + 32] = 0x12;
        assert_eq!(parse(&bad), Err(NotMbr::BootIndicator { slot: 2, value: 0x12 }));
        let mut ntfs = s.clone();
        ntfs[3..11].copy_from_slice(b"NTFS    ");
        assert_eq!(parse(&ntfs), Err(NotMbr::Ntfs));
    }

    #[test]
    fn ebr_data_and_link() {
        let s = sector(&[(0, 0x83, 63, 1000), (0, 0x05, 2000, 1063)]);
        let e = parse_ebr(&s).unwrap();
        assert_eq!(e.data.len(), 1);
        assert_eq!(e.link.unwrap().start_lba, 2000);
        let s = sector(&[(0, 0x83, 63, 1000)]);
        assert_eq!(parse_ebr(&s).unwrap().link, None);
    }
}
