//! Glance as a SOURCE (`glance://`, `glance://ID`) against a REAL Glance (PyPI glance 33, file
//! store) started by `scripts/glance-up.sh` next to the Keystone + Barbican of
//! [`crate::barbican::harness`], into `$LUKSFS_GLANCE_DIR` (default: `glance/` in the harness
//! directory), and left running for the next run. Stop it with `scripts/glance-down.sh
//! target/openstack/glance`. If it can't be started the tests print `SKIPPED: ...` and pass, except under
//! `CI=true`.
//!
//! Images made by qemu-img (LUKS1, passphrase secret, the `os_encrypt_*` properties of an
//! encrypted upload) and cryptsetup (LUKS1 as Cinder's encryptor makes it, a `symmetric` secret
//! whose hex is the passphrase, the `cinder_encryption_key_*` properties Cinder sets) are
//! uploaded through Glance's API; luksfs finds them in the catalog of the same cloud and reads
//! them by range. (Glance 33 refuses a LUKS2 upload in a `bare` container: its format
//! inspector's safety check says "LUKS version 2 is not supported".) Run with
//! `cargo test --test it -- glance::`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::barbican::{Env, OsMount, agent, clouds_env, harness, hex, id_of, luksfs, os, random_bytes, random_id};
use crate::util::{self, KIB, Lab, MIB, Out, mark};

/// Names of the images these tests upload start with this (leftovers of earlier runs are deleted).
const PREFIX: &str = "luksfs-it ";

/// A running Glance.
pub(crate) struct Glance {
    pub(crate) url: String,
    /// The directory of `glance-up.sh` (its file store is `state/images/`).
    dir: PathBuf,
}

static GLANCE: OnceLock<Result<Glance, String>> = OnceLock::new();

/// Glance, started on first use; `None` (after `SKIPPED: why`) when it can't be, a failure
/// under `CI=true`.
pub(crate) fn glance() -> Option<&'static Glance> {
    let osk = harness()?;
    match GLANCE.get_or_init(|| start(&osk.dir)) {
        Ok(g) => Some(g),
        Err(why) => {
            util::skip(&format!("Glance did not start: {why}"));
            None
        }
    }
}

fn start(osk_dir: &Path) -> Result<Glance, String> {
    let dir = match std::env::var_os("LUKSFS_GLANCE_DIR") {
        Some(d) => PathBuf::from(d),
        // beside its Keystone: a Glance registered in another Keystone would refuse our tokens
        None => osk_dir.join("glance"),
    };
    let t = Instant::now();
    util::up_script("glance-up.sh", &dir, &[osk_dir.as_os_str()], &[])?;
    let url = util::env_file(&dir.join("glance.env"))?.remove("GLANCE_URL").ok_or("glance.env lacks GLANCE_URL")?;
    eprintln!("Glance up in {:.1}s at {url}", t.elapsed().as_secs_f32());
    Ok(Glance { url, dir })
}

macro_rules! glance {
    () => {
        match glance() {
            Some(g) => (harness().unwrap(), g),
            None => return,
        }
    };
}

/// Glance's REST API as user demo.
pub(crate) struct Api<'a> {
    pub(crate) url: &'a str,
    pub(crate) token: String,
}

