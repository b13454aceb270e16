//! The kernel's per-mount readahead ("backing device info"). FUSE starts every mount at 128 KiB,
//! so sequential reads arrive as 128 KiB requests; root can raise it after mounting, which cuts
//! the number of FUSE round trips (and daemon CPU per GiB) for streaming reads.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Split a Linux `dev_t` into (major, minor), as glibc's `gnu_dev_major/minor` do.
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// The sysfs file holding the readahead of the file system mounted at `mountpoint`.
pub fn read_ahead_path(mountpoint: &Path) -> std::io::Result<PathBuf> {
    let (major, minor) = major_minor(std::fs::metadata(mountpoint)?.dev());
    Ok(PathBuf::from(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb")))
}

/// Set the readahead of the mount at `mountpoint` to `bytes` (rounded down to KiB).
pub fn set_read_ahead(mountpoint: &Path, bytes: u64) -> std::io::Result<()> {
    std::fs::write(read_ahead_path(mountpoint)?, format!("{}\n", bytes / 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_dev_t_like_glibc() {
        // makedev(0, 52) and makedev(259, 1048577)
        assert_eq!(major_minor(52), (0, 52));
        let dev = (1048577u64 & 0xff) | ((259u64 & 0xfff) << 8) | ((1048577u64 & !0xff) << 12);
        assert_eq!(major_minor(dev), (259, 1048577));
    }
}
