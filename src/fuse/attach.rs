//! Attaching a FUSE connection to a mount point, and detaching only our own.
//!
//! luksfs does the mounting itself instead of leaving it to fuser, for three reasons:
//! * the type shows as `fuse.luksfs` for root too (fuser's direct `mount(2)` passes `fuse`, so
//!   `findmnt -t fuse.luksfs` missed root mounts): as root we call `mount(2)` with the type
//!   `fuse.<subtype>`; other users go through `fusermount3`, which does the same;
//! * fuser unmounts by path when its session ends, and its "still mounted?" check is inverted
//!   (it unmounts exactly when the connection is gone): after `fusermount3 -u M` it took down
//!   the *next* mount at M. Sessions here come from [`fuser::Session::from_fd`], which never
//!   unmounts, and [`Attached::detach`] unmounts only a mount that is still ours: our connection
//!   is alive (so its device number cannot have been reused) and the mount on top at the path
//!   has that device number;
//! * the mount point is checked first: a non-empty directory is refused unless `-o nonempty`,
//!   and a path where something is already mounted is refused.

use super::mountinfo;
use crate::{Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Mount options, as parsed from `-o`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `fsname=` (default `luksfs:SOURCE`).
    pub fsname: String,
    /// `subtype=` (default `luksfs`): the type shows as `fuse.<subtype>`.
    pub subtype: String,
    pub allow_other: bool,
    pub allow_root: bool,
    pub default_permissions: bool,
    pub auto_unmount: bool,
    pub noexec: bool,
    pub noatime: bool,
    /// Mount over a non-empty directory.
    pub nonempty: bool,
    /// Anything else, passed to the kernel (or fusermount3) as it is.
    pub custom: Vec<String>,
}

impl Options {
    /// Parse `-o` values (each comma-separated) for a mount of `source`.
    pub fn parse(values: &[String], source: &Path) -> Result<Options> {
        let source = source.canonicalize().unwrap_or_else(|_| source.to_path_buf());
        let mut o = Options {
            fsname: format!("luksfs:{}", source.display()),
            subtype: "luksfs".to_string(),
            ..Options::default()
        };
        for v in values.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
            match v {
                "allow_other" => o.allow_other = true,
                "allow_root" => o.allow_root = true,
                "default_permissions" => o.default_permissions = true,
                "auto_unmount" => o.auto_unmount = true,
                "nonempty" => o.nonempty = true,
                "ro" | "nodev" | "nosuid" => {}
                "noexec" => o.noexec = true,
                "exec" => o.noexec = false,
                "noatime" => o.noatime = true,
                "atime" => o.noatime = false,
                "rw" => return Err(Error::usage("-o rw: luksfs mounts are always read-only")),
                "dev" | "suid" => return Err(Error::usage(format!("-o {v} is not allowed on a luksfs mount"))),
                v if v.starts_with("fsname=") => o.fsname = v["fsname=".len()..].to_string(),
                v if v.starts_with("subtype=") => o.subtype = v["subtype=".len()..].to_string(),
                v => o.custom.push(v.to_string()),
            }
        }
        if o.allow_other && o.allow_root {
            return Err(Error::usage("-o allow_other and allow_root exclude each other"));
        }
        if o.fsname.contains(',') || o.subtype.contains(',') || o.subtype.is_empty() {
            return Err(Error::usage("-o fsname= and subtype= must not contain commas; subtype= must not be empty"));
        }
        Ok(o)
    }

    /// The access rule fuser enforces for each request.
    pub fn acl(&self) -> fuser::SessionACL {
        if self.allow_other {
            fuser::SessionACL::All
        } else if self.allow_root {
            fuser::SessionACL::RootAndOwner
        } else {
            fuser::SessionACL::Owner
        }
    }

    /// The file system type shown by `findmnt`: `fuse.<subtype>`.
    pub fn fstype(&self) -> String {
        format!("fuse.{}", self.subtype)
    }

    /// Options the kernel's FUSE file system takes in `mount(2)`'s data, besides `fd=` and ids.
    fn kernel_data(&self) -> Vec<String> {
        let mut d = Vec::new();
        // allow_root is enforced by fuser per request; the kernel must let everyone through.
        if self.allow_other || self.allow_root {
            d.push("allow_other".to_string());
        }
        if self.default_permissions {
            d.push("default_permissions".to_string());
        }
        d.extend(self.custom.iter().cloned());
        d
    }

    /// The `-o` string for `fusermount3`.
    fn fusermount_options(&self) -> String {
        let mut o = vec!["ro".to_string(), "nodev".to_string(), "nosuid".to_string()];
        o.push(if self.noexec { "noexec" } else { "exec" }.to_string());
        if self.noatime {
            o.push("noatime".to_string());
        }
        o.push(format!("fsname={}", self.fsname));
        o.push(format!("subtype={}", self.subtype));
        if self.auto_unmount {
            o.push("auto_unmount".to_string());
        }
        o.extend(self.kernel_data());
        o.join(",")
    }
}

