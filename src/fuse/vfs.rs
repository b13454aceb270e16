//! What a mount serves, whatever carries the requests: attributes, lookups, listings, opens and
//! reads of the [`Tree`], answered with `errno` values. Two thin transports sit on top: `fs`
//! (fuser's `/dev/fuse` loop) and `uring` (FUSE over io_uring, one queue per CPU). Neither
//! holds any filesystem logic of its own, so both behave the same.

use crate::cache::{BlockCache, CacheStats};
use crate::dir::{NodeKind, Tree, Unlocker};
use crate::fuse::xattr::{self, Xattr};
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// Attribute and entry TTL of files: a volume never changes while mounted.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// Attribute and entry TTL of directories: they grow when volumes unlock (a `<name>.d` folder
/// appears, volumes inside a decrypted one join it), so the kernel asks again after a second.
pub const DIR_TTL: Duration = Duration::from_secs(1);

/// An `errno` value (positive), as FUSE replies carry it.
pub type Errno = i32;

/// Directory or regular file: the only two kinds a mount shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

impl Kind {
    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::Dir => libc::S_IFDIR,
            Kind::File => libc::S_IFREG,
        }
    }
}

impl Attr {
    /// How long the kernel may keep these attributes (and the entry).
    pub fn ttl(&self) -> Duration {
        match self.kind {
            Kind::Dir => DIR_TTL,
            Kind::File => TTL,
        }
    }
}

/// The attributes of one node.
#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub kind: Kind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// File-system totals for `statfs`.
pub struct Statfs {
    /// 4 KiB blocks of all images together.
    pub blocks: u64,
    /// Nodes (directories and images).
    pub files: u64,
}

/// The mounted tree, its block cache and its unlocker.
pub struct Vfs {
    tree: Arc<Tree>,
    cache: BlockCache,
    unlocker: Arc<Unlocker>,
}

fn kind_of(kind: &NodeKind) -> Kind {
    match kind {
        NodeKind::Dir(_) => Kind::Dir,
        NodeKind::File(_) => Kind::File,
    }
}

impl Vfs {
    /// Serve `tree`, decrypting through a cache of `cache_bytes`.
    pub fn new(tree: Arc<Tree>, unlocker: Arc<Unlocker>, cache_bytes: u64) -> Self {
        Vfs { tree, cache: BlockCache::new(cache_bytes), unlocker }
    }

    /// The mounted tree (for status reports).
    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// The block cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The `user.luksfs.*` attributes of `ino` (none for directories).
    fn xattrs(&self, ino: u64) -> Result<Vec<(&'static str, String)>, Errno> {
        let node = self.tree.node(ino).ok_or(libc::ENOENT)?;
        Ok(match &node.kind {
            NodeKind::File(f) => xattr::of_volume(&f.image, &f.volume),
            NodeKind::Dir(_) => Vec::new(),
        })
    }

    /// `getxattr(2)` of `name` on `ino`: with `size` 0 the value's size, else the value
    /// (`ERANGE` when it is longer than `size`); `ENODATA` for an attribute it does not have.
    pub fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<Xattr, Errno> {
        // Others (security.selinux, system.posix_acl_access, ... asked on every access by some
        // tools) are answered without working out the facts.
        if !name.as_encoded_bytes().starts_with(xattr::PREFIX.as_bytes()) {
            self.tree.node(ino).ok_or(libc::ENOENT)?;
            return Err(libc::ENODATA);
        }
        let attrs = self.xattrs(ino)?;
        let value = attrs.iter().find(|(n, _)| OsStr::new(n) == name).ok_or(libc::ENODATA)?;
        xattr::sized(value.1.as_bytes(), size)
    }

    /// `listxattr(2)` on `ino`: the NUL-terminated names, under the same size rules.
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<Xattr, Errno> {
        let attrs = self.xattrs(ino)?;
        xattr::sized(&xattr::name_list(&attrs), size)
    }

