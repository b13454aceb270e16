//! The image-signature check of `verify` (`img_signature*` in an image's metadata) as report
//! fields and a verdict ([`crate::signature`] does the cryptography).

use super::verify::Checks;
use crate::keys::sidecar;
use crate::signature::SignatureError;
use serde_json::{Value, json};

/// The raw `img_signature*` properties of the image's metadata.
pub(crate) fn meta_props(meta: &Option<sidecar::ImageMeta>) -> crate::signature::Properties {
    meta.as_ref().map(|m| m.signature.clone()).unwrap_or_default()
}

/// Check an image signature whose properties parsed to `parsed`, over the ciphertext's `digest`
/// (by its hash method): fetch the certificate, check it and the signature. Returns the
/// `signature` JSON object and, when it is not verified, why.
pub(crate) fn check_signature(
    parsed: std::result::Result<crate::signature::Request, SignatureError>,
    digest: Option<&[u8]>,
    checks: &Checks,
    props: &crate::signature::Properties,
) -> (Value, Option<String>) {
    let mut j = json!({
        "key_type": props.key_type, "hash_method": props.hash_method,
        "certificate_uuid": props.certificate_uuid, "certificate": null,
        "ca": checks.ca.as_ref().map(|_| "checked").unwrap_or("not checked (no --ca)"),
        "verified": false, "reason": null,
    });
    let outcome = parsed.and_then(|req| {
        let digest = digest.ok_or_else(|| SignatureError::BadKey {
            key_type: req.key_type.name(),
            reason: "the image data was not hashed".into(),
        })?;
        let cert = checks.keyring.certificate(&req.certificate_uuid).map_err(|e| {
            let (uuid, reason) = (req.certificate_uuid.clone(), e.message().to_string());
            match e.kind() {
                // a secret of another type
                crate::ErrorKind::Usage => SignatureError::NotACertificate { uuid, reason },
                _ => SignatureError::Unavailable { uuid, reason },
            }
        })?;
        let anchors = checks.ca.as_deref().map(Vec::as_slice);
        let c = crate::signature::verify(&req, digest, &cert, anchors, std::time::SystemTime::now());
        if let Some(i) = &c.certificate {
            j["certificate"] = cert_json(i);
        }
        if let Some(a) = &c.anchor {
            j["ca"] = json!(format!("chains to {a}"));
        }
        c.result
    });
    match outcome {
        Ok(()) => {
            j["verified"] = json!(true);
            (j, None)
        }
        Err(e) => {
            let reason = e.to_string();
            j["reason"] = json!(reason);
            (j, Some(reason))
        }
    }
}

pub(crate) fn cert_json(c: &crate::signature::CertInfo) -> Value {
    json!({"subject": c.subject, "issuer": c.issuer, "serial": c.serial,
           "not_before": c.not_before, "not_after": c.not_after})
}
