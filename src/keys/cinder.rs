//! Which Barbican secret unlocks a Cinder backup: the backup's own key, as the Cinder API
//! records it, else the id inside the backup's `volume_meta`.
//!
//! Cinder's backup manager clones the volume's key into a new Barbican secret for each backup
//! (`encryption_key_id` of the backup record, shown by `GET /v3/{project}/backups/{id}` from
//! API microversion 3.64 on). The id inside the backup's `volume_meta` is the original
//! volume's key, which may be deleted by the time the backup is read. So, with OpenStack
//! credentials, the backup is looked up in the Cinder API (the `block-storage` or `volumev3`
//! endpoint of the shared Keystone session's catalog: [`KeyManager::shared`], one token for
//! Barbican, Glance and Cinder) and its `encryption_key_id` used; the `volume_meta` id is the
//! fallback when Cinder is not in the catalog, not reachable, answers 404 (the record was
//! deleted), or refuses (403, 5xx: said in the log and the report).
//!
//! A backup whose `volume_meta` names no key is of an unencrypted volume: Cinder is not asked.
//! Each backup is looked up once per process (the answer is kept, see [`chosen`]); a lookup is
//! at most two requests (a 401 renews the token once) within the key manager's timeouts; the
//! token is never logged.

use crate::catalog::backup::BackupItem;
use crate::keys::barbican::KeyManager;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Microversion that shows a backup's `encryption_key_id`.
pub const MICROVERSION: &str = "volume 3.64";
/// Largest answer read for one backup record.
const MAX_JSON: u64 = 1 << 20;
/// Catalog service types of Cinder's v3 API, in the order tried.
pub const SERVICE_TYPES: [&str; 2] = ["block-storage", "volumev3"];

/// Where the key id of a backup came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIdSource {
    /// The backup record in the Cinder API (`encryption_key_id`, the backup's own key clone).
    CinderApi,
    /// The `encryption_key_id` inside the backup's `volume_meta` (the original volume's key).
    VolumeMeta,
}

impl KeyIdSource {
    /// The name used in reports: `cinder-api` or `volume-meta`.
    pub fn name(self) -> &'static str {
        match self {
            KeyIdSource::CinderApi => "cinder-api",
            KeyIdSource::VolumeMeta => "volume-meta",
        }
    }
}

/// The key id chosen for one backup, where it came from and why.
#[derive(Clone, Debug)]
pub struct BackupKeyId {
    /// The Barbican secret id (`None`: neither Cinder nor the metadata names one).
    pub id: Option<String>,
    pub source: KeyIdSource,
    /// Why this source: the Cinder answer, or why Cinder could not be used.
    pub why: String,
}

/// The answers so far, by backup id (each looked up once per process).
type Chosen = Mutex<HashMap<String, Arc<OnceLock<BackupKeyId>>>>;

fn memo() -> &'static Chosen {
    static CHOSEN: OnceLock<Chosen> = OnceLock::new();
    CHOSEN.get_or_init(Chosen::default)
}

/// The key id of `backup` when its key is to come from Barbican with the credentials of
/// `os_cloud`: looked up in the Cinder API on first call, kept for later ones (see the module
/// documentation). Logs which key is used and why.
pub fn backup_key_id(backup: &BackupItem, os_cloud: Option<&str>) -> BackupKeyId {
    let id = backup.entry.info.backup_id.clone();
    let cell = memo().lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().clone();
    cell.get_or_init(|| {
        let chosen = choose(&id, os_cloud, || backup.key_id());
        match (&chosen.id, chosen.source) {
            (Some(k), KeyIdSource::CinderApi) => {
                log::info!("backup {id}: key {k} from the Cinder API ({})", chosen.why)
            }
            (Some(k), KeyIdSource::VolumeMeta) => {
                log::warn!("backup {id}: key {k} from its volume_meta (the original volume's key): {}", chosen.why)
            }
            (None, _) => log::debug!("backup {id}: no key id ({})", chosen.why),
        }
        chosen
    })
    .clone()
}

/// The key id chosen for backup `backup_id` in this process, if [`backup_key_id`] was asked.
pub fn chosen(backup_id: &str) -> Option<BackupKeyId> {
    memo().lock().unwrap_or_else(|e| e.into_inner()).get(backup_id).and_then(|c| c.get().cloned())
}

