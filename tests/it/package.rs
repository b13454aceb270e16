//! The Debian package (slow: builds the release binary): `scripts/package.sh` makes the .deb,
//! `dpkg -i` installs it on this machine, the man pages, completions and unit are where they
//! belong (`man -w`, `systemd-analyze verify`), and `dpkg --purge` removes every file again.
//! Root only; skipped when a luksfs package is already installed (it would be replaced).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{run_timed, tool};

const INSTALLED: &[&str] = &[
    "/usr/bin/luksfs",
    "/usr/share/man/man1/luksfs.1.gz",
    "/usr/share/man/man1/luksfs-mount.1.gz",
    "/usr/share/man/man1/luksfs-cat.1.gz",
    "/usr/share/man/man1/luksfs-inspect.1.gz",
    "/usr/share/man/man1/luksfs-verify.1.gz",
    "/usr/share/man/man1/luksfs-list.1.gz",
    "/usr/share/man/man1/luksfs-status.1.gz",
    "/usr/share/man/man1/luksfs-audit.1.gz",
    "/usr/share/bash-completion/completions/luksfs",
    "/usr/share/zsh/vendor-completions/_luksfs",
    "/usr/share/fish/vendor_completions.d/luksfs.fish",
    "/usr/lib/systemd/system/luksfs@.service",
    "/usr/share/doc/luksfs/README.md",
    "/usr/share/doc/luksfs/copyright",
    "/usr/share/luksfs/schema/inspect.schema.json",
    "/usr/share/luksfs/schema/verify.schema.json",
    "/usr/share/luksfs/schema/status.schema.json",
    "/usr/share/luksfs/schema/list.schema.json",
    "/usr/share/luksfs/schema/audit.schema.json",
];

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "luksfs"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

#[test]
fn deb_builds_installs_and_removes_cleanly() {
    need!("root", "dpkg", "dpkg-deb", "man", "cargo");
    if installed() {
        crate::util::skip("a luksfs package is already installed on this machine");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new(root.join("scripts/package.sh"));
    c.current_dir(root);
    let out = run_timed(c, Duration::from_secs(1200));
    assert_eq!(out.code, Some(0), "scripts/package.sh: {}", out.stderr);
    let deb = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "no .deb reported: {deb:?}");

    // What is inside, before installing: a stripped binary.
    let listing = crate::util::sh({
        let mut c = tool("dpkg-deb");
        c.arg("-c").arg(&deb);
        c
    });
    let listing = String::from_utf8_lossy(&listing);
    for f in INSTALLED.iter().filter(|f| !f.ends_with("copyright")) {
        assert!(listing.contains(&format!(".{f}")), "{f} missing from the package:\n{listing}");
    }
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["--purge", "luksfs"]).output();
        }
    }
    let _purge = Purge;
    let out = run_timed(
        {
            let mut c = tool("dpkg");
            c.arg("-i").arg(&deb);
            c
        },
        Duration::from_secs(300),
    );
    assert_eq!(out.code, Some(0), "dpkg -i: {}", out.stderr);
    for f in INSTALLED {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let file = crate::util::sh({
        let mut c = tool("file");
        c.arg("/usr/bin/luksfs");
        c
    });
    assert!(
        String::from_utf8_lossy(&file).contains("stripped") && !String::from_utf8_lossy(&file).contains("not stripped"),
        "{}",
        String::from_utf8_lossy(&file)
    );
    let v = crate::util::sh({
        let mut c = Command::new("/usr/bin/luksfs");
        c.arg("--version");
        c
    });
    assert!(String::from_utf8_lossy(&v).starts_with("luksfs "), "{}", String::from_utf8_lossy(&v));
    for page in ["luksfs", "luksfs-mount", "luksfs-verify"] {
        let w = crate::util::sh({
            let mut c = tool("man");
            c.args(["-w", page]);
            c
        });
        assert!(String::from_utf8_lossy(&w).contains(&format!("/usr/share/man/man1/{page}.1")), "man -w {page}");
    }
    if crate::util::which("systemd-analyze").is_some() {
        let out = run_timed(
            {
                let mut c = tool("systemd-analyze");
                c.args(["verify", "/usr/lib/systemd/system/luksfs@.service"]);
                c
            },
            Duration::from_secs(60),
        );
        assert_eq!(out.code, Some(0), "systemd-analyze verify: {}", out.stderr);
    }

    let out = run_timed(
        {
            let mut c = tool("dpkg");
            c.args(["--purge", "luksfs"]);
            c
        },
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "dpkg --purge: {}", out.stderr);
    assert!(!installed());
    for f in INSTALLED {
        assert!(!Path::new(f).exists(), "{f} left behind");
    }
}
