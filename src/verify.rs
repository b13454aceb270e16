//! `luksfs verify IMAGE|DIR`: decrypt a whole image once and say whether it is a sane backup.
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
//! `mount` gives them) and exits with the worst code (see [`worst`]).
//!
//! The report is built once as JSON (schema in `docs/inspect-json.md`) and rendered as text with
//! [`crate::inspect::render_text`], so both outputs say the same thing.

use crate::catalog::Location;
use crate::catalog::backup::BackupItem;
use crate::cli::{ImageArgs, KeyArgs, KeytabArgs, PromptArgs, print_stdout};
use crate::dir::{KeyPlan, Tree, Unlocker};
use crate::image::{Format, Image, ImageOptions, Prepared, UnlockSettings};
use crate::io::ReadAt;
use crate::keys::{KeySource, Keyring, sidecar};
use crate::qcow2::table::Storage;
use crate::signature::{HashMethod, SignatureError};
use crate::sniff::{self, Payload, human};
use crate::volume::tree::{Origin, UnlockKey};
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, Result};
use clap::Args;
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Exit code of a `WARN` verdict.
pub const EXIT_WARN: i32 = 6;
/// Exit code of a `FAIL` verdict caused by a hash mismatch.
pub const EXIT_MISMATCH: i32 = 7;

/// Bytes per read of the ciphertext file.
const FILE_CHUNK: usize = 4 << 20;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// An encrypted image, or a directory: every LUKS1/LUKS2/qcow2 image and every Cinder backup
    /// under it; or swift://CONTAINER[/PREFIX], s3://BUCKET[/PREFIX]: every backup and image there;
    /// or glance:// (every encrypted image of the project) or glance://IMAGE_ID.
    pub source: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub opts: ImageArgs,
    /// SHA-256 (hex) the plaintext must have; a mismatch is a FAIL (exit 7). Single image only.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub expect_sha256: Option<String>,
    /// Print the report as one JSON object (schema: docs/inspect-json.md).
    #[arg(long)]
    pub json: bool,
    /// Take the passphrase from this Barbican secret (id or href), for every image checked.
    #[arg(long, value_name = "ID", conflicts_with = "key_file")]
    pub barbican_secret: Option<String>,
    #[command(flatten)]
    pub keytab: KeytabArgs,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Trusted certificates (PEM): the certificate of an image signature (`img_signature*` in the
    /// image's metadata) must be one of them or be issued and signed by one.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Decryption threads (default: the number of cores, at least 2, at most 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub threads: Option<u32>,
}

fn parse_sha256(s: &str) -> std::result::Result<String, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err("expected 64 hex digits (a SHA-256)".into())
    }
}

/// The outcome of checking one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    /// `OK`, `WARN`, `FAIL`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// The worse of two exit codes of `verify`: any FAIL beats WARN (6) beats OK (0); among FAILs,
/// corrupt (4) > hash mismatch (7) > wrong key (3) > refused (5) > I/O and other (1) > usage (2)
/// (damaged data first, then what stops a restore).
pub fn worst(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        0 => 0,
        EXIT_WARN => 1,
        2 => 2,
        1 => 3,
        5 => 4,
        3 => 5,
        EXIT_MISMATCH => 6,
        4 => 7,
        _ => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Run `luksfs verify`; returns the exit code.
pub fn run(args: VerifyArgs) -> Result<i32> {
    // A folder, container or bucket is verified image by image; a file, a device or a name
    // (`DIR/NAME`, `swift://C/NAME`: one image of a source) alone.
    let cloud = args.key.os_cloud.as_deref();
    let location = Location::parse(args.source.as_os_str(), cloud)?;
    let whole = match location.local() {
        Some(path) => path.is_dir(),
        None => crate::catalog::resolve_one(&args.source, cloud).is_err(),
    };
    if whole { run_dir(&args, &location) } else { run_one(&args) }
}

fn threads(a: &VerifyArgs) -> usize {
    match a.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4),
    }
}

