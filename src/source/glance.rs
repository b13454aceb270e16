//! OpenStack Glance (image API v2) as an [`ObjectStore`]: object names are image ids, objects are
//! the images' data, read by HTTP range (`GET /v2/images/{id}/file` with `Range`), never
//! downloaded whole.
//!
//! Authentication is Barbican's ([`KeyManager`]): the same `--os-cloud` / `OS_*` credentials,
//! one Keystone token renewed before it expires and once after a 401, and the `image` endpoint
//! of its service catalog (the cloud's `image_endpoint_override` / `OS_IMAGE_ENDPOINT_OVERRIDE`
//! replaces it).
//!
//! Listing: `GET /v2/images?limit=…` following `next` (a path below `/v2/images` only, at most
//! [`MAX_IMAGES`] images); sizes come from the image records (`HEAD …/file` is 405 in Glance).
//!
//! What Glance answers to a range request, and what becomes of it:
//!
//! | answer | meaning | result |
//! |---|---|---|
//! | 206, `Content-Range: bytes A-B/SIZE` as asked | the file and cinder stores | the bytes |
//! | 206 with another range or size | the image changed, or a broken proxy | Corrupt, naming the image |
//! | 200 | the Range header was ignored | Io (the body is not read) |
//! | 400 | rbd, swift, s3 and http stores do not do ranges | Unsupported, saying so (remembered: [`GlanceStore::refuses_ranges`]) |
//! | 404 | no such image (deleted) | `None` ("gone") |
//! | 416 | past the end | Corrupt |
//! | 204, or 500 on an image without data | nothing uploaded | Corrupt: "has no data" |
//! | 401 | token expired or revoked | re-authenticate once |
//! | other 5xx, transport errors | | retried with backoff, then Io |
//!
//! An image whose store refuses ranges can still be read once from start to end: [`WholeImage`]
//! is one plain GET of its data (no `Range` header), which every store serves; `verify` checks
//! such an image in that one pass ([`crate::report::forward`]).

use super::{Listed, ObjectStore};
use crate::keys::barbican::{KeyManager, ServiceToken};
use crate::{Error, ErrorKind, Result};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Most images listed (pages of `PAGE`); more is refused rather than grown without end.
pub const MAX_IMAGES: usize = 100_000;
/// Images per listing request.
const PAGE: usize = 500;
/// Largest JSON answer read (a page of image records).
const MAX_JSON: u64 = 64 << 20;

/// One image record of Glance.
#[derive(Clone, Debug)]
pub struct GlanceImage {
    /// Its id (a UUID).
    pub id: String,
    /// Its name (may be empty; not unique).
    pub name: String,
    /// `active`, `queued`, `saving`, `deactivated`, ...
    pub status: String,
    /// Size of its data in bytes (`None` before data is uploaded).
    pub size: Option<u64>,
    /// The whole record, as `GET /v2/images/{id}` gives it (properties are top-level).
    pub record: Value,
}

impl GlanceImage {
    fn from_record(record: Value) -> Result<GlanceImage> {
        let s = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id").filter(|i| is_image_id(i)).ok_or_else(|| {
            Error::io(format!("Glance gave an image record without a usable id: {:?}", record.get("id")))
        })?;
        Ok(GlanceImage {
            name: s("name").unwrap_or_default(),
            status: s("status").unwrap_or_default(),
            size: record.get("size").and_then(Value::as_u64),
            id,
            record,
        })
    }

    /// Its data, if it has any: `(size)` of an active image.
    pub fn data_size(&self) -> Result<u64> {
        match (self.status.as_str(), self.size) {
            ("active", Some(n)) => Ok(n),
            (status, _) => Err(Error::corrupt(format!(
                "Glance image {} ({:?}) has no data to read (status {status})",
                self.id, self.name
            ))),
        }
    }
}

/// Whether `s` looks like a Glance image id (hex digits and dashes, as a UUID): the only text of
/// a SOURCE that goes into a request path.
pub fn is_image_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// The images of one Glance, as an object store.
pub struct GlanceStore {
    keystone: Arc<KeyManager>,
    endpoint_override: Option<String>,
    /// Size of each image as listed (a range answer must agree).
    sizes: Mutex<HashMap<String, u64>>,
    /// Images Glance answered 400 to a range request for (their store cannot serve ranges).
    no_ranges: Mutex<HashSet<String>>,
}

enum Answer<T = Vec<u8>> {
    Body(T),
    NotFound,
}

