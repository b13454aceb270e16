//! LVM2 volume groups whose PVs lie in different images of one source: two disks of one server,
//! or two LUKS volumes each holding a PV.
//!
//! Each image first assembles what it can on its own ([`super::tree`]): an LV whose PVs are all
//! in one image is shown there, in every image that holds it (copies of one disk included).
//! [`Span`] sees the PVs of every image of a source and builds only the LVs that no single image
//! can: each is hosted by the image holding the first of its VG's PVs (metadata order) that is
//! found in a shown image, and named like any LV (`VG-LV`, so `HOST.d/VG-LV.raw` in a mount).
//!
//! A PV UUID found in more than one image is read from the first of them by path when their
//! copies agree (the same label sectors and the same metadata seqno), and the LV says so; when
//! they differ the LV is refused with an error naming both images. The work is linear in the PVs
//! met: a VG is looked at again only when one of its PVs appears (an unlock revealed it), and the
//! PVs tracked, and the copies of one PV compared, are bounded.

use super::name;
use super::tree::{ImageCtx, Origin, PvFound};
use crate::formats::lvm::reader::LvReader;
use crate::formats::lvm::vg::Vg;
use crate::io::ReadAt;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Most PVs (copies included) tracked for one source; more are ignored, with a warning.
pub const MAX_PVS: usize = 65536;
/// Most images holding one PV UUID that are compared; an LV on a PV found in more is refused.
pub const MAX_COPIES: usize = 16;
/// Bytes compared of duplicated PVs: the four sectors where the label and PV header may lie.
const HEAD: usize = 2048;

/// The PVs of every image of one source, and the LVs built from several of them.
#[derive(Default)]
pub struct Span {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    images: Vec<Img>,
    /// Index into `images` by `ImageCtx` address.
    by_ctx: HashMap<usize, usize>,
    /// PV copies by VG UUID.
    vgs: HashMap<String, Vec<Copy>>,
    /// VGs that gained a PV since the last [`Span::resolve`].
    dirty: Vec<String>,
    dirty_set: HashSet<String>,
    /// LV UUIDs built or refused.
    done: HashSet<String>,
    /// PV copies tracked.
    total: usize,
    warned_full: bool,
}

struct Img {
    ctx: Arc<ImageCtx>,
    /// May host the LVs built (it is shown).
    host: bool,
    /// PVs of its `lvm_found` already taken.
    taken: usize,
}

struct Copy {
    image: usize,
    pv: PvFound,
}

/// The choice made for one PV of an LV.
type Choice = std::result::Result<(usize, Option<String>), String>;

impl Span {
    /// Take the PVs `ctx` has met since its last call (its volumes must have been walked, so
    /// they are probed); `host`: the image is shown and may host the LVs built.
    pub fn add(&self, ctx: &Arc<ImageCtx>, host: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = Arc::as_ptr(ctx) as usize;
        let i = match inner.by_ctx.get(&key) {
            Some(&i) => i,
            None => {
                inner.images.push(Img { ctx: ctx.clone(), host, taken: 0 });
                let i = inner.images.len() - 1;
                inner.by_ctx.insert(key, i);
                i
            }
        };
        inner.images[i].host |= host;
        let (new, total) = inner.images[i].ctx.lvm_found(inner.images[i].taken);
        inner.images[i].taken = total;
        for pv in new {
            if inner.total >= MAX_PVS {
                if !inner.warned_full {
                    inner.warned_full = true;
                    log::warn!(
                        "more than {MAX_PVS} LVM2 PVs in the source: the rest are not used to assemble volume groups \
                         spanning several images"
                    );
                }
                return;
            }
            inner.total += 1;
            let vg = pv.vg.uuid.clone();
            if inner.dirty_set.insert(vg.clone()) {
                inner.dirty.push(vg.clone());
            }
            inner.vgs.entry(vg).or_default().push(Copy { image: i, pv });
        }
    }

    /// Build every LV that became complete across images since the last call; returns the
    /// images that host new volumes.
    pub fn resolve(&self) -> Vec<Arc<ImageCtx>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let dirty = std::mem::take(&mut inner.dirty);
        inner.dirty_set.clear();
        let mut hosts: Vec<Arc<ImageCtx>> = Vec::new();
        for vg in dirty {
            for h in inner.resolve_vg(&vg) {
                if !hosts.iter().any(|x| Arc::ptr_eq(x, &h)) {
                    hosts.push(h);
                }
            }
        }
        hosts
    }
}

impl Inner {
    fn path(&self, image: usize) -> &Path {
        &self.images[image].ctx.path
    }

