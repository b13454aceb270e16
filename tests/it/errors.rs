//! Bad input and what `cat` / `inspect` answer: exit codes (3 wrong key, 4 corrupt, 5 refused,
//! 2 usage, 1 other), one stderr line naming the file, nothing on stdout, never a hang or a huge
//! allocation. Also `cat --offset/--length` and `inspect` on good images.

use std::time::Duration;

use crate::util::fixture::{
    Op, be32, be64, luks1_payload_offset, patch, qcow2_ext, qemu_img, scramble, secret, truncate,
};
use crate::util::{Image, KIB, Lab, Luksfs, MIB, inspect_ok, mark, random, sh};

const PASS: &[u8] = b"correct horse battery staple";

fn qcow2_img(lab: &Lab, name: &str) -> Image {
    lab.qcow2(name, random(name, MIB), PASS, "cluster_size=65536", &[])
}

fn wrong(lab: &Lab, img: &Image) -> Image {
    Image { key: lab.key("wrong.key", b"wrong passphrase"), ..img.clone() }
}

#[test]
fn wrong_key_is_exit_3_and_never_echoes_secrets() {
    need!("qemu-img", "cryptsetup");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", mark("a", 64 * KIB), PASS, "");
    let b = lab.cs_luks1("b.img", mark("b", 64 * KIB), PASS, &["-c", "aes-xts-plain64"]);
    let c = qcow2_img(&lab, "c.qcow2");
    for img in [&a, &b, &c] {
        let out = wrong(&lab, img).cat().run();
        out.assert_fails(3, &img.path);
        assert!(!out.stderr.contains("wrong passphrase") && !out.stderr.contains("correct horse"), "{}", out.stderr);
    }
}

#[test]
fn luks1_truncated_header_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("a.luks", mark("t", 64 * KIB), PASS, "");
    truncate(&img.path, 1000);
    img.cat().run().assert_fails(4, &img.path);
    Luksfs::new("inspect").arg(&img.path).run().assert_exit(4, &img.path);
}

#[test]
fn luks1_key_material_past_eof_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("a.luks", mark("t", 64 * KIB), PASS, "");
    truncate(&img.path, 4096);
    img.cat().run().assert_fails(4, &img.path);
}

#[test]
fn luks1_payload_past_eof_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks1("a.img", mark("p", 64 * KIB), PASS, &["-c", "aes-cbc-plain", "-s", "128"]);
    truncate(&img.path, luks1_payload_offset(&img.path) - 4096);
    img.cat().run().assert_fails(4, &img.path);
}

#[test]
fn luks1_corrupted_key_slot_is_exit_3() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks1("a.img", mark("ks", 64 * KIB), PASS, &["-c", "aes-xts-plain64"]);
    let km = u64::from(be32(&img.path, 208 + 40)) * 512; // slot 0 key material offset (sectors)
    scramble(&img.path, km + 4096, 4096, "slot0");
    img.cat().run().assert_fails(3, &img.path);
}

#[test]
fn luks_magic_then_garbage_is_exit_4() {
    let lab = Lab::new();
    let p = lab.place("garbage.img");
    let mut v = b"LUKS\xba\xbe\x00\x01".to_vec();
    v.extend(random("garbage", MIB - 8));
    std::fs::write(&p, v).unwrap();
    let img = Image { path: p.clone(), key: lab.key("k", PASS), plain: vec![], header: None };
    img.cat().run().assert_fails(4, &p);
}

/// Absurd header values (stripes, key size, payload offset) are errors, fast, with no huge
/// allocation.
#[test]
fn luks1_absurd_fields_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = lab.qemu_luks("base.luks", mark("absurd", 64 * KIB), PASS, "");
    for (name, off, val) in [
        ("stripes", 208 + 44, 0xffff_ffffu32), // slot 0 AF stripes
        ("key-bytes", 108, 0xffff_fff0),       // master key length
        ("km-offset", 208 + 40, 0x7fff_ffff),  // slot 0 key material offset
        ("payload", 104, 0xffff_ffff),         // payload offset
    ] {
        let p = lab.place(&format!("{name}.luks"));
        std::fs::copy(&base.path, &p).unwrap();
        patch(&p, off, &val.to_be_bytes());
        let img = Image { path: p.clone(), ..base.clone() };
        let out = img.cat().limit(Duration::from_secs(30)).run();
        out.assert_fails(4, &p);
    }
}

