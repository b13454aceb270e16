//! Parse dm-crypt cipher specs (`aes` + `xts-plain64`, `aes-cbc-essiv:sha256`, ...).
//!
//! The grammar is the one cryptsetup and dm-crypt accept: `cipher[-chainmode[-ivgen[:ivopts]]]`.
//! As in cryptsetup, a bare cipher (`aes`) and the legacy mode `plain` both mean `cbc-plain`.
//! As in dm-crypt, `ecb` ignores an IV generator (qemu writes `ecb-plain64`), and `plain`,
//! `plain64` and `plain64be` ignore IV options (qemu writes `xts-plain64:sha256`). The kernel
//! crypto API syntax (`capi:xts(aes)-plain64`), loop-AES multi-key ciphers (`aes:64-cbc-lmk`) and
//! `cipher_null` are recognised and refused as unsupported.

use std::fmt;

use super::{CryptoError, HashAlg};

/// A block cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherAlg {
    /// AES (Rijndael with a 128-bit block), 128/192/256-bit keys.
    Aes,
    /// Serpent, 128..=256-bit keys (whole bytes).
    Serpent,
    /// Twofish, 128/192/256-bit keys.
    Twofish,
    /// CAST-128 (CAST5): 64-bit block, 40..=128-bit keys; no XTS.
    Cast5,
    /// Camellia, 128/192/256-bit keys.
    Camellia,
}

impl CipherAlg {
    /// Every supported cipher.
    pub const ALL: [CipherAlg; 5] =
        [CipherAlg::Aes, CipherAlg::Serpent, CipherAlg::Twofish, CipherAlg::Cast5, CipherAlg::Camellia];

    /// From the dm-crypt / kernel crypto API name (`aes`, `serpent`, ...), case-sensitive as
    /// the kernel is.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The dm-crypt name.
    pub fn name(self) -> &'static str {
        match self {
            CipherAlg::Aes => "aes",
            CipherAlg::Serpent => "serpent",
            CipherAlg::Twofish => "twofish",
            CipherAlg::Cast5 => "cast5",
            CipherAlg::Camellia => "camellia",
        }
    }

    /// Block size in bytes (16, or 8 for CAST5).
    pub fn block_size(self) -> usize {
        match self {
            CipherAlg::Cast5 => 8,
            _ => 16,
        }
    }

    /// Whether `len` bytes is a key this cipher takes (one key: an XTS key is two of these).
    pub fn key_len_ok(self, len: usize) -> bool {
        match self {
            CipherAlg::Aes | CipherAlg::Twofish | CipherAlg::Camellia => matches!(len, 16 | 24 | 32),
            CipherAlg::Serpent => (16..=32).contains(&len),
            CipherAlg::Cast5 => (5..=16).contains(&len),
        }
    }
}

impl fmt::Display for CipherAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A block cipher mode, as dm-crypt names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainMode {
    /// XTS (IEEE 1619) with a double-length key; one XTS data unit per sector.
    Xts,
    /// CBC, restarted at every sector with the sector's IV.
    Cbc,
    /// ECB: no IV.
    Ecb,
    /// CTR with a block-wide big-endian counter starting at the sector's IV (the kernel's
    /// `ctr(...)` template).
    Ctr,
}

impl ChainMode {
    /// The dm-crypt name.
    pub fn name(self) -> &'static str {
        match self {
            ChainMode::Xts => "xts",
            ChainMode::Cbc => "cbc",
            ChainMode::Ecb => "ecb",
            ChainMode::Ctr => "ctr",
        }
    }
}

