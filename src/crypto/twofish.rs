//! Twofish with precomputed key-dependent S-boxes ("full keying" in the Twofish paper).
//!
//! The `twofish` 0.8 crate recomputes the q-permutations and the MDS products for every
//! g-function call: about 3 MB/s here, too slow for a disk image. This version builds four
//! 256-entry tables (`q`-chain with the key's S words, then the MDS column) once per key, so a
//! g-function is four lookups: ~50x faster. The `twofish` crate stays the test oracle (plus the
//! paper's known answers and libgcrypt-made sector references in `crypto::tests`).
//!
//! Like the kernel's and libgcrypt's table-driven Twofish, the lookups are indexed by
//! key-and-data-dependent bytes, so a process sharing the CPU cache could in principle time them.
//! The tables and subkeys are zeroized on drop; `Debug` shows nothing of them.

use std::fmt;

use aes::cipher::consts::{U1, U16, U32};
use aes::cipher::inout::InOut;
use aes::cipher::{
    Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InvalidLength, Key, KeyInit, KeySizeUser,
    ParBlocksSizeUser,
};
use zeroize::Zeroize;

/// The 4-bit permutations t0..t3 defining q0 and q1 (Twofish paper, section 4.3.5).
const QBOX: [[[u8; 16]; 4]; 2] = [
    [
        [0x8, 0x1, 0x7, 0xD, 0x6, 0xF, 0x3, 0x2, 0x0, 0xB, 0x5, 0x9, 0xE, 0xC, 0xA, 0x4],
        [0xE, 0xC, 0xB, 0x8, 0x1, 0x2, 0x3, 0x5, 0xF, 0x4, 0xA, 0x6, 0x7, 0x0, 0x9, 0xD],
        [0xB, 0xA, 0x5, 0xE, 0x6, 0xD, 0x9, 0x0, 0xC, 0x8, 0xF, 0x3, 0x2, 0x4, 0x7, 0x1],
        [0xD, 0x7, 0xF, 0x4, 0x1, 0x2, 0x6, 0xE, 0x9, 0xB, 0x3, 0x0, 0x8, 0x5, 0xC, 0xA],
    ],
    [
        [0x2, 0x8, 0xB, 0xD, 0xF, 0x7, 0x6, 0xE, 0x3, 0x1, 0x9, 0x4, 0x0, 0xA, 0xC, 0x5],
        [0x1, 0xE, 0x2, 0xB, 0x4, 0xC, 0x3, 0x7, 0x6, 0xD, 0xA, 0x5, 0xF, 0x9, 0x0, 0x8],
        [0x4, 0xC, 0x7, 0x5, 0x1, 0x6, 0x9, 0xA, 0x0, 0xE, 0xD, 0x8, 0x2, 0xB, 0x3, 0xF],
        [0xB, 0x9, 0x5, 0x1, 0xC, 0x3, 0xD, 0xE, 0x6, 0x4, 0x7, 0xF, 0x2, 0x0, 0x8, 0xA],
    ],
];

/// The Reed-Solomon matrix deriving the S words from the key (over GF(2^8) mod 0x14D).
const RS: [[u8; 8]; 4] = [
    [0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e],
    [0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5],
    [0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19],
    [0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03],
];

/// Low bytes of the field polynomials: MDS 0x169, RS 0x14D.
const MDS_POLY: u8 = 0x69;
const RS_POLY: u8 = 0x4d;

/// Twofish with key-dependent lookup tables; 128-, 192- or 256-bit keys.
#[derive(Clone)]
pub(super) struct Twofish {
    /// `sbox[j][x]`: the g-function's contribution of input byte `j` with value `x`.
    sbox: [[u32; 256]; 4],
    /// The 40 round subkeys.
    k: [u32; 40],
}

impl fmt::Debug for Twofish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Twofish { .. }")
    }
}

