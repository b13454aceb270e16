//! Public-key verification over a digest, by RustCrypto: the image signature
//! ([`verify_image`]: RSASSA-PSS, DSA, ECDSA on P-384/P-521) and a certificate's signature by
//! its issuer ([`verify_certificate`]: PKCS#1 v1.5, RSASSA-PSS with its parameters, ECDSA on
//! P-256/P-384/P-521, DSA).
//!
//! Signatures are as `openssl dgst -sign` writes them: RSA the raw modulus-sized block, DSA and
//! ECDSA the DER `SEQUENCE { r INTEGER, s INTEGER }`. RSASSA-PSS uses MGF1 with the signature's
//! hash. The salt length: cursive asks for `padding.PSS.MAX_LENGTH`, which `cryptography` (its
//! Rust backend) passes to OpenSSL as `RSA_PSS_SALTLEN_MAX_SIGN` (-2), and OpenSSL reads -2 when
//! *verifying* as "auto": any salt length is recovered from the encoded message. So Glance accepts
//! both the maximum salt (`emLen - hLen - 2`: OpenSSL 3.0's default, `-sigopt
//! rsa_pss_saltlen:-2`) and the digest-length salt that OpenSSL 3.1+ writes by default for the
//! RHOSP guide's `openssl dgst -sigopt rsa_padding_mode:pss`; luksfs does the same
//! (`rsa::pss::VerifyingKey::new_with_auto_salt_len`).

use der::Decode;
use der::oid::ObjectIdentifier as Oid;
use rsa::signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use super::{HashMethod, KeyType, SignatureError};

const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const ID_DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");
const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");
/// `id-RSASSA-PSS` (RFC 4055): a certificate signature whose parameters name hash, MGF and salt.
const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
/// The hashes RSASSA-PSS parameters may name (SHA-1, their default, is refused).
const PSS_HASHES: [(&str, HashMethod); 4] = [
    ("2.16.840.1.101.3.4.2.4", HashMethod::Sha224),
    ("2.16.840.1.101.3.4.2.1", HashMethod::Sha256),
    ("2.16.840.1.101.3.4.2.2", HashMethod::Sha384),
    ("2.16.840.1.101.3.4.2.3", HashMethod::Sha512),
];

/// Certificate signature algorithms: (OID, the issuer's key kind, hash).
const CERT_ALGORITHMS: [(&str, Kind, HashMethod); 12] = [
    ("1.2.840.113549.1.1.14", Kind::Rsa, HashMethod::Sha224),
    ("1.2.840.113549.1.1.11", Kind::Rsa, HashMethod::Sha256),
    ("1.2.840.113549.1.1.12", Kind::Rsa, HashMethod::Sha384),
    ("1.2.840.113549.1.1.13", Kind::Rsa, HashMethod::Sha512),
    ("1.2.840.10045.4.3.1", Kind::Ec, HashMethod::Sha224),
    ("1.2.840.10045.4.3.2", Kind::Ec, HashMethod::Sha256),
    ("1.2.840.10045.4.3.3", Kind::Ec, HashMethod::Sha384),
    ("1.2.840.10045.4.3.4", Kind::Ec, HashMethod::Sha512),
    ("2.16.840.1.101.3.4.3.1", Kind::Dsa, HashMethod::Sha224),
    ("2.16.840.1.101.3.4.3.2", Kind::Dsa, HashMethod::Sha256),
    ("2.16.840.1.101.3.4.3.3", Kind::Dsa, HashMethod::Sha384),
    ("2.16.840.1.101.3.4.3.4", Kind::Dsa, HashMethod::Sha512),
];

/// The kind of public key in a SubjectPublicKeyInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rsa,
    Dsa,
    Ec,
}

/// A curve luksfs verifies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

