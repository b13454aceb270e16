//! `luksfs audit` against the REAL Keystone + Barbican + Glance of [`crate::barbican::harness`]
//! and [`crate::glance::glance`] (no mocks): each test makes a project of its own in Keystone (a
//! user with role member in it), stores secrets in Barbican and creates images in Glance through
//! their APIs, as Cinder and Glance would have, then audits that project. Whether the catalog has
//! Cinder depends on whether the `cinder_api` tests ran in this Keystone: a new project's report
//! shows either no volumes or that they were not checked. One test starts a cinder-api of its own
//! (`scripts/cinder-api-up.sh` with `CINDER_CATALOG=0`, reached through the cloud setting
//! `block_storage_endpoint_override`), whose encrypted volumes get their keys from Cinder itself.
//! The JSON reports are checked against `docs/schema/audit.schema.json` by python-jsonschema.
//! Run with `cargo test --test it -- audit::`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::barbican::{Env, Osk, agent, clouds_env, harness, id_of, luksfs, os, random_bytes, random_id};
use crate::glance::{Api, glance};
use crate::util::{self, Lab, Out};

/// A Keystone project of one test, with a member user.
struct Project {
    name: String,
    user: String,
    password: String,
}

/// A new project and a user with role member in it.
fn project(osk: &Osk, what: &str) -> Project {
    let tag = &random_id()[..8];
    let name = format!("luksfs-audit-{what}-{tag}");
    let p = osk.admin_req("POST", "/projects", Some(json!({"project": {"name": name, "domain_id": "default"}})));
    let pid = p["project"]["id"].as_str().unwrap().to_string();
    let (user, password) = (format!("{name}-user"), format!("pw-{}", random_id()));
    let u = osk.admin_req(
        "POST",
        "/users",
        Some(json!({"user": {"name": user, "domain_id": "default", "password": password, "default_project_id": pid}})),
    );
    let uid = u["user"]["id"].as_str().unwrap().to_string();
    let roles = osk.admin_req("GET", "/roles?name=member", None);
    let rid = roles["roles"][0]["id"].as_str().unwrap().to_string();
    osk.admin_req("PUT", &format!("/projects/{pid}/users/{uid}/roles/{rid}"), None);
    Project { name, user, password }
}

/// `LAB/clouds.yaml` with cloud `audit` for `p`, and `top` settings added.
fn clouds(lab: &Lab, osk: &Osk, p: &Project, top: &[(&str, &str)]) -> PathBuf {
    let mut s = format!(
        "clouds:\n  audit:\n    auth_type: password\n    auth:\n      auth_url: \"{}\"\n      username: \"{}\"\n      \
         password: \"{}\"\n      project_name: \"{}\"\n      user_domain_name: Default\n      project_domain_name: \
         Default\n    region_name: RegionOne\n    interface: public\n",
        osk.keystone, p.user, p.password, p.name
    );
    for (k, v) in top {
        s += &format!("    {k}: \"{v}\"\n");
    }
    let f = lab.root().join("clouds.yaml");
    std::fs::write(&f, s).unwrap();
    f
}

fn audit(env: &Env, json: bool) -> Out {
    let mut args: Vec<&OsStr> = vec![os("audit"), os("--os-cloud"), os("audit")];
    if json {
        args.push(os("--json"));
    }
    util::run_timed(luksfs(env, &args), Duration::from_secs(120))
}

fn parse(out: &Out) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: not JSON: {e}\n{}", out.cmdline, out.stderr))
}

/// Store a 32-byte `symmetric` secret as Cinder does; its id.
fn key(osk: &Osk, token: &str) -> String {
    id_of(&osk.store_symmetric(token, &random_bytes(32))).to_string()
}

fn cinder_props(key: &str, policy: Option<&str>) -> Value {
    let mut p = json!({"cinder_encryption_key_id": key});
    if let Some(policy) = policy {
        p["cinder_encryption_key_deletion_policy"] = json!(policy);
    }
    p
}

