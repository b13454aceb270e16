//! LVM2 physical volumes, read-only: the label and metadata areas of a PV ([`label`]), the text
//! metadata ([`metadata`]) and the VG/LV model with the LV → PV address mapping ([`vg`]).
//!
//! [`read_pv`] is the only function doing I/O: it reads the label, every metadata area's header
//! and committed text, and keeps the newest valid copy (highest seqno, both checksums right).
//! Linear and striped LVs map through [`Lv::map`]; every other LV type is listed with the reason
//! it is refused. Nothing is ever written, and no device-mapper is needed.

pub mod label;
pub mod metadata;
pub mod reader;
pub mod vg;

pub use vg::{Lv, Segment, SegmentKind, Stripe, Vg, VgPv, dm_name};

use crate::io::ReadAt;
use crate::{Error, Result};
use label::{Label, MDA_HEADER_SIZE, MdaHeader, RAW_LOCN_IGNORED, calc_crc};

/// Is there an LVM2 label (`LABELONE`, right sector number and checksum, type `LVM2 001`) in one
/// of the first four sectors of `head`?
pub fn probe(head: &[u8]) -> bool {
    label::probe(head)
}

/// A physical volume and the VG it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Pv {
    /// PV UUID (dashed).
    pub uuid: String,
    /// Device size from the pv_header, bytes.
    pub dev_size: u64,
    /// The VG from the newest valid metadata copy; `None` for a PV without metadata areas or
    /// an orphan PV (no VG written yet).
    pub vg: Option<Vg>,
    /// Index of this PV in `vg.pvs`, when there is a VG.
    pub index: Option<usize>,
    /// Things worth telling a person (a damaged or older second copy, a size mismatch...).
    pub notes: Vec<String>,
}

fn io_err(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| e.context(what)
}

/// Read the label, the pv_header, the metadata area(s) and the newest valid metadata (highest
/// seqno; mda_header checksum and raw_locn checksum checked) of the PV in `src` (`size` bytes).
pub fn read_pv(src: &dyn ReadAt, size: u64) -> Result<Pv> {
    let head_len = size.min(label::LABEL_SCAN_SECTORS as u64 * label::SECTOR) as usize;
    let head = crate::io::read_vec(src, 0, head_len).map_err(io_err("reading the LVM label"))?;
    let lbl = Label::parse(&head)?;
    let mut notes = Vec::new();
    if lbl.dev_size > size {
        notes.push(format!("the PV label records a device of {} bytes, the volume has {size}", lbl.dev_size));
    }
    if lbl.metadata_areas.is_empty() {
        notes.push("this PV has no metadata area (pvcreate --pvmetadatacopies 0)".into());
    }

    // Each metadata area: Ok(Some((vg, checksum))) / Ok(None) (empty or ignored) / Err.
    let mut best: Option<(Vg, u32, usize)> = None;
    let mut first_err = None;
    for (i, area) in lbl.metadata_areas.iter().enumerate() {
        let n = i + 1;
        match read_mda(src, size, *area) {
            Ok(None) => {}
            Ok(Some((vg, sum))) => match &best {
                Some((b, _, bn)) if b.seqno > vg.seqno => {
                    notes.push(format!(
                        "metadata area {n} holds an older copy (seqno {} < {} in area {bn})",
                        vg.seqno, b.seqno
                    ));
                }
                Some((b, bsum, bn)) if b.seqno == vg.seqno => {
                    if *bsum != sum {
                        notes.push(format!(
                            "metadata areas {bn} and {n} differ at the same seqno {}; using area {bn}",
                            vg.seqno
                        ));
                    }
                }
                Some((b, _, bn)) => {
                    notes.push(format!("metadata area {bn} holds an older copy (seqno {} < {})", b.seqno, vg.seqno));
                    best = Some((vg, sum, n));
                }
                None => best = Some((vg, sum, n)),
            },
            Err(e) => {
                notes.push(format!("metadata area {n}: {e}"));
                first_err.get_or_insert(e.context(format!("LVM metadata area {n}")));
            }
        }
    }
    let vg = match (best, first_err) {
        (Some((vg, ..)), _) => Some(vg),
        (None, Some(e)) => return Err(e),
        (None, None) => {
            if !lbl.metadata_areas.is_empty() {
                notes.push("no volume group metadata (an orphan PV)".into());
            }
            None
        }
    };
    let mut index = None;
    if let Some(vg) = &vg {
        let Some(i) = vg.pv_by_uuid(&lbl.uuid) else {
            return Err(Error::corrupt(format!("VG {} metadata does not list this PV ({})", vg.name, lbl.uuid)));
        };
        let p = &vg.pvs[i];
        let end = p.pe_start + p.pe_count * vg.extent_size; // validated by Vg::from_metadata
        if end > size {
            return Err(Error::corrupt(format!(
                "PV {} ({}) of VG {} is shorter than the LVM metadata says: its extents end at byte {end}, \
                 the volume has {size} bytes",
                p.name, p.uuid, vg.name
            )));
        }
        if let Some(d) = lbl.data_areas.first()
            && d.offset != p.pe_start
        {
            notes.push(format!("pv_header data area starts at {}, metadata pe_start is {}", d.offset, p.pe_start));
        }
        index = Some(i);
    }
    Ok(Pv { uuid: lbl.uuid, dev_size: lbl.dev_size, vg, index, notes })
}

/// Read one metadata area: its header, and its committed text if there is one (`None` for an
/// empty or ignored area). Returns the VG and the text checksum.
fn read_mda(src: &dyn ReadAt, size: u64, area: label::Area) -> Result<Option<(Vg, u32)>> {
    let hdr_end = area.offset.checked_add(MDA_HEADER_SIZE);
    if hdr_end.is_none_or(|e| e > size) {
        return Err(Error::corrupt(format!("metadata area at {} lies beyond the {size}-byte volume", area.offset)));
    }
    let raw =
        crate::io::read_vec(src, area.offset, MDA_HEADER_SIZE as usize).map_err(io_err("reading an LVM mda_header"))?;
    let hdr = MdaHeader::parse(&raw, area)?;
    if hdr.start.checked_add(hdr.size).is_none_or(|e| e > size) {
        return Err(Error::corrupt(format!(
            "metadata area at {} of {} bytes runs past the {size}-byte volume",
            hdr.start, hdr.size
        )));
    }
    let Some(rl) = hdr.committed else { return Ok(None) };
    if rl.flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    let mut text = Vec::new();
    for (off, len) in hdr.text_pieces(&rl, metadata::MAX_TEXT as u64)? {
        let piece = crate::io::read_vec(src, off, len as usize).map_err(io_err("reading LVM metadata text"))?;
        text.extend_from_slice(&piece);
    }
    let sum = calc_crc(label::INITIAL_CRC, &text);
    if sum != rl.checksum {
        return Err(Error::corrupt(format!(
            "metadata text at {} ({} bytes): checksum {:#010x}, computed {sum:#010x}",
            rl.offset, rl.size, rl.checksum
        )));
    }
    let root = metadata::parse(&text)?;
    Ok(Some((Vg::from_metadata(&root)?, sum)))
}
