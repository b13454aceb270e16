//! Passphrases from OpenStack Barbican, authenticated with Keystone v3.
//!
//! # Use
//! ```no_run
//! use luksfs::keys::{barbican::KeyManager, clouds};
//! # fn main() -> Result<(), luksfs::Error> {
//! // --os-cloud NAME / OS_CLOUD + clouds.yaml, or the OS_* variables (see keys::clouds)
//! let km = KeyManager::new(clouds::load(Some("mycloud"))?)?; // no network yet
//! km.authenticate()?; // optional: fail early on bad credentials
//! // a keytab's `barbican:<id>`, a bare id, a full href, or a sidecar's key_id:
//! let pass = km.passphrase("barbican:8a3f6c1e-5b2d-4f7a-9c0e-1d2b3c4d5e6f")?;
//! # drop(pass); Ok(()) }
//! ```
//! One [`KeyManager`] per mount, shared by reference or `Arc` among unlock threads (it is
//! `Send + Sync`). It holds one Keystone token, obtained on first use, renewed shortly before it
//! expires ([`Options::renew_before`]) and once when Barbican answers 401 (if the credentials can
//! re-authenticate; a `token` credential is re-exchanged until it expires or is revoked). Each
//! secret is fetched once, then served from memory (as a zeroizing [`Secret`]) even if Barbican
//! goes away. Concurrent requests for the same id wait for one fetch; different ids are fetched in
//! parallel. Failures are not cached: the next call tries again.
//!
//! Wiring: keytab `barbican:<id>` → `km.passphrase(id)`; a sidecar's
//! [`ImageMeta::key_id`](super::sidecar::ImageMeta::key_id) (from
//! [`sidecar::load_for_image`](super::sidecar::load_for_image)) the same way; attach the image
//! with `.with_path(image)` on errors. Build the `KeyManager` only when some image needs Barbican,
//! so that missing credentials don't matter otherwise.
//!
//! # What is fetched
//! `POST {auth_url}/v3/auth/tokens` (token in `X-Subject-Token`, catalog in the body), the
//! `key-manager` endpoint of the catalog for the configured interface and region (unversioned:
//! `/v1/...` is appended; [`CloudConfig::key_manager_endpoint`] overrides it), then
//! `GET /v1/secrets/{id}` for `secret_type` and `GET /v1/secrets/{id}/payload` with
//! `Accept: application/octet-stream`. A full href only contributes its id: requests always go
//! to the catalog's endpoint, so a sidecar or keytab can't send our token elsewhere.
//!
//! The passphrase (os-brick's `get_passphrase_from_secret`, see [`passphrase_from_payload`]):
//! a `passphrase` secret's payload bytes as they are; any other type (Cinder's `symmetric`,
//! `opaque`, ...) the lowercase hex of the payload bytes.
//!
//! # Errors
//! | situation | kind | message (after `Barbican secret {id}: `) |
//! |---|---|---|
//! | secret id/href malformed | Usage | `not a Barbican secret id or href ...` (input not echoed) |
//! | Barbican 404 | BadKey | `no such secret (404)` |
//! | Barbican 403 | BadKey | `forbidden (403)` |
//! | empty payload | BadKey | `the secret's payload is empty` |
//! | Barbican 401 even after re-authenticating | Io | `unauthorized (401) ...` |
//! | other Barbican status | Io | e.g. `server error (500)`, `service unavailable (503)` |
//! | Keystone rejects the credentials | Io | `keystone at URL: unauthorized (401): the credentials were rejected` |
//! | Keystone doesn't know a `token` credential (its 404) | Io | `keystone at URL: unauthorized (404): the token is not valid ...` |
//! | other Keystone status | Io | `keystone at URL: forbidden (403)`, `... not found (404)` |
//! | no `key-manager` endpoint in the catalog | Io | `no key-manager endpoint (interface ..., region ...) ...` |
//! | connection refused, DNS, reset | Io | `key manager unreachable: URL: ...` / `keystone unreachable: ...` |
//! | timeout | Io | `... timed out (...)` |
//! | TLS failure | Io | `TLS error talking to URL: ...` |
//! | `cacert` unreadable or without certificates | Usage | names the file |
//!
//! BadKey (exit 3) means "this secret can't be had with these credentials"; Io (exit 1) means
//! the service or the credentials as a whole are the problem. Messages never contain a token, a
//! password or a payload; the `log` crate gets only URLs (which hold ids), statuses and counts,
//! at debug level.
//!
//! TLS: verified by default against the bundled Mozilla roots (webpki-roots, as `requests`
//! uses certifi); `cacert` replaces them; `insecure`/`verify: false` disables verification (with
//! a warning). Timeouts: [`Options`] (connect 5 s, 30 s per request overall).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use zeroize::Zeroizing;

use super::Secret;
use super::clouds::{self, Auth, CloudConfig, IdOrName, Scope, UserRef};
use crate::error::{Error, ErrorKind};

/// Largest payload accepted (Barbican's own default limit is 10 000 bytes).
const MAX_PAYLOAD: u64 = 1 << 20;
/// Largest Keystone/Barbican JSON body accepted (service catalogs can be large).
const MAX_JSON: u64 = 16 << 20;

