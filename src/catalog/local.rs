//! The images of a local SOURCE: one file or block device, or a directory walked once.
//!
//! In a directory, every file is an image candidate, except the objects of posix/NFS Cinder
//! backups (`<prefix>-00001`, `<prefix>_metadata`, `<prefix>_sha256file` with a cinder-shaped
//! prefix): each such backup is one image instead, shown in the directory that holds the
//! driver's `<id[0:2]>/<id[2:4]>/<backup id>/` folders (or in its own folder when it is not in
//! that layout), and folders that hold nothing but backup objects are not shown. Parents of
//! incremental backups are looked for in the whole backup tree: the posix root above the
//! backup's `xx/yy/<id>` folders when the source is a folder below it.

use super::backup::BackupItem;
use super::{Entry, Item, Reach, SourceMeta};
use crate::formats::cinder_backup::Catalog;
use crate::formats::cinder_backup::names::{self, METADATA_SUFFIX, SHA256_SUFFIX};
use crate::source::ObjectStore;
use crate::source::posix::PosixStore;
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory depth limit (guards against pathological trees).
const MAX_DEPTH: usize = 64;

/// A file or directory met by the walk.
struct Found {
    rel: PathBuf,
    md: std::fs::Metadata,
    dir: bool,
}

/// The entries of `source`: a directory's tree, or the one file or block device.
pub fn list(source: &Path) -> Result<Vec<Entry>> {
    let md =
        std::fs::metadata(source).map_err(|e| Error::usage(format!("cannot read source {}: {e}", source.display())))?;
    if !md.is_dir() {
        let name = source.file_name().map(PathBuf::from).unwrap_or_default();
        return Ok(vec![Entry::Image(Item {
            rel: name,
            path: source.to_path_buf(),
            meta: SourceMeta::of(&md),
            reach: Reach::File,
        })]);
    }
    let mut found = Vec::new();
    walk(source, Path::new(""), 0, &mut found)?;
    let backups = backups_in(source, &found)?;
    let taken: BTreeSet<&Path> = backups.iter().flat_map(|(_, files)| files.iter().map(PathBuf::as_path)).collect();
    // a folder is shown unless everything below it belongs to backups
    let mut kept_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut backup_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for f in found.iter().filter(|f| !f.dir) {
        let into = if taken.contains(f.rel.as_path()) { &mut backup_dirs } else { &mut kept_dirs };
        into.extend(f.rel.ancestors().skip(1).map(Path::to_path_buf));
    }
    let mut out = Vec::new();
    for f in &found {
        if f.dir {
            if kept_dirs.contains(&f.rel) || !backup_dirs.contains(&f.rel) {
                out.push(Entry::Dir { rel: f.rel.clone(), meta: SourceMeta::of(&f.md) });
            }
        } else if !taken.contains(f.rel.as_path()) && f.md.is_file() {
            out.push(Entry::Image(Item {
                rel: f.rel.clone(),
                path: source.join(&f.rel),
                meta: SourceMeta::of(&f.md),
                reach: Reach::File,
            }));
        }
    }
    for (item, _) in backups {
        out.push(Entry::Image(item));
    }
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<Found>) -> Result<()> {
    if depth > MAX_DEPTH {
        log::warn!("{}: deeper than {MAX_DEPTH} levels, not descending", dir.display());
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}: {e}", dir.display())))?;
    let mut names: Vec<OsString> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        // Do not follow symlinked directories (loops); follow symlinks to files.
        let Ok(lmd) = std::fs::symlink_metadata(&path) else { continue };
        if lmd.is_dir() {
            out.push(Found { rel: rel.clone(), md: lmd, dir: true });
            walk(&path, &rel, depth + 1, out)?;
        } else if let Ok(md) = std::fs::metadata(&path)
            && md.is_file()
        {
            out.push(Found { rel, md, dir: false });
        }
    }
    Ok(())
}

