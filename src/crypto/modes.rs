//! CBC, ECB and CTR sector ciphers, and [`build`]: spec + key → [`SectorCipher`].
//!
//! CBC decryption is batched across sectors inside the block cipher's backend ([`CbcDecrypt`]):
//! the chaining values are saved, whole parallel batches are decrypted in place regardless of
//! sector boundaries, and the chaining values are xored in. The backend's batch can be wider
//! than a sector (64 blocks, 1 KiB, for AES with VAES-512, against 32 blocks in a 512-byte
//! sector), so decrypting sector by sector, as the `cbc` crate does, would leave every block on
//! the one-at-a-time path. CBC encryption is serial by nature and uses the `cbc` crate.
//!
//! CTR is written here: the kernel's `ctr(...)` counter is the whole block as a big-endian number
//! and wraps silently, where the `ctr` crate would refuse to wrap (a panic on hostile IVs).

use std::fmt;

use aes::cipher::array::{Array, ArraySize};
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeEncrypt,
    BlockSizeUser, InnerIvInit, KeyInit,
};
use zeroize::Zeroize;

use super::iv::IvSource;
use super::spec::{ChainMode, CipherAlg, CipherSpec};
use super::xts::Xts;
use super::{CryptoError, SectorCipher, check_sectors};

/// Sectors whose IVs are generated together.
const GROUP: usize = 64;
/// CTR keystream blocks generated per batch.
const CTR_BATCH: usize = 256;
/// Bytes of CBC chaining values saved per batch (see [`CbcDecrypt`]): 512 blocks of 16 bytes,
/// 1,024 of 8, so a batch is whole sectors of any size (at most 512 blocks) and stays in L1.
const CBC_BATCH_BYTES: usize = 8192;

/// CBC restarted at each sector with the sector's IV.
struct Cbc<C> {
    cipher: C,
    iv: IvSource,
}

/// CTR restarted at each sector with the sector's IV as the initial counter.
struct Ctr<C> {
    cipher: C,
    iv: IvSource,
}

/// ECB: every block on its own.
struct Ecb<C> {
    cipher: C,
}

impl<C> fmt::Debug for Cbc<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cbc").field("cipher", &std::any::type_name::<C>()).field("iv", &self.iv).finish_non_exhaustive()
    }
}

impl<C> fmt::Debug for Ctr<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctr").field("cipher", &std::any::type_name::<C>()).field("iv", &self.iv).finish_non_exhaustive()
    }
}

impl<C> fmt::Debug for Ecb<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ecb").field("cipher", &std::any::type_name::<C>()).finish_non_exhaustive()
    }
}

/// Run `f(blocks of up to GROUP sectors, their IVs)` over `buf`, generating IVs `GROUP` at a time.
fn for_each_group<C: BlockCipherEncrypt>(
    cipher: &C,
    iv: &IvSource,
    buf: &mut [u8],
    first_iv: u64,
    sector_size: usize,
    mut f: impl FnMut(&mut [Block<C>], &[Block<C>]),
) {
    check_sectors(buf.len(), sector_size);
    let step = (sector_size / 512) as u64;
    let spb = sector_size / C::BlockSize::USIZE;
    let (blocks, _) = Array::slice_as_chunks_mut(buf);
    let buf_blocks = blocks.len();
    let mut ivs: [Block<C>; GROUP] = std::array::from_fn(|_| Block::<C>::default());
    let mut iv_num = first_iv;
    for group in blocks.chunks_mut(GROUP * spb) {
        let n = group.len() / spb;
        iv.fill(cipher, &mut ivs[..n], iv_num, step, sector_size);
        iv_num = iv_num.wrapping_add((n as u64).wrapping_mul(step));
        f(group, &ivs[..n]);
    }
    let used = (buf_blocks / spb).min(GROUP);
    ivs[..used].iter_mut().for_each(|b| b.as_mut_slice().zeroize());
}

