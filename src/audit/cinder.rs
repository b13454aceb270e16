//! The project's Cinder volumes and backups, for their `encryption_key_id` (in the detail
//! listings from block storage API 3.64 on: `OpenStack-API-Version: volume 3.64`).
//!
//! Cinder is optional to the audit: when the service catalog has no `volumev3` /
//! `block-storage` endpoint (nor a `block_storage_endpoint_override` in the cloud's
//! configuration), or Cinder cannot be reached or refuses, the answer is
//! [`CinderPart::NotChecked`] with the reason, which the report states plainly.
//!
//! Paths: `{endpoint}/volumes/detail` and `{endpoint}/backups/detail`, where the endpoint is the
//! catalog's URL, which normally ends in `/v3/{project_id}`; one that ends in `/v3` (or has no
//! version) gets the token's project id appended. Paging: `limit`, then the `rel: next` href of
//! `volumes_links` / `backups_links` (a `marker` link), followed only below that endpoint.

use crate::keys::barbican::{KeyManager, ServiceToken};
use crate::{Error, Result};
use serde_json::Value;

/// Catalog service types of Cinder's v3 API, in order of preference.
pub const SERVICE_TYPES: [&str; 2] = ["block-storage", "volumev3"];
/// The microversion whose detail views carry `encryption_key_id`.
pub const MICROVERSION: &str = "volume 3.64";
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
    let overridden = km.config().block_storage_endpoint.as_deref();
    for kind in SERVICE_TYPES {
        // (the session is known good here: Glance was just read with it)
        let Ok(t) = km.service(kind, overridden) else { continue };
        return match list_both(km, kind, &t) {
            Ok((volumes, backups)) => CinderPart::Checked { volumes, backups },
            Err(e) => CinderPart::NotChecked(format!("Cinder ({kind} at {}): {e}", t.endpoint)),
        };
    }
    CinderPart::NotChecked(format!(
        "Cinder is not in the service catalog (no {} endpoint, interface {})",
        SERVICE_TYPES.join(" or "),
        km.config().interface
    ))
}

fn list_both(km: &KeyManager, kind: &str, t: &ServiceToken) -> Result<(Vec<Value>, Vec<Value>)> {
    let base = project_url(&t.endpoint, t.project_id.as_deref())?;
    let volumes = list(km, kind, &base, "volumes")?;
    let backups = list(km, kind, &base, "backups")?;
    Ok((volumes, backups))
}

/// The project's API URL: `endpoint` as it is when it names `project` (or any last path part
/// after `/v3/`), else with `/v3` and the project id added.
pub fn project_url(endpoint: &str, project: Option<&str>) -> Result<String> {
    let e = endpoint.trim_end_matches('/');
    if let Some((_, last)) = e.rsplit_once("/v3/")
        && !last.is_empty()
        && !last.contains('/')
    {
        return Ok(e.to_string());
    }
    let project = project.ok_or_else(|| Error::io("the token is not scoped to a project (no project id)"))?;
    if !project.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::io("the token's project id is not usable in a URL"));
    }
    Ok(match e.strip_suffix("/v3") {
        Some(_) => format!("{e}/{project}"),
        None => format!("{e}/v3/{project}"),
    })
}

/// Every record of `{base}/{what}/detail`, following the `next` links.
fn list(km: &KeyManager, kind: &str, base: &str, what: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut url = format!("{base}/{what}/detail?limit={PAGE}");
    loop {
        let page = get_json(km, kind, &url)?;
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

/// GET `url` (JSON, API 3.64); re-authenticates once on 401.
fn get_json(km: &KeyManager, kind: &str, url: &str) -> Result<Value> {
    let mut reauthed = false;
    loop {
        let t = km.service(kind, km.config().block_storage_endpoint.as_deref())?;
        let token = std::str::from_utf8(t.token.as_bytes()).map_err(|_| Error::io("unusable token"))?;
        let mut resp = km
            .agent()
            .get(url)
            .header("X-Auth-Token", token)
            .header("Accept", "application/json")
            .header("OpenStack-API-Version", MICROVERSION)
            .call()
            .map_err(|e| Error::io(format!("unreachable: GET {url}: {e}")))?;
        let status = resp.status().as_u16();
        log::debug!("cinder: GET {url} -> {status}");
        match status {
            200 => {
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_JSON)
                    .read_to_vec()
                    .map_err(|e| Error::io(format!("GET {url}: reading the answer: {e}")))?;
                return serde_json::from_slice(&body).map_err(|e| Error::io(format!("GET {url}: not JSON: {e}")));
            }
            401 if !reauthed => {
                reauthed = true;
                km.token_rejected(t.generation);
            }
            406 => {
                return Err(Error::unsupported(format!(
                    "Cinder does not offer API {MICROVERSION} (406), whose details carry encryption_key_id"
                )));
            }
            s => return Err(Error::io(format!("Cinder answered {s} to GET {url}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_urls() {
        let p = Some("0123abcd");
        assert_eq!(project_url("http://c:8776/v3/0123abcd/", p).unwrap(), "http://c:8776/v3/0123abcd");
        assert_eq!(project_url("http://c:8776/v3", p).unwrap(), "http://c:8776/v3/0123abcd");
        assert_eq!(project_url("https://h/volume/v3/", p).unwrap(), "https://h/volume/v3/0123abcd");
        assert_eq!(project_url("http://c:8776", p).unwrap(), "http://c:8776/v3/0123abcd");
        assert!(project_url("http://c:8776/v3", None).is_err());
        assert!(project_url("http://c:8776/v3", Some("../x")).is_err());
    }

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
