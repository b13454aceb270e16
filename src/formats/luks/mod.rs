//! LUKS1 and LUKS2 headers: reading the (possibly duplicated) metadata, describing the data
//! segment, and turning key slots into [`keyslot::SlotPlan`]s that [`keyslot::unlock`] opens.

pub mod af;
pub mod keyslot;
pub mod rules;
pub mod v1;
pub mod v2;

use crate::crypto::CipherSpec;
use crate::crypto::kdf::Argon2Variant;
use crate::io::ReadAt;
use crate::{Error, Result};
use keyslot::{DigestCheck, SlotKdf, SlotPlan};

/// A LUKS header of either version.
#[derive(Clone, Debug)]
pub enum Header {
    V1(v1::Header),
    V2(Box<Luks2>),
}

/// A LUKS2 header: the metadata copy in use and what happened to the other one.
#[derive(Clone, Debug)]
pub struct Luks2 {
    pub bin: v2::BinHeader,
    pub md: v2::Metadata,
    /// Byte offset the copy in use was read at.
    pub offset: u64,
    /// Why this copy is the one in use.
    pub why: String,
    /// Why the other copy was not used (`None` when both are valid and agree on seqid).
    pub other_copy_problem: Option<String>,
}

/// Where and how the encrypted data lies, independent of the LUKS version.
#[derive(Clone, Debug)]
pub struct DataLayout {
    /// Byte offset of the data in the data file.
    pub offset: u64,
    /// Data size in bytes, or `None` for "to the end of the file".
    pub size: Option<u64>,
    pub sector_size: u32,
    /// IV number of the first sector (512-byte units).
    pub iv_tweak: u64,
    pub cipher: CipherSpec,
    pub key_len: usize,
}

/// Whether `head` (the first bytes of a file) starts with a LUKS header of either version.
pub fn probe(head: &[u8]) -> bool {
    head.len() >= 6 && head[..6] == v1::MAGIC
}

fn corrupt_v1(e: v1::Luks1Error) -> Error {
    Error::corrupt(e.to_string())
}

fn read_at_most(src: &dyn ReadAt, offset: u64, n: u64) -> Result<Option<Vec<u8>>> {
    if offset.checked_add(n).is_none_or(|end| end > src.size()) {
        return Ok(None);
    }
    crate::io::read_vec(src, offset, n as usize).map(Some)
}

/// Whether `src` holds a LUKS2 secondary header at one of the allowed metadata sizes (a LUKS2
/// image whose primary header is destroyed, which cryptsetup still opens).
pub fn probe_secondary(src: &dyn ReadAt) -> bool {
    v2::HDR_SIZES.iter().any(
        |&off| matches!(read_at_most(src, off, 8), Ok(Some(b)) if b[..6] == v2::MAGIC_SECONDARY && b[6..8] == [0, 2]),
    )
}

/// Read and validate the LUKS header at the start of `src`.
///
/// For LUKS2 both metadata copies are checked as cryptsetup checks them: the valid one with the
/// higher `seqid` wins; when one copy is damaged the other is used (and the problem recorded);
/// when both are, the image is corrupt. Nothing is ever written back.
pub fn read_header(src: &dyn ReadAt) -> Result<Header> {
    let head = crate::io::read_upto(src, 0, v2::BIN_HEADER_LEN)?;
    if !probe(&head) {
        // cryptsetup reads a destroyed primary as LUKS2 and looks for the secondary copy.
        if probe_secondary(src) {
            return read_luks2(src).map(|h| Header::V2(Box::new(h)));
        }
        return Err(Error::corrupt("not a LUKS image (bad magic, and no LUKS2 secondary header)"));
    }
    let version = head.get(6..8).map(|v| u16::from_be_bytes([v[0], v[1]]));
    match version {
        Some(1) => v1::Header::parse(&head).map(Header::V1).map_err(corrupt_v1),
        Some(2) => read_luks2(src).map(|h| Header::V2(Box::new(h))),
        Some(v) => Err(Error::unsupported(format!("unknown LUKS version {v}"))),
        None => Err(Error::corrupt("truncated LUKS header")),
    }
}

/// A copy whose binary header and checksum are right, with its JSON judged.
struct ReadCopy {
    bin: v2::BinHeader,
    offset: u64,
    md: std::result::Result<v2::Metadata, String>,
}

