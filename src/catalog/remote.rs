//! The images of a container or bucket (below a prefix): one listing, then every Cinder backup
//! (its `_metadata`, `_sha256file` and chunk objects) is one image shown at the top, named by
//! [`BackupItem::display_name`], and every other object is an image file read by range, shown
//! under its name below the prefix (`/` making folders).

use super::backup::BackupItem;
use super::{Entry, Item, Reach, SourceMeta, safe_rel};
use crate::Result;
use crate::formats::cinder_backup::Catalog;
use crate::formats::cinder_backup::names::{self, METADATA_SUFFIX, SHA256_SUFFIX};
use crate::source::object::ObjectReader;
use crate::source::{Listed, ObjectStore};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// The entries of `store` below `prefix`.
pub fn list(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<Entry>> {
    let listed = store.list_sized(prefix)?;
    let catalog = Arc::new(Catalog::from_names(store.clone(), listed.iter().map(|l| l.name.as_str())));
    let now = SystemTime::now();
    let mut out = Vec::new();
    let owned = |l: &Listed| {
        catalog
            .backups()
            .iter()
            .any(|b| l.name == b.metadata_name() || l.name == b.sha256_name() || names::is_chunk_of(&l.name, &b.prefix))
    };
    for l in listed.iter().filter(|l| !owned(l)) {
        let below = &l.name[prefix.len().min(l.name.len())..];
        let Some(rel) = safe_rel(below) else {
            log::warn!("{}: object {:?} cannot be shown as a file name; skipped", store.describe(), l.name);
            continue;
        };
        // an orphan `_metadata`/`_sha256file` (no cinder-shaped prefix) is no image either
        if l.name.ends_with(METADATA_SUFFIX) || l.name.ends_with(SHA256_SUFFIX) {
            log::debug!("{}: {} looks like backup metadata; not probed as an image", store.describe(), l.name);
        }
        let reader = Arc::new(ObjectReader::new(store.clone(), &l.name, l.size));
        out.push(Entry::Image(Item {
            rel,
            path: PathBuf::from(format!("{}: {}", store.describe(), l.name)),
            meta: SourceMeta::owned_by_me(now),
            reach: Reach::Object(reader),
        }));
    }
    for entry in catalog.backups() {
        // parents may sit outside the prefix: backups are found in the catalog of this listing
        // (Cinder's Swift/S3 prefixes keep a volume's backups under one `volume_<id>/`)
        let item = BackupItem { catalog: catalog.clone(), entry: entry.clone() };
        let rel = PathBuf::from(item.display_name());
        let meta = SourceMeta::owned_by_me(item.time().unwrap_or(now));
        out.push(Entry::Image(Item {
            rel,
            path: PathBuf::from(format!("{}: {}", store.describe(), entry.prefix)),
            meta,
            reach: Reach::Backup(item),
        }));
    }
    Ok(out)
}
