//! A Cinder backup's own Barbican key, found through a REAL cinder-api (PyPI cinder 29, started
//! by `scripts/cinder-api-up.sh` next to the Keystone + Barbican of [`crate::barbican::harness`],
//! in `cinder/` of the harness directory, and left running for the next run; stop it with
//! `scripts/cinder-api-down.sh target/openstack/cinder`). Backup records go into its database
//! through cinder's own DB API (`scripts/cinder-api-record.py`); the backups themselves are the
//! ones cinder's PosixBackupDriver wrote for [`crate::cinder_backup`].
//!
//! The backups' `volume_meta` names a key that is not in Barbican (the original volume's key,
//! deleted); the Cinder record's `encryption_key_id` names a Barbican secret holding the
//! passphrase. `cat`, `verify` and a mount read the backup with `--os-cloud` and no key option;
//! a Cinder 404, a stopped cinder-api and a catalog without Cinder fall back to the
//! `volume_meta` id, and say so. If cinder-api can't be started the tests print `SKIPPED: ...`
//! and pass, except under `CI=true`. Run with `cargo test --test it -- cinder_api::`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::barbican::{Env, OsMount, Osk, agent, clouds_env, harness, id_of, luksfs, os, p, random_id};
use crate::cinder_backup::{KEY_ID, PASS, backups, catalog, plain_of};
use crate::util::{self, Lab};

/// A running cinder-api.
struct CinderApi {
    /// The directory of `cinder-api-up.sh`.
    dir: PathBuf,
    conf: PathBuf,
    venv: PathBuf,
}

static CINDER: OnceLock<Result<CinderApi, String>> = OnceLock::new();

/// cinder-api, started on first use; `None` (after `SKIPPED: why`) when it can't be, a failure
/// under `CI=true`.
fn cinder() -> Option<&'static CinderApi> {
    let osk = harness()?;
    match CINDER.get_or_init(|| up(&osk.dir.join("cinder"), &osk.dir.join("osk.env"))) {
        Ok(c) => Some(c),
        Err(why) => {
            util::skip(&format!("cinder-api did not start: {why}"));
            None
        }
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// `cinder-api-up.sh DIR --keystone OSK_ENV` (one at a time: parallel test processes share it).
fn up(dir: &Path, osk_env: &Path) -> Result<CinderApi, String> {
    let t = Instant::now();
    util::up_script("cinder-api-up.sh", dir, &["--keystone".as_ref(), osk_env.as_os_str()], &[])?;
    let env = util::env_file(&dir.join("cinder.env"))?;
    let var = |k: &str| env.get(k).map(String::as_str).ok_or(format!("cinder.env lacks {k}"));
    eprintln!("cinder-api up in {:.1}s at {}", t.elapsed().as_secs_f32(), var("CINDER_URL")?);
    Ok(CinderApi { dir: dir.to_path_buf(), conf: var("CINDER_CONF")?.into(), venv: var("CINDER_VENV")?.into() })
}

impl CinderApi {
    /// `cinder-api-record.py ARGS` in cinder's venv.
    fn record(&self, args: &[&str]) {
        let out = Command::new(self.venv.join("bin/python"))
            .arg(script("cinder-api-record.py"))
            .arg("--config-file")
            .arg(&self.conf)
            .args(args)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .unwrap();
        assert!(out.status.success(), "cinder-api-record.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn down(&self) {
        let out = Command::new("bash").arg(script("cinder-api-down.sh")).arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "cinder-api-down.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Starts the stopped cinder-api again, also when the test fails.
struct Restart<'a>(&'a CinderApi, PathBuf);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if let Err(e) = up(&self.0.dir, &self.1) {
            eprintln!("restarting cinder-api: {e}");
        }
    }
}

fn run(env: &Env, args: &[&OsStr]) -> util::Out {
    util::run_timed(luksfs(env, args), Duration::from_secs(180))
}

fn verify_json(env: &Env, image: &Path, cloud: &[&str]) -> (util::Out, Value) {
    let mut a = vec![os("verify"), os("--json"), image.as_os_str()];
    a.extend(cloud.iter().map(|s| os(s)));
    let out = run(env, &a);
    let j: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}\n{}", out.cmdline, out.stderr));
    // a folder is verified image by image: its one image's report
    let j = match j.get("images") {
        Some(images) => images[0].clone(),
        None => j,
    };
    (out, j)
}

