//! LVM2 physical volumes made by lvm2 itself on loop devices (`activation=0`: no device-mapper,
//! LVs are never activated) and read back with `luksfs::formats::lvm`: sizes and mappings are
//! compared with what `lvs`/`pvs` report, LV contents are written into the image files at the
//! offsets lvm2 reports and read back through [`Lv::map`].
//!
//! lvm2 refuses to create thin pools, snapshots and RAID LVs without device-mapper ("Can't create
//! thin-pool without using device-mapper kernel driver"), so those VGs are made by
//! `vgcfgrestore --force` from a `vgcfgbackup` of LVs lvm2 created, with the thin-pool, thin and
//! snapshot LV sections added to the text; lvm2 writes the restored metadata and `lvs` reads it
//! back as such.

use crate::util::{Lab, random, sh, tool};
use luksfs::ErrorKind;
use luksfs::formats::lvm::{self, Lv, Vg};
use std::path::{Path, PathBuf};

/// Every lvm2 command: no activation, no udev, only our loop devices, no backup/archive files
/// written to /etc/lvm.
fn config(loops: &[String]) -> String {
    let accept: Vec<String> = loops.iter().map(|l| format!("\"a|^{l}$|\"")).collect();
    format!(
        "global {{ activation = 0 }} devices {{ obtain_device_list_from_udev = 0 use_devicesfile = 0 \
         global_filter = [ {}, \"r|.*|\" ] }} activation {{ udev_sync = 0 udev_rules = 0 }} \
         backup {{ backup = 0 archive = 0 }}",
        accept.join(", ")
    )
}

/// Image files attached to loop devices for lvm2; detached on drop.
pub(crate) struct Pvs {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) loops: Vec<String>,
    conf: String,
}

impl Pvs {
    pub(crate) fn new(lab: &Lab, sizes_mib: &[u64]) -> Pvs {
        let mut files = Vec::new();
        let mut loops = Vec::new();
        for (i, mib) in sizes_mib.iter().enumerate() {
            let f = lab.work.join(format!("pv{i}.img"));
            std::fs::File::create(&f).unwrap().set_len(mib << 20).unwrap();
            let mut c = tool("losetup");
            c.args(["-f", "--show"]).arg(&f);
            let dev = String::from_utf8(sh(c)).unwrap().trim().to_string();
            files.push(f);
            loops.push(dev);
        }
        let conf = config(&loops);
        Pvs { files, loops, conf }
    }

    /// `lvm SUB --config ... ARGS` must succeed; stdout.
    pub(crate) fn lvm(&self, sub: &str, args: &[&str]) -> String {
        let mut c = tool("lvm");
        c.arg(sub).arg("--config").arg(&self.conf).args(args).env("LVM_SUPPRESS_FD_WARNINGS", "1");
        String::from_utf8(sh(c)).unwrap()
    }

    /// `lvm SUB` that may fail: (success, stderr).
    fn lvm_try(&self, sub: &str, args: &[&str]) -> (bool, String) {
        let mut c = tool("lvm");
        c.arg(sub).arg("--config").arg(&self.conf).args(args).env("LVM_SUPPRESS_FD_WARNINGS", "1");
        let out = crate::util::run_timed(c, std::time::Duration::from_secs(120));
        (out.code == Some(0), out.stderr)
    }

