//! Fuzz target `mbr`: see `luksfs_fuzz::partition_table` for what it checks and how its corpus is seeded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| luksfs_fuzz::partition_table(data));
