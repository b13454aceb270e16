//! The shared fuzzing harness of luksfs (cloud-hypervisor style: `fuzz_targets/*.rs` are one
//! line each; the work and the invariants live here, so a crash found by one target can be
//! replayed from a unit test or a debugger with the same code).
//!
//! Every entry point takes untrusted bytes and drives the same public APIs the daemon uses
//! (`luksfs::luks`, `luksfs::qcow2`, `luksfs::formats::lvm`, `luksfs::io`). Besides "no panic, no hang, no huge
//! allocation" (libFuzzer's `-timeout` and `-rss_limit_mb` catch the last two), each checks
//! the invariants the rest of luksfs relies on after a successful parse: offsets inside the file,
//! (`luksfs::luks`, `luksfs::qcow2`, `luksfs::formats::partition`, `luksfs::io`). Besides "no
//! panic, no hang, no huge allocation" (libFuzzer's `-timeout` and `-rss_limit_mb` catch the
//! last two), each checks the invariants the rest of luksfs relies on after a successful parse:
//! offsets inside the file,
//! sizes within the named limits, mappings that never point into metadata.
//!
//! Key derivation cost is chosen by the header, so key slots are only *tried* when the header
//! asks for a cheap KDF (see [`CHEAP`]); the seeds are made with such parameters.
//!
//! Seeds: `fuzz/make-seeds.sh` (images made by `cryptsetup`, `qemu-img` and `lvm2`), dictionaries in
//! `fuzz/dictionaries/`.

use luksfs::formats::lvm;
use luksfs::formats::partition::{self, Role, TableKind};
use luksfs::io::{ReadAt, Window};
use luksfs::keys::Secret;
use luksfs::luks::keyslot::{self, SlotKdf, SlotPlan, UnlockOptions};
use luksfs::luks::{self, v1, v2};
use luksfs::qcow2::Qcow2;
use luksfs::qcow2::header::{self as qh, Header as QHeader};
use luksfs::qcow2::reader::Qcow2Reader;
use luksfs::qcow2::table::Storage;
use sha2::Digest as _;
use std::sync::Arc;

/// The passphrase of every seed image (`make-seeds.sh`).
pub const PASSPHRASE: &[u8] = b"fuzz";

/// Largest KDF cost a fuzzed key slot may ask for before it is tried: PBKDF2 iterations (key
/// slot and volume-key digest) and Argon2 passes × KiB.
pub const CHEAP: u32 = 1000;

fn cheap(p: &SlotPlan) -> bool {
    let kdf = match &p.kdf {
        SlotKdf::Pbkdf2 { iterations, .. } => *iterations <= CHEAP,
        SlotKdf::Argon2 { time, memory_kib, .. } => u64::from(*time) * u64::from(*memory_kib) <= 4 * u64::from(CHEAP),
    };
    kdf && p.digest.as_ref().is_none_or(|d| d.iterations <= CHEAP)
}

/// Try the cheap key slots of `hdr` with [`PASSPHRASE`] against `src` (where the key material
/// lies). Any outcome but a panic is fine; a success must give a key of the advertised length.
fn try_unlock(hdr: &luks::Header, src: &dyn ReadAt) {
    let Ok(plans) = hdr.slot_plans() else { return };
    for p in &plans {
        // Invariants the key-slot reader relies on.
        assert!(p.area_offset.checked_add(p.area_size).is_some(), "slot {} area overflows", p.id);
        assert!(p.stripes >= 1 && p.stripes <= v1::MAX_STRIPES.max(v2::MAX_STRIPES), "stripes {}", p.stripes);
        assert!(p.volume_key_len >= 1 && p.volume_key_len <= 512, "key length {}", p.volume_key_len);
    }
    let plans: Vec<SlotPlan> = plans.into_iter().filter(cheap).collect();
    if plans.is_empty() {
        return;
    }
    let opts = UnlockOptions { key_slot: None, max_kdf_memory_kib: 4096, parallel: 1 };
    if let Ok(u) = keyslot::unlock(&plans, &Secret::from_slice(PASSPHRASE), src, opts) {
        let p = plans.iter().find(|p| p.id == u.slot).expect("the winning slot is one of the plans");
        assert_eq!(u.volume_key.len(), p.volume_key_len);
    }
}

/// The key slots of a parsed header: their plans' invariants, and (only under the
/// `luks_keyslot` target) the unlock itself (see [`luks_keyslot`]): key derivation, even capped at
/// [`CHEAP`], kept the header targets at 1-2k executions/s, so parsing is fuzzed apart from it.
fn exercise_header(hdr: &luks::Header, src: &dyn ReadAt) {
    if TRY_SLOTS.with(|t| t.get()) {
        try_unlock(hdr, src);
    } else if let Ok(plans) = hdr.slot_plans() {
        for p in &plans {
            assert!(p.area_offset.checked_add(p.area_size).is_some(), "slot {} area overflows", p.id);
        }
    }
}

