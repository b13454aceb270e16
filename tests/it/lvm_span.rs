//! LVM2 volume groups whose PVs are in different image files of one source directory (two disks
//! of one server; two LUKS2 volumes each holding a PV). lvm2 makes the VG on loop devices
//! (`activation=0`), the LV contents (an ext4 made by mkfs.ext4, seeded bytes) are written where
//! `lvs` says they live, and the LVs are read back byte-exact through a mount and named by
//! `verify DIR`; `inspect` of one image says which PVs it lacks. A PV present in two images is
//! read from the first by path when the copies agree and refused when they differ. The sources
//! never change.

use crate::lvm::{Pvs, expect_map, lvs_table};
use crate::util::{Lab, Luksfs, Mount, assert_same, have, random, sh, sha256_file, sha256_hex, tool};
use serde_json::Value;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The passphrase of every LUKS volume here.
const KEY: &[u8] = b"span secret";

/// The two PV files, their PV UUIDs, and each LV's contents.
struct Built {
    files: [PathBuf; 2],
    uuids: [String; 2],
    lvs: Vec<(String, Vec<u8>)>,
    /// A copy of the second PV taken before a later metadata change (an older seqno).
    stale: PathBuf,
    /// The plaintext of the LUKS2 volume in LV `crypt`.
    crypt_plain: Vec<u8>,
}

/// VG `span-vg` over two PV files: `root` (linear, one segment on each PV, holding an ext4),
/// `stripes` (striped over both, 64 KiB chunks, seeded bytes), `crypt` (linear over both,
/// holding a LUKS2 volume made by cryptsetup), `only1` (on the second PV only) and, after the
/// stale copy was taken, `later` (on the first only).
fn build(lab: &Lab) -> Built {
    let p = Pvs::new(lab, &[48, 56]);
    let (d0, d1) = (p.loops[0].clone(), p.loops[1].clone());
    p.lvm("pvcreate", &["-q", &d0, &d1]);
    p.lvm("vgcreate", &["-q", "-s", "4M", "span-vg", &d0, &d1]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "24M", "-n", "root", "span-vg", &d0]);
    p.lvm("lvextend", &["-q", "-L", "+16M", "span-vg/root", &d1]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "16M", "-n", "stripes", "span-vg"]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "8M", "-n", "only1", "span-vg", &d1]);
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "4M", "-n", "crypt", "span-vg", &d0]);
    p.lvm("lvextend", &["-q", "-L", "+8M", "span-vg/crypt", &d1]);
    let stale = lab.work.join("pv1-stale.img");
    std::fs::copy(&p.files[1], &stale).unwrap();
    p.lvm("lvcreate", &["-q", "-an", "-Zn", "-L", "4M", "-n", "later", "span-vg", &d0]);
    let rows = lvs_table(&p, "span-vg");
    let root = rows.iter().find(|r| r.name == "root").unwrap();
    let on: std::collections::BTreeSet<usize> = root.segs.iter().flat_map(|s| s.areas.iter().map(|a| a.0)).collect();
    assert_eq!(on.len(), 2, "root lies on both PVs: {rows:?}");
    let extent = p.read(0).vg.unwrap().extent_size;
    let table = p.pv_table();
    let pe_start: Vec<u64> = p.loops.iter().map(|l| table.iter().find(|t| &t.0 == l).unwrap().2).collect();
    let uuids = [0, 1].map(|i| table.iter().find(|t| t.0 == p.loops[i]).unwrap().1.clone());
    let files: Vec<std::fs::File> =
        p.files.iter().map(|f| std::fs::OpenOptions::new().write(true).open(f).unwrap()).collect();
    let mut lvs = Vec::new();
    let crypt = lab.cs_luks2("../work/crypt.luks", random("span-crypt", 10 << 20), KEY, &[]);
    for row in &rows {
        let data = if row.name == "crypt" {
            let mut d = std::fs::read(&crypt.path).unwrap();
            d.resize(row.size as usize, 0);
            d
        } else if row.name == "root" {
            let fs = lab.work.join("root.ext4");
            let mut c = tool("mkfs.ext4");
            c.args(["-q", "-F", "-L", "spanroot"]).arg(&fs).arg(format!("{}K", row.size / 1024));
            sh(c);
            std::fs::read(&fs).unwrap()
        } else {
            random(&format!("span-{}", row.name), row.size as usize)
        };
        assert_eq!(data.len() as u64, row.size);
        let mut off = 0;
        while off < row.size {
            let (f, at, run) = expect_map(row, &pe_start, extent, off);
            let n = run.min(row.size - off);
            files[f].write_all_at(&data[off as usize..(off + n) as usize], at).unwrap();
            off += n;
        }
        lvs.push((row.name.clone(), data));
    }
    let built = Built { files: [p.files[0].clone(), p.files[1].clone()], uuids, lvs, stale, crypt_plain: crypt.plain };
    drop(p); // loop devices detached
    built
}

