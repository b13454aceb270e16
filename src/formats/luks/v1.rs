//! LUKS1 on-disk header: 592 big-endian bytes at offset 0 (LUKS1 On-Disk Format Specification
//! 1.2.3). Pure parsing and validation from bytes; no I/O.

use crate::codec::{Reader, Truncated};

/// Size of the LUKS1 header in bytes.
pub const HEADER_LEN: usize = 592;
/// Number of key slots.
pub const NUM_SLOTS: usize = 8;
/// The `active` marker of an enabled key slot.
pub const SLOT_ACTIVE: u32 = 0x00AC_71F3;
/// The `active` marker of a disabled key slot.
pub const SLOT_DISABLED: u32 = 0x0000_DEAD;
/// Largest volume key accepted (cryptsetup's own limit is 512 bytes; real keys are 16–64).
pub const MAX_KEY_BYTES: u32 = 512;
/// Largest AF stripe count accepted. cryptsetup writes 4000; the cap bounds the key-material read
/// (`MAX_KEY_BYTES * MAX_STRIPES` = 2 MiB at most).
pub const MAX_STRIPES: u32 = 4096;

/// Why a LUKS1 header is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Luks1Error {
    #[error("LUKS1 header {0}")]
    Truncated(Truncated),
    #[error("not a LUKS header (bad magic)")]
    BadMagic,
    #[error("LUKS header version {0} is not 1")]
    BadVersion(u16),
    #[error("invalid volume key size {0} bytes")]
    BadKeyBytes(u32),
    #[error("invalid master key digest iteration count 0")]
    ZeroDigestIterations,
    #[error("key slot {slot} is invalid: {why}")]
    BadSlot { slot: usize, why: String },
}

impl From<Truncated> for Luks1Error {
    fn from(t: Truncated) -> Self {
        Luks1Error::Truncated(t)
    }
}

/// One LUKS1 key slot as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Raw `active` field: [`SLOT_ACTIVE`], [`SLOT_DISABLED`] or garbage.
    pub active: u32,
    pub iterations: u32,
    pub salt: [u8; 32],
    /// Offset of the key material, in 512-byte sectors from the header start.
    pub key_material_offset: u32,
    pub stripes: u32,
}

impl Slot {
    /// Whether the slot holds a key.
    pub fn is_active(&self) -> bool {
        self.active == SLOT_ACTIVE
    }
}

/// A parsed and validated LUKS1 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub cipher_name: String,
    pub cipher_mode: String,
    pub hash_spec: String,
    /// Payload offset in 512-byte sectors (0 with a detached header).
    pub payload_offset: u32,
    pub key_bytes: u32,
    pub mk_digest: [u8; 20],
    pub mk_digest_salt: [u8; 32],
    pub mk_digest_iterations: u32,
    pub uuid: String,
    pub slots: Vec<Slot>,
}

/// LUKS magic, shared by LUKS1 and the LUKS2 primary header.
pub const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";

