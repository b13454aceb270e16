//! What a plaintext looks like, from its first bytes (and its last sector): a partition table
//! (MBR, GPT) with its partitions, a bare volume (ext2/3/4, XFS, Btrfs, NTFS, exFAT, FAT12/16/32,
//! ISO 9660, squashfs, swap, LVM2 physical volume, LUKS inside LUKS), another disk-image
//! *container* (qcow, qcow2, VMDK, VHD, VHDX, VDI, QED, Parallels, Bochs, cloop, DMG), all
//! zeros, or nothing recognised.
//!
//! Pure classification of byte slices, no I/O and nothing mounted: `luksfs verify` hands it the
//! first [`HEAD_LEN`] bytes and the last [`TAIL_LEN`] bytes of the decrypted image, and the
//! first bytes of each partition to [`volume`] / [`container`].
//!
//! A container inside an encrypted image is the case the OpenStack image-encryption discussion
//! worries about: a guest-controlled qcow2/VMDK header reaching a qemu that probes formats can
//! name backing files or extents on the host. [`Payload::Container`] is therefore always reported
//! as a warning by `verify`.

use crate::formats::partition as pt;
use serde_json::{Value, json};

/// How many bytes from the start of the plaintext [`classify`] looks at: the Btrfs superblock
/// (64 KiB), ISO 9660 descriptors (32 KiB) and GPT entry arrays (16 KiB after LBA 2) fit.
pub const HEAD_LEN: usize = 1 << 20;
/// How many bytes from the end [`classify`] looks at (VHD footer, DMG trailer).
pub const TAIL_LEN: usize = 512;
/// Bytes from the start of a partition that [`volume`] needs to recognise every kind it knows.
pub const VOLUME_PROBE_LEN: usize = 0x11000;

/// What the plaintext is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A partition table (MBR or GPT) and its partitions.
    Table(PartitionTable),
    /// A filesystem, swap, LVM2 physical volume or LUKS header at byte 0.
    Volume(Volume),
    /// Another disk-image format: must be reported as a warning.
    Container(Container),
    /// Every byte is zero.
    Zeros,
    /// Nothing recognised. `leading_zeros`: how many bytes at the start (of those examined) are
    /// zero; `first_bytes`: the first non-zero bytes examined, in hex (at most 16).
    Unrecognised { leading_zeros: usize, first_bytes: String },
}

/// MBR or GPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
}

/// A partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// MBR disk signature (`0x1234abcd`) or GPT disk GUID.
    pub disk_id: String,
    /// Logical sector size the table was found with (GPT: 512 or 4096; MBR: 512).
    pub sector_size: u32,
    pub partitions: Vec<Partition>,
    /// What was not examined (logical partitions, entries beyond the bytes given).
    pub notes: Vec<String>,
    /// What is wrong with the table (checksum mismatches, partitions past the end of the disk,
    /// a protective MBR without a GPT, no partitions at all).
    pub problems: Vec<String>,
}

/// One partition table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based entry number (as `fdisk`/`sgdisk` count).
    pub number: u32,
    /// Start in bytes from the start of the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// MBR type byte (`0x83`) or GPT type GUID.
    pub type_id: String,
    /// Human name of the type (`Linux filesystem`), or `unknown`.
    pub type_name: &'static str,
    /// GPT partition name.
    pub name: Option<String>,
    /// MBR active flag / GPT legacy-BIOS-bootable attribute.
    pub bootable: bool,
}

/// Kinds of volumes recognised at byte 0 of a disk or partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Ntfs,
    ExFat,
    Fat12,
    Fat16,
    Fat32,
    Iso9660,
    Squashfs,
    Swap,
    Lvm2Pv,
    Luks1,
    Luks2,
}

impl VolumeKind {
    /// Short name, as `blkid` prints `TYPE=`.
    pub fn name(self) -> &'static str {
        match self {
            VolumeKind::Ext2 => "ext2",
            VolumeKind::Ext3 => "ext3",
            VolumeKind::Ext4 => "ext4",
            VolumeKind::Xfs => "xfs",
            VolumeKind::Btrfs => "btrfs",
            VolumeKind::Ntfs => "ntfs",
            VolumeKind::ExFat => "exfat",
            VolumeKind::Fat12 => "fat12",
            VolumeKind::Fat16 => "fat16",
            VolumeKind::Fat32 => "fat32",
            VolumeKind::Iso9660 => "iso9660",
            VolumeKind::Squashfs => "squashfs",
            VolumeKind::Swap => "swap",
            VolumeKind::Lvm2Pv => "lvm2-pv",
            VolumeKind::Luks1 => "luks1",
            VolumeKind::Luks2 => "luks2",
        }
    }

    /// What it is, in words.
    fn what(self) -> &'static str {
        match self {
            VolumeKind::Swap => "swap area",
            VolumeKind::Lvm2Pv => "LVM2 physical volume",
            VolumeKind::Luks1 | VolumeKind::Luks2 => "LUKS volume (encrypted again inside)",
            _ => "filesystem",
        }
    }
}

/// A volume found at byte 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub kind: VolumeKind,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Size the volume's own header claims, in bytes (when it says).
    pub size: Option<u64>,
}

/// Disk-image formats that must not be found inside an encrypted image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// qcow version 1.
    Qcow,
    Qcow2,
    /// VMDK sparse extent (`KDMV`) or VMware 3 / ESX COW (`COWD`).
    Vmdk,
    /// VMDK descriptor text (names extent files).
    VmdkDescriptor,
    Vhd,
    Vhdx,
    Vdi,
    Qed,
    Parallels,
    Bochs,
    Cloop,
    Dmg,
}

impl ContainerKind {
    /// Short name (qemu's driver name where there is one).
    pub fn name(self) -> &'static str {
        match self {
            ContainerKind::Qcow => "qcow",
            ContainerKind::Qcow2 => "qcow2",
            ContainerKind::Vmdk => "vmdk",
            ContainerKind::VmdkDescriptor => "vmdk-descriptor",
            ContainerKind::Vhd => "vhd",
            ContainerKind::Vhdx => "vhdx",
            ContainerKind::Vdi => "vdi",
            ContainerKind::Qed => "qed",
            ContainerKind::Parallels => "parallels",
            ContainerKind::Bochs => "bochs",
            ContainerKind::Cloop => "cloop",
            ContainerKind::Dmg => "dmg",
        }
    }

    /// Human name.
    pub fn title(self) -> &'static str {
        match self {
            ContainerKind::Qcow => "qcow (version 1)",
            ContainerKind::Qcow2 => "qcow2",
            ContainerKind::Vmdk => "VMDK",
            ContainerKind::VmdkDescriptor => "VMDK descriptor",
            ContainerKind::Vhd => "VHD",
            ContainerKind::Vhdx => "VHDX",
            ContainerKind::Vdi => "VirtualBox VDI",
            ContainerKind::Qed => "QED",
            ContainerKind::Parallels => "Parallels",
            ContainerKind::Bochs => "Bochs",
            ContainerKind::Cloop => "cloop",
            ContainerKind::Dmg => "Apple DMG",
        }
    }
}

