//! Image builders: every encrypted byte comes from `qemu-img`/`qemu-io` or `cryptsetup`, fed
//! with known plaintext; the test keeps that plaintext to compare with.
//!
//! Recipes (the same tricks as `../shared/corpus/corpus-lib.sh`):
//! * LUKS1 by qemu: `qemu-img convert -f raw -O luks -o key-secret=s0,iter-time=10,...`.
//! * qcow2+LUKS: `qemu-img convert -O qcow2 -o encrypt.format=luks,...`, then `qemu-io` writes.
//! * LUKS2 by cryptsetup: `cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 4M
//!   --force-offline-reencrypt` on a copy of the plaintext grown by 4 MiB: the data segment lands
//!   at 2 MiB (R/2) and plaintext byte 0 stays at device byte 0, so the file is cut to
//!   2 MiB + plaintext afterwards.
//! * LUKS1 by cryptsetup: the same, then `cryptsetup convert --type luks1` (userspace LUKS1
//!   reencryption needs dm-crypt); or `luksFormat --type luks1` with the payload written by
//!   `qemu-img convert -n` through qemu's luks driver.
//!
//! qemu-img benchmarks PBKDF2 for ~2 s of CPU per LUKS header whatever `iter-time` says; when a C
//! compiler is present an LD_PRELOAD shim (built once into `CARGO_TARGET_TMPDIR`) scales the
//! thread CPU time it measures, so qemu falls back to its minimum of 1000 iterations.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{Luksfs, Mount, Out, assert_same, sh, tool, write};

