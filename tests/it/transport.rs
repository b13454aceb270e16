//! The two ways requests reach luksfs: `/dev/fuse` (the default) and FUSE over io_uring (per-CPU
//! queues, `--io-uring`). One source, two mounts, one per transport: the same bytes, attributes,
//! listings and errors, and a clean exit. io_uring is mandatory under CI=true (scripts/test.sh
//! switches on the kernel's `fuse.enable_uring`).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::util::fixture::Op;
use crate::util::mount::{FS_CALL, mount_entry};
use crate::util::{KIB, Lab, MIB, Mount, assert_same, mark, random, run_timed, snapshot_tree, tool};

const PASS: &[u8] = b"correct horse battery staple";

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn mount_with(lab: &Lab, key: &Path, name: &str, uring: bool) -> Mount {
    let mut args = vec![os("--key-file"), key.as_os_str(), os("-v")];
    if uring {
        args.push(os("--io-uring"));
    }
    Mount::start(&lab.src, &lab.root().join(name), &args, lab.root())
}

/// Whether the mount's log says `what` within 10 s (the mount point appears before the log line).
fn logged(m: &Mount, what: &str) -> bool {
    let t0 = std::time::Instant::now();
    while !m.log().contains(what) {
        if t0.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `statvfs` and `getxattr("user.x")` of `p` through python3 (the tests use no `unsafe`).
fn statfs_and_xattr_errno(p: &Path) -> String {
    let script = "import os,sys\ns=os.statvfs(sys.argv[1])\ntry:\n  os.getxattr(sys.argv[1],'user.x'); e=0\n\
                  except OSError as x:\n  e=x.errno\nprint(s.f_blocks,s.f_files,s.f_bsize,e)";
    let mut c = tool("python3");
    c.arg("-c").arg(script).arg(p);
    let out = run_timed(c, FS_CALL);
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn io_uring_and_dev_fuse_serve_the_same() {
    need!("fuse-uring", "qemu-img", "qemu-io", "python3", "getfattr");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", random("tr-a", 5 * MIB + 1536), PASS, "");
    let b = lab.qcow2("sub/b.qcow2", random("tr-b", 2 * MIB), PASS, "cluster_size=65536", &[Op::Zero(65536, 131072)]);
    let mu = mount_with(&lab, &a.key, "mnt-uring", true);
    let md = mount_with(&lab, &a.key, "mnt-devfuse", false);
    assert!(logged(&mu, "(io_uring"), "--io-uring should serve through io_uring; log:\n{}", mu.log());
    assert!(logged(&md, "(/dev/fuse)"), "without --io-uring, /dev/fuse; log:\n{}", md.log());
    for m in [&mu, &md] {
        m.check(&a, "a.luks.raw");
        m.check(&b, "sub/b.qcow2.raw");
    }
    assert_eq!(snapshot_tree(&mu.mnt), snapshot_tree(&md.mnt), "listings or contents differ");
    for rel in ["", "sub", "a.luks.raw", "sub/b.qcow2.raw"] {
        let (x, y) = (std::fs::metadata(mu.path(rel)).unwrap(), std::fs::metadata(md.path(rel)).unwrap());
        let key = |m: &std::fs::Metadata| (m.ino(), m.mode(), m.nlink(), m.size(), m.blocks(), m.uid(), m.mtime());
        assert_eq!(key(&x), key(&y), "attributes of {rel:?}");
    }
    // every shape of read: tiny, unaligned, across 1 MiB boundaries, larger than one request,
    // across the end, past the end
    let n = a.plain.len() as u64;
    let shapes = [(0, 1), (511, 2), (4095, 8193), (MIB as u64 - 7, MIB + 14), (0, 4 * MIB), (n - 10, 100), (n, 10)];
    for (off, len) in shapes {
        let want = &a.plain[off as usize..(off + len as u64).min(n) as usize];
        for m in [&mu, &md] {
            let got = m.read_at("a.luks.raw", off, len).unwrap();
            assert_same(&format!("{} [{off}, +{len}]", m.mnt.display()), &got, want);
        }
    }
    for m in [&mu, &md] {
        assert_eq!(m.open_errno("missing.raw"), Some(libc::ENOENT));
        let e = std::fs::OpenOptions::new().write(true).open(m.path("a.luks.raw")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    }
    let (x, y) = (statfs_and_xattr_errno(&mu.path("a.luks.raw")), statfs_and_xattr_errno(&md.path("a.luks.raw")));
    assert_eq!(x, y, "statfs or getxattr differ");
    assert!(x.ends_with(&format!(" {}", libc::ENODATA)), "getxattr should fail with ENODATA: {x}");
    // the user.luksfs.* attributes: listxattr and getxattr (size probe, then value) on both
    let attrs = |m: &Mount, rel: &str| {
        let mut c = tool("getfattr");
        c.args(["-d", "--absolute-names"]).arg(m.path(rel));
        let out = run_timed(c, FS_CALL);
        assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().filter(|l| l.starts_with("user.")).collect::<Vec<_>>().join("\n")
    };
    for rel in ["a.luks.raw", "sub/b.qcow2.raw"] {
        let (x, y) = (attrs(&mu, rel), attrs(&md, rel));
        assert_eq!(x, y, "getfattr -d {rel} differs between the transports");
        assert!(x.contains("user.luksfs.state=\"unlocked\""), "{rel}: {x}");
    }
    assert!(attrs(&mu, "sub/b.qcow2.raw").contains("user.luksfs.format=\"qcow2\""));
}

/// Many readers at once, small and large reads mixed, on both transports.
#[test]
fn io_uring_concurrent_readers() {
    need!("fuse-uring", "qemu-img");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", random("tr-conc", 6 * MIB), PASS, "");
    let m = std::sync::Arc::new(mount_with(&lab, &a.key, "mnt", true));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (m, plain) = (m.clone(), a.plain.clone());
            std::thread::spawn(move || {
                let r = random(&format!("tr-off-{t}"), 8 * 40);
                for i in 0..40 {
                    let x = u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap());
                    let off = x % plain.len() as u64;
                    let max = if t % 2 == 0 { 8 * KIB } else { 2 * MIB };
                    let len = ((x >> 32) % max as u64).max(1) as usize;
                    let got = m.read_at("a.luks.raw", off, len).unwrap();
                    let end = (off as usize + len).min(plain.len());
                    assert_same(&format!("thread {t} [{off}, +{len}]"), &got, &plain[off as usize..end]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// SIGTERM with a file open, and `fusermount3 -u`, end an io_uring mount with exit 0.
#[test]
fn io_uring_mount_ends_cleanly() {
    need!("fuse-uring", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("tr-end", 256 * KIB), PASS, "");
    let mut m = mount_with(&lab, &img.key, "mnt1", true);
    m.check(&img, "vol.luks.raw");
    let held = std::fs::File::open(m.path("vol.luks.raw")).unwrap();
    m.signal("TERM");
    let st = m.wait_exit(Duration::from_secs(20));
    assert_eq!(st.code(), Some(0), "SIGTERM: exit status {st}; log:\n{}", m.log());
    assert!(mount_entry(&m.mnt).is_none(), "still mounted after SIGTERM");
    drop(held);
    let mut m = mount_with(&lab, &img.key, "mnt2", true);
    m.check(&img, "vol.luks.raw");
    let st = m.unmount();
    assert_eq!(st.code(), Some(0), "fusermount3 -u: exit status {st}; log:\n{}", m.log());
}
