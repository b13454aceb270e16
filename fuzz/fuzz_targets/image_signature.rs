//! Fuzz target `image_signature`: see `luksfs_fuzz::image_signature` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::image_signature(data));
