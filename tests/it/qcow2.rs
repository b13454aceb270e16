//! qcow2 with native LUKS encryption (crypt_method 2), made by qemu-img and qemu-io: cluster
//! sizes, unallocated and zero clusters, versions 2 and 3, extended L2, odd sizes, host/guest
//! layouts. Each image is checked through `luksfs cat` and a FUSE mount.

use crate::util::fixture::{Op, image_opts, qemu_img, qemu_io, qemu_read, secret};
use crate::util::{KIB, Lab, Luksfs, MIB, assert_same, mark, random, sh, with_zeros};

const PASS: &[u8] = b"correct horse battery staple";

#[test]
fn cluster_512_bytes() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let plain = with_zeros(random("c512", MIB), &[(4 * KIB, 8 * KIB), (300 * KIB, 100 * KIB)]);
    let ops = [Op::Pattern(0x10100, 0x400, 0xaa), Op::Zero(0x2000, 0x1000), Op::ZeroUnmap(0x20000, 0x1000)];
    let img = lab.qcow2("c512.qcow2", plain, PASS, "cluster_size=512", &ops);
    lab.check_both(&[&img]);
}

#[test]
fn cluster_4k_zero_unmap_discard() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let plain = with_zeros(random("c4k", 2 * MIB), &[(512 * KIB, 256 * KIB)]);
    let ops = [
        Op::Zero(8192, 4096),
        Op::ZeroUnmap(65536, 16384),
        Op::Pattern(0xfe00, 0x400, 0xaa),
        Op::Discard(MIB as u64, 65536),
        Op::Zero(0x101000, 0x3000),
    ];
    let img = lab.qcow2("c4k.qcow2", plain, PASS, "cluster_size=4096", &ops);
    lab.check_both(&[&img]);
}

#[test]
fn cluster_64k_default() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let plain = with_zeros(mark("c64k", 3 * MIB), &[(MIB, MIB), (2 * MIB + 100 * 512, 3 * 512)]);
    let ops = [Op::Pattern(0x1ff00, 0x200, 0x5a), Op::Zero(0x30000, 0x10000)];
    let img = lab.qcow2("c64k.qcow2", plain, PASS, "", &ops);
    lab.check_both(&[&img]);
}

#[test]
fn cluster_2m() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    // the middle 2 MiB cluster is all zeros: left unallocated by qemu-img convert
    let plain = with_zeros(random("c2m", 6 * MIB), &[(2 * MIB, 2 * MIB)]);
    let ops = [Op::Pattern(2 * MIB as u64 - 512, 1024, 0x5a), Op::ZeroUnmap(4 * MIB as u64, 2 * MIB as u64)];
    let img = lab.qcow2("c2m.qcow2", plain, PASS, "cluster_size=2097152", &ops);
    lab.check_both(&[&img]);
}

/// qcow2 version 2: no zero flag (`write -z` deallocates instead).
#[test]
fn compat_0_10_version_2() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let plain = random("v2", 2 * MIB);
    let ops = [Op::Zero(0x10000, 0x10000), Op::Pattern(0x1ff00, 0x200, 0x77), Op::Discard(0x40000, 0x20000)];
    let img = lab.qcow2("v2.qcow2", plain, PASS, "compat=0.10,cluster_size=65536", &ops);
    assert_eq!(std::fs::read(&img.path).unwrap()[7], 2, "qcow2 version");
    lab.check_both(&[&img]);
}

/// Extended L2 entries: 32 subclusters per cluster, partly allocated, partly zero.
#[test]
fn extended_l2_subclusters() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let ops = [
        Op::Pattern(0x10800, 0x800, 0x33),
        Op::Zero(0x20000, 0x1000),
        Op::Pattern(0x30100, 0x200, 0x44),
        Op::ZeroUnmap(0x40000, 0x10000),
        Op::Data(0x50000 + 3 * 2048, random("sub", 5 * 2048)),
    ];
    let a = lab.qcow2_create("extl2-empty.qcow2", MIB as u64, PASS, "cluster_size=65536,extended_l2=on", &ops);
    let plain = with_zeros(random("extl2", 2 * MIB), &[(0x60000, 0x10000)]);
    let b = lab.qcow2("extl2-full.qcow2", plain, PASS, "cluster_size=65536,extended_l2=on", &ops);
    let c = lab.qcow2_create("extl2-c16k.qcow2", MIB as u64, PASS, "cluster_size=16384,extended_l2=on", &ops);
    lab.check_both(&[&a, &b, &c]);
}

/// Virtual size not a multiple of the cluster size.
#[test]
fn virtual_size_not_a_cluster_multiple() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let img = lab.qcow2("odd.qcow2", mark("odd", 3 * MIB + 1536), PASS, "cluster_size=65536", &[]);
    let img2 = lab.qcow2("odd-c2m.qcow2", random("odd2", 2 * MIB + 512), PASS, "cluster_size=2097152", &[]);
    lab.check_both(&[&img, &img2]);
}

/// Guest clusters written in a different order than their guest offsets: host offsets (and
/// so IVs, which are host offset / 512) differ from guest offsets.
#[test]
fn host_cluster_order_differs_from_guest_order() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let ops = [
        Op::Data(768 * KIB as u64, random("third", 64 * KIB)),
        Op::Data(0, random("first", 64 * KIB)),
        Op::Data(256 * KIB as u64 + 512, random("second", 64 * KIB + 512)),
        Op::Data(1000 * KIB as u64, random("last", 24 * KIB)),
    ];
    let img = lab.qcow2_create("order.qcow2", MIB as u64, PASS, "cluster_size=65536", &ops);
    lab.check_both(&[&img]);
}