    /// Rows of a report command (`--noheadings --separator ;`), fields trimmed.
    fn report(&self, sub: &str, fields: &str, extra: &[&str]) -> Vec<Vec<String>> {
        let mut args = vec!["--noheadings", "--units", "b", "--nosuffix", "--separator", ";", "-o", fields];
        args.extend_from_slice(extra);
        self.lvm(sub, &args)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().split(';').map(|f| f.trim().to_string()).collect())
            .collect()
    }

    /// pvck's `--dump headers` values of PV `i` by key (`mda_header_1.raw_locn[0].offset`).
    fn headers(&self, i: usize) -> std::collections::HashMap<String, u64> {
        let out = self.lvm("pvck", &["--dump", "headers", &self.loops[i]]);
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (k, v) = (w.next()?, w.next()?);
                let v = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok()?,
                    None => v.parse().ok()?,
                };
                Some((k.to_string(), v))
            })
            .collect()
    }

    /// One value of [`Pvs::headers`].
    fn pvck(&self, i: usize, key: &str) -> u64 {
        *self.headers(i).get(key).unwrap_or_else(|| panic!("pvck --dump headers has no {key}"))
    }

    /// Device → (file index, PV UUID, pe_start bytes).
    pub(crate) fn pv_table(&self) -> Vec<(String, String, u64)> {
        self.report("pvs", "pv_name,pv_uuid,pe_start", &self.loops.iter().map(String::as_str).collect::<Vec<_>>())
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap()))
            .collect()
    }

    pub(crate) fn read(&self, i: usize) -> lvm::Pv {
        let data = std::fs::read(&self.files[i]).unwrap();
        lvm::read_pv(&data, data.len() as u64).unwrap_or_else(|e| panic!("read_pv {}: {e}", self.files[i].display()))
    }
}

impl Drop for Pvs {
    fn drop(&mut self) {
        for l in &self.loops {
            let _ = tool("losetup").args(["-d", l]).status();
        }
    }
}

/// One LV segment as `lvs` reports it.
#[derive(Debug)]
pub(crate) struct SegRow {
    start_pe: u64,
    size_pe: u64,
    stripe_size: u64,
    /// (file index, first PV extent) per stripe
    pub(crate) areas: Vec<(usize, u64)>,
}

/// One LV as `lvs` reports it: name, size, segments (sorted), segment type of the first segment.
#[derive(Debug)]
pub(crate) struct LvRow {
    pub(crate) name: String,
    pub(crate) size: u64,
    segtype: String,
    origin: String,
    pub(crate) segs: Vec<SegRow>,
}

pub(crate) fn lvs_table(p: &Pvs, vg: &str) -> Vec<LvRow> {
    let rows = p.report(
        "lvs",
        "lv_name,lv_size,seg_start_pe,seg_size_pe,seg_pe_ranges,stripes,stripe_size,segtype,origin",
        &["-a", vg],
    );
    let mut out: Vec<LvRow> = Vec::new();
    for r in rows {
        let name = r[0].trim_matches(['[', ']']).to_string();
        let areas = r[4]
            .split_whitespace()
            .filter_map(|a| {
                let (dev, range) = a.rsplit_once(':')?;
                let file = p.loops.iter().position(|l| l == dev)?;
                Some((file, range.split('-').next()?.parse().ok()?))
            })
            .collect();
        let seg = SegRow {
            start_pe: r[2].parse().unwrap(),
            size_pe: r[3].parse().unwrap(),
            stripe_size: r[6].parse().unwrap(),
            areas,
        };
        match out.iter_mut().find(|l| l.name == name) {
            Some(l) => l.segs.push(seg),
            None => out.push(LvRow {
                name,
                size: r[1].parse().unwrap(),
                segtype: r[7].clone(),
                origin: r[8].clone(),
                segs: vec![seg],
            }),
        }
    }
    for l in &mut out {
        l.segs.sort_by_key(|s| s.start_pe);
    }
    out
}

/// Where lvm2's layout puts LV byte `off`: (file index, byte in file, bytes to the chunk end),
/// by dm-stripe's rule (chunks of `stripe_size` dealt round-robin over the stripes).
pub(crate) fn expect_map(row: &LvRow, pe_start: &[u64], extent: u64, off: u64) -> (usize, u64, u64) {
    let seg = row.segs.iter().find(|s| off < (s.start_pe + s.size_pe) * extent).unwrap();
    let so = off - seg.start_pe * extent;
    let n = seg.areas.len() as u64;
    let (k, within, run) = if n == 1 {
        (0, so, seg.size_pe * extent - so)
    } else {
        let chunk = so / seg.stripe_size;
        (
            (chunk % n) as usize,
            (chunk / n) * seg.stripe_size + so % seg.stripe_size,
            seg.stripe_size - so % seg.stripe_size,
        )
    };
    let (file, pe) = seg.areas[k];
    (file, pe_start[file] + pe * extent + within, run)
}

