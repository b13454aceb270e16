//! The Barbican key references of OpenStack records: which key an image, volume or backup says
//! it is encrypted with, and (for images) what Glance does with that key when the image is
//! deleted. Pure: records in, [`KeyRef`]s out.
//!
//! | record | key property | deletion policy property |
//! |---|---|---|
//! | Glance image, encrypted upload | `os_encrypt_key_id` | `os_encrypt_key_deletion_policy` |
//! | Glance image made from a Cinder volume | `cinder_encryption_key_id` | `cinder_encryption_key_deletion_policy` |
//! | Cinder volume, backup (API ≥ 3.64) | `encryption_key_id` | (none: Cinder's own rules) |

use crate::keys::barbican::parse_secret_ref;
use serde::Serialize;
use serde_json::Value;

/// The deletion policy under which Glance deletes an image's key with the image.
pub const ON_IMAGE_DELETION: &str = "on_image_deletion";
/// The deletion policy that keeps the key when the image is deleted.
pub const DO_NOT_DELETE: &str = "do_not_delete";

/// What kind of record holds a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// A Glance image.
    Image,
    /// A Cinder volume.
    Volume,
    /// A Cinder backup.
    Backup,
}

impl HolderKind {
    /// `image`, `volume`, `backup`.
    pub fn word(self) -> &'static str {
        match self {
            HolderKind::Image => "image",
            HolderKind::Volume => "volume",
            HolderKind::Backup => "backup",
        }
    }
}

/// One record naming one Barbican key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// The secret id (a UUID; an href in the record counts by its id).
    pub key_id: String,
    /// Image, volume or backup.
    pub kind: HolderKind,
    /// Its id.
    pub id: String,
    /// Its name (may be empty).
    pub name: String,
    /// The property that names the key.
    pub property: &'static str,
    /// The image's deletion policy property, when it has one.
    pub deletion_policy_property: Option<&'static str>,
    /// Its value (`on_image_deletion`, `do_not_delete`, ...), when set.
    pub deletion_policy: Option<String>,
}

impl KeyRef {
    /// Whether deleting this record deletes the key: an image whose policy is
    /// `on_image_deletion`.
    pub fn deletes_key(&self) -> bool {
        self.kind == HolderKind::Image && self.deletion_policy.as_deref() == Some(ON_IMAGE_DELETION)
    }
}

/// A reference whose key id is not a Barbican secret id or href.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadRef {
    /// Image, volume or backup.
    pub kind: HolderKind,
    /// Its id.
    pub id: String,
    /// The property.
    pub property: &'static str,
}

/// What the records of one kind reference.
#[derive(Debug, Default)]
pub struct Found {
    /// Usable references.
    pub refs: Vec<KeyRef>,
    /// Unusable ones.
    pub bad: Vec<BadRef>,
}

fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

impl Found {
    fn add(&mut self, record: &Value, kind: HolderKind, property: &'static str, policy_property: Option<&'static str>) {
        let Some(raw) = text(record, property) else { return };
        let id = text(record, "id").unwrap_or("").to_string();
        match parse_secret_ref(raw) {
            Ok(key_id) => self.refs.push(KeyRef {
                key_id: key_id.to_ascii_lowercase(),
                kind,
                name: text(record, "name").unwrap_or("").to_string(),
                id,
                property,
                deletion_policy_property: policy_property,
                deletion_policy: policy_property.and_then(|p| text(record, p)).map(str::to_string),
            }),
            Err(_) => self.bad.push(BadRef { kind, id, property }),
        }
    }

    /// The keys a Glance image record (`GET /v2/images/{id}`: properties are top-level) names.
    pub fn image(&mut self, record: &Value) {
        self.add(record, HolderKind::Image, "os_encrypt_key_id", Some("os_encrypt_key_deletion_policy"));
        self.add(record, HolderKind::Image, "cinder_encryption_key_id", Some("cinder_encryption_key_deletion_policy"));
    }

    /// The key a Cinder volume or backup record (`…/detail` at API 3.64) names.
    pub fn cinder(&mut self, record: &Value, kind: HolderKind) {
        self.add(record, kind, "encryption_key_id", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K: &str = "8a3f6c1e-5b2d-4f7a-9c0e-1d2b3c4d5e6f";

    #[test]
    fn image_properties() {
        let mut f = Found::default();
        f.image(&json!({"id": "i1", "name": "snap", "cinder_encryption_key_id": K,
            "cinder_encryption_key_deletion_policy": "on_image_deletion"}));
        f.image(&json!({"id": "i2", "os_encrypt_key_id": format!("https://kms:9311/v1/secrets/{}", K.to_uppercase()),
            "os_encrypt_key_deletion_policy": " do_not_delete "}));
        f.image(&json!({"id": "i3", "name": "plain"}));
        f.image(&json!({"id": "i4", "os_encrypt_key_id": "", "cinder_encryption_key_id": "not a key/.."}));
        assert_eq!(f.refs.len(), 2);
        assert!(f.refs.iter().all(|r| r.key_id == K));
        assert!(f.refs[0].deletes_key());
        assert_eq!(f.refs[0].deletion_policy_property, Some("cinder_encryption_key_deletion_policy"));
        assert!(!f.refs[1].deletes_key());
        assert_eq!(f.refs[1].deletion_policy.as_deref(), Some(DO_NOT_DELETE));
        assert_eq!(f.bad, [BadRef { kind: HolderKind::Image, id: "i4".into(), property: "cinder_encryption_key_id" }]);
    }

    #[test]
    fn cinder_records() {
        let mut f = Found::default();
        f.cinder(&json!({"id": "v1", "name": "data", "encrypted": true, "encryption_key_id": K}), HolderKind::Volume);
        f.cinder(&json!({"id": "v2", "encrypted": false, "encryption_key_id": null}), HolderKind::Volume);
        f.cinder(&json!({"id": "b1", "encryption_key_id": K}), HolderKind::Backup);
        assert_eq!(f.refs.len(), 2);
        assert_eq!(f.refs[1].kind, HolderKind::Backup);
        // a volume's key goes with Cinder's rules, not an image deletion policy
        assert!(f.refs.iter().all(|r| !r.deletes_key() && r.deletion_policy_property.is_none()));
    }
}