/// A disk-image container found in the plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub kind: ContainerKind,
    /// Version, virtual size, backing-file or extent references: whatever the header says that
    /// matters to a reader.
    pub details: Vec<String>,
}

// ------------------------------------------------------------------ byte helpers

fn at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?).and_then(|s| s.try_into().ok())
}
fn le16(b: &[u8], off: usize) -> Option<u16> {
    at(b, off).map(u16::from_le_bytes)
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    at(b, off).map(u32::from_le_bytes)
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    at(b, off).map(u64::from_le_bytes)
}
fn be32(b: &[u8], off: usize) -> Option<u32> {
    at(b, off).map(u32::from_be_bytes)
}
fn be64(b: &[u8], off: usize) -> Option<u64> {
    at(b, off).map(u64::from_be_bytes)
}
fn has(b: &[u8], off: usize, magic: &[u8]) -> bool {
    off.checked_add(magic.len()).and_then(|end| b.get(off..end)) == Some(magic)
}

/// A fixed-size text field: up to the first NUL, trailing spaces trimmed, non-printable bytes
/// replaced; `None` when empty.
fn text(b: &[u8], off: usize, len: usize) -> Option<String> {
    let f = b.get(off..off.checked_add(len)?)?;
    let f = &f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())];
    let s: String = String::from_utf8_lossy(f).chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// A 16-byte UUID stored in big-endian order (ext, XFS, Btrfs, swap).
