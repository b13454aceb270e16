//! The `<prefix>_metadata` object: which volume range each chunk object holds, how it is
//! compressed and its md5, the parent backup, and the volume's metadata (with the original
//! volume's `encryption_key_id`).
//!
//! Written by `ChunkedBackupDriver._write_metadata` as `json.dumps(..., sort_keys=True)`:
//! `version` ("1.0.0", the only one cinder has), `backup_id`, `volume_id`, `backup_name`,
//! `backup_description`, `created_at`, `parent_id` (null for a full backup), `objects` (a list
//! of one-key maps `{name: {offset, length, compression, md5}}`, in volume order), `volume_meta`
//! (a JSON *string* `{"version": 2, "volume-base-metadata": {...}}`, or absent/null), and for
//! some drivers `extra_metadata`.

use super::{CinderError, unhex};
use serde_json::{Map, Value};

const FILE: &str = "_metadata";

/// The only metadata version cinder writes (`DRIVER_VERSION`).
pub const VERSION: &str = "1.0.0";
/// Largest `_metadata` document accepted (a million objects take ~250 MiB of JSON).
pub const MAX_METADATA_BYTES: usize = 256 << 20;
/// Most objects one backup may list.
pub const MAX_OBJECTS: usize = 1 << 20;
/// Largest uncompressed object: cinder's posix default `backup_file_size` is 1,999,994,880
/// bytes; Swift and S3 default to 50 MiB.
pub const MAX_OBJECT_LEN: u64 = 2 << 30;
/// Largest volume offset accepted (1 PiB; cinder volumes are sized in GiB).
pub const MAX_VOLUME_BYTES: u64 = 1 << 50;
/// Longest object name (Swift allows 1024 bytes).
pub const MAX_NAME_LEN: usize = 1024;

/// How one object's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as is (`none`, `off`, `no`: also what cinder writes when compressing did not help).
    None,
    /// zlib stream (`zlib`, `gzip`: Python's `zlib.compress`).
    Zlib,
    /// bzip2 stream (`bz2`, `bzip2`).
    Bz2,
    /// Zstandard frame (`zstd`).
    Zstd,
}

impl Compression {
    /// The algorithm for a metadata `compression` value, the way cinder's `_get_compressor`
    /// accepts it (case-insensitive); `None` when cinder would refuse it too.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "off" | "no" => Some(Compression::None),
            "zlib" | "gzip" => Some(Compression::Zlib),
            "bz2" | "bzip2" => Some(Compression::Bz2),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Bz2 => "bz2",
            Compression::Zstd => "zstd",
        }
    }
}

/// One chunk object of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The object's name in its container (the backup prefix plus `-NNNNN`).
    pub name: String,
    /// Where its uncompressed bytes lie in the volume.
    pub offset: u64,
    /// Uncompressed length (never 0).
    pub length: u64,
    pub compression: Compression,
    /// md5 of the uncompressed bytes.
    pub md5: [u8; 16],
}

impl ObjectEntry {
    /// One past the last volume byte this object holds (checked at parse time).
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A parsed, validated `_metadata` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub backup_id: String,
    pub volume_id: String,
    /// `None` for a full backup.
    pub parent_id: Option<String>,
    pub backup_name: Option<String>,
    pub backup_description: Option<String>,
    pub created_at: Option<String>,
    /// Sorted by offset; no two overlap; each within [`MAX_VOLUME_BYTES`].
    pub objects: Vec<ObjectEntry>,
    /// The original volume's key id from `volume_meta` (the backup's own key is a Barbican
    /// clone whose id only the Cinder API knows).
    pub encryption_key_id: Option<String>,
    /// Why `volume_meta` could not be read, when it was present but malformed (not fatal: the
    /// volume data does not depend on it).
    pub volume_meta_problem: Option<String>,
}

fn bad(field: impl Into<String>, value: &Value, why: &'static str) -> CinderError {
    let mut v = value.to_string();
    if v.len() > 80 {
        let mut cut = 77;
        while !v.is_char_boundary(cut) {
            cut -= 1;
        }
        v.truncate(cut);
        v.push_str("...");
    }
    CinderError::BadField { file: FILE, field: field.into(), value: v, why }
}

fn opt_string(doc: &Map<String, Value>, field: &'static str) -> Result<Option<String>, CinderError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad(field, v, "not a string")),
    }
}

fn req_string(doc: &Map<String, Value>, field: &'static str) -> Result<String, CinderError> {
    opt_string(doc, field)?.ok_or(CinderError::Missing { file: FILE, field })
}

/// Check a document's `version` field (shared with the sha256file).
pub(crate) fn check_version(doc: &Map<String, Value>, file: &'static str) -> Result<(), CinderError> {
    match doc.get("version") {
        None => Err(CinderError::Missing { file, field: "version" }),
        Some(Value::String(v)) if v == VERSION => Ok(()),
        Some(Value::String(v)) => Err(CinderError::Version { file, version: v.clone() }),
        Some(v) => Err(CinderError::Version { file, version: v.to_string() }),
    }
}

