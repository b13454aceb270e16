//! The audit's judgement, sans I/O: from the key references found ([`KeyRef`]) and what Barbican
//! said about each key ([`KeyState`]), the keys as reported and the risks ([`Finding`]), each
//! with the commands that would fix it (as text: the audit never changes anything).
//!
//! Risks (exit 6):
//! * `shared_key_deleted_with_image`: a key referenced more than once where an image's deletion
//!   policy is `on_image_deletion` (Launchpad bug 1852106): deleting that image deletes the key,
//!   and every other image, volume or backup that uses it can no longer be decrypted.
//! * `key_missing`: Barbican answers 404 for a referenced key: what uses it can no longer be
//!   decrypted.
//!
//! Not risks, but reported: keys Barbican would not show (403: cannot tell), keys not checked,
//! and whether secret consumers are registered for each reference.

use super::refs::{BadRef, DO_NOT_DELETE, HolderKind, KeyRef};
use serde::Serialize;
use std::collections::BTreeMap;

/// One registered secret consumer (`GET /v1/secrets/{id}/consumers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consumer {
    /// `glance`, `cinder`, ...
    pub service: String,
    /// `image`, `volume`, ...
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
}

/// The consumers of a key, as far as Barbican tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consumers {
    /// Its consumers API answered: these (possibly none).
    Listed(Vec<Consumer>),
    /// Not known, and why (the API is not offered, forbidden, ...).
    Unknown(String),
}

/// What Barbican said about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// It has the secret (200).
    Present(Consumers),
    /// It has no such secret (404).
    Missing,
    /// These credentials may not see it (403): cannot tell whether it exists.
    Forbidden,
    /// Not checked, and why (Barbican unreachable, an unexpected answer).
    NotChecked(String),
}

/// A risk found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `shared_key_deleted_with_image` or `key_missing`.
    pub kind: &'static str,
    /// The key.
    pub key_id: String,
    /// What is wrong, in a sentence.
    pub message: String,
    /// Every reference to the key.
    pub references: Vec<KeyRef>,
    /// Of those, the images whose deletion deletes the key (ids).
    pub deleting_images: Vec<String>,
    /// How to fix it: shell commands and advice, one per line.
    pub fix: Vec<String>,
}

/// How the consumers of a key compare with its references.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerCheck {
    /// `registered` (one for every reference), `partial`, `none`, or `unknown`.
    pub state: &'static str,
    /// The consumers Barbican lists.
    pub registered: Vec<Consumer>,
    /// The references without a consumer (`kind id`), when known.
    pub missing: Vec<String>,
    /// Why it is unknown.
    pub detail: Option<String>,
}

/// One referenced key, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// The secret id.
    pub key_id: String,
    /// Its href at the configured Barbican, when its endpoint is known.
    pub secret_ref: Option<String>,
    /// `present`, `missing`, `forbidden` or `not_checked`.
    pub state: &'static str,
    /// Why it is `not_checked`.
    pub detail: Option<String>,
    /// Every reference to it.
    pub references: Vec<KeyRef>,
    /// Its consumers (for a key Barbican has).
    pub consumers: Option<ConsumerCheck>,
}

/// The judgement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Every referenced key, by id.
    pub keys: Vec<KeyReport>,
    /// The risks, most serious first (missing keys, then shared keys).
    pub findings: Vec<Finding>,
}

/// Judge `refs` by `states` (a key without a state counts as not checked). `barbican`: the
/// Barbican endpoint, for secret hrefs in the fixes.
pub fn judge(refs: &[KeyRef], states: &BTreeMap<String, KeyState>, barbican: Option<&str>) -> Judgement {
    let mut by_key: BTreeMap<&str, Vec<KeyRef>> = BTreeMap::new();
    for r in refs {
        by_key.entry(&r.key_id).or_default().push(r.clone());
    }
    let mut out = Judgement::default();
    let mut shared = Vec::new();
    for (key, mut refs) in by_key {
        refs.sort_by(|a, b| (a.kind, &a.id, a.property).cmp(&(b.kind, &b.id, b.property)));
        let href = barbican.map(|b| format!("{}/v1/secrets/{key}", b.trim_end_matches('/')));
        let not_checked = KeyState::NotChecked("not asked".into());
        let state = states.get(key).unwrap_or(&not_checked);
        let (word, detail, consumers) = match state {
            KeyState::Present(c) => ("present", None, Some(consumer_check(&refs, c))),
            KeyState::Missing => ("missing", None, None),
            KeyState::Forbidden => ("forbidden", None, None),
            KeyState::NotChecked(why) => ("not_checked", Some(why.clone()), None),
        };
        let deleting: Vec<String> = refs.iter().filter(|r| r.deletes_key()).map(|r| r.id.clone()).collect();
        if *state == KeyState::Missing {
            out.findings.push(missing(key, &refs));
        } else if refs.len() > 1 && !deleting.is_empty() {
            shared.push(shared_risk(key, &refs, deleting, href.as_deref(), consumers.as_ref()));
        }
        out.keys.push(KeyReport {
            key_id: key.to_string(),
            secret_ref: href,
            state: word,
            detail,
            references: refs,
            consumers,
        });
    }
    out.findings.extend(shared);
    out
}

