//! Ciphers, hashes and key derivation: everything cryptographic, and nothing about LUKS or qcow2.
//!
//! Both disk formats describe their encryption with a dm-crypt style cipher spec
//! (`aes-xts-plain64`, `aes-cbc-essiv:sha256`, ...); [`spec::CipherSpec`] parses it and
//! [`sector_cipher`] turns a spec plus a key into a [`SectorCipher`], the one trait the hot path
//! and the key-slot code use. Hashes ([`hash::HashAlg`]) and KDFs ([`kdf`]) are shared by LUKS1,
//! LUKS2 and the LUKS header embedded in qcow2.

pub mod hash;
mod iv;
pub mod kdf;
mod modes;
mod pbkdf2;
pub mod spec;
#[cfg(test)]
mod tests;
mod twofish;
mod xts;

pub use hash::HashAlg;
pub use kdf::{Argon2Variant, argon2};
pub use spec::{ChainMode, CipherAlg, CipherSpec, IvGen};

/// Why a cipher could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The spec names a cipher, mode, IV generator or hash luksfs does not implement.
    #[error("unsupported {what} '{name}'")]
    Unsupported { what: &'static str, name: String },
    /// The spec is not of the form cryptsetup writes.
    #[error("malformed cipher spec '{0}'")]
    Malformed(String),
    /// The key length does not fit the cipher and mode.
    #[error("{spec} cannot take a {bits}-bit key")]
    BadKeyLength { spec: String, bits: usize },
    /// A KDF parameter is out of range (or over the memory cap).
    #[error("{0}")]
    KdfParams(String),
}

impl From<CryptoError> for crate::Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Unsupported { .. } => crate::Error::unsupported(e.to_string()),
            CryptoError::KdfParams(_) => crate::Error::unsupported(e.to_string()),
            CryptoError::Malformed(_) | CryptoError::BadKeyLength { .. } => crate::Error::corrupt(e.to_string()),
        }
    }
}

/// Length-preserving encryption of whole sectors, as dm-crypt does it.
///
/// Sector `i` of `buf` (counting from 0) is processed with IV number
/// `first_iv + i * (sector_size / 512)`: IVs always count 512-byte units, even for larger
/// sectors (LUKS2 with 4 KiB sectors uses IVs 0, 8, 16, ...).
pub trait SectorCipher: Send + Sync {
    /// Decrypt `buf` in place. `buf.len()` must be a multiple of `sector_size`, which is a power of
    /// two from 512 to 4096. Panics (a caller bug, never input-dependent) otherwise.
    fn decrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize);
    /// Encrypt `buf` in place (the inverse of [`SectorCipher::decrypt`]); used by tests.
    fn encrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize);
}

/// Build the cipher described by `spec` keyed with `key` (the whole volume key: both halves for XTS).
///
/// Fails with [`CryptoError::BadKeyLength`] when `key` does not fit the spec (see
/// [`CipherSpec::key_len_ok`]). The key schedules are zeroized when the cipher is dropped, and
/// the returned cipher holds no copy of `key` itself.
pub fn sector_cipher(spec: &CipherSpec, key: &[u8]) -> Result<Box<dyn SectorCipher>, CryptoError> {
    modes::build(spec, key)
}

/// The [`SectorCipher`] buffer contract: a whole number of sectors of 512..=4096 bytes (a power
/// of two). Violations are caller bugs, not input-dependent, so they panic.
fn check_sectors(len: usize, sector_size: usize) {
    assert!(
        sector_size.is_power_of_two() && (512..=4096).contains(&sector_size),
        "sector size {sector_size} is not a power of two from 512 to 4096"
    );
    assert!(
        len.is_multiple_of(sector_size),
        "buffer of {len} bytes is not a whole number of {sector_size}-byte sectors"
    );
}