/// Offsets worth mapping in an LV: segment and chunk boundaries and their neighbours, and a
/// spread of others.
fn probe_offsets(row: &LvRow, extent: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for s in &row.segs {
        let b = s.start_pe * extent;
        let step = if s.stripe_size > 0 { s.stripe_size } else { extent };
        for k in 0..6 {
            v.extend([b + k * step, b + k * step + 1, (b + (k + 1) * step).saturating_sub(1)]);
        }
    }
    v.extend((0..64).map(|i| row.size / 64 * i + i * 4099 % 512));
    v.retain(|&o| o < row.size);
    v
}

/// Check one VG read through `pv` against `lvs`: every LV's size, visibility and support, and
/// the mapping of linear/striped LVs (PV indices translated to files by UUID).
fn check_vg(p: &Pvs, vg: &Vg, rows: &[LvRow]) {
    let table = p.pv_table();
    let extent = vg.extent_size;
    let pe_start: Vec<u64> = p.loops.iter().map(|l| table.iter().find(|t| &t.0 == l).map_or(0, |t| t.2)).collect();
    let file_of = |i: usize| -> usize {
        let uuid = &vg.pvs[i].uuid;
        let dev = &table.iter().find(|t| &t.1 == uuid).unwrap_or_else(|| panic!("PV {uuid} not in pvs")).0;
        p.loops.iter().position(|l| l == dev).unwrap()
    };
    let names: Vec<&str> = vg.lvs.iter().map(|l| l.name.as_str()).collect();
    for row in rows {
        let lv = vg.lv(&row.name).unwrap_or_else(|| panic!("LV {} (lvs) not in {names:?}", row.name));
        assert_eq!(lv.size, row.size, "LV {} size", row.name);
        let plain = matches!(row.segtype.as_str(), "linear" | "striped") && row.origin.is_empty();
        assert_eq!(
            lv.unsupported.is_none(),
            plain,
            "LV {} ({}): unsupported = {:?}",
            row.name,
            row.segtype,
            lv.unsupported
        );
        if !plain {
            assert_eq!(lv.map(vg, 0).unwrap_err().kind(), ErrorKind::Unsupported);
            continue;
        }
        assert_eq!(lv.segments.len(), row.segs.len(), "LV {} segments", row.name);
        for off in probe_offsets(row, extent) {
            let (i, at, run) = lv.map(vg, off).unwrap_or_else(|e| panic!("LV {} map({off}): {e}", row.name));
            assert_eq!((file_of(i), at, run), expect_map(row, &pe_start, extent, off), "LV {} map({off})", row.name);
        }
    }
    assert_eq!(vg.lvs.len(), rows.len(), "LV count: ours {names:?}");
}

/// Fill every linear/striped LV with seeded bytes, written into the image files where `lvs`
/// says they live; returns (LV name, contents).
fn write_lvs(p: &Pvs, rows: &[LvRow], extent: u64) -> Vec<(String, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    let table = p.pv_table();
    let pe_start: Vec<u64> = p.loops.iter().map(|l| table.iter().find(|t| &t.0 == l).map_or(0, |t| t.2)).collect();
    let files: Vec<std::fs::File> =
        p.files.iter().map(|f| std::fs::OpenOptions::new().write(true).open(f).unwrap()).collect();
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| matches!(r.segtype.as_str(), "linear" | "striped") && r.origin.is_empty()) {
        let data = random(&format!("lvm-{}", row.name), row.size as usize);
        let mut off = 0;
        while off < row.size {
            let (f, at, run) = expect_map(row, &pe_start, extent, off);
            let n = run.min(row.size - off);
            files[f].write_all_at(&data[off as usize..(off + n) as usize], at).unwrap();
            off += n;
        }
        out.push((row.name.clone(), data));
    }
    out
}