std::thread_local! {
    /// Whether [`exercise_header`] runs the key slots (only under [`luks_keyslot`]).
    static TRY_SLOTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `luks_keyslot`: the input is the start of a LUKS1 or LUKS2 file (headers and key material);
/// the header checks of `luks1_header` / `luks2_header`, then the cheap key slots are tried with
/// [`PASSPHRASE`] (KDF cost capped at [`CHEAP`]): AF merge, digest check, key length.
pub fn luks_keyslot(data: &[u8]) {
    TRY_SLOTS.with(|t| t.set(true));
    if data.get(6..8) == Some(&[0, 2]) {
        luks2_header(data);
    } else {
        luks1_header(data);
    }
    TRY_SLOTS.with(|t| t.set(false));
}

/// Everything a LUKS header of either version offers after a successful parse.
fn exercise_layout(hdr: &luks::Header, src: &dyn ReadAt) {
    let _ = hdr.uuid();
    let end = hdr.header_area_end();
    if let Ok(layout) = hdr.data_layout() {
        assert!(matches!(layout.sector_size, 512 | 1024 | 2048 | 4096), "sector size {}", layout.sector_size);
        assert!(layout.key_len >= 1 && layout.key_len <= 512, "key length {}", layout.key_len);
        let _ = (layout.offset, layout.size, end);
    }
    exercise_header(hdr, src);
}

/// `luks1_header`: the input is the start of a LUKS1 file (header, then key material).
///
/// Checks: [`v1::Header::parse`] never panics; an accepted header has a sane key size and
/// stripe count, and key material after the header, before the payload and not overlapping;
/// [`luks::read_header`] agrees with the pure parser; cheap key slots are tried.
pub fn luks1_header(data: &[u8]) {
    let parsed = v1::Header::parse(data);
    if let Ok(h) = &parsed {
        assert!(h.key_bytes >= 1 && h.key_bytes <= v1::MAX_KEY_BYTES);
        let mut areas: Vec<(u64, u64)> = Vec::new();
        for s in &h.slots {
            assert!(s.stripes >= 1 && s.stripes <= v1::MAX_STRIPES);
            let start = u64::from(s.key_material_offset) * 512;
            let end = start + h.material_len(s);
            assert!(start >= v1::HEADER_LEN as u64, "key material overlaps the header");
            if h.payload_offset != 0 {
                assert!(end <= h.payload_offset_bytes(), "key material runs into the payload");
            }
            assert!(areas.iter().all(|&(a, b)| end <= a || b <= start), "key material areas overlap");
            areas.push((start, end));
        }
    }
    let file = data.to_vec();
    match luks::read_header(&file) {
        Ok(luks::Header::V1(h)) => {
            assert_eq!(Some(&h), parsed.as_ref().ok(), "read_header and Header::parse disagree");
            exercise_layout(&luks::Header::V1(h), &file);
        }
        Ok(h @ luks::Header::V2(_)) => exercise_layout(&h, &file),
        Err(_) => {}
    }
}

/// Build a well-formed two-copy LUKS2 metadata area around `json` (checksums right), followed by
/// a zeroed key-slot area, so that mutations of the JSON reach the semantic checks instead of
/// stopping at the checksum. The header size is taken from `config.json_size` when that is an
/// allowed size and the text fits, else the smallest size that fits.
pub fn luks2_image(json: &[u8], seqid: u64) -> Option<Vec<u8>> {
    let hinted = serde_json::from_slice::<serde_json::Value>(json).ok().and_then(|v| {
        v.get("config")?.get("json_size")?.as_str()?.parse::<u64>().ok().map(|n| n + v2::BIN_HEADER_LEN as u64)
    });
    let fits = |s: u64| s >= (v2::BIN_HEADER_LEN + json.len() + 1) as u64;
    let hdr_size = match hinted {
        Some(h) if v2::HDR_SIZES.contains(&h) && fits(h) => h,
        _ => *v2::HDR_SIZES.iter().find(|&&s| fits(s))?,
    };
    let hs = hdr_size as usize;
    let keyslots_size = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("config")?.get("keyslots_size")?.as_str()?.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut img = vec![0u8; 2 * hs + keyslots_size];
    for (i, base) in [0usize, hs].into_iter().enumerate() {
        let area = &mut img[base..base + hs];
        area[..6].copy_from_slice(if i == 0 { &v1::MAGIC } else { &v2::MAGIC_SECONDARY });
        area[6..8].copy_from_slice(&2u16.to_be_bytes());
        area[8..16].copy_from_slice(&hdr_size.to_be_bytes());
        area[16..24].copy_from_slice(&seqid.to_be_bytes());
        area[72..78].copy_from_slice(b"sha256");
        area[168..204].copy_from_slice(b"6b8e3f3e-6c1a-4d7c-9d0e-0f1e2d3c4b5a");
        area[256..264].copy_from_slice(&(base as u64).to_be_bytes());
        area[v2::BIN_HEADER_LEN..v2::BIN_HEADER_LEN + json.len()].copy_from_slice(json);
        let sum = sha2::Sha256::digest(&*area);
        area[448..480].copy_from_slice(&sum);
    }
    Some(img)
}

/// `luks2_header`: the first byte picks the mode.
///
/// * even: the rest is a whole LUKS2 file (binary headers, JSON areas, key slots), given to
///   [`luks::read_header`] as is: checksums, the copy search and seqid arbitration;
/// * odd: the rest is the JSON text: [`v2::Metadata::parse`] on it, then the same text wrapped
///   into a valid header pair by [`luks2_image`] and opened, so JSON mutations reach the
///   segment/key-slot/digest checks and (cheap) key slots are tried against a zeroed key-slot
///   area.
pub fn luks2_header(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let file = rest.to_vec();
        if let Ok(h) = luks::read_header(&file) {
            exercise_layout(&h, &file);
        }
        return;
    }
    let md = v2::Metadata::parse(rest);
    if let Ok(m) = &md {
        for k in &m.keyslots {
            // A valid header may hold unusable key slots; those that are usable are within bounds.
            assert_eq!(k.usable.is_some(), k.unusable.is_none(), "slot {} is both or neither", k.id);
            if let Some(u) = &k.usable {
                assert!(k.key_size >= 1 && k.key_size <= v2::MAX_KEY_SIZE);
                assert!(k.id < v2::MAX_KEYSLOTS);
                assert!(u.af_stripes >= 1 && u.af_stripes <= v2::MAX_STRIPES);
                assert!(u64::from(k.key_size) * u64::from(u.af_stripes) <= u.area_size);
            }
        }
    }
    let Some(file) = luks2_image(rest, u64::from(mode >> 1)) else { return };
    if let Ok(h) = luks::read_header(&file) {
        assert!(md.is_ok(), "read_header accepted JSON that Metadata::parse rejects");
        exercise_layout(&h, &file);
    }
}

