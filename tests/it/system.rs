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

// ------------------------------------------------------------------ mount(8), fstab, users

/// Pids of luksfs processes whose command line names `mnt` (any calling convention).
fn luksfs_pids(mnt: &Path) -> Vec<u32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmd.split(|&c| c == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"luksfs")) && args.contains(&want) && !gone(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Takes down whatever luksfs mount is at a path when dropped (also on panic).
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if mount_entry(&self.0).is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        for p in luksfs_pids(&self.0) {
            let _ = Command::new("kill").arg("-KILL").arg(p.to_string()).status();
        }
    }
}

/// Unmount `mnt` with umount(8) and wait for its daemon to go.
fn umount_and_wait(mnt: &Path) {
    let pids = luksfs_pids(mnt);
    assert_eq!(pids.len(), 1, "one luksfs daemon for {}: {pids:?}", mnt.display());
    let st = tool("umount").arg(mnt).status().unwrap();
    assert!(st.success(), "umount {}", mnt.display());
    let t0 = Instant::now();
    while !gone(pids[0]) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(pids[0]), "daemon {} still running after umount", pids[0]);
}

/// `findmnt -t fuse.luksfs` lists `mnt` with `fsname=luksfs:SRC`.
fn assert_listed(mnt: &Path, src: &Path) {
    let out = crate::util::sh({
        let mut c = tool("findmnt");
        c.args(["-n", "-t", "fuse.luksfs", "-o", "SOURCE", "--mountpoint"]).arg(mnt);
        c
    });
    let want = format!("luksfs:{}", src.canonicalize().unwrap().display());
    assert_eq!(String::from_utf8_lossy(&out).trim(), want, "findmnt -t fuse.luksfs {}", mnt.display());
}

/// While alive, `/usr/local/sbin/luksfs` is a link to the binary under test: mount(8) runs
/// helpers with a fixed PATH (/usr/local/sbin first), so `mount -t fuse.luksfs` finds it there.
struct HelperOnPath(std::path::PathBuf);

impl HelperOnPath {
    fn install() -> Option<HelperOnPath> {
        let link = Path::new("/usr/local/sbin/luksfs");
        match std::fs::read_link(link) {
            Ok(t) if t == Path::new(bin()) => {}
            Ok(_) | Err(_) if link.symlink_metadata().is_ok() => {
                crate::util::skip(&format!("{} exists and is not a link to the binary under test", link.display()));
                return None;
            }
            _ => std::os::unix::fs::symlink(bin(), link).expect("link /usr/local/sbin/luksfs"),
        }
        Some(HelperOnPath(link.to_path_buf()))
    }
}

