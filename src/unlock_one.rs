//! Unlocking one image for a command that takes one image (`cat`, `verify IMAGE`): its key from
//! a keytab line, `--key-file`, `--barbican-secret`, a Glance sidecar, or the prompt (asked up
//! to `--tries` times); and, when the key came from a file ending in a newline and did not fit,
//! a note saying so.

use crate::cli::{KeyArgs, KeytabArgs, PromptArgs, image_passphrase_if_given};
use crate::image::{Image, ImageOptions, Prepared, UnlockSettings};
use crate::keys::keyfile::{self, KeyfileRange};
use crate::keys::{KeySource, Keyring, keytab, prompt};
use crate::{Error, ErrorKind, Result};
use std::path::Path;

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
fn key_file_of(key: &KeyArgs, from_tab: Option<&KeySource>) -> Option<(std::path::PathBuf, KeyfileRange)> {
    match from_tab {
        Some(KeySource::File { path, range }) => Some((path.clone(), *range)),
        Some(_) => None,
        None => key
            .key_file
            .clone()
            .map(|p| (p, KeyfileRange { offset: key.keyfile_offset.unwrap_or(0), size: key.keyfile_size })),
    }
}

/// A wrong-key error, and the note to print after it when the key file ends in a newline.
pub fn newline_note(e: &Error, file: Option<&(std::path::PathBuf, KeyfileRange)>) -> Option<String> {
    if e.kind() != ErrorKind::BadKey {
        return None;
    }
    file.and_then(|(p, r)| keyfile::newline_note(p, *r))
}

/// Open and unlock `image` with the key the arguments give; `Err((error, note))` on failure.
#[allow(clippy::too_many_arguments)]
pub fn unlock(
    image: &Path,
    opts: &ImageOptions,
    key: &KeyArgs,
    from_tab: Option<KeySource>,
    barbican_secret: Option<&str>,
    prompt_args: &PromptArgs,
    settings: UnlockSettings,
) -> std::result::Result<Image, (Error, Option<String>)> {
    let file = key_file_of(key, from_tab.as_ref());
    let fail = |e: Error| {
        let note = newline_note(&e, file.as_ref());
        (e, note)
    };
    let pass = match &from_tab {
        Some(src) => {
            Some(Keyring::new(None, key.os_cloud.clone()).passphrase(src).map_err(|e| fail(e.with_path(image)))?)
        }
        None => image_passphrase_if_given(key, barbican_secret, image).map_err(fail)?,
    };
    if let Some(pass) = pass {
        return Prepared::open(image, opts).and_then(|p| p.unlock(&pass, settings)).map_err(fail);
    }
    let what = image.display().to_string();
    match prompt::with_tries(&what, prompt_args.tries, |pass| Prepared::open(image, opts)?.unlock(pass, settings)) {
        Ok(Some(img)) => Ok(img),
        Ok(None) => Err((
            Error::usage(
                "no key given: use --key-file FILE, --keytab FILE, --barbican-secret ID, or run on a terminal to be \
                 prompted",
            ),
            None,
        )),
        Err(e) => Err((e, None)),
    }
}