impl fmt::Display for ChainMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the IV of a sector is computed from its IV number (the 512-byte sector number plus the
/// segment's IV offset). IVs are one cipher block wide and zero except where noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IvGen {
    /// No IV (ECB).
    None,
    /// `plain`: the IV number truncated to 32 bits, little-endian, in the first 4 bytes (it
    /// wraps at 2^32 sectors, 2 TiB).
    Plain,
    /// `plain64`: the IV number, 64-bit little-endian, in the first 8 bytes.
    Plain64,
    /// `plain64be`: the IV number, 64-bit big-endian, in the last 8 bytes.
    Plain64Be,
    /// `essiv:HASH`: the `plain64` IV encrypted with the same block cipher keyed by
    /// HASH(volume key) (the whole key, both XTS halves).
    Essiv(HashAlg),
    /// `benbi`: the big-endian count of narrow (cipher-block) units from 1, in the last 8 bytes:
    /// `(iv << (9 - log2(block size))) + 1`.
    Benbi,
    /// `null`: an all-zero IV.
    Null,
    /// `eboiv` (BitLocker): the block with `iv * sector_size` (64-bit little-endian) first,
    /// encrypted with the volume key; CBC only. For 512-byte sectors that is the byte offset.
    Eboiv,
}

impl fmt::Display for IvGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IvGen::None => f.write_str("none"),
            IvGen::Plain => f.write_str("plain"),
            IvGen::Plain64 => f.write_str("plain64"),
            IvGen::Plain64Be => f.write_str("plain64be"),
            IvGen::Essiv(h) => write!(f, "essiv:{h}"),
            IvGen::Benbi => f.write_str("benbi"),
            IvGen::Null => f.write_str("null"),
            IvGen::Eboiv => f.write_str("eboiv"),
        }
    }
}

/// A parsed cipher spec: cipher, chain mode and IV generator, plus the text it was parsed from
/// (which [`Display`](fmt::Display) prints, e.g. `aes-xts-plain64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CipherSpec {
    cipher: CipherAlg,
    mode: ChainMode,
    ivgen: IvGen,
    text: String,
}

impl CipherSpec {
    /// Parse a LUKS1-style pair: cipher name (`aes`) and mode (`xts-plain64`). Display text is
    /// `name-mode`.
    pub fn parse(name: &str, mode: &str) -> Result<Self, CryptoError> {
        let text = format!("{name}-{mode}");
        if name.contains('-') {
            return Err(CryptoError::Malformed(text));
        }
        Self::parse_parts(&text, name, Some(mode))
    }

    /// Parse a LUKS2-style joined spec (`aes-xts-plain64`): the cipher is everything before the
    /// first `-`, the mode everything after it.
    pub fn parse_joined(spec: &str) -> Result<Self, CryptoError> {
        match spec.split_once('-') {
            Some((name, mode)) => Self::parse_parts(spec, name, Some(mode)),
            None => Self::parse_parts(spec, spec, None),
        }
    }

    /// The block cipher.
    pub fn cipher(&self) -> CipherAlg {
        self.cipher
    }

    /// The chain mode.
    pub fn mode(&self) -> ChainMode {
        self.mode
    }

    /// The IV generator ([`IvGen::None`] for ECB, whatever the text said).
    pub fn ivgen(&self) -> IvGen {
        self.ivgen
    }

    /// Whether a volume key of `len` bytes fits: for XTS, two equal halves each a valid key of
    /// the cipher (32/48/64 bytes for AES); otherwise one valid key.
    pub fn key_len_ok(&self, len: usize) -> bool {
        match self.mode {
            ChainMode::Xts => len.is_multiple_of(2) && self.cipher.key_len_ok(len / 2),
            _ => self.cipher.key_len_ok(len),
        }
    }

