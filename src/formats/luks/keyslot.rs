//! Opening key slots: derive a key from the passphrase, decrypt the slot's key material, AF-merge
//! it and accept the result only if the volume-key digest matches. Version-independent: LUKS1 and
//! LUKS2 both describe their slots as [`SlotPlan`]s. This is the only LUKS code that reads the
//! image (through [`ReadAt`]).

use super::af;
use crate::crypto::kdf::{self, Argon2Variant};
use crate::crypto::{CipherSpec, HashAlg, sector_cipher};
use crate::io::ReadAt;
use crate::keys::Secret;
use crate::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use zeroize::Zeroizing;

/// Largest PBKDF2 iteration count tried (key slot or volume-key digest): 2^27, about a minute of
/// one core for PBKDF2-SHA256 on current hardware. cryptsetup's own benchmark writes 1-10 million
/// for its default 2 s (LUKS1 `--iter-time`), so only a hand-made header asks for more; without a
/// bound a hostile header (`u32::MAX` iterations) holds a core for an hour per slot.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1 << 27;
/// Largest Argon2 work tried, as passes × KiB (2^27: 128 GiB of memory passes, about a minute):
/// cryptsetup's benchmark gives a few GiB-passes for its default 2 s. The memory alone is capped
/// separately by `--max-kdf-memory`.
pub const MAX_ARGON2_WORK_KIB: u64 = 1 << 27;

/// Why a slot's KDF cost is refused (before any work is done), if it is.
pub fn kdf_cost_refusal(kdf: &SlotKdf, digest: Option<&DigestCheck>) -> Option<String> {
    match kdf {
        SlotKdf::Pbkdf2 { iterations, .. } if *iterations > MAX_PBKDF2_ITERATIONS => {
            return Some(format!(
                "PBKDF2 with {iterations} iterations is over the bound of {MAX_PBKDF2_ITERATIONS} (hostile header?)"
            ));
        }
        SlotKdf::Argon2 { time, memory_kib, .. } if u64::from(*time) * u64::from(*memory_kib) > MAX_ARGON2_WORK_KIB => {
            return Some(format!(
                "Argon2 with {time} passes over {memory_kib} KiB is over the bound of {MAX_ARGON2_WORK_KIB} KiB-passes \
                 (hostile header?)"
            ));
        }
        _ => {}
    }
    match digest {
        Some(d) if d.iterations > MAX_PBKDF2_ITERATIONS => Some(format!(
            "volume key digest with {} PBKDF2 iterations is over the bound of {MAX_PBKDF2_ITERATIONS} (hostile header?)",
            d.iterations
        )),
        _ => None,
    }
}

/// How a slot turns a passphrase into the key that decrypts its key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotKdf {
    Pbkdf2 { hash: String, iterations: u32, salt: Vec<u8> },
    Argon2 { variant: Argon2Variant, time: u32, memory_kib: u32, lanes: u32, salt: Vec<u8> },
}

/// The volume-key digest a candidate key must match (PBKDF2 of the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestCheck {
    pub hash: String,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub digest: Vec<u8>,
}

/// Everything needed to try one key slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    pub id: u32,
    /// 0 = only when named, 1 = normal, 2 = preferred.
    pub priority: u32,
    pub kdf: SlotKdf,
    /// Offset of the key material from the start of the header.
    pub area_offset: u64,
    /// Size of the key-material area (an upper bound for the read).
    pub area_size: u64,
    /// Cipher spec of the key material and the length of its key.
    pub area_cipher: CipherSpec,
    pub area_key_len: usize,
    pub stripes: u32,
    pub af_hash: String,
    pub volume_key_len: usize,
    /// `None` when no digest binds this slot to the data segment: such a slot never opens the data.
    pub digest: Option<DigestCheck>,
}

/// Options for [`unlock`].
#[derive(Clone, Copy, Debug)]
pub struct UnlockOptions {
    /// Only try this slot.
    pub key_slot: Option<u32>,
    /// Refuse Argon2 slots needing more memory than this, in KiB.
    pub max_kdf_memory_kib: u32,
    /// Slots tried at once (PBKDF2 runs in parallel; Argon2 runs one at a time per process).
    pub parallel: usize,
}

