//! The Barbican key manager against a REAL Keystone + Barbican (no mocks): `scripts/openstack-up.sh`
//! starts them once per test binary run into `$LUKSFS_OPENSTACK_DIR` (default: the cargo target
//! directory's `openstack/`) and leaves them running for the next run (warm start ~1-5 s; the
//! first, cold, run installs them from PyPI in ~45-75 s; a run less than 10 minutes old whose
//! servers answer is reused without running the script, see [`REUSE_WITHIN`]). Stop them with
//! `scripts/openstack-down.sh target/openstack`.
//!
//! If they can't be started the tests print `SKIPPED: ...` and pass, except under `CI=true`.
//!
//! Two halves: the library's [`KeyManager`] (auth types, the hex rule, 401/403/404, renewal,
//! timeouts, TLS), then the `luksfs` binary end to end (`barbican_images_*`, `barbican_auth_*`,
//! `barbican_stopped_mid_mount_*`, `barbican_token_revoked_mid_mount_*`): images made by
//! qemu-img/cryptsetup whose passphrases live in Barbican, Glance sidecars, keytab `barbican:`
//! lines, through `cat`, `inspect` and real FUSE mounts. Run just this module with
//! `cargo test --test it -- barbican::`.
//!
//! Other modules can reuse [`harness`] and the REST helpers ([`Osk::store_symmetric`],
//! [`Osk::store_passphrase`], [`Osk::clouds_env`]) for image-level tests.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use luksfs::ErrorKind;
use luksfs::keys::barbican::{KeyManager, Options};
use luksfs::keys::clouds::{self, CloudConfig};
use serde_json::json;

use crate::util::mount::{FS_CALL, mount_entry};
use crate::util::{self, Image, KIB, Lab, MIB, Out, assert_same, mark, timed};

/// A running Keystone + Barbican (what `DIR/osk.env` says).
pub struct Osk {
    /// The harness directory.
    pub dir: PathBuf,
    /// `DIR/osk.env` as a map.
    pub env: HashMap<String, String>,
    /// Keystone, `http://127.0.0.1:PORT/v3`.
    pub keystone: String,
    /// Barbican, `http://127.0.0.1:PORT`.
    pub barbican: String,
}

static HARNESS: OnceLock<Result<Osk, String>> = OnceLock::new();

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The servers, started on first use; `None` (after printing `SKIPPED: why`) when they can't be
/// started, a panic instead under `CI=true`.
pub fn harness() -> Option<&'static Osk> {
    match HARNESS.get_or_init(start) {
        Ok(o) => Some(o),
        Err(why) if ci() => panic!("CI=true and the OpenStack harness did not start: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: OpenStack harness not available: {why}");
            None
        }
    }
}

fn harness_dir() -> PathBuf {
    match std::env::var_os("LUKSFS_OPENSTACK_DIR") {
        Some(d) => PathBuf::from(d),
        // CARGO_TARGET_TMPDIR is <target>/tmp
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("openstack"),
    }
}

/// A script run less than this long ago whose servers still answer (and whose `osk-token` Keystone
/// still accepts) is not repeated: nextest runs every test in a process of its own, and a warm
/// re-run of the script costs 4-8 s each time.
const REUSE_WITHIN: Duration = Duration::from_secs(10 * 60);

fn start() -> Result<Osk, String> {
    let dir = harness_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(o) = reuse(&dir) {
        eprintln!("OpenStack harness already up ({})", dir.display());
        return Ok(o);
    }
    let t = Instant::now();
    util::up_script("openstack-up.sh", &dir, &[], &[])?;
    eprintln!("OpenStack harness up in {:.1}s ({})", t.elapsed().as_secs_f32(), dir.display());
    read_osk(dir)
}

/// What `DIR/osk.env` says.
fn read_osk(dir: PathBuf) -> Result<Osk, String> {
    let env = util::env_file(&dir.join("osk.env"))?;
    let get = |k: &str| env.get(k).cloned().ok_or_else(|| format!("osk.env lacks {k}"));
    Ok(Osk { keystone: get("OSK_KEYSTONE_URL")?, barbican: get("OSK_BARBICAN_URL")?, dir, env })
}

/// The servers of a script run less than [`REUSE_WITHIN`] ago, if both answer and Keystone still
/// accepts the `osk-token` cloud's token.
fn reuse(dir: &Path) -> Option<Osk> {
    let age = std::fs::metadata(dir.join("osk.env")).ok()?.modified().ok()?.elapsed().ok()?;
    if age > REUSE_WITHIN {
        return None;
    }
    let osk = read_osk(dir.to_path_buf()).ok()?;
    let probe = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    if probe.get(&osk.keystone).call().ok()?.status().as_u16() != 200 {
        return None;
    }
    if !matches!(probe.get(format!("{}/", osk.barbican)).call().ok()?.status().as_u16(), 200 | 300) {
        return None;
    }
    let cfg = clouds::load_with_env(Some("osk-token"), &osk.clouds_env()).ok()?;
    let clouds::Auth::Token { token } = &cfg.auth else { return None };
    let token = std::str::from_utf8(token.as_bytes()).ok()?;
    let url = format!("{}/auth/tokens", osk.keystone);
    let r = probe.get(&url).header("X-Auth-Token", token).header("X-Subject-Token", token).call().ok()?;
    (r.status().as_u16() == 200).then_some(osk)
}

macro_rules! osk {
    () => {
        match harness() {
            Some(o) => o,
            None => return,
        }
    };
}

