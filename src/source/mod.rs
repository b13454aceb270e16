//! Where bytes come from when they are not one image file: object stores holding named
//! objects (a posix/NFS directory tree now; Swift and S3 containers later), read whole or by
//! range. Formats built from many objects (Cinder backups) read through [`ObjectStore`] only,
//! so the same code serves every store and tests can use an in-memory one.

pub mod glance;
pub mod object;
pub mod posix;
pub mod s3;
pub mod swift;

use crate::{Error, Result};

/// A flat namespace of named, immutable objects (`/` is an ordinary character in a name, as in
/// Swift and S3; a posix store maps it to directories).
pub trait ObjectStore: Send + Sync {
    /// What this store is, for messages (a path or a URL, never credentials).
    fn describe(&self) -> String;
    /// All objects whose names start with `prefix`, with their sizes, sorted by name. Bounded: a
    /// store refuses to list more than its own limit rather than growing without end.
    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>>;
    /// The names of all objects starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list_sized(prefix)?.into_iter().map(|l| l.name).collect())
    }
    /// The whole object, or `None` when there is no such object. An object larger than `max`
    /// bytes is an error ([`crate::ErrorKind::Corrupt`]): callers know how large it can be.
    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>>;
    /// `len` bytes of the object from `offset`, or `None` when there is no such object; a range
    /// past the object's end is a [`crate::ErrorKind::Corrupt`] error.
    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>>;
    /// `len` bytes of the object from `offset` as a reader of one answer's body as it arrives
    /// (one request however long the range; nothing is buffered beyond what the reader reads),
    /// or `None` when there is no such object. A body that ends early is an I/O error of the
    /// reader. The default reads the range whole with [`Self::get_range`]: only a store whose
    /// [`Self::streams_ranges`] is true reads it as it arrives.
    fn open_range(&self, name: &str, offset: u64, len: u64) -> Result<Option<RangeReader>> {
        let len = usize::try_from(len).map_err(|_| Error::unsupported(format!("object {name}: range too large")))?;
        Ok(self.get_range(name, offset, len)?.map(|v| Box::new(std::io::Cursor::new(v)) as RangeReader))
    }
    /// [`Self::open_range`] reads a body as it arrives (one request for a whole stream is then
    /// cheaper than one per window).
    fn streams_ranges(&self) -> bool {
        false
    }
}

/// The body of a range being read as it arrives ([`ObjectStore::open_range`]).
pub type RangeReader = Box<dyn std::io::Read + Send>;

/// An object that can be read whole, once, from start to end (one request), when reading it by
/// range was refused: a Glance image of a store without byte ranges ([`glance::WholeImage`]).
/// `verify` reads such an image so ([`crate::report::forward`]).
pub trait OneGet: Send + Sync {
    /// How messages name it (`Glance image ID`).
    fn name(&self) -> String;
    /// Its size as listed: the body must have exactly this many bytes.
    fn size(&self) -> u64;
    /// Whether a read by range was refused (then it is read with [`OneGet::open`]).
    fn refuses_ranges(&self) -> bool;
    /// A new read of it from byte 0 (one request), handed on as it arrives.
    fn open(&self) -> crate::Result<RangeReader>;
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// Its size in bytes, as the store lists it.
    pub size: u64,
}

/// An in-memory store (tests, fuzzing): `name → bytes`.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    pub objects: std::collections::BTreeMap<String, Vec<u8>>,
}

impl ObjectStore for MemStore {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>> {
        Ok(self
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Listed { name: k.clone(), size: v.len() as u64 })
            .collect())
    }
    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.objects.get(name) {
            Some(v) if v.len() as u64 > max => Err(crate::Error::corrupt(format!(
                "object {name} has {} bytes, more than the {max} it can have",
                v.len()
            ))),
            v => Ok(v.cloned()),
        }
    }
    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        let Some(v) = self.objects.get(name) else { return Ok(None) };
        let range =
            usize::try_from(offset).ok().and_then(|s| Some(s..s.checked_add(len)?)).filter(|r| r.end <= v.len());
        match range {
            Some(r) => Ok(Some(v[r].to_vec())),
            None => Err(crate::Error::corrupt(format!("object {name}: range {offset}+{len} is past its end"))),
        }
    }
}

/// The body of an HTTP answer, at most `limit` bytes (more is [`ureq::Error::BodyExceedsLimit`]),
/// read into a buffer sized once from its `Content-Length`, or from `expect` (the length of a
/// range asked for) when the server sends it chunked (an object of 50 MiB read into a growing
/// buffer was copied and faulted in again at every doubling).
pub(crate) fn read_body(body: &mut ureq::Body, limit: u64, expect: u64) -> std::result::Result<Vec<u8>, ureq::Error> {
    use std::io::Read;
    let hint = body.content_length().unwrap_or(expect).min(limit).min(1 << 31) as usize;
    let mut buf = Vec::with_capacity(hint);
    body.with_config().limit(limit).reader().read_to_end(&mut buf).map_err(ureq::Error::from)?;
    Ok(buf)
}

/// [`ObjectStore::get_range`] for a store read by inclusive HTTP ranges: `fetch(first, last)`
/// answers the body (`None`: no such object), which must hold exactly `len` bytes.
pub(crate) fn get_exact_range(
    name: &str,
    offset: u64,
    len: usize,
    fetch: impl FnOnce(u64, u64) -> Result<Option<Vec<u8>>>,
) -> Result<Option<Vec<u8>>> {
    if len == 0 {
        return Ok(Some(Vec::new()));
    }
    let last = offset
        .checked_add(len as u64 - 1)
        .ok_or_else(|| Error::corrupt(format!("object {name}: range {offset}+{len} overflows")))?;
    match fetch(offset, last)? {
        Some(b) if b.len() != len => {
            Err(Error::io(format!("object {name}: asked for {len} bytes at {offset}, got {} (short body)", b.len())))
        }
        body => Ok(body),
    }
}

/// Attempts of one HTTP request to an object store: the first and three retries.
pub(crate) const HTTP_ATTEMPTS: u32 = 4;

/// Before retrying a failed request (`attempt` counts from 1): wait 100 ms × 4^(attempt−1),
/// or, once [`HTTP_ATTEMPTS`] are spent, give up with an I/O error saying what failed.
pub(crate) fn backoff(service: &str, what: String, attempt: u32) -> Result<()> {
    if attempt >= HTTP_ATTEMPTS {
        return Err(Error::io(format!("{what} (after {attempt} attempts)")));
    }
    log::debug!("{service}: {what}; retrying");
    std::thread::sleep(std::time::Duration::from_millis(100 << (2 * (attempt - 1))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ranges() {
        let got = get_exact_range("o", 10, 4, |a, b| Ok(Some(vec![0; (b - a + 1) as usize]))).unwrap();
        assert_eq!(got.map(|v| v.len()), Some(4));
        let short = get_exact_range("o", 10, 4, |_, _| Ok(Some(vec![0; 3]))).unwrap_err();
        assert!(short.to_string().contains("short body"), "{short}");
        assert_eq!(get_exact_range("o", 10, 4, |_, _| Ok(None)).unwrap(), None);
        assert_eq!(get_exact_range("o", 0, 0, |_, _| unreachable!()).unwrap(), Some(Vec::new()));
        assert_eq!(
            get_exact_range("o", u64::MAX, 2, |_, _| unreachable!()).unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
    }
}
