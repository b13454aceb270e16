//! What a SOURCE holds, as a list of images: the one place that knows where images live.
//!
//! A SOURCE is a local path (a directory, one image file, a block device) or an object-store
//! URL (`swift://CONTAINER[/PREFIX]`, `s3://BUCKET[/PREFIX]`). Its images are plain files or
//! objects (read in place: by file offset or by HTTP range) and Cinder backups (many chunk
//! objects reassembled on demand, [`crate::formats::cinder_backup`]). Every image is an
//! [`Item`] whose [`Item::open`] gives a [`ReadAt`]: the volume tree, `mount`, `cat`, `inspect`
//! and `verify` take it from there and never ask where the bytes came from.
//!
//! - [`location`]: parsing a SOURCE argument and connecting to its store.
//! - [`local`]: a directory walk (files, and posix/NFS backups found by their `_metadata`).
//! - [`remote`]: an object-store listing (objects, and Swift/S3 backups).
//! - [`backup`]: one backup as an image (its name, times and key id).
//! - [`glance`]: the images of Glance (`glance://`), each with its record's properties.

pub mod backup;
pub mod glance;
pub mod local;
pub mod location;
pub mod remote;

pub use location::Location;

use crate::Result;
use crate::formats::cinder_backup::reader::{DEFAULT_CACHE_BYTES, ObjectChecks};
use crate::io::ReadAt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Ownership and times shown for an image or directory (copied from the source where it has
/// them).
#[derive(Clone, Copy, Debug)]
pub struct SourceMeta {
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub atime: SystemTime,
}

impl SourceMeta {
    /// From a file's metadata.
    pub fn of(md: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let t = |s: i64, ns: i64| {
            let d = std::time::Duration::new(s.unsigned_abs(), ns.clamp(0, 999_999_999) as u32);
            if s >= 0 { SystemTime::UNIX_EPOCH + d } else { SystemTime::UNIX_EPOCH - d }
        };
        SourceMeta {
            uid: md.uid(),
            gid: md.gid(),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            atime: t(md.atime(), md.atime_nsec()),
        }
    }

    /// Owned by this process's user, all three times `time` (objects of a remote store).
    pub fn owned_by_me(time: SystemTime) -> Self {
        use std::os::unix::fs::MetadataExt;
        let (uid, gid) = std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((0, 0));
        SourceMeta { uid, gid, mtime: time, ctime: time, atime: time }
    }
}

/// How an image's bytes are reached.
pub enum Reach {
    /// A local file or block device.
    File,
    /// An object of a store, read by range.
    Object(Arc<dyn ReadAt>),
    /// A Cinder backup, reassembled from its objects.
    Backup(backup::BackupItem),
    /// A Glance image, read by range, with its properties.
    Glance(Box<glance::GlanceItem>),
}

/// One image of a source.
pub struct Item {
    /// Its name relative to the source (what keytab lines and the mount tree use).
    pub rel: PathBuf,
    /// Where it is, for messages: a path, or the store and object name.
    pub path: PathBuf,
    /// Owner and times shown for it.
    pub meta: SourceMeta,
    pub reach: Reach,
}

impl Item {
    /// A reader of the image's bytes for reading (mounts, `cat`, `inspect`): a backup's objects
    /// are checked against its `_sha256file` (their md5 where it does not cover them).
    pub fn open(&self) -> Result<Arc<dyn ReadAt>> {
        self.open_with(DEFAULT_CACHE_BYTES, ObjectChecks::Digests)
    }

    /// A reader of the image's bytes for `verify`: a backup's objects are checked against their
    /// md5 too.
    pub fn open_verifying(&self) -> Result<Arc<dyn ReadAt>> {
        self.open_with(DEFAULT_CACHE_BYTES, ObjectChecks::All)
    }

    /// A reader whose backup chunk cache holds up to `cache_bytes`, checking objects as asked.
    pub fn open_with(&self, cache_bytes: u64, checks: ObjectChecks) -> Result<Arc<dyn ReadAt>> {
        match &self.reach {
            Reach::File => Ok(Arc::new(crate::io::FileSource::open(&self.path)?)),
            Reach::Object(r) => Ok(r.clone()),
            Reach::Backup(b) => b.open(cache_bytes, checks),
            Reach::Glance(g) => Ok(g.reader.clone()),
        }
    }

    /// The Glance image properties of this image, when it is a Glance image (a local image's
    /// sidecar is read by [`crate::keys::sidecar::load_for_image`]).
    pub fn glance(&self) -> Option<&crate::keys::sidecar::ImageMeta> {
        match &self.reach {
            Reach::Glance(g) => Some(&g.meta),
            _ => None,
        }
    }

    /// Its data as one read from start to end, when it is a Glance image (whose store may refuse
    /// byte ranges: `verify` then reads it so).
    pub fn one_get(&self) -> Option<Arc<dyn crate::source::OneGet>> {
        match &self.reach {
            Reach::Glance(g) => Some(g.whole.clone()),
            _ => None,
        }
    }

    /// The Cinder backup this image is, if it is one.
    pub fn backup(&self) -> Option<&backup::BackupItem> {
        match &self.reach {
            Reach::Backup(b) => Some(b),
            _ => None,
        }
    }

    /// Other names a keytab line may give this image (a backup's id, a Glance image's id).
    pub fn aliases(&self) -> Vec<PathBuf> {
        match &self.reach {
            Reach::Backup(b) => vec![PathBuf::from(&b.entry.info.backup_id)],
            Reach::Glance(g) => vec![PathBuf::from(&g.id)],
            _ => Vec::new(),
        }
    }
}

/// One entry of a source listing: a directory to show (even when no image below it is), or an
/// image.
pub enum Entry {
    Dir { rel: PathBuf, meta: SourceMeta },
    Image(Item),
}

/// What `location` holds: its directories and images, parents before children.
pub fn list(location: &Location) -> Result<Vec<Entry>> {
    match location {
        Location::Local(path) => local::list(path),
        Location::Store { store, prefix, .. } => remote::list(store.clone(), prefix),
        Location::Glance { store, id, .. } => glance::list(store, id.as_deref()),
    }
}

/// `rel` as a path below the source, checked: no absolute paths, `..` or empty components (an
/// object name from a server decides it).
pub(crate) fn safe_rel(name: &str) -> Option<PathBuf> {
    let ok =
        !name.is_empty() && !name.contains('\0') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| Path::new(name).to_path_buf())
}

