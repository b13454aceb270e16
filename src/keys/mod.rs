//! Where passphrases come from: key files (with cryptsetup's offset/size semantics), a keytab
//! mapping images to keys, a terminal prompt, and (later) Barbican. Nothing here knows about disk
//! formats or ciphers.

pub mod barbican;
pub mod clouds;
pub mod keyfile;
pub mod keytab;
pub mod sidecar;

use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Secret bytes (a passphrase or a volume key): zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wrap bytes that are already secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }
    /// Copy `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

/// Where one image's passphrase comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The default key: `--key-file`, or the passphrase typed at the prompt.
    Default,
    /// A key file (cryptsetup `--key-file` semantics).
    File { path: PathBuf, range: keyfile::KeyfileRange },
    /// A Barbican secret (id or href).
    Barbican(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Default => f.write_str("the default key"),
            KeySource::File { path, .. } => write!(f, "key file {}", path.display()),
            KeySource::Barbican(id) => write!(f, "Barbican secret {id}"),
        }
    }
}

/// Resolves [`KeySource`]s to passphrases for one run of luksfs.
#[derive(Default)]
pub struct Keyring {
    default: Option<Secret>,
}

impl Keyring {
    /// A keyring whose [`KeySource::Default`] is `default` (a `--key-file` read once, or the
    /// passphrase typed at the prompt).
    pub fn new(default: Option<Secret>) -> Self {
        Keyring { default }
    }

    /// The passphrase for `source`.
    pub fn passphrase(&self, source: &KeySource) -> crate::Result<Secret> {
        match source {
            KeySource::Default => self.default.clone().ok_or_else(|| {
                crate::Error::bad_key("no key for this image: give --key-file, or a keytab line for it")
            }),
            KeySource::File { path, range } => keyfile::read(path, *range),
            KeySource::Barbican(id) => Err(crate::Error::usage(format!(
                "Barbican secret {id}: no OpenStack credentials were given (use --os-cloud or the OS_* variables)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = Secret::from_slice(b"hunter2");
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"));
        assert!(d.contains("7 bytes"));
    }
}
