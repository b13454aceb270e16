//! Parse dm-crypt cipher specs (`aes` + `xts-plain64`, `aes-cbc-essiv:sha256`, ...). Placeholder:
//! being written in a parallel change.

use super::{CryptoError, SectorCipher};

/// A parsed cipher spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CipherSpec {
    text: String,
}

impl CipherSpec {
    /// Parse a LUKS1-style pair: cipher name (`aes`) and mode (`xts-plain64`).
    pub fn parse(name: &str, mode: &str) -> Result<Self, CryptoError> {
        Self::parse_joined(&format!("{name}-{mode}"))
    }
    /// Parse a LUKS2-style joined spec (`aes-xts-plain64`).
    pub fn parse_joined(spec: &str) -> Result<Self, CryptoError> {
        Err(CryptoError::Unsupported { what: "cipher", name: spec.to_string() })
    }
}

impl std::fmt::Display for CipherSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

pub(super) fn build(spec: &CipherSpec, _key: &[u8]) -> Result<Box<dyn SectorCipher>, CryptoError> {
    Err(CryptoError::Unsupported { what: "cipher", name: spec.text.clone() })
}
