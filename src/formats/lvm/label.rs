//! The binary parts of an LVM2 physical volume, parsed sans-I/O: the label (`LABELONE` in one of
//! the first four sectors), the `pv_header` that follows it (PV UUID, device size, data and
//! metadata area lists), the `mda_header` at the start of each metadata area, and where the
//! committed metadata text lies in that area's circular buffer.
//!
//! All integers are little-endian. Checksums use lvm2's CRC-32: the reflected IEEE polynomial
//! seeded with [`INITIAL_CRC`] and without the final inversion (see [`calc_crc`]).

use crate::{Error, Result};

/// Sector size of label arithmetic.
pub const SECTOR: u64 = 512;
/// The label sits in one of sectors 0..LABEL_SCAN_SECTORS.
pub const LABEL_SCAN_SECTORS: usize = 4;
/// Label magic.
pub const LABEL_ID: &[u8; 8] = b"LABELONE";
/// Label type of the LVM2 text format.
pub const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
/// Magic of a metadata area header.
pub const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// Metadata area header version lvm2 writes and reads.
pub const MDA_VERSION: u32 = 1;
/// Size of the metadata area header (the circular text buffer starts after it).
pub const MDA_HEADER_SIZE: u64 = 512;
/// Seed of lvm2's CRC-32.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;
/// `raw_locn.flags`: this copy is ignored (`pvchange --metadataignore y`).
pub const RAW_LOCN_IGNORED: u32 = 1;
/// Most data or metadata areas one pv_header list may hold (lvm2 writes 1 data area, <= 2 mdas).
pub const MAX_AREAS: usize = 8;
/// Length of a UUID without dashes.
pub const UUID_LEN: usize = 32;

/// lvm2's `calc_crc`: CRC-32 (reflected polynomial 0xEDB88320) continued from `crc`, without
/// the final inversion of the IEEE CRC; start with [`INITIAL_CRC`]. Computed with `crc32fast`,
/// whose state is the inverted register.
pub fn calc_crc(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!crc);
    h.update(data);
    !h.finalize()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// An `(offset, size)` area in bytes from the start of the PV (`size` 0: to the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// Byte offset from the start of the PV.
    pub offset: u64,
    /// Bytes, 0 meaning "up to the end of the device" (data areas).
    pub size: u64,
}

/// The label and the pv_header it points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Sector (0..4) the label is in.
    pub sector: u64,
    /// PV UUID in lvm2's dashed form (`xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`).
    pub uuid: String,
    /// Device size recorded at pvcreate/pvresize time, bytes.
    pub dev_size: u64,
    /// Data areas (lvm2 writes one, starting at pe_start).
    pub data_areas: Vec<Area>,
    /// Metadata areas (0, 1 or 2).
    pub metadata_areas: Vec<Area>,
}

