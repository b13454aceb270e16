//! The one error type the rest of luksfs sees.
//!
//! Every module reports failures through its own typed error (carrying the offending value), which
//! converts into [`Error`]: a small, stable [`ErrorKind`] plus a one-line message and the file it is
//! about. The kind decides the exit code of `cat`/`inspect`/`mount` start-up and the errno a FUSE
//! `open` answers with, in one place each ([`ErrorKind::exit_code`], [`ErrorKind::errno`]).
//!
//! Messages never contain key material: constructors take descriptions, not secrets.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, coarsely: this decides exit codes and errnos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Anything else: I/O errors, the key manager being unreachable, internal errors. Exit 1.
    Io,
    /// The command line or a keytab is wrong. Exit 2.
    Usage,
    /// No key slot opened with the key given. Exit 3.
    BadKey,
    /// The image is damaged or truncated. Exit 4.
    Corrupt,
    /// A well-formed image using a feature luksfs refuses or does not implement. Exit 5.
    Unsupported,
    /// A single image or block device given as the source holds nothing luksfs can show (no
    /// encrypted volume anywhere in it). Exit 8.
    NothingToShow,
}

impl ErrorKind {
    /// Process exit code for this class of failure (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Io => 1,
            ErrorKind::Usage => 2,
            ErrorKind::BadKey => 3,
            ErrorKind::Corrupt => 4,
            ErrorKind::Unsupported => 5,
            ErrorKind::NothingToShow => 8,
        }
    }

    /// The errno a FUSE request on an image that failed this way answers with.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::Io | ErrorKind::Corrupt => libc::EIO,
            ErrorKind::Usage => libc::EINVAL,
            ErrorKind::BadKey => libc::EACCES,
            ErrorKind::Unsupported => libc::EOPNOTSUPP,
            ErrorKind::NothingToShow => libc::ENOENT,
        }
    }

    /// A short word for logs and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Usage => "usage",
            ErrorKind::BadKey => "bad-key",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NothingToShow => "nothing-to-show",
        }
    }
}

/// A failure with its class, the file it concerns (when known) and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    path: Option<PathBuf>,
    msg: String,
    /// Stored data contradicts a digest recorded beside it (an md5 or sha256 of a backup): a
    /// [`ErrorKind::Corrupt`] failure that `verify` reports as a hash mismatch (exit 7).
    digest: bool,
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message (which must not contain secrets).
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error { kind, path: None, msg: msg.into(), digest: false }
    }
    /// Shorthand for [`ErrorKind::Io`].
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, msg)
    }
    /// Shorthand for [`ErrorKind::Usage`].
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, msg)
    }
    /// Shorthand for [`ErrorKind::BadKey`].
    pub fn bad_key(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadKey, msg)
    }
    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, msg)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, msg)
    }
    /// Stored data does not match a digest recorded for it (class [`ErrorKind::Corrupt`]).
    pub fn digest_mismatch(msg: impl Into<String>) -> Self {
        Error { digest: true, ..Self::corrupt(msg) }
    }
    /// Whether this is a [`Error::digest_mismatch`].
    pub fn is_digest_mismatch(&self) -> bool {
        self.digest
    }
    /// An I/O error, with what was being done.
    pub fn from_io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        Self::io(format!("{what}: {e}"))
    }

    /// Attach the file this error concerns, unless one is attached already.
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }

    /// Prefix the message with context, e.g. `"key slot 3"`.
    #[must_use]
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }

    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The file this error is about, if known.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// The reason, without the path.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_file_once() {
        let e = Error::corrupt("bad magic").with_path("/a/b.img").with_path("/other");
        assert_eq!(e.to_string(), "/a/b.img: bad magic");
        assert_eq!(e.kind().exit_code(), 4);
    }

    #[test]
    fn kinds_map_to_documented_codes() {
        assert_eq!(ErrorKind::BadKey.exit_code(), 3);
        assert_eq!(ErrorKind::BadKey.errno(), libc::EACCES);
        assert_eq!(ErrorKind::Unsupported.errno(), libc::EOPNOTSUPP);
        assert_eq!(ErrorKind::Corrupt.errno(), libc::EIO);
    }
}
