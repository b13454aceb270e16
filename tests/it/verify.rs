//! `luksfs verify` and the JSON outputs of `verify` and `inspect`.
//!
//! Plaintexts are real: filesystems from `mkfs.ext4 -d`, `mkfs.vfat`, `mkswap`, partition tables
//! from `sgdisk` and `sfdisk`, disk images from `qemu-img create` (a qcow2 or VMDK *inside* a
//! LUKS image must warn). They are encrypted by qemu-img or cryptsetup, and verify's findings are
//! compared with what the test built. JSON outputs are snapshot-tested: every field is compared,
//! except the ones that change from run to run (salted ciphertext hashes, UUIDs of LUKS headers,
//! benchmarked iteration counts, timings, temporary paths), which are replaced by `"<redacted>"`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::Digest;

use crate::util::fixture::{Op, image_opts, luks1_payload_offset, qemu_img, secret, truncate};
use crate::util::{Image, KIB, Lab, Luksfs, MIB, Out, mark, random, sh, sha256_file, sha256_hex, tool, write};

const PASS: &[u8] = b"correct horse battery staple";
const R: &str = "<redacted>";

// ------------------------------------------------------------------ helpers

fn verify(img: &Image) -> Luksfs {
    Luksfs::new("verify").arg(&img.path).key(&img.key)
}

/// `verify --json` (plus `extra`): the process and its one JSON document.
#[track_caller]
fn verify_json(img: &Image, extra: &[&str]) -> (Out, Value) {
    let out = verify(img).arg("--json").args(extra).run();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", out.cmdline, String::from_utf8_lossy(&out.stdout)));
    (out, v)
}

/// Replace the value of every key named in `keys`, at any depth, by `"<redacted>"`.
fn redact(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if keys.contains(&k.as_str()) {
                    *x = json!(R);
                } else {
                    redact(x, keys);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact(x, keys)),
        _ => {}
    }
}

/// What changes from one run of `verify` to the next.
const VERIFY_VOLATILE: &[&str] = &["file", "ciphertext", "elapsed_seconds", "sidecar"];

/// Snapshot comparison of a redacted verify report.
#[track_caller]
fn assert_report(mut got: Value, want: Value) {
    redact(&mut got, VERIFY_VOLATILE);
    assert_json(&got, &want);
}

/// Compare with a snapshot; a top-level `"schema_version"` must be 1 (snapshots leave it out;
/// tests/it/schema.rs checks every document has it).
#[track_caller]
fn assert_json(got: &Value, want: &Value) {
    let mut got = got.clone();
    if want.get("schema_version").is_none()
        && let Some(v) = got.as_object_mut().and_then(|m| m.shift_remove("schema_version"))
    {
        assert_eq!(v, json!(1), "schema_version");
    }
    let got = &got;
    if got != want {
        panic!(
            "JSON differs from the snapshot.\n--- got:\n{}\n--- want:\n{}",
            serde_json::to_string_pretty(got).unwrap(),
            serde_json::to_string_pretty(want).unwrap()
        );
    }
}

/// Run a tool with `input` on its standard input; it must succeed.
#[track_caller]
fn sh_stdin(mut cmd: Command, input: &str) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// An empty file of `len` bytes in `work/`.
fn blank(lab: &Lab, name: &str, len: usize) -> PathBuf {
    let p = lab.work.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(len as u64).unwrap();
    p
}

/// An ext4 filesystem of `len` bytes made by `mkfs.ext4 -d` from a few files.
fn ext4(lab: &Lab, name: &str, len: usize, label: &str, uuid: &str) -> Vec<u8> {
    let dir = lab.work.join(format!("{name}.d"));
    write(&dir.join("etc/hostname"), b"backup-test\n");
    write(&dir.join("data/blob.bin"), &random(name, 200 * KIB));
    write(&dir.join("data/notes.txt"), &mark(name, 20 * KIB));
    let p = blank(lab, name, len);
    let mut c = tool("mkfs.ext4");
    c.args(["-q", "-F", "-b", "4096", "-L", label, "-U", uuid, "-E", "root_owner=0:0", "-d"]).arg(&dir).arg(&p);
    sh(c);
    std::fs::read(&p).unwrap()
}

/// A FAT filesystem (`mkfs.vfat -F BITS`) of `len` bytes.
fn vfat(lab: &Lab, name: &str, len: usize, bits: &str, label: &str, id: &str) -> Vec<u8> {
    let p = blank(lab, name, len);
    let mut c = tool("mkfs.vfat");
    c.args(["-F", bits, "-s", "1", "-n", label, "-i", id]).arg(&p);
    sh(c);
    std::fs::read(&p).unwrap()
}

/// A swap area (`mkswap`) of `len` bytes.
fn swap(lab: &Lab, name: &str, len: usize, label: &str, uuid: &str) -> Vec<u8> {
    let p = blank(lab, name, len);
    let mut c = tool("mkswap");
    c.args(["-q", "-L", label, "-U", uuid]).arg(&p);
    sh(c);
    std::fs::read(&p).unwrap()
}

fn splice(disk: &mut [u8], at: usize, part: &[u8]) {
    disk[at..at + part.len()].copy_from_slice(part);
}

