//! The status report of a running mount (`luksfs status`): the mount, each image (format,
//! unlock state and why it failed, size, nested volumes, bytes read) and the block cache. Built
//! by the daemon from its tree, sent as JSON over the status socket, and rendered as text by
//! the client. Schema: `docs/schema/status.schema.json`.

use crate::cache::CacheStats;
use crate::dir::{ImageEntry, Tree};
use crate::status::state::{State, image_encryption, image_state};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub use crate::schema::SCHEMA_VERSION;

/// The whole report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub mount: MountFacts,
    /// Counts over `images`.
    pub totals: Totals,
    pub images: Vec<ImageReport>,
    pub cache: CacheReport,
}

/// What the daemon knows about its own mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountFacts {
    /// The mount point, as given (canonical).
    pub mount_point: String,
    /// The source directory or image (canonical).
    pub source: String,
    /// The mount's device number `major:minor` (as `/proc/self/mountinfo` shows it).
    pub dev: String,
    /// Process id of the daemon.
    pub pid: u32,
    /// User id the daemon runs as.
    pub uid: u32,
    /// How FUSE requests travel: `/dev/fuse` or io_uring.
    pub transport: String,
    /// Seconds since the mount was made.
    pub uptime_seconds: u64,
}

/// Counts of images by state.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub images: usize,
    pub unlocked: usize,
    pub locked: usize,
    pub failed: usize,
}

/// One image of the mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageReport {
    /// Path relative to the source (as in a keytab).
    pub path: String,
    /// The image file (absolute).
    pub source: String,
    /// Encryption format of its (first) encrypted volume, `LUKS1`, `LUKS2` or `qcow2`; else
    /// what the image holds (`GPT`, ...).
    pub format: Option<String>,
    /// Cipher of its (first) encrypted volume, cryptsetup notation.
    pub cipher: Option<String>,
    /// `unlocked`, `locked` (key not tried yet) or `failed`.
    pub state: String,
    /// Why it failed (`state` is `failed`).
    pub reason: Option<Reason>,
    /// Bytes of its top view (`<name>.raw`), when it has one.
    pub size: Option<u64>,
    /// Names of the volumes found inside it (shown in `<name>.d/`), so far.
    pub volumes: Vec<String>,
    /// Plaintext bytes served through FUSE reads since the mount (page-cache hits not counted).
    pub bytes_read: u64,
}

/// A failure: its class (the exit-code words: `bad-key`, `corrupt`, ...) and message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reason {
    pub class: String,
    pub message: String,
}

/// The decrypted-block cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheReport {
    /// Block lookups answered from the cache.
    pub hits: u64,
    /// Block lookups that had to decrypt.
    pub misses: u64,
    /// `hits / (hits + misses)`, `null` before the first lookup.
    pub hit_rate: Option<f64>,
    /// Reads of a page or more, decrypted straight into the reply (never cached).
    pub direct_reads: u64,
    /// Bytes cached now.
    pub bytes: u64,
    /// Bytes the cache may hold.
    pub capacity: u64,
}

impl From<CacheStats> for CacheReport {
    fn from(s: CacheStats) -> Self {
        CacheReport {
            hits: s.hits,
            misses: s.misses,
            hit_rate: s.hit_rate(),
            direct_reads: s.direct_reads,
            bytes: s.bytes,
            capacity: s.capacity,
        }
    }
}

/// The report of one image.
pub fn image_report(e: &ImageEntry) -> ImageReport {
    let state = image_state(e);
    let enc = image_encryption(&e.tree);
    let format = enc.as_ref().map(|x| x.format.clone()).or_else(|| e.tree.root.layer().map(|l| l.kind.clone()));
    ImageReport {
        path: e.rel().display().to_string(),
        source: e.source().display().to_string(),
        format,
        cipher: enc.map(|x| x.cipher),
        state: state.word().to_string(),
        reason: match &state {
            State::Failed(err) => {
                Some(Reason { class: err.kind().name().to_string(), message: err.message().to_string() })
            }
            _ => None,
        },
        size: e.tree.top().map(|t| t.size),
        volumes: e.tree.volumes().iter().filter(|v| !v.name.is_empty()).map(|v| v.name.clone()).collect(),
        bytes_read: e.bytes_read.load(Ordering::Relaxed),
    }
}

/// The report of the mount serving `tree`.
pub fn build(mount: MountFacts, tree: &Tree, cache: CacheStats) -> Report {
    let images: Vec<ImageReport> = tree.images.iter().map(|e| image_report(e)).collect();
    let count = |s: &str| images.iter().filter(|i| i.state == s).count();
    let totals =
        Totals { images: images.len(), unlocked: count("unlocked"), locked: count("locked"), failed: count("failed") };
    Report { schema_version: SCHEMA_VERSION, mount, totals, images, cache: cache.into() }
}

/// `1.5 GiB`-style sizes for the text view.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

impl Report {
    /// The text view of `luksfs status`.
    pub fn render_text(&self) -> String {
        let m = &self.mount;
        let t = &self.totals;
        let mut s = String::new();
        let _ = writeln!(s, "{} on {} (pid {}, {})", m.source, m.mount_point, m.pid, m.transport);
        let _ =
            writeln!(s, "images: {}, unlocked: {}, locked: {}, failed: {}", t.images, t.unlocked, t.locked, t.failed);
        for i in &self.images {
            let _ = writeln!(s, "\n{}", i.path);
            let fmt = match (&i.format, &i.cipher) {
                (Some(f), Some(c)) => format!("{f}, {c}"),
                (Some(f), None) => f.clone(),
                _ => "-".into(),
            };
            let _ = writeln!(s, "  format:     {fmt}");
            let state = match &i.reason {
                Some(r) => format!("{}: {} ({})", i.state, r.message, r.class),
                None => i.state.clone(),
            };
            let _ = writeln!(s, "  state:      {state}");
            if let Some(size) = i.size {
                let _ = writeln!(s, "  size:       {} ({size} bytes)", human(size));
            }
            if !i.volumes.is_empty() {
                let _ = writeln!(s, "  volumes:    {}", i.volumes.join(", "));
            }
            let _ = writeln!(s, "  bytes read: {} ({} bytes)", human(i.bytes_read), i.bytes_read);
        }
        let c = &self.cache;
        let rate = c.hit_rate.map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
        let _ = writeln!(
            s,
            "\ncache: hit rate {rate} ({} hits, {} misses; {} direct reads), {} of {} used",
            c.hits,
            c.misses,
            c.direct_reads,
            human(c.bytes),
            human(c.capacity)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(64 << 20), "64.0 MiB");
    }
}