    /// Attributes of `ino`.
    pub fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let n = self.tree.node(ino).ok_or(libc::ENOENT)?;
        let (perm, size, nlink) = match &n.kind {
            NodeKind::Dir(_) => {
                let subdirs = self
                    .tree
                    .children(ino)
                    .unwrap_or_default()
                    .iter()
                    .filter(|(_, c)| self.tree.node(*c).is_some_and(|n| matches!(n.kind, NodeKind::Dir(_))))
                    .count();
                (0o555, 0, 2 + subdirs as u32)
            }
            NodeKind::File(f) => (0o444, f.volume.size, 1),
        };
        Ok(Attr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: n.meta.atime,
            mtime: n.meta.mtime,
            ctime: n.meta.ctime,
            kind: kind_of(&n.kind),
            perm,
            nlink,
            uid: n.meta.uid,
            gid: n.meta.gid,
        })
    }

    /// The child `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr, Errno> {
        let node = self.tree.node(parent).ok_or(libc::ENOENT)?;
        match &node.kind {
            NodeKind::Dir(_) => self.attr(self.tree.child(parent, name).ok_or(libc::ENOENT)?),
            NodeKind::File(_) => Err(libc::ENOTDIR),
        }
    }

    /// Open an image for reading (`flags` as `open(2)` gives them): unlocks it, or waits for the
    /// background unlock. Any write access is `EROFS`.
    pub fn open(&self, ino: u64, flags: i32) -> Result<(), Errno> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(libc::EROFS);
        }
        let node = self.tree.node(ino).ok_or(libc::ENOENT)?;
        let NodeKind::File(f) = &node.kind else { return Err(libc::EISDIR) };
        if let Some(e) = f.volume.serve_error() {
            log::warn!("open: {e}");
            return Err(e.kind().errno());
        }
        if f.volume.reader().is_some() {
            return Ok(());
        }
        self.unlocker.unlock(&self.tree, &f.image, &f.volume).map_err(|e| {
            log::warn!("open: {e}");
            e.kind().errno()
        })
    }

    /// Read up to `out.len()` plaintext bytes of image `ino` at `offset` into `out`; returns how
    /// many (fewer only at the end of the image).
    pub fn read(&self, ino: u64, offset: u64, out: &mut [u8]) -> Result<usize, Errno> {
        let node = self.tree.node(ino).ok_or(libc::ENOENT)?;
        let NodeKind::File(f) = &node.kind else { return Err(libc::EISDIR) };
        // `open` refused every volume that must not be served then; one refused since it was
        // opened is not served from the cache either.
        if let Some(e) = f.volume.revoked() {
            log::warn!("read at {offset}: {e}");
            return Err(e.kind().errno());
        }
        let img = f.volume.reader().ok_or(libc::EIO)?;
        let end = offset.saturating_add(out.len() as u64).min(img.size());
        if offset >= end {
            return Ok(0);
        }
        let n = (end - offset) as usize;
        self.cache.read(ino, &*img, offset, &mut out[..n]).map_err(|e| {
            log::error!("read at {offset}: {e}");
            e.kind().errno()
        })?;
        f.image.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Open directory `ino`.
    pub fn opendir(&self, ino: u64) -> Result<(), Errno> {
        match self.tree.node(ino).map(|n| matches!(n.kind, NodeKind::Dir(_))) {
            Some(true) => Ok(()),
            Some(false) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    /// The entries of directory `ino` from position `offset` on (`.` and `..` first), each with
    /// the offset of the entry after it; `add` returns `true` once the reply is full.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, u64, Kind, &OsStr) -> bool,
    ) -> Result<(), Errno> {
        let node = self.tree.node(ino).ok_or(libc::ENOENT)?;
        let children = self.tree.children(ino).ok_or(libc::ENOTDIR)?;
        let dots = [(node.ino, Kind::Dir, OsStr::new(".")), (node.parent, Kind::Dir, OsStr::new(".."))];
        let kids = children.iter().map(|(name, c)| {
            let kind = self.tree.node(*c).map_or(Kind::File, |n| kind_of(&n.kind));
            (*c, kind, name.as_os_str())
        });
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child, kind, name)) in dots.into_iter().chain(kids).enumerate().skip(skip) {
            if add(child, (i + 1) as u64, kind, name) {
                break;
            }
        }
        Ok(())
    }

    /// Totals for `statfs`.
    pub fn statfs(&self) -> Statfs {
        Statfs {
            blocks: self.tree.files().iter().map(|(_, v)| v.size.div_ceil(4096)).sum(),
            files: self.tree.len() as u64,
        }
    }

    /// `access(2)`: everything may be read and searched, nothing written.
    pub fn access(&self, ino: u64, mask: i32) -> Result<(), Errno> {
        self.tree.node(ino).ok_or(libc::ENOENT)?;
        if mask & libc::W_OK != 0 { Err(libc::EROFS) } else { Ok(()) }
    }
}