/// The ext4 `contents` entry verify reports for a filesystem made by [`ext4`].
fn ext4_contents(label: &str, uuid: &str, len: u64) -> Value {
    json!({"kind": "volume", "type": "ext4", "label": label, "uuid": uuid, "size": len,
           "description": format!("ext4 filesystem \"{label}\" ({:.1} MiB)", len as f64 / MIB as f64)})
}

// ------------------------------------------------------------------ plaintexts that pass

/// A bare ext4 filesystem (`mkfs.ext4 -d`) in a qemu-img LUKS1 image: OK, and every stable field
/// of the JSON report as expected.
#[test]
fn verify_ext4_luks1_json_snapshot() {
    need!("qemu-img", "mkfs.ext4");
    let lab = Lab::new();
    let uuid = "6a1f3c7e-2b4d-4e8f-9a0b-1c2d3e4f5a6b";
    let plain = ext4(&lab, "root.ext4", 8 * MIB, "rootfs", uuid);
    let img = lab.qemu_luks("vol.luks", plain, PASS, "");
    let (out, got) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert_eq!(got["sha256"]["ciphertext"], sha256_file(&img.path));
    let size = std::fs::metadata(&img.path).unwrap().len();
    assert_report(
        got,
        json!({
            "file": R, "file_size": size, "format": "luks1", "cipher": "aes-xts-plain64", "key_bits": 512,
            "sector_size": 512, "payload_offset": luks1_payload_offset(&img.path), "decrypted_size": 8 * MIB,
            "key_slot": 0,
            "sha256": {"ciphertext": R, "plaintext": sha256_hex(&img.plain)},
            "plaintext": ext4_contents("rootfs", uuid, 8 * MIB as u64),
            "volumes": [],
            "warnings": [], "mismatches": [], "elapsed_seconds": R, "verdict": "OK", "exit_code": 0
        }),
    );
    // the text form says the same
    let text = String::from_utf8(verify(&img).run().ok().to_vec()).unwrap();
    assert!(text.contains("verdict: OK"), "{text}");
    assert!(text.contains(&format!("plaintext: {}", sha256_hex(&img.plain))), "{text}");
    assert!(text.contains("description: ext4 filesystem \"rootfs\""), "{text}");
}

/// A bare ext4 filesystem in a cryptsetup LUKS2 image with 4 KiB sectors (key in slot 2).
#[test]
fn verify_ext4_luks2_4k_sectors() {
    need!("cryptsetup", "mkfs.ext4");
    let lab = Lab::new();
    let uuid = "2f0c1d9e-8a7b-4c6d-9e5f-4a3b2c1d0e0f";
    let plain = ext4(&lab, "l2.ext4", 6 * MIB, "luks2root", uuid);
    let img =
        lab.cs_luks2("l2.img", plain, PASS, &["-c", "aes-xts-plain64", "--sector-size", "4096", "--key-slot", "2"]);
    let (out, got) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let size = std::fs::metadata(&img.path).unwrap().len();
    assert_report(
        got,
        json!({
            "file": R, "file_size": size, "format": "luks2", "cipher": "aes-xts-plain64", "key_bits": 512,
            "sector_size": 4096, "payload_offset": 2 * MIB, "decrypted_size": 6 * MIB, "key_slot": 2,
            "sha256": {"ciphertext": R, "plaintext": sha256_hex(&img.plain)},
            "plaintext": ext4_contents("luks2root", uuid, 6 * MIB as u64),
            "volumes": [],
            "warnings": [], "mismatches": [], "elapsed_seconds": R, "verdict": "OK", "exit_code": 0
        }),
    );
}

/// `luksfs cat IMG | sha256sum` prints verify's plaintext hash (LUKS1, LUKS2, qcow2).
#[test]
fn verify_plaintext_hash_equals_cat_sha256sum() {
    need!("qemu-img", "qemu-io", "cryptsetup", "sha256sum");
    let lab = Lab::new();
    let a = lab.qemu_luks("a.luks", random("a", 3 * MIB + 512), PASS, "");
    let b = lab.cs_luks2("b.img", random("b", 2 * MIB), PASS, &["-c", "aes-xts-plain64", "--sector-size", "4096"]);
    let c = lab.qcow2("c.qcow2", random("c", 2 * MIB), PASS, "cluster_size=4096", &[Op::Discard(0, 65536)]);
    for img in [&a, &b, &c] {
        let (out, v) = verify_json(img, &[]);
        assert_eq!(out.code(), 6, "{}: random data is unrecognised (WARN): {}", img.name(), out.stderr);
        let mut c = tool("sh");
        c.arg("-c").arg(format!(
            "'{}' cat '{}' --key-file '{}' | sha256sum",
            crate::util::bin(),
            img.path.display(),
            img.key.display()
        ));
        let piped = String::from_utf8(sh(c)).unwrap();
        let piped = piped.split_whitespace().next().unwrap();
        assert_eq!(v["sha256"]["plaintext"], piped, "{}", img.name());
        assert_eq!(piped, sha256_hex(&img.plain));
    }
}

