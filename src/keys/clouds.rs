//! OpenStack credentials, resolved the way openstackclient does: a named cloud from `clouds.yaml`
//! (merged with `secure.yaml`), or the `OS_*` environment variables.
//!
//! # Where things come from
//! - The cloud name: `--os-cloud NAME` (passed in as `os_cloud`), else `OS_CLOUD`.
//! - With a cloud name: the first existing `clouds.yaml`/`clouds.yml`/`clouds.json` of
//!   `$OS_CLIENT_CONFIG_FILE`, `./`, `$XDG_CONFIG_HOME/openstack/`, `~/.config/openstack/`,
//!   `/etc/openstack/`; the first existing `secure.yaml`/`.yml`/`.json` of
//!   `$OS_CLIENT_SECURE_FILE` and the same directories is deep-merged over it (secure wins).
//!   `OS_*` variables only fill keys the cloud leaves out (e.g. `OS_PASSWORD` kept out of the
//!   file). Unlike openstacksdk, they never override the file: that is what makes
//!   `OS_CLOUD=a` plus another credential's `OS_APPLICATION_CREDENTIAL_*` break there.
//! - Without a cloud name: the `OS_*` variables alone (`OS_AUTH_URL` must be set).
//!
//! # Keys
//! `auth_type` (`OS_AUTH_TYPE`): `password`/`v3password`, `v3applicationcredential`
//! (also `applicationcredential`, `application_credential`), `token`/`v3token`; when absent it is
//! `token` if a token is given, `v3applicationcredential` if an application credential secret is,
//! else `password`. `auth:` (auth keys are also accepted at the cloud's top level, as openstacksdk
//! does): `auth_url`, `username`, `user_id`, `password`, `project_name` (`tenant_name`),
//! `project_id` (`tenant_id`), `user_domain_name`/`_id`, `project_domain_name`/`_id`,
//! `domain_name`/`_id` (with a project: the default for the user and project domains, as in
//! openstacksdk; without: a domain scope), `default_domain_name`/`_id`,
//! `application_credential_id`/`_name`/`_secret`, `token`. Top level: `region_name` (or the first
//! of `regions`), `interface` (`endpoint_type`; `publicURL` = `public`; default `public`),
//! `cacert`, `verify: false` / `insecure: true`, `key_manager_endpoint_override` (or
//! `key_manager_endpoint`), `image_endpoint_override` (Glance, for `glance://`),
//! `block_storage_endpoint_override` (Cinder, for `luksfs audit`). Each has its
//! `OS_*` variable: the key upper-cased with `OS_` in front (`OS_KEY_MANAGER_ENDPOINT` too).
//!
//! Not supported: `profile` (vendor defaults), `auth_type`s other than the three above, client
//! certificates (`cert`/`key`), system scope.
//!
//! [`resolve`] is pure (environment as a map, file contents as strings) and unit-tested; [`load`]
//! reads the real environment and files. Errors are [`ErrorKind::Usage`](crate::ErrorKind::Usage)
//! and name the file (or `OS_*` variable) and the missing or bad key. Passwords, application
//! credential secrets and tokens are held as [`Secret`] (redacted `Debug`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::Secret;
use crate::error::Error;

/// How to authenticate to Keystone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `password`: a user (by id, or by name and domain) and a password.
    Password {
        /// The user.
        user: UserRef,
        /// The password.
        password: Secret,
    },
    /// `v3applicationcredential`: by credential id, or by name plus its user.
    ApplicationCredential {
        /// Credential id (preferred).
        id: Option<String>,
        /// Credential name (needs `user`).
        name: Option<String>,
        /// The owner, when the credential is given by name.
        user: Option<UserRef>,
        /// The credential secret.
        secret: Secret,
    },
    /// `token`: an existing Keystone token, exchanged for a (re)scoped one, like keystoneauth's
    /// `v3token`. Renewal re-uses it, so it works until that token expires or is revoked.
    Token {
        /// The token.
        token: Secret,
    },
}

impl Auth {
    /// The `auth_type` name as written in clouds.yaml.
    pub fn type_name(&self) -> &'static str {
        match self {
            Auth::Password { .. } => "password",
            Auth::ApplicationCredential { .. } => "v3applicationcredential",
            Auth::Token { .. } => "token",
        }
    }
}

/// Something Keystone knows by id or by name (a domain, or the domain part of a user/project).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdOrName {
    /// Id (wins over the name when both are given).
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
}

