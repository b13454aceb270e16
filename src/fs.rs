//! The FUSE layer: the only module that knows `fuser`. It serves the [`Tree`] read-only: lookups
//! and attributes from the scan, `open` unlocks (or waits for) the image, `read` goes through the
//! [`BlockCache`], and every write path answers `EROFS`.

use crate::cache::BlockCache;
use crate::dir::{NodeKind, Tree, Unlocker};
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Attribute and entry TTL: the tree never changes while mounted.
const TTL: Duration = Duration::from_secs(24 * 3600);

thread_local! {
    /// Each FUSE worker's reply buffer, grown to the largest request it has served.
    static REPLY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The mounted filesystem.
pub struct LuksFs {
    tree: Arc<Tree>,
    cache: BlockCache,
    unlocker: Arc<Unlocker>,
    /// Readahead the kernel may use, in bytes.
    max_readahead: u32,
}

impl LuksFs {
    /// Serve `tree`, decrypting through a cache of `cache_bytes`.
    pub fn new(tree: Arc<Tree>, unlocker: Arc<Unlocker>, cache_bytes: u64, max_readahead: u32) -> Self {
        LuksFs { tree, cache: BlockCache::new(cache_bytes), unlocker, max_readahead }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.tree.node(ino)?;
        let (kind, perm, size, nlink) = match &n.kind {
            NodeKind::Dir(children) => {
                let subdirs = children
                    .values()
                    .filter(|&&c| matches!(self.tree.node(c).map(|n| &n.kind), Some(NodeKind::Dir(_))))
                    .count();
                (FileType::Directory, 0o555, 0, 2 + subdirs as u32)
            }
            NodeKind::File(e) => (FileType::RegularFile, 0o444, e.size, 1),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.meta.atime,
            mtime: n.meta.mtime,
            ctime: n.meta.ctime,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: n.meta.uid,
            gid: n.meta.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }
}

fn errno(e: &crate::Error) -> Errno {
    Errno::from_i32(e.kind().errno())
}

impl Filesystem for LuksFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_readahead(self.max_readahead) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let child = match self.tree.node(parent.0).map(|n| &n.kind) {
            Some(NodeKind::Dir(children)) => children.get(name).copied(),
            Some(NodeKind::File(_)) => return reply.error(Errno::ENOTDIR),
            None => None,
        };
        match child.and_then(|c| self.attr(c)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        let Some(node) = self.tree.node(ino.0) else { return reply.error(Errno::ENOENT) };
        let NodeKind::File(entry) = &node.kind else { return reply.error(Errno::EISDIR) };
        match entry.get(&self.unlocker) {
            // The plaintext never changes while mounted: let the kernel keep its page cache.
            Ok(_) => reply.opened(FileHandle(ino.0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => {
                log::warn!("open: {e}");
                reply.error(errno(&e))
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(NodeKind::File(entry)) = self.tree.node(ino.0).map(|n| &n.kind) else {
            return reply.error(Errno::EISDIR);
        };
        let Some(img) = entry.ready() else { return reply.error(Errno::EIO) };
        let end = offset.saturating_add(u64::from(size)).min(img.size());
        if offset >= end {
            return reply.data(&[]);
        }
        let n = (end - offset) as usize;
        REPLY_BUF.with_borrow_mut(|buf| {
            if buf.len() < n {
                buf.resize(n, 0);
            }
            match self.cache.read(ino.0, &*img, offset, &mut buf[..n]) {
                Ok(()) => reply.data(&buf[..n]),
                Err(e) => {
                    log::error!("read at {offset}: {e}");
                    reply.error(errno(&e))
                }
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree.node(ino.0).map(|n| &n.kind) {
            Some(NodeKind::Dir(_)) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Some(NodeKind::File(_)) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(node) = self.tree.node(ino.0) else { return reply.error(Errno::ENOENT) };
        let NodeKind::Dir(children) = &node.kind else { return reply.error(Errno::ENOTDIR) };
        let dots =
            [(node.ino, FileType::Directory, OsStr::new(".")), (node.parent, FileType::Directory, OsStr::new(".."))];
        let kids = children.iter().map(|(name, &c)| {
            let kind = match self.tree.node(c).map(|n| &n.kind) {
                Some(NodeKind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (c, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots.into_iter().chain(kids).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks: u64 = self.tree.images.iter().map(|e| e.size.div_ceil(4096)).sum();
        reply.statfs(blocks, 0, 0, self.tree.nodes.len() as u64, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if self.tree.node(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        if mask.contains(AccessFlags::W_OK) { reply.error(Errno::EROFS) } else { reply.ok() }
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::NO_XATTR)
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 { reply.size(0) } else { reply.data(&[]) }
    }

    // ---- every write path: read-only file system ----

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS)
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wflags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS)
    }

    fn mknod(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _r: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS)
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS)
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _l: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS)
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS)
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS)
    }

    fn create(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _f: i32, reply: ReplyCreate) {
        reply.error(Errno::EROFS)
    }

    fn setxattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, _v: &[u8], _f: i32, _p: u32, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn removexattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn fallocate(&self, _req: &Request, _i: INodeNo, _fh: FileHandle, _o: u64, _l: u64, _m: i32, reply: ReplyEmpty) {
        reply.error(Errno::EROFS)
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ii: INodeNo,
        _fi: FileHandle,
        _oi: u64,
        _io: INodeNo,
        _fo: FileHandle,
        _oo: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS)
    }
}