fn consumer_check(refs: &[KeyRef], c: &Consumers) -> ConsumerCheck {
    match c {
        Consumers::Unknown(why) => {
            ConsumerCheck { state: "unknown", registered: Vec::new(), missing: Vec::new(), detail: Some(why.clone()) }
        }
        Consumers::Listed(list) => {
            let missing: Vec<String> = refs
                .iter()
                .filter(|r| !list.iter().any(|c| c.resource_type == r.kind.word() && c.resource_id == r.id))
                .map(|r| format!("{} {}", r.kind.word(), r.id))
                .collect();
            let state = match missing.len() {
                0 => "registered",
                n if n == refs.len() => "none",
                _ => "partial",
            };
            ConsumerCheck { state, registered: list.clone(), missing, detail: None }
        }
    }
}

fn describe(r: &KeyRef) -> String {
    let name = if r.name.is_empty() { String::new() } else { format!(" {:?}", r.name) };
    format!("{} {}{name}", r.kind.word(), r.id)
}

fn missing(key: &str, refs: &[KeyRef]) -> Finding {
    let who: Vec<String> = refs.iter().map(describe).collect();
    Finding {
        kind: "key_missing",
        key_id: key.to_string(),
        message: format!("Barbican has no secret {key} (404): {} can no longer be decrypted", who.join(", ")),
        references: refs.to_vec(),
        deleting_images: Vec::new(),
        fix: vec![
            "Restore the secret with the same id from a backup of Barbican's database, if there is one; \
             otherwise the encrypted data of these is lost (keep them until you are sure)."
                .to_string(),
        ],
    }
}

fn shared_risk(
    key: &str,
    refs: &[KeyRef],
    deleting: Vec<String>,
    href: Option<&str>,
    consumers: Option<&ConsumerCheck>,
) -> Finding {
    let others = refs.len() - 1;
    let deleters: Vec<String> = refs.iter().filter(|r| r.deletes_key()).map(describe).collect();
    let message = format!(
        "key {key} is used by {} records ({}); deleting {} deletes the key (on_image_deletion), and the {others} \
         other{} can then no longer be decrypted",
        refs.len(),
        refs.iter().map(describe).collect::<Vec<_>>().join(", "),
        if deleters.len() == 1 { deleters[0].clone() } else { format!("any of {}", deleters.join(", ")) },
        if others == 1 { "" } else { "s" },
    );
    let mut fix = Vec::new();
    fix.push("Keep the key when these images are deleted (Glance then leaves it in Barbican):".to_string());
    for r in refs.iter().filter(|r| r.deletes_key()) {
        if let Some(p) = r.deletion_policy_property {
            fix.push(format!("  openstack image set --property {p}={DO_NOT_DELETE} {}", r.id));
            fix.push(format!("  (or: openstack image unset --property {p} {})", r.id));
        }
    }
    let secret = href.map_or_else(|| format!("<href of secret {key}>"), str::to_string);
    let unregistered: Vec<&KeyRef> = refs
        .iter()
        .filter(|r| {
            // (when the consumers are not known, every user may need one)
            consumers.is_none_or(|c| c.state == "unknown" || c.missing.contains(&format!("{} {}", r.kind.word(), r.id)))
        })
        .collect();
    if !unregistered.is_empty() {
        fix.push(
            "Register each user of the key as a secret consumer (from API 1.2 on, Barbican refuses to \
             delete a secret that has consumers unless forced):"
                .into(),
        );
        for r in unregistered {
            let service = if r.kind == HolderKind::Image { "glance" } else { "cinder" };
            fix.push(format!(
                "  openstack secret consumer create --service-type-name {service} --resource-type {} --resource-id {} {secret}",
                r.kind.word(),
                r.id
            ));
        }
    }
    fix.push(
        "Or re-key: give each image its own copy of the key (create it again from the volume with a Cinder that \
         has the fix for bug 1852106, which clones the key per image), then delete the old images."
            .into(),
    );
    Finding {
        kind: "shared_key_deleted_with_image",
        key_id: key.to_string(),
        message,
        references: refs.to_vec(),
        deleting_images: deleting,
        fix,
    }
}

