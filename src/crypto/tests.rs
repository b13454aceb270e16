//! Cross-module tests: reference values for every cipher, mode and IV generator, round trips over
//! every combination, and IV generator details.

use super::xts::tests::Rng;
use super::*;

fn cipher(spec: &str, key: &[u8]) -> Box<dyn SectorCipher> {
    sector_cipher(&CipherSpec::parse_joined(spec).unwrap(), key).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Deterministic test bytes: `(i * a + (i >> 9) + b) mod 256`.
fn pattern(n: usize, a: usize, b: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(a) + (i >> 9) + b) as u8).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(HashAlg::Sha256.digest(&[data]))
}

/// SHA-256 of the ciphertext of `sectors` sectors of `pattern(_, 31, 0)` under key
/// `pattern(key_len, 13, 1)`, starting at IV number `first_iv`, computed independently with
/// libgcrypt 1.10 (through Python ctypes: gcrypt's own XTS/CBC/CTR/ECB modes, one call per sector
/// with the IV built in Python from the dm-crypt definitions). libgcrypt is cryptsetup's other
/// crypto backend, so its serpent/twofish/camellia/cast5 byte orders are the kernel's. The
/// aes-xts-plain64 value was also checked against Python `cryptography` (OpenSSL).
const REFERENCE: &[(&str, usize, usize, usize, u64, &str)] = &[
    ("aes-xts-plain64", 64, 512, 4, 0x3e8, "20d934dffdf7d08682cf850bc15749eca985b117e774aa5d85a3ed5ed4262943"),
    ("aes-xts-plain64", 32, 4096, 2, 0x268, "1a63f384a3b62b6247b17a9fd8d80df98d26bfa40165b755d87e09165366625e"),
    (
        "aes-xts-plain64",
        48,
        1024,
        3,
        0xfffffffffffffffe,
        "f796196ffa120d9a5a744fa9a8e1fdb0880443a9fc12128ec09e0bf92bd1d701",
    ),
    ("aes-xts-plain", 64, 512, 3, 0xfffffffe, "038ccc0f3432a9a51f3bb7a0f897b8c9ddaaf9ded83b1887f4c5a854b6a7fd7e"),
    ("aes-xts-plain64be", 64, 512, 2, 0x5, "f40529d4e54660244950e60f2e976f757763e3340d9e2b5f4123c73bcfdb69ea"),
    ("aes-xts-essiv:sha256", 64, 512, 2, 0x9, "52d0d796f5c03ecd65d44d400e23333d6cde77d1c5d5f9343650c4284cf8b5fc"),
    ("aes-xts-benbi", 32, 512, 2, 0x3, "e9dafb6b6509c2b10474570f683fcb9992f44fc61e9a12853a3f92211491f0dd"),
    ("aes-xts-null", 32, 2048, 2, 0x3, "587f9e7ef5ac8f9e06ac43e6a984d12c1b7a9709558028dbee7d5acf71601abf"),
    ("aes-cbc-essiv:sha256", 32, 512, 3, 0x4d, "316b825ead34bc60565c8ce4672d4595658e9cd685e70a42a9d27857d7234ace"),
    ("aes-cbc-essiv:sha256", 16, 4096, 2, 0x10, "5d010fc57784d0b6f064dbe079379140e8c35de389a72e6ac22ae08cc168ce18"),
    ("aes-cbc-plain64", 32, 512, 2, 0x1, "f206606691b0d3e2b2ad398f66cc5b5eaa605f766a231eb8e68e914fb47a20f9"),
    ("aes-cbc-plain", 24, 512, 2, 0x100000001, "6c25f6bcaf4bb4b43ed1c0153c4b3b0a524de104a6b47a49f03f048bd9ebbf63"),
    ("aes-cbc-benbi", 16, 512, 2, 0x1, "05a63a822cb14ef230ba22abd938c69cda8be89fd51c49613e3b71c11ce66391"),
    ("aes-cbc-eboiv", 32, 512, 2, 0x64, "62090ba32f527d3e6202753af033485fdfaed127a64c637a4af59d950c2403a1"),
    ("aes-cbc-eboiv", 16, 4096, 2, 0x320, "5d91e1dd695adcc6e1cd3a33e3b39ba493799844c81d805aab27e524e63dc06a"),
    ("aes-cbc-null", 16, 512, 2, 0x64, "26f7af85bcd7461f0443be4fb7970ddbc598112a2be24eeed81a7d6cfa3ddc7d"),
    ("aes-ecb", 24, 512, 2, 0x0, "62270de9ab1dd14a363e59313b8ff3058544e648dcc481726c3491fd2dfd0d89"),
    ("aes-ctr-plain64", 32, 512, 2, 0x7, "5d166218ee92bd3d1580c5b5ffd65101e2f04963777efcea379b59df8a19ae28"),
    (
        "aes-ctr-plain64be",
        16,
        512,
        2,
        0xffffffffffffffff,
        "ffe7eecc870bd2938e5dc793fd4d0aa0f794776e7b38eeb8efc738d590cef548",
    ),
    ("aes-ctr-essiv:sha256", 16, 1024, 2, 0x9, "183d5c20ea741e16494f809f41f42be6a0d6c7aaa05506d533330b8e948cce45"),
    ("serpent-xts-plain64", 64, 512, 2, 0x3e8, "02561d2137bfa1781361b9c6886fc5a0b27e7afe1a0bb72e9ed623cefdac1631"),
    ("serpent-xts-plain64", 32, 4096, 2, 0x8, "16c9da2ecf784aef3f2410254d5a89535bb2f79535f7c0f0d3125a671383bb2a"),
    ("serpent-cbc-essiv:sha256", 32, 512, 2, 0x5, "b2be20ea00c4128e30408f682290fff8a54c7a70fa88cc036dafa11a7fd0362f"),
    ("serpent-ecb", 16, 512, 1, 0x0, "ec15befdc3acf2594bc42aff0f5fbeb399c7f947f8a41a26c4c04ebc1e5096ae"),
    ("twofish-xts-plain64", 64, 512, 2, 0x3e8, "ceb3f89279f3dd012036b97dd1ee097788dc075269eebe657c6200db8f538d25"),
    ("twofish-cbc-plain", 32, 512, 2, 0x3, "955f238ac175c97d3e8b68bc33a70a3d709d2f26edc1d509bb6e649a0262e787"),
    ("twofish-ctr-benbi", 16, 512, 2, 0x3, "04b96156d0b787927de40a6c553501ec3de99e721707a15b0a7414167897352b"),
    ("camellia-xts-plain64", 64, 512, 2, 0x3e8, "f3733a26bd5505993e92f72438b91c094c32f721ca1160db69f64a6068729b93"),
    ("camellia-xts-plain64", 32, 512, 2, 0x1, "7775dd5663fec52f87db40c899ee81f8fb60dd0f7eba343fc528cb2dbd0fb08c"),
    ("camellia-cbc-essiv:sha256", 16, 512, 2, 0x4, "fe435f9931d480b7fd67f421ea326b23f1f714575972ec494de9152d62612654"),
    ("camellia-ctr-plain64", 24, 512, 2, 0x4, "dfa434f1ec9fa57083def5cda0f034f0bc949155b4db376fd549970c32880942"),
    ("cast5-cbc-plain64", 16, 512, 2, 0x9, "8f50d3158aa88623a990fc562af314790321c21ff43039cf08484a84b072d62d"),
    ("cast5-cbc-benbi", 16, 512, 2, 0x9, "f5eae6cb172f36630349270915b5d2fd69fd18d6d3ccd55f35108a6b834581a8"),
    ("cast5-cbc-eboiv", 16, 512, 2, 0x9, "06cfe0d7bf5415a11a3badaca16df44d711e5fe47d620dfb270f8665e4970393"),
    ("cast5-ecb", 16, 512, 2, 0x0, "ebc4f5a8cc27937c87dacb63a16c8f5354e145921c9ec1c27ba962effe4ad318"),
    (
        "cast5-ctr-plain64be",
        16,
        512,
        2,
        0xfffffffffffffffd,
        "dc930195d980ff1b65628e52b7b8062f2bc937cabe7e7ffb44bc26cfbf43856c",
    ),
];

