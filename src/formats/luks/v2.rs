//! LUKS2 on-disk metadata (LUKS2 On-Disk Format Specification): two binary headers, each followed
//! by a JSON area, and the JSON object describing key slots, segments and digests. Pure parsing
//! and validation from bytes; choosing between the two copies (which needs reads) lives in
//! [`super::read_header`].

use crate::codec::{Reader, Truncated};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// Size of the binary header that starts each metadata copy.
pub const BIN_HEADER_LEN: usize = 4096;
/// Allowed `hdr_size` values (binary header + JSON area): 16 KiB to 4 MiB, powers of two.
pub const HDR_SIZES: [u64; 9] =
    [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20];
/// Magic of the secondary header.
pub const MAGIC_SECONDARY: [u8; 6] = *b"SKUL\xba\xbe";
/// Largest AF stripe count accepted (cryptsetup writes 4000).
pub const MAX_STRIPES: u32 = 4096;
/// Largest key size accepted, in bytes.
pub const MAX_KEY_SIZE: u32 = 512;
/// Key slot ids are below this (cryptsetup's `LUKS2_KEYSLOTS_MAX`): it bounds how many slots,
/// each costing a KDF run, a header can make luksfs try.
pub const MAX_KEYSLOTS: u32 = 32;

/// Why LUKS2 metadata is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Luks2Error {
    #[error("LUKS2 header {0}")]
    Truncated(Truncated),
    #[error("bad LUKS2 header magic")]
    BadMagic,
    #[error("LUKS2 header version {0} is not 2")]
    BadVersion(u16),
    #[error("LUKS2 header size {0} is not one of 16 KiB .. 4 MiB")]
    BadHdrSize(u64),
    #[error("LUKS2 header says it is at offset {found}, but it was read at {expected}")]
    BadHdrOffset { found: u64, expected: u64 },
    #[error("unsupported LUKS2 header checksum algorithm '{0}'")]
    BadChecksumAlg(String),
    #[error("LUKS2 header checksum mismatch")]
    ChecksumMismatch,
    #[error("LUKS2 JSON metadata: {0}")]
    Json(String),
    #[error("LUKS2 metadata: {0}")]
    Invalid(String),
}

impl From<Truncated> for Luks2Error {
    fn from(t: Truncated) -> Self {
        Luks2Error::Truncated(t)
    }
}

/// Which of the two metadata copies a binary header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    Primary,
    Secondary,
}

/// The binary part of one LUKS2 header copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinHeader {
    pub copy: Copy,
    pub hdr_size: u64,
    pub seqid: u64,
    pub label: String,
    pub checksum_alg: String,
    pub uuid: String,
    pub subsystem: String,
    pub hdr_offset: u64,
    pub checksum: [u8; 64],
}

impl BinHeader {
    /// Parse the first 4096 bytes of a header copy (magic, version, sizes; no checksum check).
    pub fn parse(buf: &[u8]) -> Result<BinHeader, Luks2Error> {
        let mut r = Reader::new(buf);
        let magic = r.array::<6>("magic")?;
        let copy = match magic {
            m if m == super::v1::MAGIC => Copy::Primary,
            m if m == MAGIC_SECONDARY => Copy::Secondary,
            _ => return Err(Luks2Error::BadMagic),
        };
        let version = r.be_u16("version")?;
        if version != 2 {
            return Err(Luks2Error::BadVersion(version));
        }
        let hdr_size = r.be_u64("hdr_size")?;
        let seqid = r.be_u64("seqid")?;
        let label = r.cstr(48, "label")?;
        let checksum_alg = r.cstr(32, "checksum algorithm")?;
        r.skip(64, "salt")?;
        let uuid = r.cstr(40, "uuid")?;
        let subsystem = r.cstr(48, "subsystem")?;
        let hdr_offset = r.be_u64("hdr_offset")?;
        r.skip(184, "padding")?;
        let checksum = r.array::<64>("checksum")?;
        r.skip(BIN_HEADER_LEN - 512, "padding")?;
        if !HDR_SIZES.contains(&hdr_size) {
            return Err(Luks2Error::BadHdrSize(hdr_size));
        }
        Ok(BinHeader { copy, hdr_size, seqid, label, checksum_alg, uuid, subsystem, hdr_offset, checksum })
    }

