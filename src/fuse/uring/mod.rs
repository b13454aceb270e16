//! FUSE over io_uring (Linux ≥ 6.14; `mount --io-uring`): one request queue per CPU, served by
//! worker threads pinned to that CPU. A request is queued on the CPU its caller runs on, so the
//! worker that answers it and the caller it wakes share a core, and commit-and-fetch halves the
//! system calls. That pays when the caller stays on its CPU: 4 KiB random reads by one pinned
//! reader went from 37-38k/s (`/dev/fuse`) to 71-72k/s on this 2-core VM, 31-41k → 67-68k with
//! the other core busy. On an idle machine the scheduler moves the woken caller to the idle core
//! (29-32k/s against 35-40k/s), and a streaming reader loses the second core that `/dev/fuse`
//! workers give it (1.3-1.6 vs 1.9-2.3 GB/s): so it is opt-in.
//!
//! The kernel offers it only when the `fuse` module's `enable_uring` parameter is set (root:
//! `echo Y > /sys/module/fuse/parameters/enable_uring`). Once every queue has a registered entry
//! the kernel sends all requests here, except forget and interrupt, which stay on `/dev/fuse`
//! (fuser's loop in `fs`). If registering fails, the kernel falls back to `/dev/fuse` by itself.

//!
//! With `sys`, the only module with `unsafe` code: pushing SQEs whose buffers the kernel writes
//! to, and setting one SQE field the io-uring crate has no setter for.
#![allow(unsafe_code)]

pub mod abi;

use crate::fuse::vfs::Vfs;
use crate::fuse::xattr::Xattr;
use abi::{Dirents, InHeader, Op};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Where the switch lives.
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether the running kernel offers FUSE over io_uring to new mounts.
pub fn kernel_enabled() -> bool {
    std::fs::read_to_string(ENABLE_PARAM).is_ok_and(|s| matches!(s.trim(), "Y" | "y" | "1"))
}

/// CPUs the kernel may queue requests on (one queue each): `/sys/devices/system/cpu/possible`.
fn possible_cpus() -> usize {
    let parsed = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok().and_then(|s| {
        // "0-3" or "0" or "0-3,5": the highest number + 1
        s.trim().split([',', '-']).filter_map(|p| p.parse::<usize>().ok()).max().map(|m| m + 1)
    });
    parsed.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Start `per_cpu` workers for every CPU queue of the FUSE connection `dev` (a `/dev/fuse`
/// descriptor whose `INIT` granted io_uring), each with a `payload`-byte buffer (at least the
/// connection's largest request). Returns once every worker has registered its entry; an error
/// means the kernel refused (it then serves the mount through `/dev/fuse`).
pub fn start(dev: OwnedFd, vfs: Arc<Vfs>, per_cpu: usize, payload: usize) -> io::Result<()> {
    let dev = Arc::new(dev);
    let cpus = possible_cpus();
    let qids = u16::try_from(cpus).map_err(|_| io::Error::other(format!("{cpus} CPUs: too many queues")))?;
    let (tx, rx) = mpsc::channel();
    // Every worker of queue q runs on CPU q: a request is answered on the CPU that made it, and
    // the caller it wakes is there too. (A worker elsewhere would take every request once its
    // entry had been used: the kernel picks the entry made available last, not by CPU.)
    for n in 0..per_cpu.max(1) {
        for qid in 0..qids {
            let (dev, vfs, tx) = (dev.clone(), vfs.clone(), tx.clone());
            let pin = Some(usize::from(qid));
            std::thread::Builder::new()
                .name(format!("fuse-uring-{qid}.{n}"))
                .spawn(move || worker(&dev, qid, pin, &vfs, payload, &tx))?;
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("a FUSE io_uring worker did not start")),
            }
        }
    }
    Ok(())
}

/// `IORING_OP_URING_CMD` for `/dev/fuse` with the given FUSE command; REGISTER also passes the
/// entry's two buffers.
fn fuse_cmd(dev: &OwnedFd, cmd_op: u32, cmd: [u8; 80], iov: Option<&[libc::iovec; 2]>) -> squeue::Entry128 {
    let mut op = opcode::UringCmd80::new(types::Fd(dev.as_raw_fd()), cmd_op).cmd(cmd);
    if let Some(iov) = iov {
        op = op.addr(Some(iov.as_ptr() as u64));
    }
    let sqe = op.build();
    // The io-uring crate has no setter for `len`, which REGISTER needs (= 2 iovecs).
    if iov.is_some() { sqe_with_len(sqe, 2) } else { sqe }
}

/// `sqe` with its `len` field (bytes 24..28 of `struct io_uring_sqe`) set.
fn sqe_with_len(sqe: squeue::Entry128, len: u32) -> squeue::Entry128 {
    const _: () = assert!(std::mem::size_of::<squeue::Entry128>() == 128);
    // SAFETY: `Entry128` is `repr(C)`: the 64-byte `io_uring_sqe` (integers and unions of
    // integers, built from zeroed memory) followed by 64 command bytes, no padding; every bit
    // pattern is a valid value, so it round-trips through bytes.
    let mut bytes: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    bytes[24..28].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: see above.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(bytes) }
}

