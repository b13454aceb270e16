//! Glance image metadata sidecars: `<image file>.json` next to an image, holding what
//! `openstack image show -f json IMAGE` prints or the raw `GET /v2/images/{id}` body.
//!
//! ```text
//! openstack image save --file imgs/vol-7.img IMAGE_ID
//! openstack image show -f json IMAGE_ID > imgs/vol-7.img.json
//! ```
//!
//! Image properties may sit top-level (the raw Glance API, newer clients) or under `properties`,
//! which is a JSON object in current openstackclient and, in some older client versions, a string
//! like `"os_encrypt_key_id='…', os_decrypt_size='…'"` (osc-lib's `format_dict`). A top-level
//! value wins over one under `properties`. Glance property values are strings; numbers are also
//! accepted.
//!
//! The key: `os_encrypt_key_id` (user-uploaded encrypted images), else `cinder_encryption_key_id`
//! (images made from encrypted Cinder volumes). Both name a Barbican secret; see
//! [`crate::keys::barbican`] for how its payload becomes the LUKS passphrase.
//!
//! A malformed sidecar is a [`ErrorKind::Usage`](crate::ErrorKind::Usage) error (exit 2) naming
//! the file and the property: it is user-supplied configuration, not part of the image.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::Error;

/// Sidecar files larger than this are refused (Glance metadata is a few KiB).
const MAX_SIDECAR_BYTES: u64 = 4 << 20;

/// The parts of Glance image metadata luksfs uses. Every field is optional: sidecars are often
/// hand-trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageMeta {
    /// Glance image id.
    pub id: Option<String>,
    /// Image name.
    pub name: Option<String>,
    /// `disk_format`: `luks` (new), `raw` (Cinder), `qcow2`, ...
    pub disk_format: Option<String>,
    /// `os_encrypt_format`, e.g. `LUKSv1`.
    pub encrypt_format: Option<String>,
    /// Barbican secret id: `os_encrypt_key_id`, else `cinder_encryption_key_id`.
    pub key_id: Option<String>,
    /// `os_decrypt_size`: the plaintext size in bytes.
    pub decrypt_size: Option<u64>,
    /// `os_hash_algo` (e.g. `sha512`), the hash of the stored (encrypted) image data.
    pub hash_algo: Option<String>,
    /// `os_hash_value`, hex.
    pub hash_value: Option<String>,
    /// `checksum`: legacy MD5 of the stored image data, hex.
    pub checksum: Option<String>,
    /// `img_signature`, `img_signature_hash_method`, `img_signature_key_type`,
    /// `img_signature_certificate_uuid` (see [`crate::signature`]), unchecked.
    pub signature: crate::signature::Properties,
}

impl ImageMeta {
    /// Parse sidecar JSON text. Errors are [`ErrorKind::Usage`](crate::ErrorKind::Usage) without a
    /// path (the caller attaches it; [`load`] does).
    pub fn parse(text: &str) -> Result<ImageMeta, Error> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| Error::usage(format!("not valid Glance image JSON: {e}")))?;
        Self::from_value(&root)
    }

    /// From a parsed Glance image record (`GET /v2/images/{id}`: what a sidecar holds).
    pub fn from_value(root: &Value) -> Result<ImageMeta, Error> {
        let Value::Object(top) = root else {
            return Err(Error::usage("not valid Glance image JSON: expected an object"));
        };
        let props = Props::new(top)?;
        let key_id = props.string("os_encrypt_key_id")?.or(props.string("cinder_encryption_key_id")?);
        let decrypt_size = match props.string("os_decrypt_size")? {
            None => None,
            Some(s) => Some(
                s.parse::<u64>().map_err(|_| Error::usage(format!("os_decrypt_size {s:?} is not a size in bytes")))?,
            ),
        };
        Ok(ImageMeta {
            id: props.string("id")?,
            name: props.string("name")?,
            disk_format: props.string("disk_format")?,
            encrypt_format: props.string("os_encrypt_format")?,
            key_id,
            decrypt_size,
            hash_algo: props.string("os_hash_algo")?,
            hash_value: props.string("os_hash_value")?,
            checksum: props.string("checksum")?,
            signature: crate::signature::Properties {
                signature: props.string("img_signature")?,
                hash_method: props.string("img_signature_hash_method")?,
                key_type: props.string("img_signature_key_type")?,
                certificate_uuid: props.string("img_signature_certificate_uuid")?,
            },
        })
    }
}

