//! LUKS2 on-disk metadata (LUKS2 On-Disk Format Specification): two binary headers, each followed
//! by a JSON area, and the JSON object describing key slots, segments and digests. Pure parsing
//! from bytes: the binary header's sanity checks and checksum, then the JSON judged by
//! [`super::rules`] (cryptsetup's validity rules) and turned into [`Metadata`]. Choosing between
//! the two copies (which needs reads) lives in [`super::read_header`].
//!
//! A header the rules accept is valid even when some of its key slots cannot be used (an unknown
//! KDF such as the pre-release name `argon2`, a key size luksfs does not take, a slot type other
//! than `luks2`): such a slot carries the reason in [`Keyslot::unusable`] and the others stay
//! usable, as in cryptsetup.

use super::rules::{self, Rule};
use crate::codec::{Reader, Truncated};
use crate::crypto::HashAlg;
use base64::Engine;
use serde_json::{Map, Value};

/// Size of the binary header that starts each metadata copy.
pub const BIN_HEADER_LEN: usize = 4096;
/// Allowed `hdr_size` values (binary header + JSON area): 16 KiB to 4 MiB, powers of two; the
/// secondary copy is looked for at each of them when the primary is unreadable.
pub const HDR_SIZES: [u64; 9] = rules::METADATA_SIZES;
/// Magic of the secondary header.
pub const MAGIC_SECONDARY: [u8; 6] = *b"SKUL\xba\xbe";
/// Largest AF stripe count a usable key slot may have (cryptsetup writes 4000).
pub const MAX_STRIPES: u32 = 4096;
/// Largest key size a usable key slot may have, in bytes.
pub const MAX_KEY_SIZE: u32 = 512;
/// Key slot ids are below this (cryptsetup's `LUKS2_KEYSLOTS_MAX`; it never opens others): it
/// bounds how many slots, each costing a KDF run, a header can make luksfs try.
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
    #[error("LUKS2 header size {0} is not within 16 KiB .. 4 MiB")]
    BadHdrSize(u64),
    #[error("LUKS2 header says it is at offset {found}, but it was read at {expected}")]
    BadHdrOffset { found: u64, expected: u64 },
    #[error("LUKS2 secondary header at offset {offset} says its header size is {hdr_size}")]
    SecondaryOffset { offset: u64, hdr_size: u64 },
    #[error("unsupported LUKS2 header checksum algorithm '{0}'")]
    BadChecksumAlg(String),
    #[error("LUKS2 header checksum mismatch")]
    ChecksumMismatch,
    #[error("LUKS2 metadata breaks rule '{rule}': {1}", rule = .0.name())]
    Rule(Rule, String),
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
    /// Parse the first 4096 bytes of a header copy: magic, version, and `hdr_size` within
    /// 16 KiB .. 4 MiB (whether it is one of the allowed sizes is a rule of the JSON's
    /// `config.json_size`, which must match it). No checksum check.
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
        if !(HDR_SIZES[0]..=HDR_SIZES[HDR_SIZES.len() - 1]).contains(&hdr_size) {
            return Err(Luks2Error::BadHdrSize(hdr_size));
        }
        Ok(BinHeader { copy, hdr_size, seqid, label, checksum_alg, uuid, subsystem, hdr_offset, checksum })
    }

    /// The checks cryptsetup makes before reading the JSON area of a copy read at `read_at`:
    /// the copy says it is there, and a secondary copy sits at its own `hdr_size`.
    pub fn check_place(&self, read_at: u64) -> Result<(), Luks2Error> {
        if self.hdr_offset != read_at {
            return Err(Luks2Error::BadHdrOffset { found: self.hdr_offset, expected: read_at });
        }
        if self.copy == Copy::Secondary && read_at != self.hdr_size {
            return Err(Luks2Error::SecondaryOffset { offset: read_at, hdr_size: self.hdr_size });
        }
        Ok(())
    }

    /// Check the copy's checksum over `area` (the `hdr_size` bytes of this copy).
    pub fn check_checksum(&self, area: &[u8]) -> Result<(), Luks2Error> {
        if area.len() as u64 != self.hdr_size || area.len() < BIN_HEADER_LEN {
            return Err(Luks2Error::Truncated(Truncated {
                what: "metadata area",
                offset: area.len(),
                need: usize::try_from(self.hdr_size).unwrap_or(usize::MAX),
            }));
        }
        let alg = HashAlg::from_name(&self.checksum_alg)
            .map_err(|_| Luks2Error::BadChecksumAlg(self.checksum_alg.clone()))?;
        let sum = alg.digest(&[&area[..448], &[0u8; 64], &area[512..]]);
        if sum[..] != self.checksum[..sum.len()] {
            return Err(Luks2Error::ChecksumMismatch);
        }
        Ok(())
    }

    /// Check place and checksum of `area` (read at `read_at`), then parse and validate its JSON.
    pub fn verify(&self, area: &[u8], read_at: u64) -> Result<Metadata, Luks2Error> {
        self.check_place(read_at)?;
        self.check_checksum(area)?;
        Metadata::from_area(&area[BIN_HEADER_LEN..])
    }
}

