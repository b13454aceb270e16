//! The command line: `mount`, `cat`, `inspect`, `verify`, `list`, `status`. Parses arguments (clap), resolves keys,
//! and maps every failure to the documented exit codes (0 ok, 1 other, 2 usage, 3 wrong key,
//! 4 corrupt, 5 refused/unsupported; `verify`: 6 warnings, 7 mismatch).

use crate::cache::DEFAULT_CACHE_BYTES;
use crate::catalog::Location;
use crate::dir::{KeyPlan, Tree, Unlocker};
use crate::image::{ImageOptions, UnlockSettings};
use crate::keys::keyfile::{self, KeyfileRange, parse_size};
use crate::keys::{KeySource, Keyring, Secret, keytab};
use crate::volume::tree::UnlockKey;
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 other error (I/O, ...), 2 usage, 3 no key slot opened with the key,
4 corrupt or truncated image, 5 refused or unsupported feature;
verify only: 6 verified with warnings, 7 a hash check failed.

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
    Verify(crate::verify::VerifyArgs),
    /// List the luksfs mounts of this machine: source, mount point, daemon pid, images, unlocked.
    #[command(after_help = crate::help::LIST)]
    List(crate::status::cmd::ListArgs),
    /// Show a running mount's images: format, unlock state (and why one failed), size, nested
    /// volumes, bytes read; and its cache hit rate. Asks the mount's daemon.
    #[command(after_help = crate::help::STATUS)]
    Status(crate::status::cmd::StatusArgs),
    /// Write man pages and shell completions into DIR (for packaging).
    #[command(hide = true, after_help = crate::help::GENERATE_ASSETS)]
    GenerateAssets(crate::assets::GenerateArgs),
}

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
    /// image.
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
    /// `pN` for partition N, `VG/LV`, or `UUID=<LUKS UUID>`. The key is tried on every encrypted
    /// volume on the way.
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
    fn mount_config(&self) -> crate::fuse::mount::MountConfig {
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

const DAEMON_ENV: &str = "LUKSFS_DAEMON_CHILD";
const DAEMON_KEY_ENV: &str = "LUKSFS_KEY_ON_STDIN";

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Mount(a) => mount(a),
        Command::Cat(a) => cat(a),
        Command::Inspect(a) => inspect(a),
        Command::Verify(a) => crate::verify::run(a),
        Command::List(a) => crate::status::cmd::list(a),
        Command::Status(a) => crate::status::cmd::status(a),
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

fn inspect(a: InspectArgs) -> Result<i32> {
    let (opts, _) =
        crate::unlock_one::keytab_line(&a.keytab, &a.image, ImageOptions { header: a.header, key_slot: None })?;
    let (report, problem) = crate::inspect::report(&a.image, a.os_cloud.as_deref(), &opts)?;
    let text = if a.json {
        serde_json::to_string_pretty(&crate::schema::versioned(report)).unwrap_or_default() + "\n"
    } else {
        crate::inspect::render_text(&report)
    };
    print_stdout(text.as_bytes())?;
    match problem {
        Some(e) => {
            eprintln!("luksfs: {e}");
            Ok(e.kind().exit_code())
        }
        None => Ok(0),
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

fn cat(a: CatArgs) -> Result<i32> {
    let (opts, from_tab) = crate::unlock_one::keytab_line(&a.keytab, &a.image, a.opts.options())?;
    let settings = UnlockSettings { tries: a.prompt.tries, ..a.key.settings()? };
    let item = crate::catalog::resolve_one(&a.image, a.key.os_cloud.as_deref())?;
    let src = item.open()?;
    let tree = ImageTree::on(src, &item.path, Path::new(""), &opts, Limits::default());
    // One key for every encrypted volume on the way, asked for once (and only if needed).
    let backup_key = crate::unlock_one::backup_key_id(&item, &a.key);
    let secret = a.barbican_secret.as_deref().or(backup_key.as_deref());
    let keys = crate::unlock_one::ImageKey::new(&a.image, &a.key, from_tab, secret, &opts);
    let vol = match select_volume(&tree, a.volume.as_deref(), &|v| keys.key_for(v), settings) {
        Ok(v) => v,
        Err(e) => {
            if let Some(missing) = keys.missing() {
                return Err(missing.with_path(&a.image));
            }
            let Some(n) = keys.note(&e) else { return Err(e) };
            eprintln!("luksfs: {e}");
            eprintln!("luksfs: note: {n}");
            return Ok(e.kind().exit_code());
        }
    };
    let image = vol.reader().ok_or_else(|| Error::io("the volume is not readable"))?;
    let size = image.size();
    if a.offset > size {
        return Err(Error::usage(format!("--offset {} is beyond the volume size {size}", a.offset)));
    }
    let end = a.length.map_or(size, |l| a.offset.saturating_add(l).min(size));
    let mut out = std::io::stdout().lock();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reader_gone = false;
    let mut write = |r: std::io::Result<()>| match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader went away (`| head`): stop quietly.
            reader_gone = true;
            Err(Error::io("broken pipe"))
        }
        Err(e) => Err(Error::from_io("writing to standard output", &e)),
    };
    let show = a.progress || (std::io::stderr().is_terminal() && !std::io::stdout().is_terminal());
    let bar = match show {
        true => {
            crate::progress::bar(&a.image.display().to_string(), end - a.offset, crate::progress::BYTES, a.progress)
        }
        false => indicatif::ProgressBar::hidden(),
    };
    let result = crate::stream::for_each_chunk(&*image, a.offset, end, threads, |chunk| {
        write(out.write_all(chunk)).map(|()| bar.inc(chunk.len() as u64))
    })
    .and_then(|()| write(out.flush()));
    match &result {
        Ok(()) => crate::progress::complete(&bar),
        Err(_) => bar.abandon(),
    }
    match result {
        Err(_) if reader_gone => Ok(0),
        Err(e) => Err(e),
        Ok(()) => Ok(0),
    }
}

/// The volume `want` names in `tree` (see [`Volume::matches`]), or the image's top view; unlocks
/// the encrypted volumes on the way with `key`.
pub(crate) fn select_volume(
    tree: &ImageTree,
    want: Option<&str>,
    key: &dyn Fn(&Volume) -> Result<UnlockKey>,
    settings: crate::image::UnlockSettings,
) -> Result<Arc<Volume>> {
    let path = &tree.ctx.path;
    if let Some(e) = tree.emptiness() {
        return Err(e);
    }
    let Some(want) = want else {
        let top = tree.top().ok_or_else(|| {
            let names: Vec<_> = tree.volumes().iter().filter(|v| !v.name.is_empty()).map(|v| v.name.clone()).collect();
            Error::usage(format!(
                "the image itself is not encrypted: choose a volume with --volume NAME (volumes: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
            .with_path(path)
        })?;
        top.unlock(key, settings)?;
        return Ok(top);
    };
    let mut tried = std::collections::HashSet::new();
    loop {
        if let Some(v) = tree.find(want) {
            v.unlock(key, settings)?;
            if let Some(e) = v.failure() {
                return Err(e);
            }
            return Ok(v);
        }
        // Not found yet: it may be inside a volume still locked.
        let locked: Vec<_> =
            tree.volumes().into_iter().filter(|v| v.is_locked() && tried.insert(Arc::as_ptr(v) as usize)).collect();
        if locked.is_empty() {
            let names: Vec<_> = tree.volumes().iter().filter(|v| !v.name.is_empty()).map(|v| v.name.clone()).collect();
            return Err(Error::usage(format!(
                "no volume named {want:?} (volumes: {}; see `luksfs inspect`)",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
            .with_path(path));
        }
        for v in locked {
            v.unlock(key, settings)?;
        }
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

fn mount(a: MountArgs) -> Result<i32> {
    if a.daemon && std::env::var_os(DAEMON_ENV).is_none() {
        return daemonize(&a);
    }
    crate::fuse::mount::preflight(&a.mount_config())?;
    let location = match Location::parse(a.source.as_os_str(), a.key.os_cloud.as_deref())? {
        Location::Local(p) => {
            Location::Local(p.canonicalize().map_err(|e| Error::from_io(format!("source {}", a.source.display()), &e))?)
        }
        remote => remote,
    };
    let source = PathBuf::from(location.describe());
    if a.image.header.is_some() && location.local().is_none_or(Path::is_dir) {
        return Err(Error::usage(
            "--header needs a single image as SOURCE; use keytab header= options for a directory",
        ));
    }
    let keytab = match &a.keytab {
        Some(p) => keytab::load(p)?,
        None => Default::default(),
    };
    let settings = a.key.settings()?;
    // The default key (key file, or one prompt) serves images without a keytab line or sidecar.
    let barbican = Keyring::new(None, a.key.os_cloud.clone()).barbican_configured();
    let default_key = if a.key.key_file.is_some() || (keytab.is_empty() && !barbican) {
        a.key.default_key(&format!("the images in {}", source.display()))?
    } else {
        None
    };
    if default_key.is_none() && keytab.is_empty() && !barbican {
        return Err(Error::usage(
            "no key given: use --key-file FILE, --keytab FILE, --os-cloud NAME, or run on a terminal to be prompted",
        ));
    }
    let t0 = Instant::now();
    let plan = KeyPlan {
        keytab,
        default_options: a.image.options(),
        use_sidecars: barbican,
        all_volumes: a.all_volumes,
        verify: false,
        backup_keys: barbican && default_key.is_none(),
    };
    let tree = Arc::new(Tree::scan(&location, &plan)?);
    log::info!("found {} images under {} in {:?}", tree.images.len(), source.display(), t0.elapsed());
    let keys = Arc::new(Keyring::new(default_key, a.key.os_cloud.clone()));
    let unlocker = Arc::new(Unlocker { keys, settings, volume_keys: plan.volume_keys() });
    let cfg = a.mount_config();
    let vfs = Arc::new(crate::fuse::vfs::Vfs::new(
        tree.clone(),
        unlocker.clone(),
        a.cache_size.max(DEFAULT_CACHE_BYTES / 64),
    ));
    let mount_point = a.mountpoint.canonicalize().unwrap_or_else(|_| a.mountpoint.clone());
    let mounted = crate::fuse::mount::start(vfs.clone(), &cfg)?;
    // Answers `luksfs status` / `list` until dropped (on every way out of this function).
    let _status = crate::status::serve(
        vfs,
        crate::status::report::MountFacts {
            mount_point: mount_point.display().to_string(),
            source: source.display().to_string(),
            dev: mounted.dev().to_string(),
            pid: std::process::id(),
            uid: nix::unistd::geteuid().as_raw(),
            transport: mounted.transport.clone(),
            uptime_seconds: 0,
        },
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    unlocker.spawn_background(&tree, cores);
    log::info!(
        "mounted {} on {} in {:?} ({})",
        source.display(),
        a.mountpoint.display(),
        t0.elapsed(),
        mounted.transport
    );
    let daemon_child = std::env::var_os(DAEMON_ENV).is_some();
    if (daemon_child || crate::readiness::systemd_waits()) && a.wait_keys > 0 {
        let summary = crate::readiness::wait_for_keys(&tree, Duration::from_secs(a.wait_keys));
        eprintln!("luksfs: {}: {}", a.mountpoint.display(), summary.line());
        if let Some(code) = summary.nothing_unlocked() {
            eprintln!("luksfs: no image could be unlocked: unmounting {}", a.mountpoint.display());
            crate::readiness::notify(&format!("STATUS=no image could be unlocked\nERRNO={}", libc::EACCES));
            mounted.stop()?;
            return Ok(code);
        }
        crate::readiness::notify(&format!("READY=1\nSTATUS={}", summary.line()));
    } else {
        crate::readiness::notify("READY=1");
    }
    if daemon_child {
        tell_parent_ready();
    }
    mounted.serve_until_unmounted()?;
    Ok(0)
}

/// What a `--daemon` child writes on its standard error once mounted: the parent stops relaying
/// there and exits 0. Errors and this line travel through the same pipe, so every error printed
/// before it reaches the parent before the parent returns.
const READY_LINE: &str = "\u{1}luksfs-daemon-ready";

/// `--daemon` child: tell the waiting parent we are ready, then let go of the inherited
/// standard error (the parent is gone; later messages go to `--log-file` or nowhere).
fn tell_parent_ready() {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{READY_LINE}").and_then(|()| err.flush());
    drop(err);
    crate::logging::detach();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// `--daemon`: run the mount in a detached child and return once it reports ready.
///
/// The child runs in its own process group with stdin/stdout/stderr not tied to the caller: its
/// log goes to `--log-file` (or nowhere). Until it is ready, its stderr is relayed here, read to
/// the ready line or to its end (the child exited: every start-up error has been printed), and
/// its exit code becomes ours.
fn daemonize(a: &MountArgs) -> Result<i32> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| Error::from_io("locating the luksfs binary", &e))?;
    // Prompt here, where the terminal is, and hand the passphrase to the child on its stdin.
    let prompted = if a.key.key_file.is_none() && std::io::stdin().is_terminal() {
        a.key.default_key(&format!("the images in {}", a.source.display()))?
    } else {
        None
    };
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(if prompted.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if prompted.is_some() {
        cmd.env(DAEMON_KEY_ENV, "1");
    }
    let mut child = cmd.spawn().map_err(|e| Error::from_io("starting the daemon", &e))?;
    if let (Some(key), Some(mut stdin)) = (prompted, child.stdin.take()) {
        stdin.write_all(key.as_bytes()).map_err(|e| Error::from_io("passing the key to the daemon", &e))?;
    }
    let err = child.stderr.take().ok_or_else(|| Error::io("daemon has no stderr"))?;
    let mut lines = std::io::BufReader::new(err).split(b'\n');
    let mut stderr = std::io::stderr().lock();
    while let Some(Ok(line)) = lines.next() {
        if line == READY_LINE.as_bytes() {
            return Ok(0);
        }
        let _ = stderr.write_all(&line).and_then(|()| stderr.write_all(b"\n"));
    }
    let _ = stderr.flush();
    let status = child.wait().map_err(|e| Error::from_io("waiting for the daemon", &e))?;
    Ok(status.code().unwrap_or(1).max(1))
}