    fn parse_parts(text: &str, name: &str, mode: Option<&str>) -> Result<Self, CryptoError> {
        let malformed = || CryptoError::Malformed(text.to_string());
        let unsupported = |what: &'static str, name: &str| CryptoError::Unsupported { what, name: name.to_string() };

        // Cipher.
        if name.starts_with("capi:") {
            return Err(unsupported("kernel crypto API cipher syntax", text));
        }
        if let Some((base, keys)) = name.split_once(':') {
            if is_token(base) && !keys.is_empty() && keys.bytes().all(|b| b.is_ascii_digit()) {
                return Err(unsupported("multi-key (loop-AES) cipher", name));
            }
            return Err(malformed());
        }
        if !is_token(name) {
            return Err(malformed());
        }
        if name == "cipher_null" || name == "null" {
            return Err(unsupported("cipher", name));
        }
        let cipher = CipherAlg::from_name(name).ok_or_else(|| unsupported("cipher", name))?;

        // Chain mode and IV generator. cryptsetup reads a bare cipher and mode `plain` as
        // `cbc-plain`.
        let mode = match mode {
            None | Some("plain") => "cbc-plain",
            Some(m) => m,
        };
        let (chain, iv) = match mode.split_once('-') {
            Some((c, iv)) => (c, Some(iv)),
            None => (mode, None),
        };
        if !is_token(chain) {
            return Err(malformed());
        }
        let chain = match chain {
            "xts" => ChainMode::Xts,
            "cbc" => ChainMode::Cbc,
            "ecb" => ChainMode::Ecb,
            "ctr" => ChainMode::Ctr,
            other => return Err(unsupported("cipher mode", other)),
        };
        let ivgen = match iv {
            None if chain == ChainMode::Ecb => IvGen::None,
            // dm-crypt: "IV mechanism required".
            None => return Err(malformed()),
            Some(iv) => {
                let parsed = parse_ivgen(iv, cipher).map_err(|e| e.unwrap_or_else(malformed))?;
                // ECB has no IV: dm-crypt ignores the generator.
                if chain == ChainMode::Ecb { IvGen::None } else { parsed }
            }
        };
        if chain == ChainMode::Xts && cipher.block_size() != 16 {
            return Err(unsupported("cipher mode", &format!("xts with the 64-bit block cipher {cipher}")));
        }
        if ivgen == IvGen::Eboiv && chain != ChainMode::Cbc {
            return Err(unsupported("IV generator", &format!("eboiv with {chain} (CBC only)")));
        }
        Ok(CipherSpec { cipher, mode: chain, ivgen, text: text.to_string() })
    }
}

/// Parse `ivgen[:ivopts]`. `Err(None)` means malformed.
fn parse_ivgen(iv: &str, cipher: CipherAlg) -> Result<IvGen, Option<CryptoError>> {
    let (name, opts) = match iv.split_once(':') {
        Some((n, o)) => (n, Some(o)),
        None => (iv, None),
    };
    if !is_token(name) || opts.is_some_and(|o| !is_token(o)) {
        return Err(None);
    }
    let no_opts = |g: IvGen| if opts.is_some() { Err(None) } else { Ok(g) };
    match name {
        // IV options mean nothing here; qemu writes `plain64:sha256`.
        "plain" => Ok(IvGen::Plain),
        "plain64" => Ok(IvGen::Plain64),
        "plain64be" => Ok(IvGen::Plain64Be),
        "benbi" => no_opts(IvGen::Benbi),
        "null" => no_opts(IvGen::Null),
        "eboiv" => no_opts(IvGen::Eboiv),
        "essiv" => {
            let hash_name = opts.ok_or(None)?;
            let hash = HashAlg::from_name(hash_name).map_err(Some)?;
            if !cipher.key_len_ok(hash.output_len()) {
                return Err(Some(CryptoError::Unsupported {
                    what: "ESSIV hash",
                    name: format!("{hash} (its {}-byte digest is not a {cipher} key)", hash.output_len()),
                }));
            }
            Ok(IvGen::Essiv(hash))
        }
        other => Err(Some(CryptoError::Unsupported { what: "IV generator", name: other.to_string() })),
    }
}

