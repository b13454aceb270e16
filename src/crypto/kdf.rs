//! Argon2 for LUKS2 key slots (`argon2i` / `argon2id`, always version 0x13).
//!
//! A LUKS2 header chooses how much memory a key slot costs (up to 4 GiB), so the derivation is
//! capped by the caller's `max_memory_kib` and serialised process-wide: at most one Argon2
//! derivation runs at a time, whatever the number of threads trying key slots, so that parallel
//! unlock attempts cannot multiply the memory footprint. The work memory is ours (not the crate's
//! internal allocation) so that it can be zeroized afterwards, and an allocation failure is an
//! error instead of an abort.

use std::sync::Mutex;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroize;

use super::CryptoError;

/// The Argon2 variants LUKS2 uses (cryptsetup never writes `argon2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Argon2Variant {
    /// `argon2i`: data-independent memory access.
    I,
    /// `argon2id`: hybrid, cryptsetup's default.
    Id,
}

impl Argon2Variant {
    /// From the LUKS2 key slot `kdf.type` (`argon2i`, `argon2id`); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "argon2i" => Some(Argon2Variant::I),
            "argon2id" => Some(Argon2Variant::Id),
            _ => None,
        }
    }

    /// The LUKS2 name (`argon2i` or `argon2id`).
    pub fn name(self) -> &'static str {
        match self {
            Argon2Variant::I => "argon2i",
            Argon2Variant::Id => "argon2id",
        }
    }
}

/// Serialises Argon2 derivations process-wide (see the module docs).
static ARGON2_LOCK: Mutex<()> = Mutex::new(());

