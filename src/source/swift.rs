//! An [`ObjectStore`] over one OpenStack Swift container, by HTTP: listings
//! (`GET /v1/ACCOUNT/CONTAINER?format=json&prefix=…&marker=…`, paged), whole objects and byte
//! ranges (`Range: bytes=a-b`, which must answer 206 with exactly those bytes).
//!
//! Authentication: tempauth / Swift v1 (`GET AUTH_URL` with `X-Auth-User`/`X-Auth-Key` gives
//! `X-Storage-Url` and `X-Auth-Token`, as `ST_AUTH`/`ST_USER`/`ST_KEY` configure the `swift`
//! client), a ready storage URL and token (`OS_STORAGE_URL` + `OS_AUTH_TOKEN`), or Keystone (the
//! `object-store` endpoint of the catalog, the `clouds.yaml`/`OS_*` credentials Barbican uses). A
//! 401 re-authenticates once; transport errors and 5xx answers are retried with backoff.

use super::{Listed, ObjectStore};
use crate::{Error, Result};
use std::sync::Mutex;
use std::time::Duration;
use ureq::Agent;

/// Objects listed per listing request (Swift's default and maximum).
const PAGE: usize = 10_000;

/// How to reach the account.
#[derive(Clone, Debug)]
pub enum SwiftAuth {
    /// Swift v1 / tempauth: the auth URL, user (`account:user`) and key.
    V1 { auth_url: String, user: String, key: String },
    /// A storage URL (`…/v1/AUTH_account`) and a token obtained elsewhere.
    Token { storage_url: String, token: String },
    /// Keystone: the token and the `object-store` endpoint of its service catalog, from the same
    /// `clouds.yaml` / `OS_*` credentials as Barbican (`--os-cloud`); renewed as Barbican's are.
    Keystone(std::sync::Arc<crate::keys::barbican::KeyManager>),
}

/// The storage URL and token of one request.
enum Credentials {
    Plain(String, String),
    Keystone(crate::keys::barbican::ServiceToken),
}

impl Credentials {
    fn url(&self) -> &str {
        match self {
            Credentials::Plain(u, _) => u,
            Credentials::Keystone(s) => &s.endpoint,
        }
    }
    fn token(&self) -> Result<&str> {
        match self {
            Credentials::Plain(_, t) => Ok(t),
            Credentials::Keystone(s) => {
                std::str::from_utf8(s.token.as_bytes()).map_err(|_| Error::io("the Keystone token is not text"))
            }
        }
    }
}

/// One Swift container read as an object store.
pub struct SwiftStore {
    agent: Agent,
    auth: SwiftAuth,
    container: String,
    /// (storage URL, token)
    session: Mutex<Option<(String, String)>>,
}

/// Percent-encode `s` for a URL path (`keep_slash`) or a query value.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

enum Answer {
    Body(Vec<u8>),
    NotFound,
}

impl SwiftStore {
    /// A store for `container` of the account `auth` reaches (nothing is sent yet).
    pub fn new(auth: SwiftAuth, container: &str) -> Result<SwiftStore> {
        if container.is_empty() || container.contains('/') {
            return Err(Error::usage(format!("{container:?} is not a Swift container name")));
        }
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("luksfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let session = match &auth {
            SwiftAuth::Token { storage_url, token } => {
                Some((storage_url.trim_end_matches('/').to_string(), token.clone()))
            }
            SwiftAuth::V1 { .. } | SwiftAuth::Keystone(_) => None,
        };
        Ok(SwiftStore { agent, auth, container: container.to_string(), session: Mutex::new(session) })
    }

    fn credentials(&self) -> Result<Credentials> {
        if let SwiftAuth::Keystone(km) = &self.auth {
            return Ok(Credentials::Keystone(km.service("object-store", None)?));
        }
        let (url, token) = self.session()?;
        Ok(Credentials::Plain(url, token))
    }