/// What one GET asks Glance for.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// A JSON document (200, at most [`MAX_JSON`] bytes).
    Json,
    /// Bytes `first..=last` of an image's data (206).
    Range(u64, u64),
    /// An image's whole data, without a `Range` header (200); its body is handed on unread.
    Whole,
}

impl Ask {
    fn range(self) -> Option<(u64, u64)> {
        match self {
            Ask::Range(a, b) => Some((a, b)),
            _ => None,
        }
    }
}

impl GlanceStore {
    /// Glance as the credentials of `os_cloud` (`--os-cloud`; else `OS_CLOUD` or `OS_*`) reach it,
    /// through the process's shared [`KeyManager`] (one token for Glance and Barbican). Nothing
    /// is sent yet.
    pub fn from_cloud(os_cloud: Option<&str>) -> Result<GlanceStore> {
        let keystone = KeyManager::shared(os_cloud)?;
        let endpoint_override = keystone.config().image_endpoint.clone();
        Ok(GlanceStore::new(keystone, endpoint_override))
    }

    /// Glance through `keystone`'s session; `endpoint_override` replaces the catalog's endpoint.
    pub fn new(keystone: Arc<KeyManager>, endpoint_override: Option<String>) -> GlanceStore {
        GlanceStore {
            keystone,
            endpoint_override,
            sizes: Mutex::new(HashMap::new()),
            no_ranges: Mutex::new(HashSet::new()),
        }
    }

    fn service(&self) -> Result<ServiceToken> {
        let mut t = self.keystone.service("image", self.endpoint_override.as_deref())?;
        // catalogs list Glance with or without its version
        for v in ["/v2", "/v2.0"] {
            if let Some(base) = t.endpoint.strip_suffix(v) {
                t.endpoint = base.to_string();
            }
        }
        Ok(t)
    }

    /// Every image the project sees (its own, shared and public), following `next`.
    pub fn images(&self) -> Result<Vec<GlanceImage>> {
        self.images_where("")
    }

    /// The images Glance lists for `filters` (a query string without `limit` and `marker`, such
    /// as `os_hidden=true`: hidden images are listed only when asked for), following `next`:
    /// Glance pages by `limit` (capped by its `api_limit_max`) and links the next page with the
    /// last image's id as `marker`, keeping the filters.
    pub fn images_where(&self, filters: &str) -> Result<Vec<GlanceImage>> {
        if !filters.bytes().all(|b| b.is_ascii_alphanumeric() || b"_=&-".contains(&b)) {
            return Err(Error::usage(format!("not a Glance image filter: {filters:?}")));
        }
        let mut out = Vec::new();
        let mut path = match filters {
            "" => format!("/v2/images?limit={PAGE}"),
            f => format!("/v2/images?{f}&limit={PAGE}"),
        };
        loop {
            let body = match self.request(&path, Ask::Json, "the image list")? {
                Answer::Body(b) => b,
                Answer::NotFound => return Err(Error::io(format!("Glance answered 404 to GET {path}"))),
            };
            let page: Value =
                serde_json::from_slice(&body).map_err(|e| Error::io(format!("Glance image list: not JSON: {e}")))?;
            let Some(images) = page.get("images").and_then(Value::as_array) else {
                return Err(Error::io("Glance image list: no \"images\" array in the answer"));
            };
            for r in images {
                out.push(GlanceImage::from_record(r.clone())?);
            }
            if out.len() > MAX_IMAGES {
                return Err(Error::unsupported(format!("Glance lists more than {MAX_IMAGES} images")));
            }
            match page.get("next").and_then(Value::as_str) {
                // a link to the same page again would never end
                Some(next) if next == path => {
                    return Err(Error::io(format!("Glance image list: the next link {next:?} is the page itself")));
                }
                // only ever a path of the image list of this Glance: never another host
                Some(next) if next.starts_with("/v2/images?") && !images.is_empty() => path = next.to_string(),
                Some(next) if !images.is_empty() => {
                    return Err(Error::io(format!("Glance image list: unexpected next link {next:?}")));
                }
                _ => break,
            }
        }
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        for i in &out {
            if let Some(n) = i.size {
                sizes.insert(i.id.clone(), n);
            }
        }
        Ok(out)
    }

