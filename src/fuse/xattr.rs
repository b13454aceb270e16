//! The `user.luksfs.*` extended attributes every file of a mount answers (`getfattr -d FILE`):
//! where the image comes from, which volume the file is, its encryption format and cipher, and
//! its unlock state. Also the size rules of `getxattr(2)`/`listxattr(2)`: a size of 0 asks for
//! the value's size, a buffer too small is `ERANGE`.

use crate::dir::ImageEntry;
use crate::fuse::vfs::Errno;
use crate::status::state::volume_facts;
use crate::volume::Volume;

/// Prefix of every attribute luksfs shows.
pub const PREFIX: &str = "user.luksfs.";

/// The answer to a `getxattr`/`listxattr` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Xattr {
    /// The size the value needs (the caller asked with size 0).
    Size(u32),
    /// The value itself.
    Data(Vec<u8>),
}

/// Answer with `value` a request that allows `size` bytes.
pub fn sized(value: &[u8], size: u32) -> Result<Xattr, Errno> {
    let len = u32::try_from(value.len()).map_err(|_| libc::E2BIG)?;
    if size == 0 {
        Ok(Xattr::Size(len))
    } else if len > size {
        Err(libc::ERANGE)
    } else {
        Ok(Xattr::Data(value.to_vec()))
    }
}

/// The names of `attrs`, each followed by a NUL (the `listxattr` format).
pub fn name_list(attrs: &[(&'static str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, _) in attrs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    out
}

/// The attributes of the file showing `vol` of `image`: `source`, `volume`, `format` and
/// `cipher` (encrypted volumes and what they hold), `state`.
pub fn of_volume(image: &ImageEntry, vol: &Volume) -> Vec<(&'static str, String)> {
    let facts = volume_facts(&image.tree, vol);
    let mut out = vec![
        ("user.luksfs.source", image.source().display().to_string()),
        ("user.luksfs.volume", vol.describe_origin()),
    ];
    if let Some(enc) = facts.encryption {
        out.push(("user.luksfs.format", enc.format));
        out.push(("user.luksfs.cipher", enc.cipher));
    }
    out.push(("user.luksfs.state", facts.state.describe()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_probe_and_erange() {
        assert_eq!(sized(b"LUKS2", 0), Ok(Xattr::Size(5)));
        assert_eq!(sized(b"LUKS2", 4), Err(libc::ERANGE));
        assert_eq!(sized(b"LUKS2", 5), Ok(Xattr::Data(b"LUKS2".to_vec())));
        assert_eq!(sized(b"", 0), Ok(Xattr::Size(0)));
    }

    #[test]
    fn names_are_nul_terminated() {
        let l = name_list(&[("user.luksfs.a", "1".into()), ("user.luksfs.b", String::new())]);
        assert_eq!(l, b"user.luksfs.a\0user.luksfs.b\0");
        assert!(l.split(|&b| b == 0).filter(|n| !n.is_empty()).all(|n| n.starts_with(PREFIX.as_bytes())));
    }
}