// ------------------------------------------------------------------ REST helpers

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A random UUID-shaped id (for secrets that don't exist, names).
pub(crate) fn random_id() -> String {
    let h = hex(&random_bytes(16));
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl Osk {
    pub(crate) fn var(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| panic!("osk.env lacks {k}"))
    }

    /// A project-scoped token for `user`/`password` in project `project` (domain Default).
    pub fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
        let resp = agent().post(format!("{}/auth/tokens", self.keystone)).send_json(&body).unwrap();
        assert_eq!(resp.status().as_u16(), 201, "keystone login as {user}");
        resp.headers()["X-Subject-Token"].to_str().unwrap().to_string()
    }

    /// A token of user demo in project demo.
    pub fn demo_token(&self) -> String {
        self.token("demo", self.var("OSK_DEMO_PASSWORD"), "demo")
    }

    /// A token of admin in project admin.
    pub fn admin_token(&self) -> String {
        self.token("admin", self.var("OSK_ADMIN_PASSWORD"), "admin")
    }

    fn store(&self, token: &str, body: serde_json::Value) -> String {
        let mut resp = agent()
            .post(format!("{}/v1/secrets", self.barbican))
            .header("X-Auth-Token", token)
            .send_json(&body)
            .unwrap();
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.body_mut().read_json().unwrap();
        assert_eq!(status, 201, "POST /v1/secrets: {v}");
        v["secret_ref"].as_str().unwrap().to_string()
    }

    /// Store `key` as a `symmetric` secret (as Cinder does); returns the secret href.
    pub fn store_symmetric(&self, token: &str, key: &[u8]) -> String {
        self.store(
            token,
            serde_json::json!({"name": "luksfs-test-sym", "secret_type": "symmetric", "algorithm": "aes",
                "bit_length": key.len() * 8, "mode": "xts", "payload": b64(key),
                "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"}),
        )
    }

    /// Store `payload` (a PEM or DER X.509 certificate) as a `certificate` secret, as the RHOSP
    /// guide does (`openstack secret store --secret-type certificate --payload-content-type
    /// application/octet-stream --payload-content-encoding base64 --payload "$(base64 CERT)"`);
    /// returns the secret href.
    pub fn store_certificate(&self, token: &str, payload: &[u8]) -> String {
        self.store(
            token,
            serde_json::json!({"name": "luksfs-test-cert", "secret_type": "certificate", "algorithm": "RSA",
                "payload": b64(payload), "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64"}),
        )
    }

    /// Store `text` as a `passphrase` secret; returns the secret href.
    pub fn store_passphrase(&self, token: &str, text: &str) -> String {
        self.store(
            token,
            serde_json::json!({"name": "luksfs-test-pass", "secret_type": "passphrase", "payload": text,
                "payload_content_type": "text/plain"}),
        )
    }

    /// An environment for [`clouds::load_with_env`] that sees only `DIR/clouds.yaml`.
    pub fn clouds_env(&self) -> HashMap<String, String> {
        let mut e = HashMap::new();
        e.insert("OS_CLIENT_CONFIG_FILE".into(), self.dir.join("clouds.yaml").display().to_string());
        e.insert("OS_CLIENT_SECURE_FILE".into(), "/nonexistent/secure.yaml".into());
        e.insert("HOME".into(), "/nonexistent".into());
        e
    }

    /// The named cloud of `DIR/clouds.yaml` (osk-demo, osk-appcred, osk-token, osk-admin).
    pub fn cloud(&self, name: &str) -> CloudConfig {
        clouds::load_with_env(Some(name), &self.clouds_env()).unwrap()
    }

    /// The `OS_*` variables of osk.env (demo's application credential).
    pub fn os_env(&self) -> HashMap<String, String> {
        self.env.iter().filter(|(k, _)| k.starts_with("OS_")).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub(crate) fn admin_req(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let url = format!("{}{path}", self.keystone);
        let tok = self.admin_token();
        let a = agent();
        let resp = match (method, body) {
            ("POST", Some(b)) => a.post(&url).header("X-Auth-Token", &tok).send_json(&b),
            ("PATCH", Some(b)) => a.patch(&url).header("X-Auth-Token", &tok).send_json(&b),
            ("PUT", None) => a.put(&url).header("X-Auth-Token", &tok).send_empty(),
            ("GET", None) => a.get(&url).header("X-Auth-Token", &tok).call(),
            other => panic!("{other:?}"),
        };
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
        if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() }
    }

    /// Create a user with role member in project demo; returns its id.
    fn create_member(&self, name: &str, password: &str) -> String {
        let project = self.var("OSK_DEMO_PROJECT_ID").to_string();
        let u = self.admin_req(
            "POST",
            "/users",
            Some(serde_json::json!({"user": {"name": name, "domain_id": "default", "password": password,
                "default_project_id": project}})),
        );
        let uid = u["user"]["id"].as_str().unwrap().to_string();
        let roles = self.admin_req("GET", "/roles?name=member", None);
        let rid = roles["roles"][0]["id"].as_str().unwrap().to_string();
        self.admin_req("PUT", &format!("/projects/{project}/users/{uid}/roles/{rid}"), None);
        uid
    }

    /// A private Barbican (same database, keystone auth) on a free port, until dropped.
    fn extra_barbican(&self) -> ExtraBarbican {
        self.extra_barbican_with(&[])
    }

    /// [`Osk::extra_barbican`] with more gunicorn options (`--certfile F --keyfile K`: HTTPS).
    fn extra_barbican_with(&self, gunicorn_args: &[&str]) -> ExtraBarbican {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        self.extra_barbican_at(port, gunicorn_args)
    }

    /// [`Osk::extra_barbican_with`] on a given port (e.g. a restart where a stopped one was).
    fn extra_barbican_at(&self, port: u16, gunicorn_args: &[&str]) -> ExtraBarbican {
        let tls = gunicorn_args.contains(&"--certfile");
        let log = std::fs::File::create(self.dir.join(format!("log/barbican-extra-{port}.out"))).unwrap();
        let child = Command::new(self.var("OSK_BARBICAN_SERVE"))
            .arg(port.to_string())
            .args(gunicorn_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let mut extra = ExtraBarbican { child: Some(child), url };
        let t = Instant::now();
        loop {
            // GET / is a 300 (versions) without a Location: don't let ureq try to follow it
            let probe = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(5)))
                .tls_config(ureq::tls::TlsConfig::builder().disable_verification(true).build())
                .build()
                .new_agent();
            if let Ok(r) = probe.get(format!("{}/", extra.url)).call()
                && matches!(r.status().as_u16(), 200 | 300 | 401)
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(90), "extra Barbican on port {port} did not start");
            assert!(extra.child.as_mut().unwrap().try_wait().unwrap().is_none(), "extra Barbican exited");
            std::thread::sleep(Duration::from_millis(200));
        }
        extra
    }
}

/// A Barbican process owned by one test.
struct ExtraBarbican {
    child: Option<Child>,
    url: String,
}

impl ExtraBarbican {
    /// SIGTERM (gunicorn stops its worker too) and wait.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let t = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if t.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for ExtraBarbican {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn id_of(href: &str) -> &str {
    href.rsplit('/').next().unwrap()
}

fn km(cfg: CloudConfig) -> KeyManager {
    KeyManager::new(cfg).unwrap()
}

// ------------------------------------------------------------------ tests

/// Password auth (clouds.yaml `osk-demo`): `symmetric` → lowercase hex, `passphrase` → as-is;
/// bare id, href and `barbican:` forms; fetched once, then cached.
#[test]
fn barbican_password_auth_hex_and_passphrase_rules() {
    let osk = osk!();
    let tok = osk.demo_token();
    let key = random_bytes(32);
    let sym = osk.store_symmetric(&tok, &key);
    let pass = osk.store_passphrase(&tok, "correct horse battery staple");

    let km = km(osk.cloud("osk-demo"));
    assert_eq!(km.passphrase(id_of(&sym)).unwrap().as_bytes(), hex(&key).as_bytes());
    assert_eq!(km.passphrase(&pass).unwrap().as_bytes(), b"correct horse battery staple");
    assert_eq!(
        km.passphrase(&format!("barbican:{}", id_of(&pass))).unwrap().as_bytes(),
        b"correct horse battery staple"
    );
    assert_eq!(km.passphrase(&sym).unwrap().as_bytes(), hex(&key).as_bytes());
    let s = km.stats();
    assert_eq!((s.authentications, s.fetches, s.cache_hits), (1, 2, 2), "{s:?}");
}

/// Application credential from the `OS_*` environment (osk.env), and from clouds.yaml.
#[test]
fn barbican_application_credential() {
    let osk = osk!();
    let key = random_bytes(64);
    let sym = osk.store_symmetric(&osk.demo_token(), &key);

    let cfg = clouds::resolve(None, &osk.os_env(), &clouds::Files::default()).unwrap();
    assert_eq!(cfg.auth.type_name(), "v3applicationcredential");
    assert_eq!(km(cfg).passphrase(&sym).unwrap().as_bytes(), hex(&key).as_bytes());

    let cfg = osk.cloud("osk-appcred");
    assert_eq!(km(cfg).passphrase(id_of(&sym)).unwrap().as_bytes(), hex(&key).as_bytes());
}

/// Token auth: `OS_TOKEN` + `OS_AUTH_TYPE=token`, and the `osk-token` cloud.
#[test]
fn barbican_token_auth() {
    let osk = osk!();
    let tok = osk.demo_token();
    let pass = osk.store_passphrase(&tok, "token-auth passphrase");

    let mut env = HashMap::new();
    env.insert("OS_AUTH_URL".to_string(), osk.keystone.clone());
    env.insert("OS_AUTH_TYPE".to_string(), "token".to_string());
    env.insert("OS_TOKEN".to_string(), tok);
    env.insert("OS_PROJECT_ID".to_string(), osk.var("OSK_DEMO_PROJECT_ID").to_string());
    let cfg = clouds::resolve(None, &env, &clouds::Files::default()).unwrap();
    assert_eq!(km(cfg).passphrase(&pass).unwrap().as_bytes(), b"token-auth passphrase");

    let cfg = osk.cloud("osk-token");
    assert_eq!(cfg.auth.type_name(), "token");
    assert_eq!(km(cfg).passphrase(&pass).unwrap().as_bytes(), b"token-auth passphrase");
}

