//! Hostile images: real images made by the fixture builders, then patched the way an attacker
//! would (offsets past the end or into the header, absurd counts and sizes, loops between
//! tables, giant or deeply nested JSON, absurd KDF costs), plus cryptsetup's own "evil header"
//! images. Each case must end in its documented exit class (4 corrupt, 5 refused) with one
//! stderr line naming the file and nothing on stdout, within [`LIMIT`] and [`RSS_LIMIT_KIB`]
//! of peak memory (measured by GNU time around `luksfs cat`, or by polling `VmHWM`); `inspect` on the same file must
//! not crash or hang either. `errors.rs` holds the first, simpler cases; this module the rest.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::fixture::{A2ID, be32, be64, luks2_edit_json, luks2_hdr_size, patch, qcow2_ext};
use crate::util::{Image, KIB, Lab, MIB, Out, bin, mark, random, run_timed, sh, tool};

const PASS: &[u8] = b"hostile but correct passphrase";
/// Wall-clock bound for one `luksfs cat`/`inspect` of a hostile image.
pub const LIMIT: Duration = Duration::from_secs(20);
/// Peak RSS bound (KiB) for one `luksfs cat` of a hostile image (key derivation included).
pub const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// `luksfs ARGS...`: the outcome, its peak RSS in KiB and its duration. Peak RSS comes from GNU
/// time (`/usr/bin/time`, Debian package `time`) when installed, else from polling `VmHWM` in
/// `/proc/PID/status` every millisecond while the process runs (forced by `LUKSFS_TEST_POLL_RSS`).
pub fn measured(args: &[&std::ffi::OsStr]) -> (Out, u64, Duration) {
    let gnu_time = Path::new("/usr/bin/time");
    if !gnu_time.is_file() || std::env::var_os("LUKSFS_TEST_POLL_RSS").is_some() {
        return measured_by_polling(args);
    }
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("rss");
    let mut c = Command::new(gnu_time);
    c.arg("-f").arg("MAXRSS %M").arg("-o").arg(&rss).arg(bin()).args(args).env_remove("RUST_LOG");
    let t0 = Instant::now();
    let out = run_timed(c, LIMIT * 3);
    let took = t0.elapsed();
    let text = std::fs::read_to_string(&rss).unwrap_or_default();
    let kib = text.lines().find_map(|l| l.strip_prefix("MAXRSS ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (out, kib, took)
}

fn measured_by_polling(args: &[&std::ffi::OsStr]) -> (Out, u64, Duration) {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (so, se) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut c = Command::new(bin());
    c.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    c.stdout(std::fs::File::create(&so).unwrap()).stderr(std::fs::File::create(&se).unwrap());
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        let s = std::fs::read_to_string(&status_path).unwrap_or_default();
        let hwm = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        peak = peak.max(hwm.unwrap_or(0));
        if t0.elapsed() > LIMIT * 3 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("luksfs {args:?} did not finish within {:?}", LIMIT * 3);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = Out {
        cmdline: format!("{} {args:?}", bin()),
        code: status.code(),
        status,
        stdout: std::fs::read(&so).unwrap(),
        stderr: std::fs::read_to_string(&se).unwrap(),
    };
    (out, peak.max(1), t0.elapsed())
}

/// `cat` of `img` must fail with `code` (one line naming the file, no stdout), within the time
/// and memory bounds; `inspect` must finish (0, 4 or 5) within the time bound.
#[track_caller]
pub fn expect_class(img: &Image, code: i32, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["cat".as_ref(), img.path.as_os_str(), "--key-file".as_ref()];
    args.push(img.key.as_os_str());
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let (out, rss, took) = measured(&args);
    let what = img.path.file_name().unwrap().to_string_lossy().into_owned();
    out.assert_fails(code, &img.path);
    assert!(took < LIMIT, "{what}: cat took {took:?} (bound {LIMIT:?})");
    assert!(rss > 0 && rss < RSS_LIMIT_KIB, "{what}: cat peaked at {rss} KiB (bound {RSS_LIMIT_KIB} KiB)");
    let (ins, _, took) = measured(&["inspect".as_ref(), img.path.as_os_str()]);
    assert!(matches!(ins.code, Some(0 | 4 | 5)), "{what}: inspect ended with {} / {}", ins.status, ins.stderr);
    assert!(took < LIMIT, "{what}: inspect took {took:?}");
}

/// A copy of `base` under `src/NAME`, patched by `f`.
fn variant(lab: &Lab, base: &Image, name: &str, f: impl FnOnce(&Path)) -> Image {
    let p = lab.place(name);
    std::fs::copy(&base.path, &p).unwrap();
    f(&p);
    Image { path: p, ..base.clone() }
}

fn put32(p: &Path, off: u64, v: u32) {
    patch(p, off, &v.to_be_bytes());
}

fn put64(p: &Path, off: u64, v: u64) {
    patch(p, off, &v.to_be_bytes());
}

// ------------------------------------------------------------------ LUKS1

/// LUKS1 key slot `i` field offsets: active, iterations, salt, key material offset, stripes.
const fn slot(i: u64) -> u64 {
    208 + 48 * i
}

fn luks1_base(lab: &Lab) -> Image {
    lab.qemu_luks("base.luks", mark("hostile", 64 * KIB), PASS, "")
}

#[test]
fn luks1_key_material_overlapping_header_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    let img = variant(&lab, &base, "km-in-header.luks", |p| put32(p, slot(0) + 40, 0));
    expect_class(&img, 4, &[]);
    let img = variant(&lab, &base, "km-at-sector-1.luks", |p| put32(p, slot(0) + 40, 1));
    expect_class(&img, 4, &[]);
}

#[test]
fn luks1_key_material_overlapping_another_slot_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    let km0 = be32(&base.path, slot(0) + 40);
    let img = variant(&lab, &base, "km-overlap.luks", |p| put32(p, slot(3) + 40, km0 + 1));
    expect_class(&img, 4, &[]);
}