/// A GPT disk (sgdisk) holding ext4 and swap partitions, in a LUKS1 image (a partition table
/// makes `cryptsetup reencrypt --encrypt` refuse the device, so qemu-img encrypts it): the table,
/// the partitions, and what is in each.
#[test]
fn verify_gpt_sgdisk_json_snapshot() {
    need!("qemu-img", "sgdisk", "mkfs.ext4", "mkswap");
    let lab = Lab::new();
    let disk = blank(&lab, "disk.gpt", 16 * MIB);
    let mut c = tool("sgdisk");
    c.args(["-U", "11111111-2222-3333-4444-555555555555"])
        .args(["-n", "1:2048:+4M", "-t", "1:8300", "-c", "1:root", "-u", "1:aaaaaaaa-0000-4000-8000-000000000001"])
        .args(["-n", "2:10240:+2M", "-t", "2:8200", "-c", "2:swap", "-u", "2:aaaaaaaa-0000-4000-8000-000000000002"])
        .arg(&disk);
    sh(c);
    let mut plain = std::fs::read(&disk).unwrap();
    let uuid = "0e7ab3c1-96f2-4a55-8d33-5b5f1f0e2a10";
    splice(&mut plain, MIB, &ext4(&lab, "p1.ext4", 4 * MIB, "root", uuid));
    splice(&mut plain, 5 * MIB, &swap(&lab, "p2.swap", 2 * MIB, "swp", "5a3c2b1d-0f9e-4d8c-b7a6-123456789abc"));
    let img = lab.qemu_luks("gpt.img", plain, PASS, "cipher-alg=serpent-256");
    let (out, got) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let size = std::fs::metadata(&img.path).unwrap().len();
    assert_report(
        got,
        json!({
            "file": R, "file_size": size, "format": "luks1", "cipher": "serpent-xts-plain64", "key_bits": 512,
            "sector_size": 512, "payload_offset": luks1_payload_offset(&img.path), "decrypted_size": 16 * MIB,
            "key_slot": 0,
            "sha256": {"ciphertext": R, "plaintext": sha256_hex(&img.plain)},
            "plaintext": {
                "kind": "partition-table", "type": "gpt", "description": "GPT partition table, 2 partitions",
                "disk_id": "11111111-2222-3333-4444-555555555555", "sector_size": 512,
                "partitions": [
                    {"number": 1, "start": MIB, "size": 4 * MIB, "type": "0fc63daf-8483-4772-8e79-3d69d8477de4",
                     "type_name": "Linux filesystem", "name": "root", "bootable": false,
                     "contents": ext4_contents("root", uuid, 4 * MIB as u64)},
                    {"number": 2, "start": 5 * MIB, "size": 2 * MIB, "type": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
                     "type_name": "Linux swap", "name": "swap", "bootable": false,
                     "contents": {"kind": "volume", "type": "swap", "label": "swp",
                                  "uuid": "5a3c2b1d-0f9e-4d8c-b7a6-123456789abc", "size": 2 * MIB,
                                  "description": "swap swap area \"swp\" (2.0 MiB)"}}
                ],
                "notes": [], "problems": []
            },
            // every volume of the tree, each leaf hashed: the partitions' bytes as spliced in
            "volumes": [
                {"name": "p1-root", "what": "GPT partition 1 \"root\" (Linux filesystem)", "size": 4 * MIB,
                 "offset": MIB, "state": "readable", "holds": "ext4",
                 "description": "ext4 filesystem \"root\" (4.0 MiB)",
                 "sha256": sha256_hex(&img.plain[MIB..5 * MIB])},
                {"name": "p2-swap", "what": "GPT partition 2 \"swap\" (Linux swap)", "size": 2 * MIB,
                 "offset": 5 * MIB, "state": "readable", "holds": "swap",
                 "description": "swap swap area \"swp\" (2.0 MiB)",
                 "sha256": sha256_hex(&img.plain[5 * MIB..7 * MIB])}
            ],
            "warnings": [], "mismatches": [], "elapsed_seconds": R, "verdict": "OK", "exit_code": 0
        }),
    );
}

