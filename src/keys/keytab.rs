//! The keytab: crypttab-like lines `IMAGE KEY [OPTIONS]` giving each image its own key.
//!
//! * `IMAGE`: path relative to the mount source.
//! * `KEY`: a key-file path (relative to the keytab's folder, or absolute), `-` for the default
//!   key (`--key-file` or the prompt), or `barbican:<secret id or href>`.
//! * `OPTIONS`: comma list of `header=PATH`, `key-slot=N`, `keyfile-offset=N`, `keyfile-size=N`.
//!
//! `#` starts a comment; blank lines are ignored. Parsing is pure ([`parse`]); errors name the
//! line.

use super::KeySource;
use super::keyfile::{KeyfileRange, parse_size};
use crate::image::ImageOptions;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One keytab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub image: PathBuf,
    pub key: KeySource,
    pub options: ImageOptions,
    pub line: usize,
}

/// Normalise a relative image path (`./a//b.img` → `a/b.img`); `..` and absolute paths are errors.
fn normalise(p: &str) -> std::result::Result<PathBuf, String> {
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return Err(format!("image path '{p}' must be relative to the source, without '..'")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("empty image path '{p}'"));
    }
    Ok(out)
}

/// Parse keytab `text`; relative paths resolve against `base` (the keytab's folder).
pub fn parse(text: &str, base: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |m: String| Error::usage(format!("keytab line {line}: {m}"));
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        if fields.len() < 2 || fields.len() > 3 {
            return Err(err(format!("expected 'IMAGE KEY [OPTIONS]', found {} fields", fields.len())));
        }
        let image = normalise(fields[0]).map_err(err)?;
        let resolve = |p: &str| if Path::new(p).is_absolute() { PathBuf::from(p) } else { base.join(p) };
        let mut range = KeyfileRange::default();
        let mut options = ImageOptions::default();
        if let Some(opts) = fields.get(2) {
            for opt in opts.split(',').filter(|o| !o.is_empty()) {
                let (k, v) = opt.split_once('=').ok_or_else(|| err(format!("option '{opt}' needs a value")))?;
                match k {
                    "header" => options.header = Some(resolve(v)),
                    "key-slot" => {
                        options.key_slot = Some(v.parse().map_err(|_| err(format!("key-slot '{v}' is not a number")))?)
                    }
                    "keyfile-offset" => range.offset = parse_size(v).map_err(err)?,
                    "keyfile-size" => range.size = Some(parse_size(v).map_err(err)?),
                    _ => {
                        return Err(err(format!(
                            "unknown option '{k}' (known: header, key-slot, keyfile-offset, keyfile-size)"
                        )));
                    }
                }
            }
        }
        let key = match fields[1] {
            "-" if range != KeyfileRange::default() => {
                return Err(err("keyfile-offset/keyfile-size need a key file, not '-'".into()));
            }
            "-" => KeySource::Default,
            k if k.starts_with("barbican:") => {
                let id = &k["barbican:".len()..];
                if id.is_empty() {
                    return Err(err("barbican: needs a secret id".into()));
                }
                KeySource::Barbican(id.to_string())
            }
            k => KeySource::File { path: resolve(k), range },
        };
        let e = Entry { image: image.clone(), key, options, line };
        if let Some(prev) = out.insert(image.clone(), e) {
            return Err(err(format!("image {} is already listed on line {}", image.display(), prev.line)));
        }
    }
    Ok(out)
}

/// Read and parse the keytab at `path`.
pub fn load(path: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read keytab {}: {e}", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base).map_err(|e| e.with_path(path))
}

/// The line of a keytab (loaded from `keytab`) for the single image `image`, for commands that
/// take one image (`cat`, `verify IMAGE`, `inspect`): the line whose IMAGE, taken relative to
/// the keytab's folder or to the current directory, is that file; else the only line whose IMAGE
/// has the same file name. An error when no line (or more than one by name) fits.
pub fn lookup<'a>(entries: &'a BTreeMap<PathBuf, Entry>, keytab: &Path, image: &Path) -> Result<&'a Entry> {
    let target = image.canonicalize().ok();
    let base = keytab.parent().map(Path::to_path_buf).unwrap_or_default();
    let same = |p: PathBuf| target.is_some() && p.canonicalize().ok() == target;
    if let Some(e) = entries.values().find(|e| same(base.join(&e.image)) || same(e.image.clone())) {
        return Ok(e);
    }
    let name = image.file_name();
    let by_name: Vec<&Entry> = entries.values().filter(|e| e.image.file_name() == name).collect();
    match by_name.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::usage(format!("keytab {} has no line for {}", keytab.display(), image.display()))),
        many => Err(Error::usage(format!(
            "keytab {}: lines {} all name a file called {}; give the path relative to the keytab's folder",
            keytab.display(),
            many.iter().map(|e| e.line.to_string()).collect::<Vec<_>>().join(", "),
            image.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_options() {
        let t = "# comment\n\n./a/vol.img  keys/a.key  header=h.hdr,key-slot=3,keyfile-offset=1K,keyfile-size=32\n\
                 b.qcow2 - # trailing comment\nc.img barbican:1234\nd.img /abs/key\n";
        let m = parse(t, Path::new("/kt")).unwrap();
        let a = &m[Path::new("a/vol.img")];
        assert_eq!(
            a.key,
            KeySource::File { path: "/kt/keys/a.key".into(), range: KeyfileRange { offset: 1024, size: Some(32) } }
        );
        assert_eq!(a.options.header.as_deref(), Some(Path::new("/kt/h.hdr")));
        assert_eq!(a.options.key_slot, Some(3));
        assert_eq!(m[Path::new("b.qcow2")].key, KeySource::Default);
        assert_eq!(m[Path::new("c.img")].key, KeySource::Barbican("1234".into()));
        assert_eq!(m[Path::new("d.img")].key, KeySource::File { path: "/abs/key".into(), range: Default::default() });
    }

    #[test]
    fn errors_name_the_line() {
        for bad in ["a.img", "a.img k x=1", "../a.img k", "/a.img k", "a.img k key-slot=x", "a.img k\na.img k"] {
            let e = parse(bad, Path::new("/")).unwrap_err();
            assert!(e.to_string().contains("keytab line"), "{bad}: {e}");
        }
    }

    #[test]
    fn lookup_by_path_then_by_name() {
        let d = tempfile::tempdir().unwrap();
        let (kt, sub) = (d.path().join("kt"), d.path().join("sub"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["sub/a.img", "sub/b.img", "b.img"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let m = parse("sub/a.img ka\nsub/b.img kb\nb.img kc\nother/c.img kd\n", d.path()).unwrap();
        assert_eq!(lookup(&m, &kt, &sub.join("a.img")).unwrap().line, 1);
        assert_eq!(lookup(&m, &kt, &sub.join("b.img")).unwrap().line, 2, "by path beats by name");
        assert_eq!(lookup(&m, &kt, &d.path().join("b.img")).unwrap().line, 3);
        std::fs::write(d.path().join("c.img"), b"x").unwrap();
        assert_eq!(lookup(&m, &kt, &d.path().join("c.img")).unwrap().line, 4, "by name");
        std::fs::write(d.path().join("z.img"), b"x").unwrap();
        assert!(lookup(&m, &kt, &d.path().join("z.img")).unwrap_err().to_string().contains("no line"));
        let two = parse("x/b.img k\ny/b.img k\n", d.path()).unwrap();
        let e = lookup(&two, &kt, &sub.join("b.img")).unwrap_err();
        assert!(e.to_string().contains("lines 1, 2"), "{e}");
    }
}
