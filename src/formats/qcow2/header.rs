//! qcow2 header (versions 2 and 3) and header extensions (QEMU `docs/interop/qcow2.rst`). Pure
//! parsing and validation from the bytes of the first cluster; no I/O.

use crate::codec::{Reader, Truncated};

/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Smallest and largest cluster_bits QEMU accepts (512 B .. 2 MiB).
pub const MIN_CLUSTER_BITS: u32 = 9;
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Largest L1 table accepted, in bytes (QEMU's `QCOW_MAX_L1_SIZE`: 32 MiB, enough for 2 PiB
/// with 64 KiB clusters).
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest virtual size accepted (QEMU's `QCOW_MAX_VIRTUAL_SIZE`-ish bound: 2^62 would overflow
/// offset math; real images are far smaller).
pub const MAX_VIRTUAL_SIZE: u64 = 1 << 56;
/// Largest refcount table accepted, in bytes (QEMU's `QCOW_MAX_REFTABLE_SIZE`).
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Most internal snapshots accepted (QEMU's `QCOW_MAX_SNAPSHOTS`).
pub const MAX_SNAPSHOTS: u32 = 65536;
/// Size of the fixed part of a snapshot table entry.
const SNAPSHOT_ENTRY_MIN: u64 = 40;
/// Header extension types.
pub const EXT_END: u32 = 0;
pub const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
pub const EXT_FEATURE_TABLE: u32 = 0x6803_F857;
pub const EXT_BITMAPS: u32 = 0x2385_2875;
pub const EXT_CRYPTO: u32 = 0x0537_BE77;
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Incompatible feature bits.
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/// `compression_type` values (header byte 104, v3).
pub const COMPRESSION_DEFLATE: u8 = 0;
pub const COMPRESSION_ZSTD: u8 = 1;
/// Offset of the optional `compression_type` byte in a v3 header.
const COMPRESSION_TYPE_OFFSET: usize = 104;

/// How compressed clusters are compressed (the whole image uses one method).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (RFC 1951, no zlib header): QEMU's "zlib", the default and the only method
    /// of version 2 images.
    Deflate,
    /// A zstd stream (one or more frames).
    Zstd,
}

/// What the `crypt_method` field says about the guest data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// `crypt_method` 0: guest clusters are stored as they are (a plain container).
    Plain,
    /// `crypt_method` 2: LUKS, with the LUKS header in the crypto header extension.
    Luks,
    /// `crypt_method` 1: QEMU's legacy AES-CBC (refused).
    LegacyAes,
    /// Any other value (refused).
    Unknown(u32),
}

/// Why a qcow2 header is unusable. `Refused` variants are well-formed images luksfs will not
/// open by default.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Qcow2Error {
    #[error("qcow2 header {0}")]
    Truncated(Truncated),
    #[error("not a qcow2 image (bad magic)")]
    BadMagic,
    #[error("qcow2 version {0} is not supported (only 2 and 3)")]
    BadVersion(u32),
    #[error("qcow2 cluster_bits {0} out of range 9..=21")]
    BadClusterBits(u32),
    #[error("qcow2 header: {0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    /// A compressed cluster that does not decompress to exactly one cluster.
    #[error("qcow2 compressed cluster ({method}): {what}")]
    Compressed { method: &'static str, what: String },
}

impl From<Truncated> for Qcow2Error {
    fn from(t: Truncated) -> Self {
        Qcow2Error::Truncated(t)
    }
}

impl From<Qcow2Error> for crate::Error {
    fn from(e: Qcow2Error) -> Self {
        match e {
            Qcow2Error::BadVersion(_) | Qcow2Error::Refused(_) => crate::Error::unsupported(e.to_string()),
            _ => crate::Error::corrupt(e.to_string()),
        }
    }
}

/// A header extension luksfs saw (kept for `inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub kind: u32,
    pub len: u32,
}