/// Check `mountpoint` can be mounted on: a directory, nothing mounted there, empty unless
/// `nonempty`. Returns its canonical path.
pub fn check_mountpoint(mountpoint: &Path, nonempty: bool) -> Result<PathBuf> {
    let shown = mountpoint.display();
    let md = std::fs::metadata(mountpoint).map_err(|e| Error::usage(format!("mount point {shown}: {e}")))?;
    if !md.is_dir() {
        return Err(Error::usage(format!("mount point {shown} is not a directory")));
    }
    let abs = mountpoint.canonicalize().map_err(|e| Error::usage(format!("mount point {shown}: {e}")))?;
    if let Some(e) = mountinfo::current_top_at(&abs).map_err(|e| Error::from_io(mountinfo::PATH, &e))? {
        return Err(Error::usage(format!(
            "mount point {shown} is already in use: {} ({}) is mounted there; unmount it first",
            e.source, e.fstype
        )));
    }
    let mut entries = std::fs::read_dir(&abs).map_err(|e| Error::usage(format!("mount point {shown}: {e}")))?;
    if !nonempty && entries.next().is_some() {
        return Err(Error::usage(format!(
            "mount point {shown} is not empty (its files would be hidden); use -o nonempty to mount over them"
        )));
    }
    Ok(abs)
}

/// A FUSE connection attached to a mount point.
#[derive(Debug)]
pub struct Attached {
    /// The `/dev/fuse` connection (fuser serves it).
    pub fd: OwnedFd,
    /// The canonical mount point.
    pub mountpoint: PathBuf,
    /// The mount's device number, `major:minor`, read right after mounting.
    pub dev: String,
    /// With `auto_unmount`: the socket whose closing tells fusermount3 to unmount.
    _auto_unmount: Option<(UnixStream, std::process::Child)>,
}

/// Mount a new FUSE connection at `mountpoint` (canonical, checked by [`check_mountpoint`]):
/// `mount(2)` as root, `fusermount3` otherwise (or with `auto_unmount`).
pub fn attach(mountpoint: &Path, o: &Options) -> Result<Attached> {
    let root = nix::unistd::geteuid().is_root();
    let (fd, auto) =
        if root && !o.auto_unmount { (mount_direct(mountpoint, o)?, None) } else { mount_fusermount(mountpoint, o)? };
    let dev = mountinfo::current_top_at(mountpoint)
        .ok()
        .flatten()
        .filter(|e| e.fstype == o.fstype())
        .map(|e| e.dev)
        .ok_or_else(|| Error::io(format!("mounted on {} but the mount is not listed", mountpoint.display())))?;
    Ok(Attached { fd, mountpoint: mountpoint.to_path_buf(), dev, _auto_unmount: auto })
}

fn mount_direct(mountpoint: &Path, o: &Options) -> Result<OwnedFd> {
    use nix::mount::MsFlags;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| Error::from_io("/dev/fuse (modprobe fuse?)", &e))?;
    let mut data = vec![
        format!("fd={}", dev.as_raw_fd()),
        "rootmode=40000".to_string(),
        format!("user_id={}", nix::unistd::getuid()),
        format!("group_id={}", nix::unistd::getgid()),
    ];
    data.extend(o.kernel_data());
    let mut flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    if o.noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    if o.noatime {
        flags |= MsFlags::MS_NOATIME;
    }
    nix::mount::mount(
        Some(o.fsname.as_str()),
        mountpoint,
        Some(o.fstype().as_str()),
        flags,
        Some(data.join(",").as_str()),
    )
    .map_err(|e| Error::io(format!("cannot mount on {}: {e}", mountpoint.display())))?;
    Ok(OwnedFd::from(dev))
}