/// The backup's own key through the Cinder API, for `cat`, `verify` and a mount; the fallback
/// to the `volume_meta` id after a 404, with cinder-api stopped, and with no Cinder in the
/// catalog, each said in the report.
#[test]
fn backup_key_from_the_cinder_api() {
    let Some(b) = backups() else { return };
    let Some(c) = cinder() else { return };
    let osk = harness().unwrap();
    if !util::have(&["fuse"]) {
        return;
    }
    // a full backup of the LUKS volume, alone in its folder (no parents to find)
    let row = b.rows.iter().find(|r| r.kind == "luks" && r.compression == "zlib" && r.state == 0).unwrap();
    let dir = b.dir.join("backups");
    let entry = catalog(&dir).find(&row.backup).unwrap().clone();
    let folder = dir.join(entry.prefix.rsplit_once('/').unwrap().0);
    let plain = plain_of(&b.dir, row);

    // the backup's own key clone in Barbican, and the record cinder's backup manager made
    let secret = osk.store_passphrase(&osk.demo_token(), std::str::from_utf8(PASS).unwrap());
    let key = id_of(&secret).to_string();
    assert_ne!(key, KEY_ID);
    let project = osk.var("OSK_DEMO_PROJECT_ID");
    let volume = random_id();
    let record =
        || c.record(&["backup", "--id", &row.backup, "--project", project, "--volume", &volume, "--key-id", &key]);
    record();

    let lab = Lab::new();
    let env = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    let cloud = ["--os-cloud", "osk-demo"];

    // cat and verify with no key option
    let out = run(&env, &[os("cat"), folder.as_os_str(), os(cloud[0]), os(cloud[1])]);
    out.assert_bytes(&plain);
    // the folder (a source verified image by image) and the backup by id (one image)
    for image in [folder.clone(), dir.join(&row.backup)] {
        let (out, j) = verify_json(&env, &image, &cloud);
        assert!(out.code() == 0 || out.code() == 6, "{}: {}\n{j}", out.cmdline, out.stderr);
        assert_eq!(j["backup"]["key_id_source"], "cinder-api", "{j}");
        assert_eq!(j["backup"]["key_id"], key.as_str(), "{j}");
        assert_eq!(j["backup"]["encryption_key_id"], KEY_ID, "{j}");
        assert_eq!(j["sha256"]["plaintext"], util::sha256_hex(&plain), "{j}");
    }
    // a key given on the command line wins: Cinder is not asked, nothing is said of it
    let key_file = lab.root().join("pass");
    std::fs::write(&key_file, PASS).unwrap();
    let (out, j) = verify_json(&env, &dir.join(&row.backup), &[cloud[0], cloud[1], "--key-file", p(&key_file)]);
    assert!(out.code() == 0 || out.code() == 6, "{}: {}\n{j}", out.cmdline, out.stderr);
    assert_eq!(j["backup"]["key_id_source"], Value::Null, "{j}");
    // inspect says which key would be used
    let out = run(&env, &[os("inspect"), os("--json"), folder.as_os_str(), os(cloud[0]), os(cloud[1])]);
    let j: Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(j["backup"]["key_id_source"], "cinder-api", "{j}");

    // a real mount (unmounted when dropped)
    {
        let m = OsMount::start_from(&lab, folder.as_os_str(), "mnt", &env, &[cloud[0], cloud[1], "-v"]);
        let name = format!("_backup_{}.raw", row.backup);
        let shown: Vec<String> = std::fs::read_dir(m.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let file = shown.iter().find(|n| n.ends_with(&name)).unwrap_or_else(|| panic!("{shown:?}\n{}", m.log()));
        let got = std::fs::read(m.path(file)).unwrap_or_else(|e| panic!("{file}: {e}\n{}", m.log()));
        util::assert_same("mounted backup", &got, &plain);
        assert!(m.log().contains("from the Cinder API"), "{}", m.log());
    }

    // the fallback: the volume_meta id (a deleted key: the unlock fails, naming it)
    let fallback = |env: &Env, cloud: &[&str], why: &str| {
        let (out, j) = verify_json(env, &folder, cloud);
        assert_ne!(out.code(), 0, "{}: {j}", out.cmdline);
        assert_eq!(j["backup"]["key_id_source"], "volume-meta", "{why}: {j}");
        assert_eq!(j["backup"]["key_id"], KEY_ID, "{why}: {j}");
        let reason = j["backup"]["key_id_reason"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{why}: {j}");
        assert!(out.stderr.contains("volume_meta"), "{}: {}", out.cmdline, out.stderr);
        let mut a = vec![os("cat"), folder.as_os_str()];
        a.extend(cloud.iter().map(|s| os(s)));
        let out = run(env, &a);
        assert_ne!(out.code(), 0, "{}", out.cmdline);
        assert!(out.stderr.contains(KEY_ID), "{}: {}", out.cmdline, out.stderr);
    };
    // Cinder has no such backup (404)
    c.record(&["delete", "--id", &row.backup]);
    fallback(&env, &cloud, "404");
    // Cinder refuses (403: cinder-api-up.sh's policy for users with the role luksfs-no-backups)
    record();
    fallback(&refused_env(&lab, osk), &[], "403");
    // Cinder not in the catalog (of the region asked for)
    let mut elsewhere: Env = lab_os_env(&lab, osk);
    elsewhere.push(("OS_REGION_NAME".into(), "RegionTwo".into()));
    fallback(&elsewhere, &[], "not in the service catalog");
    // cinder-api stopped
    c.down();
    let _restart = Restart(c, osk.dir.join("osk.env"));
    fallback(&env, &cloud, "not reachable");
}

/// `OS_*` password credentials of user luksfs-no-backups in project demo, with the roles member
/// and luksfs-no-backups (cinder-api-up.sh's policy refuses it backups); made, or its password
/// set, through Keystone's API as admin.
fn refused_env(lab: &Lab, osk: &Osk) -> Env {
    const NAME: &str = "luksfs-no-backups";
    let ks = &osk.keystone;
    let admin = osk.token("admin", osk.var("OSK_ADMIN_PASSWORD"), "admin");
    let a = agent();
    let call = |method: &str, path: &str, body: Option<Value>| -> Value {
        let url = format!("{ks}{path}");
        let r = match (method, body) {
            ("GET", _) => a.get(&url).header("X-Auth-Token", &admin).call(),
            ("PUT", _) => a.put(&url).header("X-Auth-Token", &admin).send_empty(),
            ("POST", Some(b)) => a.post(&url).header("X-Auth-Token", &admin).send_json(&b),
            ("PATCH", Some(b)) => a.patch(&url).header("X-Auth-Token", &admin).send_json(&b),
            other => panic!("{other:?}"),
        };
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    let role = |name: &str| -> String {
        let found = call("GET", &format!("/roles?name={name}"), None);
        match found["roles"].as_array().and_then(|r| r.first()) {
            Some(r) => r["id"].as_str().unwrap().to_string(),
            None => call("POST", "/roles", Some(serde_json::json!({"role": {"name": name}})))["role"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    };
    let (member, refused) = (role("member"), role(NAME));
    let password = random_id();
    let users = call("GET", &format!("/users?name={NAME}"), None);
    let user = match users["users"].as_array().and_then(|u| u.first()) {
        Some(u) => {
            let id = u["id"].as_str().unwrap().to_string();
            call("PATCH", &format!("/users/{id}"), Some(serde_json::json!({"user": {"password": password}})));
            // a password change revokes earlier tokens with 1-second granularity
            std::thread::sleep(Duration::from_millis(1100));
            id
        }
        None => call(
            "POST",
            "/users",
            Some(serde_json::json!({"user": {"name": NAME, "domain_id": "default", "password": password}})),
        )["user"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let project = osk.var("OSK_DEMO_PROJECT_ID");
    for r in [&member, &refused] {
        call("PUT", &format!("/projects/{project}/users/{user}/roles/{r}"), None);
    }
    let mut env = clouds_env(lab, &lab.root().join("no-clouds.yaml"));
    for (k, v) in [
        ("OS_AUTH_URL", ks.as_str()),
        ("OS_AUTH_TYPE", "password"),
        ("OS_USERNAME", NAME),
        ("OS_PASSWORD", &password),
        ("OS_PROJECT_ID", project),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "public"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// The harness's `OS_*` variables (demo's application credential), no clouds.yaml.
fn lab_os_env(lab: &Lab, osk: &crate::barbican::Osk) -> Env {
    let mut env = clouds_env(lab, &lab.root().join("no-clouds.yaml"));
    env.extend(osk.env.iter().filter(|(k, _)| k.starts_with("OS_")).map(|(k, v)| (k.clone(), v.clone())));
    env
}
