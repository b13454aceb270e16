//! Cinder backups read in place: backups written by cinder's own PosixBackupDriver
//! (`scripts/cinder-backup-make.sh`: pip-installed cinder over a sqlite database, no services) of
//! a LUKS1 volume made by qemu-img and of its plaintext, full + two incrementals, with each
//! compression (zlib, bz2, zstd, none). The reassembled volume must equal, byte for byte, the file
//! that was backed up in that state; the LUKS one must open with the existing LUKS code and
//! decrypt to the plaintext; damaged objects must give errors naming the backup and object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use luksfs::formats::cinder_backup::verify::verify;
use luksfs::formats::cinder_backup::{BackupReader, Catalog};
use luksfs::source::ObjectStore;
use luksfs::source::posix::PosixStore;
use luksfs::{ErrorKind, luks};

use sha2::Digest;

use crate::util::{MIB, assert_same};

const CACHE: u64 = 64 << 20;
pub(crate) const PASS: &[u8] = b"luksfs-cinder-test";
pub(crate) const KEY_ID: &str = "00000000-0000-4000-8000-00000000001c";

/// One row of the script's manifest.tsv.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) kind: String,
    pub(crate) compression: String,
    pub(crate) state: u32,
    pub(crate) backup: String,
    parent: Option<String>,
    expected: PathBuf,
}

pub(crate) struct Backups {
    pub(crate) dir: PathBuf,
    pub(crate) rows: Vec<Row>,
}

/// Make the backups under `target/cinder-it/<hash of the scripts>/`, once for all test processes
/// (nextest runs each test in its own): `flock` serialises the makers, `done` marks a finished
/// set, and sets made by other versions of the scripts are removed once two hours old (a test
/// process of the previous version may still be reading them).
fn make() -> Result<Backups, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("target/cinder-it");
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    let mut h = sha2::Sha256::new();
    for f in ["scripts/cinder-backup-make.sh", "scripts/cinder-backup.py", "scripts/cinder-constraints.txt"] {
        h.update(std::fs::read(root.join(f)).map_err(|e| format!("{f}: {e}"))?);
    }
    let key = crate::util::sha256_hex(&h.finalize())[..16].to_string();
    let dir = base.join(&key);
    let script = format!(
        "set -e; cd {base}; for d in */; do [ \"${{d%/}}\" = {key} ] || [ -z \"$(find \"$d\" -maxdepth 0 -mmin +120)\" ] || rm -rf \"$d\"; done; \
         [ -f {key}/done ] || {{ rm -rf {key}; bash {make} {key} && touch {key}/done; }}",
        base = base.display(),
        make = root.join("scripts/cinder-backup-make.sh").display(),
    );
    let out = std::process::Command::new("flock")
        .arg(base.join("lock"))
        .args(["bash", "-c", &script])
        .output()
        .map_err(|e| format!("running flock: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/cinder-backup-make.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows = manifest(&dir)?;
    assert_eq!(rows.len(), 24, "2 volumes x 4 compressions x 3 states");
    Ok(Backups { dir, rows })
}

/// The rows of `DIR/manifest.tsv` (see scripts/cinder-backup-make.sh).
fn manifest(dir: &Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                kind: f[0].into(),
                compression: f[1].into(),
                state: f[2].parse().unwrap(),
                backup: f[3].into(),
                parent: (f[5] != "-").then(|| f[5].to_string()),
                expected: f[6].into(),
            }
        })
        .collect())
}

/// The backups, made once per test process; `None` (skipped) when cinder cannot be installed
/// or run, which under `CI=true` is a failure.
pub(crate) fn backups() -> Option<&'static Backups> {
    static B: OnceLock<Result<Backups, String>> = OnceLock::new();
    if !crate::util::have(&["python3", "qemu-img", "qemu-io", "flock"]) {
        return None;
    }
    match B.get_or_init(make) {
        Ok(b) => Some(b),
        Err(e) => {
            crate::util::skip(&format!("cannot make cinder backups: {e}"));
            None
        }
    }
}

pub(crate) fn catalog(dir: &Path) -> Catalog {
    let store: Arc<dyn ObjectStore> = Arc::new(PosixStore::new(dir).unwrap());
    Catalog::discover(store, "").unwrap()
}

fn read_all(r: &BackupReader) -> Vec<u8> {
    let mut v = vec![0u8; r.size() as usize];
    for (i, piece) in v.chunks_mut(MIB).enumerate() {
        r.read_exact_at(piece, (i * MIB) as u64).unwrap();
    }
    v
}

#[test]
fn reassembles_every_backup_byte_exact() {
    let Some(b) = backups() else { return };
    let cat = catalog(&b.dir.join("backups"));
    assert_eq!(cat.backups().len(), 24);
    for row in &b.rows {
        let what = format!("{} {} state {} ({})", row.kind, row.compression, row.state, row.backup);
        let r = cat.open(&row.backup, CACHE).unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = std::fs::read(&row.expected).unwrap();
        assert_eq!(r.size(), want.len() as u64, "{what}");
        assert_eq!(r.chain().len() as u32, row.state + 1, "{what}");
        assert_eq!(r.chain().last().unwrap().1.parent_id, row.parent, "{what}");
        let key = r.chain()[0].1.encryption_key_id.clone();
        assert_eq!(key.as_deref(), (row.kind == "luks").then_some(KEY_ID), "{what}");
        assert_same(&what, &read_all(&r), &want);
        // odd offsets and lengths, across object boundaries and the unaligned tail
        for (off, len) in [(1, 7), (MIB as u64 - 3, 10), (1_000_000, 100_001), (want.len() as u64 - 4609, 4609)] {
            let mut buf = vec![0u8; len];
            r.read_exact_at(&mut buf, off).unwrap();
            assert_same(&format!("{what} at {off}+{len}"), &buf, &want[off as usize..off as usize + len]);
        }
        let mut one = [0u8; 1];
        assert_eq!(r.read_exact_at(&mut one, r.size()).unwrap_err().kind(), ErrorKind::Corrupt);
    }
    // the compressing drivers really compressed: the raw volume's objects are not all `none`
    for comp in ["zlib", "bz2", "zstd"] {
        let row = b.rows.iter().find(|r| r.kind == "raw" && r.compression == comp && r.state == 0).unwrap();
        let r = cat.open(&row.backup, CACHE).unwrap();
        let used: Vec<_> = r.chain()[0].1.objects.iter().map(|o| o.compression.name()).collect();
        assert!(used.contains(&comp), "{comp}: {used:?}");
    }
}