/// What the JSON report says of Cinder in a new project: when the catalog has Cinder (after the
/// `cinder_api` tests registered theirs in this Keystone) and it answers, no volume and no
/// backup; otherwise that volumes and backups were not checked, and why (whatever it is: those
/// tests stop and restart their cinder-api).
#[track_caller]
fn cinder_empty_or_not_checked(j: &Value) {
    if j["checked"]["cinder"]["checked"] == true {
        assert_eq!((j["checked"]["volumes"].as_u64(), j["checked"]["backups"].as_u64()), (Some(0), Some(0)), "{j}");
        return;
    }
    assert_eq!(j["checked"]["volumes"], Value::Null, "{j}");
    let detail = j["checked"]["cinder"]["detail"].as_str().unwrap();
    // (not in the catalog; or the cinder_api tests' cinder-api stopped, or restarting: 503)
    assert!(detail.contains("Cinder"), "{detail}");
    assert!(j["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("not checked")), "{j}");
}

/// A project whose keys are each used once, or shared only by images that keep them: exit 0,
/// no finding, every key present, no consumers registered; the text report says so and that
/// Cinder was not checked (not in the catalog; then, overridden to a port nothing listens on,
/// not reachable).
#[test]
fn audit_clean_project_exits_0() {
    let Some(osk) = harness() else { return };
    let Some(g) = glance() else { return };
    let lab = Lab::new();
    let p = project(osk, "clean");
    let api = Api { url: &g.url, token: osk.token(&p.user, &p.password, &p.name) };
    let (k1, k2) = (key(osk, &api.token), key(osk, &api.token));
    let ids = [
        api.create("alone", cinder_props(&k1, Some("on_image_deletion"))),
        api.create("keeps 1", json!({"os_encrypt_key_id": k2, "os_encrypt_key_deletion_policy": "do_not_delete"})),
        api.create("keeps 2", cinder_props(&k2, None)),
        api.create("plain", json!({})),
    ];
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[]));

    let out = audit(&env, true);
    let j = parse(&out);
    assert_eq!(out.code(), 0, "{j}\n{}", out.stderr);
    crate::status::validate("audit.schema.json", &out.stdout, lab.root());
    assert_eq!(j["verdict"], "OK", "{j}");
    assert_eq!(j["findings"], json!([]), "{j}");
    assert_eq!(j["checked"]["images"], 4, "{j}");
    assert_eq!(j["summary"]["keys"], 2, "{j}");
    assert_eq!(j["summary"]["present"], 2, "{j}");
    for k in j["keys"].as_array().unwrap() {
        assert_eq!(k["consumers"]["state"], "none", "{k}");
    }
    cinder_empty_or_not_checked(&j);

    let out = audit(&env, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code(), 0, "{text}\n{}", out.stderr);
    assert!(text.contains("Audited 4 images") && text.contains("\nOK:"), "{text}");

    // a Cinder that does not answer is said so, and is no error
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}/v3");
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[("block_storage_endpoint_override", &dead)]));
    let out = audit(&env, true);
    let j = parse(&out);
    assert_eq!(out.code(), 0, "{j}\n{}", out.stderr);
    assert_eq!(j["checked"]["cinder"]["checked"], false, "{j}");
    let detail = j["checked"]["cinder"]["detail"].as_str().unwrap();
    assert!(detail.contains("not reachable") && detail.contains(&dead), "{detail}");
    for id in &ids {
        api.delete(id);
    }
}