/// What key `spki` holds: its kind and, for EC, the curve (`Err`: a description of anything else).
fn classify(spki: &SubjectPublicKeyInfoOwned) -> Result<(Kind, Option<Curve>), String> {
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        return Ok((Kind::Rsa, None));
    }
    if oid == ID_DSA {
        return Ok((Kind::Dsa, None));
    }
    if oid == ID_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok());
        return match curve {
            Some(c) if c == SECP256R1 => Ok((Kind::Ec, Some(Curve::P256))),
            Some(c) if c == SECP384R1 => Ok((Kind::Ec, Some(Curve::P384))),
            Some(c) if c == SECP521R1 => Ok((Kind::Ec, Some(Curve::P521))),
            Some(c) => Err(format!("an EC key on curve {c}")),
            None => Err("an EC key without a named curve".into()),
        };
    }
    Err(format!("a key of algorithm {oid}"))
}

fn describe(kind: Kind, curve: Option<Curve>) -> String {
    match (kind, curve) {
        (Kind::Rsa, _) => "an RSA key".into(),
        (Kind::Dsa, _) => "a DSA key".into(),
        (Kind::Ec, Some(c)) => format!("an EC key on {c:?}").replace("P", "P-"),
        (Kind::Ec, None) => "an EC key".into(),
    }
}

/// Why a verification failed, before it becomes a [`SignatureError`].
enum Failed {
    /// The key can't be loaded.
    Key(String),
    /// The signature is malformed or does not verify.
    Signature,
}

/// Verify the image signature `sig` of `key_type` over `digest` (the image data hashed with
/// `hash`) with the certificate's key `spki`.
pub fn verify_image(
    key_type: KeyType,
    hash: HashMethod,
    spki: &SubjectPublicKeyInfoOwned,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    let wrong = |found: String| SignatureError::WrongKey { key_type: key_type.name(), found };
    let (kind, curve) = classify(spki).map_err(wrong)?;
    let want = match key_type {
        KeyType::RsaPss => (Kind::Rsa, None),
        KeyType::Dsa => (Kind::Dsa, None),
        KeyType::EccSecp384r1 => (Kind::Ec, Some(Curve::P384)),
        KeyType::EccSecp521r1 => (Kind::Ec, Some(Curve::P521)),
    };
    if (kind, curve) != want {
        return Err(wrong(describe(kind, curve)));
    }
    if digest.len() != hash.output_len() {
        return Err(SignatureError::BadKey {
            key_type: key_type.name(),
            reason: format!("a {} digest has {} bytes, not {}", hash.name(), hash.output_len(), digest.len()),
        });
    }
    let der = spki_der(spki).map_err(|reason| SignatureError::BadKey { key_type: key_type.name(), reason })?;
    let result = match key_type {
        KeyType::RsaPss => rsa_pss(&der, hash, digest, sig),
        KeyType::Dsa => dsa_verify(&der, digest, sig),
        KeyType::EccSecp384r1 => ecdsa_verify(Curve::P384, spki, digest, sig),
        KeyType::EccSecp521r1 => ecdsa_verify(Curve::P521, spki, digest, sig),
    };
    result.map_err(|f| match f {
        Failed::Key(reason) => SignatureError::BadKey { key_type: key_type.name(), reason },
        Failed::Signature => SignatureError::Mismatch {
            key_type: key_type.name(),
            hash: hash.name(),
            digest: hex::encode(&digest[..8.min(digest.len())]),
        },
    })
}

/// Verify a certificate's signature `sig` by algorithm `alg` over its DER `tbs` with the issuer's
/// key `issuer`. `Err` says why not.
pub fn verify_certificate(
    issuer: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    tbs: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    if alg.oid == RSASSA_PSS {
        return verify_pss_certificate(issuer, alg, tbs, sig);
    }
    let Some(&(_, want, hash)) = CERT_ALGORITHMS.iter().find(|(oid, _, _)| Oid::new_unwrap(oid) == alg.oid) else {
        return Err(format!("signature algorithm {} is not supported", alg.oid));
    };
    let (kind, curve) = classify(issuer)?;
    if kind != want {
        return Err(format!("a {} signature algorithm, but the issuer has {}", alg.oid, describe(kind, curve)));
    }
    let digest = hash.digest(tbs);
    let der = spki_der(issuer)?;
    let result = match (kind, curve) {
        (Kind::Rsa, _) => rsa_pkcs1v15(&der, hash, &digest, sig),
        (Kind::Dsa, _) => dsa_verify(&der, &digest, sig),
        (Kind::Ec, Some(c)) => ecdsa_verify(c, issuer, &digest, sig),
        (Kind::Ec, None) => return Err("an EC key without a named curve".into()),
    };
    result.map_err(|f| match f {
        Failed::Key(k) => format!("the issuer's key is unusable: {k}"),
        Failed::Signature => "the signature does not verify".into(),
    })
}

