//! The status socket: a Unix stream socket on which a mount's daemon answers `luksfs status` and
//! `luksfs list` with its [`Report`] as one JSON document, then closes the connection.
//!
//! Where: `/run/luksfs/` for mounts made by root; for other users `/run/user/<uid>/luksfs/`
//! (their `$XDG_RUNTIME_DIR` under systemd-logind) when `/run/user/<uid>` exists, else
//! `/tmp/luksfs-<uid>/`. The folder is made mode 0700 and must be owned by the daemon's user
//! (an existing one that is not, or is open to others, is refused: the mount then runs without a
//! status socket); the socket is mode 0600. Its name is the mount's device number, `0-52.sock`
//! for `0:52`: clients find it from `/proc/self/mountinfo` (device number and `user_id=` of the
//! mount at the path). A socket left by a daemon that died answers nothing (connection refused)
//! and is replaced by the next mount with that number; a report whose device number is not the
//! mount's is refused. Besides the file modes, the daemon checks each caller's user id
//! (`SO_PEERCRED`): only root and the mounting user are answered. The daemon removes its socket
//! on exit.

use super::report::Report;
use crate::fuse::mountinfo::Entry;
use crate::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest report a client accepts.
const MAX_REPORT: u64 = 16 << 20;

/// The folders where daemons of `uid` put their sockets, in the order tried.
pub fn dirs_for(uid: u32) -> Vec<PathBuf> {
    if uid == 0 {
        return vec![PathBuf::from("/run/luksfs")];
    }
    let mut dirs = Vec::new();
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if run_user.is_dir() {
        dirs.push(run_user.join("luksfs"));
    }
    dirs.push(PathBuf::from(format!("/tmp/luksfs-{uid}")));
    dirs
}

/// The socket's file name for the mount with device number `dev` (`major:minor`).
pub fn socket_name(dev: &str) -> String {
    format!("{}.sock", dev.replace(':', "-"))
}

/// Make `dir` (mode 0700) or check an existing one: a real folder owned by `uid`, closed to
/// everyone else.
fn prepare_dir(dir: &Path, uid: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::from_io(format!("creating {}", dir.display()), &e)),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| Error::from_io(format!("checking {}", dir.display()), &e))?;
    if !md.is_dir() || md.uid() != uid || md.mode() & 0o077 != 0 {
        return Err(Error::io(format!(
            "{} is not a folder of user {uid} closed to others (mode {:o}, owner {}): not using it",
            dir.display(),
            md.mode() & 0o7777,
            md.uid()
        )));
    }
    Ok(())
}

/// A listening status socket; removed when dropped.
pub struct Server {
    path: PathBuf,
    /// Device and inode of the socket file we made: we remove only that one.
    id: (u64, u64),
}

/// Builds the report on each request.
pub type ReportFn = Box<dyn Fn() -> Report + Send + 'static>;

