//! Fuzz target `luks_keyslot`: see `luksfs_fuzz::luks_keyslot` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::luks_keyslot(data));