/// Other LUKS parameters inside qcow2.
#[test]
fn embedded_luks_cipher_variants() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let mut imgs = Vec::new();
    for (i, o) in [
        "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1",
        "encrypt.cipher-alg=twofish-256,encrypt.cipher-mode=xts,encrypt.ivgen-alg=plain64,encrypt.hash-alg=sha512",
        "encrypt.cipher-alg=serpent-256,encrypt.cipher-mode=xts,encrypt.hash-alg=ripemd160",
        "encrypt.cipher-alg=aes-256,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain,cluster_size=4096",
    ]
    .iter()
    .enumerate()
    {
        let plain = with_zeros(random(o, MIB), &[(128 * KIB, 128 * KIB)]);
        imgs.push(lab.qcow2(&format!("v{i}.qcow2"), plain, PASS, o, &[Op::Pattern(0x3000, 0x1200, 0x42)]));
    }
    lab.check_both(&imgs.iter().collect::<Vec<_>>());
}

/// lazy_refcounts (a compatible feature bit) and 64-bit refcounts do not matter to a reader.
#[test]
fn lazy_refcounts_and_refcount_bits_64() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let img = lab.qcow2("lazy.qcow2", random("lazy", MIB), PASS, "lazy_refcounts=on,refcount_bits=64", &[]);
    lab.check_both(&[&img]);
}

/// An internal snapshot taken before an overwrite: the active view shows the new data.
#[test]
fn internal_snapshot_active_view() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let mut img = lab.qcow2_create("snap.qcow2", MIB as u64, PASS, "", &[Op::Pattern(0, 128 * KIB as u64, 0x11)]);
    let mut c = qemu_img();
    c.args(["snapshot", "--object"]).arg(secret(&img.key)).arg("--image-opts").arg(image_opts(&img.path, "qcow2"));
    c.args(["-c", "before"]);
    sh(c);
    lab.apply_ops(
        &mut img,
        "qcow2",
        &[Op::Pattern(4 * KIB as u64, 8 * KIB as u64, 0x22), Op::Zero(64 * KIB as u64, 4096)],
    );
    lab.verify_with_qemu(&img, "qcow2");
    lab.check_both(&[&img]);
}

/// preallocation=metadata: allocated but never written clusters decrypt on-disk zeros to junk
/// (qemu shows the same junk); written ranges and zero-flagged clusters are exact.
#[test]
fn preallocation_metadata() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let path = lab.place("prealloc.qcow2");
    let key = lab.key("prealloc.key", PASS);
    let mut c = qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(secret(&key))
        .args(["-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,preallocation=metadata"])
        .arg(&path)
        .arg("2M");
    sh(c);
    let a = mark("prealloc-a", 200 * KIB);
    let b = mark("prealloc-b", 64 * KIB);
    let (fa, fb) = (lab.work.join("a"), lab.work.join("b"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    qemu_io(
        &path,
        "qcow2",
        &key,
        &[
            format!("write -s {} 0 {}", fa.display(), a.len()),
            format!("write -s {} {} {}", fb.display(), MIB, b.len()),
            format!("write -z {} 65536", 1536 * KIB),
        ],
    );
    let qemu_view = qemu_read(&path, "qcow2", &key, &lab.work.join("view"));
    let img = crate::util::Image { path, key, plain: qemu_view, header: None };
    assert_same("qemu's view", &img.plain[..a.len()], &a);
    for (off, want) in [(0u64, &a[..]), (MIB as u64, &b[..]), (1536 * KIB as u64, &[0u8; 65536][..])] {
        let out = img.cat().args(["--offset", &off.to_string(), "--length", &want.len().to_string()]).run();
        out.assert_bytes(want);
    }
    lab.check_both(&[&img]);
}

/// A 3 TiB virtual disk (6144 L1 entries) with data far out; only written ranges are read.
#[test]
fn virtual_3tib_sparse() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let path = lab.place("big.qcow2");
    let key = lab.key("big.key", PASS);
    let mut c = qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(secret(&key))
        .args(["-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"])
        .arg(&path)
        .arg("3T");
    sh(c);
    let far = (5u64 << 39) + 4096 + 512; // 2.5 TiB + 4.5 KiB: not cluster aligned
    let data = mark("far", 100 * KIB);
    let f = lab.work.join("far");
    std::fs::write(&f, &data).unwrap();
    qemu_io(&path, "qcow2", &key, &[format!("write -s {} {far} {}", f.display(), data.len())]);
    let cat = |off: u64, len: usize| {
        Luksfs::new("cat").arg(&path).key(&key).args(["--offset", &off.to_string(), "--length", &len.to_string()]).run()
    };
    cat(far, data.len()).assert_bytes(&data);
    cat(far - 4096, 4096).assert_bytes(&[0u8; 4096]);
    cat((3u64 << 40) - 512, 512).assert_bytes(&[0u8; 512]);
    if !crate::util::have(&["fuse"]) {
        return;
    }
    let m = lab.mount(&["--key-file".as_ref(), key.as_os_str()]);
    assert_eq!(std::fs::metadata(m.path("big.qcow2.raw")).unwrap().len(), 3u64 << 40);
    assert_same("pread at 2.5 TiB", &m.read_at("big.qcow2.raw", far, data.len()).unwrap(), &data);
    assert_same("zeros before", &m.read_at("big.qcow2.raw", 0, 65536).unwrap(), &[0u8; 65536]);
}
