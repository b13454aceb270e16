//! cryptsetup's own LUKS2 header-validation suite, judged by luksfs.
//!
//! cryptsetup 2.6.1 ships `tests/generators/generate-*.sh` (each turns a valid LUKS2 header into
//! one damaged or unusual header, with `jq`, `xxd` and `dd`) and `tests/luks2-validation-test`,
//! which says for each generated header whether `cryptsetup luksDump` must accept it (`R`) or
//! refuse it (`F`). This test fetches that suite from Debian's source package at test time
//! (`apt-get source cryptsetup`, cached under `target/`), runs every generator over the suite's
//! base header and over the same header with its key slots' KDF renamed from the pre-release name
//! `argon2` to `argon2i`, and runs `luksfs inspect --json` on each result: an `R` header must
//! inspect cleanly (exit 0), an `F` header must be called damaged (exit 4), apart from the
//! documented reader refusals in [`READER_REFUSALS`].

use crate::util::fixture::luks2_edit_json;
use crate::util::{Lab, have, run_timed, sh, skip};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The cryptsetup release whose verdicts luksfs follows (Debian 12 "bookworm" ships it).
const VERSION: &str = "2.6.1";

/// Headers cryptsetup accepts but luksfs cannot serve (its documented refusals), with the exit
/// code luksfs gives instead of 0.
const READER_REFUSALS: &[(&str, i32, &str)] = &[
    // A segment of a type other than `crypt`: nothing to decrypt (exit 5, unsupported).
    ("luks2-segment-unknown-type.img", 5, "unsupported type 'some_type'"),
    // Two segments (a second, unknown one after the crypt segment): luksfs serves exactly one
    // data segment (exit 5, unsupported).
    ("luks2-segment-two.img", 5, "segments"),
    // A crypt segment of 2^64 - 512 bytes: valid metadata, but far longer than the 16 MiB file
    // (exit 4, the file is truncated).
    ("luks2-uint64-max-segment-size.img", 4, "truncated"),
];

/// Where the unpacked source package is kept between runs.
fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cryptsetup-source")
}

/// `tests/` of the unpacked cryptsetup source package, fetching it when it is not cached.
/// `None` when it cannot be had (after [`skip`], which fails under `CI=true`).
fn suite() -> Option<PathBuf> {
    let tests = cache().join(format!("cryptsetup-{VERSION}/tests"));
    if tests.join("luks2-validation-test").is_file() && tests.join("generators/lib.sh").is_file() {
        return Some(tests);
    }
    if !have(&["root", "apt-get", "dpkg-source"]) {
        return None;
    }
    if let Err(why) = ensure_deb_src() {
        skip(&format!("cannot add a deb-src entry for apt-get source: {why}"));
        return None;
    }
    let work = cache().join(format!("fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let mut c = Command::new("apt-get");
    c.args(["source", "-qq", "cryptsetup"]).current_dir(&work);
    let out = run_timed(c, Duration::from_secs(600));
    if out.code != Some(0) {
        skip(&format!("apt-get source cryptsetup failed ({}): {}", out.status, out.stderr));
        return None;
    }
    let got = work.join(format!("cryptsetup-{VERSION}"));
    if !got.join("tests/luks2-validation-test").is_file() {
        let found: Vec<String> = std::fs::read_dir(&work)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        skip(&format!("apt-get source cryptsetup did not give cryptsetup {VERSION} (got: {})", found.join(", ")));
        return None;
    }
    let dest = cache().join(format!("cryptsetup-{VERSION}"));
    if !dest.exists() {
        std::fs::rename(&got, &dest).unwrap();
    }
    let _ = std::fs::remove_dir_all(&work);
    Some(tests)
}

/// Make `apt-get source` work: when no source index is configured, add `deb-src` entries that
/// mirror the Debian `deb` entries already configured (deb822 `debian.sources` or one-line
/// `sources.list`), then `apt-get update`.
fn ensure_deb_src() -> Result<(), String> {
    let mut probe = Command::new("apt-get");
    probe.args(["source", "--print-uris", "-qq", "cryptsetup"]);
    let out = run_timed(probe, Duration::from_secs(120));
    if out.code == Some(0) && String::from_utf8_lossy(&out.stdout).contains(".dsc") {
        return Ok(());
    }
    let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
    let (path, text) = if let Ok(s) = std::fs::read_to_string(deb822) {
        let stanzas: Vec<String> = s
            .split("\n\n")
            .filter(|st| st.lines().any(|l| l.trim() == "Types: deb"))
            .map(|st| st.replace("Types: deb", "Types: deb-src"))
            .collect();
        ("/etc/apt/sources.list.d/luksfs-deb-src.sources", stanzas.join("\n\n") + "\n")
    } else {
        let s = std::fs::read_to_string("/etc/apt/sources.list").map_err(|e| format!("/etc/apt/sources.list: {e}"))?;
        let lines: Vec<String> =
            s.lines().filter(|l| l.starts_with("deb ")).map(|l| l.replacen("deb ", "deb-src ", 1)).collect();
        ("/etc/apt/sources.list.d/luksfs-deb-src.list", lines.join("\n") + "\n")
    };
    if text.trim().is_empty() {
        return Err("no Debian deb entry to mirror".into());
    }
    std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    let mut up = Command::new("apt-get");
    up.args(["update", "-qq"]);
    let out = run_timed(up, Duration::from_secs(600));
    if out.code != Some(0) {
        return Err(format!("apt-get update failed: {}", out.stderr));
    }
    Ok(())
}

/// `(image name, cryptsetup accepts it)` for every `RUN` line of `luks2-validation-test`.
fn verdicts(tests: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(tests.join("luks2-validation-test")).unwrap();
    let v: Vec<(String, bool)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("RUN")).then_some(())?;
            let name = w.next()?.to_string();
            let verdict = w.next()?.trim_matches('"');
            Some((name, verdict == "R"))
        })
        .collect();
    assert!(v.len() >= 80, "only {} RUN lines in luks2-validation-test", v.len());
    v
}