/// An object store that counts whole-object fetches (around the real posix store).
/// Large uncompressed objects (a posix backup's are up to 2 GB) are read by range in pieces
/// that the `_sha256file` checks, not whole: here with 64 KiB pieces of the 1 MiB objects.
/// Every byte is the same as reading whole objects, no object is fetched whole, and a flipped
/// byte fails only the piece that holds it.
#[test]
fn uncompressed_objects_are_read_in_checked_pieces() {
    use luksfs::formats::cinder_backup::reader::ObjectChecks;
    use std::sync::atomic::Ordering::Relaxed;
    let Some(b) = backups() else { return };
    let (_guard, dir) = scratch(b);
    const PIECE: u64 = 64 << 10;
    let mut ranged = 0;
    for row in b.rows.iter().filter(|r| r.compression == "none") {
        let what = format!("{} none state {} ({})", row.kind, row.state, row.backup);
        let store = Arc::new(Counting(PosixStore::new(&dir).unwrap(), Default::default(), Default::default()));
        let cat = Catalog::discover(store.clone(), "").unwrap();
        let r = cat.open_with(&row.backup, CACHE, ObjectChecks::Digests).unwrap().with_piece_bytes(PIECE);
        let before = store.1.load(Relaxed);
        let want = std::fs::read(&row.expected).unwrap();
        assert_same(&what, &read_all(&r), &want);
        for (off, len) in [(1, 7), (PIECE - 3, 10), (1_000_000, 100_001), (want.len() as u64 - 4609, 4609)] {
            let mut buf = vec![0u8; len];
            r.read_exact_at(&mut buf, off).unwrap();
            assert_same(&format!("{what} at {off}+{len}"), &buf, &want[off as usize..off as usize + len]);
        }
        // the _sha256file of each chain member whole, and only objects no larger than a piece
        // (an incremental's few changed blocks) whole
        let small: usize = r.chain().iter().map(|(_, m)| m.objects.iter().filter(|o| o.length <= PIECE).count()).sum();
        let whole = store.1.load(Relaxed) - before;
        assert!(whole <= r.chain().len() + small, "{what}: {whole} whole-object reads");
        ranged += store.2.load(Relaxed);
    }
    assert!(ranged > 0, "no range was read");

    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "none" && r.state == 0).unwrap();
    let cat = catalog(&dir);
    let objs = objects_of(&cat, &row.backup);
    let (name, (_, off)) = objs.iter().nth(1).unwrap();
    let mut bytes = std::fs::read(dir.join(name)).unwrap();
    bytes[PIECE as usize + 5] ^= 1;
    std::fs::write(dir.join(name), &bytes).unwrap();
    let r = cat.open_with(&row.backup, CACHE, ObjectChecks::Digests).unwrap().with_piece_bytes(PIECE);
    expect_corrupt(&r, off + PIECE, &["sha256"]);
    let e = r.read_exact_at(&mut [0u8; 1], off + PIECE).unwrap_err();
    assert!(e.is_digest_mismatch(), "{e}");
    let want = std::fs::read(&row.expected).unwrap();
    for at in [*off, off + 2 * PIECE] {
        let mut buf = vec![0u8; PIECE as usize];
        r.read_exact_at(&mut buf, at).unwrap();
        assert_same("the pieces around it", &buf, &want[at as usize..(at + PIECE) as usize]);
    }
}

/// `verify` reads large uncompressed objects in pieces too, and makes each object's md5 over
/// them in order, beside the reads: the md5 of every object of cinder's own backups agrees, the
/// volume read backwards (the pieces out of order); an md5 in the metadata that disagrees with
/// bytes the `_sha256file` accepts is found after the read (`check_md5s`, `luksfs verify` exit
/// 7), naming the object, while a mount still reads it.
#[test]
fn md5s_are_made_over_pieces_beside_the_reads() {
    use luksfs::formats::cinder_backup::reader::ObjectChecks;
    let Some(b) = backups() else { return };
    let (_guard, dir) = scratch(b);
    const PIECE: u64 = 64 << 10;
    let cat = catalog(&dir);
    for row in b.rows.iter().filter(|r| r.compression == "none") {
        let what = format!("{} none state {} ({})", row.kind, row.state, row.backup);
        let r = cat.open_with(&row.backup, CACHE, ObjectChecks::All).unwrap().with_piece_bytes(PIECE);
        let want = std::fs::read(&row.expected).unwrap();
        let mut got = vec![0u8; want.len()];
        let step = (PIECE / 2 + 512) as usize;
        let mut end = got.len();
        while end > 0 {
            let start = end.saturating_sub(step);
            r.read_exact_at(&mut got[start..end], start as u64).unwrap();
            end = start;
        }
        assert_same(&what, &got, &want);
        r.check_md5s().unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "none" && r.state == 0).unwrap();
    let entry = cat.find(&row.backup).unwrap().clone();
    let meta_path = dir.join(entry.metadata_name());
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    let second = meta["objects"][1].as_object_mut().unwrap().values_mut().next().unwrap();
    let name = cat.metadata(&entry).unwrap().objects[1].name.clone();
    let md5 = second["md5"].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if md5.starts_with('0') { "1" } else { "0" }, &md5[1..]);
    second["md5"] = serde_json::Value::String(flipped);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let r = cat.open_with(&row.backup, CACHE, ObjectChecks::All).unwrap().with_piece_bytes(PIECE);
    assert_same("bytes the _sha256file accepts", &read_all(&r), &std::fs::read(&row.expected).unwrap());
    let e = r.check_md5s().unwrap_err();
    assert!(e.is_digest_mismatch() && e.to_string().contains("md5") && e.to_string().contains(&name), "{e}");
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("key");
    std::fs::write(&key, PASS).unwrap();
    let out = crate::util::Luksfs::new("verify").arg(dir.join(&row.backup)).key(&key).run();
    assert_eq!(out.code(), 7, "{}: {}", out.cmdline, out.stderr);
    assert!(out.stderr.contains("md5") && out.stderr.contains(&name), "{}", out.stderr);
}

