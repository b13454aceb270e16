//! PBKDF2-HMAC-SHA256 (RFC 8018) on the SHA-256 compression function, the KDF of nearly every
//! LUKS key slot. [`HashAlg::pbkdf2`](super::HashAlg::pbkdf2) uses it for SHA-256 and the generic
//! `pbkdf2` crate for every other hash (and the tests use that crate as the reference).
//!
//! The HMAC key block is compressed once into an inner (`key ^ ipad`) and an outer (`key ^ opad`)
//! state. Every `U_j` after the first is `H(opad_key || H(ipad_key || U_{j-1}))` with a 32-byte
//! message after one key block, so each iteration is exactly two compressions of one pre-padded
//! block (`U` or the inner digest, `0x80`, zeros, bit length 768), starting from a copy of those
//! states: no buffering, no length bookkeeping, no hasher clones. `sha2::block_api::compress256`
//! picks SHA-NI at run time when the CPU has it.
//!
//! The output blocks `T_1, T_2, ...` are independent chains, computed together in [`LANES`]-wide
//! groups (inner compressions of every lane, then outer ones) so that the out-of-order core
//! overlaps one lane's compression with the other's: one SHA-NI compression is a chain of
//! dependent `sha256rnds2`, latency-bound when alone.

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// How many output blocks are computed together; a 64-byte key (AES-256-XTS) is two. CPU ms per
/// 1,000,000 iterations from `crypto::pbkdf2::bench` (2-core AMD EPYC with SHA-NI, another build
/// running; lowest min to highest median over three runs of five samples each):
///
/// | key bytes | `pbkdf2` crate | 1 lane (blocks in turn) | 2 lanes | 4 lanes |
/// |-----------|----------------|-------------------------|---------|---------|
/// | 32        | 104–107        | 83–84                   | 83–85   | 83–85   |
/// | 64        | 215–219        | 167–172                 | 107–111 | 107–109 |
/// | 128       | 427–439        | 332–339                 | 213–220 | 213–219 |
///
/// Two lanes take 64 % of the time of one lane at a time; four are no faster than two (two
/// already keep the SHA units busy), so two it is.
const LANES: usize = 2;

type State = [u32; 8];
type Block = [u8; 64];

/// PBKDF2-HMAC-SHA256 of `password` and `salt` with `rounds` iterations (0 counts as 1, as in
/// the `pbkdf2` crate), filling `out`.
pub(super) fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    pbkdf2_lanes::<LANES>(password, salt, rounds, out);
}

/// [`pbkdf2_hmac_sha256`] computing up to `MAX` (1, 2 or 4) output blocks at a time: groups of
/// 4, then 2, then 1 as the blocks left allow.
fn pbkdf2_lanes<const MAX: usize>(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    let key = HmacKey::new(password);
    let rounds = rounds.saturating_sub(1);
    let (mut index, mut done) = (1u32, 0);
    while done < out.len() {
        let rest = &mut out[done..];
        let group = match rest.len().div_ceil(32).min(MAX) {
            4.. => Lanes::<4>::run(&key, salt, rounds, index, rest),
            2 | 3 => Lanes::<2>::run(&key, salt, rounds, index, rest),
            _ => Lanes::<1>::run(&key, salt, rounds, index, rest),
        };
        let next = u32::try_from(group).ok().and_then(|n| index.checked_add(n));
        index = next.expect("PBKDF2 output of more than 2^32 - 1 blocks");
        done += 32 * group;
    }
}

/// The HMAC-SHA256 states after the key block, `key ^ ipad` and `key ^ opad`.
#[derive(Zeroize, ZeroizeOnDrop)]
struct HmacKey {
    inner: State,
    outer: State,
}

impl HmacKey {
    fn new(password: &[u8]) -> Self {
        let mut block: Block = [0; 64];
        if password.len() > 64 {
            let mut digest = <sha2::Sha256 as sha2::Digest>::digest(password);
            block[..32].copy_from_slice(&digest);
            digest.zeroize();
        } else {
            block[..password.len()].copy_from_slice(password);
        }
        let mut key = HmacKey { inner: H0, outer: H0 };
        for (state, pad) in [(&mut key.inner, 0x36), (&mut key.outer, 0x5c)] {
            let mut padded = block.map(|b| b ^ pad);
            compress256(state, &[padded]);
            padded.zeroize();
        }
        block.zeroize();
        key
    }
}

/// `N` output blocks in progress: `t` accumulates the xor of the `U`s, `block[0..32]` holds the
/// last `U` (then the inner digest) with the padding of a 96-byte message behind it, `state` is
/// the running compression.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Lanes<const N: usize> {
    t: [State; N],
    block: [Block; N],
    state: [State; N],
}