    /// Check the copy's checksum over `area` (the `hdr_size` bytes of this copy, read at
    /// `read_at`), then parse its JSON.
    pub fn verify(&self, area: &[u8], read_at: u64) -> Result<Metadata, Luks2Error> {
        if self.hdr_offset != read_at {
            return Err(Luks2Error::BadHdrOffset { found: self.hdr_offset, expected: read_at });
        }
        if area.len() as u64 != self.hdr_size {
            return Err(Luks2Error::Truncated(Truncated {
                what: "metadata area",
                offset: area.len(),
                need: usize::try_from(self.hdr_size).unwrap_or(usize::MAX),
            }));
        }
        if self.checksum_alg != "sha256" {
            return Err(Luks2Error::BadChecksumAlg(self.checksum_alg.clone()));
        }
        let mut h = Sha256::new();
        h.update(&area[..448]);
        h.update([0u8; 64]);
        h.update(&area[512..]);
        if h.finalize()[..] != self.checksum[..32] {
            return Err(Luks2Error::ChecksumMismatch);
        }
        let json = &area[BIN_HEADER_LEN..];
        let end = json.iter().position(|&b| b == 0).unwrap_or(json.len());
        let md = Metadata::parse(&json[..end])?;
        if md.json_size != self.hdr_size - BIN_HEADER_LEN as u64 {
            return Err(Luks2Error::Invalid(format!(
                "config.json_size {} does not match the header size {}",
                md.json_size, self.hdr_size
            )));
        }
        Ok(md)
    }
}

// ---- JSON, as stored (64-bit numbers arrive as strings) ----

fn de_u64_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_u64(&s).map_err(serde::de::Error::custom)
}

fn parse_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a decimal number"));
    }
    s.parse::<u64>().map_err(|_| format!("'{s}' does not fit in 64 bits"))
}

#[derive(Deserialize)]
struct JsonRoot {
    keyslots: BTreeMap<String, JsonKeyslot>,
    segments: BTreeMap<String, JsonSegment>,
    digests: BTreeMap<String, JsonDigest>,
    config: JsonConfig,
    #[serde(default)]
    tokens: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct JsonKeyslot {
    #[serde(rename = "type")]
    kind: String,
    key_size: u32,
    af: Option<JsonAf>,
    area: Option<JsonArea>,
    kdf: Option<JsonKdf>,
    priority: Option<u32>,
}

#[derive(Deserialize)]
struct JsonAf {
    #[serde(rename = "type")]
    kind: String,
    stripes: u32,
    hash: String,
}

#[derive(Deserialize)]
struct JsonArea {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "de_u64_str")]
    offset: u64,
    #[serde(deserialize_with = "de_u64_str")]
    size: u64,
    encryption: Option<String>,
    key_size: Option<u32>,
}

#[derive(Deserialize)]
struct JsonKdf {
    #[serde(rename = "type")]
    kind: String,
    hash: Option<String>,
    iterations: Option<u32>,
    time: Option<u32>,
    memory: Option<u32>,
    cpus: Option<u32>,
    salt: String,
}

#[derive(Deserialize)]
struct JsonSegment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "de_u64_str")]
    offset: u64,
    size: String,
    #[serde(default, deserialize_with = "de_opt_u64_str")]
    iv_tweak: Option<u64>,
    encryption: Option<String>,
    sector_size: Option<u32>,
    integrity: Option<serde_json::Value>,
    #[serde(default)]
    flags: Vec<String>,
}

fn de_opt_u64_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_u64_str(d).map(Some)
}

