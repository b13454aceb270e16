//! The source tree as the mount shows it, growing as volumes unlock.
//!
//! [`Tree::scan`] walks the source once at mount time: directories are mirrored; every file (or
//! the block device given as the source) is opened as an [`ImageTree`] and probed (headers only,
//! no key). An image whose tree holds an encrypted volume (or any image, with `--all-volumes`)
//! is shown: its top view (the decrypted volume or qcow2 guest disk the file holds) as
//! `<name>.raw`, and every other volume of its tree in `<name>.d/` under the names of
//! [`crate::volume::name`]. Unlocking (the expensive KDF) happens later, on every core
//! ([`Unlocker::spawn_background`]), or at once when a locked volume is opened; each volume that
//! opens adds its own children to the tree ([`Tree::sync`]).

use crate::catalog::{self, Entry, Item, Location, Reach};
use crate::image::{ImageOptions, UnlockSettings};
use crate::keys::{KeySource, Keyring, keytab, sidecar};
use crate::volume::span::Span;
use crate::volume::tree::UnlockKey;
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;
/// Folders made so far while building the tree, by path relative to the source.
type Dirs = std::collections::HashMap<PathBuf, u64>;

pub use crate::catalog::SourceMeta;

/// A node of the mounted tree.
pub struct Node {
    pub ino: u64,
    pub parent: u64,
    pub name: OsString,
    pub meta: SourceMeta,
    pub kind: NodeKind,
}

/// Directory or volume.
pub enum NodeKind {
    /// Children by name, with their inode numbers (grows as volumes unlock).
    Dir(RwLock<BTreeMap<OsString, u64>>),
    /// A volume of an image.
    File(FileNode),
}

/// A file of the mount: one volume of one image.
pub struct FileNode {
    pub image: Arc<ImageEntry>,
    pub volume: Arc<Volume>,
}

/// One source image: its volume tree and how its volumes get keys.
pub struct ImageEntry {
    /// The volume tree.
    pub tree: ImageTree,
    /// Key for the image's volumes (keytab line, sidecar, or the default).
    key: KeySource,
    /// Key slot to try (keytab or command line).
    key_slot: Option<u32>,
    meta: SourceMeta,
    /// Inode of the `<name>.d` directory, once it exists, and the volumes already shown.
    shown: Mutex<(Option<u64>, HashSet<usize>)>,
    parent: u64,
    file_name: OsString,
    /// Other names keytab lines may use for it (a backup's id).
    pub aliases: Vec<PathBuf>,
    /// The Cinder backup it is, if it is one.
    pub backup: Option<crate::catalog::backup::BackupItem>,
    /// Plaintext bytes served from its volumes through FUSE reads (kernel page-cache hits never
    /// reach the daemon and do not count).
    pub bytes_read: AtomicU64,
    /// Its Glance properties, when it is a Glance image (`glance://`).
    pub glance: Option<sidecar::ImageMeta>,
    /// Its data as one read from start to end (a Glance image: `verify` of a store without
    /// byte ranges).
    pub one_get: Option<Arc<dyn crate::source::OneGet>>,
}

impl ImageEntry {
    /// Source path.
    pub fn source(&self) -> &Path {
        &self.tree.ctx.path
    }
    /// Path relative to the source root (as in the keytab).
    pub fn rel(&self) -> &Path {
        &self.tree.ctx.rel
    }
}

/// Resolves keys and runs key slots for the volumes of a mount.
pub struct Unlocker {
    pub keys: Arc<Keyring>,
    pub settings: UnlockSettings,
    /// Keytab lines for nested volumes: `IMAGE.d/NAME` and `UUID=...`.
    pub volume_keys: BTreeMap<PathBuf, keytab::Entry>,
}

