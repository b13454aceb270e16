//! Mounting a [`Vfs`]: the fuser `Config` from `-o` options, the `Session` (mount, readahead,
//! transport), and the serve loop that ends when the mount is unmounted or a signal arrives.
//! The command line (`cli::mount`) only parses arguments and builds the [`Vfs`].

use super::vfs::Vfs;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How to mount: everything `cli::mount` parsed that the FUSE layer needs.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The source directory or image (shown in `fsname=luksfs:SOURCE`).
    pub source: PathBuf,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// `-o` options, each possibly comma-separated.
    pub options: Vec<String>,
    /// Worker threads (see `--threads`).
    pub threads: Option<usize>,
    /// Serve through FUSE over io_uring.
    pub io_uring: bool,
    /// Largest kernel readahead per request, in bytes.
    pub max_readahead: u64,
}

/// What `--io-uring` needs and the kernel lacks.
pub const URING_OFF: &str = "--io-uring: this kernel does not offer FUSE over io_uring (it needs Linux 6.14 or \
     later and, as root: echo Y > /sys/module/fuse/parameters/enable_uring)";

/// Refuse `--io-uring` early when the kernel does not offer it.
pub fn check_uring(c: &MountConfig) -> Result<()> {
    if c.io_uring && !super::uring::kernel_enabled() {
        return Err(Error::unsupported(URING_OFF));
    }
    Ok(())
}

/// FUSE configuration from `-o` options.
pub fn fuse_config(c: &MountConfig) -> Result<fuser::Config> {
    use fuser::{MountOption as M, SessionACL};
    let mut cfg = fuser::Config::default();
    let source = c.source.canonicalize().unwrap_or_else(|_| c.source.clone());
    let mut fsname = format!("luksfs:{}", source.display());
    let mut subtype = "luksfs".to_string();
    let mut opts = vec![M::RO, M::NoDev, M::NoSuid];
    for o in c.options.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
        match o {
            "allow_other" => cfg.acl = SessionACL::All,
            "allow_root" => cfg.acl = SessionACL::RootAndOwner,
            "default_permissions" => opts.push(M::DefaultPermissions),
            "auto_unmount" => opts.push(M::AutoUnmount),
            "ro" | "nodev" | "nosuid" => {}
            "noexec" => opts.push(M::NoExec),
            "exec" => opts.push(M::Exec),
            "noatime" => opts.push(M::NoAtime),
            "atime" => opts.push(M::Atime),
            "rw" => return Err(Error::usage("-o rw: luksfs mounts are always read-only")),
            "dev" | "suid" => return Err(Error::usage(format!("-o {o} is not allowed on a luksfs mount"))),
            o if o.starts_with("fsname=") => fsname = o["fsname=".len()..].to_string(),
            o if o.starts_with("subtype=") => subtype = o["subtype=".len()..].to_string(),
            o => opts.push(M::CUSTOM(o.to_string())),
        }
    }
    opts.push(M::FSName(fsname));
    opts.push(M::Subtype(subtype));
    cfg.mount_options = opts;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cfg.n_threads = Some(c.threads.unwrap_or(cores).max(1));
    cfg.clone_fd = true;
    Ok(cfg)
}

/// Largest write the kernel may send (writes are refused). fuser derives the largest request,
/// reads included, from max(max_write, max_readahead), and the kernel offers only 128 KiB of
/// readahead at `INIT`: so this is what lets reads reach `--max-readahead` (1 MiB requests).
pub fn max_write(c: &MountConfig) -> u32 {
    u32::try_from(c.max_readahead).unwrap_or(u32::MAX).max(128 * 1024)
}

/// A mount being served in background threads.
pub struct Mounted {
    session: fuser::BackgroundSession,
    mountpoint: PathBuf,
    stop: Arc<AtomicBool>,
    /// How requests travel: `/dev/fuse` or io_uring.
    pub transport: String,
}