/// A cipher luksfs does not implement: a clean refusal (exit 5), not a wrong-key error.
#[test]
fn luks1_unsupported_cipher_is_exit_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("a.luks", mark("c", 64 * KIB), PASS, "");
    let mut name = [0u8; 32];
    name[..8].copy_from_slice(b"blowfish");
    patch(&img.path, 8, &name);
    img.cat().run().assert_fails(5, &img.path);
}

#[test]
fn qcow2_truncated_header_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = qcow2_img(&lab, "t.qcow2");
    truncate(&img.path, 50);
    img.cat().run().assert_fails(4, &img.path);
    Luksfs::new("inspect").arg(&img.path).run().assert_exit(4, &img.path);
}

#[test]
fn qcow2_fde_header_past_eof_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = qcow2_img(&lab, "fde.qcow2");
    let ext = qcow2_ext(&img.path, 0x0537_be77).expect("FDE extension");
    let past = std::fs::metadata(&img.path).unwrap().len() + MIB as u64;
    patch(&img.path, ext, &past.to_be_bytes());
    img.cat().run().assert_fails(4, &img.path);
}

#[test]
fn qcow2_l1_table_past_eof_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = qcow2_img(&lab, "l1.qcow2");
    patch(&img.path, 40, &(1u64 << 40).to_be_bytes());
    img.cat().limit(Duration::from_secs(30)).run().assert_fails(4, &img.path);
}

#[test]
fn qcow2_absurd_header_fields_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = qcow2_img(&lab, "base.qcow2");
    for (name, off, val) in [
        ("cluster-bits", 20u64, 40u32.to_be_bytes().to_vec()),
        ("l1-size", 36, 0x7fff_ffffu32.to_be_bytes().to_vec()),
        ("size", 24, u64::MAX.to_be_bytes().to_vec()),
    ] {
        let p = lab.place(&format!("{name}.qcow2"));
        std::fs::copy(&base.path, &p).unwrap();
        patch(&p, off, &val);
        let img = Image { path: p.clone(), ..base.clone() };
        img.cat().limit(Duration::from_secs(30)).run().assert_fails(4, &p);
    }
}

/// A data cluster whose L2 entry points past EOF: reading that range fails (exit 4, no bytes),
/// other ranges still read.
#[test]
fn qcow2_l2_entry_past_eof_fails_that_range_only() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let img = qcow2_img(&lab, "l2.qcow2");
    let l1 = be64(&img.path, 40);
    let l2 = be64(&img.path, l1) & 0x00ff_ffff_ffff_fe00;
    let past = (std::fs::metadata(&img.path).unwrap().len() + 16 * MIB as u64) & !0xffff;
    patch(&img.path, l2, &(past | 1 << 63).to_be_bytes());
    let out = img.cat().args(["--offset", "0", "--length", "4096"]).run();
    out.assert_fails(4, &img.path);
    img.cat().args(["--offset", "65536", "--length", "65536"]).run().assert_bytes(&img.plain[65536..131072]);
}

#[test]
fn qcow2_unknown_incompatible_feature_is_exit_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = qcow2_img(&lab, "feat.qcow2");
    let f = be64(&img.path, 72);
    patch(&img.path, 72, &(f | 1 << 40).to_be_bytes());
    img.cat().run().assert_fails(5, &img.path);
}

#[test]
fn qcow2_backing_file_is_exit_5() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let base = lab.qcow2("base.qcow2", random("base", MIB), b"base-secret", "", &[]);
    let key = lab.key("top.key", PASS);
    let top = lab.qcow2_with_backing("top.qcow2", &base.path, &key);
    let img = Image { path: top.clone(), key, plain: vec![], header: None };
    img.cat().run().assert_fails(5, &top);
    // the base alone is a fine image
    base.check_cat();
}

