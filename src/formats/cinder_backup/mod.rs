//! Cinder backups written by the chunked drivers (`cinder/backup/chunkeddriver.py`: posix/NFS,
//! Swift, S3), read in place.
//!
//! A backup is a set of objects under one name prefix: the volume's data as chunk objects
//! `<prefix>-00001`, `-00002`, … (each compressed on its own, or stored as is), a JSON
//! `<prefix>_metadata` saying which volume range each object holds and its md5, and a JSON
//! `<prefix>_sha256file` with one SHA-256 per 32 KiB block of the whole volume. An incremental
//! backup holds only the blocks that changed since its parent (`parent_id`); the volume is the
//! full backup with each incremental of the chain laid over it in order.
//!
//! The parsers here ([`metadata`], [`sha256file`], [`names`], [`chunks`], [`assemble`]) are pure
//! functions over bytes; [`reader`] and [`verify`] fetch objects through
//! [`crate::source::ObjectStore`] and never see a file or a socket themselves.

pub mod assemble;
pub mod chunks;
pub mod md5s;
pub mod metadata;
pub mod names;
pub mod reader;
pub mod sha256file;
pub mod verify;

pub use reader::{BackupEntry, BackupReader, Catalog};

use crate::Error;

/// What is wrong with a backup's metadata or one of its objects (always naming the value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CinderError {
    /// A JSON document that does not parse.
    #[error("{file}: not valid JSON: {reason}")]
    Json { file: &'static str, reason: String },
    /// A required field is absent.
    #[error("{file}: field {field:?} is missing")]
    Missing { file: &'static str, field: &'static str },
    /// A field with a value of the wrong type or out of range.
    #[error("{file}: field {field} = {value}: {why}")]
    BadField { file: &'static str, field: String, value: String, why: &'static str },
    /// A metadata version this reader does not know (only 1.0.0 exists).
    #[error("{file}: version {version:?} is not supported (only \"1.0.0\")")]
    Version { file: &'static str, version: String },
    /// A compression name cinder does not write.
    #[error("object {object}: compression {name:?} is not supported")]
    Compression { object: String, name: String },
    /// A size or count past a named limit of luksfs.
    #[error("{what} {value} exceeds the limit of {limit}")]
    Limit { what: &'static str, value: u64, limit: u64 },
    /// Two objects of one backup claim the same volume bytes.
    #[error("objects {first} and {second} overlap at volume byte {offset}")]
    Overlap { first: String, second: String, offset: u64 },
    /// The parent chain is inconsistent.
    #[error("backup chain: {0}")]
    Chain(String),
    /// The compressed data of an object does not decompress.
    #[error("object {object}: corrupt {algorithm} data: {reason}")]
    Decompress { object: String, algorithm: &'static str, reason: String },
    /// An object's (uncompressed) size differs from the metadata's `length`.
    #[error("object {object}: holds {got} bytes, the metadata says {expected}")]
    Length { object: String, expected: u64, got: String },
    /// An object's md5 differs from the metadata's.
    #[error("object {object}: md5 {got} does not match the metadata's {expected}")]
    Md5 { object: String, expected: String, got: String },
    /// A block of the reassembled volume differs from the `_sha256file`.
    #[error("volume block {block} (bytes {offset}..{end}): sha256 does not match the sha256file")]
    Sha256 { block: u64, offset: u64, end: u64 },
}

impl CinderError {
    /// The class of the failure: refused features are `Unsupported`, everything else `Corrupt`.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            CinderError::Version { .. } | CinderError::Compression { .. } | CinderError::Limit { .. } => {
                crate::ErrorKind::Unsupported
            }
            _ => crate::ErrorKind::Corrupt,
        }
    }
}

impl From<CinderError> for Error {
    fn from(e: CinderError) -> Error {
        match e {
            CinderError::Md5 { .. } | CinderError::Sha256 { .. } => Error::digest_mismatch(e.to_string()),
            _ => Error::new(e.kind(), e.to_string()),
        }
    }
}

/// Lowercase hex of `bytes` (digests in messages).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse `2 * N` hex digits (either case) into `N` bytes.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