/// Property lookup over the top level, then `properties` (object or `format_dict` string).
struct Props<'a> {
    top: &'a Map<String, Value>,
    nested: Nested<'a>,
}

enum Nested<'a> {
    None,
    Object(&'a Map<String, Value>),
    Pairs(Vec<(String, String)>),
}

impl<'a> Props<'a> {
    fn new(top: &'a Map<String, Value>) -> Result<Self, Error> {
        let nested = match top.get("properties") {
            None | Some(Value::Null) => Nested::None,
            Some(Value::Object(m)) => Nested::Object(m),
            Some(Value::String(s)) => Nested::Pairs(parse_format_dict(s)),
            Some(_) => return Err(Error::usage("\"properties\" is neither an object nor a string")),
        };
        Ok(Props { top, nested })
    }

    /// The value of `key` as a string: `None` when absent, null or empty.
    fn string(&self, key: &str) -> Result<Option<String>, Error> {
        if let Some(v) = self.top.get(key)
            && let Some(s) = scalar(key, v)?
        {
            return Ok(Some(s));
        }
        match &self.nested {
            Nested::None => Ok(None),
            Nested::Object(m) => match m.get(key) {
                Some(v) => scalar(key, v),
                None => Ok(None),
            },
            Nested::Pairs(p) => {
                Ok(p.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty() && v != "None"))
            }
        }
    }
}

fn scalar(key: &str, v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(Error::usage(format!("property {key} is not a string"))),
    }
}

/// Parse osc-lib's `format_dict` rendering: `a='1', b='two'` (keys sorted, values in single
/// quotes, no escaping). A value runs to the next `', ` that is followed by `name='`, or to the
/// final quote.
fn parse_format_dict(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find("='") else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let body = &rest[eq + 2..];
        // find the closing quote: "', " followed by an identifier and "='", or the last quote
        let mut end = None;
        let mut from = 0;
        while let Some(i) = body[from..].find("', ") {
            let at = from + i;
            let after = &body[at + 3..];
            let ident_len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
                .count();
            if ident_len > 0 && after[ident_len..].starts_with("='") {
                end = Some((at, at + 3));
                break;
            }
            from = at + 1;
        }
        match end {
            Some((vend, next)) => {
                out.push((key, body[..vend].to_string()));
                rest = &body[next..];
            }
            None => {
                let v = body.strip_suffix('\'').unwrap_or(body);
                out.push((key, v.to_string()));
                break;
            }
        }
    }
    out
}

/// The sidecar of `image`: the image path with `.json` appended (`vol-7.img` → `vol-7.img.json`).
pub fn sidecar_path(image: &Path) -> PathBuf {
    let mut s: OsString = image.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Whether `path` names a sidecar (so directory listings hide it): any `*.json` file with a
/// non-empty stem. Purely by name; an image file called `x.json` would be hidden too.
pub fn is_sidecar(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.len() > 5 && name.get(name.len() - 5..).is_some_and(|ext| ext.eq_ignore_ascii_case(".json"))
}

/// Read and parse the sidecar at `path`; `Ok(None)` when there is no such file. Errors carry the
/// sidecar's path: [`ErrorKind::Usage`](crate::ErrorKind::Usage) for malformed content,
/// [`ErrorKind::Io`](crate::ErrorKind::Io) when it can't be read.
pub fn load(path: &Path) -> Result<Option<ImageMeta>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from_io("cannot open image metadata", &e).with_path(path)),
    };
    let mut text = String::new();
    file.take(MAX_SIDECAR_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::from_io("cannot read image metadata", &e).with_path(path))?;
    if text.len() as u64 > MAX_SIDECAR_BYTES {
        return Err(Error::usage(format!("image metadata larger than {MAX_SIDECAR_BYTES} bytes")).with_path(path));
    }
    let meta = ImageMeta::parse(&text).map_err(|e| e.with_path(path))?;
    log::debug!(
        "{}: image metadata: id {:?}, key id {:?}, decrypt size {:?}",
        path.display(),
        meta.id,
        meta.key_id,
        meta.decrypt_size
    );
    Ok(Some(meta))
}

