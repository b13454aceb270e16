//! LUKS1 images made by qemu-img and by cryptsetup: the cipher / IV generator / hash matrix,
//! key slots, key files, layouts. Each image is checked through `luksfs cat` and a FUSE mount.

use crate::util::fixture::{A2ID, PB2, qemu_img, secret};
use crate::util::{Image, KIB, Lab, MIB, mark, random, sh, tool};

const PASS: &[u8] = b"correct horse battery staple";

/// One test per qemu-img `-O luks` option set (what OpenStack and libvirt write).
macro_rules! qemu_matrix {
    ($($name:ident: $opts:expr;)*) => {$(
        #[test]
        fn $name() {
            need!("qemu-img");
            let lab = Lab::new();
            let img = lab.qemu_luks("vol.luks", mark(stringify!($name), 512 * KIB + 3 * 512), PASS, $opts);
            lab.check_both(&[&img]);
        }
    )*};
}

qemu_matrix! {
    qemu_aes128_xts_plain64_sha256: "cipher-alg=aes-128,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256";
    qemu_aes192_xts_plain64_sha1: "cipher-alg=aes-192,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha1";
    qemu_aes256_xts_plain64_sha512: "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha512";
    qemu_aes256_xts_plain_sha256: "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain,hash-alg=sha256";
    qemu_aes256_xts_plain64_ivhash_spelling: "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,ivgen-hash-alg=sha256";
    qemu_aes128_cbc_essiv_sha256_ripemd160: "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=ripemd160";
    qemu_aes256_cbc_essiv_sha256_sha256: "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha256";
    qemu_aes128_cbc_plain_sha1: "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha1";
    qemu_aes256_cbc_plain64_sha224: "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha224";
    qemu_aes256_ecb_sha384: "cipher-alg=aes-256,cipher-mode=ecb,hash-alg=sha384";
    qemu_aes256_ctr_plain64_sha256: "cipher-alg=aes-256,cipher-mode=ctr,ivgen-alg=plain64,hash-alg=sha256";
    qemu_serpent256_xts_plain64_sha1: "cipher-alg=serpent-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha1";
    qemu_serpent128_cbc_essiv_sha256: "cipher-alg=serpent-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha256";
    qemu_twofish256_xts_plain64_sha256: "cipher-alg=twofish-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256";
    qemu_twofish128_cbc_plain64_sha512: "cipher-alg=twofish-128,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha512";
    qemu_cast5_128_cbc_plain64_sha256: "cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha256";
}

/// One test per cryptsetup cipher spec: payload encrypted by `cryptsetup reencrypt`, header
/// converted to LUKS1. (cryptsetup here has no kernel crypto API: aes and camellia only, through
/// its userspace backend.)
macro_rules! cryptsetup_matrix {
    ($($name:ident: $args:expr;)*) => {$(
        #[test]
        fn $name() {
            need!("cryptsetup", "qemu-img");
            let lab = Lab::new();
            let img = lab.cs_luks1("vol.img", random(stringify!($name), MIB + 4 * KIB), PASS, $args);
            lab.check_both(&[&img]);
        }
    )*};
}

cryptsetup_matrix! {
    cs_aes_xts_plain64_256_sha256: &["-c", "aes-xts-plain64", "-s", "256", "--hash", "sha256"];
    cs_aes_xts_plain64_512_sha512: &["-c", "aes-xts-plain64", "-s", "512", "--hash", "sha512"];
    cs_aes_xts_essiv_sha256_256_sha256: &["-c", "aes-xts-essiv:sha256", "-s", "256", "--hash", "sha256"];
    cs_aes_cbc_essiv_sha256_256_sha1: &["-c", "aes-cbc-essiv:sha256", "-s", "256", "--hash", "sha1"];
    cs_aes_cbc_plain_128_ripemd160: &["-c", "aes-cbc-plain", "-s", "128", "--hash", "ripemd160"];
    cs_aes_cbc_plain64_256_whirlpool: &["-c", "aes-cbc-plain64", "-s", "256", "--hash", "whirlpool"];
    cs_aes_cbc_plain64be_192_sha384: &["-c", "aes-cbc-plain64be", "-s", "192", "--hash", "sha384"];
    cs_aes_cbc_benbi_256_sha256: &["-c", "aes-cbc-benbi", "-s", "256", "--hash", "sha256"];
    cs_aes_cbc_null_256_sha256: &["-c", "aes-cbc-null", "-s", "256", "--hash", "sha256"];
    cs_aes_ecb_256_sha224: &["-c", "aes-ecb", "-s", "256", "--hash", "sha224"];
    cs_aes_ctr_plain64_256_sha256: &["-c", "aes-ctr-plain64", "-s", "256", "--hash", "sha256"];
    cs_camellia_cbc_plain64_256_sha256: &["-c", "camellia-cbc-plain64", "-s", "256", "--hash", "sha256"];
}

