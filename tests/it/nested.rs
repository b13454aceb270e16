//! Volumes inside volumes: the shared nested corpus (`../shared/corpus/nested/visible-nested.sh`,
//! built with sgdisk, sfdisk, lvm2, cryptsetup and qemu-img) read through `cat --volume`, a real
//! mount, `verify`, `inspect`, and a read-only loop device of the laptop image. Every row of its
//! `expect.tsv` must be found byte-exact, and the sources must not change.

use crate::util::{self, Luksfs, Mount, have, shared_corpus};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One row of `expect.tsv`.
struct Row {
    image: String,
    what: String,
    size: u64,
    sha256: String,
}

/// The volume name luksfs gives the volume a row describes (`None`: the image's top view).
fn volume_name(what: &str) -> Option<&'static str> {
    let table: &[(&str, Option<&str>)] = &[
        ("GPT p1: EFI System Partition", Some("p1-EFI_System_Partition")),
        ("GPT p2: /boot", Some("p2-boot")),
        ("GPT p3: LUKS2 -> plaintext", Some("p3-cryptroot-luks")),
        ("LV laptop-vg/root", Some("laptop--vg-root")),
        ("LV laptop-vg/swap_1", Some("laptop--vg-swap_1")),
        ("MBR p1: LUKS1", Some("p1-luks")),
        ("LUKS1 -> plaintext", None),
        ("GPT p1 (ext4) inside LUKS1", Some("p1-guestroot")),
        ("GPT p2 (ext4) inside LUKS1", Some("p2-guestdata")),
    ];
    table.iter().find(|(p, _)| what.starts_with(p)).map(|(_, n)| *n).unwrap_or_else(|| panic!("unknown row {what:?}"))
}

/// The corpus, built once per test process into target/ (it takes a few seconds).
fn corpus() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !have(&["root", "shared-corpus", "sgdisk", "sfdisk", "losetup", "qemu-img", "flock"]) {
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nested-corpus");
        let script = shared_corpus().join("nested/visible-nested.sh");
        // Built once for all test processes (nextest runs each test in its own): under a lock,
        // and only when no complete corpus is there: it is built beside and renamed when complete, so
        // an interrupted build never leaves images that disagree with their expect.tsv.
        let lock = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nested-corpus.lock");
        let st = Command::new("flock")
            .arg(&lock)
            .arg("sh")
            .arg("-c")
            .arg(r#"test -s "$2/expect.tsv" || { rm -rf "$2.new" "$2" && bash "$1" "$2.new" && mv "$2.new" "$2"; }"#)
            .arg("sh")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run visible-nested.sh");
        assert!(st.status.success(), "visible-nested.sh failed:\n{}", String::from_utf8_lossy(&st.stderr));
        Some(dir)
    })
    .as_ref()
}

