//! Real FUSE mounts (root, /dev/fuse, fusermount3; mandatory under CI=true): directory trees,
//! keytabs, good and bad images side by side, read-only behaviour, signals, `--daemon`,
//! start-up time, concurrency and the cache.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::fixture::{Op, patch, qemu_img, secret, truncate};
use crate::util::mount::{FS_CALL, mount_entry};
use crate::util::{KIB, Lab, MIB, Mount, assert_same, mark, random, run_timed, sh, snapshot_tree, timed, tool};

const PASS: &[u8] = b"correct horse battery staple";

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn key_args(k: &Path) -> [&OsStr; 2] {
    [os("--key-file"), k.as_os_str()]
}

/// Directories are mirrored, every image (probed by magic, not by name) shows as NAME.raw,
/// everything else is hidden.
#[test]
fn tree_is_mirrored_and_non_images_hidden() {
    need!("fuse", "qemu-img", "qemu-io", "cryptsetup");
    let lab = Lab::new();
    let a = lab.qemu_luks("a/vol-1.luks", mark("vol-1", 256 * KIB), PASS, "");
    let b = lab.qcow2("a/b/c/deep.qcow2", random("deep", MIB), PASS, "cluster_size=4096", &[Op::Zero(0, 8192)]);
    let c = lab.cs_luks1("top.img", random("top", 512 * KIB), PASS, &["-c", "aes-cbc-essiv:sha256"]);
    let d = lab.qemu_luks("name with spaces ü.luks", mark("spaces", 64 * KIB), PASS, "");
    // a qcow2 image named like a text file is still an image
    let e = lab.qcow2("disguised.txt", random("disguised", 256 * KIB), PASS, "", &[]);
    std::fs::write(lab.place("notes.txt"), b"just text\n").unwrap();
    std::fs::write(lab.place("a/random.bin"), random("junk", 100 * KIB)).unwrap();
    std::fs::write(lab.place("a/b/empty"), b"").unwrap();
    std::fs::write(lab.place("a/b/fake.qcow2"), b"not a qcow2 at all").unwrap();
    std::fs::write(lab.place("short"), b"LUK").unwrap();
    let k = lab.key("default.key", PASS);
    let m = lab.mount(&key_args(&k));
    let want = [
        "a/",
        "a/b/",
        "a/b/c/",
        "a/b/c/deep.qcow2.raw",
        "a/vol-1.luks.raw",
        "disguised.txt.raw",
        "name with spaces ü.luks.raw",
        "top.img.raw",
    ];
    assert_eq!(m.walk(), want, "mount tree");
    for (img, rel) in [
        (&a, "a/vol-1.luks.raw"),
        (&b, "a/b/c/deep.qcow2.raw"),
        (&c, "top.img.raw"),
        (&d, "name with spaces ü.luks.raw"),
        (&e, "disguised.txt.raw"),
    ] {
        m.check(img, rel);
    }
}

/// SOURCE may be a single image file.
#[test]
fn single_file_source() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("only.luks", mark("only", 300 * KIB), PASS, "");
    let _other = lab.qemu_luks("other.luks", mark("other", 64 * KIB), PASS, "");
    let m = Mount::start(&img.path, &lab.root().join("mnt"), &key_args(&img.key), lab.root());
    assert_eq!(m.walk(), ["only.luks.raw"]);
    m.check(&img, "only.luks.raw");
}