impl Unlocker {
    /// The key for `vol` of `image`: a keytab line naming its LUKS UUID (`UUID=...`), or the
    /// volume (`IMAGE.d/NAME`, NAME with or without its `-luks` suffix), else the image's key.
    pub fn key_for(&self, image: &ImageEntry, vol: &Volume) -> Result<UnlockKey> {
        let mut line = None;
        if let Some(lock) = vol.lock() {
            line = self.volume_keys.get(&PathBuf::from(format!("UUID={}", lock.uuid)));
            if line.is_none() {
                let mut d = image.rel().as_os_str().to_os_string();
                d.push(".d");
                let d = PathBuf::from(d);
                let bare = vol.name.strip_suffix("-luks").unwrap_or(&vol.name);
                line = [vol.name.as_str(), bare]
                    .iter()
                    .filter(|n| !n.is_empty())
                    .find_map(|n| self.volume_keys.get(&d.join(n)));
            }
        }
        let (source, slot) = match line {
            Some(e) => (&e.key, e.options.key_slot),
            None => (&image.key, image.key_slot),
        };
        // In a mount, any failure to obtain the key is a key problem of this volume (EACCES).
        let passphrase = self.keys.passphrase(source).map_err(|e| match e.kind() {
            ErrorKind::Usage => Error::bad_key(e.message().to_string()),
            _ => e,
        })?;
        Ok(UnlockKey { passphrase, key_slot: slot, asked: false })
    }

    /// Unlock `vol` (waiting for a worker already doing it), then show what it revealed.
    pub fn unlock(&self, tree: &Tree, image: &Arc<ImageEntry>, vol: &Volume) -> Result<()> {
        let r = vol.unlock(&|v| self.key_for(image, v), self.settings);
        tree.sync(image);
        r
    }

    /// Unlock every image's volumes on `threads` background threads (failures are logged).
    pub fn spawn_background(self: &Arc<Self>, tree: &Arc<Tree>, threads: usize) {
        let next = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let (me, tree, next) = (self.clone(), tree.clone(), next.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("unlock-{i}"))
                .spawn(move || me.unlock_images(&tree, &next, &|_, e| log::error!("{e}")));
            if let Err(e) = spawned {
                log::warn!("cannot start an unlock thread: {e}; images unlock on first open");
            }
        }
    }

    /// Unlock every image's volumes on one thread per core, and wait for them: the failures,
    /// with their images (in no particular order).
    pub fn unlock_every(&self, tree: &Tree) -> Vec<(Arc<ImageEntry>, Error)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        let failed = |image: &Arc<ImageEntry>, e: Error| {
            failures.lock().unwrap_or_else(|e| e.into_inner()).push((image.clone(), e));
        };
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, tree.images.len().max(1)) {
                s.spawn(|| self.unlock_images(tree, &next, &failed));
            }
        });
        failures.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the images of `tree` one by one (`next`: the index of the next one, shared by the
    /// threads doing this) and unlock their volumes; `failed` hears of each failure.
    fn unlock_images(&self, tree: &Tree, next: &AtomicUsize, failed: &dyn Fn(&Arc<ImageEntry>, Error)) {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(entry) = tree.images.get(n) else { break };
            // An unlock may complete an LV spanning images: its host's new volumes (a LUKS
            // volume inside that LV) are unlocked in turn.
            let mut todo = vec![entry.clone()];
            while let Some(entry) = todo.pop() {
                for e in entry.tree.unlock_all(&|v| self.key_for(&entry, v), self.settings) {
                    failed(&entry, e);
                }
                todo.extend(tree.sync(&entry));
            }
        }
    }
}

/// The whole mounted tree.
pub struct Tree {
    nodes: RwLock<Vec<Arc<Node>>>,
    /// The images shown, in scan order.
    pub images: Vec<Arc<ImageEntry>>,
    /// The LVM2 PVs of every image of the source (shown or not), for volume groups spanning
    /// several images; an LV assembled from them is shown in its host image's `<name>.d/`.
    span: Span,
    /// Told the inodes of the files shown whose volumes were refused after they were shown, so
    /// that what was cached of them (the kernel's pages) is dropped: set by the mount.
    on_revoke: OnceLock<Box<dyn Fn(Vec<u64>) + Send + Sync>>,
}

/// How each image gets its key and options.
pub struct KeyPlan {
    /// Per-image keytab lines, by path relative to the source.
    pub keytab: BTreeMap<PathBuf, keytab::Entry>,
    /// Options applied to images without a keytab line (from the command line).
    pub default_options: ImageOptions,
    /// Take keys from Glance sidecars (`<image>.json`) of images without a keytab line.
    pub use_sidecars: bool,
    /// Show images without any encrypted volume too.
    pub all_volumes: bool,
    /// The tree is for `verify`: every check of the data (a backup's md5s too).
    pub verify: bool,
    /// A backup's key is the Barbican secret the Cinder API or its metadata names (Barbican
    /// configured, and no default key given on the command line): see [`crate::keys::cinder`].
    pub backup_keys: bool,
    /// The OpenStack credentials (`--os-cloud`; `None`: `OS_CLOUD` or `OS_*`).
    pub os_cloud: Option<String>,
}

