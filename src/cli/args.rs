//! The options subcommands take: keys (`--key-file`, `--barbican-secret`, `--os-cloud`, ...),
//! keytabs, the prompt, image options (`--header`, `--key-slot`), and each of `mount`, `cat`
//! and `inspect`'s own.

use super::mount::DAEMON_KEY_ENV;
use crate::image::{ImageOptions, UnlockSettings};
use crate::keys::keyfile::{self, KeyfileRange, parse_size};
use crate::keys::{KeySource, Keyring, Secret};
use crate::{Error, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// How to obtain the passphrase.
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// Read the passphrase from FILE: its exact bytes, trailing newline included (as
    /// `cryptsetup --key-file`). `-` reads standard input. Without it, luksfs prompts on a terminal.
    #[arg(long, short = 'k', value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Skip this many bytes of the key file (size suffixes K, M, G allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, requires = "key_file")]
    pub keyfile_offset: Option<u64>,
    /// Use only this many bytes of the key file.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, requires = "key_file")]
    pub keyfile_size: Option<u64>,
    /// Refuse Argon2 key slots that need more memory than this (default: 4G or half the RAM).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_kdf_memory: Option<u64>,
    /// OpenStack cloud (clouds.yaml) whose Barbican holds the keys; default: OS_CLOUD or the OS_*
    /// variables. Keys come from keytab `barbican:ID` lines, `--barbican-secret`, or the
    /// `os_encrypt_key_id` / `cinder_encryption_key_id` of a Glance sidecar `<image>.json`.
    #[arg(long, value_name = "NAME")]
    pub os_cloud: Option<String>,
}

/// A keytab for commands on images (`cat`, `inspect`, `verify`).
#[derive(Args, Debug, Clone, Default)]
pub struct KeytabArgs {
    /// Keys and options per image from a keytab (as for `mount`): for one image, its line (IMAGE
    /// relative to the keytab's folder, or the only line with its file name); for a directory,
    /// each image's line. Images without a line use --key-file (or the prompt).
    #[arg(long, value_name = "FILE")]
    pub keytab: Option<PathBuf>,
}

/// How often to ask for a passphrase.
#[derive(Args, Debug, Clone)]
pub struct PromptArgs {
    /// Ask for the passphrase up to N times while it is wrong (terminal or systemd-ask-password).
    #[arg(long, value_name = "N", default_value_t = crate::keys::prompt::DEFAULT_TRIES,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tries: u32,
}

impl Default for PromptArgs {
    fn default() -> Self {
        PromptArgs { tries: crate::keys::prompt::DEFAULT_TRIES }
    }
}

