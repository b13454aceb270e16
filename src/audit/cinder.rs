//! The project's Cinder volumes and backups, for their `encryption_key_id` (in the detail
//! listings from block storage API 3.64 on: `OpenStack-API-Version: volume 3.64`).
//!
//! Cinder is optional to the audit: when the service catalog has no `volumev3` /
//! `block-storage` endpoint (nor a `block_storage_endpoint_override` in the cloud's
//! configuration), or Cinder cannot be reached or refuses, the answer is
//! [`CinderPart::NotChecked`] with the reason, which the report states plainly.
//!
//! Paths: `{project}/volumes/detail` and `{project}/backups/detail` under the endpoint
//! [`crate::keys::cinder::service`] finds, made the project's URL by
//! [`crate::keys::cinder::project_url`] (the code the backup key lookup uses). Paging: `limit`, then the `rel: next` href of
//! `volumes_links` / `backups_links` (a `marker` link), followed only below that endpoint.

use crate::keys::barbican::KeyManager;
use crate::keys::cinder::{MICROVERSION, project_url, service};
use crate::{Error, Result};
use serde_json::Value;

/// Records per page.
const PAGE: usize = 500;
/// Most records of one kind read.
const MAX_RECORDS: usize = 100_000;
/// Largest JSON answer read.
const MAX_JSON: u64 = 64 << 20;

/// What the audit learnt from Cinder.
#[derive(Debug)]
pub enum CinderPart {
    /// Read: every volume and backup record.
    Checked {
        /// Volume records.
        volumes: Vec<Value>,
        /// Backup records.
        backups: Vec<Value>,
    },
    /// Not read, and why.
    NotChecked(String),
}

/// The project's volumes and backups, or why they could not be read.
pub fn read(km: &KeyManager) -> CinderPart {
    // (the session is known good here: Glance was just read with it)
    let t = match service(km) {
        Ok(t) => t,
        Err(e) => return CinderPart::NotChecked(e.message().to_string()),
    };
    let base = project_url(&t.endpoint, t.project_id.as_deref());
    match list(km, &base, "volumes").and_then(|v| Ok((v, list(km, &base, "backups")?))) {
        Ok((volumes, backups)) => CinderPart::Checked { volumes, backups },
        Err(e) => CinderPart::NotChecked(format!("Cinder at {}: {e}", t.endpoint)),
    }
}

/// Every record of `{base}/{what}/detail`, following the `next` links.
fn list(km: &KeyManager, base: &str, what: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut url = format!("{base}/{what}/detail?limit={PAGE}");
    loop {
        let page = get_json(km, &url)?;
        let items = page
            .get(what)
            .and_then(Value::as_array)
            .ok_or_else(|| Error::io(format!("GET {url}: no \"{what}\" array in the answer")))?;
        out.extend(items.iter().cloned());
        if out.len() > MAX_RECORDS {
            return Err(Error::unsupported(format!("Cinder lists more than {MAX_RECORDS} {what}")));
        }
        match next_link(&page, &format!("{what}_links")) {
            Some(next) if items.is_empty() || next == url => break,
            // only below this project's URL: never another host
            Some(next) if next.starts_with(&format!("{base}/{what}/detail?")) => url = next,
            Some(next) => return Err(Error::io(format!("GET {url}: unexpected next link {next:?}"))),
            None => break,
        }
    }
    Ok(out)
}

/// The `rel: next` href of `links` (`[{"rel": "next", "href": ...}]`).
pub fn next_link(page: &Value, links: &str) -> Option<String> {
    page.get(links)?
        .as_array()?
        .iter()
        .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))?
        .get("href")?
        .as_str()
        .map(str::to_string)
}

/// GET `url` (JSON, API 3.64; [`crate::keys::cinder::get`]).
fn get_json(km: &KeyManager, url: &str) -> Result<Value> {
    let a = crate::keys::cinder::get(km, MAX_JSON, |_| url.to_string())?;
    match a.status {
        200 => serde_json::from_slice(&a.body).map_err(|e| Error::io(format!("GET {url}: not JSON: {e}"))),
        406 => Err(Error::unsupported(format!(
            "Cinder does not offer API {MICROVERSION} (406), whose details carry encryption_key_id"
        ))),
        s => Err(Error::io(format!("Cinder answered {s} to GET {url}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_links() {
        let page = json!({"volumes": [], "volumes_links": [{"rel": "next",
            "href": "http://c:8776/v3/p/volumes/detail?limit=2&marker=v2"}]});
        assert_eq!(
            next_link(&page, "volumes_links").as_deref(),
            Some("http://c:8776/v3/p/volumes/detail?limit=2&marker=v2")
        );
        assert_eq!(next_link(&page, "backups_links"), None);
        assert_eq!(next_link(&json!({"volumes_links": [{"rel": "self", "href": "x"}]}), "volumes_links"), None);
    }
}
