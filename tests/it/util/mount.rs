//! A running `luksfs mount` and the guard that always takes it down.
//!
//! [`Mount::start`] spawns `luksfs mount SOURCE MOUNTPOINT ARGS...` (stdout and stderr go to a
//! log file outside SOURCE) and polls `/proc/self/mountinfo` until MOUNTPOINT is a FUSE mount.
//! Dropping the guard, also when the test panics, unmounts (`fusermount3 -u`, then the lazy
//! `fusermount3 -uz`), then waits for the process and kills it if it lingers. A watchdog thread
//! does the same if a test hangs past [`WATCHDOG`], so a stuck FUSE request fails the test
//! instead of hanging the suite. File-system calls go through [`timed`] helpers.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Image, Out, assert_same, bin, run_timed, timed, which};

/// How long one mount may live before the watchdog tears it down.
pub const WATCHDOG: Duration = Duration::from_secs(600);
/// Upper bound for one file-system call made by a test through the mount.
pub const FS_CALL: Duration = Duration::from_secs(180);

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub fstype: String,
    pub source: String,
    pub options: String,
}

/// The mountinfo entry for `mnt`, if something is mounted there.
pub fn mount_entry(mnt: &Path) -> Option<MountEntry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mnt.to_string_lossy();
    let mut found = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 10 || unescape(f[4]) != want {
            continue;
        }
        let sep = f.iter().position(|&x| x == "-")?;
        found = Some(MountEntry {
            fstype: f.get(sep + 1)?.to_string(),
            source: unescape(f.get(sep + 2)?),
            options: format!("{} {}", f[5], f.get(sep + 3).unwrap_or(&"")),
        });
    }
    found // the last one: the top of the stack
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_fuse(mnt: &Path) -> bool {
    mount_entry(mnt).is_some_and(|e| e.fstype == "fuse" || e.fstype.starts_with("fuse."))
}

/// Pids of processes whose command line is a luksfs mount of `mnt` (finds `--daemon` children).
pub fn pids_for(mnt: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return pids };
    let want = mnt.as_os_str().as_encoded_bytes();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmd.split(|&c| c == 0).collect();
        if args.contains(&b"mount".as_slice())
            && args.contains(&want)
            && args.first().is_some_and(|a| a.ends_with(b"luksfs"))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Run a cleanup command without panicking (for Drop and the watchdog); true on exit 0.