/// Bad images are listed, opening them fails with the errno of their error class, and the
/// good ones keep working.
#[test]
fn good_and_bad_images_together() {
    need!("fuse", "qemu-img", "qemu-io", "cryptsetup");
    let lab = Lab::new();
    let good1 = lab.qemu_luks("good1.luks", mark("good1", 512 * KIB), PASS, "");
    let good2 = lab.qcow2("good2.qcow2", random("good2", MIB), PASS, "", &[]);
    let _wrongkey = lab.qemu_luks("wrongkey.luks", mark("wk", 64 * KIB), b"another passphrase", "");
    let truncated = lab.qemu_luks("truncated.luks", mark("tr", 64 * KIB), PASS, "");
    truncate(&truncated.path, 1000);
    let slot = lab.cs_luks1("badslot.img", mark("bs", 64 * KIB), PASS, &["-c", "aes-xts-plain64"]);
    let km = u64::from(crate::util::fixture::be32(&slot.path, 248)) * 512;
    crate::util::fixture::scramble(&slot.path, km + 4096, 4096, "bad-slot");
    let feat = lab.qcow2("feature.qcow2", random("feat", 256 * KIB), PASS, "", &[]);
    patch(&feat.path, 72, &(1u64 << 40).to_be_bytes());
    let aes = lab.place("legacy-aes.qcow2");
    let mut c = qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(secret(&good1.key))
        .args(["-o", "encrypt.format=aes,encrypt.key-secret=s0"])
        .arg(&aes)
        .arg("1M");
    sh(c);
    let base = lab.qcow2("base/base.qcow2", random("base", MIB), PASS, "", &[]);
    lab.qcow2_with_backing("backed.qcow2", &base.path, &good1.key);

    let k = lab.key("default.key", PASS);
    let m = lab.mount(&key_args(&k));
    let names = m.ls("").unwrap();
    for n in [
        "good1.luks.raw",
        "good2.qcow2.raw",
        "wrongkey.luks.raw",
        "truncated.luks.raw",
        "badslot.img.raw",
        "feature.qcow2.raw",
        "legacy-aes.qcow2.raw",
        "backed.qcow2.raw",
    ] {
        assert!(names.contains(&n.to_string()), "{n} is not listed: {names:?}");
    }
    m.check(&good1, "good1.luks.raw");
    for (rel, errno) in [
        ("wrongkey.luks.raw", libc::EACCES),
        ("badslot.img.raw", libc::EACCES),
        ("truncated.luks.raw", libc::EIO),
        ("feature.qcow2.raw", libc::EOPNOTSUPP),
        ("legacy-aes.qcow2.raw", libc::EOPNOTSUPP),
        ("backed.qcow2.raw", libc::EOPNOTSUPP),
    ] {
        let got = m.open_errno(rel);
        assert_eq!(
            got,
            Some(errno),
            "open {rel}: expected {}, got {:?}",
            std::io::Error::from_raw_os_error(errno),
            got.map(std::io::Error::from_raw_os_error)
        );
        // and again: the answer is stable
        assert_eq!(m.open_errno(rel), Some(errno), "second open of {rel}");
    }
    m.check(&good2, "good2.qcow2.raw");
    m.check(&base, "base/base.qcow2.raw");
    m.check(&good1, "good1.luks.raw");
}