#[derive(Deserialize)]
struct JsonDigest {
    #[serde(rename = "type")]
    kind: String,
    keyslots: Vec<String>,
    segments: Vec<String>,
    hash: Option<String>,
    iterations: Option<u32>,
    salt: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize)]
struct JsonConfig {
    #[serde(deserialize_with = "de_u64_str")]
    json_size: u64,
    #[serde(deserialize_with = "de_u64_str")]
    keyslots_size: u64,
    #[serde(default)]
    flags: Vec<String>,
    requirements: Option<JsonRequirements>,
}

#[derive(Deserialize)]
struct JsonRequirements {
    #[serde(default)]
    mandatory: Vec<String>,
}

// ---- validated model ----

/// A key slot's KDF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kdf {
    Pbkdf2 { hash: String, iterations: u32, salt: Vec<u8> },
    Argon2 { id: bool, time: u32, memory_kib: u32, lanes: u32, salt: Vec<u8> },
}

/// A LUKS2 key slot (only type `luks2` is usable; others are kept for `inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyslot {
    pub id: u32,
    pub kind: String,
    /// Volume key size this slot unlocks, in bytes.
    pub key_size: u32,
    /// `None` for slot types luksfs does not open.
    pub usable: Option<UsableKeyslot>,
    /// 0 = ignore (only used when named explicitly), 1 = normal, 2 = preferred.
    pub priority: u32,
}

/// The parts of a `luks2` key slot needed to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsableKeyslot {
    pub kdf: Kdf,
    pub af_stripes: u32,
    pub af_hash: String,
    pub area_offset: u64,
    pub area_size: u64,
    pub area_encryption: String,
    pub area_key_size: u32,
}

/// The data segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub id: u32,
    pub kind: String,
    pub offset: u64,
    /// `None` for `"dynamic"` (to the end of the device).
    pub size: Option<u64>,
    pub iv_tweak: u64,
    pub encryption: String,
    pub sector_size: u32,
    pub integrity: bool,
    pub flags: Vec<String>,
}

/// A pbkdf2 digest of the volume key, binding key slots to segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub id: u32,
    pub kind: String,
    pub keyslots: Vec<u32>,
    pub segments: Vec<u32>,
    pub hash: String,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub digest: Vec<u8>,
}

/// Parsed LUKS2 JSON metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub keyslots: Vec<Keyslot>,
    pub segments: Vec<Segment>,
    pub digests: Vec<Digest>,
    pub tokens: Vec<(u32, serde_json::Value)>,
    pub json_size: u64,
    pub keyslots_size: u64,
    pub flags: Vec<String>,
    pub requirements: Vec<String>,
}

fn id(s: &str, what: &str) -> Result<u32, Luks2Error> {
    s.parse::<u32>().map_err(|_| Luks2Error::Invalid(format!("{what} id '{s}' is not a number")))
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, Luks2Error> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Luks2Error::Invalid(format!("{what} is not valid base64")))
}