/// Read LV `name` through [`Lv::map`] from the image files (`file_of`: vg.pvs index → file).
fn read_lv(vg: &Vg, lv: &Lv, files: &[Vec<u8>], file_of: &dyn Fn(usize) -> usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lv.size as usize);
    let mut off = 0;
    while off < lv.size {
        let (i, at, run) = lv.map(vg, off).unwrap();
        assert!(run > 0);
        let n = run.min(lv.size - off);
        out.extend_from_slice(&files[file_of(i)][at as usize..(at + n) as usize]);
        off += n;
    }
    out
}

/// Read every LV written by [`write_lvs`] back through the PV at file `pv` and compare.
fn check_contents(p: &Pvs, pv: usize, written: &[(String, Vec<u8>)]) {
    let parsed = p.read(pv);
    let vg = parsed.vg.as_ref().unwrap();
    let files: Vec<Vec<u8>> = p.files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let table = p.pv_table();
    let file_of = |i: usize| {
        let dev = &table.iter().find(|t| t.1 == vg.pvs[i].uuid).unwrap().0;
        p.loops.iter().position(|l| l == dev).unwrap()
    };
    for (name, data) in written {
        let lv = vg.lv(name).unwrap();
        let got = read_lv(vg, lv, &files, &file_of);
        crate::util::assert_same(&format!("LV {name} through map()"), &got, data);
    }
}

fn vg_seqno(p: &Pvs, vg: &str) -> u64 {
    p.report("vgs", "vg_seqno", &[vg])[0][0].parse().unwrap()
}

fn flip(path: &Path, off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, off).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, off).unwrap();
}

macro_rules! need_lvm {
    () => {
        need!("root", "lvm", "losetup");
    };
}

#[test]
fn orphan_then_linear_lvs_with_several_segments() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[64]);
    let dev = p.loops[0].as_str();
    p.lvm("pvcreate", &["-q", dev]);
    let head = std::fs::read(&p.files[0]).unwrap();
    assert!(lvm::probe(&head[..2048]));
    let orphan = p.read(0);
    assert!(orphan.vg.is_none(), "{orphan:?}");
    assert_eq!(orphan.uuid, p.pv_table()[0].1);
    assert_eq!(orphan.dev_size, 64 << 20);

    p.lvm("vgcreate", &["-q", "-s", "1M", "lin-vg", dev]);
    for (n, sz) in [("a", "8M"), ("b-x", "4M"), ("c", "4M")] {
        p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", sz, "-n", n, "lin-vg"]);
    }
    p.lvm("lvremove", &["-q", "-y", "lin-vg/b-x"]);
    p.lvm("lvextend", &["-q", "-L", "+6M", "lin-vg/a"]); // 4 MiB hole after a, then past c
    p.lvm("lvextend", &["-q", "-L", "+3M", "lin-vg/c"]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-l", "100%FREE", "-n", "rest", "lin-vg"]);
    let rows = lvs_table(&p, "lin-vg");
    assert!(rows.iter().find(|r| r.name == "a").unwrap().segs.len() >= 2, "{rows:?}");
    let pv = p.read(0);
    let vg = pv.vg.as_ref().unwrap();
    assert_eq!((vg.name.as_str(), vg.seqno), ("lin-vg", vg_seqno(&p, "lin-vg")));
    assert_eq!(vg.extent_size, 1 << 20);
    assert_eq!(pv.index, Some(0));
    assert!(pv.notes.is_empty(), "{:?}", pv.notes);
    check_vg(&p, vg, &rows);
    assert!(vg.lvs.iter().all(|l| l.visible));
    assert_eq!(lvm::dm_name(&vg.name, "c"), "lin--vg-c");
    let written = write_lvs(&p, &rows, vg.extent_size);
    check_contents(&p, 0, &written);

    // A PV shorter than its metadata says is data loss.
    let data = std::fs::read(&p.files[0]).unwrap();
    let short = data[..data.len() - (1 << 20)].to_vec();
    let e = lvm::read_pv(&short, short.len() as u64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("shorter than the LVM metadata says"), "{e}");
}