/// Every write path answers EROFS, and nothing in SOURCE changes.
#[test]
fn read_only_everything_is_erofs() {
    need!("fuse", "qemu-img", "truncate", "touch");
    let lab = Lab::new();
    let img = lab.qemu_luks("d/vol.luks", mark("ro", 256 * KIB), PASS, "");
    let before = snapshot_tree(&lab.src);
    let m = lab.mount(&key_args(&img.key));
    m.check(&img, "d/vol.luks.raw");
    let f = m.path("d/vol.luks.raw");
    let d = m.path("d");
    type FsOp = Box<dyn FnOnce() -> std::io::Result<()> + Send>;
    let ops: Vec<(&str, FsOp)> = vec![
        ("open for writing", {
            let f = f.clone();
            Box::new(move || std::fs::OpenOptions::new().write(true).open(&f).map(drop))
        }),
        ("open read-write", {
            let f = f.clone();
            Box::new(move || std::fs::OpenOptions::new().read(true).write(true).open(&f).map(drop))
        }),
        ("open O_TRUNC", {
            let f = f.clone();
            Box::new(move || std::fs::OpenOptions::new().write(true).truncate(true).open(&f).map(drop))
        }),
        ("create a file", {
            let d = d.clone();
            Box::new(move || std::fs::File::create(d.join("new-file")).map(drop))
        }),
        ("create in the root", {
            let r = m.path("");
            Box::new(move || std::fs::File::create(r.join("new.raw")).map(drop))
        }),
        ("mkdir", {
            let d = d.clone();
            Box::new(move || std::fs::create_dir(d.join("newdir")))
        }),
        ("unlink", {
            let f = f.clone();
            Box::new(move || std::fs::remove_file(&f))
        }),
        ("rmdir", {
            let d = d.clone();
            Box::new(move || std::fs::remove_dir(&d))
        }),
        ("rename", {
            let f = f.clone();
            Box::new(move || std::fs::rename(&f, f.with_file_name("renamed.raw")))
        }),
        ("chmod", {
            let f = f.clone();
            Box::new(move || {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666))
            })
        }),
        ("chown", {
            let f = f.clone();
            Box::new(move || std::os::unix::fs::chown(&f, Some(1), Some(1)))
        }),
        ("symlink", {
            let d = d.clone();
            Box::new(move || std::os::unix::fs::symlink("vol.luks.raw", d.join("link")))
        }),
        ("hard link", {
            let f = f.clone();
            Box::new(move || std::fs::hard_link(&f, f.with_file_name("hard.raw")))
        }),
    ];
    for (what, op) in ops {
        let r = timed(what, FS_CALL, op);
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: expected EROFS, got {e}");
    }
    for (prog, args) in [("truncate", vec!["-s", "0"]), ("touch", vec!["-m"])] {
        let mut c = tool(prog);
        c.args(&args).arg(&f);
        let out = run_timed(c, FS_CALL);
        assert_ne!(out.code, Some(0), "{} succeeded on the mount", out.cmdline);
        assert!(out.stderr.contains("Read-only file system"), "{}: {}", out.cmdline, out.stderr);
    }
    m.check(&img, "d/vol.luks.raw");
    drop(m);
    assert_eq!(snapshot_tree(&lab.src), before, "the source tree changed");
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    need!("fuse", "qemu-img");
    for sig in ["TERM", "INT"] {
        let lab = Lab::new();
        let img = lab.qemu_luks("vol.luks", mark(sig, 64 * KIB), PASS, "");
        let mut m = lab.mount(&key_args(&img.key));
        m.check(&img, "vol.luks.raw");
        m.signal(sig);
        let st = m.wait_exit(Duration::from_secs(20));
        assert_eq!(st.code(), Some(0), "SIG{sig}: exit status {st}; log:\n{}", m.log());
        assert!(mount_entry(&m.mnt).is_none(), "still mounted after SIG{sig}");
    }
}

#[test]
fn fusermount_u_ends_the_process_with_0() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("fm", 64 * KIB), PASS, "");
    let mut m = lab.mount(&key_args(&img.key));
    m.check(&img, "vol.luks.raw");
    let st = m.unmount();
    assert_eq!(st.code(), Some(0), "exit status {st}; log:\n{}", m.log());
}

/// `--daemon` returns only once the mount is ready; the daemon goes away after unmount.
#[test]
fn daemon_returns_with_the_mount_ready() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("daemon", 128 * KIB), PASS, "");
    let mnt = lab.root().join("mnt");
    let (m, out) = Mount::daemon(&lab.src, &mnt, &key_args(&img.key), lab.root());
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    let e = mount_entry(&mnt).expect("mounted when --daemon returns");
    assert!(e.fstype.starts_with("fuse"), "{e:?}");
    m.check(&img, "vol.luks.raw");
    let pids = crate::util::mount::pids_for(&mnt);
    assert_eq!(pids.len(), 1, "one daemon process expected: {pids:?}");
    let mut c = tool("fusermount3");
    c.arg("-u").arg(&mnt);
    sh(c);
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{}", pids[0])).exists() && t0.elapsed() < Duration::from_secs(10) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap_or_default();
        if stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
        "daemon {} still running 10 s after fusermount3 -u",
        pids[0]
    );
}

