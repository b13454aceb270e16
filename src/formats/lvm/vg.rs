//! The volume group model built from a parsed metadata text ([`super::metadata`]): PVs, LVs and
//! their segments, validated once, and the pure address mapping of linear and striped LVs
//! ([`Lv::map`]). Every LV type other than linear/striped is listed with
//! [`Lv::unsupported`] saying what it is, never mapped.

use super::metadata::{Section, Value};
use crate::{Error, Result};
use std::collections::HashMap;

/// Sector unit of sizes in the metadata text.
const SECTOR: u64 = 512;
/// Most PVs in one VG.
pub const MAX_PVS: usize = 4096;
/// Most LVs in one VG (hidden sub-LVs included).
pub const MAX_LVS: usize = 16384;
/// Most segments of one LV.
pub const MAX_SEGMENTS: usize = 65536;
/// Most stripes of one segment (lvm2 allows 128).
pub const MAX_STRIPES: usize = 128;

/// A volume group.
#[derive(Clone, Debug, PartialEq)]
pub struct Vg {
    /// VG name.
    pub name: String,
    /// VG UUID (dashed).
    pub uuid: String,
    /// Metadata sequence number.
    pub seqno: u64,
    /// Extent size in bytes (non-zero).
    pub extent_size: u64,
    /// The PVs, in metadata order.
    pub pvs: Vec<VgPv>,
    /// The LVs, in metadata order (hidden sub-LVs included).
    pub lvs: Vec<Lv>,
}

/// A PV as the VG metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VgPv {
    /// Name inside the metadata (`pv0`).
    pub name: String,
    /// PV UUID (dashed).
    pub uuid: String,
    /// First byte of extent 0.
    pub pe_start: u64,
    /// Number of extents.
    pub pe_count: u64,
    /// Device size in bytes.
    pub dev_size: u64,
    /// The metadata marks this PV missing (its device was gone when the VG was last written).
    pub missing: bool,
}

/// A logical volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Lv {
    /// LV name.
    pub name: String,
    /// LV UUID (dashed).
    pub uuid: String,
    /// Size in bytes (sum of its segments).
    pub size: u64,
    /// Has the `VISIBLE` status (hidden sub-LVs of thin pools, RAID, mirrors, snapshots do not).
    pub visible: bool,
    /// Segments in LV order, contiguous from extent 0.
    pub segments: Vec<Segment>,
    /// Why this LV cannot be read as a plain mapping (thin pool, snapshot, raid1, ...), if so.
    pub unsupported: Option<String>,
}

/// A run of LV extents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First LV extent of the segment.
    pub start_extent: u64,
    /// Number of LV extents.
    pub extent_count: u64,
    /// How the extents are laid out.
    pub kind: SegmentKind,
}

/// Segment layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Linear (one stripe) or striped over several PV areas.
    Striped {
        /// Chunk size in bytes; 0 for linear.
        stripe_size: u64,
        /// The PV areas, in stripe order.
        stripes: Vec<Stripe>,
    },
    /// Any other segment type (its lvm2 type name): never mapped.
    Other(String),
}

/// One stripe's area: `extent_count / stripes` extents from `start_extent` of a PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stripe {
    /// The [`VgPv::name`] it lies on.
    pub pv: String,
    /// Index of that PV in [`Vg::pvs`].
    pub pv_index: usize,
    /// First PV extent.
    pub start_extent: u64,
}

/// dm-style name of an LV: dashes in either name doubled, joined by one dash, as `/dev/mapper`
/// shows it (`laptop-vg` + `root` → `laptop--vg-root`).
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

fn corrupt(msg: String) -> Error {
    Error::corrupt(msg)
}

/// A non-negative integer field, required.
fn uint(sec: &Section, key: &str, ctx: &str) -> Result<u64> {
    match sec.get(key) {
        Some(Value::Int(i)) if *i >= 0 => Ok(*i as u64),
        Some(v) => Err(corrupt(format!("{ctx}: {key} = {v:?} is not a non-negative integer"))),
        None => Err(corrupt(format!("{ctx}: {key} missing"))),
    }
}

fn string(sec: &Section, key: &str, ctx: &str) -> Result<String> {
    sec.str(key).map(str::to_owned).ok_or_else(|| corrupt(format!("{ctx}: {key} missing or not a string")))
}

/// `a * b` in bytes, or a Corrupt error naming `what`.
fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b).ok_or_else(|| corrupt(format!("{what}: {a} * {b} overflows")))
}

