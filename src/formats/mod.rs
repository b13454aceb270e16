//! On-disk formats, one folder each: pure parsers over byte slices plus the reader each format
//! offers upward (every layer consumes and provides [`crate::io::ReadAt`]).

pub mod cinder_backup;
pub mod luks;
pub mod lvm;
pub mod partition;
pub mod qcow2;