    fn session(&self) -> Result<(String, String)> {
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sess) = s.as_ref() {
            return Ok(sess.clone());
        }
        let SwiftAuth::V1 { auth_url, user, key } = &self.auth else {
            return Err(Error::io("Swift rejects the token (401) and there are no credentials to get another"));
        };
        let resp = self
            .agent
            .get(auth_url)
            .header("X-Auth-User", user)
            .header("X-Auth-Key", key)
            .call()
            .map_err(|e| Error::io(format!("Swift auth at {auth_url}: {e}")))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Error::io(format!("Swift auth at {auth_url} answered {status}")));
        }
        let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (Some(url), Some(token)) = (header("X-Storage-Url"), header("X-Auth-Token")) else {
            return Err(Error::io(format!("Swift auth at {auth_url} gave no X-Storage-Url/X-Auth-Token")));
        };
        let sess = (url.trim_end_matches('/').to_string(), token);
        *s = Some(sess.clone());
        Ok(sess)
    }

    /// GET `path_and_query` (below the container) with `range`; the body of a 2xx answer
    /// (at most `limit` bytes) or `NotFound`. `want` is the success status expected.
    fn get_raw(&self, path_and_query: &str, range: Option<(u64, u64)>, want: u16, limit: u64) -> Result<Answer> {
        let mut reauthed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let cred = self.credentials()?;
            let url = format!("{}/{}{path_and_query}", cred.url(), encode(&self.container, false));
            let mut req = self.agent.get(&url).header("X-Auth-Token", cred.token()?);
            if let Some((a, b)) = range {
                req = req.header("Range", &format!("bytes={a}-{b}"));
            }
            let retry = |what: String| super::backoff("swift", what, attempt);
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    retry(format!("GET {url}: {e}"))?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            log::debug!("swift: GET {url} -> {status}");
            match status {
                s if s == want => match super::read_body(resp.body_mut(), limit, range.map_or(0, |(a, b)| b - a + 1)) {
                    Ok(v) => return Ok(Answer::Body(v)),
                    Err(ureq::Error::BodyExceedsLimit(_)) => {
                        return Err(Error::corrupt(format!("GET {url}: more than {limit} bytes")));
                    }
                    Err(e) => {
                        retry(format!("GET {url}: reading the body: {e}"))?;
                        continue;
                    }
                },
                404 => return Ok(Answer::NotFound),
                401 if !reauthed && !matches!(self.auth, SwiftAuth::Token { .. }) => {
                    reauthed = true;
                    match &cred {
                        Credentials::Keystone(s) => {
                            if let SwiftAuth::Keystone(km) = &self.auth {
                                km.token_rejected(s.generation);
                            }
                        }
                        Credentials::Plain(..) => *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None,
                    }
                }
                200 if range.is_some() => {
                    return Err(Error::io(format!("GET {url}: the server ignored the Range header (200, not 206)")));
                }
                416 => return Err(Error::corrupt(format!("GET {url}: range {range:?} is past the object's end"))),
                500..=599 => retry(format!("GET {url}: {status}"))?,
                _ => return Err(Error::io(format!("GET {url}: {status}"))),
            }
        }
    }
}

impl ObjectStore for SwiftStore {
    fn describe(&self) -> String {
        format!("swift container {}", self.container)
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>> {
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            bytes: u64,
        }
        let mut out: Vec<Listed> = Vec::new();
        loop {
            let marker = out.last().map(|m| format!("&marker={}", encode(&m.name, false))).unwrap_or_default();
            let q = format!("?format=json&limit={PAGE}&prefix={}{marker}", encode(prefix, false));
            let body = match self.get_raw(&q, None, 200, 64 << 20)? {
                Answer::Body(b) => b,
                Answer::NotFound => {
                    return Err(Error::usage(format!("Swift container {} does not exist", self.container)));
                }
            };
            let page: Vec<Entry> = serde_json::from_slice(&body)
                .map_err(|e| Error::io(format!("Swift listing of {}: {e}", self.container)))?;
            let n = page.len();
            out.extend(page.into_iter().map(|e| Listed { name: e.name, size: e.bytes }));
            if out.len() > super::posix::MAX_LIST {
                return Err(Error::unsupported(format!(
                    "more than {} objects under {prefix:?} in Swift container {}",
                    super::posix::MAX_LIST,
                    self.container
                )));
            }
            if n < PAGE {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.get_raw(&format!("/{}", encode(name, true)), None, 200, max)? {
            Answer::Body(b) => Ok(Some(b)),
            Answer::NotFound => Ok(None),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        super::get_exact_range(name, offset, len, |first, last| {
            match self.get_raw(&format!("/{}", encode(name, true)), Some((first, last)), 206, len as u64)? {
                Answer::Body(b) => Ok(Some(b)),
                Answer::NotFound => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_and_queries() {
        assert_eq!(encode("volume_a/2026/az_nova_backup_b-00001", true), "volume_a/2026/az_nova_backup_b-00001");
        assert_eq!(encode("a b/c?d", true), "a%20b/c%3Fd");
        assert_eq!(encode("a/b&c", false), "a%2Fb%26c");
    }
}
