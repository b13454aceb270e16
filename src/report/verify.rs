//! `verify` of one image: decrypt it once and say whether it is a sane backup.
//!
//! One pass over the image: worker threads decrypt large chunks ahead ([`crate::stream`]) while
//! the calling thread hashes them in order (SHA-256 of the plaintext) and keeps the first and last
//! bytes for [`crate::sniff`]; another thread reads the ciphertext once and hashes it (SHA-256,
//! the Glance sidecar's `os_hash_algo` and its image signature's hash method, one thread each).
//! Then the report: format, cipher, key slot, payload offset, decrypted size, qcow2 allocation,
//! hashes and their checks, the image signature, what the plaintext is, warnings, and a verdict:
//!
//! | verdict | exit | when |
//! |---|---|---|
//! | `OK` | 0 | decrypted, every check passed, the plaintext is recognised |
//! | `WARN` | 6 | decrypted, but: unrecognised or all-zero plaintext, a disk-image container inside, a size that disagrees (sidecar, filesystem header, partition table), a check that could not be made |
//! | `FAIL` | 3, 4, 5, 1 | wrong key, corrupt or truncated image, refused image, read error (the usual classes) |
//! | `FAIL` | 7 | a hash mismatch: `--expect-sha256`, or the sidecar's `os_hash_value`; an image signature (`img_signature*`) not verified ([`crate::signature`]) |
//!
//! `verify DIR` checks every image under DIR (found by magic, as `mount` finds them, keys as
//! `mount` gives them) and exits with the worst code ([`crate::cli::verify`],
//! [`super::worst`]).
//!
//! The report is built once as JSON (schema in `docs/inspect-json.md`) and rendered as text with
//! [`crate::report::render_text`], so both outputs say the same thing.

use super::hashing::{OsAlgo, hash_source, hash_source_all};
use super::progress::Progress;
use super::signature::{check_signature, meta_props};
use super::verdict::{EXIT_MISMATCH, EXIT_WARN, Verdict, worst};
use crate::catalog::backup::BackupItem;
use crate::image::{Format, Image, ImageOptions, Prepared, UnlockSettings};
use crate::io::ReadAt;
use crate::keys::{Keyring, sidecar};
use crate::qcow2::table::Storage;
use crate::signature::HashMethod;
use crate::sniff::{self, Payload, human};
use crate::volume::tree::{Origin, UnlockKey};
use crate::volume::{ImageTree, Volume};
use crate::{Error, Result};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to check besides the image itself.
pub struct Checks {
    pub expect_sha256: Option<String>,
    pub threads: usize,
    /// `--ca`: trust anchors for image signature certificates.
    pub ca: Option<Arc<Vec<x509_cert::Certificate>>>,
    /// Where image signature certificates come from (Barbican).
    pub keyring: Arc<Keyring>,
}

/// One image's report: the JSON document and its verdict.
pub struct Report {
    pub json: Value,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub error: Option<Error>,
    pub mismatches: Vec<String>,
    pub warnings: Vec<String>,
    pub path: PathBuf,
}

impl Report {
    /// The stderr line for a FAIL (None otherwise).
    pub fn failure_line(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone().with_path(&self.path).to_string());
        }
        self.mismatches.first().map(|m| format!("{}: {m}", self.path.display()))
    }

    /// The `verify DIR` line after the verdict and the name.
    pub fn one_line(&self) -> String {
        let j = &self.json;
        if let Some(e) = &self.error {
            return format!("{}: {}", e.kind().name(), e.message());
        }
        let vols = j["volumes"].as_array().map_or(&[][..], |v| v.as_slice());
        if j["decrypted_size"].is_null() && !vols.is_empty() {
            // A disk whose encrypted volumes are nested: name each volume and what it holds.
            let list: Vec<String> = vols
                .iter()
                .map(|v| format!("{} ({})", v["name"].as_str().unwrap_or("-"), v["holds"].as_str().unwrap_or("-")))
                .collect();
            let mut s =
                format!("{} disk, {} volumes: {}", j["format"].as_str().unwrap_or("-"), vols.len(), list.join(", "));
            for m in self.mismatches.iter().chain(&self.warnings) {
                s += &format!("; {m}");
            }
            return s;
        }
        let mut s = format!(
            "{} {} {}, {}; plaintext sha256 {}",
            j["format"].as_str().unwrap_or("-"),
            j["cipher"].as_str().unwrap_or("-"),
            human(j["decrypted_size"].as_u64().unwrap_or(0)),
            j["plaintext"]["description"].as_str().unwrap_or("-"),
            j["sha256"]["plaintext"].as_str().unwrap_or("-"),
        );
        let sig = &j["signature"];
        if sig["verified"] == json!(true) {
            s += &format!(
                "; signature verified ({} {}, {})",
                sig["key_type"].as_str().unwrap_or("-"),
                sig["hash_method"].as_str().unwrap_or("-"),
                sig["certificate"]["subject"].as_str().unwrap_or("-")
            );
        }
        if let Some(read) = j["read"].as_str() {
            s += &format!("; read in {read}");
        }
        for m in self.mismatches.iter().chain(&self.warnings) {
            s += &format!("; {m}");
        }
        s
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Luks1 => "luks1",
        Format::Luks2 => "luks2",
        Format::Qcow2 => "qcow2",
    }
}

