//! Partition tables: which byte ranges of a disk are partitions. MBR (primary, extended and
//! logical partitions) and GPT (primary header, or the backup when the primary is damaged; 512-
//! and 4096-byte logical sectors).
//!
//! [`mbr`] and [`gpt`] are pure parsers over sectors; [`read_table`] is the one driver that reads
//! (sector 0 and 1, the GPT entry array, the EBR chain) and turns entries into [`Partition`]s,
//! flagging each unusable one (outside the disk or the usable range, overlapping an earlier one,
//! outside its extended partition) with a `problem` instead of dropping it. [`probe`] answers
//! "is there a partition table?" from the first bytes alone.
//!
//! Numbers, starts and sizes are those the kernel and sfdisk/sgdisk report: MBR primaries are
//! 1..=4 by slot, logicals count from 5 in chain order; a GPT partition is its entry index + 1 and
//! spans `last_lba - first_lba + 1` sectors.

pub mod gpt;
pub mod mbr;
pub mod types;

use std::collections::{BTreeMap, HashSet};

use crate::io::ReadAt;
use crate::{Error, Result};

/// Which kind of table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    Mbr,
    Gpt,
}

impl TableKind {
    /// `"mbr"` or `"gpt"` (for logs and JSON).
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        }
    }
}

/// Where an entry sits in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A GPT entry or an MBR primary partition.
    Primary,
    /// An MBR extended partition (type 0x05, 0x0f, 0x85): a container of logical partitions,
    /// not a volume of its own.
    Extended,
    /// An MBR logical partition (from the EBR chain).
    Logical,
}

/// One partition entry, usable or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as the kernel/fdisk number them (MBR logicals start at 5).
    pub number: u32,
    /// Bytes from the start of the disk.
    pub start: u64,
    /// Bytes; GPT: `(last_lba - first_lba + 1) * sector_size`.
    pub size: u64,
    /// GPT partition name (UTF-16LE decoded), `None` for MBR.
    pub name: Option<String>,
    /// GPT type GUID (lowercase, canonical) or MBR `"0x83"`.
    pub type_id: String,
    /// "Linux filesystem", "EFI System", "Linux LUKS", "Linux LVM", "Extended", ... or "unknown".
    pub type_name: &'static str,
    /// GPT unique partition GUID.
    pub uuid: Option<String>,
    /// MBR active flag / GPT legacy-BIOS-bootable attribute.
    pub bootable: bool,
    /// Primary, extended or logical.
    pub role: Role,
    /// This entry is unusable (out of range, overlapping, ...): a `Corrupt` error saying why.
    pub problem: Option<Error>,
}

impl Partition {
    /// A volume a reader can open: no problem, and not an extended partition (whose bytes are
    /// its logical partitions and their EBRs).
    pub fn is_volume(&self) -> bool {
        self.problem.is_none() && self.role != Role::Extended
    }
    /// The byte past the end (`start + size`; cannot overflow for entries without a problem).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// A partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    /// Logical sector size the table is in: 512, or 4096 for a GPT found at LBA 1 of 4 KiB sectors.
    pub sector_size: u32,
    /// MBR `0x1234abcd` / GPT disk GUID.
    pub disk_id: String,
    /// Usable and unusable entries, in number order.
    pub partitions: Vec<Partition>,
    /// What a reader should know: a damaged primary GPT header, a hybrid MBR, a broken EBR chain.
    pub notes: Vec<String>,
}

/// What is wrong with one partition entry, or with the table as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("partition {number} starts at LBA 0, on the partition table itself")]
    AtZero { number: u32 },
    #[error("partition {number}: first LBA {first} is after its last LBA {last}")]
    Reversed { number: u32, first: u64, last: u64 },
    #[error("partition {number} (LBA {first}..={last}) ends past the end of the disk ({disk_sectors} sectors)")]
    PastEnd { number: u32, first: u64, last: u64, disk_sectors: u64 },
    #[error("partition {number} (LBA {first}..={last}) lies outside the GPT's usable range {lo}..={hi}")]
    OutsideUsable { number: u32, first: u64, last: u64, lo: u64, hi: u64 },
    #[error(
        "logical partition {number} (LBA {first}..={last}) lies outside its extended partition {ext} (LBA {lo}..={hi})"
    )]
    OutsideExtended { number: u32, first: u64, last: u64, ext: u32, lo: u64, hi: u64 },
    #[error("logical partition {number} starts on its own EBR at LBA {lba}")]
    OnEbr { number: u32, lba: u64 },
    #[error("partition {number} (LBA {first}..={last}) overlaps partition {other}")]
    Overlap { number: u32, first: u64, last: u64, other: u32 },
    #[error("extended partition {ext}: the EBR chain {what}; {found} logical partitions read before it")]
    Chain { ext: u32, what: String, found: usize },
    #[error(
        "no usable GPT header ({sector_size}-byte sectors): primary at LBA 1: {primary}; backup at LBA {backup_lba}: {backup}"
    )]
    NoGptHeader { sector_size: u32, primary: String, backup_lba: u64, backup: String },
    #[error("protective MBR, but the disk is too small ({size} bytes) to hold a GPT")]
    TooSmallForGpt { size: u64 },
}