struct Counting(PosixStore, std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize);

impl ObjectStore for Counting {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn list_sized(&self, prefix: &str) -> luksfs::Result<Vec<luksfs::source::Listed>> {
        self.0.list_sized(prefix)
    }
    fn get(&self, name: &str, max: u64) -> luksfs::Result<Option<Vec<u8>>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.get(name, max)
    }
    fn get_range(&self, name: &str, offset: u64, len: usize) -> luksfs::Result<Option<Vec<u8>>> {
        self.2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.get_range(name, offset, len)
    }
}

/// Each object is fetched once however the volume is read (sequentially, again, in small random
/// pieces) when the cache holds the volume; and a cache smaller than one object still serves
/// reads within one object from one fetch.
#[test]
fn objects_are_fetched_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(b) = backups() else { return };
    let row = b.rows.iter().find(|r| r.kind == "raw" && r.compression == "zstd" && r.state == 0).unwrap();
    for cache in [64 << 20, 1 << 10] {
        let store =
            Arc::new(Counting(PosixStore::new(b.dir.join("backups")).unwrap(), Default::default(), Default::default()));
        let cat = Catalog::discover(store.clone(), "").unwrap();
        let r = cat.open(&row.backup, cache).unwrap();
        let objects = r.chain()[0].1.objects.len();
        let before = store.1.load(Relaxed); // the metadata
        if cache > 1 << 20 {
            let first = read_all(&r);
            let again = read_all(&r);
            assert_same("second pass", &again, &first);
            let mut x = 0u64;
            for _ in 0..500 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let off = (x >> 20) % (r.size() - 4096);
                let mut buf = vec![0u8; 4096];
                r.read_exact_at(&mut buf, off).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(200)); // prefetches settle
            // each object once, and the _sha256file once
            assert_eq!(store.1.load(Relaxed) - before, objects + 1, "cache {cache}");
        } else {
            let mut buf = vec![0u8; 4096];
            for i in 0..64 {
                r.read_exact_at(&mut buf, i * 4096).unwrap();
            }
            assert_eq!(store.1.load(Relaxed) - before, 2, "one object and the _sha256file, cache {cache}");
        }
    }
}

#[test]
fn matches_cinders_own_restore() {
    let Some(b) = backups() else { return };
    let cat = catalog(&b.dir.join("backups"));
    let row = b.rows.iter().find(|r| r.kind == "raw" && r.compression == "zlib" && r.state == 2).unwrap();
    let got = read_all(&cat.open(&row.backup, CACHE).unwrap());
    // cinder's restore into a new volume skips all-zero MiBs of the base backup: the file it
    // wrote may be shorter, the missing tail being zeros
    let mut restored = std::fs::read(b.dir.join("restored.raw-zlib")).unwrap();
    assert!(restored.len() <= got.len());
    restored.resize(got.len(), 0);
    assert_same("cinder restore vs luksfs", &got, &restored);
}

#[test]
fn luks_volume_in_a_backup_decrypts_to_the_plaintext() {
    let Some(b) = backups() else { return };
    let cat = catalog(&b.dir.join("backups"));
    // every compression in the newest state, and the full backup once (key derivation is slow in
    // a debug build)
    for row in b.rows.iter().filter(|r| r.kind == "luks" && (r.state == 2 || (r.state == 0 && r.compression == "zlib")))
    {
        let what = format!("luks {} state {}", row.compression, row.state);
        let src = cat.open(&row.backup, CACHE).unwrap();
        let header = luks::read_header(&src).unwrap_or_else(|e| panic!("{what}: {e}"));
        let plans = header.slot_plans().unwrap();
        let opts = luks::keyslot::UnlockOptions { key_slot: None, max_kdf_memory_kib: 1 << 20, parallel: 1 };
        let unlocked = luks::keyslot::unlock(&plans, &luksfs::keys::Secret::from_slice(PASS), &src, opts).unwrap();
        let layout = header.data_layout().unwrap();
        let cipher = luksfs::crypto::sector_cipher(&layout.cipher, unlocked.volume_key.as_bytes()).unwrap();
        let plain_path = b.dir.join(format!("vol/plain.{}", row.state));
        let want = std::fs::read(&plain_path).unwrap();
        let mut got = vec![0u8; want.len()];
        src.read_exact_at(&mut got, layout.offset).unwrap();
        cipher.decrypt(&mut got, layout.iv_tweak, layout.sector_size as usize);
        assert_same(&what, &got, &want);
    }
}

#[test]
fn verify_checks_every_md5_and_sha256() {
    let Some(b) = backups() else { return };
    let cat = catalog(&b.dir.join("backups"));
    for row in &b.rows {
        let rep = verify(&cat, &row.backup, CACHE).unwrap_or_else(|e| panic!("{}: {e}", row.backup));
        let size = std::fs::metadata(&row.expected).unwrap().len();
        assert_eq!(rep.size, size);
        assert_eq!(rep.blocks, size.div_ceil(32768));
        assert_eq!(rep.chain.len() as u32, row.state + 1);
        assert!(rep.objects >= (size as usize).div_ceil(MIB));
    }
}

/// A private copy of the backups to damage (removed when the guard drops).
fn scratch(b: &Backups) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("backups");
    let st = std::process::Command::new("cp").arg("-a").arg(b.dir.join("backups")).arg(&dst).status().unwrap();
    assert!(st.success());
    (t, dst)
}

/// The chunk files of a backup, by object name, with the compression the metadata gives.
fn objects_of(cat: &Catalog, backup: &str) -> BTreeMap<String, (String, u64)> {
    let r = cat.open(backup, CACHE).unwrap();
    let (entry, meta) = r.chain().last().unwrap();
    let dir = entry.prefix.rsplit_once('/').unwrap().0.to_string();
    meta.objects.iter().map(|o| (format!("{dir}/{}", o.name), (o.compression.name().to_string(), o.offset))).collect()
}