/// The folder a backup in folder `dir` (relative) is shown in, and the folder (relative) of the
/// posix root its parents are looked for in: three levels up when `dir` ends in the driver's
/// `<id[0:2]>/<id[2:4]>/<id>` layout, else `dir` itself.
fn placement(dir: &Path, id: &str) -> Option<PathBuf> {
    let parts: Vec<&std::ffi::OsStr> = dir.iter().collect();
    let n = parts.len();
    let layout = n >= 3
        && id.len() >= 4
        && parts[n - 1] == id
        && parts[n - 2] == id.get(2..4).unwrap_or_default()
        && parts[n - 3] == id.get(..2).unwrap_or_default();
    layout.then(|| parts[..n - 3].iter().collect())
}

/// The posix backups among `found`: each as an image, with the files it owns.
fn backups_in(source: &Path, found: &[Found]) -> Result<Vec<(Item, Vec<PathBuf>)>> {
    let files: BTreeSet<&Path> = found.iter().filter(|f| !f.dir).map(|f| f.rel.as_path()).collect();
    let mut out = Vec::new();
    // one catalog per backup root: the source itself, or a posix root above it
    let mut catalogs: HashMap<PathBuf, Arc<Catalog>> = HashMap::new();
    let mut by_dir: BTreeMap<PathBuf, Vec<&Found>> = BTreeMap::new();
    for f in found.iter().filter(|f| !f.dir) {
        by_dir.entry(f.rel.parent().unwrap_or(Path::new("")).to_path_buf()).or_default().push(f);
    }
    for f in found.iter().filter(|f| !f.dir) {
        let Some(fname) = f.rel.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(prefix) = fname.strip_suffix(METADATA_SUFFIX) else { continue };
        let Some(info) = names::parse_prefix(prefix) else { continue };
        if info.az.is_some() {
            continue;
        }
        let dir = f.rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let sha = dir.join(format!("{prefix}{SHA256_SUFFIX}"));
        let mut owned = vec![f.rel.clone()];
        if files.contains(sha.as_path()) {
            owned.push(sha);
        }
        owned.extend(
            by_dir
                .get(&dir)
                .into_iter()
                .flatten()
                .filter(|o| o.rel.file_name().and_then(|n| n.to_str()).is_some_and(|n| names::is_chunk_of(n, prefix)))
                .map(|o| o.rel.clone()),
        );
        // the store root: the absolute posix root above `xx/yy/<id>` (which may lie above the
        // source), else the source
        let root = find_root(&source.join(&dir), &info.backup_id).unwrap_or_else(|| source.to_path_buf());
        let catalog = match catalogs.get(&root) {
            Some(c) => c.clone(),
            None => {
                let store: Arc<dyn ObjectStore> = Arc::new(PosixStore::new(&root)?);
                let c = Arc::new(Catalog::discover(store, "")?);
                catalogs.insert(root.clone(), c.clone());
                c
            }
        };
        let Some(entry) = catalog.find(&info.backup_id).cloned() else {
            log::warn!(
                "{}: a backup's metadata, but not found under {}",
                source.join(&f.rel).display(),
                root.display()
            );
            continue;
        };
        let item = BackupItem { catalog, entry };
        let shown_in = placement(&dir, &info.backup_id).unwrap_or_else(|| dir.clone());
        let rel = shown_in.join(item.display_name());
        let meta = SourceMeta { mtime: item.time().unwrap_or(SourceMeta::of(&f.md).mtime), ..SourceMeta::of(&f.md) };
        out.push((Item { rel, path: source.join(&dir).join(prefix), meta, reach: Reach::Backup(item) }, owned));
    }
    Ok(out)
}

/// The posix root of a backup in `abs_dir`: the folder above its `xx/yy/<id>` folders.
fn find_root(abs_dir: &Path, id: &str) -> Option<PathBuf> {
    let rel: PathBuf = abs_dir.iter().collect();
    placement(&rel, id)?;
    abs_dir.ancestors().nth(3).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_posix_layout_is_recognised() {
        let id = "0123abcd-0000-4000-8000-000000000001";
        assert_eq!(placement(&Path::new("x/01/23").join(id), id), Some(PathBuf::from("x")));
        assert_eq!(placement(&Path::new("01/23").join(id), id), Some(PathBuf::from("")));
        assert_eq!(placement(&Path::new("01/24").join(id), id), None);
        assert_eq!(placement(Path::new(id), id), None);
    }
}
