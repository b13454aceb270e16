//! The FUSE-over-io_uring wire format (Linux ≥ 6.14, `include/uapi/linux/fuse.h`): where the
//! kernel puts a request in a ring entry's buffers, and where the reply goes. Pure decoding and
//! encoding, bounds-checked: a short or unexpected request gets an errno, never a panic.
//!
//! A ring entry has two buffers: the header buffer (`struct fuse_uring_req_header`: the 40-byte
//! `fuse_in_header` / 16-byte `fuse_out_header` in `in_out[128]`, the opcode's fixed argument in
//! `op_in[128]`, then `struct fuse_uring_ent_in_out`), and a payload buffer for the rest of the
//! request (names) and for the reply body.

use crate::fuse::vfs::{Attr, Kind, Statfs};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

/// Size of `struct fuse_uring_req_header`.
pub const HEADER_LEN: usize = 128 + 128 + 32;
const OP_IN: usize = 128;
const ENT_IN_OUT: usize = 256;
/// `FUSE_IO_URING_CMD_REGISTER`: hand a ring entry to the kernel.
pub const CMD_REGISTER: u32 = 1;
/// `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`: send a reply and wait for the next request.
pub const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `FOPEN_KEEP_CACHE`.
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;

/// FUSE opcodes this transport decodes (the rest are answered by class, see [`Op::decode`]).
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const DESTROY: u32 = 38;
    pub const FALLOCATE: u32 = 43;
    pub const RENAME2: u32 = 45;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const TMPFILE: u32 = 51;
}

/// The 80 command bytes of a 128-byte SQE: `struct fuse_uring_cmd_req`.
pub fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The parts of `fuse_in_header` a reply needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InHeader {
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
}

impl InHeader {
    /// From a ring entry's header buffer.
    pub fn parse(hdr: &[u8]) -> Option<InHeader> {
        Some(InHeader { opcode: u32_at(hdr, 4)?, unique: u64_at(hdr, 8)?, nodeid: u64_at(hdr, 16)? })
    }
}

/// How many payload bytes the kernel wrote (`fuse_uring_ent_in_out.payload_sz`).
pub fn payload_len(hdr: &[u8]) -> usize {
    u32_at(hdr, ENT_IN_OUT + 16).map_or(0, |n| n as usize)
}

/// A decoded request.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Lookup {
        name: &'a OsStr,
    },
    Getattr,
    Open {
        flags: i32,
    },
    Read {
        offset: u64,
        size: u32,
    },
    Opendir,
    Readdir {
        offset: u64,
        size: u32,
    },
    Statfs,
    Access {
        mask: i32,
    },
    Getxattr {
        name: &'a OsStr,
        size: u32,
    },
    Listxattr {
        size: u32,
    },
    /// Release, releasedir, destroy: nothing to do but say yes.
    Ack,
    /// Any request that would change something.
    Write,
    /// Not implemented (the kernel then stops asking, or falls back).
    Unsupported,
    /// The request is shorter than its opcode needs.
    Malformed,
}

/// NUL-terminated name at the start of `b`.
fn name(b: &[u8]) -> Option<&OsStr> {
    let end = b.iter().position(|&c| c == 0)?;
    Some(OsStr::from_bytes(&b[..end]))
}

