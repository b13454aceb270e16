//! luksfs: mount a directory of encrypted disk images (LUKS1, LUKS2, qcow2 with LUKS) as
//! decrypted, read-only raw files.
//!
//! Layers, bottom up: [`codec`] (bounds-checked byte reader), [`crypto`] (ciphers, hashes, KDFs),
//! [`luks`] and [`qcow2`] (on-disk formats: pure parsing plus key-slot unlocking), [`keys`] (where
//! passphrases come from), [`image`] (format × cipher × key → plaintext reads), [`cache`]
//! (bounded decrypted-block cache), [`dir`] (the source tree and lazy unlocking), [`fuse`] (the thin
//! FUSE layer: transports and mounting) and [`cli`] (the command line).
#![deny(unsafe_code)]

pub mod assets;
pub mod audit;
pub mod cache;
pub mod catalog;
pub mod civil;
pub mod cli;
pub mod codec;
pub mod crypto;
pub mod dir;
pub mod error;
pub mod formats;
pub mod fuse;
pub mod help;
pub mod image;
pub mod io;
pub mod keys;
pub mod logging;
pub mod mount_helper;
pub mod progress;
pub mod readiness;
pub mod report;
pub mod schema;
pub mod signature;
pub mod sniff;
pub mod source;
pub mod status;
pub mod stream;
pub mod sys;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
pub use formats::{luks, qcow2};
/// The FUSE modules, at their old paths.
pub use fuse::{bdi, fs, uring, vfs};