/// Cheap PBKDF2 for cryptsetup (unlock well under a second even in a debug build).
pub const PB2: &[&str] = &["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];
/// Cheap Argon2id: 32 MiB, 4 passes, 1 lane.
pub const A2ID: &[&str] =
    &["--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"];
/// Cheap Argon2i.
pub const A2I: &[&str] =
    &["--pbkdf", "argon2i", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"];

/// `cryptsetup reencrypt --reduce-device-size`: the data segment lands at half of it.
const REDUCE: usize = 4 << 20;

/// An encrypted image and what it must decrypt to.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image file.
    pub path: PathBuf,
    /// Key file whose bytes are the passphrase.
    pub key: PathBuf,
    /// The decrypted virtual disk.
    pub plain: Vec<u8>,
    /// Detached LUKS2 header, if any.
    pub header: Option<PathBuf>,
}

impl Image {
    /// The file name (what the mount shows, plus `.raw`).
    pub fn name(&self) -> String {
        self.path.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// `luksfs cat IMAGE --key-file KEY [--header H]`, ready for more arguments.
    pub fn cat(&self) -> Luksfs {
        let l = Luksfs::new("cat").arg(&self.path).key(&self.key);
        match &self.header {
            Some(h) => l.arg("--header").arg(h),
            None => l,
        }
    }

    /// `cat` must print exactly the plaintext.
    #[track_caller]
    pub fn check_cat(&self) -> Out {
        let out = self.cat().run();
        out.assert_bytes(&self.plain);
        out
    }
}

/// A qemu-io operation applied to a qcow2/LUKS image after conversion, mirrored on the expected
/// plaintext.
#[derive(Clone, Debug)]
pub enum Op {
    /// `write -P BYTE OFF LEN`
    Pattern(u64, u64, u8),
    /// `write -z OFF LEN` (qcow2 v3: zero flag, clusters stay allocated; v2: deallocated)
    Zero(u64, u64),
    /// `write -z -u OFF LEN` (zero, may unmap)
    ZeroUnmap(u64, u64),
    /// `discard OFF LEN` (reads back as zeros without a backing file)
    Discard(u64, u64),
    /// `write -s FILE OFF LEN` with these bytes
    Data(u64, Vec<u8>),
}

/// Per-test workspace: `src/` (images: what gets mounted), `keys/` (key files, detached
/// headers), `work/` (scratch), all under one `tempfile::TempDir` removed at the end.
pub struct Lab {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub keys: PathBuf,
    pub work: PathBuf,
}

impl Lab {
    pub fn new() -> Lab {
        let tmp = tempfile::Builder::new().prefix("luksfs-it-").tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let (src, keys, work) = (root.join("src"), root.join("keys"), root.join("work"));
        for d in [&src, &keys, &work] {
            std::fs::create_dir_all(d).unwrap();
        }
        Lab { tmp, src, keys, work }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Write a key file `keys/NAME` with exactly these bytes.
    pub fn key(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.keys.join(name);
        write(&p, bytes);
        p
    }

    /// `src/REL` with its parent directories created.
    pub fn place(&self, rel: &str) -> PathBuf {
        let p = self.src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn scratch(&self, rel: &str, what: &str) -> PathBuf {
        self.work.join(format!("{}.{what}", rel.replace('/', "_")))
    }

    fn key_for(&self, rel: &str, key: &[u8]) -> PathBuf {
        self.key(&format!("{}.key", rel.replace('/', "_")), key)
    }

    /// Mount `src/` on `ROOT/mnt` with these extra arguments (after SOURCE MOUNTPOINT).
    pub fn mount(&self, args: &[&std::ffi::OsStr]) -> Mount {
        Mount::start(&self.src, &self.root().join("mnt"), args, self.root())
    }

    /// The image's path relative to `src/`.
    pub fn rel(&self, img: &Image) -> String {
        img.path.strip_prefix(&self.src).expect("image under src/").to_string_lossy().into_owned()
    }

    /// A keytab (`keys/keytab`) with one line per image: `REL ABSOLUTE-KEY [header=ABSOLUTE]`.
    pub fn keytab(&self, imgs: &[&Image]) -> PathBuf {
        let mut s = String::from("# written by the luksfs integration tests\n");
        for i in imgs {
            s += &format!("{} {}", self.rel(i), i.key.display());
            if let Some(h) = &i.header {
                s += &format!(" header={}", h.display());
            }
            s.push('\n');
        }
        self.key("keytab", s.as_bytes())
    }

    /// Check every image through `luksfs cat`, then (when FUSE is usable; required under CI)
    /// through one mount of `src/` with a keytab naming them all.
    #[track_caller]
    pub fn check_both(&self, imgs: &[&Image]) {
        for i in imgs {
            i.check_cat();
        }
        if !super::have(&["fuse"]) {
            return;
        }
        let kt = self.keytab(imgs);
        let m = self.mount(&["--keytab".as_ref(), kt.as_os_str()]);
        for i in imgs {
            m.check(i, &format!("{}.raw", self.rel(i)));
        }
    }

    // -------------------------------------------------------------- qemu

    /// LUKS1 made by `qemu-img convert -O luks -o key-secret=s0,iter-time=10,OPTS`; checked by
    /// reading it back with qemu.
    pub fn qemu_luks(&self, rel: &str, plain: Vec<u8>, key: &[u8], opts: &str) -> Image {
        let (out, k, pt) = (self.place(rel), self.key_for(rel, key), self.scratch(rel, "plain"));
        write(&pt, &plain);
        let mut c = qemu_img();
        c.args(["convert", "-f", "raw", "-O", "luks", "--object"])
            .arg(secret(&k))
            .arg("-o")
            .arg(join_opts("key-secret=s0,iter-time=10", opts))
            .arg(&pt)
            .arg(&out);
        sh(c);
        std::fs::remove_file(&pt).unwrap();
        let img = Image { path: out, key: k, plain, header: None };
        self.verify_with_qemu(&img, "luks");
        img
    }

    /// qcow2 + LUKS by `qemu-img convert -O qcow2 -o encrypt.format=luks,...,OPTS`, then `ops`
    /// through qemu-io; checked by reading it back with qemu.
    pub fn qcow2(&self, rel: &str, plain: Vec<u8>, key: &[u8], opts: &str, ops: &[Op]) -> Image {
        let (out, k, pt) = (self.place(rel), self.key_for(rel, key), self.scratch(rel, "plain"));
        write(&pt, &plain);
        let mut c = qemu_img();
        c.args(["convert", "-f", "raw", "-O", "qcow2", "--object"])
            .arg(secret(&k))
            .arg("-o")
            .arg(join_opts("encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", opts))
            .arg(&pt)
            .arg(&out);
        sh(c);
        std::fs::remove_file(&pt).unwrap();
        let mut img = Image { path: out, key: k, plain, header: None };
        self.apply_ops(&mut img, "qcow2", ops);
        self.verify_with_qemu(&img, "qcow2");
        img
    }

    /// qcow2 + LUKS by `qemu-img create` (all clusters unallocated: zeros), then `ops`.
    pub fn qcow2_create(&self, rel: &str, size: u64, key: &[u8], opts: &str, ops: &[Op]) -> Image {
        let (out, k) = (self.place(rel), self.key_for(rel, key));
        let mut c = qemu_img();
        c.args(["create", "-q", "-f", "qcow2", "--object"])
            .arg(secret(&k))
            .arg("-o")
            .arg(join_opts("encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", opts))
            .arg(&out)
            .arg(size.to_string());
        sh(c);
        let mut img = Image { path: out, key: k, plain: vec![0; size as usize], header: None };
        self.apply_ops(&mut img, "qcow2", ops);
        self.verify_with_qemu(&img, "qcow2");
        img
    }

    /// qcow2 + LUKS keeping its data in an external file (`data_file=`): an image luksfs refuses.
    pub fn qcow2_external_data(&self, rel: &str, key: &[u8]) -> Image {
        let (out, k) = (self.place(rel), self.key_for(rel, key));
        let data = self.work.join(format!("{}.data", rel.replace('/', "_")));
        let mut c = qemu_img();
        c.args(["create", "-q", "-f", "qcow2", "--object"])
            .arg(secret(&k))
            .arg("-o")
            .arg(format!("encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,data_file={}", data.display()))
            .arg(&out)
            .arg("1M");
        sh(c);
        Image { path: out, key: k, plain: vec![], header: None }
    }

    /// qcow2 + LUKS (1 MiB, keyed by the key file `key`) on top of the backing file `base`:
    /// an image luksfs refuses. Returns its path.
    pub fn qcow2_with_backing(&self, rel: &str, base: &Path, key: &Path) -> PathBuf {
        let top = self.place(rel);
        let mut c = qemu_img();
        c.args(["create", "-q", "-f", "qcow2", "--object"])
            .arg(secret(key))
            .args(["-u", "-b"])
            .arg(base)
            .args(["-F", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"])
            .arg(&top)
            .arg("1M");
        sh(c);
        top
    }

    /// Apply qemu-io operations to an image and to its expected plaintext.
    pub fn apply_ops(&self, img: &mut Image, driver: &str, ops: &[Op]) {
        if ops.is_empty() {
            return;
        }
        let mut cmds = Vec::new();
        let name = img.name();
        for (i, op) in ops.iter().enumerate() {
            let p = &mut img.plain;
            match op {
                Op::Pattern(off, len, b) => {
                    cmds.push(format!("write -P 0x{b:02x} {off} {len}"));
                    p[*off as usize..(off + len) as usize].fill(*b);
                }
                Op::Zero(off, len) | Op::ZeroUnmap(off, len) | Op::Discard(off, len) => {
                    cmds.push(match op {
                        Op::Zero(..) => format!("write -z {off} {len}"),
                        Op::ZeroUnmap(..) => format!("write -z -u {off} {len}"),
                        _ => format!("discard {off} {len}"),
                    });
                    p[*off as usize..(off + len) as usize].fill(0);
                }
                Op::Data(off, data) => {
                    let f = self.scratch(&name, &format!("op{i}"));
                    write(&f, data);
                    cmds.push(format!("write -s {} {off} {}", f.display(), data.len()));
                    p[*off as usize..*off as usize + data.len()].copy_from_slice(data);
                }
            }
        }
        qemu_io(&img.path, driver, &img.key, &cmds);
    }

    /// What qemu reads from the image must be the expected plaintext (guards the fixtures
    /// themselves).
    pub fn verify_with_qemu(&self, img: &Image, driver: &str) {
        let got = qemu_read(&img.path, driver, &img.key, &self.scratch(&img.name(), "qemu-read"));
        assert_same(&format!("fixture self-check: qemu's view of {}", img.path.display()), &got, &img.plain);
    }

    // -------------------------------------------------------------- cryptsetup

    /// LUKS2 by `cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 4M ARGS`.
    /// Defaults added unless ARGS name them: PBKDF2 with 1000 iterations, 512-byte sectors.
    pub fn cs_luks2(&self, rel: &str, plain: Vec<u8>, key: &[u8], args: &[&str]) -> Image {
        let (out, k, t) = (self.place(rel), self.key_for(rel, key), self.scratch(rel, "reencrypt"));
        write(&t, &plain);
        std::fs::OpenOptions::new().write(true).open(&t).unwrap().set_len((plain.len() + REDUCE) as u64).unwrap();
        let mut c = tool("cryptsetup");
        c.args(["reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "4M"])
            .args(["--force-offline-reencrypt", "--batch-mode", "--key-file"])
            .arg(&k)
            .args(cs_defaults(args))
            .args(args)
            .arg(&t);
        sh(c);
        let off = luks2_data_offset(&t);
        assert_eq!(off, (REDUCE / 2) as u64, "reencrypt put the data segment at {off}, expected R/2");
        std::fs::OpenOptions::new().write(true).open(&t).unwrap().set_len(off + plain.len() as u64).unwrap();
        std::fs::rename(&t, &out).unwrap();
        Image { path: out, key: k, plain, header: None }
    }

    /// LUKS2 with a detached header (`keys/REL.hdr`); the data file holds ciphertext from offset 0.
    pub fn cs_luks2_detached(&self, rel: &str, plain: Vec<u8>, key: &[u8], args: &[&str]) -> Image {
        let (out, k) = (self.place(rel), self.key_for(rel, key));
        let hdr = self.keys.join(format!("{}.hdr", rel.replace('/', "_")));
        write(&out, &plain);
        let mut c = tool("cryptsetup");
        c.args(["reencrypt", "--encrypt", "--type", "luks2", "--header"])
            .arg(&hdr)
            .args(["--force-offline-reencrypt", "--batch-mode", "--key-file"])
            .arg(&k)
            .args(cs_defaults(args))
            .args(args)
            .arg(&out);
        sh(c);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), plain.len() as u64);
        Image { path: out, key: k, plain, header: Some(hdr) }
    }

    /// LUKS1 by cryptsetup: LUKS2 in-place encryption (PBKDF2, 512-byte sectors), then
    /// `cryptsetup convert --type luks1`. ARGS: `-c CIPHER -s BITS --hash HASH` etc.
    pub fn cs_luks1(&self, rel: &str, plain: Vec<u8>, key: &[u8], args: &[&str]) -> Image {
        let img = self.cs_luks2(rel, plain, key, args);
        let mut c = tool("cryptsetup");
        c.args(["convert", "--type", "luks1", "--batch-mode"]).arg(&img.path);
        sh(c);
        assert_eq!(luks1_payload_offset(&img.path), (REDUCE / 2) as u64);
        img
    }

    /// LUKS1 header by `cryptsetup luksFormat --type luks1 ARGS` (1000 PBKDF2 iterations), payload
    /// written by `qemu-img convert -n` through qemu's luks driver; checked by reading it back.
    pub fn cs_luks1_qemu(&self, rel: &str, plain: Vec<u8>, key: &[u8], args: &[&str]) -> Image {
        let (out, k, t) = (self.place(rel), self.key_for(rel, key), self.scratch(rel, "luksformat"));
        let f = std::fs::File::create(&t).unwrap();
        f.set_len(64 << 20).unwrap();
        drop(f);
        let mut c = tool("cryptsetup");
        c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--pbkdf-force-iterations", "1000", "--key-file"])
            .arg(&k)
            .args(args)
            .arg(&t);
        sh(c);
        let off = luks1_payload_offset(&t);
        std::fs::OpenOptions::new().write(true).open(&t).unwrap().set_len(off + plain.len() as u64).unwrap();
        let pt = self.scratch(rel, "plain");
        write(&pt, &plain);
        let mut c = tool("qemu-img");
        c.args(["convert", "-n", "-f", "raw"])
            .arg(&pt)
            .arg("--object")
            .arg(secret(&k))
            .arg("--target-image-opts")
            .arg(format!("driver=luks,file.filename={},key-secret=s0", t.display()));
        sh(c);
        std::fs::remove_file(&pt).unwrap();
        std::fs::rename(&t, &out).unwrap();
        let img = Image { path: out, key: k, plain, header: None };
        self.verify_with_qemu(&img, "luks");
        img
    }

    /// `cryptsetup luksAddKey --key-slot SLOT` with a new key (written to `keys/`); returns its
    /// path. ARGS: PBKDF options (default PBKDF2, 1000 iterations).
    pub fn add_key(&self, img: &Image, new_key: &[u8], slot: u32, args: &[&str]) -> PathBuf {
        let nk = self.key(&format!("{}.slot{slot}.key", img.name()), new_key);
        let mut c = tool("cryptsetup");
        c.args(["luksAddKey", "--batch-mode", "--key-file"]).arg(&img.key).arg("--key-slot").arg(slot.to_string());
        if !args.contains(&"--pbkdf") && !args.contains(&"--pbkdf-force-iterations") {
            c.args(["--pbkdf-force-iterations", "1000"]);
        }
        if let Some(h) = &img.header {
            c.arg("--header").arg(h);
        }
        c.args(args).arg(&img.path).arg(&nk);
        sh(c);
        nk
    }

    /// `cryptsetup luksKillSlot SLOT`, authorised by the key file `remaining`.
    pub fn kill_slot(&self, img: &Image, slot: u32, remaining: &Path) {
        let mut c = tool("cryptsetup");
        c.args(["luksKillSlot", "--batch-mode", "--key-file"]).arg(remaining);
        if let Some(h) = &img.header {
            c.arg("--header").arg(h);
        }
        c.arg(&img.path).arg(slot.to_string());
        sh(c);
    }

    /// `cryptsetup luksDump` of a scratch copy (cryptsetup repairs LUKS2 files it opens, so it
    /// never sees the originals).
    pub fn luks_dump(&self, img: &Path) -> String {
        let copy = self.work.join("dump-copy.img");
        let _ = std::fs::remove_file(&copy);
        let mut c = tool("cp");
        c.arg("--sparse=always").arg(img).arg(&copy);
        sh(c);
        let mut c = tool("cryptsetup");
        c.arg("luksDump").arg(&copy);
        let out = String::from_utf8_lossy(&sh(c)).into_owned();
        std::fs::remove_file(&copy).unwrap();
        out
    }
}

/// `qemu-img` with the PBKDF2-benchmark shim preloaded when available.
pub fn qemu_img() -> Command {
    let mut c = tool("qemu-img");
    if let Some(shim) = qemu_shim() {
        c.env("LD_PRELOAD", shim);
    }
    c
}

/// `secret,id=s0,file=KEY` for qemu's `--object`.
pub fn secret(key: &Path) -> String {
    let k = key.to_str().expect("utf-8 key path");
    assert!(!k.contains(','), "qemu option syntax: no commas in {k}");
    format!("secret,id=s0,file={k}")
}

fn join_opts(base: &str, extra: &str) -> String {
    if extra.is_empty() { base.to_string() } else { format!("{base},{extra}") }
}

fn cs_defaults(args: &[&str]) -> Vec<&'static str> {
    let mut d = Vec::new();
    if !args.contains(&"--pbkdf") {
        d.extend_from_slice(PB2);
    }
    if !args.contains(&"--sector-size") {
        d.extend_from_slice(&["--sector-size", "512"]);
    }
    d
}

/// `--image-opts` for a driver (`luks` or `qcow2`) with secret `s0`.
pub fn image_opts(img: &Path, driver: &str) -> String {
    let ks = if driver == "qcow2" { "encrypt.key-secret" } else { "key-secret" };
    format!("driver={driver},file.filename={},{ks}=s0", img.display())
}

/// One qemu-io process running these commands on an encrypted image; fails on any error
/// message (qemu-io exits 0 on some failed commands).
pub fn qemu_io(img: &Path, driver: &str, key: &Path, cmds: &[String]) {
    let mut c = tool("qemu-io");
    c.arg("--object").arg(secret(key)).arg("--image-opts").arg(image_opts(img, driver));
    for cmd in cmds {
        c.arg("-c").arg(cmd);
    }
    let out = String::from_utf8_lossy(&sh(c)).to_lowercase();
    for bad in ["fail", "error", "invalid", "cannot"] {
        assert!(!out.contains(bad), "qemu-io {cmds:?} on {}: {out}", img.display());
    }
}

/// What qemu decrypts from the image (via `qemu-img convert -O raw` into `tmp`).
pub fn qemu_read(img: &Path, driver: &str, key: &Path, tmp: &Path) -> Vec<u8> {
    let mut c = tool("qemu-img");
    c.arg("convert").arg("--object").arg(secret(key)).arg("--image-opts").arg(image_opts(img, driver));
    c.args(["-O", "raw"]).arg(tmp);
    sh(c);
    let v = std::fs::read(tmp).unwrap();
    std::fs::remove_file(tmp).unwrap();
    v
}

/// LUKS1 payload offset in bytes (header field at byte 104, in 512-byte sectors).
pub fn luks1_payload_offset(img: &Path) -> u64 {
    u64::from(be32(img, 104)) * 512
}

/// Big-endian u32 at `off` (reads only those bytes).
/// Offset of the data of qcow2 header extension `kind` (None if absent).
pub fn qcow2_ext(p: &Path, kind: u32) -> Option<u64> {
    let mut off = if be32(p, 4) >= 3 { u64::from(be32(p, 100)) } else { 72 };
    loop {
        let (t, len) = (be32(p, off), be32(p, off + 4));
        if t == 0 {
            return None;
        }
        if t == kind {
            return Some(off + 8);
        }
        off += 8 + u64::from(len).div_ceil(8) * 8;
    }
}

pub fn be32(img: &Path, off: u64) -> u32 {
    u32::from_be_bytes(read_range(img, off, 4).try_into().unwrap())
}

/// Big-endian u64 at `off`.
pub fn be64(img: &Path, off: u64) -> u64 {
    u64::from_be_bytes(read_range(img, off, 8).try_into().unwrap())
}

/// hdr_size of a LUKS2 file (binary header field at byte 8).
pub fn luks2_hdr_size(img: &Path) -> u64 {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open(img).unwrap().read_exact(&mut b).unwrap();
    assert_eq!(&b[..6], b"LUKS\xba\xbe", "{} is not LUKS", img.display());
    u64::from_be_bytes(b[8..16].try_into().unwrap())
}

/// The JSON metadata of the LUKS2 header copy at `base` (0 = primary, hdr_size = secondary).
pub fn luks2_json_at(img: &Path, base: u64) -> serde_json::Value {
    let hs = luks2_hdr_size(img);
    let data = read_range(img, base, hs);
    let j = &data[4096..];
    let end = j.iter().position(|&c| c == 0).unwrap_or(j.len());
    serde_json::from_slice(&j[..end]).expect("LUKS2 JSON")
}

/// Offset of LUKS2 data segment 0 (from the primary header).
pub fn luks2_data_offset(img: &Path) -> u64 {
    let j = luks2_json_at(img, 0);
    j["segments"]["0"]["offset"].as_str().expect("segment offset").parse().unwrap()
}

pub fn read_range(p: &Path, off: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(p).unwrap();
    let mut v = vec![0u8; len as usize];
    f.read_exact_at(&mut v, off).unwrap();
    v
}

/// Rewrite the JSON text of both LUKS2 header copies with `edit` and fix their checksums
/// (sha256 over the whole header area with the checksum field zeroed), so the result is a
/// well-formed header carrying the edited metadata.
pub fn luks2_edit_json(img: &Path, edit: impl Fn(&str) -> String) {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let hs = luks2_hdr_size(img);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(img).unwrap();
    for base in [0, hs] {
        let mut area = read_range(img, base, hs);
        let j = &area[4096..];
        let end = j.iter().position(|&c| c == 0).unwrap();
        let old = std::str::from_utf8(&j[..end]).unwrap().to_string();
        let new = edit(&old);
        assert_ne!(new, old, "the JSON edit changed nothing");
        assert!(new.len() < hs as usize - 4096, "edited JSON does not fit");
        area[4096..].fill(0);
        area[4096..4096 + new.len()].copy_from_slice(new.as_bytes());
        assert_eq!(&area[72..79], b"sha256\0", "checksum algorithm");
        area[448..512].fill(0);
        let sum = sha2::Sha256::digest(&area);
        area[448..480].copy_from_slice(&sum);
        f.write_all_at(&area, base).unwrap();
    }
}

/// Flip one byte inside the JSON text of the primary, secondary or both LUKS2 header copies: the
/// checksum of that copy no longer matches (like `corpus_helper.py luks2-break`).
pub fn luks2_break(img: &Path, which: &str) {
    use std::os::unix::fs::FileExt;
    let hs = luks2_hdr_size(img);
    let bases: &[u64] = match which {
        "primary" => &[0],
        "secondary" => &[hs],
        "both" => &[0, hs],
        _ => panic!("luks2_break {which}"),
    };
    let f = std::fs::OpenOptions::new().read(true).write(true).open(img).unwrap();
    for &b in bases {
        let mut c = [0u8; 1];
        f.read_exact_at(&mut c, b + 4096 + 2).unwrap();
        f.write_all_at(&[c[0] ^ 0x20], b + 4096 + 2).unwrap();
    }
}

/// Overwrite `len` bytes at `off` with seeded junk.
pub fn scramble(img: &Path, off: u64, len: usize, seed: &str) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(&super::random(seed, len), off).unwrap();
}

/// Overwrite bytes at `off`.
pub fn patch(img: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// Cut a file to `len` bytes.
pub fn truncate(p: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len).unwrap();
}

const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/resource.h>
static int (*real_getrusage)(int, struct rusage *);
static void scale(struct timeval *tv, unsigned long long k) {
    unsigned long long us = ((unsigned long long)tv->tv_sec * 1000000ULL + tv->tv_usec) * k;
    tv->tv_sec = us / 1000000ULL; tv->tv_usec = us % 1000000ULL;
}
int getrusage(int who, struct rusage *u) {
    if (!real_getrusage) real_getrusage = (int (*)(int, struct rusage *))dlsym(RTLD_NEXT, "getrusage");
    int r = real_getrusage(who, u);
    if (r == 0 && who == RUSAGE_THREAD) { scale(&u->ru_utime, 64); scale(&u->ru_stime, 64); }
    return r;
}
"#;

/// Build (once, shared by all test processes) the LD_PRELOAD shim that shortcuts qemu's PBKDF2
/// benchmark. None without a C compiler or with `LUKSFS_TEST_FAST_QEMU=0`.
pub fn qemu_shim() -> Option<&'static Path> {
    static SHIM: OnceLock<Option<PathBuf>> = OnceLock::new();
    SHIM.get_or_init(|| {
        if std::env::var("LUKSFS_TEST_FAST_QEMU").is_ok_and(|v| v == "0") {
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let so = dir.join("qemu-fastbench-v1.so");
        if so.is_file() {
            return Some(so);
        }
        let cc = super::which("cc")?;
        let tag = format!("{}.{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "");
        let (c_src, tmp_so) = (dir.join(format!("fastbench.{tag}.c")), dir.join(format!("fastbench.{tag}.so")));
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(&c_src, SHIM_C).ok()?;
        let ok = Command::new(cc)
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&tmp_so)
            .arg(&c_src)
            .arg("-ldl")
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&c_src);
        if !ok {
            eprintln!("note: could not build the qemu PBKDF2-benchmark shim; qemu-img will be slow");
            return None;
        }
        std::fs::rename(&tmp_so, &so).ok()?; // atomic: concurrent builders all end with one file
        Some(so)
    })
    .as_deref()
}