impl Built {
    fn lv(&self, name: &str) -> &[u8] {
        &self.lvs.iter().find(|l| l.0 == name).unwrap().1
    }
}

fn hashes(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v.into_iter().map(|p| (p.clone(), sha256_file(&p))).collect()
}

/// `verify DIR --json`: the report of image `name`.
fn verify_json(dir: &Path, key: &Path) -> (Value, crate::util::Out) {
    let out = Luksfs::new("verify").arg(dir).key(key).arg("--json").run();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", out.cmdline, String::from_utf8_lossy(&out.stdout)));
    (v, out)
}

fn image<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {report:#}"))
}

fn volume<'a>(img: &'a Value, name: &str) -> Option<&'a Value> {
    img["volumes"].as_array().unwrap().iter().find(|v| v["name"] == name)
}

#[test]
fn two_raw_disks_one_volume_group() {
    if !have(&["root", "lvm", "losetup", "mkfs.ext4", "cryptsetup", "fuse"]) {
        return;
    }
    let lab = Lab::new();
    let b = build(&lab);
    let (d1, d2) = (lab.place("disk1.img"), lab.place("disk2.img"));
    std::fs::copy(&b.files[0], &d1).unwrap();
    std::fs::copy(&b.files[1], &d2).unwrap();
    let before = hashes(&lab.src);

    // One image alone: the VG is incomplete there, and the note names the PV it lacks.
    let ins = Luksfs::new("inspect").arg(&d1).arg("--json").run();
    crate::status::validate("inspect.schema.json", ins.ok(), &lab.work);
    let text = String::from_utf8_lossy(ins.ok()).into_owned();
    assert!(text.contains("LVM2 VG span-vg is incomplete in this image: 1 of its 2 PVs"), "{text}");
    assert!(text.contains(&b.uuids[1]) && !text.contains("span--vg-root"), "{text}");
    let ins = Luksfs::new("inspect").arg(&d2).run();
    let text = String::from_utf8_lossy(ins.ok()).into_owned();
    assert!(text.contains(&b.uuids[0]) && text.contains("span--vg-only1"), "{text}");
    // `cat` of one image takes its volumes' names in the mount's form too (`IMAGE.d/NAME`)
    for name in ["span--vg-only1", "disk2.img.d/span--vg-only1.raw"] {
        assert_same(name, Luksfs::new("cat").arg(&d2).args(["--volume", name]).run().ok(), b.lv("only1"));
    }

    // verify DIR names the LVs assembled across the two files, under the first PV's image.
    let key = lab.key("key.txt", KEY);
    let text = Luksfs::new("verify").arg(&lab.src).key(&key).run();
    let line = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(line.contains("disk1.img") && line.contains("span--vg-root (ext4)"), "{line}");
    let (report, out) = verify_json(&lab.src, &key);
    crate::status::validate("verify.schema.json", &out.stdout, &lab.work);
    let host = image(&report, "disk1.img");
    for (name, lv) in [("span--vg-root", "root"), ("span--vg-stripes", "stripes")] {
        let v = volume(host, name).unwrap_or_else(|| panic!("{name} not in {host:#}"));
        assert_eq!(v["sha256"], sha256_hex(b.lv(lv)), "{v:#}");
        assert!(v["notes"][0].as_str().unwrap().contains("assembled from PVs in several images"), "{v:#}");
    }
    let root = volume(host, "span--vg-root").unwrap();
    assert!(root["description"].as_str().unwrap().contains("ext4"), "{root:#}");
    assert!(volume(host, "span--vg-only1").is_none(), "only1 is disk2's own: {host:#}");
    // The LUKS2 volume inside the assembled LV is unlocked and hashed too.
    let inner = volume(host, "span--vg-crypt-luks").unwrap_or_else(|| panic!("{host:#}"));
    assert_eq!(inner["sha256"], sha256_hex(&b.crypt_plain), "{inner:#}");

    // The mount: byte-exact; LVs whole in one image stay there, once.
    let mnt = lab.root().join("mnt");
    let m =
        Mount::start(&lab.src, &mnt, &["--all-volumes".as_ref(), "--key-file".as_ref(), key.as_os_str()], lab.root());
    for (rel, lv) in [
        ("disk1.img.d/span--vg-root.raw", "root"),
        ("disk1.img.d/span--vg-stripes.raw", "stripes"),
        ("disk1.img.d/span--vg-later.raw", "later"),
        ("disk2.img.d/span--vg-only1.raw", "only1"),
    ] {
        let got = m.read(rel).unwrap_or_else(|e| panic!("{rel}: {e}\n{}", m.log()));
        assert_same(rel, &got, b.lv(lv));
    }
    let got = m.read("disk1.img.d/span--vg-crypt-luks.raw").unwrap_or_else(|e| panic!("crypt-luks: {e}\n{}", m.log()));
    assert_same("the LUKS2 volume inside the assembled LV", &got, &b.crypt_plain);
    for absent in ["disk2.img.d/span--vg-root.raw", "disk1.img.d/span--vg-only1.raw", "disk1.img.d/span--vg-root~2.raw"]
    {
        assert!(!m.path(absent).exists(), "{absent}");
    }
    drop(m);
    assert_eq!(hashes(&lab.src), before, "a source changed");
}

