//! Decompression of qcow2 compressed clusters (pure: compressed bytes in, exactly one cluster
//! out). QEMU's rules (`block/qcow2-threads.c`): deflate clusters are raw deflate streams without
//! a zlib header; zstd clusters are one or more zstd frames. The descriptor only counts 512-byte
//! sectors, so the input may carry trailing bytes of the next compressed cluster: decompression
//! stops once one cluster is produced. Producing less, or more, is corruption.

use super::header::{Compression, Qcow2Error};

/// Largest zstd window accepted (2^23 = 8 MiB): bounds the decoder's memory whatever a frame
/// header asks for. QEMU compresses at most a 2 MiB cluster per frame, so its windows are smaller.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

fn damaged(method: &'static str, what: String) -> Qcow2Error {
    Qcow2Error::Compressed { method, what }
}

/// Decompress `input` into `out`, which must be filled exactly (`out.len()` is the cluster size).
pub fn decompress(method: Compression, input: &[u8], out: &mut [u8]) -> Result<(), Qcow2Error> {
    match method {
        Compression::Deflate => inflate(input, out),
        Compression::Zstd => unzstd(input, out),
    }
}

fn inflate(input: &[u8], out: &mut [u8]) -> Result<(), Qcow2Error> {
    use flate2::{Decompress, FlushDecompress, Status};
    let err = |what: String| damaged("deflate", what);
    let mut d = Decompress::new(false);
    let status =
        d.decompress(input, out, FlushDecompress::Finish).map_err(|e| err(format!("invalid deflate data: {e}")))?;
    let produced = d.total_out();
    if produced < out.len() as u64 {
        return Err(err(format!("the data ends after {produced} bytes, short of the {}-byte cluster", out.len())));
    }
    if status == Status::StreamEnd {
        return Ok(());
    }
    // The cluster is full but the end of the stream was not seen yet: whatever follows must not
    // be more data (input that simply runs out, as QEMU allows, is fine).
    let rest = input.get(usize::try_from(d.total_in()).unwrap_or(usize::MAX)..).unwrap_or_default();
    let mut extra = [0u8; 1];
    match d.decompress(rest, &mut extra, FlushDecompress::Finish) {
        Ok(_) if d.total_out() > produced => {
            Err(err(format!("the data decompresses to more than the {}-byte cluster", out.len())))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(err(format!("invalid deflate data after the cluster's end: {e}"))),
    }
}

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), Qcow2Error> {
    use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};
    let err = |what: String| damaged("zstd", what);
    let mut d = Decoder::new().map_err(|e| err(format!("cannot create a decoder: {e}")))?;
    d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
        .map_err(|e| err(format!("cannot limit the window: {e}")))?;
    let size = out.len();
    let mut src = InBuffer::around(input);
    let mut dst = OutBuffer::around(out);
    // As QEMU: run until the cluster is full; a frame that ends early is followed by another.
    let mut hint = 1;
    while dst.pos() < size {
        let before = (src.pos(), dst.pos());
        hint = d.run(&mut src, &mut dst).map_err(|e| err(format!("invalid zstd data: {e}")))?;
        if (src.pos(), dst.pos()) == before {
            return Err(err(format!("the data ends after {} bytes, short of the {size}-byte cluster", dst.pos())));
        }
    }
    // A full cluster with the frame still open means it holds more than one cluster (or is cut).
    if hint != 0 {
        return Err(err(format!("the frame does not end with the {size}-byte cluster")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn cluster() -> Vec<u8> {
        (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// The encoders here only make inputs for the decoder's edge cases; images compressed by
    /// qemu-img are tested in tests/it/qcow2_plain.rs.
    #[test]
    fn deflate_exactly_one_cluster() {
        let c = cluster();
        let z = deflate(&c);
        let mut out = vec![0u8; c.len()];
        decompress(Compression::Deflate, &z, &mut out).unwrap();
        assert_eq!(out, c);
        // trailing bytes (the next compressed cluster in the same sector) are ignored
        let mut padded = z.clone();
        padded.extend_from_slice(&[0xa5; 300]);
        decompress(Compression::Deflate, &padded, &mut out).unwrap();
        // too short, too long, garbage
        let mut small = vec![0u8; c.len() + 1];
        assert!(decompress(Compression::Deflate, &z, &mut small).is_err(), "less than a cluster");
        let mut big = c.clone();
        big.extend_from_slice(b"more");
        let mut out2 = vec![0u8; c.len()];
        assert!(decompress(Compression::Deflate, &deflate(&big), &mut out2).is_err(), "more than a cluster");
        assert!(decompress(Compression::Deflate, &z[..z.len() / 2], &mut out2).is_err(), "cut short");
        assert!(decompress(Compression::Deflate, &[0xff; 64], &mut out2).is_err(), "garbage");
        assert!(decompress(Compression::Deflate, &[], &mut out2).is_err(), "empty");
    }

    #[test]
    fn zstd_exactly_one_cluster() {
        let c = cluster();
        let z = zstd::bulk::compress(&c, 3).unwrap();
        let mut out = vec![0u8; c.len()];
        decompress(Compression::Zstd, &z, &mut out).unwrap();
        assert_eq!(out, c);
        let mut padded = z.clone();
        padded.extend_from_slice(&[0u8; 100]);
        decompress(Compression::Zstd, &padded, &mut out).unwrap();
        // two frames making one cluster
        let mut two = zstd::bulk::compress(&c[..1000], 3).unwrap();
        two.extend(zstd::bulk::compress(&c[1000..], 3).unwrap());
        out.fill(0);
        decompress(Compression::Zstd, &two, &mut out).unwrap();
        assert_eq!(out, c);
        let mut big = c.clone();
        big.push(1);
        assert!(decompress(Compression::Zstd, &zstd::bulk::compress(&big, 3).unwrap(), &mut out).is_err());
        let mut small = vec![0u8; c.len() + 1];
        assert!(decompress(Compression::Zstd, &z, &mut small).is_err());
        assert!(decompress(Compression::Zstd, &z[..z.len() - 3], &mut out).is_err(), "cut short");
        assert!(decompress(Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff], &mut out).is_err());
        assert!(decompress(Compression::Zstd, &[0u8; 64], &mut out).is_err());
    }

    /// A frame asking for a window above the limit is refused before any allocation.
    #[test]
    fn zstd_window_is_bounded() {
        let c = vec![7u8; 4096];
        let mut enc = zstd::stream::raw::Encoder::new(1).unwrap();
        use zstd::stream::raw::{CParameter, Operation};
        enc.set_parameter(CParameter::WindowLog(ZSTD_WINDOW_LOG_MAX + 2)).unwrap();
        enc.set_parameter(CParameter::ContentSizeFlag(false)).unwrap();
        let mut buf = vec![0u8; 8192];
        let mut src = zstd::stream::raw::InBuffer::around(&c[..]);
        let mut dst = zstd::stream::raw::OutBuffer::around(&mut buf[..]);
        enc.run(&mut src, &mut dst).unwrap();
        let n = {
            let mut d2 = dst;
            enc.finish(&mut d2, true).unwrap();
            d2.pos()
        };
        let mut out = vec![0u8; 4096];
        let r = decompress(Compression::Zstd, &buf[..n], &mut out);
        let e = r.expect_err("a window above the limit was accepted");
        assert!(e.to_string().contains("memory"), "{e}");
    }
}
