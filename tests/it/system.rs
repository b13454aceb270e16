//! luksfs as a system tool (issue 14): `--daemon` never fails silently, mount point checks,
//! restarts that do not take the new mount down, the `fuse.luksfs` type.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::mount::{mount_entry, pids_for};
use crate::util::{KIB, Lab, Mount, bin, mark, run_timed, tool};

const PASS: &[u8] = b"correct horse battery staple";

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `luksfs mount SRC MNT --daemon ARGS...`, its output captured through pipes.
fn daemon_out(src: &Path, mnt: &Path, args: &[&OsStr]) -> crate::util::Out {
    let mut c = Command::new(bin());
    c.arg("mount").arg(src).arg(mnt).arg("--daemon").args(args).env_remove("RUST_LOG");
    run_timed(c, Duration::from_secs(30))
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

/// Every start-up error reaches `--daemon`'s standard error before it returns, 20 runs of 20,
/// with the right exit code; nothing is left mounted.
#[test]
fn daemon_start_up_errors_are_always_printed() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("errs", 64 * KIB), PASS, "");
    let bad_kt = lab.key("bad.keytab", format!("vol.luks {} frobnicate=1\n", img.key.display()).as_bytes());
    let mnt = lab.root().join("empty");
    std::fs::create_dir_all(&mnt).unwrap();
    let full = lab.root().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("file"), b"x").unwrap();
    let busy = lab.mount(&[os("--key-file"), img.key.as_os_str()]);
    let k = img.key.as_os_str();
    let cases: Vec<(&str, &Path, Vec<&OsStr>, i32, &str)> = vec![
        ("-o rw", &mnt, vec![os("--key-file"), k, os("-o"), os("rw")], 2, "read-only"),
        ("bad keytab", &mnt, vec![os("--keytab"), bad_kt.as_os_str()], 2, "keytab line 1"),
        ("missing mount point", Path::new("/nonexistent/mnt"), vec![os("--key-file"), k], 2, "/nonexistent/mnt"),
        ("non-empty mount point", &full, vec![os("--key-file"), k], 2, "not empty"),
        ("mount point in use", &busy.mnt, vec![os("--key-file"), k], 2, "already in use"),
    ];
    for (what, target, args, code, needle) in &cases {
        for run in 0..20 {
            let out = daemon_out(&lab.src, target, args);
            assert_eq!(out.code, Some(*code), "{what}, run {run}: {}", out.stderr);
            assert!(out.stderr.contains(needle), "{what}, run {run}: stderr lacks {needle:?}: {:?}", out.stderr);
        }
    }
    assert!(mount_entry(&mnt).is_none());
    assert!(mount_entry(&full).is_none());
    // `-o nonempty` mounts over the file (and hides it).
    let (m, out) = Mount::daemon(&lab.src, &full, &[os("--key-file"), k, os("-o"), os("nonempty")], lab.root());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    m.check(&img, "vol.luks.raw");
}

/// `fusermount3 -u M` and at once a new `luksfs mount ... M --daemon`: the old daemon, on its way
/// out, must not unmount the new mount (10 times; the new mount is alive 2 s later each time).
#[test]
fn restart_right_after_unmount_keeps_the_new_mount() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("restart", 64 * KIB), PASS, "");
    let mnt = lab.root().join("mnt");
    let args = [os("--key-file"), img.key.as_os_str()];
    let (mut current, out) = Mount::daemon(&lab.src, &mnt, &args, lab.root());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for round in 0..10 {
        let old = pids_for(&mnt);
        assert_eq!(old.len(), 1, "round {round}: {old:?}");
        let st = tool("fusermount3").arg("-u").arg(&mnt).status().unwrap();
        assert!(st.success(), "round {round}: fusermount3 -u");
        let (next, out) = Mount::daemon(&lab.src, &mnt, &args, lab.root());
        assert_eq!(out.code, Some(0), "round {round}: {}", out.stderr);
        current.release();
        current = next;
        std::thread::sleep(Duration::from_secs(2));
        let e = mount_entry(&mnt).unwrap_or_else(|| panic!("round {round}: the new mount is gone"));
        assert_eq!(e.fstype, "fuse.luksfs", "round {round}");
        current.check(&img, "vol.luks.raw");
        let t0 = Instant::now();
        while !gone(old[0]) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(old[0]), "round {round}: the old daemon {} is still running", old[0]);
    }
}

/// The mount shows as `fuse.luksfs` with `fsname=luksfs:SOURCE`, as root too (`findmnt -t`).
#[test]
fn type_is_fuse_luksfs() {
    need!("fuse", "qemu-img", "findmnt");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("type", 64 * KIB), PASS, "");
    let m = lab.mount(&[os("--key-file"), img.key.as_os_str()]);
    let out = crate::util::sh({
        let mut c = tool("findmnt");
        c.args(["-n", "-t", "fuse.luksfs", "-o", "SOURCE,FSTYPE", "--mountpoint"]).arg(&m.mnt);
        c
    });
    let src = lab.src.canonicalize().unwrap();
    let line = String::from_utf8_lossy(&out).trim().to_string();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [format!("luksfs:{}", src.display()).as_str(), "fuse.luksfs"]
    );
    m.check(&img, "vol.luks.raw");
}