/// Human description of an LV built on a segment type other than striped.
fn describe(kind: &str) -> String {
    let what = match kind {
        "thin-pool" => "thin pool",
        "thin" => "thin volume",
        "snapshot" => "snapshot",
        "cache" | "cache+CACHE_USES_CACHEVOL" => "cached LV",
        "cache-pool" => "cache pool",
        "writecache" => "writecache LV",
        "vdo" => "VDO volume",
        "vdo-pool" => "VDO pool",
        "integrity" => "integrity LV",
        "mirror" => "mirror",
        "error" => "error target",
        "zero" => "zero target",
        k if k.starts_with("raid") => return format!("{k} (RAID) LV is not supported"),
        k => return format!("segment type {k:?} is not supported"),
    };
    format!("{what} (segment type {kind:?}) is not supported")
}

impl Vg {
    /// Build and validate the VG from the root of a metadata text: the one top-level section
    /// that has `id` and `seqno`.
    pub fn from_metadata(root: &Section) -> Result<Vg> {
        let mut vgs = root.sections.iter().filter(|(_, s)| s.get("id").is_some() && s.get("seqno").is_some());
        let Some((name, sec)) = vgs.next() else {
            return Err(corrupt("LVM metadata text has no volume group section".into()));
        };
        if vgs.next().is_some() {
            return Err(corrupt("LVM metadata text has more than one volume group section".into()));
        }
        let ctx = format!("VG {name}");
        let uuid = string(sec, "id", &ctx)?;
        let seqno = uint(sec, "seqno", &ctx)?;
        let extent_sectors = uint(sec, "extent_size", &ctx)?;
        if extent_sectors == 0 {
            return Err(corrupt(format!("{ctx}: extent_size 0")));
        }
        let extent_size = mul(extent_sectors, SECTOR, &format!("{ctx}: extent_size"))?;
        if let Some(fmt) = sec.str("format")
            && fmt != "lvm2"
        {
            return Err(Error::unsupported(format!("{ctx}: metadata format {fmt:?}")));
        }

        let mut pvs = Vec::new();
        let pv_secs = sec.section("physical_volumes").map(|s| s.sections.as_slice()).unwrap_or_default();
        if pv_secs.len() > MAX_PVS {
            return Err(corrupt(format!("{ctx}: {} PVs (limit {MAX_PVS})", pv_secs.len())));
        }
        for (pname, ps) in pv_secs {
            let pctx = format!("{ctx}, PV {pname}");
            let pe_start = mul(uint(ps, "pe_start", &pctx)?, SECTOR, &pctx)?;
            let pe_count = uint(ps, "pe_count", &pctx)?;
            let dev_size = mul(uint(ps, "dev_size", &pctx)?, SECTOR, &pctx)?;
            let end = mul(pe_count, extent_size, &pctx)?
                .checked_add(pe_start)
                .ok_or_else(|| corrupt(format!("{pctx}: pe_start + extents overflow")))?;
            if end > dev_size {
                return Err(corrupt(format!(
                    "{pctx}: extents end at byte {end}, beyond its dev_size of {dev_size} bytes"
                )));
            }
            let missing = ps.strings("flags").contains(&"MISSING") || ps.strings("status").contains(&"MISSING");
            let uuid = string(ps, "id", &pctx)?;
            if pvs.iter().any(|p: &VgPv| p.uuid == uuid) {
                return Err(corrupt(format!("{pctx}: PV UUID {uuid} listed twice")));
            }
            pvs.push(VgPv { name: pname.clone(), uuid, pe_start, pe_count, dev_size, missing });
        }
        let pv_index: HashMap<&str, usize> = pvs.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();

        let lv_secs = sec.section("logical_volumes").map(|s| s.sections.as_slice()).unwrap_or_default();
        if lv_secs.len() > MAX_LVS {
            return Err(corrupt(format!("{ctx}: {} LVs (limit {MAX_LVS})", lv_secs.len())));
        }
        let lv_names: HashMap<&str, &Section> = lv_secs.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let lv_index: HashMap<&str, usize> = lv_secs.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
        let mut lvs = Vec::with_capacity(lv_secs.len());
        for (lname, ls) in lv_secs {
            lvs.push(Lv::from_metadata(lname, ls, &ctx, &pvs, &pv_index, &lv_names, extent_size)?);
        }
        // A snapshot's COW store is a plain LV whose bytes are the exception store, not a volume.
        let mut cow_of: Vec<(usize, String)> = Vec::new();
        for (lname, ls) in lv_secs {
            for (_, seg) in &ls.sections {
                if seg.str("type") == Some("snapshot")
                    && let Some(cow) = seg.str("cow_store")
                    && let Some(&i) = lv_index.get(cow)
                {
                    let origin = seg.str("origin").unwrap_or("?");
                    cow_of
                        .push((i, format!("snapshot of {origin} ({lname}): its COW exception store is not supported")));
                }
            }
        }
        for (i, why) in cow_of {
            lvs[i].unsupported.get_or_insert(why);
        }
        Ok(Vg { name: name.clone(), uuid, seqno, extent_size, pvs, lvs })
    }

