//! Unencrypted qcow2 (crypt_method 0) as a container: `luksfs::qcow2::reader::Qcow2Reader`
//! reading the guest disk of images made by `qemu-img convert` (v2 and v3, compressed with zlib
//! and zstd, extended L2, 512 B to 2 MiB clusters) and changed by `qemu-io` (patterns over
//! compressed clusters, zero writes, discards). Every image's guest disk is compared byte for byte
//! with the plaintext it was made from (and with `qemu-img convert -O raw`), whole and at odd
//! offsets and lengths across cluster boundaries; where the clusters are stored is compared with
//! `qemu-img map`. Hostile edits (a compressed descriptor past the end of the file, garbage
//! compressed data, a file cut inside compressed data) must fail as corrupt, not panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use luksfs::ErrorKind;
use luksfs::io::FileSource;
use luksfs::qcow2::reader::Qcow2Reader;
use luksfs::qcow2::table::Storage;

use crate::util::fixture::{be32, be64, patch, scramble, truncate};
use crate::util::{KIB, Lab, MIB, assert_same, mark, random, sh, tool, with_zeros};

/// A qemu-io command on a plain image, mirrored on the expected guest disk.
enum Op {
    /// `write -P BYTE OFF LEN`
    Pattern(usize, usize, u8),
    /// `write -z OFF LEN`
    Zero(usize, usize),
    /// `discard OFF LEN` (reads back as zeros: no backing file)
    Discard(usize, usize),
}

/// Half text (compresses), half random (does not: qemu-img stores those clusters uncompressed),
/// alternating every `period` bytes, with runs of zeros (left unallocated by convert).
fn mixed(tag: &str, len: usize, period: usize) -> Vec<u8> {
    let (text, noise) = (mark(tag, len), random(tag, len));
    let mut v: Vec<u8> = (0..len).map(|i| if (i / period).is_multiple_of(2) { text[i] } else { noise[i] }).collect();
    let z = (len / 5).next_multiple_of(period);
    if z + period <= len {
        v[z..z + period].fill(0);
    }
    v
}

/// `qemu-img convert -f raw -O qcow2 [-c] -o OPTS` of `plain`, then the qemu-io `ops`; returns
/// the image and what its guest disk must read as (checked against `qemu-img convert -O raw`).
fn make(lab: &Lab, name: &str, mut plain: Vec<u8>, compress: bool, opts: &str, ops: &[Op]) -> (PathBuf, Vec<u8>) {
    let raw = lab.work.join(format!("{name}.raw"));
    std::fs::write(&raw, &plain).unwrap();
    let img = lab.place(name);
    let mut c = tool("qemu-img");
    c.args(["convert", "-f", "raw", "-O", "qcow2"]);
    if compress {
        c.arg("-c");
    }
    if !opts.is_empty() {
        c.args(["-o", opts]);
    }
    c.arg(&raw).arg(&img);
    sh(c);
    std::fs::remove_file(&raw).unwrap();
    if !ops.is_empty() {
        let mut c = tool("qemu-io");
        c.args(["-f", "qcow2"]);
        for op in ops {
            let cmd = match *op {
                Op::Pattern(off, len, b) => {
                    plain[off..off + len].fill(b);
                    format!("write -P 0x{b:02x} {off} {len}")
                }
                Op::Zero(off, len) => {
                    plain[off..off + len].fill(0);
                    format!("write -z {off} {len}")
                }
                Op::Discard(off, len) => {
                    plain[off..off + len].fill(0);
                    format!("discard {off} {len}")
                }
            };
            c.arg("-c").arg(cmd);
        }
        c.arg(&img);
        let out = String::from_utf8_lossy(&sh(c)).to_lowercase();
        assert!(!out.contains("fail") && !out.contains("error"), "qemu-io on {name}: {out}");
    }
    let back = lab.work.join(format!("{name}.back"));
    let mut c = tool("qemu-img");
    c.args(["convert", "-f", "qcow2", "-O", "raw"]).arg(&img).arg(&back);
    sh(c);
    assert_same(&format!("qemu's own view of {name}"), &std::fs::read(&back).unwrap(), &plain);
    std::fs::remove_file(&back).unwrap();
    (img, plain)
}