#[test]
fn reference_ciphertexts() {
    for &(spec, key_len, sector_size, sectors, first_iv, want) in REFERENCE {
        let c = cipher(spec, &pattern(key_len, 13, 1));
        let plain = pattern(sector_size * sectors, 31, 0);
        let mut buf = plain.clone();
        c.encrypt(&mut buf, first_iv, sector_size);
        assert_eq!(sha256_hex(&buf), want, "{spec} key {key_len} sector {sector_size} iv {first_iv:#x}");
        c.decrypt(&mut buf, first_iv, sector_size);
        assert!(buf == plain, "{spec}: decrypt");
    }
}

/// AES-256-CBC-ESSIV:sha256, sector 77, against `openssl enc`:
/// IV = `openssl enc -aes-256-ecb -nopad -K $(sha256 key)` of LE64(77) ‖ 0⁸, then
/// `openssl enc -aes-256-cbc -nopad -K key -iv IV` of the sector.
#[test]
fn cbc_essiv_against_openssl() {
    let key = pattern(32, 13, 1);
    let plain = pattern(512, 31, 0);
    let mut buf = plain.clone();
    let c = cipher("aes-cbc-essiv:sha256", &key);
    c.decrypt(&mut buf, 77, 512); // decrypt and encrypt are inverses: check both ways
    c.encrypt(&mut buf, 77, 512);
    assert_eq!(buf, plain);
    c.encrypt(&mut buf, 77, 512);
    assert_eq!(
        hex::encode(&buf),
        "5c0c8e992f7f4c3da1681727e0f56139b91c06b80b18690096dee34ffc63c8a5e459e34bf4045ecf5a09d133a7dc5eb9\
         e07e5bcb7d40ddff90d6d1c9a2b28c66c301d1ed6242339e1e93f4e9eb9fef9262ad12662acfc669d8fe9d96d0dbbc59\
         586810613f4a5c56dbc1b36938d6d17694a32fd396768f24e10ce2660dc371beb7a93f5d473b167de3a6eb25a5cf01c1\
         e1e75119c3b904c10beb601d86f1c9ec6341343b1444416218c8c1749c16ebe6ec6cbfdaf67ab30db1e2a1299c130ccf\
         c2652e72561bbc2327708e5b349cd22e0675c2bd41111de8f30ee827c1bf8a3646a4ab45cfc8c262c437baa415b37647\
         b8e02b8fe499986d1970445daf3e9cdd16f8dc232175583f24a6afcca2f3f05615a21dafcd50dee640370f8cf3c9a8ea\
         42da36bc252fd51c29b21ea9632cb17c1b2fe918ca714b80bd7c6c051790f0b36e13ec0e1e9b1ca76496aa2d144b2551\
         a09aad95c950ad611dbe4f9c4eebc3b997daf9b77ef2d92449e960be5fd52c21dec27cc3ad67852ee524790c96a8933c\
         6be8edc61b1537cf3898b214d80780d929df083ed8c21f075f5005d24160001a59f535e5d6a6ae0cf40d9221feec0d0e\
         0478a54c6e58a3006e1159bee246fa7c645018b344d2887873ffa7142d233f1559ece4e5a6d288f6d143cb6c741c811e\
         781e4ada4c58181845d2840ed363d4e40e0a25e28d2c5c4f4c58a9e5a4553883"
    );
    // The IV of sector 77 is the first block's CBC input: recover it by decrypting block 0 with ECB.
    let mut first = buf[..16].to_vec();
    first.resize(512, 0);
    cipher("aes-ecb", &key).decrypt(&mut first, 0, 512);
    let iv: Vec<u8> = first[..16].iter().zip(&plain[..16]).map(|(a, b)| a ^ b).collect();
    assert_eq!(hex::encode(iv), "e6bb5b7c5c4ddb5037792091022a4d89");
}