    /// The LV called `name`.
    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// Index in [`Vg::pvs`] of the PV with this UUID.
    pub fn pv_by_uuid(&self, uuid: &str) -> Option<usize> {
        self.pvs.iter().position(|p| p.uuid == uuid)
    }
}

impl Lv {
    fn from_metadata(
        name: &str,
        ls: &Section,
        vg_ctx: &str,
        pvs: &[VgPv],
        pv_index: &HashMap<&str, usize>,
        lvs: &HashMap<&str, &Section>,
        extent_size: u64,
    ) -> Result<Lv> {
        let ctx = format!("{vg_ctx}, LV {name}");
        let uuid = string(ls, "id", &ctx)?;
        let status = ls.strings("status");
        let visible = status.contains(&"VISIBLE");
        let nseg = ls.sections.len();
        if nseg > MAX_SEGMENTS {
            return Err(corrupt(format!("{ctx}: {nseg} segments (limit {MAX_SEGMENTS})")));
        }
        if let Some(n) = ls.int("segment_count")
            && n != nseg as i64
        {
            return Err(corrupt(format!("{ctx}: segment_count {n} but {nseg} segment sections")));
        }
        let mut unsupported = None;
        let mut segments = Vec::with_capacity(nseg);
        for (sname, ss) in &ls.sections {
            let sctx = format!("{ctx}, {sname}");
            let start_extent = uint(ss, "start_extent", &sctx)?;
            let extent_count = uint(ss, "extent_count", &sctx)?;
            if extent_count == 0 {
                return Err(corrupt(format!("{sctx}: extent_count 0")));
            }
            let ty = string(ss, "type", &sctx)?;
            let kind = if ty == "striped" {
                Self::striped(ss, &sctx, extent_count, pvs, pv_index, lvs, extent_size, &mut unsupported)?
            } else {
                unsupported.get_or_insert_with(|| describe(&ty));
                SegmentKind::Other(ty)
            };
            segments.push(Segment { start_extent, extent_count, kind });
        }
        segments.sort_by_key(|s| s.start_extent);
        let mut next = 0u64;
        for s in &segments {
            if s.start_extent != next {
                return Err(corrupt(format!(
                    "{ctx}: segments leave a hole or overlap at extent {next} (next segment starts at {})",
                    s.start_extent
                )));
            }
            next = next.checked_add(s.extent_count).ok_or_else(|| corrupt(format!("{ctx}: extent total overflows")))?;
        }
        let size = mul(next, extent_size, &ctx)?;
        if status.contains(&"MERGING") {
            unsupported.get_or_insert_with(|| "a snapshot merge into this LV is in progress".into());
        }
        Ok(Lv { name: name.to_owned(), uuid, size, visible, segments, unsupported })
    }

