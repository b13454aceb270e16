//! `formats::partition` against the tools that write partition tables: every table is made by
//! `sgdisk` or `sfdisk` on a sparse file (or on a loop device with 4096-byte sectors), and every
//! partition's number, start, size, type, UUID, name and boot flag must be what `sfdisk --json`
//! and `sgdisk -i` print for the same image. Damage (a broken header CRC, overlapping or
//! out-of-range entries, an EBR loop, a truncated disk) is done to tool-made tables with `dd`-style
//! patches; where a patch touches a GPT entry, the CRCs are fixed so only the intended problem
//! remains.
//!
//! The second judge, util-linux's own partition-table samples and expected lists, is in
//! [`util_linux_blkid_samples`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use luksfs::ErrorKind;
use luksfs::formats::partition::{self, Partition, Role, Table, TableKind};
use luksfs::io::{FileSource, ReadAt};
use serde_json::Value;

use crate::util::{Lab, MIB, ci, sh, skip, tool, which};

// ------------------------------------------------------------------ helpers

/// A sparse file of `size` bytes in the lab's work directory.
fn blank(lab: &Lab, name: &str, size: u64) -> PathBuf {
    let p = lab.work.join(name);
    File::create(&p).unwrap().set_len(size).unwrap();
    p
}

/// luksfs's reading of the table of `img` (`Ok(None)`: no table).
fn read(img: &Path) -> luksfs::Result<Option<Table>> {
    let f = FileSource::open(img).unwrap();
    partition::read_table(&f, f.size())
}

#[track_caller]
fn table(img: &Path) -> Table {
    read(img).unwrap_or_else(|e| panic!("{}: {e}", img.display())).expect("a partition table")
}

fn sgdisk(args: &[&str], dev: &Path) {
    let mut c = tool("sgdisk");
    c.args(args).arg(dev);
    sh(c);
}

fn sfdisk_script(script: &str, dev: &Path) {
    let mut c = tool("sfdisk");
    c.args(["-q", "--no-reread", "--no-tell-kernel"]).arg(dev);
    let mut c = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "sfdisk {} failed on script:\n{script}", dev.display());
}

/// One partition as a tool prints it (in sectors of the table's sector size).
#[derive(Debug)]
struct ToolPart {
    number: u32,
    start: u64,
    size: u64,
    kind: String,
    uuid: Option<String>,
    name: String,
    bootable: bool,
}

