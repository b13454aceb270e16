//! Mounting a [`Vfs`]: checks, the mount itself ([`super::attach`]), the fuser `Session` over
//! its descriptor (readahead, transport), and the serve loop that ends when the mount is
//! unmounted or a signal arrives.
//! The command line (`cli::mount`) only parses arguments and builds the [`Vfs`].

use super::attach::{Attached, Options, attach, check_mountpoint};
use super::vfs::Vfs;
use crate::{Error, Result};
use std::path::PathBuf;
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

/// fuser's session configuration (threads, access rule); mounting itself is done by [`attach`].
pub fn fuse_config(c: &MountConfig, o: &Options) -> fuser::Config {
    let mut cfg = fuser::Config::default();
    cfg.acl = o.acl();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cfg.n_threads = Some(c.threads.unwrap_or(cores).max(1));
    cfg.clone_fd = true;
    cfg
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
    attached: Attached,
    stop: Arc<AtomicBool>,
    /// How requests travel: `/dev/fuse` or io_uring.
    pub transport: String,
}

/// Every check [`start`] makes before mounting (options, io_uring, mount point), so that a
/// command line can fail before it asks for keys or scans the source.
pub fn preflight(c: &MountConfig) -> Result<()> {
    let o = Options::parse(&c.options, &c.source)?;
    check_uring(c)?;
    check_mountpoint(&c.mountpoint, o.nonempty)?;
    Ok(())
}

/// Check the mount point and options, then mount `vfs` as `c` says and start serving it.
/// SIGINT, SIGTERM and SIGHUP are caught from here on: [`Mounted::serve_until_unmounted`]
/// unmounts on them.
pub fn start(vfs: Arc<Vfs>, c: &MountConfig) -> Result<Mounted> {
    let o = Options::parse(&c.options, &c.source)?;
    check_uring(c)?;
    let mnt_abs = check_mountpoint(&c.mountpoint, o.nonempty)?;
    let cfg = fuse_config(c, &o);
    let readahead = u32::try_from(c.max_readahead).unwrap_or(u32::MAX);
    let fs = super::fs::LuksFs::new(vfs.clone(), readahead, max_write(c), c.io_uring);
    let granted = fs.uring_granted();

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| Error::from_io("installing signal handlers", &e))?;
    }
    let attached = attach(&mnt_abs, &o)?;
    let fd = attached.fd.try_clone().map_err(|e| Error::from_io("duplicating /dev/fuse", &e))?;
    let session = match fuser::Session::from_fd(fs, fd, o.acl(), cfg) {
        Ok(s) => s,
        Err(e) => {
            let _ = attached.detach();
            return Err(Error::io(format!("cannot start FUSE on {}: {e}", c.mountpoint.display())));
        }
    };
    drop_cached_pages_of_revoked(&vfs, session.notifier());
    if let Err(e) = super::bdi::set_read_ahead_dev(&attached.dev, c.max_readahead) {
        // Needs root; the mount works without it, with 128 KiB requests. Done before serving:
        // a file keeps the readahead it was opened with.
        log::info!("could not raise the mount's readahead to {} KiB: {e}", c.max_readahead / 1024);
    }
    let transport = if c.io_uring {
        match start_uring(&session, &granted, vfs, c) {
            Ok(t) => t,
            Err(e) => {
                let _ = attached.detach();
                return Err(e);
            }
        }
    } else {
        "/dev/fuse".to_string()
    };
    let session = match session.spawn() {
        Ok(s) => s,
        Err(e) => {
            let _ = attached.detach();
            return Err(Error::io(format!("cannot start serving {}: {e}", c.mountpoint.display())));
        }
    };
    Ok(Mounted { session, attached, stop, transport })
}

/// A volume refused after it was shown (an LV whose PV copies turn out to differ) must not be
/// read from the kernel's page cache either (files are opened with `FOPEN_KEEP_CACHE`): its
/// pages are invalidated. On a thread of its own, as a request being served may be what revealed
/// the refusal, and the kernel may wait for it before dropping the pages.
fn drop_cached_pages_of_revoked(vfs: &Vfs, notifier: fuser::Notifier) {
    vfs.tree().on_revoke(move |inos| {
        let notifier = notifier.clone();
        let spawned = std::thread::Builder::new().name("inval".into()).spawn(move || {
            for ino in inos {
                match notifier.inval_inode(fuser::INodeNo(ino), 0, 0) {
                    Ok(()) => log::debug!("inode {ino}: cached pages dropped"),
                    Err(e) => log::warn!("inode {ino}: the kernel's cached pages could not be dropped: {e}"),
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a thread to drop the cached pages of refused volumes: {e}");
        }
    });
}

impl Mounted {
    /// Unmount (if the mount is still ours) and stop serving.
    pub fn stop(self) -> Result<()> {
        let Mounted { session, attached, .. } = self;
        attached.detach()?;
        for _ in 0..50 {
            if session.guard.is_finished() {
                let _ = session.join();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The mount's device number (`major:minor`).
    pub fn dev(&self) -> &str {
        &self.attached.dev
    }

    /// Serve until the mount is unmounted (`fusermount3 -u`) or a signal asks to stop; on a
    /// signal, unmount — only if the mount at the mount point is still ours.
    pub fn serve_until_unmounted(self) -> Result<()> {
        let Mounted { session, attached, stop, .. } = self;
        let shown = attached.mountpoint.display().to_string();
        while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
        }
        crate::readiness::notify("STOPPING=1");
        if session.guard.is_finished() {
            log::info!("{shown} was unmounted");
            let _ = session.join();
            return Ok(());
        }
        log::info!("signal received: unmounting {shown}");
        // Lazily: a plain unmount fails with EBUSY while a file is open, which would leave a
        // dead mount behind. The mount disappears from the namespace at once; readers still
        // holding a file get errors once we exit. Give the session a moment to end, and exit.
        attached.detach()?;
        for _ in 0..20 {
            if session.guard.is_finished() {
                let _ = session.join();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
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
