//! A running mount tells what it does (issue 14): `luksfs list`, `luksfs status` (served by the
//! daemon over its Unix socket, refused to other users), the `user.luksfs.*` extended attributes
//! of its files (`getfattr`), and the JSON Schemas of `docs/schema/` checked against the real
//! outputs of `inspect`, `verify`, `status` and `list` by an independent validator
//! (python-jsonschema, through `scripts/validate-json.sh`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::fixture::PB2;
use crate::util::mount::pids_for;
use crate::util::{KIB, Lab, Luksfs, MIB, Mount, Out, bin, random, run_timed, tool};

const PASS: &[u8] = b"correct horse battery staple";

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Check `doc` against `docs/schema/<schema>`; panics with the validator's findings.
#[track_caller]
pub(crate) fn validate(schema: &str, doc: &[u8], scratch: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = scratch.join(format!("doc-{}.json", schema.replace('/', "_")));
    std::fs::write(&file, doc).unwrap();
    let mut c = Command::new(root.join("scripts/validate-json.sh"));
    c.arg(root.join("docs/schema").join(schema)).arg(&file);
    let out = run_timed(c, Duration::from_secs(300));
    assert_eq!(
        out.code,
        Some(0),
        "{schema}: the document does not match its schema:\n{}\n--- document:\n{}",
        out.stderr,
        String::from_utf8_lossy(doc)
    );
}

fn json(out: &Out) -> Value {
    serde_json::from_slice(out.ok()).unwrap_or_else(|e| panic!("{}: not JSON: {e}", out.cmdline))
}

fn status_json(mnt: &Path) -> (Value, Vec<u8>) {
    let out = Luksfs::new("status").arg(mnt).arg("--json").run();
    (json(&out), out.stdout)
}

/// The image called `path` in a status report.
fn image<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("no image {path} in {report:#}"))
}

/// `getfattr -d FILE`: the `user.luksfs.*` attributes, as `name="value"` lines.
fn getfattr(file: &Path) -> String {
    let mut c = tool("getfattr");
    c.arg("-d").arg("--absolute-names").arg(file);
    let out = run_timed(c, Duration::from_secs(30));
    String::from_utf8_lossy(out.ok()).into_owned()
}

/// `dd if=FILE of=/dev/null` with `args`; must succeed.
fn dd(file: &Path, args: &[&str]) {
    let mut c = tool("dd");
    c.arg(format!("if={}", file.display())).arg("of=/dev/null").args(args);
    run_timed(c, Duration::from_secs(60)).ok();
}