    /// Image `id`, or `None` when Glance has none (deleted, or not visible to this project).
    pub fn image(&self, id: &str) -> Result<Option<GlanceImage>> {
        if !is_image_id(id) {
            return Err(Error::usage(format!("{id:?} is not a Glance image id (a UUID)")));
        }
        let body = match self.request(&format!("/v2/images/{id}"), Ask::Json, &format!("image {id}"))? {
            Answer::Body(b) => b,
            Answer::NotFound => return Ok(None),
        };
        let r: Value =
            serde_json::from_slice(&body).map_err(|e| Error::io(format!("Glance image {id}: not JSON: {e}")))?;
        let image = GlanceImage::from_record(r)?;
        if image.id != id {
            return Err(Error::io(format!("Glance answered GET /v2/images/{id} with image {}", image.id)));
        }
        if let Some(n) = image.size {
            self.sizes.lock().unwrap_or_else(|e| e.into_inner()).insert(image.id.clone(), n);
        }
        Ok(Some(image))
    }

    /// Whether Glance answered 400 to a range request for image `id`: its store (rbd, swift, s3,
    /// http) cannot serve byte ranges, and the image can only be read whole ([`WholeImage`]).
    pub fn refuses_ranges(&self, id: &str) -> bool {
        self.no_ranges.lock().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    /// GET `path`: the body of a 200 (or, with [`Ask::Range`], of a 206 whose `Content-Range`
    /// is exactly that range of an image of the size listed), or `NotFound`.
    fn request(&self, path: &str, ask: Ask, what: &str) -> Result<Answer> {
        let expect = ask.range().map_or(0, |(a, b)| b - a + 1);
        self.answer(path, ask, what, |body, limit| super::read_body(body, limit, expect))
    }

    /// [`Self::request`], with what is done with the body of the answer up to `take` (given the
    /// body and its most bytes): read it whole, or hand it on as a reader. A failure of `take`
    /// is retried as a failed request is.
    fn answer<T>(
        &self,
        path: &str,
        ask: Ask,
        what: &str,
        mut take: impl FnMut(&mut ureq::Body, u64) -> std::result::Result<T, ureq::Error>,
    ) -> Result<Answer<T>> {
        let range = ask.range();
        let mut reauthed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let t = self.service()?;
            let url = format!("{}{path}", t.endpoint);
            let token = std::str::from_utf8(t.token.as_bytes()).map_err(|_| Error::io("unusable token"))?;
            let mut req = self.keystone.agent().get(&url).header("X-Auth-Token", token);
            req = match ask {
                Ask::Range(a, b) => req.header("Range", &format!("bytes={a}-{b}")),
                Ask::Json => req.header("Accept", "application/json"),
                Ask::Whole => req,
            };
            let retry = |why: String| super::backoff("glance", why, attempt);
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    retry(format!("Glance: GET {url}: {e}"))?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            log::debug!("glance: GET {url} {ask:?} -> {status}");
            let (want, limit) = match ask {
                Ask::Range(a, b) => (206, b - a + 1),
                Ask::Json => (200, MAX_JSON),
                // the reader counts what it reads against the image's size
                Ask::Whole => (200, u64::MAX),
            };
            match status {
                s if s == want => {
                    if let Some((a, b)) = range {
                        let header = resp.headers().get("Content-Range").and_then(|v| v.to_str().ok());
                        let listed = self.sizes.lock().unwrap_or_else(|e| e.into_inner()).get(path_id(path)).copied();
                        check_content_range(header, a, b, listed).map_err(|e| e.context(what))?;
                    }
                    match take(resp.body_mut(), limit) {
                        Ok(v) => return Ok(Answer::Body(v)),
                        Err(ureq::Error::BodyExceedsLimit(_)) => {
                            return Err(Error::corrupt(format!("{what}: Glance sent more than {limit} bytes")));
                        }
                        Err(e) => retry(format!("{what}: reading Glance's answer: {e}"))?,
                    }
                }
                404 => return Ok(Answer::NotFound),
                401 if !reauthed => {
                    reauthed = true;
                    self.keystone.token_rejected(t.generation);
                }
                401 => {
                    return Err(Error::io(format!("{what}: Glance rejects the token (401) after re-authenticating")));
                }
                403 => {
                    return Err(Error::io(format!("{what}: forbidden (403): these credentials may not read it")));
                }
                200 if range.is_some() => {
                    return Err(Error::io(format!(
                        "{what}: Glance ignored the Range header (200, the whole image): cannot read it by range"
                    )));
                }
                204 => return Err(Error::corrupt(format!("{what}: Glance has no data for it (204)"))),
                400 if range.is_some() => {
                    self.no_ranges.lock().unwrap_or_else(|e| e.into_inner()).insert(path_id(path).to_string());
                    return Err(Error::unsupported(format!(
                        "{what}: Glance refuses range requests for this image (400): its store (rbd, swift, s3 or http) \
                         cannot serve byte ranges (only the file and cinder stores can), so it cannot be read in place; \
                         `luksfs verify` checks such an image in one GET, and to read it otherwise download it \
                         (`openstack image save`) and use the file"
                    )));
                }
                416 => {
                    return Err(Error::corrupt(format!(
                        "{what}: bytes {}-{} are past the end of the image (416): it is shorter than listed",
                        range.map_or(0, |r| r.0),
                        range.map_or(0, |r| r.1)
                    )));
                }
                500 if range.is_some() => {
                    // Glance answers 500 to a range of an image without data
                    if let Some(i) = self.image(path_id(path))? {
                        i.data_size().map_err(|e| e.context(what))?;
                    }
                    retry(format!("{what}: Glance answered 500"))?;
                }
                500..=599 => retry(format!("{what}: Glance answered {status}"))?,
                _ => return Err(Error::io(format!("{what}: Glance answered {status} to GET {url}"))),
            }
        }
    }
}