impl<'a> Op<'a> {
    /// Decode the request in `hdr` (header buffer) and `payload` (the bytes the kernel wrote).
    pub fn decode(opcode: u32, hdr: &[u8], payload: &'a [u8]) -> Op<'a> {
        let op_in = hdr.get(OP_IN..OP_IN + 128).unwrap_or(&[]);
        let decoded = match opcode {
            op::LOOKUP => name(payload).map(|name| Op::Lookup { name }),
            op::GETATTR => Some(Op::Getattr),
            op::OPEN => u32_at(op_in, 0).map(|f| Op::Open { flags: f as i32 }),
            op::READ => u64_at(op_in, 8).zip(u32_at(op_in, 16)).map(|(offset, size)| Op::Read { offset, size }),
            op::OPENDIR => Some(Op::Opendir),
            op::READDIR => u64_at(op_in, 8).zip(u32_at(op_in, 16)).map(|(offset, size)| Op::Readdir { offset, size }),
            op::STATFS => Some(Op::Statfs),
            op::ACCESS => u32_at(op_in, 0).map(|m| Op::Access { mask: m as i32 }),
            // struct fuse_getxattr_in { size, padding }, then the name.
            op::GETXATTR => u32_at(op_in, 0).zip(name(payload)).map(|(size, name)| Op::Getxattr { name, size }),
            op::LISTXATTR => u32_at(op_in, 0).map(|size| Op::Listxattr { size }),
            op::RELEASE | op::RELEASEDIR | op::DESTROY => Some(Op::Ack),
            op::SETATTR
            | op::SYMLINK
            | op::MKNOD
            | op::MKDIR
            | op::UNLINK
            | op::RMDIR
            | op::RENAME
            | op::LINK
            | op::WRITE
            | op::SETXATTR
            | op::REMOVEXATTR
            | op::CREATE
            | op::FALLOCATE
            | op::RENAME2
            | op::COPY_FILE_RANGE
            | op::TMPFILE => Some(Op::Write),
            _ => Some(Op::Unsupported),
        };
        decoded.unwrap_or(Op::Malformed)
    }
}

/// Write the reply header: `fuse_out_header` and `fuse_uring_ent_in_out.payload_sz`. `result` is
/// the payload length, or a positive errno.
pub fn finish(hdr: &mut [u8], unique: u64, result: Result<usize, i32>) {
    let (error, len) = match result {
        Ok(n) => (0i32, n),
        Err(e) => (-e, 0),
    };
    let out_len = u32::try_from(16 + len).unwrap_or(u32::MAX);
    hdr[0..4].copy_from_slice(&out_len.to_ne_bytes());
    hdr[4..8].copy_from_slice(&error.to_ne_bytes());
    hdr[8..16].copy_from_slice(&unique.to_ne_bytes());
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    hdr[ENT_IN_OUT + 16..ENT_IN_OUT + 20].copy_from_slice(&len.to_ne_bytes());
}

/// Appends native-endian fields to a reply buffer; fails (ERANGE) past its end.
struct Put<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Put<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<&mut Self, i32> {
        let end = self.len + b.len();
        self.buf.get_mut(self.len..end).ok_or(libc::ERANGE)?.copy_from_slice(b);
        self.len = end;
        Ok(self)
    }
    fn u64(&mut self, v: u64) -> Result<&mut Self, i32> {
        self.bytes(&v.to_ne_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<&mut Self, i32> {
        self.bytes(&v.to_ne_bytes())
    }
}

/// Seconds (as the kernel's s64) and nanoseconds of `t`.
fn split_time(t: SystemTime) -> (u64, u32) {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 { ((-s) as u64, 0) } else { ((-s - 1) as u64, 1_000_000_000 - n) }
        }
    }
}

/// `struct fuse_attr` (88 bytes).
fn put_attr(p: &mut Put, a: &Attr) -> Result<(), i32> {
    let (at, atn) = split_time(a.atime);
    let (mt, mtn) = split_time(a.mtime);
    let (ct, ctn) = split_time(a.ctime);
    p.u64(a.ino)?.u64(a.size)?.u64(a.blocks)?.u64(at)?.u64(mt)?.u64(ct)?;
    p.u32(atn)?.u32(mtn)?.u32(ctn)?.u32(a.kind.mode_bits() | u32::from(a.perm))?;
    p.u32(a.nlink)?.u32(a.uid)?.u32(a.gid)?.u32(0)?.u32(4096)?.u32(0)?;
    Ok(())
}