/// `plain` and `plain64` agree below sector 2^32; above it `plain` wraps, so sector 2^32 + k
/// under `plain` is sector k under `plain64`.
#[test]
fn plain_wraps_where_plain64_does_not() {
    for (mode, key_len) in [("xts", 64), ("cbc", 32), ("ctr", 16)] {
        let key = pattern(key_len, 7, 3);
        let plain = cipher(&format!("aes-{mode}-plain"), &key);
        let plain64 = cipher(&format!("aes-{mode}-plain64"), &key);
        let data = pattern(4 * 512, 5, 1);
        let enc = |c: &dyn SectorCipher, iv: u64| {
            let mut b = data.clone();
            c.encrypt(&mut b, iv, 512);
            b
        };
        for iv in [0, 1, 12345, (1 << 32) - 4] {
            assert_eq!(enc(&*plain, iv), enc(&*plain64, iv), "{mode} {iv}");
        }
        // Crossing 2^32 inside one call: the last two sectors differ.
        let (a, b) = (enc(&*plain, (1 << 32) - 2), enc(&*plain64, (1 << 32) - 2));
        assert_eq!(a[..1024], b[..1024], "{mode}");
        assert_ne!(a[1024..1536], b[1024..1536], "{mode}");
        for k in [0u64, 5, 1 << 20] {
            assert_eq!(enc(&*plain, (1 << 32) + k), enc(&*plain64, k), "{mode} {k}");
            assert_ne!(enc(&*plain64, (1 << 32) + k), enc(&*plain64, k), "{mode} {k}");
        }
    }
}