fn uuid_be(b: &[u8], off: usize) -> Option<String> {
    let u: [u8; 16] = at(b, off)?;
    if u == [0; 16] {
        return None;
    }
    let h = hex::encode(u);
    Some(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

// ------------------------------------------------------------------ classification

/// Classify a plaintext from its first bytes (`head`, ideally [`HEAD_LEN`] or the whole
/// plaintext if shorter), its last bytes (`tail`, ideally [`TAIL_LEN`]), its `size`, and whether
/// the caller saw that every byte is zero.
pub fn classify(head: &[u8], tail: &[u8], size: u64, all_zero: bool) -> Payload {
    if all_zero {
        return Payload::Zeros;
    }
    if let Some(c) = container(head, tail) {
        return Payload::Container(c);
    }
    if let Some(v) = luks(head) {
        return Payload::Volume(v);
    }
    if let Some(t) = gpt(head, size) {
        return Payload::Table(t);
    }
    if let Some(v) = volume(head) {
        return Payload::Volume(v);
    }
    if let Some(t) = mbr(head, size) {
        return Payload::Table(t);
    }
    let leading_zeros = head.iter().position(|&b| b != 0).unwrap_or(head.len());
    let rest = &head[leading_zeros..];
    Payload::Unrecognised { leading_zeros, first_bytes: hex::encode(&rest[..rest.len().min(16)]) }
}

/// A disk-image container at the start of `head` (or, for VHD and DMG, a footer in `tail`).
pub fn container(head: &[u8], tail: &[u8]) -> Option<Container> {
    let c = |kind, details: Vec<String>| Some(Container { kind, details });
    if has(head, 0, b"QFI\xfb") {
        let version = be32(head, 4).unwrap_or(0);
        let mut d = vec![format!("version {version}")];
        if let Some(s) = be64(head, 24) {
            d.push(format!("virtual size {s} bytes"));
        }
        let (boff, blen) = (be64(head, 8).unwrap_or(0), be32(head, 16).unwrap_or(0));
        if boff != 0 {
            let name = usize::try_from(boff)
                .ok()
                .and_then(|o| text(head, o, blen.min(1023) as usize))
                .unwrap_or_else(|| format!("at byte {boff}"));
            d.push(format!("backing file {name}"));
        }
        return c(if version == 1 { ContainerKind::Qcow } else { ContainerKind::Qcow2 }, d);
    }
    if has(head, 0, b"KDMV") {
        let mut d = vec![format!("sparse extent, version {}", le32(head, 4).unwrap_or(0))];
        if let Some(cap) = le64(head, 12) {
            d.push(format!("capacity {} bytes", cap.saturating_mul(512)));
        }
        // An embedded descriptor names the extents (files) a reader would open.
        let desc = le64(head, 28).unwrap_or(0);
        let dlen = le64(head, 36).unwrap_or(0);
        if desc != 0 && dlen != 0 {
            d.push(format!("embedded descriptor at byte {}", desc.saturating_mul(512)));
            if let Some(start) = usize::try_from(desc.saturating_mul(512)).ok().filter(|&s| s < head.len()) {
                let end = head.len().min(start.saturating_add(usize::try_from(dlen * 512).unwrap_or(usize::MAX)));
                d.extend(vmdk_extents(&head[start..end]));
            }
        }
        return c(ContainerKind::Vmdk, d);
    }
    if has(head, 0, b"COWD") {
        return c(ContainerKind::Vmdk, vec!["VMware 3 / ESX COW disk".into()]);
    }
    if is_vmdk_descriptor(head) {
        let n = head.len().min(64 << 10);
        return c(ContainerKind::VmdkDescriptor, vmdk_extents(&head[..n]));
    }
    if has(head, 0, b"conectix") {
        let mut d = vec!["dynamic or differencing disk (footer copy at byte 0)".to_string()];
        if let Some(s) = be64(head, 48) {
            d.push(format!("virtual size {s} bytes"));
        }
        return c(ContainerKind::Vhd, d);
    }
    if has(head, 0, b"vhdxfile") {
        return c(ContainerKind::Vhdx, vec![]);
    }
    if le32(head, 0x40) == Some(0xbeda_107f) {
        let mut d = vec![];
        if let Some(t) = text(head, 0, 64) {
            d.push(t);
        }
        return c(ContainerKind::Vdi, d);
    }
    if has(head, 0, b"QED\0") {
        let mut d = vec![];
        if let Some(s) = le64(head, 48) {
            d.push(format!("virtual size {s} bytes"));
        }
        if let (Some(o), Some(l)) = (le32(head, 56), le32(head, 60))
            && o != 0
        {
            let name = text(head, o as usize, l.min(1023) as usize).unwrap_or_else(|| format!("at byte {o}"));
            d.push(format!("backing file {name}"));
        }
        return c(ContainerKind::Qed, d);
    }
    if has(head, 0, b"WithoutFreeSpace") || has(head, 0, b"WithouFreSpacExt") {
        return c(ContainerKind::Parallels, vec![]);
    }
    if has(head, 0, b"Bochs Virtual HD Image") {
        return c(ContainerKind::Bochs, vec![]);
    }
    if has(head, 0, b"#!/bin/sh\n#V2.0 Format\n") {
        return c(ContainerKind::Cloop, vec![]);
    }
    // Footers at the end: a fixed-size VHD is raw data plus a 512-byte footer; a DMG ends with
    // a 512-byte "koly" trailer.
    if tail.len() >= 512 {
        let f = &tail[tail.len() - 512..];
        if has(f, 0, b"conectix") {
            let mut d = vec!["fixed-size disk (footer in the last 512 bytes)".to_string()];
            if let Some(s) = be64(f, 48) {
                d.push(format!("virtual size {s} bytes"));
            }
            return c(ContainerKind::Vhd, d);
        }
        if has(f, 0, b"koly") {
            return c(ContainerKind::Dmg, vec!["trailer in the last 512 bytes".into()]);
        }
    }
    None
}

fn is_vmdk_descriptor(head: &[u8]) -> bool {
    let n = head.len().min(4096);
    let Ok(s) = std::str::from_utf8(&head[..head[..n].iter().position(|&c| c == 0).unwrap_or(n)]) else {
        return false;
    };
    let t = s.trim_start();
    t.starts_with("# Disk DescriptorFile")
        || (t.lines().any(|l| l.trim_start().starts_with("createType"))
            && t.lines().any(|l| l.trim_start().starts_with("version")))
}

/// The extent lines of a VMDK descriptor (`RW 2048 FLAT "other.img" 0`): the files a reader of
/// this image would open.
fn vmdk_extents(desc: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(&desc[..desc.iter().position(|&c| c == 0).unwrap_or(desc.len())]).into_owned();
    s.lines()
        .map(str::trim)
        .filter(|l| ["RW ", "RDONLY ", "NOACCESS "].iter().any(|p| l.starts_with(p)))
        .take(16)
        .map(|l| format!("extent {}", l.chars().filter(|c| !c.is_control()).take(200).collect::<String>()))
        .collect()
}

fn luks(b: &[u8]) -> Option<Volume> {
    if !has(b, 0, b"LUKS\xba\xbe") {
        return None;
    }
    let v = u16::from_be_bytes(at(b, 6)?);
    let kind = match v {
        1 => VolumeKind::Luks1,
        2 => VolumeKind::Luks2,
        _ => return None,
    };
    let label = if kind == VolumeKind::Luks2 { text(b, 24, 48) } else { None };
    Some(Volume { kind, label, uuid: text(b, 168, 40), size: None })
}

/// A volume at byte 0 of `b` (the start of a disk or of a partition): filesystems, swap, LVM2
/// physical volumes, LUKS.
pub fn volume(b: &[u8]) -> Option<Volume> {
    luks(b)
        .or_else(|| ext(b))
        .or_else(|| xfs(b))
        .or_else(|| btrfs(b))
        .or_else(|| ntfs(b))
        .or_else(|| exfat(b))
        .or_else(|| fat(b))
        .or_else(|| squashfs(b))
        .or_else(|| iso9660(b))
        .or_else(|| swap(b))
        .or_else(|| lvm2(b))
}

fn ext(b: &[u8]) -> Option<Volume> {
    const SB: usize = 1024;
    if le16(b, SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = le32(b, SB + 0x5C)?;
    let incompat = le32(b, SB + 0x60)?;
    let ro_compat = le32(b, SB + 0x64)?;
    // Features ext3 does not have (blkid's rule): extents, 64bit, flex_bg, mmp, meta_bg,
    // inline data...; huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum.
    const EXT4_INCOMPAT: u32 = 0x0040 | 0x0080 | 0x0100 | 0x0200 | 0x0400 | 0x1000 | 0x8000;
    const EXT4_RO: u32 = 0x0008 | 0x0010 | 0x0020 | 0x0040 | 0x0400;
    let kind = if incompat & EXT4_INCOMPAT != 0 || ro_compat & EXT4_RO != 0 {
        VolumeKind::Ext4
    } else if compat & 0x4 != 0 {
        VolumeKind::Ext3
    } else {
        VolumeKind::Ext2
    };
    let log = le32(b, SB + 0x18)?;
    let mut blocks = u64::from(le32(b, SB + 0x04)?);
    if incompat & 0x80 != 0 {
        blocks |= u64::from(le32(b, SB + 0x150).unwrap_or(0)) << 32;
    }
    let size = (log <= 6).then(|| blocks.saturating_mul(1024 << log));
    Some(Volume { kind, label: text(b, SB + 0x78, 16), uuid: uuid_be(b, SB + 0x68), size })
}

fn xfs(b: &[u8]) -> Option<Volume> {
    if !has(b, 0, b"XFSB") {
        return None;
    }
    let bs = u64::from(be32(b, 4)?);
    let size = be64(b, 8).map(|d| d.saturating_mul(bs));
    Some(Volume { kind: VolumeKind::Xfs, label: text(b, 108, 12), uuid: uuid_be(b, 32), size })
}

fn btrfs(b: &[u8]) -> Option<Volume> {
    const SB: usize = 0x10000;
    if !has(b, SB + 0x40, b"_BHRfS_M") {
        return None;
    }
    Some(Volume {
        kind: VolumeKind::Btrfs,
        label: text(b, SB + 0x12b, 256),
        uuid: uuid_be(b, SB + 0x20),
        size: le64(b, SB + 0x70),
    })
}

fn ntfs(b: &[u8]) -> Option<Volume> {
    if !has(b, 3, b"NTFS    ") {
        return None;
    }
    let bps = u64::from(le16(b, 11)?);
    let size = le64(b, 0x28).map(|s| s.saturating_mul(bps));
    let serial = le64(b, 0x48).map(|s| format!("{s:016X}"));
    Some(Volume { kind: VolumeKind::Ntfs, label: None, uuid: serial, size })
}

fn exfat(b: &[u8]) -> Option<Volume> {
    if !has(b, 3, b"EXFAT   ") {
        return None;
    }
    let shift = *b.get(108)?;
    let size = (shift <= 12).then(|| le64(b, 72).map(|n| n.saturating_mul(1 << shift))).flatten();
    let serial = le32(b, 100).map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xffff));
    Some(Volume { kind: VolumeKind::ExFat, label: None, uuid: serial, size })
}

fn fat(b: &[u8]) -> Option<Volume> {
    if !matches!(b.first(), Some(0xEB | 0xE9)) || le16(b, 510)? != 0xAA55 {
        return None;
    }
    let bps = u32::from(le16(b, 11)?);
    let spc = u32::from(*b.get(13)?);
    let reserved = u32::from(le16(b, 14)?);
    let nfats = u32::from(*b.get(16)?);
    let root_entries = u32::from(le16(b, 17)?);
    let media = *b.get(21)?;
    if !matches!(bps, 512 | 1024 | 2048 | 4096)
        || !spc.is_power_of_two()
        || reserved == 0
        || !matches!(nfats, 1 | 2)
        || !(media == 0xF0 || media >= 0xF8)
    {
        return None;
    }
    let total = match le16(b, 19)? {
        0 => le32(b, 32)?,
        n => u32::from(n),
    };
    let fat_size = match le16(b, 22)? {
        0 => le32(b, 36)?,
        n => u32::from(n),
    };
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let meta = reserved.checked_add(nfats.checked_mul(fat_size)?)?.checked_add(root_sectors)?;
    let clusters = total.checked_sub(meta)? / spc;
    // Microsoft's rule: the cluster count alone decides the FAT type.
    let (kind, ext) = match clusters {
        0..4085 => (VolumeKind::Fat12, 36),
        4085..65525 => (VolumeKind::Fat16, 36),
        _ => (VolumeKind::Fat32, 64),
    };
    let (label, serial) = if *b.get(ext + 2)? == 0x29 {
        let l = text(b, ext + 7, 11).filter(|l| l != "NO NAME");
        let s = le32(b, ext + 3).map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xffff));
        (l, s)
    } else {
        (None, None)
    };
    Some(Volume { kind, label, uuid: serial, size: Some(u64::from(total) * u64::from(bps)) })
}