/// Tunables of a [`KeyManager`].
#[derive(Clone, Debug)]
pub struct Options {
    /// TCP + TLS connection setup limit. Default 5 s.
    pub connect_timeout: Duration,
    /// Limit for one whole request, response body included. Default 30 s.
    pub timeout: Duration,
    /// Re-authenticate when the token has less than this left. Default 120 s. (A value larger
    /// than the token lifetime makes every request re-authenticate; tests use that.)
    pub renew_before: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            renew_before: Duration::from_secs(120),
        }
    }
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful Keystone authentications (first one, renewals, re-auth after 401).
    pub authentications: u64,
    /// Of those, the ones caused by a 401 from Barbican.
    pub reauth_after_401: u64,
    /// Secrets fetched from Barbican.
    pub fetches: u64,
    /// `passphrase` calls answered from the cache.
    pub cache_hits: u64,
}

/// A Keystone + Barbican client that turns secret ids into LUKS passphrases. See the module
/// documentation.
pub struct KeyManager {
    cfg: CloudConfig,
    opts: Options,
    agent: Agent,
    auth_url: String,
    session: Mutex<Option<Session>>,
    generation: AtomicU64,
    secrets: Mutex<HashMap<String, Arc<Mutex<Option<Secret>>>>>,
    n_auth: AtomicU64,
    n_reauth401: AtomicU64,
    n_fetch: AtomicU64,
    n_hit: AtomicU64,
}

#[derive(Clone)]
struct Session {
    token: Secret,
    /// The key-manager endpoint, when the catalog (or the configuration) has one.
    endpoint: Option<String>,
    /// The token's service catalog, for the endpoints of other services ([`KeyManager::service`]).
    catalog: Arc<Vec<CatalogEntry>>,
    /// The id of the project the token is scoped to.
    project_id: Option<String>,
    renew_at: Instant,
    generation: u64,
}