/// Keytab: key paths relative to the keytab's directory, absolute paths, `-` for the default
/// `--key-file`, options key-slot / keyfile-offset / keyfile-size, comments and blank lines;
/// images without a line use `--key-file`.
#[test]
fn keytab_paths_default_key_and_options() {
    need!("fuse", "qemu-img", "qemu-io", "cryptsetup");
    let lab = Lab::new();
    let rel = lab.qemu_luks("rel.luks", mark("rel", 128 * KIB), b"relative-key", "");
    let abs = lab.qcow2("sub/abs.qcow2", random("abs", 256 * KIB), b"absolute-key", "", &[]);
    let dash = lab.qemu_luks("dash.luks", mark("dash", 64 * KIB), PASS, "");
    let unlisted = lab.qemu_luks("sub/unlisted.luks", mark("unlisted", 64 * KIB), PASS, "");
    let slot = lab.cs_luks1("slot.img", random("slot", 256 * KIB), b"slot0-key", &["-c", "aes-xts-plain64"]);
    let k5 = lab.add_key(&slot, b"slot5-key", 5, &[]);
    let embedded = random("embedded", 48);
    let kfo = lab.cs_luks1("kfo.img", random("kfo", 256 * KIB), &embedded, &["-c", "aes-xts-plain64"]);
    let wrongslot = lab.cs_luks1("wrongslot.img", random("ws", 64 * KIB), b"ws-key", &["-c", "aes-xts-plain64"]);

    // the keytab lives in its own directory, with key files relative to it
    let ktdir = lab.root().join("conf");
    std::fs::create_dir_all(ktdir.join("k")).unwrap();
    std::fs::copy(&rel.key, ktdir.join("k/rel.key")).unwrap();
    std::fs::copy(&k5, ktdir.join("slot5.key")).unwrap();
    std::fs::copy(lab.key("ws", b"ws-key"), ktdir.join("ws.key")).unwrap();
    let mut blob = random("before", 1000);
    blob.extend_from_slice(&embedded);
    blob.extend_from_slice(b"\nafter\n");
    std::fs::write(ktdir.join("k/blob.bin"), &blob).unwrap();
    let kt = ktdir.join("keytab");
    std::fs::write(
        &kt,
        format!(
            "# luksfs keytab\n\
             \n\
             rel.luks        k/rel.key\n\
             sub/abs.qcow2   {abs}\n\
             dash.luks       -\n\
             \t# indented comment\n\
             slot.img        slot5.key   key-slot=5\n\
             kfo.img         k/blob.bin  keyfile-offset=1000,keyfile-size=48\n\
             wrongslot.img   ws.key      key-slot=3\n",
            abs = abs.key.display()
        ),
    )
    .unwrap();
    let k = lab.key("default.key", PASS);
    let m = lab.mount(&[os("--keytab"), kt.as_os_str(), os("--key-file"), k.as_os_str()]);
    m.check(&rel, "rel.luks.raw");
    m.check(&abs, "sub/abs.qcow2.raw");
    m.check(&dash, "dash.luks.raw");
    m.check(&unlisted, "sub/unlisted.luks.raw");
    m.check(&slot, "slot.img.raw");
    m.check(&kfo, "kfo.img.raw");
    assert_eq!(m.open_errno("wrongslot.img.raw"), Some(libc::EACCES), "key-slot=3 is empty");
    drop(m);
    let _ = wrongslot;
}