fn open(img: &Path) -> luksfs::Result<Qcow2Reader> {
    Qcow2Reader::open(Arc::new(FileSource::open(img).unwrap()))
}

fn read(r: &Qcow2Reader, off: u64, len: usize) -> luksfs::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    r.read_at(off, &mut v).map(|()| v)
}

/// Guest bytes by how the image stores them (luksfs's mapper): compressed, data, zeros.
#[derive(Debug, Default, PartialEq, Eq)]
struct Kinds {
    compressed: u64,
    data: u64,
    zero: u64,
}

fn kinds(r: &Qcow2Reader) -> Kinds {
    let (q, size) = (r.qcow2(), r.size());
    let mut k = Kinds::default();
    let mut off = 0;
    while off < size {
        let (st, n) = q.map(off, size - off).unwrap();
        match st {
            Storage::Compressed(_) => k.compressed += n,
            Storage::Data(_) => k.data += n,
            Storage::Zero | Storage::Unallocated => k.zero += n,
        }
        off += n;
    }
    k
}

/// The same from `qemu-img map --output=json`.
fn qemu_kinds(img: &Path) -> Kinds {
    let mut c = tool("qemu-img");
    c.args(["map", "--output=json", "-f", "qcow2"]).arg(img);
    let map: serde_json::Value = serde_json::from_slice(&sh(c)).unwrap();
    let mut k = Kinds::default();
    for e in map.as_array().unwrap() {
        let n = e["length"].as_u64().unwrap();
        if e["compressed"].as_bool() == Some(true) {
            k.compressed += n;
        } else if e["data"].as_bool() == Some(true) {
            k.data += n;
        } else {
            k.zero += n;
        }
    }
    k
}

/// The whole guest disk in 1 MiB reads, then odd ranges: every cluster boundary crossed by a
/// read starting 1..3 bytes before it, reads inside one cluster, and a pseudo-random walk.
fn check(img: &Path, want: &[u8]) -> Qcow2Reader {
    let name = img.file_name().unwrap().to_string_lossy().into_owned();
    let r = open(img).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.size(), want.len() as u64, "{name}: guest size");
    let mut all = vec![0u8; want.len()];
    for (i, chunk) in all.chunks_mut(MIB).enumerate() {
        r.read_at((i * MIB) as u64, chunk).unwrap_or_else(|e| panic!("{name} at {}: {e}", i * MIB));
    }
    assert_same(&format!("{name}: whole guest disk"), &all, want);
    let cs = r.qcow2().header().cluster_size() as usize;
    let mut ranges = Vec::new();
    for b in (cs..want.len()).step_by(cs).take(64) {
        ranges.push((b - 1, 3));
        ranges.push((b - 3, cs + 7));
        ranges.push((b + 1, cs / 2 - 1));
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x % want.len() as u64) as usize;
        let len = ((x >> 32) as usize % (3 * cs)).min(want.len() - off).max(1);
        ranges.push((off, len));
    }
    ranges.push((want.len() - 1, 1));
    for (off, len) in ranges {
        if off + len > want.len() {
            continue;
        }
        let got = read(&r, off as u64, len).unwrap_or_else(|e| panic!("{name}: read {len} at {off}: {e}"));
        assert_same(&format!("{name}: {len} bytes at {off}"), &got, &want[off..off + len]);
    }
    let past = read(&r, want.len() as u64 - 1, 2).expect_err("a read past the guest disk");
    assert_eq!(past.kind(), ErrorKind::Corrupt, "{past}");
    r
}

/// luksfs and qemu agree where the bytes are stored; compressed clusters are there or not.
fn check_kinds(r: &Qcow2Reader, img: &Path, compressed: bool) -> Kinds {
    let k = kinds(r);
    assert_eq!(k, qemu_kinds(img), "{}: luksfs and qemu-img map disagree", img.display());
    assert_eq!(k.compressed > 0, compressed, "{}: compressed bytes {k:?}", img.display());
    k
}