    #[allow(clippy::too_many_arguments)]
    fn striped(
        ss: &Section,
        sctx: &str,
        extent_count: u64,
        pvs: &[VgPv],
        pv_index: &HashMap<&str, usize>,
        lvs: &HashMap<&str, &Section>,
        extent_size: u64,
        unsupported: &mut Option<String>,
    ) -> Result<SegmentKind> {
        let n = uint(ss, "stripe_count", sctx)?;
        if n == 0 || n > MAX_STRIPES as u64 {
            return Err(corrupt(format!("{sctx}: stripe_count {n} (1..={MAX_STRIPES})")));
        }
        let Some(Value::Array(areas)) = ss.get("stripes") else {
            return Err(corrupt(format!("{sctx}: stripes missing or not an array")));
        };
        if areas.len() as u64 != 2 * n {
            return Err(corrupt(format!("{sctx}: stripe_count {n} but {} stripes entries", areas.len())));
        }
        if !extent_count.is_multiple_of(n) {
            return Err(corrupt(format!("{sctx}: extent_count {extent_count} not divisible by {n} stripes")));
        }
        let per_stripe = extent_count / n;
        let stripe_size = if n == 1 {
            0
        } else {
            let s = mul(uint(ss, "stripe_size", sctx)?, SECTOR, sctx)?;
            if s == 0 {
                return Err(corrupt(format!("{sctx}: stripe_size 0 with {n} stripes")));
            }
            let area = mul(per_stripe, extent_size, sctx)?;
            if !area.is_multiple_of(s) {
                return Err(corrupt(format!(
                    "{sctx}: stripe area of {area} bytes is not a multiple of the stripe size {s}"
                )));
            }
            s
        };
        let mut stripes = Vec::with_capacity(n as usize);
        for pair in areas.chunks_exact(2) {
            let (Value::Str(pv), Value::Int(start)) = (&pair[0], &pair[1]) else {
                return Err(corrupt(format!("{sctx}: stripes entry {pair:?} is not \"name\", extent")));
            };
            let Ok(start) = u64::try_from(*start) else {
                return Err(corrupt(format!("{sctx}: negative start extent {start} on {pv}")));
            };
            let Some(&pv_i) = pv_index.get(pv.as_str()) else {
                if lvs.contains_key(pv.as_str()) {
                    // Stacked on another LV (pvmove in progress, or a pool's sub-LV layout).
                    unsupported.get_or_insert_with(|| format!("segment stacked on LV {pv} (pvmove in progress?)"));
                    stripes.push(Stripe { pv: pv.clone(), pv_index: usize::MAX, start_extent: start });
                    continue;
                }
                return Err(corrupt(format!("{sctx}: stripe on unknown PV {pv:?}")));
            };
            let p = &pvs[pv_i];
            let end = start.checked_add(per_stripe);
            if end.is_none_or(|e| e > p.pe_count) {
                return Err(corrupt(format!(
                    "{sctx}: extents {start}+{per_stripe} on {pv} beyond its pe_count {}",
                    p.pe_count
                )));
            }
            stripes.push(Stripe { pv: pv.clone(), pv_index: pv_i, start_extent: start });
        }
        Ok(SegmentKind::Striped { stripe_size, stripes })
    }

    /// Where LV byte `off` lives: (index into `vg.pvs`, byte offset within that PV, bytes
    /// contiguous from there within the same stripe chunk / segment). Pure arithmetic,
    /// O(log segments).
    pub fn map(&self, vg: &Vg, off: u64) -> Result<(usize, u64, u64)> {
        if let Some(why) = &self.unsupported {
            return Err(Error::unsupported(format!("LV {}/{}: {why}", vg.name, self.name)));
        }
        if off >= self.size {
            return Err(corrupt(format!("LV {}/{}: offset {off} beyond its size {}", vg.name, self.name, self.size)));
        }
        let es = vg.extent_size;
        let ext = off / es;
        let i = self.segments.partition_point(|s| s.start_extent + s.extent_count <= ext);
        let bad = || corrupt(format!("LV {}/{}: no segment maps offset {off}", vg.name, self.name));
        let seg = self.segments.get(i).ok_or_else(bad)?;
        let SegmentKind::Striped { stripe_size, stripes } = &seg.kind else {
            return Err(Error::unsupported(format!("LV {}/{}: segment type not mappable", vg.name, self.name)));
        };
        let seg_off = off - seg.start_extent * es;
        let seg_len = seg.extent_count * es;
        let (stripe, within, run) = if stripes.len() == 1 {
            (&stripes[0], seg_off, seg_len - seg_off)
        } else {
            let n = stripes.len() as u64;
            let chunk = seg_off / stripe_size;
            let in_chunk = seg_off % stripe_size;
            let st = &stripes[(chunk % n) as usize];
            (st, (chunk / n) * stripe_size + in_chunk, stripe_size - in_chunk)
        };
        let pv = vg.pvs.get(stripe.pv_index).ok_or_else(bad)?;
        let pv_off = stripe
            .start_extent
            .checked_mul(es)
            .and_then(|b| b.checked_add(pv.pe_start))
            .and_then(|b| b.checked_add(within))
            .ok_or_else(bad)?;
        Ok((stripe.pv_index, pv_off, run))
    }