fn squashfs(b: &[u8]) -> Option<Volume> {
    if !has(b, 0, b"hsqs") {
        return None;
    }
    Some(Volume { kind: VolumeKind::Squashfs, label: None, uuid: None, size: le64(b, 40) })
}

fn iso9660(b: &[u8]) -> Option<Volume> {
    if !has(b, 0x8001, b"CD001") {
        return None;
    }
    let blocks = le32(b, 0x8050).map(u64::from);
    let bs = le16(b, 0x8080).map(u64::from);
    let size = blocks.zip(bs).map(|(n, s)| n * s);
    Some(Volume { kind: VolumeKind::Iso9660, label: text(b, 0x8028, 32), uuid: None, size })
}

fn swap(b: &[u8]) -> Option<Volume> {
    for page in [4096usize, 8192, 16384, 65536] {
        if has(b, page - 10, b"SWAPSPACE2") || has(b, page - 10, b"SWAP-SPACE") {
            let last = le32(b, 1028).map(u64::from);
            return Some(Volume {
                kind: VolumeKind::Swap,
                label: text(b, 1052, 16),
                uuid: uuid_be(b, 1036),
                size: last.map(|l| (l + 1) * page as u64),
            });
        }
    }
    None
}

fn lvm2(b: &[u8]) -> Option<Volume> {
    for sector in 0..4usize {
        let s = sector * 512;
        if has(b, s, b"LABELONE") && has(b, s + 24, b"LVM2 001") {
            let pvh = s + le32(b, s + 20)? as usize;
            let uuid = text(b, pvh, 32).map(|u| {
                let parts = [0..6, 6..10, 10..14, 14..18, 18..22, 22..26, 26..32];
                parts.iter().filter_map(|r| u.get(r.clone())).collect::<Vec<_>>().join("-")
            });
            return Some(Volume { kind: VolumeKind::Lvm2Pv, label: None, uuid, size: le64(b, pvh + 32) });
        }
    }
    None
}

/// An MBR in sector 0 (as [`crate::formats::partition::mbr`] reads it; boot sectors and FAT
/// volumes are not tables), described: primary entries only.
fn mbr(b: &[u8], size: u64) -> Option<PartitionTable> {
    let m = pt::mbr::parse(b).ok()?;
    let (mut notes, mut problems) = (Vec::new(), Vec::new());
    let mut partitions = Vec::new();
    for e in m.used().filter(|e| e.kind != 0) {
        let number = u32::from(e.slot) + 1;
        if e.is_extended() {
            notes.push(format!("partition {number} is extended: logical partitions are not listed"));
        }
        let (start, count) = (u64::from(e.start_lba) * 512, u64::from(e.sectors) * 512);
        if start + count > size && e.kind != pt::types::MBR_GPT_PROTECTIVE {
            problems.push(format!("partition {number} ends beyond the end of the disk"));
        }
        partitions.push(Partition {
            number,
            start,
            size: count,
            type_id: format!("0x{:02x}", e.kind),
            type_name: pt::types::mbr_type_name(e.kind),
            name: None,
            bootable: e.boot == 0x80,
        });
    }
    if m.is_protective() {
        problems.push("protective MBR, but no GPT header was found".into());
    }
    if partitions.is_empty() {
        problems.push("the partition table is empty".into());
    }
    Some(PartitionTable {
        kind: TableKind::Mbr,
        disk_id: format!("0x{:08x}", m.disk_id),
        sector_size: 512,
        partitions,
        notes,
        problems,
    })
}