/// A secret that doesn't exist: BadKey naming the id and 404; other secrets still work.
#[test]
fn barbican_wrong_secret_id_is_bad_key_404() {
    let osk = osk!();
    let good = osk.store_passphrase(&osk.demo_token(), "still readable");
    let km = km(osk.cloud("osk-appcred"));
    let missing = random_id();
    let e = km.passphrase(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadKey, "{e}");
    assert_eq!(e.kind().exit_code(), 3);
    let m = e.to_string();
    assert!(m.contains(&missing) && m.contains("no such secret (404)"), "{m}");
    assert_eq!(km.passphrase(&good).unwrap().as_bytes(), b"still readable");
    // failures are not cached: the same answer again
    assert_eq!(km.passphrase(&missing).unwrap_err().kind(), ErrorKind::BadKey);
}

/// A secret of another project: BadKey, 403.
#[test]
fn barbican_other_projects_secret_is_forbidden_403() {
    let osk = osk!();
    let admins = osk.store_passphrase(&osk.admin_token(), "admin's");
    let e = km(osk.cloud("osk-demo")).passphrase(&admins).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadKey, "{e}");
    let m = e.to_string();
    assert!(m.contains(id_of(&admins)) && m.contains("forbidden (403)"), "{m}");
}

/// Wrong password, wrong application credential secret, bogus token: Io, "unauthorized", and the
/// bad credential is not in the message.
#[test]
fn barbican_invalid_credentials_are_unauthorized() {
    let osk = osk!();
    let id = random_id();

    let mut cfg = osk.cloud("osk-demo");
    let luksfs::keys::clouds::Auth::Password { password, .. } = &mut cfg.auth else { panic!() };
    *password = luksfs::keys::Secret::from_slice(b"wrong-password-123");
    let e = km(cfg).passphrase(&id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let m = e.to_string();
    assert!(m.contains("unauthorized (401)") && m.contains(&id) && !m.contains("wrong-password-123"), "{m}");

    let mut env = osk.os_env();
    env.insert("OS_APPLICATION_CREDENTIAL_SECRET".into(), "wrong-appcred-secret".into());
    let cfg = clouds::resolve(None, &env, &clouds::Files::default()).unwrap();
    let m = km(cfg).passphrase(&id).unwrap_err().to_string();
    assert!(m.contains("unauthorized (401)") && !m.contains("wrong-appcred-secret"), "{m}");

    let mut env = HashMap::new();
    env.insert("OS_AUTH_URL".to_string(), osk.keystone.clone());
    env.insert("OS_TOKEN".to_string(), "gAAAAABbogus-token".to_string());
    let cfg = clouds::resolve(None, &env, &clouds::Files::default()).unwrap();
    let e = km(cfg).authenticate().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("unauthorized") && !e.message().contains("bogus"), "{e}");
}

/// A revoked token: Barbican answers 401, the key manager re-authenticates once and carries on.
/// (The user's tokens are revoked by re-setting its password; the token is fresh to Barbican,
/// whose auth_token middleware would otherwise accept it from its cache for 5 minutes.)
#[test]
fn barbican_revoked_token_is_renewed_on_401() {
    let osk = osk!();
    let name = format!("luksfs-revoke-{}", &random_id()[..8]);
    let password = hex(&random_bytes(12));
    let uid = osk.create_member(&name, &password);
    let sym_key = random_bytes(32);
    let sym = osk.store_symmetric(&osk.demo_token(), &sym_key);

    let mut env = HashMap::new();
    env.insert("OS_AUTH_URL".to_string(), osk.keystone.clone());
    env.insert("OS_USERNAME".to_string(), name);
    env.insert("OS_PASSWORD".to_string(), password.clone());
    env.insert("OS_PROJECT_NAME".to_string(), "demo".to_string());
    env.insert("OS_DOMAIN_NAME".to_string(), "Default".to_string());
    let km = km(clouds::resolve(None, &env, &clouds::Files::default()).unwrap());
    km.authenticate().unwrap();
    assert_eq!(km.stats().authentications, 1);

    // a password change revokes every token of the user issued up to now (1 s granularity, so
    // wait before asking for a new one)
    osk.admin_req("PATCH", &format!("/users/{uid}"), Some(serde_json::json!({"user": {"password": password}})));
    std::thread::sleep(Duration::from_millis(1100));

    assert_eq!(km.passphrase(&sym).unwrap().as_bytes(), hex(&sym_key).as_bytes());
    let s = km.stats();
    assert_eq!((s.authentications, s.reauth_after_401), (2, 1), "{s:?}");
}

/// Renewal before expiry: with a renewal margin longer than the token's life every request
/// gets a new token; with the default margin one token serves everything.
#[test]
fn barbican_token_renewed_before_expiry() {
    let osk = osk!();
    let tok = osk.demo_token();
    let a = osk.store_passphrase(&tok, "a");
    let b = osk.store_passphrase(&tok, "b");

    let opts = Options { renew_before: Duration::from_secs(400 * 24 * 3600), ..Options::default() };
    let km = KeyManager::with_options(osk.cloud("osk-appcred"), opts).unwrap();
    assert_eq!(km.passphrase(&a).unwrap().as_bytes(), b"a");
    assert_eq!(km.passphrase(&b).unwrap().as_bytes(), b"b");
    // two GETs per secret, each with a freshly renewed token
    assert_eq!(km.stats().authentications, 4, "{:?}", km.stats());

    let km = KeyManager::new(osk.cloud("osk-appcred")).unwrap();
    km.passphrase(&a).unwrap();
    km.passphrase(&b).unwrap();
    assert_eq!(km.stats().authentications, 1);
}