/// cryptsetup `luksFormat` header (1 MiB-aligned payload), payload written by qemu.
#[test]
fn cs_header_qemu_payload_aes_xts_512_sha512() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let img = lab.cs_luks1_qemu(
        "vol.img",
        mark("cs-qemu", MIB),
        PASS,
        &["-c", "aes-xts-plain64", "-s", "512", "--hash", "sha512"],
    );
    lab.check_both(&[&img]);
}

/// `--align-payload 1`: the payload starts right after the key material (1032 sectors), not on
/// a 1 MiB boundary.
#[test]
fn cs_unaligned_payload_offset() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let img = lab.cs_luks1_qemu(
        "vol.img",
        mark("align1", 300 * KIB),
        PASS,
        &["-c", "aes-cbc-essiv:sha256", "-s", "128", "--hash", "sha256", "--align-payload", "1"],
    );
    assert_eq!(crate::util::fixture::luks1_payload_offset(&img.path), 1032 * 512);
    lab.check_both(&[&img]);
}

/// The only active key slot is slot 3 (slots 0-2 empty).
#[test]
fn key_only_in_slot_3() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let img = lab.cs_luks1("vol.img", mark("slot3", MIB), b"slot0-will-be-killed", &["-c", "aes-xts-plain64"]);
    let k3 = lab.add_key(&img, PASS, 3, &[]);
    lab.kill_slot(&img, 0, &k3);
    assert!(lab.luks_dump(&img.path).contains("Key Slot 0: DISABLED"));
    let img = Image { key: k3, ..img };
    lab.check_both(&[&img]);
}

/// Eight active slots with eight different passphrases: the last one opens the volume.
#[test]
fn key_in_last_of_eight_slots() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks1("vol.img", random("eight", 512 * KIB), b"pass-0", &["-c", "aes-xts-plain64"]);
    let mut last = img.key.clone();
    for s in 1..8u32 {
        last = lab.add_key(&img, format!("pass-{s}").as_bytes(), s, &[]);
    }
    Image { key: last, ..img.clone() }.check_cat();
    img.check_cat();
}

/// `--key-slot N` tries only slot N.
#[test]
fn key_slot_option_is_honoured() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks1("vol.img", random("keyslot", 512 * KIB), b"key-A", &["-c", "aes-xts-plain64"]);
    let kb = lab.add_key(&img, b"key-B", 5, &[]);
    let b = Image { key: kb, ..img.clone() };
    b.check_cat();
    b.cat().args(["--key-slot", "5"]).run().assert_bytes(&img.plain);
    b.cat().args(["--key-slot", "0"]).run().assert_fails(3, &img.path);
    img.cat().args(["--key-slot", "5"]).run().assert_fails(3, &img.path);
    img.cat().args(["--key-slot", "0"]).run().assert_bytes(&img.plain);
    // a slot that is not active opens nothing with any key
    img.cat().args(["--key-slot", "2"]).run().assert_fails(3, &img.path);
}