fn expect_corrupt(r: &BackupReader, off: u64, needles: &[&str]) {
    let mut buf = vec![0u8; 4096];
    let e = r.read_exact_at(&mut buf, off).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(r.chain().last().unwrap().0.info.backup_id.as_str()) || msg.contains("cinder backup"),
        "{msg}"
    );
    assert!(needles.iter().any(|n| msg.contains(n)), "{msg} lacks any of {needles:?}");
}

#[test]
fn damaged_objects_are_errors_never_wrong_bytes() {
    let Some(b) = backups() else { return };
    let (_guard, dir) = scratch(b);
    let pick = |kind: &str, comp: &str, state: u32| {
        b.rows.iter().find(|r| r.kind == kind && r.compression == comp && r.state == state).unwrap().clone()
    };
    let cat = catalog(&dir);

    // a byte flipped in an uncompressed object: its _sha256file block (checked as it is
    // read) and its md5 (made beside the reads, see check_md5s) disagree
    let full = pick("luks", "none", 0);
    let objs = objects_of(&cat, &full.backup);
    let (name, (_, off)) = objs.iter().nth(2).unwrap();
    let path = dir.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1234] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let obj_name = name.rsplit('/').next().unwrap();
    let r = cat.open(&full.backup, CACHE).unwrap();
    expect_corrupt(&r, *off, &["sha256 does not match"]);
    assert!(r.read_exact_at(&mut [0u8; 4096], *off).unwrap_err().to_string().contains(obj_name));
    // the rest of the volume still reads, and verify says what is wrong
    let mut head = vec![0u8; 4096];
    r.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head[..6], b"LUKS\xba\xbe");
    let e = verify(&cat, &full.backup, CACHE).unwrap_err();
    assert!(e.is_digest_mismatch() && e.to_string().contains(obj_name), "{e}");

    // a compressed object truncated, and one with a byte flipped: corrupt data or md5
    for (comp, how) in [("zlib", "truncate"), ("bz2", "flip"), ("zstd", "truncate"), ("zstd", "flip")] {
        let row = pick("raw", comp, 0);
        let objs = objects_of(&cat, &row.backup);
        let (name, (_, off)) = objs.iter().find(|(_, (c, _))| c == comp).unwrap();
        let path = dir.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        if how == "truncate" {
            bytes.truncate(bytes.len() / 2);
        } else {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x10;
        }
        std::fs::write(&path, &bytes).unwrap();
        let r = cat.open(&row.backup, CACHE).unwrap();
        expect_corrupt(&r, *off, &["corrupt", "md5", "holds"]);
    }

    // an object deleted: missing (read) and missing (verify)
    let row = pick("raw", "none", 2);
    let objs = objects_of(&cat, &row.backup);
    let (name, (_, off)) = objs.iter().next().unwrap();
    std::fs::remove_file(dir.join(name)).unwrap();
    let r = cat.open(&row.backup, CACHE).unwrap();
    expect_corrupt(&r, *off, &["missing"]);
    assert!(verify(&cat, &row.backup, CACHE).unwrap_err().to_string().contains("missing"));

    // a parent deleted: its incrementals cannot open
    let mid = pick("luks", "bz2", 1);
    let top = pick("luks", "bz2", 2);
    let entry = cat.find(&mid.backup).unwrap().clone();
    std::fs::remove_dir_all(dir.join(entry.prefix.rsplit_once('/').unwrap().0)).unwrap();
    let cat = catalog(&dir);
    let e = cat.open(&top.backup, CACHE).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains(&mid.backup) && e.to_string().contains("missing"), "{e}");
    // the full backup of that chain is still fine
    verify(&cat, &pick("luks", "bz2", 0).backup, CACHE).unwrap();
}

#[test]
fn sha256file_mismatch_and_bad_metadata_fail_verify() {
    let Some(b) = backups() else { return };
    let (_guard, dir) = scratch(b);
    let cat = catalog(&dir);
    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "zstd" && r.state == 1).unwrap();
    let entry = cat.find(&row.backup).unwrap().clone();

    // one digest changed: verify names the block
    let sha_path = dir.join(entry.sha256_name());
    let text = std::fs::read_to_string(&sha_path).unwrap();
    let first = text.find("\"sha256s\": [").unwrap();
    let at = text[first..].find("\n    \"").unwrap() + first + 6;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&sha_path, &bytes).unwrap();
    let e = verify(&cat, &row.backup, CACHE).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("volume block 0"), "{e}");

    // an unknown metadata version: unsupported, and the reads refuse rather than guess
    let meta_path = dir.join(entry.metadata_name());
    let text = std::fs::read_to_string(&meta_path).unwrap().replace("\"version\": \"1.0.0\"", "\"version\": \"2.0.0\"");
    std::fs::write(&meta_path, text).unwrap();
    let e = cat.open(&row.backup, CACHE).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains(&row.backup), "{e}");
}

/// The plaintext a row's backup holds (a LUKS volume's decrypted view, or the raw volume).
pub(crate) fn plain_of(b_dir: &Path, row: &Row) -> Vec<u8> {
    std::fs::read(b_dir.join(format!("vol/plain.{}", row.state))).unwrap()
}

/// `verify --json` of a whole source: the report of each image, by backup id.
fn verify_reports(out: &crate::util::Out) -> BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}\n{}", out.cmdline, out.stderr));
    v["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no images: {v}", out.cmdline))
        .iter()
        .map(|i| (i["backup"]["id"].as_str().unwrap_or_default().to_string(), i.clone()))
        .collect()
}

