//! `luksfs verify IMAGE|DIR`: the options, one image or every image of a source, and the exit
//! code (the worst of them). Each image's checks and report are [`crate::report::verify`].

use crate::catalog::Location;
use crate::cli::source_keys::{Given, Shown, source_keys};
use crate::cli::{ImageArgs, KeyArgs, KeytabArgs, PromptArgs, print_stdout};
use crate::dir::Tree;
use crate::image::UnlockSettings;
use crate::keys::{KeySource, Keyring};
use crate::report::Progress;
use crate::report::verify::{Checks, Known, describe_unencrypted, verify_image};
use crate::report::{EXIT_WARN, Verdict, worst};
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, Result};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    let (opts, from_tab) = crate::cli::unlock_one::keytab_line(&a.keytab, &a.source, a.opts.options())?;
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
    // (a keytab line or --barbican-secret wins: Cinder is not asked then)
    let backup_key = match (&a.barbican_secret, &from_tab) {
        (None, None) => crate::cli::unlock_one::backup_key_id(&item, &a.key),
        _ => None,
    };
    let secret = a.barbican_secret.as_deref().or(backup_key.as_deref());
    let keys = crate::cli::unlock_one::ImageKey::new(&a.source, &a.key, from_tab, secret, &opts);
    let settings = UnlockSettings { tries: a.prompt.tries, ..settings };
    let key = |v: &Volume| keys.key_for(v);
    let one_get = item.one_get();
    let report = verify_image(
        &tree,
        &opts,
        &checks,
        progress,
        &key,
        settings,
        Known { backup: item.backup(), glance: item.glance(), one_get: one_get.as_deref() },
    );
    let note = report.error.as_ref().and_then(|e| keys.note(e));
    let text = if a.json {
        serde_json::to_string_pretty(&crate::schema::versioned(report.json.clone())).unwrap_or_default() + "\n"
    } else {
        crate::report::render_text(&report.json)
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
    let source = a.source.display().to_string();
    let given = Given {
        key: &a.key,
        keytab: a.keytab.keytab.as_deref(),
        barbican_secret: Some(a.barbican_secret.as_deref()),
        source: &source,
    };
    let shown = Shown { options: a.opts.options(), all_volumes: true, verify: true };
    let (plan, unlocker) = source_keys(given, shown, settings)?;
    let tree = Tree::scan(location, &plan)?;
    let checks = Checks {
        expect_sha256: None,
        threads: threads(a),
        ca: load_ca(a.ca.as_deref())?,
        keyring: unlocker.keys.clone(),
    };
    // Every image unlocked first: an LVM2 volume group may have its PVs in several of them (each
    // LUKS volume holding one), and an LV assembled across them is reported with its host image.
    // A failure here is met again, and reported, when its image is checked.
    let _ = unlocker.unlock_every(&tree);
    // A backup is checked end to end even when it holds no encryption (its digests, at least).
    // (an image whose store refuses byte ranges is read in one GET: its header was not probed)
    let (with, without): (Vec<_>, Vec<_>) = tree.images.iter().partition(|e| {
        e.tree.has_encryption()
            || e.backup.is_some()
            || e.tree.ctx.hosts_spanned()
            || e.one_get.as_ref().is_some_and(|g| g.refuses_ranges())
    });
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
            Known { backup: entry.backup.as_ref(), glance: entry.glance.as_ref(), one_get: entry.one_get.as_deref() },
        );
        code = worst(code, r.exit_code);
        if let Some(e) = &r.error {
            let from_tab = plan.keytab.get(entry.rel()).map(|t| &t.key).filter(|k| **k != KeySource::Default);
            let file = crate::cli::unlock_one::key_file_of(&a.key, from_tab);
            if let Some(n) = crate::cli::unlock_one::newline_note(e, file.as_ref())
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

/// The certificates of `--ca FILE` (a usage error when unreadable or without certificates).
fn load_ca(path: Option<&Path>) -> Result<Option<Arc<Vec<x509_cert::Certificate>>>> {
    let Some(path) = path else { return Ok(None) };
    let pem = std::fs::read(path).map_err(|e| Error::from_io("--ca: cannot read", &e).with_path(path))?;
    let certs =
        crate::signature::cert::parse_bundle(&pem).map_err(|e| Error::usage(format!("--ca: {e}")).with_path(path))?;
    Ok(Some(Arc::new(certs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_argument() {
        let h = "AB".repeat(32);
        assert_eq!(parse_sha256(&h).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }
}