impl Api<'_> {
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>, data: Option<&[u8]>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let a = agent();
        let resp = match (method, body, data) {
            ("POST", Some(b), _) => a.post(&url).header("X-Auth-Token", &self.token).send_json(&b),
            ("PUT", _, Some(d)) => a
                .put(&url)
                .header("X-Auth-Token", &self.token)
                .header("Content-Type", "application/octet-stream")
                .send(d),
            ("GET", ..) => a.get(&url).header("X-Auth-Token", &self.token).call(),
            ("DELETE", ..) => a.delete(&url).header("X-Auth-Token", &self.token).call(),
            other => panic!("{other:?}"),
        };
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A new image named `PREFIX + name` with `props`; its id.
    pub(crate) fn create(&self, name: &str, props: Value) -> String {
        let mut body = json!({"name": format!("{PREFIX}{name}"), "disk_format": "raw", "container_format": "bare"});
        body.as_object_mut().unwrap().extend(props.as_object().unwrap().clone());
        let (status, v) = self.call("POST", "/v2/images", Some(body), None);
        assert_eq!(status, 201, "POST /v2/images: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// [`Api::create`], then upload `file` as its data.
    pub(crate) fn upload(&self, name: &str, props: Value, file: &Path) -> String {
        let id = self.create(name, props);
        let data = std::fs::read(file).unwrap();
        let (status, v) = self.call("PUT", &format!("/v2/images/{id}/file"), None, Some(&data));
        assert_eq!(status, 204, "PUT /v2/images/{id}/file: {v}");
        id
    }

    pub(crate) fn delete(&self, id: &str) {
        let (status, v) = self.call("DELETE", &format!("/v2/images/{id}"), None, None);
        assert!(status == 204 || status == 404, "DELETE /v2/images/{id}: {status} {v}");
    }

    pub(crate) fn show(&self, id: &str) -> Value {
        let (status, v) = self.call("GET", &format!("/v2/images/{id}"), None, None);
        assert_eq!(status, 200, "GET /v2/images/{id}: {v}");
        v
    }

    /// Every image the project sees, following `next` (the test Glance pages by 3).
    fn list(&self) -> Vec<Value> {
        let (mut out, mut path) = (Vec::new(), "/v2/images".to_string());
        loop {
            let (status, v) = self.call("GET", &path, None, None);
            assert_eq!(status, 200, "{v}");
            out.extend(v["images"].as_array().unwrap().iter().cloned());
            match v["next"].as_str() {
                Some(next) => path = next.to_string(),
                None => return out,
            }
        }
    }

    /// Delete the images earlier runs of these tests left behind.
    fn clean(&self) {
        for i in self.list() {
            // (two deletes of one image at once can leave it listed as `deleted`, for good: Glance
            // refuses to delete it again)
            if i["name"].as_str().is_some_and(|n| n.starts_with(PREFIX)) && i["status"] != "deleted" {
                self.delete(i["id"].as_str().unwrap());
            }
        }
    }
}

fn run(env: &Env, args: &[&str]) -> Out {
    let a: Vec<&OsStr> = args.iter().map(|s| os(s)).collect();
    util::run_timed(luksfs(env, &a), Duration::from_secs(180))
}

/// An ext4 filesystem of `size` bytes made by mkfs.ext4 (a plaintext `verify` recognises).
fn ext4(lab: &Lab, name: &str, size: usize) -> Vec<u8> {
    let f = lab.root().join(format!("{name}.ext4"));
    std::fs::File::create(&f).unwrap().set_len(size as u64).unwrap();
    util::sh({
        let mut c = util::tool("mkfs.ext4");
        c.args(["-q", "-F", "-L", name]).arg(&f);
        c
    });
    std::fs::read(&f).unwrap()
}

/// A GPT disk of 24 MiB made by sgdisk: partition 1 (1 MiB on, 12 MiB) holds an ext4 made by
/// mkfs.ext4, partition 2 the rest.
fn gpt_disk(lab: &Lab, name: &str) -> Vec<u8> {
    let f = lab.root().join(format!("{name}.gpt"));
    std::fs::File::create(&f).unwrap().set_len(24 * MIB as u64).unwrap();
    util::sh({
        let mut c = util::tool("sgdisk");
        c.args(["-n", "1:2048:+12M", "-t", "1:8300", "-c", "1:data", "-n", "2:0:0", "-t", "2:8200"]).arg(&f);
        c
    });
    let mut disk = std::fs::read(&f).unwrap();
    let fs = ext4(lab, name, 12 * MIB);
    disk[MIB..MIB + fs.len()].copy_from_slice(&fs);
    disk
}

fn shown(name: &str, id: &str) -> String {
    format!("{}_{id}.raw", format!("{PREFIX}{name}").replace('/', "_"))
}

/// Encrypted images uploaded to Glance (qemu-img LUKS1 with a passphrase secret and the
/// properties of an encrypted upload; cryptsetup LUKS1 with a symmetric secret and Cinder's
/// properties), an unencrypted one and one without data: `mount glance://` shows exactly the two
/// encrypted ones and reads them byte-exact; `cat`, `inspect` and `verify` take `glance://ID`
/// (and the shown name); `verify glance://` checks Glance's os_hash_value and os_decrypt_size;
/// errors name the image: no data, a wrong or unknown id, a store file shorter than Glance says,
/// an image deleted under a mount.
#[test]
fn glance_images_through_mount_cat_inspect_and_verify() {
    let (osk, glance) = glance!();
    let url = glance.url.as_str();
    if !util::have(&["qemu-img", "cryptsetup", "mkfs.ext4", "fuse"]) {
        return;
    }
    let api = Api { url, token: osk.demo_token() };
    api.clean();
    let lab = Lab::new();
    let pass = format!("upload passphrase {}", &random_id()[..8]);
    let s_pass = osk.store_passphrase(&api.token, &pass);
    let k_sym = random_bytes(32);
    let s_sym = osk.store_symmetric(&api.token, &k_sym);

    let upload = lab.qemu_luks("upload.luks", ext4(&lab, "upload", 3 * MIB), pass.as_bytes(), "");
    let cinder = lab.cs_luks1("cinder.img", ext4(&lab, "cinder", 2 * MIB + 512 * KIB), hex(&k_sym).as_bytes(), &[]);
    // large enough that the probes and the readahead they start leave most of it unread
    let doomed = lab.qemu_luks("doomed.luks", ext4(&lab, "doomed", 48 * MIB), pass.as_bytes(), "");
    let plain = lab.place("plain.img");
    util::write(&plain, &mark("not encrypted", MIB));

    let props = |plain: &[u8]| {
        json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&s_pass),
            "os_encrypt_key_deletion_policy": "on_image_deletion", "os_decrypt_container_format": "bare",
            "os_decrypt_size": plain.len().to_string()})
    };
    let id_upload = api.upload("user/upload", props(&upload.plain), &upload.path);
    let id_cinder = api.upload(
        "volume cinder",
        json!({"cinder_encryption_key_id": id_of(&s_sym), "cinder_encryption_key_deletion_policy": "on_image_deletion"}),
        &cinder.path,
    );
    let id_doomed = api.upload("doomed", props(&doomed.plain), &doomed.path);
    let id_plain = api.upload("plain", json!({}), &plain);
    let id_empty = api.create("no data", props(&upload.plain));
    // its Barbican secret opens it, but a keytab line naming its id gives a wrong key
    let keyed = lab.qemu_luks("keyed.luks", ext4(&lab, "keyed", MIB), pass.as_bytes(), "");
    let id_keyed = api.upload("keyed", props(&keyed.plain), &keyed.path);
    let kt = lab.key("keytab", format!("{id_keyed} {}\n", lab.key("wrong.key", b"wrong").display()).as_bytes());
    let damaged = lab.qemu_luks("damaged.luks", ext4(&lab, "damaged", 4 * MIB), pass.as_bytes(), "");
    let id_damaged = api.upload("damaged", props(&damaged.plain), &damaged.path);
    // the file store's copy loses its second half (Glance still lists the full size)
    let stored = glance.dir.join("state/images").join(&id_damaged);
    let full = std::fs::metadata(&stored).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&stored).unwrap().set_len(full / 2).unwrap();
    assert_eq!(api.show(&id_upload)["os_hash_algo"], "sha512");
    assert!(api.list().len() > 3, "more images than one page of the test Glance holds");

    let env = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    let g = |id: &str| format!("glance://{id}");

    // cat and inspect of one image, by id and by the name a mount shows
    run(&env, &["cat", &g(&id_upload), "--os-cloud", "osk-demo"]).assert_bytes(&upload.plain);
    run(&env, &["cat", &g(&id_cinder), "--os-cloud", "osk-appcred"]).assert_bytes(&cinder.plain);
    run(&env, &["cat", &g(&shown("volume cinder", &id_cinder)), "--os-cloud", "osk-demo", "--offset", "1M"])
        .assert_bytes(&cinder.plain[MIB..]);
    let out = run(&env, &["inspect", "--json", &g(&id_cinder), "--os-cloud", "osk-demo"]);
    let j: Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(j["format"], "luks1", "{j}");
    assert_eq!(j["openstack"]["glance"], true, "{j}");
    assert_eq!(j["openstack"]["key_id"], id_of(&s_sym), "{j}");

    // verify of one image: Glance's os_hash_value (sha512 of the stored data) and os_decrypt_size
    let out = run(&env, &["verify", "--json", &g(&id_upload), "--os-cloud", "osk-demo"]);
    let j: Value = serde_json::from_slice(out.ok()).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    assert_eq!(j["verdict"], "OK", "{j}");
    assert_eq!(j["openstack"]["glance"], true, "{j}");
    assert_eq!(j["openstack"]["os_hash_matches"], true, "{j}");
    assert_eq!(j["openstack"]["decrypt_size_matches"], true, "{j}");
    assert_eq!(j["sha256"]["plaintext"], util::sha256_hex(&upload.plain), "{j}");

    // verify of every encrypted image: the three with data
    let out = run(&env, &["verify", "glance://", "--os-cloud", "osk-demo"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_ne!(out.code(), 0, "{}\n{text}", out.stderr);
    for id in [&id_upload, &id_cinder, &id_doomed, &id_keyed] {
        assert!(text.lines().any(|l| l.starts_with("OK") && l.contains(id.as_str())), "{id}:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(&id_damaged)), "{text}");
    assert!(!text.contains(&id_plain) && !text.contains(&id_empty), "{text}");

    // errors naming the image: no data, an unknown id, not an id, no credentials
    let out = run(&env, &["cat", &g(&id_empty), "--os-cloud", "osk-demo"]);
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains(&id_empty) && out.stderr.contains("no data"), "{}", out.stderr);
    let unknown = random_id();
    let out = run(&env, &["cat", &g(&unknown), "--os-cloud", "osk-demo"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains(&unknown) && out.stderr.contains("no image"), "{}", out.stderr);
    let out = run(&env, &["cat", "glance://vol-7", "--os-cloud", "osk-demo"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("not an image id"), "{}", out.stderr);
    let out = run(&clouds_env(&lab, &lab.root().join("none.yaml")), &["cat", &g(&id_upload)]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    // a damaged store: Glance sends fewer bytes than its Content-Range promises; never wrong bytes
    let out = run(&env, &["cat", &g(&id_damaged), "--os-cloud", "osk-demo"]);
    assert_ne!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains(&id_damaged), "{}", out.stderr);
    assert!(out.stdout.len() < damaged.plain.len(), "{}", out.stderr);
    util::assert_same("damaged: what was written", &out.stdout, &damaged.plain[..out.stdout.len()]);

    // a mount of every encrypted image: the images with data, byte-exact, by range
    let args = ["--os-cloud", "osk-appcred", "--keytab", kt.to_str().unwrap(), "-vv"];
    let m = OsMount::start_from(&lab, os("glance://"), "mnt", &env, &args);
    let names: Vec<String> =
        std::fs::read_dir(m.path("")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    for (name, id) in [("user/upload", &id_upload), ("volume cinder", &id_cinder), ("doomed", &id_doomed)] {
        assert!(names.contains(&shown(name, id)), "{} not in {names:?}", shown(name, id));
    }
    assert!(!names.iter().any(|n| n.contains(&id_plain) || n.contains(&id_empty)), "{names:?}");
    let read = |name: &str, id: &str, len: usize| m.read_at(&shown(name, id), 0, len);
    util::assert_same("upload via mount", &read("user/upload", &id_upload, upload.plain.len()).unwrap(), &upload.plain);
    util::assert_same(
        "cinder via mount",
        &read("volume cinder", &id_cinder, cinder.plain.len()).unwrap(),
        &cinder.plain,
    );
    // the keytab line named the image by its id: its (wrong) key, not Barbican's
    m.assert_errno(&shown("keyed", &id_keyed), libc::EACCES);
    // one Keystone token for Glance and Barbican; the listing followed `next`
    assert_eq!(m.log().matches("keystone: POST").count(), 1, "{}", m.log());
    assert!(m.log().contains("/v2/images?") && m.log().contains("marker="), "{}", m.log());
    // deleted under the mount: EIO where bytes are not cached, and the log names the image
    api.delete(&id_doomed);
    let err = m.read_at(&shown("doomed", &id_doomed), 40 * MIB as u64, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(m.log().contains(&id_doomed), "{}", m.log());
    // the others still read
    util::assert_same("upload again", &read("user/upload", &id_upload, upload.plain.len()).unwrap(), &upload.plain);
    drop(m);
    api.clean();
}

/// `OS_IMAGE_ENDPOINT_OVERRIDE` replaces the catalog's `image` endpoint (with the `OS_*`
/// credentials alone, no clouds.yaml): the real Glance at its URL serves the image; a closed port
/// is an I/O error (exit 1) naming that URL.
#[test]
fn glance_endpoint_override() {
    let (osk, glance) = glance!();
    if !util::have(&["qemu-img"]) {
        return;
    }
    let api = Api { url: &glance.url, token: osk.demo_token() };
    let lab = Lab::new();
    let pass = format!("override {}", &random_id()[..8]);
    let secret = osk.store_passphrase(&api.token, &pass);
    let img = lab.qemu_luks("o.luks", mark("override", 512 * KIB), pass.as_bytes(), "");
    let id = api.upload(
        &format!("override {}", &random_id()[..8]),
        json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&secret)}),
        &img.path,
    );
    let mut env: Env = clouds_env(&lab, &lab.root().join("none.yaml"));
    env.extend(osk.os_env());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let with = |url: &str| {
        let mut e = env.clone();
        e.push(("OS_IMAGE_ENDPOINT_OVERRIDE".into(), url.into()));
        e
    };
    run(&with(&format!("{}/v2/", glance.url)), &["cat", &format!("glance://{id}")]).assert_bytes(&img.plain);
    let bad = format!("http://127.0.0.1:{closed}");
    let out = run(&with(&bad), &["cat", &format!("glance://{id}")]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&bad), "{}", out.stderr);
    api.delete(&id);
}

/// `python3 -m http.server` serving a directory on a free port of 127.0.0.1 (stopped on drop): the
/// web server behind images of Glance's http store.
struct WebDir {
    child: std::process::Child,
    url: String,
}

impl WebDir {
    /// Serve `dir`; `probe` (a file in it) answers 200 before this returns.
    fn start(dir: &Path, probe: &str) -> WebDir {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let web = WebDir { child, url: format!("http://127.0.0.1:{port}") };
        let t = Instant::now();
        while agent().get(&web.file(probe)).call().map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(t.elapsed() < Duration::from_secs(20), "python3 -m http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        web
    }

    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }
}

impl Drop for WebDir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new image named `name` (exactly) with `props` whose data is at `url` (Glance's http store,
/// `POST /v2/images/{id}/locations`), once Glance says it is active.
fn located(api: &Api, name: &str, props: Value, url: &str) -> String {
    let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
    body.as_object_mut().unwrap().extend(props.as_object().unwrap().clone());
    let (status, v) = api.call("POST", "/v2/images", Some(body), None);
    assert_eq!(status, 201, "POST /v2/images: {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = api.call("POST", &format!("/v2/images/{id}/locations"), Some(json!({"url": url})), None);
    assert_eq!(status, 202, "POST /v2/images/{id}/locations: {v}");
    let t = Instant::now();
    while api.show(&id)["status"] != "active" {
        assert!(t.elapsed() < Duration::from_secs(30), "image {id} not active: {}", api.show(&id));
        std::thread::sleep(Duration::from_millis(100));
    }
    id
}

/// An image of Glance's http store (its data at a URL, added with `POST .../locations`): Glance
/// answers 400 to a range request for it, and luksfs says plainly that this store cannot serve
/// byte ranges (exit 5, naming the image, pointing at `verify`) instead of reading anything else.
#[test]
fn glance_store_without_ranges() {
    let (osk, glance) = glance!();
    if !util::have(&["qemu-img", "python3"]) {
        return;
    }
    let api = Api { url: &glance.url, token: osk.demo_token() };
    let lab = Lab::new();
    let pass = format!("http store {}", &random_id()[..8]);
    let secret = osk.store_passphrase(&api.token, &pass);
    let img = lab.qemu_luks("web/h.luks", mark("http store", 512 * KIB), pass.as_bytes(), "");
    // the image's data served over HTTP from the lab
    let web = WebDir::start(img.path.parent().unwrap(), "h.luks");
    // not named like the images glance_images_through_mount_cat_inspect_and_verify deletes at its
    // start and end (a delete of the same image by both tests at once fails)
    let id = located(
        &api,
        &format!("luksfs-fwd http {}", &random_id()[..8]),
        json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&secret)}),
        &web.file("h.luks"),
    );
    let env = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    let out = run(&env, &["cat", &format!("glance://{id}"), "--os-cloud", "osk-demo"]);
    assert_eq!(out.code(), 5, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(&id)
            && out.stderr.contains("(400)")
            && out.stderr.contains("cannot serve byte ranges")
            && out.stderr.contains("`luksfs verify` checks such an image in one GET"),
        "{}",
        out.stderr
    );
    api.delete(&id);
    drop(web);
}

/// `verify` of images of Glance's http store (which refuses byte ranges) reads each in one plain
/// GET: a qemu-img LUKS1 image of 40 MiB (several chunks) is OK with the plaintext's and the
/// file's SHA-256, also among `verify glance://`; a byte of the served file flipped after Glance
/// took the location is a FAIL, exit 7 (Glance's os_hash_value, or the image signature); a
/// served file cut short is Corrupt (exit 4) naming the image; a qcow2+LUKS image is refused
/// plainly (exit 5); `cat` still exits 5 and points at `verify`.
#[test]
fn glance_verify_in_one_get() {
    let (osk, glance) = glance!();
    if !util::have(&["qemu-img", "python3", "mkfs.ext4", "openssl"]) {
        return;
    }
    let api = Api { url: &glance.url, token: osk.demo_token() };
    let lab = Lab::new();
    let pass = format!("one get {}", &random_id()[..8]);
    let secret = osk.store_passphrase(&api.token, &pass);
    let img = lab.qemu_luks("web/good.luks", ext4(&lab, "oneget", 40 * MIB), pass.as_bytes(), "");
    let web_dir = img.path.parent().unwrap().to_path_buf();
    let file = std::fs::read(&img.path).unwrap();
    for copy in ["tampered.luks", "short.luks"] {
        std::fs::copy(&img.path, web_dir.join(copy)).unwrap();
    }
    let q = lab.qcow2("web/q.qcow2", ext4(&lab, "q", 2 * MIB), pass.as_bytes(), "", &[]);
    // (cryptsetup reencrypt refuses a plaintext with a partition table: qemu-img makes that one)
    let disk = lab.qemu_luks("web/disk.luks", gpt_disk(&lab, "disk"), pass.as_bytes(), "");
    let l2 = lab.cs_luks2("web/l2.luks2", ext4(&lab, "l2", 8 * MIB), pass.as_bytes(), &[]);
    assert!(q.path.starts_with(&web_dir));
    let web = WebDir::start(&web_dir, "good.luks");
    // not named like this module's other images, whose test deletes those at its start
    let tag = &random_id()[..8];
    let props = json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&secret),
        "os_decrypt_size": img.plain.len().to_string()});
    // the tampered one is signed (RSA-PSS, SHA-256) over the data as Glance took it
    let dir = lab.root();
    let k = crate::signature::key(dir, "fwd-signer", "rsa");
    let cert = osk
        .store_certificate(&api.token, &std::fs::read(crate::signature::self_signed(dir, "fwd-signer", &k)).unwrap());
    let sig = crate::signature::sign(dir, &img.path, &k, "SHA-256", true);
    let mut signed = props.clone();
    signed
        .as_object_mut()
        .unwrap()
        .extend(crate::signature::props(&sig, "SHA-256", "RSA-PSS", id_of(&cert)).as_object().unwrap().clone());
    let good = located(&api, &format!("luksfs-fwd good {tag}"), props.clone(), &web.file("good.luks"));
    let tampered = located(&api, &format!("luksfs-fwd tampered {tag}"), signed, &web.file("tampered.luks"));
    let short = located(&api, &format!("luksfs-fwd short {tag}"), props.clone(), &web.file("short.luks"));
    let qcow = located(&api, &format!("luksfs-fwd qcow2 {tag}"), props.clone(), &web.file("q.qcow2"));
    let plain_props = json!({"os_encrypt_format": "LUKSv1", "os_encrypt_key_id": id_of(&secret)});
    let gpt = located(&api, &format!("luksfs-fwd gpt {tag}"), plain_props, &web.file("disk.luks"));
    let luks2 = located(
        &api,
        &format!("luksfs-fwd luks2 {tag}"),
        json!({"os_encrypt_format": "LUKSv2", "os_encrypt_key_id": id_of(&secret)}),
        &web.file("l2.luks2"),
    );

    let env = clouds_env(&lab, &osk.dir.join("clouds.yaml"));
    let g = |id: &str| format!("glance://{id}");
    let scratch = tempfile::tempdir().unwrap();
    let verify = |id: &str| {
        let out = run(&env, &["verify", "--json", &g(id), "--os-cloud", "osk-demo"]);
        let j: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        crate::status::validate("verify.schema.json", &out.stdout, scratch.path());
        (out, j)
    };

    // 1. read in one GET: OK, the plaintext's and the file's sha256
    let (out, j) = verify(&good);
    assert_eq!(out.code(), 0, "{}\n{j:#}", out.stderr);
    assert_eq!(j["verdict"], "OK", "{j:#}");
    assert_eq!(j["read"], "one GET (store refuses ranges)", "{j:#}");
    assert_eq!(j["sha256"]["plaintext"], util::sha256_hex(&img.plain), "{j:#}");
    assert_eq!(j["sha256"]["ciphertext"], util::sha256_hex(&file), "{j:#}");
    assert_eq!(j["format"], "luks1", "{j:#}");
    assert_eq!(j["openstack"]["decrypt_size_matches"], true, "{j:#}");
    eprintln!("{j:#}");

    let out = run(&env, &["verify", &g(&good), "--os-cloud", "osk-demo"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains("read: one GET (store refuses ranges)"), "{}", out.stderr);

    // 5. cat still refuses, and points at verify
    let out = run(&env, &["cat", &g(&good), "--os-cloud", "osk-demo"]);
    assert_eq!(out.code(), 5, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains(&good) && out.stderr.contains("luksfs verify"), "{}", out.stderr);

    // 3. the served file cut short after Glance took it: Corrupt, naming the image
    let f = std::fs::OpenOptions::new().write(true).open(web_dir.join("short.luks")).unwrap();
    f.set_len(file.len() as u64 / 2).unwrap();
    drop(f);
    let (out, j) = verify(&short);
    eprintln!("short: {} {j:#}", out.stderr);
    assert_eq!(out.code(), 4, "{}\n{j:#}", out.stderr);
    assert_eq!(j["verdict"], "FAIL", "{j:#}");
    assert!(out.stderr.contains(&short) && out.stderr.contains("short body"), "{}", out.stderr);

    // 4. qcow2: refused plainly (its ciphertext hashed all the same)
    let (out, j) = verify(&qcow);
    assert_eq!(out.code(), 5, "{}\n{j:#}", out.stderr);
    assert_eq!(j["format"], "qcow2", "{j:#}");
    assert_eq!(j["sha256"]["ciphertext"], util::sha256_hex(&std::fs::read(&q.path).unwrap()), "{j:#}");
    assert!(j["sha256"]["plaintext"].is_null(), "{j:#}");
    assert!(
        out.stderr.contains(&qcow) && out.stderr.contains("qcow2") && out.stderr.contains("without byte ranges"),
        "{}",
        out.stderr
    );

    // 2. a payload byte flipped after Glance took the location
    let mut bad = file.clone();
    let at = file.len() - 20 * MIB;
    bad[at] ^= 0x01;
    util::write(&web_dir.join("tampered.luks"), &bad);
    let (out, j) = verify(&tampered);
    eprintln!("tampered: {} {j:#}", out.stderr);
    assert_eq!(out.code(), 7, "{}\n{j:#}", out.stderr);

    assert_eq!(j["verdict"], "FAIL", "{j:#}");
    assert_eq!(j["signature"]["verified"], false, "{j:#}");
    assert!(out.stderr.contains("signature does not match the image data"), "{}", out.stderr);

    // 6. the report of a read in one GET is that of a read by range (of the same file, local):
    // a LUKS1 image of a GPT disk (partitions described from their starts, kept as they streamed
    // by) and a cryptsetup LUKS2 image
    for (id, img) in [(&gpt, &disk), (&luks2, &l2)] {
        let (out, j) = verify(id);
        assert_eq!(out.code(), 0, "{}\n{j:#}", out.stderr);
        assert_eq!(j["read"], "one GET (store refuses ranges)", "{j:#}");
        let key = img.key.to_str().unwrap();
        let out = run(&env, &["verify", "--json", img.path.to_str().unwrap(), "--key-file", key]);
        let local: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        assert!(local["read"].is_null(), "{local:#}");
        for k in ["format", "cipher", "key_bits", "sector_size", "payload_offset", "decrypted_size", "key_slot"] {
            assert_eq!(j[k], local[k], "{k}: {j:#}\n{local:#}");
        }
        assert_eq!(j["sha256"], local["sha256"], "{j:#}\n{local:#}");
        assert_eq!(j["plaintext"], local["plaintext"], "{j:#}\n{local:#}");
        assert_eq!(j["sha256"]["plaintext"], util::sha256_hex(&img.plain), "{j:#}");
    }
    assert_eq!(verify(&gpt).1["plaintext"]["partitions"][0]["contents"]["type"], "ext4");
    assert_eq!(verify(&luks2).1["format"], "luks2");

    // every encrypted image of the project: those of the http store read in one GET each
    let out = run(&env, &["verify", "glance://", "--os-cloud", "osk-demo"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("{id}:\n{text}")).to_string();
    assert!(line(&good).starts_with("OK"), "{text}\n{}", out.stderr);
    assert!(line(&good).contains("read in one GET (store refuses ranges)"), "{text}");
    assert!(line(&gpt).starts_with("OK"), "{text}\n{}", out.stderr);
    assert!(line(&tampered).starts_with("FAIL"), "{text}\n{}", out.stderr);
    assert!(line(&qcow).starts_with("FAIL") && line(&qcow).contains("qcow2"), "{text}\n{}", out.stderr);

    for id in [&good, &tampered, &short, &qcow, &gpt, &luks2] {
        api.delete(id);
    }
    drop(web);
}