fn run_one(a: &VerifyArgs) -> Result<i32> {
    let settings = a.key.settings()?;
    let (opts, from_tab) = crate::unlock_one::keytab_line(&a.keytab, &a.source, a.opts.options())?;
    let progress = Progress::new(&a.source.display().to_string());
    let checks = Checks {
        expect_sha256: a.expect_sha256.clone(),
        threads: threads(a),
        ca: load_ca(a.ca.as_deref())?,
        keyring: Arc::new(Keyring::new(None, a.key.os_cloud.clone())),
    };
    let item = crate::catalog::resolve_one(&a.source, a.key.os_cloud.as_deref())?;
    let tree = ImageTree::on(item.open_verifying()?, &item.path, Path::new(""), &opts, Limits::default());
    // One key for every encrypted volume of the image, asked for once.
    let backup_key = crate::unlock_one::backup_key_id(&item, &a.key);
    let secret = a.barbican_secret.as_deref().or(backup_key.as_deref());
    let keys = crate::unlock_one::ImageKey::new(&a.source, &a.key, from_tab, secret, &opts);
    let settings = UnlockSettings { tries: a.prompt.tries, ..settings };
    let report =
        verify_image(&tree, &opts, &checks, progress, &|v| keys.key_for(v), settings, item.backup(), item.glance());
    let note = report.error.as_ref().and_then(|e| keys.note(e));
    let text = if a.json {
        serde_json::to_string_pretty(&crate::schema::versioned(report.json.clone())).unwrap_or_default() + "\n"
    } else {
        crate::inspect::render_text(&report.json)
    };
    print_stdout(text.as_bytes())?;
    if let Some(line) = report.failure_line() {
        eprintln!("luksfs: {line}");
    }
    if let Some(n) = note {
        eprintln!("luksfs: note: {n}");
    }
    Ok(report.exit_code)
}

