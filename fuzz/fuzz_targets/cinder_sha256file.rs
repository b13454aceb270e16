//! Fuzz target `cinder_sha256file`: see `luksfs_fuzz::cinder_sha256file` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::cinder_sha256file(data));