#[test]
fn uncompressed_v3_and_v2() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    for (name, opts) in [("v3.qcow2", "compat=1.1"), ("v2.qcow2", "compat=0.10")] {
        let plain = with_zeros(random(name, 3 * MIB), &[(MIB, 256 * KIB)]);
        let ops = [
            Op::Pattern(0x1ff00, 0x200, 0x5a),
            Op::Zero(0x30000, 0x10000),
            Op::Zero(0x48000, 0x1000),
            Op::Discard(2 * MIB, 0x20000),
        ];
        let (img, want) = make(&lab, name, plain, false, opts, &ops);
        assert_eq!(be32(&img, 4), if name == "v2.qcow2" { 2 } else { 3 }, "qcow2 version");
        let r = check(&img, &want);
        check_kinds(&r, &img, false);
    }
}

/// Compressed with zlib (raw deflate) at 512 B, 64 KiB and 2 MiB clusters, v3 and v2.
#[test]
fn compressed_zlib() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    for (name, opts, len, period) in [
        ("z512.qcow2", "cluster_size=512", 256 * KIB, 3 * 512),
        ("z64k.qcow2", "", 2 * MIB, 3 * 64 * KIB),
        ("z64k-v2.qcow2", "compat=0.10", 2 * MIB, 2 * 64 * KIB),
        ("z2m.qcow2", "cluster_size=2M", 8 * MIB, 2 * MIB),
    ] {
        let (img, want) = make(&lab, name, mixed(name, len, period), true, opts, &[]);
        let r = check(&img, &want);
        let k = check_kinds(&r, &img, true);
        assert!(k.data > 0, "{name}: random clusters should stay uncompressed: {k:?}");
    }
}

/// Compressed with zstd (compression_type=zstd: v3, incompatible bit 3).
#[test]
fn compressed_zstd() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    for (name, opts, len, period) in [
        ("zstd512.qcow2", "compression_type=zstd,cluster_size=512", 256 * KIB, 2 * 512),
        ("zstd64k.qcow2", "compression_type=zstd", 2 * MIB, 3 * 64 * KIB),
        ("zstd2m.qcow2", "compression_type=zstd,cluster_size=2M", 8 * MIB, 2 * MIB),
    ] {
        let (img, want) = make(&lab, name, mixed(name, len, period), true, opts, &[]);
        assert_eq!(be64(&img, 72) & 8, 8, "{name}: compression type feature bit");
        let r = check(&img, &want);
        check_kinds(&r, &img, true);
    }
}

/// Compressed images written afterwards: qemu-io rewrites touched compressed clusters
/// uncompressed (copy on write), so compressed, data, zero-flagged and discarded clusters mix.
#[test]
fn compressed_then_written() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let ops = [
        Op::Pattern(0x10000 + 100, 0x333, 0x5a),
        Op::Pattern(0x5ff00, 0x200, 0xa5),
        Op::Zero(0xa0000, 0x10000),
        Op::Zero(0xc2000, 0x800),
        Op::Discard(0x100000, 0x20000),
        Op::Pattern(0x170000, 0x20000, 0x11),
    ];
    for (name, opts) in [("mix-zlib.qcow2", ""), ("mix-zstd.qcow2", "compression_type=zstd")] {
        let (img, want) = make(&lab, name, mark(name, 2 * MIB), true, opts, &ops);
        let r = check(&img, &want);
        let k = check_kinds(&r, &img, true);
        assert!(k.data > 0 && k.zero > 0, "{name}: {k:?}");
    }
}

/// Extended L2 entries: compressed clusters (no subclusters) next to subclusters written,
/// zeroed and left unallocated by qemu-io.
#[test]
fn compressed_extended_l2() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let ops = [
        Op::Pattern(0x10800, 0x800, 0x33),
        Op::Zero(0x20000, 0x1000),
        Op::Pattern(0x30100, 0x200, 0x44),
        Op::Discard(0x40000, 0x10000),
    ];
    for (name, opts) in [
        ("extl2-zlib.qcow2", "extended_l2=on"),
        ("extl2-zstd-c16k.qcow2", "extended_l2=on,cluster_size=16384,compression_type=zstd"),
    ] {
        let plain = with_zeros(mark(name, MIB), &[(0x60000, 0x20000)]);
        let (img, want) = make(&lab, name, plain, true, opts, &ops);
        assert_eq!(be64(&img, 72) & 16, 16, "{name}: extended L2 feature bit");
        let r = check(&img, &want);
        check_kinds(&r, &img, true);
    }
}