impl IdOrName {
    fn new(id: Option<String>, name: Option<String>) -> Option<Self> {
        (id.is_some() || name.is_some()).then_some(IdOrName { id, name })
    }
}

/// A user: by id, or by name within a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    /// User id and/or name.
    pub user: IdOrName,
    /// The user's domain (needed with a name).
    pub domain: Option<IdOrName>,
}

/// What the token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A project: by id, or by name within a domain.
    Project {
        /// Project id and/or name.
        project: IdOrName,
        /// The project's domain (needed with a name).
        domain: Option<IdOrName>,
    },
    /// A domain.
    Domain(IdOrName),
}

/// Resolved settings for talking to Keystone and Barbican.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudConfig {
    /// Where the settings came from, for messages: `cloud 'x' in /p/clouds.yaml` or
    /// `the OS_* environment`.
    pub source: String,
    /// Keystone URL, e.g. `https://keystone.example:5000/v3` (a missing `/v3` is added when
    /// authenticating).
    pub auth_url: String,
    /// Credentials.
    pub auth: Auth,
    /// Scope for password and token auth (application credentials carry their own).
    pub scope: Option<Scope>,
    /// Region to pick the endpoint from; any region when `None`.
    pub region_name: Option<String>,
    /// Endpoint interface: `public` (default), `internal` or `admin`.
    pub interface: String,
    /// PEM file with the CA certificates to trust instead of the built-in roots.
    pub cacert: Option<PathBuf>,
    /// Skip TLS certificate verification (`OS_INSECURE`, `verify: false`).
    pub insecure: bool,
    /// Barbican URL to use instead of the catalog's `key-manager` endpoint.
    pub key_manager_endpoint: Option<String>,
    /// Glance URL to use instead of the catalog's `image` endpoint.
    pub image_endpoint: Option<String>,
    /// Cinder URL (v3, with or without the project id) to use instead of the catalog's
    /// `block-storage` / `volumev3` endpoint.
    pub block_storage_endpoint: Option<String>,
}

/// Configuration files found by [`load`]: `(path, contents)`.
#[derive(Default)]
pub struct Files {
    /// The `clouds.yaml` in use.
    pub clouds: Option<(PathBuf, Zeroizing<String>)>,
    /// The `secure.yaml` in use.
    pub secure: Option<(PathBuf, Zeroizing<String>)>,
    /// Every `clouds.*` path looked at, for "not found" messages.
    pub searched: Vec<PathBuf>,
}

/// Auth keys: (clouds.yaml key, environment variable).
const AUTH_KEYS: &[(&str, &str)] = &[
    ("auth_url", "OS_AUTH_URL"),
    ("username", "OS_USERNAME"),
    ("user_id", "OS_USER_ID"),
    ("password", "OS_PASSWORD"),
    ("project_name", "OS_PROJECT_NAME"),
    ("project_id", "OS_PROJECT_ID"),
    ("tenant_name", "OS_TENANT_NAME"),
    ("tenant_id", "OS_TENANT_ID"),
    ("user_domain_name", "OS_USER_DOMAIN_NAME"),
    ("user_domain_id", "OS_USER_DOMAIN_ID"),
    ("project_domain_name", "OS_PROJECT_DOMAIN_NAME"),
    ("project_domain_id", "OS_PROJECT_DOMAIN_ID"),
    ("domain_name", "OS_DOMAIN_NAME"),
    ("domain_id", "OS_DOMAIN_ID"),
    ("default_domain_name", "OS_DEFAULT_DOMAIN_NAME"),
    ("default_domain_id", "OS_DEFAULT_DOMAIN_ID"),
    ("application_credential_id", "OS_APPLICATION_CREDENTIAL_ID"),
    ("application_credential_name", "OS_APPLICATION_CREDENTIAL_NAME"),
    ("application_credential_secret", "OS_APPLICATION_CREDENTIAL_SECRET"),
    ("token", "OS_TOKEN"),
];

/// Cloud-level keys: (clouds.yaml key, environment variables).
const TOP_KEYS: &[(&str, &[&str])] = &[
    ("auth_type", &["OS_AUTH_TYPE"]),
    ("region_name", &["OS_REGION_NAME"]),
    ("interface", &["OS_INTERFACE"]),
    ("endpoint_type", &["OS_ENDPOINT_TYPE"]),
    ("cacert", &["OS_CACERT"]),
    ("insecure", &["OS_INSECURE"]),
    ("verify", &[]),
    ("key_manager_endpoint_override", &["OS_KEY_MANAGER_ENDPOINT_OVERRIDE", "OS_KEY_MANAGER_ENDPOINT"]),
    ("key_manager_endpoint", &[]),
    ("image_endpoint_override", &["OS_IMAGE_ENDPOINT_OVERRIDE"]),
    ("block_storage_endpoint_override", &["OS_BLOCK_STORAGE_ENDPOINT_OVERRIDE"]),
];