/// A keytab with an unknown option or a missing key column is a usage error at start-up.
#[test]
fn malformed_keytab_is_exit_2() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("kt", 64 * KIB), PASS, "");
    for (i, text) in
        [format!("vol.luks {} frobnicate=1\n", img.key.display()), "vol.luks\n".to_string()].iter().enumerate()
    {
        let kt = lab.key(&format!("keytab{i}"), text.as_bytes());
        let mnt = lab.root().join(format!("mnt{i}"));
        let mut m = Mount::spawn(&lab.src, &mnt, &[os("--keytab"), kt.as_os_str()], lab.root());
        let st = m.wait_exit(Duration::from_secs(20));
        assert_eq!(st.code(), Some(2), "keytab {text:?}: exit {st}; log:\n{}", m.log());
        let log = m.log();
        assert!(log.contains("keytab"), "the error should name the keytab: {log}");
        assert!(mount_entry(&mnt).is_none());
    }
}

#[test]
fn missing_source_is_exit_1() {
    need!("fuse");
    let lab = Lab::new();
    let mnt = lab.root().join("mnt");
    let k = lab.key("k", PASS);
    let mut m = Mount::spawn(&lab.root().join("no-such-dir"), &mnt, &key_args(&k), lab.root());
    let st = m.wait_exit(Duration::from_secs(20));
    assert_eq!(st.code(), Some(1), "exit {st}; log:\n{}", m.log());
    assert!(mount_entry(&mnt).is_none());
}

/// The mount is ready (a complete listing) within 1 s of spawning, with 50 images whose
/// unlocking costs real PBKDF2 time; every image then reads correctly.
#[test]
fn ready_within_1s_with_50_images() {
    need!("fuse", "cryptsetup");
    let lab = Lab::new();
    let proto = lab.cs_luks1(
        "d00/img-00.img",
        mark("fifty", 64 * KIB),
        PASS,
        &["-c", "aes-xts-plain64", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "20000"],
    );
    let mut names = vec!["img-00.img.raw".to_string()];
    for i in 1..50 {
        let rel = format!("d{:02}/img-{i:02}.img", i % 5);
        std::fs::copy(&proto.path, lab.place(&rel)).unwrap();
        names.push(format!("img-{i:02}.img.raw"));
    }
    let mnt = lab.root().join("mnt");
    let mut m = Mount::spawn(&lab.src, &mnt, &key_args(&proto.key), lab.root());
    let ready = m.wait_ready(Duration::from_secs(30));
    let mut listed = Vec::new();
    let t_ls = loop {
        listed.clear();
        for d in m.ls("").unwrap() {
            listed.extend(m.ls(&d).unwrap());
        }
        if listed.len() >= 50 || m.spawned.elapsed() > Duration::from_secs(10) {
            break m.spawned.elapsed();
        }
    };
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
    assert!(t_ls < Duration::from_secs(1), "mount ready after {ready:?}, full listing after {t_ls:?} (limit 1 s)");
    eprintln!("50 images: mounted after {ready:?}, listed after {t_ls:?}");
    for i in 0..50 {
        let rel = format!("d{:02}/img-{i:02}.img.raw", i % 5);
        m.check(&proto, &rel);
    }
}