fn choose(
    backup_id: &str,
    os_cloud: Option<&str>,
    volume_meta: impl FnOnce() -> Result<Option<String>>,
) -> BackupKeyId {
    let meta_id = volume_meta().unwrap_or_else(|e| {
        log::warn!("{e}");
        None
    });
    let Some(meta_id) = meta_id else {
        // the backup manager clones a key only for an encrypted volume, whose key volume_meta names
        return BackupKeyId {
            id: None,
            source: KeyIdSource::VolumeMeta,
            why: "its volume_meta names no key (a backup of an unencrypted volume): Cinder not asked".into(),
        };
    };
    let fallback = |why: String| BackupKeyId { id: Some(meta_id.clone()), source: KeyIdSource::VolumeMeta, why };
    let km = match KeyManager::shared(os_cloud) {
        Ok(km) => km,
        Err(e) => return fallback(format!("the Cinder API was not asked: {}", e.message())),
    };
    match lookup(&km, backup_id) {
        Ok(Lookup::Key(k)) => {
            BackupKeyId { id: Some(k), source: KeyIdSource::CinderApi, why: "the backup's own key".into() }
        }
        Ok(Lookup::NoKey) => fallback("the Cinder API's record of the backup has no encryption_key_id".into()),
        Ok(Lookup::NotFound(url)) => fallback(format!("the Cinder API has no such backup (404 from {url})")),
        Err(e) => fallback(e.message().to_string()),
    }
}

#[derive(Debug)]
enum Lookup {
    Key(String),
    NoKey,
    /// 404, from this URL.
    NotFound(String),
}

/// `GET {endpoint}/backups/{id}` at microversion 3.64.
fn lookup(km: &KeyManager, backup_id: &str) -> Result<Lookup> {
    if !crate::source::glance::is_image_id(backup_id) {
        return Err(Error::usage(format!("{backup_id:?} is not a Cinder backup id (a UUID)")));
    }
    let a = get(km, MAX_JSON, |t| backup_url(&t.endpoint, t.project_id.as_deref(), backup_id))?;
    let url = a.url;
    match a.status {
        200 => parse(&a.body, backup_id, &url),
        404 => Ok(Lookup::NotFound(url)),
        401 => Err(Error::io(format!("the Cinder API rejects the token (401) after re-authenticating: GET {url}"))),
        403 => Err(Error::io(format!(
            "the Cinder API refuses (403 forbidden): these credentials may not read backup {backup_id}"
        ))),
        406 => {
            Err(Error::io("the Cinder API does not offer microversion 3.64 (406): it cannot show the backup's own key"))
        }
        s @ 500..=599 => Err(Error::io(format!("the Cinder API failed ({s}) on GET {url}"))),
        s => Err(Error::io(format!("the Cinder API answered {s} to GET {url}"))),
    }
}

/// What one GET of the Cinder API answered: the URL asked, the status, and for a 200 its body.
pub struct Answer {
    pub url: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// GET the URL `url` makes of the service token's endpoint and project, at microversion 3.64,
/// through `km`'s session (a 401 renews the token once; a second 401 is answered as it is);
/// a 200's body is read up to `limit` bytes. Unreachable is an I/O error.
pub fn get(
    km: &KeyManager,
    limit: u64,
    url: impl Fn(&crate::keys::barbican::ServiceToken) -> String,
) -> Result<Answer> {
    let mut reauthed = false;
    loop {
        let t = service(km)?;
        let url = url(&t);
        let token = std::str::from_utf8(t.token.as_bytes()).map_err(|_| Error::io("unusable token"))?;
        let resp = km
            .agent()
            .get(&url)
            .header("X-Auth-Token", token)
            .header("Accept", "application/json")
            .header("OpenStack-API-Version", MICROVERSION)
            .call();
        let mut resp = resp.map_err(|e| Error::io(format!("the Cinder API is not reachable: GET {url}: {e}")))?;
        let status = resp.status().as_u16();
        log::debug!("cinder: GET {url} -> {status}");
        match status {
            401 if !reauthed => {
                reauthed = true;
                km.token_rejected(t.generation);
            }
            200 => {
                let body = crate::source::read_body(resp.body_mut(), limit, 0)
                    .map_err(|e| Error::io(format!("the Cinder API: reading the answer of GET {url}: {e}")))?;
                return Ok(Answer { url, status, body });
            }
            _ => return Ok(Answer { url, status, body: Vec::new() }),
        }
    }
}

/// The URL of backup `backup_id` under Cinder's v3 `endpoint` ([`project_url`]).
fn backup_url(endpoint: &str, project_id: Option<&str>, backup_id: &str) -> String {
    format!("{}/backups/{backup_id}", project_url(endpoint, project_id))
}

/// The project's URL under Cinder's v3 `endpoint`: catalogs list it as `.../v3/<project id>`
/// (kept as it is), or as `.../v3` (the project then goes in the path; without a project id,
/// `.../v3` itself, as Cinder 3.67 and later accept).
pub fn project_url(endpoint: &str, project_id: Option<&str>) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    match project_id {
        Some(p) if endpoint.ends_with("/v3") => format!("{endpoint}/{p}"),
        _ => endpoint.to_string(),
    }
}