impl Drop for Twofish {
    fn drop(&mut self) {
        self.sbox.zeroize();
        self.k.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Twofish {}

fn gf_mult(mut a: u8, mut b: u8, poly: u8) -> u8 {
    let mut r = 0;
    for _ in 0..8 {
        r ^= b & 0u8.wrapping_sub(a & 1);
        a >>= 1;
        b = (b << 1) ^ (poly & 0u8.wrapping_sub(b >> 7));
    }
    r
}

/// q0 (`i == 0`) or q1 (`i == 1`) of `x`.
fn q(i: usize, x: u8) -> u8 {
    let t = &QBOX[i];
    let (a0, b0) = (x >> 4, x & 15);
    let a1 = a0 ^ b0;
    let b1 = (a0 ^ ((b0 >> 1) | (b0 << 3)) ^ (a0 << 3)) & 15;
    let (a2, b2) = (t[0][a1 as usize], t[1][b1 as usize]);
    let a3 = a2 ^ b2;
    let b3 = (a2 ^ ((b2 >> 1) | (b2 << 3)) ^ (a2 << 3)) & 15;
    let (a4, b4) = (t[2][a3 as usize], t[3][b3 as usize]);
    (b4 << 4) | a4
}

/// Column `j` of the MDS matrix times `x`, as a little-endian word.
fn mds_column(j: usize, x: u8) -> u32 {
    let x5b = gf_mult(x, 0x5b, MDS_POLY);
    let xef = gf_mult(x, 0xef, MDS_POLY);
    u32::from_le_bytes(match j {
        0 => [x, x5b, xef, xef],
        1 => [xef, xef, x5b, x],
        2 => [x5b, xef, x, xef],
        _ => [x5b, x, xef, x5b],
    })
}

/// Byte `j` of the function h's q-chain (before the MDS matrix), with key words `l`
/// (`l.len()` = 2, 3 or 4, as bytes): the paper's section 4.3.2.
fn h_byte(j: usize, x: u8, l: &[[u8; 4]]) -> u8 {
    // Which q (0 or 1) each stage applies to byte j: rows are the stages for l[3], l[2], l[1],
    // l[0] and the final q.
    const QORD: [[usize; 4]; 5] = [[1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1], [1, 0, 1, 0]];
    let mut y = x;
    if l.len() == 4 {
        y = q(QORD[0][j], y) ^ l[3][j];
    }
    if l.len() >= 3 {
        y = q(QORD[1][j], y) ^ l[2][j];
    }
    y = q(QORD[2][j], y) ^ l[1][j];
    y = q(QORD[3][j], y) ^ l[0][j];
    q(QORD[4][j], y)
}

/// The function h: q-chains then the MDS matrix.
fn h(x: u32, l: &[[u8; 4]]) -> u32 {
    let b = x.to_le_bytes();
    (0..4).fold(0, |acc, j| acc ^ mds_column(j, h_byte(j, b[j], l)))
}

impl Twofish {
    fn with_key(key: &[u8]) -> Self {
        let k = key.len() / 8; // 2, 3 or 4 64-bit words
        let mut even = [[0u8; 4]; 4]; // Me: key words 0, 2, 4, 6
        let mut odd = [[0u8; 4]; 4]; // Mo: key words 1, 3, 5, 7
        let mut s = [[0u8; 4]; 4]; // S, reversed: s[0] = S_{k-1}
        for i in 0..k {
            let m = &key[8 * i..8 * i + 8];
            even[i].copy_from_slice(&m[..4]);
            odd[i].copy_from_slice(&m[4..]);
            for (r, row) in RS.iter().enumerate() {
                s[k - 1 - i][r] = row.iter().zip(m).fold(0, |acc, (&c, &b)| acc ^ gf_mult(c, b, RS_POLY));
            }
        }
        let mut tf = Twofish { sbox: [[0; 256]; 4], k: [0; 40] };
        const RHO: u32 = 0x0101_0101;
        for i in 0..20u32 {
            let a = h(RHO.wrapping_mul(2 * i), &even[..k]);
            let b = h(RHO.wrapping_mul(2 * i + 1), &odd[..k]).rotate_left(8);
            tf.k[2 * i as usize] = a.wrapping_add(b);
            tf.k[2 * i as usize + 1] = a.wrapping_add(b).wrapping_add(b).rotate_left(9);
        }
        for (j, table) in tf.sbox.iter_mut().enumerate() {
            for (x, entry) in table.iter_mut().enumerate() {
                *entry = mds_column(j, h_byte(j, x as u8, &s[..k]));
            }
        }
        even.zeroize();
        odd.zeroize();
        s.zeroize();
        tf
    }

    #[inline(always)]
    fn g(&self, x: u32) -> u32 {
        let b = x.to_le_bytes();
        self.sbox[0][b[0] as usize]
            ^ self.sbox[1][b[1] as usize]
            ^ self.sbox[2][b[2] as usize]
            ^ self.sbox[3][b[3] as usize]
    }
}

impl KeySizeUser for Twofish {
    type KeySize = U32;
}

impl KeyInit for Twofish {
    fn new(key: &Key<Self>) -> Self {
        Self::with_key(key)
    }

    fn new_from_slice(key: &[u8]) -> Result<Self, InvalidLength> {
        match key.len() {
            16 | 24 | 32 => Ok(Self::with_key(key)),
            _ => Err(InvalidLength),
        }
    }
}

impl BlockSizeUser for Twofish {
    type BlockSize = U16;
}

impl ParBlocksSizeUser for Twofish {
    type ParBlocksSize = U1;
}

fn words(b: &[u8]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

fn store(out: &mut [u8], w: [u32; 4]) {
    for (o, w) in out.chunks_exact_mut(4).zip(w) {
        o.copy_from_slice(&w.to_le_bytes());
    }
}

impl BlockCipherEncBackend for Twofish {
    #[inline]
    fn encrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
        let mut p = words(block.get_in());
        for (w, k) in p.iter_mut().zip(&self.k) {
            *w ^= k;
        }
        for r in 0..8 {
            let k = &self.k[4 * r + 8..4 * r + 12];
            let t1 = self.g(p[1].rotate_left(8));
            let t0 = self.g(p[0]).wrapping_add(t1);
            p[2] = (p[2] ^ t0.wrapping_add(k[0])).rotate_right(1);
            p[3] = p[3].rotate_left(1) ^ t1.wrapping_add(t0).wrapping_add(k[1]);
            let t1 = self.g(p[3].rotate_left(8));
            let t0 = self.g(p[2]).wrapping_add(t1);
            p[0] = (p[0] ^ t0.wrapping_add(k[2])).rotate_right(1);
            p[1] = p[1].rotate_left(1) ^ t1.wrapping_add(t0).wrapping_add(k[3]);
        }
        let k = &self.k;
        store(block.get_out(), [p[2] ^ k[4], p[3] ^ k[5], p[0] ^ k[6], p[1] ^ k[7]]);
    }
}

impl BlockCipherDecBackend for Twofish {
    #[inline]
    fn decrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
        let c = words(block.get_in());
        let k = &self.k;
        let mut c = [c[2] ^ k[6], c[3] ^ k[7], c[0] ^ k[4], c[1] ^ k[5]];
        for r in (0..8).rev() {
            let k = &self.k[4 * r + 8..4 * r + 12];
            let t1 = self.g(c[3].rotate_left(8));
            let t0 = self.g(c[2]).wrapping_add(t1);
            c[0] = c[0].rotate_left(1) ^ t0.wrapping_add(k[2]);
            c[1] = (c[1] ^ t1.wrapping_add(t0).wrapping_add(k[3])).rotate_right(1);
            let t1 = self.g(c[1].rotate_left(8));
            let t0 = self.g(c[0]).wrapping_add(t1);
            c[2] = c[2].rotate_left(1) ^ t0.wrapping_add(k[0]);
            c[3] = (c[3] ^ t1.wrapping_add(t0).wrapping_add(k[1])).rotate_right(1);
        }
        for (w, k) in c.iter_mut().zip(&self.k) {
            *w ^= k;
        }
        store(block.get_out(), c);
    }
}

impl BlockCipherEncrypt for Twofish {
    fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U16>) {
        f.call(self)
    }
}