/// Run `f(sector blocks, sector IV)` over every sector of `buf`.
fn for_each_sector<C: BlockCipherEncrypt>(
    cipher: &C,
    iv: &IvSource,
    buf: &mut [u8],
    first_iv: u64,
    sector_size: usize,
    mut f: impl FnMut(&mut [Block<C>], &Block<C>),
) {
    let spb = sector_size / C::BlockSize::USIZE;
    for_each_group(cipher, iv, buf, first_iv, sector_size, |group, ivs| {
        for (sector, iv) in group.chunks_mut(spb).zip(ivs) {
            f(sector, iv);
        }
    });
}

/// CBC decryption of a group of sectors, run inside the block cipher's backend. Per batch of
/// whole sectors: save each block's chaining value (its sector's IV for the first block, the
/// previous ciphertext block otherwise) to `prev`, decrypt the batch in place in parallel
/// batches that cross sector boundaries, then xor `prev` in.
struct CbcDecrypt<'a, B: ArraySize> {
    blocks: &'a mut [Array<u8, B>],
    /// One IV per sector of `blocks`.
    ivs: &'a [Array<u8, B>],
    /// Blocks per sector.
    spb: usize,
    /// Scratch for the chaining values: a whole number of sectors long.
    prev: &'a mut [Array<u8, B>],
}

impl<B: ArraySize> BlockSizeUser for CbcDecrypt<'_, B> {
    type BlockSize = B;
}

impl<B: ArraySize> BlockCipherDecClosure for CbcDecrypt<'_, B> {
    #[inline(always)]
    fn call<K: BlockCipherDecBackend<BlockSize = B>>(self, backend: &K) {
        let batch_len = self.prev.len() / self.spb * self.spb;
        let sectors_per_batch = batch_len / self.spb;
        for (batch, ivs) in self.blocks.chunks_mut(batch_len).zip(self.ivs.chunks(sectors_per_batch)) {
            let prev = &mut self.prev[..batch.len()];
            for ((p, sector), iv) in prev.chunks_exact_mut(self.spb).zip(batch.chunks_exact(self.spb)).zip(ivs) {
                p[0].clone_from(iv);
                p[1..].clone_from_slice(&sector[..self.spb - 1]);
            }
            let (chunks, tail) = Array::slice_as_chunks_mut(batch);
            chunks.iter_mut().for_each(|c| backend.decrypt_par_blocks_inplace(c));
            tail.iter_mut().for_each(|b| backend.decrypt_block_inplace(b));
            let (b, p) = (Array::slice_as_flattened_mut(batch), Array::slice_as_flattened(prev));
            for (b, p) in b.iter_mut().zip(p) {
                *b ^= p;
            }
        }
    }
}

impl<C> SectorCipher for Cbc<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + Send + Sync,
{
    fn decrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize) {
        let mut prev = [0u8; CBC_BATCH_BYTES];
        let len = buf.len();
        let spb = sector_size / C::BlockSize::USIZE;
        for_each_group(&self.cipher, &self.iv, buf, first_iv, sector_size, |blocks, ivs| {
            let prev = Array::slice_as_chunks_mut(&mut prev).0;
            self.cipher.decrypt_with_backend(CbcDecrypt { blocks, ivs, spb, prev });
        });
        prev[..len.min(CBC_BATCH_BYTES)].zeroize();
    }

    fn encrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize) {
        for_each_sector(&self.cipher, &self.iv, buf, first_iv, sector_size, |sector, iv| {
            cbc::Encryptor::<&C>::inner_iv_init(&self.cipher, iv).encrypt_blocks(sector);
        });
    }
}