/// A GPT (primary header at LBA 1, 512- or 4096-byte sectors, as
/// [`crate::formats::partition::gpt`] checks it), described. A header or entry array that fails
/// its checks is a problem of the table (the volume tree may still read the backup header).
fn gpt(b: &[u8], size: u64) -> Option<PartitionTable> {
    let ss = [512usize, 4096].into_iter().find(|&ss| has(b, ss, b"EFI PART"))?;
    let (mut notes, mut problems) = (Vec::new(), Vec::new());
    let mut partitions = Vec::new();
    let table = |disk_id: String, partitions, notes, problems| {
        Some(PartitionTable { kind: TableKind::Gpt, disk_id, sector_size: ss as u32, partitions, notes, problems })
    };
    let h = match pt::gpt::parse_header(b.get(ss..2 * ss)?, 1, ss as u32, size / ss as u64) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("the primary GPT header cannot be used: {e}"));
            let disk_id = at::<16>(b, ss + 56).map(|g| pt::gpt::guid(&g)).unwrap_or_default();
            return table(disk_id, partitions, notes, problems);
        }
    };
    let off = usize::try_from(h.entries_offset()).ok();
    match off.and_then(|o| b.get(o..o.checked_add(h.entries_len())?)) {
        None => notes.push("the partition entries lie beyond the bytes examined: not read".into()),
        Some(arr) => match pt::gpt::parse_entries(&h, arr) {
            Err(e) => problems.push(format!("the GPT partition entries cannot be used: {e}")),
            Ok(entries) => {
                for e in entries {
                    let sectors = e.last_lba.checked_sub(e.first_lba).map(|n| n + 1);
                    let fits = sectors.is_some() && e.last_lba.saturating_add(1).saturating_mul(ss as u64) <= size;
                    if !fits {
                        problems.push(format!("partition {} has an impossible extent", e.number));
                    }
                    partitions.push(Partition {
                        number: e.number,
                        start: e.first_lba.saturating_mul(ss as u64),
                        size: sectors.unwrap_or(0).saturating_mul(ss as u64),
                        type_name: pt::types::gpt_type_name(&e.type_guid),
                        type_id: e.type_guid,
                        name: (!e.name.is_empty()).then_some(e.name),
                        bootable: e.attributes & pt::gpt::ATTR_LEGACY_BOOTABLE != 0,
                    });
                }
            }
        },
    }
    table(h.disk_guid.clone(), partitions, notes, problems)
}

// ------------------------------------------------------------------ reporting

/// A byte count for people: `512 bytes`, `2.0 MiB`.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

impl Volume {
    /// `ext4 filesystem "root" (1.0 GiB)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.kind.name(), self.kind.what());
        if let Some(l) = &self.label {
            s += &format!(" {l:?}");
        }
        if let Some(n) = self.size {
            s += &format!(" ({})", human(n));
        }
        s
    }

    /// JSON shape documented in `docs/inspect-json.md`.
    pub fn to_json(&self) -> Value {
        json!({"kind": "volume", "type": self.kind.name(), "label": self.label, "uuid": self.uuid,
               "size": self.size, "description": self.describe()})
    }
}

impl Container {
    /// The plain warning `verify` prints.
    pub fn warning(&self) -> String {
        format!(
            "the plaintext is itself a {} disk image: a disk image format hidden inside LUKS. qemu must \
             not be pointed at this with format probing: it would obey the inner header, which can name \
             backing files or extents on the host. Convert it, or give qemu format=raw explicitly",
            self.kind.title()
        )
    }

    /// JSON shape documented in `docs/inspect-json.md`.
    pub fn to_json(&self) -> Value {
        json!({"kind": "container", "type": self.kind.name(), "details": self.details,
               "description": format!("{} disk image", self.kind.title())})
    }
}

impl PartitionTable {
    /// `GPT partition table, 2 partitions`.
    pub fn describe(&self) -> String {
        let n = self.partitions.len();
        let kind = match self.kind {
            TableKind::Mbr => "MBR",
            TableKind::Gpt => "GPT",
        };
        format!("{kind} partition table, {n} partition{}", if n == 1 { "" } else { "s" })
    }
}

impl Partition {
    /// JSON shape documented in `docs/inspect-json.md` (without `contents`, which the caller
    /// adds when it looked inside).
    pub fn to_json(&self) -> Value {
        json!({"number": self.number, "start": self.start, "size": self.size, "type": self.type_id,
               "type_name": self.type_name, "name": self.name, "bootable": self.bootable})
    }
}

impl Payload {
    /// One line saying what the plaintext is.
    pub fn describe(&self) -> String {
        match self {
            Payload::Table(t) => t.describe(),
            Payload::Volume(v) => v.describe(),
            Payload::Container(c) => format!("{} disk image", c.kind.title()),
            Payload::Zeros => "all zeros".into(),
            Payload::Unrecognised { leading_zeros, .. } if *leading_zeros > 0 => {
                format!("unrecognised (the first {leading_zeros} bytes are zeros)")
            }
            Payload::Unrecognised { .. } => "unrecognised".into(),
        }
    }

