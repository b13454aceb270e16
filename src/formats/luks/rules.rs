//! The validity rules of LUKS2 metadata, as cryptsetup 2.6.1 applies them when it loads a header
//! (`lib/luks2/luks2_json_metadata.c`, `luks2_keyslot.c`, `luks2_keyslot_luks2.c`,
//! `luks2_disk_metadata.c`): the JSON area's framing, the sections and their cross-references,
//! key-slot areas, segments and the config section. A header these rules refuse does not open
//! with cryptsetup either, so luksfs calls it damaged; one they accept is valid, even when some of
//! its key slots cannot be used (see [`super::v2::Metadata`]).
//!
//! Pure functions over the JSON area's bytes and the parsed [`Value`]; each failure names its
//! [`Rule`] and the offending value.

use super::v2::Luks2Error;
use serde_json::{Map, Value};

/// Largest `keyslots_size` cryptsetup accepts (128 MiB).
pub const MAX_KEYSLOTS_SIZE: u64 = 128 << 20;
/// Allowed metadata sizes (binary header + JSON area).
pub const METADATA_SIZES: [u64; 9] =
    [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20];
/// Size of the binary header before the JSON area.
const BIN_LEN: u64 = 4096;

/// A rule of LUKS2 metadata validity; each error names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The JSON area must start with `{`.
    OpeningChar,
    /// The JSON text must be followed by a NUL inside the area.
    MissingNul,
    /// Only NUL bytes may follow the JSON text.
    DataAfterJson,
    /// The JSON must parse, and be an object.
    JsonSyntax,
    /// The top-level sections must be present with their types.
    Section,
    /// `config.requirements` must be an object with an array of strings.
    Requirements,
    /// Tokens: numbered keys, a type, and key slots that exist.
    Token,
    /// Digests: numbered keys, a type, and key slots and segments that exist.
    Digest,
    /// Segments: numbered keys, type/offset/size, alignment, flags, backups, no overlap.
    Segment,
    /// Crypt segments: `iv_tweak`, `encryption`, `sector_size`, and a digest.
    CryptSegment,
    /// Key slots: numbered keys, a type, a 32-bit `key_size`.
    Keyslot,
    /// `config`: `json_size` and `keyslots_size` allowed and consistent with the data offset.
    Config,
    /// Key-slot areas: after both metadata copies, inside `keyslots_size`, no overflow, no overlap.
    KeyslotArea,
    /// `config.json_size` matches the binary header, and the JSON fits in it.
    JsonSize,
    /// A `luks2` key slot: kdf/af/area objects with the fields of their types, one digest.
    Luks2Keyslot,
    /// Reencryption key slots and requirement flags must match.
    Reencrypt,
}

impl Rule {
    /// Short name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Rule::OpeningChar => "json-opening-char",
            Rule::MissingNul => "json-terminating-nul",
            Rule::DataAfterJson => "json-trailing-data",
            Rule::JsonSyntax => "json-syntax",
            Rule::Section => "sections",
            Rule::Requirements => "requirements",
            Rule::Token => "tokens",
            Rule::Digest => "digests",
            Rule::Segment => "segments",
            Rule::CryptSegment => "crypt-segment",
            Rule::Keyslot => "keyslots",
            Rule::Config => "config",
            Rule::KeyslotArea => "keyslot-areas",
            Rule::JsonSize => "json-size",
            Rule::Luks2Keyslot => "luks2-keyslot",
            Rule::Reencrypt => "reencryption",
        }
    }
}

type R<T = ()> = Result<T, Luks2Error>;

fn fail<T>(rule: Rule, why: impl Into<String>) -> R<T> {
    Err(Luks2Error::Rule(rule, why.into()))
}

