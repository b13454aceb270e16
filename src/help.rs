//! The text under each subcommand's `--help`: worked examples (and, for `verify`, its exit
//! codes), so that the help teaches by showing.

/// `luksfs mount --help`.
pub const MOUNT: &str = "\
Keytab lines: IMAGE KEY [OPTIONS]   (# comments)
  IMAGE   path relative to SOURCE
  KEY     key file (relative to the keytab's folder, or absolute), or - for --key-file
  OPTIONS header=PATH,key-slot=N,keyfile-offset=N,keyfile-size=N

Examples:
  luksfs mount /srv/images /mnt/plain --key-file key.txt
      every image under /srv/images with one key; Ctrl-C or `fusermount3 -u /mnt/plain` ends it
  luksfs mount /srv/images /mnt/plain --keytab /etc/luksfs.keytab --daemon -o allow_other
      a key per image, in the background; prints a summary once the keys are tried
  luksfs mount vol-1.luks /mnt/vol1 --header vol-1.hdr
      one image with a detached header; asks for the passphrase
  mount -t fuse.luksfs /srv/images /mnt/plain -o keytab=/etc/luksfs.keytab,allow_other
      the same through mount(8), or as an /etc/fstab line
  luksfs status /mnt/plain
      which images unlocked, which failed and why";

/// `luksfs cat --help`.
pub const CAT: &str = "\
Examples:
  luksfs cat vol-1.luks --key-file vol-1.key > vol-1.raw
  luksfs cat vol-1.luks --key-file vol-1.key | sha256sum
  luksfs cat disk.qcow2 --keytab images.keytab --volume p2-root --offset 1M --length 4K | xxd
  luksfs cat /srv/server1 --key-file k --volume disk1.img.d/data--vg-home > home.raw
      an LV whose PVs lie in two disk images of /srv/server1 (as a mount shows it)
  printf %s 'passphrase' > key.txt   (a key file without a trailing newline)";

/// `luksfs inspect --help`.
pub const INSPECT: &str = "\
Examples:
  luksfs inspect vol-1.luks
  luksfs inspect vol-1.luks --header vol-1.hdr
  luksfs inspect disk.qcow2 --json | jq .luks.keyslots";

/// `luksfs verify --help`: examples and exit codes.
pub const VERIFY: &str = "\
Exit codes:
  0  OK: decrypted, every check passed, the plaintext is recognised
  6  WARN: verified with warnings (unrecognised or all-zero plaintext, a size that disagrees,
     a check that could not be made)
  7  FAIL: a hash check failed (--expect-sha256, or a Glance sidecar's os_hash_value), or the
     image signature (img_signature* in the sidecar) is not verified
  3  FAIL: wrong key       4  FAIL: corrupt or truncated image
  5  FAIL: refused         1  FAIL: I/O or other error      2  usage
  A directory exits with the worst code of its images.

Examples:
  luksfs verify vol-1.luks --key-file vol-1.key
  luksfs verify vol-1.luks --key-file vol-1.key --expect-sha256 HEX
  luksfs verify vol-7.luks --os-cloud prod --ca signing-ca.pem   (vol-7.luks.json: a signed image)
  luksfs verify /srv/backups --keytab backups.keytab --json > report.json";

/// `luksfs list --help`.
pub const LIST: &str = "\
Examples:
  luksfs list
  luksfs list --json | jq '.mounts[] | select(.failed > 0) | .mount_point'";

/// `luksfs status --help`.
pub const STATUS: &str = "\
Only root and the user who mounted it may ask (the daemon's socket is in /run/luksfs/ for root,
else /run/user/UID/luksfs/ or /tmp/luksfs-UID/). Each file of the mount also answers
`getfattr -d FILE` with user.luksfs.* attributes (source, volume, format, cipher, state).
Exit codes: 0 answered, 1 the daemon does not answer or refuses, 2 not a luksfs mount.

Examples:
  luksfs status /mnt/plain
  luksfs status /mnt/plain --json | jq '.images[] | select(.state == \"failed\") | .reason'
  getfattr -d /mnt/plain/vol-1.luks.raw";

/// `luksfs audit --help`: exit codes and examples.
pub const AUDIT: &str = "\
Checks (reads only; Glance, Cinder when in the catalog, Barbican):
  every key referenced more than once where an image has deletion policy on_image_deletion
  (deleting that image deletes the key for the others); every key Barbican no longer has (404);
  the secret consumers registered for each key. Fixes are printed as commands.

Exit codes:
  0  no risk found     6  risks found     1  error (e.g. Glance unreachable)     2  usage

Examples:
  luksfs audit --os-cloud prod
  luksfs audit --os-cloud prod --json | jq '.findings[] | {kind, key_id, fix}'
  OS_CLOUD=prod luksfs audit --json > audit.json   (exit 6: risks; fixes in .findings[].fix)";

/// `luksfs generate-assets --help`.
pub const GENERATE_ASSETS: &str = "\
Examples:
  luksfs generate-assets target/assets   (writes target/assets/man/*.1 and completions/)";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn help(sub: &str) -> String {
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let sc = cmd.find_subcommand_mut(sub).unwrap_or_else(|| panic!("no subcommand {sub}"));
        sc.render_long_help().to_string()
    }

    #[test]
    fn every_subcommand_has_examples() {
        let cmd = crate::cli::Cli::command();
        let subs: Vec<String> =
            cmd.get_subcommands().map(|s| s.get_name().to_string()).filter(|n| n != "help").collect();
        assert!(subs.len() >= 7, "{subs:?}");
        for sub in subs {
            let h = help(&sub);
            let ex = h.split("Examples:\n").nth(1).unwrap_or_else(|| panic!("{sub}: no Examples:\n{h}"));
            assert!(ex.lines().next().is_some_and(|l| l.contains("luksfs ")), "{sub}: {ex}");
        }
    }

    #[test]
    fn verify_help_lists_its_exit_codes() {
        let h = help("verify");
        assert!(h.contains("  6  WARN: verified with warnings"), "{h}");
        assert!(h.contains("  7  FAIL: a hash check failed"), "{h}");
        assert_eq!(crate::report::EXIT_WARN, 6);
        assert_eq!(crate::report::EXIT_MISMATCH, 7);
    }

    #[test]
    fn audit_help_lists_its_exit_codes() {
        let h = help("audit");
        assert!(h.contains("6  risks found") && h.contains("Examples:\n  luksfs audit --os-cloud"), "{h}");
        assert_eq!(crate::audit::EXIT_RISKS, 6);
    }
}