/// Offsets of the guest bytes a fuzz run maps: the first clusters in order, then points spread
/// over the virtual size.
fn guest_offsets(size: u64, cluster: u64) -> impl Iterator<Item = u64> {
    let walk = (0..64u64).map(move |i| i * cluster);
    let spread = (0..64u64).map(move |i| (size / 64).saturating_mul(i).saturating_add(i * 4097 % cluster));
    walk.chain(spread).filter(move |&g| g < size)
}

/// `qcow2_header`: the input is the start of a qcow2 file (header, extensions, first cluster).
///
/// Checks: [`QHeader::parse`] never panics, with the file as long as the input and as a 1 TiB
/// file; an accepted header has cluster_bits in range, the L1 table and the encryption header
/// inside the file, and a bounded L1 size; `refusal()` never panics.
pub fn qcow2_header(data: &[u8]) {
    for file_len in [data.len() as u64, 1 << 40] {
        let Ok(h) = QHeader::parse(data, file_len) else { continue };
        assert!((qh::MIN_CLUSTER_BITS..=qh::MAX_CLUSTER_BITS).contains(&h.cluster_bits));
        let l1_bytes = u64::from(h.l1_size) * 8;
        assert!(l1_bytes <= qh::MAX_L1_BYTES);
        if h.l1_size > 0 {
            assert!(h.l1_table_offset % h.cluster_size() == 0 && h.l1_table_offset + l1_bytes <= file_len);
        }
        if let Some((off, len)) = h.crypto_header {
            assert!(off.checked_add(len).is_some_and(|e| e <= file_len));
        }
        assert!(h.size.div_ceil(h.l2_coverage()) <= u64::from(h.l1_size));
        let _ = h.refusal();
        // The embedded LUKS header, when the input holds it (small seeds do not).
        if let Some((off, len)) = h.crypto_header
            && file_len == data.len() as u64
        {
            let file: Arc<dyn ReadAt> = Arc::new(data.to_vec());
            let Ok(w) = Window::new(file, off, len, "the embedded LUKS header") else { return };
            if let Ok(hdr) = luks::read_header(&w) {
                exercise_layout(&hdr, &w);
            }
        }
    }
}

