//! Where passphrases come from: key files (with cryptsetup's offset/size semantics), a keytab
//! mapping images to keys, a terminal prompt, and (later) Barbican. Nothing here knows about disk
//! formats or ciphers.

pub mod barbican;
pub mod cinder;
pub mod clouds;
pub mod keyfile;
pub mod keytab;
pub mod prompt;
pub mod sidecar;

use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Secret bytes (a passphrase or a volume key): zeroized on drop, redacted in `Debug`, and kept
/// out of swap and core dumps while alive (`mlock` + `MADV_DONTDUMP` through [`crate::sys`],
/// best effort: see there).
#[derive(Default)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    /// The `(address, capacity)` protected by [`crate::sys::protect`], released on drop.
    locked: (usize, usize),
}

impl Secret {
    /// Wrap bytes that are already secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        let locked = (bytes.as_ptr() as usize, bytes.capacity());
        crate::sys::protect(locked.0, locked.1);
        Secret { bytes: Zeroizing::new(bytes), locked }
    }
    /// Copy `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::from_slice(self.as_bytes())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        // Wipe before unlocking, so the bytes cannot reach swap in between.
        zeroize::Zeroize::zeroize(&mut *self.bytes);
        crate::sys::unprotect(self.locked.0, self.locked.1);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.bytes.len())
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
///
/// The Barbican client is created on first use (so a mount without Barbican keys never needs
/// credentials) and shared by every image: one token per mount, each secret fetched once.
#[derive(Default)]
pub struct Keyring {
    default: Option<Secret>,
    os_cloud: Option<String>,
    manager: std::sync::OnceLock<std::result::Result<std::sync::Arc<barbican::KeyManager>, crate::Error>>,
}

impl Keyring {
    /// A keyring whose [`KeySource::Default`] is `default` (a `--key-file` read once, or the
    /// passphrase typed at the prompt), with Barbican credentials from `os_cloud` (`--os-cloud`)
    /// or the `OS_*` environment.
    pub fn new(default: Option<Secret>, os_cloud: Option<String>) -> Self {
        Keyring { default, os_cloud, manager: std::sync::OnceLock::new() }
    }

    /// Whether OpenStack credentials were named (`--os-cloud`, `OS_CLOUD` or `OS_AUTH_URL`), so
    /// that Glance sidecars' key ids should be used.
    pub fn barbican_configured(&self) -> bool {
        self.os_cloud.is_some() || std::env::var_os("OS_CLOUD").is_some() || std::env::var_os("OS_AUTH_URL").is_some()
    }

    fn manager(&self) -> crate::Result<&barbican::KeyManager> {
        let m = self.manager.get_or_init(|| barbican::KeyManager::shared(self.os_cloud.as_deref()));
        m.as_deref().map_err(Clone::clone)
    }

    /// The payload of the Barbican secret `id`, which must be of type `certificate` (the
    /// certificate of a Glance image signature; public, so returned as plain bytes).
    pub fn certificate(&self, id: &str) -> crate::Result<Vec<u8>> {
        let p = self.manager()?.payload(id)?;
        if p.secret_type != "certificate" {
            return Err(crate::Error::usage(format!(
                "Barbican secret {id} is a {} secret, not a certificate",
                p.secret_type
            )));
        }
        Ok(p.bytes.as_bytes().to_vec())
    }

    /// The passphrase for `source`.
    pub fn passphrase(&self, source: &KeySource) -> crate::Result<Secret> {
        match source {
            KeySource::Default => self.default.clone().ok_or_else(|| {
                crate::Error::bad_key("no key for this image: give --key-file, or a keytab line for it")
            }),
            KeySource::File { path, range } => keyfile::read(path, *range),
            KeySource::Barbican(id) => self.manager()?.passphrase(id),
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

    #[test]
    fn secret_memory_is_locked_while_alive() {
        let s = Secret::from_slice(b"a volume key of 32 bytes........");
        let c = s.clone();
        assert_eq!(c, s);
        drop(s);
        assert_eq!(c.as_bytes(), b"a volume key of 32 bytes........");
        let addr = c.as_bytes().as_ptr() as usize;
        // Where RLIMIT_MEMLOCK allows it (root, or the default 8 MiB), the page is locked.
        if crate::sys::protect(addr, 1) {
            assert_eq!(crate::sys::is_locked(addr), Some(true));
        }
        crate::sys::unprotect(addr, 1);
    }
}