fn env_name(key: &str) -> Option<&'static str> {
    AUTH_KEYS.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
}

/// Flattened settings with their provenance, before typing.
struct Raw {
    /// Set when a cloud from a file is used.
    cloud: Option<(String, PathBuf)>,
    source: String,
    auth: BTreeMap<&'static str, Zeroizing<String>>,
    top: BTreeMap<&'static str, String>,
}

impl Raw {
    fn get(&self, key: &str) -> Option<&str> {
        self.auth.get(key).map(|s| s.as_str())
    }
    fn take(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }
    /// How to name `key` in a message: `auth.password in /x/clouds.yaml (or OS_PASSWORD)` or
    /// `OS_PASSWORD`.
    fn describe(&self, key: &str) -> String {
        let env = env_name(key).unwrap_or("?");
        match &self.cloud {
            Some(_) => format!("auth.{key} (or {env})"),
            None => env.to_string(),
        }
    }
    fn missing(&self, what: &str) -> Error {
        Error::usage(format!("{}: {what} is missing", self.source))
    }
}

fn env_get<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|s| s.as_str()).filter(|s| !s.is_empty())
}

/// Resolve credentials from a cloud name (`os_cloud`, else `OS_CLOUD`), the environment and the
/// files' contents. Pure: no I/O.
pub fn resolve(os_cloud: Option<&str>, env: &HashMap<String, String>, files: &Files) -> Result<CloudConfig, Error> {
    let cloud_name = os_cloud.filter(|s| !s.is_empty()).or_else(|| env_get(env, "OS_CLOUD"));
    let mut raw = match cloud_name {
        Some(name) => from_files(name, files)?,
        None => {
            if env_get(env, "OS_AUTH_URL").is_none() {
                return Err(Error::usage(
                    "no OpenStack credentials: pass --os-cloud NAME, set OS_CLOUD, or set OS_AUTH_URL and the other \
                     OS_* variables",
                ));
            }
            Raw { cloud: None, source: "the OS_* environment".into(), auth: BTreeMap::new(), top: BTreeMap::new() }
        }
    };
    // the environment fills what the cloud leaves out
    for (key, var) in AUTH_KEYS {
        if !raw.auth.contains_key(key)
            && let Some(v) = env_get(env, var)
        {
            raw.auth.insert(key, Zeroizing::new(v.to_string()));
        }
    }
    for (key, vars) in TOP_KEYS {
        if !raw.top.contains_key(key)
            && let Some(v) = vars.iter().find_map(|var| env_get(env, var))
        {
            raw.top.insert(key, v.to_string());
        }
    }
    build(raw)
}

/// Parse `text` (YAML or JSON) as a clouds/secure file.
fn parse_file(path: &Path, text: &str) -> Result<Map<String, Value>, Error> {
    let v: Value = yaml_serde::from_str(text)
        .map_err(|e| Error::usage(format!("{}: not a valid clouds file: {e}", path.display())))?;
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(Error::usage(format!("{}: not a valid clouds file: expected a mapping", path.display()))),
    }
}

/// Deep-merge `over` into `base` (objects recursively; anything else replaced).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn scalar(v: &Value, what: impl FnOnce() -> String) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(Error::usage(format!("{} must be a string", what()))),
    }
}