/// Per-image options.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageArgs {
    /// Detached LUKS header file (the image then holds only the encrypted data).
    #[arg(long, value_name = "FILE")]
    pub header: Option<PathBuf>,
    /// Only try this key slot.
    #[arg(long, short = 'S', value_name = "N")]
    pub key_slot: Option<u32>,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Directory of images (subdirectories are mirrored; Cinder posix backups in it are images),
    /// a single image file or block device, or swift://CONTAINER[/PREFIX] or s3://BUCKET[/PREFIX]
    /// (backups and image objects read in place), or glance:// (every encrypted image of the
    /// project, by range; --os-cloud) or glance://IMAGE_ID.
    pub source: PathBuf,
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Per-image keys and options (see below).
    #[arg(long, value_name = "FILE")]
    pub keytab: Option<PathBuf>,
    #[command(flatten)]
    pub image: ImageArgs,
    /// Memory for decrypted blocks shared by all images (e.g. 64M, 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64M")]
    pub cache_size: u64,
    /// Detach once the mount is ready.
    #[arg(long, short = 'd')]
    pub daemon: bool,
    /// Mount options, comma-separated: allow_other, allow_root, default_permissions,
    /// fsname=NAME, subtype=NAME, nodev, nosuid, noexec, noatime, auto_unmount, nonempty (mount
    /// over a non-empty directory; refused otherwise).
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
    /// Worker threads: through /dev/fuse, N in all (default: one per core); through io_uring, N
    /// per CPU queue (default 4).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Serve through FUSE over io_uring (Linux 6.14 or later, with the `fuse` module's
    /// `enable_uring` switched on by root: `echo Y > /sys/module/fuse/parameters/enable_uring`):
    /// one request queue per CPU, each request answered on the CPU that made it. Faster small
    /// reads when readers stay on one CPU (a busy machine, a pinned reader); slower streaming
    /// reads. Default: /dev/fuse.
    #[arg(long)]
    pub io_uring: bool,
    /// Also show images that hold no encrypted volume (partitioned disks, plain qcow2 images):
    /// their volumes appear in `<name>.d/` like those of encrypted ones.
    #[arg(long)]
    pub all_volumes: bool,
    /// With --daemon or under systemd (Type=notify): wait up to this many seconds for every
    /// image's key to be tried before reporting ready with a summary; if no image at all could
    /// be unlocked, unmount and fail. 0: report ready at once.
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    pub wait_keys: u64,
    /// Largest kernel readahead per request (default 1M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1M")]
    pub max_readahead: u64,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// The encrypted image: a file or block device, a Cinder backup (its folder, or DIR/ID,
    /// swift://CONTAINER/ID, s3://BUCKET/ID), glance://IMAGE_ID, or a source holding exactly one
    /// image; or any source `mount` takes, with --volume IMAGE.d/NAME.
    pub image: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub opts: ImageArgs,
    /// Start at this plaintext byte (size suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "0")]
    pub offset: u64,
    /// Write at most this many bytes (default: to the end).
    /// (Applies to the volume chosen with --volume.)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub length: Option<u64>,
    /// Take the passphrase from this Barbican secret (id or href): `passphrase` secrets as-is,
    /// others as lowercase hex (OpenStack's rule).
    #[arg(long, value_name = "ID", conflicts_with = "key_file")]
    pub barbican_secret: Option<String>,
    /// Write this volume of the image instead of its top view: a name as `luksfs inspect` and
    /// the mount's `<image>.d/` show it (`p2-boot`, `laptop--vg-root`, with or without `.raw`),
    /// `pN` for partition N, `VG/LV`, `UUID=<LUKS UUID>`, or `IMAGE.d/NAME` as a mount shows it.
    /// The key is tried on every encrypted volume on the way. With a source (a folder, a
    /// container) instead of one image: its path in a mount of that source, `IMAGE.d/NAME` (an LV
    /// whose PVs lie in several images is only there); every image of the source is unlocked
    /// first, with its keytab line or the key.
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,
    #[command(flatten)]
    pub keytab: KeytabArgs,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Show a progress bar on standard error even when it is not a terminal (by default one is
    /// shown when standard error is a terminal and standard output is not).
    #[arg(long)]
    pub progress: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The encrypted image: a file or block device, a Cinder backup (its folder, or DIR/ID,
    /// swift://CONTAINER/ID, s3://BUCKET/ID), glance://IMAGE_ID, or a source holding exactly one
    /// image.
    pub image: PathBuf,
    /// OpenStack cloud (clouds.yaml) of a glance:// image; default: OS_CLOUD or the OS_* variables.
    #[arg(long, value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// Detached LUKS header file.
    #[arg(long, value_name = "FILE")]
    pub header: Option<PathBuf>,
    /// A keytab: its line for the image may name a detached header (no key is needed).
    #[command(flatten)]
    pub keytab: KeytabArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl MountArgs {
    /// What the FUSE layer needs to mount.
    pub(super) fn mount_config(&self) -> crate::fuse::mount::MountConfig {
        crate::fuse::mount::MountConfig {
            source: self.source.clone(),
            mountpoint: self.mountpoint.clone(),
            options: self.options.clone(),
            threads: self.threads,
            io_uring: self.io_uring,
            max_readahead: self.max_readahead,
        }
    }
}

impl ImageArgs {
    pub(crate) fn options(&self) -> ImageOptions {
        ImageOptions { header: self.header.clone(), key_slot: self.key_slot }
    }
}

fn total_ram_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl KeyArgs {
    pub(crate) fn settings(&self) -> Result<UnlockSettings> {
        let mut s = UnlockSettings::default();
        let cap_kib = match self.max_kdf_memory {
            Some(b) => b / 1024,
            None => (u64::from(s.max_kdf_memory_kib)).min(total_ram_kib().map_or(u64::MAX, |r| r / 2)),
        };
        s.max_kdf_memory_kib = u32::try_from(cap_kib).unwrap_or(u32::MAX);
        Ok(s)
    }

    /// The default key: the key file, or a prompt on a terminal or through systemd (`None` if
    /// none of these).
    pub(crate) fn default_key(&self, prompt_for: &str) -> Result<Option<Secret>> {
        if let Some(p) = &self.key_file {
            let range = KeyfileRange { offset: self.keyfile_offset.unwrap_or(0), size: self.keyfile_size };
            return keyfile::read(p, range).map(Some);
        }
        if let Ok(v) = std::env::var(DAEMON_KEY_ENV) {
            // A --daemon parent passes the prompted passphrase on our standard input.
            if v == "1" {
                return keyfile::read(Path::new("-"), KeyfileRange::default()).map(Some);
            }
        }
        // A terminal, or systemd-ask-password when run by systemd without one.
        crate::keys::prompt::ask(prompt_for)
    }
}

/// The passphrase for one image without asking anyone: `--key-file`, else `--barbican-secret`,
/// else the key id of a Glance sidecar (when OpenStack credentials are configured); `None` when
/// only a prompt could give it.
pub(crate) fn image_passphrase_if_given(
    key: &KeyArgs,
    barbican_secret: Option<&str>,
    image: &Path,
) -> Result<Option<Secret>> {
    if key.key_file.is_some() {
        return key.default_key("")?.ok_or_else(|| Error::usage("no key given")).map(Some);
    }
    let ring = Keyring::new(None, key.os_cloud.clone());
    if let Some(id) = barbican_secret {
        return ring.passphrase(&KeySource::Barbican(id.to_string())).map_err(|e| e.with_path(image)).map(Some);
    }
    if ring.barbican_configured() {
        let meta = crate::keys::sidecar::load_for_image(image)?;
        if let Some(id) = meta.and_then(|m| m.key_id) {
            log::info!("{}: key from Barbican secret {id} (Glance sidecar)", image.display());
            return ring.passphrase(&KeySource::Barbican(id)).map_err(|e| e.with_path(image)).map(Some);
        }
    }
    Ok(None)
}