/// qemu-img amend: a key added in slot 5, slot 0 erased (qemu's own key management).
#[test]
fn qemu_amend_key_moved_to_slot_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("amend", 256 * KIB), b"old-key", "");
    let k2 = lab.key("new.key", PASS);
    let mut c = qemu_img();
    c.args(["amend", "--object"])
        .arg(secret(&img.key))
        .arg("--object")
        .arg(secret(&k2).replace("id=s0", "id=s1"))
        .arg("--image-opts")
        .arg(format!("driver=luks,file.filename={},key-secret=s0", img.path.display()))
        .args(["-o", "state=active,new-secret=s1,keyslot=5,iter-time=10"]);
    sh(c);
    let mut c = qemu_img();
    c.args(["amend", "--object"])
        .arg(secret(&k2))
        .arg("--image-opts")
        .arg(format!("driver=luks,file.filename={},key-secret=s0", img.path.display()))
        .args(["-o", "state=inactive,keyslot=0"]);
    sh(c);
    img.cat().run().assert_fails(3, &img.path);
    let img = Image { key: k2, ..img };
    lab.check_both(&[&img]);
}

/// Key file bytes are the passphrase exactly: a trailing newline is part of it.
#[test]
fn keyfile_trailing_newline_is_part_of_the_passphrase() {
    need!("qemu-img");
    let lab = Lab::new();
    let with_nl = lab.qemu_luks("nl.luks", mark("nl", 64 * KIB), b"hunter2\n", "");
    let without = lab.qemu_luks("plain.luks", mark("no-nl", 64 * KIB), b"hunter2", "");
    let k_nl = lab.key("with-newline", b"hunter2\n");
    let k_plain = lab.key("without-newline", b"hunter2");
    with_nl.cat().run().assert_bytes(&with_nl.plain);
    Image { key: k_plain.clone(), ..with_nl.clone() }.cat().run().assert_fails(3, &with_nl.path);
    Image { key: k_plain, ..without.clone() }.cat().run().assert_bytes(&without.plain);
    Image { key: k_nl, ..without.clone() }.cat().run().assert_fails(3, &without.path);
}

/// A 4 KiB binary key file (NULs, newlines, high bytes) is used whole.
#[test]
fn binary_keyfile() {
    need!("cryptsetup");
    let lab = Lab::new();
    let mut key = random("binary-key", 4096);
    key[10] = 0;
    key[100] = b'\n';
    key[4095] = b'\n';
    let img = lab.cs_luks1("vol.img", mark("binkey", 512 * KIB), &key, &["-c", "aes-cbc-essiv:sha256", "-s", "256"]);
    img.check_cat();
    // the same file without its last byte is a different passphrase
    let short = lab.key("short", &key[..4095]);
    Image { key: short, ..img.clone() }.cat().run().assert_fails(3, &img.path);
}

/// A multi-byte UTF-8 passphrase with spaces.
#[test]
fn utf8_passphrase() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", mark("utf8", 64 * KIB), "pässwörd-ключ-🔑 with spaces".as_bytes(), "");
    img.check_cat();
}

/// `--keyfile-offset` / `--keyfile-size` select part of a key file, as in cryptsetup.
#[test]
fn keyfile_offset_and_size() {
    need!("cryptsetup");
    let lab = Lab::new();
    let key = random("embedded-key", 64);
    let img = lab.cs_luks1("vol.img", random("kfo", 512 * KIB), &key, &["-c", "aes-xts-plain64"]);
    let mut blob = random("junk-before", 100);
    blob.extend_from_slice(&key);
    blob.extend_from_slice(&random("junk-after", 50));
    let blob = lab.key("blob", &blob);
    let b = Image { key: blob, ..img.clone() };
    b.cat().args(["--keyfile-offset", "100", "--keyfile-size", "64"]).run().assert_bytes(&img.plain);
    b.cat().args(["--keyfile-offset", "100"]).run().assert_fails(3, &img.path);
    b.cat().args(["--keyfile-size", "64"]).run().assert_fails(3, &img.path);
    b.cat().run().assert_fails(3, &img.path);
    // key at the start of a longer file: --keyfile-size alone
    let mut head = key.clone();
    head.extend_from_slice(b"trailing junk\n");
    let h = Image { key: lab.key("head", &head), ..img.clone() };
    h.cat().args(["--keyfile-size", "64"]).run().assert_bytes(&img.plain);
    h.cat().run().assert_fails(3, &img.path);
}

