//! Fuzz target `lvm_metadata`: see `luksfs_fuzz::lvm_metadata` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::lvm_metadata(data));