// ---- validated model ----

/// A key slot's KDF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kdf {
    Pbkdf2 { hash: String, iterations: u32, salt: Vec<u8> },
    Argon2 { id: bool, time: u32, memory_kib: u32, lanes: u32, salt: Vec<u8> },
}

/// Why a key slot of a valid header cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotProblem {
    /// The slot's parameters are damaged (`true`) or valid but not implemented (`false`).
    pub damaged: bool,
    pub reason: String,
}

/// A LUKS2 key slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyslot {
    pub id: u32,
    pub kind: String,
    /// Volume key size this slot unlocks, in bytes, as stored.
    pub key_size: u32,
    /// The KDF type as stored (`argon2id`, `pbkdf2`, ...), when the slot has one.
    pub kdf_kind: Option<String>,
    /// What opening the slot needs; `None` when it cannot be used (see `unusable`).
    pub usable: Option<UsableKeyslot>,
    /// Why the slot cannot be used; `None` when it can.
    pub unusable: Option<SlotProblem>,
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

/// A segment.
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

/// Parsed and validated LUKS2 JSON metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub keyslots: Vec<Keyslot>,
    pub segments: Vec<Segment>,
    pub digests: Vec<Digest>,
    pub tokens: Vec<(u32, Value)>,
    pub json_size: u64,
    pub keyslots_size: u64,
    pub flags: Vec<String>,
    pub requirements: Vec<String>,
}

/// An id that cannot name anything luksfs uses (keys are validated to be decimal; larger than
/// 32 bits cannot occur in a valid header's segments and never names a usable key slot).
fn id(s: &str) -> u32 {
    s.parse().unwrap_or(u32::MAX)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A 32-bit unsigned member, if it is one.
fn u32_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

fn u64_str(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_str).and_then(rules::strtoull)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl Metadata {
    /// Parse and validate the JSON area of a metadata copy (everything after the binary
    /// header): the framing rules, then the JSON rules with the area's size.
    pub fn from_area(area: &[u8]) -> Result<Metadata, Luks2Error> {
        let root = rules::parse_area(area)?;
        Self::from_root(root, area.len() as u64)
    }

    /// Parse and validate JSON text alone (no area framing), taking the area size from its own
    /// `config.json_size`.
    pub fn parse(json: &[u8]) -> Result<Metadata, Luks2Error> {
        let root = match serde_json::from_slice::<Value>(json) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(Luks2Error::Rule(Rule::JsonSyntax, "the top-level JSON value is not an object".into()));
            }
            Err(e) => return Err(Luks2Error::Rule(Rule::JsonSyntax, e.to_string())),
        };
        let size = root.get("config").map_or(0, |c| u64_str(c, "json_size").unwrap_or(0));
        Self::from_root(root, size)
    }

    fn from_root(mut root: Map<String, Value>, json_area_size: u64) -> Result<Metadata, Luks2Error> {
        // cryptsetup drops stale KDF parameters (left by versions < 2.0.3) before judging again;
        // doing it first gives the same verdict.
        rules::repair(&mut root);
        rules::validate(&root, json_area_size)?;
        Ok(Self::build(&root))
    }

    /// The model of metadata that passed [`rules::validate`].
    fn build(root: &Map<String, Value>) -> Metadata {
        let empty = Map::new();
        let section = |k: &str| root.get(k).and_then(Value::as_object).unwrap_or(&empty);
        let keyslots = section("keyslots").iter().map(|(k, v)| keyslot(k, v)).collect();
        let segments = section("segments")
            .iter()
            .map(|(k, v)| {
                let crypt = v.get("type").and_then(Value::as_str) == Some("crypt");
                Segment {
                    id: id(k),
                    kind: str_of(v, "type").unwrap_or_default(),
                    offset: u64_str(v, "offset").unwrap_or(0),
                    size: match v.get("size").and_then(Value::as_str) {
                        Some("dynamic") | None => None,
                        Some(s) => rules::strtoull(s),
                    },
                    iv_tweak: if crypt { u64_str(v, "iv_tweak").unwrap_or(0) } else { 0 },
                    encryption: str_of(v, "encryption").unwrap_or_default(),
                    sector_size: if crypt { u32_of(v, "sector_size").unwrap_or(512) } else { 512 },
                    integrity: v.get("integrity").is_some(),
                    flags: strings(v.get("flags")),
                }
            })
            .collect();
        let digests = section("digests")
            .iter()
            .map(|(k, v)| {
                let refs = |key: &str| strings(v.get(key)).iter().map(|s| id(s)).collect();
                let kind = str_of(v, "type").unwrap_or_default();
                let fields = (str_of(v, "hash"), u32_of(v, "iterations"), str_of(v, "salt"), str_of(v, "digest"));
                let (hash, iterations, salt, digest) = match fields {
                    (Some(h), Some(i), Some(s), Some(d)) if kind == "pbkdf2" && i > 0 => {
                        (h, i, b64(&s).unwrap_or_default(), b64(&d).unwrap_or_default())
                    }
                    _ => (String::new(), 0, Vec::new(), Vec::new()),
                };
                Digest {
                    id: id(k),
                    kind,
                    keyslots: refs("keyslots"),
                    segments: refs("segments"),
                    hash,
                    iterations,
                    salt,
                    digest,
                }
            })
            .collect();
        let tokens = section("tokens").iter().map(|(k, v)| (id(k), v.clone())).collect();
        let config = root.get("config").cloned().unwrap_or(Value::Null);
        Metadata {
            keyslots,
            segments,
            digests,
            tokens,
            json_size: u64_str(&config, "json_size").unwrap_or(0),
            keyslots_size: u64_str(&config, "keyslots_size").unwrap_or(0),
            flags: strings(config.get("flags")),
            requirements: strings(config.get("requirements").and_then(|r| r.get("mandatory"))),
        }
    }
}

