//! Glance image signatures: the `img_signature*` properties of an image record, checked as
//! Glance checks them at upload (openstack/cursive `signature_utils`):
//!
//! | property | meaning |
//! |---|---|
//! | `img_signature` | the signature, base64 |
//! | `img_signature_hash_method` | `SHA-224`, `SHA-256`, `SHA-384` or `SHA-512`: the hash of the image data that was signed |
//! | `img_signature_key_type` | `RSA-PSS` (MGF1 with the same hash; the salt length as signed, see [`key`]), `DSA`, `ECC_SECP384R1`, `ECC_SECP521R1` |
//! | `img_signature_certificate_uuid` | a Barbican secret of type `certificate` (PEM or DER X.509) whose public key made the signature |
//!
//! What is signed is the image data as Glance stores it: for an encrypted image, the ciphertext
//! (`openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss IMAGE`). The caller streams
//! those bytes once, hashing them with [`HashMethod`], and hands over the digest; this module
//! never reads an image or talks to a server ([`verify`] works on values), so it applies the
//! same way to a local image with a Glance sidecar and to an image read from Glance itself.
//!
//! Checks, in order, each a [`SignatureError`] naming what failed: all four properties present
//! and well-formed ([`Properties::parse`]); the certificate parses; its validity period includes
//! now; with trust anchors (`--ca`), it chains to one of them ([`cert::chain`]); its public key is
//! of the key type's kind (and, for ECC, curve: stricter than cursive, which takes any curve);
//! the signature verifies over the digest. Public-key arithmetic is RustCrypto's (`rsa`,
//! `ecdsa` with `p384`/`p521`, `dsa`); see [`key`].

pub mod cert;
pub mod key;

use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use x509_cert::Certificate;

pub use cert::CertInfo;

/// The `img_signature*` properties of an image record as stored (strings; absent when unset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// `img_signature`: base64.
    pub signature: Option<String>,
    /// `img_signature_hash_method`.
    pub hash_method: Option<String>,
    /// `img_signature_key_type`.
    pub key_type: Option<String>,
    /// `img_signature_certificate_uuid`.
    pub certificate_uuid: Option<String>,
}

/// A hash method Glance signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashMethod {
    /// `SHA-224`
    Sha224,
    /// `SHA-256`
    Sha256,
    /// `SHA-384`
    Sha384,
    /// `SHA-512`
    Sha512,
}

impl HashMethod {
    /// The method named exactly as cursive names it (`SHA-256`).
    pub fn from_name(s: &str) -> Option<HashMethod> {
        match s {
            "SHA-224" => Some(HashMethod::Sha224),
            "SHA-256" => Some(HashMethod::Sha256),
            "SHA-384" => Some(HashMethod::Sha384),
            "SHA-512" => Some(HashMethod::Sha512),
            _ => None,
        }
    }

    /// `SHA-256` etc.
    pub fn name(self) -> &'static str {
        match self {
            HashMethod::Sha224 => "SHA-224",
            HashMethod::Sha256 => "SHA-256",
            HashMethod::Sha384 => "SHA-384",
            HashMethod::Sha512 => "SHA-512",
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashMethod::Sha224 => 28,
            HashMethod::Sha256 => 32,
            HashMethod::Sha384 => 48,
            HashMethod::Sha512 => 64,
        }
    }

    /// The digest of `data` (for tests and small inputs; images are hashed by the caller).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashMethod::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashMethod::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashMethod::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashMethod::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A signature key type Glance knows (cursive's registered `SignatureKeyType`s, without the
/// binary curves that `cryptography` 47 dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `RSA-PSS`: RSASSA-PSS, MGF1 with the signature's hash, any salt length (see [`key`]).
    RsaPss,
    /// `DSA`: DSA, DER `SEQUENCE { r, s }`.
    Dsa,
    /// `ECC_SECP384R1`: ECDSA on P-384, DER signature.
    EccSecp384r1,
    /// `ECC_SECP521R1`: ECDSA on P-521, DER signature.
    EccSecp521r1,
}