#[test]
fn striped_lv_across_two_pvs() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[40, 48]);
    let (d0, d1) = (p.loops[0].as_str(), p.loops[1].as_str());
    p.lvm("pvcreate", &["-q", d0, d1]);
    p.lvm("vgcreate", &["-q", "-s", "4M", "stripes", d0, d1]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "16M", "-n", "s64k", "stripes"]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "8M", "-n", "only1", "stripes", d1]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-i", "2", "-I", "4k", "-L", "8M", "-n", "s4k", "stripes"]);
    p.lvm("lvextend", &["-q", "-i", "2", "-I", "128k", "-L", "+16M", "stripes/s64k"]);
    let rows = lvs_table(&p, "stripes");
    assert!(rows.iter().any(|r| r.segs.iter().any(|s| s.areas.len() == 2)), "{rows:?}");
    let (a, b) = (p.read(0), p.read(1));
    let (va, vb) = (a.vg.as_ref().unwrap(), b.vg.as_ref().unwrap());
    assert_eq!(va, vb, "both PVs hold the same VG");
    assert_ne!(a.index, b.index);
    check_vg(&p, va, &rows);
    let written = write_lvs(&p, &rows, va.extent_size);
    check_contents(&p, 0, &written);
    check_contents(&p, 1, &written);

    // Both PVs as the two partitions of one GPT disk (sgdisk): the volume tree assembles the VG
    // from them and `cat --volume` reads every LV, the striped ones across both partitions.
    use std::os::unix::fs::FileExt;
    let disk = lab.work.join("two-pvs.gpt");
    let sizes: Vec<u64> = p.files.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
    std::fs::File::create(&disk).unwrap().set_len((2 << 20) + sizes[0] + sizes[1]).unwrap();
    let (s1, s2) = (2048, 2048 + sizes[0] / 512);
    let mut c = tool("sgdisk");
    c.arg(format!("-n1:{s1}:+{}", sizes[0] / 512)).arg(format!("-n2:{s2}:+{}", sizes[1] / 512)).arg(&disk);
    sh(c);
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    for (i, start) in [s1, s2].into_iter().enumerate() {
        f.write_all_at(&std::fs::read(&p.files[i]).unwrap(), start * 512).unwrap();
    }
    assert_eq!(written.len(), 3, "s64k, only1 and s4k were written");
    for (name, data) in &written {
        let out = crate::util::Luksfs::new("cat").arg(&disk).arg("--volume").arg(format!("stripes/{name}")).run();
        assert!(out.ok() == data.as_slice(), "LV stripes/{name} read through the GPT disk differs");
    }

    // With only the second PV at hand: LVs on it work, the striped ones name the missing PV.
    let have_b = b.index.unwrap();
    va.lv("only1").unwrap().check_pvs(va, &|i| i == have_b).unwrap();
    let e = va.lv("s64k").unwrap().check_pvs(va, &|i| i == have_b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains(&a.uuid), "{e}");
}