    /// Build the LVs of VG `uuid` that no single image holds whole and every image together
    /// does; returns the hosts of the volumes added.
    fn resolve_vg(&mut self, uuid: &str) -> Vec<Arc<ImageCtx>> {
        let Some(copies) = self.vgs.get(uuid) else { return Vec::new() };
        // The newest metadata (highest seqno; on a tie, the first image by path).
        let Some(newest) = copies.iter().min_by(|a, b| {
            b.pv.vg.seqno.cmp(&a.pv.vg.seqno).then_with(|| self.path(a.image).cmp(self.path(b.image)))
        }) else {
            return Vec::new();
        };
        let vg: Arc<Vg> = newest.pv.vg.clone();
        let index: HashMap<&str, usize> = vg.pvs.iter().enumerate().map(|(i, p)| (p.uuid.as_str(), i)).collect();
        // Copies of each PV of the VG, one per image, ordered by image path.
        let mut holders: Vec<Vec<usize>> = vec![Vec::new(); vg.pvs.len()];
        let mut held: HashSet<(usize, usize)> = HashSet::new();
        for (k, c) in copies.iter().enumerate() {
            if let Some(&p) = index.get(c.pv.uuid.as_str())
                && held.insert((c.image, p))
            {
                holders[p].push(k);
            }
        }
        for h in &mut holders {
            h.sort_by(|&a, &b| self.path(copies[a].image).cmp(self.path(copies[b].image)));
        }
        // The host: the image of the first PV (metadata order) found in a shown image.
        let host = holders.iter().find_map(|h| h.iter().map(|&k| copies[k].image).find(|&i| self.images[i].host));
        let Some(host) = host else { return Vec::new() };
        let mut choices: HashMap<usize, Choice> = HashMap::new();
        let mut added = false;
        for (li, lv) in vg.lvs.iter().enumerate() {
            if !lv.visible || self.done.contains(&lv.uuid) {
                continue;
            }
            let on = lv.pv_indices();
            let Some(&fewest) = on.iter().min_by_key(|&&p| holders[p].len()) else { continue };
            if holders[fewest].is_empty() {
                continue; // a PV not (yet) found anywhere: the images' own notes say which
            }
            // Whole in one image: that image shows it (each one that does).
            let whole = holders[fewest].iter().any(|&k| on.iter().all(|&p| held.contains(&(copies[k].image, p))));
            if whole {
                continue;
            }
            let mut pvs: Vec<Option<Arc<dyn ReadAt>>> = vec![None; vg.pvs.len()];
            let mut notes = Vec::new();
            let mut refused = None;
            let mut depth = 0;
            let mut parts = Vec::new();
            for &p in &on {
                let choice = choices.entry(p).or_insert_with(|| choose(copies, &holders[p], &vg, p));
                match choice {
                    Ok((k, note)) => {
                        let c = &copies[*k];
                        pvs[p] = Some(c.pv.reader.clone());
                        depth = depth.max(c.pv.depth + 1);
                        parts.push(format!("{} ({}) in {}", vg.pvs[p].name, vg.pvs[p].uuid, c.pv.volume.display()));
                        notes.extend(note.clone());
                    }
                    Err(e) => {
                        refused = Some(Error::unsupported(format!("LV {}/{} refused: {e}", vg.name, lv.name)));
                        break;
                    }
                }
            }
            notes.insert(0, format!("assembled from PVs in several images of the source: {}", parts.join(", ")));
            let reader = match refused {
                Some(e) => {
                    log::warn!("{e}");
                    notes.clear();
                    Err(e)
                }
                None => LvReader::new(vg.clone(), li, pvs).map(|r| Arc::new(r) as Arc<dyn ReadAt>),
            };
            let origin = Origin::LogicalVolume { vg: vg.name.clone(), lv: lv.name.clone() };
            let ctx = self.images[host].ctx.clone();
            match ctx.host(name::dm(&vg.name, &lv.name), origin, lv.size, depth, reader, notes) {
                Ok(v) => log::info!("{}: LVM2 logical volume {}/{} assembled across images", v.display().display(), vg.name, lv.name),
                Err(e) => log::warn!("{e}"),
            }
            self.done.insert(lv.uuid.clone());
            added = true;
        }
        if added { vec![self.images[host].ctx.clone()] } else { Vec::new() }
    }
}

/// Which copy of PV `p` (index into `vg.pvs`) to read, among `holders` (indices into `copies`,
/// ordered by image path): the only one; else the first when every copy has the same label
/// sectors and metadata seqno (with a note saying so); else an error naming two images.
fn choose(copies: &[Copy], holders: &[usize], vg: &Vg, p: usize) -> Choice {
    let pv = &vg.pvs[p];
    let [first, rest @ ..] = holders else { return Err(format!("PV {} ({}) is not present", pv.uuid, pv.name)) };
    if rest.is_empty() {
        return Ok((*first, None));
    }
    let where_ = |k: usize| copies[k].pv.volume.display().to_string();
    if holders.len() > MAX_COPIES {
        return Err(format!(
            "PV {} ({}) of VG {} is in {} images (more than {MAX_COPIES}), {} and {} among them",
            pv.uuid,
            pv.name,
            vg.name,
            holders.len(),
            where_(*first),
            where_(rest[0])
        ));
    }
    let head = |k: usize| -> Result<Vec<u8>> {
        let r = &copies[k].pv.reader;
        crate::io::read_vec(&**r, 0, r.size().min(HEAD as u64) as usize)
    };
    let want = head(*first).map_err(|e| format!("reading PV {} in {}: {e}", pv.uuid, where_(*first)))?;
    for &k in rest {
        let got = head(k).map_err(|e| format!("reading PV {} in {}: {e}", pv.uuid, where_(k)))?;
        let (s1, s2) = (copies[*first].pv.vg.seqno, copies[k].pv.vg.seqno);
        if got != want || s1 != s2 {
            return Err(format!(
                "PV {} ({}) of VG {} is in both {} and {}, and the copies differ ({}); remove one from the \
                 source to choose",
                pv.uuid,
                pv.name,
                vg.name,
                where_(*first),
                where_(k),
                if s1 != s2 { format!("metadata seqno {s1} and {s2}") } else { "their PV labels differ".into() }
            ));
        }
    }
    Ok((
        *first,
        Some(format!(
            "PV {} ({}) is in {} images with identical labels and metadata seqno {}: read from {} (first by path), \
             not {}",
            pv.uuid,
            pv.name,
            holders.len(),
            copies[*first].pv.vg.seqno,
            where_(*first),
            rest.iter().map(|&k| where_(k)).collect::<Vec<_>>().join(", ")
        )),
    ))
}
