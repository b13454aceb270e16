//! One chunk object's bytes → the volume bytes it holds: decompression bounded by the
//! metadata's `length` (a decompression bomb stops at `length + 1` bytes) and the md5 check.
//!
//! Cinder compresses each object whole with Python's `zlib.compress` (a zlib stream),
//! `bz2.compress` (a bzip2 stream) or `zstd.compress` (a Zstandard frame), and stores it as is
//! (`none`) when that did not shrink it; the md5 in the metadata is of the uncompressed bytes.

use super::CinderError;
use super::metadata::{Compression, ObjectEntry};
use md5::{Digest, Md5};
use std::io::Read;

/// Decompressed bytes are allocated as they arrive, this much ahead at most.
const INITIAL_CAPACITY: u64 = 1 << 20;

fn inflate(obj: &ObjectEntry, mut decoder: impl Read, algorithm: &'static str) -> Result<Vec<u8>, CinderError> {
    let mut out = Vec::with_capacity(obj.length.min(INITIAL_CAPACITY) as usize);
    let got = (&mut decoder).take(obj.length + 1).read_to_end(&mut out).map_err(|e| CinderError::Decompress {
        object: obj.name.clone(),
        algorithm,
        reason: e.to_string(),
    })?;
    if got as u64 != obj.length {
        let got = if got as u64 > obj.length { "more".to_string() } else { got.to_string() };
        return Err(CinderError::Length { object: obj.name.clone(), expected: obj.length, got });
    }
    Ok(out)
}

/// The uncompressed bytes of `obj` from its stored bytes `stored` (exactly `obj.length` long,
/// or an error saying why not). The md5 is not checked here: see [`check_md5`].
pub fn decompress(obj: &ObjectEntry, stored: Vec<u8>) -> Result<Vec<u8>, CinderError> {
    match obj.compression {
        Compression::None => {
            if stored.len() as u64 != obj.length {
                return Err(CinderError::Length {
                    object: obj.name.clone(),
                    expected: obj.length,
                    got: stored.len().to_string(),
                });
            }
            Ok(stored)
        }
        Compression::Zlib => inflate(obj, flate2::read::ZlibDecoder::new(stored.as_slice()), "zlib"),
        // Python's bz2.decompress accepts concatenated streams; so does MultiBzDecoder
        Compression::Bz2 => inflate(obj, bzip2::read::MultiBzDecoder::new(stored.as_slice()), "bz2"),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::with_buffer(stored.as_slice()).map_err(|e| {
                CinderError::Decompress { object: obj.name.clone(), algorithm: "zstd", reason: e.to_string() }
            })?;
            inflate(obj, d, "zstd")
        }
    }
}

/// Check `data` (uncompressed) against the md5 in the metadata.
pub fn check_md5(obj: &ObjectEntry, data: &[u8]) -> Result<(), CinderError> {
    let got: [u8; 16] = Md5::digest(data).into();
    if got != obj.md5 {
        return Err(CinderError::Md5 {
            object: obj.name.clone(),
            expected: super::hex(&obj.md5),
            got: super::hex(&got),
        });
    }
    Ok(())
}

/// [`decompress`] then [`check_md5`]: the volume bytes of `obj`, or why they cannot be trusted.
pub fn unpack(obj: &ObjectEntry, stored: Vec<u8>) -> Result<Vec<u8>, CinderError> {
    let data = decompress(obj, stored)?;
    check_md5(obj, &data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entry(data: &[u8], compression: Compression) -> ObjectEntry {
        ObjectEntry {
            name: "p-00001".into(),
            offset: 0,
            length: data.len() as u64,
            compression,
            md5: Md5::digest(data).into(),
        }
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    // Round trips through the crates' own encoders; the real cinder-written objects are tested
    // in tests/it/cinder_backup.rs.
    #[test]
    fn round_trips_and_bounds() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for (c, stored) in [
            (Compression::None, data.clone()),
            (Compression::Zlib, zlib(&data)),
            (Compression::Zstd, zstd::bulk::compress(&data, 3).unwrap()),
        ] {
            let e = entry(&data, c);
            assert_eq!(unpack(&e, stored.clone()).unwrap(), data);
            // the metadata claims fewer bytes than the stream holds: stops at length + 1
            let short = ObjectEntry { length: 1000, ..e.clone() };
            assert!(matches!(decompress(&short, stored.clone()), Err(CinderError::Length { .. })));
            // one flipped byte: corrupt data or an md5 mismatch, never the wrong bytes
            let mut bad = stored;
            let mid = bad.len() / 2;
            bad[mid] ^= 0x40;
            assert!(unpack(&e, bad).is_err());
        }
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let data = vec![7u8; 50_000];
        let z = zlib(&data);
        let e = entry(&data, Compression::Zlib);
        let err = decompress(&e, z[..z.len() / 2].to_vec()).unwrap_err();
        assert!(matches!(err, CinderError::Decompress { .. } | CinderError::Length { .. }), "{err}");
    }
}
