//! The keys of a source holding several images (a folder, a container or bucket, Glance), as
//! `mount`, `verify DIR` and `cat SOURCE --volume IMAGE.d/NAME` take them: the keytab's lines,
//! a default key for the images without one (`--barbican-secret`, `--key-file`, or one prompt),
//! and Barbican for Glance sidecars and backups when OpenStack is configured.

use crate::cli::KeyArgs;
use crate::dir::{KeyPlan, Unlocker};
use crate::image::ImageOptions;
use crate::image::UnlockSettings;
use crate::keys::{KeySource, Keyring, keytab};
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// What a command was given for the keys of a source.
pub(super) struct Given<'a> {
    pub key: &'a KeyArgs,
    pub keytab: Option<&'a Path>,
    /// `--barbican-secret`: `None` when the command has no such option.
    pub barbican_secret: Option<Option<&'a str>>,
    /// The source, as the prompt names it.
    pub source: &'a str,
}

/// How the images of the source are shown and checked (see [`KeyPlan`]).
pub(super) struct Shown {
    pub options: ImageOptions,
    pub all_volumes: bool,
    pub verify: bool,
}

/// The plan for scanning the source and the unlocker for its volumes; a usage error when no key
/// can come from anywhere.
pub(super) fn source_keys(g: Given, shown: Shown, settings: UnlockSettings) -> Result<(KeyPlan, Unlocker)> {
    let keytab = match g.keytab {
        Some(p) => keytab::load(p)?,
        None => Default::default(),
    };
    let ring = Keyring::new(None, g.key.os_cloud.clone());
    let barbican = ring.barbican_configured();
    let default_key = match g.barbican_secret.flatten() {
        Some(id) => Some(ring.passphrase(&KeySource::Barbican(id.to_string()))?),
        None if g.key.key_file.is_some() || (keytab.is_empty() && !barbican) => {
            g.key.default_key(&format!("the images in {}", g.source))?
        }
        None => None,
    };
    if default_key.is_none() && keytab.is_empty() && !barbican {
        let secret = if g.barbican_secret.is_some() { " --barbican-secret ID," } else { "" };
        return Err(Error::usage(format!(
            "no key given: use --key-file FILE, --keytab FILE,{secret} --os-cloud NAME (Glance sidecars, backups' \
             keys), or run on a terminal to be prompted"
        )));
    }
    let plan = KeyPlan {
        keytab,
        default_options: shown.options,
        use_sidecars: barbican,
        all_volumes: shown.all_volumes,
        verify: shown.verify,
        backup_keys: barbican && default_key.is_none(),
        os_cloud: g.key.os_cloud.clone(),
    };
    let unlocker = Unlocker {
        keys: Arc::new(Keyring::new(default_key, g.key.os_cloud.clone())),
        settings,
        volume_keys: plan.volume_keys(),
    };
    Ok((plan, unlocker))
}
