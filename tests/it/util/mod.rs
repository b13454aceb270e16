//! Shared test helpers: skipping on missing tools, running tools and luksfs with time limits,
//! seeded plaintexts, comparisons that say where bytes differ, image builders ([`fixture`]) and
//! a FUSE mount guard ([`mount`]).

pub mod fixture;
pub mod mount;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use fixture::{Image, Lab};
pub use mount::Mount;

use sha2::Digest;

// ------------------------------------------------------------------ skipping

/// `CI=true`: nothing may be skipped.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Print why the test does not run and return false; under `CI=true`, fail instead.
pub fn skip(reason: &str) -> bool {
    if ci() {
        panic!("CI=true and this test cannot run: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Are all these requirements met? Names are commands looked up in PATH (plus /usr/sbin and
/// /sbin), or the pseudo-requirements `root`, `fuse` (/dev/fuse usable, fusermount3, root),
/// `shared-corpus` (../shared/corpus beside the crate). Prints/panics through [`skip`].
pub fn have(reqs: &[&str]) -> bool {
    for r in reqs {
        let missing = match *r {
            "root" => (!is_root()).then(|| "must run as root".to_string()),
            "fuse" => fuse_problem(),
            "fuse-uring" => fuse_problem().or_else(|| {
                let on =
                    std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring").is_ok_and(|s| s.trim() == "Y");
                (!on).then(|| {
                    "FUSE over io_uring is off (Linux >= 6.14; as root: echo Y > \
                     /sys/module/fuse/parameters/enable_uring, as scripts/test.sh does)"
                        .to_string()
                })
            }),
            "shared-corpus" => (!shared_corpus().join("external/manifest.tsv").is_file())
                .then(|| format!("{} not found (set LUKSFS_SHARED)", shared_corpus().display())),
            "qemu-img" | "qemu-io" => match which(r) {
                None => Some(format!("tool {r} not found (apt-get install qemu-utils)")),
                Some(_) if qemu_major() < 8 => {
                    Some(format!("qemu-img {} is too old (need >= 8: bookworm-backports)", qemu_major()))
                }
                Some(_) => None,
            },
            "cryptsetup" => match which(r) {
                None => Some("tool cryptsetup not found (apt-get install cryptsetup-bin)".to_string()),
                // reencrypt needs its lock directory /run/cryptsetup
                Some(_) if !is_root() => Some("cryptsetup reencrypt needs root (/run/cryptsetup)".to_string()),
                Some(_) => None,
            },
            tool => which(tool).is_none().then(|| format!("tool {tool} not found (scripts/install-deps.sh)")),
        };
        if let Some(why) = missing {
            return skip(&why);
        }
    }
    true
}

/// One requirement (see [`have`]): true if present; otherwise prints why and returns false, or
/// panics under `CI=true`.
pub fn require_tool(name: &str) -> bool {
    have(&[name])
}

/// `need!("qemu-img", "fuse")` at the top of a test: return early (skip) unless all are present.
macro_rules! need {
    ($($r:expr),+ $(,)?) => {
        if !crate::util::have(&[$($r),+]) {
            return;
        }
    };
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn fuse_problem() -> Option<String> {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_err() {
        return Some("/dev/fuse is missing or not usable".into());
    }
    if which("fusermount3").is_none() {
        return Some("fusermount3 not found (apt-get install fuse3)".into());
    }
    if !is_root() {
        return Some("mount tests run as root".into());
    }
    None
}

/// `../shared/corpus` beside the crate (or `$LUKSFS_SHARED/corpus`).
pub fn shared_corpus() -> PathBuf {
    match std::env::var_os("LUKSFS_SHARED") {
        Some(s) => PathBuf::from(s).join("corpus"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    }
}

/// Run `scripts/NAME DIR ARGS...` (a service start script: Keystone + Barbican, Glance,
/// cinder-api) with `envs`, one run at a time across the test processes (`flock -o` on
/// `DIR/.up.lock`: parallel runs would install into one venv; `-o` so that the servers it starts
/// do not inherit the lock). Its output goes to `DIR/up.log`; a failure is the script, its exit
/// status and the last 15 lines of its output.
pub fn up_script(name: &str, dir: &Path, args: &[&OsStr], envs: &[(&str, &str)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name);
    let mut cmd = match which("flock") {
        Some(flock) => {
            let mut c = Command::new(flock);
            c.arg("-o").arg(dir.join(".up.lock")).arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    let out = cmd
        .arg(&script)
        .arg(dir)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    let _ = std::fs::write(dir.join("up.log"), &text);
    if !out.status.success() {
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        return Err(format!("{} {} failed ({}):\n{tail}", script.display(), dir.display(), out.status));
    }
    Ok(())
}

/// The `KEY=VALUE` lines of an env file a start script wrote (`#` lines skipped).
pub fn env_file(path: &Path) -> Result<std::collections::HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Absolute path of a command, searching PATH, /usr/sbin and /sbin.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn qemu_major() -> u32 {
    static V: OnceLock<u32> = OnceLock::new();
    *V.get_or_init(|| {
        let out = Command::new(which("qemu-img").expect("qemu-img")).arg("--version").output();
        out.ok()
            .and_then(|o| {
                let s = String::from_utf8_lossy(&o.stdout).into_owned();
                let v = s.split_whitespace().nth(2)?.split('.').next()?.parse().ok()?;
                Some(v)
            })
            .unwrap_or(0)
    })
}

// ------------------------------------------------------------------ running things

/// A command for a tool by name (resolved with [`which`]), in the C locale.
pub fn tool(name: &str) -> Command {
    let path = which(name).unwrap_or_else(|| panic!("tool {name} not found: declare it with need!()"));
    let mut c = Command::new(path);
    c.env("LC_ALL", "C");
    c
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Out {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    /// The exit code, or a panic naming the signal.
    pub fn code(&self) -> i32 {
        self.code.unwrap_or_else(|| {
            panic!("{} was killed by a signal ({}); stderr: {}", self.cmdline, self.status, self.stderr)
        })
    }

    /// Assert exit 0; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &[u8] {
        assert_eq!(self.code, Some(0), "{} failed ({}); stderr:\n{}", self.cmdline, self.status, self.stderr);
        &self.stdout
    }

    /// Assert exit 0 and stdout equal to `want`, byte for byte.
    #[track_caller]
    pub fn assert_bytes(&self, want: &[u8]) {
        self.ok();
        assert_same(&self.cmdline, &self.stdout, want);
    }

    /// Assert a clean failure: exit `code`, nothing on stdout, one line on stderr naming `file`
    /// (its file name).
    #[track_caller]
    pub fn assert_fails(&self, code: i32, file: &Path) {
        self.assert_exit(code, file);
        assert!(self.stdout.is_empty(), "{}: {} bytes on stdout on failure", self.cmdline, self.stdout.len());
    }

    /// Exit `code` and one stderr line naming `file`; stdout is not checked (`inspect` may
    /// print the facts it could read before the problem).
    #[track_caller]
    pub fn assert_exit(&self, code: i32, file: &Path) {
        let name = file.file_name().unwrap().to_string_lossy();
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit {code}, got {} with {} bytes on stdout; stderr:\n{}",
            self.cmdline,
            self.status,
            self.stdout.len(),
            self.stderr
        );
        // One error line; a `luksfs: note:` line may follow it (a key file ending in a newline).
        let lines: Vec<&str> =
            self.stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("luksfs: note:")).collect();
        assert_eq!(lines.len(), 1, "{}: stderr should be exactly one line, got:\n{}", self.cmdline, self.stderr);
        assert!(lines[0].contains(&*name), "{}: the error line does not name {name}: {}", self.cmdline, lines[0]);
    }
}

/// Run a command to completion within `limit`, capturing stdout and stderr (stdin is null). On
/// time-out the process is killed and the test fails.
pub fn run_timed(mut cmd: Command, limit: Duration) -> Out {
    let cmdline = describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmdline} did not finish within {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        cmdline,
        code: status.code(),
        status,
        stdout: t_out.join().unwrap(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

/// Run a helper tool (qemu-img, cryptsetup, ...) that must succeed; returns stdout.
#[track_caller]
pub fn sh(cmd: Command) -> Vec<u8> {
    let out = run_timed(cmd, Duration::from_secs(300));
    if out.code != Some(0) {
        panic!("fixture command failed ({}): {}\nstderr:\n{}", out.status, out.cmdline, out.stderr);
    }
    out.stdout
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() { s.push_str(&format!("'{a}'")) } else { s.push_str(&a) }
    }
    s
}

/// The luksfs binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_luksfs")
}

/// A luksfs invocation being built: `Luksfs::new("cat").arg(img).key(k).run()`.
pub struct Luksfs {
    args: Vec<OsString>,
    limit: Duration,
}

impl Luksfs {
    pub fn new(sub: &str) -> Self {
        Luksfs { args: vec![sub.into()], limit: Duration::from_secs(180) }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, it: I) -> Self {
        for a in it {
            self.args.push(a.as_ref().to_owned());
        }
        self
    }
    /// `--key-file PATH`
    pub fn key(self, k: &Path) -> Self {
        self.arg("--key-file").arg(k)
    }
    pub fn limit(mut self, d: Duration) -> Self {
        self.limit = d;
        self
    }
    pub fn run(self) -> Out {
        let mut c = Command::new(bin());
        c.args(&self.args).env_remove("RUST_LOG");
        run_timed(c, self.limit)
    }
}

/// `luksfs inspect IMAGE` succeeds without a key and prints something; `--json` prints one
/// valid JSON document.
#[track_caller]
pub fn inspect_ok(img: &Path) -> String {
    let out = Luksfs::new("inspect").arg(img).run();
    let text = String::from_utf8_lossy(out.ok()).into_owned();
    assert!(!text.trim().is_empty(), "{}: empty output", out.cmdline);
    let js = Luksfs::new("inspect").arg(img).arg("--json").run();
    js.ok();
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&js.stdout) {
        panic!("{}: not JSON ({e}):\n{}", js.cmdline, String::from_utf8_lossy(&js.stdout));
    }
    text
}

// ------------------------------------------------------------------ plaintexts

/// Sector-labelled plaintext: every 512-byte sector starts with `TAG sector N offset 0x..`, so a
/// mismatch tells which sector was returned.
pub fn mark(tag: &str, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut s = 0u64;
    while v.len() < len {
        let mut sec = format!("{tag} sector {s:012} offset {:#014x} |", s * 512).into_bytes();
        sec.truncate(400);
        let k = (s * 7 % 94) as usize;
        while sec.len() < 511 {
            sec.push(33 + ((k + sec.len()) % 94) as u8);
        }
        sec.push(b'\n');
        let take = (len - v.len()).min(512);
        v.extend_from_slice(&sec[..take]);
        s += 1;
    }
    v
}

/// Seeded pseudo-random bytes (splitmix64 over an FNV-1a hash of the seed).
pub fn random(seed: &str, len: usize) -> Vec<u8> {
    let mut x = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.extend_from_slice(&z.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Random data with zero runs at the given (offset, length) places.
pub fn with_zeros(mut v: Vec<u8>, runs: &[(usize, usize)]) -> Vec<u8> {
    for &(off, len) in runs {
        v[off..off + len].fill(0);
    }
    v
}

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

// ------------------------------------------------------------------ comparisons

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Byte-for-byte comparison that reports lengths and the first differing offset (with the bytes
/// around it) instead of dumping megabytes.
#[track_caller]
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    let diff_bytes = got.iter().zip(want).filter(|(a, b)| a != b).count();
    let mut msg = format!("{what}: got {} bytes, expected {} bytes", got.len(), want.len());
    match first {
        Some(i) => {
            let lo = i.saturating_sub(8);
            let hi = (i + 24).min(got.len()).min(want.len());
            msg += &format!(
                "; first difference at byte {i} (0x{i:x}, 512-byte sector {}), {diff_bytes} bytes differ in the common part\n  got:  {}\n  want: {}",
                i / 512,
                show(&got[lo..hi]),
                show(&want[lo..hi])
            );
        }
        None => msg += "; the common part is equal",
    }
    panic!("{msg}");
}

fn show(b: &[u8]) -> String {
    let hexs = hex::encode(b);
    let text: String = b.iter().map(|&c| if (32..127).contains(&c) { c as char } else { '.' }).collect();
    format!("{hexs}  |{text}|")
}

/// Run `f` on another thread and fail the test if it takes longer than `limit` (a hung FUSE
/// request must not hang the suite; the mount guard's Drop then aborts the mount, which frees
/// the stuck thread).
pub fn timed<T: Send + 'static>(what: &str, limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {limit:?}"),
    }
}

/// Write `data` to `path`, creating parent directories.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// sha256 of every file under `dir` (relative path → hash), and the set of names: used to
/// prove a mount never writes to or next to its source images.
pub fn snapshot_tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, String)>) {
        let mut es: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
        es.sort();
        for p in es {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.push((rel + "/", String::new()));
                walk(base, &p, out);
            } else if md.is_file() {
                out.push((rel, sha256_file(&p)));
            } else {
                out.push((rel, "other".into()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}
