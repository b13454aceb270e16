//! The `<prefix>_sha256file` object: one SHA-256 per `chunk_size` bytes (32 KiB by default) of
//! the whole volume as it was when the backup was taken (the last block may be shorter).
//!
//! Written by `ChunkedBackupDriver._write_sha256file`: `version` "1.0.0", `backup_id`,
//! `volume_id`, `backup_name`, `backup_description`, `created_at`, `chunk_size`, `sha256s` (a
//! list of 64-digit lowercase hex strings). Cinder reads it to find changed blocks for the next
//! incremental; luksfs reads it to verify a reassembled volume.

use super::CinderError;
use super::metadata::{check_version, parse_doc};
use serde_json::Value;

const FILE: &str = "_sha256file";

/// Largest `_sha256file` accepted: ~67 bytes of JSON per 32 KiB block, so about 450 GiB of volume.
pub const MAX_SHA256FILE_BYTES: usize = 1 << 30;
/// Largest hash block size accepted (cinder's default is 32 KiB).
pub const MAX_CHUNK_SIZE: u64 = 1 << 30;

/// A parsed, validated `_sha256file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sha256File {
    pub backup_id: String,
    pub volume_id: String,
    /// Bytes of volume per digest (`backup_sha_block_size_bytes`).
    pub chunk_size: u64,
    pub sha256s: Vec<[u8; 32]>,
}

fn bad(field: impl Into<String>, value: impl Into<String>, why: &'static str) -> CinderError {
    CinderError::BadField { file: FILE, field: field.into(), value: value.into(), why }
}

fn string(doc: &serde_json::Map<String, Value>, field: &'static str) -> Result<String, CinderError> {
    match doc.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(bad(field, v.to_string(), "not a string")),
        None => Err(CinderError::Missing { file: FILE, field }),
    }
}

impl Sha256File {
    /// Parse and validate a `_sha256file` object.
    pub fn parse(bytes: &[u8]) -> Result<Sha256File, CinderError> {
        let doc = parse_doc(bytes, FILE, MAX_SHA256FILE_BYTES)?;
        check_version(&doc, FILE)?;
        let chunk_size = match doc.get("chunk_size") {
            Some(v) => v.as_u64().ok_or_else(|| bad("chunk_size", v.to_string(), "not a non-negative integer"))?,
            None => return Err(CinderError::Missing { file: FILE, field: "chunk_size" }),
        };
        if chunk_size == 0 {
            return Err(bad("chunk_size", "0", "must be positive"));
        }
        if chunk_size > MAX_CHUNK_SIZE {
            return Err(CinderError::Limit { what: "sha256 block size", value: chunk_size, limit: MAX_CHUNK_SIZE });
        }
        let list = match doc.get("sha256s") {
            Some(Value::Array(a)) => a,
            Some(v) => return Err(bad("sha256s", v.to_string(), "not a list")),
            None => return Err(CinderError::Missing { file: FILE, field: "sha256s" }),
        };
        let mut sha256s = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let d = v.as_str().and_then(super::unhex::<32>);
            sha256s.push(d.ok_or_else(|| bad(format!("sha256s[{i}]"), v.to_string(), "not 64 hex digits"))?);
        }
        Ok(Sha256File {
            backup_id: string(&doc, "backup_id")?,
            volume_id: string(&doc, "volume_id")?,
            chunk_size,
            sha256s,
        })
    }

    /// Check that the digests cover exactly a volume of `size` bytes.
    pub fn check_covers(&self, size: u64) -> Result<(), CinderError> {
        let want = size.div_ceil(self.chunk_size);
        if self.sha256s.len() as u64 != want {
            return Err(CinderError::BadField {
                file: FILE,
                field: "sha256s".into(),
                value: format!("{} digests", self.sha256s.len()),
                why: "not one per chunk_size of the volume the objects describe",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(chunk: &str, shas: &str) -> Vec<u8> {
        format!(
            r#"{{"version": "1.0.0", "backup_id": "b", "volume_id": "v", "chunk_size": {chunk}, "sha256s": [{shas}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn parses_and_checks_coverage() {
        let d = format!("\"{}\",\"{}\"", "ab".repeat(32), "00".repeat(32));
        let f = Sha256File::parse(&doc("32768", &d)).unwrap();
        assert_eq!(f.sha256s.len(), 2);
        assert_eq!(f.sha256s[0][31], 0xab);
        f.check_covers(32769).unwrap();
        f.check_covers(65536).unwrap();
        assert!(f.check_covers(65537).is_err());
        assert!(f.check_covers(32768).is_err());
    }

    #[test]
    fn refuses_bad_shapes() {
        for (chunk, shas, needle) in [
            ("0", "", "positive"),
            ("-5", "", "non-negative"),
            ("4294967296", "", "limit"),
            ("512", "\"abc\"", "64 hex"),
            ("512", "7", "64 hex"),
        ] {
            let e = Sha256File::parse(&doc(chunk, shas)).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = Sha256File::parse(br#"{"version": "2.0.0"}"#).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    }
}