/// An MBR disk (sfdisk) with a FAT16 partition, in a qcow2+LUKS image: the table, the FAT
/// inside, and qcow2 allocation counts that agree with `qemu-img map`.
#[test]
fn verify_mbr_sfdisk_vfat_qcow2() {
    need!("qemu-img", "qemu-io", "sfdisk", "mkfs.vfat");
    let lab = Lab::new();
    let disk = blank(&lab, "disk.mbr", 12 * MIB);
    let mut c = tool("sfdisk");
    c.args(["-q", "--no-reread", "--no-tell-kernel"]).arg(&disk);
    sh_stdin(
        c,
        "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=8192, type=e, bootable\nstart=10240, size=4096, type=83\n",
    );
    let mut plain = std::fs::read(&disk).unwrap();
    splice(&mut plain, MIB, &vfat(&lab, "p1.fat", 4 * MIB, "16", "BACKUP", "1234ABCD"));
    // v3 zero flag at 6 MiB, a discard at 8 MiB; the rest of the disk is zeros (unallocated)
    let ops = [Op::Zero(6 * MIB as u64, 256 * KIB as u64), Op::Discard(MIB as u64 + 2 * MIB as u64, 64 * KIB as u64)];
    let img = lab.qcow2("mbr.qcow2", plain, PASS, "cluster_size=65536", &ops);
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["payload_offset"], Value::Null);
    assert_eq!(v["sha256"]["plaintext"], sha256_hex(&img.plain));
    let mut p = v["plaintext"].clone();
    redact(&mut p, &[]);
    assert_json(
        &p,
        &json!({
            "kind": "partition-table", "type": "mbr", "description": "MBR partition table, 2 partitions",
            "disk_id": "0x1234abcd", "sector_size": 512,
            "partitions": [
                {"number": 1, "start": MIB, "size": 4 * MIB, "type": "0x0e", "type_name": "W95 FAT16 (LBA)", "name": null,
                 "bootable": true,
                 "contents": {"kind": "volume", "type": "fat16", "label": "BACKUP", "uuid": "1234-ABCD",
                              "size": 4 * MIB, "description": "fat16 filesystem \"BACKUP\" (4.0 MiB)"}},
                {"number": 2, "start": 5 * MIB, "size": 2 * MIB, "type": "0x83", "type_name": "Linux", "name": null,
                 "bootable": false,
                 "contents": {"kind": "unrecognised", "type": "unrecognised", "leading_zeros": 0x11000,
                              "first_bytes": "", "description": "unrecognised (the first 69632 bytes are zeros)"}}
            ],
            "notes": [], "problems": []
        }),
    );
    // allocation: what qemu-img map says
    let (alloc, zero, unalloc) = qemu_map(&img);
    let q = &v["qcow2"];
    assert_eq!(q["cluster_size"], 65536);
    assert_eq!(
        (q["allocated"].as_u64(), q["zero"].as_u64(), q["unallocated"].as_u64()),
        (Some(alloc), Some(zero), Some(unalloc))
    );
    assert!(zero > 0 && unalloc > 0 && alloc > 0, "{q}");
    assert_eq!(alloc + zero + unalloc, 12 * MIB as u64);
}

/// Bytes (allocated, zero flag, unallocated) by `qemu-img map --output=json`.
fn qemu_map(img: &Image) -> (u64, u64, u64) {
    let mut c = qemu_img();
    c.args(["map", "--output=json", "--object"])
        .arg(secret(&img.key))
        .arg("--image-opts")
        .arg(image_opts(&img.path, "qcow2"));
    let v: Value = serde_json::from_slice(&sh(c)).unwrap();
    let (mut a, mut z, mut u) = (0, 0, 0);
    for e in v.as_array().unwrap() {
        let len = e["length"].as_u64().unwrap();
        match (e["data"].as_bool().unwrap(), e["present"].as_bool().unwrap_or(true)) {
            (true, _) => a += len,
            (false, true) => z += len,
            (false, false) => u += len,
        }
    }
    (a, z, u)
}

/// A bare FAT12 filesystem (no partition table) from `mkfs.vfat`.
#[test]
fn verify_bare_vfat() {
    need!("qemu-img", "mkfs.vfat");
    let lab = Lab::new();
    let plain = vfat(&lab, "whole.fat", 2 * MIB, "12", "WHOLE", "0BADCAFE");
    let img = lab.qemu_luks("fat.luks", plain, PASS, "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv");
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(v["cipher"], "aes-cbc-essiv:sha256");
    assert_json(
        &v["plaintext"],
        &json!({"kind": "volume", "type": "fat12", "label": "WHOLE", "uuid": "0BAD-CAFE", "size": 2 * MIB,
                "description": "fat12 filesystem \"WHOLE\" (2.0 MiB)"}),
    );
}

// ------------------------------------------------------------------ warnings

/// A qcow2 image (with a backing-file reference) as the plaintext of a LUKS image: WARN, exit 6,
/// and the warning says plainly what the danger is. Likewise a VMDK (sparse, and descriptor).
#[test]
fn verify_disk_image_inside_luks_warns() {
    need!("qemu-img");
    let lab = Lab::new();
    let inner = lab.work.join("inner.qcow2");
    let mut c = tool("qemu-img");
    c.args(["create", "-q", "-f", "qcow2", "-u", "-b", "/etc/hostname", "-F", "raw"]).arg(&inner).arg("64M");
    sh(c);
    let mut plain = std::fs::read(&inner).unwrap();
    plain.resize(plain.len().div_ceil(4096) * 4096, 0);
    let img = lab.qemu_luks("nested.luks", plain, PASS, "");
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 6, "{}", out.stderr);
    assert_eq!(v["verdict"], "WARN");
    assert_json(
        &v["plaintext"],
        &json!({"kind": "container", "type": "qcow2", "description": "qcow2 disk image",
                "details": ["version 3", "virtual size 67108864 bytes", "backing file /etc/hostname"]}),
    );
    let w = v["warnings"][0].as_str().unwrap();
    assert!(w.contains("a disk image format hidden inside LUKS"), "{w}");
    assert!(w.contains("qemu must not be pointed at this with format probing"), "{w}");
    assert!(w.contains("backing file /etc/hostname"), "{w}");
    // the text report says it too
    let text = String::from_utf8_lossy(&verify(&img).run().stdout).into_owned();
    assert!(text.contains("qemu must not be pointed at this with format probing") && text.contains("verdict: WARN"));

    for (sub, kind) in [("monolithicSparse", "vmdk"), ("monolithicFlat", "vmdk-descriptor")] {
        let f = lab.work.join(format!("{sub}.vmdk"));
        let mut c = tool("qemu-img");
        c.args(["create", "-q", "-f", "vmdk", "-o", &format!("subformat={sub}")]).arg(&f).arg("1M");
        sh(c);
        let mut plain = std::fs::read(&f).unwrap();
        plain.truncate(64 * KIB);
        plain.resize(64 * KIB, 0);
        let img = lab.qemu_luks(&format!("{sub}.luks"), plain, PASS, "");
        let (out, v) = verify_json(&img, &[]);
        assert_eq!((out.code(), v["plaintext"]["type"].as_str()), (6, Some(kind)), "{sub}: {v}");
        if kind == "vmdk-descriptor" {
            let d = v["plaintext"]["details"][0].as_str().unwrap();
            assert!(d.starts_with("extent RW 2048 FLAT \"monolithicFlat-flat.vmdk\""), "{d}");
        }
    }
}