impl KeyType {
    /// The key type named exactly as Glance names it.
    pub fn from_name(s: &str) -> Option<KeyType> {
        match s {
            "RSA-PSS" => Some(KeyType::RsaPss),
            "DSA" => Some(KeyType::Dsa),
            "ECC_SECP384R1" => Some(KeyType::EccSecp384r1),
            "ECC_SECP521R1" => Some(KeyType::EccSecp521r1),
            _ => None,
        }
    }

    /// `RSA-PSS` etc.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::RsaPss => "RSA-PSS",
            KeyType::Dsa => "DSA",
            KeyType::EccSecp384r1 => "ECC_SECP384R1",
            KeyType::EccSecp521r1 => "ECC_SECP521R1",
        }
    }
}

/// Why an image signature is not verified. Every variant is a `FAIL` of `verify`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Some `img_signature*` properties are set, this one is not.
    #[error("{0} is missing (all four img_signature* properties are needed)")]
    Missing(&'static str),
    /// `img_signature` is not base64, or decodes to nothing.
    #[error("img_signature is not valid base64: {0}")]
    BadBase64(String),
    /// `img_signature_hash_method` is not one Glance signs with.
    #[error("img_signature_hash_method {0:?} is not supported (SHA-224, SHA-256, SHA-384 and SHA-512 are)")]
    UnknownHash(String),
    /// `img_signature_key_type` is not one Glance verifies.
    #[error("img_signature_key_type {0:?} is not supported (RSA-PSS, DSA, ECC_SECP384R1 and ECC_SECP521R1 are)")]
    UnknownKeyType(String),
    /// `img_signature_certificate_uuid` is not a UUID.
    #[error("img_signature_certificate_uuid {0:?} is not a UUID")]
    BadUuid(String),
    /// The certificate secret could not be fetched.
    #[error("the certificate {uuid} cannot be fetched: {reason}")]
    Unavailable {
        /// Its Barbican secret id.
        uuid: String,
        /// Why (the key manager's message).
        reason: String,
    },
    /// The certificate secret is not an X.509 certificate.
    #[error("the certificate {uuid} is not an X.509 certificate: {reason}")]
    NotACertificate {
        /// Its Barbican secret id.
        uuid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Now is before the certificate's notBefore.
    #[error("the certificate {subject} is not valid yet (not before {not_before})")]
    NotYetValid {
        /// Its subject.
        subject: String,
        /// Its notBefore, RFC 3339.
        not_before: String,
    },
    /// Now is after the certificate's notAfter.
    #[error("the certificate {subject} expired (not after {not_after})")]
    Expired {
        /// Its subject.
        subject: String,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// `--ca` was given and the certificate does not chain to it.
    #[error("the certificate {subject} does not chain to a --ca certificate: {reason}")]
    Untrusted {
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The certificate's public key does not fit the key type.
    #[error("the certificate's public key is {found}, but img_signature_key_type is {key_type}")]
    WrongKey {
        /// The key type asked for.
        key_type: &'static str,
        /// The key found, e.g. `an RSA key`, `an EC key on P-256`.
        found: String,
    },
    /// The public key can't be used (malformed, or a size the verifier refuses).
    #[error("the certificate's {key_type} public key is unusable: {reason}")]
    BadKey {
        /// The key type.
        key_type: &'static str,
        /// Why.
        reason: String,
    },
    /// The signature does not verify over the image data.
    #[error("the {key_type} signature does not match the image data ({hash} digest {digest}...)")]
    Mismatch {
        /// The key type.
        key_type: &'static str,
        /// The hash method.
        hash: &'static str,
        /// The first 16 hex digits of the image data's digest.
        digest: String,
    },
}

/// A parsed, well-formed set of signature properties.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
    /// The hash of the image data that was signed.
    pub hash: HashMethod,
    /// The kind of key that signed.
    pub key_type: KeyType,
    /// The Barbican secret id of the certificate (a UUID, lowercase).
    pub certificate_uuid: String,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("signature", &format_args!("{} bytes", self.signature.len()))
            .field("hash", &self.hash)
            .field("key_type", &self.key_type)
            .field("certificate_uuid", &self.certificate_uuid)
            .finish()
    }
}

/// Longest property value echoed in an error.
const SHOW: usize = 64;

fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOW) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Properties {
    /// Whether no `img_signature*` property is set (the image is not signed).
    pub fn is_empty(&self) -> bool {
        self.signature.is_none()
            && self.hash_method.is_none()
            && self.key_type.is_none()
            && self.certificate_uuid.is_none()
    }

    /// Check and decode the properties (no I/O).
    pub fn parse(&self) -> Result<Request, SignatureError> {
        fn get<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, SignatureError> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or(SignatureError::Missing(name))
        }
        let sig = get(&self.signature, "img_signature")?;
        let hash = get(&self.hash_method, "img_signature_hash_method")?;
        let key_type = get(&self.key_type, "img_signature_key_type")?;
        let uuid = get(&self.certificate_uuid, "img_signature_certificate_uuid")?;
        // Python's b64decode (oslo's decode_as_bytes) wants padding; whitespace is not part of it
        let compact: String = sig.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| SignatureError::BadBase64(e.to_string()))?;
        if signature.is_empty() {
            return Err(SignatureError::BadBase64("it decodes to no bytes".into()));
        }
        let hash = HashMethod::from_name(hash).ok_or_else(|| SignatureError::UnknownHash(shown(hash)))?;
        let key_type = KeyType::from_name(key_type).ok_or_else(|| SignatureError::UnknownKeyType(shown(key_type)))?;
        if !is_uuid(uuid) {
            return Err(SignatureError::BadUuid(shown(uuid)));
        }
        Ok(Request { signature, hash, key_type, certificate_uuid: uuid.to_ascii_lowercase() })
    }
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The signing certificate, when it could be parsed.
    pub certificate: Option<CertInfo>,
    /// With `--ca`, when the chain is good: the subject of the trusted certificate it chains to.
    pub anchor: Option<String>,
    /// `Ok` when the signature is verified; otherwise what failed.
    pub result: Result<(), SignatureError>,
}