impl KeyPlan {
    /// Keytab lines that name a nested volume (`IMAGE.d/NAME`) or a LUKS UUID (`UUID=...`).
    pub fn volume_keys(&self) -> BTreeMap<PathBuf, keytab::Entry> {
        self.keytab
            .iter()
            .filter(|(p, _)| {
                p.to_str().is_some_and(|s| s.starts_with("UUID="))
                    || p.parent().and_then(|d| d.extension()).is_some_and(|x| x == "d")
            })
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }
}

fn file_name_of(name: &str) -> OsString {
    OsString::from(format!("{name}.raw"))
}

impl Tree {
    /// Look up a node by inode number.
    pub fn node(&self, ino: u64) -> Option<Arc<Node>> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(ino).ok().and_then(|i| i.checked_sub(1)).and_then(|i| nodes.get(i)).cloned()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the tree holds only its root.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// Call `f` with the inodes of the files shown whose volumes are refused from now on
    /// ([`Volume::revoke`]): whatever was cached of them must go. Set once; later calls are
    /// ignored.
    pub fn on_revoke(&self, f: impl Fn(Vec<u64>) + Send + Sync + 'static) {
        let _ = self.on_revoke.set(Box::new(f));
    }

    /// The volumes shown, with their inode numbers.
    pub fn files(&self) -> Vec<(u64, Arc<Volume>)> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::File(f) => Some((n.ino, f.volume.clone())),
                NodeKind::Dir(_) => None,
            })
            .collect()
    }

    /// List `location` (a directory, one image file, a block device, or a container or bucket)
    /// and build the tree.
    pub fn scan(location: &Location, plan: &KeyPlan) -> Result<Tree> {
        let (root_meta, single) = match location.local() {
            Some(source) => {
                let md = std::fs::metadata(source)
                    .map_err(|e| Error::usage(format!("cannot read source {}: {e}", source.display())))?;
                (SourceMeta::of(&md), !md.is_dir())
            }
            None => (SourceMeta::owned_by_me(SystemTime::now()), false),
        };
        let mut tree = Tree {
            nodes: RwLock::new(Vec::new()),
            images: Vec::new(),
            span: Span::default(),
            on_revoke: OnceLock::new(),
        };
        tree.push(ROOT_INO, OsString::new(), root_meta, NodeKind::Dir(RwLock::default()));
        let mut dirs = Dirs::default();
        for entry in catalog::list(location)? {
            match entry {
                Entry::Dir { rel, meta } => {
                    tree.dir(&mut dirs, &rel, meta);
                }
                Entry::Image(item) => {
                    let parent = tree.dir(&mut dirs, item.rel.parent().unwrap_or(Path::new("")), root_meta);
                    tree.add_item(&item, parent, plan, single)?;
                }
            }
        }
        if single
            && tree.images.is_empty()
            && let Some(source) = location.local()
        {
            let name = source.file_name().map(PathBuf::from).unwrap_or_default();
            if let Some(e) = ImageTree::open(source, &name, &plan.default_options, Limits::default())?
                .emptiness()
                .filter(|e| e.kind() != ErrorKind::NothingToShow)
            {
                return Err(e);
            }
            return Err(Error::new(
                ErrorKind::NothingToShow,
                format!(
                    "{} holds no encrypted volume luksfs can show (see `luksfs inspect {}`; \
                     --all-volumes shows unencrypted disks too)",
                    source.display(),
                    source.display()
                ),
            ));
        }
        let mut known: Vec<PathBuf> = tree.images.iter().map(|e| e.rel().to_path_buf()).collect();
        known.extend(tree.images.iter().flat_map(|e| e.aliases.iter().cloned()));
        for rel in plan.keytab.keys() {
            let image = rel.parent().filter(|d| d.extension().is_some_and(|x| x == "d")).map(|d| d.with_extension(""));
            let names_image = known.iter().any(|k| k == rel || Some(k) == image.as_ref());
            if !names_image && !rel.to_str().is_some_and(|s| s.starts_with("UUID=")) {
                log::warn!("keytab names {} but no such image was found in the source", rel.display());
            }
        }
        // Volume groups spanning several images: every image's PVs first, then one pass.
        for e in &tree.images {
            e.tree.volumes();
            tree.span.add(&e.tree.ctx, true);
        }
        tree.span.resolve();
        for e in &tree.images {
            tree.sync_one(e);
        }
        Ok(tree)
    }

    fn push(&self, parent: u64, name: OsString, meta: SourceMeta, kind: NodeKind) -> u64 {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let ino = nodes.len() as u64 + 1;
        if let Some(NodeKind::Dir(children)) = nodes.get(parent as usize - 1).map(|n| &n.kind) {
            children.write().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), ino);
        }
        nodes.push(Arc::new(Node { ino, parent, name, meta, kind }));
        ino
    }

    /// The inode of folder `rel` (relative to the source), made with its parents when new.
    fn dir(&self, dirs: &mut Dirs, rel: &Path, meta: SourceMeta) -> u64 {
        if rel.as_os_str().is_empty() {
            return ROOT_INO;
        }
        if let Some(&ino) = dirs.get(rel) {
            return ino;
        }
        let parent = self.dir(dirs, rel.parent().unwrap_or(Path::new("")), meta);
        let name = rel.file_name().map(OsString::from).unwrap_or_default();
        let ino = self.push(parent, name, meta, NodeKind::Dir(RwLock::default()));
        dirs.insert(rel.to_path_buf(), ino);
        ino
    }

    fn add_item(&mut self, item: &Item, parent: u64, plan: &KeyPlan, single: bool) -> Result<()> {
        let aliases = item.aliases();
        let line = plan.keytab.get(&item.rel).or_else(|| aliases.iter().find_map(|a| plan.keytab.get(a)));
        let (mut key, options) = match line {
            Some(e) => (e.key.clone(), e.options.clone()),
            None => (KeySource::Default, plan.default_options.clone()),
        };
        let meta = match &item.reach {
            Reach::File => match sidecar::load_for_image(&item.path) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("{e}; ignoring the sidecar");
                    None
                }
            },
            Reach::Glance(g) => Some(g.meta.clone()),
            _ => None,
        };
        if key == KeySource::Default && plan.use_sidecars {
            let id = match item.backup() {
                // the backup's own key (Cinder API), else its volume's: used when no key was given
                Some(b) if plan.backup_keys => crate::keys::cinder::backup_key_id(b, plan.os_cloud.as_deref()).id,
                Some(_) => None,
                None => meta.as_ref().and_then(|m| m.key_id.clone()),
            };
            if let Some(id) = id {
                key = KeySource::Barbican(id);
            }
        }
        let opened = if plan.verify { item.open_verifying() } else { item.open() }
            .map(|r| ImageTree::on(r, &item.path, &item.rel, &options, Limits::default()));
        let tree = match opened {
            Ok(t) => t,
            Err(e) => {
                if single {
                    return Err(e);
                }
                log::warn!("{e}: not shown");
                return Ok(());
            }
        };
        let path = &item.path;
        // Shown: images with an encrypted volume somewhere (or a damaged one), or all of them
        // when asked. A file that is no image at all is never shown.
        let root_layer = tree.root.layer();
        let damaged = root_layer.is_some_and(|l| l.problem.is_some() && l.kind != "not examined");
        let has_volumes = !tree.root.children().is_empty();
        // A backup is always shown: without encryption, as its reassembled volume.
        let backup = item.backup().is_some();
        if backup {
            tree.ctx.serve_root();
        }
        if !(tree.has_encryption() || damaged || backup || (plan.all_volumes && has_volumes)) {
            log::debug!("{}: no encrypted volume: not shown", path.display());
            // Its PVs may still complete a volume group of shown images (one host of those).
            if tree.ctx.lvm_incomplete() {
                self.span.add(&tree.ctx, false);
            }
            return Ok(());
        }
        if damaged && let Some(e) = root_layer.and_then(|l| l.problem.clone()) {
            log::error!("{e}");
        }
        if let Some(want) = meta.as_ref().and_then(|m| m.decrypt_size)
            && let Some(top) = tree.top()
            && want != top.size
        {
            log::warn!(
                "{}: {} says os_decrypt_size {want}, but the image decrypts to {} bytes",
                path.display(),
                if item.glance().is_some() { "Glance" } else { "the Glance sidecar" },
                top.size
            );
        }
        let entry = Arc::new(ImageEntry {
            key_slot: options.key_slot,
            tree,
            key,
            meta: item.meta,
            aliases,
            backup: item.backup().cloned(),
            glance: item.glance().cloned(),
            one_get: item.one_get(),
            shown: Mutex::new((None, HashSet::new())),
            parent,
            file_name: item.rel.file_name().map(OsString::from).unwrap_or_default(),
            bytes_read: AtomicU64::new(0),
        });
        // The top view, or a damaged image, as `<name>.raw` (a damaged one fails to open).
        let top = entry.tree.top().or_else(|| (damaged || backup).then(|| entry.tree.root.clone()));
        if let Some(top) = top {
            let mut name = entry.file_name.clone();
            name.push(".raw");
            self.push(parent, name, entry.meta, NodeKind::File(FileNode { image: entry.clone(), volume: top.clone() }));
            entry.shown.lock().unwrap_or_else(|e| e.into_inner()).1.insert(Arc::as_ptr(&top) as usize);
        }
        self.images.push(entry);
        Ok(())
    }

    /// Show the volumes of `image` that are not shown yet (after an unlock revealed them), and
    /// the LVs its new PVs complete together with other images' (in their host's folder).
    /// Returns the images that gained such an LV.
    pub fn sync(&self, image: &Arc<ImageEntry>) -> Vec<Arc<ImageEntry>> {
        image.tree.volumes();
        self.span.add(&image.tree.ctx, true);
        let mut hosts = Vec::new();
        let resolved = self.span.resolve();
        if let Some(f) = self.on_revoke.get().filter(|_| !resolved.revoked.is_empty()) {
            f(self.files().into_iter().filter(|(_, v)| v.revoked().is_some()).map(|(ino, _)| ino).collect());
        }
        for host in resolved.hosts {
            if let Some(e) = self.images.iter().find(|e| Arc::ptr_eq(&e.tree.ctx, &host)) {
                self.sync_one(e);
                hosts.push(e.clone());
            }
        }
        self.sync_one(image);
        hosts
    }

    /// Show the volumes of `image` that are not shown yet.
    fn sync_one(&self, image: &Arc<ImageEntry>) {
        let mut shown = image.shown.lock().unwrap_or_else(|e| e.into_inner());
        for v in image.tree.volumes() {
            let key = Arc::as_ptr(&v) as usize;
            if v.name.is_empty() || shown.1.contains(&key) || (v.reader().is_none() && v.lock().is_none()) {
                continue;
            }
            let dir = match shown.0 {
                Some(d) => d,
                None => {
                    let mut name = image.file_name.clone();
                    name.push(".d");
                    let d = self.push(image.parent, name, image.meta, NodeKind::Dir(RwLock::default()));
                    shown.0 = Some(d);
                    d
                }
            };
            shown.1.insert(key);
            let node = NodeKind::File(FileNode { image: image.clone(), volume: v.clone() });
            self.push(dir, file_name_of(&v.name), image.meta, node);
        }
    }

    /// Names of the children of directory `ino`, with their inode numbers (a snapshot).
    pub fn children(&self, ino: u64) -> Option<Vec<(OsString, u64)>> {
        let node = self.node(ino)?;
        match &node.kind {
            NodeKind::Dir(c) => {
                Some(c.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(n, &i)| (n.clone(), i)).collect())
            }
            NodeKind::File(_) => None,
        }
    }

    /// The child `name` of directory `ino`.
    pub fn child(&self, ino: u64, name: &OsStr) -> Option<u64> {
        match &self.node(ino)?.kind {
            NodeKind::Dir(c) => c.read().unwrap_or_else(|e| e.into_inner()).get(name).copied(),
            NodeKind::File(_) => None,
        }
    }

    /// The node at `rel` (a path relative to the mount's root, as `ls` shows it).
    pub fn at(&self, rel: &Path) -> Option<Arc<Node>> {
        let mut ino = ROOT_INO;
        for c in rel.components() {
            match c {
                std::path::Component::Normal(name) => ino = self.child(ino, name)?,
                std::path::Component::CurDir => {}
                _ => return None,
            }
        }
        self.node(ino)
    }
}