/// `qcow2_map`: the input is a whole (small) qcow2 image.
///
/// Parses its header, loads the L1 table through [`Qcow2::new`] and maps guest offsets the way
/// `luksfs::image` reads them (a run per call, coalescing host-contiguous data clusters). Every
/// mapping must be non-empty, stay within the cluster and the request, and a data mapping must lie
/// inside the file and outside the header cluster, the L1 table and the encryption header; the
/// mapped host bytes are then read (which must succeed).
pub fn qcow2_map(data: &[u8]) {
    let file_len = data.len() as u64;
    let first = &data[..data.len().min(1 << qh::MAX_CLUSTER_BITS)];
    let Ok(h) = QHeader::parse(first, file_len) else { return };
    assert_eq!(luksfs::image::Format::probe(data), Some(luksfs::image::Format::Qcow2), "parsed but not probed");
    let cs = h.cluster_size();
    let size = h.size;
    let mut meta = vec![(0, cs), (h.l1_table_offset, h.l1_table_offset + u64::from(h.l1_size) * 8)];
    if let Some((off, len)) = h.crypto_header {
        meta.push((off, off + len));
    }
    let file: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let Ok(q) = Qcow2::new(h, file.clone(), file_len) else { return };
    let mut buf = Vec::new();
    for guest in guest_offsets(size, cs) {
        let want = (size - guest).min(256 << 10);
        let mut done = 0u64;
        // At most a few runs per read, like Image::read_qcow2.
        for _ in 0..8 {
            if done >= want {
                break;
            }
            let g = guest + done;
            let Ok((st, n)) = q.map(g, want - done) else { break };
            assert!(n > 0 && n <= want - done, "map({g}, {}) gave length {n}", want - done);
            assert!(n <= cs - g % cs, "mapping of {n} bytes crosses the cluster boundary");
            // Host bytes the mapping points at: data, or a compressed cluster's sectors.
            let host = match st {
                Storage::Data(host) => Some((host, n)),
                Storage::Compressed(c) => {
                    assert!(c.len > 0 && c.len <= 2 * cs, "compressed cluster of {} bytes", c.len);
                    Some((c.host, c.len))
                }
                Storage::Zero | Storage::Unallocated => None,
            };
            if let Some((host, n)) = host {
                let end = host.checked_add(n).expect("host range overflows");
                assert!(end <= file_len, "data at {host}+{n} past the end of the {file_len}-byte file");
                for &(a, b) in &meta {
                    assert!(end <= a || b <= host, "data at {host}+{n} overlaps metadata [{a}, {b})");
                }
                buf.resize(n as usize, 0);
                file.read_exact_at(&mut buf, host).expect("mapped bytes are readable");
            }
            done += n;
        }
    }
}

/// Check what the rest of luksfs relies on in an accepted VG: every mappable LV maps each probed
/// offset to a PV of the VG, inside that PV's extent area, with a non-empty run that stays
/// inside the LV; LVs refused say why, and `map` refuses them too.
fn check_vg(vg: &lvm::Vg) {
    assert!(vg.extent_size > 0);
    for lv in &vg.lvs {
        assert_eq!(lv.size % vg.extent_size, 0, "LV {} size {} not whole extents", lv.name, lv.size);
        let _ = lvm::dm_name(&vg.name, &lv.name);
        if lv.unsupported.is_some() {
            assert!(lv.size == 0 || lv.map(vg, 0).is_err(), "LV {} is unsupported but maps", lv.name);
            continue;
        }
        let probes = (0..32u64).map(|i| lv.size / 32 * i + i * 511).chain([lv.size.saturating_sub(1)]);
        for off in probes.filter(|&o| o < lv.size) {
            let (i, at, run) = lv.map(vg, off).unwrap_or_else(|e| panic!("LV {} map({off}): {e}", lv.name));
            let pv = &vg.pvs[i];
            let end = pv.pe_start + pv.pe_count * vg.extent_size;
            assert!(run > 0 && run <= lv.size - off, "LV {} map({off}): run {run}", lv.name);
            assert!(
                at >= pv.pe_start && at.checked_add(run).is_some_and(|e| e <= end),
                "LV {} map({off}) = {at}+{run} outside {}'s extents [{}, {end})",
                lv.name,
                pv.name,
                pv.pe_start
            );
        }
        assert!(lv.map(vg, lv.size).is_err());
    }
}