/// Split the JSON area into its text and check the framing: `{` first, a NUL after the JSON
/// value, and nothing but NULs after that. Returns the parsed top-level object.
pub fn parse_area(area: &[u8]) -> R<Map<String, Value>> {
    if area.first() != Some(&b'{') {
        let c = area.first().copied().unwrap_or(0);
        return fail(Rule::OpeningChar, format!("the JSON area starts with byte 0x{c:02x}, not '{{'"));
    }
    // Parse exactly one value from the start; its end is where the NUL must follow.
    let mut stream = serde_json::Deserializer::from_slice(area).into_iter::<Value>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return fail(Rule::JsonSyntax, e.to_string()),
        None => return fail(Rule::JsonSyntax, "empty JSON area"),
    };
    let end = stream.byte_offset();
    if end >= area.len() {
        return fail(Rule::MissingNul, format!("the JSON text fills the whole {}-byte area", area.len()));
    }
    if let Some(i) = area[end..].iter().position(|&b| b != 0) {
        return fail(
            Rule::DataAfterJson,
            format!("byte 0x{:02x} at offset {} after the JSON text (which ends at {end})", area[end + i], end + i),
        );
    }
    if depth(&value) > MAX_DEPTH {
        return fail(Rule::JsonSyntax, format!("the JSON nests deeper than {MAX_DEPTH} levels"));
    }
    match value {
        Value::Object(m) => Ok(m),
        _ => fail(Rule::JsonSyntax, "the top-level JSON value is not an object"),
    }
}

/// Nesting limit of cryptsetup's JSON parser (json-c's default tokener depth, 32); counted here
/// as containers including the top-level object (the exact boundary is not checked against
/// json-c; real headers nest 4 deep).
const MAX_DEPTH: usize = 32;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// cryptsetup's `strtoull(s, &end, 10)` with `*end == 0` and no `ERANGE`: leading white space
/// and a sign are allowed (a minus negates modulo 2^64).
pub fn strtoull(s: &str) -> Option<u64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// All characters decimal digits (cryptsetup's `numbered`; the empty string passes).
pub fn numbered(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// A non-empty string member.
fn string<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An object member.
fn object<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_object)
}

/// An array member.
fn array<'a>(obj: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    obj.get(key).and_then(Value::as_array)
}

/// An integer member (a JSON number without fraction or exponent).
fn int(obj: &Value, key: &str) -> Option<i128> {
    let n = obj.get(key)?.as_number()?;
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn section<'a>(root: &'a Map<String, Value>, key: &str) -> R<&'a Map<String, Value>> {
    match root.get(key).and_then(Value::as_object) {
        Some(m) => Ok(m),
        None => fail(Rule::Section, format!("missing or non-object '{key}' section")),
    }
}

