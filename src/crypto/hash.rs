//! Hash algorithms named in LUKS headers. Placeholder: being written in a parallel change.

use super::CryptoError;

/// A hash algorithm as LUKS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Ripemd160,
    Whirlpool,
}

impl HashAlg {
    /// From a LUKS hash spec (`sha256`, `ripemd160`, ...), case-insensitive.
    pub fn from_name(name: &str) -> Result<Self, CryptoError> {
        Err(CryptoError::Unsupported { what: "hash", name: name.to_string() })
    }
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        0
    }
    /// Digest of the concatenation of `parts`.
    pub fn digest(self, _parts: &[&[u8]]) -> Vec<u8> {
        Vec::new()
    }
    /// PBKDF2-HMAC with this hash, filling `out`.
    pub fn pbkdf2(self, _password: &[u8], _salt: &[u8], _rounds: u32, _out: &mut [u8]) {}
}