/// The image id of `/v2/images/{id}/file`.
fn path_id(path: &str) -> &str {
    path.strip_prefix("/v2/images/").and_then(|p| p.split('/').next()).unwrap_or("")
}

/// A 206's `Content-Range` must be `bytes FIRST-LAST/SIZE` for the range asked, and SIZE the
/// image's size as listed (when known): otherwise the image changed, or something between us and
/// Glance is broken, and its bytes are not the ones asked for.
pub fn check_content_range(header: Option<&str>, first: u64, last: u64, listed: Option<u64>) -> Result<()> {
    let Some(h) = header else {
        return Err(Error::corrupt(format!("a 206 answer for bytes {first}-{last} without Content-Range")));
    };
    let parsed = h.trim().strip_prefix("bytes ").and_then(|r| {
        let (range, total) = r.split_once('/')?;
        let (a, b) = range.split_once('-')?;
        let total = if total == "*" { None } else { Some(total.parse::<u64>().ok()?) };
        Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?, total))
    });
    let Some((a, b, total)) = parsed else {
        return Err(Error::corrupt(format!("a 206 answer with a malformed Content-Range {h:?}")));
    };
    if (a, b) != (first, last) {
        return Err(Error::corrupt(format!(
            "asked for bytes {first}-{last}, Glance sent {a}-{b} (Content-Range {h:?})"
        )));
    }
    if let (Some(total), Some(listed)) = (total, listed)
        && total != listed
    {
        return Err(Error::corrupt(format!(
            "the image changed size: {listed} bytes when listed, {total} now (Content-Range {h:?})"
        )));
    }
    Ok(())
}

impl ObjectStore for GlanceStore {
    fn describe(&self) -> String {
        "Glance".into()
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut out: Vec<Listed> = self
            .images()?
            .into_iter()
            .filter(|i| i.id.starts_with(prefix) && i.status == "active")
            .filter_map(|i| Some(Listed { size: i.size?, name: i.id }))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        if !is_image_id(name) {
            return Ok(None);
        }
        let what = format!("Glance image {name}");
        let Some(size) = self.image(name)?.map(|i| i.data_size()).transpose()? else { return Ok(None) };
        if size > max {
            return Err(Error::corrupt(format!("{what} has {size} bytes, more than the {max} it can have")));
        }
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        self.get_range(name, 0, size as usize)
    }

    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        if !is_image_id(name) {
            return Ok(None);
        }
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        let last = offset
            .checked_add(len as u64 - 1)
            .ok_or_else(|| Error::corrupt(format!("Glance image {name}: range {offset}+{len} overflows")))?;
        // the caller names the image ([`super::object::ObjectReader`]: "object ID of Glance")
        let what = format!("bytes {offset}-{last}");
        match self.request(&format!("/v2/images/{name}/file"), Ask::Range(offset, last), &what)? {
            Answer::Body(b) if b.len() == len => Ok(Some(b)),
            Answer::Body(b) => Err(Error::new(
                ErrorKind::Corrupt,
                format!("{what}: Glance sent {} bytes instead of {len} (short body)", b.len()),
            )),
            Answer::NotFound => Ok(None),
        }
    }

    /// Glance serves one request at a time and each costs a round trip: a stream is one GET.
    fn streams_ranges(&self) -> bool {
        true
    }

    /// One GET of the range, its body read as it arrives (see [`ObjectStore::open_range`]).
    fn open_range(&self, name: &str, offset: u64, len: u64) -> Result<Option<super::RangeReader>> {
        if !is_image_id(name) {
            return Ok(None);
        }
        let Some(last) = offset.checked_add(len).and_then(|e| e.checked_sub(1)) else {
            return Ok(Some(Box::new(std::io::empty())));
        };
        let what = format!("bytes {offset}-{last}");
        let path = format!("/v2/images/{name}/file");
        let answer = self.answer(&path, Ask::Range(offset, last), &what, |body, limit| {
            let body = std::mem::replace(body, ureq::Body::builder().data(Vec::new()));
            Ok(Box::new(body.into_with_config().limit(limit).reader()) as super::RangeReader)
        })?;
        Ok(match answer {
            Answer::Body(r) => Some(r),
            Answer::NotFound => None,
        })
    }
}

