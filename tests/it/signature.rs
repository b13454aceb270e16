//! Glance image signatures checked by `luksfs verify`: keys, certificates and signatures made
//! by `openssl` as the RHOSP guide "Validating Image Service images with signatures" does
//! (`openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss -out SIG IMAGE`, then
//! `base64 -w 0 SIG`), certificates stored in the real Barbican of [`crate::barbican::harness`]
//! as `certificate` secrets, and the `img_signature*` properties in a Glance sidecar written as
//! `openstack image show -f json` prints it; one signed image goes through a real Glance
//! (`glance://ID`, which verifies the signature itself at upload). Run with
//! `cargo test --test it -- signature::`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::barbican::{Osk, harness};
use crate::util::{self, Image, KIB, Lab, Out, sh, tool};

macro_rules! osk {
    () => {
        match harness() {
            Some(o) => o,
            None => return,
        }
    };
}

/// `openssl ARGS` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let mut c = tool("openssl");
    c.current_dir(dir).args(args);
    sh(c)
}

/// A signing key of `kind` in `dir/NAME.key`.
pub(crate) fn key(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let k = format!("{name}.key");
    match kind {
        "rsa" => openssl(dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &k]),
        "p256" | "p384" | "p521" => {
            let curve = format!("ec_paramgen_curve:P-{}", &kind[1..]);
            openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", &curve, "-out", &k])
        }
        "dsa" => {
            let p = format!("{name}.dsaparam");
            openssl(
                dir,
                &[
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "DSA",
                    "-pkeyopt",
                    "dsa_paramgen_bits:2048",
                    "-pkeyopt",
                    "dsa_paramgen_q_bits:256",
                    "-out",
                    &p,
                ],
            );
            openssl(dir, &["genpkey", "-paramfile", &p, "-out", &k])
        }
        other => panic!("{other}"),
    };
    dir.join(k)
}

/// A self-signed certificate for `key`, valid for 14 days from now (RHOSP: `openssl req -new`,
/// then `openssl x509 -req -days 14 -signkey`).
pub(crate) fn self_signed(dir: &Path, name: &str, key: &Path) -> PathBuf {
    let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
    let k = key.to_str().unwrap();
    openssl(dir, &["req", "-new", "-key", k, "-subj", &format!("/O=luksfs tests/CN={name}"), "-out", &csr]);
    openssl(dir, &["x509", "-req", "-days", "14", "-in", &csr, "-signkey", k, "-out", &crt]);
    dir.join(crt)
}

/// A CA certificate (basicConstraints CA:TRUE) for `key`.
fn ca_cert(dir: &Path, name: &str, key: &Path) -> PathBuf {
    let crt = format!("{name}.crt");
    let subj = format!("/O=luksfs tests/CN={name}");
    let k = key.to_str().unwrap();
    openssl(dir, &["req", "-x509", "-new", "-key", k, "-days", "30", "-subj", &subj, "-out", &crt]);
    dir.join(crt)
}

/// A certificate for `key` issued by the CA `ca_crt`/`ca_key`.
fn issued(dir: &Path, name: &str, key: &Path, ca_crt: &Path, ca_key: &Path) -> PathBuf {
    issued_with(dir, name, key, ca_crt, ca_key, &[])
}

/// [`issued`], with more `openssl x509` options (how the CA signs: `-sha384`, `-sigopt ...`).
fn issued_with(dir: &Path, name: &str, key: &Path, ca_crt: &Path, ca_key: &Path, how: &[&str]) -> PathBuf {
    let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
    openssl(dir, &["req", "-new", "-key", key.to_str().unwrap(), "-subj", &format!("/CN={name}"), "-out", &csr]);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "7",
            "-in",
            &csr,
            "-CA",
            ca_crt.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-set_serial",
            "1001",
            "-out",
            &crt,
        ]
        .iter()
        .chain(how)
        .copied()
        .collect::<Vec<_>>(),
    );
    dir.join(crt)
}