fn quiet(program: &Path, args: &[&OsStr], limit: Duration) -> bool {
    let Ok(mut child) =
        Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

fn fusermount(mnt: &Path, lazy: bool) -> bool {
    let Some(fm) = which("fusermount3") else { return false };
    let flag = if lazy { "-uz" } else { "-u" };
    quiet(&fm, &[OsStr::new(flag), mnt.as_os_str()], Duration::from_secs(10))
}

fn kill(pid: u32, sig: &str) -> bool {
    let Some(k) = which("kill") else { return false };
    quiet(&k, &[OsStr::new(&format!("-{sig}")), OsStr::new(&pid.to_string())], Duration::from_secs(5))
}

fn alive(pid: u32) -> bool {
    // a zombie still has /proc/PID; its state is Z
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
}

/// A luksfs mount owned by a test.
pub struct Mount {
    /// The mount point.
    pub mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    watchdog: Option<mpsc::Sender<()>>,
    /// When the process was spawned.
    pub spawned: Instant,
}

impl Mount {
    /// Spawn `luksfs mount SRC MNT ARGS...` and wait (up to 30 s) until MNT is a FUSE mount.
    pub fn start(src: &Path, mnt: &Path, args: &[&OsStr], logdir: &Path) -> Mount {
        let mut m = Mount::spawn(src, mnt, args, logdir);
        m.wait_ready(Duration::from_secs(30));
        m
    }

    /// Spawn without waiting.
    pub fn spawn(src: &Path, mnt: &Path, args: &[&OsStr], logdir: &Path) -> Mount {
        std::fs::create_dir_all(mnt).unwrap();
        assert!(mount_entry(mnt).is_none(), "{} is already a mount point", mnt.display());
        let log = logdir.join(format!("luksfs-mount-{}.log", mnt.file_name().unwrap().to_string_lossy()));
        let lf = std::fs::File::create(&log).unwrap();
        let spawned = Instant::now();
        let child = Command::new(bin())
            .arg("mount")
            .arg(src)
            .arg(mnt)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(lf.try_clone().unwrap())
            .stderr(lf)
            .spawn()
            .expect("spawn luksfs mount");
        let mut m = Mount { mnt: mnt.to_path_buf(), child: Some(child), log, watchdog: None, spawned };
        m.arm_watchdog();
        m
    }

    /// `luksfs mount --daemon SRC MNT ARGS...`: it must return (within 30 s) with the mount
    /// ready. Returns the guard (which finds the daemon by its command line) and the launcher's
    /// output.
    /// The launcher's stdout/stderr go to files (the daemon may keep them open).
    pub fn daemon(src: &Path, mnt: &Path, args: &[&OsStr], logdir: &Path) -> (Mount, Out) {
        std::fs::create_dir_all(mnt).unwrap();
        let log = logdir.join("luksfs-daemon.log");
        let out_f = logdir.join("luksfs-daemon.stdout");
        let spawned = Instant::now();
        let mut c = Command::new(bin());
        c.arg("mount").arg(src).arg(mnt).arg("--daemon").args(args).env_remove("RUST_LOG");
        c.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_f).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        let cmdline = format!("{} mount {} {} --daemon ...", bin(), src.display(), mnt.display());
        let mut m = Mount { mnt: mnt.to_path_buf(), child: None, log, watchdog: None, spawned };
        m.arm_watchdog();
        let mut child = c.spawn().expect("spawn luksfs mount --daemon");
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmdline} did not return within 30 s; log:\n{}", m.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Out {
            cmdline,
            code: status.code(),
            status,
            stdout: std::fs::read(&out_f).unwrap_or_default(),
            stderr: m.log(),
        };
        (m, out)
    }

    fn arm_watchdog(&mut self) {
        let (tx, rx) = mpsc::channel::<()>();
        let mnt = self.mnt.clone();
        let pid = self.child.as_ref().map(|c| c.id());
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                eprintln!("watchdog: mount {} still up after {WATCHDOG:?}: tearing it down", mnt.display());
                fusermount(&mnt, true);
                for p in pids_for(&mnt).into_iter().chain(pid) {
                    kill(p, "KILL");
                }
            }
        });
        self.watchdog = Some(tx);
    }

    /// Poll mountinfo until the FUSE mount is there; panics (with the log) if the process exits
    /// first or `limit` passes. Returns the time since spawn.
    pub fn wait_ready(&mut self, limit: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if is_fuse(&self.mnt) {
                return self.spawned.elapsed();
            }
            if let Some(c) = self.child.as_mut()
                && let Some(st) = c.try_wait().unwrap()
            {
                panic!("luksfs mount exited ({st}) before the mount was ready; log:\n{}", self.log());
            }
            if t0.elapsed() > limit {
                panic!("{} is not a FUSE mount {limit:?} after spawning; log:\n{}", self.mnt.display(), self.log());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The foreground process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("foreground mount").id()
    }

    /// Send a signal (`TERM`, `INT`, ...) to the foreground process.
    pub fn signal(&self, sig: &str) {
        assert!(kill(self.pid(), sig), "kill -{sig} {}", self.pid());
    }

    /// Wait for the foreground process to exit (panics after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let c = self.child.as_mut().expect("foreground mount");
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if t0.elapsed() > limit {
                panic!("luksfs mount did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `fusermount3 -u`, then wait for the foreground process; returns its exit status.
    pub fn unmount(&mut self) -> ExitStatus {
        let fm = which("fusermount3").expect("fusermount3");
        let out = run_timed(
            {
                let mut c = Command::new(fm);
                c.arg("-u").arg(&self.mnt);
                c
            },
            Duration::from_secs(20),
        );
        assert_eq!(out.code, Some(0), "fusermount3 -u failed: {}", out.stderr);
        assert!(mount_entry(&self.mnt).is_none(), "still mounted after fusermount3 -u");
        self.wait_exit(Duration::from_secs(20))
    }

    /// Stop guarding this mount without touching it (its process is known to be gone, or another
    /// guard now owns the mount point).
    pub fn release(mut self) {
        self.watchdog.take();
        self.child.take();
        std::mem::forget(self);
    }

    /// Everything the process wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// MOUNTPOINT/REL
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Read a whole file through the mount (bounded time).
    pub fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        let p = self.path(rel);
        timed(&format!("read {}", p.display()), FS_CALL, move || std::fs::read(&p))
    }

    /// pread `len` bytes at `off` (fewer at EOF).
    pub fn read_at(&self, rel: &str, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let p = self.path(rel);
        timed(&format!("pread {}", p.display()), FS_CALL, move || {
            let f = std::fs::File::open(&p)?;
            let mut v = vec![0u8; len];
            let mut n = 0;
            while n < len {
                let k = f.read_at(&mut v[n..], off + n as u64)?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            v.truncate(n);
            Ok(v)
        })
    }

    /// The errno of `open(REL, O_RDONLY)`, or None when it opens.
    pub fn open_errno(&self, rel: &str) -> Option<i32> {
        let p = self.path(rel);
        timed(&format!("open {}", p.display()), FS_CALL, move || match std::fs::File::open(&p) {
            Ok(_) => None,
            Err(e) => Some(e.raw_os_error().unwrap_or(-1)),
        })
    }

    /// Sorted names in MOUNTPOINT/REL.
    pub fn ls(&self, rel: &str) -> io::Result<Vec<String>> {
        let p = self.path(rel);
        timed(&format!("readdir {}", p.display()), FS_CALL, move || {
            let mut v = std::fs::read_dir(&p)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<Vec<_>>>()?;
            v.sort();
            Ok(v)
        })
    }

    /// Every entry below the mount point, relative, sorted; directories end in `/`.
    pub fn walk(&self) -> Vec<String> {
        let root = self.mnt.clone();
        timed("walk the mount", FS_CALL, move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                    if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                        out.push(rel + "/");
                        stack.push(p);
                    } else {
                        out.push(rel);
                    }
                }
            }
            out.sort();
            out
        })
    }

    /// `REL` (default: the image's name + `.raw`) has the image's size and content.
    #[track_caller]
    pub fn check(&self, img: &Image, rel: &str) {
        let p = self.path(rel);
        let md = {
            let p = p.clone();
            timed("stat", FS_CALL, move || std::fs::metadata(&p))
        }
        .unwrap_or_else(|e| panic!("stat {}: {e}; log:\n{}", p.display(), self.log()));
        assert!(md.is_file(), "{} is not a regular file", p.display());
        assert_eq!(md.len(), img.plain.len() as u64, "size of {}", p.display());
        let got = self.read(rel).unwrap_or_else(|e| panic!("read {}: {e}; log:\n{}", p.display(), self.log()));
        assert_same(&format!("read through the mount: {}", p.display()), &got, &img.plain);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if mount_entry(&self.mnt).is_some() && !fusermount(&self.mnt, false) {
            fusermount(&self.mnt, true);
        }
        if let Some(c) = self.child.as_mut() {
            let t0 = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(c.try_wait(), Ok(None)) {
                eprintln!("luksfs mount (pid {}) still running after unmount: killing it", c.id());
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // --daemon children, found by their command line
        let t0 = Instant::now();
        loop {
            let pids: Vec<u32> = pids_for(&self.mnt).into_iter().filter(|&p| alive(p)).collect();
            if pids.is_empty() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                for p in pids {
                    eprintln!("luksfs daemon (pid {p}) still running after unmount: killing it");
                    kill(p, "KILL");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if mount_entry(&self.mnt).is_some() {
            fusermount(&self.mnt, true);
        }
        self.watchdog.take(); // stops the watchdog
        if std::thread::panicking() {
            let log = self.log();
            if !log.is_empty() {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- luksfs mount log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}