#[test]
fn two_metadata_copies_one_damaged() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[32]);
    let dev = p.loops[0].as_str();
    p.lvm("pvcreate", &["-q", "--pvmetadatacopies", "2", dev]);
    p.lvm("vgcreate", &["-q", "-s", "1M", "copies", dev]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "5M", "-n", "data", "copies"]);
    assert!(p.pvck(0, "pv_header.disk_locn[3].offset") > 0, "a second metadata area");
    let text = |n: usize| {
        let start = p.pvck(0, &format!("mda_header_{n}.start"));
        start + p.pvck(0, &format!("mda_header_{n}.raw_locn[0].offset"))
    };
    let (t1, t2) = (text(1), text(2));
    let rows = lvs_table(&p, "copies");
    let pv = p.read(0);
    assert!(pv.notes.is_empty(), "{:?}", pv.notes);
    check_vg(&p, pv.vg.as_ref().unwrap(), &rows);

    // The first copy damaged: the second is used, and the damage is noted.
    flip(&p.files[0], t1 + 40);
    let pv1 = p.read(0);
    assert_eq!(pv1.vg, pv.vg);
    assert!(pv1.notes.iter().any(|n| n.contains("metadata area 1") && n.contains("checksum")), "{:?}", pv1.notes);
    // Both damaged: Corrupt, naming the checksum.
    flip(&p.files[0], t2 + 40);
    let data = std::fs::read(&p.files[0]).unwrap();
    let e = lvm::read_pv(&data, data.len() as u64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn metadata_wrapped_around_the_circular_buffer() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[32]);
    let dev = p.loops[0].as_str();
    // A 60 KiB metadata area (pe_start at 64 KiB): a few dozen VG writes go round it.
    p.lvm("pvcreate", &["-q", "--metadatasize", "16k", "--dataalignment", "64k", dev]);
    p.lvm("vgcreate", &["-q", "-s", "1M", "wrap", dev]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "3M", "-n", "lv1", "wrap"]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "2M", "-n", "lv2", "wrap"]);
    let size = p.pvck(0, "mda_header_1.size");
    let mut wrapped = 0;
    for i in 0..400 {
        p.lvm("vgchange", &["-q", "--addtag", &format!("tag{i}"), "wrap"]);
        let h = p.headers(0);
        let (off, len) = (h["mda_header_1.raw_locn[0].offset"], h["mda_header_1.raw_locn[0].size"]);
        if off + len > size {
            wrapped += 1;
            let pv = p.read(0);
            assert_eq!(pv.vg.as_ref().unwrap().seqno, vg_seqno(&p, "wrap"));
            if wrapped == 2 {
                break;
            }
        }
    }
    assert_eq!(wrapped, 2, "the metadata never wrapped in a {size}-byte area");
    let rows = lvs_table(&p, "wrap");
    let pv = p.read(0);
    check_vg(&p, pv.vg.as_ref().unwrap(), &rows);
    let written = write_lvs(&p, &rows, pv.vg.as_ref().unwrap().extent_size);
    check_contents(&p, 0, &written);
}

/// Thin pool, thin volume and snapshot sections added to a `vgcfgbackup` text (see the module
/// docs for why lvm2 cannot create them here).
fn add_thin_and_snapshot(backup: &str) -> String {
    let mut s = backup.replacen("\t\tpmeta {", "\t\tpool_tmeta {", 1).replacen("\t\tpdata {", "\t\tpool_tdata {", 1);
    for hidden in ["pool_tmeta", "pool_tdata"] {
        let i = s.find(&format!("\t\t{hidden} {{")).unwrap();
        let j = i + s[i..].find(", \"VISIBLE\"").unwrap();
        s.replace_range(j..j + ", \"VISIBLE\"".len(), "");
    }
    let extra = r#"
		pool {
			id = "Pool00-0000-0000-0000-0000-0000-000000"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 8
				type = "thin-pool"
				metadata = "pool_tmeta"
				pool = "pool_tdata"
				transaction_id = 1
				chunk_size = 128
				discards = "passdown"
				zero_new_blocks = 1
			}
		}
		thin {
			id = "Thin00-0000-0000-0000-0000-0000-000000"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 16
				type = "thin"
				thin_pool = "pool"
				transaction_id = 0
				device_id = 1
			}
		}
		snapshot0 {
			id = "Snap00-0000-0000-0000-0000-0000-000000"
			status = ["READ"]
			flags = []
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 8
				type = "snapshot"
				chunk_size = 8
				origin = "origin"
				cow_store = "cow"
			}
		}
"#;
    let k = s.rfind("\t}\n\n}").expect("end of logical_volumes");
    s.insert_str(k, extra);
    s
}