/// A self-signed certificate for `key` valid from `start` to `end` (`YYYYMMDDHHMMSSZ`), made
/// with `openssl ca -selfsign -startdate -enddate` (openssl 3.0's `x509` has no `-not_before`).
fn dated(dir: &Path, name: &str, key: &Path, start: &str, end: &str) -> PathBuf {
    let ca = dir.join(format!("{name}.ca"));
    std::fs::create_dir_all(ca.join("new")).unwrap();
    std::fs::write(ca.join("index.txt"), "").unwrap();
    std::fs::write(ca.join("serial"), "1000\n").unwrap();
    let cnf = format!(
        "[ca]\ndefault_ca = c\n[c]\ndir = {d}\ndatabase = {d}/index.txt\nnew_certs_dir = {d}/new\n\
         serial = {d}/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
        d = ca.display()
    );
    std::fs::write(ca.join("ca.cnf"), cnf).unwrap();
    let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
    let k = key.to_str().unwrap();
    openssl(dir, &["req", "-new", "-key", k, "-subj", &format!("/CN={name}"), "-out", &csr]);
    let cnf = ca.join("ca.cnf");
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            cnf.to_str().unwrap(),
            "-selfsign",
            "-keyfile",
            k,
            "-in",
            &csr,
            "-startdate",
            start,
            "-enddate",
            end,
            "-out",
            &crt,
        ],
    );
    dir.join(crt)
}

/// `openssl x509 -outform DER`.
fn der(dir: &Path, crt: &Path) -> Vec<u8> {
    openssl(dir, &["x509", "-in", crt.to_str().unwrap(), "-outform", "DER"])
}

/// The RHOSP guide's signature of `image` with `key`: `openssl dgst -<hash> -sign KEY
/// [-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2] -out SIG IMAGE`, base64 (one line).
pub(crate) fn sign(dir: &Path, image: &Path, key: &Path, hash: &str, pss: bool) -> String {
    sign_salt(dir, image, key, hash, pss.then_some("-2"))
}

/// [`sign`] with RSA-PSS and this `rsa_pss_saltlen` (`-2`: the maximum; `digest`: the digest
/// length, OpenSSL 3.1+'s default), or without PSS (`None`).
fn sign_salt(dir: &Path, image: &Path, key: &Path, hash: &str, salt: Option<&str>) -> String {
    let sig = dir.join("image.sig");
    let dgst = format!("-{}", hash.to_ascii_lowercase().replace('-', ""));
    let saltlen = format!("rsa_pss_saltlen:{}", salt.unwrap_or(""));
    let mut a = vec!["dgst", &dgst, "-sign", key.to_str().unwrap()];
    if salt.is_some() {
        a.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", &saltlen]);
    }
    a.extend(["-out", sig.to_str().unwrap(), image.to_str().unwrap()]);
    openssl(dir, &a);
    let b = std::fs::read(&sig).unwrap();
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The id in a secret href.
fn id_of(href: &str) -> &str {
    href.rsplit('/').next().unwrap()
}

/// `IMAGE.json` as `openstack image show -f json IMAGE` prints it, with `props` (strings) under
/// `properties`.
fn sidecar(img: &Path, props: Value) {
    let size = std::fs::metadata(img).unwrap().len();
    let id = "6d0f0a7e-3c55-4a4b-9a3e-1f2e3d4c5b6a";
    let mut props = props;
    props["os_hidden"] = json!(false);
    props["stores"] = json!("file");
    let v = json!({
        "checksum": null, "container_format": "bare", "created_at": "2026-12-06T09:12:44Z",
        "disk_format": "raw", "file": format!("/v2/images/{id}/file"), "id": id,
        "min_disk": 0, "min_ram": 0, "name": "signed", "owner": "9c4e4e8d0b8f4a2c8d7f5e6a1b2c3d4e",
        "properties": props, "protected": false, "schema": "/v2/schemas/image", "size": size,
        "status": "active", "tags": [], "updated_at": "2026-12-06T09:13:02Z", "virtual_size": null,
        "visibility": "private"
    });
    util::write(&luksfs::keys::sidecar::sidecar_path(img), serde_json::to_string_pretty(&v).unwrap().as_bytes());
}

pub(crate) fn props(sig: &str, hash: &str, key_type: &str, cert: &str) -> Value {
    json!({"img_signature": sig, "img_signature_hash_method": hash, "img_signature_key_type": key_type,
           "img_signature_certificate_uuid": cert})
}

/// `luksfs verify --json IMAGE --key-file KEY EXTRA` with the harness's clouds.yaml (cloud
/// `osk-appcred`) and no inherited `OS_*` variable.
fn verify(osk: &Osk, img: &Image, extra: &[&str]) -> (Out, Value) {
    let mut c = Command::new(util::bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OS_") {
            c.env_remove(&k);
        }
    }
    c.env_remove("RUST_LOG").envs(osk.clouds_env());
    c.args(["verify", "--json", "--os-cloud", "osk-appcred", "--key-file"]).arg(&img.key).arg(&img.path).args(extra);
    let out = util::run_timed(c, Duration::from_secs(120));
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", out.cmdline, String::from_utf8_lossy(&out.stdout)));
    (out, v)
}