/// cryptsetup's `hdr_read_disk`: binary header sanity, then the checksum of the whole copy.
fn read_copy(src: &dyn ReadAt, offset: u64, want: v2::Copy) -> std::result::Result<ReadCopy, String> {
    let head = read_at_most(src, offset, v2::BIN_HEADER_LEN as u64)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("file ends before the header at byte {offset}"))?;
    let bin = v2::BinHeader::parse(&head).map_err(|e| e.to_string())?;
    if bin.copy != want {
        return Err(format!("expected the {want:?} header at byte {offset}").to_lowercase());
    }
    bin.check_place(offset).map_err(|e| e.to_string())?;
    let area = read_at_most(src, offset, bin.hdr_size)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("file ends inside the {}-byte metadata area at byte {offset}", bin.hdr_size))?;
    bin.check_checksum(&area).map_err(|e| e.to_string())?;
    let md = v2::Metadata::from_area(&area[v2::BIN_HEADER_LEN..]).map_err(|e| e.to_string());
    Ok(ReadCopy { bin, offset, md })
}

fn read_luks2(src: &dyn ReadAt) -> Result<Luks2> {
    let primary = read_copy(src, 0, v2::Copy::Primary);
    // When the primary's binary header and checksum are right, the secondary sits at its
    // hdr_size and nowhere else; otherwise try every allowed metadata size, in order.
    let (secondary, found) = match &primary {
        Ok(p) => (read_copy(src, p.bin.hdr_size, v2::Copy::Secondary), "at the primary's header size"),
        Err(_) => {
            let mut first_err = None;
            let hit = v2::HDR_SIZES.iter().find_map(|&off| match read_copy(src, off, v2::Copy::Secondary) {
                Ok(c) => Some(c),
                Err(e) => {
                    first_err.get_or_insert(e);
                    None
                }
            });
            let none =
                || format!("none found at any allowed offset (at 16384: {})", first_err.clone().unwrap_or_default());
            (hit.ok_or_else(none), "by trying each allowed metadata size (16 KiB .. 4 MiB)")
        }
    };
    let state = |c: &std::result::Result<ReadCopy, String>| -> std::result::Result<(), String> {
        match c {
            Ok(ReadCopy { md: Ok(_), .. }) => Ok(()),
            Ok(ReadCopy { md: Err(e), .. }) => Err(e.clone()),
            Err(e) => Err(e.clone()),
        }
    };
    let (ps, ss) = (state(&primary), state(&secondary));
    let soff = secondary.as_ref().map(|c| c.offset).ok();
    let take = |c: std::result::Result<ReadCopy, String>, why: String, other: Option<String>| -> Luks2 {
        let c = c.unwrap_or_else(|_| unreachable!("only a valid copy is taken"));
        let md = c.md.unwrap_or_else(|_| unreachable!("only a valid copy is taken"));
        Luks2 { bin: c.bin, md, offset: c.offset, why, other_copy_problem: other }
    };
    let h = match (ps, ss) {
        (Ok(()), Ok(())) => {
            let (pq, sq) = (primary.as_ref().map_or(0, |c| c.bin.seqid), secondary.as_ref().map_or(0, |c| c.bin.seqid));
            let at = soff.unwrap_or(0);
            if sq > pq {
                let note = format!("primary header is older (seqid {pq} < {sq})");
                take(secondary, format!("both copies are valid; the secondary (at byte {at}) is newer"), Some(note))
            } else if pq > sq {
                let note = format!("secondary header is older (seqid {sq} < {pq})");
                take(primary, "both copies are valid; the primary is newer".into(), Some(note))
            } else {
                take(primary, format!("both copies are valid and agree; the secondary is at byte {at}"), None)
            }
        }
        (Ok(()), Err(e)) => {
            take(primary, "the primary copy is valid".into(), Some(format!("secondary header unusable: {e}")))
        }
        (Err(e), Ok(())) => {
            log::warn!("LUKS2 primary header unusable ({e}); using the secondary copy");
            let why =
                format!("the primary copy is unusable; the secondary was found at byte {} {found}", soff.unwrap_or(0));
            take(secondary, why, Some(format!("primary header unusable: {e}")))
        }
        (Err(p), Err(s)) => {
            return Err(Error::corrupt(format!("both LUKS2 header copies are damaged (primary: {p}; secondary: {s})")));
        }
    };
    // cryptsetup refuses a device shorter than both metadata copies and the key-slot area.
    let need = h.bin.hdr_size.saturating_mul(2).saturating_add(h.md.keyslots_size);
    let len = src.size();
    if len < need {
        return Err(Error::corrupt(format!(
            "the LUKS2 header and key-slot areas need {need} bytes but the file has {len}"
        )));
    }
    Ok(h)
}