#[test]
fn luks1_key_material_past_eof_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    // The payload offset and the key material both beyond the end of the file: the header is
    // self-consistent, the file is not.
    let len = std::fs::metadata(&base.path).unwrap().len();
    let sectors = (len / 512) as u32;
    let img = variant(&lab, &base, "km-past-eof.luks", |p| {
        put32(p, 104, sectors + 100_000);
        put32(p, slot(0) + 40, sectors + 8);
    });
    expect_class(&img, 4, &[]);
}

#[test]
fn luks1_payload_overlapping_header_or_key_material_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    let km0 = be32(&base.path, slot(0) + 40);
    for (name, payload) in [("payload-1.luks", 1u32), ("payload-in-km.luks", km0 + 1), ("payload-0.luks", 0)] {
        let img = variant(&lab, &base, name, |p| put32(p, 104, payload));
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn luks1_stripes_and_key_bytes_just_past_the_caps_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    for (name, off, val) in [
        ("stripes-4097.luks", slot(0) + 44, 4097u32),
        ("stripes-0.luks", slot(0) + 44, 0),
        ("stripes-max-inactive.luks", slot(7) + 44, u32::MAX),
        ("key-bytes-513.luks", 108, 513),
        ("key-bytes-0.luks", 108, 0),
        ("slot-state-garbage.luks", slot(2), 0x1234_5678),
    ] {
        let img = variant(&lab, &base, name, |p| put32(p, off, val));
        expect_class(&img, 4, &[]);
    }
}

/// A PBKDF2 slot (or volume-key digest) asking for u32::MAX iterations would hold a core for
/// about an hour per slot: refused up front (exit 5), bound `MAX_PBKDF2_ITERATIONS` = 2^27.
#[test]
fn luks1_pbkdf2_iterations_absurd_is_refused_fast() {
    need!("qemu-img");
    let lab = Lab::new();
    let base = luks1_base(&lab);
    let img = variant(&lab, &base, "slot-iterations.luks", |p| put32(p, slot(0) + 4, u32::MAX));
    expect_class(&img, 5, &[]);
    let img = variant(&lab, &base, "digest-iterations.luks", |p| put32(p, 164, u32::MAX));
    expect_class(&img, 5, &[]);
    // Just under the bound is tried (and simply fails: the digest was made with fewer).
    assert_eq!(luksfs::luks::keyslot::MAX_PBKDF2_ITERATIONS, 1 << 27);
}