/// A Keystone token and the endpoint of one service of its catalog, for a client of another
/// OpenStack service (Glance) that shares a [`KeyManager`]'s authentication and renewal.
#[derive(Clone)]
pub struct ServiceToken {
    /// The token, for `X-Auth-Token`.
    pub token: Secret,
    /// The service's endpoint, without a trailing `/`.
    pub endpoint: String,
    /// The id of the project the token is scoped to (for APIs whose paths name it).
    pub project_id: Option<String>,
    /// Pass back to [`KeyManager::token_rejected`] after a 401.
    pub generation: u64,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("source", &self.cfg.source)
            .field("auth_url", &self.auth_url)
            .field("auth_type", &self.cfg.auth.type_name())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<KeyManager>();
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeyManager {
    /// A key manager for `cfg` with default [`Options`]. No network traffic until first use.
    /// Fails (Usage) only when `cfg.cacert` can't be read or holds no certificate.
    pub fn new(cfg: CloudConfig) -> Result<KeyManager, Error> {
        Self::with_options(cfg, Options::default())
    }

    /// Credentials from `--os-cloud NAME` (or `OS_CLOUD`, or the `OS_*` variables): see
    /// [`clouds::load`].
    pub fn from_cloud(os_cloud: Option<&str>) -> Result<KeyManager, Error> {
        Self::new(clouds::load(os_cloud)?)
    }

    /// The key manager of `os_cloud` ([`KeyManager::from_cloud`]) that everything in this process
    /// talking to that cloud shares (Barbican keys, Glance images, every command's images): one
    /// Keystone token, renewed for all, each secret fetched once. Created on first use; a
    /// configuration error is not kept (the next call reads the configuration again).
    pub fn shared(os_cloud: Option<&str>) -> Result<Arc<KeyManager>, Error> {
        static MANAGERS: Mutex<Vec<(Option<String>, Arc<KeyManager>)>> = Mutex::new(Vec::new());
        let mut managers = lock(&MANAGERS);
        if let Some((_, km)) = managers.iter().find(|(c, _)| c.as_deref() == os_cloud) {
            return Ok(km.clone());
        }
        let km = Arc::new(KeyManager::from_cloud(os_cloud)?);
        managers.push((os_cloud.map(str::to_string), km.clone()));
        Ok(km)
    }

    /// [`KeyManager::new`] with explicit tunables.
    pub fn with_options(cfg: CloudConfig, opts: Options) -> Result<KeyManager, Error> {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &cfg.cacert {
            let pem =
                std::fs::read(ca).map_err(|e| Error::usage(format!("cacert {}: cannot read: {e}", ca.display())))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => return Err(Error::usage(format!("cacert {}: bad PEM: {e}", ca.display()))),
                }
            }
            if certs.is_empty() {
                return Err(Error::usage(format!("cacert {}: no PEM certificate in it", ca.display())));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if cfg.insecure {
            log::warn!("{}: TLS certificate verification is disabled (insecure)", cfg.source);
            tls = tls.disable_verification(true);
        }
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_global(Some(opts.timeout))
            .user_agent(concat!("luksfs/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .new_agent();
        let auth_url = v3_url(&cfg.auth_url);
        Ok(KeyManager {
            cfg,
            opts,
            agent,
            auth_url,
            session: Mutex::new(None),
            generation: AtomicU64::new(0),
            secrets: Mutex::new(HashMap::new()),
            n_auth: AtomicU64::new(0),
            n_reauth401: AtomicU64::new(0),
            n_fetch: AtomicU64::new(0),
            n_hit: AtomicU64::new(0),
        })
    }

    /// The credentials in use.
    pub fn config(&self) -> &CloudConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            authentications: self.n_auth.load(Ordering::Relaxed),
            reauth_after_401: self.n_reauth401.load(Ordering::Relaxed),
            fetches: self.n_fetch.load(Ordering::Relaxed),
            cache_hits: self.n_hit.load(Ordering::Relaxed),
        }
    }

    /// Make sure there is a valid token and a Barbican endpoint (authenticating if needed), so
    /// bad credentials show up at start-up rather than at the first image.
    pub fn authenticate(&self) -> Result<(), Error> {
        let s = self.session()?;
        self.key_manager(&s).map(|_| ())
    }

    /// A token (authenticating or renewing as for Barbican) and the endpoint of service type
    /// `service_type` (e.g. `image`) in its catalog, for the configured interface and region;
    /// `overridden` replaces the catalog's endpoint. Io error when the catalog has none.
    pub fn service(&self, service_type: &str, overridden: Option<&str>) -> Result<ServiceToken, Error> {
        let s = self.session()?;
        let endpoint = match overridden {
            Some(e) => e.trim().trim_end_matches('/').to_string(),
            None => select_endpoint(&s.catalog, service_type, &self.cfg.interface, self.cfg.region_name.as_deref())
                .map(|u| u.trim_end_matches('/').to_string())
                .ok_or_else(|| self.no_endpoint(&s.catalog, service_type))?,
        };
        Ok(ServiceToken { token: s.token, endpoint, project_id: s.project_id, generation: s.generation })
    }

    /// The token of `generation` was refused (401): the next request authenticates again.
    pub fn token_rejected(&self, generation: u64) {
        self.invalidate(generation);
    }

    /// The HTTP agent (TLS settings and timeouts of the configuration), for requests to other
    /// services with a [`ServiceToken`].
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The key-manager endpoint of `s` (configured, or from its catalog).
    fn key_manager(&self, s: &Session) -> Result<String, Error> {
        s.endpoint.clone().ok_or_else(|| self.no_endpoint(&s.catalog, "key-manager"))
    }

    /// The LUKS passphrase stored in Barbican under `secret_ref`: a secret id (UUID), a full
    /// secret href (`https://host:9311/v1/secrets/UUID`) or `barbican:<either>`. Fetched once per
    /// id, then cached. See the module documentation for the errors.
    pub fn passphrase(&self, secret_ref: &str) -> Result<Secret, Error> {
        let id = parse_secret_ref(secret_ref)?;
        let slot = lock(&self.secrets).entry(id.clone()).or_default().clone();
        let mut slot = lock(&slot);
        if let Some(s) = slot.as_ref() {
            self.n_hit.fetch_add(1, Ordering::Relaxed);
            log::debug!("Barbican secret {id}: from cache");
            return Ok(s.clone());
        }
        let pass = self.fetch(&id).map_err(|e| e.context(format_args!("Barbican secret {id}")))?;
        *slot = Some(pass.clone());
        Ok(pass)
    }

    /// The payload of the secret `secret_ref` (id, href or `barbican:<either>`) and its
    /// `secret_type`, as stored, not cached: for secrets that are not passphrases, such as the
    /// `certificate` of a Glance image signature. The bytes are zeroized when dropped (the method
    /// is not only for public material). Errors as for [`KeyManager::passphrase`].
    pub fn payload(&self, secret_ref: &str) -> Result<Payload, Error> {
        let id = parse_secret_ref(secret_ref)?;
        self.fetch_payload(&id).map_err(|e| e.context(format_args!("Barbican secret {id}")))
    }

    fn fetch_payload(&self, id: &str) -> Result<Payload, Error> {
        let meta = self.get(&format!("/v1/secrets/{id}"), "application/json", MAX_JSON)?;
        let meta: SecretMeta = serde_json::from_slice(&meta)
            .map_err(|e| Error::io(format!("unexpected secret metadata from Barbican: {e}")))?;
        let secret_type = meta.secret_type.unwrap_or_else(|| "opaque".into());
        let bytes =
            Secret::new(self.get(&format!("/v1/secrets/{id}/payload"), "application/octet-stream", MAX_PAYLOAD)?);
        self.n_fetch.fetch_add(1, Ordering::Relaxed);
        log::debug!("Barbican secret {id}: payload fetched, type {secret_type}, {} bytes", bytes.len());
        Ok(Payload { secret_type, bytes })
    }

    fn fetch(&self, id: &str) -> Result<Secret, Error> {
        let meta = self.get(&format!("/v1/secrets/{id}"), "application/json", MAX_JSON)?;
        let meta: SecretMeta = serde_json::from_slice(&meta)
            .map_err(|e| Error::io(format!("unexpected secret metadata from Barbican: {e}")))?;
        let secret_type = meta.secret_type.unwrap_or_else(|| "opaque".into());
        if let Some(st) = meta.status.as_deref().filter(|s| *s != "ACTIVE") {
            log::debug!("Barbican secret {id}: status {st}");
        }
        let payload =
            Secret::new(self.get(&format!("/v1/secrets/{id}/payload"), "application/octet-stream", MAX_PAYLOAD)?);
        if payload.is_empty() {
            return Err(Error::bad_key("the secret's payload is empty"));
        }
        self.n_fetch.fetch_add(1, Ordering::Relaxed);
        log::debug!("Barbican secret {id}: fetched, type {secret_type}, {} bytes", payload.len());
        Ok(passphrase_from_payload(&secret_type, payload.as_bytes()))
    }

    /// GET `path` from Barbican; 200 → body. Re-authenticates once on 401.
    fn get(&self, path: &str, accept: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (status, body, url) = self.get_answer(path, accept, limit)?;
        if status == 200 {
            return Ok(body);
        }
        let words = status_words(status);
        Err(match status {
            404 => Error::bad_key("no such secret (404)"),
            403 => Error::bad_key("forbidden (403): these credentials may not read it"),
            401 => Error::io("unauthorized (401): Barbican rejects the token"),
            _ => Error::io(format!("{words} ({status}) from the key manager at {url}")),
        })
    }

    /// What Barbican answers to `GET path` (`/v1/...`, JSON): its status, and the body of a 200
    /// (empty otherwise). Re-authenticates once on 401. Err only when Barbican cannot be asked
    /// (no endpoint, Keystone refuses, transport failure): for callers that tell a missing secret
    /// (404) from a forbidden one (403) themselves, such as `luksfs audit`.
    pub fn barbican_get(&self, path: &str) -> Result<(u16, Vec<u8>), Error> {
        self.get_answer(path, "application/json", MAX_JSON).map(|(status, body, _)| (status, body))
    }

    /// [`KeyManager::barbican_get`] with its URL.
    fn get_answer(&self, path: &str, accept: &str, limit: u64) -> Result<(u16, Vec<u8>, String), Error> {
        let mut retried = false;
        loop {
            let sess = self.session()?;
            let url = format!("{}{path}", self.key_manager(&sess)?);
            let token = std::str::from_utf8(sess.token.as_bytes()).map_err(|_| Error::io("unusable token"))?;
            let res = self.agent.get(&url).header("X-Auth-Token", token).header("Accept", accept).call();
            let mut resp = res.map_err(|e| transport_error("key manager", &url, &e, &self.opts))?;
            let status = resp.status().as_u16();
            log::debug!("barbican: GET {url} -> {status}");
            match status {
                200 => {
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(limit)
                        .read_to_vec()
                        .map_err(|e| transport_error("key manager", &url, &e, &self.opts))?;
                    return Ok((200, body, url));
                }
                // every supported method can ask Keystone again; a revoked `token` credential
                // then fails there with a clear message
                401 if !retried => {
                    log::debug!("barbican: 401, re-authenticating");
                    retried = true;
                    self.invalidate(sess.generation);
                    self.n_reauth401.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                _ => {}
            }
            log_error_body(&mut resp);
            return Ok((status, Vec::new(), url));
        }
    }

    fn invalidate(&self, generation: u64) {
        let mut s = lock(&self.session);
        if s.as_ref().is_some_and(|s| s.generation == generation) {
            *s = None;
        }
    }

    /// The current session, authenticating when there is none or it is about to expire.
    fn session(&self) -> Result<Session, Error> {
        let mut guard = lock(&self.session);
        if let Some(s) = guard.as_ref() {
            if Instant::now() < s.renew_at {
                return Ok(s.clone());
            }
            log::debug!("keystone: token due for renewal");
        }
        *guard = None;
        let s = self.login()?;
        *guard = Some(s.clone());
        Ok(s)
    }

    fn login(&self) -> Result<Session, Error> {
        let url = format!("{}/auth/tokens", self.auth_url);
        let body = auth_body(&self.cfg)?;
        let started = Instant::now();
        let res = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..]);
        drop(body);
        let mut resp = res.map_err(|e| transport_error("keystone", &url, &e, &self.opts))?;
        let status = resp.status().as_u16();
        log::debug!("keystone: POST {url} ({}) -> {status}", self.cfg.auth.type_name());
        if status != 201 && status != 200 {
            log_error_body(&mut resp);
            let words = status_words(status);
            return Err(Error::io(match status {
                401 => format!(
                    "keystone at {}: unauthorized (401): the credentials were rejected ({} from {})",
                    self.auth_url,
                    self.cfg.auth.type_name(),
                    self.cfg.source
                ),
                // Keystone answers an unknown, expired or revoked token with 404
                404 if matches!(self.cfg.auth, Auth::Token { .. }) => format!(
                    "keystone at {}: unauthorized (404): the token is not valid (expired, revoked or malformed; \
                     from {})",
                    self.auth_url, self.cfg.source
                ),
                // ... and an unknown (e.g. deleted) application credential likewise
                404 if matches!(self.cfg.auth, Auth::ApplicationCredential { .. }) => format!(
                    "keystone at {}: unauthorized (404): the application credential is unknown (deleted or \
                     mistyped; from {})",
                    self.auth_url, self.cfg.source
                ),
                _ => format!("keystone at {}: {words} ({status})", self.auth_url),
            }));
        }
        let token = match resp.headers().get("X-Subject-Token").and_then(|v| v.to_str().ok()) {
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => Secret::from_slice(t.as_bytes()),
            _ => {
                return Err(Error::io(format!(
                    "keystone at {}: no usable X-Subject-Token in its answer",
                    self.auth_url
                )));
            }
        };
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| transport_error("keystone", &url, &e, &self.opts))?;
        let tr: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::io(format!("keystone at {}: unexpected token response: {e}", self.auth_url)))?;
        let endpoint = match &self.cfg.key_manager_endpoint {
            Some(e) => Some(unversioned(e)),
            None => {
                select_endpoint(&tr.token.catalog, "key-manager", &self.cfg.interface, self.cfg.region_name.as_deref())
            }
        };
        let lifetime = token_lifetime(&tr.token, SystemTime::now());
        let renew_at = started + lifetime.saturating_sub(self.opts.renew_before);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.n_auth.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "keystone: token for project {:?}, expires at {:?} (renewal in {:?}), key manager at {endpoint:?}",
            tr.token.project.as_ref().and_then(|p| p.name.as_deref().or(p.id.as_deref())),
            tr.token.expires_at,
            renew_at.saturating_duration_since(Instant::now())
        );
        let project_id = tr.token.project.as_ref().and_then(|p| p.id.clone());
        Ok(Session { token, endpoint, catalog: Arc::new(tr.token.catalog), project_id, renew_at, generation })
    }

    fn no_endpoint(&self, catalog: &[CatalogEntry], service_type: &str) -> Error {
        let region = self.cfg.region_name.as_deref().unwrap_or("any");
        let have: Vec<String> = catalog
            .iter()
            .filter(|s| s.kind == service_type)
            .flat_map(|s| s.endpoints.iter())
            .map(|e| format!("{}/{}", e.interface, e.region_id.as_deref().or(e.region.as_deref()).unwrap_or("-")))
            .collect();
        let hint = if catalog.is_empty() {
            " (the token has an empty catalog: is it scoped to a project?)".to_string()
        } else if have.is_empty() {
            let what = match service_type {
                "key-manager" => "Barbican",
                "image" => "Glance",
                "block-storage" | "volumev3" => "Cinder",
                other => other,
            };
            format!(" (the catalog has no {service_type} service: is {what} deployed?)")
        } else {
            format!(" (the catalog has {})", have.join(", "))
        };
        Error::io(format!(
            "no {service_type} endpoint (interface {}, region {region}) in the service catalog from {}{hint}",
            self.cfg.interface, self.auth_url
        ))
    }
}