/// One image that unlocks and one whose key is wrong, mounted with `--daemon`: `list` and
/// `status` show both (the failure with its reason), bytes read grow with reads through the
/// kernel, sub-page reads show in the cache hit rate, every file answers `getfattr -d`, another
/// user is refused, and the socket is gone after the unmount. Outputs match their schemas.
#[test]
fn list_status_and_xattrs_of_a_live_mount() {
    need!("fuse", "cryptsetup", "getfattr", "setpriv", "dd", "python3");
    let lab = Lab::new();
    let good = lab.cs_luks2("good.luks", random("status-good", 2 * MIB), PASS, PB2);
    let _bad = lab.cs_luks2("bad.luks", random("status-bad", MIB), b"another passphrase", PB2);
    let mnt = lab.root().join("mnt");
    let (m, out) = Mount::daemon(&lab.src, &mnt, &[os("--key-file"), good.key.as_os_str()], lab.root());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mnt = m.mnt.canonicalize().unwrap();
    let src = lab.src.canonicalize().unwrap();
    let scratch = lab.root();

    // list: this mount, with the daemon's pid and counts
    let out = Luksfs::new("list").arg("--json").run();
    let list = json(&out);
    validate("list.schema.json", &out.stdout, scratch);
    assert_eq!(list["schema_version"], 1);
    let me = list["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mount_point"] == mnt.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not listed: {list:#}", mnt.display()));
    let pids = pids_for(&m.mnt);
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(me["pid"], pids[0], "{me:#}");
    assert_eq!(me["source"], src.to_str().unwrap());
    assert_eq!((me["images"].as_u64(), me["unlocked"].as_u64(), me["failed"].as_u64()), (Some(2), Some(1), Some(1)));
    assert_eq!(me["error"], Value::Null);
    let text = String::from_utf8(Luksfs::new("list").run().ok().to_vec()).unwrap();
    let line = text.lines().find(|l| l.contains(mnt.to_str().unwrap())).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [src.to_str().unwrap(), mnt.to_str().unwrap(), &pids[0].to_string(), "2", "1"],
        "{text}"
    );

    // status: both images, the failure with its reason
    let (st, raw) = status_json(&mnt);
    validate("status.schema.json", &raw, scratch);
    assert_eq!(st["mount"]["pid"], pids[0]);
    assert_eq!(st["totals"], serde_json::json!({"images": 2, "unlocked": 1, "locked": 0, "failed": 1}));
    let g = image(&st, "good.luks");
    assert_eq!((g["state"].as_str(), g["format"].as_str()), (Some("unlocked"), Some("LUKS2")), "{g:#}");
    assert_eq!(g["cipher"], "aes-xts-plain64");
    assert_eq!(g["size"], good.plain.len());
    assert_eq!(g["reason"], Value::Null);
    assert_eq!(g["bytes_read"], 0, "nothing read yet: {g:#}");
    let b = image(&st, "bad.luks");
    assert_eq!(b["state"], "failed", "{b:#}");
    assert_eq!(b["reason"]["class"], "bad-key", "{b:#}");
    assert!(b["reason"]["message"].as_str().unwrap().contains("no key slot opened"), "{b:#}");
    let text = String::from_utf8(Luksfs::new("status").arg(&mnt).run().ok().to_vec()).unwrap();
    assert!(text.contains("state:      failed: no key slot opened"), "{text}");
    assert!(text.contains("format:     LUKS2, aes-xts-plain64"), "{text}");

    // bytes read grow with a read through the kernel; sub-page direct reads go through the cache
    dd(&mnt.join("good.luks.raw"), &["bs=64K"]);
    let (st, _) = status_json(&mnt);
    let read = image(&st, "good.luks")["bytes_read"].as_u64().unwrap();
    assert!(read >= good.plain.len() as u64, "read {read} of {}", good.plain.len());
    assert_eq!(image(&st, "bad.luks")["bytes_read"], 0);
    dd(&mnt.join("good.luks.raw"), &["bs=512", "count=8", "skip=100", "iflag=direct"]);
    let (st, raw) = status_json(&mnt);
    validate("status.schema.json", &raw, scratch);
    let c = &st["cache"];
    assert!(c["misses"].as_u64().unwrap() >= 1 && c["hits"].as_u64().unwrap() >= 7, "{c:#}");
    assert!(c["hit_rate"].as_f64().is_some_and(|r| r > 0.5 && r < 1.0), "{c:#}");
    assert!(image(&st, "good.luks")["bytes_read"].as_u64().unwrap() >= read + 8 * 512);

    // getfattr -d on the files of the mount
    let attrs = getfattr(&mnt.join("good.luks.raw"));
    for want in [
        "user.luksfs.format=\"LUKS2\"".to_string(),
        "user.luksfs.cipher=\"aes-xts-plain64\"".to_string(),
        "user.luksfs.state=\"unlocked\"".to_string(),
        format!("user.luksfs.source=\"{}\"", src.join("good.luks").display()),
    ] {
        assert!(attrs.contains(&want), "no {want} in\n{attrs}");
    }
    let attrs = getfattr(&mnt.join("bad.luks.raw"));
    assert!(attrs.contains("user.luksfs.state=\"failed: no key slot opened"), "{attrs}");
    assert!(attrs.contains("(bad-key)\""), "{attrs}");
    let mut c = tool("getfattr");
    c.args(["-n", "user.luksfs.nope"]).arg(mnt.join("good.luks.raw"));
    let out = run_timed(c, Duration::from_secs(30));
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("No such attribute"), "{}", out.stderr);
    // the size probe (`getfattr` asks with size 0 first) and an exact value
    let mut c = tool("getfattr");
    c.args(["--only-values", "-n", "user.luksfs.format"]).arg(mnt.join("good.luks.raw"));
    assert_eq!(run_timed(c, Duration::from_secs(30)).ok(), b"LUKS2");

    // another user is refused
    let mut c = tool("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]).arg(bin()).arg("status").arg(&mnt);
    let out = run_timed(c, Duration::from_secs(30));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // the daemon removes its socket on the way out
    let sock = socket_of(&st);
    assert!(sock.exists(), "{}", sock.display());
    drop(m);
    let t0 = Instant::now();
    while sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sock.exists(), "{} left behind", sock.display());
}

/// Where the daemon of a mount made by root listens (src/status/socket.rs).
fn socket_of(report: &Value) -> PathBuf {
    assert_eq!(report["mount"]["uid"], 0, "the tests run as root");
    PathBuf::from(format!("/run/luksfs/{}.sock", report["mount"]["dev"].as_str().unwrap().replace(':', "-")))
}

