//! Files and block devices, opened read-only: the bottom of every stack.

use super::{ReadAt, past_end, within};
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A regular file or a block device, read with `pread`. Its size is taken once at open: the
/// file's length, or a block device's `BLKGETSIZE64` (`st_size` of a device node is 0).
pub struct FileSource {
    file: File,
    size: u64,
    path: PathBuf,
    block_device: bool,
}

/// Open `path` read-only, without updating its access time where permitted.
pub fn open_readonly(path: &Path) -> std::io::Result<File> {
    let noatime = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(path);
    match noatime {
        Ok(f) => Ok(f),
        // O_NOATIME needs ownership or CAP_FOWNER; fall back quietly.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        Err(e) => Err(e),
    }
}

impl FileSource {
    /// Open a regular file or block device read-only.
    pub fn open(path: &Path) -> Result<FileSource> {
        let file = open_readonly(path).map_err(|e| Error::from_io("cannot open", &e).with_path(path))?;
        let md = file.metadata().map_err(|e| Error::from_io("stat", &e).with_path(path))?;
        let block_device = md.file_type().is_block_device();
        let size = if block_device {
            crate::sys::block_device_size(&file)
                .map_err(|e| Error::from_io("BLKGETSIZE64 (block device size)", &e).with_path(path))?
        } else if md.is_file() {
            md.len()
        } else {
            return Err(Error::usage("not a regular file or block device").with_path(path));
        };
        Ok(FileSource { file, size, path: path.to_path_buf(), block_device })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a block device.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }
}

impl ReadAt for FileSource {
    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !within(offset, buf.len(), self.size) {
            return Err(past_end("the image", offset, buf.len(), self.size));
        }
        self.file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
            // The file shrank under us.
            std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt(format!("the image is truncated: it ends before byte {}", offset + buf.len() as u64))
            }
            _ => Error::from_io(format!("reading {} bytes at byte {offset}", buf.len()), &e),
        })
    }
    fn size(&self) -> u64 {
        self.size
    }
}
