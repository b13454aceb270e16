//! The third-party corpus (`../shared/corpus`, see its README.md): every manifest row checked
//! through `luksfs cat` and through one FUSE mount with a generated keytab.
//!
//! * The upstream cryptsetup images in `external/` are unpacked once per manifest version into
//!   `CARGO_TARGET_TMPDIR` and always checked (LUKS1 and LUKS2 rows are separate tests).
//! * The generated visible corpus is checked when `LUKSFS_CORPUS_DIR` names a directory built by
//!   `visible.sh` (`scripts/corpus.sh` builds and checks it in CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::{Lab, Luksfs, Mount, sh, sha256_file, sha256_hex, shared_corpus, tool};

/// One manifest row (the columns a reader needs).
#[derive(Clone, Debug)]
struct Row {
    file: String,
    format: String,
    secret_kind: String,
    secret_value: String,
    plaintext_size: Option<u64>,
    sha256: String,
    expect: String,
    notes: String,
}

impl Row {
    fn header(&self) -> Option<&str> {
        self.notes.split([' ', ';']).find_map(|t| t.strip_prefix("header="))
    }
    fn is_ok(&self) -> bool {
        self.expect.starts_with("ok")
    }
}

fn manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap_or_else(|| panic!("manifest column {n}"));
    let c = ["file", "format", "secret_kind", "secret_value", "plaintext_size", "sha256", "expect", "notes"].map(col);
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                file: f[c[0]].into(),
                format: f[c[1]].into(),
                secret_kind: f[c[2]].into(),
                secret_value: f[c[3]].into(),
                plaintext_size: f[c[4]].parse().ok(),
                sha256: f[c[5]].into(),
                expect: f[c[6]].into(),
                notes: f[c[7]].into(),
            }
        })
        .collect()
}

/// spotchecks.tsv: file → [(offset, length, sha256)]
fn spots(dir: &Path) -> BTreeMap<String, Vec<(u64, u64, String)>> {
    let mut m: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("spotchecks.tsv")) {
        for l in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let f: Vec<&str> = l.split('\t').collect();
            m.entry(f[0].into()).or_default().push((f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].into()));
        }
    }
    m
}

/// The row's secret as a key file (exact bytes: no newline added; hex stays text).
fn key_file(dir: &Path, row: &Row, keys: &Path, i: usize) -> PathBuf {
    let p = keys.join(format!("row{i}.key"));
    match row.secret_kind.as_str() {
        "passphrase" | "hex" => std::fs::write(&p, row.secret_value.as_bytes()).unwrap(),
        "keyfile" => {
            std::fs::copy(dir.join(&row.secret_value), &p).unwrap();
        }
        k => panic!("secret kind {k}"),
    }
    p
}

/// Check one row through `luksfs cat`; Err(reason) on failure.
fn check_cat(dir: &Path, row: &Row, key: &Path, spots: &[(u64, u64, String)]) -> Result<String, String> {
    let img = dir.join(&row.file);
    let base = || {
        let l = Luksfs::new("cat").arg(&img).key(key);
        match row.header() {
            Some(h) => l.arg("--header").arg(dir.join(h)),
            None => l,
        }
    };
    let want_code = match row.expect.as_str() {
        "error-badkey" => Some(3),
        "error-corrupt" => Some(4),
        "refuse" => Some(5),
        _ => None,
    };
    if let Some(code) = want_code {
        let out = base().run();
        if out.code != Some(code) || !out.stdout.is_empty() {
            return Err(format!(
                "exit {:?} (want {code}), {} bytes on stdout: {}",
                out.code,
                out.stdout.len(),
                out.stderr.trim()
            ));
        }
        return Ok(format!("exit {code}"));
    }
    if row.expect == "ok-spot" || row.plaintext_size.is_some_and(|s| s > 1 << 30) {
        if spots.is_empty() {
            return Err("no spot checks for a sparse row".into());
        }
    } else {
        let out = base().run();
        if row.expect == "ok-or-unsupported" && out.code == Some(5) && out.stdout.is_empty() {
            return Ok("unsupported (exit 5)".into());
        }
        if out.code != Some(0) {
            return Err(format!("exit {:?}: {}", out.code, out.stderr.trim()));
        }
        let (len, sum) = (out.stdout.len() as u64, sha256_hex(&out.stdout));
        if Some(len) != row.plaintext_size || sum != row.sha256 {
            return Err(format!("got {len} bytes sha256 {sum}, want {:?} bytes {}", row.plaintext_size, row.sha256));
        }
    }
    for (off, len, sum) in spots {
        let out = base().args(["--offset", &off.to_string(), "--length", &len.to_string()]).run();
        if out.code != Some(0) || sha256_hex(&out.stdout) != *sum {
            return Err(format!(
                "spot [{off}, +{len}]: exit {:?}, {} bytes: {}",
                out.code,
                out.stdout.len(),
                out.stderr.trim()
            ));
        }
    }
    Ok(if spots.is_empty() { "sha256 ok".into() } else { format!("sha256 ok, {} spot checks", spots.len()) })
}