/// `status` of something that is not a luksfs mount is a usage error; a mount whose daemon is
/// gone (killed: its socket left behind) is still listed, from mountinfo, with why it did not
/// answer, and `status` says so.
#[test]
fn list_shows_a_mount_whose_daemon_does_not_answer() {
    need!("fuse", "qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", random("status-dead", 64 * KIB), PASS, "");
    let out = Luksfs::new("status").arg(lab.root()).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("not luksfs") || out.stderr.contains("nothing is mounted"), "{}", out.stderr);
    let m = lab.mount(&[os("--key-file"), img.key.as_os_str()]);
    let mnt = m.mnt.canonicalize().unwrap();
    let t0 = Instant::now();
    let st = loop {
        let out = Luksfs::new("status").arg(&mnt).arg("--json").run();
        if out.code == Some(0) {
            break json(&out);
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", out.stderr);
        std::thread::sleep(Duration::from_millis(50));
    };
    let sock = socket_of(&st);
    // SIGKILL: no clean-up; the mount stays (its connection dies with the process).
    let pid = st["mount"]["pid"].as_u64().unwrap();
    assert!(tool("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sock.exists(), "the killed daemon's socket should still be there");
    let out = Luksfs::new("list").arg("--json").run();
    validate("list.schema.json", &out.stdout, lab.root());
    let list = json(&out);
    let me = list["mounts"].as_array().unwrap().iter().find(|e| e["mount_point"] == mnt.to_str().unwrap()).cloned();
    let me = me.unwrap_or_else(|| panic!("{} not listed: {list:#}", mnt.display()));
    assert_eq!((me["pid"].clone(), me["images"].clone()), (Value::Null, Value::Null), "{me:#}");
    assert!(me["error"].as_str().unwrap().contains("does not answer"), "{me:#}");
    let text = String::from_utf8(Luksfs::new("list").run().ok().to_vec()).unwrap();
    assert!(text.contains("does not answer"), "{text}");
    let out = Luksfs::new("status").arg(&mnt).run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("does not answer"), "{}", out.stderr);
    drop(m); // fusermount3 -u of the dead mount
}

/// The JSON Schemas are valid draft 2020-12 schemas and the real outputs of `inspect --json`
/// (LUKS1, LUKS2, qcow2, a refused qcow2, a truncated LUKS2) and `verify --json` (OK, a wrong key, a directory)
/// match them, `schema_version` first.
#[test]
fn inspect_and_verify_json_match_their_schemas() {
    need!("qemu-img", "cryptsetup", "python3");
    let lab = Lab::new();
    let l1 = lab.qemu_luks("a/l1.luks", random("schema-l1", 256 * KIB), PASS, "");
    let l2 = lab.cs_luks2("a/l2.luks", random("schema-l2", MIB), PASS, PB2);
    let q = lab.qcow2_create("a/q.qcow2", MIB as u64, PASS, "", &[]);
    let refused = lab.qcow2_external_data("x/ext.qcow2", PASS);
    let broken = lab.root().join("broken.luks");
    std::fs::copy(&l2.path, &broken).unwrap();
    crate::util::fixture::truncate(&broken, 2 * MIB as u64 + 1000);
    let s = lab.root();
    let check = |schema: &str, out: &Out| {
        assert!(!out.stdout.is_empty(), "{}: no output; stderr {}", out.cmdline, out.stderr);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.as_object().unwrap().keys().next().map(String::as_str), Some("schema_version"), "{v:#}");
        validate(schema, &out.stdout, s);
    };
    for img in [&l1.path, &l2.path, &q.path, &refused.path, &broken] {
        let out = Luksfs::new("inspect").arg(img).arg("--json").run();
        check("inspect.schema.json", &out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["safe_to_open"], out.code == Some(0), "{v:#}");
    }
    let ok = Luksfs::new("verify").arg(&l2.path).key(&l2.key).arg("--json").run();
    assert_eq!(ok.code, Some(6), "unrecognised random plaintext is WARN: {}", ok.stderr);
    check("verify.schema.json", &ok);
    let wrong = lab.key("wrong.key", b"not it");
    let bad = Luksfs::new("verify").arg(&l1.path).key(&wrong).arg("--json").run();
    assert_eq!(bad.code, Some(3), "{}", bad.stderr);
    check("verify.schema.json", &bad);
    let dir = Luksfs::new("verify").arg(lab.src.join("a")).key(&l1.key).arg("--json").run();
    check("verify.schema.json", &dir);
    // a document that breaks the schema is caught (the validator is not a rubber stamp)
    let mut v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    v["verdict"] = "MAYBE".into();
    let file = s.join("bad-doc.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new(root.join("scripts/validate-json.sh"));
    c.arg(root.join("docs/schema/verify.schema.json")).arg(&file);
    assert_eq!(run_timed(c, Duration::from_secs(300)).code, Some(1));
}