/// Is `s` a requirement flag naming online reencryption (`online-reencrypt[-vN]`)?
fn reencrypt_flag(s: &str) -> bool {
    s == "online-reencrypt"
        || s.strip_prefix("online-reencrypt-v").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// Drop KDF parameters left behind by an old cryptsetup (< 2.0.3) when a key slot changed its KDF
/// type, as cryptsetup does in memory before validating again.
pub fn repair(root: &mut Map<String, Value>) {
    let Some(Value::Object(slots)) = root.get_mut("keyslots") else { return };
    for slot in slots.values_mut() {
        if slot.get("type").and_then(Value::as_str) != Some("luks2") {
            continue;
        }
        let Some(Value::Object(kdf)) = slot.get_mut("kdf") else { continue };
        let keep: &[&str] = match kdf.get("type").and_then(Value::as_str) {
            Some("pbkdf2") => &["type", "salt", "hash", "iterations"],
            Some("argon2i" | "argon2id") => &["type", "salt", "time", "memory", "cpus"],
            _ => continue,
        };
        kdf.retain(|k, _| keep.contains(&k.as_str()));
    }
}

/// Check the parsed metadata against every rule; `json_area_size` is the binary header's
/// `hdr_size` minus the binary header.
pub fn validate(root: &Map<String, Value>, json_area_size: u64) -> R {
    requirements(root)?;
    tokens(root)?;
    digests(root)?;
    segments(root)?;
    keyslots(root)?;
    let (metadata_size, keyslots_size) = config(root)?;
    areas(root, metadata_size, keyslots_size)?;
    json_size(root, json_area_size)?;
    keyslot_types(root)
}

fn mandatory(root: &Map<String, Value>) -> Vec<&str> {
    root.get("config")
        .and_then(|c| c.get("requirements"))
        .and_then(|r| r.get("mandatory"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn requirements(root: &Map<String, Value>) -> R {
    let config = section(root, "config")?;
    let Some(req) = config.get("requirements") else { return Ok(()) };
    let Some(req) = req.as_object() else { return fail(Rule::Requirements, "config.requirements is not an object") };
    let Some(mandatory) = req.get("mandatory") else { return Ok(()) };
    let Some(mandatory) = mandatory.as_array() else {
        return fail(Rule::Requirements, "config.requirements.mandatory is not an array");
    };
    let mut online = 0;
    for m in mandatory {
        let Some(s) = m.as_str() else { return fail(Rule::Requirements, format!("requirement {m} is not a string")) };
        online += usize::from(reencrypt_flag(s));
    }
    if online > 1 {
        return fail(Rule::Requirements, "more than one online-reencryption requirement flag");
    }
    Ok(())
}

/// Every element of `refs` a string naming an object member of `target`.
fn refs_exist(refs: &[Value], target: Option<&Map<String, Value>>, rule: Rule, what: &str, owner: &str) -> R {
    for r in refs {
        let Some(name) = r.as_str() else {
            return fail(rule, format!("{owner}: {what} reference {r} is not a string"));
        };
        if !target.and_then(|t| t.get(name)).is_some_and(Value::is_object) {
            return fail(rule, format!("{owner} names {what} {name}, which does not exist"));
        }
    }
    Ok(())
}

fn tokens(root: &Map<String, Value>) -> R {
    let tokens = section(root, "tokens")?;
    let keyslots = root.get("keyslots").and_then(Value::as_object);
    if !root.contains_key("keyslots") {
        return fail(Rule::Section, "missing 'keyslots' section");
    }
    for (k, t) in tokens {
        let owner = format!("token {k}");
        if !numbered(k) {
            return fail(Rule::Token, format!("token key '{k}' is not a number"));
        }
        if string(t, "type").is_none() {
            return fail(Rule::Token, format!("{owner} has no type"));
        }
        let Some(refs) = array(t, "keyslots") else {
            return fail(Rule::Token, format!("{owner} has no keyslots array"));
        };
        refs_exist(refs, keyslots, Rule::Token, "key slot", &owner)?;
    }
    Ok(())
}

fn digests(root: &Map<String, Value>) -> R {
    let digests = section(root, "digests")?;
    let keyslots = section(root, "keyslots")?;
    let segments = section(root, "segments")?;
    for (k, d) in digests {
        let owner = format!("digest {k}");
        if !numbered(k) {
            return fail(Rule::Digest, format!("digest key '{k}' is not a number"));
        }
        if string(d, "type").is_none() {
            return fail(Rule::Digest, format!("{owner} has no type"));
        }
        let (Some(ks), Some(ss)) = (array(d, "keyslots"), array(d, "segments")) else {
            return fail(Rule::Digest, format!("{owner} lacks its keyslots or segments array"));
        };
        refs_exist(ks, Some(keyslots), Rule::Digest, "key slot", &owner)?;
        refs_exist(ss, Some(segments), Rule::Digest, "segment", &owner)?;
    }
    Ok(())
}

fn is_backup(seg: &Value) -> bool {
    array(seg, "flags").is_some_and(|f| f.iter().any(|x| x.as_str().is_some_and(|s| s.starts_with("backup-"))))
}

/// A segment's offset (already validated), or 0.
fn seg_u64(seg: &Value, key: &str) -> u64 {
    seg.get(key).and_then(Value::as_str).and_then(strtoull).unwrap_or(0)
}

fn segments(root: &Map<String, Value>) -> R {
    let segments = section(root, "segments")?;
    if segments.is_empty() {
        return fail(Rule::Segment, "the segments section is empty");
    }
    let digests = root.get("digests").and_then(Value::as_object);
    let Some(digests) = digests else { return fail(Rule::Section, "missing 'digests' section") };
    let mut first_backup: Option<u64> = None;
    for (k, s) in segments {
        let owner = format!("segment {k}");
        if !numbered(k) {
            return fail(Rule::Segment, format!("segment key '{k}' is not a number"));
        }
        let (Some(kind), Some(offset), Some(size)) = (string(s, "type"), string(s, "offset"), string(s, "size")) else {
            return fail(Rule::Segment, format!("{owner} lacks a type, offset or size string"));
        };
        let Some(offset) = Some(offset).filter(|o| numbered(o)).and_then(strtoull) else {
            return fail(Rule::Segment, format!("{owner} offset '{offset}' is not a 64-bit number"));
        };
        let size = if size == "dynamic" {
            0
        } else {
            match Some(size).filter(|s| numbered(s)).and_then(strtoull) {
                Some(n) if n > 0 => n,
                _ => {
                    return fail(Rule::Segment, format!("{owner} size '{size}' is not 'dynamic' or a non-zero number"));
                }
            }
        };
        if offset % 512 != 0 || size % 512 != 0 {
            return fail(Rule::Segment, format!("{owner} offset {offset} or size {size} is not a multiple of 512"));
        }
        if let Some(f) = s.get("flags")
            && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        {
            return fail(Rule::Segment, format!("{owner} flags {f} are not an array of strings"));
        }
        let id: u64 = k.parse().unwrap_or(u64::MAX);
        if is_backup(s) {
            first_backup = Some(first_backup.map_or(id, |b| b.min(id)));
        } else if first_backup.is_some_and(|b| id >= b) {
            return fail(
                Rule::Segment,
                format!("regular {owner} comes after backup segment {}", first_backup.unwrap_or(0)),
            );
        }
        if kind == "crypt" {
            crypt_segment(k, s, digests, size)?;
        }
    }
    let count = segments.len() as u64;
    let regular = match first_backup {
        Some(0) => return fail(Rule::Segment, "no regular segment (segment 0 is a backup)"),
        Some(b) if b >= count => {
            return fail(Rule::Segment, format!("gap between the regular segments and backup segment {b}"));
        }
        Some(b) => b,
        None => count,
    };
    let mut ivals = Vec::new();
    for i in 0..count {
        let Some(s) = segments.get(&i.to_string()) else {
            return fail(Rule::Segment, format!("segment {i} is missing (segment keys must be 0, 1, ...)"));
        };
        if i < regular {
            let len = match seg_u64(s, "size") {
                0 => u64::MAX,
                n => n,
            };
            ivals.push((seg_u64(s, "offset"), len));
        }
    }
    for (i, &(off, len)) in ivals.iter().enumerate() {
        if len == u64::MAX && i + 1 != ivals.len() {
            return fail(Rule::Segment, format!("segment {i} has a dynamic size but is not the last regular one"));
        }
        for (j, &(o2, l2)) in ivals.iter().enumerate() {
            if i == j {
                continue;
            }
            if l2 != u64::MAX && o2.checked_add(l2).is_none() {
                return fail(Rule::Segment, format!("segment {j} offset + size overflows"));
            }
            if off >= o2 && (l2 == u64::MAX || off < o2 + l2) {
                return fail(Rule::Segment, format!("segments {i} and {j} overlap"));
            }
        }
    }
    Ok(())
}

fn crypt_segment(k: &str, s: &Value, digests: &Map<String, Value>, size: u64) -> R {
    let owner = format!("crypt segment {k}");
    let Some(iv) = string(s, "iv_tweak") else { return fail(Rule::CryptSegment, format!("{owner} has no iv_tweak")) };
    if string(s, "encryption").is_none() {
        return fail(Rule::CryptSegment, format!("{owner} has no encryption"));
    }
    let Some(ss) = s.get("sector_size") else { return fail(Rule::CryptSegment, format!("{owner} has no sector_size")) };
    let Some(sector) = int(s, "sector_size") else {
        return fail(Rule::CryptSegment, format!("{owner} sector_size {ss} is not an integer"));
    };
    if let Some(integrity) = s.get("integrity") {
        let ok = integrity.is_object()
            && string(integrity, "type").is_some()
            && string(integrity, "journal_encryption").is_some()
            && string(integrity, "journal_integrity").is_some();
        if !ok {
            return fail(Rule::CryptSegment, format!("{owner} has a malformed integrity object"));
        }
    }
    let Ok(sector) = u32::try_from(sector) else {
        return fail(Rule::CryptSegment, format!("{owner} sector_size {sector} is not a 32-bit unsigned number"));
    };
    if sector == 0 || sector % 512 != 0 {
        return fail(Rule::CryptSegment, format!("{owner} sector_size {sector} is not a multiple of 512"));
    }
    if !numbered(iv) || strtoull(iv).is_none() {
        return fail(Rule::CryptSegment, format!("{owner} iv_tweak '{iv}' is not a 64-bit number"));
    }
    if !size.is_multiple_of(u64::from(sector)) {
        return fail(Rule::CryptSegment, format!("{owner} size {size} is not a multiple of its sector size {sector}"));
    }
    let bound = digests.values().any(|d| array(d, "segments").is_some_and(|a| a.iter().any(|x| x.as_str() == Some(k))));
    if !bound {
        return fail(Rule::CryptSegment, format!("{owner} is not assigned to any digest"));
    }
    Ok(())
}

fn keyslots(root: &Map<String, Value>) -> R {
    for (k, s) in section(root, "keyslots")? {
        if !numbered(k) {
            return fail(Rule::Keyslot, format!("key slot key '{k}' is not a number"));
        }
        if string(s, "type").is_none() {
            return fail(Rule::Keyslot, format!("key slot {k} has no type"));
        }
        match int(s, "key_size") {
            Some(n) if (0..=i128::from(u32::MAX)).contains(&n) => {}
            _ => {
                return fail(
                    Rule::Keyslot,
                    format!("key slot {k} key_size {:?} is not a 32-bit unsigned integer", s.get("key_size")),
                );
            }
        }
    }
    Ok(())
}

/// Returns `(metadata_size, keyslots_size)`.
fn config(root: &Map<String, Value>) -> R<(u64, u64)> {
    let config = Value::Object(section(root, "config")?.clone());
    let num = |key: &str| -> R<u64> {
        match string(&config, key) {
            Some(s) => {
                strtoull(s).map_or_else(|| fail(Rule::Config, format!("config.{key} '{s}' is not a number")), Ok)
            }
            None => fail(Rule::Config, format!("config.{key} is missing or not a string")),
        }
    };
    let json_size = num("json_size")?;
    let metadata_size = json_size.wrapping_add(BIN_LEN);
    let keyslots_size = num("keyslots_size")?;
    if !METADATA_SIZES.contains(&metadata_size) {
        return fail(Rule::Config, format!("config.json_size {json_size} does not make an allowed metadata size"));
    }
    if keyslots_size % 4096 != 0 || keyslots_size > MAX_KEYSLOTS_SIZE {
        return fail(
            Rule::Config,
            format!("config.keyslots_size {keyslots_size} is not a multiple of 4096 up to {MAX_KEYSLOTS_SIZE}"),
        );
    }
    let data_offset = root
        .get("segments")
        .and_then(Value::as_object)
        .map(|s| s.values().filter(|v| !is_backup(v)).map(|v| seg_u64(v, "offset")).min().unwrap_or(u64::MAX))
        .unwrap_or(0);
    if data_offset != 0 && (data_offset < keyslots_size || data_offset - keyslots_size < 2 * metadata_size) {
        return fail(
            Rule::Config,
            format!(
                "config.keyslots_size {keyslots_size} does not fit between both metadata copies ({}) and the data \
                 offset {data_offset}",
                2 * metadata_size
            ),
        );
    }
    if let Some(f) = config.get("flags")
        && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return fail(Rule::Config, format!("config.flags {f} are not an array of strings"));
    }
    Ok((metadata_size, keyslots_size))
}

fn areas(root: &Map<String, Value>, metadata_size: u64, keyslots_size: u64) -> R {
    let keyslots = section(root, "keyslots")?;
    let start = 2 * metadata_size;
    let end = start.wrapping_add(keyslots_size);
    let mut ivals = Vec::new();
    for (k, s) in keyslots {
        let area = match s.get("area") {
            Some(a) if a.is_object() => a,
            _ => return fail(Rule::KeyslotArea, format!("key slot {k} has no area object")),
        };
        let (Some(_), Some(o), Some(l)) = (string(area, "type"), string(area, "offset"), string(area, "size")) else {
            return fail(Rule::KeyslotArea, format!("key slot {k} area lacks a type, offset or size string"));
        };
        let (Some(off), Some(len)) =
            (Some(o).filter(|o| numbered(o)).and_then(strtoull), Some(l).filter(|l| numbered(l)).and_then(strtoull))
        else {
            return fail(
                Rule::KeyslotArea,
                format!("key slot {k} area offset '{o}' or size '{l}' is not a 64-bit number"),
            );
        };
        ivals.push((k, off, len));
    }
    for &(k, off, len) in &ivals {
        if off < start {
            return fail(
                Rule::KeyslotArea,
                format!("key slot {k} area at {off} lies in the metadata (which ends at {start})"),
            );
        }
        if len == 0 {
            return fail(Rule::KeyslotArea, format!("key slot {k} area is empty"));
        }
        let Some(last) = off.checked_add(len) else {
            return fail(Rule::KeyslotArea, format!("key slot {k} area offset {off} + size {len} overflows"));
        };
        if last > end {
            return fail(
                Rule::KeyslotArea,
                format!("key slot {k} area [{off}, {last}) runs past the key-slot area end {end}"),
            );
        }
        for &(k2, o2, l2) in &ivals {
            if k2 == k {
                continue;
            }
            let Some(e2) = o2.checked_add(l2) else {
                return fail(Rule::KeyslotArea, format!("key slot {k2} area offset {o2} + size {l2} overflows"));
            };
            if off >= o2 && off < e2 {
                return fail(
                    Rule::KeyslotArea,
                    format!("key slot {k} area [{off}, {last}) overlaps key slot {k2} [{o2}, {e2})"),
                );
            }
        }
    }
    Ok(())
}

fn json_size(root: &Map<String, Value>, json_area_size: u64) -> R {
    let declared =
        root.get("config").and_then(|c| c.get("json_size")).and_then(Value::as_str).and_then(strtoull).unwrap_or(0);
    if declared != json_area_size {
        return fail(
            Rule::JsonSize,
            format!(
                "config.json_size {declared} does not match the binary header's JSON area of {json_area_size} bytes"
            ),
        );
    }
    let text = serde_json::to_string(root).map_or(u64::MAX, |s| s.len() as u64);
    if text > json_area_size {
        return fail(Rule::JsonSize, format!("the JSON ({text} bytes) does not fit its {json_area_size}-byte area"));
    }
    Ok(())
}

fn keyslot_types(root: &Map<String, Value>) -> R {
    let keyslots = section(root, "keyslots")?;
    let digests = section(root, "digests")?;
    let mut reencrypt = 0;
    for (k, s) in keyslots {
        match s.get("type").and_then(Value::as_str) {
            Some("luks2") => {}
            Some("reencrypt") => {
                reencrypt += 1;
                continue;
            }
            _ => continue,
        }
        luks2_keyslot(k, s)?;
        let name = k.parse::<u64>().map_or_else(|_| k.clone(), |n| n.to_string());
        let n = digests
            .values()
            .filter(|d| array(d, "keyslots").is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&name))))
            .count();
        if n != 1 {
            return fail(Rule::Luks2Keyslot, format!("key slot {k} is assigned to {n} digests, not exactly 1"));
        }
    }
    let flags = mandatory(root);
    let online = flags.iter().any(|f| reencrypt_flag(f));
    if online && reencrypt == 0 {
        return fail(Rule::Reencrypt, "an online-reencryption requirement without a reencrypt key slot");
    }
    if reencrypt > 0 && !online {
        return fail(Rule::Reencrypt, "a reencrypt key slot without an online-reencryption requirement");
    }
    if reencrypt > 1 {
        return fail(Rule::Reencrypt, format!("{reencrypt} reencrypt key slots"));
    }
    Ok(())
}