impl Metadata {
    /// Parse and validate the JSON text of a metadata copy.
    pub fn parse(json: &[u8]) -> Result<Metadata, Luks2Error> {
        let root: JsonRoot = serde_json::from_slice(json).map_err(|e| Luks2Error::Json(e.to_string()))?;
        let mut keyslots = Vec::new();
        for (k, v) in root.keyslots {
            let kid = id(&k, "key slot")?;
            if kid >= MAX_KEYSLOTS {
                return Err(Luks2Error::Invalid(format!("key slot id {kid} is not below {MAX_KEYSLOTS}")));
            }
            let bad = |why: String| Luks2Error::Invalid(format!("key slot {kid}: {why}"));
            if v.key_size == 0 || v.key_size > MAX_KEY_SIZE {
                return Err(bad(format!("key size {} bytes", v.key_size)));
            }
            let usable = if v.kind == "luks2" {
                let (Some(af), Some(area), Some(kdf)) = (v.af, v.area, v.kdf) else {
                    return Err(bad("missing af, area or kdf".into()));
                };
                if af.kind != "luks1" {
                    return Err(bad(format!("unknown AF type '{}'", af.kind)));
                }
                if af.stripes == 0 || af.stripes > MAX_STRIPES {
                    return Err(bad(format!("{} AF stripes", af.stripes)));
                }
                if area.kind != "raw" {
                    return Err(bad(format!("unknown area type '{}'", area.kind)));
                }
                let (Some(enc), Some(aks)) = (area.encryption, area.key_size) else {
                    return Err(bad("area without encryption or key_size".into()));
                };
                if aks == 0 || aks > MAX_KEY_SIZE {
                    return Err(bad(format!("area key size {aks} bytes")));
                }
                let need = u64::from(v.key_size) * u64::from(af.stripes);
                if need > area.size {
                    return Err(bad(format!("{need} bytes of key material do not fit its {}-byte area", area.size)));
                }
                let salt = b64(&kdf.salt, "kdf salt")?;
                let kdf = match kdf.kind.as_str() {
                    "pbkdf2" => match (kdf.hash, kdf.iterations) {
                        (Some(hash), Some(iterations)) if iterations > 0 => Kdf::Pbkdf2 { hash, iterations, salt },
                        _ => return Err(bad("pbkdf2 without hash or iterations".into())),
                    },
                    "argon2i" | "argon2id" => match (kdf.time, kdf.memory, kdf.cpus) {
                        (Some(time), Some(memory_kib), Some(lanes)) => {
                            Kdf::Argon2 { id: kdf.kind == "argon2id", time, memory_kib, lanes, salt }
                        }
                        _ => return Err(bad("argon2 without time, memory or cpus".into())),
                    },
                    other => return Err(bad(format!("unknown KDF '{other}'"))),
                };
                Some(UsableKeyslot {
                    kdf,
                    af_stripes: af.stripes,
                    af_hash: af.hash,
                    area_offset: area.offset,
                    area_size: area.size,
                    area_encryption: enc,
                    area_key_size: aks,
                })
            } else {
                None
            };
            keyslots.push(Keyslot {
                id: kid,
                kind: v.kind,
                key_size: v.key_size,
                usable,
                priority: v.priority.unwrap_or(1),
            });
        }
        let mut segments = Vec::new();
        for (k, v) in root.segments {
            let sid = id(&k, "segment")?;
            let size = if v.size == "dynamic" {
                None
            } else {
                Some(parse_u64(&v.size).map_err(|e| Luks2Error::Invalid(format!("segment {sid} size: {e}")))?)
            };
            segments.push(Segment {
                id: sid,
                kind: v.kind,
                offset: v.offset,
                size,
                iv_tweak: v.iv_tweak.unwrap_or(0),
                encryption: v.encryption.unwrap_or_default(),
                sector_size: v.sector_size.unwrap_or(512),
                integrity: v.integrity.is_some(),
                flags: v.flags,
            });
        }
        let mut digests = Vec::new();
        for (k, v) in root.digests {
            let did = id(&k, "digest")?;
            let keyslots = v.keyslots.iter().map(|s| id(s, "digest key slot")).collect::<Result<_, _>>()?;
            let segments = v.segments.iter().map(|s| id(s, "digest segment")).collect::<Result<_, _>>()?;
            let (hash, iterations, salt, digest) = match (v.hash, v.iterations, v.salt, v.digest) {
                (Some(h), Some(i), Some(s), Some(d)) if v.kind == "pbkdf2" && i > 0 => {
                    (h, i, b64(&s, "digest salt")?, b64(&d, "digest")?)
                }
                _ => (String::new(), 0, Vec::new(), Vec::new()),
            };
            digests.push(Digest { id: did, kind: v.kind, keyslots, segments, hash, iterations, salt, digest });
        }
        let tokens =
            root.tokens.into_iter().map(|(k, v)| Ok((id(&k, "token")?, v))).collect::<Result<_, Luks2Error>>()?;
        Ok(Metadata {
            keyslots,
            segments,
            digests,
            tokens,
            json_size: root.config.json_size,
            keyslots_size: root.config.keyslots_size,
            flags: root.config.flags,
            requirements: root.config.requirements.map(|r| r.mandatory).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE_JSON: &str = r#"{"keyslots":{"1":{"type":"luks2","key_size":64,
        "af":{"type":"luks1","stripes":4000,"hash":"sha256"},
        "area":{"type":"raw","offset":"163840","size":"258048","encryption":"aes-xts-plain64","key_size":32},
        "kdf":{"type":"argon2id","time":4,"memory":32768,"cpus":1,"salt":"AAAA"}}},
        "tokens":{"2":{"type":"x","keyslots":["1"]}},
        "segments":{"0":{"type":"crypt","offset":"2097152","size":"dynamic","iv_tweak":"0",
            "encryption":"aes-xts-plain64","sector_size":4096}},
        "digests":{"1":{"type":"pbkdf2","keyslots":["1"],"segments":["0"],"hash":"sha256","iterations":1000,
            "salt":"AAAA","digest":"AAAA"}},
        "config":{"json_size":"12288","keyslots_size":"2064384"}}"#;