/// cryptsetup's upstream evil headers (tests/evil_hdr-*): overlapping key material, and stripes
/// running into the payload.
#[test]
fn luks1_upstream_evil_headers_are_exit_4() {
    need!("shared-corpus", "xz");
    let lab = Lab::new();
    let key = lab.key("k", b"anything");
    let ext = crate::util::shared_corpus().join("external");
    let mut n = 0;
    for e in std::fs::read_dir(&ext).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix("evil_hdr-").and_then(|s| s.strip_suffix(".xz")) else { continue };
        let out = lab.place(&format!("evil_hdr-{stem}"));
        let mut c = tool("xz");
        c.arg("-dc").arg(&p);
        std::fs::write(&out, sh(c)).unwrap();
        expect_class(&Image { path: out, key: key.clone(), plain: vec![], header: None }, 4, &[]);
        n += 1;
    }
    assert!(n >= 2, "expected cryptsetup's evil_hdr-* images in {}", ext.display());
}

// ------------------------------------------------------------------ LUKS2

fn luks2_base(lab: &Lab, args: &[&str]) -> Image {
    lab.cs_luks2("base.img", random("hostile2", 256 * KIB), PASS, args)
}

/// Edit the JSON of both header copies as a value (checksums fixed afterwards).
fn edit(p: &Path, f: impl Fn(&mut serde_json::Value)) {
    luks2_edit_json(p, |s| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        f(&mut v);
        v.to_string()
    });
}

fn luks2_variant(lab: &Lab, base: &Image, name: &str, f: impl Fn(&mut serde_json::Value)) -> Image {
    variant(lab, base, name, |p| edit(p, f))
}

#[test]
fn luks2_hdr_size_not_in_the_allowed_set_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    let hs = luks2_hdr_size(&base.path);
    for (name, v) in [("hdr-20000.img", 20000u64), ("hdr-8m.img", 8 << 20), ("hdr-max.img", u64::MAX), ("hdr-0.img", 0)]
    {
        let img = variant(&lab, &base, name, |p| {
            put64(p, 8, v);
            put64(p, hs + 8, v);
        });
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn luks2_json_and_keyslots_area_sizes_absurd_are_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    let cfg = |k: &'static str, v: &'static str| move |j: &mut serde_json::Value| j["config"][k] = v.into();
    for (name, key, val) in [
        ("json-size-huge.img", "json_size", "99999999999999"),
        ("json-size-small.img", "json_size", "4096"),
        ("json-size-overflow.img", "json_size", "18446744073709551616"),
        ("keyslots-size-max.img", "keyslots_size", "18446744073709551615"),
        ("keyslots-size-0.img", "keyslots_size", "0"),
    ] {
        let img = luks2_variant(&lab, &base, name, cfg(key, val));
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn luks2_key_material_past_eof_or_in_the_header_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    let area = |v: &'static str| move |j: &mut serde_json::Value| j["keyslots"]["0"]["area"]["offset"] = v.into();
    for (name, off) in [("area-past-eof.img", "1099511627776"), ("area-in-header.img", "4096"), ("area-0.img", "0")] {
        let img = luks2_variant(&lab, &base, name, area(off));
        expect_class(&img, 4, &[]);
    }
    // Inside the declared key-slot area but past the end of a file cut short after the headers.
    let img = variant(&lab, &base, "cut-after-headers.img", |p| {
        let hs = luks2_hdr_size(p);
        crate::util::fixture::truncate(p, 2 * hs + 4096);
    });
    expect_class(&img, 4, &[]);
}

#[test]
fn luks2_segment_past_eof_or_overlapping_the_header_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    let seg = |k: &'static str, v: &'static str| move |j: &mut serde_json::Value| j["segments"]["0"][k] = v.into();
    for (name, key, val) in [
        ("seg-past-eof.img", "offset", "1099511627776"),
        ("seg-in-header.img", "offset", "16384"),
        ("seg-in-keyslots.img", "offset", "65536"),
        ("seg-size-past-eof.img", "size", "1099511627776"),
        ("seg-size-unaligned.img", "size", "1000"),
        ("seg-offset-unaligned.img", "offset", "2097153"),
    ] {
        let img = luks2_variant(&lab, &base, name, seg(key, val));
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn luks2_stripes_and_key_size_huge_are_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 6] = [
        ("stripes-4097.img", |j| j["keyslots"]["0"]["af"]["stripes"] = 4097.into()),
        ("stripes-past-area.img", |j| j["keyslots"]["0"]["af"]["stripes"] = 4050.into()),
        ("stripes-huge.img", |j| j["keyslots"]["0"]["af"]["stripes"] = 4_000_000_000u32.into()),
        ("key-size-huge.img", |j| j["keyslots"]["0"]["key_size"] = 100_000.into()),
        ("area-key-size-huge.img", |j| j["keyslots"]["0"]["area"]["key_size"] = 4_294_967_295u32.into()),
        ("area-size-small.img", |j| j["keyslots"]["0"]["area"]["size"] = "512".into()),
    ];
    for (name, f) in cases {
        let img = luks2_variant(&lab, &base, name, f);
        expect_class(&img, 4, &[]);
    }
}