/// Each row's backup verified: OK (raw) or WARN (the LUKS ones' random plaintext is not
/// recognised), its plaintext's sha256 that of the file that was backed up, its chain complete.
fn check_verified(what: &str, reports: &BTreeMap<String, serde_json::Value>, b_dir: &Path, rows: &[Row]) {
    for row in rows {
        let r = reports.get(&row.backup).unwrap_or_else(|| panic!("{what}: no report for {}", row.backup));
        let want = crate::util::sha256_hex(&plain_of(b_dir, row));
        assert_eq!(r["sha256"]["plaintext"].as_str(), Some(want.as_str()), "{what} {}: {r}", row.backup);
        assert_eq!(r["backup"]["chain"].as_array().unwrap().len() as u32, row.state + 1, "{what}: {r}");
        let verdict = r["verdict"].as_str().unwrap();
        assert!(verdict == "OK" || (row.kind == "luks" && verdict == "WARN"), "{what}: {r}");
    }
}

/// The CLI over a folder of posix backups (the `backup_posix_path` root): `verify DIR` checks
/// every backup end to end; a real mount shows each as `volume_<vol>_<time>_backup_<id>.raw`
/// reading the plaintext; `cat` and `inspect` take one backup by its id, by its shown name and
/// by its own folder.
#[test]
fn posix_backups_through_verify_mount_cat_and_inspect() {
    use crate::util::Luksfs;
    let Some(b) = backups() else { return };
    if !crate::util::have(&["fuse"]) {
        return;
    }
    let dir = b.dir.join("backups");
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("key");
    std::fs::write(&key, PASS).unwrap();

    let out = Luksfs::new("verify").arg(&dir).key(&key).arg("--json").run();
    assert_eq!(out.code(), 6, "{}: WARN for the unrecognised LUKS plaintexts", out.cmdline);
    let reports = verify_reports(&out);
    assert_eq!(reports.len(), 24);
    check_verified("posix verify", &reports, &b.dir, &b.rows);

    let mnt = t.path().join("mnt");
    let m = crate::util::mount::Mount::start(&dir, &mnt, &["--key-file".as_ref(), key.as_os_str()], t.path());
    let names = m.ls("").unwrap();
    assert_eq!(names.len(), 24, "{names:?}");
    for row in &b.rows {
        let vol = &row.backup;
        let name = names.iter().find(|n| n.ends_with(&format!("_backup_{vol}.raw"))).expect(vol);
        assert!(name.starts_with("volume_") && name.contains(&format!("_{}_", row_volume(b, vol))), "{name}");
        let got = m.read(name).unwrap();
        assert_same(&format!("mounted {name}"), &got, &plain_of(&b.dir, row));
    }
    drop(m);

    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "bz2" && r.state == 2).unwrap();
    let entry = catalog(&dir).find(&row.backup).unwrap().clone();
    let own_folder = dir.join(entry.prefix.rsplit_once('/').unwrap().0);
    let shown = format!("volume_{}_{}_backup_{}.raw", entry.info.volume_id, entry.info.timestamp, row.backup);
    for arg in [dir.join(&row.backup), dir.join(&shown), own_folder] {
        let out = Luksfs::new("cat").arg(&arg).key(&key).run();
        assert_same(&format!("cat {}", arg.display()), out.ok(), &plain_of(&b.dir, row));
    }
    let out = Luksfs::new("inspect").arg(dir.join(&row.backup)).arg("--json").run();
    let v: serde_json::Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(v["format"], "luks1", "{v}");
    assert_eq!(v["backup"]["chain"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["backup"]["encryption_key_id"], KEY_ID, "{v}");
    // two backups of the source cannot be meant at once
    let out = Luksfs::new("cat").arg(&dir).key(&key).run();
    assert_eq!(out.code(), 2, "{}", out.cmdline);
    assert!(out.stderr.contains("holds 24 images"), "{}", out.stderr);
}

fn row_volume(b: &Backups, backup: &str) -> String {
    let text = std::fs::read_to_string(b.dir.join("manifest.tsv")).unwrap();
    text.lines().find(|l| l.split('\t').nth(3) == Some(backup)).unwrap().split('\t').nth(4).unwrap().to_string()
}

/// Damage seen through the CLI: a byte flipped in an uncompressed object is a hash mismatch
/// (`verify` FAIL, exit 7, naming the object), its reads in a mount fail with EIO while the rest of
/// the backup reads; a missing object is FAIL 4.
#[test]
fn damaged_backups_fail_verify_and_give_eio_in_a_mount() {
    use crate::util::Luksfs;
    let Some(b) = backups() else { return };
    if !crate::util::have(&["fuse"]) {
        return;
    }
    let (_guard, dir) = scratch(b);
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("key");
    std::fs::write(&key, PASS).unwrap();
    let cat = catalog(&dir);
    let row = b.rows.iter().find(|r| r.kind == "raw" && r.compression == "none" && r.state == 0).unwrap().clone();
    let objs = objects_of(&cat, &row.backup);
    let (name, (_, off)) = objs.iter().nth(1).unwrap();
    let path = dir.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[777] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let out = Luksfs::new("verify").arg(dir.join(&row.backup)).key(&key).run();
    assert_eq!(out.code(), 7, "{}: {}", out.cmdline, out.stderr);
    let err = &out.stderr;
    assert!(err.contains("does not match") && err.contains(name.rsplit('/').next().unwrap()), "{err}");

    let mnt = t.path().join("mnt");
    let m = crate::util::mount::Mount::start(&dir, &mnt, &["--key-file".as_ref(), key.as_os_str()], t.path());
    let file = m.ls("").unwrap().into_iter().find(|n| n.contains(&row.backup)).unwrap();
    let e = m.read_at(&file, *off, 4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    let head = m.read_at(&file, 0, 4096).unwrap();
    assert_eq!(head, plain_of(&b.dir, &row)[..4096]);
    drop(m);

    let gone = b.rows.iter().find(|r| r.kind == "raw" && r.compression == "zlib" && r.state == 1).unwrap();
    let (name, _) = objects_of(&cat, &gone.backup).into_iter().next().unwrap();
    std::fs::remove_file(dir.join(&name)).unwrap();
    let out = Luksfs::new("verify").arg(dir.join(&gone.backup)).key(&key).run();
    assert_eq!(out.code(), 4, "{}: {}", out.cmdline, out.stderr);
    assert!(out.stderr.contains("missing"), "{}", out.stderr);
}

/// Unmounts a mount point when dropped (the test failing included).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

/// Stops the Swift that scripts/swift-up.sh started in a directory.
struct SwiftUp(PathBuf);

impl Drop for SwiftUp {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = std::process::Command::new("bash").arg(root.join("scripts/swift-down.sh")).arg(&self.0).status();
    }
}