/// One Glance image's data read whole, from start to end, in one plain GET (no `Range` header):
/// what every store serves, for an image whose store refuses ranges.
pub struct WholeImage {
    store: Arc<GlanceStore>,
    id: String,
    size: u64,
}

impl WholeImage {
    /// Image `id` of `store`, of `size` bytes as listed.
    pub fn new(store: Arc<GlanceStore>, id: &str, size: u64) -> WholeImage {
        WholeImage { store, id: id.to_string(), size }
    }
}

impl super::OneGet for WholeImage {
    fn name(&self) -> String {
        format!("Glance image {}", self.id)
    }

    fn size(&self) -> u64 {
        self.size
    }

    /// Whether a range request for it was refused ([`GlanceStore::refuses_ranges`]).
    fn refuses_ranges(&self) -> bool {
        self.store.refuses_ranges(&self.id)
    }

    /// One GET of its data (token renewal, 401 and 5xx handled as for every request), the body
    /// handed on as it arrives and cut after one byte more than the listed size (the caller
    /// counts: a body shorter or longer than listed is its to judge). A deleted image is Io.
    fn open(&self) -> Result<super::RangeReader> {
        use std::io::Read;
        let what = format!("Glance image {}", self.id);
        let cap = self.size.saturating_add(1);
        let path = format!("/v2/images/{}/file", self.id);
        let answer = self.store.answer(&path, Ask::Whole, &what, |body, limit| {
            let body = std::mem::replace(body, ureq::Body::builder().data(Vec::new()));
            Ok(Box::new(body.into_with_config().limit(limit).reader().take(cap)) as super::RangeReader)
        })?;
        match answer {
            Answer::Body(r) => Ok(r),
            Answer::NotFound => Err(Error::io(format!("{what}: Glance answered 404 (deleted while being read?)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids() {
        assert!(is_image_id("0f4c6c2e-7bb4-4a53-a4b3-6f1b8b0c2d1e"));
        assert!(!is_image_id("0f4c6c2e-7bb4-4a53-a4b3-6f1b8b0c2d1"));
        assert!(!is_image_id("0f4c6c2e-7bb4-4a53-a4b3-6f1b8b0c2d1/"));
        assert!(!is_image_id("../../v2/images?limit=1&x=0000000000000"));
        assert_eq!(path_id("/v2/images/abc/file"), "abc");
    }

    #[test]
    fn content_range_must_be_the_range_asked_of_the_size_listed() {
        assert!(check_content_range(Some("bytes 0-1023/4096"), 0, 1023, Some(4096)).is_ok());
        assert!(check_content_range(Some("bytes 0-1023/*"), 0, 1023, Some(4096)).is_ok());
        assert!(check_content_range(Some("bytes 0-1023/4096"), 0, 1023, None).is_ok());
        for (h, listed) in [
            (None, Some(4096)),
            (Some("bytes 1-1024/4096"), Some(4096)),
            (Some("bytes 0-1023/8192"), Some(4096)),
            (Some("items 0-1023/4096"), Some(4096)),
            (Some("bytes 0-x/4096"), None),
            (Some("bytes 0-1023"), None),
        ] {
            let e = check_content_range(h, 0, 1023, listed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{h:?}: {e}");
        }
        let e = check_content_range(Some("bytes 0-1023/8192"), 0, 1023, Some(4096)).unwrap_err();
        assert!(e.to_string().contains("changed size"), "{e}");
    }
}