/// `lvm_metadata`: the input is an LVM2 metadata text (as lvm2 stores it in a metadata area).
///
/// Checks: [`lvm::metadata::parse`] never panics and stays within its limits; a VG built from
/// the parsed text by [`lvm::Vg::from_metadata`] maps every linear/striped LV inside its PVs'
/// extent areas (see `check_vg`).
pub fn lvm_metadata(data: &[u8]) {
    let Ok(root) = lvm::metadata::parse(data) else { return };
    if let Ok(vg) = lvm::Vg::from_metadata(&root) {
        check_vg(&vg);
    }
}

/// A reader of `data` followed by zeros up to `size` bytes (a PV image whose input holds only
/// its first bytes).
struct ZeroTail<'a> {
    data: &'a [u8],
    size: u64,
}

impl ReadAt for ZeroTail<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> luksfs::Result<()> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.size);
        if end.is_none() {
            return Err(luksfs::Error::corrupt(format!("read of {} bytes at {offset} past the end", buf.len())));
        }
        buf.fill(0);
        let len = self.data.len() as u64;
        if offset < len {
            let n = (len - offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.data[offset as usize..offset as usize + n]);
        }
        Ok(())
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// `lvm_pv`: the input is the start of an LVM2 PV (label, pv_header, metadata areas).
///
/// [`lvm::read_pv`] reads it as a volume of exactly the input's length and as one of 1 GiB
/// (the input followed by zeros). Checks: never a panic; `probe` agrees with an accepted label;
/// an accepted VG lists this PV, whose extents fit in the volume, and maps like `lvm_metadata`
/// requires; mapped bytes of LVs on this PV alone are readable.
pub fn lvm_pv(data: &[u8]) {
    let file = data.to_vec();
    let big = ZeroTail { data, size: 1 << 30 };
    for (src, size) in [(&file as &dyn ReadAt, data.len() as u64), (&big as &dyn ReadAt, 1 << 30)] {
        let Ok(pv) = lvm::read_pv(src, size) else { continue };
        assert!(lvm::probe(&data[..data.len().min(2048)]), "read_pv accepted a label probe rejects");
        let Some(vg) = &pv.vg else {
            assert!(pv.index.is_none());
            continue;
        };
        let me = pv.index.expect("a VG lists the PV it was read from");
        assert_eq!(vg.pvs[me].uuid, pv.uuid);
        let p = &vg.pvs[me];
        assert!(p.pe_start + p.pe_count * vg.extent_size <= size, "extents beyond the volume");
        check_vg(vg);
        let mut buf = vec![0u8; 4096];
        for lv in vg.lvs.iter().filter(|l| l.unsupported.is_none() && l.pv_indices() == [me]) {
            let (_, at, run) = lv.map(vg, 0).expect("checked by check_vg");
            let n = run.min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..n], at).expect("mapped bytes are readable");
        }
    }
}

