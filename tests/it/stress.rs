//! Stress: 8 concurrent readers over 4 images of the four layouts (LUKS1 by qemu, LUKS2 with
//! 4 KiB sectors, qcow2 with 64 KiB and with 512-byte clusters), sequential and random,
//! buffered and `O_DIRECT` (which bypasses the kernel page cache, so the daemon really decrypts),
//! mixed with `readdir`/`stat`, for a bounded time (`LUKSFS_STRESS_SECS`, default 20 s). Every
//! byte is compared with the plaintext; the daemon's RSS must stay flat (no leak) and every
//! reader must keep making progress (no deadlock); the mount then unmounts with exit 0.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::fixture::Op;
use crate::util::{Image, KIB, Lab, MIB, random};

const PASS: &[u8] = b"stress passphrase";

fn secs() -> u64 {
    std::env::var("LUKSFS_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20)
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A 4096-aligned window of `v` (O_DIRECT needs aligned buffers on some paths).
fn aligned(v: &mut [u8], len: usize) -> &mut [u8] {
    let skip = (4096 - v.as_ptr() as usize % 4096) % 4096;
    &mut v[skip..skip + len]
}

struct Reader {
    path: PathBuf,
    plain: Arc<Vec<u8>>,
    direct: bool,
    random: bool,
    seed: String,
}

fn read_loop(r: Reader, stop: Arc<AtomicBool>, progress: Arc<AtomicU64>, ops: Arc<AtomicU64>) {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if r.direct {
        o.custom_flags(libc::O_DIRECT);
    }
    let f: File = o.open(&r.path).unwrap_or_else(|e| panic!("open {}: {e}", r.path.display()));
    let n = r.plain.len() as u64;
    let rnd = random(&r.seed, 8 * 4096);
    let mut raw = vec![0u8; 512 * KIB + 4096];
    let (mut i, mut seq) = (0usize, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let x = u64::from_le_bytes(rnd[(i % 4096) * 8..][..8].try_into().unwrap());
        let (off, len) = if r.random {
            let len = 4096 * (1 + (x >> 40) % 64); // 4 KiB .. 256 KiB
            let off = (x % n) & !4095;
            (off, len.min(n - off))
        } else {
            let len = if r.direct { 128 * KIB as u64 } else { 1 + (x >> 40) % (200 * KIB as u64) };
            let off = seq;
            seq = if off + len >= n { 0 } else { off + len };
            (off, len.min(n - off))
        };
        let len = len as usize;
        let buf = aligned(&mut raw, len);
        let mut done = 0;
        while done < len {
            let k = f
                .read_at(&mut buf[done..], off + done as u64)
                .unwrap_or_else(|e| panic!("{} read at {}: {e}", r.path.display(), off + done as u64));
            assert!(k > 0, "{}: early EOF at {}", r.path.display(), off + done as u64);
            done += k;
        }
        let want = &r.plain[off as usize..off as usize + len];
        if buf != want {
            let at = buf.iter().zip(want).position(|(a, b)| a != b).unwrap();
            panic!("{}: wrong byte at {} (read [{off}, +{len}])", r.path.display(), off as usize + at);
        }
        progress.fetch_add(len as u64, Ordering::Relaxed);
        ops.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

#[test]
fn eight_readers_four_images_bounded_time_flat_rss() {
    need!("fuse", "qemu-img", "qemu-io", "cryptsetup");
    let lab = Lab::new();
    let imgs: Vec<Image> = vec![
        lab.qemu_luks("a.luks", random("stress-a", 4 * MIB), PASS, ""),
        lab.cs_luks2("b.img", random("stress-b", 4 * MIB), PASS, &["--sector-size", "4096"]),
        lab.qcow2(
            "c.qcow2",
            random("stress-c", 4 * MIB),
            PASS,
            "cluster_size=65536",
            &[Op::Zero(MIB as u64, 256 * KIB as u64), Op::Discard(3 * MIB as u64, 128 * KIB as u64)],
        ),
        lab.qcow2("d/d.qcow2", random("stress-d", 2 * MIB), PASS, "cluster_size=512,compat=0.10", &[]),
    ];
    let kt = lab.keytab(&imgs.iter().collect::<Vec<_>>());
    let mut m = lab.mount(&["--keytab".as_ref(), kt.as_os_str(), "--cache-size".as_ref(), "8M".as_ref()]);
    let pid = m.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut counters = Vec::new();
    for t in 0..8usize {
        let img = &imgs[t % 4];
        let progress = Arc::new(AtomicU64::new(0));
        let ops = Arc::new(AtomicU64::new(0));
        counters.push((format!("reader {t} ({})", img.name()), progress.clone(), ops.clone()));
        let r = Reader {
            path: m.path(&format!("{}.raw", lab.rel(img))),
            plain: Arc::new(img.plain.clone()),
            // readers 0-3: O_DIRECT (random on a and b, sequential on c and d); 4-7: buffered
            // (sequential on a and b, random on c and d)
            direct: t < 4,
            random: (t % 4 < 2) == (t < 4),
            seed: format!("stress-reader-{t}"),
        };
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || read_loop(r, stop, progress, ops)));
    }
    // ls / stat walker
    let walk_ops = Arc::new(AtomicU64::new(0));
    {
        let (stop, ops, root) = (stop.clone(), walk_ops.clone(), m.mnt.clone());
        let want: Vec<(String, u64)> =
            imgs.iter().map(|i| (format!("{}.raw", lab.rel(i)), i.plain.len() as u64)).collect();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut names: Vec<String> = std::fs::read_dir(&root)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                assert_eq!(names, ["a.luks.raw", "b.img.raw", "c.qcow2.raw", "d"], "readdir");
                for (rel, len) in &want {
                    let md = std::fs::metadata(root.join(rel)).unwrap();
                    assert_eq!(md.len(), *len, "stat {rel}");
                }
                ops.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    let dur = Duration::from_secs(secs());
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut last: Vec<u64> = vec![0; counters.len()];
    let mut stalled: Vec<u32> = vec![0; counters.len()];
    while t0.elapsed() < dur {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(i) = threads.iter().position(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            let r = threads.remove(i).join();
            panic!("thread {i} ended early: {r:?}; log:\n{}", m.log());
        }
        samples.push(rss_kib(pid));
        for (i, (name, p, _)) in counters.iter().enumerate() {
            let now = p.load(Ordering::Relaxed);
            stalled[i] = if now == last[i] { stalled[i] + 1 } else { 0 };
            last[i] = now;
            if stalled[i] >= 10 {
                stop.store(true, Ordering::Relaxed);
                panic!("{name} made no progress for 10 s (deadlock?); log:\n{}", m.log());
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in threads {
        h.join().expect("a reader or the walker failed");
    }
    let total: u64 = counters.iter().map(|c| c.1.load(Ordering::Relaxed)).sum();
    let ops: u64 = counters.iter().map(|c| c.2.load(Ordering::Relaxed)).sum();
    eprintln!(
        "stress: {:.1} s, {} MiB compared in {ops} reads, {} ls/stat rounds, daemon RSS samples (KiB): {samples:?}",
        t0.elapsed().as_secs_f64(),
        total >> 20,
        walk_ops.load(Ordering::Relaxed)
    );
    for (name, p, o) in &counters {
        eprintln!("  {name}: {} MiB in {} reads", p.load(Ordering::Relaxed) >> 20, o.load(Ordering::Relaxed));
    }
    assert!(counters.iter().all(|c| c.2.load(Ordering::Relaxed) > 0), "a reader never completed a read");
    // Flat RSS: after the warm-up third, growth stays under 24 MiB and the peak under 256 MiB.
    let warm = samples.len() / 3;
    let base = samples[warm.max(1)..].iter().copied().min().unwrap_or(0);
    let peak = samples.iter().copied().max().unwrap_or(0);
    let end = *samples.last().unwrap();
    assert!(end <= base + 24 * 1024, "daemon RSS grew from {base} KiB to {end} KiB: {samples:?}");
    assert!(peak < 256 * 1024, "daemon RSS peaked at {peak} KiB: {samples:?}");
    let st = m.unmount();
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log());
}
