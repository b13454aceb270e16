//! The signing certificate: parsing (PEM or DER), its validity period, and its chain to trusted
//! certificates (`verify --ca FILE`).
//!
//! Trust: every certificate in the `--ca` bundle is a trust anchor (as `openssl verify
//! -partial_chain -CAfile FILE` treats them). The signing certificate is trusted when it is one
//! of them, or when one of them whose subject is its issuer, that is a CA (basicConstraints
//! `cA`, or a self-issued certificate without basicConstraints) and is itself within its
//! validity period, signed it ([`super::key::verify_certificate`] over the DER of its
//! `tbsCertificate`). Glance stores no intermediates, so an intermediate CA belongs in the bundle.

use std::time::SystemTime;

use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use super::SignatureError;

/// Largest certificate or `--ca` bundle accepted (bytes).
pub const MAX_CERT_BYTES: usize = 1 << 20;

/// What a report says about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, RFC 4514 (`CN=signer,O=Example`).
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

impl CertInfo {
    /// The facts of `c`.
    pub fn of(c: &Certificate) -> CertInfo {
        let t = c.tbs_certificate();
        CertInfo {
            subject: t.subject().to_string(),
            issuer: t.issuer().to_string(),
            serial: hex::encode(t.serial_number().as_bytes()),
            not_before: t.validity().not_before.to_date_time().to_string(),
            not_after: t.validity().not_after.to_date_time().to_string(),
        }
    }
}

/// One certificate, PEM (`-----BEGIN CERTIFICATE-----`, text before it allowed as in a file
/// written by `openssl x509 -text`; of several, the first) or DER. Castellan hands Glance DER;
/// the RHOSP guide stores the PEM file.
pub fn parse(payload: &[u8]) -> Result<Certificate, String> {
    if payload.len() > MAX_CERT_BYTES {
        return Err(format!("{} bytes, more than the {MAX_CERT_BYTES} allowed", payload.len()));
    }
    let trimmed = payload.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") || find(payload, b"-----BEGIN CERTIFICATE-----").is_some() {
        let start = find(payload, b"-----BEGIN CERTIFICATE-----")
            .ok_or("a PEM document, but not a certificate (no BEGIN CERTIFICATE)")?;
        let mut certs =
            Certificate::load_pem_chain(&payload[start..]).map_err(|e| format!("bad PEM certificate: {e}"))?;
        return if certs.is_empty() { Err("no PEM certificate in it".into()) } else { Ok(certs.swap_remove(0)) };
    }
    if payload.is_empty() {
        return Err("the secret is empty".into());
    }
    Certificate::from_der(payload).map_err(|e| format!("neither PEM nor a DER certificate ({e})"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every certificate of a PEM bundle (`--ca FILE`); an error when there is none or one is bad.
pub fn parse_bundle(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    if pem.len() > MAX_CERT_BYTES {
        return Err(format!("{} bytes, more than the {MAX_CERT_BYTES} allowed", pem.len()));
    }
    let start = find(pem, b"-----BEGIN CERTIFICATE-----").ok_or("no PEM certificate (BEGIN CERTIFICATE) in it")?;
    let certs = Certificate::load_pem_chain(&pem[start..]).map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

/// Seconds since the Unix epoch (negative before it).
fn unix(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    }
}

/// `c`'s validity period includes `now` (notBefore <= now <= notAfter, RFC 5280 4.1.2.5).
pub fn check_validity(c: &Certificate, now: SystemTime) -> Result<(), SignatureError> {
    let v = c.tbs_certificate().validity();
    let now = unix(now);
    let subject = c.tbs_certificate().subject().to_string();
    if now < i128::from(v.not_before.to_unix_duration().as_secs()) {
        return Err(SignatureError::NotYetValid { subject, not_before: v.not_before.to_date_time().to_string() });
    }
    if now > i128::from(v.not_after.to_unix_duration().as_secs()) {
        return Err(SignatureError::Expired { subject, not_after: v.not_after.to_date_time().to_string() });
    }
    Ok(())
}

/// Whether `c` may issue certificates: basicConstraints with `cA`, or, without that extension,
/// a self-issued certificate (a v1 root).
fn is_ca(c: &Certificate) -> Result<bool, String> {
    let t = c.tbs_certificate();
    match t.get_extension::<BasicConstraints>() {
        Ok(Some((_, bc))) => Ok(bc.ca),
        Ok(None) => Ok(t.subject() == t.issuer()),
        Err(e) => Err(format!("its basicConstraints cannot be read: {e}")),
    }
}

/// Check that `leaf` chains to one of `anchors` at `now`; returns the anchor's subject.
pub fn chain(leaf: &Certificate, anchors: &[Certificate], now: SystemTime) -> Result<String, SignatureError> {
    let t = leaf.tbs_certificate();
    let subject = t.subject().to_string();
    let untrusted = |reason: String| SignatureError::Untrusted { subject: subject.clone(), reason };
    if anchors.iter().any(|a| a == leaf) {
        return Ok(subject.clone());
    }
    let tbs = t.to_der().map_err(|e| untrusted(format!("its tbsCertificate cannot be encoded: {e}")))?;
    let sig =
        leaf.signature().as_bytes().ok_or_else(|| untrusted("its signature is not a whole number of bytes".into()))?;
    let mut why = Vec::new();
    for a in anchors.iter().filter(|a| a.tbs_certificate().subject() == t.issuer()) {
        let name = a.tbs_certificate().subject().to_string();
        if let Err(e) = super::key::verify_certificate(
            a.tbs_certificate().subject_public_key_info(),
            leaf.signature_algorithm(),
            &tbs,
            sig,
        ) {
            why.push(format!("{name} did not sign it ({e})"));
            continue;
        }
        match is_ca(a) {
            Ok(true) => {}
            Ok(false) => {
                why.push(format!("{name} signed it but is not a CA (basicConstraints cA is false)"));
                continue;
            }
            Err(e) => {
                why.push(format!("{name}: {e}"));
                continue;
            }
        }
        if let Err(e) = check_validity(a, now) {
            why.push(format!("its issuer: {e}"));
            continue;
        }
        return Ok(name);
    }
    if why.is_empty() {
        why.push(format!(
            "its issuer {} is not among the {} --ca certificate{}",
            t.issuer(),
            anchors.len(),
            if anchors.len() == 1 { "" } else { "s" }
        ));
    }
    Err(untrusted(why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_need_certificates() {
        assert!(parse_bundle(b"").unwrap_err().contains("no PEM certificate"));
        assert!(parse_bundle(b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n").is_err());
        let e = parse_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(e.contains("bad PEM"), "{e}");
        assert!(parse_bundle(&vec![b'A'; MAX_CERT_BYTES + 1]).unwrap_err().contains("more than"));
    }

    #[test]
    fn not_certificates() {
        assert!(parse(b"").unwrap_err().contains("empty"));
        assert!(parse(b"\x30\x03\x02\x01\x01").unwrap_err().contains("neither PEM nor"));
        let e = parse(b"-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n").unwrap_err();
        assert!(e.contains("not a certificate"), "{e}");
    }
}