/// Every key slot costs a KDF run: cryptsetup never opens ids beyond 31, so neither does luksfs,
/// and a header cannot make luksfs derive keys hundreds of times. 200 copies of one slot (sharing
/// its area, which cryptsetup's rules refuse) are corrupt; 32 copies of a cheap slot, each with
/// its own area and bound to the digest, still open (slot 0 holds the key material).
#[test]
fn luks2_more_than_32_keyslots_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &["--luks2-metadata-size", "256k"]);
    let copies = |n: u32| {
        move |j: &mut serde_json::Value| {
            let ks = j["keyslots"]["0"].clone();
            let size: u64 = ks["area"]["size"].as_str().unwrap().parse().unwrap();
            let first: u64 = ks["area"]["offset"].as_str().unwrap().parse().unwrap();
            // Up to 32 copies get their own small area after slot 0's (one AF stripe: their key
            // material is garbage anyway); beyond that the copies share slot 0's area.
            let fits = n <= 32;
            for i in 1..n {
                let mut k = ks.clone();
                if fits {
                    k["area"]["offset"] = (first + size + u64::from(i - 1) * 4096).to_string().into();
                    k["area"]["size"] = "4096".into();
                    k["af"]["stripes"] = 1.into();
                    j["digests"]["0"]["keyslots"].as_array_mut().unwrap().push(i.to_string().into());
                }
                j["keyslots"][i.to_string()] = k;
            }
        }
    };
    let img = luks2_variant(&lab, &base, "keyslots-200.img", copies(200));
    expect_class(&img, 4, &[]);
    let img = luks2_variant(&lab, &base, "keyslots-32.img", copies(32));
    img.check_cat();
}

#[test]
fn luks2_deeply_nested_json_is_exit_4() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, &[]);
    let img = variant(&lab, &base, "nested.img", |p| {
        luks2_edit_json(p, |s| {
            let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
            s.replacen("\"config\":{", &format!("\"tokens\":{{\"0\":{deep}}},\"config\":{{"), 1)
        })
    });
    expect_class(&img, 4, &[]);
}