/// A project at risk: one key shared by four images (two of them delete it with themselves, one
/// of those hidden, so the listing must ask for hidden images; more images than a page of the
/// test Glance, so it must follow `next`), an image whose key was deleted from Barbican (404),
/// and an image whose key belongs to another project (403: cannot tell, not a risk). Exit 6;
/// the JSON names both risks, the images that delete the key, the fixes, and the consumer one
/// image registered. With Barbican unreachable, the keys are not checked (said so) and the
/// shared key is still found.
#[test]
fn audit_shared_and_missing_keys_exit_6() {
    let Some(osk) = harness() else { return };
    let Some(g) = glance() else { return };
    let lab = Lab::new();
    let p = project(osk, "risky");
    let api = Api { url: &g.url, token: osk.token(&p.user, &p.password, &p.name) };
    let shared = key(osk, &api.token);
    let a = api.create("snapshot a", cinder_props(&shared, Some("on_image_deletion")));
    let b = api.create("snapshot b", {
        let mut v = cinder_props(&shared, Some("on_image_deletion"));
        v["os_hidden"] = json!(true);
        v
    });
    let c = api.create("snapshot c", cinder_props(&shared, Some("do_not_delete")));
    let d = api.create("upload d", json!({"os_encrypt_key_id": format!("{}/v1/secrets/{shared}", osk.barbican)}));
    // image c is registered as a consumer of the shared key
    let resp = agent()
        .post(format!("{}/v1/secrets/{shared}/consumers", osk.barbican))
        .header("X-Auth-Token", &api.token)
        .send_json(json!({"service": "glance", "resource_type": "image", "resource_id": c}))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "registering a consumer");
    // a key deleted from Barbican
    let gone = key(osk, &api.token);
    let lost = api.create("lost", cinder_props(&gone, Some("on_image_deletion")));
    let resp = agent()
        .delete(format!("{}/v1/secrets/{gone}", osk.barbican))
        .header("X-Auth-Token", &api.token)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204, "deleting a secret");
    // another project's key
    let foreign = key(osk, &osk.demo_token());
    let other = api.create("other's key", cinder_props(&foreign, None));
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[]));

    let out = audit(&env, true);
    let j = parse(&out);
    assert_eq!(out.code(), 6, "{j}\n{}", out.stderr);
    crate::status::validate("audit.schema.json", &out.stdout, lab.root());
    assert_eq!(j["verdict"], "RISK", "{j}");
    assert_eq!(j["checked"]["images"], 6, "{j}");
    let kinds: Vec<&str> = j["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["key_missing", "shared_key_deleted_with_image"], "{j}");

    let f = &j["findings"][0];
    assert_eq!(f["key_id"], gone.as_str(), "{f}");
    assert_eq!(f["references"][0]["id"], lost.as_str(), "{f}");

    let f = &j["findings"][1];
    assert_eq!(f["key_id"], shared.as_str(), "{f}");
    let mut deleting: Vec<&str> =
        f["deleting_images"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    deleting.sort();
    let mut want = [a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(deleting, want, "{f}");
    assert_eq!(f["references"].as_array().unwrap().len(), 4, "{f}");
    let fix: Vec<&str> = f["fix"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let fix = fix.join("\n");
    for id in [&a, &b] {
        assert!(
            fix.contains(&format!(
                "openstack image set --property cinder_encryption_key_deletion_policy=do_not_delete {id}"
            )),
            "{fix}"
        );
    }
    // consumers are suggested for the images without one (c has one)
    assert!(fix.contains(&format!("--resource-id {d} {}/v1/secrets/{shared}", osk.barbican)), "{fix}");
    assert!(!fix.contains(&format!("--resource-id {c} ")), "{fix}");

    let keys = j["keys"].as_array().unwrap();
    let by_id = |k: &str| keys.iter().find(|x| x["key_id"] == k).unwrap_or_else(|| panic!("{k} not in {j}"));
    let s = by_id(&shared);
    assert_eq!(s["state"], "present", "{s}");
    assert_eq!(s["consumers"]["state"], "partial", "{s}");
    assert_eq!(s["consumers"]["registered"][0]["resource_id"], c.as_str(), "{s}");
    assert_eq!(by_id(&gone)["state"], "missing");
    assert_eq!(by_id(&foreign)["state"], "forbidden");
    assert_eq!(j["summary"], json!({"keys": 3, "present": 1, "missing": 1, "forbidden": 1, "not_checked": 0}));
    cinder_empty_or_not_checked(&j);

    let out = audit(&env, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code(), 6, "{text}\n{}", out.stderr);
    assert!(text.contains("RISK key_missing") && text.contains("RISK shared_key_deleted_with_image"), "{text}");
    assert!(text.contains(&format!("openstack image unset --property cinder_encryption_key_deletion_policy {a}")));
    assert!(text.contains("cannot tell (403)") && text.contains("2 risks found"), "{text}");

    // Barbican unreachable: no key can be checked (said so), the shared key is still a risk
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}");
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[("key_manager_endpoint_override", &dead)]));
    let out = audit(&env, true);
    let j = parse(&out);
    assert_eq!(out.code(), 6, "{j}\n{}", out.stderr);
    let kinds: Vec<&str> = j["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["shared_key_deleted_with_image"], "{j}");
    assert_eq!(j["summary"]["not_checked"], 3, "{j}");
    assert_eq!(j["checked"]["barbican"]["checked"], false, "{j}");
    assert!(j["checked"]["barbican"]["detail"].as_str().unwrap().contains(&dead), "{j}");
    for id in [&a, &b, &c, &d, &lost, &other] {
        api.delete(id);
    }
}

/// Glance unreachable (its endpoint overridden to a port nothing listens on): exit 1, saying so,
/// nothing on standard output. (Only Keystone is needed.)
#[test]
fn audit_glance_unreachable_exits_1() {
    let Some(osk) = harness() else { return };
    let lab = Lab::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}");
    let p = Project { name: "demo".into(), user: "demo".into(), password: osk.var("OSK_DEMO_PASSWORD").into() };
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[("image_endpoint_override", &dead)]));
    for json in [false, true] {
        let out = audit(&env, json);
        assert_eq!(out.code(), 1, "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(out.stderr.contains("Glance") && out.stderr.contains(&dead), "{}", out.stderr);
    }
}

