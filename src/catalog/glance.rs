//! The images of Glance as a source: `glance://` is every encrypted image the project sees
//! (`os_encrypt_format` or `os_encrypt_key_id`: uploaded encrypted; `cinder_encryption_key_id`:
//! made from an encrypted volume), `glance://ID` (or `glance://NAME_ID`, as a mount shows it) one
//! image, encrypted or not. Each is named `<image name>_<image id>` and read by range
//! ([`crate::source::glance`]); its record is its metadata, exactly what a Glance sidecar holds
//! ([`crate::keys::sidecar::ImageMeta`]): the key id, `os_decrypt_size`, `os_hash_*`.

use super::{Entry, Item, Reach, SourceMeta};
use crate::keys::sidecar::ImageMeta;
use crate::source::glance::{GlanceImage, GlanceStore, WholeImage, is_image_id};
use crate::source::object::ObjectReader;
use crate::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Longest image-name part of a shown name (bytes; the id, `.raw` and `.d` must still fit in a
/// file name of 255).
const MAX_NAME: usize = 200;

/// One Glance image of a source.
#[derive(Clone)]
pub struct GlanceItem {
    /// Its id.
    pub id: String,
    /// Its properties (key id, sizes, hashes).
    pub meta: ImageMeta,
    /// Its data, read by range.
    pub reader: Arc<ObjectReader>,
    /// Its data read whole in one GET (for a store that refuses ranges).
    pub whole: Arc<WholeImage>,
}

/// The image a `glance://` SOURCE names after the scheme: `None` for all of them; an id; or a
/// shown name `NAME_ID` (with or without `.raw`).
pub fn parse_target(rest: &str) -> Result<Option<String>> {
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        return Ok(None);
    }
    let name = rest.strip_suffix(".raw").unwrap_or(rest);
    let id = name.get(name.len().saturating_sub(36)..).unwrap_or("");
    let before = &name[..name.len() - id.len()];
    if is_image_id(id) && (before.is_empty() || before.ends_with('_')) {
        return Ok(Some(id.to_ascii_lowercase()));
    }
    Err(Error::usage(format!(
        "glance://{rest}: not an image id (write glance:// for every encrypted image, or glance://IMAGE_ID)"
    )))
}

/// Whether the record says the image is encrypted (what `glance://` shows).
pub fn is_encrypted(record: &serde_json::Value) -> bool {
    ["os_encrypt_format", "os_encrypt_key_id", "cinder_encryption_key_id"]
        .iter()
        .any(|k| record.get(k).and_then(|v| v.as_str()).is_some_and(|s| !s.trim().is_empty()))
}

/// `<name>_<id>`, the name made a file name: no `/`, NUL or control characters, not too long.
pub fn shown_name(name: &str, id: &str) -> String {
    let mut clean = String::new();
    for c in name.chars() {
        if clean.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        clean.push(if c == '/' || c.is_control() { '_' } else { c });
    }
    if clean.is_empty() { id.to_string() } else { format!("{clean}_{id}") }
}

/// The entries of `store`: image `id`, or every encrypted image.
pub fn list(store: &Arc<GlanceStore>, id: Option<&str>) -> Result<Vec<Entry>> {
    let images = match id {
        Some(id) => {
            let image = store.image(id)?.ok_or_else(|| {
                Error::usage(format!("Glance has no image {id} (deleted, or not visible to this project)"))
            })?;
            image.data_size()?;
            vec![image]
        }
        None => store.images()?.into_iter().filter(|i| is_encrypted(&i.record)).collect(),
    };
    let mut out = Vec::new();
    for image in images {
        match item(store, image) {
            Ok(i) => out.push(Entry::Image(i)),
            Err(e) if id.is_none() => log::warn!("{e}: not shown"),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn item(store: &Arc<GlanceStore>, image: GlanceImage) -> Result<Item> {
    let size = image.data_size()?;
    let meta = ImageMeta::from_value(&image.record)
        .map_err(|e| Error::corrupt(format!("Glance image {} ({:?}): {}", image.id, image.name, e.message())))?;
    let time =
        image.record.get("updated_at").and_then(|v| v.as_str()).and_then(parse_time).unwrap_or_else(SystemTime::now);
    let whole = Arc::new(WholeImage::new(store.clone(), &image.id, size));
    let store: Arc<dyn crate::source::ObjectStore> = store.clone();
    let reader = Arc::new(ObjectReader::new(store, &image.id, size));
    Ok(Item {
        rel: PathBuf::from(shown_name(&image.name, &image.id)),
        path: PathBuf::from(format!("glance://{}", image.id)),
        meta: SourceMeta::owned_by_me(time),
        reach: Reach::Glance(Box::new(GlanceItem { id: image.id, meta, reader, whole })),
    })
}

/// `2026-12-06T19:03:11Z` (Glance's timestamps) as a time.
fn parse_time(s: &str) -> Option<SystemTime> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (n(0, 4)?, n(5, 7)?, n(8, 10)?, n(11, 13)?, n(14, 16)?, n(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = u64::try_from(crate::civil::unix_seconds(y, mo, d, h, mi, sec)).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f4c6c2e-7bb4-4a53-a4b3-6f1b8b0c2d1e";

    #[test]
    fn targets() {
        assert_eq!(parse_target("").unwrap(), None);
        assert_eq!(parse_target("/").unwrap(), None);
        assert_eq!(parse_target(ID).unwrap().as_deref(), Some(ID));
        assert_eq!(parse_target(&format!("my image_{ID}.raw")).unwrap().as_deref(), Some(ID));
        assert_eq!(parse_target(&ID.to_uppercase()).unwrap().as_deref(), Some(ID));
        for bad in ["x", "my image", &format!("x{ID}"), &format!("{ID}/file")] {
            assert_eq!(parse_target(bad).unwrap_err().kind(), crate::ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(shown_name("vol/7 backup", ID), format!("vol_7 backup_{ID}"));
        assert_eq!(shown_name("", ID), ID);
        assert_eq!(shown_name("a\nb", ID), format!("a_b_{ID}"));
        let long = shown_name(&"é".repeat(300), ID);
        assert!(long.len() <= MAX_NAME + 37 && long.ends_with(ID), "{}", long.len());
    }

    #[test]
    fn encrypted_records() {
        use serde_json::json;
        assert!(is_encrypted(&json!({"os_encrypt_format": "LUKSv1"})));
        assert!(is_encrypted(&json!({"cinder_encryption_key_id": "k"})));
        assert!(!is_encrypted(&json!({"os_encrypt_key_id": ""})));
        assert!(!is_encrypted(&json!({"name": "cirros"})));
    }

    #[test]
    fn times() {
        let t = parse_time("1970-01-02T00:00:01Z").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 86401);
        assert!(parse_time("garbage").is_none());
    }
}