/// Barbican stopped after a secret was fetched: that secret is still served from the cache,
/// another one fails with Io "key manager unreachable", naming its id.
#[test]
fn barbican_stopped_cached_secret_still_served() {
    let osk = osk!();
    let tok = osk.demo_token();
    let key = random_bytes(32);
    let sym = osk.store_symmetric(&tok, &key);
    let other = osk.store_passphrase(&tok, "never fetched");

    let mut extra = osk.extra_barbican();
    let mut cfg = osk.cloud("osk-demo");
    cfg.key_manager_endpoint = Some(extra.url.clone());
    let km = km(cfg);
    assert_eq!(km.passphrase(&sym).unwrap().as_bytes(), hex(&key).as_bytes());
    extra.stop();

    assert_eq!(km.passphrase(&sym).unwrap().as_bytes(), hex(&key).as_bytes());
    let e = km.passphrase(&other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let m = e.to_string();
    assert!(m.contains(id_of(&other)) && m.contains("key manager unreachable"), "{m}");
}

/// A key manager endpoint that accepts connections and never answers: Io "timed out".
#[test]
fn barbican_timeout() {
    let osk = osk!();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = osk.cloud("osk-appcred");
    cfg.key_manager_endpoint = Some(format!("http://{}", hole.local_addr().unwrap()));
    let opts = Options { timeout: Duration::from_secs(1), ..Options::default() };
    let km = KeyManager::with_options(cfg, opts).unwrap();
    let t = Instant::now();
    let e = km.passphrase(&random_id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// Many unlock threads on one key manager: one token, each secret fetched once.
#[test]
fn barbican_threads_share_token_and_cache() {
    let osk = osk!();
    let tok = osk.demo_token();
    let secrets: Vec<(String, String)> = (0..4)
        .map(|i| {
            let p = format!("thread secret {i}");
            (osk.store_passphrase(&tok, &p), p)
        })
        .collect();
    let km = Arc::new(km(osk.cloud("osk-appcred")));
    let secrets = Arc::new(secrets);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (km, secrets) = (km.clone(), secrets.clone());
            std::thread::spawn(move || {
                for i in 0..secrets.len() {
                    let (href, p) = &secrets[(i + t) % secrets.len()];
                    assert_eq!(km.passphrase(href).unwrap().as_bytes(), p.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = km.stats();
    assert_eq!((s.authentications, s.fetches, s.cache_hits), (1, 4, 28), "{s:?}");
}

/// A CA and a server certificate for 127.0.0.1 made with openssl; `None` if openssl is missing.
fn make_certs(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (ca_key, ca, key, csr, cert, ext) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("ext.cnf"),
    );
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let steps: [Vec<&std::ffi::OsStr>; 3] = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=luksfs test CA", "-keyout"]
            .iter()
            .map(|s| s.as_ref())
            .chain([ca_key.as_os_str(), "-out".as_ref(), ca.as_os_str()])
            .collect(),
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout"]
            .iter()
            .map(|s| s.as_ref())
            .chain([key.as_os_str(), "-out".as_ref(), csr.as_os_str()])
            .collect(),
        ["x509", "-req", "-days", "2", "-set_serial", "2", "-in"]
            .iter()
            .map(|s| s.as_ref())
            .chain([
                csr.as_os_str(),
                "-CA".as_ref(),
                ca.as_os_str(),
                "-CAkey".as_ref(),
                ca_key.as_os_str(),
                "-extfile".as_ref(),
                ext.as_os_str(),
                "-out".as_ref(),
                cert.as_os_str(),
            ])
            .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl").args(args).output().ok()?;
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Some((ca, cert, key))
}

/// HTTPS: the certificate is verified by default (unknown CA → Io TLS error), `cacert` makes it
/// trusted, `insecure` skips verification.
#[test]
fn barbican_tls_verified_cacert_and_insecure() {
    let osk = osk!();
    let tmp = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certs(tmp.path()) else {
        assert!(!ci(), "CI=true and openssl is missing");
        eprintln!("SKIPPED: openssl not found");
        return;
    };
    let pass = osk.store_passphrase(&osk.demo_token(), "over TLS");
    let extra = osk.extra_barbican_with(&["--certfile", cert.to_str().unwrap(), "--keyfile", key.to_str().unwrap()]);
    assert!(extra.url.starts_with("https://"));
    let cfg = || {
        let mut c = osk.cloud("osk-appcred");
        c.key_manager_endpoint = Some(extra.url.clone());
        c
    };

    let e = km(cfg()).passphrase(&pass).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("TLS error"), "{e}");

    let mut c = cfg();
    c.cacert = Some(ca);
    assert_eq!(km(c).passphrase(&pass).unwrap().as_bytes(), b"over TLS");

    let mut c = cfg();
    c.insecure = true;
    assert_eq!(km(c).passphrase(&pass).unwrap().as_bytes(), b"over TLS");
}

// ================================================================== the binary: cat, inspect, mount
//
// Images keyed the OpenStack way (Cinder: the lowercase hex of a `symmetric` secret; uploads: a
// `passphrase` secret as-is), Glance sidecars, keytab `barbican:` lines, through `luksfs cat`,
// `luksfs inspect` and real FUSE mounts, bytes compared with the known plaintext every time.
//
// Every luksfs process gets an explicit environment: no inherited `OS_*` variable, and only the
// clouds.yaml the test names. The test process's own environment is never changed (the other
// modules run in parallel in this process), which is also why these tests use their own mount
// guard, [`OsMount`], instead of `Lab::mount` (that one can't give the daemon an environment).

/// Environment variables for one luksfs process.
pub(crate) type Env = Vec<(String, String)>;

/// `OS_CLIENT_CONFIG_FILE=clouds`, with `HOME`, `XDG_CONFIG_HOME` and `OS_CLIENT_SECURE_FILE`
/// pointing into the lab, so no clouds.yaml or secure.yaml of the machine's user is merged in.
/// (A `clouds` that doesn't exist: no cloud file at all.)
pub(crate) fn clouds_env(lab: &Lab, clouds: &Path) -> Env {
    let r = lab.root();
    vec![
        ("OS_CLIENT_CONFIG_FILE".into(), clouds.display().to_string()),
        ("OS_CLIENT_SECURE_FILE".into(), r.join("no-secure.yaml").display().to_string()),
        ("HOME".into(), r.display().to_string()),
        ("XDG_CONFIG_HOME".into(), r.join("xdg").display().to_string()),
    ]
}

/// No clouds.yaml anywhere: only the `OS_*` variables added to it count.
fn bare_env(lab: &Lab) -> Env {
    clouds_env(lab, &lab.root().join("no-clouds.yaml"))
}

fn plus(mut env: Env, more: &[(&str, &str)]) -> Env {
    env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub(crate) fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `luksfs ARGS` with `env`, without any inherited `OS_*` variable or `RUST_LOG`.
pub(crate) fn luksfs(env: &Env, args: &[&OsStr]) -> Command {
    let mut c = Command::new(util::bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OS_") {
            c.env_remove(&k);
        }
    }
    c.env_remove("RUST_LOG").envs(env.iter().map(|(k, v)| (k, v))).args(args);
    c
}

/// `luksfs cat IMAGE ARGS`.
fn cat(env: &Env, img: &Path, args: &[&str]) -> Out {
    let mut a = vec![os("cat"), img.as_os_str()];
    a.extend(args.iter().map(|s| os(s)));
    util::run_timed(luksfs(env, &a), Duration::from_secs(180))
}

/// `luksfs inspect --json IMAGE` (exit 0), parsed.
fn inspect_json(env: &Env, img: &Path) -> serde_json::Value {
    let out = util::run_timed(luksfs(env, &[os("inspect"), os("--json"), img.as_os_str()]), Duration::from_secs(60));
    serde_json::from_slice(out.ok()).unwrap_or_else(|e| panic!("{}: not JSON: {e}", out.cmdline))
}

/// `text` contains none of `secrets` (passwords, tokens, passphrases, hex keys).
#[track_caller]
fn assert_no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} contains a credential or key ({}...):\n{text}", &s[..s.len().min(6)]);
    }
}

/// A `clouds:` entry of a clouds.yaml (values double-quoted; ours need no escaping).
fn yaml_cloud(name: &str, auth_type: &str, auth: &[(&str, &str)], top: &[(&str, &str)]) -> String {
    let mut s = format!("  {name}:\n    auth_type: {auth_type}\n    auth:\n");
    for (k, v) in auth {
        s += &format!("      {k}: \"{v}\"\n");
    }
    for (k, v) in top {
        s += &format!("    {k}: \"{v}\"\n");
    }
    s
}

/// `LAB/keys/clouds.yaml` with these clouds.
fn write_clouds(lab: &Lab, clouds: &[String]) -> PathBuf {
    lab.key("clouds.yaml", format!("# written by tests/it/barbican.rs\nclouds:\n{}", clouds.concat()).as_bytes())
}

impl Osk {
    /// A password cloud for `user` in project demo, optionally with its own key manager endpoint.
    fn password_cloud(&self, name: &str, user: &str, password: &str, key_manager: Option<&str>) -> String {
        let mut top = vec![("region_name", "RegionOne"), ("interface", "public")];
        if let Some(url) = key_manager {
            top.push(("key_manager_endpoint_override", url));
        }
        let auth = [
            ("auth_url", self.keystone.as_str()),
            ("username", user),
            ("password", password),
            ("project_name", "demo"),
            ("user_domain_name", "Default"),
            ("project_domain_name", "Default"),
        ];
        yaml_cloud(name, "password", &auth, &top)
    }

    /// One Keystone request with `token`; returns the status and the JSON body (Null if none).
    fn keystone_call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        subject: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.keystone);
        let a = agent();
        let mut resp = match (method, body) {
            ("POST", Some(b)) => a.post(&url).header("X-Auth-Token", token).send_json(&b),
            ("DELETE", None) => {
                let r = a.delete(&url).header("X-Auth-Token", token);
                match subject {
                    Some(s) => r.header("X-Subject-Token", s).call(),
                    None => r.call(),
                }
            }
            other => panic!("{other:?}"),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// Revoke one token (`DELETE /v3/auth/tokens`, by the admin).
    fn revoke_token(&self, token: &str) {
        let (st, v) = self.keystone_call("DELETE", "/auth/tokens", &self.admin_token(), Some(token), None);
        assert_eq!(st, 204, "revoking a token: {v}");
    }

    /// A new application credential of demo: (id, secret).
    fn create_demo_app_credential(&self) -> (String, String) {
        let uid = self.var("OSK_DEMO_USER_ID");
        let name = format!("luksfs-test-{}", &random_id()[..8]);
        let body = json!({"application_credential": {"name": name, "description": "luksfs test, deleted at once"}});
        let (st, v) = self.keystone_call(
            "POST",
            &format!("/users/{uid}/application_credentials"),
            &self.demo_token(),
            None,
            Some(body),
        );
        assert_eq!(st, 201, "creating an application credential: {v}");
        let ac = &v["application_credential"];
        (ac["id"].as_str().unwrap().to_string(), ac["secret"].as_str().unwrap().to_string())
    }

    /// Delete one of demo's application credentials.
    fn delete_demo_app_credential(&self, id: &str) {
        let uid = self.var("OSK_DEMO_USER_ID");
        let path = format!("/users/{uid}/application_credentials/{id}");
        let (st, v) = self.keystone_call("DELETE", &path, &self.demo_token(), None, None);
        assert_eq!(st, 204, "deleting an application credential: {v}");
    }
}

/// A sha512 of the image file (Glance's `os_hash_value`).
fn sha512_file(path: &Path) -> String {
    use sha2::Digest;
    hex(&sha2::Sha512::digest(std::fs::read(path).unwrap()))
}

/// Write `IMAGE.json` as `openstack image show -f json IMAGE` prints it: image properties (string
/// values, as Glance keeps them) under `properties`.
fn sidecar_osc(img: &Path, disk_format: &str, props: serde_json::Value) {
    let (id, size) = (random_id(), std::fs::metadata(img).unwrap().len());
    let mut props = props;
    props["os_hidden"] = json!(false);
    props["stores"] = json!("file");
    let v = json!({
        "checksum": null, "container_format": "bare", "created_at": "2026-11-20T09:12:44Z",
        "disk_format": disk_format, "file": format!("/v2/images/{id}/file"), "id": id,
        "min_disk": 0, "min_ram": 0, "name": img.file_name().unwrap().to_string_lossy(),
        "os_hash_algo": "sha512", "os_hash_value": sha512_file(img), "owner": "9c4e4e8d0b8f4a2c8d7f5e6a1b2c3d4e",
        "properties": props, "protected": false, "schema": "/v2/schemas/image", "size": size,
        "status": "active", "tags": [], "updated_at": "2026-11-20T09:13:02Z", "virtual_size": null,
        "visibility": "private"
    });
    util::write(&luksfs::keys::sidecar::sidecar_path(img), serde_json::to_string_pretty(&v).unwrap().as_bytes());
}

/// Write `IMAGE.json` as the raw `GET /v2/images/{id}` body: properties top-level.
fn sidecar_api(img: &Path, disk_format: &str, props: serde_json::Value) {
    let (id, size) = (random_id(), std::fs::metadata(img).unwrap().len());
    let mut v = json!({
        "id": id, "name": img.file_name().unwrap().to_string_lossy(), "status": "active",
        "visibility": "private", "protected": false, "os_hidden": false, "size": size,
        "virtual_size": null, "disk_format": disk_format, "container_format": "bare",
        "checksum": null, "os_hash_algo": "sha512", "os_hash_value": sha512_file(img),
        "owner": "9c4e4e8d0b8f4a2c8d7f5e6a1b2c3d4e", "min_ram": 0, "min_disk": 0, "tags": [],
        "created_at": "2026-11-20T09:12:44Z", "updated_at": "2026-11-20T09:13:02Z",
        "self": format!("/v2/images/{id}"), "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image", "stores": "file"
    });
    for (k, x) in props.as_object().unwrap() {
        v[k] = x.clone();
    }
    util::write(&luksfs::keys::sidecar::sidecar_path(img), serde_json::to_string_pretty(&v).unwrap().as_bytes());
}

/// Keep every background unlock thread of a mount busy, so that the images behind these are
/// unlocked (and their secrets fetched) only when the test opens them: `cores + 1` images at the
/// front of the scan order (`0-hold-NN.luks` in the source root) whose keytab key files are FIFOs
/// nobody writes to; each unlock thread that takes one blocks in open(2) until the mount ends.
/// Returns their keytab lines.
fn hold_unlock_threads(lab: &Lab) -> String {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let first = lab.qemu_luks("0-hold-00.luks", mark("hold", 64 * KIB), b"hold", "");
    let mut lines = String::from("# unlock-thread holders (FIFO keys)\n");
    for i in 0..n {
        let rel = format!("0-hold-{i:02}.luks");
        if i > 0 {
            std::fs::copy(&first.path, lab.place(&rel)).unwrap();
        }
        let fifo = lab.keys.join(format!("hold-{i:02}.fifo"));
        let mut c = util::tool("mkfifo");
        c.arg(&fifo);
        util::sh(c);
        lines += &format!("{rel} {}\n", fifo.display());
    }
    lines
}

/// A `luksfs mount` with its own environment. Dropping it (also on panic) unmounts
/// (`fusermount3 -u`, lazily if busy), waits for the process and kills it if it lingers.
pub(crate) struct OsMount {
    mnt: PathBuf,
    child: Option<Child>,
    /// stdout + stderr of the process.
    out: PathBuf,
    /// `--log-file`.
    log: PathBuf,
}

impl OsMount {
    /// `luksfs mount LAB/src LAB/NAME --log-file LAB/NAME.log ARGS` with `env`; returns once
    /// LAB/NAME is a FUSE mount (30 s at most).
    fn start(lab: &Lab, name: &str, env: &Env, args: &[&str]) -> OsMount {
        OsMount::start_from(lab, lab.src.as_os_str(), name, env, args)
    }

    /// [`OsMount::start`] of `source` (a path or a URL) instead of LAB/src.
    pub(crate) fn start_from(lab: &Lab, source: &OsStr, name: &str, env: &Env, args: &[&str]) -> OsMount {
        let mnt = lab.root().join(name);
        std::fs::create_dir_all(&mnt).unwrap();
        let out = lab.root().join(format!("{name}.out"));
        let log = lab.root().join(format!("{name}.log"));
        let f = std::fs::File::create(&out).unwrap();
        let mut a = vec![os("mount"), source, mnt.as_os_str(), os("--log-file"), log.as_os_str()];
        a.extend(args.iter().map(|s| os(s)));
        let mut c = luksfs(env, &a);
        c.stdin(Stdio::null()).stdout(f.try_clone().unwrap()).stderr(f);
        let child = c.spawn().expect("spawn luksfs mount");
        let mut m = OsMount { mnt, child: Some(child), out, log };
        let t = Instant::now();
        while !mount_entry(&m.mnt).is_some_and(|e| e.fstype.starts_with("fuse")) {
            if let Some(st) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("luksfs mount exited ({st}) before the mount was ready:\n{}", m.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{} is no FUSE mount after 30 s:\n{}", name, m.log());
            std::thread::sleep(Duration::from_millis(5));
        }
        m
    }

    /// What the process wrote (stdout, stderr, then the log file).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default() + &std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub(crate) fn read_at(&self, rel: &str, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let p = self.path(rel);
        timed(&format!("pread {}", p.display()), FS_CALL, move || {
            let f = std::fs::File::open(&p)?;
            let mut v = vec![0u8; len];
            let n = f.read_at(&mut v, off)?;
            v.truncate(n);
            Ok(v)
        })
    }

    /// The errno of open(REL, O_RDONLY), None if it opens.
    fn open_errno(&self, rel: &str) -> Option<i32> {
        let p = self.path(rel);
        timed(&format!("open {}", p.display()), FS_CALL, move || {
            std::fs::File::open(&p).err().map(|e| e.raw_os_error().unwrap_or(-1))
        })
    }

    /// Every entry below the mount point, relative, sorted; directories end in `/`.
    fn walk(&self) -> Vec<String> {
        let root = self.mnt.clone();
        timed("walk the mount", FS_CALL, move || {
            let (mut out, mut stack) = (Vec::new(), vec![root.clone()]);
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                    if p.is_dir() {
                        out.push(rel + "/");
                        stack.push(p);
                    } else {
                        out.push(rel);
                    }
                }
            }
            out.sort();
            out
        })
    }

    /// REL has the image's size and, read whole, its plaintext.
    #[track_caller]
    fn check(&self, img: &Image, rel: &str) {
        let p = self.path(rel);
        let md = {
            let p = p.clone();
            timed("stat", FS_CALL, move || std::fs::metadata(&p))
        }
        .unwrap_or_else(|e| panic!("stat {}: {e}; log:\n{}", p.display(), self.log()));
        assert_eq!(md.len(), img.plain.len() as u64, "size of {}", p.display());
        let got = {
            let p = p.clone();
            timed(&format!("read {}", p.display()), FS_CALL, move || std::fs::read(&p))
        }
        .unwrap_or_else(|e| panic!("read {}: {e}; log:\n{}", p.display(), self.log()));
        assert_same(&format!("read through the mount: {}", p.display()), &got, &img.plain);
    }

    /// open(REL) fails with `errno`, twice (a failed image stays failed, without a new fetch).
    #[track_caller]
    pub(crate) fn assert_errno(&self, rel: &str, errno: i32) {
        for _ in 0..2 {
            let got = self.open_errno(rel);
            assert_eq!(
                got,
                Some(errno),
                "open {rel}: expected {}, got {:?}; log:\n{}",
                std::io::Error::from_raw_os_error(errno),
                got.map(std::io::Error::from_raw_os_error),
                self.log()
            );
        }
    }
}