/// The report matches `docs/schema/verify.schema.json`.
#[track_caller]
fn assert_schema(out: &Out) {
    let scratch = tempfile::tempdir().unwrap();
    crate::status::validate("verify.schema.json", &out.stdout, scratch.path());
}

/// The report's `signature` object, verified; exit 0.
#[track_caller]
fn assert_verified(out: &Out, v: &Value, key_type: &str, hash: &str, cn: &str) {
    assert_schema(out);
    let s = &v["signature"];
    assert_eq!(out.code(), 0, "{}: {v:#}\n{}", out.cmdline, out.stderr.clone());
    assert_eq!(s["verified"], json!(true), "{s:#}");
    assert_eq!(s["key_type"], json!(key_type), "{s:#}");
    assert_eq!(s["hash_method"], json!(hash), "{s:#}");
    assert!(s["certificate"]["subject"].as_str().unwrap().contains(&format!("CN={cn}")), "{s:#}");
    assert!(s["reason"].is_null(), "{s:#}");
}

/// FAIL, exit 7, the report's `signature.reason` and stderr containing `what`.
#[track_caller]
fn assert_fails(out: &Out, v: &Value, what: &str) {
    assert_schema(out);
    let stderr = out.stderr.clone();
    assert_eq!(out.code(), 7, "{}: {v:#}\n{stderr}", out.cmdline);
    assert_eq!(v["verdict"], json!("FAIL"));
    assert_eq!(v["signature"]["verified"], json!(false), "{v:#}");
    let reason = v["signature"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(what), "reason {reason:?} lacks {what:?}");
    assert!(stderr.contains("image signature: ") && stderr.contains(what), "{stderr}");
}

/// A small LUKS1 image holding a swap area (`mkswap`: a plaintext verify recognises); its
/// ciphertext is what is signed.
fn image(lab: &Lab) -> Image {
    let swap = lab.root().join("swap.plain");
    std::fs::write(&swap, vec![0u8; 256 * KIB]).unwrap();
    let mut c = tool("mkswap");
    c.args(["-q", "-L", "signed"]).arg(&swap);
    sh(c);
    lab.qemu_luks("signed.img", std::fs::read(&swap).unwrap(), b"signature test passphrase", "")
}