/// [`load`] the sidecar of `image` (see [`sidecar_path`]).
pub fn load_for_image(image: &Path) -> Result<Option<ImageMeta>, Error> {
    load(&sidecar_path(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// `openstack image show -f json` from python-openstackclient 6+/7+ (properties as an object).
    const OSC_DICT: &str = r#"{
  "checksum": "2d1e3f0c0e4bb0b8d66fb1ae24e0e7f4",
  "container_format": "bare",
  "created_at": "2026-11-20T10:11:12Z",
  "disk_format": "luks",
  "file": "/v2/images/0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f/file",
  "id": "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f",
  "min_disk": 0,
  "min_ram": 0,
  "name": "vol-7",
  "owner": "94dfdeec377141b9aee5930a38f7b412",
  "properties": {
    "os_encrypt_format": "LUKSv1",
    "os_encrypt_key_id": "8a3f6c1e-5b2d-4f7a-9c0e-1d2b3c4d5e6f",
    "os_encrypt_key_deletion_policy": "on_image_deletion",
    "os_decrypt_container_format": "bare",
    "os_decrypt_size": "1073741824",
    "os_hash_algo": "sha512",
    "os_hash_value": "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043",
    "os_hidden": false,
    "stores": "file"
  },
  "protected": false,
  "schema": "/v2/schemas/image",
  "size": 1090519040,
  "status": "active",
  "tags": [],
  "updated_at": "2026-11-20T10:12:00Z",
  "visibility": "private"
}"#;

    /// Raw `GET /v2/images/{id}` of an image uploaded from an encrypted Cinder volume.
    const RAW_CINDER: &str = r#"{"container_format": "bare", "min_ram": 0, "updated_at": "2026-11-21T08:00:00Z",
  "file": "/v2/images/5e1f.../file", "owner": "abc", "id": "5e1fbd3a-7f61-4c1c-8a8c-2b3d4e5f6a7b",
  "size": 1073741824, "self": "/v2/images/5e1fbd3a-7f61-4c1c-8a8c-2b3d4e5f6a7b",
  "disk_format": "raw", "os_hash_algo": "sha512", "schema": "/v2/schemas/image", "status": "active",
  "tags": [], "visibility": "private", "min_disk": 1, "virtual_size": null, "name": "vol-from-cinder",
  "checksum": "c4ca4238a0b923820dcc509a6f75849b", "created_at": "2026-11-21T07:59:00Z",
  "cinder_encryption_key_id": "1b2c3d4e-0000-4000-8000-111122223333",
  "cinder_encryption_key_deletion_policy": "on_image_deletion",
  "os_hidden": false, "protected": false, "os_hash_value": "ab12", "stores": "file"}"#;

    /// Older openstackclient: properties rendered by osc-lib's format_dict.
    const OSC_STRING: &str = r#"{
  "disk_format": "qcow2",
  "id": "11111111-2222-3333-4444-555555555555",
  "name": "qcow-luks",
  "properties": "os_decrypt_size='2147483648', os_encrypt_format='LUKSv1', os_encrypt_key_id='77777777-8888-4999-aaaa-bbbbbbbbbbbb', os_hash_algo='sha512', os_hash_value='ff00', owner_specified.openstack.md5='', stores='file'",
  "checksum": "d41d8cd98f00b204e9800998ecf8427e"
}"#;

    #[test]
    fn osc_dict_properties() {
        let m = ImageMeta::parse(OSC_DICT).unwrap();
        assert_eq!(m.id.as_deref(), Some("0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f"));
        assert_eq!(m.name.as_deref(), Some("vol-7"));
        assert_eq!(m.disk_format.as_deref(), Some("luks"));
        assert_eq!(m.encrypt_format.as_deref(), Some("LUKSv1"));
        assert_eq!(m.key_id.as_deref(), Some("8a3f6c1e-5b2d-4f7a-9c0e-1d2b3c4d5e6f"));
        assert_eq!(m.decrypt_size, Some(1073741824));
        assert_eq!(m.hash_algo.as_deref(), Some("sha512"));
        assert!(m.hash_value.as_deref().unwrap().starts_with("9b71d224"));
        assert_eq!(m.checksum.as_deref(), Some("2d1e3f0c0e4bb0b8d66fb1ae24e0e7f4"));
    }

    #[test]
    fn raw_api_cinder_key() {
        let m = ImageMeta::parse(RAW_CINDER).unwrap();
        assert_eq!(m.key_id.as_deref(), Some("1b2c3d4e-0000-4000-8000-111122223333"));
        assert_eq!(m.disk_format.as_deref(), Some("raw"));
        assert_eq!(m.encrypt_format, None);
        assert_eq!(m.decrypt_size, None);
        assert_eq!(m.hash_value.as_deref(), Some("ab12"));
    }

    #[test]
    fn format_dict_string_properties() {
        let m = ImageMeta::parse(OSC_STRING).unwrap();
        assert_eq!(m.key_id.as_deref(), Some("77777777-8888-4999-aaaa-bbbbbbbbbbbb"));
        assert_eq!(m.decrypt_size, Some(2147483648));
        assert_eq!(m.encrypt_format.as_deref(), Some("LUKSv1"));
        assert_eq!(m.hash_algo.as_deref(), Some("sha512"));
        assert_eq!(m.hash_value.as_deref(), Some("ff00"));
        assert_eq!(m.disk_format.as_deref(), Some("qcow2"));
    }

    #[test]
    fn format_dict_values_with_quotes_and_commas() {
        let p = parse_format_dict("a='x, y', b='it's', c=''");
        assert_eq!(p, vec![("a".into(), "x, y".into()), ("b".into(), "it's".into()), ("c".into(), "".into())]);
        assert!(parse_format_dict("").is_empty());
    }

    #[test]
    fn os_encrypt_key_id_beats_cinder_and_top_level_beats_properties() {
        let m = ImageMeta::parse(
            r#"{"cinder_encryption_key_id": "c", "os_encrypt_key_id": "o",
                "properties": {"os_encrypt_key_id": "nested", "os_decrypt_size": 5}}"#,
        )
        .unwrap();
        assert_eq!(m.key_id.as_deref(), Some("o"));
        assert_eq!(m.decrypt_size, Some(5));
        let m =
            ImageMeta::parse(r#"{"properties": {"cinder_encryption_key_id": "c", "os_encrypt_key_id": ""}}"#).unwrap();
        assert_eq!(m.key_id.as_deref(), Some("c"));
    }

    #[test]
    fn signature_properties_top_level_nested_and_format_dict() {
        let m = ImageMeta::parse(
            r#"{"img_signature": "c2ln", "properties": {"img_signature_hash_method": "SHA-256",
                "img_signature_key_type": "RSA-PSS",
                "img_signature_certificate_uuid": "0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f"}}"#,
        )
        .unwrap();
        assert_eq!(m.signature.signature.as_deref(), Some("c2ln"));
        assert_eq!(m.signature.hash_method.as_deref(), Some("SHA-256"));
        assert_eq!(m.signature.key_type.as_deref(), Some("RSA-PSS"));
        assert_eq!(m.signature.parse().unwrap().signature, b"sig");
        let m = ImageMeta::parse(
            r#"{"properties": "img_signature='c2ln', img_signature_certificate_uuid='0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f', img_signature_hash_method='SHA-512', img_signature_key_type='ECC_SECP521R1'"}"#,
        )
        .unwrap();
        assert_eq!(m.signature.parse().unwrap().key_type, crate::signature::KeyType::EccSecp521r1);
        assert!(ImageMeta::parse(OSC_DICT).unwrap().signature.is_empty());
    }

    #[test]
    fn empty_and_null_are_absent() {
        let m = ImageMeta::parse(r#"{"id": null, "name": "", "properties": null}"#).unwrap();
        assert_eq!(m, ImageMeta::default());
    }

    #[test]
    fn malformed_is_usage_error() {
        for bad in ["", "[1]", "{\"properties\": 3}", "{\"os_decrypt_size\": \"12 GiB\"}", "{\"id\": [1]}"] {
            let e = ImageMeta::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{bad}: {e}");
        }
        let e = ImageMeta::parse("{\"os_decrypt_size\": \"-1\"}").unwrap_err();
        assert!(e.message().contains("os_decrypt_size"), "{e}");
    }

    #[test]
    fn paths() {
        assert_eq!(sidecar_path(Path::new("imgs/vol-7.img")), PathBuf::from("imgs/vol-7.img.json"));
        assert_eq!(sidecar_path(Path::new("noext")), PathBuf::from("noext.json"));
        assert!(is_sidecar(Path::new("imgs/vol-7.img.json")));
        assert!(is_sidecar(Path::new("X.JSON")));
        assert!(!is_sidecar(Path::new(".json")));
        assert!(!is_sidecar(Path::new("vol-7.img")));
        assert!(!is_sidecar(Path::new("json")));
    }

    #[test]
    fn load_absent_present_and_bad() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.img");
        assert_eq!(load_for_image(&img).unwrap(), None);
        std::fs::write(sidecar_path(&img), OSC_DICT).unwrap();
        assert_eq!(load_for_image(&img).unwrap().unwrap().decrypt_size, Some(1073741824));
        std::fs::write(sidecar_path(&img), "{").unwrap();
        let e = load_for_image(&img).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(e.path(), Some(sidecar_path(&img).as_path()));
    }
}