impl Drop for HelperOnPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `mount -t fuse.luksfs SRC MNT -o luksfs-and-fuse-and-mount(8)-options` and the same as an
/// fstab line (`mount -T FSTAB MNT`), as root: mounted as `fuse.luksfs` with
/// `fsname=luksfs:SRC`, readable, and `umount` ends the daemon.
#[test]
fn mount_t_fuse_luksfs_and_fstab() {
    need!("fuse", "qemu-img", "findmnt", "mount", "umount", "mount.fuse3");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("fstab", 64 * KIB), PASS, "");
    let other = lab.qemu_luks("other.luks", mark("fstab-other", 64 * KIB), b"another key", "");
    let kt = lab.key("images.keytab", format!("other.luks {}\n", other.key.display()).as_bytes());
    let Some(_helper) = HelperOnPath::install() else { return };

    // mount -t, with options of luksfs, FUSE and mount(8) mixed.
    let mnt = lab.root().join("mnt-t");
    std::fs::create_dir_all(&mnt).unwrap();
    let _c1 = Cleanup(mnt.clone());
    let opts = format!(
        "key-file={},keytab={},cache_size=8M,allow_other,noexec,noauto,nofail,_netdev,x-systemd.automount",
        img.key.display(),
        kt.display()
    );
    let out = run_timed(
        {
            let mut c = tool("mount");
            c.args(["-t", "fuse.luksfs"]).arg(&lab.src).arg(&mnt).args(["-o", &opts]);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    assert_listed(&mnt, &lab.src);
    let e = mount_entry(&mnt).unwrap();
    assert!(e.options.contains("ro") && e.options.contains("noexec") && e.options.contains("allow_other"), "{e:?}");
    assert_eq!(std::fs::read(mnt.join("vol.luks.raw")).unwrap(), img.plain);
    assert_eq!(std::fs::read(mnt.join("other.luks.raw")).unwrap(), other.plain);
    umount_and_wait(&mnt);

    // An fstab line (a source with a space, written \040 as fstab wants).
    let spaced = lab.root().join("my images");
    std::fs::create_dir_all(&spaced).unwrap();
    std::fs::copy(&img.path, spaced.join("vol.luks")).unwrap();
    let mnt = lab.root().join("mnt-fstab");
    std::fs::create_dir_all(&mnt).unwrap();
    let _c2 = Cleanup(mnt.clone());
    let fstab = lab.root().join("fstab");
    let esc = |p: &Path| p.display().to_string().replace(' ', "\\040");
    std::fs::write(
        &fstab,
        format!(
            "# a test fstab\n{} {} fuse.luksfs key-file={},allow_other,nofail,x-systemd.automount,x-systemd.idle-timeout=5min 0 0\n",
            esc(&spaced),
            esc(&mnt),
            img.key.display()
        ),
    )
    .unwrap();
    let out = run_timed(
        {
            let mut c = tool("mount");
            c.arg("-T").arg(&fstab).arg(&mnt);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    assert_listed(&mnt, &spaced);
    assert_eq!(std::fs::read(mnt.join("vol.luks.raw")).unwrap(), img.plain);
    umount_and_wait(&mnt);

    // A bad option is reported by mount(8)'s helper, and nothing is mounted.
    let out = run_timed(
        {
            let mut c = tool("mount");
            c.args(["-t", "fuse.luksfs"]).arg(&lab.src).arg(&mnt).args(["-o", "cache-size=lots"]);
            c
        },
        Duration::from_secs(60),
    );
    assert_ne!(out.code, Some(0), "{}", out.cmdline);
    assert!(out.stderr.contains("cache-size") || out.stderr.contains("lots"), "{}", out.stderr);
    assert!(mount_entry(&mnt).is_none());
}

/// An unprivileged user mounts through fusermount3 (the mount.fuse3 calling convention run
/// directly): the mount is `fuse.luksfs`, readable by that user, and `fusermount3 -u` ends it.
/// Needs a user (created with useradd) and a `/dev/fuse` others may open (mode 0666, as udev
/// makes it; fusermount3 opens it with the caller's rights).
#[test]
fn unprivileged_user_mounts_through_fusermount3() {
    need!("fuse", "qemu-img", "findmnt", "useradd", "runuser");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/fuse").map(|m| m.permissions().mode()).unwrap_or(0);
    // Distributions make /dev/fuse 0666 (udev); some containers leave it 0600. Give it the usual
    // mode for this test (we are root) and put the old one back afterwards, whatever happens.
    struct RestoreMode(u32);
    impl Drop for RestoreMode {
        fn drop(&mut self) {
            let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
        }
    }
    let _restore = RestoreMode(mode & 0o7777);
    if mode & 0o006 != 0o006 && std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).is_err() {
        crate::util::skip(&format!(
            "/dev/fuse is mode {:o}: unprivileged FUSE needs 0666 (fusermount3 opens it as the caller)",
            mode & 0o777
        ));
        return;
    }
    const USER: &str = "luksfs-it";
    let exists = Command::new("id").arg(USER).output().is_ok_and(|o| o.status.success());
    if !exists {
        let st = tool("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]).status();
        if !st.is_ok_and(|s| s.success()) {
            crate::util::skip("cannot create a user with useradd");
            return;
        }
    }
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("user", 64 * KIB), PASS, "");
    let mnt = lab.root().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _c = Cleanup(mnt.clone());
    // The user needs to reach the lab, read the image and key, and own the mount point.
    for p in [lab.root(), &lab.src, &lab.keys, &mnt] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&img.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&img.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    crate::util::sh({
        let mut c = tool("chown");
        c.arg(USER).arg(&mnt);
        c
    });
    let as_user = |args: &[&OsStr]| {
        let mut c = tool("runuser");
        c.args(["-u", USER, "--"]).args(args);
        run_timed(c, Duration::from_secs(60))
    };
    let opts = format!("key-file={},nofail", img.key.display());
    let out = as_user(&[os(bin()), lab.src.as_os_str(), mnt.as_os_str(), os("-o"), os(&opts)]);
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    assert_listed(&mnt, &lab.src);
    let e = mount_entry(&mnt).unwrap();
    assert!(e.options.contains("user_id="), "{e:?}");
    // cmp as the user, against the plaintext in a file the user can read.
    let plain = lab.root().join("plain");
    std::fs::write(&plain, &img.plain).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = as_user(&[os("cmp"), mnt.join("vol.luks.raw").as_os_str(), plain.as_os_str()]);
    assert_eq!(out.code, Some(0), "the user reads the plaintext: {}", out.stderr);
    let pids = luksfs_pids(&mnt);
    let out = as_user(&[os("fusermount3"), os("-u"), mnt.as_os_str()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let t0 = Instant::now();
    while pids.iter().any(|&p| !gone(p)) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pids.iter().all(|&p| gone(p)), "daemon still running after fusermount3 -u: {pids:?}");
}

// ------------------------------------------------------------------ readiness, systemd

/// `--daemon` returns once the keys have been tried, with a one-line summary; when no image at
/// all can be unlocked it unmounts and exits with the failure's code (3: wrong key).
#[test]
fn daemon_sums_up_the_keys_and_fails_when_nothing_unlocks() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let good = lab.qemu_luks("good.luks", mark("good", 64 * KIB), PASS, "");
    let bad = lab.qemu_luks("bad.luks", mark("bad", 64 * KIB), b"another key", "");
    let mnt = lab.root().join("mnt");
    let (m, out) = Mount::daemon(&lab.src, &mnt, &[os("--key-file"), good.key.as_os_str()], lab.root());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("2 images, 1 unlocked, 1 failed: bad.luks:"), "{}", out.stderr);
    m.check(&good, "good.luks.raw");
    drop(m);
    let _ = bad;
    let wrong = lab.key("wrong.key", b"neither");
    let empty = lab.root().join("mnt2");
    std::fs::create_dir_all(&empty).unwrap();
    let _c = Cleanup(empty.clone());
    let out = daemon_out(&lab.src, &empty, &[os("--key-file"), wrong.as_os_str()]);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr.contains("2 images, 0 unlocked, 2 failed") && out.stderr.contains("no image could be unlocked"),
        "{}",
        out.stderr
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(mount_entry(&empty).is_none(), "left mounted");
    assert!(luksfs_pids(&empty).is_empty(), "daemon left running");
}

/// Under systemd (`NOTIFY_SOCKET`), a foreground mount sends `READY=1` with the summary as
/// `STATUS=` once mounted and keys tried, and `STOPPING=1` when told to stop.
#[test]
fn systemd_notify_ready_and_stopping() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("notify", 64 * KIB), PASS, "");
    let sock_path = lab.root().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mnt = lab.root().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _c = Cleanup(mnt.clone());
    let mut child = Command::new(bin())
        .arg("mount")
        .arg(&lab.src)
        .arg(&mnt)
        .arg("--key-file")
        .arg(&img.key)
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 60 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.starts_with("READY=1\n") && msg.contains("STATUS=1 image, 1 unlocked, 0 failed"), "{msg:?}");
    assert!(mount_entry(&mnt).is_some(), "READY before the mount");
    assert_eq!(std::fs::read(mnt.join("vol.luks.raw")).unwrap(), img.plain);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let n = sock.recv(&mut buf).expect("STOPPING=1 within 60 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(mount_entry(&mnt).is_none());
}