/// A secret's payload as stored, with its type ([`KeyManager::payload`]).
#[derive(Clone, Debug)]
pub struct Payload {
    /// `secret_type`: `certificate`, `passphrase`, `symmetric`, `opaque`, ...
    pub secret_type: String,
    /// The payload bytes (zeroized on drop).
    pub bytes: Secret,
}

/// os-brick's `get_passphrase_from_secret`: a `passphrase` secret's payload as-is; any other
/// type's payload as lowercase hex (`binascii.hexlify`).
pub fn passphrase_from_payload(secret_type: &str, payload: &[u8]) -> Secret {
    if secret_type == "passphrase" {
        return Secret::from_slice(payload);
    }
    // Straight into the secret's buffer: no intermediate String holding the key.
    let mut out = vec![0u8; payload.len() * 2];
    // Cannot fail: the buffer is exactly twice the payload.
    let _ = hex::encode_to_slice(payload, &mut out);
    Secret::new(out)
}

/// The secret id in `secret_ref`: a bare id, `http(s)://HOST[:PORT]/.../secrets/ID[/]`, either
/// with a `barbican:` prefix. Usage error otherwise (the input is not echoed: it might be a
/// passphrase given by mistake).
pub fn parse_secret_ref(secret_ref: &str) -> Result<String, Error> {
    let s = secret_ref.trim();
    let s = s.strip_prefix("barbican:").unwrap_or(s);
    let id = if s.starts_with("http://") || s.starts_with("https://") {
        let path = s.split(['?', '#']).next().unwrap_or("");
        path.rsplit_once("/secrets/").map(|(_, id)| id.trim_end_matches('/')).unwrap_or("")
    } else {
        s
    };
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Error::usage(
            "not a Barbican secret id or href (expected a UUID or http(s)://HOST/v1/secrets/UUID)",
        ));
    }
    Ok(id.to_string())
}