/// An all-zero payload warns (raw LUKS1, and a qcow2 with nothing allocated).
#[test]
fn verify_all_zero_payload_warns() {
    need!("qemu-img", "qemu-io");
    let lab = Lab::new();
    let img = lab.qemu_luks("zero.luks", vec![0; 2 * MIB], PASS, "");
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 6);
    assert_eq!(v["plaintext"]["kind"], "zeros");
    assert_eq!(v["warnings"], json!(["the plaintext is all zeros: the volume holds no data"]));
    assert_eq!(v["sha256"]["plaintext"], sha256_hex(&img.plain));

    let q = lab.qcow2_create("empty.qcow2", 4 * MIB as u64, PASS, "", &[]);
    let (out, v) = verify_json(&q, &[]);
    assert_eq!(out.code(), 6);
    assert_eq!(v["plaintext"]["kind"], "zeros");
    assert_eq!(v["qcow2"], json!({"cluster_size": 65536, "allocated": 0, "zero": 0, "unallocated": 4 * MIB}));
}

/// Random data: nothing recognised, WARN; and a raw LUKS file cut in the middle of a sector.
#[test]
fn verify_unrecognised_and_partial_sector_warn() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("rnd.luks", random("rnd", MIB), PASS, "");
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 6);
    assert_eq!(v["plaintext"]["kind"], "unrecognised");
    assert_eq!(v["plaintext"]["first_bytes"], hex::encode(&img.plain[..16]));
    let len = std::fs::metadata(&img.path).unwrap().len();
    truncate(&img.path, len - 100);
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 6);
    assert_eq!(v["decrypted_size"], MIB - 512);
    let w = v["warnings"].as_array().unwrap();
    assert!(w.iter().any(|w| w.as_str().unwrap().contains("412 bytes into a 512-byte sector")), "{w:?}");
}

// ------------------------------------------------------------------ failures

/// Truncated images FAIL with exit 4: a qcow2 missing its last data clusters, a LUKS1 image cut
/// inside its key material.
#[test]
fn verify_truncated_is_fail_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = lab.qcow2("cut.qcow2", random("cut", 2 * MIB), PASS, "cluster_size=65536", &[]);
    let len = std::fs::metadata(&q.path).unwrap().len();
    truncate(&q.path, len - 256 * KIB as u64);
    let (out, v) = verify_json(&q, &[]);
    out.assert_exit(4, &q.path);
    assert_eq!((v["verdict"].as_str(), v["error"]["class"].as_str()), (Some("FAIL"), Some("corrupt")));
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["format"], "qcow2");

    let l = lab.qemu_luks("cut.luks", random("cut1", MIB), PASS, "");
    truncate(&l.path, 8192);
    let (out, v) = verify_json(&l, &[]);
    out.assert_exit(4, &l.path);
    assert_eq!(v["sha256"], json!({"ciphertext": null, "plaintext": null}));
}

/// A wrong key FAILs with exit 3, one stderr line naming the image, the report on stdout.
#[test]
fn verify_wrong_key_is_fail_3() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("k.luks", random("k", MIB), PASS, "");
    let bad = Image { key: lab.key("wrong.key", b"wrong passphrase"), ..img.clone() };
    let (out, v) = verify_json(&bad, &[]);
    out.assert_exit(3, &img.path);
    assert!(!out.stderr.contains("wrong passphrase"));
    let mut v = v;
    redact(&mut v, VERIFY_VOLATILE);
    assert_eq!(v["error"]["class"], "bad-key");
    assert_eq!((v["verdict"].as_str(), v["exit_code"].as_i64(), v["key_slot"].as_u64()), (Some("FAIL"), Some(3), None));
    assert_eq!(v["format"], "luks1");
    let text = verify(&bad).run();
    assert_eq!(text.code(), 3);
    assert!(String::from_utf8_lossy(&text.stdout).contains("verdict: FAIL"));
}