    #[test]
    fn parses_cryptsetup_shape() {
        let m = Metadata::parse(SAMPLE_JSON.as_bytes()).unwrap();
        assert_eq!(m.keyslots.len(), 1);
        let ks = &m.keyslots[0];
        assert_eq!((ks.id, ks.key_size, ks.priority), (1, 64, 1));
        let u = ks.usable.as_ref().unwrap();
        assert_eq!((u.area_offset, u.area_key_size), (163840, 32));
        assert!(matches!(u.kdf, Kdf::Argon2 { id: true, memory_kib: 32768, .. }));
        assert_eq!(m.segments[0].size, None);
        assert_eq!(m.segments[0].sector_size, 4096);
        assert_eq!(m.digests[0].keyslots, vec![1]);
        assert_eq!(m.tokens.len(), 1);
    }

    #[test]
    fn rejects_hostile_numbers() {
        for (from, to) in [
            (r#""offset":"163840""#, r#""offset":"-1""#),
            (r#""stripes":4000"#, r#""stripes":4000000000"#),
            (r#""key_size":64"#, r#""key_size":100000"#),
            (r#""size":"258048""#, r#""size":"1000""#),
            (r#""json_size":"12288""#, r#""json_size":"99999999999999999999""#),
        ] {
            let j = SAMPLE_JSON.replacen(from, to, 1);
            assert!(Metadata::parse(j.as_bytes()).is_err(), "{to}");
        }
        // Found by tests/it/hostile.rs (luks2_more_than_32_keyslots_is_exit_4): any number of
        // key slots was accepted, each one a KDF run at unlock.
        let j = SAMPLE_JSON.replacen(r#"{"keyslots":{"1":"#, r#"{"keyslots":{"32":"#, 1);
        assert!(matches!(Metadata::parse(j.as_bytes()), Err(Luks2Error::Invalid(m)) if m.contains("not below 32")));
        let deep = "[".repeat(100_000);
        assert!(Metadata::parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn bin_header_rejects_bad_sizes() {
        let mut b = vec![0u8; BIN_HEADER_LEN];
        b[..6].copy_from_slice(&super::super::v1::MAGIC);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&16384u64.to_be_bytes());
        assert!(BinHeader::parse(&b).is_ok());
        b[8..16].copy_from_slice(&20000u64.to_be_bytes());
        assert_eq!(BinHeader::parse(&b), Err(Luks2Error::BadHdrSize(20000)));
        assert!(BinHeader::parse(&b[..100]).is_err());
    }
}