/// The URL of a cinder-api of these tests (`scripts/cinder-api-up.sh` into `cinder-audit/` of
/// the harness directory, with `CINDER_CATALOG=0`: not in the catalog, where the `cinder_api`
/// tests' own one is, and which they stop and start; two records per page), left running,
/// started on first use, with the encrypted volume type `luksfs-luks` (made as admin); `None`
/// (after `SKIPPED: why`) when it can't be started, a failure under `CI=true`.
fn cinder(osk: &Osk) -> Option<&'static str> {
    static CINDER: OnceLock<Result<String, String>> = OnceLock::new();
    let started = CINDER.get_or_init(|| {
        let dir = osk.dir.join("cinder-audit");
        let t = Instant::now();
        let osk_env = osk.dir.join("osk.env");
        let envs = [("CINDER_CATALOG", "0"), ("CINDER_PAGE_MAX", "2")];
        util::up_script("cinder-api-up.sh", &dir, &["--keystone".as_ref(), osk_env.as_os_str()], &envs)?;
        let url = util::env_file(&dir.join("cinder.env"))?.remove("CINDER_URL").ok_or("cinder.env lacks CINDER_URL")?;
        eprintln!("cinder-api (audit) up in {:.1}s at {url}", t.elapsed().as_secs_f32());
        luks_volume_type(osk, &url);
        Ok(url)
    });
    match started {
        Ok(url) => Some(url),
        Err(why) => {
            util::skip(&format!("cinder-api did not start: {why}"));
            None
        }
    }
}

/// The id of the project of `token`.
fn project_id(osk: &Osk, token: &str) -> String {
    let mut r = agent()
        .get(format!("{}/auth/tokens", osk.keystone))
        .header("X-Auth-Token", token)
        .header("X-Subject-Token", token)
        .call()
        .unwrap();
    let v: Value = r.body_mut().read_json().unwrap();
    v["token"]["project"]["id"].as_str().unwrap().to_string()
}

