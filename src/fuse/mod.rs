//! The FUSE layer: everything that knows the kernel's FUSE protocol or the `fuser` crate.
//!
//! * [`vfs`]: what a mount serves (attributes, lookups, listings, reads), transport-free.
//! * [`fs`]: the `/dev/fuse` transport (fuser's `Filesystem` over [`vfs`]).
//! * [`uring`]: the FUSE-over-io_uring transport (per-CPU queues).
//! * [`bdi`]: the mount's kernel readahead.
//! * [`attach`]: mounting and unmounting a connection (only our own), mount point checks.
//! * [`mountinfo`]: which mount is where (`/proc/self/mountinfo`).
//! * [`xattr`]: the `user.luksfs.*` extended attributes of the mount's files.
//! * [`mount`]: mounting — fuser `Session`/`Config`, serving until unmounted or signalled.

pub mod attach;
pub mod bdi;
pub mod fs;
pub mod mount;
pub mod mountinfo;
pub mod uring;
pub mod vfs;
pub mod xattr;