fn run_script(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = std::process::Command::new("bash").args(args).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{:?} failed ({}):\n{}", args, out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Backups written by cinder's SwiftBackupDriver and S3BackupDriver into a real Swift
/// (scripts/swift-up.sh: PyPI swift, tempauth, s3api), read in place over HTTP through the Swift
/// API and, for the S3 bucket, the S3 API too (SigV4): listing, whole objects, byte ranges.
#[test]
fn swift_and_s3_backups_read_in_place() {
    use luksfs::source::s3::{S3Config, S3Store};
    use luksfs::source::swift::{SwiftAuth, SwiftStore};
    let s3_cfg = |env: &BTreeMap<String, String>| S3Config {
        endpoint: env["S3_ENDPOINT"].clone(),
        region: env["AWS_REGION"].clone(),
        access_key: env["AWS_ACCESS_KEY_ID"].clone(),
        secret_key: env["AWS_SECRET_ACCESS_KEY"].clone(),
        session_token: None,
    };
    if !crate::util::have(&["python3", "qemu-img", "qemu-io", "curl", "apt-get", "dpkg"]) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = tempfile::tempdir().unwrap();
    let sw = t.path().join("swift");
    let up = run_script(&[root.join("scripts/swift-up.sh").as_os_str(), sw.as_os_str()]);
    let _guard = SwiftUp(sw.clone());
    if let Err(e) = up {
        crate::util::skip(&format!("Swift did not start: {e}"));
        return;
    }
    let env_file = sw.join("swift.env");
    let env: BTreeMap<String, String> = std::fs::read_to_string(&env_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let auth = SwiftAuth::V1 {
        auth_url: env["SWIFT_AUTH_URL"].clone(),
        user: env["SWIFT_USER"].clone(),
        key: env["SWIFT_KEY"].clone(),
    };
    // the Swift driver writes into container volumebackups; the S3 driver (boto3 through
    // s3api) into bucket s3backups, which Swift serves as a container of the same name
    let mut swift_rows = Vec::new();
    for (mode, container) in [("--swift", "volumebackups"), ("--s3", "s3backups")] {
        let bk = t.path().join(&container[..2]);
        let made = run_script(&[
            root.join("scripts/cinder-backup-make.sh").as_os_str(),
            bk.as_os_str(),
            mode.as_ref(),
            env_file.as_os_str(),
        ]);
        if let Err(e) = made {
            crate::util::skip(&format!("cinder's {mode} driver could not write backups: {e}"));
            return;
        }
        let rows = manifest(&bk).unwrap();
        assert_eq!(rows.len(), 6);
        let store = Arc::new(SwiftStore::new(auth.clone(), container).unwrap());
        let cat = Catalog::discover(store, "").unwrap();
        assert_eq!(cat.backups().len(), 6);
        for row in &rows {
            let what = format!("{container}: {} {} state {}", row.kind, row.compression, row.state);
            let r = cat.open(&row.backup, CACHE).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.chain().last().unwrap().0.info.az.as_deref(), Some("nova"));
            let used: Vec<_> = r.chain()[0].1.objects.iter().map(|o| o.compression.name()).collect();
            assert!(used.contains(&row.compression.as_str()), "{what}: {used:?}");
            assert_same(&what, &read_all(&r), &std::fs::read(&row.expected).unwrap());
            verify(&cat, &row.backup, CACHE).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        if mode == "--s3" {
            // the same bucket through the S3 API (SigV4, path-style, ListObjectsV2, ranges)
            let s3 = Arc::new(S3Store::new(s3_cfg(&env), container).unwrap());
            let cat = Catalog::discover(s3.clone(), "").unwrap();
            assert_eq!(cat.backups().len(), 6);
            for row in &rows {
                let what = format!("s3 {container}: {} {} state {}", row.kind, row.compression, row.state);
                let r = cat.open(&row.backup, CACHE).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_same(&what, &read_all(&r), &std::fs::read(&row.expected).unwrap());
                verify(&cat, &row.backup, CACHE).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            let entry = cat.backups()[0].clone();
            let whole = s3.get(&entry.sha256_name(), 1 << 20).unwrap().unwrap();
            assert_eq!(s3.get_range(&entry.sha256_name(), 5, 50).unwrap().unwrap(), whole[5..55]);
            assert_eq!(s3.get("no-such-key", 10).unwrap(), None);
            let bad = S3Config { secret_key: "wrong".into(), ..s3_cfg(&env) };
            let e = S3Store::new(bad, container).unwrap().list("").unwrap_err();
            assert!(e.to_string().contains("403"), "{e}");
        } else {
            swift_rows = rows;
        }
    }
    let rows = swift_rows;

    // the CLI over the URLs: verify every backup of the container and of the bucket, and a real
    // mount of swift:// reading each backup's plaintext
    let key = t.path().join("key");
    std::fs::write(&key, PASS).unwrap();
    let swift_env = [
        ("ST_AUTH", env["SWIFT_AUTH_URL"].clone()),
        ("ST_USER", env["SWIFT_USER"].clone()),
        ("ST_KEY", env["SWIFT_KEY"].clone()),
    ];
    let s3_env = [
        ("AWS_ENDPOINT_URL", env["S3_ENDPOINT"].clone()),
        ("AWS_REGION", env["AWS_REGION"].clone()),
        ("AWS_ACCESS_KEY_ID", env["AWS_ACCESS_KEY_ID"].clone()),
        ("AWS_SECRET_ACCESS_KEY", env["AWS_SECRET_ACCESS_KEY"].clone()),
    ];
    let run = |args: &[&std::ffi::OsStr], vars: &[(&str, String)]| {
        let mut c = std::process::Command::new(crate::util::bin());
        c.args(args).env_remove("RUST_LOG");
        for k in ["ST_AUTH", "ST_USER", "ST_KEY", "OS_STORAGE_URL", "OS_AUTH_TOKEN"] {
            c.env_remove(k);
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        crate::util::run_timed(c, std::time::Duration::from_secs(300))
    };
    let verify_args = |url: &str| -> Vec<std::ffi::OsString> {
        vec!["verify".into(), url.into(), "--key-file".into(), key.clone().into(), "--json".into()]
    };
    let s3_rows = manifest(&t.path().join("s3")).unwrap();
    for (url, vars, rows, dir) in [
        ("swift://volumebackups", &swift_env[..], &rows, t.path().join("vo")),
        ("s3://s3backups", &s3_env[..], &s3_rows, t.path().join("s3")),
    ] {
        let args = verify_args(url);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let out = run(&args, vars);
        assert!(out.code() == 0 || out.code() == 6, "{}: {}", out.cmdline, out.stderr);
        let reports = verify_reports(&out);
        assert_eq!(reports.len(), 6, "{url}");
        check_verified(url, &reports, &dir, rows);
    }
    if crate::util::have(&["fuse"]) {
        let mnt = t.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut c = std::process::Command::new(crate::util::bin());
        c.arg("mount").arg("swift://volumebackups").arg(&mnt).arg("--key-file").arg(&key).arg("--daemon");
        for (k, v) in &swift_env {
            c.env(k, v);
        }
        let out = crate::util::run_timed(c, std::time::Duration::from_secs(60));
        assert_eq!(out.code(), 0, "{}: {}", out.cmdline, out.stderr);
        let unmount = Unmount(mnt.clone());
        for row in &rows {
            let name = std::fs::read_dir(&mnt)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .find(|n| n.ends_with(&format!("_backup_{}.raw", row.backup)))
                .unwrap_or_else(|| panic!("no file for {}", row.backup));
            let got = std::fs::read(mnt.join(&name)).unwrap();
            assert_same(&format!("swift mount {name}"), &got, &plain_of(&t.path().join("vo"), row));
        }
        drop(unmount);
    }
    // a container (bucket) of plain image files: each object is an image read by range
    let put = format!(
        "set -e; tok=$(curl -fsS -D - -o /dev/null -H 'X-Auth-User: {u}' -H 'X-Auth-Key: {k}' {a} | \\
         tr -d '\\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p'); \\
         curl -fsS -X PUT -H \"X-Auth-Token: $tok\" {url}/images; \\
         curl -fsS -X PUT -H \"X-Auth-Token: $tok\" -T {file} {url}/images/disks/vol-2.luks",
        u = env["SWIFT_USER"],
        k = env["SWIFT_KEY"],
        a = env["SWIFT_AUTH_URL"],
        url = env["SWIFT_URL"],
        file = t.path().join("vo/vol/luks.2").display(),
    );
    run_script(&["-c".as_ref(), put.as_ref()]).unwrap();
    let want = std::fs::read(t.path().join("vo/vol/plain.2")).unwrap();
    for (url, vars) in
        [("swift://images/disks/vol-2.luks", &swift_env[..]), ("s3://images/disks/vol-2.luks", &s3_env[..])]
    {
        let out = run(&["cat".as_ref(), url.as_ref(), "--key-file".as_ref(), key.as_os_str()], vars);
        assert_eq!(out.code(), 0, "{}: {}", out.cmdline, out.stderr);
        assert_same(url, &out.stdout, &want);
    }
    let out = run(&["inspect".as_ref(), "swift://images".as_ref(), "--json".as_ref()], &swift_env);
    let v: serde_json::Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(v["format"], "luks1", "{v}");

    // no credentials: a usage error that says what to set
    let out = run(&["verify".as_ref(), "swift://volumebackups".as_ref(), "--key-file".as_ref(), key.as_os_str()], &[]);
    assert_eq!(out.code(), 2, "{}", out.cmdline);
    assert!(out.stderr.contains("ST_AUTH"), "{}", out.stderr);

    let store = Arc::new(SwiftStore::new(auth, "volumebackups").unwrap());
    let cat = Catalog::discover(store.clone(), "").unwrap();

    // byte ranges are 206 with exactly the bytes asked for
    let entry = cat.find(&rows[0].backup).unwrap().clone();
    let whole = store.get(&entry.metadata_name(), 1 << 20).unwrap().unwrap();
    let part = store.get_range(&entry.metadata_name(), 10, 100).unwrap().unwrap();
    assert_eq!(part, whole[10..110]);
    assert!(store.get_range(&entry.metadata_name(), whole.len() as u64, 1).is_err());
    assert_eq!(store.get("no-such-object", 10).unwrap(), None);

    // an object deleted from Swift: reads of its range and verify fail, naming it
    let row = rows.iter().find(|r| r.kind == "raw" && r.state == 0).unwrap();
    let r = cat.open(&row.backup, CACHE).unwrap();
    let obj = r.chain()[0].1.objects[1].clone();
    let del = format!(
        "set -e; tok=$(curl -fsS -D - -o /dev/null -H 'X-Auth-User: {u}' -H 'X-Auth-Key: {k}' {a} | \\
         tr -d '\\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p'); \\
         curl -fsS -X DELETE -H \"X-Auth-Token: $tok\" {url}/volumebackups/{name}",
        u = env["SWIFT_USER"],
        k = env["SWIFT_KEY"],
        a = env["SWIFT_AUTH_URL"],
        url = env["SWIFT_URL"],
        name = obj.name
    );
    run_script(&["-c".as_ref(), del.as_ref()]).unwrap();
    expect_corrupt(&r, obj.offset, &["missing"]);
    let e = verify(&cat, &row.backup, CACHE).unwrap_err();
    assert!(e.to_string().contains("missing") && e.to_string().contains(&obj.name), "{e}");
}

/// The reassembled volume as the source of a volume tree (the layer stack `mount`, `cat` and
/// `verify` walk): the probe finds the LUKS volume inside, the key unlocks it, and the decrypted
/// top view reads as the plaintext.
#[test]
fn backup_is_a_layer_of_the_volume_tree() {
    use luksfs::volume::tree::UnlockKey;
    use luksfs::volume::{ImageTree, Limits};
    let Some(b) = backups() else { return };
    let cat = catalog(&b.dir.join("backups"));
    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "bz2" && r.state == 2).unwrap();
    let src: Arc<dyn luksfs::io::ReadAt> = Arc::new(cat.open(&row.backup, CACHE).unwrap());
    let name = Path::new(&row.backup);
    let tree = ImageTree::on(src, name, name, &luksfs::image::ImageOptions::default(), Limits::default());
    let key = |_: &luksfs::volume::Volume| {
        Ok(UnlockKey { passphrase: luksfs::keys::Secret::from_slice(PASS), key_slot: None, asked: false })
    };
    let errors = tree.unlock_all(&key, luksfs::image::UnlockSettings::default());
    assert!(errors.is_empty(), "{errors:?}");
    let top = tree.top().expect("the LUKS volume inside the backup");
    let reader = top.reader().expect("unlocked");
    let want = std::fs::read(b.dir.join("vol/plain.2")).unwrap();
    assert_eq!(reader.size(), want.len() as u64);
    let mut got = vec![0u8; want.len()];
    reader.read_exact_at(&mut got, 0).unwrap();
    assert_same("volume tree over a cinder backup", &got, &want);
}

/// Swift behind Keystone, as deployments run it (scripts/swift-up.sh --keystone: keystonemiddleware
/// and keystoneauth, Swift registered as `object-store` in the catalog of the harness's
/// Keystone): the objects of a chain of cinder backups (full + two incrementals) and a plain LUKS
/// image in a container of the demo project are verified and read with the same `OS_*`
/// credentials as Barbican, the storage URL taken from the catalog.
#[test]
fn swift_behind_keystone() {
    let Some(b) = backups() else { return };
    if !crate::util::have(&["curl", "apt-get", "dpkg"]) {
        return;
    }
    let Some(osk) = crate::barbican::harness() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = tempfile::tempdir().unwrap();
    let sw = t.path().join("swift");
    let osk_env = osk.dir.join("osk.env");
    let up = run_script(&[
        root.join("scripts/swift-up.sh").as_os_str(),
        sw.as_os_str(),
        "--keystone".as_ref(),
        osk_env.as_os_str(),
    ]);
    let _guard = SwiftUp(sw.clone());
    if let Err(e) = up {
        crate::util::skip(&format!("Swift (Keystone) did not start: {e}"));
        return;
    }
    // a chain of posix backups, its objects uploaded under their own names, and a LUKS image
    let top = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "zstd" && r.state == 2).unwrap();
    let cat = catalog(&b.dir.join("backups"));
    let chain: Vec<_> = cat.chain(&top.backup).unwrap().into_iter().map(|(e, _)| e).collect();
    let mut files = Vec::new();
    for e in &chain {
        let dir = e.prefix.rsplit_once('/').unwrap().0;
        for f in std::fs::read_dir(b.dir.join("backups").join(dir)).unwrap() {
            files.push(format!("{dir}/{}", f.unwrap().file_name().to_string_lossy()));
        }
    }
    let env = &osk.env;
    let upload = format!(
        "set -e; cd {backups}; \\
         tok=$(curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' -d '{{\"auth\":{{\"identity\":{{\"methods\":[\"password\"],\"password\":{{\"user\":{{\"name\":\"demo\",\"domain\":{{\"id\":\"default\"}},\"password\":\"{pw}\"}}}}}},\"scope\":{{\"project\":{{\"name\":\"demo\",\"domain\":{{\"id\":\"default\"}}}}}}}}}}' {ks}/auth/tokens | \\
               tr -d '\\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'); \\
         url=$(sed -n 's/^SWIFT_KEYSTONE_URL=//p' {sw}/swift.env | sed 's/%(project_id)s/{project}/'); \\
         curl -fsS -X PUT -H \"X-Auth-Token: $tok\" $url/kbackups; \\
         for f in {files}; do curl -fsS -X PUT -H \"X-Auth-Token: $tok\" -T $f $url/kbackups/$f; done; \\
         curl -fsS -X PUT -H \"X-Auth-Token: $tok\" -T {image} $url/kbackups/images/vol-1.luks",
        backups = b.dir.join("backups").display(),
        pw = env["OSK_DEMO_PASSWORD"],
        ks = osk.keystone,
        sw = sw.display(),
        project = env["OSK_DEMO_PROJECT_ID"],
        files = files.join(" "),
        image = b.dir.join("vol/luks.1").display(),
    );
    run_script(&["-c".as_ref(), upload.as_ref()]).unwrap();
    let key = t.path().join("key");
    std::fs::write(&key, PASS).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let mut c = std::process::Command::new(crate::util::bin());
        c.args(args).env_remove("RUST_LOG");
        for k in ["ST_AUTH", "ST_USER", "ST_KEY", "OS_STORAGE_URL", "OS_AUTH_TOKEN", "OS_CLOUD"] {
            c.env_remove(k);
        }
        // the harness's application credential, as for Barbican
        for (k, v) in env.iter().filter(|(k, _)| k.starts_with("OS_")) {
            c.env(k, v);
        }
        crate::util::run_timed(c, std::time::Duration::from_secs(300))
    };
    let out = run(&[
        "verify".as_ref(),
        "swift://kbackups".as_ref(),
        "--key-file".as_ref(),
        key.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(
        out.code() == 0 || out.code() == 6,
        "{} (exit {}): {}\n{}",
        out.cmdline,
        out.code(),
        out.stderr,
        String::from_utf8_lossy(&out.stdout)
    );
    let reports = verify_reports(&out);
    let rows: Vec<Row> =
        b.rows.iter().filter(|r| chain.iter().any(|e| e.info.backup_id == r.backup)).cloned().collect();
    assert_eq!(rows.len(), 3);
    check_verified("swift behind keystone", &reports, &b.dir, &rows);
    let out =
        run(&["cat".as_ref(), "swift://kbackups/images/vol-1.luks".as_ref(), "--key-file".as_ref(), key.as_os_str()]);
    assert_eq!(out.code(), 0, "{}: {}", out.cmdline, out.stderr);
    assert_same("LUKS image in Swift behind Keystone", &out.stdout, &std::fs::read(b.dir.join("vol/plain.1")).unwrap());
}
