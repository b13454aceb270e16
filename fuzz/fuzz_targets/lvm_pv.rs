//! Fuzz target `lvm_pv`: see `luksfs_fuzz::lvm_pv` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::lvm_pv(data));
