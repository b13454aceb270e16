//! Keys on the command line (issue 14): `--keytab` for `cat`, `inspect` and `verify` (one image,
//! or a folder with a key per image), the note for a key file ending in a newline, `--tries`,
//! and `systemd-ask-password` when there is no terminal under systemd.

use std::process::Command;
use std::time::Duration;

use crate::util::fixture::PB2;
use crate::util::{KIB, Lab, Luksfs, bin, mark, run_timed};

/// `cat IMAGE --keytab F` takes the image's line (by path relative to the keytab's folder, or
/// by file name); `verify DIR --keytab F` checks a folder with a key per image; `verify IMAGE
/// --keytab F`; `inspect --keytab F` takes a detached header from the line.
#[test]
fn keytab_for_cat_verify_and_inspect() {
    need!("qemu-img", "cryptsetup");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", mark("kt-a", 64 * KIB), b"key of a", "");
    let b = lab.qemu_luks("sub/b.luks", mark("kt-b", 96 * KIB), b"key of b", "");
    let d = lab.cs_luks2_detached("d.img", mark("kt-d", 128 * KIB), b"key of d", PB2);
    let hdr = d.header.clone().unwrap();
    // A keytab beside src/: a.luks and sub/b.luks match by file name, src/d.img by its path
    // relative to the keytab's folder.
    let kt = lab.root().join("images.keytab");
    std::fs::write(
        &kt,
        format!(
            "a.luks {}\nsub/b.luks {}\nsrc/d.img {} header={}\n",
            a.key.display(),
            b.key.display(),
            d.key.display(),
            hdr.display()
        ),
    )
    .unwrap();
    for img in [&a, &b, &d] {
        Luksfs::new("cat").arg(&img.path).arg("--keytab").arg(&kt).run().assert_bytes(&img.plain);
        // OK or WARN (the test plaintext is not a known kind of disk), never FAIL.
        let out = Luksfs::new("verify").arg(&img.path).arg("--keytab").arg(&kt).run();
        assert!(matches!(out.code, Some(0 | 6)), "{}: {:?} {}", out.cmdline, out.code, out.stderr);
    }
    // inspect needs no key, but reads the detached header named by the keytab line.
    let out = Luksfs::new("inspect").arg(&d.path).arg("--keytab").arg(&kt).run();
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("detached header:") && text.contains("format: luks2"), "{text}");
    // A folder with a key per image: a keytab relative to the folder, as for mount.
    let dir_kt = lab.key(
        "dir.keytab",
        format!(
            "a.luks {}\nsub/b.luks {}\nd.img {} header={}\n",
            a.key.display(),
            b.key.display(),
            d.key.display(),
            hdr.display()
        )
        .as_bytes(),
    );
    let out = Luksfs::new("verify").arg(&lab.src).arg("--keytab").arg(&dir_kt).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.code, Some(0 | 6)), "{}: {}\n{text}", out.cmdline, out.stderr);
    assert!(text.contains("3 images") && text.contains(" 0 FAIL"), "{text}");
    // One key for all: the others fail with a wrong key (exit 3).
    let out = Luksfs::new("verify").arg(&lab.src).arg("--key-file").arg(&a.key).run();
    assert_eq!(out.code, Some(3), "{}: {}", out.cmdline, out.stderr);
    // No line for the image.
    let other = lab.key("other.keytab", format!("zzz.luks {}\n", a.key.display()).as_bytes());
    let out = Luksfs::new("cat").arg(&a.path).arg("--keytab").arg(&other).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no line for"), "{}", out.stderr);
}

/// A key file whose last byte is a newline (as `echo` writes) that does not open the image: the
/// wrong-key message says so and how to write one without (`printf %s`). Without the newline
/// the same wrong key gets no such note.
#[test]
fn wrong_key_with_a_trailing_newline_says_so() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("nl", 64 * KIB), b"hunter2", "");
    let nl = lab.key("echoed.key", b"hunter2\n");
    for sub in ["cat", "verify"] {
        let out = Luksfs::new(sub).arg(&img.path).key(&nl).run();
        assert_eq!(out.code, Some(3), "{}: {}", out.cmdline, out.stderr);
        assert!(
            out.stderr.contains("ends with a newline") && out.stderr.contains("printf %s"),
            "{sub}: {}",
            out.stderr
        );
    }
    let out = Luksfs::new("verify").arg(&lab.src).key(&nl).run();
    assert_eq!(out.code, Some(3), "{}: {}", out.cmdline, out.stderr);
    assert!(out.stderr.contains("printf %s"), "verify DIR: {}", out.stderr);
    let wrong = lab.key("wrong.key", b"hunter3");
    let out = Luksfs::new("cat").arg(&img.path).key(&wrong).run();
    assert_eq!(out.code, Some(3));
    assert!(!out.stderr.contains("newline"), "{}", out.stderr);
}

/// No terminal, run by systemd (`INVOCATION_ID` set): the passphrase is asked through
/// `systemd-ask-password`, again after a wrong one, `--tries` times in all. A stand-in for
/// systemd's agent answers from a list (wrong first) and logs how it was called.
#[test]
fn tries_through_systemd_ask_password() {
    need!("qemu-img", "sh");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("ask", 64 * KIB), b"right one", "");
    let fake = lab.root().join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let answers = lab.root().join("answers");
    let log = lab.root().join("ask.log");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{log}'\nn=$(wc -l < '{log}')\nsed -n \"${{n}}p\" '{answers}'\n",
        log = log.display(),
        answers = answers.display()
    );
    let tool = fake.join("systemd-ask-password");
    std::fs::write(&tool, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cat = |tries: &str| {
        let mut c = Command::new(bin());
        c.arg("cat").arg(&img.path).args(["--tries", tries]);
        c.env("PATH", format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default()))
            .env("INVOCATION_ID", "0123456789abcdef")
            .env_remove("RUST_LOG");
        run_timed(c, Duration::from_secs(120))
    };
    std::fs::write(&answers, "wrong\nstill wrong\nright one\n").unwrap();
    let out = cat("3");
    assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    assert_eq!(out.stdout, img.plain);
    assert!(out.stderr.contains("attempt 1 of 3") && out.stderr.contains("attempt 2 of 3"), "{}", out.stderr);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 3, "{calls}");
    assert!(calls.contains("--id=luksfs:") && calls.contains("Enter passphrase for"), "{calls}");
    // One try only: the first (wrong) answer ends it with exit 3.
    std::fs::remove_file(&log).unwrap();
    let out = cat("1");
    assert_eq!(out.code, Some(3), "{}: {}", out.cmdline, out.stderr);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // Without systemd and without a terminal nobody is asked: a usage error.
    let mut c = Command::new(bin());
    c.arg("cat").arg(&img.path).env_remove("INVOCATION_ID").env_remove("NOTIFY_SOCKET");
    let out = run_timed(c, Duration::from_secs(60));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}
