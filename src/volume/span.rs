//! LVM2 volume groups whose PVs lie in different images of one source: two disks of one server,
//! or two LUKS volumes each holding a PV.
//!
//! Each image first assembles what it can on its own ([`super::tree`]): an LV whose PVs are all
//! in one image is shown there, in every image that holds it (copies of one disk included).
//! [`Span`] sees the PVs of every image of a source and builds only the LVs that no single image
//! can: each is hosted by the image holding the LV's first PV (in the VG metadata's order; the
//! next one when that image is not shown), and named like any LV (`VG-LV`, so
//! `HOST.d/VG-LV.raw` in a mount). The host depends only on where the LV's own PVs are, not on
//! the order in which images were probed or unlocked.
//!
//! A PV UUID found in more than one image is read from the first of them by path when their
//! copies agree (the same label sectors and the same metadata seqno), and the LV says so; when
//! they differ the LV is refused with an error naming both images. A differing copy that turns up
//! only later (an unlock revealed it) refuses an LV already built: from then on its reads fail
//! with that error, as a refused LV's would have. The work is linear in the PVs
//! met: a VG is looked at again only when one of its PVs appears (an unlock revealed it), and the
//! PVs tracked, and the copies of one PV compared, are bounded.

use super::name;
use super::tree::{ImageCtx, Origin, PvFound, Volume};
use crate::Error;
use crate::formats::lvm::reader::LvReader;
use crate::formats::lvm::vg::Vg;
use crate::io::ReadAt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

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
    vgs: HashMap<String, Group>,
    /// VGs that gained a PV since the last [`Span::resolve`].
    dirty: Vec<String>,
    dirty_set: HashSet<String>,
    /// LV UUIDs built or refused.
    done: HashSet<String>,
    /// The LVs built and their readers, by LV UUID: refused when a differing PV copy turns up.
    built: HashMap<String, (Arc<Volume>, Arc<Revocable>)>,
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

/// The PVs of one VG met so far.
#[derive(Default)]
struct Group {
    copies: Vec<Copy>,
    /// Indices into `copies` by PV UUID, one per image (at most `MAX_COPIES + 1` are kept:
    /// more only confirm a refusal).
    per_pv: HashMap<String, Vec<usize>>,
    /// The copy with the newest metadata (highest seqno; on a tie, the first image by path).
    newest: Option<usize>,
    /// The VG of `newest`, indexed, once looked at.
    model: Option<Model>,
    /// PV UUIDs met since the last look: only the LVs on them are looked at again.
    fresh: Vec<String>,
}

/// A VG's PVs by UUID and the LVs on each PV (indices into `vg.pvs` / `vg.lvs`).
struct Model {
    vg: Arc<Vg>,
    index: HashMap<String, usize>,
    lvs_on: Vec<Vec<usize>>,
}

impl Model {
    fn new(vg: Arc<Vg>) -> Model {
        let index = vg.pvs.iter().enumerate().map(|(i, p)| (p.uuid.clone(), i)).collect();
        let mut lvs_on = vec![Vec::new(); vg.pvs.len()];
        for (li, lv) in vg.lvs.iter().enumerate() {
            for p in lv.pv_indices() {
                lvs_on[p].push(li);
            }
        }
        Model { vg, index, lvs_on }
    }
}

/// The choice made for one PV of an LV: the copy to read and what to say about it, or why none.
type Choice = std::result::Result<(usize, Option<String>), String>;

impl Span {
    /// Take the PVs `ctx` has met since its last call (its volumes must have been walked, so
    /// they are probed); `host`: the image is shown and may host the LVs built.
    pub fn add(&self, ctx: &Arc<ImageCtx>, host: bool) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        let key = Arc::as_ptr(ctx) as usize;
        let i = match inner.by_ctx.get(&key) {
            Some(&i) => i,
            None => {
                inner.images.push(Img { ctx: ctx.clone(), host, taken: 0 });
                inner.by_ctx.insert(key, inner.images.len() - 1);
                inner.images.len() - 1
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
            let vg = pv.vg.uuid.clone();
            let group = inner.vgs.entry(vg.clone()).or_default();
            let held = group.per_pv.entry(pv.uuid.clone()).or_default();
            if held.len() > MAX_COPIES || held.iter().any(|&k| group.copies[k].image == i) {
                continue;
            }
            held.push(group.copies.len());
            let newer = match group.newest.map(|k| &group.copies[k]) {
                None => true,
                Some(n) => {
                    pv.vg.seqno > n.pv.vg.seqno
                        || (pv.vg.seqno == n.pv.vg.seqno && inner.images[i].ctx.path < inner.images[n.image].ctx.path)
                }
            };
            if newer {
                group.newest = Some(group.copies.len());
            }
            group.fresh.push(pv.uuid.clone());
            group.copies.push(Copy { image: i, pv });
            inner.total += 1;
            if inner.dirty_set.insert(vg.clone()) {
                inner.dirty.push(vg);
            }
        }
    }