/// A parsed, validated qcow2 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible_features: u64,
    pub compatible_features: u64,
    pub autoclear_features: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    /// How compressed clusters are compressed (`compression_type`, v3 only).
    pub compression: Compression,
    /// (offset, length) of the embedded LUKS header, from the crypto extension.
    pub crypto_header: Option<(u64, u64)>,
    /// The backing file name (filled in by [`super::read_header`]).
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub data_file: Option<String>,
    pub extensions: Vec<Extension>,
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
    /// Whether L2 entries are 128-bit with subcluster bitmaps.
    pub fn extended_l2(&self) -> bool {
        self.incompatible_features & INCOMPAT_EXTL2 != 0
    }
    /// Bytes per L2 entry.
    pub fn l2_entry_len(&self) -> u64 {
        if self.extended_l2() { 16 } else { 8 }
    }
    /// Guest bytes one L2 table maps.
    pub fn l2_coverage(&self) -> u64 {
        self.cluster_size() / self.l2_entry_len() * self.cluster_size()
    }

    /// Parse the header and its extensions from `buf` (the start of the file, at least one
    /// cluster or the whole file if shorter), validating every field against `file_len`.
    pub fn parse(buf: &[u8], file_len: u64) -> Result<Header, Qcow2Error> {
        let mut r = Reader::new(buf);
        if r.array::<4>("magic")? != MAGIC {
            return Err(Qcow2Error::BadMagic);
        }
        let version = r.be_u32("version")?;
        if version != 2 && version != 3 {
            return Err(Qcow2Error::BadVersion(version));
        }
        let backing_file_offset = r.be_u64("backing_file_offset")?;
        let backing_file_size = r.be_u32("backing_file_size")?;
        let cluster_bits = r.be_u32("cluster_bits")?;
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(Qcow2Error::BadClusterBits(cluster_bits));
        }
        let size = r.be_u64("size")?;
        let crypt_method = r.be_u32("crypt_method")?;
        let l1_size = r.be_u32("l1_size")?;
        let l1_table_offset = r.be_u64("l1_table_offset")?;
        let refcount_table_offset = r.be_u64("refcount_table_offset")?;
        let refcount_table_clusters = r.be_u32("refcount_table_clusters")?;
        let nb_snapshots = r.be_u32("nb_snapshots")?;
        let snapshots_offset = r.be_u64("snapshots_offset")?;
        let (mut incompatible_features, mut compatible_features, mut autoclear_features) = (0, 0, 0);
        let (mut refcount_order, mut header_length) = (4, 72);
        if version == 3 {
            incompatible_features = r.be_u64("incompatible_features")?;
            compatible_features = r.be_u64("compatible_features")?;
            autoclear_features = r.be_u64("autoclear_features")?;
            refcount_order = r.be_u32("refcount_order")?;
            header_length = r.be_u32("header_length")?;
            if header_length < 104 {
                return Err(Qcow2Error::Invalid(format!("header_length {header_length} is below 104")));
            }
        }
        let compression = Self::parse_compression(buf, version, header_length, incompatible_features)?;
        let cluster = 1u64 << cluster_bits;
        if u64::from(header_length) > cluster {
            return Err(Qcow2Error::Invalid(format!("header_length {header_length} exceeds the cluster size")));
        }
        let mut h = Header {
            version,
            backing_file_offset,
            backing_file_size,
            cluster_bits,
            size,
            crypt_method,
            l1_size,
            l1_table_offset,
            refcount_table_offset,
            refcount_table_clusters,
            nb_snapshots,
            snapshots_offset,
            incompatible_features,
            compatible_features,
            autoclear_features,
            refcount_order,
            header_length,
            compression,
            crypto_header: None,
            backing_file: None,
            backing_format: None,
            data_file: None,
            extensions: Vec::new(),
        };
        h.parse_extensions(buf)?;
        h.validate(file_len)?;
        Ok(h)
    }

    /// The `compression_type` byte (present when `header_length` > 104) against incompatible bit
    /// 3, as QEMU checks them: the bit is set if and only if the type is not deflate.
    fn parse_compression(
        buf: &[u8],
        version: u32,
        header_length: u32,
        incompat: u64,
    ) -> Result<Compression, Qcow2Error> {
        let field = if version >= 3 && header_length as usize > COMPRESSION_TYPE_OFFSET {
            let mut r = Reader::new(buf);
            r.skip(COMPRESSION_TYPE_OFFSET, "header")?;
            r.array::<1>("compression_type")?[0]
        } else {
            COMPRESSION_DEFLATE
        };
        let flagged = incompat & INCOMPAT_COMPRESSION != 0;
        match (field, flagged) {
            (COMPRESSION_DEFLATE, false) => Ok(Compression::Deflate),
            (COMPRESSION_DEFLATE, true) => Err(Qcow2Error::Invalid(
                "the compression type feature bit is set but compression_type is 0 (deflate)".into(),
            )),
            (t, false) => {
                Err(Qcow2Error::Invalid(format!("compression_type {t} without the compression type feature bit")))
            }
            (COMPRESSION_ZSTD, true) => Ok(Compression::Zstd),
            (t, true) => Err(Qcow2Error::Refused(format!("unknown qcow2 compression_type {t}"))),
        }
    }

    fn parse_extensions(&mut self, buf: &[u8]) -> Result<(), Qcow2Error> {
        // Extensions live between the header and the end of the first cluster (or the backing
        // file name, which QEMU puts after them).
        let cluster = usize::try_from(self.cluster_size()).unwrap_or(usize::MAX);
        let end = buf.len().min(cluster);
        let start = self.header_length as usize;
        if start > end {
            return Err(Qcow2Error::Truncated(Truncated { what: "header", offset: end, need: start }));
        }
        let mut r = Reader::new(&buf[start..end]);
        loop {
            let kind = r.be_u32("extension type")?;
            let len = r.be_u32("extension length")?;
            if kind == EXT_END {
                break;
            }
            let data = r.take(len as usize, "extension data")?;
            let pad = (8 - len as usize % 8) % 8;
            r.skip(pad.min(r.remaining()), "extension padding")?;
            self.extensions.push(Extension { kind, len });
            match kind {
                EXT_CRYPTO => {
                    let mut d = Reader::new(data);
                    let off = d.be_u64("crypto header offset")?;
                    let length = d.be_u64("crypto header length")?;
                    self.crypto_header = Some((off, length));
                }
                EXT_BACKING_FORMAT => self.backing_format = Some(String::from_utf8_lossy(data).into_owned()),
                EXT_DATA_FILE => self.data_file = Some(String::from_utf8_lossy(data).into_owned()),
                _ => {}
            }
            if self.extensions.len() > 1024 {
                return Err(Qcow2Error::Invalid("more than 1024 header extensions".into()));
            }
        }
        Ok(())
    }

    /// Structural checks: every table inside the file, sizes bounded. Refusals (backing file,
    /// data file, legacy AES, ...) are separate: see [`Header::refusal`].
    fn validate(&self, file_len: u64) -> Result<(), Qcow2Error> {
        let inv = |s: String| Err(Qcow2Error::Invalid(s));
        let cluster = self.cluster_size();
        if self.size > MAX_VIRTUAL_SIZE {
            return inv(format!("virtual size {} is absurd", self.size));
        }
        let needed_l1 = self.size.div_ceil(self.l2_coverage());
        if u64::from(self.l1_size) < needed_l1 {
            return inv(format!("L1 table has {} entries, {} needed for the virtual size", self.l1_size, needed_l1));
        }
        let l1_bytes = u64::from(self.l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return inv(format!("L1 table of {} entries is larger than {} MiB", self.l1_size, MAX_L1_BYTES >> 20));
        }
        if self.l1_size > 0 {
            if !self.l1_table_offset.is_multiple_of(cluster) || self.l1_table_offset == 0 {
                return inv(format!("L1 table offset {} is not cluster-aligned", self.l1_table_offset));
            }
            if self.l1_table_offset.checked_add(l1_bytes).is_none_or(|e| e > file_len) {
                return inv(format!(
                    "L1 table at {} ({} bytes) lies past the end of the file ({file_len})",
                    self.l1_table_offset, l1_bytes
                ));
            }
        }
        if self.crypto_header.is_some() && self.crypt_method == 0 {
            return inv("an unencrypted image (crypt_method 0) has an encryption header extension".into());
        }
        if let Some((off, len)) = self.crypto_header {
            if off % cluster != 0 || off == 0 {
                return inv(format!("encryption header offset {off} is not cluster-aligned"));
            }
            if len < 592 || off.checked_add(len).is_none_or(|e| e > file_len) {
                return inv(format!(
                    "encryption header at {off} ({len} bytes) lies past the end of the file ({file_len} bytes)"
                ));
            }
        }
        // Tables luksfs never reads are checked as QEMU checks them at open (found by
        // tests/it/hostile.rs: a refcount table past the end or over the header was accepted, and
        // data clusters could point into it).
        let rt_bytes = u64::from(self.refcount_table_clusters) * cluster;
        if rt_bytes > MAX_REFTABLE_BYTES {
            return inv(format!("refcount table of {} clusters is too large", self.refcount_table_clusters));
        }
        if self.refcount_table_clusters > 0 || self.refcount_table_offset != 0 {
            let off = self.refcount_table_offset;
            if off == 0 || !off.is_multiple_of(cluster) {
                return inv(format!("refcount table offset {off} is not a cluster after the header"));
            }
            if off.checked_add(rt_bytes).is_none_or(|e| e > file_len) {
                return inv(format!("refcount table at {off} lies past the end of the file ({file_len})"));
            }
        }
        if self.nb_snapshots > MAX_SNAPSHOTS {
            return inv(format!("{} snapshots (at most {MAX_SNAPSHOTS})", self.nb_snapshots));
        }
        if self.nb_snapshots > 0 {
            let off = self.snapshots_offset;
            let need = u64::from(self.nb_snapshots) * SNAPSHOT_ENTRY_MIN;
            if off == 0 || !off.is_multiple_of(cluster) || off.checked_add(need).is_none_or(|e| e > file_len) {
                return inv(format!("snapshot table at {off} is misaligned or past the end of the file ({file_len})"));
            }
        }
        if self.version == 3 && !(0..=6).contains(&self.refcount_order) {
            return inv(format!("refcount_order {} out of range", self.refcount_order));
        }
        Ok(())
    }

    /// How the guest data is stored: plain or encrypted, and with what.
    pub fn encryption(&self) -> Encryption {
        match self.crypt_method {
            0 => Encryption::Plain,
            1 => Encryption::LegacyAes,
            2 => Encryption::Luks,
            m => Encryption::Unknown(m),
        }
    }

    /// Why luksfs refuses to open this (well-formed) image, if it does: backing files, external
    /// data files, unknown incompatible features, the corrupt bit, legacy AES and unknown
    /// encryption methods. Plain (crypt_method 0) and LUKS (2) images pass; tell them apart with
    /// [`Header::encryption`].
    pub fn refusal(&self) -> Option<String> {
        let unknown = self.incompatible_features & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Some(format!("unknown incompatible qcow2 feature bits 0x{unknown:x}"));
        }
        if self.backing_file_offset != 0 {
            let name = self.backing_file.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
            return Some(format!(
                "qcow2 image has a backing file{name}: backing chains are refused (the backing file would be read \
                 with this image's trust; CVE-2024-32498 class)"
            ));
        }
        if self.incompatible_features & INCOMPAT_DATA_FILE != 0 || self.data_file.is_some() {
            return Some("qcow2 image uses an external data file: refused (it can point at any file)".into());
        }
        if self.incompatible_features & INCOMPAT_CORRUPT != 0 {
            return Some("qcow2 image is marked corrupt by QEMU: refused".into());
        }
        match self.encryption() {
            Encryption::Plain | Encryption::Luks => None, // LUKS without its extension: corruption, found by the opener
            Encryption::LegacyAes => {
                Some("qcow2 legacy AES encryption (crypt_method 1) is insecure and not supported".into())
            }
            Encryption::Unknown(m) => Some(format!("unknown qcow2 crypt_method {m}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal v3 header (64 KiB clusters, 1 GiB) with a crypto extension.
    pub(crate) fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 65536];
        b[..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        b[32..36].copy_from_slice(&2u32.to_be_bytes());
        b[36..40].copy_from_slice(&2u32.to_be_bytes());
        b[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b[112..116].copy_from_slice(&EXT_CRYPTO.to_be_bytes());
        b[116..120].copy_from_slice(&16u32.to_be_bytes());
        b[120..128].copy_from_slice(&(1u64 << 16).to_be_bytes());
        b[128..136].copy_from_slice(&(2u64 << 16).to_be_bytes());
        b
    }

    #[test]
    fn parses_sample() {
        let h = Header::parse(&sample(), 1 << 20).unwrap();
        assert_eq!(h.crypto_header, Some((1 << 16, 2 << 16)));
        assert_eq!(h.refusal(), None);
        assert_eq!(h.l2_coverage(), 512 << 20);
    }

    #[test]
    fn rejects_hostile_fields() {
        let mut b = sample();
        b[20..24].copy_from_slice(&30u32.to_be_bytes());
        assert_eq!(Header::parse(&b, 1 << 20), Err(Qcow2Error::BadClusterBits(30)));
        let mut b = sample();
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::parse(&b, 1 << 20).is_err());
        let mut b = sample();
        b[128..136].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(Header::parse(&b, 1 << 20).is_err());
        let mut b = sample();
        b[116..120].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        assert!(Header::parse(&b, 1 << 20).is_err());
        for n in 0..140 {
            assert!(Header::parse(&sample()[..n], 1 << 20).is_err(), "len {n}");
        }
    }

    /// Regression (tests/it/hostile.rs `qcow2_tables_past_eof_or_overlapping_the_header_are_exit_4`):
    /// refcount and snapshot tables outside the file or over the header were accepted.
    #[test]
    fn refcount_and_snapshot_tables_are_checked() {
        let with = |off: usize, v: &[u8]| {
            let mut b = sample();
            b[off..off + v.len()].copy_from_slice(v);
            Header::parse(&b, 1 << 20)
        };
        let mut ok = sample();
        ok[48..56].copy_from_slice(&(4u64 << 16).to_be_bytes());
        ok[56..60].copy_from_slice(&1u32.to_be_bytes());
        assert!(Header::parse(&ok, 1 << 20).is_ok());
        assert!(with(48, &(1u64 << 30).to_be_bytes()).is_err(), "refcount table past EOF");
        assert!(with(48, &512u64.to_be_bytes()).is_err(), "refcount table unaligned");
        assert!(with(56, &1u32.to_be_bytes()).is_err(), "refcount table at offset 0");
        assert!(with(56, &u32::MAX.to_be_bytes()).is_err(), "refcount table huge");
        assert!(with(60, &1u32.to_be_bytes()).is_err(), "snapshot table at offset 0");
        assert!(with(60, &u32::MAX.to_be_bytes()).is_err(), "too many snapshots");
    }

    /// `sample()` without encryption: crypt_method 0, no crypto extension.
    fn plain() -> Vec<u8> {
        let mut b = sample();
        b[32..36].copy_from_slice(&0u32.to_be_bytes());
        b[112..136].fill(0);
        b
    }

    #[test]
    fn plain_images_pass_and_say_so() {
        let h = Header::parse(&plain(), 1 << 20).unwrap();
        assert_eq!((h.refusal(), h.encryption(), h.compression), (None, Encryption::Plain, Compression::Deflate));
        assert_eq!(Header::parse(&sample(), 1 << 20).unwrap().encryption(), Encryption::Luks);
        // QEMU: the encryption header extension only comes with LUKS
        let mut b = sample();
        b[32..36].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(Header::parse(&b, 1 << 20), Err(Qcow2Error::Invalid(_))));
    }

    #[test]
    fn compression_type_and_its_feature_bit() {
        let with = |bit: bool, t: u8| {
            let mut b = plain();
            b[79] = if bit { INCOMPAT_COMPRESSION as u8 } else { 0 };
            b[104] = t;
            Header::parse(&b, 1 << 20)
        };
        assert_eq!(with(true, COMPRESSION_ZSTD).unwrap().compression, Compression::Zstd);
        assert_eq!(with(false, COMPRESSION_DEFLATE).unwrap().compression, Compression::Deflate);
        assert!(matches!(with(true, COMPRESSION_DEFLATE), Err(Qcow2Error::Invalid(_))), "bit without a type");
        assert!(matches!(with(false, COMPRESSION_ZSTD), Err(Qcow2Error::Invalid(_))), "type without the bit");
        assert!(matches!(with(true, 7), Err(Qcow2Error::Refused(_))), "unknown type");
        // header_length 104: the field is absent, so deflate whatever byte 104 holds
        let mut b = plain();
        b[100..104].copy_from_slice(&104u32.to_be_bytes());
        b[104] = COMPRESSION_ZSTD;
        assert_eq!(Header::parse(&b, 1 << 20).unwrap().compression, Compression::Deflate);
        // version 2 has no such field
        let mut b = plain();
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        b[72..112].fill(0);
        b[104] = COMPRESSION_ZSTD;
        assert_eq!(Header::parse(&b, 1 << 20).unwrap().compression, Compression::Deflate);
    }

    #[test]
    fn refuses_backing_and_legacy_aes() {
        let mut b = sample();
        b[8..16].copy_from_slice(&200u64.to_be_bytes());
        assert!(Header::parse(&b, 1 << 20).unwrap().refusal().unwrap().contains("backing file"));
        let mut b = sample();
        b[32..36].copy_from_slice(&1u32.to_be_bytes());
        assert!(Header::parse(&b, 1 << 20).unwrap().refusal().unwrap().contains("legacy AES"));
    }
}