fn run_dir(a: &VerifyArgs, location: &Location) -> Result<i32> {
    if a.opts.header.is_some() {
        return Err(Error::usage("--header needs a single image; verify the image itself, not its directory"));
    }
    if a.expect_sha256.is_some() {
        return Err(Error::usage("--expect-sha256 needs a single image, not a directory"));
    }
    let settings = a.key.settings()?;
    let ring = Keyring::new(None, a.key.os_cloud.clone());
    let barbican = ring.barbican_configured();
    // The key for images without a sidecar key: --barbican-secret, --key-file, or one prompt.
    let keytab = match &a.keytab.keytab {
        Some(p) => crate::keys::keytab::load(p)?,
        None => BTreeMap::new(),
    };
    let default_key = match &a.barbican_secret {
        Some(id) => Some(ring.passphrase(&KeySource::Barbican(id.clone()))?),
        None if a.key.key_file.is_some() || (keytab.is_empty() && !barbican) => {
            a.key.default_key(&format!("the images in {}", a.source.display()))?
        }
        None => None,
    };
    if default_key.is_none() && keytab.is_empty() && !barbican {
        return Err(Error::usage(
            "no key given: use --key-file FILE, --keytab FILE, --barbican-secret ID, --os-cloud NAME (Glance \
             sidecars), or run on a terminal to be prompted",
        ));
    }
    let plan = KeyPlan {
        keytab,
        default_options: a.opts.options(),
        use_sidecars: barbican,
        all_volumes: true,
        verify: true,
        backup_keys: barbican && default_key.is_none(),
    };
    let tree = Tree::scan(location, &plan)?;
    let unlocker = Unlocker {
        keys: Arc::new(Keyring::new(default_key, a.key.os_cloud.clone())),
        settings,
        volume_keys: plan.volume_keys(),
    };
    let checks = Checks {
        expect_sha256: None,
        threads: threads(a),
        ca: load_ca(a.ca.as_deref())?,
        keyring: unlocker.keys.clone(),
    };
    // A backup is checked end to end even when it holds no encryption (its digests, at least).
    let (with, without): (Vec<_>, Vec<_>) =
        tree.images.iter().partition(|e| e.tree.has_encryption() || e.backup.is_some());
    for e in &without {
        let line = format!(
            "NONE  {}  no encrypted volume ({}); not checked\n",
            e.rel().display(),
            describe_unencrypted(&e.tree)
        );
        if !a.json {
            print_stdout(line.as_bytes())?;
        }
    }
    let n = with.len();
    let mut reports = Vec::with_capacity(n);
    let mut code = 0;
    let mut notes = Vec::new();
    let (mut ok, mut warn, mut fail) = (0, 0, 0);
    for (i, entry) in with.iter().enumerate() {
        let rel = entry.rel().display().to_string();
        let progress = Progress::new(&format!("[{}/{n}] {rel}", i + 1));
        let key = |v: &Volume| unlocker.key_for(entry, v);
        // A keytab line's options (a detached header, a key slot) apply to its image.
        let opts = plan.keytab.get(entry.rel()).map_or(&plan.default_options, |t| &t.options);
        let mut r = verify_image(
            &entry.tree,
            opts,
            &checks,
            progress,
            &key,
            settings,
            entry.backup.as_ref(),
            entry.glance.as_ref(),
        );
        code = worst(code, r.exit_code);
        if let Some(e) = &r.error {
            let from_tab = plan.keytab.get(entry.rel()).map(|t| &t.key).filter(|k| **k != KeySource::Default);
            let file = crate::unlock_one::key_file_of(&a.key, from_tab);
            if let Some(n) = crate::unlock_one::newline_note(e, file.as_ref())
                && !notes.contains(&n)
            {
                notes.push(n);
            }
        }
        match r.verdict {
            Verdict::Ok => ok += 1,
            Verdict::Warn => warn += 1,
            Verdict::Fail => fail += 1,
        }
        let line = format!("{:<4}  {rel}  {}\n", r.verdict.name(), r.one_line());
        if a.json {
            if let Value::Object(m) = &mut r.json {
                m.insert("path".into(), json!(rel));
            }
            reports.push(r.json);
        } else {
            // One line per image as soon as it is checked.
            print_stdout(line.as_bytes())?;
        }
    }
    if n == 0 {
        code = EXIT_WARN;
    }
    let verdict = match code {
        0 => Verdict::Ok,
        EXIT_WARN => Verdict::Warn,
        _ => Verdict::Fail,
    };
    let summary = format!(
        "{n} image{} under {}: {ok} OK, {warn} WARN, {fail} FAIL{}; verdict {} (exit {code})\n",
        if n == 1 { "" } else { "s" },
        a.source.display(),
        if without.is_empty() { String::new() } else { format!(" ({} without encrypted volumes)", without.len()) },
        verdict.name()
    );
    if a.json {
        let none: Vec<_> = without.iter().map(|e| e.rel().display().to_string()).collect();
        let j = json!({"schema_version": crate::schema::SCHEMA_VERSION,
                       "directory": a.source.display().to_string(), "images": reports,
                       "without_encryption": none,
                       "summary": {"images": n, "ok": ok, "warn": warn, "fail": fail},
                       "verdict": verdict.name(), "exit_code": code});
        print_stdout((serde_json::to_string_pretty(&j).unwrap_or_default() + "\n").as_bytes())?;
    } else {
        print_stdout(summary.as_bytes())?;
    }
    for n in notes {
        eprintln!("luksfs: note: {n}");
    }
    Ok(code)
}

/// What to check besides the image itself.
struct Checks {
    expect_sha256: Option<String>,
    threads: usize,
    /// `--ca`: trust anchors for image signature certificates.
    ca: Option<Arc<Vec<x509_cert::Certificate>>>,
    /// Where image signature certificates come from (Barbican).
    keyring: Arc<Keyring>,
}