/// Run every generator over `base`, writing the headers into `out`.
fn generate(tests: &Path, base: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let gens = tests.join("generators");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&gens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("generate-"))
        .collect();
    scripts.sort();
    for s in scripts {
        let mut c = Command::new("bash");
        c.arg(&s).arg(out).arg(base).current_dir(&gens);
        sh(c);
    }
}

/// luksfs's verdict on one header: the exit code of `inspect --json`, its report and stderr.
fn inspect(img: &Path) -> (i32, serde_json::Value, String) {
    let mut c = Command::new(crate::util::bin());
    c.arg("inspect").arg("--json").arg(img);
    let out = run_timed(c, Duration::from_secs(60));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.code(), report, out.stderr)
}

#[test]
fn cryptsetup_luks2_validation_suite_verdicts() {
    if !have(&["jq", "xxd", "xz", "dd"]) {
        return;
    }
    let Some(tests) = suite() else { return };
    let lab = Lab::new();
    let shipped = lab.place("luks2_valid_hdr.img");
    let xz = tests.join("luks2_valid_hdr.img.xz");
    let mut c = Command::new("xz");
    c.arg("-dkc").arg(&xz);
    std::fs::write(&shipped, sh(c)).unwrap();
    // The suite's base header names its KDF `argon2`, the pre-release name of argon2i, which
    // cryptsetup accepts in the header but cannot unlock. The same header with `argon2i` runs the
    // suite over key slots luksfs (and cryptsetup) can use.
    let renamed = lab.place("luks2_valid_hdr-argon2i.img");
    std::fs::copy(&shipped, &renamed).unwrap();
    luks2_edit_json(&renamed, |s| s.replace(r#""type":"argon2","#, r#""type":"argon2i","#));

    let verdicts = verdicts(&tests);
    let mut total = 0;
    let mut agree = 0;
    let mut wrong = Vec::new();
    for (label, base) in [("argon2", &shipped), ("argon2i", &renamed)] {
        let out = lab.place(&format!("{label}/out"));
        generate(&tests, base, &out);
        for (name, accepted) in &verdicts {
            total += 1;
            let img = out.join(name);
            assert!(img.is_file(), "generator output {} is missing", img.display());
            let (code, report, stderr) = inspect(&img);
            let refusal = READER_REFUSALS.iter().find(|r| r.0 == name);
            let (want, why) = match refusal {
                Some((_, code, why)) => (*code, *why),
                None if *accepted => (0, ""),
                None => (4, ""),
            };
            if code == want && stderr.contains(why) {
                agree += 1;
            } else {
                let verdict = if *accepted { "accepts" } else { "rejects" };
                let line = stderr.lines().next().unwrap_or("");
                wrong.push(format!(
                    "[{label}] {name}: cryptsetup {verdict}, luksfs inspect exit {code} (want {want}): {line}"
                ));
                continue;
            }
            if *accepted && refusal.is_none() {
                // inspect says which copy it read, and why the other one was not used.
                let copy = &report["luks"]["header_copy"];
                // The generators damage the primary copy of these (hdr0), or leave only the secondary.
                let want_copy =
                    if name.ends_with("-secondary.img") || name.contains("hdr0") { "secondary" } else { "primary" };
                if copy["used"] != want_copy || copy["other_copy_problem"].as_str().is_none_or(|p| p.is_empty()) {
                    wrong.push(format!(
                        "[{label}] {name}: inspect reports header copy {copy}, want {want_copy} and why"
                    ));
                }
                // Every key slot of the shipped header uses the unknown KDF `argon2`: each is
                // listed as unusable with the reason, and the header stays usable.
                let slots = report["luks"]["keyslots"].as_array().cloned().unwrap_or_default();
                let argon2 = slots.iter().filter(|s| s["kdf"]["type"] == "argon2");
                if slots.is_empty()
                    || argon2.clone().any(|s| !s["unusable"].as_str().is_some_and(|r| r.contains("argon2")))
                    || (label == "argon2" && argon2.count() == 0)
                {
                    wrong.push(format!(
                        "[{label}] {name}: key slots not listed as expected: {}",
                        report["luks"]["keyslots"]
                    ));
                }
            }
        }
    }
    println!("cryptsetup {VERSION} LUKS2 validation suite: {agree}/{total} agree");
    eprintln!("cryptsetup {VERSION} LUKS2 validation suite: {agree}/{total} agree");
    assert!(wrong.is_empty(), "{} problems over {total} headers:\n{}", wrong.len(), wrong.join("\n"));
}

/// Rewrite the JSON of both copies as a value (checksums fixed).
fn edit(p: &Path, f: impl Fn(&mut serde_json::Value)) {
    luks2_edit_json(p, |s| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        f(&mut v);
        v.to_string()
    });
}

/// A key slot with a KDF luksfs does not know makes only that slot unusable, as in cryptsetup:
/// the volume opens with another slot (even when the unknown one is preferred), `inspect` lists
/// the reason, and when no other slot exists, `cat` says why (exit 5) instead of "wrong key".
#[test]
fn unknown_kdf_makes_only_that_key_slot_unusable() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("one.img", crate::util::random("unknown-kdf", 64 * crate::util::KIB), b"pw", &[]);
    let two = lab.place("two.img");
    std::fs::copy(&img.path, &two).unwrap();
    edit(&two, |j| {
        let mut k = j["keyslots"]["0"].clone();
        let end: u64 = ["offset", "size"].iter().map(|f| k["area"][f].as_str().unwrap().parse::<u64>().unwrap()).sum();
        k["area"]["offset"] = end.to_string().into();
        k["kdf"]["type"] = "argon2".into();
        k["priority"] = 2.into();
        j["keyslots"]["1"] = k;
        j["digests"]["0"]["keyslots"].as_array_mut().unwrap().push("1".into());
    });
    let two = crate::util::Image { path: two, ..img.clone() };
    two.check_cat();
    let (code, report, _) = inspect(&two.path);
    assert_eq!(code, 0);
    let slots = report["luks"]["keyslots"].as_array().unwrap();
    assert!(slots[0].get("unusable").is_none(), "{}", slots[0]);
    assert!(slots[1]["unusable"].as_str().unwrap().contains("unknown KDF type 'argon2'"), "{}", slots[1]);

    let only = lab.place("only.img");
    std::fs::copy(&img.path, &only).unwrap();
    edit(&only, |j| j["keyslots"]["0"]["kdf"]["type"] = "argon2".into());
    let only = crate::util::Image { path: only, ..img.clone() };
    crate::hostile::expect_class(&only, 5, &[]);
    let (code, _, _) = inspect(&only.path);
    assert_eq!(code, 0, "the header itself is valid");
}