/// `qcow2_read`: the input is a whole (small) qcow2 image, read as an unencrypted guest disk.
///
/// Opens it with [`Qcow2Reader::open`] (only plain images luksfs does not refuse get further) and
/// reads ranges across the guest disk: whole clusters, pieces of them, runs across cluster
/// boundaries. Compressed clusters are decompressed (deflate or zstd, by the header). Checks: a
/// read inside the guest disk either fails (with a corrupt/unsupported/I/O class, never a panic)
/// or gives bytes that do not depend on how the range is cut: one read, two halves and the
/// kept-cluster path must agree; a read past the end is refused.
pub fn qcow2_read(data: &[u8]) {
    let file: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let Ok(r) = Qcow2Reader::open(file) else { return };
    let size = r.size();
    let cs = r.qcow2().header().cluster_size();
    let mut whole = Vec::new();
    let mut part = Vec::new();
    for guest in guest_offsets(size, cs).take(48) {
        // a run of up to three clusters from an odd offset inside the first
        let start = guest + (guest / cs * 977) % cs;
        if start >= size {
            continue;
        }
        let len = (size - start).min(2 * cs + 1 + guest % 7).min(1 << 21);
        whole.resize(len as usize, 0xa5);
        let Ok(()) = r.read_at(start, &mut whole) else { continue };
        // the same bytes in two reads, split inside a cluster (the first part small, so a
        // compressed cluster goes through the kept-cluster path)
        let cut = (len / 3).max(1);
        part.resize(len as usize, 0x5a);
        let (a, b) = part.split_at_mut(cut as usize);
        r.read_at(start, a).expect("the first part of a readable range reads");
        r.read_at(start + cut, b).expect("the second part of a readable range reads");
        assert!(whole == part, "guest bytes at {start}+{len} depend on how the read is cut");
    }
    let mut one = [0u8; 1];
    assert!(r.read_at(size, &mut one).is_err(), "read past the end of the guest disk");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_tiny_inputs() {
        for n in 0..64 {
            let d = vec![0xa5u8; n];
            luks1_header(&d);
            luks2_header(&d);
            qcow2_header(&d);
            qcow2_map(&d);
            lvm_metadata(&d);
            lvm_pv(&d);
            image_signature(&d);
        }
    }

    #[test]
    fn lvm_seeds_in_the_repository_pass() {
        for t in ["lvm_metadata", "lvm_pv"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(t);
            for f in std::fs::read_dir(dir).unwrap() {
                let d = std::fs::read(f.unwrap().path()).unwrap();
                if t == "lvm_pv" {
                    lvm_pv(&d);
                    let big = ZeroTail { data: &d, size: 1 << 30 };
                    assert!(lvm::read_pv(&big, 1 << 30).unwrap().vg.is_some());
                } else {
                    lvm_metadata(&d);
                    lvm::Vg::from_metadata(&lvm::metadata::parse(&d).unwrap()).unwrap();
                }
            }
        }
    }

    /// The committed seeds run through their targets (the compressed qcow2 seeds read back).
    #[test]
    fn committed_qcow2_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for (target, run) in [("qcow2_map", qcow2_map as fn(&[u8])), ("qcow2_read", qcow2_read)] {
            for e in std::fs::read_dir(dir.join(target)).unwrap() {
                run(&std::fs::read(e.unwrap().path()).unwrap());
            }
        }
        for name in ["qemu-c512-zlib", "qemu-c512-zstd"] {
            let data = std::fs::read(dir.join("qcow2_read").join(name)).unwrap();
            let r = Qcow2Reader::open(Arc::new(data)).unwrap();
            let mut all = vec![0u8; r.size() as usize];
            r.read_at(0, &mut all).unwrap();
            assert!(r.decompressed_clusters() > 0, "{name}: no compressed cluster read");
            assert_eq!(&all[1000..1700], &[0x5a; 700][..], "{name}: the qemu-io pattern");
        }
    }

    /// The committed `image_signature` seeds (openssl signatures of an empty file) verify, and
    /// stop verifying when one bit of the signature flips.
    #[test]
    fn committed_image_signature_seeds_verify() {
        use luksfs::signature::{HashMethod, KeyType, Request, verify};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/image_signature");
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let mut d = std::fs::read(&path).unwrap();
            image_signature(&d);
            let sel = d[0];
            let len = usize::from(u16::from_be_bytes([d[1], d[2]]));
            let key_type =
                [KeyType::RsaPss, KeyType::Dsa, KeyType::EccSecp384r1, KeyType::EccSecp521r1][usize::from(sel & 3)];
            let hash = [HashMethod::Sha224, HashMethod::Sha256, HashMethod::Sha384, HashMethod::Sha512]
                [usize::from((sel >> 2) & 3)];
            let uuid = "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f".to_string();
            let now = std::time::SystemTime::now();
            let req = Request { signature: d[3..3 + len].to_vec(), hash, key_type, certificate_uuid: uuid.clone() };
            let c = verify(&req, &hash.digest(b""), &d[3 + len..], None, now);
            assert_eq!(c.result, Ok(()), "{}", path.display());
            d[3 + len / 2] ^= 1;
            let req = Request { signature: d[3..3 + len].to_vec(), hash, key_type, certificate_uuid: uuid };
            assert!(verify(&req, &hash.digest(b""), &d[3 + len..], None, now).result.is_err(), "{}", path.display());
        }
    }

    #[test]
    fn luks2_image_checksums_verify() {
        // the smallest metadata cryptsetup's rules accept: one segment, its digest, no key slot
        let json = br#"{"keyslots":{},"tokens":{},"segments":{"0":{"type":"crypt","offset":"32768","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}},"digests":{"0":{"type":"pbkdf2","keyslots":[],"segments":["0"],"hash":"sha256","iterations":1000,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},"config":{"json_size":"12288","keyslots_size":"0"}}"#;
        let img = luks2_image(json, 1).unwrap();
        let h = luks::read_header(&img).unwrap();
        assert_eq!(h.version(), 2);
    }
}

