//! Telling whoever waits for a mount how it went: after mounting, wait (bounded) for the keys
//! to be tried and sum it up in one line (N images, M unlocked, K failed with reasons), and
//! tell systemd through its notification socket (`READY=1` once mounted and keys tried,
//! `STOPPING=1` on the way out; `Type=notify` units).
//!
//! The notification protocol is a datagram with `KEY=VALUE` lines sent to the Unix socket named
//! by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket): a few lines, no crate.

use crate::dir::Tree;
use crate::status::state::State;
use crate::{Error, ErrorKind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the keys went, once tried (or once the wait ran out).
#[derive(Debug, Default)]
pub struct Summary {
    /// Images found.
    pub images: usize,
    /// Images unlocked.
    pub unlocked: usize,
    /// Images that failed, with why (source-relative path).
    pub failed: Vec<(PathBuf, Error)>,
    /// Images still being unlocked when the wait ran out.
    pub pending: usize,
}

/// Wait up to `limit` for every image of `tree` to be unlocked or to fail (an image's state as
/// [`crate::status::state::image_state`] tells it).
pub fn wait_for_keys(tree: &Tree, limit: Duration) -> Summary {
    let t0 = Instant::now();
    loop {
        let mut s = Summary { images: tree.images.len(), ..Summary::default() };
        for e in &tree.images {
            match crate::status::state::image_state(e) {
                State::Locked => s.pending += 1,
                State::Failed(err) => s.failed.push((e.rel().to_path_buf(), err)),
                State::Unlocked | State::NotEncrypted => s.unlocked += 1,
            }
        }
        if s.pending == 0 || t0.elapsed() >= limit {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Summary {
    /// One line: `3 images, 2 unlocked, 1 failed (b.luks: wrong key ...)`.
    pub fn line(&self) -> String {
        let plural = if self.images == 1 { "" } else { "s" };
        let mut l = format!("{} image{plural}, {} unlocked, {} failed", self.images, self.unlocked, self.failed.len());
        if self.pending > 0 {
            l.push_str(&format!(", {} still unlocking", self.pending));
        }
        const SHOWN: usize = 3;
        if !self.failed.is_empty() {
            let reasons: Vec<String> = self
                .failed
                .iter()
                .take(SHOWN)
                .map(|(p, e)| format!("{}: {} ({})", p.display(), e.message(), e.kind().name()))
                .collect();
            l.push_str(&format!(": {}", reasons.join("; ")));
            if self.failed.len() > SHOWN {
                l.push_str(&format!("; and {} more (see -v)", self.failed.len() - SHOWN));
            }
        }
        l
    }

    /// The exit code when nothing at all could be unlocked (every image failed): the class of
    /// the first failure (3 for a wrong key). `None` otherwise.
    pub fn nothing_unlocked(&self) -> Option<i32> {
        if self.images == 0 || self.unlocked > 0 || self.pending > 0 {
            return None;
        }
        Some(self.failed.first().map_or(ErrorKind::BadKey, |(_, e)| e.kind()).exit_code())
    }
}

/// Whether systemd asked for notifications (`$NOTIFY_SOCKET`).
pub fn systemd_waits() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Send `state` (`READY=1`, `STOPPING=1`, `STATUS=...`, newline-separated) to systemd; false
/// when not under systemd or the socket refused it.
pub fn notify(state: &str) -> bool {
    let Some(name) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    match notify_to(&name, state) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("cannot notify systemd ({}): {e}", name.to_string_lossy());
            false
        }
    }
}

/// Send `state` to the notification socket `name` (a path, or `@name` for an abstract socket).
pub fn notify_to(name: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match name.as_encoded_bytes().strip_prefix(b"@") {
        Some(abs) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abs)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(name))?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let s = Summary {
            images: 5,
            unlocked: 1,
            failed: vec![
                ("a".into(), Error::bad_key("no key slot opened")),
                ("b".into(), Error::corrupt("bad magic")),
                ("c".into(), Error::bad_key("x")),
                ("d".into(), Error::bad_key("y")),
            ],
            pending: 0,
        };
        assert_eq!(
            s.line(),
            "5 images, 1 unlocked, 4 failed: a: no key slot opened (bad-key); b: bad magic (corrupt); c: x \
             (bad-key); and 1 more (see -v)"
        );
        assert_eq!(s.nothing_unlocked(), None);
        let none = Summary { images: 2, unlocked: 0, failed: s.failed[..2].to_vec(), pending: 0 };
        assert_eq!(none.nothing_unlocked(), Some(3));
        assert_eq!(Summary::default().nothing_unlocked(), None, "an empty source is not a failure");
        let waiting = Summary { images: 1, pending: 1, ..Summary::default() };
        assert_eq!(waiting.line(), "1 image, 0 unlocked, 0 failed, 1 still unlocking");
    }

    #[test]
    fn notify_reaches_path_and_abstract_sockets() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let sock = UnixDatagram::bind(&p).unwrap();
        notify_to(p.as_os_str(), "READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        let name = format!("luksfs-test-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify_to(d.path().join("nobody").as_os_str(), "READY=1").is_err());
    }
}
