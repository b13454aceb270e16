//! `luksfs mount SOURCE MOUNTPOINT`: scan the source, start unlocking, serve it over FUSE in the
//! foreground or (`--daemon`) in a child that tells its parent when the mount is ready.

use super::MountArgs;
use crate::cache::DEFAULT_CACHE_BYTES;
use crate::catalog::Location;
use crate::cli::source_keys::{Given, Shown, source_keys};
use crate::dir::Tree;
use crate::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const DAEMON_ENV: &str = "LUKSFS_DAEMON_CHILD";

pub(super) const DAEMON_KEY_ENV: &str = "LUKSFS_KEY_ON_STDIN";

pub(super) fn mount(a: MountArgs) -> Result<i32> {
    if a.daemon && std::env::var_os(DAEMON_ENV).is_none() {
        return daemonize(&a);
    }
    crate::fuse::mount::preflight(&a.mount_config())?;
    let location = match Location::parse(a.source.as_os_str(), a.key.os_cloud.as_deref())? {
        Location::Local(p) => {
            Location::Local(p.canonicalize().map_err(|e| Error::from_io(format!("source {}", a.source.display()), &e))?)
        }
        remote => remote,
    };
    let source = PathBuf::from(location.describe());
    if a.image.header.is_some() && location.local().is_none_or(Path::is_dir) {
        return Err(Error::usage(
            "--header needs a single image as SOURCE; use keytab header= options for a directory",
        ));
    }
    let settings = a.key.settings()?;
    let described = source.display().to_string();
    let given = Given { key: &a.key, keytab: a.keytab.as_deref(), barbican_secret: None, source: &described };
    let shown = Shown { options: a.image.options(), all_volumes: a.all_volumes, verify: false };
    let (plan, unlocker) = source_keys(given, shown, settings)?;
    let t0 = Instant::now();
    let tree = Arc::new(Tree::scan(&location, &plan)?);
    log::info!("found {} images under {} in {:?}", tree.images.len(), source.display(), t0.elapsed());
    let unlocker = Arc::new(unlocker);
    let cfg = a.mount_config();
    let vfs = Arc::new(crate::fuse::vfs::Vfs::new(
        tree.clone(),
        unlocker.clone(),
        a.cache_size.max(DEFAULT_CACHE_BYTES / 64),
    ));
    let mount_point = a.mountpoint.canonicalize().unwrap_or_else(|_| a.mountpoint.clone());
    let mounted = crate::fuse::mount::start(vfs.clone(), &cfg)?;
    // Answers `luksfs status` / `list` until dropped (on every way out of this function).
    let _status = crate::status::serve(
        vfs,
        crate::status::report::MountFacts {
            mount_point: mount_point.display().to_string(),
            source: source.display().to_string(),
            dev: mounted.dev().to_string(),
            pid: std::process::id(),
            uid: nix::unistd::geteuid().as_raw(),
            transport: mounted.transport.clone(),
            uptime_seconds: 0,
        },
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    unlocker.spawn_background(&tree, cores);
    log::info!(
        "mounted {} on {} in {:?} ({})",
        source.display(),
        a.mountpoint.display(),
        t0.elapsed(),
        mounted.transport
    );
    let daemon_child = std::env::var_os(DAEMON_ENV).is_some();
    if (daemon_child || crate::readiness::systemd_waits()) && a.wait_keys > 0 {
        let summary = crate::readiness::wait_for_keys(&tree, Duration::from_secs(a.wait_keys));
        eprintln!("luksfs: {}: {}", a.mountpoint.display(), summary.line());
        if let Some(code) = summary.nothing_unlocked() {
            eprintln!("luksfs: no image could be unlocked: unmounting {}", a.mountpoint.display());
            crate::readiness::notify(&format!("STATUS=no image could be unlocked\nERRNO={}", libc::EACCES));
            mounted.stop()?;
            return Ok(code);
        }
        crate::readiness::notify(&format!("READY=1\nSTATUS={}", summary.line()));
    } else {
        crate::readiness::notify("READY=1");
    }
    if daemon_child {
        tell_parent_ready();
    }
    mounted.serve_until_unmounted()?;
    Ok(0)
}

/// What a `--daemon` child writes on its standard error once mounted: the parent stops relaying
/// there and exits 0. Errors and this line travel through the same pipe, so every error printed
/// before it reaches the parent before the parent returns.
const READY_LINE: &str = "\u{1}luksfs-daemon-ready";

/// `--daemon` child: tell the waiting parent we are ready, then let go of the inherited
/// standard error (the parent is gone; later messages go to `--log-file` or nowhere).
fn tell_parent_ready() {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{READY_LINE}").and_then(|()| err.flush());
    drop(err);
    crate::logging::detach();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// `--daemon`: run the mount in a detached child and return once it reports ready.
///
/// The child runs in its own process group with stdin/stdout/stderr not tied to the caller: its
/// log goes to `--log-file` (or nowhere). Until it is ready, its stderr is relayed here, read to
/// the ready line or to its end (the child exited: every start-up error has been printed), and
/// its exit code becomes ours.
fn daemonize(a: &MountArgs) -> Result<i32> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| Error::from_io("locating the luksfs binary", &e))?;
    // Prompt here, where the terminal is, and hand the passphrase to the child on its stdin.
    let prompted = if a.key.key_file.is_none() && std::io::stdin().is_terminal() {
        a.key.default_key(&format!("the images in {}", a.source.display()))?
    } else {
        None
    };
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(if prompted.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if prompted.is_some() {
        cmd.env(DAEMON_KEY_ENV, "1");
    }
    let mut child = cmd.spawn().map_err(|e| Error::from_io("starting the daemon", &e))?;
    if let (Some(key), Some(mut stdin)) = (prompted, child.stdin.take()) {
        stdin.write_all(key.as_bytes()).map_err(|e| Error::from_io("passing the key to the daemon", &e))?;
    }
    let err = child.stderr.take().ok_or_else(|| Error::io("daemon has no stderr"))?;
    let mut lines = std::io::BufReader::new(err).split(b'\n');
    let mut stderr = std::io::stderr().lock();
    while let Some(Ok(line)) = lines.next() {
        if line == READY_LINE.as_bytes() {
            return Ok(0);
        }
        let _ = stderr.write_all(&line).and_then(|()| stderr.write_all(b"\n"));
    }
    let _ = stderr.flush();
    let status = child.wait().map_err(|e| Error::from_io("waiting for the daemon", &e))?;
    Ok(status.code().unwrap_or(1).max(1))
}