/// Bytes of a qcow2 image's virtual disk by how they are stored.
#[derive(Default)]
struct Allocation {
    allocated: u64,
    zero: u64,
    unallocated: u64,
    compressed: u64,
}

fn qcow2_allocation(q: &crate::qcow2::Qcow2, size: u64) -> Result<Allocation> {
    let mut a = Allocation::default();
    let mut off = 0;
    while off < size {
        let (st, n) = q.map(off, size - off)?;
        if n == 0 {
            return Err(Error::corrupt(format!("qcow2 mapping at guest offset {off} is empty")));
        }
        match st {
            Storage::Data(_) => a.allocated += n,
            Storage::Zero => a.zero += n,
            Storage::Unallocated => a.unallocated += n,
            Storage::Compressed(_) => a.compressed += n,
        }
        off += n;
    }
    Ok(a)
}

/// Everything one pass over the image produced.
#[derive(Default)]
pub(super) struct Streamed {
    pub(super) plain_sha256: String,
    pub(super) head: Vec<u8>,
    pub(super) tail: Vec<u8>,
    pub(super) all_zero: bool,
    pub(super) cipher_sha256: String,
    pub(super) os_hash: Option<String>,
    /// The ciphertext's digest by the image signature's hash method.
    pub(super) signature_digest: Option<Vec<u8>>,
}

/// What the source knows of an image beyond its bytes (see [`crate::catalog::Item`]): the Cinder
/// backup it is, its Glance properties, and a read of it in one GET (a Glance image, whose store
/// may refuse byte ranges).
#[derive(Clone, Copy, Default)]
pub(crate) struct Known<'a> {
    pub(crate) backup: Option<&'a BackupItem>,
    pub(crate) glance: Option<&'a sidecar::ImageMeta>,
    pub(crate) one_get: Option<&'a dyn crate::source::OneGet>,
}