/// The certificates of `--ca FILE` (a usage error when unreadable or without certificates).
fn load_ca(path: Option<&Path>) -> Result<Option<Arc<Vec<x509_cert::Certificate>>>> {
    let Some(path) = path else { return Ok(None) };
    let pem = std::fs::read(path).map_err(|e| Error::from_io("--ca: cannot read", &e).with_path(path))?;
    let certs =
        crate::signature::cert::parse_bundle(&pem).map_err(|e| Error::usage(format!("--ca: {e}")).with_path(path))?;
    Ok(Some(Arc::new(certs)))
}

/// One image's report: the JSON document and its verdict.
struct Report {
    json: Value,
    verdict: Verdict,
    exit_code: i32,
    error: Option<Error>,
    mismatches: Vec<String>,
    warnings: Vec<String>,
    path: PathBuf,
}

impl Report {
    /// The stderr line for a FAIL (None otherwise).
    fn failure_line(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone().with_path(&self.path).to_string());
        }
        self.mismatches.first().map(|m| format!("{}: {m}", self.path.display()))
    }

    /// The `verify DIR` line after the verdict and the name.
    fn one_line(&self) -> String {
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
        for m in self.mismatches.iter().chain(&self.warnings) {
            s += &format!("; {m}");
        }
        s
    }
}

