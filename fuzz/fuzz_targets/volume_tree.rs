//! Fuzz target `volume_tree`: see `luksfs_fuzz::volume_tree` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::volume_tree(data));
