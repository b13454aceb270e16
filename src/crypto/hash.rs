//! Hash algorithms named in LUKS headers: plain digests (LUKS1 AF diffusion, ESSIV salts, LUKS2
//! header checksums) and PBKDF2-HMAC (LUKS1 and LUKS2 `pbkdf2` key slots).
//!
//! Every hash here works with `hmac` 0.13 (they are all eager block-level hashes), so PBKDF2 is the
//! `pbkdf2` crate's generic `pbkdf2_hmac` for six of them; SHA-256, the KDF hash of nearly every
//! LUKS key slot, has its own faster implementation in `crypto/pbkdf2.rs`.

use std::fmt;

use sha2::Digest;

use super::CryptoError;

/// A hash algorithm as LUKS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (`sha1`), the LUKS1 default before cryptsetup 1.7.
    Sha1,
    /// SHA-224 (`sha224`).
    Sha224,
    /// SHA-256 (`sha256`), today's default.
    Sha256,
    /// SHA-384 (`sha384`).
    Sha384,
    /// SHA-512 (`sha512`).
    Sha512,
    /// RIPEMD-160 (`ripemd160`).
    Ripemd160,
    /// Whirlpool (`whirlpool`).
    Whirlpool,
}

impl HashAlg {
    /// Every supported hash, in declaration order.
    pub const ALL: [HashAlg; 7] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Ripemd160,
        HashAlg::Whirlpool,
    ];

    /// From a LUKS hash spec (`sha256`, `ripemd160`, ...), case-insensitive. Only the names
    /// cryptsetup writes are accepted (`sha-256` is not one of them).
    pub fn from_name(name: &str) -> Result<Self, CryptoError> {
        Self::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| CryptoError::Unsupported { what: "hash", name: name.to_string() })
    }

    /// The name cryptsetup uses (lower case), e.g. `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha224 => "sha224",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
            HashAlg::Ripemd160 => "ripemd160",
            HashAlg::Whirlpool => "whirlpool",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Ripemd160 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 | HashAlg::Whirlpool => 64,
        }
    }

    /// Digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => digest_parts::<sha1::Sha1>(parts),
            HashAlg::Sha224 => digest_parts::<sha2::Sha224>(parts),
            HashAlg::Sha256 => digest_parts::<sha2::Sha256>(parts),
            HashAlg::Sha384 => digest_parts::<sha2::Sha384>(parts),
            HashAlg::Sha512 => digest_parts::<sha2::Sha512>(parts),
            HashAlg::Ripemd160 => digest_parts::<ripemd::Ripemd160>(parts),
            HashAlg::Whirlpool => digest_parts::<whirlpool::Whirlpool>(parts),
        }
    }

    /// PBKDF2-HMAC with this hash (RFC 8018), filling `out`. Any password length is accepted
    /// (HMAC hashes long keys); `rounds == 0` computes the same as `rounds == 1`, as the `pbkdf2`
    /// crate does: callers that must reject zero iterations check before calling.
    pub fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        use ::pbkdf2::pbkdf2_hmac;
        match self {
            HashAlg::Sha1 => pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out),
            HashAlg::Sha224 => pbkdf2_hmac::<sha2::Sha224>(password, salt, rounds, out),
            HashAlg::Sha256 => super::pbkdf2::pbkdf2_hmac_sha256(password, salt, rounds, out),
            HashAlg::Sha384 => pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out),
            HashAlg::Sha512 => pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out),
            HashAlg::Ripemd160 => pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, rounds, out),
            HashAlg::Whirlpool => pbkdf2_hmac::<whirlpool::Whirlpool>(password, salt, rounds, out),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn digest_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = D::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbkdf2_hex(h: HashAlg, pw: &[u8], salt: &[u8], rounds: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        h.pbkdf2(pw, salt, rounds, &mut out);
        hex::encode(out)
    }

    #[test]
    fn names_round_trip_and_case_insensitive() {
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_name(h.name()), Ok(h));
            assert_eq!(HashAlg::from_name(&h.name().to_uppercase()), Ok(h));
            assert_eq!(h.to_string(), h.name());
            assert_eq!(h.digest(&[b"x"]).len(), h.output_len(), "{h}");
        }
        for bad in ["sha-256", "SHA_256", "md5", "", "sha3-256", "blake2b", "sha256 ", "crc32c"] {
            assert!(matches!(HashAlg::from_name(bad), Err(CryptoError::Unsupported { what: "hash", .. })), "{bad:?}");
        }
    }

    /// Digests of "abc" from the standards (FIPS 180, RIPEMD-160 paper, ISO 10118-3 Whirlpool).
    #[test]
    fn digest_known_answers() {
        let cases = [
            (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (HashAlg::Sha224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
            (HashAlg::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                HashAlg::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                HashAlg::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (HashAlg::Ripemd160, "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
            (
                HashAlg::Whirlpool,
                "4e2448a4c6f486bb16b6562c73b4020bf3043e3a731bce721ae1b303d97e6d4c\
                 7181eebdb6c57e277d0e34957114cbd6c797fc9d95d8b582d225292076d4eef5",
            ),
        ];
        for (h, want) in cases {
            // Split input: digest() hashes the concatenation.
            assert_eq!(hex::encode(h.digest(&[b"a", b"", b"bc"])), want, "{h}");
        }
        assert_eq!(HashAlg::Sha256.digest(&[]), HashAlg::Sha256.digest(&[b""]));
    }

    /// RFC 6070 PBKDF2-HMAC-SHA1 test vectors (the 16777216-round one is skipped: too slow).
    #[test]
    fn pbkdf2_sha1_rfc6070() {
        let s = HashAlg::Sha1;
        assert_eq!(pbkdf2_hex(s, b"password", b"salt", 1, 20), "0c60c80f961f0e71f3a9b524af6012062fe037a6");
        assert_eq!(pbkdf2_hex(s, b"password", b"salt", 2, 20), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
        assert_eq!(pbkdf2_hex(s, b"password", b"salt", 4096, 20), "4b007901b765489abead49d926f721d065a429c1");
        assert_eq!(
            pbkdf2_hex(s, b"passwordPASSWORDpassword", b"saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25),
            "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"
        );
        assert_eq!(pbkdf2_hex(s, b"pass\0word", b"sa\0lt", 4096, 16), "56fa6aa75548099dcc37d7f03425e0c3");
    }

    /// PBKDF2-HMAC-SHA256 (the vector from the `pbkdf2` crate docs and RFC 7914 section 11).
    #[test]
    fn pbkdf2_sha256_known() {
        assert_eq!(
            pbkdf2_hex(HashAlg::Sha256, b"passwd", b"salt", 1, 64),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        assert_eq!(
            pbkdf2_hex(HashAlg::Sha256, b"Password", b"NaCl", 80000, 64),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
    }

    /// Every hash's PBKDF2 cross-checked against an independent implementation: Python's
    /// `hashlib.pbkdf2_hmac` (OpenSSL) for SHA-*/RIPEMD-160, libgcrypt 1.10's `gcry_kdf_derive`
    /// (through ctypes) for Whirlpool, whose absence from OpenSSL 3's default provider keeps it out
    /// of hashlib. Password "luks passphrase", salt bytes 0..32, 1000 rounds, 100 bytes of output (a
    /// non-multiple of every digest length, so the last partial block is covered).
    #[test]
    fn pbkdf2_cross_check_all_hashes() {
        let salt: Vec<u8> = (0u8..32).collect();
        let want = [
            (
                HashAlg::Sha1,
                "75392c80202bc2db41b818a7ca9a6aa1e0bbc5e4dec809bb96b646baf3c3bb87e63f56a86aabc43f9c5c6feebfcce2af429c\
                 e05ac2bb2f9db05484b3baf1d861a6bd5b1805cf26ca0f2dcb086e1c538f5e57702ffc658d93d266f0ed9b4d01612ea1c782",
            ),
            (
                HashAlg::Sha224,
                "2834bbe100e6537a53189f1c5c09573ae781b6ae01f653c32dec7bd83c95dcc47dba8ae58a8f60a743bb380e473b7d8002ed\
                 8adb77ab0de6e8a5133c817885fd4862bb224f60a9f7ffab0da1300871a56fa7b7591df819547fc2b8598da71cd9f7ec076f",
            ),
            (
                HashAlg::Sha256,
                "a89dcec321c85af849673427692421d99c10bc77ab2825efafa873983771a31e11154eac995ef64ecea1cd43c34fb592c6be\
                 70914fe0f8abf4d3665d1b5f9fe2c80cd4cec99ed564371d81fc68d93a419834c5985a8e68a5df5b6c486e3a9c036d723574",
            ),
            (
                HashAlg::Sha384,
                "cd466ae2a89cfef684ff0e87363264a3ae3fc463ea0dc09235394ccfb2bde098a4ae0f03b748abca315e6fa7f5939a0552f8\
                 121f6543062a941d92e8dbaa8d42dc492ca009c3b26c86ab08687a67fe3b999c2abdec9c1c200c4bf5bcceeb4f71979607e9",
            ),
            (
                HashAlg::Sha512,
                "ff1e28253f6aef01b6c7699afdfc71d45e5cbd03d517bd208953b838d58ee6e75a4acd163a3159f81d735fe53832b8ebfda4\
                 ea2e39a16b2bded851d1c7428a21e1ffbcd5ef3d6818932e4975bdb93ebd3c7cd69be27d34cd18334bd1c35e2ef74e0e063d",
            ),
            (
                HashAlg::Ripemd160,
                "8be56a4966ded3ccea6f9e1b0c8ac6eeb89a690de20a70830c9b4f85063fa4443ebdf0219c8d62d7272da6430fe20db7c7a1\
                 b8c7506cd63e0ec09e8d8d49468b845fafcf410fb05f6eebc94398118294a4dbd8b94eb5e11158b1d2ab2b0d00be5a26857f",
            ),
            (
                HashAlg::Whirlpool,
                "ff5e69ba1bf7eafb0a9027ebc6429c3f1d09107fb270b1ce0db6c0914685164a228e90a5b3fb7fc47b43191fabe1a53bc7f1\
                 2e1a00a9c0e2eef49c53fc173af3bb8acf92d06d80a4dff3d4a04ce3eb748aec40529fe3de1a525f9b42e580b07e738ffb24",
            ),
        ];
        for (h, expected) in want {
            assert_eq!(pbkdf2_hex(h, b"luks passphrase", &salt, 1000, 100), expected, "{h}");
        }
    }

    /// Passwords longer than the hash block are hashed first by HMAC: cross-checked likewise.
    #[test]
    fn pbkdf2_long_password() {
        let pw = [0x61u8; 200];
        assert_eq!(
            pbkdf2_hex(HashAlg::Sha256, &pw, b"salt", 3, 32),
            "47ecc9a436fb7dd40a2b2a85ccd8d874bf4809175b1c6368287fa8a7a9738006"
        );
        assert_eq!(
            pbkdf2_hex(HashAlg::Whirlpool, &pw, b"salt", 3, 32),
            "4238c48a5e8de88675bf8be026da909ccddb64a958d90f55637f8d4adc941072"
        );
        assert_eq!(
            pbkdf2_hex(HashAlg::Ripemd160, &pw, b"salt", 3, 32),
            "34c60124ba5490fe5544c558d029220488f144c11fcf3f5f471a9f327c393d26"
        );
    }

    #[test]
    fn pbkdf2_zero_rounds_is_one_round() {
        assert_eq!(pbkdf2_hex(HashAlg::Sha1, b"p", b"s", 0, 20), pbkdf2_hex(HashAlg::Sha1, b"p", b"s", 1, 20));
        let mut empty = [0u8; 0];
        HashAlg::Sha1.pbkdf2(b"p", b"s", 1, &mut empty);
    }
}