/// Check one image. `key` resolves the key of each encrypted volume on the way.
pub(crate) fn verify_image(
    tree: &ImageTree,
    opts: &ImageOptions,
    checks: &Checks,
    mut progress: Progress,
    key: &dyn Fn(&Volume) -> Result<UnlockKey>,
    settings: UnlockSettings,
    known: Known,
) -> Report {
    let Known { backup, glance, one_get } = known;
    let path = tree.ctx.path.as_path();
    let t0 = Instant::now();
    let mut j = Map::new();
    let mut warnings = Vec::new();
    let mut mismatches = Vec::new();
    j.insert("file".into(), json!(path.display().to_string()));
    // A backup's objects: exactly those its metadata (and its parents') list.
    let listing = backup.map(|b| backup_facts(b, &mut j)).and_then(Result::err);
    for k in
        ["file_size", "format", "cipher", "key_bits", "sector_size", "payload_offset", "decrypted_size", "key_slot"]
    {
        j.insert(k.into(), Value::Null);
    }
    j.insert("sha256".into(), json!({"ciphertext": null, "plaintext": null}));
    // The image's own encrypted volume (its top view), decrypted and streamed as a whole.
    let top = tree.top().filter(|t| t.lock().is_some());
    // A store that refuses byte ranges: the image is read once, from start to end.
    let forward = one_get.filter(|g| top.is_none() && g.refuses_ranges());
    let mut error = match (&top, forward) {
        _ if listing.is_some() => listing,
        (None, Some(g)) => {
            let found = (&mut warnings, &mut mismatches);
            super::forward::verify(path, g, opts, checks, &mut progress, key, settings, glance, &mut j, found).err()
        }
        (Some(top), _) => {
            let unlock = |_: Prepared| {
                top.unlock(key, settings)?;
                top.image().ok_or_else(|| Error::io("the unlocked volume has no decrypted view"))
            };
            let src = tree.root.reader().ok_or_else(|| Error::io("the image is not readable"));
            src.and_then(|src| {
                let found = (&mut warnings, &mut mismatches);
                verify_inner(path, src, opts, checks, &mut progress, unlock, glance, &mut j, found)
            })
            .err()
        }
        (None, None) => {
            let file_size = tree.root.size;
            j.insert("file_size".into(), json!(file_size));
            j.insert("format".into(), json!(tree.root.layer().map_or("-".to_string(), |l| l.kind.clone())));
            j.insert("decrypted_size".into(), Value::Null);
            match backup {
                // a backup of a volume without encryption: its bytes are what is checked
                Some(_) => tree.root.layer().and_then(|l| l.problem.clone()),
                None => tree.emptiness(),
            }
        }
    };
    progress.clear();
    // Every other volume of the tree: unlocked with the same key, described, leaves hashed.
    let failures = tree.unlock_all(key, settings);
    let (vols, problems) = volumes_report(tree, top.as_deref(), checks.threads);
    j.insert("volumes".into(), json!(vols));
    if top.is_none() && forward.is_none() && !tree.has_encryption() {
        match backup {
            // every object fetched, md5- and sha256-checked (no decryption hid a bad one)
            Some(_) if error.is_none() => {
                // every object of the volume fetched, md5- and sha256file-checked on the way
                let src = tree.root.reader().ok_or_else(|| Error::io("the backup is not readable"));
                let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
                let hashed = |r: Arc<dyn ReadAt>| {
                    let sha = hash_source(&*r, OsAlgo::Sha256.hasher(), &done, &stop)?;
                    r.finish_checks().map(|()| sha)
                };
                match src.and_then(hashed) {
                    Ok(sha) => {
                        j.insert("format".into(), json!("raw"));
                        j.insert("decrypted_size".into(), json!(tree.root.size));
                        j.insert("sha256".into(), json!({"ciphertext": null, "plaintext": sha}));
                    }
                    Err(e) => error = Some(e),
                }
            }
            Some(_) => {}
            None => warnings.push("no encrypted volume anywhere in the image".into()),
        }
    }
    for e in failures.into_iter().chain(problems) {
        let e = e.with_path(path);
        error = Some(match error {
            Some(prev) if worst(prev.kind().exit_code(), e.kind().exit_code()) == prev.kind().exit_code() => prev,
            _ => e,
        });
    }
    if !j.contains_key("plaintext") {
        j.insert("plaintext".into(), Value::Null);
    }
    let (verdict, exit_code) = match &error {
        Some(e) if e.is_digest_mismatch() => (Verdict::Fail, EXIT_MISMATCH),
        Some(e) => (Verdict::Fail, e.kind().exit_code()),
        None if !mismatches.is_empty() => (Verdict::Fail, EXIT_MISMATCH),
        None if !warnings.is_empty() => (Verdict::Warn, EXIT_WARN),
        None => (Verdict::Ok, 0),
    };
    j.insert("warnings".into(), json!(warnings));
    j.insert("mismatches".into(), json!(mismatches));
    if let Some(e) = &error {
        j.insert("error".into(), json!({"class": e.kind().name(), "reason": e.message()}));
    }
    j.insert("elapsed_seconds".into(), json!((t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0));
    j.insert("verdict".into(), json!(verdict.name()));
    j.insert("exit_code".into(), json!(exit_code));
    Report { json: Value::Object(j), verdict, exit_code, error, mismatches, warnings, path: path.to_path_buf() }
}

/// Record what `b` is (`backup` in the JSON) and check its listing.
fn backup_facts(b: &BackupItem, j: &mut Map<String, Value>) -> Result<()> {
    j.insert("backup".into(), b.facts()?);
    let chain = b.catalog.chain(&b.entry.info.backup_id)?;
    crate::formats::cinder_backup::verify::check_listing(&b.catalog, &chain)
}

#[allow(clippy::too_many_arguments)]
fn verify_inner(
    path: &Path,
    src: Arc<dyn ReadAt>,
    opts: &ImageOptions,
    checks: &Checks,
    progress: &mut Progress,
    unlock: impl FnOnce(Prepared) -> Result<Arc<Image>>,
    glance: Option<&sidecar::ImageMeta>,
    j: &mut Map<String, Value>,
    (warnings, mismatches): (&mut Vec<String>, &mut Vec<String>),
) -> Result<()> {
    let file_size = src.size();
    j.insert("file_size".into(), json!(file_size));
    let prepared = Prepared::open_on(src.clone(), path, opts)?;
    let size = prepared.size();
    header_facts(&prepared, file_size, opts, j, warnings);
    if let Some(q) = prepared.qcow2() {
        let a = qcow2_allocation(q, size)?;
        let mut m = json!({"cluster_size": q.header().cluster_size(), "allocated": a.allocated,
                           "zero": a.zero, "unallocated": a.unallocated});
        if a.compressed > 0 {
            m["compressed"] = json!(a.compressed);
        }
        j.insert("qcow2".into(), m);
    }

    let expected = Expected::of(path, glance, warnings);
    let image = unlock(prepared)?;
    j.insert("key_slot".into(), json!(image.slot()));

    let s = stream(&image, &*src, expected.os_algo, expected.signature_hash, checks.threads, progress)?;
    report_streamed(path, expected, s, Some(&*image), Some(&*src), checks, j, (warnings, mismatches))
}

/// The report's facts of the encryption header (`format`, `cipher`, `key_bits`, `sector_size`,
/// `payload_offset` but for qcow2, `decrypted_size`), and a warning when a raw LUKS file of
/// `file_size` bytes ends inside a sector.
pub(super) fn header_facts(
    prepared: &Prepared,
    file_size: u64,
    opts: &ImageOptions,
    j: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    let layout = prepared.layout();
    j.insert("format".into(), json!(format_name(prepared.format())));
    j.insert("cipher".into(), json!(layout.cipher.to_string()));
    j.insert("key_bits".into(), json!(layout.key_len * 8));
    j.insert("sector_size".into(), json!(layout.sector_size));
    if prepared.qcow2().is_none() {
        j.insert("payload_offset".into(), json!(layout.offset));
        let ss = u64::from(layout.sector_size);
        let rest = file_size.saturating_sub(layout.offset) % ss;
        if layout.size.is_none() && opts.header.is_none() && rest != 0 {
            warnings.push(format!(
                "the file ends {rest} bytes into a {ss}-byte sector: it may be truncated (those bytes are ignored)"
            ));
        }
    }
    j.insert("decrypted_size".into(), json!(prepared.size()));
}

/// What an image's Glance properties (from Glance itself, or its sidecar) ask `verify` to check.
pub(super) struct Expected {
    pub(super) meta: Option<sidecar::ImageMeta>,
    /// The properties came from Glance itself (not a sidecar).
    from_glance: bool,
    pub(super) os_algo: Option<OsAlgo>,
    signature: Option<std::result::Result<crate::signature::Request, crate::signature::SignatureError>>,
    pub(super) signature_hash: Option<HashMethod>,
}

impl Expected {
    /// The checks for the image at `path` whose Glance properties are `glance` (else its sidecar's).
    pub(super) fn of(path: &Path, glance: Option<&sidecar::ImageMeta>, warnings: &mut Vec<String>) -> Expected {
        let mut os_algo = None;
        let meta = match glance {
            Some(m) => Some(m.clone()),
            None => match sidecar::load_for_image(path) {
                Ok(m) => m,
                Err(e) => {
                    warnings.push(format!("the Glance sidecar cannot be used: {e}"));
                    None
                }
            },
        };
        let said_by = if glance.is_some() { "Glance's" } else { "the Glance sidecar's" };
        if let Some(m) = &meta
            && m.hash_value.is_some()
        {
            let name = m.hash_algo.as_deref().unwrap_or("sha512");
            os_algo = OsAlgo::from_name(name);
            if os_algo.is_none() {
                warnings.push(format!(
                    "{said_by} os_hash_algo {name} is not supported (sha1, sha224, sha256, sha384 and sha512 are): \
                     os_hash_value not checked"
                ));
            }
        }
        // The image signature's properties: checked now, the certificate after the data is hashed.
        let signature = meta.as_ref().filter(|m| !m.signature.is_empty()).map(|m| m.signature.parse());
        let signature_hash = match &signature {
            Some(Ok(r)) => Some(r.hash),
            _ => None,
        };
        Expected { meta, from_glance: glance.is_some(), os_algo, signature, signature_hash }
    }
}

/// The report of an image streamed once (`s`): the image signature, hashes and their checks
/// against `expected`, and what the plaintext is; `plain` reads the plaintext at the starts of
/// its partitions (the decrypted image, or what a forward-only read kept of them), `None` when
/// only the ciphertext was read; `src`, the ciphertext read by range, has its last checks made.
#[allow(clippy::too_many_arguments)]
pub(super) fn report_streamed(
    path: &Path,
    expected: Expected,
    s: Streamed,
    plain: Option<&dyn ReadAt>,
    src: Option<&dyn ReadAt>,
    checks: &Checks,
    j: &mut Map<String, Value>,
    (warnings, mismatches): (&mut Vec<String>, &mut Vec<String>),
) -> Result<()> {
    let size = plain.map(|p| p.size());
    let Expected { meta, from_glance, signature, .. } = expected;
    let said_by = if from_glance { "Glance's" } else { "the Glance sidecar's" };
    if let Some(parsed) = signature {
        let (report, failure) = check_signature(parsed, s.signature_digest.as_deref(), checks, &meta_props(&meta));
        j.insert("signature".into(), report);
        if let Some(f) = failure {
            mismatches.push(format!("image signature: {f}"));
        }
    }
    j.insert("sha256".into(), json!({"ciphertext": s.cipher_sha256, "plaintext": plain.map(|_| &s.plain_sha256)}));
    // what reading every byte once leaves to check (a backup's md5 of each object)
    if let Some(src) = src {
        src.finish_checks()?;
    }
    if let Some(want) = checks.expect_sha256.as_ref().filter(|_| plain.is_some()) {
        let matches = *want == s.plain_sha256;
        j.insert("expect_sha256".into(), json!({"value": want, "matches": matches}));
        if !matches {
            mismatches.push(format!(
                "the plaintext's sha256 is {}, not the expected {want} (--expect-sha256)",
                s.plain_sha256
            ));
        }
    }
    if let Some(m) = &meta {
        let hash_matches = match (&s.os_hash, &m.hash_value) {
            (Some(got), Some(want)) => Some(got.eq_ignore_ascii_case(want.trim())),
            _ => None,
        };
        if hash_matches == Some(false) {
            mismatches.push(format!(
                "the ciphertext's {} is {}, not {said_by} os_hash_value {}",
                m.hash_algo.as_deref().unwrap_or("sha512"),
                s.os_hash.as_deref().unwrap_or(""),
                m.hash_value.as_deref().unwrap_or("")
            ));
        }
        let size_matches = m.decrypt_size.zip(size).map(|(want, size)| want == size);
        if size_matches == Some(false) {
            warnings.push(format!(
                "{} says os_decrypt_size {}, but the image decrypts to {} bytes",
                if from_glance { "Glance" } else { "the Glance sidecar" },
                m.decrypt_size.unwrap_or(0),
                size.unwrap_or(0)
            ));
        }
        j.insert(
            "openstack".into(),
            json!({"sidecar": (!from_glance).then(|| sidecar::sidecar_path(path).display().to_string()),
                   "glance": from_glance, "image_id": m.id,
                   "name": m.name, "os_hash_algo": m.hash_algo, "os_hash_value": m.hash_value,
                   "os_hash_checked": s.os_hash.is_some(), "os_hash_matches": hash_matches,
                   "os_decrypt_size": m.decrypt_size, "decrypt_size_matches": size_matches,
                   "checksum": m.checksum, "checksum_checked": false}),
        );
    }

    let Some(plain) = plain else { return Ok(()) };
    let size = plain.size();
    let payload = sniff::classify(&s.head, &s.tail, size, s.all_zero);
    let mut truncated = Vec::new();
    let mut pj = payload.to_json();
    match &payload {
        Payload::Container(c) => {
            let mut w = c.warning();
            if !c.details.is_empty() {
                w += &format!(" ({})", c.details.join("; "));
            }
            warnings.push(w);
        }
        Payload::Zeros if size == 0 => warnings.push("the image decrypts to 0 bytes: nothing to restore".into()),
        Payload::Zeros => warnings.push("the plaintext is all zeros: the volume holds no data".into()),
        Payload::Unrecognised { .. } => warnings.push(
            "the plaintext is not recognised: no partition table, filesystem or volume signature at its start".into(),
        ),
        Payload::Volume(v) => {
            if let Some(claimed) = v.size.filter(|&c| c > size) {
                truncated.push(format!(
                    "truncated: the {} header says the volume has {claimed} bytes, but the plaintext has only {size}",
                    v.kind.name()
                ));
            }
        }
        Payload::Table(t) => {
            warnings.extend(t.problems.iter().cloned());
            // Look at the start of each partition: which filesystem (or container) is in it.
            for (i, p) in t.partitions.iter().enumerate() {
                let len = (sniff::VOLUME_PROBE_LEN as u64).min(p.size).min(size.saturating_sub(p.start));
                if len == 0 {
                    continue;
                }
                let mut buf = vec![0u8; len as usize];
                plain.read_exact_at(&mut buf, p.start)?;
                let inner = sniff::classify(&buf, &[], p.size, false);
                if let Payload::Volume(v) = &inner
                    && let Some(claimed) = v.size.filter(|&c| c > p.size)
                {
                    truncated.push(format!(
                        "truncated: partition {}: the {} header says the volume has {claimed} bytes, but the \
                             partition has only {}",
                        p.number,
                        v.kind.name(),
                        p.size
                    ));
                }
                pj["partitions"][i]["contents"] = inner.to_json();
            }
        }
    }
    j.insert("plaintext".into(), pj);
    match truncated.into_iter().next() {
        Some(t) => Err(Error::corrupt(t)),
        None => Ok(()),
    }
}

/// A short description of an image without encrypted volumes (`GPT, 3 volumes`).
pub fn describe_unencrypted(tree: &ImageTree) -> String {
    let kind = tree.root.layer().map_or("unreadable".to_string(), |l| l.kind.clone());
    let n = tree.volumes().len() - 1;
    format!("{kind}, {n} volume{}", if n == 1 { "" } else { "s" })
}

/// One entry per volume of the tree except the image itself and `top` (reported above): what it
/// is, what it holds, its state; leaves are read whole and hashed. Returns the entries and the
/// problems found (truncation, damaged layers, unreadable volumes), each naming the volume.
fn volumes_report(tree: &ImageTree, top: Option<&Volume>, threads: usize) -> (Vec<Value>, Vec<Error>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for v in tree.volumes() {
        if matches!(v.origin, Origin::Image) || top.is_some_and(|t| std::ptr::eq(t, &*v)) {
            continue;
        }
        let name = if v.name.is_empty() { "(top view)".to_string() } else { v.name.clone() };
        let mut e = Map::new();
        e.insert("name".into(), json!(name));
        e.insert("what".into(), json!(v.describe_origin()));
        e.insert("size".into(), json!(v.size));
        e.insert("offset".into(), json!(v.offset));
        let state = if v.failure().is_some() {
            "failed"
        } else if v.is_locked() {
            "locked"
        } else {
            "readable"
        };
        e.insert("state".into(), json!(state));
        if !v.origin_notes.is_empty() {
            e.insert("notes".into(), json!(v.origin_notes));
        }
        let mut problem = v.failure();
        if let Some(layer) = v.layer() {
            e.insert("holds".into(), json!(layer.kind));
            if let Some(leaf) = &layer.leaf {
                e.insert("description".into(), json!(leaf.describe()));
                if let Some(claimed) = leaf.size.filter(|&c| c > v.size) {
                    problem = Some(Error::corrupt(format!(
                        "{name}: truncated: the {} header says the volume has {claimed} bytes, but it has only {}",
                        leaf.kind.name(),
                        v.size
                    )));
                }
            }
            if let Some(p) = &layer.problem
                && problem.is_none()
            {
                problem = Some(p.clone().context(&name));
            }
        }
        if let Some(r) = v.reader().filter(|_| v.children().is_empty() && problem.is_none()) {
            let mut h = sha2::Sha256::new();
            match crate::stream::for_each_chunk(&*r, 0, v.size, threads, |c| {
                h.update(c);
                Ok(())
            }) {
                Ok(()) => {
                    e.insert("sha256".into(), json!(hex::encode(h.finalize())));
                }
                Err(err) => problem = Some(err.context(&name)),
            }
        }
        if let Some(p) = problem {
            e.insert("error".into(), json!({"class": p.kind().name(), "reason": p.message()}));
            problems.push(p);
        }
        out.push(Value::Object(e));
    }
    (out, problems)
}

/// Read the whole plaintext once ([`crate::stream::for_each_chunk`]: `threads` workers decrypt
/// ahead, chunks are hashed here in order) while another thread reads the ciphertext once and
/// hashes it with SHA-256, the sidecar's `os_hash_algo` and the image signature's hash method
/// ([`hash_source_all`]).
fn stream(
    image: &Image,
    src: &dyn ReadAt,
    os_algo: Option<OsAlgo>,
    signature_hash: Option<HashMethod>,
    threads: usize,
    progress: &mut Progress,
) -> Result<Streamed> {
    let size = image.size();
    let stop = AtomicBool::new(false);
    // Bytes of the file hashed by every ciphertext hash.
    let cipher_done = AtomicU64::new(0);
    progress.plain_total = size;
    progress.cipher_total = src.size();
    // Each algorithm once: SHA-256 first, then the sidecar's, then the signature's.
    let mut algos = vec![OsAlgo::Sha256];
    for a in os_algo.into_iter().chain(signature_hash.map(OsAlgo::of_signature)) {
        if !algos.contains(&a) {
            algos.push(a);
        }
    }

    std::thread::scope(|s| {
        let (cipher_done, stop) = (&cipher_done, &stop);
        let hashers = algos.iter().map(|a| a.hasher()).collect();
        let cipher = s.spawn(move || hash_source_all(src, hashers, cipher_done, stop));
        let hashed = || cipher_done.load(Ordering::Relaxed);
        let mut sha = sha2::Sha256::new();
        let mut head = Vec::with_capacity(sniff::HEAD_LEN.min(size as usize));
        let mut tail: Vec<u8> = Vec::with_capacity(2 * sniff::TAIL_LEN);
        let mut all_zero = true;
        let mut done = 0u64;
        let read = crate::stream::for_each_chunk(image, 0, size, threads, |buf| {
            sha.update(buf);
            if head.len() < sniff::HEAD_LEN {
                let take = (sniff::HEAD_LEN - head.len()).min(buf.len());
                head.extend_from_slice(&buf[..take]);
            }
            tail.extend_from_slice(&buf[buf.len().saturating_sub(sniff::TAIL_LEN)..]);
            let excess = tail.len().saturating_sub(sniff::TAIL_LEN);
            tail.drain(..excess);
            if all_zero {
                all_zero = buf.iter().all(|&b| b == 0);
            }
            done += buf.len() as u64;
            progress.draw(done, hashed());
            Ok(())
        });
        if let Err(e) = read {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        while !cipher.is_finished() {
            progress.draw(size, hashed());
            std::thread::sleep(Duration::from_millis(100));
        }
        progress.draw(size, hashed());
        progress.complete();
        let digests = cipher.join().map_err(|_| Error::io("the ciphertext hashing thread failed"))??;
        let of = |a: OsAlgo| algos.iter().position(|&x| x == a).and_then(|i| digests.get(i)).cloned();
        Ok(Streamed {
            plain_sha256: hex::encode(sha.finalize()),
            head,
            tail,
            all_zero,
            cipher_sha256: of(OsAlgo::Sha256).map(hex::encode).unwrap_or_default(),
            os_hash: os_algo.and_then(of).map(hex::encode),
            signature_digest: signature_hash.and_then(|h| of(OsAlgo::of_signature(h))),
        })
    })
}
