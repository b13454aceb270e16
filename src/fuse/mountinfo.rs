//! `/proc/self/mountinfo`, parsed: which mount is at a path, its type, source and device number.
//! Used to refuse a mount point already in use, to find the mount's backing device (readahead),
//! and to check a mount is still ours before unmounting it.

use std::path::Path;

/// Where the kernel lists this process's mounts.
pub const PATH: &str = "/proc/self/mountinfo";

/// One line of mountinfo (the fields luksfs needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Mount id (field 1).
    pub id: u64,
    /// Device number `major:minor` of the file system (field 3).
    pub dev: String,
    /// Mount point, unescaped (field 5).
    pub mount_point: String,
    /// File system type, e.g. `fuse.luksfs` (first field after `-`).
    pub fstype: String,
    /// Mount source, unescaped, e.g. `luksfs:/srv/images`.
    pub source: String,
    /// Super block options, e.g. `rw,user_id=1000,group_id=1000` for a FUSE mount.
    pub super_options: String,
}

impl Entry {
    /// The user who mounted a FUSE file system (its `user_id=` option).
    pub fn fuse_user(&self) -> Option<u32> {
        self.super_options.split(',').find_map(|o| o.strip_prefix("user_id=")?.parse().ok())
    }

    /// Whether this is a luksfs mount: type `fuse.luksfs`, or a FUSE type with a `luksfs:` source
    /// (the default `fsname`; `subtype=` may have changed the type).
    pub fn is_luksfs(&self) -> bool {
        self.fstype == "fuse.luksfs" || (self.fstype.starts_with("fuse") && self.source.starts_with("luksfs:"))
    }
}

/// Every luksfs mount in the text of a mountinfo file, in mount order.
pub fn luksfs_mounts(mountinfo: &str) -> Vec<Entry> {
    mountinfo.lines().filter_map(parse_line).filter(Entry::is_luksfs).collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one line; `None` for a line that is not a well-formed entry.
pub fn parse_line(line: &str) -> Option<Entry> {
    let f: Vec<&str> = line.split(' ').collect();
    let sep = f.iter().position(|&x| x == "-")?;
    if sep < 6 {
        return None;
    }
    Some(Entry {
        id: f[0].parse().ok()?,
        dev: f[2].to_string(),
        mount_point: unescape(f[4]),
        fstype: f.get(sep + 1)?.to_string(),
        source: unescape(f.get(sep + 2)?),
        super_options: f.get(sep + 3).map_or(String::new(), |s| s.to_string()),
    })
}

/// The mount on top at `mount_point` (absolute, canonical) in the text of a mountinfo file:
/// the last entry listed for that path.
pub fn top_at(mountinfo: &str, mount_point: &Path) -> Option<Entry> {
    let want = mount_point.to_string_lossy();
    mountinfo.lines().rev().filter_map(parse_line).find(|e| e.mount_point == want)
}

/// [`top_at`] over this process's current mountinfo.
pub fn current_top_at(mount_point: &Path) -> std::io::Result<Option<Entry>> {
    Ok(top_at(&std::fs::read_to_string(PATH)?, mount_point))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:52 / /mnt/a\\040b rw,nosuid shared:20 - fuse.luksfs luksfs:/src rw,user_id=0
41 22 0:53 / /mnt/c rw shared:21 - tmpfs tmpfs rw
42 41 0:54 / /mnt/c rw shared:22 - fuse luksfs:/x rw
";

    #[test]
    fn top_entry_per_path() {
        let e = top_at(INFO, Path::new("/mnt/a b")).unwrap();
        assert_eq!(
            (e.id, e.dev.as_str(), e.fstype.as_str(), e.source.as_str()),
            (40, "0:52", "fuse.luksfs", "luksfs:/src")
        );
        assert_eq!(top_at(INFO, Path::new("/mnt/c")).unwrap().dev, "0:54");
        assert_eq!(top_at(INFO, Path::new("/")).unwrap().fstype, "ext4");
        assert_eq!(top_at(INFO, Path::new("/mnt")), None);
        assert_eq!(top_at(INFO, Path::new("/mnt/a b")).unwrap().fuse_user(), Some(0));
        assert_eq!(top_at(INFO, Path::new("/mnt/c")).unwrap().fuse_user(), None);
        let mounts: Vec<u64> = luksfs_mounts(INFO).iter().map(|e| e.id).collect();
        assert_eq!(mounts, [40, 42]);
        assert_eq!(top_at("garbage\n\n- -\n1 2 - x\n", Path::new("/mnt/c")), None);
    }

    #[test]
    fn unescapes_octal_only() {
        assert_eq!(unescape("a\\040b\\011c"), "a b\tc");
        assert_eq!(unescape("a\\09b\\"), "a\\09b\\");
    }
}