#[test]
fn a_pv_in_two_images_identical_or_not() {
    if !have(&["root", "lvm", "losetup", "mkfs.ext4", "cryptsetup"]) {
        return;
    }
    let lab = Lab::new();
    let b = build(&lab);
    let key = lab.key("unused.key", b"no encryption here");
    // An identical copy of the second disk: read from the first by path, and said so.
    let same = lab.src.join("same");
    std::fs::create_dir_all(&same).unwrap();
    std::fs::copy(&b.files[0], same.join("disk1.img")).unwrap();
    std::fs::copy(&b.files[1], same.join("disk2.img")).unwrap();
    std::fs::copy(&b.files[1], same.join("disk2-copy.img")).unwrap();
    let before = hashes(&same);
    let (report, _) = verify_json(&same, &key);
    let root = volume(image(&report, "disk1.img"), "span--vg-root").unwrap();
    assert_eq!(root["sha256"], sha256_hex(b.lv("root")), "{root:#}");
    let notes = root["notes"].to_string();
    assert!(notes.contains("first by path") && notes.contains(&b.uuids[1]), "{notes}");
    assert!(notes.contains("disk2-copy.img (first by path), not"), "{notes}");
    assert_eq!(hashes(&same), before);

    // A copy from before the last metadata change (older seqno): the LVs on that PV are
    // refused, naming both images; the LVs on the first PV only are unaffected.
    let differ = lab.src.join("differ");
    std::fs::create_dir_all(&differ).unwrap();
    std::fs::copy(&b.files[0], differ.join("disk1.img")).unwrap();
    std::fs::copy(&b.files[1], differ.join("disk2.img")).unwrap();
    std::fs::copy(&b.stale, differ.join("disk2-old.img")).unwrap();
    let before = hashes(&differ);
    let (report, out) = verify_json(&differ, &key);
    assert_eq!(out.code(), 5, "{report:#}");
    let host = image(&report, "disk1.img");
    let root = volume(host, "span--vg-root").unwrap();
    let why = root["error"]["reason"].as_str().unwrap_or_else(|| panic!("{root:#}"));
    assert!(why.contains("disk2.img") && why.contains("disk2-old.img") && why.contains("differ"), "{why}");
    assert!(root.get("sha256").is_none(), "{root:#}");
    let later = volume(host, "span--vg-later").unwrap();
    assert_eq!(later["sha256"], sha256_hex(b.lv("later")), "{later:#}");
    assert_eq!(hashes(&differ), before);
}