fn from_files(name: &str, files: &Files) -> Result<Raw, Error> {
    let Some((path, text)) = &files.clouds else {
        let looked: Vec<String> = files.searched.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::usage(format!(
            "cloud '{name}' requested but no clouds.yaml found (looked at {})",
            if looked.is_empty() { "nothing".to_string() } else { looked.join(", ") }
        )));
    };
    let mut doc = Value::Object(parse_file(path, text)?);
    let mut source = format!("cloud '{name}' in {}", path.display());
    if let Some((spath, stext)) = &files.secure {
        let sec = parse_file(spath, stext)?;
        if sec.get("clouds").and_then(|c| c.get(name)).is_some() {
            source.push_str(&format!(" + {}", spath.display()));
        }
        merge(&mut doc, &Value::Object(sec));
    }
    let clouds = match doc.get("clouds") {
        Some(Value::Object(c)) => c,
        _ => return Err(Error::usage(format!("{}: no 'clouds:' mapping", path.display()))),
    };
    let Some(cloud) = clouds.get(name) else {
        let have: Vec<&str> = clouds.keys().map(|s| s.as_str()).collect();
        return Err(Error::usage(format!(
            "{}: no cloud '{name}' (clouds: {})",
            path.display(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        )));
    };
    let Value::Object(cloud) = cloud else {
        return Err(Error::usage(format!("{}: cloud '{name}' is not a mapping", path.display())));
    };
    if cloud.contains_key("profile") {
        log::warn!("{source}: 'profile' (vendor defaults) is not supported and is ignored");
    }
    let mut raw =
        Raw { cloud: Some((name.to_string(), path.clone())), source, auth: BTreeMap::new(), top: BTreeMap::new() };
    let auth = match cloud.get("auth") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => return Err(Error::usage(format!("{}: 'auth' must be a mapping", raw.source))),
    };
    for (key, _) in AUTH_KEYS {
        // auth: wins over the same key at the cloud's top level (openstacksdk moves those in)
        let v = auth.get(*key).or_else(|| cloud.get(*key));
        if let Some(v) = v
            && let Some(s) = scalar(v, || format!("{}: auth.{key}", raw.source))?
        {
            raw.auth.insert(key, Zeroizing::new(s));
        }
    }
    for (key, _) in TOP_KEYS {
        if let Some(v) = cloud.get(*key)
            && let Some(s) = scalar(v, || format!("{}: {key}", raw.source))?
        {
            raw.top.insert(key, s);
        }
    }
    if !raw.top.contains_key("region_name")
        && let Some(Value::Array(regions)) = cloud.get("regions")
    {
        let first = regions.first().map(|r| match r {
            Value::Object(m) => m.get("name").cloned().unwrap_or(Value::Null),
            other => other.clone(),
        });
        if let Some(r) = first
            && let Some(s) = scalar(&r, || format!("{}: regions", raw.source))?
        {
            raw.top.insert("region_name", s);
        }
    }
    Ok(raw)
}

fn parse_bool(s: &str, what: &str, source: &str) -> Result<bool, Error> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(Error::usage(format!("{source}: {what} must be true or false, not {s:?}"))),
    }
}

