//! An [`ObjectStore`] over a directory tree (a Cinder `backup_posix_path`, an NFS mount):
//! object `a/b/c` is the file `ROOT/a/b/c`. Names are checked before they touch the file
//! system (no `..`, no empty or `.` components, no NUL), directory symlinks are not followed
//! while listing, and listings are bounded in depth and count.

use super::{Listed, ObjectStore};
use crate::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Deepest directory level a listing descends to below the root (`xx/yy/<id>/` is 3).
pub const MAX_DEPTH: usize = 6;
/// Most names one listing returns.
pub const MAX_LIST: usize = 1 << 20;

/// A directory tree read as an object store.
#[derive(Clone, Debug)]
pub struct PosixStore {
    root: PathBuf,
}

impl PosixStore {
    /// The store rooted at directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<PosixStore> {
        let root = root.into();
        let md = std::fs::metadata(&root).map_err(|e| Error::from_io(format!("{}", root.display()), &e))?;
        if !md.is_dir() {
            return Err(Error::usage(format!("{} is not a directory", root.display())));
        }
        Ok(PosixStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        let ok =
            !name.is_empty() && !name.contains('\0') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !ok {
            return Err(Error::corrupt(format!(
                "object name {name:?} cannot name a file below {}",
                self.root.display()
            )));
        }
        Ok(self.root.join(name))
    }

    fn open(&self, name: &str) -> Result<Option<(File, u64)>> {
        let path = self.path_of(name)?;
        match File::open(&path) {
            Ok(f) => {
                let md = f.metadata().map_err(|e| Error::from_io(path.display(), &e))?;
                if !md.is_file() {
                    return Err(Error::corrupt(format!("{} is not a regular file", path.display())));
                }
                Ok(Some((f, md.len())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_io(path.display(), &e)),
        }
    }

    fn walk(&self, dir: &Path, rel: &str, depth: usize, prefix: &str, out: &mut Vec<Listed>) -> Result<()> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth > 0 => return Ok(()),
            Err(e) => return Err(Error::from_io(dir.display(), &e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| Error::from_io(dir.display(), &e))?;
            let Some(fname) = entry.file_name().to_str().map(str::to_string) else { continue };
            let name = format!("{rel}{fname}");
            let ft = entry.file_type().map_err(|e| Error::from_io(entry.path().display(), &e))?;
            if ft.is_dir() {
                let sub = format!("{name}/");
                if depth < MAX_DEPTH && (prefix.starts_with(&sub) || sub.starts_with(prefix)) {
                    self.walk(&entry.path(), &sub, depth + 1, prefix, out)?;
                }
            } else if name.starts_with(prefix) && (ft.is_file() || ft.is_symlink()) {
                if out.len() >= MAX_LIST {
                    return Err(Error::unsupported(format!(
                        "{}: more than {MAX_LIST} objects under {prefix:?}",
                        self.root.display()
                    )));
                }
                // a symlink counts by what it points to; a dangling one is listed empty
                let size = std::fs::metadata(entry.path()).map(|m| m.len()).unwrap_or(0);
                out.push(Listed { name, size });
            }
        }
        Ok(())
    }
}

impl ObjectStore for PosixStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>> {
        // start at the deepest directory the prefix names
        let (dir_part, rel) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[..=i]),
            None => ("", ""),
        };
        let dir = if dir_part.is_empty() { self.root.clone() } else { self.path_of(dir_part)? };
        let mut out = Vec::new();
        let depth = rel.matches('/').count();
        self.walk(&dir, rel, depth, prefix, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some((f, len)) = self.open(name)? else { return Ok(None) };
        if len > max {
            return Err(Error::corrupt(format!("object {name} has {len} bytes, more than the {max} it can have")));
        }
        let mut v = Vec::with_capacity(len as usize);
        f.take(max + 1).read_to_end(&mut v).map_err(|e| Error::from_io(format!("reading object {name}"), &e))?;
        if v.len() as u64 > max {
            return Err(Error::corrupt(format!("object {name} grew past {max} bytes while read")));
        }
        Ok(Some(v))
    }

    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        let Some((f, size)) = self.open(name)? else { return Ok(None) };
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(Error::corrupt(format!("object {name}: range {offset}+{len} is past its end {size}")));
        }
        let mut v = vec![0u8; len];
        f.read_exact_at(&mut v, offset).map_err(|e| Error::from_io(format!("reading object {name}"), &e))?;
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_gets_and_refuses_escapes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("ab/cd/x")).unwrap();
        std::fs::write(t.path().join("ab/cd/x/p_metadata"), b"meta").unwrap();
        std::fs::write(t.path().join("ab/cd/x/p-00001"), b"0123456789").unwrap();
        std::fs::write(t.path().join("top"), b"t").unwrap();
        let s = PosixStore::new(t.path()).unwrap();
        assert_eq!(s.list("").unwrap(), vec!["ab/cd/x/p-00001", "ab/cd/x/p_metadata", "top"]);
        assert_eq!(s.list("ab/cd/x/p_").unwrap(), vec!["ab/cd/x/p_metadata"]);
        assert_eq!(s.list("ab/c").unwrap().len(), 2);
        assert!(s.list("zz/").unwrap().is_empty());
        assert_eq!(s.get("ab/cd/x/p-00001", 10).unwrap().unwrap(), b"0123456789");
        assert!(s.get("ab/cd/x/p-00001", 9).is_err());
        assert_eq!(s.get("ab/cd/x/none", 9).unwrap(), None);
        assert_eq!(s.get_range("ab/cd/x/p-00001", 8, 2).unwrap().unwrap(), b"89");
        assert!(s.get_range("ab/cd/x/p-00001", 9, 2).is_err());
        for bad in ["../etc/passwd", "ab//x", "./top", "", "ab/../top"] {
            assert!(s.get(bad, 100).is_err(), "{bad}");
        }
    }
}