/// One key slot of a validated header, usable or with the reason it is not.
fn keyslot(k: &str, v: &Value) -> Keyslot {
    let kind = str_of(v, "type").unwrap_or_default();
    let key_size = u32_of(v, "key_size").unwrap_or(0);
    let kdf_kind = v.get("kdf").and_then(|k| str_of(k, "type"));
    let priority = match v.get("priority").and_then(Value::as_u64) {
        Some(p @ 0..=2) => p as u32,
        _ => 1,
    };
    let canonical = k.parse::<u32>().ok().filter(|n| n.to_string() == k && *n < MAX_KEYSLOTS);
    let plan = match canonical {
        None => Err(SlotProblem {
            damaged: true,
            reason: format!(
                "key slot '{k}' is not one of 0..{} in plain form (cryptsetup never opens it)",
                MAX_KEYSLOTS - 1
            ),
        }),
        Some(_) if kind != "luks2" => Err(SlotProblem {
            damaged: false,
            reason: format!("key slot type '{kind}' is not one luksfs opens (only luks2)"),
        }),
        Some(_) => usable(v, key_size),
    };
    let (usable, unusable) = match plan {
        Ok(u) => (Some(u), None),
        Err(p) => (None, Some(p)),
    };
    Keyslot { id: canonical.unwrap_or(u32::MAX), kind, key_size, kdf_kind, usable, unusable, priority }
}