/// The unit template passes `systemd-analyze verify` (with ExecStart pointing at the binary
/// under test; the installed copy is verified by the package test).
#[test]
fn unit_template_verifies() {
    need!("systemd-analyze");
    let lab = Lab::new();
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/luksfs@.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecStart=/usr/bin/luksfs mount "), "{unit}");
    let p = lab.root().join("luksfs@test.service");
    std::fs::write(&p, unit.replace("/usr/bin/luksfs", bin())).unwrap();
    let out = run_timed(
        {
            let mut c = tool("systemd-analyze");
            c.args(["verify", "--man=no"]).arg(&p);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.trim().is_empty(), "warnings: {}", out.stderr);
}

// ------------------------------------------------------------------ progress

/// `cat --progress` draws a progress bar on standard error even when it is not a terminal, the
/// last frame at 100%, and the bytes on standard output are unchanged; without it (standard
/// error not a terminal) nothing is drawn. `verify` draws nothing when not on a terminal.
#[test]
fn cat_progress_bar() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", crate::util::random("progress", 3 * 1024 * KIB), PASS, "");
    let out = crate::util::Luksfs::new("cat").arg(&img.path).key(&img.key).arg("--progress").run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, img.plain);
    let last = out.stderr.rsplit('\r').find(|f| !f.trim().is_empty()).unwrap_or_default().to_string();
    assert!(last.contains("vol.luks") && last.contains("3.00 MiB of 3.00 MiB (100%)"), "last frame: {last:?}");
    let out = crate::util::Luksfs::new("cat").arg(&img.path).key(&img.key).run();
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stderr, "", "no bar when standard error is not a terminal");
    let out = crate::util::Luksfs::new("verify").arg(&img.path).key(&img.key).run();
    assert!(!out.stderr.contains('%'), "{}", out.stderr);
}

/// On a terminal (a pseudo-terminal from script(1)), `verify`'s bar ends at 100%.
#[test]
fn verify_progress_ends_at_100_percent_on_a_terminal() {
    need!("qemu-img", "script");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", crate::util::random("vprogress", 8 * 1024 * KIB), PASS, "");
    let cmd = format!("{} verify '{}' --key-file '{}' > /dev/null", bin(), img.path.display(), img.key.display());
    let out = run_timed(
        {
            let mut c = tool("script");
            c.args(["-qfec", &cmd, "/dev/null"]);
            c
        },
        Duration::from_secs(120),
    );
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(matches!(out.code, Some(0 | 6)), "{}: {screen}", out.cmdline);
    let last = screen.rsplit('\r').find(|f| f.contains('%')).unwrap_or_default().to_string();
    assert!(last.contains("vol.luks: 100%"), "last frame: {last:?}");
}