impl Header {
    /// Parse and validate the first [`HEADER_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Header, Luks1Error> {
        let mut r = Reader::new(buf);
        if r.array::<6>("magic")? != MAGIC {
            return Err(Luks1Error::BadMagic);
        }
        let version = r.be_u16("version")?;
        if version != 1 {
            return Err(Luks1Error::BadVersion(version));
        }
        let cipher_name = r.cstr(32, "cipher name")?;
        let cipher_mode = r.cstr(32, "cipher mode")?;
        let hash_spec = r.cstr(32, "hash spec")?;
        let payload_offset = r.be_u32("payload offset")?;
        let key_bytes = r.be_u32("key bytes")?;
        let mk_digest = r.array("master key digest")?;
        let mk_digest_salt = r.array("master key digest salt")?;
        let mk_digest_iterations = r.be_u32("master key digest iterations")?;
        let uuid = r.cstr(40, "uuid")?;
        let mut slots = Vec::with_capacity(NUM_SLOTS);
        for _ in 0..NUM_SLOTS {
            slots.push(Slot {
                active: r.be_u32("key slot active")?,
                iterations: r.be_u32("key slot iterations")?,
                salt: r.array("key slot salt")?,
                key_material_offset: r.be_u32("key material offset")?,
                stripes: r.be_u32("key slot stripes")?,
            });
        }
        let h = Header {
            cipher_name,
            cipher_mode,
            hash_spec,
            payload_offset,
            key_bytes,
            mk_digest,
            mk_digest_salt,
            mk_digest_iterations,
            uuid,
            slots,
        };
        h.validate()?;
        Ok(h)
    }

    /// Bytes of key material a slot occupies on disk: `key_bytes * stripes` rounded up to sectors.
    pub fn material_len(&self, slot: &Slot) -> u64 {
        (u64::from(self.key_bytes) * u64::from(slot.stripes)).div_ceil(512) * 512
    }

    /// Payload offset in bytes.
    pub fn payload_offset_bytes(&self) -> u64 {
        u64::from(self.payload_offset) * 512
    }

    /// The checks cryptsetup makes before trusting a header (`LUKS_check_keyslots` and friends):
    /// key size, every slot's stripes, key material after the header, inside the payload offset
    /// and not overlapping another slot.
    fn validate(&self) -> Result<(), Luks1Error> {
        if self.key_bytes == 0 || self.key_bytes > MAX_KEY_BYTES {
            return Err(Luks1Error::BadKeyBytes(self.key_bytes));
        }
        if self.mk_digest_iterations == 0 {
            return Err(Luks1Error::ZeroDigestIterations);
        }
        let mut areas: Vec<(usize, u64, u64)> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let bad = |why: String| Luks1Error::BadSlot { slot: i, why };
            if s.active != SLOT_ACTIVE && s.active != SLOT_DISABLED {
                return Err(bad(format!("state 0x{:08x} is neither active nor disabled", s.active)));
            }
            if s.stripes == 0 || s.stripes > MAX_STRIPES {
                return Err(bad(format!("{} AF stripes (allowed 1..={MAX_STRIPES})", s.stripes)));
            }
            if s.is_active() && s.iterations == 0 {
                return Err(bad("iteration count 0".into()));
            }
            let start = u64::from(s.key_material_offset) * 512;
            let end = start + self.material_len(s);
            if start < HEADER_LEN as u64 {
                return Err(bad(format!("key material at byte {start} overlaps the header")));
            }
            if self.payload_offset != 0 && end > self.payload_offset_bytes() {
                return Err(bad(format!(
                    "key material ends at byte {end}, past the payload offset {}",
                    self.payload_offset_bytes()
                )));
            }
            if let Some((j, _, _)) = areas.iter().find(|&&(_, a, b)| start < b && a < end) {
                return Err(bad(format!("key material overlaps key slot {j}")));
            }
            areas.push((i, start, end));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A well-formed header as cryptsetup lays it out (aes-xts-plain64, sha256, 512-bit key).
    pub(crate) fn sample() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..6].copy_from_slice(&MAGIC);
        b[6..8].copy_from_slice(&1u16.to_be_bytes());
        b[8..11].copy_from_slice(b"aes");
        b[40..51].copy_from_slice(b"xts-plain64");
        b[72..78].copy_from_slice(b"sha256");
        b[104..108].copy_from_slice(&4096u32.to_be_bytes());
        b[108..112].copy_from_slice(&64u32.to_be_bytes());
        b[164..168].copy_from_slice(&1000u32.to_be_bytes());
        for i in 0..NUM_SLOTS {
            let o = 208 + 48 * i;
            let active = if i == 0 { SLOT_ACTIVE } else { SLOT_DISABLED };
            b[o..o + 4].copy_from_slice(&active.to_be_bytes());
            b[o + 4..o + 8].copy_from_slice(&1000u32.to_be_bytes());
            b[o + 40..o + 44].copy_from_slice(&(8 + 512 * i as u32).to_be_bytes());
            b[o + 44..o + 48].copy_from_slice(&4000u32.to_be_bytes());
        }
        b
    }

    #[test]
    fn parses_sample() {
        let h = Header::parse(&sample()).unwrap();
        assert_eq!(h.cipher_name, "aes");
        assert_eq!(h.cipher_mode, "xts-plain64");
        assert_eq!(h.key_bytes, 64);
        assert!(h.slots[0].is_active() && !h.slots[1].is_active());
        assert_eq!(h.material_len(&h.slots[0]), 256000);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let s = sample();
        for n in 0..HEADER_LEN {
            assert!(Header::parse(&s[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn rejects_overlap_and_payload_damage() {
        let mut s = sample();
        s[208 + 48 + 40..208 + 48 + 44].copy_from_slice(&8u32.to_be_bytes());
        assert!(matches!(Header::parse(&s), Err(Luks1Error::BadSlot { slot: 1, .. })));
        let mut s = sample();
        s[208 + 44..208 + 48].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Header::parse(&s), Err(Luks1Error::BadSlot { slot: 0, .. })));
        let mut s = sample();
        s[108..112].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(Header::parse(&s), Err(Luks1Error::BadKeyBytes(0)));
    }
}
