//! What the audit reads, and nothing else: the project's images from Glance (hidden ones too),
//! its volumes and backups from Cinder when the catalog has it ([`super::cinder`]), and for each
//! referenced key what Barbican says (`GET /v1/secrets/{id}`: 200, 404 or 403; then
//! `GET /v1/secrets/{id}/consumers`). Only GETs, through the one Keystone session of
//! [`KeyManager::shared`].

use super::cinder::{self, CinderPart};
use super::judge::{Consumer, Consumers, KeyState};
use super::refs::{BadRef, Found, HolderKind, KeyRef};
use crate::keys::barbican::KeyManager;
use crate::source::glance::GlanceStore;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Most consumers read per key (pages of [`CONSUMER_PAGE`]).
const MAX_CONSUMERS: usize = 10_000;
/// Consumers per request.
const CONSUMER_PAGE: usize = 100;

/// Everything the audit found out.
#[derive(Debug)]
pub struct Facts {
    /// Images read from Glance.
    pub images: usize,
    /// What Cinder gave, or why it was not checked.
    pub cinder: CinderPart,
    /// The key references.
    pub refs: Vec<KeyRef>,
    /// References whose key id is unusable.
    pub bad: Vec<BadRef>,
    /// What Barbican said per key.
    pub states: BTreeMap<String, KeyState>,
    /// Barbican's endpoint, when known.
    pub barbican: Option<String>,
    /// Why Barbican was not asked, when it was not.
    pub barbican_error: Option<String>,
}

/// Read everything of the project `os_cloud` names. Err only when Glance cannot be read (the
/// audit cannot say anything then); Cinder and Barbican problems are facts.
pub fn collect(os_cloud: Option<&str>) -> Result<Facts> {
    let km = KeyManager::shared(os_cloud)?;
    let glance = GlanceStore::from_cloud(os_cloud)?;
    let mut found = Found::default();
    let mut seen = BTreeSet::new();
    // the default listing leaves hidden images out; they are listed only when asked for
    for filter in ["", "os_hidden=true"] {
        for image in glance.images_where(filter).map_err(|e| e.context("Glance"))? {
            if seen.insert(image.id.clone()) {
                found.image(&image.record);
            }
        }
    }
    let cinder = cinder::read(&km);
    if let CinderPart::Checked { volumes, backups } = &cinder {
        for v in volumes {
            found.cinder(v, HolderKind::Volume);
        }
        for b in backups {
            found.cinder(b, HolderKind::Backup);
        }
    }
    let keys: BTreeSet<String> = found.refs.iter().map(|r| r.key_id.clone()).collect();
    // (no key referenced: Barbican does not matter)
    let (barbican, mut broken) = match km.service("key-manager", km.config().key_manager_endpoint.as_deref()) {
        Ok(t) => (Some(t.endpoint), None),
        Err(_) if keys.is_empty() => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut states = BTreeMap::new();
    for key in keys {
        let state = match &broken {
            Some(why) => KeyState::NotChecked(why.clone()),
            None => match key_state(&km, &key) {
                Ok(s) => s,
                Err(e) => {
                    // Barbican cannot be asked at all: the other keys would fail the same way
                    let why = e.to_string();
                    broken = Some(why.clone());
                    KeyState::NotChecked(why)
                }
            },
        };
        states.insert(key, state);
    }
    Ok(Facts { images: seen.len(), cinder, refs: found.refs, bad: found.bad, states, barbican, barbican_error: broken })
}

/// What Barbican says about secret `key` (an id [`crate::keys::barbican::parse_secret_ref`]
/// accepted). Err when Barbican cannot be asked.
fn key_state(km: &Arc<KeyManager>, key: &str) -> Result<KeyState> {
    let (status, _) = km.barbican_get(&format!("/v1/secrets/{key}"))?;
    Ok(match status {
        200 => KeyState::Present(consumers(km, key)?),
        404 => KeyState::Missing,
        403 => KeyState::Forbidden,
        s => KeyState::NotChecked(format!("Barbican answered {s} to GET /v1/secrets/{key}")),
    })
}

/// The consumers of secret `key`, following `offset` until `total`.
fn consumers(km: &Arc<KeyManager>, key: &str) -> Result<Consumers> {
    let mut out = Vec::new();
    loop {
        let path = format!("/v1/secrets/{key}/consumers?limit={CONSUMER_PAGE}&offset={}", out.len());
        let (status, body) = km.barbican_get(&path)?;
        match status {
            200 => {}
            // the secret exists (its metadata was 200): this Barbican has no consumers API
            404 | 405 => {
                return Ok(Consumers::Unknown(format!(
                    "this Barbican does not offer the secret consumers API ({status})"
                )));
            }
            403 => return Ok(Consumers::Unknown("these credentials may not list its consumers (403)".into())),
            s => return Ok(Consumers::Unknown(format!("Barbican answered {s} to GET {path}"))),
        }
        let page = parse_consumers(&body).map_err(|e| e.context(format_args!("Barbican secret {key} consumers")))?;
        let got = page.consumers.len();
        out.extend(page.consumers);
        if got == 0 || page.total.is_none_or(|t| out.len() >= t) || out.len() >= MAX_CONSUMERS {
            return Ok(Consumers::Listed(out));
        }
    }
}

/// One page of `GET /v1/secrets/{id}/consumers`.
#[derive(Debug)]
struct ConsumerPage {
    consumers: Vec<Consumer>,
    total: Option<usize>,
}

/// `{"consumers": [{"service", "resource_type", "resource_id", ...}], "total": N}`.
fn parse_consumers(body: &[u8]) -> Result<ConsumerPage> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Error::io(format!("not JSON: {e}")))?;
    let list = v.get("consumers").and_then(Value::as_array).ok_or_else(|| Error::io("no \"consumers\" array"))?;
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(ConsumerPage {
        consumers: list
            .iter()
            .map(|c| Consumer {
                service: s(c, "service"),
                resource_type: s(c, "resource_type"),
                resource_id: s(c, "resource_id"),
            })
            .collect(),
        total: v.get("total").and_then(Value::as_u64).map(|t| t as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_pages() {
        let p = parse_consumers(
            br#"{"consumers": [{"created": "x", "status": "ACTIVE", "service": "glance", "resource_type": "image",
                "resource_id": "i1"}], "total": 3}"#,
        )
        .unwrap();
        assert_eq!(p.total, Some(3));
        assert_eq!(p.consumers[0].resource_id, "i1");
        assert!(parse_consumers(b"{}").is_err());
        assert!(parse_consumers(b"<html>").is_err());
    }
}