/// `GET`/`POST` `{cinder}/v3/{path}` at API 3.64 with `token`: status and body.
fn cinder_call(cinder: &str, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{cinder}/v3/{path}");
    let a = agent();
    let resp = match body {
        Some(b) => {
            a.post(&url).header("X-Auth-Token", token).header("OpenStack-API-Version", "volume 3.64").send_json(&b)
        }
        None => a.get(&url).header("X-Auth-Token", token).header("OpenStack-API-Version", "volume 3.64").call(),
    };
    let mut resp = resp.unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The public encrypted volume type `luksfs-luks` (LUKS, aes-xts-plain64, 256 bits, front-end),
/// made as admin unless there is one, as an operator makes it.
fn luks_volume_type(osk: &Osk, cinder: &str) {
    let admin = osk.admin_token();
    let pid = project_id(osk, &admin);
    let (status, v) = cinder_call(cinder, &admin, &format!("{pid}/types"), None);
    assert_eq!(status, 200, "volume types: {v}");
    let id = match v["volume_types"].as_array().unwrap().iter().find(|t| t["name"] == "luksfs-luks") {
        Some(t) => t["id"].as_str().unwrap().to_string(),
        None => {
            let body = json!({"volume_type": {"name": "luksfs-luks", "os-volume-type-access:is_public": true}});
            let (status, v) = cinder_call(cinder, &admin, &format!("{pid}/types"), Some(body));
            assert_eq!(status, 200, "POST types: {v}");
            v["volume_type"]["id"].as_str().unwrap().to_string()
        }
    };
    let (_, enc) = cinder_call(cinder, &admin, &format!("{pid}/types/{id}/encryption"), None);
    if enc.get("provider").and_then(Value::as_str).is_none() {
        let body = json!({"encryption": {"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256,
            "control_location": "front-end"}});
        let (status, v) = cinder_call(cinder, &admin, &format!("{pid}/types/{id}/encryption"), Some(body));
        assert_eq!(status, 200, "POST encryption: {v}");
    }
}

/// A new encrypted volume (type `luksfs-luks`) of the project of `token` (`pid`): Cinder's API
/// makes its key in Barbican. Its id and key id.
fn encrypted_volume(cinder: &str, token: &str, pid: &str, name: &str) -> (String, String) {
    let body = json!({"volume": {"size": 1, "name": name, "volume_type": "luksfs-luks"}});
    let (status, v) = cinder_call(cinder, token, &format!("{pid}/volumes"), Some(body));
    assert_eq!(status, 202, "POST volumes: {v}");
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let (status, v) = cinder_call(cinder, token, &format!("{pid}/volumes/{id}"), None);
    assert_eq!(status, 200, "GET volume: {v}");
    let key = v["volume"]["encryption_key_id"].as_str().unwrap_or_else(|| panic!("no encryption_key_id: {v}"));
    (id, key.to_string())
}

/// Bug 1852106 as it happens: an encrypted volume made by a real Cinder API (its key made by
/// Cinder in Barbican) and two images of it carrying the volume's key with `on_image_deletion`
/// (what an unfixed upload-to-image writes); more volumes than a page of the test Cinder. The
/// audit reads the volumes (API 3.64) and backups, finds the key shared by the volume and both
/// images (exit 6), and a volume whose key was deleted from Barbican.
#[test]
fn audit_cinder_volume_key_shared_with_its_images_exits_6() {
    let Some(osk) = harness() else { return };
    let Some(g) = glance() else { return };
    let Some(cinder) = cinder(osk) else { return };
    let lab = Lab::new();
    let p = project(osk, "cinder");
    let api = Api { url: &g.url, token: osk.token(&p.user, &p.password, &p.name) };
    let pid = project_id(osk, &api.token);
    let (vol, key) = encrypted_volume(cinder, &api.token, &pid, "vol-7");
    let (_, other_key) = encrypted_volume(cinder, &api.token, &pid, "vol-8");
    let (lost_vol, lost_key) = encrypted_volume(cinder, &api.token, &pid, "vol-9");
    let resp = agent()
        .delete(format!("{}/v1/secrets/{lost_key}", osk.barbican))
        .header("X-Auth-Token", &api.token)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204, "deleting a secret");
    let images = [
        api.create("vol-7 image 1", cinder_props(&key, Some("on_image_deletion"))),
        api.create("vol-7 image 2", cinder_props(&key, Some("on_image_deletion"))),
    ];
    let override_ = format!("{cinder}/v3");
    let env = clouds_env(&lab, &clouds(&lab, osk, &p, &[("block_storage_endpoint_override", &override_)]));

    let out = audit(&env, true);
    let j = parse(&out);
    assert_eq!(out.code(), 6, "{j}\n{}", out.stderr);
    crate::status::validate("audit.schema.json", &out.stdout, lab.root());
    assert_eq!(j["checked"]["cinder"], json!({"checked": true, "detail": null}), "{j}");
    assert_eq!((j["checked"]["volumes"].as_u64(), j["checked"]["backups"].as_u64()), (Some(3), Some(0)), "{j}");
    let kinds: Vec<&str> = j["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["key_missing", "shared_key_deleted_with_image"], "{j}");
    let missing = &j["findings"][0];
    assert_eq!(missing["key_id"], lost_key.as_str(), "{missing}");
    assert_eq!(missing["references"][0]["kind"], "volume", "{missing}");
    assert_eq!(missing["references"][0]["id"], lost_vol.as_str(), "{missing}");
    let shared = &j["findings"][1];
    assert_eq!(shared["key_id"], key.as_str(), "{shared}");
    let refs: Vec<(&str, &str)> = shared["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert!(refs.contains(&("volume", vol.as_str())), "{refs:?}");
    for i in &images {
        assert!(refs.contains(&("image", i.as_str())), "{refs:?}");
    }
    assert!(shared["message"].as_str().unwrap().contains("volume"), "{shared}");
    let keys = j["keys"].as_array().unwrap();
    let k = keys.iter().find(|k| k["key_id"] == other_key.as_str()).unwrap_or_else(|| panic!("{j}"));
    assert_eq!(k["state"], "present", "{k}");
    assert_eq!(k["references"][0]["property"], "encryption_key_id", "{k}");
    for i in &images {
        api.delete(i);
    }
}