    /// Indices into `vg.pvs` of every PV this LV has extents on.
    pub fn pv_indices(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .segments
            .iter()
            .flat_map(|s| match &s.kind {
                SegmentKind::Striped { stripes, .. } => stripes.iter().map(|st| st.pv_index).collect(),
                SegmentKind::Other(_) => Vec::new(),
            })
            .filter(|&i| i != usize::MAX)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Check that every PV this LV lies on is at hand (`present(index into vg.pvs)`) and not
    /// marked missing; the error (Unsupported) names the first absent PV's UUID.
    pub fn check_pvs(&self, vg: &Vg, present: &dyn Fn(usize) -> bool) -> Result<()> {
        for i in self.pv_indices() {
            let p = &vg.pvs[i];
            if p.missing || !present(i) {
                return Err(Error::unsupported(format!(
                    "LV {}/{} lies partly on PV {} ({}), which is not present",
                    vg.name, self.name, p.uuid, p.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::metadata;
    use super::*;

    fn vg(text: &str) -> Result<Vg> {
        Vg::from_metadata(&metadata::parse(text.as_bytes()).map_err(Error::from)?)
    }

    const BASE: &str = r#"v { id = "V" seqno = 3 format = "lvm2" extent_size = 8
      physical_volumes { pv0 { id = "A" dev_size = 2000 pe_start = 16 pe_count = 100 }
                         pv1 { id = "B" dev_size = 2000 pe_start = 8 pe_count = 100 } }
      logical_volumes {
        lin { id = "L1" status = ["READ", "WRITE", "VISIBLE"] segment_count = 2
          segment2 { start_extent = 2 extent_count = 3 type = "striped" stripe_count = 1 stripes = ["pv1", 7] }
          segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = ["pv0", 10] } }
        str { id = "S" status = ["VISIBLE"] segment_count = 1
          segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 2 stripe_size = 4
                     stripes = ["pv0", 0, "pv1", 50] } }
        tp { id = "T" status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "thin-pool" } }
      } }"#;

    #[test]
    fn linear_and_striped_mapping() {
        let v = vg(BASE).unwrap();
        assert_eq!(v.extent_size, 4096);
        let lin = v.lv("lin").unwrap();
        assert_eq!(lin.size, 5 * 4096);
        assert_eq!(lin.map(&v, 0).unwrap(), (0, 16 * 512 + 10 * 4096, 2 * 4096));
        assert_eq!(lin.map(&v, 8192 + 5).unwrap(), (1, 8 * 512 + 7 * 4096 + 5, 3 * 4096 - 5));
        assert!(lin.map(&v, 5 * 4096).is_err());
        let s = v.lv("str").unwrap();
        // 2 KiB chunks alternate pv0 / pv1
        assert_eq!(s.map(&v, 0).unwrap(), (0, 8192, 2048));
        assert_eq!(s.map(&v, 2048 + 1).unwrap(), (1, 4096 + 50 * 4096 + 1, 2047));
        assert_eq!(s.map(&v, 4096).unwrap(), (0, 8192 + 2048, 2048));
        let tp = v.lv("tp").unwrap();
        assert!(tp.unsupported.as_deref().unwrap().contains("thin pool"));
        assert_eq!(tp.map(&v, 0).unwrap_err().kind(), crate::ErrorKind::Unsupported);
        assert_eq!(dm_name("laptop-vg", "swap_1"), "laptop--vg-swap_1");
        assert!(s.check_pvs(&v, &|i| i == 0).unwrap_err().to_string().contains("PV B"));
        lin.check_pvs(&v, &|_| true).unwrap();
    }

    #[test]
    fn rejects_inconsistent_metadata() {
        for (from, to, want) in [
            ("extent_size = 8", "extent_size = 0", "extent_size 0"),
            ("pe_count = 100 }\n", "pe_count = 300 }\n", "beyond its dev_size"),
            ("[\"pv1\", 7]", "[\"pv1\", 98]", "beyond its pe_count"),
            ("[\"pv1\", 7]", "[\"pv9\", 7]", "unknown PV"),
            ("start_extent = 2", "start_extent = 3", "hole"),
            ("segment_count = 2", "segment_count = 3", "segment_count 3"),
            ("extent_count = 4", "extent_count = 5", "not divisible"),
            ("stripe_size = 4", "stripe_size = 3", "not a multiple"),
            ("stripe_count = 2", "stripe_count = 200", "stripe_count 200"),
            ("id = \"B\"", "id = \"A\"", "listed twice"),
        ] {
            let t = BASE.replacen(from, to, 1);
            assert_ne!(t, BASE, "{from}");
            let e = vg(&t).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains(want), "{from} -> {to}: {e}");
        }
    }
}
