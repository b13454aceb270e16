//! The key of one image for a command that takes one image (`cat`, `verify IMAGE`): from its
//! keytab line, `--key-file`, `--barbican-secret`, a Glance sidecar, or the prompt (a wrong
//! passphrase typed there is asked again, `--tries` times in all: see
//! [`crate::image::UnlockSettings::tries`]); and, when the key came from a file ending in a
//! newline and did not fit, a note saying so.

use crate::cli::{KeyArgs, KeytabArgs, image_passphrase_if_given};
use crate::image::ImageOptions;
use crate::keys::keyfile::{self, KeyfileRange};
use crate::keys::{KeySource, Keyring, Secret, keytab, prompt};
use crate::volume::Volume;
use crate::volume::tree::UnlockKey;
use crate::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// What a keytab says about one image: its options (a `--header`/`--key-slot` on the command
/// line wins) and its key, if the line names one other than `-`.
pub fn keytab_line(tab: &KeytabArgs, image: &Path, cli: ImageOptions) -> Result<(ImageOptions, Option<KeySource>)> {
    let Some(path) = &tab.keytab else { return Ok((cli, None)) };
    let entries = keytab::load(path)?;
    let e = keytab::lookup(&entries, path, image)?;
    let opts = ImageOptions {
        header: cli.header.or_else(|| e.options.header.clone()),
        key_slot: cli.key_slot.or(e.options.key_slot),
    };
    let key = (e.key != KeySource::Default).then(|| e.key.clone());
    Ok((opts, key))
}

/// The key file behind a key source, for the trailing-newline note.
pub fn key_file_of(key: &KeyArgs, from_tab: Option<&KeySource>) -> Option<(PathBuf, KeyfileRange)> {
    match from_tab {
        Some(KeySource::File { path, range }) => Some((path.clone(), *range)),
        Some(_) => None,
        None => key
            .key_file
            .clone()
            .map(|p| (p, KeyfileRange { offset: key.keyfile_offset.unwrap_or(0), size: key.keyfile_size })),
    }
}

/// For a wrong-key error: the note to print after it when the key file ends in a newline.
pub fn newline_note(e: &Error, file: Option<&(PathBuf, KeyfileRange)>) -> Option<String> {
    if e.kind() != ErrorKind::BadKey {
        return None;
    }
    file.and_then(|(p, r)| keyfile::newline_note(p, *r))
}

/// The key of every encrypted volume of one image: the one given (keytab line, key file,
/// Barbican, sidecar; read once), else the passphrase typed at the prompt (asked once and tried
/// on every volume; asked again for a volume it does not open).
pub struct ImageKey<'a> {
    image: &'a Path,
    key: &'a KeyArgs,
    from_tab: Option<KeySource>,
    barbican_secret: Option<&'a str>,
    key_slot: Option<u32>,
    given: OnceLock<Result<Option<Secret>>>,
    /// The last passphrase typed, and the volume it was last handed to.
    typed: Mutex<Option<(usize, Secret)>>,
    /// A key was needed and there was no key given and nobody to ask.
    nobody: AtomicBool,
}

impl<'a> ImageKey<'a> {
    /// The key of `image` as the arguments give it.
    pub fn new(
        image: &'a Path,
        key: &'a KeyArgs,
        from_tab: Option<KeySource>,
        barbican_secret: Option<&'a str>,
        opts: &ImageOptions,
    ) -> Self {
        ImageKey {
            image,
            key,
            from_tab,
            barbican_secret,
            key_slot: opts.key_slot,
            given: OnceLock::new(),
            typed: Mutex::new(None),
            nobody: AtomicBool::new(false),
        }
    }

    /// The key to try on `vol` (the key closure of [`Volume::unlock`]).
    pub fn key_for(&self, vol: &Volume) -> Result<UnlockKey> {
        let given = self.given.get_or_init(|| match &self.from_tab {
            Some(src) => Keyring::new(None, self.key.os_cloud.clone())
                .passphrase(src)
                .map(Some)
                .map_err(|e| e.with_path(self.image)),
            None => image_passphrase_if_given(self.key, self.barbican_secret, self.image),
        });
        if let Some(p) = given.clone()? {
            return Ok(UnlockKey { passphrase: p, key_slot: self.key_slot, asked: false });
        }
        let me = vol as *const Volume as usize;
        let mut typed = self.typed.lock().unwrap_or_else(|e| e.into_inner());
        // A passphrase typed for another volume is tried first; asked for again when this
        // volume is asked about a second time (the one typed was wrong).
        if let Some((who, p)) = typed.as_mut()
            && *who != me
        {
            *who = me;
            return Ok(UnlockKey { passphrase: p.clone(), key_slot: self.key_slot, asked: true });
        }
        let Some(p) = prompt::ask(&vol.display().display().to_string())? else {
            self.nobody.store(true, Ordering::Relaxed);
            return Err(no_key());
        };
        *typed = Some((me, p.clone()));
        Ok(UnlockKey { passphrase: p, key_slot: self.key_slot, asked: true })
    }

    /// The usage error to give when a key was needed and none was given (a volume's unlock
    /// reports it as a key problem of that volume).
    pub fn missing(&self) -> Option<Error> {
        self.nobody.load(Ordering::Relaxed).then(no_key)
    }

    /// The note to print after `e` (a wrong key from a file ending in a newline).
    pub fn note(&self, e: &Error) -> Option<String> {
        newline_note(e, key_file_of(self.key, self.from_tab.as_ref()).as_ref())
    }
}

fn no_key() -> Error {
    Error::usage(
        "no key given: use --key-file FILE, --keytab FILE, --barbican-secret ID, or run on a terminal to be prompted",
    )
}

/// The Barbican id of a Cinder backup's or Glance image's key, when the key is to come from
/// Barbican: no key file given and Barbican configured (`--os-cloud`, `OS_*`). A backup's is
/// its own key as the Cinder API records it, else the one in its `volume_meta`
/// ([`crate::keys::cinder`]).
pub fn backup_key_id(item: &crate::catalog::Item, key: &KeyArgs) -> Option<String> {
    if key.key_file.is_some() || !Keyring::new(None, key.os_cloud.clone()).barbican_configured() {
        return None;
    }
    if let Some(m) = item.glance() {
        return m.key_id.clone();
    }
    crate::keys::cinder::backup_key_id(item.backup()?, key.os_cloud.as_deref()).id
}