impl<const N: usize> Lanes<N> {
    /// Blocks `index .. index + N` into the start of `out` (the last one cut short if `out` is),
    /// after `rounds` iterations past the first; returns `N`.
    fn run(key: &HmacKey, salt: &[u8], rounds: u32, index: u32, out: &mut [u8]) -> usize {
        let mut lanes = Self::first(key, salt, index);
        lanes.iterate(key, rounds);
        lanes.write(out);
        N
    }

    /// `U_1` of blocks `index .. index + N`: the HMAC of `salt || INT(i)`, whose message (any
    /// length) goes through the inner state with ordinary SHA-256 padding.
    fn first(key: &HmacKey, salt: &[u8], index: u32) -> Self {
        let len = (salt.len() + 4 + 9).next_multiple_of(64);
        let mut padded = vec![0u8; len];
        padded[..salt.len()].copy_from_slice(salt);
        padded[salt.len() + 4] = 0x80;
        padded[len - 8..].copy_from_slice(&((64 + salt.len() as u64 + 4) * 8).to_be_bytes());

        let mut lanes = Lanes { t: [[0; 8]; N], block: [Self::padding(); N], state: [key.inner; N] };
        for (i, state) in lanes.state.iter_mut().enumerate() {
            padded[salt.len()..salt.len() + 4].copy_from_slice(&index.wrapping_add(i as u32).to_be_bytes());
            for block in padded.chunks_exact(64) {
                compress256(state, &[block.try_into().expect("64-byte chunk")]);
            }
        }
        lanes.outer(key);
        lanes.t = lanes.state;
        lanes
    }

    /// A block whose first 32 bytes are the message: `0x80`, zeros, and 768 (the bit length of
    /// one key block plus 32 bytes) as a big-endian u64.
    fn padding() -> Block {
        let mut b = [0; 64];
        b[32] = 0x80;
        b[62] = 0x03;
        b
    }

    /// Load each lane's state (a digest) into its block and compress it from the outer key state.
    fn outer(&mut self, key: &HmacKey) {
        for (state, block) in self.state.iter_mut().zip(&mut self.block) {
            put(block, state);
            *state = key.outer;
            compress256(state, std::slice::from_ref(block));
        }
    }

    /// `rounds` more iterations: `U_j` from `U_{j-1}` (in `state`), xored into `t`.
    ///
    /// Not inlined: `key` must stay an array in memory. Inlined into the binary, LLVM split the
    /// key states into scalars and rebuilt `*state = key.inner` from eight 4-byte stores, which
    /// `compress256`'s 16-byte loads cannot forward from: a stall before every compression
    /// (`luksfs cat` of a 1,000,000-iteration slot took 167 ms of CPU instead of 120).
    #[inline(never)]
    fn iterate(&mut self, key: &HmacKey, rounds: u32) {
        for _ in 0..rounds {
            for (state, block) in self.state.iter_mut().zip(&mut self.block) {
                put(block, state);
                *state = key.inner;
                compress256(state, std::slice::from_ref(block));
            }
            self.outer(key);
            for (t, u) in self.t.iter_mut().zip(&self.state) {
                for (t, u) in t.iter_mut().zip(u) {
                    *t ^= u;
                }
            }
        }
    }

    /// The `T` blocks, big-endian, into the start of `out` (as many as fit).
    fn write(&self, out: &mut [u8]) {
        for (chunk, t) in out.chunks_mut(32).zip(&self.t) {
            let mut bytes = [0u8; 32];
            put(&mut bytes, t);
            chunk.copy_from_slice(&bytes[..chunk.len()]);
            bytes.zeroize();
        }
    }
}