/// Derive `out.len()` bytes with Argon2 (version 0x13) from `password` and `salt`.
///
/// `time` is the iteration count, `memory_kib` the memory cost in KiB and `lanes` the
/// parallelism (computed sequentially here; the result does not depend on it being parallel).
/// Fails with [`CryptoError::KdfParams`] when `memory_kib` exceeds `max_memory_kib`, when a
/// parameter is out of Argon2's range (salt shorter than 8 bytes, fewer than 8 KiB per lane,
/// zero time or lanes, output shorter than 4 bytes, ...), or when the memory cannot be allocated.
/// Blocks while another thread runs an Argon2 derivation.
#[allow(clippy::too_many_arguments)]
pub fn argon2(
    variant: Argon2Variant,
    password: &[u8],
    salt: &[u8],
    time: u32,
    memory_kib: u32,
    lanes: u32,
    out: &mut [u8],
    max_memory_kib: u32,
) -> Result<(), CryptoError> {
    let name = variant.name();
    if memory_kib > max_memory_kib {
        return Err(CryptoError::KdfParams(format!(
            "{name} needs {memory_kib} KiB of memory, over the --max-kdf-memory cap of {max_memory_kib} KiB"
        )));
    }
    let out_len = out.len();
    let bad = |e: argon2::Error| {
        CryptoError::KdfParams(format!(
            "invalid {name} parameters (time {time}, memory {memory_kib} KiB, lanes {lanes}, salt {} bytes, \
             output {} bytes): {e}",
            salt.len(),
            out_len
        ))
    };
    let params = Params::new(memory_kib, time, lanes, Some(out_len)).map_err(bad)?;
    let algorithm = match variant {
        Argon2Variant::I => Algorithm::Argon2i,
        Argon2Variant::Id => Algorithm::Argon2id,
    };
    let ctx = Argon2::new(algorithm, Version::V0x13, params);
    let blocks = ctx.params().block_count();

    // A poisoned lock only means another derivation panicked; the guarded state is `()`.
    let _guard = ARGON2_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut memory: Vec<Block> = Vec::new();
    if memory.try_reserve_exact(blocks).is_err() {
        return Err(CryptoError::KdfParams(format!("cannot allocate {memory_kib} KiB of memory for {name}")));
    }
    memory.resize(blocks, Block::new());
    let result = ctx.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
    memory.iter_mut().for_each(Zeroize::zeroize);
    drop(memory);
    if result.is_err() {
        out.zeroize();
    }
    result.map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        v: Argon2Variant,
        pw: &[u8],
        salt: &[u8],
        t: u32,
        m: u32,
        p: u32,
        len: usize,
    ) -> Result<String, CryptoError> {
        let mut out = vec![0u8; len];
        argon2(v, pw, salt, t, m, p, &mut out, 1 << 20).map(|()| hex::encode(out))
    }

    /// Values computed with the reference implementation (libargon2 1 `argon2_hash`, through
    /// Python ctypes), which is what cryptsetup links.
    #[test]
    fn argon2_known_answers() {
        let salt: Vec<u8> = (0u8..32).collect();
        assert_eq!(
            run(Argon2Variant::Id, b"luks passphrase", &salt, 4, 32768, 4, 32).unwrap(),
            "a982fc6db4efbc8ffa22d2f1a4d30d236fdab18443716a783cd9cdbf91ff32a6"
        );
        assert_eq!(
            run(Argon2Variant::I, b"luks passphrase", &salt, 3, 1024, 1, 64).unwrap(),
            "a7b5e24cd7da5db2d4168bc1a8bc775b17590790a2a453e2730c3a8165ef9102b9288a8f58ff87f89333a774273157175d515522a2e09a54e667d9683c237746"
        );
        assert_eq!(run(Argon2Variant::Id, b"", b"saltsalt", 1, 8, 1, 4).unwrap(), "477bbdbc");
    }

    /// The "password"/"somesalt" vectors of the reference implementation's test suite (`test.c`:
    /// t=2, m=2^16 KiB, p=1, version 0x13); RFC 9106's own vectors need a secret and associated
    /// data, which LUKS2 never uses and this API does not take.
    #[test]
    fn argon2_reference_suite_vector() {
        assert_eq!(
            run(Argon2Variant::I, b"password", b"somesalt", 2, 1 << 16, 1, 32).unwrap(),
            "c1628832147d9720c5bd1cfd61367078729f6dfb6f8fea9ff98158e0d7816ed0"
        );
        assert_eq!(
            run(Argon2Variant::Id, b"password", b"somesalt", 2, 1 << 16, 1, 32).unwrap(),
            "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
        );
    }

    #[test]
    fn argon2_memory_cap() {
        let mut out = [0u8; 32];
        let err = argon2(Argon2Variant::Id, b"pw", b"saltsalt", 4, 4_194_304, 4, &mut out, 1_048_576).unwrap_err();
        assert_eq!(
            err,
            CryptoError::KdfParams(
                "argon2id needs 4194304 KiB of memory, over the --max-kdf-memory cap of 1048576 KiB".into()
            )
        );
        // At the cap is fine.
        assert!(argon2(Argon2Variant::I, b"pw", b"saltsalt", 1, 64, 1, &mut out, 64).is_ok());
    }

    #[test]
    fn argon2_bad_params() {
        let salt = b"saltsalt";
        for (t, m, p, len, s) in [
            (0, 64, 1, 32, &salt[..]), // zero time
            (1, 64, 0, 32, &salt[..]), // zero lanes
            (1, 4, 1, 32, &salt[..]),  // under 8 KiB
            (1, 64, 9, 32, &salt[..]), // under 8 KiB per lane
            (1, 64, 1, 3, &salt[..]),  // output too short
            (1, 64, 1, 32, &b"short"[..]),
        ] {
            let mut out = vec![0u8; len];
            let r = argon2(Argon2Variant::Id, b"pw", s, t, m, p, &mut out, 1 << 20);
            assert!(matches!(r, Err(CryptoError::KdfParams(_))), "{t} {m} {p} {len}: {r:?}");
        }
    }

    #[test]
    fn argon2_variant_names() {
        for v in [Argon2Variant::I, Argon2Variant::Id] {
            assert_eq!(Argon2Variant::from_name(v.name()), Some(v));
        }
        assert_eq!(Argon2Variant::from_name("argon2d"), None);
        assert_eq!(Argon2Variant::from_name("pbkdf2"), None);
    }

    /// Two threads at once: both succeed and agree (the lock serialises, it does not fail).
    #[test]
    fn argon2_concurrent_callers() {
        let h: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(|| run(Argon2Variant::Id, b"pw", b"saltsalt", 1, 256, 2, 32).unwrap()))
            .collect();
        let r: Vec<String> = h.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(r[0], r[1]);
    }
}