/// A successfully opened volume key.
#[derive(Debug)]
pub struct Unlocked {
    pub volume_key: Secret,
    pub slot: u32,
}

/// Try the slots (all usable ones in priority order, or the one named) until one opens.
///
/// A wrong passphrase gives [`crate::ErrorKind::BadKey`]; damaged or unsupported slots give their own
/// error when no slot was merely wrong.
pub fn unlock(plans: &[SlotPlan], passphrase: &Secret, src: &dyn ReadAt, opts: UnlockOptions) -> Result<Unlocked> {
    let mut order: Vec<&SlotPlan> = match opts.key_slot {
        Some(n) => match plans.iter().find(|p| p.id == n) {
            Some(p) => vec![p],
            None => return Err(Error::bad_key(format!("key slot {n} is not active (or not usable)"))),
        },
        None => plans.iter().filter(|p| p.priority > 0).collect(),
    };
    if order.is_empty() {
        return Err(Error::bad_key("the header has no usable key slot"));
    }
    order.sort_by_key(|p| std::cmp::Reverse(p.priority));

    let next = AtomicUsize::new(0);
    let found = AtomicBool::new(false);
    let winner: Mutex<Option<Unlocked>> = Mutex::new(None);
    let failures: Mutex<Vec<(u32, Option<Error>)>> = Mutex::new(Vec::new());
    let workers = opts.parallel.clamp(1, order.len());
    let work = || {
        loop {
            if found.load(Ordering::Acquire) {
                return;
            }
            let i = next.fetch_add(1, Ordering::AcqRel);
            let Some(plan) = order.get(i) else { return };
            match try_slot(plan, passphrase, src, opts.max_kdf_memory_kib) {
                Ok(Some(key)) => {
                    found.store(true, Ordering::Release);
                    let mut w = winner.lock().unwrap_or_else(|e| e.into_inner());
                    if w.is_none() {
                        *w = Some(Unlocked { volume_key: key, slot: plan.id });
                    }
                }
                Ok(None) => failures.lock().unwrap_or_else(|e| e.into_inner()).push((plan.id, None)),
                Err(e) => {
                    log::debug!("key slot {}: {e}", plan.id);
                    failures.lock().unwrap_or_else(|e| e.into_inner()).push((plan.id, Some(e)));
                }
            }
        }
    };
    if workers == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    if let Some(u) = winner.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Ok(u);
    }
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|f| f.0);
    let wrong: Vec<String> = failures.iter().filter(|f| f.1.is_none()).map(|f| f.0.to_string()).collect();
    if !wrong.is_empty() {
        let plural = if wrong.len() == 1 { "" } else { "s" };
        return Err(Error::bad_key(format!(
            "no key slot opened with the given key (tried slot{plural} {})",
            wrong.join(", ")
        )));
    }
    Err(failures.into_iter().find_map(|f| f.1).unwrap_or_else(|| Error::bad_key("no key slot opened")))
}