/// Submit `sqe` and wait for its completion; `Ok(res)` is the CQE's result.
fn run_one(ring: &mut IoUring<squeue::Entry128, cqueue::Entry>, sqe: &squeue::Entry128) -> io::Result<i32> {
    // SAFETY: the buffers an SQE points to (the iovec array and the two entry buffers) are owned
    // by `worker`, outlive the ring, and are only touched between completions.
    unsafe { ring.submission().push(sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
    wait(ring)
}

fn worker(
    dev: &OwnedFd,
    qid: u16,
    pin: Option<usize>,
    vfs: &Vfs,
    payload_len: usize,
    started: &mpsc::Sender<io::Result<()>>,
) {
    if let Some(Err(e)) = pin.map(crate::sys::pin_current_thread) {
        log::debug!("io_uring queue {qid}: not pinned to its CPU: {e}");
    }
    // Buffers first: they must outlive the ring (dropped in reverse order).
    let mut hdr = vec![0u8; abi::HEADER_LEN].into_boxed_slice();
    let mut payload = vec![0u8; payload_len].into_boxed_slice();
    let iov = [
        libc::iovec { iov_base: hdr.as_mut_ptr().cast(), iov_len: hdr.len() },
        libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: payload.len() },
    ];
    let mut ring = match IoUring::<squeue::Entry128, cqueue::Entry>::builder().build(2) {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let register = fuse_cmd(dev, abi::CMD_REGISTER, abi::cmd_req(0, qid), Some(&iov));
    // SAFETY: as in `run_one`.
    if unsafe { ring.submission().push(&register) }.is_err() {
        let _ = started.send(Err(io::Error::other("io_uring submission queue full")));
        return;
    }
    // A refused registration completes at once; an accepted one only when a request arrives.
    if let Err(e) = ring.submit() {
        let _ = started.send(Err(e));
        return;
    }
    let first = ring.completion().next().map(|c| c.result());
    if let Some(res) = first.filter(|&r| r < 0) {
        let _ = started.send(Err(io::Error::from_raw_os_error(-res)));
        return;
    }
    let _ = started.send(Ok(()));
    let mut res = match first {
        Some(r) => Ok(r),
        None => wait(&mut ring),
    };
    loop {
        match res {
            Ok(r) if r >= 0 => {}
            // The connection is gone (unmounted or aborted): the normal way out.
            Ok(r) if [libc::ENOTCONN, libc::ECANCELED, libc::ENODEV, libc::ECONNABORTED].contains(&-r) => return,
            Ok(r) => {
                log::error!("io_uring queue {qid}: {}", io::Error::from_raw_os_error(-r));
                return;
            }
            Err(e) => {
                log::error!("io_uring queue {qid}: {e}");
                // A command may still be pending: never free buffers the kernel may write to.
                std::mem::forget(payload);
                std::mem::forget(hdr);
                return;
            }
        }
        let unique = serve(vfs, &mut hdr, &mut payload);
        let commit = fuse_cmd(dev, abi::CMD_COMMIT_AND_FETCH, abi::cmd_req(unique, qid), None);
        res = run_one(&mut ring, &commit);
    }
}

/// Submit what is queued and wait for the next completion.
fn wait(ring: &mut IoUring<squeue::Entry128, cqueue::Entry>) -> io::Result<i32> {
    loop {
        if let Some(cqe) = ring.completion().next() {
            return Ok(cqe.result());
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Answer the request in a ring entry's buffers, in place; returns its `unique`.
fn serve(vfs: &Vfs, hdr: &mut [u8], payload: &mut [u8]) -> u64 {
    let Some(h) = InHeader::parse(hdr) else { return 0 };
    let plen = abi::payload_len(hdr).min(payload.len());
    let result = answer(vfs, &h, hdr, payload, plen);
    abi::finish(hdr, h.unique, result);
    h.unique
}

fn answer(vfs: &Vfs, h: &InHeader, hdr: &[u8], payload: &mut [u8], plen: usize) -> Result<usize, i32> {
    let ino = h.nodeid;
    match Op::decode(h.opcode, hdr, &payload[..plen]) {
        Op::Lookup { name } => {
            let a = vfs.lookup(ino, name)?;
            abi::entry(payload, &a, a.ttl())
        }
        Op::Getattr => {
            let a = vfs.attr(ino)?;
            abi::attr(payload, &a, a.ttl())
        }
        Op::Open { flags } => {
            vfs.open(ino, flags)?;
            // The plaintext never changes while mounted: let the kernel keep its page cache.
            abi::open(payload, ino, abi::FOPEN_KEEP_CACHE)
        }
        Op::Read { offset, size } => {
            let n = (size as usize).min(payload.len());
            vfs.read(ino, offset, &mut payload[..n])
        }
        Op::Opendir => {
            vfs.opendir(ino)?;
            abi::open(payload, 0, abi::FOPEN_KEEP_CACHE)
        }
        Op::Readdir { offset, size } => {
            let n = (size as usize).min(payload.len());
            let mut d = Dirents::new(&mut payload[..n]);
            vfs.readdir(ino, offset, |child, next, kind, name| d.add(child, next, kind, name))?;
            Ok(d.len())
        }
        Op::Statfs => abi::statfs(payload, &vfs.statfs()),
        Op::Access { mask } => vfs.access(ino, mask).map(|()| 0),
        Op::Getxattr { name, size } => xattr_reply(vfs.getxattr(ino, name, size)?, payload),
        Op::Listxattr { size } => xattr_reply(vfs.listxattr(ino, size)?, payload),
        Op::Ack => Ok(0),
        Op::Write => Err(libc::EROFS),
        Op::Unsupported => Err(libc::ENOSYS),
        Op::Malformed => Err(libc::EINVAL),
    }
}

/// A `getxattr`/`listxattr` answer in the reply payload: `struct fuse_getxattr_out` for a size,
/// else the bytes.
fn xattr_reply(x: Xattr, payload: &mut [u8]) -> Result<usize, i32> {
    match x {
        Xattr::Size(n) => abi::xattr_size(payload, n),
        Xattr::Data(d) => {
            payload.get_mut(..d.len()).ok_or(libc::ERANGE)?.copy_from_slice(&d);
            Ok(d.len())
        }
    }
}
