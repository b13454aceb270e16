//! LUKS2 images made by cryptsetup (in-place `reencrypt --encrypt`): KDFs, sector sizes, key
//! slots, detached headers, damaged header copies, requirements, conversion from LUKS1.
//! LUKS2 support is the second issue: these tests are expected to fail until it lands.

use crate::util::fixture::{A2I, A2ID, PB2, luks2_break, luks2_edit_json};
use crate::util::{Image, KIB, Lab, MIB, mark, random, sh, tool};

const PASS: &[u8] = b"correct horse battery staple";

macro_rules! luks2_matrix {
    ($($name:ident: $size:expr, $args:expr;)*) => {$(
        #[test]
        fn $name() {
            need!("cryptsetup");
            let lab = Lab::new();
            let img = lab.cs_luks2("vol.img", random(stringify!($name), $size), PASS, $args);
            lab.check_both(&[&img]);
        }
    )*};
}

luks2_matrix! {
    pbkdf2_sha256_aes_xts_512_s512: MIB, &["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256", "-c", "aes-xts-plain64", "-s", "512", "--sector-size", "512"];
    pbkdf2_sha512_aes_xts_256_s1024: MIB, &["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha512", "-c", "aes-xts-plain64", "-s", "256", "--sector-size", "1024"];
    argon2i_aes_xts_512_s2048: MIB, &["--pbkdf", "argon2i", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1", "-c", "aes-xts-plain64", "-s", "512", "--sector-size", "2048"];
    argon2id_aes_xts_512_s4096: MIB, &["--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1", "-c", "aes-xts-plain64", "-s", "512", "--sector-size", "4096"];
    argon2id_two_lanes_s4096: 2 * MIB, &["--pbkdf", "argon2id", "--pbkdf-memory", "16384", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2", "-c", "aes-xts-plain64", "-s", "256", "--sector-size", "4096"];
    aes_cbc_essiv_s512: MIB, &["-c", "aes-cbc-essiv:sha256", "-s", "256", "--sector-size", "512"];
    aes_cbc_essiv_s4096: MIB, &["-c", "aes-cbc-essiv:sha256", "-s", "128", "--sector-size", "4096"];
    aes_xts_plain_s4096: MIB, &["-c", "aes-xts-plain", "-s", "256", "--sector-size", "4096"];
    large_metadata_area_256k: MIB, &["-c", "aes-xts-plain64", "--luks2-metadata-size", "256k", "--luks2-keyslots-size", "1m", "--sector-size", "512"];
}

/// Several key slots (PBKDF2 passphrase, Argon2id key file, Argon2i passphrase in slot 4); the
/// key in slot 4 opens it, `--key-slot` is honoured.
#[test]
fn several_slots_key_in_slot_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("vol.img", mark("slots", MIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    let kf = lab.add_key(&img, &random("keyfile", 4096), 1, A2ID);
    let k4 = lab.add_key(&img, b"slot-four", 4, A2I);
    let with = |k: &std::path::Path| Image { key: k.to_path_buf(), ..img.clone() };
    lab.check_both(&[&with(&k4)]);
    with(&kf).check_cat();
    img.check_cat();
    with(&k4).cat().args(["--key-slot", "4"]).run().assert_bytes(&img.plain);
    with(&k4).cat().args(["--key-slot", "1"]).run().assert_fails(3, &img.path);
    with(&kf).cat().args(["--key-slot", "1"]).run().assert_bytes(&img.plain);
    // slot 0 killed: the others still open it
    lab.kill_slot(&img, 0, &k4);
    with(&k4).check_cat();
    img.cat().run().assert_fails(3, &img.path);
}

/// An unbound key slot (no segment) must not unlock the data: its key is not the volume key.
#[test]
fn unbound_keyslot_does_not_open() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img =
        lab.cs_luks2("vol.img", random("unbound", 512 * KIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    let uk = lab.key("unbound.key", b"unbound passphrase");
    let mut c = tool("cryptsetup");
    c.args(["luksAddKey", "--batch-mode", "--unbound", "-s", "512"]).args(PB2).arg(&img.path).arg(&uk);
    sh(c);
    assert!(lab.luks_dump(&img.path).contains("(unbound)"));
    Image { key: uk, ..img.clone() }.cat().run().assert_fails(3, &img.path);
    img.check_cat();
}

/// Detached header: `--header` for cat, `header=` in a keytab; the data file alone is not an
/// image (no magic), so the mount does not list it without the keytab line.
#[test]
fn detached_header() {
    need!("cryptsetup");
    let lab = Lab::new();
    let mut args = vec!["-c", "aes-xts-plain64", "-s", "512"];
    args.extend_from_slice(A2ID);
    let img = lab.cs_luks2_detached("data.bin", mark("detached", MIB), PASS, &args);
    img.check_cat();
    let no_hdr = Image { header: None, ..img.clone() };
    assert_ne!(no_hdr.cat().run().code(), 0, "the data file alone must not decrypt");
    lab.check_both(&[&img]);
    if !crate::util::have(&["fuse"]) {
        return;
    }
    // key and header paths relative to the keytab's directory (keys/)
    let kt = lab.key("relative.keytab", b"data.bin  data.bin.key  header=data.bin.hdr\n");
    let m = lab.mount(&["--keytab".as_ref(), kt.as_os_str()]);
    m.check(&img, "data.bin.raw");
}

#[test]
fn primary_header_corrupt_opens_from_secondary() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("vol.img", random("primary", MIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    luks2_break(&img.path, "primary");
    lab.check_both(&[&img]);
    crate::util::inspect_ok(&img.path);
}

#[test]
fn secondary_header_corrupt_opens_from_primary() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img =
        lab.cs_luks2("vol.img", random("secondary", MIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    luks2_break(&img.path, "secondary");
    lab.check_both(&[&img]);
}

#[test]
fn both_headers_corrupt_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img =
        lab.cs_luks2("vol.img", random("both", 512 * KIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    luks2_break(&img.path, "both");
    img.cat().run().assert_fails(4, &img.path);
}

/// The copy with the higher seqid wins: after `cryptsetup config --label` on a scratch copy
/// whose primary is then restored from the original, both copies are valid and differ.
#[test]
fn seqid_decides_between_valid_copies() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img =
        lab.cs_luks2("vol.img", random("seqid", 512 * KIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    let hs = crate::util::fixture::luks2_hdr_size(&img.path);
    let old = std::fs::read(&img.path).unwrap()[..hs as usize].to_vec();
    let mut c = tool("cryptsetup");
    c.args(["config", "--label", "newer"]).arg(&img.path);
    sh(c);
    // primary = old (lower seqid), secondary = new: a reader must still use a valid, consistent copy
    crate::util::fixture::patch(&img.path, 0, &old);
    let label = |base: u64| crate::util::fixture::read_range(&img.path, base + 24, 5);
    assert_eq!((label(0), label(hs)), (vec![0u8; 5], b"newer".to_vec()), "labels (binary headers)");
    img.check_cat();
}

/// `config.requirements.mandatory` with an unknown name: refused (exit 5) before any key is tried.
#[test]
fn unknown_mandatory_requirement_is_refused() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img =
        lab.cs_luks2("vol.img", random("req", 512 * KIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "512"]);
    luks2_edit_json(&img.path, |j| {
        j.replacen("\"config\":{", "\"config\":{\"requirements\":{\"mandatory\":[\"luksfs-test-unknown\"]},", 1)
    });
    assert!(lab.luks_dump(&img.path).contains("luksfs-test-unknown"), "cryptsetup sees the requirement");
    img.cat().run().assert_fails(5, &img.path);
    // wrong key too: the refusal comes first
    let wrong = Image { key: lab.key("wrong", b"wrong"), ..img.clone() };
    wrong.cat().run().assert_fails(5, &img.path);
    // inspect reads it without a key and reports the refusal class
    crate::util::Luksfs::new("inspect").arg(&img.path).run().assert_exit(5, &img.path);
}

/// Upstream cryptsetup's own image with `mandatory = [req0, req1]` (from ../shared/corpus).
#[test]
fn upstream_requirements_image_is_refused() {
    need!("shared-corpus", "tar", "xz");
    let lab = Lab::new();
    let tarball = crate::util::shared_corpus().join("external/luks2_header_requirements.tar.xz");
    let mut c = tool("tar");
    c.arg("-C").arg(&lab.src).arg("-xJf").arg(&tarball).arg("--no-same-owner");
    sh(c);
    let key = lab.key("blablabl", b"blablabl");
    let path = lab.src.join("luks2_header_requirements");
    crate::util::Luksfs::new("cat").arg(&path).key(&key).run().assert_fails(5, &path);
    let free = lab.src.join("luks2_header_requirements_free");
    crate::util::Luksfs::new("cat").arg(&free).key(&key).run().assert_bytes(b"");
}

/// LUKS1 (payload by qemu) → `cryptsetup convert --type luks2` → `luksConvertKey` to Argon2id.
#[test]
fn converted_from_luks1() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let img = lab.cs_luks1_qemu("vol.img", mark("converted", MIB), PASS, &["-c", "aes-cbc-essiv:sha256", "-s", "256"]);
    let mut c = tool("cryptsetup");
    c.args(["convert", "--type", "luks2", "--batch-mode"]).arg(&img.path);
    sh(c);
    let mut c = tool("cryptsetup");
    c.args(["luksConvertKey", "--batch-mode", "--key-file"]).arg(&img.key).args(A2ID).arg(&img.path);
    sh(c);
    lab.check_both(&[&img]);
}

/// Label, subsystem and a token of an unknown type: all ignored.
#[test]
fn label_subsystem_and_unknown_token() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2(
        "vol.img",
        random("token", MIB),
        PASS,
        &["-c", "aes-xts-plain64", "--sector-size", "512", "--label", "it-label", "--subsystem", "it-subsystem"],
    );
    let tok = lab.key("token.json", br#"{"type":"luksfs-test-opaque","keyslots":["0"],"comment":"ignore me"}"#);
    let mut c = tool("cryptsetup");
    c.args(["token", "import", "--json-file"]).arg(&tok).args(["--token-id", "3"]).arg(&img.path);
    sh(c);
    lab.check_both(&[&img]);
}

#[test]
fn wrong_key_is_exit_3() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("vol.img", random("wrong", 512 * KIB), PASS, A2ID);
    Image { key: lab.key("wrong", b"not it"), ..img.clone() }.cat().run().assert_fails(3, &img.path);
}

#[test]
fn truncated_json_area_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("vol.img", random("trunc", 512 * KIB), PASS, PB2);
    crate::util::fixture::truncate(&img.path, 6000);
    img.cat().run().assert_fails(4, &img.path);
}

#[test]
fn inspect_without_key() {
    need!("cryptsetup");
    let lab = Lab::new();
    let img = lab.cs_luks2("vol.img", random("inspect", 512 * KIB), PASS, A2ID);
    crate::util::inspect_ok(&img.path);
}