/// `state` as big-endian bytes into the start of `buf`.
fn put(buf: &mut [u8], state: &State) {
    for (b, w) in buf.chunks_exact_mut(4).zip(state) {
        b.copy_from_slice(&w.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::xts::tests::Rng;

    fn reference(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, &mut out);
        out
    }

    fn ours<const N: usize>(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        pbkdf2_lanes::<N>(password, salt, rounds, &mut out);
        out
    }

    fn hex_of(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> String {
        let out = ours::<LANES>(password, salt, rounds, len);
        assert_eq!(out, ours::<1>(password, salt, rounds, len));
        assert_eq!(out, ours::<4>(password, salt, rounds, len));
        hex::encode(out)
    }

    /// Published PBKDF2-HMAC-SHA256 vectors: RFC 7914 section 11 and the RFC 6070 inputs with
    /// SHA-256 (as listed in e.g. the Go and Python test suites).
    #[test]
    fn known_answers() {
        let cases: [(&[u8], &[u8], u32, &str); 7] = [
            (b"password", b"salt", 1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
            (b"password", b"salt", 2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
            (b"password", b"salt", 4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9",
            ),
            (b"pass\0word", b"sa\0lt", 4096, "89b69d0516f829893c696226650a8687"),
            (
                b"passwd",
                b"salt",
                1,
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
                 49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
            ),
            (
                b"Password",
                b"NaCl",
                80000,
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
                 a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
            ),
        ];
        for (pw, salt, rounds, want) in cases {
            assert_eq!(hex_of(pw, salt, rounds, want.len() / 2), want, "{:?} {rounds}", String::from_utf8_lossy(pw));
        }
    }

    /// Password lengths around the 64-byte HMAC block (longer ones are hashed first), the empty
    /// password and salt, zero rounds, and output lengths that are not a multiple of 32.
    #[test]
    fn edges_against_pbkdf2_crate() {
        let salt: Vec<u8> = (0u8..32).collect();
        for pw_len in [0, 1, 32, 63, 64, 65, 100, 200] {
            let pw = vec![0xa5u8; pw_len];
            for len in [0, 1, 20, 31, 32, 33, 64, 65, 96, 100, 128, 129, 160, 200] {
                for rounds in [0, 1, 2, 3] {
                    assert_eq!(hex_of(&pw, &salt, rounds, len), hex::encode(reference(&pw, &salt, rounds, len)));
                }
            }
        }
        // Salt lengths around every place the 4-byte block index and the padding can fall.
        for salt_len in (0..=140).chain([1000]) {
            let salt = vec![0x3cu8; salt_len];
            assert_eq!(hex_of(b"pw", &salt, 2, 100), hex::encode(reference(b"pw", &salt, 2, 100)), "salt {salt_len}");
        }
    }

    /// Random passwords, salts, lengths and iteration counts against the `pbkdf2` crate.
    #[test]
    fn differential() {
        let mut rng = Rng::new(0x9bdf_2e5a);
        for _ in 0..300 {
            let mut pw = vec![0u8; rng.below(150) as usize];
            let mut salt = vec![0u8; rng.below(100) as usize];
            rng.fill(&mut pw);
            rng.fill(&mut salt);
            let len = 1 + rng.below(300) as usize;
            let rounds = rng.below(60) as u32;
            let want = reference(&pw, &salt, rounds, len);
            assert_eq!(ours::<LANES>(&pw, &salt, rounds, len), want, "pw {pw:02x?} salt {salt:02x?} {rounds} {len}");
            assert_eq!(ours::<1>(&pw, &salt, rounds, len), want);
            assert_eq!(ours::<4>(&pw, &salt, rounds, len), want);
        }
    }
}

/// Speed: `cargo test --release --lib crypto::pbkdf2::bench -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use std::time::Instant;

    const ROUNDS: u32 = 1_000_000;

    /// CPU ms of this thread spent in `f` (`/proc/thread-self/schedstat`; wall time without it).
    fn cpu_ms(f: impl FnOnce()) -> f64 {
        let ns = || std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split(' ').next()?.parse::<u64>().ok();
        let (before, wall) = (ns(), Instant::now());
        f();
        match (before, ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e6,
            _ => wall.elapsed().as_secs_f64() * 1e3,
        }
    }

    /// CPU ms per derivation of `len` bytes with 1,000,000 iterations, min and median of five
    /// samples, each the mean of three derivations (the CPU clock may tick in 4 ms steps).
    #[test]
    #[ignore = "benchmark"]
    fn bench() {
        let salt = [7u8; 32];
        type Kdf = fn(&[u8], &[u8], u32, &mut [u8]);
        let variants: [(&str, Kdf); 4] = [
            ("pbkdf2 crate", ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>),
            ("1 lane (sequential)", super::pbkdf2_lanes::<1>),
            ("2 lanes", super::pbkdf2_lanes::<2>),
            ("4 lanes", super::pbkdf2_lanes::<4>),
        ];
        for len in [32, 64, 128] {
            let mut out = vec![0u8; len];
            for (label, f) in variants {
                let mut ms: Vec<f64> = (0..5)
                    .map(|_| cpu_ms(|| (0..3).for_each(|_| f(b"luks passphrase", &salt, ROUNDS, &mut out))) / 3.0)
                    .collect();
                ms.sort_by(f64::total_cmp);
                println!("{len:>3}-byte key, {label:<20} ms per 1M iterations: min {:6.1} median {:6.1}", ms[0], ms[2]);
            }
        }
    }
}