/// Mount `vfs` as `c` says and start serving it. SIGINT, SIGTERM and SIGHUP are caught from
/// here on: [`Mounted::serve_until_unmounted`] unmounts on them.
pub fn start(vfs: Arc<Vfs>, c: &MountConfig) -> Result<Mounted> {
    let cfg = fuse_config(c)?;
    let readahead = u32::try_from(c.max_readahead).unwrap_or(u32::MAX);
    check_uring(c)?;
    let fs = super::fs::LuksFs::new(vfs.clone(), readahead, max_write(c), c.io_uring);
    let granted = fs.uring_granted();

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| Error::from_io("installing signal handlers", &e))?;
    }
    // Resolved before mounting: afterwards resolving it would be a request to ourselves.
    let mnt_abs = c.mountpoint.canonicalize().unwrap_or_else(|_| c.mountpoint.clone());
    let session = fuser::Session::new(fs, &c.mountpoint, &cfg)
        .map_err(|e| Error::io(format!("cannot mount on {}: {e}", c.mountpoint.display())))?;
    if let Err(e) = super::bdi::set_read_ahead(&mnt_abs, c.max_readahead) {
        // Needs root; the mount works without it, with 128 KiB requests. Done before serving:
        // a file keeps the readahead it was opened with.
        log::info!("could not raise the mount's readahead to {} KiB: {e}", c.max_readahead / 1024);
    }
    let transport = if c.io_uring { start_uring(&session, &granted, vfs, c)? } else { "/dev/fuse".to_string() };
    let session =
        session.spawn().map_err(|e| Error::io(format!("cannot start serving {}: {e}", c.mountpoint.display())))?;
    Ok(Mounted { session, mountpoint: c.mountpoint.clone(), stop, transport })
}

impl Mounted {
    /// Serve until the mount is unmounted (`fusermount3 -u`) or a signal asks to stop; on a
    /// signal, unmount.
    pub fn serve_until_unmounted(self) -> Result<()> {
        let Mounted { session, mountpoint, stop, .. } = self;
        while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if session.guard.is_finished() {
            log::info!("{} was unmounted", mountpoint.display());
            let _ = session.join();
            Ok(())
        } else {
            log::info!("signal received: unmounting {}", mountpoint.display());
            unmount_on_signal(session, &mountpoint)
        }
    }
}

/// Serve `session` through per-CPU io_uring queues, if its `INIT` granted them; returns how.
fn start_uring<FS: fuser::Filesystem>(
    session: &fuser::Session<FS>,
    granted: &AtomicBool,
    vfs: Arc<Vfs>,
    c: &MountConfig,
) -> Result<String> {
    use std::os::fd::AsFd;
    if !granted.load(Ordering::SeqCst) {
        return Err(Error::unsupported(URING_OFF));
    }
    let dev = session.as_fd().try_clone_to_owned().map_err(|e| Error::from_io("duplicating /dev/fuse", &e))?;
    let per_cpu = c.threads.unwrap_or(4).max(1);
    // Each entry's payload buffer holds the largest request: max(max_write, max_pages * 4 KiB),
    // and max_pages follows max_write (see `max_write`).
    let payload = (max_write(c) as usize).max(8192).next_multiple_of(4096);
    super::uring::start(dev, vfs, per_cpu, payload)
        .map_err(|e| Error::unsupported(format!("--io-uring: FUSE over io_uring could not start: {e}")))?;
    Ok(format!("io_uring, {per_cpu} worker(s) per CPU queue"))
}

/// Unmount after SIGINT/SIGTERM. A plain unmount fails with EBUSY while a file is open, which
/// would leave a dead mount behind: detach lazily instead (the mount disappears from the
/// namespace at once; readers still holding a file get errors once we exit), give the session
/// a moment to end, and exit.
fn unmount_on_signal(session: fuser::BackgroundSession, mountpoint: &Path) -> Result<()> {
    let lazy = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg("--")
        .arg(mountpoint)
        .stdin(std::process::Stdio::null())
        .status();
    match lazy {
        Ok(st) if st.success() => {
            for _ in 0..20 {
                if session.guard.is_finished() {
                    let _ = session.join();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        _ => session.umount_and_join().map_err(|e| Error::io(format!("unmounting {}: {e}", mountpoint.display()))),
    }
}