/// Glance `os_hash_algo` values luksfs can check (no MD5: luksfs has no MD5 implementation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OsAlgo {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl OsAlgo {
    fn from_name(s: &str) -> Option<OsAlgo> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Some(OsAlgo::Sha1),
            "sha224" => Some(OsAlgo::Sha224),
            "sha256" => Some(OsAlgo::Sha256),
            "sha384" => Some(OsAlgo::Sha384),
            "sha512" => Some(OsAlgo::Sha512),
            _ => None,
        }
    }
    /// The algorithm an image signature's hash method is.
    fn of_signature(h: HashMethod) -> OsAlgo {
        match h {
            HashMethod::Sha224 => OsAlgo::Sha224,
            HashMethod::Sha256 => OsAlgo::Sha256,
            HashMethod::Sha384 => OsAlgo::Sha384,
            HashMethod::Sha512 => OsAlgo::Sha512,
        }
    }
    fn hasher(self) -> Hasher {
        match self {
            OsAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            OsAlgo::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            OsAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            OsAlgo::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            OsAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A running hash of one of the [`OsAlgo`]s.
enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha224(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    #[cfg(test)]
    fn finish(self) -> String {
        hex::encode(self.finish_bytes())
    }
    fn finish_bytes(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
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
struct Streamed {
    plain_sha256: String,
    head: Vec<u8>,
    tail: Vec<u8>,
    all_zero: bool,
    cipher_sha256: String,
    os_hash: Option<String>,
    /// The ciphertext's digest by the image signature's hash method.
    signature_digest: Option<Vec<u8>>,
}

/// Check one image. `unlock` turns the opened image into a readable one (resolving the key).
#[allow(clippy::too_many_arguments)]
fn verify_image(
    tree: &ImageTree,
    opts: &ImageOptions,
    checks: &Checks,
    mut progress: Progress,
    key: &dyn Fn(&Volume) -> Result<UnlockKey>,
    settings: UnlockSettings,
    backup: Option<&BackupItem>,
    glance: Option<&sidecar::ImageMeta>,
) -> Report {
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
    let mut error = match &top {
        _ if listing.is_some() => listing,
        Some(top) => {
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
        None => {
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
    if top.is_none() && !tree.has_encryption() {
        match backup {
            // every object fetched, md5- and sha256-checked (no decryption hid a bad one)
            Some(_) if error.is_none() => {
                // every object of the volume fetched, md5- and sha256file-checked on the way
                let src = tree.root.reader().ok_or_else(|| Error::io("the backup is not readable"));
                let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
                match src.and_then(|r| hash_source(&*r, OsAlgo::Sha256.hasher(), &done, &stop)) {
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
    let layout = prepared.layout().clone();
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
    j.insert("decrypted_size".into(), json!(size));
    if let Some(q) = prepared.qcow2() {
        let a = qcow2_allocation(q, size)?;
        let mut m = json!({"cluster_size": q.header().cluster_size(), "allocated": a.allocated,
                           "zero": a.zero, "unallocated": a.unallocated});
        if a.compressed > 0 {
            m["compressed"] = json!(a.compressed);
        }
        j.insert("qcow2".into(), m);
    }

    // The image's Glance properties (from Glance itself, or its sidecar): what to check against.
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

    let image = unlock(prepared)?;
    j.insert("key_slot".into(), json!(image.slot()));

    let s = stream(&image, &*src, os_algo, signature_hash, checks.threads, progress)?;
    if let Some(parsed) = signature {
        let (report, failure) = check_signature(parsed, s.signature_digest.as_deref(), checks, &meta_props(&meta));
        j.insert("signature".into(), report);
        if let Some(f) = failure {
            mismatches.push(format!("image signature: {f}"));
        }
    }
    j.insert("sha256".into(), json!({"ciphertext": s.cipher_sha256, "plaintext": s.plain_sha256}));
    if let Some(want) = &checks.expect_sha256 {
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
        let size_matches = m.decrypt_size.map(|want| want == size);
        if size_matches == Some(false) {
            warnings.push(format!(
                "{} says os_decrypt_size {}, but the image decrypts to {size} bytes",
                if glance.is_some() { "Glance" } else { "the Glance sidecar" },
                m.decrypt_size.unwrap_or(0)
            ));
        }
        j.insert(
            "openstack".into(),
            json!({"sidecar": glance.is_none().then(|| sidecar::sidecar_path(path).display().to_string()),
                   "glance": glance.is_some(), "image_id": m.id,
                   "name": m.name, "os_hash_algo": m.hash_algo, "os_hash_value": m.hash_value,
                   "os_hash_checked": s.os_hash.is_some(), "os_hash_matches": hash_matches,
                   "os_decrypt_size": m.decrypt_size, "decrypt_size_matches": size_matches,
                   "checksum": m.checksum, "checksum_checked": false}),
        );
    }

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
                image.read_plain(p.start, &mut buf)?;
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

/// The raw `img_signature*` properties of the image's metadata.
fn meta_props(meta: &Option<sidecar::ImageMeta>) -> crate::signature::Properties {
    meta.as_ref().map(|m| m.signature.clone()).unwrap_or_default()
}

/// Check an image signature whose properties parsed to `parsed`, over the ciphertext's `digest`
/// (by its hash method): fetch the certificate, check it and the signature. Returns the
/// `signature` JSON object and, when it is not verified, why.
fn check_signature(
    parsed: std::result::Result<crate::signature::Request, SignatureError>,
    digest: Option<&[u8]>,
    checks: &Checks,
    props: &crate::signature::Properties,
) -> (Value, Option<String>) {
    let mut j = json!({
        "key_type": props.key_type, "hash_method": props.hash_method,
        "certificate_uuid": props.certificate_uuid, "certificate": null,
        "ca": checks.ca.as_ref().map(|_| "checked").unwrap_or("not checked (no --ca)"),
        "verified": false, "reason": null,
    });
    let outcome = parsed.and_then(|req| {
        let digest = digest.ok_or_else(|| SignatureError::BadKey {
            key_type: req.key_type.name(),
            reason: "the image data was not hashed".into(),
        })?;
        let cert = checks.keyring.certificate(&req.certificate_uuid).map_err(|e| {
            let (uuid, reason) = (req.certificate_uuid.clone(), e.message().to_string());
            match e.kind() {
                // a secret of another type
                crate::ErrorKind::Usage => SignatureError::NotACertificate { uuid, reason },
                _ => SignatureError::Unavailable { uuid, reason },
            }
        })?;
        let anchors = checks.ca.as_deref().map(Vec::as_slice);
        let c = crate::signature::verify(&req, digest, &cert, anchors, std::time::SystemTime::now());
        if let Some(i) = &c.certificate {
            j["certificate"] = cert_json(i);
        }
        if let Some(a) = &c.anchor {
            j["ca"] = json!(format!("chains to {a}"));
        }
        c.result
    });
    match outcome {
        Ok(()) => {
            j["verified"] = json!(true);
            (j, None)
        }
        Err(e) => {
            let reason = e.to_string();
            j["reason"] = json!(reason);
            (j, Some(reason))
        }
    }
}

fn cert_json(c: &crate::signature::CertInfo) -> Value {
    json!({"subject": c.subject, "issuer": c.issuer, "serial": c.serial,
           "not_before": c.not_before, "not_after": c.not_after})
}

/// A short description of an image without encrypted volumes (`GPT, 3 volumes`).
fn describe_unencrypted(tree: &ImageTree) -> String {
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

/// Hash all of `src` (the image file, or whatever layer its bytes come from) with `h`; `done`
/// counts the bytes hashed.
fn hash_source(src: &dyn ReadAt, h: Hasher, done: &AtomicU64, stop: &AtomicBool) -> Result<String> {
    let mut d = hash_source_all(src, vec![h], done, stop)?;
    Ok(hex::encode(d.pop().unwrap_or_default()))
}

/// Chunks read ahead of the slowest hash in [`hash_source_all`].
const HASH_QUEUE: usize = 3;

/// Hash all of `src` with each of `hashers`, reading it once: this thread reads [`FILE_CHUNK`]s
/// and hands each to one thread per hash (SHA-512 has no CPU instructions here and would hold
/// SHA-256 back; a source read over the network is fetched once). `done` counts the bytes every
/// hash has taken. Returns the digests in the order of `hashers`.
fn hash_source_all(
    src: &dyn ReadAt,
    hashers: Vec<Hasher>,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Result<Vec<Vec<u8>>> {
    let size = src.size();
    let taken: Vec<AtomicU64> = hashers.iter().map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        let taken = &taken;
        let mut senders = Vec::with_capacity(hashers.len());
        let mut workers = Vec::with_capacity(hashers.len());
        for (i, mut h) in hashers.into_iter().enumerate() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(HASH_QUEUE);
            senders.push(tx);
            workers.push(s.spawn(move || {
                for chunk in rx {
                    h.update(&chunk);
                    taken[i].fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let all = taken.iter().map(|t| t.load(Ordering::Relaxed)).min().unwrap_or(0);
                    done.fetch_max(all, Ordering::Relaxed);
                }
                h.finish_bytes()
            }));
        }
        // Buffers go round: one is reused once every hash thread has let go of it.
        let mut pool: std::collections::VecDeque<Arc<Vec<u8>>> = std::collections::VecDeque::new();
        let mut off = 0u64;
        let mut result = Ok(());
        while off < size {
            if stop.load(Ordering::Relaxed) {
                result = Err(Error::io("stopped"));
                break;
            }
            let n = (size - off).min(FILE_CHUNK as u64) as usize;
            let reuse = pool.front_mut().is_some_and(|b| Arc::get_mut(b).is_some());
            let mut buf =
                if reuse { pool.pop_front().unwrap_or_default() } else { Arc::new(Vec::with_capacity(FILE_CHUNK)) };
            // unique here (fresh, or released by every hash thread): no copy is made
            let b = Arc::make_mut(&mut buf);
            b.resize(n, 0);
            if let Err(e) = src.read_exact_at(b, off) {
                result = Err(e);
                break;
            }
            if senders.iter().any(|tx| tx.send(buf.clone()).is_err()) {
                result = Err(Error::io("a ciphertext hashing thread failed"));
                break;
            }
            off += n as u64;
            pool.push_back(buf);
            if pool.len() > HASH_QUEUE + 2 {
                pool.pop_front();
            }
        }
        drop(senders);
        let digests: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        result?;
        digests.into_iter().map(|d| d.map_err(|_| Error::io("a ciphertext hashing thread failed"))).collect()
    })
}

/// A one-line progress display on standard error, only when it is a terminal.
struct Progress {
    label: String,
    bar: Option<indicatif::ProgressBar>,
    /// Plaintext and ciphertext bytes to go through.
    plain_total: u64,
    cipher_total: u64,
}

impl Progress {
    fn new(label: &str) -> Progress {
        Progress { label: label.to_string(), bar: None, plain_total: 0, cipher_total: 0 }
    }

    /// `plain` plaintext bytes hashed, `cipher` ciphertext bytes: both passes count as one
    /// fraction (the ciphertext hash may finish after the plaintext).
    fn draw(&mut self, plain: u64, cipher: u64) {
        let (label, total) = (&self.label, self.plain_total + self.cipher_total);
        let bar = self.bar.get_or_insert_with(|| crate::progress::bar(label, total, crate::progress::PERCENT, false));
        bar.set_position(plain + cipher);
    }

    /// Both passes are done: the last frame reads 100%.
    fn complete(&mut self) {
        if let Some(b) = self.bar.take() {
            crate::progress::complete(&b);
        }
    }

    /// Wipe an unfinished bar (the image failed).
    fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_orders_failures_before_warnings() {
        assert_eq!(worst(0, EXIT_WARN), EXIT_WARN);
        assert_eq!(worst(EXIT_WARN, 0), EXIT_WARN);
        assert_eq!(worst(EXIT_WARN, 3), 3);
        assert_eq!(worst(3, EXIT_MISMATCH), EXIT_MISMATCH);
        assert_eq!(worst(4, EXIT_MISMATCH), 4);
        assert_eq!(worst(1, 5), 5);
        assert_eq!([0, 6, 3, 0, 1].into_iter().fold(0, worst), 3);
    }

    #[test]
    fn sha256_argument() {
        let h = "AB".repeat(32);
        assert_eq!(parse_sha256(&h).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn os_hash_algorithms() {
        let mut h = OsAlgo::from_name("SHA512").unwrap().hasher();
        h.update(b"abc");
        assert!(h.finish().starts_with("ddaf35a193617aba"));
        assert!(OsAlgo::from_name("md5").is_none());
        let mut h = OsAlgo::Sha1.hasher();
        h.update(b"abc");
        assert_eq!(h.finish(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    /// One read of the source feeds every hash, through reused buffers: the digests are those of
    /// the whole data, whatever the number of chunks and hashes.
    #[test]
    fn one_read_many_hashes() {
        let data: Vec<u8> = (0..(3 * FILE_CHUNK + 12345)).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let algos = [OsAlgo::Sha256, OsAlgo::Sha512, OsAlgo::Sha384, OsAlgo::Sha1];
        let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
        let got = hash_source_all(&data, algos.iter().map(|a| a.hasher()).collect(), &done, &stop).unwrap();
        for (a, d) in algos.iter().zip(&got) {
            let mut h = a.hasher();
            h.update(&data);
            assert_eq!(hex::encode(d), h.finish(), "{a:?}");
        }
        assert_eq!(done.load(Ordering::Relaxed), data.len() as u64);
        assert_eq!(hash_source(&data[..0].to_vec(), OsAlgo::Sha256.hasher(), &done, &stop).unwrap().len(), 64);
        stop.store(true, Ordering::Relaxed);
        assert!(hash_source_all(&data, vec![OsAlgo::Sha256.hasher()], &done, &stop).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(100), "100 bytes");
    }
}