/// Keystone URL ending in `/v3`.
fn v3_url(auth_url: &str) -> String {
    let u = auth_url.trim().trim_end_matches('/');
    if u.ends_with("/v3") {
        u.to_string()
    } else if let Some(base) = u.strip_suffix("/v2.0") {
        format!("{base}/v3")
    } else {
        format!("{u}/v3")
    }
}

/// A service URL without a trailing `/` or `/v1`.
fn unversioned(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    u.strip_suffix("/v1").unwrap_or(u).to_string()
}

fn select_endpoint(catalog: &[CatalogEntry], kind: &str, interface: &str, region: Option<&str>) -> Option<String> {
    catalog
        .iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.endpoints.iter())
        .find(|e| {
            e.interface == interface
                && region.is_none_or(|r| e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r))
        })
        .map(|e| unversioned(&e.url))
}

/// How long the token lives, measured on Keystone's clock (`expires_at - issued_at`) so that
/// clock skew doesn't matter; falls back to `expires_at - now`, then to 5 minutes.
fn token_lifetime(t: &TokenBody, now: SystemTime) -> Duration {
    let exp = t.expires_at.as_deref().and_then(parse_timestamp);
    let iss = t.issued_at.as_deref().and_then(parse_timestamp);
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match (exp, iss) {
        (Some(e), Some(i)) if e > i => Duration::from_secs((e - i) as u64),
        (Some(e), _) if e > now => Duration::from_secs((e - now) as u64),
        _ => Duration::from_secs(300),
    }
}

