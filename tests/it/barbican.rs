//! The Barbican key manager against a REAL Keystone + Barbican (no mocks): `scripts/openstack-up.sh`
//! starts them once per test binary run into `$LUKSFS_OPENSTACK_DIR` (default: the cargo target
//! directory's `openstack/`) and leaves them running for the next run (warm start ~1-5 s; the
//! first, cold, run installs them from PyPI in ~45-75 s). Stop them with
//! `scripts/openstack-down.sh target/openstack`.
//!
//! If they can't be started the tests print `SKIPPED: ...` and pass, except under `CI=true`.
//!
//! Other modules can reuse [`harness`] and the REST helpers ([`Osk::store_symmetric`],
//! [`Osk::store_passphrase`], [`Osk::clouds_env`]) for image-level tests.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use luksfs::ErrorKind;
use luksfs::keys::barbican::{KeyManager, Options};
use luksfs::keys::clouds::{self, CloudConfig};

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

fn start() -> Result<Osk, String> {
    let dir = harness_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openstack-up.sh");
    let log = dir.join("up.log");
    let t = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    let _ = std::fs::write(&log, &text);
    if !out.status.success() {
        let text = String::from_utf8_lossy(&text);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{} {} failed ({}):\n{}", script.display(), dir.display(), out.status, tail.join("\n")));
    }
    eprintln!("OpenStack harness up in {:.1}s ({})", t.elapsed().as_secs_f32(), dir.display());
    let envfile = std::fs::read_to_string(dir.join("osk.env")).map_err(|e| format!("osk.env: {e}"))?;
    let env: HashMap<String, String> = envfile
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| env.get(k).cloned().ok_or_else(|| format!("osk.env lacks {k}"));
    Ok(Osk { keystone: get("OSK_KEYSTONE_URL")?, barbican: get("OSK_BARBICAN_URL")?, dir, env })
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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A random UUID-shaped id (for secrets that don't exist, names).
fn random_id() -> String {
    let h = hex(&random_bytes(16));
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl Osk {
    fn var(&self, k: &str) -> &str {
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

    fn admin_req(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
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
            if let Ok(r) = probe.get(format!("{}/", extra.url)).call() {
                if matches!(r.status().as_u16(), 200 | 300 | 401) {
                    break;
                }
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

fn id_of(href: &str) -> &str {
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