impl<C> Ctr<C>
where
    C: BlockCipherEncrypt,
{
    fn apply(&self, buf: &mut [u8], first_iv: u64, sector_size: usize) {
        let bs = C::BlockSize::USIZE;
        let len = buf.len();
        // The counter is the whole block, big-endian, modulo 2^(8 * block size).
        let mask = if bs >= 16 { u128::MAX } else { (1u128 << (8 * bs)) - 1 };
        let mut keystream: [Block<C>; CTR_BATCH] = std::array::from_fn(|_| Block::<C>::default());
        let spb = sector_size / bs;
        // Keystream batches run across sector boundaries, so that a cipher backend wider than a
        // sector (64 AES blocks with VAES-512) still encrypts whole parallel batches.
        for_each_group(&self.cipher, &self.iv, buf, first_iv, sector_size, |group, ivs| {
            let mut bases = [0u128; GROUP];
            for (b, iv) in bases.iter_mut().zip(ivs) {
                *b = iv.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
            }
            let counter = |k: usize| bases[k / spb].wrapping_add((k % spb) as u128) & mask;
            for (n, batch) in group.chunks_mut(CTR_BATCH).enumerate() {
                let ks = &mut keystream[..batch.len()];
                for (i, k) in ks.iter_mut().enumerate() {
                    k.copy_from_slice(&counter(n * CTR_BATCH + i).to_be_bytes()[16 - bs..]);
                }
                self.cipher.encrypt_blocks(ks);
                for (d, k) in batch.iter_mut().zip(ks.iter()) {
                    for (x, y) in d.iter_mut().zip(k.iter()) {
                        *x ^= y;
                    }
                }
            }
        });
        let used = (len / bs).min(CTR_BATCH);
        keystream[..used].iter_mut().for_each(|b| b.as_mut_slice().zeroize());
    }
}

impl<C> SectorCipher for Ctr<C>
where
    C: BlockCipherEncrypt + Send + Sync,
{
    fn decrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize) {
        self.apply(buf, first_iv, sector_size);
    }

    fn encrypt(&self, buf: &mut [u8], first_iv: u64, sector_size: usize) {
        self.apply(buf, first_iv, sector_size);
    }
}

impl<C> SectorCipher for Ecb<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + Send + Sync,
{
    fn decrypt(&self, buf: &mut [u8], _first_iv: u64, sector_size: usize) {
        check_sectors(buf.len(), sector_size);
        self.cipher.decrypt_blocks(Array::slice_as_chunks_mut(buf).0);
    }

    fn encrypt(&self, buf: &mut [u8], _first_iv: u64, sector_size: usize) {
        check_sectors(buf.len(), sector_size);
        self.cipher.encrypt_blocks(Array::slice_as_chunks_mut(buf).0);
    }
}

/// Build the sector cipher for `spec` keyed with `key`; see [`super::sector_cipher`].
pub(super) fn build(spec: &CipherSpec, key: &[u8]) -> Result<Box<dyn SectorCipher>, CryptoError> {
    let bad_key = || CryptoError::BadKeyLength { spec: spec.to_string(), bits: key.len() * 8 };
    if !spec.key_len_ok(key.len()) {
        return Err(bad_key());
    }
    let iv = IvSource::new(spec.ivgen(), spec.cipher(), key)?;
    let mode = spec.mode();
    let built = match (spec.cipher(), mode) {
        (CipherAlg::Aes, ChainMode::Xts) => match key.len() {
            32 => xts::<aes::Aes128>(key, iv),
            48 => xts::<aes::Aes192>(key, iv),
            _ => xts::<aes::Aes256>(key, iv),
        },
        (CipherAlg::Camellia, ChainMode::Xts) => match key.len() {
            32 => xts::<camellia::Camellia128>(key, iv),
            48 => xts::<camellia::Camellia192>(key, iv),
            _ => xts::<camellia::Camellia256>(key, iv),
        },
        (CipherAlg::Serpent, ChainMode::Xts) => xts::<serpent::Serpent>(key, iv),
        (CipherAlg::Twofish, ChainMode::Xts) => xts::<super::twofish::Twofish>(key, iv),
        (CipherAlg::Cast5, ChainMode::Xts) => None,
        (CipherAlg::Aes, _) => match key.len() {
            16 => narrow::<aes::Aes128>(mode, key, iv),
            24 => narrow::<aes::Aes192>(mode, key, iv),
            _ => narrow::<aes::Aes256>(mode, key, iv),
        },
        (CipherAlg::Camellia, _) => match key.len() {
            16 => narrow::<camellia::Camellia128>(mode, key, iv),
            24 => narrow::<camellia::Camellia192>(mode, key, iv),
            _ => narrow::<camellia::Camellia256>(mode, key, iv),
        },
        (CipherAlg::Serpent, _) => narrow::<serpent::Serpent>(mode, key, iv),
        (CipherAlg::Twofish, _) => narrow::<super::twofish::Twofish>(mode, key, iv),
        (CipherAlg::Cast5, _) => narrow::<cast5::Cast5>(mode, key, iv),
    };
    built.ok_or_else(bad_key)
}