/// Seconds since the epoch of an ISO 8601 / RFC 3339 timestamp as Keystone writes them
/// (`2026-11-23T00:14:57.000000Z`, also `+hh:mm` offsets or none = UTC).
fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !matches!(s.get(10..11)?, "T" | "t" | " ") {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        r if (r.starts_with('+') || r.starts_with('-')) && r.len() == 6 && &r[3..4] == ":" => {
            let hh: i64 = r[1..3].parse().ok()?;
            let mm: i64 = r[4..6].parse().ok()?;
            let o = hh * 3600 + mm * 60;
            if r.starts_with('+') { o } else { -o }
        }
        _ => return None,
    };
    Some(crate::civil::unix_seconds(y, mo, d, h, mi, sec) - offset)
}

fn status_words(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        406 => "not acceptable",
        409 => "conflict",
        413 => "too large",
        429 => "too many requests",
        500 => "server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        s if (300..400).contains(&s) => "unexpected redirect",
        s if (400..500).contains(&s) => "client error",
        s if (500..600).contains(&s) => "server error",
        _ => "unexpected status",
    }
}

/// Log (debug) the `title`/`description` of an OpenStack error body. These never contain
/// credentials; the body itself is not logged.
fn log_error_body(resp: &mut ureq::http::Response<ureq::Body>) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let Ok(body) = resp.body_mut().with_config().limit(64 << 10).read_to_vec() else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return };
    let v = v.get("error").unwrap_or(&v);
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(|s| s.chars().take(200).collect::<String>());
    log::debug!("  error: {:?}: {:?}", field("title"), field("description").or(field("message")));
}

/// A transport failure (no HTTP status) as an Io error naming `what` and the URL.
fn transport_error(what: &str, url: &str, e: &ureq::Error, opts: &Options) -> Error {
    use ureq::Error as E;
    log::debug!("{what}: {url}: {e}");
    let msg = match e {
        E::Timeout(t) => format!(
            "{what} at {url} timed out ({t}; limits: connect {}s, request {}s)",
            opts.connect_timeout.as_secs_f32(),
            opts.timeout.as_secs_f32()
        ),
        E::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => format!("{what} at {url} timed out ({io})"),
        // rustls reports handshake and certificate failures as InvalidData I/O errors
        E::Io(io) if io.kind() == std::io::ErrorKind::InvalidData && url.starts_with("https:") => {
            format!("TLS error talking to {what} at {url}: {io}")
        }
        E::Io(io) => format!("{what} unreachable: {url}: {io}"),
        E::HostNotFound => format!("{what} unreachable: {url}: host not found"),
        E::ConnectionFailed => format!("{what} unreachable: {url}: connection failed"),
        E::Tls(_) | E::Rustls(_) | E::Pem(_) => format!("TLS error talking to {what} at {url}: {e}"),
        E::BodyExceedsLimit(n) => format!("{what} at {url}: response larger than {n} bytes"),
        _ => format!("{what} unreachable: {url}: {e}"),
    };
    Error::new(ErrorKind::Io, msg)
}

// ---- Keystone request and response shapes ----

#[derive(Serialize)]
struct AuthReq<'a> {
    auth: AuthInner<'a>,
}

#[derive(Serialize)]
struct AuthInner<'a> {
    identity: Identity<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeJ<'a>>,
}

#[derive(Serialize)]
struct Identity<'a> {
    methods: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<PasswordJ<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_credential: Option<AppCredJ<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenJ<'a>>,
}

#[derive(Serialize)]
struct PasswordJ<'a> {
    user: UserJ<'a>,
}

#[derive(Serialize)]
struct UserJ<'a> {
    #[serde(flatten)]
    who: IdNameJ<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<IdNameJ<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

#[derive(Serialize)]
struct AppCredJ<'a> {
    #[serde(flatten)]
    who: IdNameJ<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserJ<'a>>,
    secret: &'a str,
}

#[derive(Serialize)]
struct TokenJ<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct ScopeJ<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<UserJ<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<IdNameJ<'a>>,
}

/// `{"id": ...}` when an id is known, else `{"name": ...}`.
#[derive(Serialize)]
struct IdNameJ<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

fn id_name(x: &IdOrName) -> IdNameJ<'_> {
    match &x.id {
        Some(id) => IdNameJ { id: Some(id), name: None },
        None => IdNameJ { id: None, name: x.name.as_deref() },
    }
}

fn user_j<'a>(u: &'a UserRef, password: Option<&'a str>) -> UserJ<'a> {
    UserJ {
        who: id_name(&u.user),
        // a user given by id needs no domain
        domain: if u.user.id.is_some() { None } else { u.domain.as_ref().map(id_name) },
        password,
    }
}

