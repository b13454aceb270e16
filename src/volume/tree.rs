//! The volume tree of one source image, grown lazily.
//!
//! [`ImageTree::open`] opens the source (a file or a block device) and probes it; every readable
//! volume's children are built on first use ([`Volume::children`]); the decrypted view of an
//! encrypted volume is a [`Lock`]ed volume that becomes readable when [`Volume::unlock`] opens it,
//! and only then gets children of its own. The depth and the number of volumes per image are
//! bounded ([`Limits`]), so a hostile table cannot explode.

use super::name::{self, Names};
use super::probe::{self, Content};
use crate::formats::lvm::reader::LvReader;
use crate::formats::lvm::vg::{SegmentKind, Vg};
use crate::formats::partition;
use crate::image::{Format, ImageOptions, Prepared, UnlockSettings};
use crate::io::{FileSource, ReadAt, Window};
use crate::keys::Secret;
use crate::sniff;
use crate::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Bounds on one image's tree.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Layers below the image file (a laptop disk: GPT, LUKS, LVM = 3).
    pub max_depth: usize,
    /// Volumes in one image's tree.
    pub max_volumes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 8, max_volumes: 256 }
    }
}

/// What every volume of one image shares.
pub struct ImageCtx {
    /// The source file or block device.
    pub path: PathBuf,
    /// Its path relative to the mount source (as keytab lines name it).
    pub rel: PathBuf,
    /// Options for the image's root (detached header, key slot).
    pub options: ImageOptions,
    names: Names,
    count: AtomicUsize,
    limits: Limits,
    /// LVM2 PVs met so far in this image, by PV UUID, and the LVs already shown (by LV UUID):
    /// an LV spanning several PVs of the image is built by the PV that completes its set.
    lvm: Mutex<LvmSeen>,
    /// Logical volumes whose PVs lie in several images of the source, hosted by this image
    /// ([`super::span`]); walked after the root's tree by [`ImageTree::volumes`].
    spanned: Mutex<Vec<Arc<Volume>>>,
    /// The image's own bytes are a volume to read (a Cinder backup's reassembled volume), not
    /// only a container of volumes: its root is served even when nothing in it is recognised
    /// and whatever a probe failed to read (a damaged object fails only the reads it touches).
    root_served: std::sync::atomic::AtomicBool,
}

impl ImageCtx {
    /// Serve the image's root as a volume (see `root_served`).
    pub fn serve_root(&self) {
        self.root_served.store(true, Ordering::Relaxed);
    }
}

/// The LVM2 PVs of one image (readers by PV UUID), the LVs shown (by LV UUID), and every PV met,
/// in the order met (for the source-wide pass, [`super::span`]).
#[derive(Default)]
struct LvmSeen {
    readers: std::collections::HashMap<String, Arc<dyn ReadAt>>,
    shown: std::collections::HashSet<String>,
    found: Vec<PvFound>,
}

/// One LVM2 PV met in an image: what the source-wide pass ([`super::span`]) needs of it.
#[derive(Clone)]
pub struct PvFound {
    /// PV UUID (dashed).
    pub uuid: String,
    /// The VG as this PV's newest valid metadata describes it.
    pub vg: Arc<Vg>,
    /// The PV's bytes.
    pub reader: Arc<dyn ReadAt>,
    /// Depth of the volume holding the PV.
    pub depth: usize,
    /// The volume holding the PV, as messages name it (`IMAGE: NAME`).
    pub volume: PathBuf,
}

impl ImageCtx {
    /// The PVs met in this image from the `from`-th on (in the order met), and how many there
    /// are in all.
    pub fn lvm_found(&self, from: usize) -> (Vec<PvFound>, usize) {
        let seen = self.lvm.lock().unwrap_or_else(|e| e.into_inner());
        (seen.found.get(from..).unwrap_or_default().to_vec(), seen.found.len())
    }