/// Parse a JSON object document of at most `max` bytes.
pub(crate) fn parse_doc(bytes: &[u8], file: &'static str, max: usize) -> Result<Map<String, Value>, CinderError> {
    if bytes.len() > max {
        return Err(CinderError::Limit { what: "document size", value: bytes.len() as u64, limit: max as u64 });
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CinderError::Json { file, reason: "not a JSON object".into() }),
        Err(e) => Err(CinderError::Json { file, reason: e.to_string() }),
    }
}

fn parse_u64(field: String, v: Option<&Value>) -> Result<u64, CinderError> {
    match v {
        None => Err(bad(field, &Value::Null, "missing")),
        Some(v) => v.as_u64().ok_or_else(|| bad(field, v, "not a non-negative integer")),
    }
}

fn parse_object(item: &Value, index: usize) -> Result<ObjectEntry, CinderError> {
    let field = format!("objects[{index}]");
    let map = item.as_object().ok_or_else(|| bad(field.clone(), item, "not an object"))?;
    if map.len() != 1 {
        return Err(bad(field, item, "must map exactly one object name"));
    }
    let (name, body) = map.iter().next().expect("one entry");
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(bad(field, &Value::String(name.clone()), "not a usable object name"));
    }
    let field = format!("objects[{index}] {name:?}");
    let body = body.as_object().ok_or_else(|| bad(field.clone(), &Value::Null, "not an object"))?;
    let offset = parse_u64(format!("{field}.offset"), body.get("offset"))?;
    let length = parse_u64(format!("{field}.length"), body.get("length"))?;
    if length == 0 {
        return Err(bad(format!("{field}.length"), &Value::from(0), "an object holds at least one byte"));
    }
    if length > MAX_OBJECT_LEN {
        return Err(CinderError::Limit { what: "object length", value: length, limit: MAX_OBJECT_LEN });
    }
    if offset.checked_add(length).is_none_or(|end| end > MAX_VOLUME_BYTES) {
        return Err(CinderError::Limit {
            what: "object end",
            value: offset.saturating_add(length),
            limit: MAX_VOLUME_BYTES,
        });
    }
    let compression = match body.get("compression") {
        // very old backups had no field; cinder's restore would fail on them, so do we
        Some(Value::String(s)) => Compression::from_name(s)
            .ok_or_else(|| CinderError::Compression { object: name.clone(), name: s.clone() })?,
        Some(Value::Null) => {
            return Err(CinderError::Compression { object: name.clone(), name: "null".into() });
        }
        Some(v) => return Err(bad(format!("{field}.compression"), v, "not a string")),
        None => return Err(bad(format!("{field}.compression"), &Value::Null, "missing")),
    };
    let md5 = match body.get("md5") {
        Some(Value::String(s)) => {
            unhex::<16>(s).ok_or_else(|| bad(format!("{field}.md5"), &body["md5"], "not 32 hex digits"))?
        }
        Some(v) => return Err(bad(format!("{field}.md5"), v, "not a string")),
        None => return Err(bad(format!("{field}.md5"), &Value::Null, "missing")),
    };
    Ok(ObjectEntry { name: name.clone(), offset, length, compression, md5 })
}

/// The original volume's `encryption_key_id` from `volume_meta` (a JSON string).
fn key_id_of(volume_meta: &str) -> Result<Option<String>, String> {
    let v: Value = serde_json::from_str(volume_meta).map_err(|e| format!("volume_meta is not JSON: {e}"))?;
    let base = v.get("volume-base-metadata");
    match base.and_then(|b| b.get("encryption_key_id")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("volume_meta: encryption_key_id is not a string".into()),
    }
}

