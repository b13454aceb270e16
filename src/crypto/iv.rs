//! IV generators: turn the IV numbers of a run of sectors into one IV block each, in bulk.

use std::fmt;

use aes::cipher::array::Array;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{Block, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use zeroize::Zeroizing;

use super::CryptoError;
use super::spec::{CipherAlg, IvGen};

/// Encrypt whole blocks in place through a trait object (the ESSIV cipher, whose key size can
/// differ from the data cipher's, so its type can too).
pub(super) trait EncryptBytes: Send + Sync {
    /// Encrypt `buf` in place; `buf.len()` is a multiple of the block size.
    fn encrypt_bytes(&self, buf: &mut [u8]);
}

impl<C: BlockCipherEncrypt + Send + Sync> EncryptBytes for C {
    fn encrypt_bytes(&self, buf: &mut [u8]) {
        let (blocks, tail) = Array::<u8, C::BlockSize>::slice_as_chunks_mut(buf);
        debug_assert!(tail.is_empty());
        self.encrypt_blocks(blocks);
    }
}

/// A ready-to-run IV generator (an [`IvGen`] plus, for ESSIV, its keyed cipher).
pub(super) enum IvSource {
    /// ECB: no IV. Treated as all-zero if ever asked.
    None,
    Plain,
    Plain64,
    Plain64Be,
    /// The plain64 IV encrypted with this cipher (keyed by the hash of the volume key).
    Essiv(Box<dyn EncryptBytes>),
    Benbi,
    Null,
    /// LE64(iv * sector_size) encrypted with the data cipher.
    Eboiv,
}

impl fmt::Debug for IvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IvSource::None => "None",
            IvSource::Plain => "Plain",
            IvSource::Plain64 => "Plain64",
            IvSource::Plain64Be => "Plain64Be",
            IvSource::Essiv(_) => "Essiv(..)",
            IvSource::Benbi => "Benbi",
            IvSource::Null => "Null",
            IvSource::Eboiv => "Eboiv",
        })
    }
}

impl IvSource {
    /// Build the generator for `ivgen` with data cipher `alg` and volume key `key` (ESSIV hashes it).
    pub(super) fn new(ivgen: IvGen, alg: CipherAlg, key: &[u8]) -> Result<Self, CryptoError> {
        Ok(match ivgen {
            IvGen::None => IvSource::None,
            IvGen::Plain => IvSource::Plain,
            IvGen::Plain64 => IvSource::Plain64,
            IvGen::Plain64Be => IvSource::Plain64Be,
            IvGen::Benbi => IvSource::Benbi,
            IvGen::Null => IvSource::Null,
            IvGen::Eboiv => IvSource::Eboiv,
            IvGen::Essiv(hash) => {
                let salt = Zeroizing::new(hash.digest(&[key]));
                let bad = || CryptoError::Unsupported {
                    what: "ESSIV hash",
                    name: format!("{hash} (its {}-byte digest is not a {alg} key)", salt.len()),
                };
                IvSource::Essiv(
                    match (alg, salt.len()) {
                        (CipherAlg::Aes, 16) => boxed::<aes::Aes128Enc>(&salt),
                        (CipherAlg::Aes, 24) => boxed::<aes::Aes192Enc>(&salt),
                        (CipherAlg::Aes, 32) => boxed::<aes::Aes256Enc>(&salt),
                        (CipherAlg::Camellia, 16) => boxed::<camellia::Camellia128>(&salt),
                        (CipherAlg::Camellia, 24) => boxed::<camellia::Camellia192>(&salt),
                        (CipherAlg::Camellia, 32) => boxed::<camellia::Camellia256>(&salt),
                        (CipherAlg::Serpent, _) => boxed::<serpent::Serpent>(&salt),
                        (CipherAlg::Twofish, _) => boxed::<super::twofish::Twofish>(&salt),
                        (CipherAlg::Cast5, _) => boxed::<cast5::Cast5>(&salt),
                        _ => None,
                    }
                    .ok_or_else(bad)?,
                )
            }
        })
    }

    /// Fill `out` with the IVs of `out.len()` consecutive sectors, the first with IV number
    /// `first`, each next one `step` further. `cipher` is the data cipher (used by EBOIV only).
    pub(super) fn fill<C: BlockCipherEncrypt>(
        &self,
        cipher: &C,
        out: &mut [Block<C>],
        first: u64,
        step: u64,
        sector_size: usize,
    ) {
        let bs = <C as BlockSizeUser>::BlockSize::USIZE;
        let mut iv = first;
        for block in out.iter_mut() {
            let b: &mut [u8] = block.as_mut_slice();
            b.fill(0);
            match self {
                IvSource::None | IvSource::Null => {}
                IvSource::Plain => b[..4].copy_from_slice(&(iv as u32).to_le_bytes()),
                IvSource::Plain64 | IvSource::Essiv(_) => b[..8].copy_from_slice(&iv.to_le_bytes()),
                IvSource::Plain64Be => b[bs - 8..].copy_from_slice(&iv.to_be_bytes()),
                IvSource::Benbi => {
                    let shift = 9 - bs.trailing_zeros();
                    b[bs - 8..].copy_from_slice(&(iv << shift).wrapping_add(1).to_be_bytes());
                }
                IvSource::Eboiv => b[..8].copy_from_slice(&iv.wrapping_mul(sector_size as u64).to_le_bytes()),
            }
            iv = iv.wrapping_add(step);
        }
        match self {
            IvSource::Essiv(c) => c.encrypt_bytes(Array::slice_as_flattened_mut(out)),
            IvSource::Eboiv => cipher.encrypt_blocks(out),
            _ => {}
        }
    }
}

fn boxed<C: KeyInit + BlockCipherEncrypt + Send + Sync + 'static>(key: &[u8]) -> Option<Box<dyn EncryptBytes>> {
    C::new_from_slice(key).ok().map(|c| Box::new(c) as Box<dyn EncryptBytes>)
}