impl Drop for OsMount {
    fn drop(&mut self) {
        let fusermount = |flag: &str| {
            util::which("fusermount3").is_some_and(|fm| {
                Command::new(fm)
                    .arg(flag)
                    .arg(&self.mnt)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        };
        if mount_entry(&self.mnt).is_some() && !fusermount("-u") {
            fusermount("-uz");
        }
        if let Some(mut c) = self.child.take() {
            let t = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(c.try_wait(), Ok(None)) {
                eprintln!("luksfs mount (pid {}) still running after unmount: killing it", c.id());
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- luksfs mount log of {} (last lines) ---", self.mnt.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// The three kinds of OpenStack-encrypted images through `cat`, `inspect` and one mount:
/// * `cinder/volume-1.img`: raw LUKS1 by qemu-img keyed with the lowercase hex of a 32-byte
///   `symmetric` secret (what Cinder stores); its sidecar is a raw Glance API body (properties
///   top-level) with only `cinder_encryption_key_id`;
/// * `user/upload.qcow2`: qcow2+LUKS keyed with a `passphrase` secret as-is; its sidecar is
///   `openstack image show -f json` output (properties under `properties`) with
///   `os_encrypt_key_id` and the right `os_decrypt_size`;
/// * `luks2/disk.img`: LUKS2 by cryptsetup keyed with the hex of another `symmetric` secret,
///   named by a keytab line `barbican:<full href>`;
///
/// plus a secret that doesn't exist and another project's secret (exit 3 / EACCES, the other
/// images unaffected), a sidecar whose `os_decrypt_size` is wrong (inspect and the mount log say
/// so), and an image with neither sidecar nor keytab line, served by `--key-file`.
#[test]
fn barbican_images_through_cat_inspect_and_mount() {
    let osk = osk!();
    need!("qemu-img", "qemu-io", "cryptsetup", "fuse");
    let lab = Lab::new();
    let tok = osk.demo_token();
    let k_cinder = random_bytes(32);
    let s_cinder = osk.store_symmetric(&tok, &k_cinder);
    let upload_pass = format!("upload passphrase {}", &random_id()[..8]);
    let s_upload = osk.store_passphrase(&tok, &upload_pass);
    let k_luks2 = random_bytes(32);
    let s_luks2 = osk.store_symmetric(&tok, &k_luks2);
    // the upload's passphrase stored as `symmetric`: luksfs turns it into hex, which opens nothing
    let s_upload_as_sym = osk.store_symmetric(&tok, upload_pass.as_bytes());
    let s_admins = osk.store_passphrase(&osk.admin_token(), &upload_pass);
    let missing = random_id();

    let cinder = lab.qemu_luks("cinder/volume-1.img", mark("cinder", 768 * KIB), hex(&k_cinder).as_bytes(), "");
    sidecar_api(
        &cinder.path,
        "raw",
        json!({"cinder_encryption_key_id": id_of(&s_cinder), "cinder_encryption_key_deletion_policy": "on_image_deletion"}),
    );
    let upload = lab.qcow2("user/upload.qcow2", util::random("upload", MIB), upload_pass.as_bytes(), "", &[]);
    sidecar_osc(
        &upload.path,
        "qcow2",
        json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&s_upload),
               "os_encrypt_key_deletion_policy": "on_image_deletion", "os_decrypt_container_format": "bare",
               "os_decrypt_size": upload.plain.len().to_string()}),
    );
    let luks2 = lab.cs_luks2("luks2/disk.img", util::random("luks2", 512 * KIB), hex(&k_luks2).as_bytes(), &[]);
    let local = lab.qemu_luks("local.luks", mark("local", 128 * KIB), b"local key file", "");
    // copies of the Cinder volume: a missing secret, another project's, a wrong os_decrypt_size
    for rel in ["bad/missing.img", "bad/forbidden.img", "size/mismatch.img"] {
        std::fs::copy(&cinder.path, lab.place(rel)).unwrap();
    }
    let missing_img = lab.src.join("bad/missing.img");
    let mismatch = Image { path: lab.src.join("size/mismatch.img"), ..cinder.clone() };
    sidecar_osc(&missing_img, "raw", json!({"os_encrypt_key_id": missing}));
    let wrong_size = (cinder.plain.len() + 1024 * 1024).to_string();
    sidecar_api(&mismatch.path, "raw", json!({"os_encrypt_key_id": id_of(&s_cinder), "os_decrypt_size": wrong_size}));

    let env = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    // --barbican-secret with an id or an href; password and application credential clouds
    cat(&env, &cinder.path, &["--os-cloud", "osk-demo", "--barbican-secret", id_of(&s_cinder)])
        .assert_bytes(&cinder.plain);
    cat(&env, &upload.path, &["--os-cloud", "osk-demo", "--barbican-secret", &s_upload]).assert_bytes(&upload.plain);
    cat(&env, &luks2.path, &["--os-cloud", "osk-appcred", "--barbican-secret", &s_luks2]).assert_bytes(&luks2.plain);
    // the sidecars' key ids (cinder_encryption_key_id; os_encrypt_key_id under `properties`)
    cat(&env, &cinder.path, &["--os-cloud", "osk-appcred"]).assert_bytes(&cinder.plain);
    cat(&env, &upload.path, &["--os-cloud", "osk-appcred", "--offset", "4096", "--length", "64K"])
        .assert_bytes(&upload.plain[4096..4096 + 65536]);
    // key problems: exit 3, one line naming the image and the secret
    let out = cat(&env, &upload.path, &["--os-cloud", "osk-demo", "--barbican-secret", &missing]);
    out.assert_fails(3, &upload.path);
    assert!(out.stderr.contains(&missing) && out.stderr.contains("no such secret (404)"), "{}", out.stderr);
    let out = cat(&env, &missing_img, &["--os-cloud", "osk-appcred"]);
    out.assert_fails(3, &missing_img);
    assert!(out.stderr.contains(&missing) && out.stderr.contains("404"), "{}", out.stderr);
    let out = cat(&env, &upload.path, &["--os-cloud", "osk-demo", "--barbican-secret", &s_admins]);
    out.assert_fails(3, &upload.path);
    assert!(out.stderr.contains(id_of(&s_admins)) && out.stderr.contains("forbidden (403)"), "{}", out.stderr);
    cat(&env, &upload.path, &["--os-cloud", "osk-demo", "--barbican-secret", &s_upload_as_sym])
        .assert_fails(3, &upload.path);

    // inspect: the openstack section, decrypt_size_matches true / absent / false (+ a warning)
    let j = inspect_json(&env, &upload.path);
    let o = &j["openstack"];
    assert_eq!(o["key_id"], id_of(&s_upload), "{j:#}");
    assert_eq!(o["os_decrypt_size"], upload.plain.len() as u64, "{j:#}");
    assert_eq!(o["decrypt_size_matches"], true, "{j:#}");
    assert_eq!(o["encrypt_format"], "LUKSv1", "{j:#}");
    let j = inspect_json(&env, &cinder.path);
    assert_eq!(j["openstack"]["key_id"], id_of(&s_cinder), "{j:#}");
    assert!(j["openstack"]["decrypt_size_matches"].is_null(), "{j:#}");
    let j = inspect_json(&env, &mismatch.path);
    assert_eq!(j["openstack"]["decrypt_size_matches"], false, "{j:#}");
    assert_eq!(j["openstack"]["os_decrypt_size"], cinder.plain.len() as u64 + 1024 * 1024, "{j:#}");
    assert!(j["warnings"].to_string().contains("os_decrypt_size"), "{j:#}");
    let text = util::run_timed(luksfs(&env, &[os("inspect"), mismatch.path.as_os_str()]), Duration::from_secs(60));
    let text = String::from_utf8_lossy(text.ok()).into_owned();
    assert!(text.contains("decrypt size matches: no") && text.contains(&wrong_size), "{text}");

    // one mount (application credential): sidecars, keytab barbican:<href>, --key-file
    let kt = lab.key(
        "keytab",
        format!("# IMAGE  KEY\nluks2/disk.img  barbican:{s_luks2}\nbad/forbidden.img  barbican:{s_admins}\n")
            .as_bytes(),
    );
    let m = OsMount::start(
        &lab,
        "mnt",
        &env,
        &["--os-cloud", "osk-appcred", "--keytab", p(&kt), "--key-file", p(&local.key), "-v"],
    );
    let want = [
        "bad/",
        "bad/forbidden.img.raw",
        "bad/missing.img.raw",
        "cinder/",
        "cinder/volume-1.img.raw",
        "local.luks.raw",
        "luks2/",
        "luks2/disk.img.raw",
        "size/",
        "size/mismatch.img.raw",
        "user/",
        "user/upload.qcow2.raw",
    ];
    assert_eq!(m.walk(), want, "the mount shows images only, no sidecars");
    m.check(&cinder, "cinder/volume-1.img.raw");
    m.check(&upload, "user/upload.qcow2.raw");
    m.check(&luks2, "luks2/disk.img.raw");
    m.check(&local, "local.luks.raw");
    m.check(&mismatch, "size/mismatch.img.raw");
    m.assert_errno("bad/missing.img.raw", libc::EACCES);
    m.assert_errno("bad/forbidden.img.raw", libc::EACCES);
    m.check(&cinder, "cinder/volume-1.img.raw");
    m.check(&luks2, "luks2/disk.img.raw");
    let log = m.log();
    assert!(log.contains("size/mismatch.img: the Glance sidecar says os_decrypt_size"), "{log}");
    assert!(log.contains("bad/missing.img") && log.contains(&missing) && log.contains("no such secret (404)"), "{log}");
    assert!(log.contains("bad/forbidden.img") && log.contains("forbidden (403)"), "{log}");
    let (hc, hl) = (hex(&k_cinder), hex(&k_luks2));
    let secrets = [osk.var("OS_APPLICATION_CREDENTIAL_SECRET"), osk.var("OSK_DEMO_PASSWORD"), &hc, &hl, &upload_pass];
    assert_no_secrets("the mount log", &log, &secrets);
}

/// Password (clouds.yaml and `OS_*`), application credential (`OS_*`) and token auth (`OS_TOKEN`,
/// and `OS_CLOUD` naming a token cloud) through `cat` and mounts; no credentials (exit 2);
/// a wrong password, a revoked token and a deleted application credential: `cat` exits 1, and in
/// a mount the Barbican image fails with EIO (class 1: the credentials, not this image's key, are
/// the problem) while the key-file image stays readable. No credential reaches the output.
#[test]
fn barbican_auth_types_and_bad_credentials() {
    let osk = osk!();
    need!("qemu-img", "fuse");
    let lab = Lab::new();
    let tok = osk.demo_token();
    let key = random_bytes(32);
    let sec = osk.store_symmetric(&tok, &key);
    let vol = lab.qemu_luks("vol.img", mark("auth", 256 * KIB), hex(&key).as_bytes(), "");
    sidecar_api(&vol.path, "raw", json!({"cinder_encryption_key_id": id_of(&sec)}));
    let local = lab.qemu_luks("local.luks", mark("auth-local", 64 * KIB), b"local key", "");
    let (ks, pid) = (osk.keystone.as_str(), osk.var("OSK_DEMO_PROJECT_ID"));
    let demo_pw = osk.var("OSK_DEMO_PASSWORD");

    // password: the harness's clouds.yaml, cloud osk-demo; the key id from the sidecar
    let harness = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    cat(&harness, &vol.path, &["--os-cloud", "osk-demo"]).assert_bytes(&vol.plain);
    // application credential: osk.env's OS_* variables, no cloud name, no cloud file
    let ac_vars: Vec<(&str, &str)> =
        osk.env.iter().filter(|(k, _)| k.starts_with("OS_")).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cat(&plus(bare_env(&lab), &ac_vars), &vol.path, &["--barbican-secret", id_of(&sec)]).assert_bytes(&vol.plain);
    // token: OS_TOKEN
    let token_env = |t: &str| {
        plus(
            bare_env(&lab),
            &[("OS_AUTH_URL", ks), ("OS_AUTH_TYPE", "v3token"), ("OS_TOKEN", t), ("OS_PROJECT_ID", pid)],
        )
    };
    cat(&token_env(&tok), &vol.path, &["--barbican-secret", &sec]).assert_bytes(&vol.plain);

    // no credentials at all: a usage error
    let out = cat(&bare_env(&lab), &vol.path, &["--barbican-secret", &sec]);
    out.assert_fails(2, &vol.path);
    assert!(out.stderr.contains("--os-cloud"), "{}", out.stderr);

    // bad credentials: exit 1, "unauthorized", the credential not echoed
    let bad_pw = "not-the-password-4711";
    let tok_cloud = yaml_cloud("tok", "v3token", &[("auth_url", ks), ("token", &tok), ("project_id", pid)], &[]);
    let clouds = write_clouds(&lab, &[osk.password_cloud("bad-password", "demo", bad_pw, None), tok_cloud]);
    let lab_env = clouds_env(&lab, &clouds);
    let out = cat(&lab_env, &vol.path, &["--os-cloud", "bad-password"]);
    out.assert_fails(1, &vol.path);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    assert_no_secrets("stderr", &out.stderr, &[bad_pw]);

    let revoked = osk.demo_token();
    osk.revoke_token(&revoked);
    let out = cat(&token_env(&revoked), &vol.path, &["--barbican-secret", &sec]);
    out.assert_fails(1, &vol.path);
    assert!(out.stderr.contains("unauthorized") && out.stderr.contains("not valid"), "{}", out.stderr);
    assert_no_secrets("stderr", &out.stderr, &[&revoked]);

    let (ac_id, ac_secret) = osk.create_demo_app_credential();
    let fresh = plus(
        bare_env(&lab),
        &[
            ("OS_AUTH_URL", ks),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", &ac_id),
            ("OS_APPLICATION_CREDENTIAL_SECRET", &ac_secret),
        ],
    );
    cat(&fresh, &vol.path, &["--barbican-secret", &sec]).assert_bytes(&vol.plain);
    osk.delete_demo_app_credential(&ac_id);
    let out = cat(&fresh, &vol.path, &["--barbican-secret", &sec]);
    out.assert_fails(1, &vol.path);
    // (Keystone answers 404 for an application credential it no longer has)
    assert!(out.stderr.contains("keystone at") && out.stderr.contains(id_of(&sec)), "{}", out.stderr);
    assert_no_secrets("stderr", &out.stderr, &[&ac_secret]);

    let key_file = ["--key-file", p(&local.key)];
    // mounts: token auth through OS_CLOUD naming a token cloud
    {
        let m = OsMount::start(&lab, "mnt-token", &plus(lab_env.clone(), &[("OS_CLOUD", "tok")]), &key_file);
        m.check(&vol, "vol.img.raw");
        m.check(&local, "local.luks.raw");
        assert_no_secrets("the mount log", &m.log(), &[&tok]);
    }
    // password auth through the OS_* variables (no cloud name)
    {
        let env = plus(
            bare_env(&lab),
            &[
                ("OS_AUTH_URL", ks),
                ("OS_USERNAME", "demo"),
                ("OS_PASSWORD", demo_pw),
                ("OS_PROJECT_NAME", "demo"),
                ("OS_USER_DOMAIN_NAME", "Default"),
                ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ],
        );
        let m = OsMount::start(&lab, "mnt-password", &env, &key_file);
        m.check(&vol, "vol.img.raw");
        m.check(&local, "local.luks.raw");
    }
    // a wrong password: the mount comes up, the Barbican image gives EIO, the other one works
    {
        let args = ["--os-cloud", "bad-password", "--key-file", p(&local.key)];
        let m = OsMount::start(&lab, "mnt-bad-password", &lab_env, &args);
        m.assert_errno("vol.img.raw", libc::EIO);
        m.check(&local, "local.luks.raw");
        let log = m.log();
        assert!(log.contains("vol.img") && log.contains("unauthorized"), "{log}");
        assert_no_secrets("the mount log", &log, &[bad_pw]);
    }
    // a revoked token: the same
    {
        let m = OsMount::start(&lab, "mnt-revoked", &token_env(&revoked), &key_file);
        m.assert_errno("vol.img.raw", libc::EIO);
        m.check(&local, "local.luks.raw");
    }
}

/// Barbican stops in the middle of a mount: images already unlocked keep working (their blocks
/// are decrypted after the stop: only their first 4 KiB were read before it, readahead capped at
/// 64K), an image whose secret was not fetched yet fails with EIO (key manager unreachable), and
/// the mount used one token for everything.
#[test]
fn barbican_stopped_mid_mount_unlocked_images_keep_working() {
    let osk = osk!();
    need!("qemu-img", "qemu-io", "fuse", "mkfifo");
    let lab = Lab::new();
    let tok = osk.demo_token();
    let ka = random_bytes(32);
    let sa = osk.store_symmetric(&tok, &ka);
    let pass_b = format!("stop test passphrase {}", &random_id()[..8]);
    let sb = osk.store_passphrase(&tok, &pass_b);
    let kc = random_bytes(32);
    let sc = osk.store_symmetric(&tok, &kc);
    let holds = hold_unlock_threads(&lab);
    let a = lab.qemu_luks("vols/a.img", mark("stop-a", 2 * MIB), hex(&ka).as_bytes(), "");
    sidecar_api(&a.path, "raw", json!({"cinder_encryption_key_id": id_of(&sa)}));
    let b = lab.qcow2("vols/b.qcow2", util::random("stop-b", 2 * MIB), pass_b.as_bytes(), "cluster_size=4096", &[]);
    let c = lab.qemu_luks("vols/c.img", mark("stop-c", 256 * KIB), hex(&kc).as_bytes(), "");
    sidecar_osc(&c.path, "raw", json!({"os_encrypt_key_id": id_of(&sc), "os_decrypt_size": c.plain.len().to_string()}));
    let kt = lab.key("keytab", format!("{holds}vols/b.qcow2 barbican:{}\n", id_of(&sb)).as_bytes());

    let mut extra = osk.extra_barbican();
    let clouds =
        write_clouds(&lab, &[osk.password_cloud("stoppable", "demo", osk.var("OSK_DEMO_PASSWORD"), Some(&extra.url))]);
    let args = ["--os-cloud", "stoppable", "--keytab", p(&kt), "--max-readahead", "64K", "-vv"];
    let m = OsMount::start(&lab, "mnt", &clouds_env(&lab, &clouds), &args);
    for (img, rel) in [(&a, "vols/a.img.raw"), (&b, "vols/b.qcow2.raw")] {
        let head = m.read_at(rel, 0, 4096).unwrap_or_else(|e| panic!("{rel}: {e}; log:\n{}", m.log()));
        assert_same(rel, &head, &img.plain[..4096]);
    }
    extra.stop();
    m.check(&a, "vols/a.img.raw");
    m.check(&b, "vols/b.qcow2.raw");
    m.assert_errno("vols/c.img.raw", libc::EIO);
    m.check(&a, "vols/a.img.raw");
    let log = m.log();
    assert!(log.contains("vols/c.img") && log.contains(id_of(&sc)) && log.contains("key manager unreachable"), "{log}");
    assert_eq!(count(&log, "keystone: POST"), 1, "one token for the whole mount:\n{log}");
    for s in [&sa, &sb] {
        assert_eq!(count(&log, &format!("Barbican secret {}: fetched", id_of(s))), 1, "{log}");
    }
    assert_no_secrets("the mount log", &log, &[osk.var("OSK_DEMO_PASSWORD"), &hex(&ka), &pass_b]);
}

/// The mount's token is revoked between two opens (the user's password is re-set) and Barbican
/// restarted (its token cache would otherwise accept the revoked token for 5 minutes): the second
/// open gets a 401, the mount re-authenticates once and the image opens.
#[test]
fn barbican_token_revoked_mid_mount_is_renewed() {
    let osk = osk!();
    need!("qemu-img", "cryptsetup", "fuse", "mkfifo");
    let lab = Lab::new();
    let name = format!("luksfs-mount-{}", &random_id()[..8]);
    let password = hex(&random_bytes(12));
    let uid = osk.create_member(&name, &password);
    let tok = osk.demo_token();
    let k1 = random_bytes(32);
    let s1 = osk.store_symmetric(&tok, &k1);
    let k2 = random_bytes(32);
    let s2 = osk.store_symmetric(&tok, &k2);
    let holds = hold_unlock_threads(&lab);
    let first = lab.qemu_luks("vols/first.img", mark("renew-1", 256 * KIB), hex(&k1).as_bytes(), "");
    sidecar_osc(&first.path, "raw", json!({"cinder_encryption_key_id": id_of(&s1)}));
    let second = lab.cs_luks2("vols/second.img", util::random("renew-2", 256 * KIB), hex(&k2).as_bytes(), &[]);
    sidecar_api(&second.path, "raw", json!({"os_encrypt_key_id": id_of(&s2)}));
    let kt = lab.key("keytab", holds.as_bytes());

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut barbican = osk.extra_barbican_at(port, &[]);
    let clouds = write_clouds(&lab, &[osk.password_cloud("renew", &name, &password, Some(&barbican.url))]);
    let m =
        OsMount::start(&lab, "mnt", &clouds_env(&lab, &clouds), &["--os-cloud", "renew", "--keytab", p(&kt), "-vv"]);
    m.check(&first, "vols/first.img.raw");
    assert_eq!(count(&m.log(), "keystone: POST"), 1, "{}", m.log());

    // a password change revokes every token of the user issued up to now (1 s granularity)
    osk.admin_req("PATCH", &format!("/users/{uid}"), Some(json!({"user": {"password": password}})));
    std::thread::sleep(Duration::from_millis(1100));
    barbican.stop();
    let _barbican = osk.extra_barbican_at(port, &[]);

    m.check(&second, "vols/second.img.raw");
    m.check(&first, "vols/first.img.raw");
    let log = m.log();
    assert_eq!(count(&log, "barbican: 401, re-authenticating"), 1, "{log}");
    assert_eq!(count(&log, "keystone: POST"), 2, "{log}");
    assert_no_secrets("the mount log", &log, &[&password, &hex(&k1), &hex(&k2)]);
}