impl From<PartitionError> for Error {
    fn from(e: PartitionError) -> Self {
        Error::corrupt(e.to_string())
    }
}

/// Bytes [`read_table`] reads first: sector 0 and LBA 1 of 4096-byte sectors.
const HEAD_BYTES: u64 = 8192;
/// Logical sector sizes a GPT is looked for with, in order.
const GPT_SECTOR_SIZES: [u32; 2] = [512, 4096];

/// What the first sectors say.
enum Found {
    Nothing,
    Mbr(mbr::Mbr),
    /// A protective (or empty) MBR, or none at all with a GPT signature at LBA 1.
    Gpt(Option<mbr::Mbr>),
}

fn gpt_signature_at(head: &[u8], off: usize) -> bool {
    head.get(off..off + 8) == Some(&gpt::SIGNATURE[..])
}

fn detect(head: &[u8]) -> Found {
    let signature = GPT_SECTOR_SIZES.iter().any(|&ss| gpt_signature_at(head, ss as usize));
    match mbr::parse(head) {
        Ok(m) if m.is_protective() => Found::Gpt(Some(m)),
        Ok(m) if m.used().next().is_none() && signature => Found::Gpt(Some(m)),
        Ok(m) => {
            // util-linux: an empty MBR in front of an LVM physical volume (label in sectors
            // 1..=3) is boot code on a PV, not a partition table
            let lvm = (1..4).any(|s| head.get(s * 512..s * 512 + 8) == Some(&b"LABELONE"[..]));
            if m.used().next().is_none() && lvm { Found::Nothing } else { Found::Mbr(m) }
        }
        Err(_) if signature => Found::Gpt(None),
        Err(_) => Found::Nothing,
    }
}

/// Cheap check on the first 1 MiB (or fewer) bytes: is there an MBR (0x55AA and sane entries,
/// not a FAT/NTFS/exFAT boot sector) or a GPT (protective MBR, or a GPT signature at LBA 1 of
/// 512- or 4096-byte sectors)? [`read_table`] may still find the table damaged.
pub fn probe(head: &[u8]) -> Option<TableKind> {
    match detect(head) {
        Found::Nothing => None,
        Found::Mbr(_) => Some(TableKind::Mbr),
        Found::Gpt(_) => Some(TableKind::Gpt),
    }
}

fn read(src: &dyn ReadAt, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    crate::io::read_vec(src, offset, len).map_err(|e| e.context(format_args!("reading {what} at byte {offset}")))
}

/// Read the partition table of a disk of `size` bytes through `src`; `Ok(None)` when there is
/// none. A table whose every GPT header is damaged is a `Corrupt` error naming both problems;
/// unusable entries come back with their `problem` set.
pub fn read_table(src: &dyn ReadAt, size: u64) -> Result<Option<Table>> {
    if size < mbr::SECTOR as u64 {
        return Ok(None);
    }
    let head = read(src, 0, size.min(HEAD_BYTES) as usize, "the first sectors")?;
    match detect(&head) {
        Found::Nothing => Ok(None),
        Found::Mbr(m) => {
            let mut t = read_mbr(src, size, &m)?;
            if GPT_SECTOR_SIZES.iter().any(|&ss| gpt_signature_at(&head, ss as usize)) {
                t.notes.push(
                    "a GPT signature is present too, but the MBR has no protective (0xEE) entry: \
                     the MBR is used, as the kernel and util-linux do"
                        .into(),
                );
            }
            Ok(Some(t))
        }
        Found::Gpt(m) => read_gpt(src, size, &head, m.as_ref()).map(Some),
    }
}

// ------------------------------------------------------------------ MBR