#[test]
fn thin_pool_thin_volume_and_snapshot_are_listed_unsupported() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[64]);
    let dev = p.loops[0].as_str();
    p.lvm("pvcreate", &["-q", dev]);
    p.lvm("vgcreate", &["-q", "-s", "1M", "thinvg", dev]);
    let (ok, err) = p.lvm_try("lvcreate", &["-an", "--type", "thin-pool", "-L", "8M", "-n", "pool", "thinvg"]);
    assert!(!ok && err.contains("device-mapper"), "lvm2 made a thin pool without device-mapper? {err}");
    for (n, sz) in [("origin", "8M"), ("pmeta", "4M"), ("pdata", "8M"), ("cow", "2M")] {
        p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", sz, "-n", n, "thinvg"]);
    }
    let backup = lab.work.join("thinvg.vg");
    p.lvm("vgcfgbackup", &["-q", "-f", backup.to_str().unwrap(), "thinvg"]);
    let edited = lab.work.join("thinvg-thin.vg");
    std::fs::write(&edited, add_thin_and_snapshot(&std::fs::read_to_string(&backup).unwrap())).unwrap();
    p.lvm("vgcfgrestore", &["-q", "--force", "-f", edited.to_str().unwrap(), "thinvg"]);
    let rows = lvs_table(&p, "thinvg");
    for (lv, ty) in [("pool", "thin-pool"), ("thin", "thin"), ("cow", "linear")] {
        assert!(rows.iter().any(|r| r.name == lv && r.segtype == ty), "lvs does not show {lv} as {ty}: {rows:?}");
    }
    let pv = p.read(0);
    let vg = pv.vg.as_ref().unwrap();
    // lvs hides snapshot0 (the snapshot's internal LV) even with -a; check it apart.
    let mut rows_plus = rows;
    let snap = vg.lv("snapshot0").unwrap();
    assert!(!snap.visible && snap.unsupported.as_deref().unwrap().contains("snapshot"), "{snap:?}");
    if !rows_plus.iter().any(|r| r.name == "snapshot0") {
        rows_plus.push(LvRow {
            name: "snapshot0".into(),
            size: snap.size,
            segtype: "snapshot".into(),
            origin: String::new(),
            segs: Vec::new(),
        });
    }
    check_vg(&p, vg, &rows_plus);
    let why = |n: &str| vg.lv(n).unwrap().unsupported.clone().unwrap_or_default();
    assert!(why("pool").contains("thin pool"), "{}", why("pool"));
    assert!(why("thin").contains("thin volume"), "{}", why("thin"));
    assert!(why("cow").contains("snapshot of origin"), "{}", why("cow"));
    let e = vg.lv("thin").unwrap().map(vg, 0).unwrap_err();
    assert!(e.to_string().contains("thinvg/thin") && e.to_string().contains("thin volume"), "{e}");
    for hidden in ["pool_tdata", "pool_tmeta"] {
        let l = vg.lv(hidden).unwrap();
        assert!(!l.visible && l.unsupported.is_none(), "{l:?}");
    }
    assert!(vg.lv("origin").unwrap().visible && vg.lv("origin").unwrap().unsupported.is_none());
}

#[test]
fn damaged_label_header_and_text_are_corrupt() {
    need_lvm!();
    let lab = Lab::new();
    let p = Pvs::new(&lab, &[16]);
    let dev = p.loops[0].as_str();
    p.lvm("pvcreate", &["-q", dev]);
    p.lvm("vgcreate", &["-q", "-s", "1M", "dmg", dev]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "4M", "-n", "lv", "dmg"]);
    let mda = p.pvck(0, "mda_header_1.start");
    let text = mda + p.pvck(0, "mda_header_1.raw_locn[0].offset");
    let label = 512 * p.pvck(0, "label_header.sector");
    let orig = std::fs::read(&p.files[0]).unwrap();
    lvm::read_pv(&orig, orig.len() as u64).unwrap();
    for (what, at, want) in [
        ("metadata text", text + 10, "checksum"),
        ("mda_header", mda + 30, "checksum"),
        ("pv_header", label + 40, "checksum"),
    ] {
        let mut d = orig.clone();
        d[at as usize] ^= 0x01;
        let e = lvm::read_pv(&d, d.len() as u64).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        assert!(e.to_string().contains(want), "{what}: {e}");
    }
    // The magic gone: not an LVM PV at all.
    let mut d = orig.clone();
    d[label as usize] = b'X';
    assert!(!lvm::probe(&d[..2048]));
    assert!(lvm::read_pv(&d, d.len() as u64).is_err());
}