/// Dashed form of a 32-character UUID, as the text metadata writes it (6-4-4-4-4-4-6).
pub fn dashed_uuid(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(38);
    for (i, c) in s.chars().enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Does sector `i` of `head` hold a label header (magic, own sector number, CRC, LVM2 type)?
fn label_at(head: &[u8], i: usize) -> bool {
    let Some(s) = head.get(i * 512..(i + 1) * 512) else { return false };
    &s[0..8] == LABEL_ID
        && le64(s, 8) == i as u64
        && le32(s, 16) == calc_crc(INITIAL_CRC, &s[20..])
        && &s[24..32] == LABEL_TYPE
}

/// Is there an LVM2 label in one of the first four sectors of `head`?
pub fn probe(head: &[u8]) -> bool {
    (0..LABEL_SCAN_SECTORS).any(|i| label_at(head, i))
}

impl Label {
    /// Find and parse the label in the first four sectors of `head` (at most 2048 bytes used).
    pub fn parse(head: &[u8]) -> Result<Label> {
        let mut found = None;
        for i in 0..LABEL_SCAN_SECTORS {
            let Some(s) = head.get(i * 512..(i + 1) * 512) else { break };
            if &s[0..8] != LABEL_ID {
                continue;
            }
            if le64(s, 8) != i as u64 {
                return Err(Error::corrupt(format!("LVM label in sector {i} says it is in sector {}", le64(s, 8))));
            }
            let (want, got) = (le32(s, 16), calc_crc(INITIAL_CRC, &s[20..]));
            if want != got {
                return Err(Error::corrupt(format!(
                    "LVM label in sector {i}: checksum {want:#010x}, computed {got:#010x}"
                )));
            }
            if &s[24..32] != LABEL_TYPE {
                return Err(Error::unsupported(format!(
                    "LVM label type {:?} (only \"LVM2 001\" is known)",
                    String::from_utf8_lossy(&s[24..32])
                )));
            }
            found = Some((i, s));
            break;
        }
        let Some((i, s)) = found else {
            return Err(Error::corrupt("no LVM2 label (LABELONE) in the first four sectors"));
        };
        let off = le32(s, 20) as usize;
        // pv_header: uuid[32], device_size u64, then the lists; it must lie inside the sector.
        if !(32..=512 - (UUID_LEN + 8 + 16)).contains(&off) {
            return Err(Error::corrupt(format!("LVM label: pv_header offset {off} outside the label sector")));
        }
        let uuid_raw = &s[off..off + UUID_LEN];
        // lvm2's UUID alphabet: letters, digits, and '!' '#' (valid, though never generated).
        if !uuid_raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'#')) {
            return Err(Error::corrupt(format!(
                "LVM pv_header: PV UUID {:?} has characters lvm2 never uses",
                cstr(uuid_raw)
            )));
        }
        let dev_size = le64(s, off + UUID_LEN);
        let mut pos = off + UUID_LEN + 8;
        let mut lists = [Vec::new(), Vec::new()];
        for (li, list) in lists.iter_mut().enumerate() {
            let what = if li == 0 { "data" } else { "metadata" };
            loop {
                if pos + 16 > 512 {
                    return Err(Error::corrupt(format!("LVM pv_header: {what} area list runs past the label sector")));
                }
                let a = Area { offset: le64(s, pos), size: le64(s, pos + 8) };
                pos += 16;
                if a.offset == 0 {
                    break;
                }
                if list.len() == MAX_AREAS {
                    return Err(Error::corrupt(format!("LVM pv_header: more than {MAX_AREAS} {what} areas")));
                }
                list.push(a);
            }
        }
        let [data_areas, metadata_areas] = lists;
        Ok(Label { sector: i as u64, uuid: dashed_uuid(uuid_raw), dev_size, data_areas, metadata_areas })
    }
}

fn cstr(b: &[u8]) -> String {
    crate::codec::cstr(b)
}

/// One `raw_locn`: where a metadata text copy is, relative to the metadata area start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawLocn {
    /// Offset from the start of the metadata area (>= [`MDA_HEADER_SIZE`]).
    pub offset: u64,
    /// Bytes of text (lvm2 includes the terminating NUL).
    pub size: u64,
    /// [`calc_crc`] of the text.
    pub checksum: u32,
    /// [`RAW_LOCN_IGNORED`] and future flags.
    pub flags: u32,
}

/// The header of one metadata area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdaHeader {
    /// Absolute start of the area, as recorded in it.
    pub start: u64,
    /// Size of the area, header included.
    pub size: u64,
    /// The committed copy (`raw_locns[0]`), if any text was ever written.
    pub committed: Option<RawLocn>,
}