/// The references whose key id could not be read, as notes.
pub fn bad_ref_notes(bad: &[BadRef]) -> Vec<String> {
    bad.iter()
        .map(|b| {
            format!("{} {}: its {} is not a Barbican secret id or href (not checked)", b.kind.word(), b.id, b.property)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::refs::ON_IMAGE_DELETION;

    const K1: &str = "11111111-1111-4111-8111-111111111111";
    const K2: &str = "22222222-2222-4222-8222-222222222222";
    const K3: &str = "33333333-3333-4333-8333-333333333333";

    fn image(key: &str, id: &str, policy: Option<&str>) -> KeyRef {
        KeyRef {
            key_id: key.into(),
            kind: HolderKind::Image,
            id: id.into(),
            name: format!("name of {id}"),
            property: "cinder_encryption_key_id",
            deletion_policy_property: Some("cinder_encryption_key_deletion_policy"),
            deletion_policy: policy.map(str::to_string),
        }
    }

    fn volume(key: &str, id: &str) -> KeyRef {
        KeyRef {
            key_id: key.into(),
            kind: HolderKind::Volume,
            id: id.into(),
            name: String::new(),
            property: "encryption_key_id",
            deletion_policy_property: None,
            deletion_policy: None,
        }
    }

    fn present() -> KeyState {
        KeyState::Present(Consumers::Listed(Vec::new()))
    }

    #[test]
    fn clean_when_keys_are_not_shared_or_not_deleted_with_an_image() {
        let refs = [
            image(K1, "a", Some(ON_IMAGE_DELETION)),
            image(K2, "b", Some(DO_NOT_DELETE)),
            image(K2, "c", None),
            volume(K2, "v"),
        ];
        let states = BTreeMap::from([(K1.to_string(), present()), (K2.to_string(), present())]);
        let j = judge(&refs, &states, Some("http://b:9311/"));
        assert!(j.findings.is_empty(), "{:?}", j.findings);
        assert_eq!(j.keys.len(), 2);
        assert_eq!(j.keys[1].references.len(), 3);
        assert_eq!(j.keys[0].secret_ref.as_deref(), Some(format!("http://b:9311/v1/secrets/{K1}").as_str()));
        assert_eq!(j.keys[0].consumers.as_ref().unwrap().state, "none");
    }

    #[test]
    fn a_shared_key_one_image_deletes_is_a_risk_with_fixes() {
        let refs = [image(K1, "a", Some(ON_IMAGE_DELETION)), image(K1, "b", None), volume(K1, "v")];
        let consumers = Consumers::Listed(vec![Consumer {
            service: "cinder".into(),
            resource_type: "volume".into(),
            resource_id: "v".into(),
        }]);
        let states = BTreeMap::from([(K1.to_string(), KeyState::Present(consumers))]);
        let j = judge(&refs, &states, Some("http://b:9311"));
        assert_eq!(j.findings.len(), 1);
        let f = &j.findings[0];
        assert_eq!(f.kind, "shared_key_deleted_with_image");
        assert_eq!(f.deleting_images, ["a"]);
        assert!(f.message.contains("image a") && f.message.contains("2 others"), "{}", f.message);
        let fix = f.fix.join("\n");
        assert!(fix.contains("openstack image set --property cinder_encryption_key_deletion_policy=do_not_delete a"));
        assert!(fix.contains("openstack image unset --property cinder_encryption_key_deletion_policy a"));
        // consumers for the two images, not for the volume that has one
        assert!(fix.contains(&format!("--resource-type image --resource-id b http://b:9311/v1/secrets/{K1}")));
        assert!(!fix.contains("--resource-id v "), "{fix}");
        let c = j.keys[0].consumers.as_ref().unwrap();
        assert_eq!((c.state, c.missing.len()), ("partial", 2));
    }

    #[test]
    fn missing_keys_come_first_and_forbidden_is_not_missing() {
        let refs = [
            image(K1, "a", Some(ON_IMAGE_DELETION)),
            image(K1, "b", Some(ON_IMAGE_DELETION)),
            image(K2, "c", None),
            image(K3, "d", None),
        ];
        let states = BTreeMap::from([
            (K1.to_string(), KeyState::Present(Consumers::Unknown("no consumers API (404)".into()))),
            (K2.to_string(), KeyState::Missing),
            (K3.to_string(), KeyState::Forbidden),
        ]);
        let j = judge(&refs, &states, None);
        let kinds: Vec<&str> = j.findings.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ["key_missing", "shared_key_deleted_with_image"]);
        assert_eq!(j.findings[1].deleting_images, ["a", "b"]);
        assert!(j.findings[1].message.contains("any of image a"), "{}", j.findings[1].message);
        assert!(j.findings[1].fix.join("\n").contains(&format!("<href of secret {K1}>")));
        let states: Vec<&str> = j.keys.iter().map(|k| k.state).collect();
        assert_eq!(states, ["present", "missing", "forbidden"]);
        assert_eq!(j.keys[0].consumers.as_ref().unwrap().state, "unknown");
    }

    #[test]
    fn unchecked_keys_are_not_risks() {
        let refs = [image(K1, "a", None)];
        let j = judge(&refs, &BTreeMap::new(), None);
        assert!(j.findings.is_empty());
        assert_eq!((j.keys[0].state, j.keys[0].detail.as_deref()), ("not_checked", Some("not asked")));
    }
}