/// A refused image (qcow2 with an external data file) FAILs with exit 5.
#[test]
fn verify_refused_is_fail_5() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qcow2_external_data("ext.qcow2", PASS);
    let (out, v) = verify_json(&img, &[]);
    out.assert_exit(5, &img.path);
    assert_eq!(v["error"]["class"], "unsupported");
}

// ------------------------------------------------------------------ hashes and sidecars

/// `--expect-sha256`: right → OK; wrong → FAIL, exit 7; malformed → usage (2).
#[test]
fn verify_expect_sha256_right_and_wrong() {
    need!("qemu-img", "mkfs.vfat");
    let lab = Lab::new();
    let img = lab.qemu_luks("e.luks", vfat(&lab, "e.fat", MIB, "12", "E", "00000001"), PASS, "");
    let want = sha256_hex(&img.plain);
    let (out, v) = verify_json(&img, &["--expect-sha256", &want.to_uppercase()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(v["expect_sha256"], json!({"value": want, "matches": true}));

    let wrong = "0".repeat(64);
    let (out, v) = verify_json(&img, &["--expect-sha256", &wrong]);
    out.assert_exit(7, &img.path);
    assert_eq!(v["expect_sha256"], json!({"value": wrong, "matches": false}));
    assert_eq!(v["verdict"], "FAIL");
    assert_eq!(v["mismatches"].as_array().unwrap().len(), 1);

    assert_eq!(verify(&img).args(["--expect-sha256", "abc"]).run().code(), 2);
}

/// The Glance sidecar `<image>.json`.
fn sidecar(img: &Image, hash: &str, decrypt_size: u64) {
    let meta = json!({
        "id": "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f", "name": "vol-7", "disk_format": "raw",
        "checksum": "2d1e3f0c0e4bb0b8d66fb1ae24e0e7f4",
        "properties": {"os_encrypt_format": "LUKSv1", "os_hash_algo": "sha512", "os_hash_value": hash,
                       "os_decrypt_size": decrypt_size.to_string()}
    });
    let mut p = img.path.clone().into_os_string();
    p.push(".json");
    write(Path::new(&p), serde_json::to_string_pretty(&meta).unwrap().as_bytes());
}

fn sha512_file(p: &Path) -> String {
    hex::encode(sha2::Sha512::digest(std::fs::read(p).unwrap()))
}

/// A sidecar whose `os_hash_value` matches and whose `os_decrypt_size` does not: WARN (6). Its
/// `os_hash_value` wrong: FAIL (7). Both right: OK.
#[test]
fn verify_glance_sidecar_checks() {
    need!("qemu-img", "mkfs.ext4");
    let lab = Lab::new();
    let plain = ext4(&lab, "g.ext4", 4 * MIB, "g", "11111111-1111-4111-8111-111111111111");
    let img = lab.qemu_luks("g.luks", plain, PASS, "");
    let good = sha512_file(&img.path);

    sidecar(&img, &good, 4 * MIB as u64 + 4096);
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 6, "{}", out.stderr);
    let mut os = v["openstack"].clone();
    redact(&mut os, VERIFY_VOLATILE);
    assert_json(
        &os,
        &json!({"sidecar": R, "glance": false, "image_id": "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f", "name": "vol-7",
                "os_hash_algo": "sha512", "os_hash_value": good, "os_hash_checked": true, "os_hash_matches": true,
                "os_decrypt_size": 4 * MIB + 4096, "decrypt_size_matches": false,
                "checksum": "2d1e3f0c0e4bb0b8d66fb1ae24e0e7f4", "checksum_checked": false}),
    );
    assert_eq!(
        v["warnings"],
        json!([format!(
            "the Glance sidecar says os_decrypt_size {}, but the image decrypts to {} bytes",
            4 * MIB + 4096,
            4 * MIB
        )])
    );

    let mut bad = good.clone();
    bad.replace_range(0..1, if good.starts_with('0') { "1" } else { "0" });
    sidecar(&img, &bad, 4 * MIB as u64);
    let (out, v) = verify_json(&img, &[]);
    out.assert_exit(7, &img.path);
    assert_eq!(v["openstack"]["os_hash_matches"], false);
    assert_eq!(v["warnings"], json!([]));
    assert!(v["mismatches"][0].as_str().unwrap().contains("os_hash_value"), "{}", v["mismatches"]);

    sidecar(&img, &good.to_uppercase(), 4 * MIB as u64);
    let (out, v) = verify_json(&img, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(v["verdict"], "OK");
}

// ------------------------------------------------------------------ directories

/// `verify DIR`: one line per image found by magic (sidecars and other files skipped), a
/// summary, and the worst exit code; `--json` gives the same as one object.
#[test]
fn verify_dir_summary() {
    need!("qemu-img", "qemu-io", "mkfs.vfat");
    let lab = Lab::new();
    let fat = vfat(&lab, "d.fat", MIB, "12", "D", "0000000D");
    let ok = lab.qemu_luks("a-ok.luks", fat.clone(), PASS, "");
    let sub = lab.qcow2("sub/b-ok.qcow2", fat, PASS, "", &[]);
    let zero = lab.qemu_luks("c-zero.luks", vec![0; MIB], PASS, "");
    let other = lab.qemu_luks("d-otherkey.luks", random("d", MIB), b"another passphrase", "");
    write(&lab.src.join("notes.txt"), b"not an image\n");
    sidecar(&ok, &sha512_file(&ok.path), MIB as u64);
    let out = Luksfs::new("verify").arg(&lab.src).key(&ok.key).run();
    assert_eq!(out.code(), 3, "worst is the wrong key; stderr: {}", out.stderr);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("OK    a-ok.luks  luks1 aes-xts-plain64 1.0 MiB, fat12 filesystem \"D\""), "{text}");
    assert!(lines[1].starts_with("WARN  c-zero.luks  "), "{text}");
    assert!(lines[1].contains("all zeros"), "{text}");
    assert!(lines[2].starts_with("FAIL  d-otherkey.luks  bad-key: "), "{text}");
    assert!(lines[3].starts_with("OK    sub/b-ok.qcow2  qcow2 "), "{text}");
    assert!(lines[3].contains(&sha256_hex(&sub.plain)), "{text}");
    assert_eq!(lines[4], format!("4 images under {}: 2 OK, 1 WARN, 1 FAIL; verdict FAIL (exit 3)", lab.src.display()));
    let _ = (&zero, &other);

    let out = Luksfs::new("verify").arg(&lab.src).key(&ok.key).arg("--json").run();
    assert_eq!(out.code(), 3);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"], json!({"images": 4, "ok": 2, "warn": 1, "fail": 1}));
    assert_eq!((v["verdict"].as_str(), v["exit_code"].as_i64()), (Some("FAIL"), Some(3)));
    let paths: Vec<&str> = v["images"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["a-ok.luks", "c-zero.luks", "d-otherkey.luks", "sub/b-ok.qcow2"]);
    assert_eq!(v["images"][0]["openstack"]["os_hash_matches"], true);

    // only good images: exit 0
    std::fs::remove_file(&zero.path).unwrap();
    std::fs::remove_file(&other.path).unwrap();
    let out = Luksfs::new("verify").arg(&lab.src).key(&ok.key).run();
    assert_eq!(out.code(), 0, "{}", String::from_utf8_lossy(&out.stdout));
    // --expect-sha256 makes no sense for a directory
    assert_eq!(
        Luksfs::new("verify").arg(&lab.src).key(&ok.key).args(["--expect-sha256", &"0".repeat(64)]).run().code(),
        2
    );
}

/// `verify DIR --os-cloud NAME`: each image's key comes from its Glance sidecar (a Barbican
/// secret, against the real Keystone + Barbican of `scripts/openstack-up.sh`); an image without a
/// sidecar has no key (no prompt) and fails with exit 3.
#[test]
fn verify_dir_keys_from_glance_sidecars() {
    need!("qemu-img", "mkfs.vfat");
    let Some(osk) = crate::barbican::harness() else { return };
    let lab = Lab::new();
    let fat = vfat(&lab, "s.fat", MIB, "12", "S", "00000005");
    let a = lab.qemu_luks("a.luks", fat.clone(), b"passphrase of a", "");
    let b = lab.qemu_luks("b.luks", fat, b"passphrase of b", "");
    lab.qemu_luks("c-nosidecar.luks", random("c", MIB), b"passphrase of c", "");
    let token = osk.demo_token();
    for (img, pass) in [(&a, "passphrase of a"), (&b, "passphrase of b")] {
        let href = osk.store_passphrase(&token, pass);
        let id = href.rsplit('/').next().unwrap();
        let meta = json!({"id": "4b8e1f0a-0000-4000-8000-00000000000a", "disk_format": "raw",
                          "properties": {"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id,
                                         "os_decrypt_size": MIB.to_string()}});
        let mut p = img.path.clone().into_os_string();
        p.push(".json");
        write(Path::new(&p), meta.to_string().as_bytes());
    }
    let mut c = Command::new(crate::util::bin());
    c.arg("verify").arg(&lab.src).args(["--os-cloud", "osk-demo"]).envs(osk.clouds_env());
    for k in ["OS_CLOUD", "OS_AUTH_URL", "RUST_LOG"] {
        c.env_remove(k);
    }
    let out = crate::util::run_timed(c, std::time::Duration::from_secs(180));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.code(), 3, "{text}\n{}", out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK    a.luks  luks1 "), "{text}");
    assert!(lines[1].starts_with("OK    b.luks  luks1 "), "{text}");
    assert!(lines[2].starts_with("FAIL  c-nosidecar.luks  bad-key: "), "{text}");
    assert!(lines[3].contains("2 OK, 0 WARN, 1 FAIL"), "{text}");
}

// ------------------------------------------------------------------ inspect --json

/// What changes from one image to the next in `inspect --json`.
const INSPECT_VOLATILE: &[&str] =
    &["file", "uuid", "iterations", "mk_digest_iterations", "sidecar", "luks_uuid", "what"];

/// `inspect --json` of a qemu-img LUKS1 image and of a qcow2+LUKS image, field by field.
#[test]
fn inspect_json_snapshot_luks1_and_qcow2() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qemu_luks("i.luks", random("i", MIB), PASS, "");
    let out = Luksfs::new("inspect").arg(&img.path).arg("--json").run();
    let mut v: Value = serde_json::from_slice(out.ok()).unwrap();
    redact(&mut v, INSPECT_VOLATILE);
    let size = std::fs::metadata(&img.path).unwrap().len();
    let off = luks1_payload_offset(&img.path);
    let mut slots = vec![json!({"slot": 0, "state": "active", "kdf": "pbkdf2-sha256", "iterations": R,
                                "stripes": 4000, "key_material_offset": 4096})];
    slots.extend((1..8).map(|i| json!({"slot": i, "state": "inactive"})));
    assert_json(
        &v,
        &json!({
            "file": R, "file_size": size, "format": "luks1",
            "luks": {"version": 1, "uuid": R, "cipher": "aes-xts-plain64", "key_bits": 512, "hash": "sha256",
                     "payload_offset": off, "mk_digest_iterations": R, "keyslots": slots},
            "decrypted_size": MIB,
            "data": {"cipher": "aes-xts-plain64", "key_bits": 512, "sector_size": 512, "offset": off, "iv_tweak": 0},
            "safe_to_open": true,
            // the volume tree: the decrypted view, waiting for a key
            "volumes": [{"name": "(top view: IMAGE.raw)", "what": R, "depth": 1, "offset": null, "size": MIB,
                         "needs_key": true, "luks_uuid": R}]
        }),
    );

    let q = lab.qcow2("i.qcow2", random("iq", MIB), PASS, "cluster_size=65536", &[]);
    let out = Luksfs::new("inspect").arg(&q.path).arg("--json").run();
    let mut v: Value = serde_json::from_slice(out.ok()).unwrap();
    redact(&mut v, INSPECT_VOLATILE);
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["safe_to_open"], true);
    let mut qc = v["qcow2"].clone();
    redact(&mut qc, &["l1_table_offset", "encryption_header", "extensions"]);
    assert_json(
        &qc,
        &json!({"version": 3, "virtual_size": MIB, "cluster_size": 65536, "crypt_method": "luks", "l1_size": 1,
                "l1_table_offset": R, "refcount_order": 4, "snapshots": 0, "incompatible_features": [],
                "incompatible_bits": "0x0", "compatible_bits": "0x0", "autoclear_bits": "0x0",
                "backing_file": null, "backing_format": null, "data_file": null,
                "encryption_header": R, "extensions": R}),
    );
    let exts: Vec<&str> =
        v["qcow2"]["extensions"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(exts.contains(&"full disk encryption header"), "{exts:?}");
    assert_eq!(v["luks"]["version"], 1);
    assert_eq!(v["data"]["cipher"], "aes-xts-plain64");
}