impl Server {
    /// Listen for the mount with device number `dev`, in the first usable folder of
    /// [`dirs_for`] the daemon's user.
    pub fn start(dev: &str, report: ReportFn) -> Result<Server> {
        let uid = nix::unistd::geteuid().as_raw();
        let mut last = Error::io("no folder for the status socket");
        for dir in dirs_for(uid) {
            match prepare_dir(&dir, uid) {
                Ok(()) => return Server::bind_in(&dir, dev, uid, report),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Listen in `dir` (already checked), answering root and `owner` only.
    pub fn bind_in(dir: &Path, dev: &str, owner: u32, report: ReportFn) -> Result<Server> {
        let path = dir.join(socket_name(dev));
        // A file left there belongs to a mount with our device number that is gone.
        match std::fs::remove_file(&path) {
            Ok(()) => log::info!("removed a stale status socket {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from_io(format!("removing {}", path.display()), &e)),
        }
        let listener =
            UnixListener::bind(&path).map_err(|e| Error::from_io(format!("listening on {}", path.display()), &e))?;
        let md = std::fs::symlink_metadata(&path).map_err(|e| Error::from_io(format!("{}", path.display()), &e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::from_io(format!("chmod {}", path.display()), &e))?;
        std::thread::Builder::new()
            .name("status".into())
            .spawn(move || serve(listener, owner, report))
            .map_err(|e| Error::from_io("starting the status thread", &e))?;
        Ok(Server { path, id: (md.dev(), md.ino()) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Whether a caller running as `peer` may read the status of a mount made by `owner`.
pub fn allowed(peer: u32, owner: u32) -> bool {
    peer == 0 || peer == owner
}

fn serve(listener: UnixListener, owner: u32, report: ReportFn) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_write_timeout(Some(TIMEOUT));
        let peer = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials);
        let body = match peer {
            Ok(c) if allowed(c.uid(), owner) => serde_json::to_string(&report()),
            Ok(c) => {
                log::info!("status refused to uid {} (pid {})", c.uid(), c.pid());
                let msg = format!("permission denied: only root and uid {owner} may read this mount's status");
                serde_json::to_string(&serde_json::json!({ "error": msg }))
            }
            Err(e) => {
                log::warn!("status: cannot identify the caller: {e}");
                continue;
            }
        };
        if let Ok(body) = body {
            let _ = conn.write_all(body.as_bytes()).and_then(|()| conn.write_all(b"\n"));
        }
    }
}

/// Ask the daemon of the mount `entry` (a line of `/proc/self/mountinfo`) for its report.
pub fn query(entry: &Entry) -> Result<Report> {
    let me = nix::unistd::geteuid().as_raw();
    let dirs = match entry.fuse_user() {
        Some(uid) => dirs_for(uid),
        None => [dirs_for(me), dirs_for(0)].concat(),
    };
    let name = socket_name(&entry.dev);
    let mut why = format!("no status socket {name} in {}", join(&dirs));
    for dir in &dirs {
        let path = dir.join(&name);
        match UnixStream::connect(&path) {
            Ok(s) => return read_report(s, &path, entry),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                why = format!(
                    "permission denied: {} is for root and the user who mounted it (uid {})",
                    path.display(),
                    entry.fuse_user().map_or("?".into(), |u| u.to_string())
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                why = format!("nothing answers on {} (a daemon that is gone left it)", path.display());
            }
            Err(e) => why = format!("{}: {e}", path.display()),
        }
    }
    Err(Error::io(format!("{}: the daemon does not answer: {why}", entry.mount_point)))
}

fn join(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
}

fn read_report(mut s: UnixStream, path: &Path, entry: &Entry) -> Result<Report> {
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let mut text = String::new();
    (&mut s)
        .take(MAX_REPORT)
        .read_to_string(&mut text)
        .map_err(|e| Error::from_io(format!("reading {}", path.display()), &e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::io(format!("{}: not a status report: {e}", path.display())))?;
    if let Some(msg) = v.get("error").and_then(|m| m.as_str()) {
        return Err(Error::io(format!("{}: {msg}", entry.mount_point)));
    }
    let r: Report =
        serde_json::from_value(v).map_err(|e| Error::io(format!("{}: not a status report: {e}", path.display())))?;
    if r.mount.dev != entry.dev {
        return Err(Error::io(format!(
            "{}: {} answers for device {}, not this mount's {}: ignoring it",
            entry.mount_point,
            path.display(),
            r.mount.dev,
            entry.dev
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::{CacheReport, MountFacts, SCHEMA_VERSION, Totals};

    fn report(dev: &str) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            mount: MountFacts {
                mount_point: "/m".into(),
                source: "/s".into(),
                dev: dev.into(),
                pid: std::process::id(),
                uid: 0,
                transport: "/dev/fuse".into(),
                uptime_seconds: 0,
            },
            totals: Totals::default(),
            images: Vec::new(),
            cache: CacheReport { hits: 0, misses: 0, hit_rate: None, direct_reads: 0, bytes: 0, capacity: 1 },
        }
    }

    fn entry(dev: &str, uid: u32, dir: &Path) -> (Entry, PathBuf) {
        let e = Entry {
            id: 1,
            dev: dev.into(),
            mount_point: "/m".into(),
            fstype: "fuse.luksfs".into(),
            source: "luksfs:/s".into(),
            super_options: format!("rw,user_id={uid}"),
        };
        (e, dir.join(socket_name(dev)))
    }

    fn ask(path: &Path, e: &Entry) -> Result<Report> {
        read_report(UnixStream::connect(path).unwrap(), path, e)
    }

    #[test]
    fn answers_the_owner_and_removes_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let (e, path) = entry("0:99", me, dir.path());
        std::fs::write(&path, b"stale").unwrap();
        let srv = Server::bind_in(dir.path(), "0:99", me, Box::new(|| report("0:99"))).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(ask(&path, &e).unwrap().mount.dev, "0:99");
        drop(srv);
        assert!(!path.exists());
    }

    #[test]
    fn refuses_other_users_by_peer_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // A daemon of another user: we are refused unless we are root.
        let owner = if me == 0 { 0 } else { me + 1 };
        let (e, path) = entry("0:98", owner, dir.path());
        let _srv = Server::bind_in(dir.path(), "0:98", owner, Box::new(|| report("0:98"))).unwrap();
        assert!(allowed(0, 1000) && allowed(1000, 1000) && !allowed(1001, 1000));
        if me != 0 {
            let err = ask(&path, &e).unwrap_err();
            assert!(err.message().contains("permission denied"), "{err}");
            return;
        }
        // As root (always answered): open the modes, so that only the credential check stands
        // between user 65534 and the report, and ask as that user.
        assert_eq!(ask(&path, &e).unwrap().mount.dev, "0:98");
        let _srv = Server::bind_in(dir.path(), "0:96", 4242, Box::new(|| report("0:96"))).unwrap();
        let path = dir.path().join(socket_name("0:96"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "status::socket::tests::peer_client_helper", "--nocapture", "--test-threads", "1"])
            .env(PEER_CLIENT, &path)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("permission denied: only root and uid 4242"), "{text}");
        assert!(!text.contains("schema_version"), "{text}");
    }

    /// Where [`peer_client_helper`] connects (set by the test that runs it as another user).
    const PEER_CLIENT: &str = "LUKSFS_TEST_PEER_CLIENT";

    /// Not a test of its own: run by `refuses_other_users_by_peer_credentials` (this test binary,
    /// as user 65534) to connect and print what the daemon says.
    #[test]
    fn peer_client_helper() {
        let Some(p) = std::env::var_os(PEER_CLIENT) else { return };
        let mut s = UnixStream::connect(p).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        println!("answer: {text}");
    }

    #[test]
    fn refuses_a_report_for_another_mount() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let (e, path) = entry("0:97", me, dir.path());
        let _srv = Server::bind_in(dir.path(), "0:97", me, Box::new(|| report("0:5"))).unwrap();
        let err = ask(&path, &e).unwrap_err();
        assert!(err.message().contains("not this mount's 0:97"), "{err}");
    }

    #[test]
    fn unsafe_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(prepare_dir(&open, me).is_err());
        let fresh = dir.path().join("fresh");
        prepare_dir(&fresh, me).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
        assert!(prepare_dir(&fresh, me + 1).is_err());
    }
}