impl BlockCipherDecrypt for Twofish {
    fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U16>) {
        f.call(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::xts::tests::Rng;
    use aes::cipher::array::Array;

    fn enc(key: &[u8], pt: &[u8; 16]) -> [u8; 16] {
        let mut b = Array::from(*pt);
        BlockCipherEncrypt::encrypt_block(&Twofish::new_from_slice(key).unwrap(), &mut b);
        b.0
    }

    /// The Twofish paper's known answers (ECB, all-zero plaintext).
    #[test]
    fn paper_vectors() {
        let zero = [0u8; 16];
        assert_eq!(hex::encode(enc(&[0u8; 16], &zero)), "9f589f5cf6122c32b6bfec2f2ae8c35a");
        let k192 = hex::decode("0123456789abcdeffedcba98765432100011223344556677").unwrap();
        assert_eq!(hex::encode(enc(&k192, &zero)), "cfd1d2e5a9be9cdf501f13b892bd2248");
        let k256 = hex::decode("0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff").unwrap();
        assert_eq!(hex::encode(enc(&k256, &zero)), "37527be0052334b89f0cfccae87cfa20");
    }

    /// Against the `twofish` crate: random keys of every size and random blocks, both ways.
    #[test]
    fn matches_twofish_crate() {
        let mut rng = Rng::new(42);
        for round in 0..300 {
            let mut key = vec![0u8; [16, 24, 32][round % 3]];
            rng.fill(&mut key);
            let ours = Twofish::new_from_slice(&key).unwrap();
            let theirs = twofish::Twofish::new_from_slice(&key).unwrap();
            let mut blocks = [Array::<u8, U16>::default(); 5];
            for b in &mut blocks {
                rng.fill(b);
            }
            let mut a = blocks;
            let mut b = blocks;
            ours.encrypt_blocks(&mut a);
            theirs.encrypt_blocks(&mut b);
            assert_eq!(a, b, "key {}", hex::encode(&key));
            ours.decrypt_blocks(&mut a);
            assert_eq!(a, blocks);
        }
    }

    #[test]
    fn key_lengths_and_debug() {
        for n in 0..40 {
            assert_eq!(Twofish::new_from_slice(&vec![7u8; n]).is_ok(), matches!(n, 16 | 24 | 32), "{n}");
        }
        let t = Twofish::new_from_slice(&[0x5a; 32]).unwrap();
        assert_eq!(format!("{t:?}"), "Twofish { .. }");
    }
}