/// A token and Cinder's v3 endpoint: the cloud's `block_storage_endpoint_override`, else the
/// `block-storage` or `volumev3` endpoint of the session's catalog.
pub fn service(km: &KeyManager) -> Result<crate::keys::barbican::ServiceToken> {
    if let Some(e) = km.config().block_storage_endpoint.as_deref() {
        return km.service("block-storage", Some(e));
    }
    let mut first = None;
    for kind in SERVICE_TYPES {
        match km.service(kind, None) {
            Ok(t) => return Ok(t),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    let e = first.unwrap_or_else(|| Error::io("no Cinder endpoint"));
    Err(Error::io(format!(
        "Cinder is not in the service catalog (neither block-storage nor volumev3): {}",
        e.message()
    )))
}

/// The `encryption_key_id` of a `{"backup": {...}}` answer, which must be about `backup_id`.
fn parse(body: &[u8], backup_id: &str, url: &str) -> Result<Lookup> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Error::io(format!("the Cinder API: GET {url}: not JSON: {e}")))?;
    let Some(b) = v.get("backup") else {
        return Err(Error::io(format!("the Cinder API: GET {url}: no \"backup\" in the answer")));
    };
    if b.get("id").and_then(Value::as_str) != Some(backup_id) {
        return Err(Error::io(format!("the Cinder API answered GET {url} with another backup")));
    }
    match b.get("encryption_key_id") {
        Some(Value::String(k)) if !k.is_empty() => Ok(Lookup::Key(k.clone())),
        Some(Value::Null) | Some(Value::String(_)) => Ok(Lookup::NoKey),
        None => Err(Error::io(format!(
            "the Cinder API: GET {url}: no encryption_key_id in the answer (microversion 3.64 not honoured)"
        ))),
        Some(other) => Err(Error::io(format!("the Cinder API: GET {url}: encryption_key_id is {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0d2b9a4e-1c1f-4f55-8d0e-3a4b5c6d7e8f";

    #[test]
    fn answers() {
        let ok = format!(r#"{{"backup": {{"id": "{ID}", "encryption_key_id": "k-1"}}}}"#);
        assert!(matches!(parse(ok.as_bytes(), ID, "u"), Ok(Lookup::Key(k)) if k == "k-1"));
        let none = format!(r#"{{"backup": {{"id": "{ID}", "encryption_key_id": null}}}}"#);
        assert!(matches!(parse(none.as_bytes(), ID, "u"), Ok(Lookup::NoKey)));
        let old = format!(r#"{{"backup": {{"id": "{ID}"}}}}"#);
        assert!(parse(old.as_bytes(), ID, "u").unwrap_err().message().contains("3.64"));
        let other = r#"{"backup": {"id": "x", "encryption_key_id": "k"}}"#;
        assert!(parse(other.as_bytes(), ID, "u").unwrap_err().message().contains("another backup"));
        assert!(parse(b"<html>", ID, "u").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(backup_url("http://c:8776/v3/p1", Some("p1"), ID), format!("http://c:8776/v3/p1/backups/{ID}"));
        assert_eq!(backup_url("https://c/volume/v3", Some("p2"), ID), format!("https://c/volume/v3/p2/backups/{ID}"));
        assert_eq!(backup_url("https://c/volume/v3", None, ID), format!("https://c/volume/v3/backups/{ID}"));
        assert_eq!(project_url("http://c:8776/v3/p1/", Some("p1")), "http://c:8776/v3/p1");
    }

    #[test]
    fn names() {
        assert_eq!(KeyIdSource::CinderApi.name(), "cinder-api");
        assert_eq!(KeyIdSource::VolumeMeta.name(), "volume-meta");
    }
}
