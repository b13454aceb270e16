//! Fuzz target `qcow2_read`: see `luksfs_fuzz::qcow2_read` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::qcow2_read(data));