/// Every key type Glance knows, each signature made by openssl over the image file, each
/// certificate in Barbican (PEM as the RHOSP guide stores it, or DER as castellan hands it out).
#[test]
fn signature_every_key_type_verifies() {
    let osk = osk!();
    need!("qemu-img", "openssl", "mkswap");
    let lab = Lab::new();
    let img = image(&lab);
    let dir = lab.root();
    let tok = osk.demo_token();
    let cases = [
        ("rsa", "RSA-PSS", "SHA-256", true, false),
        ("rsa", "RSA-PSS", "SHA-512", true, true),
        ("p384", "ECC_SECP384R1", "SHA-384", false, false),
        ("p521", "ECC_SECP521R1", "SHA-512", false, true),
        ("p521", "ECC_SECP521R1", "SHA-224", false, false),
        ("dsa", "DSA", "SHA-256", false, false),
    ];
    for (i, (kind, key_type, hash, pss, as_der)) in cases.into_iter().enumerate() {
        let name = format!("signer-{i}-{kind}");
        let k = key(dir, &name, kind);
        let crt = self_signed(dir, &name, &k);
        let payload = if as_der { der(dir, &crt) } else { std::fs::read(&crt).unwrap() };
        let cert = osk.store_certificate(&tok, &payload);
        sidecar(&img.path, props(&sign(dir, &img.path, &k, hash, pss), hash, key_type, id_of(&cert)));
        let (out, v) = verify(osk, &img, &[]);
        assert_verified(&out, &v, key_type, hash, &name);
        assert_eq!(v["signature"]["ca"], json!("not checked (no --ca)"));
    }
    // RSA-PSS with a digest-length salt (OpenSSL 3.1+'s default for `-sigopt
    // rsa_padding_mode:pss`), which Glance accepts too
    let k = key(dir, "salt-32", "rsa");
    let cert = osk.store_certificate(&tok, &std::fs::read(self_signed(dir, "salt-32", &k)).unwrap());
    let salt32 = sign_salt(dir, &img.path, &k, "SHA-256", Some("digest"));
    // PKCS#1 v1.5 by the same key is not RSA-PSS
    let sig = sign_salt(dir, &img.path, &k, "SHA-256", None);
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&cert)));
    let (out, v) = verify(osk, &img, &[]);
    assert_eq!((out.code(), &v["signature"]["verified"]), (7, &json!(false)), "{v:#}");
    sidecar(&img.path, props(&salt32, "SHA-256", "RSA-PSS", id_of(&cert)));
    let (out, v) = verify(osk, &img, &[]);
    assert_verified(&out, &v, "RSA-PSS", "SHA-256", "salt-32");

    // the text report and the one-line form of `verify DIR` say so too
    let mut c = Command::new(util::bin());
    c.env_remove("RUST_LOG").envs(osk.clouds_env());
    c.args(["verify", "--os-cloud", "osk-appcred", "--key-file"]).arg(&img.key).arg(img.path.parent().unwrap());
    let out = util::run_timed(c, Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code(), 0, "{text}");
    assert!(text.contains("signature verified (RSA-PSS SHA-256, CN=salt-32,O=luksfs tests)"), "{text}");
}

/// A tampered signature, tampered image data, an expired, a not-yet-valid and a wrong
/// certificate, a secret that is not a certificate or does not exist, malformed properties:
/// each a FAIL, exit 7, naming what failed.
#[test]
fn signature_failures_are_fail_7() {
    let osk = osk!();
    need!("qemu-img", "openssl", "mkswap");
    let lab = Lab::new();
    let img = image(&lab);
    let dir = lab.root();
    let tok = osk.demo_token();
    let k = key(dir, "good", "rsa");
    let good = osk.store_certificate(&tok, &std::fs::read(self_signed(dir, "good", &k)).unwrap());
    let sig = sign(dir, &img.path, &k, "SHA-256", true);
    let good = id_of(&good).to_string();

    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", &good));
    let (out, v) = verify(osk, &img, &[]);
    assert_verified(&out, &v, "RSA-PSS", "SHA-256", "good");

    // one bit of the signature flipped
    let mut raw = base64::engine::general_purpose::STANDARD.decode(&sig).unwrap();
    raw[100] ^= 0x01;
    let tampered = base64::engine::general_purpose::STANDARD.encode(&raw);
    sidecar(&img.path, props(&tampered, "SHA-256", "RSA-PSS", &good));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "RSA-PSS signature does not match the image data");
    assert!(v["signature"]["certificate"]["subject"].as_str().unwrap().contains("CN=good"), "{v:#}");

    // the right signature, but verified as another hash method
    sidecar(&img.path, props(&sig, "SHA-384", "RSA-PSS", &good));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "does not match the image data");

    // another key's certificate
    let other = key(dir, "other", "rsa");
    let wrong = osk.store_certificate(&tok, &std::fs::read(self_signed(dir, "other", &other)).unwrap());
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&wrong)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "does not match the image data");

    // a certificate whose key is not of the key type
    let ec = key(dir, "ec", "p384");
    let ec_cert = osk.store_certificate(&tok, &std::fs::read(self_signed(dir, "ec", &ec)).unwrap());
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&ec_cert)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "public key is an EC key on P-384, but img_signature_key_type is RSA-PSS");
    sidecar(
        &img.path,
        props(&sign(dir, &img.path, &ec, "SHA-384", false), "SHA-384", "ECC_SECP521R1", id_of(&ec_cert)),
    );
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "is ECC_SECP521R1");

    // expired, and not valid yet
    let old = osk
        .store_certificate(&tok, &std::fs::read(dated(dir, "old", &k, "20200101000000Z", "20210101000000Z")).unwrap());
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&old)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "CN=old expired (not after 2021-01-01T00:00:00Z)");
    let future = osk.store_certificate(
        &tok,
        &std::fs::read(dated(dir, "future", &k, "20400101000000Z", "20410101000000Z")).unwrap(),
    );
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&future)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "CN=future is not valid yet (not before 2040-01-01T00:00:00Z)");

    // a passphrase secret, a certificate secret holding no certificate, a secret that isn't there
    let pass = osk.store_passphrase(&tok, "not a certificate");
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&pass)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "is a passphrase secret, not a certificate");
    let junk =
        osk.store_certificate(&tok, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", id_of(&junk)));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "is not an X.509 certificate");
    let missing = "11111111-2222-4333-8444-555555555555";
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", missing));
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "no such secret (404)");

    // malformed properties
    for (p, what) in [
        (props("%%%not base64", "SHA-256", "RSA-PSS", &good), "img_signature is not valid base64"),
        (props(&sig, "MD5", "RSA-PSS", &good), "img_signature_hash_method \"MD5\" is not supported"),
        (props(&sig, "SHA-256", "ECC_SECT571K1", &good), "img_signature_key_type \"ECC_SECT571K1\" is not supported"),
        (
            props(&sig, "SHA-256", "RSA-PSS", "signing-cert"),
            "img_signature_certificate_uuid \"signing-cert\" is not a UUID",
        ),
        (json!({"img_signature": sig, "img_signature_hash_method": "SHA-256"}), "img_signature_key_type is missing"),
    ] {
        sidecar(&img.path, p);
        let (out, v) = verify(osk, &img, &[]);
        assert_fails(&out, &v, what);
    }

    // the image data changed after signing (the last byte of the ciphertext; LUKS still opens)
    sidecar(&img.path, props(&sig, "SHA-256", "RSA-PSS", &good));
    let mut data = std::fs::read(&img.path).unwrap();
    *data.last_mut().unwrap() ^= 0x80;
    std::fs::write(&img.path, &data).unwrap();
    let (out, v) = verify(osk, &img, &[]);
    assert_fails(&out, &v, "does not match the image data");
}