    /// Build every LV that became complete across images since the last call, and refuse
    /// those built earlier that a differing PV copy met since contradicts.
    pub fn resolve(&self) -> Resolved {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        let dirty = std::mem::take(&mut inner.dirty);
        inner.dirty_set.clear();
        let mut out = Resolved::default();
        for vg in dirty {
            inner.resolve_vg(&vg, &mut out);
        }
        out
    }
}

/// What one [`Span::resolve`] changed.
#[derive(Default)]
pub struct Resolved {
    /// The images that host new volumes.
    pub hosts: Vec<Arc<ImageCtx>>,
    /// LVs built earlier and refused now ([`Volume::revoke`]d, with what was found in them).
    pub revoked: Vec<Arc<Volume>>,
}

impl Inner {
    /// Look at the LVs of VG `uuid` on the PVs met since the last look (all of them when its
    /// newest metadata changed) and build each that no single image holds whole and every
    /// image together does, and refuse those built earlier that its PV copies now contradict;
    /// adds to `out` what changed.
    fn resolve_vg(&mut self, uuid: &str, out: &mut Resolved) {
        let Some(group) = self.vgs.get_mut(uuid) else { return };
        let Some(newest) = group.newest else { return };
        let vg = group.copies[newest].pv.vg.clone();
        let fresh = std::mem::take(&mut group.fresh);
        let all = !group.model.as_ref().is_some_and(|m| Arc::ptr_eq(&m.vg, &vg));
        if all {
            group.model = Some(Model::new(vg.clone()));
        }
        let group = &self.vgs[uuid];
        let Some(model) = &group.model else { return };
        let mut lvs: Vec<usize> = if all {
            (0..vg.lvs.len()).collect()
        } else {
            fresh.iter().filter_map(|u| model.index.get(u)).flat_map(|&p| model.lvs_on[p].iter().copied()).collect()
        };
        lvs.sort_unstable();
        lvs.dedup();
        let images = &self.images;
        let path = |k: usize| images[group.copies[k].image].ctx.path.as_path();
        // Copies of PV `p` (index into vg.pvs), ordered by image path.
        let holders = |p: usize| -> Vec<usize> {
            let mut h = group.per_pv.get(&vg.pvs[p].uuid).cloned().unwrap_or_default();
            h.sort_by(|&a, &b| path(a).cmp(path(b)));
            h
        };
        let mut choices: HashMap<usize, Choice> = HashMap::new();
        let mut built = Vec::new();
        for li in lvs {
            let lv = &vg.lvs[li];
            if !lv.visible {
                continue;
            }
            if self.done.contains(&lv.uuid) {
                // built already: a copy of one of its PVs that turned up since must agree
                if let Some((v, r)) = self.built.get(&lv.uuid).filter(|(_, r)| r.refused.get().is_none()) {
                    let conflict = lv.pv_indices().into_iter().find_map(|p| {
                        let h = holders(p);
                        choices.entry(p).or_insert_with(|| choose(&group.copies, &h, &vg, p)).clone().err()
                    });
                    if let Some(e) = conflict {
                        let e = Error::unsupported(format!(
                            "LV {}/{} refused: {e} (the second copy turned up after the LV was assembled: its \
                             reads fail from now on)",
                            vg.name, lv.name
                        ));
                        log::warn!("{e}");
                        v.revoke(&e);
                        let _ = r.refused.set(e);
                        out.revoked.push(v.clone());
                    }
                }
                continue;
            }
            let on = lv.pv_indices();
            let held: Vec<Vec<usize>> = on.iter().map(|&p| holders(p)).collect();
            if held.iter().any(Vec::is_empty) {
                continue; // a PV not (yet) found anywhere: the images' own notes say which
            }
            // Whole in one image: that image shows it (each one that does).
            let image_of = |k: usize| group.copies[k].image;
            let whole = held[0].iter().any(|&k| held.iter().all(|h| h.iter().any(|&j| image_of(j) == image_of(k))));
            if whole {
                continue;
            }
            let mut pvs: Vec<Option<Arc<dyn ReadAt>>> = vec![None; vg.pvs.len()];
            let mut notes = Vec::new();
            let mut refused = None;
            let mut depth = 0;
            let mut parts = Vec::new();
            // The host: the image of the LV's first PV (VG metadata order) that is shown.
            let mut host = None;
            for (&p, h) in on.iter().zip(&held) {
                let choice = choices.entry(p).or_insert_with(|| choose(&group.copies, h, &vg, p));
                let k = match choice {
                    Ok((k, note)) => {
                        notes.extend(note.clone());
                        *k
                    }
                    Err(e) => {
                        refused.get_or_insert_with(|| {
                            Error::unsupported(format!("LV {}/{} refused: {e}", vg.name, lv.name))
                        });
                        h[0]
                    }
                };
                let c = &group.copies[k];
                pvs[p] = Some(c.pv.reader.clone());
                depth = depth.max(c.pv.depth + 1);
                parts.push(format!("{} ({}) in {}", vg.pvs[p].name, vg.pvs[p].uuid, c.pv.volume.display()));
                if host.is_none() && images[c.image].host {
                    host = Some(c.image);
                }
            }
            let Some(host) = host else {
                log::debug!("LV {}/{} lies in images not shown: not assembled", vg.name, lv.name);
                continue;
            };
            notes.insert(0, format!("assembled from PVs in several images of the source: {}", parts.join(", ")));
            let mut revocable = None;
            let reader = match refused {
                Some(e) => {
                    log::warn!("{e}");
                    notes.truncate(1);
                    Err(e)
                }
                None => LvReader::new(vg.clone(), li, pvs).map(|r| {
                    let r = Arc::new(Revocable { inner: Arc::new(r), refused: OnceLock::new() });
                    revocable = Some(r.clone());
                    r as Arc<dyn ReadAt>
                }),
            };
            let origin = Origin::LogicalVolume { vg: vg.name.clone(), lv: lv.name.clone() };
            let ctx = images[host].ctx.clone();
            match ctx.host(name::dm(&vg.name, &lv.name), origin, lv.size, depth, reader, notes) {
                Ok(v) => {
                    log::info!(
                        "{}: LVM2 logical volume {}/{} assembled from PVs in several images",
                        v.display().display(),
                        vg.name,
                        lv.name
                    );
                    built.push((lv.uuid.clone(), ctx, revocable.map(|r| (v, r))));
                }
                Err(e) => {
                    log::warn!("{e}");
                    built.push((lv.uuid.clone(), ctx, None));
                }
            }
        }
        for (lv, ctx, readable) in built {
            if let Some(readable) = readable {
                self.built.insert(lv.clone(), readable);
            }
            self.done.insert(lv);
            if !out.hosts.iter().any(|h| Arc::ptr_eq(h, &ctx)) {
                out.hosts.push(ctx);
            }
        }
    }
}