/// qemu's spellings: a hash after plain64 and an IV generator after ecb change nothing.
#[test]
fn qemu_spellings_are_equivalent() {
    let key = pattern(64, 3, 9);
    let data = pattern(2048, 11, 2);
    let run = |spec: &str, key: &[u8]| {
        let mut b = data.clone();
        cipher(spec, key).encrypt(&mut b, 99, 512);
        b
    };
    assert_eq!(run("aes-xts-plain64:sha256", &key), run("aes-xts-plain64", &key));
    assert_eq!(run("aes-ecb-plain64", &key[..32]), run("aes-ecb", &key[..32]));
    assert_eq!(run("aes-cbc-plain:sha1", &key[..16]), run("aes-cbc-plain", &key[..16]));
}

/// LUKS2 4 KiB sectors use IV numbers in 512-byte units: sector k of a 4 KiB volume is IV 8k.
#[test]
fn large_sectors_count_ivs_in_512_byte_units() {
    let key = pattern(64, 3, 1);
    let c = cipher("aes-xts-plain64", &key);
    let data = pattern(3 * 4096, 1, 0);
    let mut whole = data.clone();
    c.encrypt(&mut whole, 80, 4096);
    for (i, chunk) in data.chunks(4096).enumerate() {
        let mut one = chunk.to_vec();
        c.encrypt(&mut one, 80 + 8 * i as u64, 4096);
        assert_eq!(one, whole[i * 4096..(i + 1) * 4096]);
    }
}

fn all_ivgens(alg: CipherAlg) -> Vec<String> {
    let mut v: Vec<String> = ["plain", "plain64", "plain64be", "benbi", "null", "eboiv"].map(String::from).into();
    v.extend(HashAlg::ALL.iter().filter(|h| alg.key_len_ok(h.output_len())).map(|h| format!("essiv:{h}")));
    v
}

fn valid_key_lens(spec: &CipherSpec) -> Vec<usize> {
    (0..=80).filter(|&n| spec.key_len_ok(n)).collect()
}