    /// Short type word: `gpt`, `mbr`, `ext4`, `qcow2`, `zeros`, `unrecognised`...
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::Table(t) => match t.kind {
                TableKind::Mbr => "mbr",
                TableKind::Gpt => "gpt",
            },
            Payload::Volume(v) => v.kind.name(),
            Payload::Container(c) => c.kind.name(),
            Payload::Zeros => "zeros",
            Payload::Unrecognised { .. } => "unrecognised",
        }
    }

    /// JSON shape documented in `docs/inspect-json.md`. Partitions are listed without
    /// `contents`.
    pub fn to_json(&self) -> Value {
        match self {
            Payload::Table(t) => json!({
                "kind": "partition-table", "type": self.type_name(), "description": self.describe(),
                "disk_id": t.disk_id, "sector_size": t.sector_size,
                "partitions": t.partitions.iter().map(Partition::to_json).collect::<Vec<_>>(),
                "notes": t.notes, "problems": t.problems}),
            Payload::Volume(v) => v.to_json(),
            Payload::Container(c) => c.to_json(),
            Payload::Zeros => json!({"kind": "zeros", "type": "zeros", "description": self.describe()}),
            Payload::Unrecognised { leading_zeros, first_bytes } => json!({
                "kind": "unrecognised", "type": "unrecognised", "description": self.describe(),
                "leading_zeros": leading_zeros, "first_bytes": first_bytes}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(100), "100 bytes");
    }

    fn buf(len: usize) -> Vec<u8> {
        vec![0u8; len]
    }
    fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
        b[off..off + bytes.len()].copy_from_slice(bytes);
    }
    fn vol(p: Payload) -> Volume {
        match p {
            Payload::Volume(v) => v,
            other => panic!("expected a volume, got {other:?}"),
        }
    }
    fn table(p: Payload) -> PartitionTable {
        match p {
            Payload::Table(t) => t,
            other => panic!("expected a partition table, got {other:?}"),
        }
    }
    fn cont(p: Payload) -> Container {
        match p {
            Payload::Container(c) => c,
            other => panic!("expected a container, got {other:?}"),
        }
    }
    fn sniff(b: &[u8]) -> Payload {
        classify(b, &[], 1 << 30, false)
    }

    fn mbr_entry(b: &mut [u8], i: usize, boot: bool, kind: u8, start: u32, count: u32) {
        let e = 446 + 16 * i;
        b[e] = if boot { 0x80 } else { 0 };
        b[e + 4] = kind;
        put(b, e + 8, &start.to_le_bytes());
        put(b, e + 12, &count.to_le_bytes());
    }

    #[test]
    fn mbr_with_partitions() {
        let mut b = buf(4096);
        put(&mut b, 440, &0xdead_beefu32.to_le_bytes());
        mbr_entry(&mut b, 0, true, 0x83, 2048, 4096);
        mbr_entry(&mut b, 1, false, 0x82, 6144, 2048);
        mbr_entry(&mut b, 3, false, 0x05, 8192, 100);
        put(&mut b, 510, &[0x55, 0xAA]);
        let t = table(sniff(&b));
        assert_eq!(t.kind, TableKind::Mbr);
        assert_eq!(t.disk_id, "0xdeadbeef");
        assert_eq!(t.partitions.len(), 3);
        let p = &t.partitions[0];
        assert_eq!((p.number, p.start, p.size, p.type_name, p.bootable), (1, 1 << 20, 2 << 20, "Linux", true));
        assert_eq!(t.partitions[1].type_id, "0x82");
        assert_eq!(t.partitions[2].number, 4);
        assert!(t.notes.iter().any(|n| n.contains("extended")), "{:?}", t.notes);
        assert_eq!(sniff(&b).describe(), "MBR partition table, 3 partitions");
    }

    #[test]
    fn boot_code_is_not_a_partition_table() {
        let mut b = buf(1024);
        b[446] = 0x33; // not a status byte
        put(&mut b, 510, &[0x55, 0xAA]);
        assert!(matches!(sniff(&b), Payload::Unrecognised { .. }));
    }

    /// A GPT as sgdisk writes it: protective MBR, header at LBA 1, 128 entries at LBA 2, CRCs.
    fn gpt_disk(ss: usize) -> Vec<u8> {
        let mut b = buf(ss * 2 + 128 * 128 + 4096);
        mbr_entry(&mut b, 0, false, 0xee, 1, u32::MAX);
        put(&mut b, 510, &[0x55, 0xAA]);
        let mut entries = vec![0u8; 128 * 128];
        // Linux filesystem 0FC63DAF-8483-4772-8E79-3D69D8477DE4, mixed-endian on disk
        let linux = [0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4];
        let esp = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];
        put(&mut entries, 0, &esp);
        put(&mut entries, 32, &2048u64.to_le_bytes());
        put(&mut entries, 40, &4095u64.to_le_bytes());
        let name: Vec<u8> = "EFI".encode_utf16().flat_map(u16::to_le_bytes).collect();
        put(&mut entries, 56, &name);
        put(&mut entries, 256, &linux);
        put(&mut entries, 256 + 32, &4096u64.to_le_bytes());
        put(&mut entries, 256 + 40, &8191u64.to_le_bytes());
        put(&mut entries, 256 + 48, &4u64.to_le_bytes());
        let name: Vec<u8> = "root".encode_utf16().flat_map(u16::to_le_bytes).collect();
        put(&mut entries, 256 + 56, &name);
        put(&mut b, 2 * ss, &entries);
        let mut h = vec![0u8; 92];
        put(&mut h, 0, b"EFI PART");
        put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
        put(&mut h, 12, &92u32.to_le_bytes());
        put(&mut h, 24, &1u64.to_le_bytes()); // this header's LBA
        put(&mut h, 32, &((1u64 << 30) / ss as u64 - 1).to_le_bytes()); // the backup's
        put(&mut h, 40, &34u64.to_le_bytes()); // first usable LBA
        put(&mut h, 48, &((1u64 << 30) / ss as u64 - 34).to_le_bytes()); // last usable LBA
        put(&mut h, 56, &[0x11; 16]);
        put(&mut h, 72, &2u64.to_le_bytes());
        put(&mut h, 80, &128u32.to_le_bytes());
        put(&mut h, 84, &128u32.to_le_bytes());
        put(&mut h, 88, &crc32fast::hash(&entries).to_le_bytes());
        let crc = crc32fast::hash(&h);
        put(&mut h, 16, &crc.to_le_bytes());
        put(&mut b, ss, &h);
        b
    }

    #[test]
    fn gpt_with_partitions() {
        for ss in [512, 4096] {
            let b = gpt_disk(ss);
            let t = table(sniff(&b));
            assert_eq!(t.kind, TableKind::Gpt);
            assert_eq!(t.sector_size as usize, ss);
            assert!(t.notes.is_empty() && t.problems.is_empty(), "{:?} {:?}", t.notes, t.problems);
            assert_eq!(t.disk_id, "11111111-1111-1111-1111-111111111111");
            assert_eq!(t.partitions.len(), 2);
            let (a, r) = (&t.partitions[0], &t.partitions[1]);
            assert_eq!((a.number, a.type_name, a.name.as_deref()), (1, "EFI System", Some("EFI")));
            assert_eq!(a.start, 2048 * ss as u64);
            assert_eq!(a.size, 2048 * ss as u64);
            assert_eq!(r.type_id, "0fc63daf-8483-4772-8e79-3d69d8477de4");
            assert_eq!(
                (r.number, r.type_name, r.name.as_deref(), r.bootable),
                (3, "Linux filesystem", Some("root"), true)
            );
        }
    }

    #[test]
    fn gpt_checksums_are_checked() {
        let mut b = gpt_disk(512);
        b[512 + 56] ^= 1; // disk GUID: header CRC now wrong
        let t = table(sniff(&b));
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        assert!(t.problems[0].contains("header CRC mismatch"), "{:?}", t.problems);
        let mut b = gpt_disk(512);
        b[1024 + 256 + 100] ^= 1; // in the name of entry 3: entries CRC wrong
        let t = table(sniff(&b));
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        assert!(t.problems[0].contains("entry array CRC mismatch"), "{:?}", t.problems);
    }

    #[test]
    fn gpt_entries_beyond_head_are_noted() {
        let b = gpt_disk(512);
        let t = table(sniff(&b[..2048]));
        assert!(t.partitions.is_empty());
        assert!(t.notes[0].contains("beyond"), "{:?}", t.notes);
    }

    #[test]
    fn protective_mbr_without_gpt() {
        let mut b = gpt_disk(512);
        b[512] = b'X';
        let t = table(sniff(&b));
        assert_eq!(t.kind, TableKind::Mbr);
        assert!(t.problems.iter().any(|n| n.contains("protective")));
    }

    fn ext_sb(compat: u32, incompat: u32, ro: u32) -> Vec<u8> {
        let mut b = buf(4096);
        let sb = 1024;
        put(&mut b, sb + 0x04, &1000u32.to_le_bytes());
        put(&mut b, sb + 0x18, &2u32.to_le_bytes()); // 4 KiB blocks
        put(&mut b, sb + 0x38, &0xEF53u16.to_le_bytes());
        put(&mut b, sb + 0x5C, &compat.to_le_bytes());
        put(&mut b, sb + 0x60, &incompat.to_le_bytes());
        put(&mut b, sb + 0x64, &ro.to_le_bytes());
        put(&mut b, sb + 0x68, &[0xab; 16]);
        put(&mut b, sb + 0x78, b"rootfs\0\0\0\0\0\0\0\0\0\0");
        b
    }

    #[test]
    fn ext_versions() {
        let v = vol(sniff(&ext_sb(0, 0x2, 0x1)));
        assert_eq!(v.kind, VolumeKind::Ext2);
        assert_eq!(v.label.as_deref(), Some("rootfs"));
        assert_eq!(v.size, Some(1000 * 4096));
        assert_eq!(v.uuid.as_deref(), Some("abababab-abab-abab-abab-abababababab"));
        assert_eq!(vol(sniff(&ext_sb(0x4, 0x2, 0x1))).kind, VolumeKind::Ext3);
        assert_eq!(vol(sniff(&ext_sb(0x4, 0x2 | 0x40 | 0x200, 0x1))).kind, VolumeKind::Ext4);
        assert_eq!(vol(sniff(&ext_sb(0x4, 0x2, 0x400))).kind, VolumeKind::Ext4);
        assert_eq!(sniff(&ext_sb(0, 0x2, 0x1)).describe(), "ext2 filesystem \"rootfs\" (3.9 MiB)");
    }

    #[test]
    fn xfs_btrfs_ntfs_exfat_squashfs_iso() {
        let mut b = buf(0x11000);
        put(&mut b, 0, b"XFSB");
        put(&mut b, 4, &4096u32.to_be_bytes());
        put(&mut b, 8, &256u64.to_be_bytes());
        put(&mut b, 108, b"data");
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.size, v.label.as_deref()), (VolumeKind::Xfs, Some(1 << 20), Some("data")));

        let mut b = buf(0x11000);
        put(&mut b, 0x10040, b"_BHRfS_M");
        put(&mut b, 0x10070, &(5u64 << 30).to_le_bytes());
        put(&mut b, 0x1012b, b"pool");
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.size, v.label.as_deref()), (VolumeKind::Btrfs, Some(5 << 30), Some("pool")));

        let mut b = buf(4096);
        put(&mut b, 0, &[0xEB, 0x52, 0x90]);
        put(&mut b, 3, b"NTFS    ");
        put(&mut b, 11, &512u16.to_le_bytes());
        put(&mut b, 0x28, &2048u64.to_le_bytes());
        put(&mut b, 510, &[0x55, 0xAA]);
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.size), (VolumeKind::Ntfs, Some(1 << 20)));

        let mut b = buf(4096);
        put(&mut b, 3, b"EXFAT   ");
        put(&mut b, 72, &4096u64.to_le_bytes());
        b[108] = 9;
        put(&mut b, 510, &[0x55, 0xAA]);
        assert_eq!(vol(sniff(&b)).kind, VolumeKind::ExFat);

        let mut b = buf(4096);
        put(&mut b, 0, b"hsqs");
        assert_eq!(vol(sniff(&b)).kind, VolumeKind::Squashfs);

        let mut b = buf(0x9000);
        put(&mut b, 0x8001, b"CD001");
        put(&mut b, 0x8028, b"UBUNTU                          ");
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.label.as_deref()), (VolumeKind::Iso9660, Some("UBUNTU")));
    }

    /// Boot sectors as mkfs.vfat writes them (whole-disk, no partition table).
    fn fat_bs(total: u32, spc: u8, fat_size: u16, fat32: bool) -> Vec<u8> {
        let mut b = buf(512);
        put(&mut b, 0, &[0xEB, 0x3C, 0x90]);
        put(&mut b, 3, b"mkfs.fat");
        put(&mut b, 11, &512u16.to_le_bytes());
        b[13] = spc;
        put(&mut b, 14, &(if fat32 { 32u16 } else { 1 }).to_le_bytes());
        b[16] = 2;
        put(&mut b, 17, &(if fat32 { 0u16 } else { 512 }).to_le_bytes());
        if total < 65536 && !fat32 {
            put(&mut b, 19, &(total as u16).to_le_bytes());
        } else {
            put(&mut b, 32, &total.to_le_bytes());
        }
        b[21] = 0xF8;
        if fat32 {
            put(&mut b, 36, &u32::from(fat_size).to_le_bytes());
            b[66] = 0x29;
            put(&mut b, 67, &0x1234_5678u32.to_le_bytes());
            put(&mut b, 71, b"BACKUP     ");
            put(&mut b, 82, b"FAT32   ");
        } else {
            put(&mut b, 22, &fat_size.to_le_bytes());
            b[38] = 0x29;
            put(&mut b, 39, &0x1234_5678u32.to_le_bytes());
            put(&mut b, 43, b"NO NAME    ");
            put(&mut b, 54, b"FAT16   ");
        }
        put(&mut b, 510, &[0x55, 0xAA]);
        b
    }

    #[test]
    fn fat_types_by_cluster_count() {
        let v = vol(sniff(&fat_bs(8192, 4, 6, false))); // 4 MiB, ~2000 clusters
        assert_eq!((v.kind, v.label, v.size), (VolumeKind::Fat12, None, Some(4 << 20)));
        assert_eq!(v.uuid.as_deref(), Some("1234-5678"));
        assert_eq!(vol(sniff(&fat_bs(65535, 4, 64, false))).kind, VolumeKind::Fat16);
        let v = vol(sniff(&fat_bs(1 << 21, 8, 2048, true))); // 1 GiB, 8 sectors per cluster
        assert_eq!((v.kind, v.label.as_deref()), (VolumeKind::Fat32, Some("BACKUP")));
        // A FAT boot sector is not mistaken for an MBR, nor an MBR for FAT.
        let mut bad = fat_bs(8192, 3, 6, false); // sectors per cluster not a power of two
        bad[446] = 0x12;
        assert!(matches!(sniff(&bad), Payload::Unrecognised { .. }));
    }

    #[test]
    fn swap_lvm_luks() {
        let mut b = buf(8192);
        put(&mut b, 4086, b"SWAPSPACE2");
        put(&mut b, 1024, &1u32.to_le_bytes());
        put(&mut b, 1028, &255u32.to_le_bytes());
        put(&mut b, 1052, b"swap0");
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.size, v.label.as_deref()), (VolumeKind::Swap, Some(1 << 20), Some("swap0")));

        let mut b = buf(4096);
        put(&mut b, 512, b"LABELONE");
        put(&mut b, 512 + 8, &1u64.to_le_bytes());
        put(&mut b, 512 + 20, &32u32.to_le_bytes());
        put(&mut b, 512 + 24, b"LVM2 001");
        put(&mut b, 512 + 32, b"abcdefghijklmnopqrstuvwxyz012345");
        put(&mut b, 512 + 64, &(8u64 << 20).to_le_bytes());
        let v = vol(sniff(&b));
        assert_eq!(v.kind, VolumeKind::Lvm2Pv);
        assert_eq!(v.uuid.as_deref(), Some("abcdef-ghij-klmn-opqr-stuv-wxyz-012345"));
        assert_eq!(v.size, Some(8 << 20));

        let mut b = buf(4096);
        put(&mut b, 0, b"LUKS\xba\xbe\x00\x02");
        put(&mut b, 24, b"inner");
        put(&mut b, 168, b"0b9d6f1e-1111-2222-3333-444455556666");
        let v = vol(sniff(&b));
        assert_eq!((v.kind, v.label.as_deref()), (VolumeKind::Luks2, Some("inner")));
        assert_eq!(v.uuid.as_deref(), Some("0b9d6f1e-1111-2222-3333-444455556666"));
        b[7] = 1;
        assert_eq!(vol(sniff(&b)).kind, VolumeKind::Luks1);
    }

    #[test]
    fn qcow2_inside_with_backing_file() {
        let mut b = buf(65536);
        put(&mut b, 0, b"QFI\xfb\0\0\0\x03");
        put(&mut b, 8, &0x200u64.to_be_bytes());
        put(&mut b, 16, &11u32.to_be_bytes());
        put(&mut b, 24, &(1u64 << 30).to_be_bytes());
        put(&mut b, 0x200, b"/etc/shadow");
        let c = cont(sniff(&b));
        assert_eq!(c.kind, ContainerKind::Qcow2);
        assert_eq!(c.details, ["version 3", "virtual size 1073741824 bytes", "backing file /etc/shadow"]);
        assert!(c.warning().contains("qemu must not be pointed at this with format probing"));
        b[7] = 1;
        assert_eq!(cont(sniff(&b)).kind, ContainerKind::Qcow);
    }

    #[test]
    fn vmdk_sparse_and_descriptor() {
        let desc = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                    createType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"/etc/passwd\" 0\n";
        let mut b = buf(4096);
        put(&mut b, 0, desc.as_bytes());
        let c = cont(sniff(&b));
        assert_eq!(c.kind, ContainerKind::VmdkDescriptor);
        assert_eq!(c.details, ["extent RW 2048 FLAT \"/etc/passwd\" 0"]);

        let mut b = buf(8192);
        put(&mut b, 0, b"KDMV");
        put(&mut b, 4, &1u32.to_le_bytes());
        put(&mut b, 12, &2048u64.to_le_bytes());
        put(&mut b, 28, &1u64.to_le_bytes());
        put(&mut b, 36, &1u64.to_le_bytes());
        put(&mut b, 512, b"# Disk DescriptorFile\nRW 2048 SPARSE \"x.vmdk\"\n");
        let c = cont(sniff(&b));
        assert_eq!(c.kind, ContainerKind::Vmdk);
        assert!(c.details.contains(&"capacity 1048576 bytes".to_string()), "{:?}", c.details);
        assert!(c.details.contains(&"extent RW 2048 SPARSE \"x.vmdk\"".to_string()), "{:?}", c.details);

        let mut b = buf(512);
        put(&mut b, 0, b"COWD");
        assert_eq!(cont(sniff(&b)).kind, ContainerKind::Vmdk);
    }

    #[test]
    fn other_containers() {
        let cases: [(&[u8], usize, ContainerKind); 7] = [
            (b"conectix", 0, ContainerKind::Vhd),
            (b"vhdxfile", 0, ContainerKind::Vhdx),
            (&[0x7f, 0x10, 0xda, 0xbe], 0x40, ContainerKind::Vdi),
            (b"QED\0", 0, ContainerKind::Qed),
            (b"WithoutFreeSpace", 0, ContainerKind::Parallels),
            (b"Bochs Virtual HD Image", 0, ContainerKind::Bochs),
            (b"#!/bin/sh\n#V2.0 Format\n", 0, ContainerKind::Cloop),
        ];
        for (magic, off, kind) in cases {
            let mut b = buf(4096);
            put(&mut b, off, magic);
            assert_eq!(cont(sniff(&b)).kind, kind, "{}", String::from_utf8_lossy(magic));
        }
        // footers: fixed VHD and DMG, even with an MBR at the start
        for (magic, kind) in [(b"conectix", ContainerKind::Vhd), (b"koly\0\0\0\x04", ContainerKind::Dmg)] {
            let mut head = buf(4096);
            mbr_entry(&mut head, 0, false, 0x83, 2048, 100);
            put(&mut head, 510, &[0x55, 0xAA]);
            let mut tail = buf(512);
            put(&mut tail, 0, magic);
            assert_eq!(cont(classify(&head, &tail, 1 << 20, false)).kind, kind);
        }
    }

    #[test]
    fn zeros_and_unrecognised() {
        assert_eq!(classify(&buf(4096), &buf(512), 1 << 20, true), Payload::Zeros);
        let mut b = buf(4096);
        put(&mut b, 1000, b"\x01\x02hello");
        let p = sniff(&b);
        assert_eq!(
            p,
            Payload::Unrecognised { leading_zeros: 1000, first_bytes: "010268656c6c6f".to_string() + &"00".repeat(9) }
        );
        assert_eq!(p.describe(), "unrecognised (the first 1000 bytes are zeros)");
        assert!(matches!(classify(&[], &[], 0, false), Payload::Unrecognised { leading_zeros: 0, .. }));
        // Short or odd buffers never panic.
        for n in [0, 1, 7, 511, 512, 513, 1100, 4095] {
            let b = vec![0xffu8; n];
            let _ = classify(&b, &b, n as u64, false);
            let _ = volume(&b);
        }
    }

    #[test]
    fn json_shapes() {
        let j = sniff(&ext_sb(0x4, 0x40, 0)).to_json();
        assert_eq!(j["kind"], "volume");
        assert_eq!(j["type"], "ext4");
        let j = table(sniff(&gpt_disk(512)));
        let j = Payload::Table(j).to_json();
        assert_eq!(j["type"], "gpt");
        assert_eq!(j["partitions"][1]["name"], "root");
        assert_eq!(Payload::Zeros.to_json()["kind"], "zeros");
    }
}