/// `struct fuse_entry_out` for `a`, valid for `ttl`.
pub fn entry(buf: &mut [u8], a: &Attr, ttl: Duration) -> Result<usize, i32> {
    let mut p = Put { buf, len: 0 };
    p.u64(a.ino)?.u64(0)?.u64(ttl.as_secs())?.u64(ttl.as_secs())?;
    p.u32(ttl.subsec_nanos())?.u32(ttl.subsec_nanos())?;
    put_attr(&mut p, a)?;
    Ok(p.len)
}

/// `struct fuse_attr_out` for `a`, valid for `ttl`.
pub fn attr(buf: &mut [u8], a: &Attr, ttl: Duration) -> Result<usize, i32> {
    let mut p = Put { buf, len: 0 };
    p.u64(ttl.as_secs())?.u32(ttl.subsec_nanos())?.u32(0)?;
    put_attr(&mut p, a)?;
    Ok(p.len)
}

/// `struct fuse_open_out`.
pub fn open(buf: &mut [u8], fh: u64, open_flags: u32) -> Result<usize, i32> {
    let mut p = Put { buf, len: 0 };
    p.u64(fh)?.u32(open_flags)?.u32(0)?;
    Ok(p.len)
}

/// `struct fuse_statfs_out` (4 KiB blocks, nothing free, 255-byte names).
pub fn statfs(buf: &mut [u8], s: &Statfs) -> Result<usize, i32> {
    let mut p = Put { buf, len: 0 };
    p.u64(s.blocks)?.u64(0)?.u64(0)?.u64(s.files)?.u64(0)?;
    p.u32(4096)?.u32(255)?.u32(4096)?.u32(0)?;
    p.bytes(&[0u8; 24])?;
    Ok(p.len)
}

/// `struct fuse_getxattr_out`: the size of an attribute list.
pub fn xattr_size(buf: &mut [u8], size: u32) -> Result<usize, i32> {
    let mut p = Put { buf, len: 0 };
    p.u32(size)?.u32(0)?;
    Ok(p.len)
}