/// open() of an image whose unlock is still running waits for it, then reads correctly.
#[test]
fn open_waits_for_a_slow_unlock() {
    need!("fuse", "cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks1(
        "slow.img",
        random("slow", 512 * KIB),
        PASS,
        &["-c", "aes-xts-plain64", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000000"],
    );
    let mnt = lab.root().join("mnt");
    let mut m = Mount::spawn(&lab.src, &mnt, &key_args(&img.key), lab.root());
    let ready = m.wait_ready(Duration::from_secs(30));
    assert!(ready < Duration::from_secs(1), "mount took {ready:?}");
    m.check(&img, "slow.img.raw");
}

/// Parallel readers of several images, random unaligned ranges, compared with the plaintext.
#[test]
fn concurrent_random_reads() {
    need!("fuse", "qemu-img", "qemu-io");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", random("conc-a", 2 * MIB), PASS, "");
    let b = lab.qcow2("b.qcow2", random("conc-b", 2 * MIB), PASS, "cluster_size=4096", &[Op::Zero(65536, 65536)]);
    let m = std::sync::Arc::new(lab.mount(&key_args(&a.key)));
    let mut threads = Vec::new();
    for t in 0..6u64 {
        let (m, img) = (m.clone(), if t % 2 == 0 { a.clone() } else { b.clone() });
        threads.push(std::thread::spawn(move || {
            let rel = format!("{}.raw", img.name());
            let n = img.plain.len() as u64;
            let r = random(&format!("offsets-{t}"), 8 * 64);
            for i in 0..64 {
                let x = u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap());
                let off = x % n;
                let len = ((x >> 32) % (200 * KIB as u64)).min(n - off) as usize;
                let got = m.read_at(&rel, off, len).unwrap();
                assert_same(&format!("{rel} [{off}, +{len}]"), &got, &img.plain[off as usize..off as usize + len]);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// With a cache much smaller than the data, everything still reads right (twice).
#[test]
fn small_cache_is_still_correct() {
    need!("fuse", "qemu-img", "qemu-io");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", random("cache-a", 4 * MIB), PASS, "");
    let b = lab.qcow2("b.qcow2", random("cache-b", 4 * MIB), PASS, "cluster_size=65536", &[]);
    let m = lab.mount(&[os("--key-file"), a.key.as_os_str(), os("--cache-size"), os("1M")]);
    for _ in 0..2 {
        m.check(&a, "a.luks.raw");
        m.check(&b, "b.qcow2.raw");
    }
}

/// Attributes are stable: inode number, size and times do not change between calls.
#[test]
fn attributes_are_stable() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", mark("attr", 64 * KIB), PASS, "");
    let m = lab.mount(&key_args(&a.key));
    let p = m.path("a.luks.raw");
    let s1 = std::fs::metadata(&p).unwrap();
    m.check(&a, "a.luks.raw");
    let s2 = std::fs::metadata(&p).unwrap();
    assert!(s1.is_file() && s2.is_file());
    assert_eq!((s1.ino(), s1.size(), s1.mtime(), s1.mode()), (s2.ino(), s2.size(), s2.mtime(), s2.mode()));
    assert_eq!(s1.size(), a.plain.len() as u64);
}

/// `-o` options pass through; the mount names itself luksfs (fsname/subtype).
#[test]
fn fuse_options_and_fsname() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", mark("opts", 64 * KIB), PASS, "");
    let m = lab.mount(&[os("--key-file"), a.key.as_os_str(), os("-o"), os("allow_other")]);
    let e = mount_entry(&m.mnt).unwrap();
    assert!(e.fstype.contains("luksfs") || e.source.contains("luksfs"), "mountinfo does not name luksfs: {e:?}");
    assert!(e.options.contains("allow_other"), "allow_other not passed through: {e:?}");
    m.check(&a, "a.luks.raw");
}

/// A real file system inside: e2fsck and debugfs read the decrypted view directly.
#[test]
fn ext4_inside_is_readable_by_e2fsck_and_debugfs() {
    need!("fuse", "qemu-img", "mkfs.ext4", "e2fsck", "debugfs");
    let lab = Lab::new();
    let tree = lab.work.join("tree");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    std::fs::write(tree.join("hello.txt"), b"hello from inside the encrypted disk\n").unwrap();
    std::fs::write(tree.join("docs/random.bin"), random("ext4-file", 300 * KIB)).unwrap();
    let fs = lab.work.join("fs.raw");
    std::fs::File::create(&fs).unwrap().set_len(8 * MIB as u64).unwrap();
    let mut c = tool("mkfs.ext4");
    c.args(["-q", "-F", "-L", "luksfs-it", "-d"]).arg(&tree).arg(&fs);
    sh(c);
    let img = lab.qemu_luks("disk.luks", std::fs::read(&fs).unwrap(), PASS, "");
    let m = lab.mount(&key_args(&img.key));
    m.check(&img, "disk.luks.raw");
    let raw = m.path("disk.luks.raw");
    let mut c = tool("e2fsck");
    c.arg("-fn").arg(&raw);
    sh(c);
    let mut c = tool("debugfs");
    c.args(["-R", "cat /hello.txt"]).arg(&raw);
    assert_eq!(sh(c), b"hello from inside the encrypted disk\n");
    let mut c = tool("debugfs");
    c.args(["-R", "dump /docs/random.bin /dev/stdout"]).arg(&raw);
    assert_same("docs/random.bin via debugfs", &sh(c), &random("ext4-file", 300 * KIB));
}

/// fio random reads with several jobs: no I/O errors.
#[test]
fn fio_parallel_random_reads() {
    need!("fuse", "qemu-img", "fio");
    let lab = Lab::new();
    let a = lab.qcow2("a.qcow2", random("fio", 8 * MIB), PASS, "cluster_size=65536", &[]);
    let m = lab.mount(&key_args(&a.key));
    let mut c = tool("fio");
    c.args(["--name=luksfs-it", "--readonly", "--rw=randread", "--bs=4k", "--numjobs=4", "--ioengine=psync"])
        .args(["--io_size=16m", "--size=8m", "--group_reporting", "--output-format=terse"])
        .arg(format!("--filename={}", m.path("a.qcow2.raw").display()));
    let out = run_timed(c, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}: {}{}", out.cmdline, String::from_utf8_lossy(&out.stdout), out.stderr);
    m.check(&a, "a.qcow2.raw");
}

/// MBR partition table inside a qcow2: sfdisk reads it from the decrypted view.
#[test]
fn partition_table_visible_to_sfdisk() {
    need!("fuse", "qemu-img", "sfdisk");
    let lab = Lab::new();
    let disk = lab.work.join("disk.raw");
    std::fs::File::create(&disk).unwrap().set_len(4 * MIB as u64).unwrap();
    let mut c = tool("sfdisk");
    c.arg("-q").arg(&disk).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"label: dos\nlabel-id: 0x1234abcd\nunit: sectors\n\nstart=128, size=4000, type=83\nstart=4200, type=da\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let img = lab.qcow2("disk.qcow2", std::fs::read(&disk).unwrap(), PASS, "cluster_size=4096", &[]);
    let m = lab.mount(&key_args(&img.key));
    let mut c = tool("sfdisk");
    c.arg("--dump").arg(m.path("disk.qcow2.raw"));
    let dump = String::from_utf8(sh(c)).unwrap();
    assert!(dump.contains("label-id: 0x1234abcd"), "{dump}");
    assert!(dump.contains("start=         128, size=        4000, type=83"), "{dump}");
}

/// The mount's readahead (`--max-readahead`, default 1M) is in place before the first request
/// is answered: a file keeps the readahead it was opened with, so a reader that opens at once
/// must already get 1 MiB requests.
#[test]
fn readahead_is_raised_before_the_first_reply() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("ra", 64 * KIB), PASS, "");
    for (i, (arg, kib)) in [(None, 1024), (Some("2M"), 2048)].into_iter().enumerate() {
        let mut args = key_args(&img.key).to_vec();
        if let Some(a) = arg {
            args.extend([os("--max-readahead"), os(a)]);
        }
        let mnt = lab.root().join(format!("mnt{i}"));
        let m = Mount::spawn(&lab.src, &mnt, &args, lab.root());
        let file = mnt.join("vol.luks.raw");
        let t0 = Instant::now();
        // The first answered request: the file's attributes.
        let md = loop {
            let f = file.clone();
            if let Ok(md) = timed("stat", FS_CALL, move || std::fs::metadata(&f)) {
                break md;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "not mounted; log:\n{}", m.log());
            std::thread::sleep(Duration::from_millis(1));
        };
        let (major, minor) = (libc::major(md.dev()), libc::minor(md.dev()));
        let ra = std::fs::read_to_string(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb")).unwrap();
        assert_eq!(ra.trim(), kib.to_string(), "read_ahead_kb right after the first reply; log:\n{}", m.log());
    }
}