/// A non-empty run of ASCII letters, digits and underscores.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for CipherSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (CipherAlg, ChainMode, IvGen) {
        let spec = CipherSpec::parse_joined(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(spec.to_string(), s);
        (spec.cipher(), spec.mode(), spec.ivgen())
    }

    fn unsupported(s: &str) -> (&'static str, String) {
        match CipherSpec::parse_joined(s) {
            Err(CryptoError::Unsupported { what, name }) => (what, name),
            other => panic!("{s}: expected Unsupported, got {other:?}"),
        }
    }

    fn malformed(s: &str) {
        match CipherSpec::parse_joined(s) {
            Err(CryptoError::Malformed(t)) => assert_eq!(t, s),
            other => panic!("{s:?}: expected Malformed, got {other:?}"),
        }
    }

    use ChainMode::*;
    use CipherAlg::*;

    #[test]
    fn common_specs() {
        assert_eq!(ok("aes-xts-plain64"), (Aes, Xts, IvGen::Plain64));
        assert_eq!(ok("aes-cbc-essiv:sha256"), (Aes, Cbc, IvGen::Essiv(HashAlg::Sha256)));
        assert_eq!(ok("aes-cbc-plain"), (Aes, Cbc, IvGen::Plain));
        assert_eq!(ok("aes-xts-plain"), (Aes, Xts, IvGen::Plain));
        assert_eq!(ok("aes-xts-plain64be"), (Aes, Xts, IvGen::Plain64Be));
        assert_eq!(ok("aes-xts-essiv:sha256"), (Aes, Xts, IvGen::Essiv(HashAlg::Sha256)));
        assert_eq!(ok("aes-cbc-benbi"), (Aes, Cbc, IvGen::Benbi));
        assert_eq!(ok("aes-cbc-null"), (Aes, Cbc, IvGen::Null));
        assert_eq!(ok("aes-cbc-eboiv"), (Aes, Cbc, IvGen::Eboiv));
        assert_eq!(ok("aes-ecb"), (Aes, Ecb, IvGen::None));
        assert_eq!(ok("aes-ctr-plain64"), (Aes, Ctr, IvGen::Plain64));
        assert_eq!(ok("serpent-xts-plain64"), (Serpent, Xts, IvGen::Plain64));
        assert_eq!(ok("serpent-cbc-essiv:sha1"), (Serpent, Cbc, IvGen::Essiv(HashAlg::Sha1)));
        assert_eq!(ok("twofish-xts-plain64"), (Twofish, Xts, IvGen::Plain64));
        assert_eq!(ok("twofish-cbc-essiv:sha256"), (Twofish, Cbc, IvGen::Essiv(HashAlg::Sha256)));
        assert_eq!(ok("camellia-xts-plain64"), (Camellia, Xts, IvGen::Plain64));
        assert_eq!(ok("cast5-cbc-plain64"), (Cast5, Cbc, IvGen::Plain64));
        assert_eq!(ok("cast5-ecb"), (Cast5, Ecb, IvGen::None));
        assert_eq!(ok("cast5-ctr-benbi"), (Cast5, Ctr, IvGen::Benbi));
    }

    #[test]
    fn luks1_pairs() {
        let s = CipherSpec::parse("aes", "xts-plain64").unwrap();
        assert_eq!((s.cipher(), s.mode(), s.ivgen()), (Aes, Xts, IvGen::Plain64));
        assert_eq!(s.to_string(), "aes-xts-plain64");
        assert_eq!(s, CipherSpec::parse_joined("aes-xts-plain64").unwrap());
        let s = CipherSpec::parse("twofish", "cbc-essiv:sha256").unwrap();
        assert_eq!(s.ivgen(), IvGen::Essiv(HashAlg::Sha256));
        assert_eq!(s.to_string(), "twofish-cbc-essiv:sha256");
        assert!(matches!(CipherSpec::parse("aes-xts", "plain64"), Err(CryptoError::Malformed(_))));
        assert!(matches!(CipherSpec::parse("aes", ""), Err(CryptoError::Malformed(_))));
        assert!(matches!(CipherSpec::parse("", "xts-plain64"), Err(CryptoError::Malformed(_))));
        assert!(matches!(CipherSpec::parse("aes", "lrw-benbi"), Err(CryptoError::Unsupported { .. })));
    }

    #[test]
    fn qemu_quirks() {
        // The hash after plain64 means nothing; ecb carries an ignored generator.
        assert_eq!(ok("aes-xts-plain64:sha256"), (Aes, Xts, IvGen::Plain64));
        assert_eq!(ok("aes-cbc-plain:sha1"), (Aes, Cbc, IvGen::Plain));
        assert_eq!(ok("aes-xts-plain64be:sha512"), (Aes, Xts, IvGen::Plain64Be));
        assert_eq!(ok("aes-ecb-plain64"), (Aes, Ecb, IvGen::None));
        assert_eq!(ok("aes-ecb-essiv:sha256"), (Aes, Ecb, IvGen::None));
        assert_eq!(ok("twofish-ecb-plain"), (Twofish, Ecb, IvGen::None));
        let s = CipherSpec::parse("aes", "xts-plain64:sha256").unwrap();
        assert_eq!(s.to_string(), "aes-xts-plain64:sha256");
    }

    #[test]
    fn cryptsetup_defaults() {
        // A bare cipher and mode "plain" are cbc-plain, as cryptsetup parses them.
        assert_eq!(ok("aes"), (Aes, Cbc, IvGen::Plain));
        assert_eq!(ok("aes-plain"), (Aes, Cbc, IvGen::Plain));
        let s = CipherSpec::parse("aes", "plain").unwrap();
        assert_eq!((s.mode(), s.ivgen()), (Cbc, IvGen::Plain));
    }

    #[test]
    fn every_hash_for_essiv() {
        for h in HashAlg::ALL {
            for c in CipherAlg::ALL {
                let spec = format!("{c}-cbc-essiv:{}", h.name());
                let r = CipherSpec::parse_joined(&spec);
                if c.key_len_ok(h.output_len()) {
                    assert_eq!(r.unwrap().ivgen(), IvGen::Essiv(h), "{spec}");
                } else {
                    let (what, _) = unsupported(&spec);
                    assert_eq!(what, "ESSIV hash", "{spec}");
                }
            }
        }
        // Only these combinations are valid ESSIV keys.
        assert!(CipherSpec::parse_joined("aes-cbc-essiv:sha256").is_ok());
        assert!(CipherSpec::parse_joined("aes-cbc-essiv:sha1").is_err());
        assert!(CipherSpec::parse_joined("aes-cbc-essiv:sha512").is_err());
        assert!(CipherSpec::parse_joined("serpent-cbc-essiv:ripemd160").is_ok());
        assert!(CipherSpec::parse_joined("serpent-cbc-essiv:sha224").is_ok());
        assert!(CipherSpec::parse_joined("cast5-cbc-essiv:sha1").is_err());
        // The hash name is case-insensitive, like HashAlg::from_name.
        assert_eq!(ok("aes-cbc-essiv:SHA256").2, IvGen::Essiv(HashAlg::Sha256));
    }

    #[test]
    fn unsupported_things() {
        assert_eq!(unsupported("blowfish-cbc-plain"), ("cipher", "blowfish".into()));
        assert_eq!(unsupported("cast6-xts-plain64"), ("cipher", "cast6".into()));
        assert_eq!(unsupported("des3_ede-cbc-plain"), ("cipher", "des3_ede".into()));
        assert_eq!(unsupported("AES-xts-plain64"), ("cipher", "AES".into()));
        assert_eq!(unsupported("cipher_null-ecb"), ("cipher", "cipher_null".into()));
        assert_eq!(unsupported("cipher_null"), ("cipher", "cipher_null".into()));
        assert_eq!(unsupported("null"), ("cipher", "null".into()));
        assert_eq!(unsupported("aes-lrw-benbi"), ("cipher mode", "lrw".into()));
        assert_eq!(unsupported("aes-pcbc-plain"), ("cipher mode", "pcbc".into()));
        assert_eq!(unsupported("aes-cfb-plain"), ("cipher mode", "cfb".into()));
        assert_eq!(unsupported("aes-cbc-lmk"), ("IV generator", "lmk".into()));
        assert_eq!(unsupported("aes-cbc-tcw"), ("IV generator", "tcw".into()));
        assert_eq!(unsupported("aes-cbc-random"), ("IV generator", "random".into()));
        assert_eq!(unsupported("aes-xts-elephant:sha256"), ("IV generator", "elephant".into()));
        assert_eq!(unsupported("aes-cbc-essiv:md5"), ("hash", "md5".into()));
        assert_eq!(unsupported("aes-cbc-essiv:sha3_256"), ("hash", "sha3_256".into()));
        assert_eq!(unsupported("aes-xts-eboiv").0, "IV generator");
        assert_eq!(unsupported("aes-ctr-eboiv").0, "IV generator");
        assert_eq!(unsupported("cast5-xts-plain64").0, "cipher mode");
        assert_eq!(unsupported("capi:xts(aes)-plain64").0, "kernel crypto API cipher syntax");
        assert_eq!(unsupported("capi:cbc(aes)-essiv:sha256").0, "kernel crypto API cipher syntax");
        assert_eq!(unsupported("aes:64-cbc-lmk"), ("multi-key (loop-AES) cipher", "aes:64".into()));
    }

    #[test]
    fn malformed_things() {
        for s in [
            "",
            "-",
            "-xts-plain64",
            "aes-",
            "aes--plain64",
            "aes-xts-",
            "aes-xts",
            "aes-cbc",
            "aes-ctr",
            "aes-xts-plain64-extra",
            "aes-xts-plain64:",
            "aes-xts-:sha256",
            "aes-cbc-essiv",
            "aes-cbc-essiv:",
            "aes-cbc-essiv:sha256:x",
            "aes-cbc-benbi:x",
            "aes-cbc-null:sha1",
            "aes-cbc-eboiv:sha256",
            "aes xts plain64",
            "aes-xts-plain64 ",
            " aes-xts-plain64",
            "aes-xts-plain64\0",
            "aes-xts(plain64)",
            "aes:-cbc-plain",
            "aes:x-cbc-plain",
            "aés-xts-plain64",
            "aes-xts-plaïn64",
        ] {
            malformed(s);
        }
    }

    #[test]
    fn key_lengths() {
        let xts = CipherSpec::parse_joined("aes-xts-plain64").unwrap();
        for (len, good) in [(32, true), (48, true), (64, true), (16, false), (0, false), (33, false), (128, false)] {
            assert_eq!(xts.key_len_ok(len), good, "{len}");
        }
        let cbc = CipherSpec::parse_joined("aes-cbc-essiv:sha256").unwrap();
        for (len, good) in [(16, true), (24, true), (32, true), (64, false), (20, false)] {
            assert_eq!(cbc.key_len_ok(len), good, "{len}");
        }
        let serpent = CipherSpec::parse_joined("serpent-xts-plain64").unwrap();
        assert!(serpent.key_len_ok(32) && serpent.key_len_ok(40) && serpent.key_len_ok(64));
        assert!(!serpent.key_len_ok(30) && !serpent.key_len_ok(66));
        let cast5 = CipherSpec::parse_joined("cast5-cbc-plain").unwrap();
        assert!(cast5.key_len_ok(5) && cast5.key_len_ok(16) && !cast5.key_len_ok(4) && !cast5.key_len_ok(17));
        let twofish = CipherSpec::parse_joined("twofish-cbc-plain").unwrap();
        assert!(twofish.key_len_ok(16) && !twofish.key_len_ok(20));
    }

    #[test]
    fn names_and_display() {
        for c in CipherAlg::ALL {
            assert_eq!(CipherAlg::from_name(c.name()), Some(c));
            assert_eq!(c.to_string(), c.name());
        }
        for m in [Xts, Cbc, Ecb, Ctr] {
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(IvGen::Essiv(HashAlg::Sha256).to_string(), "essiv:sha256");
        assert_eq!(IvGen::Plain64Be.to_string(), "plain64be");
        // Display keeps the original text, even where parsing normalised it.
        assert_eq!(CipherSpec::parse_joined("aes-ecb-plain64").unwrap().to_string(), "aes-ecb-plain64");
    }
}
