//! Anti-forensic information splitter, the merge half (LUKS1 spec §2.4; LUKS2 reuses it for
//! `"af": {"type": "luks1"}`): `stripes` blocks of key material collapse into one key.

use crate::crypto::HashAlg;
use zeroize::Zeroizing;

/// Merge `material` (`stripes` blocks of `key_len` bytes) into the `key_len`-byte key.
///
/// The caller guarantees `material.len() == key_len * stripes` with `stripes >= 1` (the key-slot
/// code checks both against the header before reading anything).
pub fn merge(material: &[u8], key_len: usize, stripes: usize, hash: HashAlg) -> Zeroizing<Vec<u8>> {
    assert!(stripes >= 1 && material.len() == key_len * stripes, "AF material length mismatch");
    let mut acc = Zeroizing::new(vec![0u8; key_len]);
    let blocks = material.chunks_exact(key_len);
    for (i, block) in blocks.enumerate() {
        xor_into(&mut acc, block);
        if i + 1 < stripes {
            diffuse(&mut acc, hash);
        }
    }
    acc
}

fn xor_into(acc: &mut [u8], block: &[u8]) {
    for (a, b) in acc.iter_mut().zip(block) {
        *a ^= b;
    }
}

/// H-diffuse: hash each digest-sized chunk, prefixed by its big-endian index.
fn diffuse(buf: &mut [u8], hash: HashAlg) {
    let ds = hash.output_len();
    for (i, chunk) in buf.chunks_mut(ds).enumerate() {
        let iv = (i as u32).to_be_bytes();
        let d = Zeroizing::new(hash.digest(&[&iv, chunk]));
        let n = chunk.len();
        chunk.copy_from_slice(&d[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split (the inverse) for round trips: random stripes, last one chosen to make the merge work.
    fn split(key: &[u8], stripes: usize, hash: HashAlg, seed: u8) -> Vec<u8> {
        let n = key.len();
        let mut out = Vec::with_capacity(n * stripes);
        let mut acc = vec![0u8; n];
        for i in 0..stripes - 1 {
            let block: Vec<u8> = (0..n).map(|j| (j as u8).wrapping_mul(31) ^ seed ^ (i as u8)).collect();
            xor_into(&mut acc, &block);
            diffuse(&mut acc, hash);
            out.extend_from_slice(&block);
        }
        let last: Vec<u8> = acc.iter().zip(key).map(|(a, k)| a ^ k).collect();
        out.extend_from_slice(&last);
        out
    }

    #[test]
    fn round_trip_with_partial_digest_chunks() {
        // 64-byte key with sha1 (20-byte digests) exercises the padding chunk.
        for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512] {
            let key: Vec<u8> = (0..64u8).collect();
            let m = split(&key, 4000, hash, 7);
            assert_eq!(&merge(&m, 64, 4000, hash)[..], &key[..]);
        }
    }

    #[test]
    fn one_stripe_is_identity() {
        let key = [5u8; 32];
        assert_eq!(&merge(&key, 32, 1, HashAlg::Sha256)[..], &key[..]);
    }
}
