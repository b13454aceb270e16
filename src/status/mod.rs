//! The status of running mounts: what each daemon tells about its images over a local socket
//! (`luksfs status`, `luksfs list`) and in the `user.luksfs.*` extended attributes of its files.
//!
//! * [`state`]: format, cipher and unlock state of an image or a volume, in words.
//! * [`report`]: the status report (built by the daemon, JSON on the wire, text for people).
//! * [`socket`]: where the socket lives, who may use it, serving and asking.
//! * [`cmd`]: the `list` and `status` commands.
//! * [`serve`]: what a mount starts.

pub mod cmd;
pub mod report;
pub mod socket;
pub mod state;

use crate::fuse::vfs::Vfs;
use report::MountFacts;
use std::sync::Arc;
use std::time::Instant;

/// Serve the status of the mount of `vfs` (device number `facts.dev`) until the returned server
/// is dropped; `None` (after a warning) when no socket could be made: the mount works without.
pub fn serve(vfs: Arc<Vfs>, facts: MountFacts) -> Option<socket::Server> {
    let t0 = Instant::now();
    let dev = facts.dev.clone();
    let report = move || {
        let mut f = facts.clone();
        f.uptime_seconds = t0.elapsed().as_secs();
        report::build(f, vfs.tree(), vfs.cache_stats())
    };
    match socket::Server::start(&dev, Box::new(report)) {
        Ok(s) => {
            log::info!("status socket: {}", s.path().display());
            Some(s)
        }
        Err(e) => {
            log::warn!("no status socket (luksfs status will not answer): {e}");
            None
        }
    }
}