    /// Record a PV as if a probe had met it (tests of the source-wide pass).
    #[cfg(test)]
    pub(crate) fn record_pv(&self, pv: PvFound) {
        let mut seen = self.lvm.lock().unwrap_or_else(|e| e.into_inner());
        seen.readers.insert(pv.uuid.clone(), pv.reader.clone());
        seen.found.push(pv);
    }

    /// Whether some PV met in this image belongs to a VG with PVs not in this image.
    pub fn lvm_incomplete(&self) -> bool {
        let seen = self.lvm.lock().unwrap_or_else(|e| e.into_inner());
        seen.found.iter().any(|f| f.vg.pvs.iter().any(|p| !seen.readers.contains_key(&p.uuid)))
    }

    /// One note per VG with PVs met in this image but not all of them: its name and the PV
    /// UUIDs not found here (at most [`NOTE_UUIDS`] listed). Volumes not yet unlocked are not
    /// looked into.
    pub fn lvm_incomplete_notes(&self) -> Vec<String> {
        let seen = self.lvm.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = std::collections::HashSet::new();
        let mut notes = Vec::new();
        for f in &seen.found {
            if !done.insert(f.vg.uuid.as_str()) {
                continue;
            }
            let missing: Vec<_> = f.vg.pvs.iter().filter(|p| !seen.readers.contains_key(&p.uuid)).collect();
            if missing.is_empty() {
                continue;
            }
            let mut list: Vec<String> =
                missing.iter().take(NOTE_UUIDS).map(|p| format!("{} ({})", p.uuid, p.name)).collect();
            if missing.len() > NOTE_UUIDS {
                list.push(format!("and {} more", missing.len() - NOTE_UUIDS));
            }
            notes.push(format!(
                "LVM2 VG {} is incomplete in this image: {} of its {} PVs not found here: {}; LVs on them are \
                 assembled only with other images of the same source (mount or verify of the directory)",
                f.vg.name,
                missing.len(),
                f.vg.pvs.len(),
                list.join(", ")
            ));
        }
        notes
    }

