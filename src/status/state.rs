//! What a running mount knows about an image or one of its files, in words: the encryption
//! format, the cipher and the unlock state (with the reason of a failure). Shared by the status
//! report, the `user.luksfs.*` extended attributes and the start-up summary.

use crate::Error;
use crate::dir::ImageEntry;
use crate::volume::{ImageTree, Volume};
use std::sync::Arc;

/// The unlock state of an image or of one of its volumes.
#[derive(Clone, Debug)]
pub enum State {
    /// Readable: every decrypted view opened (or nothing needed a key).
    Unlocked,
    /// Waiting for its key to be tried (queued or unlocking).
    Locked,
    /// Broken, or its key did not open it: why.
    Failed(Error),
    /// Not encrypted (shown with `--all-volumes`).
    NotEncrypted,
}

impl State {
    /// One word: `unlocked`, `locked`, `failed` or `not-encrypted`.
    pub fn word(&self) -> &'static str {
        match self {
            State::Unlocked => "unlocked",
            State::Locked => "locked",
            State::Failed(_) => "failed",
            State::NotEncrypted => "not-encrypted",
        }
    }

    /// The word, and the reason of a failure: `failed: wrong key (bad-key)`.
    pub fn describe(&self) -> String {
        match self {
            State::Failed(e) => format!("failed: {} ({})", e.message(), e.kind().name()),
            other => other.word().to_string(),
        }
    }
}

/// The state of a whole image, from the volumes found in its tree so far: locked while any
/// waits for a key, failed when any is broken or failed to unlock, unlocked otherwise.
pub fn image_state(image: &ImageEntry) -> State {
    let volumes = image.tree.volumes();
    if volumes.iter().any(|v| v.is_locked()) {
        State::Locked
    } else if let Some(e) = volumes.iter().find_map(|v| v.failure()) {
        State::Failed(e)
    } else {
        State::Unlocked
    }
}

/// How a volume is encrypted: the format and cipher of the nearest LUKS (or qcow2) header
/// above it, read from the header (known before the key is tried).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `LUKS1`, `LUKS2` or `qcow2`.
    pub format: String,
    /// In cryptsetup's notation, e.g. `aes-xts-plain64`.
    pub cipher: String,
}

/// Facts about one volume of an image.
#[derive(Clone, Debug)]
pub struct VolumeFacts {
    /// Its encryption, `None` when no encrypted layer lies above (or at) it.
    pub encryption: Option<Encryption>,
    pub state: State,
}

/// The encryption of the first encrypted volume of `tree` (the image's own, for a LUKS or
/// qcow2 image).
pub fn image_encryption(tree: &ImageTree) -> Option<Encryption> {
    tree.volumes().iter().find_map(|v| header_encryption(v))
}

/// The encryption whose header `v` holds (its decrypted view is `v`'s only child).
fn header_encryption(v: &Volume) -> Option<Encryption> {
    let p = v.layer()?.header.as_ref()?;
    Some(Encryption { format: p.format().name().to_string(), cipher: p.layout().cipher.to_string() })
}

/// The facts of `vol`, a volume of `tree`.
pub fn volume_facts(tree: &ImageTree, vol: &Volume) -> VolumeFacts {
    let encryption = enclosing(&tree.root, vol, None).flatten();
    let state = if let Some(e) = vol.serve_error() {
        State::Failed(e)
    } else if vol.is_locked() {
        State::Locked
    } else if encryption.is_some() {
        State::Unlocked
    } else {
        State::NotEncrypted
    };
    VolumeFacts { encryption, state }
}

/// Walk down from `at` to `want`, carrying the encryption that covers each volume; `None` when
/// `want` is not below `at`.
fn enclosing(at: &Arc<Volume>, want: &Volume, covering: Option<Encryption>) -> Option<Option<Encryption>> {
    if std::ptr::eq(Arc::as_ptr(at), want) {
        return Some(covering);
    }
    let below = header_encryption(at).or(covering);
    at.children().iter().find_map(|c| enclosing(c, want, below.clone()))
}