#[test]
fn qcow2_external_data_file_is_exit_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qcow2_external_data("ext.qcow2", PASS);
    img.cat().run().assert_fails(5, &img.path);
}

#[test]
fn qcow2_legacy_aes_is_exit_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let p = lab.place("aes.qcow2");
    let key = lab.key("aes.key", PASS);
    let mut c = qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(secret(&key))
        .args(["-o", "encrypt.format=aes,encrypt.key-secret=s0"])
        .arg(&p)
        .arg("4M");
    sh(c);
    Image { path: p.clone(), key, plain: vec![], header: None }.cat().run().assert_fails(5, &p);
}

#[test]
fn missing_file_is_exit_1() {
    let lab = Lab::new();
    let p = lab.src.join("does-not-exist.img");
    Luksfs::new("cat").arg(&p).key(&lab.key("k", PASS)).run().assert_fails(1, &p);
}

/// A file that is not an image at all: a clean failure naming it (the contract leaves the class
/// open; it must not be success or a wrong-key answer).
#[test]
fn not_an_image_fails_cleanly() {
    let lab = Lab::new();
    let p = lab.place("random.bin");
    std::fs::write(&p, random("not-an-image", 64 * KIB)).unwrap();
    let out = Luksfs::new("cat").arg(&p).key(&lab.key("k", PASS)).run();
    let code = out.code();
    assert!(![0, 2, 3].contains(&code), "{}: exit {code}", out.cmdline);
    out.assert_fails(code, &p);
}

#[test]
fn usage_errors_are_exit_2() {
    let lab = Lab::new();
    let p = lab.place("x.img");
    std::fs::write(&p, b"x").unwrap();
    for args in [vec!["cat"], vec!["frobnicate"], vec!["cat", "--offset", "abc"], vec!["mount"], vec!["inspect"]] {
        let mut l = Luksfs::new(args[0]);
        if args.len() > 1 {
            l = l.arg(&p).args(&args[1..]);
        }
        let out = l.run();
        assert_eq!(out.code, Some(2), "{}: {}", out.cmdline, out.stderr);
        assert!(out.stdout.is_empty(), "{}: stdout on a usage error", out.cmdline);
    }
}

/// Unaligned byte ranges across sector and cluster boundaries.
#[test]
fn cat_offset_and_length() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let a = lab.qemu_luks(
        "a.luks",
        mark("range", 300 * KIB + 512),
        PASS,
        "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256",
    );
    let q = lab.qcow2("q.qcow2", random("range-q", 300 * KIB), PASS, "cluster_size=512", &[Op::Zero(4096, 4096)]);
    for img in [&a, &q] {
        let n = img.plain.len() as u64;
        for (off, len) in [
            (0u64, 1u64),
            (1, 7),
            (511, 2),
            (513, 4097),
            (4095, 10_000),
            (65_535, 65_538),
            (n - 1, 1),
            (n - 700, 700),
            (12_345, 0),
        ] {
            let out = img.cat().args(["--offset", &off.to_string(), "--length", &len.to_string()]).run();
            out.assert_bytes(&img.plain[off as usize..(off + len) as usize]);
        }
        img.cat().args(["--offset", "1000"]).run().assert_bytes(&img.plain[1000..]);
        img.cat().args(["--length", "1000"]).run().assert_bytes(&img.plain[..1000]);
    }
}

#[test]
fn inspect_needs_no_key() {
    need!("qemu-img", "cryptsetup");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", mark("i", 64 * KIB), PASS, "");
    let b = lab.cs_luks1("b.img", mark("i", 64 * KIB), PASS, &["-c", "aes-xts-plain64"]);
    let c = qcow2_img(&lab, "c.qcow2");
    for img in [&a, &b, &c] {
        inspect_ok(&img.path);
    }
}