/// What `sfdisk --json DEV` prints: label, id, sector size, partitions.
fn sfdisk_json(dev: &Path) -> (String, String, u64, Vec<ToolPart>) {
    let mut c = tool("sfdisk");
    c.arg("--json").arg(dev);
    let v: Value = serde_json::from_slice(&sh(c)).unwrap();
    let t = &v["partitiontable"];
    let devs = dev.to_string_lossy().into_owned();
    let parts = t["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let node = p["node"].as_str().unwrap();
                    let n = node.strip_prefix(&devs).unwrap().trim_start_matches('p');
                    ToolPart {
                        number: n.parse().unwrap(),
                        start: p["start"].as_u64().unwrap(),
                        size: p["size"].as_u64().unwrap(),
                        kind: p["type"].as_str().unwrap().to_lowercase(),
                        uuid: p["uuid"].as_str().map(str::to_lowercase),
                        name: p["name"].as_str().unwrap_or("").to_string(),
                        // MBR: "bootable": true; GPT: "attrs": "LegacyBIOSBootable ..."
                        bootable: p["bootable"].as_bool().unwrap_or(false)
                            || p["attrs"].as_str().is_some_and(|a| a.contains("LegacyBIOSBootable")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (
        t["label"].as_str().unwrap().to_string(),
        t["id"].as_str().unwrap().to_lowercase(),
        t["sectorsize"].as_u64().unwrap(),
        parts,
    )
}

/// `sgdisk -i N DEV`: first sector, last sector, size in sectors, name.
fn sgdisk_info(dev: &Path, n: u32) -> (u64, u64, u64, String) {
    let mut c = tool("sgdisk");
    c.arg("-i").arg(n.to_string()).arg(dev);
    let text = String::from_utf8(sh(c)).unwrap();
    let field = |k: &str| {
        text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("sgdisk -i {n}: no {k}:\n{text}")).trim()
    };
    let num = |k: &str| field(k).split_whitespace().next().unwrap().parse::<u64>().unwrap();
    let name = field("Partition name:").trim_matches('\'').to_string();
    (num("First sector:"), num("Last sector:"), num("Partition size:"), name)
}

/// Every partition luksfs found is the one sfdisk lists (same numbers, starts, sizes, types,
/// UUIDs, names, boot flags), the table kind, id and sector size agree, and for GPT `sgdisk -i`
/// agrees on first/last sector, size and name. `dev` is what the tools read (the image, or its
/// loop device).
#[track_caller]
fn assert_matches_tools(t: &Table, dev: &Path) {
    let (label, id, ss, want) = sfdisk_json(dev);
    assert_eq!(label, if t.kind == TableKind::Gpt { "gpt" } else { "dos" });
    assert_eq!(u64::from(t.sector_size), ss, "sector size");
    assert_eq!(t.disk_id, id, "disk id");
    let got: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    let nums: Vec<u32> = want.iter().map(|p| p.number).collect();
    assert_eq!(got, nums, "partition numbers");
    for (p, w) in t.partitions.iter().zip(&want) {
        assert_eq!((p.start, p.size), (w.start * ss, w.size * ss), "partition {} start/size vs sfdisk", p.number);
        assert_eq!(p.name.clone().unwrap_or_default(), w.name, "partition {} name", p.number);
        assert_eq!(p.bootable, w.bootable, "partition {} bootable", p.number);
        match t.kind {
            TableKind::Gpt => {
                assert_eq!(p.type_id, w.kind, "partition {} type", p.number);
                assert_eq!(p.uuid, w.uuid, "partition {} uuid", p.number);
                let (first, last, sectors, name) = sgdisk_info(dev, p.number);
                assert_eq!(p.start, first * ss, "partition {} start vs sgdisk", p.number);
                assert_eq!(p.size, (last - first + 1) * ss, "partition {} size vs sgdisk last sector", p.number);
                assert_eq!(p.size, sectors * ss, "partition {} size vs sgdisk size", p.number);
                assert_eq!(p.name.as_deref(), Some(name.as_str()), "partition {} name vs sgdisk", p.number);
            }
            TableKind::Mbr => {
                let n = u8::from_str_radix(p.type_id.trim_start_matches("0x"), 16).unwrap();
                assert_eq!(n, u8::from_str_radix(&w.kind, 16).unwrap(), "partition {} type", p.number);
            }
        }
    }
}

#[track_caller]
fn assert_clean(t: &Table) {
    assert!(t.notes.is_empty(), "notes: {:?}", t.notes);
    for p in &t.partitions {
        assert!(p.problem.is_none(), "partition {}: {:?}", p.number, p.problem);
    }
}

#[track_caller]
fn problem(p: &Partition) -> String {
    let e = p.problem.as_ref().unwrap_or_else(|| panic!("partition {} should have a problem", p.number));
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    e.message().to_string()
}

fn head(img: &Path) -> Vec<u8> {
    let mut b = vec![0u8; 1 << 20];
    let f = File::open(img).unwrap();
    let n = f.read_at(&mut b, 0).unwrap();
    b.truncate(n);
    b
}

fn patch(img: &Path, off: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(img).unwrap().write_all_at(bytes, off).unwrap();
}

fn le32(img: &Path, off: u64) -> u32 {
    let mut b = [0u8; 4];
    File::open(img).unwrap().read_exact_at(&mut b, off).unwrap();
    u32::from_le_bytes(b)
}

fn le64(img: &Path, off: u64) -> u64 {
    let mut b = [0u8; 8];
    File::open(img).unwrap().read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

/// Recompute the entry-array CRC and then the header CRC of the GPT header at `hdr` (byte
/// offset), after a test patched an entry.
fn fix_gpt_crcs(img: &Path, hdr: u64, ss: u64) {
    let f = File::open(img).unwrap();
    let entries = le64(img, hdr + 72) * ss;
    let len = u64::from(le32(img, hdr + 80)) * u64::from(le32(img, hdr + 84));
    let mut arr = vec![0u8; len as usize];
    f.read_exact_at(&mut arr, entries).unwrap();
    patch(img, hdr + 88, &crc32fast::hash(&arr).to_le_bytes());
    let hsize = le32(img, hdr + 12) as usize;
    let mut h = vec![0u8; hsize];
    f.read_exact_at(&mut h, hdr).unwrap();
    h[16..20].fill(0);
    patch(img, hdr + 16, &crc32fast::hash(&h).to_le_bytes());
}

/// Byte offset of GPT entry `n` (1-based) of the primary array (128-byte entries).
fn gpt_entry(img: &Path, ss: u64, n: u64) -> u64 {
    le64(img, ss + 72) * ss + (n - 1) * 128
}

/// A GPT disk made by sgdisk: ESP, LUKS, LVM, a Linux filesystem with a non-ASCII name and the
/// legacy-BIOS-bootable attribute, a gap, and a partition numbered out of order.
fn sgdisk_disk(lab: &Lab, name: &str) -> PathBuf {
    #[rustfmt::skip]
    const LAYOUT: &[&str] = &[
        "-n", "1:2048:+1M", "-t", "1:ef00", "-c", "1:EFI system partition",
        "-n", "2:0:+8M", "-t", "2:8309", "-c", "2:cryptroot",
        "-n", "3:0:+12M", "-t", "3:8e00", "-c", "3:lvm",
        "-n", "5:61440:+3M", "-t", "5:8300", "-c", "5:données été", "-A", "5:set:2",
        "-n", "4:0:0", "-t", "4:8300",
    ];
    let img = blank(lab, name, 64 * MIB as u64);
    sgdisk(LAYOUT, &img);
    img
}

// ------------------------------------------------------------------ GPT

#[test]
fn gpt_by_sgdisk_matches_sfdisk_and_sgdisk() {
    need!("sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let t = table(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_clean(&t);
    assert_matches_tools(&t, &img);
    assert_eq!(partition::probe(&head(&img)), Some(TableKind::Gpt));
    let names: Vec<&str> = t.partitions.iter().map(|p| p.type_name).collect();
    assert_eq!(names, ["EFI System", "Linux LUKS", "Linux LVM", "Linux filesystem", "Linux filesystem"]);
    assert_eq!(t.partitions[4].name.as_deref(), Some("données été"));
    assert!(t.partitions[4].bootable);
    assert!(t.partitions.iter().all(|p| p.role == Role::Primary));
}

/// sfdisk's GPT: a short entry array (16 entries), names with spaces, attributes, a partition
/// ending at the last usable LBA.
#[test]
fn gpt_by_sfdisk_matches_sfdisk_and_sgdisk() {
    need!("sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = blank(&lab, "sf-gpt.img", 48 * MIB as u64);
    sfdisk_script(
        "label: gpt\ntable-length: 16\n\n\
         size=3MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI System\", attrs=\"RequiredPartition\"\n\
         size=10MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=\"swap space\"\n\
         type=CA7D7CCB-63ED-4C53-861C-1742536059CC, name=crypt, attrs=\"LegacyBIOSBootable\"\n",
        &img,
    );
    let t = table(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_clean(&t);
    assert_matches_tools(&t, &img);
    assert_eq!(t.partitions[2].type_name, "Linux LUKS");
    assert!(t.partitions[2].bootable);
}

/// sgdisk's hybrid MBR (`-h`): the GPT is still what counts, and a note says so.
#[test]
fn gpt_with_hybrid_mbr() {
    need!("sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "hybrid.img");
    sgdisk(&["-h", "1:3"], &img);
    let t = table(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(t.notes.iter().any(|n| n.contains("hybrid MBR")), "{:?}", t.notes);
    assert!(t.partitions.iter().all(|p| p.problem.is_none()));
    // sfdisk reads the hybrid MBR as dos: compare the partitions with sgdisk alone
    for p in &t.partitions {
        let (first, last, _, name) = sgdisk_info(&img, p.number);
        assert_eq!((p.start, p.size), (first * 512, (last - first + 1) * 512));
        assert_eq!(p.name.as_deref(), Some(name.as_str()));
    }
}

/// 4096-byte logical sectors: sgdisk on a loop device with `--sector-size 4096`; luksfs reads
/// the plain file (and the loop device) and finds the GPT at LBA 1 of 4 KiB sectors. Then the primary header is
/// damaged: the backup at the last 4 KiB LBA is used.
#[test]
fn gpt_4096_byte_sectors() {
    need!("root", "losetup", "sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = blank(&lab, "gpt4k.img", 64 * MIB as u64);
    let lo = Loop::attach(&img, 4096);
    sgdisk(
        &[
            "-n", "1:0:+1M", "-t", "1:ef00", "-c", "1:esp", "-n", "2:0:+20M", "-t", "2:8309", "-c", "2:crypt", "-n",
            "3:0:0",
        ],
        &lo.dev,
    );
    let t = table(&img);
    assert_eq!((t.kind, t.sector_size), (TableKind::Gpt, 4096));
    assert_clean(&t);
    assert_matches_tools(&t, &lo.dev);
    // the same through the block device (its size from BLKGETSIZE64)
    assert_eq!(table(&lo.dev), t);
    drop(lo);

    patch(&img, 4096 + 16, &[0xde, 0xad, 0xbe, 0xef]);
    let b = table(&img);
    let last = 64 * MIB as u64 / 4096 - 1;
    assert_eq!(b.notes.len(), 1, "{:?}", b.notes);
    assert!(b.notes[0].starts_with("primary GPT header is damaged (header CRC mismatch"), "{:?}", b.notes);
    assert!(b.notes[0].ends_with(&format!("using the backup at LBA {last}")), "{:?}", b.notes);
    assert_eq!(b.partitions, t.partitions);
}

/// A loop device over a file with the given logical sector size, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(file: &Path, sector_size: u32) -> Loop {
        let mut c = tool("losetup");
        c.args(["--show", "-f", "--sector-size", &sector_size.to_string()]).arg(file);
        let dev = String::from_utf8(sh(c)).unwrap().trim().to_string();
        Loop { dev: PathBuf::from(dev) }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = tool("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// `dd` over the primary header's CRC: the backup header at the last LBA is used, with a note,
/// and the partitions are the same. Then the primary entry array instead of the header.
#[test]
fn gpt_damaged_primary_falls_back_to_backup() {
    need!("sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let good = table(&img);
    let last = 64 * MIB as u64 / 512 - 1;

    let hdr = lab.work.join("hdr.img");
    std::fs::copy(&img, &hdr).unwrap();
    patch(&hdr, 512 + 16, &[0, 0, 0, 0]);
    let t = table(&hdr);
    assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    assert!(
        t.notes[0].starts_with("primary GPT header is damaged (header CRC mismatch (stored 0x00000000"),
        "{:?}",
        t.notes
    );
    assert!(t.notes[0].ends_with(&format!("; using the backup at LBA {last}")), "{:?}", t.notes);
    assert_eq!(t.partitions, good.partitions);
    assert_eq!(t.disk_id, good.disk_id);

    let arr = lab.work.join("array.img");
    std::fs::copy(&img, &arr).unwrap();
    patch(&arr, gpt_entry(&arr, 512, 2) + 56, b"X"); // a byte of partition 2's name
    let t = table(&arr);
    assert!(t.notes[0].contains("partition entry array CRC mismatch"), "{:?}", t.notes);
    assert_eq!(t.partitions, good.partitions);

    // a damaged backup is only a note
    let bk = lab.work.join("backup.img");
    std::fs::copy(&img, &bk).unwrap();
    patch(&bk, last * 512 + 16, &[1, 2, 3, 4]);
    let t = table(&bk);
    assert_eq!(t.partitions, good.partitions);
    assert!(
        t.notes.iter().any(|n| n.starts_with(&format!("backup GPT header at LBA {last} is damaged"))),
        "{:?}",
        t.notes
    );
}

/// Sector 0 wiped: the GPT is still read (as gdisk does), with a note that the kernel would
/// ignore it; the partitions are unchanged.
#[test]
fn gpt_without_protective_mbr() {
    need!("sgdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let good = table(&img);
    patch(&img, 0, &[0u8; 512]);
    assert_eq!(partition::probe(&head(&img)), Some(TableKind::Gpt));
    let t = table(&img);
    assert_eq!(t.partitions, good.partitions);
    assert_eq!(t.notes, ["no protective MBR in sector 0 (the kernel would ignore this GPT)"]);
}

/// Both headers damaged: a Corrupt error naming both problems.
#[test]
fn gpt_both_headers_damaged_is_corrupt() {
    need!("sgdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let last = 64 * MIB as u64 / 512 - 1;
    patch(&img, 512 + 16, &[0, 0, 0, 0]);
    patch(&img, last * 512, b"EFI TRAP");
    assert_eq!(partition::probe(&head(&img)), Some(TableKind::Gpt));
    let e = read(&img).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let m = e.message();
    assert!(m.contains("primary at LBA 1: header CRC mismatch (stored 0x00000000"), "{m}");
    assert!(m.contains(&format!("backup at LBA {last}: no \"EFI PART\" signature")), "{m}");
}

/// Entries patched to overlap, to run past the usable range and to end before they start (CRCs
/// fixed): each is flagged, the later of two overlapping ones, and the others stay usable.
/// sfdisk still lists the raw entries: starts agree with it.
#[test]
fn gpt_overlapping_and_out_of_range_entries() {
    need!("sgdisk", "sfdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let good = table(&img);
    let p2 = &good.partitions[1];
    // partition 3 starts inside partition 2
    let inside = (p2.start + p2.size) / 512 - 8;
    patch(&img, gpt_entry(&img, 512, 3) + 32, &inside.to_le_bytes());
    // partition 5 ends past the last usable LBA (but inside the disk)
    let last_usable = le64(&img, 512 + 48);
    patch(&img, gpt_entry(&img, 512, 5) + 40, &(last_usable + 10).to_le_bytes());
    // partition 1 ends before it starts
    patch(&img, gpt_entry(&img, 512, 1) + 40, &100u64.to_le_bytes());
    fix_gpt_crcs(&img, 512, 512);
    let t = table(&img);
    assert!(t.notes.iter().all(|n| !n.contains("primary")), "the primary is still valid: {:?}", t.notes);
    let by = |n: u32| t.partitions.iter().find(|p| p.number == n).unwrap();
    assert!(problem(by(1)).contains("first LBA 2048 is after its last LBA 100"), "{}", problem(by(1)));
    assert!(by(2).problem.is_none());
    assert!(problem(by(3)).contains("overlaps partition 2"), "{}", problem(by(3)));
    assert!(by(4).problem.is_none(), "{:?}", by(4).problem);
    assert!(problem(by(5)).contains("outside the GPT's usable range"), "{}", problem(by(5)));
    let (_, _, _, tools) = sfdisk_json(&img);
    for w in tools {
        assert_eq!(by(w.number).start, w.start * 512, "partition {}", w.number);
    }
}

/// A GPT disk cut short (a truncated copy): the primary header is used, the partitions that
/// still fit are usable, the others are flagged past the end, and the notes say the disk is
/// truncated.
#[test]
fn gpt_truncated_disk() {
    need!("sgdisk");
    let lab = Lab::new();
    let img = sgdisk_disk(&lab, "gpt.img");
    let good = table(&img);
    File::options().write(true).open(&img).unwrap().set_len(16 * MIB as u64).unwrap();
    let t = table(&img);
    assert!(t.notes.iter().any(|n| n.contains("truncated")), "{:?}", t.notes);
    for (p, g) in t.partitions.iter().zip(&good.partitions) {
        assert_eq!((p.number, p.start, p.size), (g.number, g.start, g.size));
        let fits = p.start + p.size <= 16 * MIB as u64;
        assert_eq!(p.problem.is_none(), fits, "partition {}: {:?}", p.number, p.problem);
        if !fits {
            assert!(problem(p).contains("ends past the end of the disk (32768 sectors)"), "{}", problem(p));
        }
    }
}

// ------------------------------------------------------------------ MBR

const DOS_SCRIPT: &str = "label: dos\nlabel-id: 0x1234abcd\n\n\
    start=2048, size=4096, type=83, bootable\n\
    start=8192, size=4096, type=8e\n\
    size=40MiB, type=5\n\
    size=2MiB, type=83\n\
    size=3MiB, type=82\n\
    size=4MiB, type=e8\n\
    size=1MiB\n\
    size=2MiB, type=7\n\
    size=1MiB, type=b\n";

fn dos_disk(lab: &Lab, name: &str) -> PathBuf {
    let img = blank(lab, name, 64 * MIB as u64);
    sfdisk_script(DOS_SCRIPT, &img);
    img
}

/// An MBR with two primaries, an extended partition, five logicals and a fourth primary after
/// it, all made by sfdisk: numbers (logicals from 5), starts, sizes, types and the boot flag are
/// sfdisk's.
#[test]
fn mbr_extended_and_logicals_match_sfdisk() {
    need!("sfdisk");
    let lab = Lab::new();
    let img = dos_disk(&lab, "dos.img");
    let t = table(&img);
    assert_eq!((t.kind, t.disk_id.as_str()), (TableKind::Mbr, "0x1234abcd"));
    assert_clean(&t);
    assert_matches_tools(&t, &img);
    assert_eq!(partition::probe(&head(&img)), Some(TableKind::Mbr));
    let roles: Vec<Role> = t.partitions.iter().map(|p| p.role).collect();
    use Role::*;
    assert_eq!(roles, [Primary, Primary, Extended, Primary, Logical, Logical, Logical, Logical, Logical]);
    let names: Vec<&str> = t.partitions.iter().map(|p| p.type_name).collect();
    assert_eq!(names[..3], ["Linux", "Linux LVM", "Extended"]);
    // sfdisk makes the line after the extended partition primary 4; the logicals follow
    assert_eq!(names[3..6], ["Linux", "Linux swap / Solaris", "Linux LUKS"]);
    assert!(t.partitions[0].bootable && !t.partitions[1].bootable);
    let volumes: Vec<u32> = t.partitions.iter().filter(|p| p.is_volume()).map(|p| p.number).collect();
    assert_eq!(volumes, [1, 2, 4, 5, 6, 7, 8, 9]);
}

/// An empty DOS label (sfdisk `label: dos` without partitions) is a table with no partitions.
#[test]
fn mbr_empty_label() {
    need!("sfdisk");
    let lab = Lab::new();
    let img = blank(&lab, "empty.img", 8 * MIB as u64);
    sfdisk_script("label: dos\nlabel-id: 0x0badcafe\n", &img);
    let t = table(&img);
    assert_eq!((t.kind, t.disk_id.as_str(), t.partitions.len()), (TableKind::Mbr, "0x0badcafe", 0));
    assert_matches_tools(&t, &img);
}

/// LBA of every EBR of the first extended partition, read the simple way.
fn ebrs(img: &Path) -> Vec<u64> {
    let t = table(img);
    let ext = t.partitions.iter().find(|p| p.role == Role::Extended).unwrap().start / 512;
    let mut out = vec![ext];
    loop {
        let link = 446 + 16;
        let rel = le32(img, out.last().unwrap() * 512 + link + 8);
        if rel == 0 {
            return out;
        }
        out.push(ext + u64::from(rel));
    }
}

/// The last EBR's link patched to point back at the second EBR: the chain is broken (a note and
/// the extended partition's problem), the logicals read before stay, nothing loops.
#[test]
fn mbr_ebr_loop_keeps_logicals_found() {
    need!("sfdisk");
    let lab = Lab::new();
    let img = dos_disk(&lab, "loop.img");
    let good = table(&img);
    let chain = ebrs(&img);
    assert_eq!(chain.len(), 5);
    let ext = chain[0];
    let last = chain[4];
    // link entry of the last EBR: type 5, start relative to the extended partition, 1 sector
    let mut link = [0u8; 16];
    link[4] = 0x05;
    link[8..12].copy_from_slice(&((chain[1] - ext) as u32).to_le_bytes());
    link[12..16].copy_from_slice(&1u32.to_le_bytes());
    patch(&img, last * 512 + 446 + 16, &link);
    let t = table(&img);
    assert_eq!(t.partitions, {
        let mut g = good.partitions.clone();
        let e = g.iter_mut().find(|p| p.role == Role::Extended).unwrap();
        e.problem = t.partitions[2].problem.clone();
        g
    });
    let m = problem(&t.partitions[2]);
    assert!(
        m.contains(&format!("extended partition 3: the EBR chain loops back to the EBR at LBA {}", chain[1])),
        "{m}"
    );
    assert!(m.contains("5 logical partitions read before it"), "{m}");
    assert_eq!(t.notes, [m]);
}

/// A primary entry patched to overlap another one, and the disk cut short through the last
/// logical: the later partition of the overlapping pair and the cut ones are flagged.
#[test]
fn mbr_overlap_and_past_end() {
    need!("sfdisk");
    let lab = Lab::new();
    let img = dos_disk(&lab, "bad.img");
    // partition 2 starts inside partition 1 (start LBA 4000)
    patch(&img, 446 + 16 + 8, &4000u32.to_le_bytes());
    let t = table(&img);
    assert_matches_tools(&t, &img);
    assert!(t.partitions[0].problem.is_none());
    assert!(problem(&t.partitions[1]).contains("overlaps partition 1"), "{}", problem(&t.partitions[1]));
    assert!(t.partitions[2..].iter().all(|p| p.problem.is_none()));

    // cut the disk inside logical 8 (LBA 36864.. per sfdisk): 8 ends past the end, and so do
    // the extended partition and primary 4; the EBR of 9 is past the end, so the chain stops
    File::options().write(true).open(&img).unwrap().set_len(38000 * 512).unwrap();
    let t = table(&img);
    let flagged: Vec<u32> = t.partitions.iter().filter(|p| p.problem.is_some()).map(|p| p.number).collect();
    assert_eq!(flagged, [2, 3, 4, 8]);
    assert_eq!(t.partitions.len(), 8);
    assert!(
        problem(&t.partitions[7]).contains("ends past the end of the disk (38000 sectors)"),
        "{}",
        problem(&t.partitions[7])
    );
    assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    assert!(
        t.notes[0].contains("past the end of the disk (38000 sectors); 4 logical partitions read before it"),
        "{:?}",
        t.notes
    );
}

/// Volume boot sectors carry 0x55AA too: FAT12/16/32 made by mkfs.vfat are not partition tables.
#[test]
fn fat_boot_sectors_are_not_mbrs() {
    need!("mkfs.vfat");
    let lab = Lab::new();
    for (bits, mib) in [("12", 4), ("16", 32), ("32", 64)] {
        let img = blank(&lab, &format!("fat{bits}.img"), mib * MIB as u64);
        let mut c = tool("mkfs.vfat");
        c.args(["-F", bits]).arg(&img);
        sh(c);
        assert_eq!(read(&img).unwrap(), None, "FAT{bits}");
        assert_eq!(partition::probe(&head(&img)), None, "FAT{bits}");
    }
}

// ------------------------------------------------------------------ util-linux's samples

/// util-linux's blkid test data, from its Debian source package, cached under target/.
fn util_linux_tests() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("util-linux-src");
    let done = cache.join("tests");
    if done.join("expected/blkid").is_dir() {
        return Some(done);
    }
    if !crate::util::have(&["root", "apt-get", "tar", "xz"]) {
        return None;
    }
    let dl = cache.join("download");
    std::fs::create_dir_all(&dl).unwrap();
    let out = Command::new(which("apt-get").unwrap())
        .args(["source", "--download-only", "-qq", "util-linux"])
        .current_dir(&dl)
        .output()
        .unwrap();
    let orig = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".orig.tar.xz"));
    let Some(orig) = orig else {
        skip(&format!(
            "apt-get source util-linux failed (a deb-src line is needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    };
    let tmp = cache.join("extract");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = tool("tar");
    c.arg("-C").arg(&tmp).args(["--strip-components=1", "-xJf"]).arg(&orig).args([
        "--wildcards",
        "*/tests/ts/blkid/images-pt/*",
        "*/tests/ts/blkid/images-fs/*",
        "*/tests/expected/blkid/*",
    ]);
    sh(c);
    std::fs::rename(tmp.join("tests"), &done).unwrap();
    Some(done)
}

fn unxz(path: &Path) -> Vec<u8> {
    let mut c = tool("xz");
    c.arg("-dc").arg(path);
    sh(c)
}

/// One line of a `lowprobe-pt-*` file: `#N: START SIZE 0xTYPE name='..' uuid='..' type='..'`.
#[derive(Debug)]
struct Expected {
    number: u32,
    start: u64,
    size: u64,
    mbr_type: u8,
    fields: Vec<(String, String)>,
    nested: bool,
}

fn parse_expected(text: &str) -> (String, String, Vec<Expected>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let field = |k: &str| header.split(", ").find_map(|f| f.strip_prefix(k)).unwrap_or("").to_string();
    let pt = field("PT: ");
    let id = header.rsplit("id=").next().unwrap().to_string();
    let mut parts = Vec::new();
    for l in lines.filter(|l| l.starts_with('#')) {
        let (num, rest) = l[1..].split_once(':').unwrap();
        let mut w = rest.split_whitespace();
        let start = w.next().unwrap().parse().unwrap();
        let size = w.next().unwrap().parse().unwrap();
        let mbr_type = u8::from_str_radix(w.next().unwrap().trim_start_matches("0x"), 16).unwrap();
        let mut fields = Vec::new();
        let mut s = rest;
        while let Some(i) = s.find("='") {
            let key = s[..i].rsplit(' ').next().unwrap().to_string();
            let val_end = s[i + 2..].find('\'').unwrap();
            fields.push((key, s[i + 2..i + 2 + val_end].to_string()));
            s = &s[i + 2 + val_end + 1..];
        }
        // a nested label's partitions (a BSD label inside an MBR slice) end with "(bsd-kind)"
        let nested = rest.trim_end().ends_with(')');
        parts.push(Expected { number: num.trim().parse().unwrap(), start, size, mbr_type, fields, nested });
    }
    (pt, id, parts)
}

/// util-linux's partition-table samples (`tests/ts/blkid/images-pt/*.img.xz`) against its own
/// expected lists (`tests/expected/blkid/lowprobe-pt-*`): for every MBR and GPT sample luksfs
/// finds the same partitions (numbers, starts, sizes, types, names, UUIDs; partitions of a
/// BSD label nested in an MBR slice are not luksfs's to find); samples of other table kinds
/// must not be mistaken for an MBR or a GPT. Its filesystem samples (`images-fs`: FAT, NTFS,
/// exFAT, ... boot sectors, most with 0x55AA) must not be read as partition tables either.
#[test]
fn util_linux_blkid_samples() {
    let Some(tests) = util_linux_tests() else { return };
    let mut compared = Vec::new();
    let mut other_kinds = Vec::new();
    let mut nested = 0;
    let mut imgs: Vec<PathBuf> =
        std::fs::read_dir(tests.join("ts/blkid/images-pt")).unwrap().map(|e| e.unwrap().path()).collect();
    imgs.sort();
    for xz in &imgs {
        let name = xz.file_name().unwrap().to_string_lossy().trim_end_matches(".img.xz").to_string();
        let expected = std::fs::read_to_string(tests.join(format!("expected/blkid/lowprobe-pt-{name}"))).unwrap();
        let (pt, id, want) = parse_expected(&expected);
        let disk = unxz(xz);
        let got = partition::read_table(&disk, disk.len() as u64);
        let kind = match pt.as_str() {
            "dos" => TableKind::Mbr,
            "gpt" => TableKind::Gpt,
            _ => {
                let got = got.unwrap_or_else(|e| panic!("{name} ({pt}): {e}"));
                assert_eq!(got.map(|t| t.kind), None, "{name}: a {pt} label read as a partition table luksfs supports");
                assert_eq!(partition::probe(&disk), None, "{name}");
                other_kinds.push(format!("{name} ({pt})"));
                continue;
            }
        };
        let t = got.unwrap_or_else(|e| panic!("{name}: {e}")).unwrap_or_else(|| panic!("{name}: no table found"));
        assert_eq!(t.kind, kind, "{name}");
        assert_eq!(partition::probe(&disk), Some(kind), "{name}");
        assert_eq!(t.disk_id.trim_start_matches("0x"), id, "{name}: disk id");
        let mut want_here = Vec::new();
        for w in want {
            if w.nested {
                nested += 1;
            } else {
                want_here.push(w);
            }
        }
        assert_eq!(t.partitions.len(), want_here.len(), "{name}: {:?}", t.partitions);
        for (p, w) in t.partitions.iter().zip(&want_here) {
            let at = format!("{name} #{}", w.number);
            assert_eq!((p.number, p.start, p.size), (w.number, w.start * 512, w.size * 512), "{at}");
            assert!(p.problem.is_none(), "{at}: {:?}", p.problem);
            for (k, v) in &w.fields {
                match k.as_str() {
                    "name" => assert_eq!(p.name.as_deref(), Some(v.as_str()), "{at}"),
                    "type" => assert_eq!(&p.type_id, v, "{at}"),
                    "uuid" if kind == TableKind::Gpt => assert_eq!(p.uuid.as_deref(), Some(v.as_str()), "{at}"),
                    _ => {}
                }
            }
            if kind == TableKind::Mbr {
                assert_eq!(p.type_id, format!("{:#04x}", w.mbr_type), "{at}");
            }
        }
        compared.push(format!("{name} ({pt}, {} partitions)", want_here.len()));
    }
    // filesystem samples: none is a partition table
    let mut fs = 0;
    for e in std::fs::read_dir(tests.join("ts/blkid/images-fs")).unwrap() {
        let xz = e.unwrap().path();
        let disk = unxz(&xz);
        let name = xz.file_name().unwrap().to_string_lossy().into_owned();
        let got = partition::read_table(&disk, disk.len() as u64).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, None, "{name}: a filesystem sample read as a partition table");
        assert_eq!(partition::probe(&disk), None, "{name}");
        fs += 1;
    }
    eprintln!(
        "util-linux samples: {} MBR/GPT tables compared ({}), {nested} partitions of nested labels not applicable, \
         {} other kinds not applicable and not misread ({}), {fs} filesystem samples not misread",
        compared.len(),
        compared.join(", "),
        other_kinds.len(),
        other_kinds.join(", ")
    );
    assert!(compared.len() >= 2 || !ci(), "expected the dos+bsd and gpt samples");
    assert!(fs > 50, "only {fs} filesystem samples");
}