/// Small sequential reads inside one compressed cluster decompress it once; a whole-cluster
/// read decompresses without keeping it.
#[test]
fn compressed_cluster_decompressed_once() {
    need!("qemu-img");
    let lab = Lab::new();
    let (img, want) = make(&lab, "once.qcow2", mark("once", MIB), true, "", &[]);
    let r = open(&img).unwrap();
    assert_eq!(kinds(&r).compressed, MIB as u64);
    for off in (0..128 * KIB).step_by(4 * KIB) {
        assert_same("4 KiB read", &read(&r, off as u64, 4 * KIB).unwrap(), &want[off..off + 4 * KIB]);
    }
    assert_eq!(r.decompressed_clusters(), 2, "two 64 KiB clusters read in 4 KiB pieces");
    read(&r, 256 * KIB as u64, 64 * KIB).unwrap();
    assert_eq!(r.decompressed_clusters(), 3);
    read(&r, 0, 512).unwrap(); // still kept
    assert_eq!(r.decompressed_clusters(), 3);
}

/// Offset of the first L2 table and its entries of a standard-L2 image.
fn l2_entries(img: &Path) -> (u64, Vec<u64>) {
    let l1 = be64(img, 40);
    let l2 = be64(img, l1) & 0x00ff_ffff_ffff_fe00;
    let cs = 1u64 << be32(img, 20);
    (l2, (0..cs / 8).map(|i| be64(img, l2 + 8 * i)).collect())
}

fn corrupt(r: &Qcow2Reader, off: u64, len: usize, what: &str) {
    let e = read(r, off, len).expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
}

/// Hostile edits of compressed clusters: clear errors (corrupt), never a panic or wrong bytes.
#[test]
fn hostile_compressed_clusters() {
    need!("qemu-img");
    let lab = Lab::new();
    for (name, opts) in [("h-zlib.qcow2", ""), ("h-zstd.qcow2", "compression_type=zstd")] {
        let (img, want) = make(&lab, name, mark(name, MIB), true, opts, &[]);
        let (l2, entries) = l2_entries(&img);
        let file_len = std::fs::metadata(&img).unwrap().len();
        let compressed = |e: u64| e & (1 << 62) != 0;
        assert!(entries[..16].iter().all(|&e| compressed(e)), "{name}: all 16 clusters compressed");
        // x = 62 - (16 - 8) = 54: offset bits 0..54, extra sectors 54..=61
        let host = |e: u64| e & ((1 << 54) - 1);

        // 1. cluster 1's descriptor points past the end of the file
        let hostile = lab.work.join(format!("past-eof-{name}"));
        std::fs::copy(&img, &hostile).unwrap();
        patch(&hostile, l2 + 8, &((1u64 << 62) | (3 << 54) | (file_len + 4096)).to_be_bytes());
        let r = open(&hostile).unwrap();
        corrupt(&r, 65536, 100, "descriptor past the end of the file");
        corrupt(&r, 65536 - 10, 20, "descriptor past the end of the file, read across");
        assert_same("cluster 0 still reads", &read(&r, 0, 65536).unwrap(), &want[..65536]);

        // 2. cluster 2's descriptor runs far past the end of the file (all 255 extra sectors)
        std::fs::copy(&img, &hostile).unwrap();
        let e2 = entries[2];
        patch(&hostile, l2 + 16, &(e2 | (255 << 54)).to_be_bytes());
        let r = open(&hostile).unwrap();
        let last_sector = host(e2) / 512 * 512 + 255 * 512;
        if last_sector >= file_len {
            corrupt(&r, 2 * 65536, 1, "compressed sectors past the end of the file");
        } else {
            // more sectors than needed, all inside the file: the extra bytes are ignored
            assert_same("extra sectors", &read(&r, 2 * 65536, 65536).unwrap(), &want[2 * 65536..3 * 65536]);
        }

        // 3. cluster 3's descriptor points at the header cluster (metadata)
        std::fs::copy(&img, &hostile).unwrap();
        patch(&hostile, l2 + 24, &((1u64 << 62) | 100).to_be_bytes());
        corrupt(&open(&hostile).unwrap(), 3 * 65536, 4096, "compressed data in the header");

        // 4. garbage compressed data for cluster 4
        std::fs::copy(&img, &hostile).unwrap();
        scramble(&hostile, host(entries[4]), 64, "garbage");
        let r = open(&hostile).unwrap();
        corrupt(&r, 4 * 65536, 4096, "garbage compressed data");
        corrupt(&r, 4 * 65536, 65536, "garbage compressed data, whole cluster");
        assert_same("cluster 5 still reads", &read(&r, 5 * 65536, 65536).unwrap(), &want[5 * 65536..6 * 65536]);

        // 5. cluster 6's descriptor one byte late: a stream starting in the middle
        std::fs::copy(&img, &hostile).unwrap();
        patch(&hostile, l2 + 48, &(entries[6] + 1).to_be_bytes());
        corrupt(&open(&hostile).unwrap(), 6 * 65536, 512, "compressed stream starting one byte late");

        // 6. the file cut inside the last compressed cluster: before its last sector (the
        //    descriptor reaches past the end), then one byte into its last sector (the bounds
        //    allow it, as QEMU writes no padding; the deflate/zstd stream is cut short)
        let last = entries[..16].iter().copied().max_by_key(|&e| host(e)).unwrap();
        let idx = entries.iter().position(|&e| e == last).unwrap() as u64;
        let last_sector = host(last) / 512 * 512 + (last >> 54 & 0xff) * 512;
        for cut in [host(last) + 40, last_sector + 1] {
            if cut <= host(last) || cut >= file_len {
                continue;
            }
            std::fs::copy(&img, &hostile).unwrap();
            truncate(&hostile, cut);
            corrupt(&open(&hostile).unwrap(), idx * 65536, 65536, &format!("file cut at {cut}"));
        }
        assert!(last_sector + 1 < file_len, "{name}: the last compressed cluster spans sectors");
    }
}