/// Fills a `READDIR` reply with `struct fuse_dirent` records (8-byte aligned).
pub struct Dirents<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Dirents<'a> {
    /// A reply of at most `buf.len()` bytes.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Dirents { buf, len: 0 }
    }

    /// Add one entry; `true` when it did not fit (the reply is full).
    pub fn add(&mut self, ino: u64, next: u64, kind: Kind, name: &OsStr) -> bool {
        let name = name.as_bytes();
        let rec = (24 + name.len()).next_multiple_of(8);
        let Some(slot) = self.buf.get_mut(self.len..self.len + rec) else { return true };
        let dtype: u32 = match kind {
            Kind::Dir => u32::from(libc::DT_DIR),
            Kind::File => u32::from(libc::DT_REG),
        };
        slot[0..8].copy_from_slice(&ino.to_ne_bytes());
        slot[8..16].copy_from_slice(&next.to_ne_bytes());
        slot[16..20].copy_from_slice(&(name.len() as u32).to_ne_bytes());
        slot[20..24].copy_from_slice(&dtype.to_ne_bytes());
        slot[24..24 + name.len()].copy_from_slice(name);
        slot[24 + name.len()..].fill(0);
        self.len += rec;
        false
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: u32, unique: u64, nodeid: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&40u32.to_ne_bytes());
        h[4..8].copy_from_slice(&opcode.to_ne_bytes());
        h[8..16].copy_from_slice(&unique.to_ne_bytes());
        h[16..24].copy_from_slice(&nodeid.to_ne_bytes());
        h
    }

    #[test]
    fn decodes_requests() {
        let mut h = header(op::READ, 7, 3);
        h[OP_IN + 8..OP_IN + 16].copy_from_slice(&4096u64.to_ne_bytes());
        h[OP_IN + 16..OP_IN + 20].copy_from_slice(&131072u32.to_ne_bytes());
        assert_eq!(InHeader::parse(&h), Some(InHeader { opcode: op::READ, unique: 7, nodeid: 3 }));
        assert_eq!(Op::decode(op::READ, &h, &[]), Op::Read { offset: 4096, size: 131072 });
        assert_eq!(Op::decode(op::LOOKUP, &h, b"disk.raw\0junk"), Op::Lookup { name: OsStr::new("disk.raw") });
        assert_eq!(Op::decode(op::LOOKUP, &h, b"no terminator"), Op::Malformed);
        assert_eq!(Op::decode(op::WRITE, &h, &[]), Op::Write);
        assert_eq!(Op::decode(op::RENAME2, &h, &[]), Op::Write);
        assert_eq!(Op::decode(999, &h, &[]), Op::Unsupported);
        // a truncated header buffer is malformed, not a panic
        assert_eq!(Op::decode(op::READ, &h[..OP_IN + 10], &[]), Op::Malformed);
        assert_eq!(InHeader::parse(&h[..10]), None);
    }

    #[test]
    fn encodes_replies() {
        let a = Attr {
            ino: 5,
            size: 1 << 30,
            blocks: 2 << 20,
            atime: SystemTime::UNIX_EPOCH + Duration::new(10, 5),
            mtime: SystemTime::UNIX_EPOCH - Duration::new(1, 250_000_000),
            ctime: SystemTime::UNIX_EPOCH,
            kind: Kind::File,
            perm: 0o444,
            nlink: 1,
            uid: 1000,
            gid: 100,
        };
        let mut buf = [0u8; 256];
        assert_eq!(entry(&mut buf, &a, Duration::from_secs(60)), Ok(128));
        assert_eq!(u64_at(&buf, 0), Some(5));
        assert_eq!(u64_at(&buf, 16), Some(60));
        // fuse_attr starts at 40: ino, size, ..., mode at 40 + 60
        assert_eq!(u64_at(&buf, 48), Some(1 << 30));
        assert_eq!(u64_at(&buf, 40 + 32), Some((-2i64) as u64));
        assert_eq!(u32_at(&buf, 40 + 52), Some(750_000_000));
        assert_eq!(u32_at(&buf, 40 + 60), Some(libc::S_IFREG | 0o444));
        assert_eq!(attr(&mut buf, &a, Duration::from_secs(1)), Ok(104));
        assert_eq!(open(&mut buf, 9, FOPEN_KEEP_CACHE), Ok(16));
        assert_eq!(statfs(&mut buf, &Statfs { blocks: 3, files: 4 }), Ok(80));
        assert_eq!(entry(&mut buf[..100], &a, Duration::ZERO), Err(libc::ERANGE));

        let mut h = header(op::GETATTR, 42, 1);
        finish(&mut h, 42, Ok(104));
        assert_eq!((u32_at(&h, 0), u32_at(&h, 4), u64_at(&h, 8)), (Some(120), Some(0), Some(42)));
        assert_eq!(payload_len(&h), 104);
        finish(&mut h, 42, Err(libc::EROFS));
        assert_eq!(u32_at(&h, 4), Some((-libc::EROFS) as u32));
        assert_eq!(payload_len(&h), 0);
    }

    #[test]
    fn dirents_align_and_stop_when_full() {
        let mut buf = [0xffu8; 64];
        let mut d = Dirents::new(&mut buf);
        assert!(!d.add(1, 1, Kind::Dir, OsStr::new(".")));
        assert_eq!(d.len(), 32);
        assert!(!d.add(7, 2, Kind::File, OsStr::new("a.raw")));
        assert_eq!(d.len(), 64);
        assert!(d.add(8, 3, Kind::File, OsStr::new("b.raw")));
        assert_eq!(d.len(), 64);
        assert_eq!(&buf[24..32], b".\0\0\0\0\0\0\0");
        assert_eq!(u32_at(&buf, 52), Some(u32::from(libc::DT_REG)));
    }

    #[test]
    fn cmd_req_layout() {
        let c = cmd_req(0x1122, 3);
        assert_eq!(u64_at(&c, 8), Some(0x1122));
        assert_eq!(&c[16..18], &3u16.to_ne_bytes());
        assert!(c[..8].iter().chain(&c[18..]).all(|&b| b == 0));
    }
}