/// The one image `arg` names, for commands that read one image (`cat`, `inspect`, `verify`):
/// a file or block device; a folder, container or bucket (prefix) holding exactly one image
/// (e.g. one posix backup's folder); or `DIR/NAME`, `swift://C/NAME`, `s3://B/NAME` where NAME
/// is an image of that folder or prefix as `mount` shows it (a backup's
/// `volume_…_backup_…` name, or its backup id); or `glance://IMAGE_ID`. `os_cloud` is
/// `--os-cloud` (for `glance://`).
pub fn resolve_one(arg: &Path, os_cloud: Option<&str>) -> Result<Item> {
    let location = Location::parse(arg.as_os_str(), os_cloud)?;
    let described = location.describe();
    if let Some(path) = location.local() {
        match std::fs::metadata(path) {
            Ok(md) if !md.is_dir() => {
                return Ok(Item {
                    rel: PathBuf::new(),
                    path: path.to_path_buf(),
                    meta: SourceMeta::of(&md),
                    reach: Reach::File,
                });
            }
            Ok(_) => {}
            Err(e) => {
                let parent = path.parent().filter(|p| p.is_dir());
                return match (parent, path.file_name().and_then(|n| n.to_str())) {
                    (Some(dir), Some(name)) => match pick(list(&Location::Local(dir.to_path_buf()))?, name) {
                        Some(item) => Ok(item),
                        None => Err(crate::Error::from_io("cannot open the image", &e).with_path(path)),
                    },
                    _ => Err(crate::Error::from_io("cannot open the image", &e).with_path(path)),
                };
            }
        }
    }
    let mut images: Vec<Item> = list(&location)?
        .into_iter()
        .filter_map(|e| match e {
            Entry::Image(i) => Some(i),
            Entry::Dir { .. } => None,
        })
        .collect();
    if images.len() == 1 {
        return Ok(images.remove(0));
    }
    if images.is_empty()
        && let Location::Store { url, store, prefix } = &location
        && let Some(name) = prefix.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty())
    {
        let parent = &prefix[..prefix.trim_end_matches('/').len() - name.len()];
        let within = list(&Location::Store { url: url.clone(), store: store.clone(), prefix: parent.to_string() })?;
        if let Some(item) = pick(within, name) {
            return Ok(item);
        }
    }
    if images.is_empty() {
        return Err(crate::Error::usage(format!("{described} holds no image")));
    }
    let names: Vec<String> = images.iter().take(8).map(|i| i.rel.display().to_string()).collect();
    Err(crate::Error::usage(format!(
        "{described} holds {} images; name one ({}{}), or mount or verify the whole source",
        images.len(),
        names.join(", "),
        if images.len() > names.len() { ", ..." } else { "" }
    )))
}

/// The image of a listing whose shown name (its path relative to the source, with or without
/// `.raw`), or alias (a backup id), is `name`.
fn pick(entries: Vec<Entry>, name: &str) -> Option<Item> {
    let name = name.strip_suffix(".raw").unwrap_or(name);
    entries.into_iter().find_map(|e| match e {
        Entry::Image(i) if i.rel == Path::new(name) || i.aliases().iter().any(|a| a == Path::new(name)) => Some(i),
        _ => None,
    })
}