/// What opening a `luks2` key slot needs, or why it cannot be opened.
fn usable(v: &Value, key_size: u32) -> Result<UsableKeyslot, SlotProblem> {
    let damaged = |reason: String| SlotProblem { damaged: true, reason };
    let null = Value::Null;
    let (kdf, af, area) = (v.get("kdf").unwrap_or(&null), v.get("af").unwrap_or(&null), v.get("area").unwrap_or(&null));
    if key_size == 0 || key_size > MAX_KEY_SIZE {
        return Err(damaged(format!("key size {key_size} bytes (allowed 1..={MAX_KEY_SIZE})")));
    }
    let salt = || {
        b64(kdf.get("salt").and_then(Value::as_str).unwrap_or(""))
            .ok_or_else(|| damaged("the kdf salt is not base64".into()))
    };
    let kdf = match kdf.get("type").and_then(Value::as_str).unwrap_or("") {
        "pbkdf2" => match (str_of(kdf, "hash"), u32_of(kdf, "iterations")) {
            (Some(hash), Some(iterations)) if iterations > 0 => Kdf::Pbkdf2 { hash, iterations, salt: salt()? },
            _ => return Err(damaged(format!("pbkdf2 iterations {:?} are not 1..=2^32-1", kdf.get("iterations")))),
        },
        t @ ("argon2i" | "argon2id") => match (u32_of(kdf, "time"), u32_of(kdf, "memory"), u32_of(kdf, "cpus")) {
            (Some(time), Some(memory_kib), Some(lanes)) if time > 0 && memory_kib > 0 && lanes > 0 => {
                Kdf::Argon2 { id: t == "argon2id", time, memory_kib, lanes, salt: salt()? }
            }
            _ => return Err(damaged(format!("{t} time, memory or cpus out of 1..=2^32-1"))),
        },
        other => {
            return Err(SlotProblem {
                damaged: false,
                reason: format!("unknown KDF type '{other}' (luksfs knows pbkdf2, argon2i, argon2id)"),
            });
        }
    };
    let stripes = u32_of(af, "stripes").unwrap_or(0);
    if stripes == 0 || stripes > MAX_STRIPES {
        return Err(damaged(format!("{stripes} AF stripes (allowed 1..={MAX_STRIPES})")));
    }
    let area_key_size = u32_of(area, "key_size").unwrap_or(0);
    if area_key_size == 0 || area_key_size > MAX_KEY_SIZE {
        return Err(damaged(format!("area key size {area_key_size} bytes (allowed 1..={MAX_KEY_SIZE})")));
    }
    let (area_offset, area_size) = (u64_str(area, "offset").unwrap_or(0), u64_str(area, "size").unwrap_or(0));
    let need = u64::from(key_size) * u64::from(stripes);
    if need > area_size {
        return Err(damaged(format!("{need} bytes of key material do not fit its {area_size}-byte area")));
    }
    Ok(UsableKeyslot {
        kdf,
        af_stripes: stripes,
        af_hash: str_of(af, "hash").unwrap_or_default(),
        area_offset,
        area_size,
        area_encryption: str_of(area, "encryption").unwrap_or_default(),
        area_key_size,
    })
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

    fn edited(from: &str, to: &str) -> Result<Metadata, Luks2Error> {
        let j = SAMPLE_JSON.replacen(from, to, 1);
        assert_ne!(j, SAMPLE_JSON, "{from}");
        Metadata::parse(j.as_bytes())
    }

    #[test]
    fn rejects_what_cryptsetup_rejects() {
        for (from, to, rule) in [
            (r#""offset":"163840""#, r#""offset":"-1""#, Rule::KeyslotArea),
            (r#""offset":"163840""#, r#""offset":"16384""#, Rule::KeyslotArea),
            (r#""json_size":"12288""#, r#""json_size":"99999999999999999999""#, Rule::Config),
            (r#""keyslots_size":"2064384""#, r#""keyslots_size":"2064383""#, Rule::Config),
            (r#""iv_tweak":"0","#, "", Rule::CryptSegment),
            (r#""keyslots":["1"],"segments""#, r#""keyslots":[],"segments""#, Rule::Luks2Keyslot),
            (r#""keyslots":["1"]}}"#, r#""keyslots":["7"]}}"#, Rule::Token),
            (r#""type":"luks1""#, r#""type":"luks3""#, Rule::Luks2Keyslot),
        ] {
            assert!(
                matches!(edited(from, to), Err(Luks2Error::Rule(r, _)) if r == rule),
                "{to}: {:?}",
                edited(from, to)
            );
        }
        let deep = "[".repeat(100_000);
        assert!(Metadata::parse(deep.as_bytes()).is_err());
    }

    /// Values cryptsetup accepts in the header but cannot use make only that key slot unusable.
    #[test]
    fn odd_key_slots_are_unusable_not_fatal() {
        for (from, to, damaged) in [
            (r#""stripes":4000"#, r#""stripes":4000000000"#, true),
            (r#""key_size":64"#, r#""key_size":100000"#, true),
            (r#""size":"258048""#, r#""size":"1000""#, true),
            (r#""type":"argon2id""#, r#""type":"argon2""#, false),
        ] {
            let m = edited(from, to).unwrap();
            let p = m.keyslots[0].unusable.as_ref().expect(to);
            assert_eq!(p.damaged, damaged, "{to}: {}", p.reason);
            assert!(m.keyslots[0].usable.is_none());
        }
        // Found by tests/it/hostile.rs (luks2_more_than_32_keyslots_is_exit_4): any number of
        // key slots was tried, each one a KDF run at unlock. cryptsetup never opens ids >= 32.
        let m = edited(r#"{"keyslots":{"1":"#, r#"{"keyslots":{"32":"#).map(|_| ());
        assert!(m.is_err(), "slot 32 has no digest");
        let j =
            SAMPLE_JSON.replacen(r#"{"keyslots":{"1":"#, r#"{"keyslots":{"32":"#, 1).replace(r#"["1"]"#, r#"["32"]"#);
        let m = Metadata::parse(j.as_bytes()).unwrap();
        assert!(m.keyslots[0].unusable.as_ref().is_some_and(|p| p.reason.contains("0..31")));
    }

    #[test]
    fn bin_header_rejects_bad_sizes() {
        let mut b = vec![0u8; BIN_HEADER_LEN];
        b[..6].copy_from_slice(&super::super::v1::MAGIC);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&16384u64.to_be_bytes());
        assert!(BinHeader::parse(&b).is_ok());
        b[8..16].copy_from_slice(&(8u64 << 20).to_be_bytes());
        assert_eq!(BinHeader::parse(&b), Err(Luks2Error::BadHdrSize(8 << 20)));
        assert!(BinHeader::parse(&b[..100]).is_err());
    }
}