fn luks2_keyslot(k: &str, s: &Value) -> R {
    let bad = |why: String| fail(Rule::Luks2Keyslot, format!("key slot {k}: {why}"));
    let (Some(kdf), Some(af), Some(area)) = (object(s, "kdf"), object(s, "af"), object(s, "area")) else {
        return bad("kdf, af or area is not an object".into());
    };
    let (kdf_v, af_v, area_v) = (Value::Object(kdf.clone()), Value::Object(af.clone()), Value::Object(area.clone()));
    let Some(kdf_type) = string(&kdf_v, "type") else { return bad("the kdf has no type".into()) };
    let has_ints = |v: &Value, keys: &[&str]| keys.iter().all(|key| int(v, key).is_some());
    let pbkdf2_ok = || {
        kdf.len() == 4
            && string(&kdf_v, "hash").is_some()
            && has_ints(&kdf_v, &["iterations"])
            && string(&kdf_v, "salt").is_some()
    };
    let argon2_ok =
        || kdf.len() == 5 && has_ints(&kdf_v, &["time", "memory", "cpus"]) && string(&kdf_v, "salt").is_some();
    match kdf_type {
        "pbkdf2" if !pbkdf2_ok() => return bad("a pbkdf2 kdf needs exactly type, hash, iterations and salt".into()),
        "argon2i" | "argon2id" if !argon2_ok() => {
            return bad(format!("an {kdf_type} kdf needs exactly type, time, memory, cpus and salt"));
        }
        // Other KDF types pass: the header is valid, only this key slot cannot be opened.
        _ => {}
    }
    match string(&af_v, "type") {
        Some("luks1") if string(&af_v, "hash").is_some() && has_ints(&af_v, &["stripes"]) => {}
        Some("luks1") => return bad("a luks1 af needs a hash and integer stripes".into()),
        other => return bad(format!("af type {other:?} is not luks1")),
    }
    match string(&area_v, "type") {
        Some("raw")
            if string(&area_v, "encryption").is_some()
                && has_ints(&area_v, &["key_size"])
                && string(&area_v, "offset").is_some()
                && string(&area_v, "size").is_some() => {}
        Some("raw") => return bad("a raw area needs encryption, key_size, offset and size".into()),
        other => return bad(format!("area type {other:?} is not raw")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoull_is_cryptsetups() {
        assert_eq!(strtoull("12288"), Some(12288));
        assert_eq!(strtoull(" +12288"), Some(12288));
        assert_eq!(strtoull("-1"), Some(u64::MAX));
        assert_eq!(strtoull("18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull("18446744073709551616"), None);
        assert_eq!(strtoull("12x"), None);
        assert_eq!(strtoull(""), None);
        assert_eq!(strtoull("-"), None);
    }

    #[test]
    fn area_framing() {
        let ok = b"{\"a\":1}\0\0\0";
        assert!(parse_area(ok).is_ok());
        let cases: [(&[u8], Rule); 5] = [
            (b" {\"a\":1}\0", Rule::OpeningChar),
            (b"{\"a\":1}", Rule::MissingNul),
            (b"{\"a\":1}X\0", Rule::DataAfterJson),
            (b"{\"a\":1}\0\0\"\0", Rule::DataAfterJson),
            (b"{\"a\":1\0\0", Rule::JsonSyntax),
        ];
        for (area, rule) in cases {
            assert!(matches!(parse_area(area), Err(Luks2Error::Rule(r, _)) if r == rule), "{area:?}");
        }
        assert!(matches!(parse_area(b"[1]\0"), Err(Luks2Error::Rule(Rule::OpeningChar, _))));
        let deep = format!("{{\"a\":{}1{}}}\0", "[".repeat(40), "]".repeat(40));
        assert!(matches!(parse_area(deep.as_bytes()), Err(Luks2Error::Rule(Rule::JsonSyntax, _))));
    }
}
