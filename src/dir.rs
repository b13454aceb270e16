//! The source tree as the mount shows it, and lazy unlocking.
//!
//! [`Tree::scan`] walks the source once at mount time: directories are mirrored, files whose
//! content is LUKS1, LUKS2 or qcow2 become `<name>.raw` entries with their decrypted size (read
//! from the headers, no key needed), everything else is hidden. Unlocking (the expensive KDF)
//! happens later: [`Unlocker::spawn_background`] works through the images on every core, and an
//! `open()` of an image not yet unlocked does it at once (or waits for the worker already doing it).

use crate::image::{ImageOptions, Prepared, UnlockSettings, probe_file};
use crate::keys::{KeySource, Keyring, keytab, sidecar};
use crate::{Error, ErrorKind, Result, image::Image};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;
/// Directory depth limit (guards against pathological trees).
const MAX_DEPTH: usize = 64;

/// Ownership and times copied from the source file or directory.
#[derive(Clone, Copy, Debug)]
pub struct SourceMeta {
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub atime: SystemTime,
}

impl SourceMeta {
    fn of(md: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let t = |s: i64, ns: i64| {
            let d = std::time::Duration::new(s.unsigned_abs(), ns.clamp(0, 999_999_999) as u32);
            if s >= 0 { SystemTime::UNIX_EPOCH + d } else { SystemTime::UNIX_EPOCH - d }
        };
        SourceMeta {
            uid: md.uid(),
            gid: md.gid(),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            atime: t(md.atime(), md.atime_nsec()),
        }
    }
}

/// A node of the mounted tree.
pub struct Node {
    pub ino: u64,
    pub parent: u64,
    pub name: OsString,
    pub meta: SourceMeta,
    pub kind: NodeKind,
}

/// Directory or image.
pub enum NodeKind {
    /// Children by name, with their inode numbers.
    Dir(BTreeMap<OsString, u64>),
    File(Arc<ImageEntry>),
}

enum State {
    Queued(Box<Prepared>),
    Unlocking,
    Ready(Arc<Image>),
    Failed(Error),
}

/// One image of the mount, from header check to unlocked.
pub struct ImageEntry {
    /// Source path.
    pub source: PathBuf,
    /// Path relative to the source root (as in the keytab).
    pub rel: PathBuf,
    /// Decrypted size (0 if the header is unusable).
    pub size: u64,
    key: KeySource,
    state: Mutex<State>,
    cond: Condvar,
}

impl ImageEntry {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unlocked image, unlocking it now (or waiting for the worker doing it) if needed.
    pub fn get(&self, unlocker: &Unlocker) -> Result<Arc<Image>> {
        let mut st = self.lock();
        loop {
            match &*st {
                State::Ready(img) => return Ok(img.clone()),
                State::Failed(e) => return Err(e.clone()),
                State::Unlocking => st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                State::Queued(_) => {
                    drop(st);
                    self.unlock_if_queued(unlocker);
                    st = self.lock();
                }
            }
        }
    }

    /// The unlocked image if it is ready, without waiting.
    pub fn ready(&self) -> Option<Arc<Image>> {
        match &*self.lock() {
            State::Ready(img) => Some(img.clone()),
            _ => None,
        }
    }

    /// Whether the image failed to open, and why.
    pub fn failure(&self) -> Option<Error> {
        match &*self.lock() {
            State::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Unlock if nobody has started yet; otherwise return at once.
    fn unlock_if_queued(&self, unlocker: &Unlocker) {
        let prepared = {
            let mut st = self.lock();
            match std::mem::replace(&mut *st, State::Unlocking) {
                State::Queued(p) => p,
                other => {
                    *st = other;
                    return;
                }
            }
        };
        let result = unlocker.unlock(&self.key, *prepared).map_err(|e| e.with_path(&self.source));
        let new = match result {
            Ok(img) => State::Ready(Arc::new(img)),
            Err(e) => {
                log::error!("{e}");
                State::Failed(e)
            }
        };
        *self.lock() = new;
        self.cond.notify_all();
    }
}

/// Resolves keys and runs key slots for images of a mount.
pub struct Unlocker {
    pub keys: Arc<Keyring>,
    pub settings: UnlockSettings,
}

impl Unlocker {
    fn unlock(&self, key: &KeySource, p: Prepared) -> Result<Image> {
        let pass = self.keys.passphrase(key).map_err(|e| match e.kind() {
            // In a mount, any failure to obtain the key is a key problem for this image.
            ErrorKind::Usage => Error::bad_key(e.to_string()),
            _ => e,
        })?;
        p.unlock(&pass, self.settings)
    }

    /// Unlock every queued image on `threads` background threads.
    pub fn spawn_background(self: &Arc<Self>, tree: &Arc<Tree>, threads: usize) {
        let next = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let (me, tree, next) = (self.clone(), tree.clone(), next.clone());
            let spawned = std::thread::Builder::new().name(format!("unlock-{i}")).spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = tree.images.get(n) else { break };
                    entry.unlock_if_queued(&me);
                }
            });
            if let Err(e) = spawned {
                log::warn!("cannot start an unlock thread: {e}; images unlock on first open");
            }
        }
    }
}