fn secret_str<'a>(s: &'a Secret, what: &str) -> Result<&'a str, Error> {
    std::str::from_utf8(s.as_bytes()).map_err(|_| Error::usage(format!("the {what} is not valid UTF-8")))
}

/// The `POST /v3/auth/tokens` body, in a zeroizing buffer.
fn auth_body(cfg: &CloudConfig) -> Result<Zeroizing<Vec<u8>>, Error> {
    let identity = match &cfg.auth {
        Auth::Password { user, password } => Identity {
            methods: ["password"],
            password: Some(PasswordJ { user: user_j(user, Some(secret_str(password, "password")?)) }),
            application_credential: None,
            token: None,
        },
        Auth::ApplicationCredential { id, name, user, secret } => Identity {
            methods: ["application_credential"],
            password: None,
            application_credential: Some(AppCredJ {
                who: match id {
                    Some(id) => IdNameJ { id: Some(id), name: None },
                    None => IdNameJ { id: None, name: name.as_deref() },
                },
                user: if id.is_some() { None } else { user.as_ref().map(|u| user_j(u, None)) },
                secret: secret_str(secret, "application credential secret")?,
            }),
            token: None,
        },
        Auth::Token { token } => Identity {
            methods: ["token"],
            password: None,
            application_credential: None,
            token: Some(TokenJ { id: secret_str(token, "token")? }),
        },
    };
    let scope = match (&cfg.auth, &cfg.scope) {
        (Auth::ApplicationCredential { .. }, _) | (_, None) => None,
        (_, Some(Scope::Project { project, domain })) => Some(ScopeJ {
            project: Some(UserJ {
                who: id_name(project),
                domain: if project.id.is_some() { None } else { domain.as_ref().map(id_name) },
                password: None,
            }),
            domain: None,
        }),
        (_, Some(Scope::Domain(d))) => Some(ScopeJ { project: None, domain: Some(id_name(d)) }),
    };
    // pre-sized so that serialising never reallocates (which would leave an unzeroed copy)
    let mut buf = Zeroizing::new(Vec::with_capacity(16 << 10));
    serde_json::to_writer(&mut *buf, &AuthReq { auth: AuthInner { identity, scope } })
        .map_err(|e| Error::io(format!("cannot build the Keystone request: {e}")))?;
    Ok(buf)
}

#[derive(Deserialize)]
struct TokenResponse {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: Option<String>,
    issued_at: Option<String>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
    project: Option<ProjectJ>,
}

#[derive(Deserialize)]
struct ProjectJ {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<EndpointJ>,
}