/// A file that ends in a partial sector after the payload: the size floors to whole sectors
/// (dm-crypt semantics), the junk is never shown.
#[test]
fn partial_trailing_sector_is_floored() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("vol.luks", random("tail", 256 * KIB), PASS, "cipher-alg=aes-256,cipher-mode=xts");
    let mut f = std::fs::OpenOptions::new().append(true).open(&img.path).unwrap();
    std::io::Write::write_all(&mut f, &random("junk", 100)).unwrap();
    drop(f);
    lab.check_both(&[&img]);
}

/// Data around sector 2^32 of a 3 TiB sparse volume: the 32-bit `plain` IV wraps there,
/// `plain64` does not. Only the written ranges are compared (the rest decrypts zeros to junk).
#[test]
fn sparse_3tib_plain_and_plain64_ivs() {
    need!("cryptsetup", "qemu-io");
    let lab = Lab::new();
    let ranges: [(u64, usize); 3] =
        [(100 * MIB as u64, 64 * KIB), ((1u64 << 41) - 512 * KIB as u64, MIB), (5u64 << 39, 4 * KIB)];
    let mut mounts_wanted = Vec::new();
    for cipher in ["aes-xts-plain", "aes-xts-plain64", "aes-cbc-essiv:sha256"] {
        let name = format!("{}.img", cipher.replace(':', "-"));
        let path = lab.place(&name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(3 << 40).unwrap();
        drop(f);
        let key = lab.key(&format!("{name}.key"), PASS);
        let mut c = tool("cryptsetup");
        c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--pbkdf-force-iterations", "1000", "--key-file"])
            .arg(&key)
            .args(["-c", cipher, "-s", "256"])
            .arg(&path);
        sh(c);
        let mut cmds = Vec::new();
        let mut want = Vec::new();
        for (i, &(off, len)) in ranges.iter().enumerate() {
            let data = mark(&format!("{cipher} range {i}"), len);
            let src = lab.work.join(format!("{name}.{i}"));
            std::fs::write(&src, &data).unwrap();
            cmds.push(format!("write -s {} {off} {len}", src.display()));
            want.push((off, data));
        }
        crate::util::fixture::qemu_io(&path, "luks", &key, &cmds);
        let payload = crate::util::fixture::luks1_payload_offset(&path);
        for (off, data) in &want {
            let out = crate::util::Luksfs::new("cat")
                .arg(&path)
                .key(&key)
                .args(["--offset", &off.to_string(), "--length", &data.len().to_string()])
                .run();
            out.assert_bytes(data);
        }
        mounts_wanted.push((name, key, (3u64 << 40) - payload, want));
    }
    if !crate::util::have(&["fuse"]) {
        return;
    }
    let mut kt = String::new();
    for (name, key, _, _) in &mounts_wanted {
        kt += &format!("{name} {}\n", key.display());
    }
    let kt = lab.key("keytab", kt.as_bytes());
    let m = lab.mount(&["--keytab".as_ref(), kt.as_os_str()]);
    for (name, _, size, want) in &mounts_wanted {
        let rel = format!("{name}.raw");
        assert_eq!(std::fs::metadata(m.path(&rel)).unwrap().len(), *size, "{rel}");
        for (off, data) in want {
            let got = m.read_at(&rel, *off, data.len()).unwrap();
            crate::util::assert_same(&format!("{rel} at {off}"), &got, data);
        }
    }
}

/// LUKS1 produced from LUKS2 by `cryptsetup convert` after argon2 was replaced with pbkdf2
/// (keeps the LUKS2-era layout: 16 KiB-aligned key material).
#[test]
fn cs_converted_from_luks2_with_argon_slot_replaced() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let mut args = vec!["-c", "aes-xts-plain64", "-s", "512"];
    args.extend_from_slice(A2ID);
    let img = lab.cs_luks2("vol.img", random("conv", 768 * KIB), PASS, &args);
    let mut c = tool("cryptsetup");
    c.args(["luksConvertKey", "--batch-mode", "--key-file"]).arg(&img.key).args(PB2).arg(&img.path);
    sh(c);
    let mut c = tool("cryptsetup");
    c.args(["convert", "--type", "luks1", "--batch-mode"]).arg(&img.path);
    sh(c);
    lab.check_both(&[&img]);
}
