//! The kernel's per-mount readahead ("backing device info"). FUSE starts every mount at 128 KiB,
//! so sequential reads arrive as 128 KiB requests; root can raise it after mounting, which cuts
//! the number of FUSE round trips (and daemon CPU per GiB) for streaming reads.
//!
//! The mount's device number comes from `/proc/self/mountinfo`, not from `stat(MOUNTPOINT)`:
//! that way the readahead is raised before the daemon serves its first request (a `stat` would
//! be a request to itself), and no reader can open a file while it is still 128 KiB. A file
//! keeps the readahead it was opened with.

use std::path::{Path, PathBuf};

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
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

/// The `major:minor` of the FUSE file system mounted last at `mountpoint` (an absolute,
/// canonical path), from the text of `/proc/self/mountinfo`.
pub fn fuse_dev(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    let want = mountpoint.to_string_lossy();
    mountinfo.lines().rev().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|&x| x == "-")?;
        let fstype = f.get(sep + 1)?;
        (f.len() > 4 && unescape(f[4]) == want && fstype.starts_with("fuse")).then(|| f[2].to_string())
    })
}

/// The sysfs file holding the readahead of the FUSE file system mounted at `mountpoint`
/// (absolute and canonical, e.g. resolved before mounting).
pub fn read_ahead_path(mountpoint: &Path) -> std::io::Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let dev = fuse_dev(&info, mountpoint).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("no FUSE mount at {}", mountpoint.display()))
    })?;
    Ok(PathBuf::from(format!("/sys/class/bdi/{dev}/read_ahead_kb")))
}

/// Set the readahead of the mount at `mountpoint` to `bytes` (rounded down to KiB).
pub fn set_read_ahead(mountpoint: &Path, bytes: u64) -> std::io::Result<()> {
    std::fs::write(read_ahead_path(mountpoint)?, format!("{}\n", bytes / 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:52 / /mnt/a\\040b rw,nosuid shared:20 - fuse.luksfs luksfs:/src rw,user_id=0
41 22 0:53 / /mnt/c rw shared:21 - tmpfs tmpfs rw
42 41 0:54 / /mnt/c rw shared:22 - fuse.luksfs luksfs:/x rw
";

    #[test]
    fn finds_the_topmost_fuse_mount() {
        assert_eq!(fuse_dev(INFO, Path::new("/mnt/a b")).as_deref(), Some("0:52"));
        assert_eq!(fuse_dev(INFO, Path::new("/mnt/c")).as_deref(), Some("0:54"));
        assert_eq!(fuse_dev(INFO, Path::new("/")), None, "not FUSE");
        assert_eq!(fuse_dev(INFO, Path::new("/mnt")), None);
        assert_eq!(fuse_dev("garbage\n\n- -\n", Path::new("/mnt/c")), None);
    }
}