/// `--ca`: a certificate issued by a CA in the bundle verifies; one whose issuer is not in it,
/// or a bundle of another CA, is a FAIL; a bundle holding the signing certificate itself trusts it.
#[test]
fn signature_chain_to_ca() {
    let osk = osk!();
    need!("qemu-img", "openssl", "mkswap");
    let lab = Lab::new();
    let img = image(&lab);
    let dir = lab.root();
    let tok = osk.demo_token();
    // an RSA CA issuing a P-384 signer; a P-256 CA issuing an RSA signer
    let (rsa_ca_key, ec_ca_key) = (key(dir, "rsa-ca", "rsa"), key(dir, "ec-ca", "p256"));
    let (rsa_ca, ec_ca) = (ca_cert(dir, "rsa-ca", &rsa_ca_key), ca_cert(dir, "ec-ca", &ec_ca_key));
    let bundle = dir.join("bundle.pem");
    let mut both = std::fs::read(&rsa_ca).unwrap();
    both.extend(std::fs::read(&ec_ca).unwrap());
    std::fs::write(&bundle, both).unwrap();

    let signer = key(dir, "ec-signer", "p384");
    let crt = issued(dir, "ec-signer", &signer, &rsa_ca, &rsa_ca_key);
    let cert = osk.store_certificate(&tok, &std::fs::read(&crt).unwrap());
    sidecar(
        &img.path,
        props(&sign(dir, &img.path, &signer, "SHA-384", false), "SHA-384", "ECC_SECP384R1", id_of(&cert)),
    );
    for ca in [&bundle, &rsa_ca] {
        let (out, v) = verify(osk, &img, &["--ca", ca.to_str().unwrap()]);
        assert_verified(&out, &v, "ECC_SECP384R1", "SHA-384", "ec-signer");
        assert_eq!(v["signature"]["ca"], json!("chains to CN=rsa-ca,O=luksfs tests"), "{v:#}");
    }
    let (out, v) = verify(osk, &img, &["--ca", ec_ca.to_str().unwrap()]);
    assert_fails(&out, &v, "does not chain to a --ca certificate: its issuer CN=rsa-ca,O=luksfs tests is not among");
    // the signing certificate itself as the anchor
    let (out, v) = verify(osk, &img, &["--ca", crt.to_str().unwrap()]);
    assert_verified(&out, &v, "ECC_SECP384R1", "SHA-384", "ec-signer");

    let signer = key(dir, "rsa-signer", "rsa");
    let crt = issued(dir, "rsa-signer", &signer, &ec_ca, &ec_ca_key);
    let cert = osk.store_certificate(&tok, &der(dir, &crt));
    sidecar(&img.path, props(&sign(dir, &img.path, &signer, "SHA-256", true), "SHA-256", "RSA-PSS", id_of(&cert)));
    let (out, v) = verify(osk, &img, &["--ca", bundle.to_str().unwrap()]);
    assert_verified(&out, &v, "RSA-PSS", "SHA-256", "rsa-signer");
    // a CA of the same name but another key: its signature does not verify
    let impostor_key = key(dir, "impostor", "p256");
    let impostor = dir.join("impostor.crt");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            impostor_key.to_str().unwrap(),
            "-days",
            "30",
            "-subj",
            "/O=luksfs tests/CN=ec-ca",
            "-out",
            impostor.to_str().unwrap(),
        ],
    );
    let (out, v) = verify(osk, &img, &["--ca", impostor.to_str().unwrap()]);
    assert_fails(&out, &v, "CN=ec-ca,O=luksfs tests did not sign it");

    // --ca that holds no certificate: a usage error before anything is read
    let (out, _) = {
        let mut c = Command::new(util::bin());
        c.envs(osk.clouds_env()).args(["verify", "--json", "--ca"]).arg(&img.key).arg(&img.path);
        let out = util::run_timed(c, Duration::from_secs(60));
        (out, ())
    };
    assert_eq!(out.code(), 2, "{}", out.stderr.clone());
    assert!(out.stderr.clone().contains("--ca: no PEM certificate"), "{}", out.cmdline);
}