/// A 4 MiB metadata area (the largest allowed) filled with JSON: 100 000 tokens, and one 3 MiB
/// string. Parsed within the bounds (the image itself is fine: the tokens are ignored).
#[test]
fn luks2_huge_json_is_bounded() {
    need!("cryptsetup");
    let lab = Lab::new();
    let p = lab.place("huge-json.img");
    let key = lab.key("huge.key", PASS);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(32 * MIB as u64).unwrap();
    drop(f);
    let mut c = tool("cryptsetup");
    c.args(["luksFormat", "--type", "luks2", "--batch-mode", "--luks2-metadata-size", "4m"])
        .args(["--luks2-keyslots-size", "1m", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file"])
        .arg(&key)
        .arg(&p);
    sh(c);
    assert_eq!(luks2_hdr_size(&p), 4 << 20);
    let many =
        variant(&lab, &Image { path: p.clone(), key: key.clone(), plain: vec![], header: None }, "many.img", |p| {
            edit(p, |j| {
                let t: serde_json::Map<String, serde_json::Value> =
                    (0..100_000).map(|i| (i.to_string(), serde_json::json!({"type": "x", "keyslots": []}))).collect();
                j["tokens"] = t.into();
            })
        });
    let (out, rss, took) = measured(&["cat".as_ref(), many.path.as_os_str(), "--key-file".as_ref(), key.as_os_str()]);
    out.ok();
    assert!(took < LIMIT && rss < RSS_LIMIT_KIB, "100k tokens: {took:?}, {rss} KiB");
    let long = variant(&lab, &many, "long.img", |p| {
        edit(p, |j| j["tokens"] = serde_json::json!({"0": {"type": "x", "keyslots": [], "blob": "A".repeat(3 << 20)}}))
    });
    let (out, rss, took) = measured(&["cat".as_ref(), long.path.as_os_str(), "--key-file".as_ref(), key.as_os_str()]);
    out.ok();
    assert!(took < LIMIT && rss < RSS_LIMIT_KIB, "3 MiB string: {took:?}, {rss} KiB");
}

/// Argon2 memory over `--max-kdf-memory`: refused before allocating (exit 5), also with the
/// 4 GiB a header may ask for.
#[test]
fn luks2_argon2_memory_absurd_is_bounded_by_the_cap() {
    need!("cryptsetup");
    let lab = Lab::new();
    let base = luks2_base(&lab, A2ID);
    for (name, mem) in [("argon-4g.img", 4_194_304u32), ("argon-max.img", u32::MAX)] {
        let img = luks2_variant(&lab, &base, name, |j| j["keyslots"]["0"]["kdf"]["memory"] = mem.into());
        expect_class(&img, 5, &["--max-kdf-memory", "64M"]);
    }
    // Without the option the default cap (4 GiB or half the RAM) still refuses u32::MAX KiB.
    let img =
        luks2_variant(&lab, &base, "argon-max-default.img", |j| j["keyslots"]["0"]["kdf"]["memory"] = u32::MAX.into());
    expect_class(&img, 5, &[]);
}

#[test]
fn luks2_argon2_and_pbkdf2_iterations_absurd_are_refused_fast() {
    need!("cryptsetup");
    let lab = Lab::new();
    let argon = luks2_base(&lab, A2ID);
    let img = luks2_variant(&lab, &argon, "argon-time.img", |j| j["keyslots"]["0"]["kdf"]["time"] = u32::MAX.into());
    expect_class(&img, 5, &[]);
    let img = luks2_variant(&lab, &argon, "argon-lanes.img", |j| j["keyslots"]["0"]["kdf"]["cpus"] = u32::MAX.into());
    expect_class(&img, 5, &[]);
    let pb = lab.cs_luks2("pb.img", random("pb", 64 * KIB), PASS, &[]);
    let img = luks2_variant(&lab, &pb, "pb-iter.img", |j| j["keyslots"]["0"]["kdf"]["iterations"] = u32::MAX.into());
    expect_class(&img, 5, &[]);
    let img = luks2_variant(&lab, &pb, "digest-iter.img", |j| j["digests"]["0"]["iterations"] = u32::MAX.into());
    expect_class(&img, 5, &[]);
}

// ------------------------------------------------------------------ qcow2

const L1_MASK: u64 = 0x00ff_ffff_ffff_fe00;

struct Q {
    img: Image,
    l1: u64,
    l2: u64,
    crypto: u64,
    refcount: u64,
}

fn qcow2_base(lab: &Lab) -> Q {
    let img = lab.qcow2("base.qcow2", random("hostile-q", MIB), PASS, "cluster_size=65536", &[]);
    let p = &img.path;
    let l1 = be64(p, 40);
    let l2 = be64(p, l1) & L1_MASK;
    let crypto = be64(p, qcow2_ext(p, 0x0537_be77).unwrap());
    let refcount = be64(p, 48);
    assert!(l2 != 0 && crypto != 0 && refcount != 0);
    Q { img, l1, l2, crypto, refcount }
}

#[test]
fn qcow2_cluster_bits_out_of_range_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = qcow2_base(&lab);
    for bits in [0u32, 8, 22, 63, u32::MAX] {
        let img = variant(&lab, &q.img, &format!("cb-{bits}.qcow2"), |p| put32(p, 20, bits));
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn qcow2_l1_size_huge_or_short_is_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = qcow2_base(&lab);
    for (name, n) in [("l1-4m-plus-1.qcow2", (4u32 << 20) + 1), ("l1-max.qcow2", u32::MAX), ("l1-0.qcow2", 0)] {
        let img = variant(&lab, &q.img, name, |p| put32(p, 36, n));
        expect_class(&img, 4, &[]);
    }
}

#[test]
fn qcow2_tables_past_eof_or_overlapping_the_header_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = qcow2_base(&lab);
    let len = std::fs::metadata(&q.img.path).unwrap().len();
    let past = (len + 64 * KIB as u64) & !0xffff;
    for (name, off, val) in [
        ("l1-at-0.qcow2", 40u64, 0u64),
        ("l1-unaligned.qcow2", 40, q.l1 + 8),
        ("l1-past-eof.qcow2", 40, past),
        ("refcount-past-eof.qcow2", 48, past),
        ("refcount-at-0.qcow2", 48, 0),
        ("refcount-unaligned.qcow2", 48, q.refcount + 512),
        ("snapshots-past-eof.qcow2", 64, past),
    ] {
        let img = variant(&lab, &q.img, name, |p| {
            put64(p, off, val);
            if name.starts_with("snapshots") {
                put32(p, 60, 1); // nb_snapshots
            }
        });
        expect_class(&img, 4, &[]);
    }
    let ext = qcow2_ext(&q.img.path, 0x0537_be77).unwrap();
    for (name, off, len) in [("luks-at-0.qcow2", 0u64, 2 * MIB as u64), ("luks-past-eof.qcow2", past, 2 * MIB as u64)] {
        let img = variant(&lab, &q.img, name, |p| {
            put64(p, ext, off);
            put64(p, ext + 8, len);
        });
        expect_class(&img, 4, &[]);
    }
    let img = variant(&lab, &q.img, "refcount-clusters-huge.qcow2", |p| put32(p, 56, u32::MAX));
    expect_class(&img, 4, &[]);
}

/// L1 and L2 entries pointing into metadata (the header cluster, the L1 table, the embedded LUKS
/// header, the refcount table, the L2 table itself): that range fails (exit 4), nothing is
/// decrypted from metadata.
#[test]
fn qcow2_entries_pointing_into_metadata_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = qcow2_base(&lab);
    let copied = 1u64 << 63;
    let targets =
        [("l1-table", q.l1), ("luks-header", q.crypto), ("refcount-table", q.refcount), ("own-l2-table", q.l2)];
    for (what, at) in targets {
        // L1[0] → the metadata, used as an L2 table (a loop when it is the L1 table itself)
        if what != "own-l2-table" {
            let img = variant(&lab, &q.img, &format!("l1-into-{what}.qcow2"), |p| put64(p, q.l1, at | copied));
            expect_class(&img, 4, &["--length", "65536"]);
        }
        // L2[0] → the metadata, used as a data cluster
        let img = variant(&lab, &q.img, &format!("l2-into-{what}.qcow2"), |p| put64(p, q.l2, at | copied));
        expect_class(&img, 4, &["--length", "65536"]);
    }
    let img = variant(&lab, &q.img, "l2-into-header-cluster.qcow2", |p| put64(p, q.l2, 512 | copied));
    expect_class(&img, 4, &["--length", "65536"]);
    let img = variant(&lab, &q.img, "l2-reserved-bits.qcow2", |p| {
        let e = be64(p, q.l2);
        put64(p, q.l2, e | 0x2);
    });
    expect_class(&img, 4, &["--length", "65536"]);
}