#[derive(Deserialize)]
struct EndpointJ {
    interface: String,
    region: Option<String>,
    region_id: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct SecretMeta {
    secret_type: Option<String>,
    status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn passphrase_rule() {
        assert_eq!(passphrase_from_payload("passphrase", b"correct horse").as_bytes(), b"correct horse");
        assert_eq!(passphrase_from_payload("symmetric", &[0x00, 0xab, 0x10, 0xff]).as_bytes(), b"00ab10ff");
        assert_eq!(passphrase_from_payload("opaque", b"\x01").as_bytes(), b"01");
        assert_eq!(passphrase_from_payload("private", b"").as_bytes(), b"");
    }

    #[test]
    fn secret_refs() {
        let id = "8a3f6c1e-5b2d-4f7a-9c0e-1d2b3c4d5e6f";
        for r in [
            id.to_string(),
            format!("barbican:{id}"),
            format!(" {id}\n"),
            format!("http://127.0.0.1:9311/v1/secrets/{id}"),
            format!("https://kms.example/key-manager/v1/secrets/{id}/"),
            format!("barbican:https://kms.example:9311/v1/secrets/{id}?x=1"),
        ] {
            assert_eq!(parse_secret_ref(&r).unwrap(), id, "{r}");
        }
        for bad in ["", "barbican:", "http://h/v1/secrets/", "http://h/v1/containers", "a/../b", "correct horse"] {
            let e = parse_secret_ref(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert!(!e.message().contains("horse"));
        }
    }

    #[test]
    fn urls() {
        assert_eq!(v3_url("http://ks:5000/v3/"), "http://ks:5000/v3");
        assert_eq!(v3_url("http://ks:5000"), "http://ks:5000/v3");
        assert_eq!(v3_url("https://h/identity/v2.0"), "https://h/identity/v3");
        assert_eq!(unversioned("http://b:9311/"), "http://b:9311");
        assert_eq!(unversioned("http://b:9311/v1/"), "http://b:9311");
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2026-11-23T00:14:57.000000Z"), Some(1795392897));
        assert_eq!(parse_timestamp("2026-11-23T01:14:57+01:00"), Some(1795392897));
        assert_eq!(parse_timestamp("2000-02-29T12:00:00"), Some(951825600));
        for bad in ["", "2026-11-23", "2026-13-01T00:00:00Z", "2026-11-23T00:14:57 junk", "20x6-11-23T00:14:57Z"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    fn body(json: &str) -> TokenBody {
        serde_json::from_str::<TokenResponse>(json).unwrap().token
    }

    #[test]
    fn lifetime_uses_keystone_clock() {
        let t = body(
            r#"{"token": {"expires_at": "2026-11-23T01:00:00.000000Z", "issued_at": "2026-11-23T00:00:00.000000Z"}}"#,
        );
        // our clock is way off: still one hour
        assert_eq!(token_lifetime(&t, UNIX_EPOCH), Duration::from_secs(3600));
        let t = body(r#"{"token": {"expires_at": "1970-01-01T00:10:00Z"}}"#);
        assert_eq!(token_lifetime(&t, UNIX_EPOCH), Duration::from_secs(600));
        let t = body(r#"{"token": {"expires_at": "garbage"}}"#);
        assert_eq!(token_lifetime(&t, UNIX_EPOCH), Duration::from_secs(300));
    }

    #[test]
    fn endpoint_by_interface_and_region() {
        let t = body(
            r#"{"token": {"catalog": [
              {"type": "identity", "endpoints": [{"interface": "public", "region_id": "R1", "url": "http://ks/v3"}]},
              {"type": "key-manager", "name": "barbican", "endpoints": [
                {"interface": "internal", "region_id": "R1", "region": "R1", "url": "http://int:9311"},
                {"interface": "public", "region_id": "R1", "region": "R1", "url": "http://pub1:9311/"},
                {"interface": "public", "region_id": "R2", "region": "R2", "url": "http://pub2:9311/v1"}]}]}}"#,
        );
        assert_eq!(select_endpoint(&t.catalog, "key-manager", "public", None).as_deref(), Some("http://pub1:9311"));
        assert_eq!(
            select_endpoint(&t.catalog, "key-manager", "public", Some("R2")).as_deref(),
            Some("http://pub2:9311")
        );
        assert_eq!(
            select_endpoint(&t.catalog, "key-manager", "internal", Some("R1")).as_deref(),
            Some("http://int:9311")
        );
        assert_eq!(select_endpoint(&t.catalog, "key-manager", "admin", None), None);
        assert_eq!(select_endpoint(&t.catalog, "key-manager", "public", Some("R3")), None);
    }

    fn cfg(auth: Auth, scope: Option<Scope>) -> CloudConfig {
        CloudConfig {
            source: "test".into(),
            auth_url: "http://ks/v3".into(),
            auth,
            scope,
            region_name: None,
            interface: "public".into(),
            cacert: None,
            insecure: false,
            key_manager_endpoint: None,
            image_endpoint: None,
            block_storage_endpoint: None,
        }
    }
    fn named(n: &str) -> IdOrName {
        IdOrName { id: None, name: Some(n.into()) }
    }

    #[test]
    fn auth_bodies() {
        let c = cfg(
            Auth::Password {
                user: UserRef { user: named("demo"), domain: Some(named("Default")) },
                password: Secret::from_slice(b"p\"w"),
            },
            Some(Scope::Project { project: named("demo"), domain: Some(named("Default")) }),
        );
        let v: serde_json::Value = serde_json::from_slice(&auth_body(&c).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"name": "Default"}, "password": "p\"w"}}},
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}})
        );

        let c = cfg(
            Auth::ApplicationCredential {
                id: Some("ac1".into()),
                name: Some("ignored".into()),
                user: None,
                secret: Secret::from_slice(b"s"),
            },
            Some(Scope::Project { project: named("x"), domain: None }),
        );
        let v: serde_json::Value = serde_json::from_slice(&auth_body(&c).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "ac1", "secret": "s"}}}})
        );

        let c = cfg(
            Auth::Token { token: Secret::from_slice(b"tok") },
            Some(Scope::Project { project: IdOrName { id: Some("p1".into()), name: Some("n".into()) }, domain: None }),
        );
        let v: serde_json::Value = serde_json::from_slice(&auth_body(&c).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "tok"}},
                "scope": {"project": {"id": "p1"}}}})
        );

        let c = cfg(
            Auth::ApplicationCredential {
                id: None,
                name: Some("ac".into()),
                user: Some(UserRef { user: IdOrName { id: Some("u1".into()), name: None }, domain: None }),
                secret: Secret::from_slice(b"s"),
            },
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&auth_body(&c).unwrap()).unwrap();
        assert_eq!(
            v["auth"]["identity"]["application_credential"],
            serde_json::json!({"name": "ac", "user": {"id": "u1"}, "secret": "s"})
        );
    }

    #[test]
    fn unreachable_keystone_is_io_and_clean() {
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = cfg(
            Auth::Password {
                user: UserRef { user: named("demo"), domain: Some(named("Default")) },
                password: Secret::from_slice(b"hunter2"),
            },
            None,
        );
        c.auth_url = format!("http://127.0.0.1:{port}/v3");
        let km = KeyManager::new(c).unwrap();
        let e = km.passphrase("0000-1111").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        let m = e.to_string();
        assert!(m.starts_with("Barbican secret 0000-1111: keystone unreachable"), "{m}");
        assert!(!m.contains("hunter2"));
        assert!(!format!("{km:?}").contains("hunter2"));
    }

    #[test]
    fn bad_cacert_is_usage() {
        let mut c = cfg(Auth::Token { token: Secret::from_slice(b"t") }, None);
        c.cacert = Some(PathBuf::from("/nonexistent/ca.pem"));
        let e = KeyManager::new(c.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.message().contains("/nonexistent/ca.pem"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not pem").unwrap();
        c.cacert = Some(p);
        assert!(KeyManager::new(c).unwrap_err().message().contains("no PEM certificate"));
    }
}