/// The whole mounted tree, built once.
pub struct Tree {
    /// Nodes by inode number - 1.
    pub nodes: Vec<Node>,
    /// The image entries, in scan order.
    pub images: Vec<Arc<ImageEntry>>,
}

/// How each image gets its key and options.
pub struct KeyPlan {
    /// Per-image keytab lines, by path relative to the source.
    pub keytab: BTreeMap<PathBuf, keytab::Entry>,
    /// Options applied to images without a keytab line (from the command line).
    pub default_options: ImageOptions,
    /// Take keys from Glance sidecars (`<image>.json`) of images without a keytab line.
    pub use_sidecars: bool,
}

impl Tree {
    /// Look up a node by inode number.
    pub fn node(&self, ino: u64) -> Option<&Node> {
        usize::try_from(ino).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.nodes.get(i))
    }

    /// Walk `source` (a directory or one image file) and build the tree.
    pub fn scan(source: &Path, plan: &KeyPlan) -> Result<Tree> {
        let md = std::fs::metadata(source)
            .map_err(|e| Error::usage(format!("cannot read source {}: {e}", source.display())))?;
        let mut tree = Tree { nodes: Vec::new(), images: Vec::new() };
        tree.nodes.push(Node {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: OsString::new(),
            meta: SourceMeta::of(&md),
            kind: NodeKind::Dir(BTreeMap::new()),
        });
        if md.is_dir() {
            tree.scan_dir(source, Path::new(""), ROOT_INO, plan, 0)?;
        } else {
            let name = source.file_name().map(PathBuf::from).unwrap_or_default();
            let parent = source.parent().unwrap_or(Path::new("."));
            tree.add_file(&parent.join(&name), &name, ROOT_INO, plan, &md)?;
        }
        for rel in plan.keytab.keys() {
            if !tree.images.iter().any(|e| &e.rel == rel) {
                log::warn!("keytab names {} but no such image was found in the source", rel.display());
            }
        }
        Ok(tree)
    }

    fn push(&mut self, parent: u64, name: OsString, meta: SourceMeta, kind: NodeKind) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        if let Some(NodeKind::Dir(children)) = self.nodes.get_mut(parent as usize - 1).map(|n| &mut n.kind) {
            children.insert(name.clone(), ino);
        }
        self.nodes.push(Node { ino, parent, name, meta, kind });
        ino
    }

    fn scan_dir(&mut self, dir: &Path, rel: &Path, ino: u64, plan: &KeyPlan, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            log::warn!("{}: deeper than {MAX_DEPTH} levels, not descending", dir.display());
            return Ok(());
        }
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}: {e}", dir.display())))?;
        let mut names: Vec<OsString> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            // Do not follow symlinked directories (loops); follow symlinks to files.
            let Ok(lmd) = std::fs::symlink_metadata(&path) else { continue };
            if lmd.is_dir() {
                let child = self.push(ino, name, SourceMeta::of(&lmd), NodeKind::Dir(BTreeMap::new()));
                self.scan_dir(&path, &rel, child, plan, depth + 1)?;
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(md) if md.is_file() => self.add_file(&path, &rel, ino, plan, &md)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn add_file(&mut self, path: &Path, rel: &Path, parent: u64, plan: &KeyPlan, md: &std::fs::Metadata) -> Result<()> {
        let (mut key, options) = match plan.keytab.get(rel) {
            Some(e) => (e.key.clone(), e.options.clone()),
            None => (KeySource::Default, plan.default_options.clone()),
        };
        let meta = match sidecar::load_for_image(path) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("{e}; ignoring the sidecar");
                None
            }
        };
        if key == KeySource::Default
            && plan.use_sidecars
            && let Some(id) = meta.as_ref().and_then(|m| m.key_id.clone())
        {
            key = KeySource::Barbican(id);
        }
        // A file with a detached header has no magic of its own: the keytab line is what makes
        // it an image.
        if options.header.is_none() {
            match probe_file(path) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(e) => {
                    log::warn!("{}: not shown: cannot read it ({e})", path.display());
                    return Ok(());
                }
            }
        }
        let (size, state) = match Prepared::open(path, &options) {
            Ok(p) => {
                if let Some(want) = meta.as_ref().and_then(|m| m.decrypt_size).filter(|&w| w != p.size()) {
                    log::warn!(
                        "{}: the Glance sidecar says os_decrypt_size {want}, but the image decrypts to {} bytes",
                        path.display(),
                        p.size()
                    );
                }
                (p.size(), State::Queued(Box::new(p)))
            }
            Err(e) => {
                log::error!("{e}");
                (0, State::Failed(e))
            }
        };
        let entry = Arc::new(ImageEntry {
            source: path.to_path_buf(),
            rel: rel.to_path_buf(),
            size,
            key,
            state: Mutex::new(state),
            cond: Condvar::new(),
        });
        let mut name = rel.file_name().map(OsString::from).unwrap_or_default();
        name.push(".raw");
        self.push(parent, name, SourceMeta::of(md), NodeKind::File(entry.clone()));
        self.images.push(entry);
        Ok(())
    }
}
