//! The calling convention of `mount.fuse3` (what `mount -t fuse.luksfs` and `/etc/fstab` use):
//! `luksfs SOURCE MOUNTPOINT [-o OPTIONS]`, rewritten into `luksfs mount SOURCE MOUNTPOINT
//! --daemon ...` before the command line is parsed.
//!
//! What `mount(8)` passes was checked with a stand-in helper on Debian 12 (util-linux 2.38,
//! fuse3 3.14): `mount -t fuse.luksfs /a /m -o keytab=/k,allow_other,noauto,nofail` runs
//! `luksfs /a /m -o rw,keytab=/k,allow_other,dev,suid`: `mount(8)` keeps `noauto`, `nofail`,
//! `_netdev`, `x-systemd.*`, `defaults` and `auto` to itself, turns `user`/`users` into
//! `noexec,nosuid,nodev`, and adds `rw` (unless `ro`) and `dev,suid` (unless `nodev`/`nosuid`).
//! So here `rw`, `dev` and `suid` are dropped (a luksfs mount is always read-only, nodev,
//! nosuid), mount(8)'s own options are dropped should they arrive, every `-o NAME[=VALUE]` that
//! is a long option of `luksfs mount` (`keytab=`, `key-file=`, `cache-size=`, `threads=`, ...;
//! `_` may stand for `-`) becomes `--NAME [VALUE]`, and the rest stays in `-o` for FUSE
//! (`allow_other`, `default_permissions`, `noexec`, ...). `mount.fuse3` waits for the helper,
//! so the mount runs as `--daemon` (returning once mounted) unless `-f` is given.

use clap::CommandFactory;
use std::ffi::{OsStr, OsString};

/// Options `mount(8)` handles itself (or adds by default) that luksfs ignores.
fn ignored(opt: &str) -> bool {
    matches!(
        opt,
        "noauto" | "auto" | "nofail" | "_netdev" | "user" | "users" | "nouser" | "defaults" | "rw" | "dev" | "suid"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
}

/// Long options of `luksfs mount` never taken from `-o`.
const NOT_FROM_O: &[&str] = &["help", "version", "daemon"];

/// `(takes a value)` for the long option `name` of `luksfs mount`, if it has one.
fn mount_long_option(name: &str) -> Option<bool> {
    if NOT_FROM_O.contains(&name) {
        return None;
    }
    let cmd = crate::cli::Cli::command();
    let mount = cmd.find_subcommand("mount")?;
    let a = mount.get_arguments().find(|a| a.get_long() == Some(name))?;
    Some(a.get_action().takes_values())
}

/// Whether `args` (with the program name first) is a `mount.fuse3`-style call: the first
/// argument is not a subcommand or an option, and a mount point follows.
pub fn is_helper_call(args: &[OsString]) -> bool {
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else { return args.len() > 2 };
    if first.starts_with('-') || args.len() < 3 {
        return false;
    }
    let cmd = crate::cli::Cli::command();
    let sub = cmd.get_subcommands().any(|s| s.get_name() == first || s.get_all_aliases().any(|n| n == first));
    !sub && first != "help"
}

/// Rewrite a `mount.fuse3`-style command line into `luksfs mount ...`; any other command line
/// is returned unchanged.
pub fn rewrite(args: Vec<OsString>) -> Vec<OsString> {
    if !is_helper_call(&args) {
        return args;
    }
    let mut it = args.into_iter();
    let prog = it.next().unwrap_or_else(|| OsString::from("luksfs"));
    let (source, mountpoint) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
    let mut out = vec![prog, "mount".into(), source, mountpoint];
    let mut fuse_opts: Vec<String> = Vec::new();
    let mut foreground = false;
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => {
                if let Some(v) = it.next() {
                    map_options(&v, &mut out, &mut fuse_opts);
                }
            }
            Some(s) if s.starts_with("-o") => map_options(OsStr::new(&s[2..]), &mut out, &mut fuse_opts),
            Some("-f") => foreground = true,
            Some("-n" | "-s") => {} // mount(8) flags some helpers get: no mtab, sloppy
            _ => out.push(a),
        }
    }
    if !fuse_opts.is_empty() {
        out.push("-o".into());
        out.push(fuse_opts.join(",").into());
    }
    if !foreground {
        out.push("--daemon".into());
    }
    out
}

fn map_options(list: &OsStr, out: &mut Vec<OsString>, fuse_opts: &mut Vec<String>) {
    let list = list.to_string_lossy();
    for opt in list.split(',').filter(|o| !o.is_empty()) {
        if ignored(opt) {
            continue;
        }
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let long = name.replace('_', "-");
        match (mount_long_option(&long), value) {
            (Some(true), Some(v)) => {
                out.push(format!("--{long}").into());
                out.push(v.into());
            }
            (Some(false), None) => out.push(format!("--{long}").into()),
            // A luksfs option with a missing or unexpected value: let clap say what is wrong.
            (Some(_), Some(v)) => out.push(format!("--{long}={v}").into()),
            (Some(_), None) => out.push(format!("--{long}").into()),
            (None, _) => fuse_opts.push(opt.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn subcommands_pass_unchanged() {
        for a in [
            &["luksfs", "mount", "/a", "/m"][..],
            &["luksfs", "cat", "x"],
            &["luksfs", "--version"],
            &["luksfs", "-v", "mount", "/a", "/m"],
            &["luksfs", "help", "mount"],
            &["luksfs", "/a"],
        ] {
            assert_eq!(rewrite(v(a)), v(a));
        }
    }

    #[test]
    fn mount_fuse3_call_is_rewritten() {
        let got = rewrite(v(&[
            "/usr/bin/luksfs",
            "/srv/my images",
            "/mnt/x",
            "-o",
            "rw,noexec,nosuid,nodev,keytab=/etc/k,allow_other,key_file=/k,cache-size=1G,dev,suid,x-systemd.automount,nofail",
        ]));
        assert_eq!(
            got,
            v(&[
                "/usr/bin/luksfs",
                "mount",
                "/srv/my images",
                "/mnt/x",
                "--keytab",
                "/etc/k",
                "--key-file",
                "/k",
                "--cache-size",
                "1G",
                "-o",
                "noexec,nosuid,nodev,allow_other",
                "--daemon",
            ])
        );
        // A flag without a value; -f keeps it in the foreground; no -o at all.
        assert_eq!(
            rewrite(v(&["luksfs", "/a", "/m", "-o", "io_uring,ro", "-f"])),
            v(&["luksfs", "mount", "/a", "/m", "--io-uring", "-o", "ro"])
        );
        assert_eq!(rewrite(v(&["luksfs", "/a", "/m"])), v(&["luksfs", "mount", "/a", "/m", "--daemon"]));
        // Never --daemon or --help from -o; they stay FUSE options (and FUSE refuses them).
        assert_eq!(
            rewrite(v(&["luksfs", "/a", "/m", "-o", "daemon"])),
            v(&["luksfs", "mount", "/a", "/m", "-o", "daemon", "--daemon"])
        );
    }
}