/// What `Qcow2Reader` refuses: encrypted images (read through LUKS), backing files.
#[test]
fn refusals() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = lab.place("base.qcow2");
    let mut c = tool("qemu-img");
    c.args(["create", "-q", "-f", "qcow2"]).arg(&base).arg("1M");
    sh(c);
    let top = lab.place("top.qcow2");
    let mut c = tool("qemu-img");
    c.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"]).arg(&base).arg(&top);
    sh(c);
    let e = open(&top).expect_err("backing file");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("backing file"), "{e}");
    let key = lab.key("k", b"pass");
    let enc = lab.place("enc.qcow2");
    let mut c = crate::util::fixture::qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(crate::util::fixture::secret(&key))
        .args(["-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"])
        .arg(&enc)
        .arg("1M");
    sh(c);
    let e = open(&enc).expect_err("encrypted");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // and the plain base opens
    let r = open(&base).unwrap();
    assert_eq!(read(&r, 0, 4096).unwrap(), vec![0u8; 4096]);
}

/// Read throughput of the guest disk, sequentially in 1 MiB and 4 KiB reads, of a 64 MiB disk
/// (two thirds text, one third random, 64 KiB clusters) stored uncompressed, zlib- and
/// zstd-compressed: `cargo test --release --test it qcow2_plain::bench_read -- --ignored
/// --nocapture`. Wall time, best of three passes; the image is in the page cache.
#[test]
#[ignore]
fn bench_read() {
    need!("qemu-img");
    let lab = Lab::new();
    let plain = mixed("bench", 64 * MIB, 3 * 64 * KIB);
    for (name, compress, opts) in
        [("raw.qcow2", false, ""), ("zlib.qcow2", true, ""), ("zstd.qcow2", true, "compression_type=zstd")]
    {
        let (img, want) = make(&lab, name, plain.clone(), compress, opts, &[]);
        let r = open(&img).unwrap();
        let k = kinds(&r);
        for req in [MIB, 4 * KIB] {
            let mut buf = vec![0u8; req];
            let best = (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    for off in (0..want.len()).step_by(req) {
                        r.read_at(off as u64, &mut buf).unwrap();
                    }
                    want.len() as f64 / t.elapsed().as_secs_f64() / 1e6
                })
                .fold(0.0, f64::max);
            let file = std::fs::metadata(&img).unwrap().len();
            eprintln!(
                "{name:11} {:>4} KiB reads: {best:7.0} MB/s  (file {} MiB, {} MiB compressed, {} decompressions)",
                req / KIB,
                file >> 20,
                k.compressed >> 20,
                r.decompressed_clusters()
            );
        }
    }
}