/// An RSASSA-PSS certificate signature (`openssl x509 -sigopt rsa_padding_mode:pss`): the hash,
/// MGF1 with that same hash, and the exact salt length, all from the algorithm's parameters.
fn verify_pss_certificate(
    issuer: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    tbs: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let (hash, salt_len) = pss_params(alg)?;
    let (kind, curve) = classify(issuer)?;
    if kind != Kind::Rsa {
        return Err(format!("an RSASSA-PSS signature, but the issuer has {}", describe(kind, curve)));
    }
    let digest = hash.digest(tbs);
    let key = rsa_key(&spki_der(issuer)?).map_err(|f| match f {
        Failed::Key(k) => format!("the issuer's key is unusable: {k}"),
        Failed::Signature => "the issuer's key is unusable".into(),
    })?;
    let sig = rsa::pss::Signature::try_from(sig).map_err(|_| "the signature does not verify".to_string())?;
    fn go<D>(key: rsa::PublicKey, salt_len: usize, digest: &[u8], sig: &rsa::pss::Signature) -> bool
    where
        D: sha2::Digest + sha2::digest::FixedOutputReset,
    {
        rsa::pss::VerifyingKey::<D>::new_with_salt_len(key, salt_len).verify_prehash(digest, sig).is_ok()
    }
    let ok = match hash {
        HashMethod::Sha224 => go::<sha2::Sha224>(key, salt_len, &digest, &sig),
        HashMethod::Sha256 => go::<sha2::Sha256>(key, salt_len, &digest, &sig),
        HashMethod::Sha384 => go::<sha2::Sha384>(key, salt_len, &digest, &sig),
        HashMethod::Sha512 => go::<sha2::Sha512>(key, salt_len, &digest, &sig),
    };
    if ok { Ok(()) } else { Err("the signature does not verify".into()) }
}

/// The hash and salt length of RSASSA-PSS parameters (RFC 4055 `RSASSA-PSS-params`), refusing
/// SHA-1, a mask generation other than MGF1 with the same hash, and a missing parameter block.
fn pss_params(alg: &AlgorithmIdentifierOwned) -> Result<(HashMethod, usize), String> {
    let bad = |why: String| format!("RSASSA-PSS parameters: {why}");
    let params = alg.parameters.as_ref().ok_or_else(|| bad("missing".into()))?;
    let der = der::Encode::to_der(params).map_err(|e| bad(e.to_string()))?;
    let p = rsa::pkcs1::RsaPssParamsOwned::from_der(&der).map_err(|e| bad(format!("not RFC 4055 parameters: {e}")))?;
    let hash_of = |oid: Oid| PSS_HASHES.iter().find(|(o, _)| Oid::new_unwrap(o) == oid).map(|&(_, h)| h);
    let hash = hash_of(p.hash.oid).ok_or_else(|| {
        bad(format!("hash {} is not supported (SHA-224, SHA-256, SHA-384 and SHA-512 are)", p.hash.oid))
    })?;
    let mgf_hash = p.mask_gen.parameters.as_ref().map(|a| a.oid);
    if p.mask_gen.oid != ID_MGF1 || mgf_hash != Some(p.hash.oid) {
        return Err(bad(format!(
            "mask generation {} with {} is not supported (MGF1 with the signature's hash {} is)",
            p.mask_gen.oid,
            mgf_hash.map_or("no hash".to_string(), |o| o.to_string()),
            p.hash.oid
        )));
    }
    Ok((hash, usize::from(p.salt_len)))
}

fn spki_der(spki: &SubjectPublicKeyInfoOwned) -> Result<Vec<u8>, String> {
    der::Encode::to_der(spki).map_err(|e| format!("cannot encode the SubjectPublicKeyInfo: {e}"))
}