/// Mount through the setuid helper: it opens `/dev/fuse`, mounts, and sends the descriptor
/// back over a socket (`_FUSE_COMMFD`), here the helper's standard input.
fn mount_fusermount(mountpoint: &Path, o: &Options) -> Result<(OwnedFd, Option<(UnixStream, std::process::Child)>)> {
    use std::process::{Command, Stdio};
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::from_io("socketpair", &e))?;
    let child = Command::new("fusermount3")
        .arg("-o")
        .arg(o.fusermount_options())
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", "0")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::from_io("running fusermount3 (apt-get install fuse3)", &e))?;
    let received = receive_fd(&ours);
    let fd = match received {
        Ok(fd) => fd,
        Err(e) => {
            drop(ours);
            let out = child.wait_with_output().map_err(|e| Error::from_io("waiting for fusermount3", &e))?;
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let msg = if msg.is_empty() { e.to_string() } else { msg };
            return Err(Error::io(format!("cannot mount on {}: {msg}", mountpoint.display())));
        }
    };
    if o.auto_unmount {
        // fusermount3 stays, and unmounts once this socket closes (when we exit).
        return Ok((fd, Some((ours, child))));
    }
    drop(ours);
    let mut child = child;
    let _ = child.wait();
    Ok((fd, None))
}

fn receive_fd(sock: &UnixStream) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(v) = c {
            fds.extend(v);
        }
    }
    let mut owned: Vec<OwnedFd> = fds.into_iter().filter(|&fd| fd >= 0).map(crate::sys::adopt_received_fd).collect();
    if owned.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "fusermount3 sent no descriptor"));
    }
    Ok(owned.swap_remove(0))
}

impl Attached {
    /// Whether our connection is still attached to a mount: the kernel marks the `/dev/fuse`
    /// descriptor `POLLERR` once the mount is gone (unmounted, or the connection aborted).
    pub fn connected(&self) -> bool {
        connected(self.fd.as_fd())
    }

    /// Whether the mount on top at our mount point is ours.
    pub fn is_ours_on_top(&self) -> bool {
        self.connected()
            && mountinfo::current_top_at(&self.mountpoint).ok().flatten().is_some_and(|e| e.dev == self.dev)
    }

    /// Unmount lazily (`MNT_DETACH`: open files keep working until closed), but only if the
    /// mount at our mount point is still ours; returns whether it was. As root `umount2(2)`,
    /// otherwise `fusermount3 -u -z`.
    pub fn detach(&self) -> Result<bool> {
        if !self.is_ours_on_top() {
            log::info!(
                "not unmounting {}: the mount there is no longer ours (it was unmounted, or another is on top)",
                self.mountpoint.display()
            );
            return Ok(false);
        }
        if nix::unistd::geteuid().is_root() {
            nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| Error::io(format!("unmounting {}: {e}", self.mountpoint.display())))?;
            return Ok(true);
        }
        let st = std::process::Command::new("fusermount3")
            .args(["-u", "-z", "--"])
            .arg(&self.mountpoint)
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| Error::from_io("running fusermount3", &e))?;
        if !st.success() {
            return Err(Error::io(format!("fusermount3 -u -z {} failed: {st}", self.mountpoint.display())));
        }
        Ok(true)
    }
}

/// Whether a `/dev/fuse` descriptor's connection is alive (no `POLLERR`).
pub fn connected(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut p = [PollFd::new(fd, PollFlags::empty())];
        match poll(&mut p, PollTimeout::ZERO) {
            Ok(0) => return true,
            Ok(_) => return !p[0].revents().is_some_and(|r| r.contains(PollFlags::POLLERR)),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options> {
        Options::parse(&[s.to_string()], Path::new("/nonexistent/src"))
    }

    #[test]
    fn options() {
        let o = parse("allow_other,noexec,nonempty,fsname=x,max_read=4096").unwrap();
        assert!(o.allow_other && o.noexec && o.nonempty && !o.auto_unmount);
        assert_eq!((o.fsname.as_str(), o.fstype()), ("x", "fuse.luksfs".to_string()));
        assert_eq!(o.custom, ["max_read=4096"]);
        assert_eq!(o.kernel_data(), ["allow_other", "max_read=4096"]);
        assert!(o.fusermount_options().starts_with("ro,nodev,nosuid,noexec,fsname=x,subtype=luksfs,"));
        assert_eq!(parse("").unwrap().fsname, "luksfs:/nonexistent/src");
        assert_eq!(parse("allow_root").unwrap().acl(), fuser::SessionACL::RootAndOwner);
        for bad in ["rw", "dev", "suid", "allow_other,allow_root", "subtype="] {
            let e = Options::parse(&[bad.to_string()], Path::new("/s")).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Usage, "{bad}: {e}");
        }
    }

    #[test]
    fn mountpoint_checks() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_mountpoint(d.path(), false).is_ok());
        std::fs::write(d.path().join("f"), b"x").unwrap();
        let e = check_mountpoint(d.path(), false).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        assert!(check_mountpoint(d.path(), true).is_ok());
        let e = check_mountpoint(&d.path().join("f"), true).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = check_mountpoint(Path::new("/proc"), true).unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
    }
}