impl Metadata {
    /// Parse and validate a `_metadata` object.
    pub fn parse(bytes: &[u8]) -> Result<Metadata, CinderError> {
        let doc = parse_doc(bytes, FILE, MAX_METADATA_BYTES)?;
        check_version(&doc, FILE)?;
        let list = match doc.get("objects") {
            Some(Value::Array(a)) => a,
            Some(v) => return Err(bad("objects", v, "not a list")),
            None => return Err(CinderError::Missing { file: FILE, field: "objects" }),
        };
        if list.len() > MAX_OBJECTS {
            return Err(CinderError::Limit {
                what: "object count",
                value: list.len() as u64,
                limit: MAX_OBJECTS as u64,
            });
        }
        let mut objects = list.iter().enumerate().map(|(i, v)| parse_object(v, i)).collect::<Result<Vec<_>, _>>()?;
        objects.sort_by_key(|o| o.offset);
        for w in objects.windows(2) {
            if w[1].offset < w[0].end() {
                return Err(CinderError::Overlap {
                    first: w[0].name.clone(),
                    second: w[1].name.clone(),
                    offset: w[1].offset,
                });
            }
        }
        let mut names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad("objects", &Value::String(w[0].to_string()), "the same object is listed twice"));
        }
        let (encryption_key_id, volume_meta_problem) = match doc.get("volume_meta") {
            None | Some(Value::Null) => (None, None),
            Some(Value::String(s)) => match key_id_of(s) {
                Ok(k) => (k, None),
                Err(p) => (None, Some(p)),
            },
            Some(_) => (None, Some("volume_meta is not a JSON string".to_string())),
        };
        let parent_id = opt_string(&doc, "parent_id")?.filter(|p| !p.is_empty());
        Ok(Metadata {
            backup_id: req_string(&doc, "backup_id")?,
            volume_id: req_string(&doc, "volume_id")?,
            parent_id,
            backup_name: opt_string(&doc, "backup_name")?,
            backup_description: opt_string(&doc, "backup_description")?,
            created_at: opt_string(&doc, "created_at")?,
            objects,
            encryption_key_id,
            volume_meta_problem,
        })
    }

    /// One past the highest volume byte any object holds (0 without objects).
    pub fn extent_end(&self) -> u64 {
        self.objects.last().map_or(0, ObjectEntry::end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn doc(objects: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"version": "1.0.0", "backup_id": "b1", "volume_id": "v1", "parent_id": null,
                "objects": [{objects}] {extra}}}"#
        )
        .into_bytes()
    }
    const MD5: &str = "0123456789abcdef0123456789ABCDEF";

    fn obj(name: &str, off: u64, len: u64, comp: &str) -> String {
        format!(r#"{{"{name}": {{"offset": {off}, "length": {len}, "compression": "{comp}", "md5": "{MD5}"}}}}"#)
    }

    #[test]
    fn parses_objects_sorted_and_key_id() {
        let o = format!("{},{}", obj("p-00002", 100, 50, "BZ2"), obj("p-00001", 0, 100, "none"));
        let meta = r#"{\"version\": 2, \"volume-base-metadata\": {\"encryption_key_id\": \"k-1\"}}"#;
        let m = Metadata::parse(&doc(&o, &format!(r#","volume_meta": "{meta}""#))).unwrap();
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.objects[0].name, "p-00001");
        assert_eq!(m.objects[1].compression, Compression::Bz2);
        assert_eq!(m.objects[1].md5[15], 0xef);
        assert_eq!(m.extent_end(), 150);
        assert_eq!(m.encryption_key_id.as_deref(), Some("k-1"));
        assert_eq!(m.parent_id, None);
    }

    #[test]
    fn refuses_what_cinder_would_not_write() {
        let cases: Vec<(Vec<u8>, ErrorKind, &str)> = vec![
            (doc("", "").iter().map(|&b| if b == b'0' { b'2' } else { b }).collect(), ErrorKind::Unsupported, "1.2.2"),
            (doc(&obj("a", 0, 10, "lzma"), ""), ErrorKind::Unsupported, "lzma"),
            (
                doc(&format!("{},{}", obj("a", 0, 10, "zlib"), obj("b", 5, 10, "zlib")), ""),
                ErrorKind::Corrupt,
                "overlap",
            ),
            (
                doc(&format!("{},{}", obj("a", 0, 10, "zlib"), obj("a", 20, 10, "zlib")), ""),
                ErrorKind::Corrupt,
                "twice",
            ),
            (doc(&obj("a", 0, 0, "zlib"), ""), ErrorKind::Corrupt, "at least one byte"),
            (doc(&obj("a", u64::MAX - 1, 10, "zlib"), ""), ErrorKind::Unsupported, "object end"),
            (doc(&obj("a", 0, 3 << 30, "zlib"), ""), ErrorKind::Unsupported, "object length"),
            (
                doc(r#"{"a": {"offset": -1, "length": 1, "compression": "zlib", "md5": "x"}}"#, ""),
                ErrorKind::Corrupt,
                "non-negative",
            ),
            (doc(r#"{"a": 1, "b": 2}"#, ""), ErrorKind::Corrupt, "exactly one"),
            (b"[1]".to_vec(), ErrorKind::Corrupt, "not a JSON object"),
            (b"{\"version\": \"1.0.0\"".to_vec(), ErrorKind::Corrupt, "JSON"),
            (br#"{"version": "1.0.0", "objects": []}"#.to_vec(), ErrorKind::Corrupt, "backup_id"),
        ];
        for (bytes, kind, needle) in cases {
            let e = Metadata::parse(&bytes).unwrap_err();
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn bad_volume_meta_is_recorded_not_fatal() {
        let m = Metadata::parse(&doc(&obj("a", 0, 1, "off"), r#","volume_meta": "{nope""#)).unwrap();
        assert!(m.volume_meta_problem.is_some());
        assert_eq!(m.objects[0].compression, Compression::None);
    }
}
