//! Fuzz target `cinder_metadata`: see `luksfs_fuzz::cinder_metadata` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::cinder_metadata(data));