/// XTS: the key's first half keys the data cipher, the second the tweak cipher.
fn xts<C>(key: &[u8], iv: IvSource) -> Option<Box<dyn SectorCipher>>
where
    C: KeyInit
        + BlockCipherEncrypt
        + BlockCipherDecrypt
        + BlockSizeUser<BlockSize = aes::cipher::consts::U16>
        + Send
        + Sync
        + 'static,
{
    let (k1, k2) = key.split_at(key.len() / 2);
    Some(Box::new(Xts::new(C::new_from_slice(k1).ok()?, C::new_from_slice(k2).ok()?, iv)))
}

/// A single-key mode (CBC, CTR, ECB).
fn narrow<C>(mode: ChainMode, key: &[u8], iv: IvSource) -> Option<Box<dyn SectorCipher>>
where
    C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt + Send + Sync + 'static,
{
    let cipher = C::new_from_slice(key).ok()?;
    Some(match mode {
        ChainMode::Cbc => Box::new(Cbc { cipher, iv }),
        ChainMode::Ctr => Box::new(Ctr { cipher, iv }),
        ChainMode::Ecb => Box::new(Ecb { cipher }),
        ChainMode::Xts => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batched CBC decryption against the `cbc` crate sector by sector, on a backend whose
    /// parallel width (3) divides neither a sector nor a batch.
    #[test]
    fn cbc_batches_agree_with_sector_by_sector() {
        use crate::crypto::xts::tests::{OddWidth, Rng};
        use aes::cipher::BlockModeDecrypt;
        let mut rng = Rng::new(12);
        for round in 0..24u64 {
            let mut key = [0u8; 32];
            rng.fill(&mut key);
            let sector_size = 512usize << (round % 4);
            let sectors = 1 + rng.below(70) as usize;
            let mut data = vec![0u8; sectors * sector_size];
            rng.fill(&mut data);
            let ours = Cbc { cipher: OddWidth::new(&key), iv: IvSource::Plain64 };
            let mut a = data.clone();
            ours.decrypt(&mut a, round, sector_size);
            let reference = aes::Aes256::new_from_slice(&key).unwrap();
            let mut b = data.clone();
            for (i, sector) in b.chunks_mut(sector_size).enumerate() {
                let mut iv = [0u8; 16];
                iv[..8].copy_from_slice(&(round + (i * sector_size / 512) as u64).to_le_bytes());
                let (blocks, _) = Array::slice_as_chunks_mut(sector);
                cbc::Decryptor::<&aes::Aes256>::inner_iv_init(&reference, &iv.into()).decrypt_blocks(blocks);
            }
            assert!(a == b, "round {round}: {sectors} sectors of {sector_size}");
            ours.encrypt(&mut a, round, sector_size);
            assert!(a == data, "round {round}: encrypt after decrypt");
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let key = [0xa5u8; 32];
        let spec = |s: &str| CipherSpec::parse_joined(s).unwrap();
        let iv = || IvSource::new(spec("aes-cbc-essiv:sha256").ivgen(), CipherAlg::Aes, &key).unwrap();
        let cipher = || aes::Aes256::new_from_slice(&key).unwrap();
        let shown = [
            format!("{:?}", Cbc { cipher: cipher(), iv: iv() }),
            format!("{:?}", Ctr { cipher: cipher(), iv: IvSource::Plain64 }),
            format!("{:?}", Ecb { cipher: cipher() }),
        ];
        for s in shown {
            assert!(s.contains("Aes256") && !s.to_lowercase().contains("a5") && !s.contains("165"), "{s}");
        }
        assert!(format!("{:?}", iv()).starts_with("Essiv"));
    }
}
