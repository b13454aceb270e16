//! A SOURCE argument: a local path, or an object-store URL and the store it reaches.
//!
//! - `swift://CONTAINER[/PREFIX]`: credentials as the `swift` client takes them: v1/tempauth
//!   `ST_AUTH`, `ST_USER`, `ST_KEY`, or a ready `OS_STORAGE_URL` + `OS_AUTH_TOKEN`.
//! - `s3://BUCKET[/PREFIX]`: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_REGION` (default `us-east-1`), `AWS_SESSION_TOKEN` (SigV4, path-style addressing).
//! - `glance://` (every encrypted image) or `glance://IMAGE_ID`: Glance of the `--os-cloud` /
//!   `OS_*` credentials Barbican uses ([`super::glance`]).
//! - anything else: a path.

use crate::source::ObjectStore;
use crate::source::glance::GlanceStore;
use crate::source::s3::{S3Config, S3Store};
use crate::source::swift::{SwiftAuth, SwiftStore};
use crate::{Error, Result};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a SOURCE's images are.
pub enum Location {
    /// A directory, a file or a block device.
    Local(PathBuf),
    /// A prefix of a container or bucket.
    Store {
        /// The URL as given (for messages and the mount's name).
        url: String,
        store: Arc<dyn ObjectStore>,
        /// Object-name prefix (`""` for the whole container); ends in `/` unless empty.
        prefix: String,
    },
    /// Glance: every encrypted image, or one.
    Glance {
        /// The URL as given.
        url: String,
        store: Arc<GlanceStore>,
        /// The one image (`glance://ID`), or `None` for every encrypted image.
        id: Option<String>,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Split `CONTAINER[/PREFIX]` (the part after `scheme://`).
fn split(rest: &str, scheme: &str) -> Result<(String, String)> {
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(Error::usage(format!(
            "{scheme}://{rest}: no {} name (write {scheme}://NAME[/PREFIX])",
            if scheme == "s3" { "bucket" } else { "container" }
        )));
    }
    let mut prefix = prefix.trim_matches('/').to_string();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    Ok((name.to_string(), prefix))
}

/// Swift credentials the way the `swift` client takes them: a ready storage URL and token, v1 /
/// tempauth variables, else Keystone (`--os-cloud`, `OS_CLOUD` or the `OS_*` variables: the
/// catalog's `object-store` endpoint).
pub fn swift_auth(os_cloud: Option<&str>) -> Result<SwiftAuth> {
    match swift_auth_from_env() {
        Ok(a) => Ok(a),
        Err(e) => match crate::keys::barbican::KeyManager::shared(os_cloud) {
            Ok(km) => Ok(SwiftAuth::Keystone(km)),
            Err(k) if os_cloud.is_some() => Err(k),
            Err(_) => Err(e),
        },
    }
}

/// Swift credentials from the environment, the way the `swift` client reads them.
pub fn swift_auth_from_env() -> Result<SwiftAuth> {
    if let (Some(storage_url), Some(token)) = (env("OS_STORAGE_URL"), env("OS_AUTH_TOKEN")) {
        return Ok(SwiftAuth::Token { storage_url, token });
    }
    match (env("ST_AUTH"), env("ST_USER"), env("ST_KEY")) {
        (Some(auth_url), Some(user), Some(key)) => Ok(SwiftAuth::V1 { auth_url, user, key }),
        _ => Err(Error::usage(
            "no Swift credentials: give --os-cloud NAME (Keystone: clouds.yaml or the OS_* variables), \
             or set ST_AUTH, ST_USER and ST_KEY (v1/tempauth), or OS_STORAGE_URL and OS_AUTH_TOKEN",
        )),
    }
}

impl Location {
    /// Parse a SOURCE argument; a URL connects nothing yet (the first listing does). `os_cloud`
    /// (`--os-cloud`) names the cloud of a `glance://` source.
    pub fn parse(arg: &OsStr, os_cloud: Option<&str>) -> Result<Location> {
        let Some(s) = arg.to_str() else { return Ok(Location::Local(PathBuf::from(arg))) };
        if let Some(rest) = s.strip_prefix("glance://") {
            let id = super::glance::parse_target(rest)?;
            let store = Arc::new(GlanceStore::from_cloud(os_cloud)?);
            return Ok(Location::Glance { url: s.to_string(), store, id });
        }
        if let Some(rest) = s.strip_prefix("swift://") {
            let (container, prefix) = split(rest, "swift")?;
            let store = SwiftStore::new(swift_auth(os_cloud)?, &container)?;
            return Ok(Location::Store { url: s.to_string(), store: Arc::new(store), prefix });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = split(rest, "s3")?;
            let store = S3Store::new(S3Config::from_env()?, &bucket)?;
            return Ok(Location::Store { url: s.to_string(), store: Arc::new(store), prefix });
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            return Err(Error::usage(format!(
                "{s}: unknown scheme {scheme}:// (SOURCE is a path, swift://CONTAINER[/PREFIX], \
                 s3://BUCKET[/PREFIX] or glance://[IMAGE_ID])"
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// The SOURCE as given (a path or a URL).
    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Store { url, .. } | Location::Glance { url, .. } => url.clone(),
        }
    }

    /// The local path, for a local source.
    pub fn local(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Store { .. } | Location::Glance { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_names() {
        assert_eq!(split("c", "swift").unwrap(), ("c".into(), "".into()));
        assert_eq!(split("c/", "swift").unwrap(), ("c".into(), "".into()));
        assert_eq!(split("c/a/b", "swift").unwrap(), ("c".into(), "a/b/".into()));
        assert_eq!(split("", "s3").unwrap_err().kind(), crate::ErrorKind::Usage);
        assert!(matches!(Location::parse(OsStr::new("/srv/x"), None).unwrap(), Location::Local(_)));
        assert_eq!(Location::parse(OsStr::new("ftp://h/x"), None).unwrap_err().kind(), crate::ErrorKind::Usage);
    }
}