impl MdaHeader {
    /// Parse the 512-byte header of the metadata area `area` (as listed in the pv_header).
    pub fn parse(b: &[u8], area: Area) -> Result<MdaHeader> {
        let at = area.offset;
        let Some(b) = b.get(..MDA_HEADER_SIZE as usize) else {
            return Err(Error::corrupt(format!("LVM metadata area at {at}: header truncated to {} bytes", b.len())));
        };
        let (want, got) = (le32(b, 0), calc_crc(INITIAL_CRC, &b[4..]));
        if want != got {
            return Err(Error::corrupt(format!(
                "LVM metadata area at {at}: header checksum {want:#010x}, computed {got:#010x}"
            )));
        }
        if &b[4..20] != MDA_MAGIC {
            return Err(Error::corrupt(format!("LVM metadata area at {at}: bad magic {:?}", cstr(&b[4..20]))));
        }
        let version = le32(b, 20);
        if version != MDA_VERSION {
            return Err(Error::unsupported(format!("LVM metadata area at {at}: header version {version}")));
        }
        let (start, size) = (le64(b, 24), le64(b, 32));
        if start != area.offset {
            return Err(Error::corrupt(format!("LVM metadata area at {at}: header says it starts at {start}")));
        }
        if size <= MDA_HEADER_SIZE || (area.size != 0 && size != area.size) {
            return Err(Error::corrupt(format!(
                "LVM metadata area at {at}: header size {size}, pv_header says {}",
                area.size
            )));
        }
        let rl = RawLocn { offset: le64(b, 40), size: le64(b, 48), checksum: le32(b, 56), flags: le32(b, 60) };
        let committed = (rl.offset != 0).then_some(rl);
        Ok(MdaHeader { start, size, committed })
    }

    /// The one or two absolute `(offset, length)` pieces of the committed text (two when it wraps
    /// around the end of the circular buffer), checked against the area and `max_text`.
    pub fn text_pieces(&self, rl: &RawLocn, max_text: u64) -> Result<Vec<(u64, u64)>> {
        let at = self.start;
        let buf = self.size - MDA_HEADER_SIZE;
        if rl.size == 0 || rl.size > buf || rl.size > max_text {
            return Err(Error::corrupt(format!(
                "LVM metadata area at {at}: text size {} (area holds {buf}, limit {max_text})",
                rl.size
            )));
        }
        if rl.offset < MDA_HEADER_SIZE || rl.offset >= self.size {
            return Err(Error::corrupt(format!(
                "LVM metadata area at {at}: text offset {} outside [{MDA_HEADER_SIZE}, {})",
                rl.offset, self.size
            )));
        }
        let abs = |o: u64| {
            self.start
                .checked_add(o)
                .ok_or_else(|| Error::corrupt(format!("LVM metadata area at {at}: offset overflows")))
        };
        let first = rl.size.min(self.size - rl.offset);
        let mut v = vec![(abs(rl.offset)?, first)];
        if first < rl.size {
            // wrapped: the rest continues right after the header
            v.push((abs(MDA_HEADER_SIZE)?, rl.size - first));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm2() {
        // lvm2's calc_crc is the IEEE CRC-32 register without the final inversion.
        assert_eq!(calc_crc(0xffff_ffff, b"123456789"), !0xcbf4_3926);
        assert_eq!(calc_crc(INITIAL_CRC, b""), INITIAL_CRC);
        let (a, b) = b"hello world".split_at(4);
        assert_eq!(calc_crc(calc_crc(INITIAL_CRC, a), b), calc_crc(INITIAL_CRC, b"hello world"));
    }

    #[test]
    fn uuid_dashes() {
        assert_eq!(dashed_uuid(b"XWJpVMILPlFyHvtUY1RzcMncn8mXjs50"), "XWJpVM-ILPl-FyHv-tUY1-RzcM-ncn8-mXjs50");
    }

    #[test]
    fn text_pieces_wrap_and_bounds() {
        let h = MdaHeader { start: 4096, size: 4096, committed: None };
        let rl = |offset, size| RawLocn { offset, size, checksum: 0, flags: 0 };
        assert_eq!(h.text_pieces(&rl(512, 100), 1 << 20).unwrap(), [(4608, 100)]);
        assert_eq!(h.text_pieces(&rl(4000, 200), 1 << 20).unwrap(), [(8096, 96), (4608, 104)]);
        assert!(h.text_pieces(&rl(100, 10), 1 << 20).is_err());
        assert!(h.text_pieces(&rl(512, 3585), 1 << 20).is_err());
        assert!(h.text_pieces(&rl(512, 0), 1 << 20).is_err());
        assert!(h.text_pieces(&rl(4096, 10), 1 << 20).is_err());
        assert!(h.text_pieces(&rl(512, 100), 50).is_err());
    }
}