/// Open one slot: `Ok(None)` means the passphrase is wrong for it.
fn try_slot(plan: &SlotPlan, passphrase: &Secret, src: &dyn ReadAt, max_mem_kib: u32) -> Result<Option<Secret>> {
    let ctx = |e: Error| e.context(format!("key slot {}", plan.id));
    let Some(digest) = &plan.digest else {
        // Unbound slot: its key would not decrypt the data. Treat as a wrong key without
        // spending a KDF pass on it.
        return Ok(None);
    };
    if let Some(why) = kdf_cost_refusal(&plan.kdf, Some(digest)) {
        return Err(ctx(Error::unsupported(why)));
    }
    let need = plan.volume_key_len.checked_mul(plan.stripes as usize).filter(|&n| n > 0);
    let Some(need) = need else { return Err(ctx(Error::corrupt("empty key material"))) };
    let read_len = need.div_ceil(512) * 512;
    if read_len as u64 > plan.area_size.max(need as u64).div_ceil(512) * 512 {
        return Err(ctx(Error::corrupt("key material larger than its area")));
    }

    let mut derived = Zeroizing::new(vec![0u8; plan.area_key_len]);
    match &plan.kdf {
        SlotKdf::Pbkdf2 { hash, iterations, salt } => HashAlg::from_name(hash).map_err(|e| ctx(e.into()))?.pbkdf2(
            passphrase.as_bytes(),
            salt,
            *iterations,
            &mut derived,
        ),
        SlotKdf::Argon2 { variant, time, memory_kib, lanes, salt } => {
            kdf::argon2(*variant, passphrase.as_bytes(), salt, *time, *memory_kib, *lanes, &mut derived, max_mem_kib)
                .map_err(|e| ctx(e.into()))?
        }
    }

    let mut material = Zeroizing::new(vec![0u8; read_len]);
    if !crate::io::within(plan.area_offset, material.len(), src.size()) {
        return Err(ctx(Error::corrupt(format!(
            "key material at byte {} runs past the end of the header file",
            plan.area_offset
        ))));
    }
    src.read_exact_at(&mut material, plan.area_offset).map_err(|e| ctx(e.context("reading key material")))?;
    let cipher = sector_cipher(&plan.area_cipher, &derived).map_err(|e| ctx(e.into()))?;
    cipher.decrypt(&mut material, 0, 512);
    let af_hash = HashAlg::from_name(&plan.af_hash).map_err(|e| ctx(e.into()))?;
    let candidate = af::merge(&material[..need], plan.volume_key_len, plan.stripes as usize, af_hash);

    let dh = HashAlg::from_name(&digest.hash).map_err(|e| ctx(e.into()))?;
    if digest.digest.is_empty() || digest.digest.len() > 64 || digest.iterations == 0 {
        return Err(ctx(Error::corrupt("malformed volume key digest")));
    }
    let mut check = Zeroizing::new(vec![0u8; digest.digest.len()]);
    dh.pbkdf2(&candidate, &digest.salt, digest.iterations, &mut check);
    if constant_time_eq(&check, &digest.digest) { Ok(Some(Secret::from_slice(&candidate))) } else { Ok(None) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn plan(kdf: SlotKdf, digest_iterations: u32) -> SlotPlan {
        SlotPlan {
            id: 0,
            priority: 1,
            kdf,
            area_offset: 4096,
            area_size: 128_000,
            area_cipher: CipherSpec::parse("aes", "xts-plain64").unwrap(),
            area_key_len: 64,
            stripes: 4000,
            af_hash: "sha256".into(),
            volume_key_len: 32,
            digest: Some(DigestCheck {
                hash: "sha256".into(),
                iterations: digest_iterations,
                salt: vec![0; 32],
                digest: vec![0; 20],
            }),
        }
    }

    /// Found by tests/it/hostile.rs (`luks1_pbkdf2_iterations_absurd_is_refused_fast`): a slot or
    /// digest asking for u32::MAX PBKDF2 iterations held a core for about an hour.
    #[test]
    fn absurd_kdf_costs_are_refused_before_any_work() {
        let src = vec![0u8; 256 * 1024];
        let pass = Secret::from_slice(b"pw");
        let opts = UnlockOptions { key_slot: None, max_kdf_memory_kib: 1 << 20, parallel: 1 };
        let pb = |i| SlotKdf::Pbkdf2 { hash: "sha256".into(), iterations: i, salt: vec![0; 32] };
        let a2 =
            |t, m| SlotKdf::Argon2 { variant: Argon2Variant::Id, time: t, memory_kib: m, lanes: 1, salt: vec![0; 32] };
        let t0 = std::time::Instant::now();
        for p in [plan(pb(u32::MAX), 1000), plan(pb(1000), u32::MAX), plan(a2(u32::MAX, 1 << 20), 1000)] {
            let e = unlock(&[p], &pass, &src, opts).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("over the bound"), "{e}");
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(kdf_cost_refusal(&pb(MAX_PBKDF2_ITERATIONS), None), None);
        assert_eq!(kdf_cost_refusal(&a2(4, 1 << 20), None), None);
    }
}