/// The reader of an LV built from several images, which fails every read from the moment a
/// differing copy of one of its PVs turns up (with the error that would have refused it).
struct Revocable {
    inner: Arc<dyn ReadAt>,
    refused: OnceLock<Error>,
}

impl ReadAt for Revocable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> crate::Result<()> {
        match self.refused.get() {
            Some(e) => Err(e.clone()),
            None => self.inner.read_exact_at(buf, offset),
        }
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

/// Which copy of PV `p` (index into `vg.pvs`) to read, among `holders` (indices into `copies`,
/// one per image, ordered by image path): the only one; else the first when every copy has the
/// same label sectors and metadata seqno (with a note saying so); else an error naming two
/// images.
fn choose(copies: &[Copy], holders: &[usize], vg: &Vg, p: usize) -> Choice {
    let pv = &vg.pvs[p];
    let [first, rest @ ..] = holders else { return Err(format!("PV {} ({}) is not present", pv.uuid, pv.name)) };
    if rest.is_empty() {
        return Ok((*first, None));
    }
    let where_ = |k: usize| copies[k].pv.volume.display().to_string();
    if holders.len() > MAX_COPIES {
        return Err(format!(
            "PV {} ({}) of VG {} is in more than {MAX_COPIES} images, {} and {} among them",
            pv.uuid,
            pv.name,
            vg.name,
            where_(*first),
            where_(rest[0])
        ));
    }
    let head = |k: usize| -> std::result::Result<Vec<u8>, String> {
        let r = &copies[k].pv.reader;
        crate::io::read_vec(&**r, 0, r.size().min(HEAD as u64) as usize)
            .map_err(|e| format!("reading PV {} in {}: {e}", pv.uuid, where_(k)))
    };
    let want = head(*first)?;
    for &k in rest {
        let got = head(k)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::lvm::metadata;
    use crate::image::ImageOptions;
    use crate::volume::tree::{ImageTree, Limits};
    use std::fmt::Write;

    /// A VG text with `pvs` PVs of 4 extents and `pvs / 2` LVs, LV `i` one extent on PV `2i`
    /// then one on PV `2i + 1` (a model for the pass, as `vgcfgbackup` writes it).
    fn vg(pvs: usize) -> Arc<Vg> {
        let mut t =
            String::from("big { id = \"VGID\" seqno = 7 format = \"lvm2\" extent_size = 8\n physical_volumes {\n");
        for i in 0..pvs {
            writeln!(t, "pv{i} {{ id = \"PV-{i}\" dev_size = 4096 pe_start = 2048 pe_count = 4 }}").unwrap();
        }
        t.push_str("}\n logical_volumes {\n");
        for i in 0..pvs / 2 {
            writeln!(
                t,
                "lv{i} {{ id = \"LV-{i}\" status = [\"VISIBLE\"] segment_count = 2 \
                 segment1 {{ start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv{}\", 0] }} \
                 segment2 {{ start_extent = 1 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv{}\", 0] }} }}",
                2 * i,
                2 * i + 1
            )
            .unwrap();
        }
        t.push_str("} }\n");
        Arc::new(Vg::from_metadata(&metadata::parse(t.as_bytes()).unwrap()).unwrap())
    }

    fn image(n: usize, limits: Limits) -> ImageTree {
        let r: Arc<dyn ReadAt> = Arc::new(vec![0u8; 4096]);
        let p = std::path::PathBuf::from(format!("/src/img{n:05}"));
        ImageTree::on(r, &p, &p, &ImageOptions::default(), limits)
    }

    fn pv(vg: &Arc<Vg>, i: usize, fill: u8, image: usize) -> PvFound {
        PvFound {
            uuid: vg.pvs[i].uuid.clone(),
            vg: vg.clone(),
            reader: Arc::new(vec![fill; 2 * 1024 * 1024 + 4 * 4096]),
            depth: 0,
            volume: format!("/src/img{image:05}: pv{i}").into(),
        }
    }

    /// 4096 PVs, two in each of 2048 images, every LV across two images, the images arriving
    /// one by one (as unlocks reveal them) with a pass after each: every LV is built once, by
    /// the image of its first PV, and the whole takes well under the limit.
    #[test]
    fn thousands_of_pvs_arriving_one_image_at_a_time() {
        let vg = vg(4096);
        let trees: Vec<ImageTree> = (0..2048).map(|n| image(n, Limits::default())).collect();
        let span = Span::default();
        let t0 = std::time::Instant::now();
        for (n, t) in trees.iter().enumerate() {
            // image n holds PVs 2n+1 and 2n+2: LV i (PVs 2i, 2i+1) lies in images i-1 and i
            t.ctx.record_pv(pv(&vg, 2 * n + 1, 0, n));
            t.ctx.record_pv(pv(&vg, (2 * n + 2) % 4096, 0, n));
            span.add(&t.ctx, true);
            span.resolve();
        }
        let took = t0.elapsed();
        let hosted: Vec<Vec<String>> =
            trees.iter().map(|t| t.volumes().iter().skip(1).map(|v| v.name.clone()).collect()).collect();
        assert_eq!(hosted[2047], ["big-lv0"]); // PV 0 is in the last image
        for (n, names) in hosted[..2047].iter().enumerate() {
            assert_eq!(names, &[format!("big-lv{}", n + 1)]);
        }
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
        eprintln!("2048 images, 4096 PVs, 2048 LVs across two images each: {took:?}");
    }

    /// One PV in many images: identical copies are read from the first by path; differing ones
    /// refuse the LV naming two images; more than MAX_COPIES are refused unread.
    #[test]
    fn duplicated_pvs() {
        let vg = vg(2);
        for (copies, differ, want) in [
            (3, false, Ok("read from /src/img00001: pv1")),
            (3, true, Err("differ")),
            (MAX_COPIES * 40, false, Err("more than 16 images")),
        ] {
            let trees: Vec<ImageTree> = (0..=copies).map(|n| image(n, Limits::default())).collect();
            trees[0].ctx.record_pv(pv(&vg, 0, 0, 0));
            for (n, t) in trees.iter().enumerate().skip(1) {
                t.ctx.record_pv(pv(&vg, 1, if differ && n == 2 { 1 } else { 0 }, n));
            }
            let span = Span::default();
            for t in &trees {
                span.add(&t.ctx, true);
            }
            assert_eq!(span.resolve().hosts.len(), 1);
            let lv = trees[0].volumes().into_iter().find(|v| v.name == "big-lv0").unwrap();
            match want {
                Ok(note) => {
                    assert!(lv.failure().is_none());
                    assert!(lv.origin_notes[1].contains(note) && lv.origin_notes[1].contains("first by path"));
                }
                Err(why) => {
                    let e = lv.failure().unwrap().to_string();
                    assert!(e.contains(why) && e.contains("/src/img00001"), "{e}");
                }
            }
        }
    }

    /// A differing copy of a PV that turns up after its LV was built (an unlock revealed it)
    /// refuses the LV from then on: its reads fail naming both images; an identical copy
    /// changes nothing.
    #[test]
    fn a_differing_copy_found_later_refuses_the_lv() {
        let vg = vg(2);
        let trees: Vec<ImageTree> = (0..4).map(|n| image(n, Limits::default())).collect();
        trees[0].ctx.record_pv(pv(&vg, 0, 0, 0));
        trees[1].ctx.record_pv(pv(&vg, 1, 0, 1));
        let span = Span::default();
        span.add(&trees[0].ctx, true);
        span.add(&trees[1].ctx, true);
        assert_eq!(span.resolve().hosts.len(), 1);
        let lv = trees[0].volumes().into_iter().find(|v| v.name == "big-lv0").unwrap();
        let reader = lv.reader().unwrap();
        let mut b = [0u8; 512];
        reader.read_exact_at(&mut b, 0).unwrap();
        // the same bytes again in another image: still read
        trees[2].ctx.record_pv(pv(&vg, 1, 0, 2));
        span.add(&trees[2].ctx, true);
        assert!(span.resolve().revoked.is_empty());
        reader.read_exact_at(&mut b, 0).unwrap();
        assert!(lv.failure().is_none());
        // other bytes: refused from now on, the reader and the volume (as a mount serves it)
        trees[3].ctx.record_pv(pv(&vg, 0, 9, 3));
        span.add(&trees[3].ctx, true);
        let revoked = span.resolve().revoked;
        assert!(revoked.len() == 1 && Arc::ptr_eq(&revoked[0], &lv));
        let e = reader.read_exact_at(&mut b, 0).unwrap_err().to_string();
        assert!(e.contains("differ") && e.contains("/src/img00003") && e.contains("turned up after"), "{e}");
        assert_eq!(lv.failure().map(|f| f.to_string()), Some(e));
        // told once
        trees[3].ctx.record_pv(pv(&vg, 1, 9, 3));
        span.add(&trees[3].ctx, true);
        assert!(span.resolve().revoked.is_empty());
    }

    /// An LV whole in one image is that image's own: the pass leaves it alone, also when
    /// another image holds copies of its PVs.
    #[test]
    fn whole_in_one_image_is_not_assembled() {
        let vg = vg(2);
        let (a, b) = (image(0, Limits::default()), image(1, Limits::default()));
        a.ctx.record_pv(pv(&vg, 0, 0, 0));
        a.ctx.record_pv(pv(&vg, 1, 0, 0));
        b.ctx.record_pv(pv(&vg, 1, 0, 1));
        let span = Span::default();
        span.add(&a.ctx, true);
        span.add(&b.ctx, true);
        assert!(span.resolve().hosts.is_empty());
        assert!(!a.ctx.hosts_spanned() && !b.ctx.hosts_spanned());
    }
}