/// A copy of PV file `f` encrypted in place as `name` in the lab's source (offline `cryptsetup
/// reencrypt --encrypt` into LUKS2, keyed by `key`).
/// `f` copied to `name` in the source and encrypted in place (LUKS2, offline reencryption)
/// with `key`; its PBKDF2 runs `iterations` rounds.
fn encrypt_copy(lab: &Lab, f: &Path, name: &str, key: &Path, iterations: u32) {
    let out = lab.place(name);
    std::fs::copy(f, &out).unwrap();
    let len = std::fs::metadata(&out).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&out).unwrap().set_len(len + (32 << 20)).unwrap();
    let mut c = tool("cryptsetup");
    c.args(["reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "32M"])
        .args(["--force-offline-reencrypt", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations"])
        .arg(iterations.to_string())
        .arg("--key-file")
        .arg(key)
        .arg(&out);
    sh(c);
}

/// A stale copy of the second PV inside a LUKS2 volume beside the two raw disks: in a mount the
/// LVs over both disks are assembled from the raw disks, and the copy turns up only when that
/// volume is unlocked; from then on the LVs on the second PV are refused (the copies differ:
/// `EOPNOTSUPP`, as for an LV refused when it was assembled), in new opens and in a file opened
/// and read (so cached by the kernel) before the refusal, while the LV on the first PV alone
/// still reads. The stale copy's volume has a slow KDF (some seconds), so that the LV is
/// normally read before the unlock; either order must end refused.
#[test]
fn a_differing_copy_revealed_by_an_unlock_refuses_the_lv() {
    if !have(&["root", "lvm", "losetup", "mkfs.ext4", "cryptsetup", "fuse"]) {
        return;
    }
    let lab = Lab::new();
    let b = build(&lab);
    let key = lab.key("key.txt", KEY);
    std::fs::copy(&b.files[0], lab.place("disk1.img")).unwrap();
    std::fs::copy(&b.files[1], lab.place("disk2.img")).unwrap();
    encrypt_copy(&lab, &b.stale, "disk2-old.luks", &key, 12_000_000);
    let before = hashes(&lab.src);
    let mnt = lab.root().join("mnt");
    let args = ["--all-volumes".as_ref(), "--key-file".as_ref(), key.as_os_str()];
    let m = Mount::start(&lab.src, &mnt, &args, lab.root());
    let rel = "disk1.img.d/span--vg-root.raw";
    let refused = |r: &std::io::Result<Vec<u8>>| matches!(r, Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP));
    let pread = |f: &std::fs::File, len: usize| -> std::io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        f.read_exact_at(&mut v, 0).map(|()| v)
    };
    // opened, and read whole, before the unlock (normally)
    let early = std::fs::File::open(m.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}\n{}", m.log()));
    let early_read = pread(&early, b.lv("root").len());
    match &early_read {
        Ok(got) => assert_same("root read before the unlock", got, b.lv("root")),
        Err(_) if refused(&early_read) => eprintln!("{rel}: refused before it was first read (a fast unlock)"),
        Err(e) => panic!("{rel}: {e}\n{}", m.log()),
    }
    // Refused within seconds of the mount's saying so (not whenever the kernel happens to drop
    // the pages it cached); the unlock itself may take up to a minute on a loaded machine.
    let t0 = std::time::Instant::now();
    let said = std::cell::Cell::new(None::<std::time::Instant>);
    let until = |what: &str, read: &dyn Fn() -> std::io::Result<Vec<u8>>| loop {
        if said.get().is_none() && m.log().contains("turned up after the LV was assembled") {
            said.set(Some(std::time::Instant::now()));
        }
        let late = said.get().is_some_and(|t| t.elapsed() > std::time::Duration::from_secs(5));
        match read() {
            r if refused(&r) => return,
            // still read from the raw disks: the unlock has not come
            Ok(_) if !late && t0.elapsed() < std::time::Duration::from_secs(60) => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            other => panic!(
                "{what}: {:?} {:?} after the refusal was logged\n{}",
                other.map(|v| format!("{} bytes read", v.len())),
                said.get().map(|t| t.elapsed()),
                m.log()
            ),
        }
    };
    // the file opened before (its first MiB, surely still in the kernel's page cache): neither
    // those pages nor the block cache serve it any more
    until("the file opened before", &|| pread(&early, 1 << 20));
    until("a new open", &|| m.read(rel));
    eprintln!("{rel}: refused after {:?}", t0.elapsed());
    let log = m.log();
    assert!(log.contains("differ") && log.contains("disk2-old.luks"), "{log}");
    // `luksfs status` says so: disk1.img (hosting the LV) has failed, naming both images
    let text = String::from_utf8(Luksfs::new("status").arg(&mnt).run().ok().to_vec()).unwrap();
    let disk1 = text.split("\n\n").find(|s| s.contains("disk1.img")).unwrap_or_else(|| panic!("{text}"));
    assert!(disk1.contains("failed:") && disk1.contains("disk2-old.luks") && disk1.contains("(unsupported)"), "{text}");
    let later = m.read("disk1.img.d/span--vg-later.raw").unwrap_or_else(|e| panic!("later: {e}\n{log}"));
    assert_same("later", &later, b.lv("later"));
    drop(early);
    drop(m);
    // `cat` unlocks every image of the source before it reads: refused from the start (exit 5)
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk1.img.d/span--vg-root"]).key(&key).run();
    assert_eq!(out.code(), 5, "{}", out.stderr);
    assert!(out.stderr.contains("differ") && out.stderr.contains("disk2-old.luks"), "{}", out.stderr);
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk1.img.d/span--vg-later"]).key(&key).run();
    assert_same("cat later", out.ok(), b.lv("later"));
    assert_eq!(hashes(&lab.src), before, "a source changed");
}

/// Each PV inside its own LUKS2 container (offline `cryptsetup reencrypt --encrypt` of a copy
/// of the PV file): the LVs appear once both volumes unlocked.
#[test]
fn each_pv_in_its_own_luks2_volume() {
    if !have(&["root", "lvm", "losetup", "mkfs.ext4", "cryptsetup", "fuse"]) {
        return;
    }
    let lab = Lab::new();
    let b = build(&lab);
    let key = lab.key("key.txt", KEY);
    for (i, f) in b.files.iter().enumerate() {
        encrypt_copy(&lab, f, &format!("disk{}.luks", i + 1), &key, 1000);
    }
    let before = hashes(&lab.src);
    let ins = Luksfs::new("inspect").arg(lab.src.join("disk1.luks")).run();
    ins.ok();

    let mnt = lab.root().join("mnt");
    let m = Mount::start(&lab.src, &mnt, &["--key-file".as_ref(), key.as_os_str()], lab.root());
    let t0 = std::time::Instant::now();
    for (rel, lv) in [
        ("disk1.luks.d/span--vg-root.raw", "root"),
        ("disk1.luks.d/span--vg-stripes.raw", "stripes"),
        ("disk2.luks.d/span--vg-only1.raw", "only1"),
        ("disk1.luks.d/span--vg-crypt-luks.raw", ""),
    ] {
        while !m.path(rel).exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let got = m.read(rel).unwrap_or_else(|e| panic!("{rel}: {e}\n{}", m.log()));
        assert_same(rel, &got, if lv.is_empty() { &b.crypt_plain } else { b.lv(lv) });
    }
    drop(m);

    let (report, out) = verify_json(&lab.src, &key);
    assert_eq!(out.code(), 0, "{report:#}");
    let root = volume(image(&report, "disk1.luks"), "span--vg-root").unwrap();
    assert_eq!(root["sha256"], sha256_hex(b.lv("root")), "{root:#}");
    assert!(root["description"].as_str().unwrap().contains("ext4"), "{root:#}");

    // `cat SOURCE --volume IMAGE.d/NAME`: the same paths without a mount (with or without
    // `.raw`), the LUKS2 volume inside the assembled LV included, from an offset
    for (rel, want) in [
        ("disk1.luks.d/span--vg-root", b.lv("root")),
        ("disk1.luks.d/span--vg-stripes.raw", b.lv("stripes")),
        ("disk1.luks.d/span--vg-crypt-luks", &b.crypt_plain[..]),
    ] {
        let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", rel]).key(&key).run();
        assert_same(rel, out.ok(), want);
    }
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk1.luks.d/span--vg-root", "--offset", "1M"]);
    assert_same("root from 1M", out.key(&key).run().ok(), &b.lv("root")[1 << 20..]);
    // a name the source does not show: a usage error listing what the image shows
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk1.luks.d/span--vg-nope"]).key(&key).run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("no volume") && out.stderr.contains("span--vg-root.raw"), "{}", out.stderr);
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk9.luks.d/x"]).key(&key).run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("no image disk9.luks") && out.stderr.contains("disk1.luks"), "{}", out.stderr);
    // a wrong key: the image's unlock failure, with its class (exit 3, as for one image)
    let wrong = lab.key("wrong.txt", b"not the passphrase");
    let out = Luksfs::new("cat").arg(&lab.src).args(["--volume", "disk1.luks.d/span--vg-root"]).key(&wrong).run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(out.stderr.contains("disk1.luks") && out.stderr.contains("no key slot opened"), "{}", out.stderr);
    assert_eq!(hashes(&lab.src), before, "a source changed");
}