/// `volume_tree`: the input is a whole (small) disk image: a partition table, an LVM2 PV, a
/// qcow2 container, LUKS headers, in any nesting.
///
/// Builds the image's volume tree the way `mount`, `inspect` and `verify` do
/// ([`luksfs::volume::ImageTree`]) and walks every volume it reveals without a key. Checks: no
/// panic; the depth and volume-count limits hold; every readable volume's reads of its first and
/// last bytes succeed or fail with an error (never past its size); a partition lies inside the
/// volume that holds it.
pub fn volume_tree(data: &[u8]) {
    use luksfs::volume::{ImageTree, Limits};
    let limits = Limits::default();
    let src: Arc<dyn ReadAt> = Arc::new(data.to_vec());
    let tree =
        ImageTree::on(src, std::path::Path::new("fuzz.img"), std::path::Path::new(""), &Default::default(), limits);
    let all = tree.volumes();
    assert!(all.len() <= limits.max_volumes, "{} volumes", all.len());
    let mut buf = [0u8; 512];
    for v in &all {
        assert!(v.depth <= limits.max_depth + 1, "depth {}", v.depth);
        for c in v.children() {
            if let Some(off) = c.offset {
                assert!(off.checked_add(c.size).is_some_and(|e| e <= v.size) || c.reader().is_none(), "child outside");
            }
        }
        if let Some(r) = v.reader() {
            assert_eq!(r.size(), v.size);
            let n = (v.size.min(512)) as usize;
            let _ = r.read_exact_at(&mut buf[..n], 0);
            let _ = r.read_exact_at(&mut buf[..n], v.size - n as u64);
            assert!(r.read_exact_at(&mut buf[..1], v.size).is_err(), "read past the end succeeded");
        }
    }
}

/// `cinder_metadata`: the input is a Cinder backup's `_metadata` object (JSON).
///
/// Checks: [`Metadata::parse`](luksfs::formats::cinder_backup::metadata::Metadata::parse)
/// never panics; accepted metadata has objects sorted by offset, non-empty, within the named
/// limits and not overlapping; a full backup's extent map covers `[0, size)` with contiguous
/// extents whose sources lie inside their objects, and every lookup lands in the right extent.
pub fn cinder_metadata(data: &[u8]) {
    use luksfs::formats::cinder_backup::assemble::ExtentMap;
    use luksfs::formats::cinder_backup::metadata::{self as cm, Metadata};
    let Ok(m) = Metadata::parse(data) else { return };
    assert!(m.objects.len() <= cm::MAX_OBJECTS);
    for w in m.objects.windows(2) {
        assert!(w[0].end() <= w[1].offset, "objects overlap");
    }
    for o in &m.objects {
        assert!(o.length >= 1 && o.length <= cm::MAX_OBJECT_LEN && o.end() <= cm::MAX_VOLUME_BYTES);
    }
    if m.parent_id.is_some() {
        return;
    }
    let map = ExtentMap::build(&[&m]).expect("a full backup's objects always assemble");
    assert_eq!(map.size(), m.extent_end());
    let mut at = 0;
    for e in map.extents() {
        assert!(e.start == at && e.end > e.start, "extents not contiguous at {at}");
        if let Some(s) = e.source {
            let o = &m.objects[s.object];
            assert!(s.backup == 0 && o.offset <= e.start && e.end <= o.end());
        }
        assert_eq!(map.lookup(e.start), Some(e));
        assert_eq!(map.lookup(e.end - 1), Some(e));
        at = e.end;
    }
    assert_eq!(at, map.size());
    assert!(map.lookup(map.size()).is_none());
}

/// `cinder_sha256file`: the input is a Cinder backup's `_sha256file` object (JSON).
///
/// Checks: [`Sha256File::parse`](luksfs::formats::cinder_backup::sha256file::Sha256File::parse)
/// never panics; accepted files have a block size within the limit, and `check_covers` accepts
/// exactly the volume sizes the digests cover.
pub fn cinder_sha256file(data: &[u8]) {
    use luksfs::formats::cinder_backup::sha256file::{MAX_CHUNK_SIZE, Sha256File};
    let Ok(f) = Sha256File::parse(data) else { return };
    assert!(f.chunk_size >= 1 && f.chunk_size <= MAX_CHUNK_SIZE);
    let n = f.sha256s.len() as u64;
    let full = n * f.chunk_size;
    assert!(f.check_covers(full).is_ok());
    if n > 0 {
        assert!(f.check_covers(full - f.chunk_size + 1).is_ok());
        assert!(f.check_covers(full + 1).is_err());
    }
}