/// The library check alone (no Barbican, so it runs wherever openssl does): every key type, the
/// validity period at a given time, `--ca` anchors, keys of the wrong kind, PEM and DER.
#[test]
fn signature_library_checks() {
    use luksfs::signature::{Properties, SignatureError, cert, verify};
    use std::time::{Duration, SystemTime};
    need!("openssl");
    let lab = Lab::new();
    let dir = lab.root();
    let data = util::random("signed data", 300 * KIB);
    let file = dir.join("data");
    std::fs::write(&file, &data).unwrap();
    let request = |sig: String, hash: &str, kt: &str| {
        let p = Properties {
            signature: Some(sig),
            hash_method: Some(hash.into()),
            key_type: Some(kt.into()),
            certificate_uuid: Some("0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f".into()),
        };
        p.parse().unwrap()
    };
    for (kind, kt, hash, pss) in [
        ("rsa", "RSA-PSS", "SHA-384", true),
        ("p384", "ECC_SECP384R1", "SHA-256", false),
        ("p521", "ECC_SECP521R1", "SHA-384", false),
        ("dsa", "DSA", "SHA-224", false),
    ] {
        let name = format!("lib-{kind}");
        let k = key(dir, &name, kind);
        let crt = self_signed(dir, &name, &k);
        let (pem, der) = (std::fs::read(&crt).unwrap(), der(dir, &crt));
        let now = SystemTime::now();
        let req = request(sign(dir, &file, &k, hash, pss), hash, kt);
        let digest = req.hash.digest(&data);
        for payload in [&pem, &der] {
            let c = verify(&req, &digest, payload, None, now);
            assert_eq!(c.result, Ok(()), "{kind}");
            assert!(c.certificate.as_ref().unwrap().subject.contains(&format!("CN={name}")), "{c:?}");
        }
        // the same signature over other data, and 14 days are over in 15
        let other = req.hash.digest(b"other data");
        let c = verify(&req, &other, &pem, None, now);
        assert!(matches!(c.result, Err(SignatureError::Mismatch { .. })), "{kind}: {c:?}");
        let c = verify(&req, &digest, &pem, None, now + Duration::from_secs(15 * 86400));
        assert!(matches!(c.result, Err(SignatureError::Expired { .. })), "{kind}: {c:?}");
        let c = verify(&req, &digest, &pem, None, now - Duration::from_secs(86400));
        assert!(matches!(c.result, Err(SignatureError::NotYetValid { .. })), "{kind}: {c:?}");
        // anchored to itself
        let anchors = cert::parse_bundle(&pem).unwrap();
        let c = verify(&req, &digest, &der, Some(&anchors), now);
        assert_eq!((c.result, c.anchor.is_some()), (Ok(()), true), "{kind}");
    }

    // a DSA CA issuing an RSA signer; a P-521 CA issuing a DSA signer
    let dsa_ca_key = key(dir, "dsa-ca", "dsa");
    let dsa_ca = ca_cert(dir, "dsa-ca", &dsa_ca_key);
    let p521_ca_key = key(dir, "p521-ca", "p521");
    let p521_ca = ca_cert(dir, "p521-ca", &p521_ca_key);
    let mut bundle = std::fs::read(&dsa_ca).unwrap();
    bundle.extend(std::fs::read(&p521_ca).unwrap());
    let anchors = cert::parse_bundle(&bundle).unwrap();
    assert_eq!(anchors.len(), 2);
    for (name, kind, kt, pss, ca, ca_key) in [
        ("rsa-by-dsa", "rsa", "RSA-PSS", true, &dsa_ca, &dsa_ca_key),
        ("dsa-by-p521", "dsa", "DSA", false, &p521_ca, &p521_ca_key),
    ] {
        let k = key(dir, name, kind);
        let crt = std::fs::read(issued(dir, name, &k, ca, ca_key)).unwrap();
        let now = SystemTime::now();
        let req = request(sign(dir, &file, &k, "SHA-256", pss), "SHA-256", kt);
        let digest = req.hash.digest(&data);
        let c = verify(&req, &digest, &crt, Some(&anchors), now);
        assert_eq!(c.result, Ok(()), "{name}");
        assert!(c.anchor.unwrap().contains("-ca"), "{name}");
        // the issuer is not trusted
        let only_other =
            cert::parse_bundle(&std::fs::read(if ca == &dsa_ca { &p521_ca } else { &dsa_ca }).unwrap()).unwrap();
        let c = verify(&req, &digest, &crt, Some(&only_other), now);
        assert!(matches!(c.result, Err(SignatureError::Untrusted { .. })), "{name}: {c:?}");
        // the issuing CA has expired by then (30 days), the signer (7 days) even earlier
        let c = verify(&req, &digest, &crt, Some(&anchors), now + Duration::from_secs(8 * 86400));
        assert!(matches!(c.result, Err(SignatureError::Expired { .. })), "{name}: {c:?}");
        // a key type that does not fit the certificate
        let wrong = request(sign(dir, &file, &k, "SHA-256", pss), "SHA-256", "ECC_SECP384R1");
        let c = verify(&wrong, &digest, &crt, None, now);
        assert!(matches!(c.result, Err(SignatureError::WrongKey { .. })), "{name}: {c:?}");
    }
    // an RSA CA that signs with RSASSA-PSS (RFC 4055 parameters: hash, MGF1, salt length), as
    // `openssl x509 -sigopt rsa_padding_mode:pss` does: the digest-length salt and the maximum
    let pss_ca_key = key(dir, "pss-ca", "rsa");
    let pss_ca = ca_cert(dir, "pss-ca", &pss_ca_key);
    let anchors = cert::parse_bundle(&std::fs::read(&pss_ca).unwrap()).unwrap();
    let k = key(dir, "p384-by-pss", "p384");
    let req = request(sign(dir, &file, &k, "SHA-256", false), "SHA-256", "ECC_SECP384R1");
    let digest = req.hash.digest(&data);
    for (name, how) in [
        ("pss-sha384-digest", ["-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]),
        ("pss-sha256-max", ["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:max"]),
    ] {
        let crt_path = issued_with(dir, name, &k, &pss_ca, &pss_ca_key, &how);
        let text = String::from_utf8(openssl(dir, &["x509", "-in", crt_path.to_str().unwrap(), "-noout", "-text"]));
        assert!(text.unwrap().contains("rsassaPss"), "{name}: openssl did not sign with RSASSA-PSS");
        let crt = std::fs::read(&crt_path).unwrap();
        let c = verify(&req, &digest, &crt, Some(&anchors), SystemTime::now());
        assert_eq!(c.result, Ok(()), "{name}");
        // the same certificate with a byte of its signature changed
        let mut bad = der(dir, &crt_path);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let c = verify(&req, &digest, &bad, Some(&anchors), SystemTime::now());
        assert!(matches!(c.result, Err(SignatureError::Untrusted { .. })), "{name}: {c:?}");
    }
}

/// Through a real Glance (`glance://ID`, see `crate::glance`): an image signed as the RHOSP guide
/// says is uploaded (Glance itself verifies the signature at upload, with cursive and the
/// certificate in Barbican: a bad one is refused), then `verify glance://ID` checks it again;
/// its `img_signature` PATCHed to a tampered value afterwards (Glance allows that on an active
/// image) is a FAIL, exit 7.
#[test]
fn signature_of_a_glance_image() {
    use crate::glance::{Api, glance};
    let Some(g) = glance() else { return };
    let osk = harness().unwrap();
    need!("qemu-img", "openssl", "mkswap");
    let lab = Lab::new();
    let dir = lab.root();
    let api = Api { url: &g.url, token: osk.demo_token() };
    let img = image(&lab);
    let pass = osk.store_passphrase(&api.token, "signature test passphrase");
    let k = key(dir, "glance-signer", "rsa");
    let cert = osk.store_certificate(&api.token, &std::fs::read(self_signed(dir, "glance-signer", &k)).unwrap());
    let sig = sign(dir, &img.path, &k, "SHA-256", true);
    // not named like crate::glance's images, whose test deletes those at its start
    let base = json!({"name": format!("luksfs-sig {}", id_of(&cert)), "os_encrypt_format": "LUKSv1",
        "os_encrypt_key_id": id_of(&pass), "os_decrypt_size": img.plain.len().to_string()});
    let with = |sig: &str| {
        let mut p = base.clone();
        p.as_object_mut().unwrap().extend(props(sig, "SHA-256", "RSA-PSS", id_of(&cert)).as_object().unwrap().clone());
        p
    };
    // Glance refuses an upload whose signature does not verify
    let mut raw = base64::engine::general_purpose::STANDARD.decode(&sig).unwrap();
    raw[7] ^= 0x40;
    let bad = base64::engine::general_purpose::STANDARD.encode(&raw);
    let refused = api.create("refused", with(&bad));
    let (status, v) =
        api.call("PUT", &format!("/v2/images/{refused}/file"), None, Some(&std::fs::read(&img.path).unwrap()));
    assert!(status >= 400, "Glance accepted a bad signature: {status} {v}");
    api.delete(&refused);

    let id = api.upload("signed", with(&sig), &img.path);
    let env: Vec<(String, String)> = osk.clouds_env().into_iter().collect();
    let verify_glance = || {
        let mut c = Command::new(util::bin());
        c.env_remove("RUST_LOG").envs(env.iter().map(|(k, v)| (k, v)));
        c.args(["verify", "--json", "--os-cloud", "osk-demo", &format!("glance://{id}")]);
        let out = util::run_timed(c, Duration::from_secs(180));
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", out.cmdline, out.stderr));
        (out, v)
    };
    let (out, v) = verify_glance();
    assert_verified(&out, &v, "RSA-PSS", "SHA-256", "glance-signer");
    assert_eq!(v["openstack"]["glance"], json!(true), "{v:#}");

    // a tampered img_signature set afterwards
    let resp = crate::barbican::agent()
        .patch(format!("{}/v2/images/{id}", g.url))
        .header("X-Auth-Token", &api.token)
        .header("Content-Type", "application/openstack-images-v2.1-json-patch")
        .send_json(json!([{"op": "replace", "path": "/img_signature", "value": bad}]))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "PATCH img_signature");
    let (out, v) = verify_glance();
    assert_fails(&out, &v, "RSA-PSS signature does not match the image data");
    api.delete(&id);
}
