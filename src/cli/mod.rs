//! The command line: what each subcommand takes (`args` for the key and image options they
//! share) and how it runs. Each subcommand is a module; what it reports is built in
//! [`crate::report`], the volumes it walks in [`crate::volume`].

mod args;
mod cat;
mod inspect;
mod mount;
mod source_keys;
pub mod unlock_one;
pub mod verify;

pub(crate) use args::image_passphrase_if_given;
pub use args::{CatArgs, ImageArgs, InspectArgs, KeyArgs, KeytabArgs, MountArgs, PromptArgs};

use crate::{Error, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 other error (I/O, ...), 2 usage, 3 no key slot opened with the key,
4 corrupt or truncated image, 5 refused or unsupported feature;
verify only: 6 verified with warnings, 7 a hash check failed; audit: 6 risks found.

Examples:
  luksfs inspect vol-1.luks
  luksfs cat vol-1.luks --key-file vol-1.key | sha256sum
  luksfs verify vol-1.luks --key-file vol-1.key --expect-sha256 HEX
  luksfs mount /srv/images /mnt/plain --key-file key.txt
  luksfs mount /srv/images /mnt/plain --keytab images.keytab --daemon
  luksfs list
  luksfs status /mnt/plain
  fusermount3 -u /mnt/plain
  mount -t fuse.luksfs /srv/images /mnt/plain -o keytab=/etc/luksfs.keytab,allow_other
    (also as an /etc/fstab line; luksfs options go in -o: keytab=, key-file=, cache-size=, ...)";

/// Mount encrypted disk images (LUKS1, LUKS2, qcow2 with LUKS) as decrypted, read-only raw files.
#[derive(Parser, Debug)]
#[command(name = "luksfs", version = env!("LUKSFS_VERSION"), about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Append log messages to FILE instead of standard error (useful with --daemon).
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount a directory (or one file) of encrypted images; each appears as `<name>.raw`.
    ///
    /// Every file whose content is LUKS1, LUKS2 or qcow2 (recognised by magic, not by name)
    /// appears as `<file name>.raw`, decrypted on demand; subdirectories are mirrored, other files
    /// are hidden. The mount is read-only: sources are opened read-only and writes fail with
    /// EROFS. Runs in the foreground until unmounted (`fusermount3 -u MOUNTPOINT`, Ctrl-C or
    /// SIGTERM); `--daemon` returns once the mount is ready. Keys are tried in the background;
    /// opening an image waits for its unlock, and an image whose key is wrong fails to open
    /// (EACCES) without affecting the others.
    #[command(after_help = crate::help::MOUNT)]
    Mount(MountArgs),
    /// Write the decrypted contents of an image to standard output (no mount needed).
    #[command(after_help = crate::help::CAT)]
    Cat(CatArgs),
    /// Show an image's header facts: format, cipher, key slots, segments (no key needed).
    #[command(after_help = crate::help::INSPECT)]
    Inspect(InspectArgs),
    /// Decrypt a whole image (or every image under a directory) and report hashes, what the
    /// plaintext is, and a verdict: OK, WARN or FAIL.
    #[command(after_help = crate::help::VERIFY)]
    Verify(verify::VerifyArgs),
    /// List the luksfs mounts of this machine: source, mount point, daemon pid, images, unlocked.
    #[command(after_help = crate::help::LIST)]
    List(crate::status::cmd::ListArgs),
    /// Show a running mount's images: format, unlock state (and why one failed), size, nested
    /// volumes, bytes read; and its cache hit rate. Asks the mount's daemon.
    #[command(after_help = crate::help::STATUS)]
    Status(crate::status::cmd::StatusArgs),
    /// Audit an OpenStack project's Barbican keys: keys shared by images, volumes and backups
    /// where deleting one image deletes the key for all (deletion policy on_image_deletion),
    /// keys Barbican no longer has, and their secret consumers. Reads only; prints fixes.
    #[command(after_help = crate::help::AUDIT)]
    Audit(crate::audit::AuditArgs),
    /// Write man pages and shell completions into DIR (for packaging).
    #[command(hide = true, after_help = crate::help::GENERATE_ASSETS)]
    GenerateAssets(crate::assets::GenerateArgs),
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Mount(a) => mount::mount(a),
        Command::Cat(a) => cat::cat(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Verify(a) => verify::run(a),
        Command::List(a) => crate::status::cmd::list(a),
        Command::Status(a) => crate::status::cmd::status(a),
        Command::Audit(a) => crate::audit::run(a),
        Command::GenerateAssets(a) => crate::assets::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("luksfs: {e}");
            e.kind().exit_code()
        }
    }
}

pub(crate) fn print_stdout(b: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(b).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::from_io("writing to standard output", &e)),
    }
}