/// `mbr` and `gpt`: the input is a whole (small) disk; [`partition::read_table`] reads it as
/// the daemon reads a disk, and [`partition::probe`] looks at its first MiB. The two targets
/// differ by their seeds (sfdisk DOS labels with EBR chains; sgdisk/sfdisk GPTs, 512- and
/// 4096-byte sectors) and dictionaries.
///
/// Checks: no panic; `probe` agrees with `read_table` (no table ⇔ `None`; a table ⇒ its kind; an
/// error only for a GPT that cannot be read, and always `Corrupt`); numbers strictly increase;
/// every partition without a `problem` is non-empty, sector-aligned, after sector 0 and inside
/// the input, and no two of them overlap (an extended partition holds its logicals, so it is
/// left out of that check); every `problem` is `Corrupt`.
pub fn partition_table(data: &[u8]) {
    let size = data.len() as u64;
    let disk = data.to_vec();
    let kind = partition::probe(&data[..data.len().min(1 << 20)]);
    let t = match partition::read_table(&disk, size) {
        Ok(None) => {
            assert_eq!(kind, None, "probe found a table read_table did not");
            return;
        }
        Ok(Some(t)) => t,
        Err(e) => {
            assert_eq!(e.kind(), luksfs::ErrorKind::Corrupt, "{e}");
            assert_eq!(kind, Some(TableKind::Gpt), "error {e} on a table probed as {kind:?}");
            return;
        }
    };
    assert_eq!(kind, Some(t.kind), "probe and read_table disagree");
    let ss = u64::from(t.sector_size);
    assert!(matches!((t.kind, ss), (TableKind::Mbr, 512) | (TableKind::Gpt, 512 | 4096)), "{:?} {ss}", t.kind);
    assert!(t.partitions.windows(2).all(|w| w[0].number < w[1].number), "numbers out of order");
    let mut usable = Vec::new();
    for p in &t.partitions {
        if let Some(e) = &p.problem {
            assert_eq!(e.kind(), luksfs::ErrorKind::Corrupt, "{e}");
            continue;
        }
        let end = p.start.checked_add(p.size).expect("partition end overflows");
        assert!(
            p.size > 0 && p.start > 0 && end <= size,
            "partition {} [{}, {end}) outside the disk",
            p.number,
            p.start
        );
        assert!(p.start % ss == 0 && p.size % ss == 0, "partition {} not sector-aligned", p.number);
        if p.role != Role::Extended {
            usable.push((p.start, end, p.number));
        }
    }
    usable.sort_unstable();
    for w in usable.windows(2) {
        assert!(w[0].1 <= w[1].0, "usable partitions {} and {} overlap", w[0].2, w[1].2);
    }
}

/// `image_signature`: the certificate and signature of a Glance image signature, as `verify`
/// gets them from Barbican and the image's metadata. Input: byte 0 picks the key type (bits 0-1:
/// RSA-PSS, DSA, ECC_SECP384R1, ECC_SECP521R1) and the hash method (bits 2-3: SHA-224..SHA-512);
/// bytes 1-2 (big endian) are the signature's length, then the signature, then the certificate
/// payload (PEM or DER). The signed data is empty (the seeds, made by `fuzz/make-seeds.sh` with
/// openssl, sign an empty file). [`luksfs::signature::verify`] runs without and with the
/// certificate itself as the only `--ca` anchor, and [`luksfs::signature::cert::parse_bundle`]
/// over the payload.
///
/// Checks: no panic; a verified signature comes with the certificate's facts; a certificate
/// anchored to itself is never `Untrusted`; the outcome with an anchor differs from the one
/// without only by being `Untrusted`, or not at all.
pub fn image_signature(data: &[u8]) {
    use luksfs::signature::{HashMethod, KeyType, Request, SignatureError, cert, verify};
    let Some((&sel, rest)) = data.split_first() else { return };
    if rest.len() < 2 {
        return;
    }
    let sig_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    if sig_len > rest.len() {
        return;
    }
    let (signature, payload) = rest.split_at(sig_len);
    let key_type = [KeyType::RsaPss, KeyType::Dsa, KeyType::EccSecp384r1, KeyType::EccSecp521r1][usize::from(sel & 3)];
    let hash =
        [HashMethod::Sha224, HashMethod::Sha256, HashMethod::Sha384, HashMethod::Sha512][usize::from((sel >> 2) & 3)];
    let req = Request {
        signature: signature.to_vec(),
        hash,
        key_type,
        certificate_uuid: "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f".into(),
    };
    let digest = hash.digest(b"");
    // inside any sane certificate's validity period, so that the key is reached
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let plain = verify(&req, &digest, payload, None, now);
    if plain.result.is_ok() {
        assert!(plain.certificate.is_some(), "verified without a certificate");
    }
    let _ = cert::parse_bundle(payload);
    if let Ok(c) = cert::parse(payload) {
        let anchored = verify(&req, &digest, payload, Some(std::slice::from_ref(&c)), now);
        assert!(!matches!(anchored.result, Err(SignatureError::Untrusted { .. })), "self-anchored but untrusted");
        assert_eq!(anchored.result, plain.result, "an anchor changed the outcome");
        assert_eq!(anchored.certificate, plain.certificate);
    }
}