fn build(raw: Raw) -> Result<CloudConfig, Error> {
    let source = raw.source.clone();
    let auth_url = raw.take("auth_url").ok_or_else(|| raw.missing(&raw.describe("auth_url")))?;

    let auth_type = match raw.top.get("auth_type").map(|s| s.as_str()) {
        Some(t) => t.to_string(),
        None if raw.get("token").is_some() => "token".into(),
        None if raw.get("application_credential_secret").is_some() => "v3applicationcredential".into(),
        None => "password".into(),
    };

    // domain_name/domain_id: with a project, the default for user and project domains
    // (openstacksdk's _handle_domain_id); without one, a domain scope.
    let project_id = raw.take("project_id").or(raw.take("tenant_id"));
    let project_name = raw.take("project_name").or(raw.take("tenant_name"));
    let project_scoped = project_id.is_some() || project_name.is_some();
    let (dom_id, dom_name) = (raw.take("domain_id"), raw.take("domain_name"));
    let (def_id, def_name) = (raw.take("default_domain_id"), raw.take("default_domain_name"));
    let fill = |id: Option<String>, name: Option<String>| -> Option<IdOrName> {
        IdOrName::new(id, name)
            .or_else(|| if project_scoped { IdOrName::new(dom_id.clone(), dom_name.clone()) } else { None })
            .or_else(|| IdOrName::new(def_id.clone(), def_name.clone()))
    };
    let user_domain = fill(raw.take("user_domain_id"), raw.take("user_domain_name"));
    let project_domain = fill(raw.take("project_domain_id"), raw.take("project_domain_name"));

    let scope = if project_scoped {
        if project_id.is_none() && project_domain.is_none() {
            return Err(raw.missing(&format!(
                "the project's domain ({} or {}, or domain_name) for project_name",
                raw.describe("project_domain_name"),
                raw.describe("project_domain_id")
            )));
        }
        Some(Scope::Project { project: IdOrName { id: project_id, name: project_name }, domain: project_domain })
    } else {
        IdOrName::new(dom_id.clone(), dom_name.clone()).map(Scope::Domain)
    };

    let user = || -> Result<UserRef, Error> {
        let user = IdOrName::new(raw.take("user_id"), raw.take("username"))
            .ok_or_else(|| raw.missing(&format!("{} or {}", raw.describe("username"), raw.describe("user_id"))))?;
        if user.id.is_none() && user_domain.is_none() {
            return Err(raw.missing(&format!(
                "the user's domain ({} or {}, or domain_name) for username",
                raw.describe("user_domain_name"),
                raw.describe("user_domain_id")
            )));
        }
        Ok(UserRef { user, domain: user_domain.clone() })
    };
    let secret = |key: &str| -> Result<Secret, Error> {
        raw.get(key).map(|s| Secret::from_slice(s.as_bytes())).ok_or_else(|| raw.missing(&raw.describe(key)))
    };

    let (auth, scope) = match auth_type.as_str() {
        "password" | "v3password" => (Auth::Password { user: user()?, password: secret("password")? }, scope),
        "v3applicationcredential" | "applicationcredential" | "application_credential" => {
            let id = raw.take("application_credential_id");
            let name = raw.take("application_credential_name");
            let user = match (&id, &name) {
                (Some(_), _) => None,
                (None, Some(_)) => Some(user()?),
                (None, None) => {
                    return Err(raw.missing(&format!(
                        "{} or {}",
                        raw.describe("application_credential_id"),
                        raw.describe("application_credential_name")
                    )));
                }
            };
            let secret = secret("application_credential_secret")?;
            // an application credential is bound to its project: Keystone refuses a scope
            (Auth::ApplicationCredential { id, name, user, secret }, None)
        }
        "token" | "v3token" => (Auth::Token { token: secret("token")? }, scope),
        other => {
            return Err(Error::usage(format!(
                "{source}: auth_type '{other}' is not supported (use password, v3applicationcredential or token)"
            )));
        }
    };

    let interface = raw
        .top
        .get("interface")
        .or(raw.top.get("endpoint_type"))
        .map(|s| s.trim_end_matches("URL").to_ascii_lowercase())
        .unwrap_or_else(|| "public".into());
    if !matches!(interface.as_str(), "public" | "internal" | "admin") {
        return Err(Error::usage(format!("{source}: interface '{interface}' is not one of public, internal, admin")));
    }
    let mut insecure = match raw.top.get("insecure") {
        Some(s) => parse_bool(s, "insecure", &source)?,
        None => false,
    };
    if let Some(v) = raw.top.get("verify") {
        insecure |= !parse_bool(v, "verify", &source)?;
    }
    let cacert = raw.top.get("cacert").map(PathBuf::from);
    let key_manager_endpoint =
        raw.top.get("key_manager_endpoint_override").or(raw.top.get("key_manager_endpoint")).cloned();

    Ok(CloudConfig {
        source,
        auth_url,
        auth,
        scope,
        region_name: raw.top.get("region_name").cloned(),
        interface,
        cacert,
        insecure,
        key_manager_endpoint,
        image_endpoint: raw.top.get("image_endpoint_override").cloned(),
        block_storage_endpoint: raw.top.get("block_storage_endpoint_override").cloned(),
    })
}

/// Candidate paths of `clouds.*` and `secure.*`, in search order. `env` needs `OS_CLIENT_CONFIG_FILE`,
/// `OS_CLIENT_SECURE_FILE`, `XDG_CONFIG_HOME` and `HOME` when set.
pub fn search_paths(env: &HashMap<String, String>, cwd: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs = vec![cwd.to_path_buf()];
    if let Some(x) = env_get(env, "XDG_CONFIG_HOME") {
        dirs.push(Path::new(x).join("openstack"));
    }
    if let Some(h) = env_get(env, "HOME") {
        dirs.push(Path::new(h).join(".config/openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    let mut uniq: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if !uniq.contains(&d) {
            uniq.push(d);
        }
    }
    let list = |var: &str, stem: &str| {
        let mut v: Vec<PathBuf> = env_get(env, var).map(PathBuf::from).into_iter().collect();
        for d in &uniq {
            for ext in ["yaml", "yml", "json"] {
                v.push(d.join(format!("{stem}.{ext}")));
            }
        }
        v
    };
    (list("OS_CLIENT_CONFIG_FILE", "clouds"), list("OS_CLIENT_SECURE_FILE", "secure"))
}

/// The process environment as a map (non-UTF-8 variables are skipped).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

fn read_first(paths: &[PathBuf]) -> Result<Option<(PathBuf, Zeroizing<String>)>, Error> {
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(s) => {
                log::debug!("using OpenStack config {}", p.display());
                return Ok(Some((p.clone(), Zeroizing::new(s))));
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => {}
            Err(e) => return Err(Error::usage(format!("{}: cannot read: {e}", p.display()))),
        }
    }
    Ok(None)
}