/// Check `req` against the image data's `digest` (of `req.hash`): `certificate` is the payload of
/// the Barbican secret `req.certificate_uuid` (PEM or DER), `anchors` the `--ca` certificates
/// (`None`: the chain is not checked), `now` the time its validity is checked at.
pub fn verify(
    req: &Request,
    digest: &[u8],
    certificate: &[u8],
    anchors: Option<&[Certificate]>,
    now: SystemTime,
) -> Checked {
    let leaf = match cert::parse(certificate) {
        Ok(c) => c,
        Err(reason) => {
            let e = SignatureError::NotACertificate { uuid: req.certificate_uuid.clone(), reason };
            return Checked { certificate: None, anchor: None, result: Err(e) };
        }
    };
    let mut out = Checked { certificate: Some(CertInfo::of(&leaf)), anchor: None, result: Ok(()) };
    out.result = (|| {
        cert::check_validity(&leaf, now)?;
        if let Some(a) = anchors {
            out.anchor = Some(cert::chain(&leaf, a, now)?);
        }
        let spki = leaf.tbs_certificate().subject_public_key_info();
        key::verify_image(req.key_type, req.hash, spki, digest, &req.signature)
    })();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(sig: &str, hash: &str, kt: &str, uuid: &str) -> Properties {
        let s = |v: &str| if v.is_empty() { None } else { Some(v.to_string()) };
        Properties { signature: s(sig), hash_method: s(hash), key_type: s(kt), certificate_uuid: s(uuid) }
    }

    const UUID: &str = "0C7A1C52-9c2d-4d3b-9f8e-2a5d7c1b3e4f";

    #[test]
    fn parses_well_formed_properties() {
        let r = props("AAEC/w==", "SHA-256", "RSA-PSS", UUID).parse().unwrap();
        assert_eq!(r.signature, vec![0, 1, 2, 255]);
        assert_eq!(r.hash, HashMethod::Sha256);
        assert_eq!(r.key_type, KeyType::RsaPss);
        assert_eq!(r.certificate_uuid, UUID.to_ascii_lowercase());
        // base64 wrapped over lines (base64 without -w 0) is accepted
        let r = props("AAEC\n/w==\n", "SHA-512", "ECC_SECP521R1", UUID).parse().unwrap();
        assert_eq!((r.signature.len(), r.hash, r.key_type), (4, HashMethod::Sha512, KeyType::EccSecp521r1));
        for (name, kt) in [("DSA", KeyType::Dsa), ("ECC_SECP384R1", KeyType::EccSecp384r1)] {
            assert_eq!(props("AA==", "SHA-224", name, UUID).parse().unwrap().key_type, kt);
        }
        assert!(props("", "", "", "").is_empty());
        assert!(!props("", "SHA-256", "", "").is_empty());
        assert!(!format!("{r:?}").contains("AAEC"), "Debug shows the length only");
    }

    #[test]
    fn every_malformed_property_is_named() {
        use SignatureError::*;
        type Check = fn(&SignatureError) -> bool;
        let cases: [(Properties, Check); 9] = [
            (props("", "SHA-256", "RSA-PSS", UUID), |e| matches!(e, Missing("img_signature"))),
            (props("AA==", "", "RSA-PSS", UUID), |e| matches!(e, Missing("img_signature_hash_method"))),
            (props("AA==", "SHA-256", "", UUID), |e| matches!(e, Missing("img_signature_key_type"))),
            (props("AA==", "SHA-256", "RSA-PSS", ""), |e| matches!(e, Missing("img_signature_certificate_uuid"))),
            (props("not base64!", "SHA-256", "RSA-PSS", UUID), |e| matches!(e, BadBase64(_))),
            (props("AA=", "SHA-256", "RSA-PSS", UUID), |e| matches!(e, BadBase64(_))),
            (props("AA==", "sha256", "RSA-PSS", UUID), |e| matches!(e, UnknownHash(h) if h == "sha256")),
            (props("AA==", "SHA-256", "ECC_SECT571K1", UUID), |e| matches!(e, UnknownKeyType(_))),
            (props("AA==", "SHA-256", "RSA-PSS", "cert-1"), |e| matches!(e, BadUuid(u) if u == "cert-1")),
        ];
        for (p, want) in cases {
            let e = p.parse().unwrap_err();
            assert!(want(&e), "{p:?}: {e}");
        }
        let e = props("AA==", "MD5", "RSA-PSS", UUID).parse().unwrap_err();
        assert!(e.to_string().contains("img_signature_hash_method \"MD5\""), "{e}");
        let long = "x".repeat(500);
        let e = props("AA==", "SHA-256", &long, UUID).parse().unwrap_err();
        assert!(e.to_string().len() < 200, "long values are shortened: {e}");
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4f"));
        assert!(!is_uuid("0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4"));
        assert!(!is_uuid("0c7a1c52-9c2d-4d3b-9f8e2a5d7c1b3e4f0"));
        assert!(!is_uuid("0c7a1c52-9c2d-4d3b-9f8e-2a5d7c1b3e4g"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn hash_methods() {
        for h in [HashMethod::Sha224, HashMethod::Sha256, HashMethod::Sha384, HashMethod::Sha512] {
            assert_eq!(HashMethod::from_name(h.name()), Some(h));
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
        assert!(hex::encode(HashMethod::Sha256.digest(b"abc")).starts_with("ba7816bf"));
    }

    #[test]
    fn garbage_certificate_is_not_a_certificate() {
        let r = props("AA==", "SHA-256", "RSA-PSS", UUID).parse().unwrap();
        for payload in [&b""[..], b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
            let c = verify(&r, &[0; 32], payload, None, SystemTime::now());
            assert!(matches!(c.result, Err(SignatureError::NotACertificate { .. })), "{c:?}");
            assert!(c.certificate.is_none());
        }
    }
}