/// Check every row of `dir`'s manifest that `select` picks, through cat or a mount; panic
/// listing all failing rows.
fn check_corpus(dir: &Path, select: impl Fn(&Row) -> bool, via_mount: bool) {
    let lab = Lab::new();
    let rows: Vec<Row> = manifest(dir).into_iter().filter(|r| select(r)).collect();
    assert!(!rows.is_empty(), "no rows selected in {}", dir.display());
    let spots = spots(dir);
    let no_spots = Vec::new();
    let mut failures = Vec::new();
    let mut report = |row: &Row, via: &str, r: Result<String, String>| match r {
        Ok(d) => eprintln!("PASS  {via:5} {}  {}  {d}", row.file, row.expect),
        Err(d) => {
            eprintln!("FAIL  {via:5} {}  {}  {d}", row.file, row.expect);
            failures.push(format!("{via} {} ({}, {}): {d}", row.file, row.secret_kind, row.expect));
        }
    };
    if !via_mount {
        for (i, row) in rows.iter().enumerate() {
            let key = key_file(dir, row, &lab.keys, i);
            let r = check_cat(dir, row, &key, spots.get(&row.file).unwrap_or(&no_spots));
            report(row, "cat", r);
        }
    } else {
        // one keytab row per image: an ok row's key if there is one
        let mut chosen: BTreeMap<&str, (usize, &Row)> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let e = chosen.entry(&row.file).or_insert((i, row));
            if !e.1.is_ok() && row.is_ok() {
                *e = (i, row);
            }
        }
        let mut kt = String::new();
        for (i, row) in chosen.values() {
            let key = key_file(dir, row, &lab.keys, *i);
            kt += &format!("{} {}", row.file, key.display());
            if let Some(h) = row.header() {
                kt += &format!(" header={}", dir.join(h).display());
            }
            kt.push('\n');
        }
        let kt = lab.key("keytab", kt.as_bytes());
        let m = Mount::start(dir, &lab.root().join("mnt"), &["--keytab".as_ref(), kt.as_os_str()], lab.root());
        for (_, row) in chosen.values() {
            let r = check_mount(&m, row, spots.get(&row.file).unwrap_or(&no_spots));
            report(row, "mount", r);
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

fn check_mount(m: &Mount, row: &Row, spots: &[(u64, u64, String)]) -> Result<String, String> {
    let rel = format!("{}.raw", row.file);
    let errno = match row.expect.as_str() {
        "error-badkey" => Some(libc::EACCES),
        "error-corrupt" => Some(libc::EIO),
        "refuse" => Some(libc::EOPNOTSUPP),
        _ => None,
    };
    let md = std::fs::metadata(m.path(&rel)).map_err(|e| format!("not listed: {e}"))?;
    if let Some(want) = errno {
        return match m.open_errno(&rel) {
            Some(e) if e == want => Ok(format!("open: {}", std::io::Error::from_raw_os_error(e))),
            got => Err(format!(
                "open: got {:?}, want {}",
                got.map(std::io::Error::from_raw_os_error),
                std::io::Error::from_raw_os_error(want)
            )),
        };
    }
    if row.expect == "ok-or-unsupported" && m.open_errno(&rel) == Some(libc::EOPNOTSUPP) {
        return Ok("unsupported (EOPNOTSUPP)".into());
    }
    if let Some(size) = row.plaintext_size
        && md.len() != size
    {
        return Err(format!("size {} != {size}", md.len()));
    }
    if row.expect != "ok-spot" && row.plaintext_size.is_some_and(|s| s <= 1 << 30) {
        let data = m.read(&rel).map_err(|e| format!("read: {e}"))?;
        let sum = sha256_hex(&data);
        if sum != row.sha256 {
            return Err(format!("sha256 {sum} != {}", row.sha256));
        }
    }
    for (off, len, sum) in spots {
        let data = m.read_at(&rel, *off, *len as usize).map_err(|e| format!("pread {off}: {e}"))?;
        if sha256_hex(&data) != *sum {
            return Err(format!("spot [{off}, +{len}]: {} bytes, wrong sha256", data.len()));
        }
    }
    let whole = if row.expect == "ok-spot" { "size ok" } else { "sha256 ok" };
    Ok(if spots.is_empty() { whole.into() } else { format!("{whole}, {} spot checks", spots.len()) })
}

/// `external/` unpacked (per its README) into a cache directory keyed by the manifest's hash.
fn external() -> PathBuf {
    let ext = shared_corpus().join("external");
    let tag = &sha256_file(&ext.join("manifest.tsv"))[..12];
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-external-{tag}"));
    if dir.join("manifest.tsv").is_file() {
        return dir;
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-external-{tag}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for e in std::fs::read_dir(&ext).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tar.xz") {
            let mut c = tool("tar");
            c.arg("-C").arg(&tmp).arg("-xJf").arg(&p).arg("--no-same-owner");
            sh(c);
        } else if let Some(stem) = name.strip_suffix(".xz") {
            let mut c = tool("xz");
            c.arg("-dc").arg(&p);
            std::fs::write(tmp.join(stem), sh(c)).unwrap();
        }
    }
    std::fs::write(tmp.join("spotchecks.tsv"), "file\toffset\tlength\tsha256\tnote\n").unwrap();
    // mostly zeros: punch holes (276 MB -> a few MB on disk); the content is unchanged
    if crate::util::which("fallocate").is_some() {
        let mut files = Vec::new();
        let mut dirs = vec![tmp.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() { dirs.push(p) } else { files.push(p) }
            }
        }
        for f in files {
            let mut c = tool("fallocate"); // one file per call
            c.arg("--dig-holes").arg(f);
            sh(c);
        }
    }
    std::fs::copy(ext.join("manifest.tsv"), tmp.join("manifest.tsv")).unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        // another test process finished first
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

fn visible() -> Option<PathBuf> {
    match std::env::var_os("LUKSFS_CORPUS_DIR") {
        Some(d) if Path::new(&d).join("manifest.tsv").is_file() => Some(d.into()),
        Some(d) => panic!("LUKSFS_CORPUS_DIR={} holds no manifest.tsv", Path::new(&d).display()),
        None => {
            eprintln!("not run: set LUKSFS_CORPUS_DIR to a corpus built by visible.sh (scripts/corpus.sh does this)");
            None
        }
    }
}

fn not_luks2(r: &Row) -> bool {
    r.format != "luks2"
}

fn luks2(r: &Row) -> bool {
    r.format == "luks2"
}

#[test]
fn external_luks1_via_cat() {
    need!("shared-corpus", "xz", "tar");
    check_corpus(&external(), not_luks2, false);
}

#[test]
fn external_luks1_via_mount() {
    need!("shared-corpus", "xz", "tar", "fuse");
    check_corpus(&external(), not_luks2, true);
}

#[test]
fn external_luks2_via_cat() {
    need!("shared-corpus", "xz", "tar");
    check_corpus(&external(), luks2, false);
}

#[test]
fn external_luks2_via_mount() {
    need!("shared-corpus", "xz", "tar", "fuse");
    check_corpus(&external(), luks2, true);
}

#[test]
fn visible_luks1_qcow2_via_cat() {
    if let Some(d) = visible() {
        check_corpus(&d, not_luks2, false);
    }
}

#[test]
fn visible_luks1_qcow2_via_mount() {
    need!("fuse");
    if let Some(d) = visible() {
        check_corpus(&d, not_luks2, true);
    }
}

#[test]
fn visible_luks2_via_cat() {
    if let Some(d) = visible() {
        check_corpus(&d, luks2, false);
    }
}

#[test]
fn visible_luks2_via_mount() {
    need!("fuse");
    if let Some(d) = visible() {
        check_corpus(&d, luks2, true);
    }
}