/// `inspect --json` of a cryptsetup LUKS2 image (Argon2id slot), and of a refused image.
#[test]
fn inspect_json_snapshot_luks2_and_refused() {
    need!("cryptsetup", "qemu-img");
    let lab = Lab::new();
    let img = lab.cs_luks2("i2.img", random("i2", MIB), PASS, crate::util::fixture::A2ID);
    let out = Luksfs::new("inspect").arg(&img.path).arg("--json").run();
    let mut v: Value = serde_json::from_slice(out.ok()).unwrap();
    redact(&mut v, &[INSPECT_VOLATILE, &["seqid", "area"]].concat());
    let luks = &v["luks"];
    assert_json(
        &luks["keyslots"],
        &json!([{"slot": 0, "type": "luks2", "key_bits": 512, "priority": 1,
                 "kdf": {"type": "argon2id", "time": 4, "memory_kib": 32768, "parallel": 1},
                 "af": {"stripes": 4000, "hash": "sha256"}, "area": R}]),
    );
    assert_json(
        &luks["segments"],
        &json!([{"segment": 0, "type": "crypt", "offset": 2 * MIB, "size": "dynamic", "iv_tweak": 0,
                 "encryption": "aes-xts-plain64", "sector_size": 512, "integrity": false, "flags": []}]),
    );
    assert_eq!(
        luks["header_copy"],
        json!({"used": "primary", "offset": 0, "other_copy_problem": null,
               "why": "both copies are valid and agree; the secondary is at byte 16384"})
    );
    assert_eq!(luks["tokens"], json!([]));
    assert_eq!(
        (v["format"].as_str(), v["safe_to_open"].as_bool(), v["decrypted_size"].as_u64()),
        (Some("luks2"), Some(true), Some(MIB as u64))
    );

    // refused: the problem and its class, safe_to_open false, exit 5
    let p = lab.place("bf.qcow2");
    let key = lab.key("bf.key", PASS);
    let mut c = qemu_img();
    c.args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(secret(&key))
        .args([
            "-u",
            "-b",
            "/etc/hostname",
            "-F",
            "raw",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
        ])
        .arg(&p)
        .arg("1M");
    sh(c);
    let out = Luksfs::new("inspect").arg(&p).arg("--json").run();
    out.assert_exit(5, &p);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["safe_to_open"], false);
    assert_eq!(v["problem"]["class"], "unsupported");
    assert_eq!(v["qcow2"]["backing_file"], "/etc/hostname");
    assert_eq!(v["qcow2"]["backing_format"], "raw");
}