impl Header {
    /// `1` or `2`.
    pub fn version(&self) -> u8 {
        match self {
            Header::V1(_) => 1,
            Header::V2(_) => 2,
        }
    }

    /// The header's UUID.
    pub fn uuid(&self) -> &str {
        match self {
            Header::V1(h) => &h.uuid,
            Header::V2(h) => &h.bin.uuid,
        }
    }

    /// Bytes at the start of the header file that belong to the header (metadata + key slots).
    pub fn header_area_end(&self) -> u64 {
        match self {
            Header::V1(h) => h
                .slots
                .iter()
                .map(|s| u64::from(s.key_material_offset) * 512 + h.material_len(s))
                .max()
                .unwrap_or(v1::HEADER_LEN as u64),
            Header::V2(h) => h.bin.hdr_size.saturating_mul(2).saturating_add(h.md.keyslots_size),
        }
    }

    /// Describe the data segment, refusing what luksfs does not implement.
    pub fn data_layout(&self) -> Result<DataLayout> {
        match self {
            Header::V1(h) => Ok(DataLayout {
                offset: h.payload_offset_bytes(),
                size: None,
                sector_size: 512,
                iv_tweak: 0,
                cipher: CipherSpec::parse(&h.cipher_name, &h.cipher_mode)?,
                key_len: h.key_bytes as usize,
            }),
            Header::V2(h) => {
                let md = &h.md;
                if !md.requirements.is_empty() {
                    return Err(Error::unsupported(format!(
                        "LUKS2 header lists mandatory requirements luksfs does not implement: {} \
                         (e.g. an unfinished reencryption); refusing to open",
                        md.requirements.join(", ")
                    )));
                }
                let seg = match md.segments.as_slice() {
                    [s] => s,
                    [] => return Err(Error::corrupt("LUKS2 header has no data segment")),
                    many => {
                        return Err(Error::unsupported(format!(
                            "LUKS2 header has {} segments; only a single data segment is supported",
                            many.len()
                        )));
                    }
                };
                if seg.kind != "crypt" {
                    return Err(Error::unsupported(format!("segment {} has unsupported type '{}'", seg.id, seg.kind)));
                }
                if seg.integrity {
                    return Err(Error::unsupported(format!(
                        "segment {} uses authenticated encryption (integrity), which luksfs does not implement",
                        seg.id
                    )));
                }
                if !matches!(seg.sector_size, 512 | 1024 | 2048 | 4096) {
                    return Err(Error::unsupported(format!(
                        "segment {} has sector size {}; luksfs (like dm-crypt) serves 512, 1024, 2048 or 4096",
                        seg.id, seg.sector_size
                    )));
                }
                if seg.offset % 512 != 0 {
                    return Err(Error::corrupt(format!("segment offset {} is not sector-aligned", seg.offset)));
                }
                let key_len = md
                    .digests
                    .iter()
                    .find(|d| d.segments.contains(&seg.id))
                    .and_then(|d| {
                        md.keyslots
                            .iter()
                            .find(|k| d.keyslots.contains(&k.id) && (1..=v2::MAX_KEY_SIZE).contains(&k.key_size))
                    })
                    .map(|k| k.key_size as usize)
                    .ok_or_else(|| Error::corrupt("no key slot is bound to the data segment"))?;
                Ok(DataLayout {
                    offset: seg.offset,
                    size: seg.size,
                    sector_size: seg.sector_size,
                    iv_tweak: seg.iv_tweak,
                    cipher: CipherSpec::parse_joined(&seg.encryption)?,
                    key_len,
                })
            }
        }
    }