    /// Whether this image hosts volumes assembled from several images ([`super::span`]).
    pub fn hosts_spanned(&self) -> bool {
        !self.spanned.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Add a volume read from several images of the source to this image (named, counted and
    /// shown as its own): at `depth`, reading through `reader` (or broken with its error);
    /// `notes` say where its parts come from.
    pub fn host(
        self: &Arc<Self>,
        want: String,
        origin: Origin,
        size: u64,
        depth: usize,
        reader: Result<Arc<dyn ReadAt>>,
        notes: Vec<String>,
    ) -> Result<Arc<Volume>> {
        let path = self.path.clone();
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n >= self.limits.max_volumes {
            return Err(Error::unsupported(format!(
                "more than {} volumes in one image: the rest are not examined",
                self.limits.max_volumes
            ))
            .with_path(path));
        }
        let mut v = Volume {
            name: self.names.claim(want),
            origin,
            depth,
            size,
            offset: None,
            image: self.clone(),
            lock: None,
            reader: OnceLock::new(),
            decrypted: OnceLock::new(),
            broken: None,
            revoked: OnceLock::new(),
            expanded: OnceLock::new(),
            origin_notes: notes,
        };
        match reader {
            Ok(r) => {
                let _ = v.reader.set(r);
            }
            Err(e) => v.broken = Some(e.with_path(v.display())),
        }
        let v = Arc::new(v);
        self.spanned.lock().unwrap_or_else(|e| e.into_inner()).push(v.clone());
        Ok(v)
    }
}

/// What a volume is, for people and for JSON.
#[derive(Clone, Debug)]
pub enum Origin {
    /// The image file or block device itself.
    Image,
    /// A partition of a table.
    Partition { table: &'static str, number: u32, name: Option<String>, type_name: String },
    /// The decrypted view of a LUKS volume (or of a qcow2 image with LUKS).
    Decrypted { format: Format, uuid: String },
    /// The guest disk of an unencrypted qcow2 image.
    Qcow2Guest,
    /// A logical volume.
    LogicalVolume { vg: String, lv: String },
}

/// The unlock state of a decrypted view.
pub struct Lock {
    state: Mutex<LockState>,
    cond: Condvar,
    /// LUKS UUID of the encrypted volume.
    pub uuid: String,
    /// LUKS1, LUKS2 or qcow2.
    pub format: Format,
}

enum LockState {
    Queued(Box<Prepared>),
    Unlocking,
    Ready,
    Failed(Error),
}

/// What a volume holds, once probed.
pub struct Layer {
    /// `LUKS2`, `GPT`, `ext4`, `unrecognised`, ...
    pub kind: String,
    /// A filesystem or other leaf found at its start.
    pub leaf: Option<sniff::Volume>,
    /// Why the layer cannot be used (the volume itself stays readable).
    pub problem: Option<Error>,
    /// What a reader should know (a damaged primary GPT, hidden LVs, ...).
    pub notes: Vec<String>,
    /// Layer facts for `inspect` (table ids, VG names and LV segments).
    pub facts: serde_json::Value,
    /// The LUKS header facts (for `inspect`), for encrypted volumes.
    pub header: Option<Box<Prepared>>,
}

/// One volume: a named, readable (or locked) byte range and what it holds.
pub struct Volume {
    /// Unique within the image; `""` for the image itself and for its top view (see [`name`]).
    pub name: String,
    /// Where it comes from.
    pub origin: Origin,
    /// Layers between it and the image file.
    pub depth: usize,
    /// Size in bytes.
    pub size: u64,
    /// Byte offset within the volume that holds it (partitions).
    pub offset: Option<u64>,
    /// The image this volume belongs to.
    pub image: Arc<ImageCtx>,
    lock: Option<Lock>,
    reader: OnceLock<Arc<dyn ReadAt>>,
    /// The decrypted view, once unlocked (for key-slot and cipher facts).
    decrypted: OnceLock<Arc<crate::image::Image>>,
    /// Why it cannot be read at all (a partition past the end of its disk, ...).
    broken: Option<Error>,
    /// Why it can no longer be read, though it could when it was shown (a differing copy of a
    /// PV of an LV spanning images turned up later: [`super::span`]).
    revoked: OnceLock<Error>,
    expanded: OnceLock<(Layer, Vec<Arc<Volume>>)>,
    /// Where its parts come from, when that is worth saying (an LV assembled from PVs in
    /// several images, and which copy of a duplicated PV was read).
    pub origin_notes: Vec<String>,
}

/// How to unlock one encrypted volume: the passphrase and the key slot to try (all if `None`).
pub struct UnlockKey {
    pub passphrase: Secret,
    pub key_slot: Option<u32>,
    /// Typed by a person at a prompt: after a wrong one the key is asked for again (up to
    /// `UnlockSettings::tries` times in all).
    pub asked: bool,
}

/// The whole tree of one source image.
pub struct ImageTree {
    pub ctx: Arc<ImageCtx>,
    pub root: Arc<Volume>,
}

impl ImageTree {
    /// Open the image file or block device at `path` (`rel`: its name relative to the source).
    pub fn open(path: &Path, rel: &Path, options: &ImageOptions, limits: Limits) -> Result<ImageTree> {
        let file: Arc<dyn ReadAt> = Arc::new(FileSource::open(path)?);
        Ok(Self::on(file, path, rel, options, limits))
    }

    /// The tree of the image whose bytes `src` reads.
    pub fn on(src: Arc<dyn ReadAt>, path: &Path, rel: &Path, options: &ImageOptions, limits: Limits) -> ImageTree {
        let ctx = Arc::new(ImageCtx {
            path: path.to_path_buf(),
            rel: rel.to_path_buf(),
            options: options.clone(),
            names: Names::default(),
            count: AtomicUsize::new(1),
            limits,
            lvm: Mutex::default(),
            spanned: Mutex::default(),
            root_served: Default::default(),
        });
        let root = Arc::new(Volume {
            name: String::new(),
            origin: Origin::Image,
            depth: 0,
            size: src.size(),
            offset: None,
            image: ctx.clone(),
            lock: None,
            reader: OnceLock::from(src),
            decrypted: OnceLock::new(),
            broken: None,
            revoked: OnceLock::new(),
            expanded: OnceLock::new(),
            origin_notes: Vec::new(),
        });
        ImageTree { ctx, root }
    }

    /// The image's top view: the decrypted volume or qcow2 guest disk the image file holds
    /// directly (shown as `IMAGE.raw`), if any.
    pub fn top(&self) -> Option<Arc<Volume>> {
        let kids = self.root.children();
        match kids {
            [only] if only.name.is_empty() => Some(only.clone()),
            _ => None,
        }
    }

    /// Why the image has nothing to read when it has neither a top view nor volumes: its root
    /// layer's problem (a damaged header: corrupt), unrecognised bytes (corrupt: no known
    /// magic), or a plain filesystem (nothing to show).
    pub fn emptiness(&self) -> Option<Error> {
        if !self.root.children().is_empty() {
            return None;
        }
        let path = &self.ctx.path;
        let layer = self.root.layer()?;
        if let Some(p) = &layer.problem {
            return Some(p.clone().with_path(path));
        }
        Some(
            match &layer.leaf {
                None => Error::corrupt(
                    "not a LUKS or qcow2 image, and no partition table or LVM2 volume in it (no known magic)",
                ),
                Some(v) => {
                    Error::new(ErrorKind::NothingToShow, format!("it holds {}, and no encrypted volume", v.describe()))
                }
            }
            .with_path(path),
        )
    }

    /// Every volume known now, depth first (the root first), then the volumes assembled from
    /// several images that this image hosts ([`ImageCtx::host`]) and theirs. Locked volumes have
    /// no children yet.
    pub fn volumes(&self) -> Vec<Arc<Volume>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        let mut spanned = 0;
        loop {
            while let Some(v) = stack.pop() {
                for c in v.children().iter().rev() {
                    stack.push(c.clone());
                }
                out.push(v);
            }
            // Expanding a volume may host more (a PV inside a spanned LV): read the list anew.
            let next = self.ctx.spanned.lock().unwrap_or_else(|e| e.into_inner()).get(spanned).cloned();
            match next {
                Some(v) => {
                    spanned += 1;
                    stack.push(v);
                }
                None => return out,
            }
        }
    }

    /// Whether any volume of the tree known now is encrypted.
    pub fn has_encryption(&self) -> bool {
        self.volumes().iter().any(|v| v.lock.is_some())
    }

    /// Find a volume by name (see [`Volume::matches`]).
    pub fn find(&self, want: &str) -> Option<Arc<Volume>> {
        let all = self.volumes();
        let want = want.strip_suffix(".raw").unwrap_or(want);
        all.iter()
            .find(|v| !v.name.is_empty() && v.name == want)
            .or_else(|| all.iter().find(|v| v.matches(want)))
            .cloned()
    }

    /// Try to unlock every locked volume of the tree with `key`, outermost first (each volume that
    /// opens may reveal more); returns the failures.
    pub fn unlock_all(&self, key: &dyn Fn(&Volume) -> Result<UnlockKey>, settings: UnlockSettings) -> Vec<Error> {
        let mut failures = Vec::new();
        let mut tried = std::collections::HashSet::new();
        loop {
            let pending: Vec<_> =
                self.volumes().into_iter().filter(|v| v.is_locked() && tried.insert(Arc::as_ptr(v) as usize)).collect();
            if pending.is_empty() {
                return failures;
            }
            for v in pending {
                if let Err(e) = v.unlock(key, settings) {
                    failures.push(e);
                }
            }
        }
    }
}

impl Volume {
    /// Its reader, when it is readable (unlocked, not broken).
    pub fn reader(&self) -> Option<Arc<dyn ReadAt>> {
        self.reader.get().cloned()
    }

    /// The decrypted view, once unlocked.
    pub fn image(&self) -> Option<Arc<crate::image::Image>> {
        self.decrypted.get().cloned()
    }

    /// Whether it waits for a key.
    pub fn is_locked(&self) -> bool {
        self.lock.as_ref().is_some_and(|l| matches!(*l.lock(), LockState::Queued(_) | LockState::Unlocking))
    }

    /// Its unlock state, for decrypted views.
    pub fn lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }

    /// Why it cannot be read: broken, revoked, or its unlock failed.
    pub fn failure(&self) -> Option<Error> {
        if let Some(e) = self.broken.as_ref().or(self.revoked.get()) {
            return Some(e.clone());
        }
        match &*self.lock.as_ref()?.lock() {
            LockState::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Why reading this volume as a mount's file must fail: [`Volume::failure`], or, for the
    /// image itself (shown only when it is damaged), the problem of what it holds. The image's
    /// own bytes are never served as if they were its plaintext.
    pub fn serve_error(&self) -> Option<Error> {
        if let Some(e) = self.failure() {
            return Some(e);
        }
        if matches!(self.origin, Origin::Image) && !self.image.root_served.load(Ordering::Relaxed) {
            let why = self.layer().and_then(|l| l.problem.clone());
            return Some(
                why.unwrap_or_else(|| Error::corrupt("not a volume luksfs can show")).with_path(self.display()),
            );
        }
        None
    }

    /// How it is called in messages: `IMAGE`, or `IMAGE: NAME`.
    pub fn display(&self) -> PathBuf {
        if self.name.is_empty() {
            self.image.path.clone()
        } else {
            PathBuf::from(format!("{}: {}", self.image.path.display(), self.name))
        }
    }

    /// A one-line description of where it comes from.
    pub fn describe_origin(&self) -> String {
        match &self.origin {
            Origin::Image => "image file".into(),
            Origin::Partition { table, number, name, type_name } => match name.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => format!("{table} partition {number} \"{n}\" ({type_name})"),
                None => format!("{table} partition {number} ({type_name})"),
            },
            Origin::Decrypted { format, uuid } => format!("decrypted {} volume {uuid}", format.name()),
            Origin::Qcow2Guest => "qcow2 guest disk".into(),
            Origin::LogicalVolume { vg, lv } => format!("LVM2 logical volume {vg}/{lv}"),
        }
    }

    /// Whether `want` names this volume: its name, `pN` for a partition whose name starts with
    /// it, `VG/LV` for a logical volume, `UUID=...` for a decrypted view.
    pub fn matches(&self, want: &str) -> bool {
        if !self.name.is_empty() && self.name == want {
            return true;
        }
        match &self.origin {
            Origin::Partition { .. } => self.name.strip_prefix(want).is_some_and(|r| r.starts_with('-')),
            Origin::LogicalVolume { vg, lv } => want == format!("{vg}/{lv}"),
            Origin::Decrypted { uuid, .. } => want.strip_prefix("UUID=").is_some_and(|u| u.eq_ignore_ascii_case(uuid)),
            Origin::Image | Origin::Qcow2Guest => false,
        }
    }

    /// Why it can no longer be read, though it could when it was shown (see [`Volume::revoke`]).
    pub fn revoked(&self) -> Option<&Error> {
        self.revoked.get()
    }

    /// From now on refuse to serve this volume, and every volume found in it so far, with `e`
    /// (its reader must fail its reads by itself: the ones found later probe through it).
    pub fn revoke(&self, e: &Error) {
        if self.revoked.set(e.clone()).is_ok() {
            for child in self.expanded.get().map_or(&[][..], |(_, c)| c.as_slice()) {
                child.revoke(e);
            }
        }
    }

    /// What it holds and its children (empty while locked or broken). Probes on first call.
    pub fn children(&self) -> &[Arc<Volume>] {
        self.expanded().map_or(&[], |(_, c)| c.as_slice())
    }

    /// What it holds (`None` while locked or broken).
    pub fn layer(&self) -> Option<&Layer> {
        self.expanded().map(|(l, _)| l)
    }

    fn expanded(&self) -> Option<&(Layer, Vec<Arc<Volume>>)> {
        let reader = self.reader.get()?;
        Some(self.expanded.get_or_init(|| self.expand(reader)))
    }

    fn expand(&self, reader: &Arc<dyn ReadAt>) -> (Layer, Vec<Arc<Volume>>) {
        let mut layer = Layer {
            kind: String::new(),
            leaf: None,
            problem: None,
            notes: Vec::new(),
            facts: serde_json::Value::Null,
            header: None,
        };
        if self.depth >= self.image.limits.max_depth {
            layer.kind = "not examined".into();
            layer.problem = Some(Error::unsupported(format!(
                "more than {} layers deep: not examined further",
                self.image.limits.max_depth
            )));
            return (layer, Vec::new());
        }
        let options = matches!(self.origin, Origin::Image).then_some(&self.image.options);
        let mut kids = Vec::new();
        match probe::probe(reader, &self.display(), options) {
            Content::Encrypted(p) => {
                layer.kind = p.format().name().to_string();
                let uuid = p.luks().uuid().to_string();
                let child_name = match self.origin {
                    Origin::Image => String::new(),
                    _ => name::join(&self.name, "luks"),
                };
                let origin = Origin::Decrypted { format: p.format(), uuid: uuid.clone() };
                let size = p.size();
                let lock = Lock {
                    state: Mutex::new(LockState::Queued(p.clone())),
                    cond: Condvar::new(),
                    uuid,
                    format: p.format(),
                };
                layer.header = Some(p);
                match self.child(child_name, origin, size, None) {
                    Ok(mut v) => {
                        v.lock = Some(lock);
                        kids.push(Arc::new(v));
                    }
                    Err(e) => layer.problem = Some(e),
                }
            }
            Content::Qcow2(q) => {
                layer.kind = "qcow2".into();
                layer.facts = serde_json::json!({"cluster_size": q.qcow2().header().cluster_size(),
                    "version": q.qcow2().header().version});
                let want = match self.origin {
                    Origin::Image => String::new(),
                    _ => name::join(&self.name, "qcow2"),
                };
                let r: Arc<dyn ReadAt> = q.clone();
                self.push_child(&mut kids, &mut layer, want, Origin::Qcow2Guest, r.size(), None, Ok(r));
            }
            Content::Table(t) => {
                let table = match t.kind {
                    partition::TableKind::Gpt => "GPT",
                    partition::TableKind::Mbr => "MBR",
                };
                layer.kind = table.into();
                layer.notes = t.notes.clone();
                layer.facts = serde_json::json!({"disk_id": t.disk_id, "sector_size": t.sector_size});
                for p in t.partitions.iter().filter(|p| p.role != partition::Role::Extended) {
                    let want = name::partition(&self.name, p.number, p.name.as_deref());
                    let origin = Origin::Partition {
                        table,
                        number: p.number,
                        name: p.name.clone(),
                        type_name: p.type_name.to_string(),
                    };
                    let r = match &p.problem {
                        Some(e) => Err(e.clone()),
                        None => Window::new(reader.clone(), p.start, p.size, "the partition")
                            .map(|w| Arc::new(w) as Arc<dyn ReadAt>),
                    };
                    self.push_child(&mut kids, &mut layer, want, origin, p.size, Some(p.start), r);
                }
            }
            Content::Lvm(pv) => {
                layer.kind = "LVM2 PV".into();
                layer.notes = pv.notes.clone();
                match (&pv.vg, pv.index) {
                    (Some(vg), Some(me)) => {
                        let vg = Arc::new(vg.clone());
                        layer.facts = lvm_facts(&vg);
                        let mut known = self.image.lvm.lock().unwrap_or_else(|e| e.into_inner());
                        known.readers.insert(vg.pvs[me].uuid.clone(), reader.clone());
                        known.found.push(PvFound {
                            uuid: vg.pvs[me].uuid.clone(),
                            vg: vg.clone(),
                            reader: reader.clone(),
                            depth: self.depth,
                            volume: self.display(),
                        });
                        let pvs: Vec<Option<Arc<dyn ReadAt>>> =
                            vg.pvs.iter().map(|p| known.readers.get(&p.uuid).cloned()).collect();
                        for (i, lv) in vg.lvs.iter().enumerate() {
                            if !lv.visible {
                                layer.notes.push(format!("hidden LV {} not shown", lv.name));
                                continue;
                            }
                            let on: Vec<usize> = lv
                                .segments
                                .iter()
                                .flat_map(|s| match &s.kind {
                                    SegmentKind::Striped { stripes, .. } => {
                                        stripes.iter().map(|st| st.pv_index).collect::<Vec<_>>()
                                    }
                                    SegmentKind::Other(_) => Vec::new(),
                                })
                                .collect();
                            // An LV on other PVs only: theirs to show.
                            if !on.is_empty() && !on.contains(&me) {
                                continue;
                            }
                            if let Some(missing) = on.iter().find(|&&p| pvs.get(p).is_none_or(|r| r.is_none())) {
                                layer.notes.push(format!(
                                    "LV {} also needs PV {} ({}), not (yet) found in this image",
                                    lv.name, vg.pvs[*missing].name, vg.pvs[*missing].uuid
                                ));
                                continue;
                            }
                            if !known.shown.insert(lv.uuid.clone()) {
                                continue;
                            }
                            let want = name::dm(&vg.name, &lv.name);
                            let origin = Origin::LogicalVolume { vg: vg.name.clone(), lv: lv.name.clone() };
                            let r = LvReader::new(vg.clone(), i, pvs.clone()).map(|r| Arc::new(r) as Arc<dyn ReadAt>);
                            self.push_child(&mut kids, &mut layer, want, origin, lv.size, None, r);
                        }
                    }
                    _ => layer.notes.push("a PV without volume group metadata".into()),
                }
            }
            Content::Leaf(v) => {
                layer.kind = v.as_ref().map_or_else(|| "unrecognised".to_string(), |v| v.kind.name().to_string());
                layer.leaf = v;
            }
            Content::Broken(e) => {
                layer.kind = "damaged".into();
                layer.problem = Some(e);
            }
        }
        (layer, kids)
    }

    /// Add a child reading through `reader` (or broken), or note why it cannot be added.
    #[allow(clippy::too_many_arguments)]
    fn push_child(
        &self,
        kids: &mut Vec<Arc<Volume>>,
        layer: &mut Layer,
        want: String,
        origin: Origin,
        size: u64,
        offset: Option<u64>,
        reader: Result<Arc<dyn ReadAt>>,
    ) {
        match self.add_child(want, origin, size, offset, reader) {
            Ok(v) => kids.push(v),
            Err(e) => {
                if layer.problem.is_none() {
                    layer.problem = Some(e);
                }
            }
        }
    }

    /// A new child volume (not yet readable), counted against the image's limit.
    fn child(&self, want: String, origin: Origin, size: u64, offset: Option<u64>) -> Result<Volume> {
        let n = self.image.count.fetch_add(1, Ordering::Relaxed);
        if n >= self.image.limits.max_volumes {
            return Err(Error::unsupported(format!(
                "more than {} volumes in one image: the rest are not examined",
                self.image.limits.max_volumes
            ))
            .with_path(self.display()));
        }
        let name = if want.is_empty() { want } else { self.image.names.claim(want) };
        Ok(Volume {
            name,
            origin,
            depth: self.depth + 1,
            size,
            offset,
            image: self.image.clone(),
            lock: None,
            reader: OnceLock::new(),
            decrypted: OnceLock::new(),
            broken: None,
            revoked: OnceLock::new(),
            expanded: OnceLock::new(),
            origin_notes: Vec::new(),
        })
    }

    /// A child reading through `reader`, or broken with `err`.
    pub fn add_child(
        &self,
        want: String,
        origin: Origin,
        size: u64,
        offset: Option<u64>,
        reader: Result<Arc<dyn ReadAt>>,
    ) -> Result<Arc<Volume>> {
        let mut v = self.child(want, origin, size, offset)?;
        match reader {
            Ok(r) => {
                let _ = v.reader.set(r);
            }
            Err(e) => v.broken = Some(e.with_path(v.display())),
        }
        Ok(Arc::new(v))
    }

    /// Unlock this decrypted view (if it is one and still locked) with the key `key` chooses for
    /// it; waits if another thread is unlocking it. Ok when it is readable.
    pub fn unlock(&self, key: &dyn Fn(&Volume) -> Result<UnlockKey>, settings: UnlockSettings) -> Result<()> {
        let Some(lock) = &self.lock else {
            return self.broken.clone().map_or(Ok(()), Err);
        };
        let mut st = lock.lock();
        loop {
            match &*st {
                LockState::Ready => return Ok(()),
                LockState::Failed(e) => return Err(e.clone()),
                LockState::Unlocking => st = lock.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                LockState::Queued(_) => break,
            }
        }
        let LockState::Queued(prepared) = std::mem::replace(&mut *st, LockState::Unlocking) else {
            unreachable!("checked above")
        };
        drop(st);
        // A passphrase typed by a person is asked again after a wrong one, `settings.tries` times
        // in all (the prompt's `--tries`); a key from a file or a secret store is tried once.
        let mut attempt = 1;
        let result = loop {
            let k = match key(self) {
                Ok(k) => k,
                Err(e) => break Err(e),
            };
            match (*prepared).clone().unlock_slot(&k.passphrase, settings, k.key_slot) {
                Err(e) if k.asked && e.kind() == ErrorKind::BadKey && attempt < settings.tries => {
                    eprintln!("luksfs: {e} (attempt {attempt} of {})", settings.tries);
                    attempt += 1;
                }
                r => break r,
            }
        };
        let new = match result {
            Ok(image) => {
                let image = Arc::new(image);
                let _ = self.decrypted.set(image.clone());
                let _ = self.reader.set(image);
                LockState::Ready
            }
            // A failure to obtain the key keeps its class here (`cat` says "usage"); the mount
            // calls it a key problem of this volume (`dir::Unlocker::key_for`).
            Err(e) => LockState::Failed(e.with_path(self.display())),
        };
        let out = match &new {
            LockState::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        };
        *lock.lock() = new;
        lock.cond.notify_all();
        out
    }
}

impl Lock {
    fn lock(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Most PV UUIDs one note lists.
const NOTE_UUIDS: usize = 8;

/// The VG and its LVs' segments, for `inspect`.
fn lvm_facts(vg: &Vg) -> serde_json::Value {
    let lvs: Vec<_> = vg
        .lvs
        .iter()
        .map(|lv| {
            let segs: Vec<_> = lv
                .segments
                .iter()
                .map(|s| match &s.kind {
                    SegmentKind::Striped { stripe_size, stripes } => serde_json::json!({
                        "start_extent": s.start_extent, "extent_count": s.extent_count,
                        "type": if stripes.len() == 1 { "linear" } else { "striped" },
                        "stripe_size": stripe_size,
                        "stripes": stripes.iter().map(|st| format!("{}:{}", st.pv, st.start_extent)).collect::<Vec<_>>(),
                    }),
                    SegmentKind::Other(t) => serde_json::json!({
                        "start_extent": s.start_extent, "extent_count": s.extent_count, "type": t}),
                })
                .collect();
            serde_json::json!({"name": lv.name, "size": lv.size, "visible": lv.visible,
                               "unsupported": lv.unsupported, "segments": segs})
        })
        .collect();
    serde_json::json!({"vg": vg.name, "vg_uuid": vg.uuid, "seqno": vg.seqno, "extent_size": vg.extent_size,
        "pvs": vg.pvs.iter().map(|p| serde_json::json!({"name": p.name, "uuid": p.uuid,
            "pe_start": p.pe_start, "pe_count": p.pe_count, "missing": p.missing})).collect::<Vec<_>>(),
        "lvs": lvs})
}
