//! The kernel's per-mount readahead ("backing device info"). FUSE starts every mount at 128 KiB,
//! so sequential reads arrive as 128 KiB requests; root can raise it after mounting, which cuts
//! the number of FUSE round trips (and daemon CPU per GiB) for streaming reads.
//!
//! The mount's device number comes from `/proc/self/mountinfo`, not from `stat(MOUNTPOINT)`:
//! that way the readahead is raised before the daemon serves its first request (a `stat` would
//! be a request to itself), and no reader can open a file while it is still 128 KiB. A file
//! keeps the readahead it was opened with.

use std::path::{Path, PathBuf};

/// The `major:minor` of the FUSE file system mounted last at `mountpoint` (an absolute,
/// canonical path), from the text of `/proc/self/mountinfo`.
pub fn fuse_dev(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    super::mountinfo::top_at(mountinfo, mountpoint).filter(|e| e.fstype.starts_with("fuse")).map(|e| e.dev)
}

/// The sysfs file holding the readahead of the FUSE file system mounted at `mountpoint`
/// (absolute and canonical, e.g. resolved before mounting).
pub fn read_ahead_path(mountpoint: &Path) -> std::io::Result<PathBuf> {
    let info = std::fs::read_to_string(super::mountinfo::PATH)?;
    let dev = fuse_dev(&info, mountpoint).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("no FUSE mount at {}", mountpoint.display()))
    })?;
    Ok(PathBuf::from(format!("/sys/class/bdi/{dev}/read_ahead_kb")))
}

/// Set the readahead of the FUSE mount with device number `dev` (`major:minor`) to `bytes`
/// (rounded down to KiB).
pub fn set_read_ahead_dev(dev: &str, bytes: u64) -> std::io::Result<()> {
    std::fs::write(format!("/sys/class/bdi/{dev}/read_ahead_kb"), format!("{}\n", bytes / 1024))
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