    /// The usable key slots as [`SlotPlan`]s (see [`Header::unusable_slots`] for the others).
    /// Fails if a LUKS1 header names a cipher luksfs cannot parse at all; unknown hashes are
    /// reported when the slot is tried.
    pub fn slot_plans(&self) -> Result<Vec<SlotPlan>> {
        match self {
            Header::V1(h) => {
                let cipher = CipherSpec::parse(&h.cipher_name, &h.cipher_mode)?;
                let digest = DigestCheck {
                    hash: h.hash_spec.clone(),
                    iterations: h.mk_digest_iterations,
                    salt: h.mk_digest_salt.to_vec(),
                    digest: h.mk_digest.to_vec(),
                };
                Ok(h.slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_active())
                    .map(|(i, s)| SlotPlan {
                        id: i as u32,
                        priority: 1,
                        kdf: SlotKdf::Pbkdf2 {
                            hash: h.hash_spec.clone(),
                            iterations: s.iterations,
                            salt: s.salt.to_vec(),
                        },
                        area_offset: u64::from(s.key_material_offset) * 512,
                        area_size: h.material_len(s),
                        area_cipher: cipher.clone(),
                        area_key_len: h.key_bytes as usize,
                        stripes: s.stripes,
                        af_hash: h.hash_spec.clone(),
                        volume_key_len: h.key_bytes as usize,
                        digest: Some(digest.clone()),
                    })
                    .collect())
            }
            Header::V2(h) => Ok(h.md.keyslots.iter().filter_map(|ks| v2_plan(h, ks).ok()).collect()),
        }
    }

    /// The key slots that cannot be used, each with the error that says why (damaged:
    /// [`crate::ErrorKind::Corrupt`]; valid but not implemented: [`crate::ErrorKind::Unsupported`]).
    /// Always empty for LUKS1, whose inactive slots are simply not listed.
    pub fn unusable_slots(&self) -> Vec<(u32, Error)> {
        match self {
            Header::V1(_) => Vec::new(),
            Header::V2(h) => h.md.keyslots.iter().filter_map(|ks| v2_plan(h, ks).err().map(|e| (ks.id, e))).collect(),
        }
    }
}

/// A LUKS2 key slot as a [`SlotPlan`], or why it cannot be used.
fn v2_plan(h: &Luks2, ks: &v2::Keyslot) -> Result<SlotPlan> {
    let ctx = |e: Error| e.context(format!("key slot {}", ks.id));
    let u = match (&ks.usable, &ks.unusable) {
        (Some(u), _) => u,
        (None, Some(p)) if p.damaged => return Err(ctx(Error::corrupt(p.reason.clone()))),
        (None, p) => {
            return Err(ctx(Error::unsupported(
                p.as_ref().map_or_else(|| "unusable".to_string(), |p| p.reason.clone()),
            )));
        }
    };
    let md = &h.md;
    let data_segment = md.segments.iter().find(|s| s.kind == "crypt").map(|s| s.id);
    let ks_start = h.bin.hdr_size.saturating_mul(2);
    let ks_end = ks_start.saturating_add(md.keyslots_size);
    let end = u.area_offset.checked_add(u.area_size);
    if u.area_offset < ks_start || end.is_none_or(|e| e > ks_end) {
        return Err(ctx(Error::corrupt(format!(
            "area [{}, +{}) lies outside the key-slot area [{ks_start}, {ks_end})",
            u.area_offset, u.area_size
        ))));
    }
    let digest = md
        .digests
        .iter()
        .find(|d| {
            d.kind == "pbkdf2" && d.keyslots.contains(&ks.id) && data_segment.is_some_and(|s| d.segments.contains(&s))
        })
        .map(|d| DigestCheck {
            hash: d.hash.clone(),
            iterations: d.iterations,
            salt: d.salt.clone(),
            digest: d.digest.clone(),
        });
    let kdf = match &u.kdf {
        v2::Kdf::Pbkdf2 { hash, iterations, salt } => {
            SlotKdf::Pbkdf2 { hash: hash.clone(), iterations: *iterations, salt: salt.clone() }
        }
        v2::Kdf::Argon2 { id, time, memory_kib, lanes, salt } => SlotKdf::Argon2 {
            variant: if *id { Argon2Variant::Id } else { Argon2Variant::I },
            time: *time,
            memory_kib: *memory_kib,
            lanes: *lanes,
            salt: salt.clone(),
        },
    };
    let area_cipher = CipherSpec::parse_joined(&u.area_encryption).map_err(|e| ctx(e.into()))?;
    Ok(SlotPlan {
        id: ks.id,
        priority: ks.priority,
        kdf,
        area_offset: u.area_offset,
        area_size: u.area_size,
        area_cipher,
        area_key_len: u.area_key_size as usize,
        stripes: u.af_stripes,
        af_hash: u.af_hash.clone(),
        volume_key_len: ks.key_size as usize,
        digest,
    })
}