/// Every L1 entry pointing to the same L2 table and every L2 entry to the same data cluster:
/// no loop to follow, reads stay bounded (and decrypt that one cluster everywhere).
#[test]
fn qcow2_shared_tables_stay_bounded() {
    need!("qemu-img");
    let lab = Lab::new();
    let img = lab.qcow2("big.qcow2", random("shared", MIB), PASS, "cluster_size=65536", &[]);
    let p = &img.path;
    let l1 = be64(p, 40);
    let l2 = be64(p, l1) & L1_MASK;
    let first = be64(p, l2);
    let shared = variant(&lab, &img, "shared.qcow2", |p| {
        let entries: Vec<u8> = (0..8192).flat_map(|_| first.to_be_bytes()).collect();
        patch(p, l2, &entries);
    });
    let (out, rss, took) =
        measured(&["cat".as_ref(), shared.path.as_os_str(), "--key-file".as_ref(), shared.key.as_os_str()]);
    out.ok();
    assert_eq!(out.stdout.len(), MIB);
    assert!(out.stdout.chunks(65536).all(|c| c == &img.plain[..65536]), "every cluster reads as cluster 0");
    assert!(took < LIMIT && rss < RSS_LIMIT_KIB, "{took:?} {rss} KiB");
}

#[test]
fn qcow2_embedded_luks_header_absurd_fields_are_exit_4() {
    need!("qemu-img");
    let lab = Lab::new();
    let q = qcow2_base(&lab);
    let h = q.crypto;
    for (name, off, val) in [
        ("emb-stripes.qcow2", h + slot(0) + 44, u32::MAX),
        ("emb-key-bytes.qcow2", h + 108, 0xffff_fff0),
        ("emb-km-past-window.qcow2", h + slot(0) + 40, 0x00ff_ffff),
    ] {
        let img = variant(&lab, &q.img, name, |p| put32(p, off, val));
        expect_class(&img, 4, &[]);
    }
}