fn mbr_partition(number: u32, e: &mbr::Entry, first_lba: u64, role: Role) -> Partition {
    Partition {
        number,
        start: first_lba * mbr::SECTOR as u64,
        size: u64::from(e.sectors) * mbr::SECTOR as u64,
        name: None,
        type_id: format!("{:#04x}", e.kind),
        type_name: types::mbr_type_name(e.kind),
        uuid: None,
        bootable: e.boot == 0x80,
        role,
        problem: None,
    }
}

/// LBA range (inclusive) of a partition in `sector_size` units.
fn lbas(p: &Partition, sector_size: u32) -> (u64, u64) {
    let ss = u64::from(sector_size);
    let first = p.start / ss;
    (first, (first + p.size / ss).saturating_sub(1))
}

fn read_mbr(src: &dyn ReadAt, size: u64, m: &mbr::Mbr) -> Result<Table> {
    let disk_sectors = size / mbr::SECTOR as u64;
    let mut parts = Vec::new();
    let mut notes = Vec::new();
    for e in m.used() {
        let role = if e.is_extended() { Role::Extended } else { Role::Primary };
        parts.push(mbr_partition(u32::from(e.slot) + 1, e, u64::from(e.start_lba), role));
    }
    let mut next_number = 5u32;
    let extended: Vec<(u32, mbr::Entry)> =
        m.used().filter(|e| e.is_extended()).map(|e| (u32::from(e.slot) + 1, *e)).collect();
    let mut broken_chains = Vec::new();
    for (ext_number, ext) in extended {
        let (logicals, broken) = walk_chain(src, disk_sectors, ext_number, &ext, &mut next_number)?;
        let found = logicals.len();
        parts.extend(logicals);
        if let Some(what) = broken {
            broken_chains.push(PartitionError::Chain { ext: ext_number, what, found });
        }
    }
    // ranges: LBA 0, the disk end
    for p in parts.iter_mut().filter(|p| p.problem.is_none()) {
        let (first, last) = lbas(p, 512);
        if first == 0 {
            p.problem = Some(PartitionError::AtZero { number: p.number }.into());
        } else if last >= disk_sectors {
            p.problem = Some(PartitionError::PastEnd { number: p.number, first, last, disk_sectors }.into());
        }
    }
    // overlaps: primaries (extended ones included) among themselves, then logicals against the
    // data primaries and each other (a logical lies inside its extended partition by design)
    let mut seen = Overlaps::default();
    for p in parts.iter_mut().filter(|p| p.role != Role::Logical) {
        seen.check(p, 512);
    }
    let mut seen = Overlaps::default();
    for p in parts.iter_mut().filter(|p| p.role != Role::Extended) {
        seen.check(p, 512);
    }
    // a broken chain: said in the notes and on its extended partition
    for err in broken_chains {
        notes.push(err.to_string());
        let PartitionError::Chain { ext, .. } = err else { continue };
        if let Some(p) = parts.iter_mut().find(|p| p.number == ext && p.problem.is_none()) {
            p.problem = Some(err.into());
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(Table {
        kind: TableKind::Mbr,
        sector_size: 512,
        disk_id: format!("{:#010x}", m.disk_id),
        partitions: parts,
        notes,
    })
}

/// Follow the EBR chain of extended partition `ext` (number `ext_number`): its logical
/// partitions, and what broke the chain if it did not end cleanly (loop, too long, outside the
/// extended partition, a sector without 0x55AA). Only I/O errors are returned as errors.
fn walk_chain(
    src: &dyn ReadAt,
    disk_sectors: u64,
    ext_number: u32,
    ext: &mbr::Entry,
    next_number: &mut u32,
) -> Result<(Vec<Partition>, Option<String>)> {
    let lo = u64::from(ext.start_lba);
    let hi = lo + u64::from(ext.sectors) - 1; // sectors != 0: ext is used
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut ebr_lba = lo;
    loop {
        if !seen.insert(ebr_lba) {
            return Ok((out, Some(format!("loops back to the EBR at LBA {ebr_lba}"))));
        }
        if seen.len() > mbr::MAX_LOGICALS {
            return Ok((out, Some(format!("is longer than {} EBRs", mbr::MAX_LOGICALS))));
        }
        if ebr_lba == 0 || ebr_lba < lo || ebr_lba > hi {
            return Ok((
                out,
                Some(format!("points to LBA {ebr_lba}, outside the extended partition (LBA {lo}..={hi})")),
            ));
        }
        if ebr_lba >= disk_sectors {
            return Ok((
                out,
                Some(format!("points to LBA {ebr_lba}, past the end of the disk ({disk_sectors} sectors)")),
            ));
        }
        let sector = read(src, ebr_lba * mbr::SECTOR as u64, mbr::SECTOR, "an EBR")?;
        let ebr = match mbr::parse_ebr(&sector) {
            Ok(e) => e,
            Err(why) => return Ok((out, Some(format!("reaches LBA {ebr_lba}, which is not an EBR ({why})")))),
        };
        for e in &ebr.data {
            let first = ebr_lba + u64::from(e.start_lba);
            let last = first + u64::from(e.sectors) - 1;
            // the kernel ignores slots 3 and 4 when they point outside: often random garbage
            if e.slot >= 2 && (first < lo || last > hi) {
                continue;
            }
            let number = *next_number;
            let mut p = mbr_partition(number, e, first, Role::Logical);
            if first < lo || last > hi {
                p.problem =
                    Some(PartitionError::OutsideExtended { number, first, last, ext: ext_number, lo, hi }.into());
            } else if first == ebr_lba {
                p.problem = Some(PartitionError::OnEbr { number, lba: ebr_lba }.into());
            }
            out.push(p);
            *next_number += 1;
        }
        match ebr.link {
            Some(l) => ebr_lba = lo + u64::from(l.start_lba),
            None => return Ok((out, None)),
        }
    }
}

/// Disjoint LBA ranges of the usable partitions seen so far, by start: a new one overlaps an
/// earlier one iff the range starting last before its end reaches into it.
#[derive(Default)]
struct Overlaps(BTreeMap<u64, (u64, u32)>);

impl Overlaps {
    /// Flag `p` if it overlaps a usable partition checked before; otherwise remember it.
    fn check(&mut self, p: &mut Partition, sector_size: u32) {
        if p.problem.is_some() || p.size == 0 {
            return;
        }
        let (first, last) = lbas(p, sector_size);
        if let Some((_, &(end, other))) = self.0.range(..=last).next_back()
            && end >= first
        {
            p.problem = Some(PartitionError::Overlap { number: p.number, first, last, other }.into());
            return;
        }
        self.0.insert(first, (last, p.number));
    }
}

// ------------------------------------------------------------------ GPT

/// A header and its entries, or why they cannot be used; I/O errors are the outer error.
fn load_gpt(
    src: &dyn ReadAt,
    sector_size: u32,
    lba: u64,
    disk_sectors: u64,
) -> Result<Result<(gpt::Header, Vec<gpt::Entry>), gpt::GptError>> {
    let ss = u64::from(sector_size);
    let sector = read(src, lba * ss, sector_size as usize, "a GPT header")?;
    let h = match gpt::parse_header(&sector, lba, sector_size, disk_sectors) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = read(src, h.entries_offset(), h.entries_len(), "the GPT partition entries")?;
    Ok(gpt::parse_entries(&h, &bytes).map(|entries| (h, entries)))
}

fn read_gpt(src: &dyn ReadAt, size: u64, head: &[u8], m: Option<&mbr::Mbr>) -> Result<Table> {
    // sector sizes with a signature at LBA 1 first
    let mut order: Vec<u32> = GPT_SECTOR_SIZES.to_vec();
    order.sort_by_key(|&ss| !gpt_signature_at(head, ss as usize));
    let mut failures = Vec::new();
    for ss in order {
        let disk_sectors = size / u64::from(ss);
        if disk_sectors < 3 {
            continue;
        }
        let backup_lba = disk_sectors - 1;
        let mut notes = Vec::new();
        let primary = load_gpt(src, ss, 1, disk_sectors)?;
        let (h, entries) = match primary {
            Ok(ok) => {
                backup_notes(src, &ok.0, disk_sectors, &mut notes)?;
                ok
            }
            Err(pe) => match load_gpt(src, ss, backup_lba, disk_sectors)? {
                Ok(ok) => {
                    notes.push(format!("primary GPT header is damaged ({pe}); using the backup at LBA {backup_lba}"));
                    ok
                }
                Err(be) => {
                    failures.push(PartitionError::NoGptHeader {
                        sector_size: ss,
                        primary: pe.to_string(),
                        backup_lba,
                        backup: be.to_string(),
                    });
                    continue;
                }
            },
        };
        mbr_notes(m, &mut notes);
        return Ok(gpt_table(&h, entries, disk_sectors, notes));
    }
    // nothing usable: report the sector size where a header was at least recognisable
    let recognisable = |e: &PartitionError| match e {
        PartitionError::NoGptHeader { primary, backup, .. } => {
            let none = gpt::GptError::NoSignature.to_string();
            *primary != none || *backup != none
        }
        _ => false,
    };
    let pick = failures.iter().position(recognisable).unwrap_or(0);
    Err(failures.into_iter().nth(pick).unwrap_or(PartitionError::TooSmallForGpt { size }).into())
}

/// Notes on the backup header when the primary is good (gdisk warns about the same).
fn backup_notes(src: &dyn ReadAt, h: &gpt::Header, disk_sectors: u64, notes: &mut Vec<String>) -> Result<()> {
    let last = disk_sectors - 1;
    if h.last_usable >= disk_sectors {
        notes.push(format!(
            "the GPT's usable area ends at LBA {} but the disk has only {disk_sectors} sectors: the disk is truncated",
            h.last_usable
        ));
    }
    if h.alternate_lba != last {
        notes.push(format!(
            "the primary GPT header places the backup at LBA {}, not at the disk's last LBA {last} (resized disk?)",
            h.alternate_lba
        ));
    }
    if h.alternate_lba >= disk_sectors || h.alternate_lba <= 1 {
        return Ok(());
    }
    let ss = u64::from(h.sector_size);
    let sector = read(src, h.alternate_lba * ss, h.sector_size as usize, "the backup GPT header")?;
    if let Err(e) = gpt::parse_header(&sector, h.alternate_lba, h.sector_size, disk_sectors) {
        notes.push(format!("backup GPT header at LBA {} is damaged ({e})", h.alternate_lba));
    }
    Ok(())
}

fn mbr_notes(m: Option<&mbr::Mbr>, notes: &mut Vec<String>) {
    match m {
        None => notes.push("no protective MBR in sector 0 (the kernel would ignore this GPT)".into()),
        Some(m) if !m.is_protective() => notes.push("the MBR has no protective (0xEE) entry".into()),
        Some(m) => {
            let others = m.used().filter(|e| e.kind != types::MBR_GPT_PROTECTIVE).count();
            if others > 0 {
                notes.push(format!("hybrid MBR: it also lists {others} partition(s); the GPT is used"));
            }
        }
    }
}

fn gpt_table(h: &gpt::Header, entries: Vec<gpt::Entry>, disk_sectors: u64, notes: Vec<String>) -> Table {
    let ss = u64::from(h.sector_size);
    let mut parts = Vec::with_capacity(entries.len());
    let mut seen = Overlaps::default();
    for e in entries {
        let (number, first, last) = (e.number, e.first_lba, e.last_lba);
        let problem = if first > last {
            Some(PartitionError::Reversed { number, first, last })
        } else if last >= disk_sectors {
            Some(PartitionError::PastEnd { number, first, last, disk_sectors })
        } else if first < h.first_usable || last > h.last_usable {
            Some(PartitionError::OutsideUsable { number, first, last, lo: h.first_usable, hi: h.last_usable })
        } else {
            None
        };
        // inside the disk when usable, so these cannot overflow; saturate for the others
        let start = first.saturating_mul(ss);
        let size = if first > last { 0 } else { (last - first).saturating_add(1).saturating_mul(ss) };
        let mut p = Partition {
            number,
            start,
            size,
            name: Some(e.name),
            type_name: types::gpt_type_name(&e.type_guid),
            type_id: e.type_guid,
            uuid: Some(e.unique_guid),
            bootable: e.attributes & gpt::ATTR_LEGACY_BOOTABLE != 0,
            role: Role::Primary,
            problem: problem.map(Error::from),
        };
        seen.check(&mut p, h.sector_size);
        parts.push(p);
    }
    Table { kind: TableKind::Gpt, sector_size: h.sector_size, disk_id: h.disk_guid.clone(), partitions: parts, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_on_zeros_and_short_inputs() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0u8; 4096]), None);
        assert_eq!(read_table(&vec![0u8; 100], 100).unwrap(), None);
        assert_eq!(read_table(&vec![0u8; 1 << 16], 1 << 16).unwrap(), None);
    }

    #[test]
    fn protective_mbr_without_gpt_is_corrupt() {
        let mut d = vec![0u8; 1 << 16];
        d[446 + 4] = 0xee;
        d[446 + 8] = 1;
        d[446 + 12..446 + 16].copy_from_slice(&127u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xaa;
        assert_eq!(probe(&d), Some(TableKind::Gpt));
        let e = read_table(&d, d.len() as u64).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Corrupt);
        assert!(e.message().contains("primary at LBA 1: no \"EFI PART\" signature"), "{e}");
    }
}
