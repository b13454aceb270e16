//! "What is in this byte range?": the one probe every command walks the volume tree with.
//!
//! Order matters where signatures can coexist: LUKS and qcow2 (magic at byte 0) first, then an
//! LVM2 label (one of the first four sectors), then a partition table (a GPT's protective MBR, or
//! an MBR), and last the leaves `sniff` recognises (filesystems, swap), which hold no volumes.

use crate::formats::qcow2::reader::Qcow2Reader;
use crate::formats::{lvm, partition};
use crate::image::{Format, ImageOptions, Prepared};
use crate::io::ReadAt;
use crate::sniff;
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// Bytes read from the start of a volume to recognise it: enough for every signature `sniff`
/// knows (the btrfs superblock at 64 KiB) and for a GPT header on 4 KiB sectors.
pub const PROBE_LEN: usize = sniff::VOLUME_PROBE_LEN;

/// What a volume holds.
pub enum Content {
    /// A LUKS volume, or a qcow2 image with LUKS inside: one child, the decrypted view, readable
    /// once a key opens it.
    Encrypted(Box<Prepared>),
    /// A qcow2 image without encryption: one child, the guest disk.
    Qcow2(Arc<Qcow2Reader>),
    /// An LVM2 physical volume: its logical volumes are the children.
    Lvm(Box<lvm::Pv>),
    /// A partition table: its partitions are the children.
    Table(partition::Table),
    /// Nothing luksfs has a layer for: a filesystem, swap, or unrecognised bytes (`None`).
    Leaf(Option<sniff::Volume>),
    /// A layer was recognised but cannot be used.
    Broken(Error),
}

/// Probe the volume `src`, called `name` in errors. `options` apply to an image's root (a
/// detached header makes the root a LUKS volume whatever its first bytes are).
pub fn probe(src: &Arc<dyn ReadAt>, name: &Path, options: Option<&ImageOptions>) -> Content {
    match probe_inner(src, name, options) {
        Ok(c) => c,
        Err(e) => Content::Broken(e.with_path(name)),
    }
}

fn probe_inner(src: &Arc<dyn ReadAt>, name: &Path, options: Option<&ImageOptions>) -> Result<Content> {
    let head = crate::io::read_upto(&**src, 0, PROBE_LEN)?;
    let detached = options.is_some_and(|o| o.header.is_some());
    let default = ImageOptions::default();
    let opts = options.unwrap_or(&default);
    match Format::probe(&head) {
        Some(Format::Luks1 | Format::Luks2) => {
            return Prepared::open_on(src.clone(), name, opts).map(|p| Content::Encrypted(Box::new(p)));
        }
        Some(Format::Qcow2) => {
            let h = crate::qcow2::read_header(&**src, src.size())?;
            if h.crypt_method == 0 && !detached {
                return Qcow2Reader::open(src.clone()).map(|r| Content::Qcow2(Arc::new(r)));
            }
            return Prepared::open_on(src.clone(), name, opts).map(|p| Content::Encrypted(Box::new(p)));
        }
        // A LUKS2 volume whose primary header is destroyed still opens from its secondary copy.
        None if detached || crate::luks::probe_secondary(&**src) => {
            return Prepared::open_on(src.clone(), name, opts).map(|p| Content::Encrypted(Box::new(p)));
        }
        None => {}
    }
    if lvm::probe(&head) {
        return lvm::read_pv(&**src, src.size()).map(|pv| Content::Lvm(Box::new(pv)));
    }
    if partition::probe(&head).is_some()
        && let Some(t) = partition::read_table(&**src, src.size())?
    {
        return Ok(Content::Table(t));
    }
    Ok(Content::Leaf(sniff::volume(&head)))
}
