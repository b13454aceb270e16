//! The few system calls behind safe functions (crosvm's `sys` split: OS specifics fenced in one
//! place, safe functions outward); with `uring`, the only module with `unsafe` code. Most keep
//! secrets out of swap and core dumps; [`pin_current_thread`] serves the per-CPU FUSE queues.
//!
//! * [`harden_process`]: `prctl(PR_SET_DUMPABLE, 0)` at start-up, so the process leaves no core
//!   dump and cannot be `ptrace`d (or read through `/proc/PID/mem`) by another process of the same
//!   user.
//! * [`protect`] / [`unprotect`]: `mlock` the pages holding a secret (passphrase, volume key) so
//!   they are never written to swap, and `madvise(MADV_DONTDUMP)` them so that even a dump taken
//!   with dumping re-enabled leaves them out. Pages are reference-counted, because `mlock` does
//!   not nest and two small secrets often share a page: the page is unlocked only when the last
//!   secret on it is gone.
//!
//! Both are best effort: `mlock` fails when `RLIMIT_MEMLOCK` is exhausted (an unprivileged user
//! has 8 MiB by default on current kernels, 64 KiB on old ones); luksfs then warns once and goes
//! on, since refusing to run would not make the secret safer.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Run the calling thread on `cpu` only (`sched_setaffinity`).
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it (cpu < CPU_SETSIZE);
    // sched_setaffinity(0, ...) reads it and affects only the calling thread.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Take ownership of a descriptor another process sent us over a Unix socket (`SCM_RIGHTS`, e.g.
/// `/dev/fuse` from fusermount3). `fd` must come straight from the received control message:
/// the kernel installed it in our table for us, and nothing else owns it.
pub fn adopt_received_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel created this descriptor for us when the message was received; no other
    // owner exists, so the OwnedFd is its only owner and closes it exactly once.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Make the process non-dumpable: no core dump, no `ptrace` attach or `/proc/PID/mem` read by
/// other processes of the same user. Returns whether the kernel accepted it.
pub fn harden_process() -> bool {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        log::warn!("prctl(PR_SET_DUMPABLE, 0) failed: {}", std::io::Error::last_os_error());
    }
    r == 0
}

/// Whether the process is currently dumpable (`prctl(PR_GET_DUMPABLE)`).
pub fn is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE only returns a value; it touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    r != 0
}

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p).ok().filter(|&p| p.is_power_of_two()).unwrap_or(4096)
    })
}

/// Lock counts of the pages holding secrets (page address → number of live secrets on it).
static PAGES: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);
static WARNED: AtomicBool = AtomicBool::new(false);

fn pages(addr: usize, len: usize) -> impl Iterator<Item = usize> {
    let ps = page_size();
    let first = addr & !(ps - 1);
    let end = addr.saturating_add(len);
    (first..end).step_by(ps)
}

/// Keep the memory `[addr, addr + len)` out of swap and core dumps until [`unprotect`] is called
/// for the same range. Returns false (after one warning per process) when the kernel refused the
/// lock. `len == 0` does nothing.
///
/// Calling this on memory the caller does not own is harmless to memory safety (the kernel checks
/// the range; nothing is read or written), but the range must be unprotected exactly once.
pub fn protect(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let ps = page_size();
    let mut ok = true;
    let mut guard = PAGES.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    for page in pages(addr, len) {
        let n = map.entry(page).or_insert(0);
        *n += 1;
        if *n > 1 {
            continue;
        }
        // SAFETY: mlock only pins pages; it reads and writes no memory, and the kernel rejects
        // ranges that are not mapped (ENOMEM), which we report as a failed lock.
        let locked = unsafe { libc::mlock(page as *const libc::c_void, ps) } == 0;
        // SAFETY: MADV_DONTDUMP only sets a flag on the mapping (excluded from core dumps); it
        // does not change the memory's contents or its mapping.
        let _ = unsafe { libc::madvise(page as *mut libc::c_void, ps, libc::MADV_DONTDUMP) };
        ok &= locked;
    }
    drop(guard);
    if !ok && !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "cannot mlock secret memory ({}): passphrases and keys may reach swap (raise RLIMIT_MEMLOCK)",
            std::io::Error::last_os_error()
        );
    }
    ok
}

/// Undo one [`protect`] of the same range: pages no other secret uses are unlocked and dumpable
/// again. The caller zeroizes the memory first.
pub fn unprotect(addr: usize, len: usize) {
    if len == 0 {
        return;
    }
    let ps = page_size();
    let mut guard = PAGES.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = guard.as_mut() else { return };
    for page in pages(addr, len) {
        let Some(n) = map.get_mut(&page) else { continue };
        *n -= 1;
        if *n > 0 {
            continue;
        }
        map.remove(&page);
        // SAFETY: munlock only unpins pages; it reads and writes no memory.
        let _ = unsafe { libc::munlock(page as *const libc::c_void, ps) };
        // SAFETY: MADV_DODUMP only clears the don't-dump flag on the mapping; contents unchanged.
        let _ = unsafe { libc::madvise(page as *mut libc::c_void, ps, libc::MADV_DODUMP) };
    }
}

/// Number of pages currently locked for secrets (for tests and `-vv` diagnostics).
pub fn locked_pages() -> usize {
    PAGES.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, HashMap::len)
}

/// Whether the page holding `addr` is resident and locked, from `/proc/self/smaps` (`Locked:`
/// of its mapping is non-zero) — for tests.
pub fn is_locked(addr: usize) -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            inside = (a..b).contains(&addr);
            continue;
        }
        if inside && let Some(v) = line.strip_prefix("Locked:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(kb > 0);
        }
    }
    None
}

/// The size in bytes of the block device open as `file` (`ioctl(BLKGETSIZE64)`).
pub fn block_device_size(file: &std::fs::File) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at a live u64; the fd
    // is open for the duration of the call.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if r == 0 { Ok(size) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protect_is_refcounted_per_page() {
        let v = vec![7u8; 100];
        let (a, n) = (v.as_ptr() as usize, v.capacity());
        let locked = protect(a, n);
        assert!(locked_pages() >= 1);
        assert_eq!(protect(a, n), locked);
        unprotect(a, n);
        if locked {
            assert_eq!(is_locked(a), Some(true), "still locked while one protect is left");
        }
        unprotect(a, n);
        assert!(protect(0, 0));
        unprotect(0, 0);
    }

    #[test]
    fn dumpable_flag() {
        // The test harness itself stays dumpable; only the binary calls harden_process.
        let _ = is_dumpable();
    }
}