/// Every (cipher, mode, IV generator) combination: encryption changes the data, decryption
/// restores it, one call over many sectors equals per-sector calls, and wrong key lengths fail.
#[test]
fn round_trip_every_combination() {
    let mut rng = Rng::new(2024);
    let mut combos = 0;
    for alg in CipherAlg::ALL {
        for mode in [ChainMode::Xts, ChainMode::Cbc, ChainMode::Ecb, ChainMode::Ctr] {
            let ivgens = if mode == ChainMode::Ecb { vec![String::new()] } else { all_ivgens(alg) };
            for ivgen in ivgens {
                let text = if ivgen.is_empty() { format!("{alg}-{mode}") } else { format!("{alg}-{mode}-{ivgen}") };
                let spec = match CipherSpec::parse_joined(&text) {
                    Ok(s) => s,
                    Err(e) => {
                        // Only the documented refusals.
                        let xts_cast5 = mode == ChainMode::Xts && alg == CipherAlg::Cast5;
                        let eboiv = ivgen == "eboiv" && mode != ChainMode::Cbc;
                        assert!(xts_cast5 || eboiv, "{text}: {e}");
                        continue;
                    }
                };
                let lens = valid_key_lens(&spec);
                assert!(!lens.is_empty(), "{text}");
                for &key_len in &lens {
                    let mut key = vec![0u8; key_len];
                    rng.fill(&mut key);
                    let c = sector_cipher(&spec, &key).unwrap_or_else(|e| panic!("{text} {key_len}: {e}"));
                    for sector_size in [512, 1024, 2048, 4096] {
                        let sectors = 1 + rng.below(3) as usize;
                        let first_iv = if rng.below(2) == 0 { rng.below(1000) } else { rng.next() };
                        let mut data = vec![0u8; sectors * sector_size];
                        rng.fill(&mut data);
                        let mut buf = data.clone();
                        c.encrypt(&mut buf, first_iv, sector_size);
                        assert_ne!(buf, data, "{text}");
                        let mut pieces = data.clone();
                        for (i, p) in pieces.chunks_mut(sector_size).enumerate() {
                            let iv = first_iv.wrapping_add((i * sector_size / 512) as u64);
                            c.encrypt(p, iv, sector_size);
                        }
                        assert!(pieces == buf, "{text}: per-sector calls differ");
                        c.decrypt(&mut buf, first_iv, sector_size);
                        assert!(buf == data, "{text} key {key_len} sector {sector_size}: round trip");
                    }
                    combos += 1;
                }
                for bad in [0, 1, 4, 15, 17, 31, 33, 63, 65, 96] {
                    if !lens.contains(&bad) {
                        assert_eq!(
                            sector_cipher(&spec, &vec![0u8; bad]).err(),
                            Some(CryptoError::BadKeyLength { spec: text.clone(), bits: bad * 8 }),
                            "{text} {bad}"
                        );
                    }
                }
            }
        }
    }
    assert!(combos > 300, "{combos}");
}

/// Equal plaintext sectors encrypt differently exactly when the IV depends on the sector.
#[test]
fn ivs_separate_sectors() {
    let key = pattern(32, 3, 3);
    for (spec, distinct) in [
        ("aes-xts-plain64", true),
        ("aes-cbc-essiv:sha256", true),
        ("aes-cbc-benbi", true),
        ("aes-cbc-eboiv", true),
        ("aes-ctr-plain64be", true),
        ("aes-cbc-null", false),
        ("aes-ecb", false),
    ] {
        let key = if spec.contains("xts") { &key[..] } else { &key[..16] };
        let mut buf = vec![0x42u8; 1024];
        cipher(spec, key).encrypt(&mut buf, 10, 512);
        assert_eq!(buf[..512] != buf[512..], distinct, "{spec}");
    }
}

/// Many sectors per call cross the IV group and batch boundaries in every mode.
#[test]
fn long_requests_match_per_sector_calls() {
    let mut rng = Rng::new(5);
    for (spec, key_len) in
        [("aes-cbc-essiv:sha256", 32), ("aes-ctr-plain64", 16), ("cast5-cbc-plain64", 16), ("twofish-xts-plain", 64)]
    {
        let mut key = vec![0u8; key_len];
        rng.fill(&mut key);
        let c = cipher(spec, &key);
        for sector_size in [512, 4096] {
            let mut data = vec![0u8; 150 * sector_size];
            rng.fill(&mut data);
            let mut whole = data.clone();
            c.decrypt(&mut whole, 4000, sector_size);
            for (i, s) in data.chunks_mut(sector_size).enumerate() {
                c.decrypt(s, 4000 + (i * sector_size / 512) as u64, sector_size);
            }
            assert!(whole == data, "{spec} {sector_size}");
        }
    }
}

#[test]
fn empty_buffer_is_fine() {
    for (spec, key_len) in
        [("aes-xts-plain64", 64), ("aes-cbc-essiv:sha256", 32), ("aes-ctr-plain", 16), ("aes-ecb", 16)]
    {
        let c = cipher(spec, &vec![1u8; key_len]);
        c.decrypt(&mut [], 5, 512);
        c.encrypt(&mut [], 5, 4096);
    }
}

#[test]
fn errors_convert_to_crate_errors() {
    let e: crate::Error = CryptoError::Unsupported { what: "cipher", name: "x".into() }.into();
    assert!(e.to_string().contains("unsupported cipher 'x'"), "{e}");
    let spec = CipherSpec::parse_joined("aes-xts-plain64").unwrap();
    let err = sector_cipher(&spec, &[0u8; 16]).err().unwrap();
    assert_eq!(err.to_string(), "aes-xts-plain64 cannot take a 128-bit key");
}
