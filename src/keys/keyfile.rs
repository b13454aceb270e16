//! Key files with cryptsetup's `--key-file` semantics: the file's exact bytes are the passphrase
//! (a trailing newline included), optionally after skipping `--keyfile-offset` bytes and limited
//! to `--keyfile-size` bytes. `-` reads standard input.

use super::Secret;
use crate::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest key file read without an explicit `--keyfile-size` (cryptsetup's default limit).
pub const MAX_KEYFILE_BYTES: u64 = 8 << 20;

/// Where in a key file the passphrase lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyfileRange {
    /// Bytes to skip first.
    pub offset: u64,
    /// Bytes to read (default: to the end of the file).
    pub size: Option<u64>,
}

/// Read the passphrase from `path` (or standard input for `-`).
pub fn read(path: &Path, range: KeyfileRange) -> Result<Secret> {
    let name = path.display().to_string();
    let fail = |what: &str, e: std::io::Error| Error::usage(format!("key file {name}: {what}: {e}"));
    let limit = range.size.unwrap_or(MAX_KEYFILE_BYTES);
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    if path == Path::new("-") {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        std::io::copy(&mut (&mut lock).take(range.offset), &mut std::io::sink()).map_err(|e| fail("read", e))?;
        lock.take(limit + 1).read_to_end(&mut buf).map_err(|e| fail("read", e))?;
    } else {
        let mut f = std::fs::File::open(path).map_err(|e| fail("cannot open", e))?;
        std::io::copy(&mut (&mut f).take(range.offset), &mut std::io::sink()).map_err(|e| fail("read", e))?;
        f.take(limit + 1).read_to_end(&mut buf).map_err(|e| fail("read", e))?;
    }
    match range.size {
        Some(n) if (buf.len() as u64) < n => {
            return Err(Error::usage(format!(
                "key file {name}: cannot read {n} bytes at offset {} (only {} available)",
                range.offset,
                buf.len()
            )));
        }
        Some(n) => buf.truncate(n as usize),
        None if buf.len() as u64 > MAX_KEYFILE_BYTES => {
            return Err(Error::usage(format!(
                "key file {name} is larger than {} MiB; use --keyfile-size",
                MAX_KEYFILE_BYTES >> 20
            )));
        }
        None => {}
    }
    if buf.is_empty() {
        log::warn!("key file {name} is empty: an empty passphrase opens no key slot");
    }
    Ok(Secret::new(std::mem::take(&mut *buf)))
}

/// A note for a wrong-key failure when the passphrase read from `path` ends in a newline, as a
/// file written with `echo` does: cryptsetup takes the newline as part of the passphrase, so
/// does luksfs, and a passphrase set by typing it does not contain one. `None` for standard
/// input, an unreadable file, or no trailing newline.
pub fn newline_note(path: &Path, range: KeyfileRange) -> Option<String> {
    if path == Path::new("-") {
        return None;
    }
    let key = read(path, range).ok()?;
    if !key.as_bytes().ends_with(b"\n") {
        return None;
    }
    Some(format!(
        "key file {} ends with a newline, which is part of the passphrase (as with cryptsetup); if the \
         passphrase was typed, write the file without it: printf %s 'PASSPHRASE' > {}",
        path.display(),
        path.display()
    ))
}

/// Parse a byte count with an optional binary suffix: `4096`, `64K`, `16M`, `1G`, `2T` (also
/// `KiB`/`MiB`/...).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (e.g. 4096, 64K, 16M, 1G)"))?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        other => return Err(format!("unknown size suffix '{other}' in '{s}' (use K, M, G or T)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn exact_bytes_and_ranges() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123456789\n").unwrap();
        assert_eq!(read(f.path(), KeyfileRange::default()).unwrap().as_bytes(), b"0123456789\n");
        let r = KeyfileRange { offset: 2, size: Some(3) };
        assert_eq!(read(f.path(), r).unwrap().as_bytes(), b"234");
        let r = KeyfileRange { offset: 8, size: Some(5) };
        assert!(read(f.path(), r).is_err());
        let r = KeyfileRange { offset: 11, size: None };
        assert!(read(f.path(), r).unwrap().is_empty(), "an empty passphrase is allowed (it opens nothing)");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