fn spki_ref(der: &[u8]) -> Result<SubjectPublicKeyInfoRef<'_>, Failed> {
    SubjectPublicKeyInfoRef::from_der(der).map_err(|e| Failed::Key(e.to_string()))
}

fn rsa_key(der: &[u8]) -> Result<rsa::PublicKey, Failed> {
    rsa::PublicKey::try_from(spki_ref(der)?).map_err(|e| Failed::Key(e.to_string()))
}

/// RSASSA-PSS, MGF1 with `hash`, the salt length recovered from the signature (see the module
/// documentation).
fn rsa_pss(der: &[u8], hash: HashMethod, digest: &[u8], sig: &[u8]) -> Result<(), Failed> {
    let key = rsa_key(der)?;
    let sig = rsa::pss::Signature::try_from(sig).map_err(|_| Failed::Signature)?;
    fn go<D>(key: rsa::PublicKey, digest: &[u8], sig: &rsa::pss::Signature) -> Result<(), Failed>
    where
        D: sha2::Digest + sha2::digest::FixedOutputReset,
    {
        rsa::pss::VerifyingKey::<D>::new_with_auto_salt_len(key)
            .verify_prehash(digest, sig)
            .map_err(|_| Failed::Signature)
    }
    match hash {
        HashMethod::Sha224 => go::<sha2::Sha224>(key, digest, &sig),
        HashMethod::Sha256 => go::<sha2::Sha256>(key, digest, &sig),
        HashMethod::Sha384 => go::<sha2::Sha384>(key, digest, &sig),
        HashMethod::Sha512 => go::<sha2::Sha512>(key, digest, &sig),
    }
}

/// RSASSA-PKCS1-v1_5 (certificate signatures).
fn rsa_pkcs1v15(der: &[u8], hash: HashMethod, digest: &[u8], sig: &[u8]) -> Result<(), Failed> {
    let key = rsa_key(der)?;
    let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| Failed::Signature)?;
    fn go<D>(key: rsa::PublicKey, digest: &[u8], sig: &rsa::pkcs1v15::Signature) -> Result<(), Failed>
    where
        D: sha2::Digest + der::oid::AssociatedOid,
    {
        rsa::pkcs1v15::VerifyingKey::<D>::new(key).verify_prehash(digest, sig).map_err(|_| Failed::Signature)
    }
    match hash {
        HashMethod::Sha224 => go::<sha2::Sha224>(key, digest, &sig),
        HashMethod::Sha256 => go::<sha2::Sha256>(key, digest, &sig),
        HashMethod::Sha384 => go::<sha2::Sha384>(key, digest, &sig),
        HashMethod::Sha512 => go::<sha2::Sha512>(key, digest, &sig),
    }
}

/// DSA (FIPS 186: the digest truncated to the bit length of q by the verifier).
fn dsa_verify(der: &[u8], digest: &[u8], sig: &[u8]) -> Result<(), Failed> {
    let key = dsa::VerifyingKey::try_from(spki_ref(der)?).map_err(|e| Failed::Key(e.to_string()))?;
    let sig = dsa::Signature::from_der(sig).map_err(|_| Failed::Signature)?;
    key.verify_prehash(digest, &sig).map_err(|_| Failed::Signature)
}

/// ECDSA on `curve` with a DER signature; the digest is truncated or zero-extended to the order's
/// length by the verifier (SEC 1, 4.1.4).
fn ecdsa_verify(curve: Curve, spki: &SubjectPublicKeyInfoOwned, digest: &[u8], sig: &[u8]) -> Result<(), Failed> {
    let point =
        spki.subject_public_key.as_bytes().ok_or_else(|| Failed::Key("a partial-byte key bit string".into()))?;
    macro_rules! on {
        ($c:ident) => {{
            let key = $c::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| Failed::Key(e.to_string()))?;
            let sig = $c::ecdsa::DerSignature::try_from(sig).map_err(|_| Failed::Signature)?;
            key.verify_prehash(digest, &sig).map_err(|_| Failed::Signature)
        }};
    }
    match curve {
        Curve::P256 => on!(p256),
        Curve::P384 => on!(p384),
        Curve::P521 => on!(p521),
    }
}