/// Resolve credentials from the real environment and files: `os_cloud` is `--os-cloud`, if
/// given. The files are read only when a cloud is named.
pub fn load(os_cloud: Option<&str>) -> Result<CloudConfig, Error> {
    load_with_env(os_cloud, &process_env())
}

/// [`load`] with an explicit environment (files are still read from disk).
pub fn load_with_env(os_cloud: Option<&str>, env: &HashMap<String, String>) -> Result<CloudConfig, Error> {
    let named = os_cloud.filter(|s| !s.is_empty()).is_some() || env_get(env, "OS_CLOUD").is_some();
    let mut files = Files::default();
    if named {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let (clouds, secure) = search_paths(env, &cwd);
        files.clouds = read_first(&clouds)?;
        if files.clouds.is_some() {
            files.secure = read_first(&secure)?;
        }
        files.searched = clouds;
    }
    let cfg = resolve(os_cloud, env, &files)?;
    log::debug!(
        "OpenStack credentials from {}: auth_type {}, auth_url {}, region {:?}, interface {}",
        cfg.source,
        cfg.auth.type_name(),
        cfg.auth_url,
        cfg.region_name,
        cfg.interface
    );
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn files(clouds: &str, secure: Option<&str>) -> Files {
        Files {
            clouds: Some((PathBuf::from("/cfg/clouds.yaml"), Zeroizing::new(clouds.to_string()))),
            secure: secure.map(|s| (PathBuf::from("/cfg/secure.yaml"), Zeroizing::new(s.to_string()))),
            searched: vec![PathBuf::from("/cfg/clouds.yaml")],
        }
    }

    const CLOUDS: &str = r#"
clouds:
  osk-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://127.0.0.1:5000/v3
      application_credential_id: b9342b20587e414fa36aa09f8537dee1
      application_credential_secret: s3cr3t-appcred
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  osk-demo:
    auth_type: password
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: demo
      password: pw-demo
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
  osk-token:
    auth_type: token
    auth:
      auth_url: http://127.0.0.1:5000/v3
      token: gAAAAAtoken
      project_id: 94dfdeec377141b9aee5930a38f7b412
  nopass:
    auth:
      auth_url: https://ks.example/v3
      username: alice
      project_name: p
      domain_name: Users
    regions: [RegionTwo, RegionThree]
    verify: false
    cacert: /etc/ssl/ca.pem
    key_manager_endpoint_override: https://barbican.example:9311
"#;

    #[test]
    fn password_cloud() {
        let c = resolve(Some("osk-demo"), &env(&[]), &files(CLOUDS, None)).unwrap();
        assert_eq!(c.source, "cloud 'osk-demo' in /cfg/clouds.yaml");
        assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
        let Auth::Password { user, password } = &c.auth else { panic!("{c:?}") };
        assert_eq!(user.user.name.as_deref(), Some("demo"));
        assert_eq!(user.domain, Some(IdOrName { id: None, name: Some("Default".into()) }));
        assert_eq!(password.as_bytes(), b"pw-demo");
        assert_eq!(
            c.scope,
            Some(Scope::Project {
                project: IdOrName { id: None, name: Some("demo".into()) },
                domain: Some(IdOrName { id: None, name: Some("Default".into()) })
            })
        );
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, "public");
        assert!(!c.insecure);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pw-demo"), "{dbg}");
    }

    #[test]
    fn appcred_cloud_has_no_scope() {
        let c = resolve(None, &env(&[("OS_CLOUD", "osk-appcred")]), &files(CLOUDS, None)).unwrap();
        let Auth::ApplicationCredential { id, name, user, secret } = &c.auth else { panic!() };
        assert_eq!(id.as_deref(), Some("b9342b20587e414fa36aa09f8537dee1"));
        assert_eq!((name, user), (&None, &None));
        assert_eq!(secret.as_bytes(), b"s3cr3t-appcred");
        assert_eq!(c.scope, None);
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn token_cloud() {
        let c = resolve(Some("osk-token"), &env(&[]), &files(CLOUDS, None)).unwrap();
        assert_eq!(c.auth, Auth::Token { token: Secret::from_slice(b"gAAAAAtoken") });
        assert!(matches!(&c.scope, Some(Scope::Project { project, domain: None })
            if project.id.as_deref() == Some("94dfdeec377141b9aee5930a38f7b412")));
    }

    #[test]
    fn secure_yaml_merges_and_env_fills_gaps_only() {
        let secure = "clouds:\n  nopass:\n    auth:\n      password: from-secure\n";
        let e = env(&[("OS_PASSWORD", "from-env"), ("OS_REGION_NAME", "Ignored"), ("OS_USERNAME", "bob")]);
        let c = resolve(Some("nopass"), &e, &files(CLOUDS, Some(secure))).unwrap();
        assert_eq!(c.source, "cloud 'nopass' in /cfg/clouds.yaml + /cfg/secure.yaml");
        let Auth::Password { user, password } = &c.auth else { panic!() };
        assert_eq!(password.as_bytes(), b"from-secure");
        assert_eq!(user.user.name.as_deref(), Some("alice"));
        // domain_name with a project: the default for both domains
        assert_eq!(user.domain.as_ref().unwrap().name.as_deref(), Some("Users"));
        assert!(matches!(&c.scope, Some(Scope::Project { domain: Some(d), .. }) if d.name.as_deref() == Some("Users")));
        assert_eq!(c.region_name.as_deref(), Some("RegionTwo"));
        assert!(c.insecure);
        assert_eq!(c.cacert, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert_eq!(c.key_manager_endpoint.as_deref(), Some("https://barbican.example:9311"));
        assert_eq!(c.image_endpoint, None);

        // without secure.yaml the password comes from OS_PASSWORD
        let c = resolve(Some("nopass"), &e, &files(CLOUDS, None)).unwrap();
        let Auth::Password { password, .. } = &c.auth else { panic!() };
        assert_eq!(password.as_bytes(), b"from-env");
    }

    #[test]
    fn env_only_password() {
        let e = env(&[
            ("OS_AUTH_URL", "https://ks.example:5000/v3"),
            ("OS_USERNAME", "demo"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_NAME", "demo"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_ID", "default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_INTERFACE", "internalURL"),
            ("OS_CACERT", "/ca.pem"),
            ("OS_INSECURE", "False"),
            ("OS_KEY_MANAGER_ENDPOINT", "https://b:9311"),
            ("OS_IMAGE_ENDPOINT_OVERRIDE", "https://g:9292"),
            ("OS_BLOCK_STORAGE_ENDPOINT_OVERRIDE", "https://c:8776/v3"),
        ]);
        let c = resolve(None, &e, &Files::default()).unwrap();
        assert_eq!(c.source, "the OS_* environment");
        assert_eq!(c.interface, "internal");
        assert!(!c.insecure);
        assert_eq!(c.cacert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(c.key_manager_endpoint.as_deref(), Some("https://b:9311"));
        assert_eq!(c.image_endpoint.as_deref(), Some("https://g:9292"));
        assert_eq!(c.block_storage_endpoint.as_deref(), Some("https://c:8776/v3"));
        assert!(matches!(&c.scope, Some(Scope::Project { domain: Some(d), .. }) if d.id.as_deref() == Some("default")));
    }

    #[test]
    fn env_only_appcred_by_name_and_token_inferred() {
        let e = env(&[
            ("OS_AUTH_URL", "http://ks/v3"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "sec"),
            ("OS_USER_ID", "u1"),
        ]);
        let c = resolve(None, &e, &Files::default()).unwrap();
        let Auth::ApplicationCredential { id: None, name: Some(n), user: Some(u), .. } = &c.auth else { panic!() };
        assert_eq!((n.as_str(), u.user.id.as_deref()), ("ac", Some("u1")));

        let e = env(&[("OS_AUTH_URL", "http://ks/v3"), ("OS_TOKEN", "tok"), ("OS_PROJECT_ID", "p")]);
        let c = resolve(None, &e, &Files::default()).unwrap();
        assert_eq!(c.auth.type_name(), "token");

        let e = env(&[
            ("OS_AUTH_URL", "http://ks/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "i"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ]);
        assert_eq!(resolve(None, &e, &Files::default()).unwrap().auth.type_name(), "v3applicationcredential");
    }

    #[test]
    fn domain_without_project_is_domain_scope() {
        let e =
            env(&[("OS_AUTH_URL", "http://ks/v3"), ("OS_USER_ID", "u"), ("OS_PASSWORD", "p"), ("OS_DOMAIN_NAME", "D")]);
        let c = resolve(None, &e, &Files::default()).unwrap();
        assert_eq!(c.scope, Some(Scope::Domain(IdOrName { id: None, name: Some("D".into()) })));
    }

    fn usage_err(r: Result<CloudConfig, Error>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        e.to_string()
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let m = usage_err(resolve(None, &env(&[]), &Files::default()));
        assert!(m.contains("--os-cloud") && m.contains("OS_AUTH_URL"), "{m}");

        let m = usage_err(resolve(Some("nope"), &env(&[]), &files(CLOUDS, None)));
        assert!(m.contains("/cfg/clouds.yaml") && m.contains("'nope'") && m.contains("osk-demo"), "{m}");

        let m = usage_err(resolve(
            Some("x"),
            &env(&[]),
            &Files { searched: vec!["/a/clouds.yaml".into()], ..Files::default() },
        ));
        assert!(m.contains("no clouds.yaml found") && m.contains("/a/clouds.yaml"), "{m}");

        let m = usage_err(resolve(Some("nopass"), &env(&[]), &files(CLOUDS, None)));
        assert!(m.contains("/cfg/clouds.yaml") && m.contains("auth.password") && m.contains("OS_PASSWORD"), "{m}");

        let m = usage_err(resolve(
            None,
            &env(&[("OS_AUTH_URL", "u"), ("OS_USERNAME", "a"), ("OS_PASSWORD", "p")]),
            &Files::default(),
        ));
        assert!(m.contains("OS_USER_DOMAIN_NAME") && m.contains("OS_* environment"), "{m}");

        let m = usage_err(resolve(
            None,
            &env(&[("OS_AUTH_URL", "u"), ("OS_AUTH_TYPE", "v3oidcpassword")]),
            &Files::default(),
        ));
        assert!(m.contains("v3oidcpassword") && m.contains("not supported"), "{m}");

        let m = usage_err(resolve(None, &env(&[("OS_AUTH_URL", "u"), ("OS_AUTH_TYPE", "token")]), &Files::default()));
        assert!(m.contains("OS_TOKEN is missing"), "{m}");

        let m = usage_err(resolve(
            None,
            &env(&[("OS_AUTH_URL", "u"), ("OS_TOKEN", "t"), ("OS_INSECURE", "maybe")]),
            &Files::default(),
        ));
        assert!(m.contains("insecure"), "{m}");

        let bad = "clouds:\n  c:\n    auth:\n      auth_url: [1, 2]\n";
        let m = usage_err(resolve(Some("c"), &env(&[]), &files(bad, None)));
        assert!(m.contains("auth.auth_url must be a string"), "{m}");

        let m = usage_err(resolve(Some("c"), &env(&[]), &files("clouds: [\n", None)));
        assert!(m.contains("/cfg/clouds.yaml: not a valid clouds file"), "{m}");

        let m = usage_err(resolve(Some("osk-demo"), &env(&[]), &files(CLOUDS, Some("clouds: 3"))));
        assert!(m.contains("no 'clouds:' mapping"), "{m}");
    }

    #[test]
    fn json_clouds_file_and_top_level_auth_keys() {
        let j = r#"{"clouds": {"j": {"auth_url": "http://ks/v3", "username": "u", "user_domain_id": "default",
                    "password": 1234, "project_id": "p"}}}"#;
        let c = resolve(Some("j"), &env(&[]), &files(j, None)).unwrap();
        let Auth::Password { password, .. } = &c.auth else { panic!() };
        assert_eq!(password.as_bytes(), b"1234");
    }

    #[test]
    fn search_order() {
        let e = env(&[("OS_CLIENT_CONFIG_FILE", "/x/my.yaml"), ("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/xdg")]);
        let (c, s) = search_paths(&e, Path::new("/cwd"));
        let c: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(c[0], "/x/my.yaml");
        assert_eq!(&c[1..4], ["/cwd/clouds.yaml", "/cwd/clouds.yml", "/cwd/clouds.json"]);
        assert_eq!(c[4], "/xdg/openstack/clouds.yaml");
        assert_eq!(c[7], "/home/u/.config/openstack/clouds.yaml");
        assert_eq!(c[10], "/etc/openstack/clouds.yaml");
        assert_eq!(s[0], PathBuf::from("/cwd/secure.yaml"));
    }

    #[test]
    fn load_reads_files_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, CLOUDS).unwrap();
        let e = env(&[("OS_CLIENT_CONFIG_FILE", p.to_str().unwrap()), ("HOME", "/nonexistent")]);
        let c = load_with_env(Some("osk-demo"), &e).unwrap();
        assert!(c.source.contains("c.yaml"), "{}", c.source);
    }
}