fn rows(dir: &Path) -> Vec<Row> {
    std::fs::read_to_string(dir.join("expect.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row { image: f[0].into(), what: f[1].into(), size: f[2].parse().unwrap(), sha256: f[3].into() }
        })
        .collect()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The volume `got` matches `row`: the same bytes, or (one row) the filesystem the script wrote
/// followed by the zeros of the rest of its partition: the script records
/// `visible-nested.sh`'s mkfs size for `GPT p2 (ext4) inside LUKS1` (56303 KiB), while sgdisk made
/// the partition 112607 sectors, 512 bytes longer; luksfs shows the partition as the table says.
#[track_caller]
fn assert_row(row: &Row, got: &[u8], via: &str) {
    let n = row.size as usize;
    assert!(got.len() >= n, "{} {:?} via {via}: {} bytes, expected {n}", row.image, row.what, got.len());
    assert_eq!(sha256(&got[..n]), row.sha256, "{} {:?} via {via}: bytes differ", row.image, row.what);
    if got.len() > n {
        assert!(got.len() - n <= 4096, "{} {:?} via {via}: {} bytes longer", row.image, row.what, got.len() - n);
        assert!(got[n..].iter().all(|&b| b == 0), "{} {:?} via {via}: non-zero tail", row.image, row.what);
    }
}

fn hash_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let h = sha256(&std::fs::read(&p).unwrap());
            (p, h)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_row_through_cat_volume() {
    let Some(dir) = corpus() else { return };
    let before = hash_sources(dir);
    let key = dir.join("key.txt");
    for row in rows(dir) {
        let mut c = Luksfs::new("cat").arg(dir.join("images").join(&row.image)).key(&key);
        if let Some(v) = volume_name(&row.what) {
            c = c.arg("--volume").arg(v);
        }
        let out = c.run();
        assert_row(&row, out.ok(), "cat --volume");
    }
    assert_eq!(hash_sources(dir), before, "a source image changed");
}

#[test]
fn every_row_through_a_mount() {
    let Some(dir) = corpus() else { return };
    if !have(&["fuse"]) {
        return;
    }
    let before = hash_sources(dir);
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let key = dir.join("key.txt");
    let m = Mount::start(&dir.join("images"), &mnt, &["--key-file".as_ref(), key.as_os_str()], tmp.path());
    // Volumes inside encrypted ones appear once the background unlock has opened them.
    let t0 = std::time::Instant::now();
    for row in rows(dir) {
        let rel = match volume_name(&row.what) {
            Some(v) => format!("{}.d/{v}.raw", row.image),
            None => format!("{}.raw", row.image),
        };
        while !m.path(&rel).exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let got = m.read(&rel).unwrap_or_else(|e| panic!("{rel}: {e}\n{}", m.log()));
        assert_row(&row, &got, &format!("mount: {rel}"));
    }
    // Intermediate volumes are shown too: the encrypted partition holding the LVM PV.
    assert!(m.path("laptop.raw.d/p3-cryptroot.raw").exists());
    // An unencrypted plain disk is not shown without --all-volumes; nothing else is hidden.
    drop(m);
    assert_eq!(hash_sources(dir), before, "a source image changed");
}

#[test]
fn verify_names_every_row_and_inspect_shows_the_tree() {
    let Some(dir) = corpus() else { return };
    let key = dir.join("key.txt");
    let all = rows(dir);
    let mut images: Vec<&str> = all.iter().map(|r| r.image.as_str()).collect();
    images.dedup();
    for image in images {
        let img = dir.join("images").join(image);
        let out = Luksfs::new("verify").arg(&img).key(&key).arg("--json").run();
        let j: serde_json::Value = serde_json::from_slice(out.ok()).unwrap();
        assert_eq!(j["verdict"], "OK", "{image}: {j:#}");
        for row in all.iter().filter(|r| r.image == image) {
            match volume_name(&row.what) {
                None => assert_eq!(j["sha256"]["plaintext"], row.sha256.as_str()),
                Some(v) => {
                    let vols = j["volumes"].as_array().unwrap();
                    let e = vols.iter().find(|e| e["name"] == v).unwrap_or_else(|| panic!("{v} not in {j:#}"));
                    assert!(e["size"].as_u64().unwrap() >= row.size, "{v}: {e}");
                    assert!(e["description"].is_string() || e["holds"] == "LVM2 PV", "{v}: {e}");
                    if e["size"].as_u64() == Some(row.size) && e["sha256"].is_string() {
                        assert_eq!(e["sha256"], row.sha256.as_str(), "{v}");
                    }
                }
            }
        }
        // inspect needs no key and lists the volumes it can see.
        let text = util::inspect_ok(&img);
        assert!(text.contains("volumes:"), "{text}");
    }
    // verify DIR checks all four, nested ones included.
    let out = Luksfs::new("verify").arg(dir.join("images")).key(&key).run();
    let text = String::from_utf8_lossy(out.ok());
    assert!(text.contains("4 images under"), "{text}");
    assert!(text.contains("laptop--vg-root"), "{text}");
}

#[test]
fn a_read_only_loop_device_of_the_laptop_disk() {
    let Some(dir) = corpus() else { return };
    if !have(&["fuse"]) {
        return;
    }
    let img = dir.join("images/laptop.raw");
    let out = Command::new("losetup").args(["-r", "-f", "--show"]).arg(&img).output().unwrap();
    if !out.status.success() {
        util::skip(&format!("losetup: {}", String::from_utf8_lossy(&out.stderr)));
        return;
    }
    let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    struct Detach(PathBuf);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _guard = Detach(dev.clone());
    let key = dir.join("key.txt");
    let rows: Vec<Row> = rows(dir).into_iter().filter(|r| r.image == "laptop.raw").collect();
    for row in &rows {
        let out = Luksfs::new("cat").arg(&dev).key(&key).arg("--volume").arg(volume_name(&row.what).unwrap()).run();
        assert_row(row, out.ok(), "cat of the loop device");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let m = Mount::start(&dev, &mnt, &["--key-file".as_ref(), key.as_os_str()], tmp.path());
    let name = dev.file_name().unwrap().to_string_lossy().to_string();
    let t0 = std::time::Instant::now();
    for row in &rows {
        let rel = format!("{name}.d/{}.raw", volume_name(&row.what).unwrap());
        while !m.path(&rel).exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_row(row, &m.read(&rel).unwrap_or_else(|e| panic!("{rel}: {e}")), "mount of the loop device");
    }
}

#[test]
fn a_single_source_with_nothing_to_show_is_an_error() {
    let Some(_) = corpus() else { return };
    if !have(&["fuse", "mkfs.ext4"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.ext4");
    std::fs::File::create(&plain).unwrap().set_len(8 << 20).unwrap();
    assert!(Command::new("mkfs.ext4").arg("-q").arg("-F").arg(&plain).status().unwrap().success());
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Luksfs::new("mount").arg(&plain).arg(&mnt).arg("--key-file").arg(&plain).run();
    assert_eq!(out.code(), 8, "{}", out.stderr.clone());
    assert!(out.stderr.contains("no encrypted volume"), "{}", out.stderr);
}
