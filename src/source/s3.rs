//! An [`ObjectStore`] over one S3 bucket, by HTTP with AWS Signature Version 4 and path-style
//! addressing (`ENDPOINT/BUCKET/KEY`, what custom endpoints such as Swift's s3api, Ceph RGW or
//! MinIO serve): `ListObjectsV2` listings (paged by continuation token), whole objects and byte
//! ranges (`Range`, which must answer 206 with exactly those bytes). Credentials are the usual
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (optionally `AWS_SESSION_TOKEN`), `AWS_REGION`
//! and `AWS_ENDPOINT_URL`; transport errors and 5xx answers are retried with backoff.

use super::{Listed, ObjectStore};
use crate::{Error, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ureq::Agent;

/// SHA-256 of the empty payload (every request here is a GET).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Where the bucket is and who asks.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host[:port]`, without a path.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// From `AWS_ENDPOINT_URL`, `AWS_REGION` (default `us-east-1`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<S3Config> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let need = |n: &str| var(n).ok_or_else(|| Error::usage(format!("{n} is not set")));
        Ok(S3Config {
            endpoint: need("AWS_ENDPOINT_URL")?,
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: need("AWS_ACCESS_KEY_ID")?,
            secret_key: need("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// One S3 bucket read as an object store.
pub struct S3Store {
    agent: Agent,
    cfg: S3Config,
    bucket: String,
    host: String,
}

/// Percent-encode per SigV4 (`UriEncode`): unreserved characters stay, `/` stays in paths.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` for `secs` since the epoch (UTC, proleptic Gregorian).
fn amz_dates(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // days since 1970-01-01 → civil date (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60);
    (date, stamp)
}

/// The SigV4 `Authorization` header value for a GET of `path` (already encoded) with the
/// canonical query `query` and these signed headers (lowercase names, sorted).
fn authorization(cfg: &S3Config, path: &str, query: &str, headers: &[(&str, &str)], date: &str, stamp: &str) -> String {
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let request = format!("GET\n{path}\n{query}\n{canonical_headers}\n{signed}\n{EMPTY_SHA256}");
    let scope = format!("{date}/{}/s3/aws4_request", cfg.region);
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(request.as_bytes())));
    let k = hmac(format!("AWS4{}", cfg.secret_key).as_bytes(), date);
    let k = hmac(&k, &cfg.region);
    let k = hmac(&k, "s3");
    let k = hmac(&k, "aws4_request");
    let sig = hex(&hmac(&k, &to_sign));
    format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}", cfg.access_key)
}

/// The text of each `<tag>…</tag>` in `xml`, entities decoded (ListObjectsV2 answers are flat
/// enough for this; values never contain markup).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

enum Answer {
    Body(Vec<u8>),
    NotFound,
}

impl S3Store {
    /// A store for `bucket` at `cfg.endpoint` (nothing is sent yet).
    pub fn new(cfg: S3Config, bucket: &str) -> Result<S3Store> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(Error::usage(format!("{bucket:?} is not an S3 bucket name")));
        }
        let endpoint = cfg.endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| Error::usage(format!("S3 endpoint {endpoint:?} is not http(s)://HOST[:PORT]")))?
            .to_string();
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("luksfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(S3Store { agent, cfg: S3Config { endpoint, ..cfg }, bucket: bucket.to_string(), host })
    }

    /// Signed GET of `key` (or of the bucket when `None`) with the query `params`.
    fn get_raw(
        &self,
        key: Option<&str>,
        params: &[(&str, String)],
        range: Option<(u64, u64)>,
        limit: u64,
    ) -> Result<Answer> {
        let path = match key {
            Some(k) => format!("/{}/{}", encode(&self.bucket, false), encode(k, true)),
            None => format!("/{}", encode(&self.bucket, false)),
        };
        let mut q: Vec<(String, String)> = params.iter().map(|(k, v)| (encode(k, false), encode(v, false))).collect();
        q.sort();
        let query = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let url = if query.is_empty() {
            format!("{}{path}", self.cfg.endpoint)
        } else {
            format!("{}{path}?{query}", self.cfg.endpoint)
        };
        let range_value = range.map(|(a, b)| format!("bytes={a}-{b}"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let (date, stamp) = amz_dates(secs);
            let mut headers: Vec<(&str, &str)> =
                vec![("host", &self.host), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", &stamp)];
            if let Some(r) = &range_value {
                headers.push(("range", r));
            }
            if let Some(t) = &self.cfg.session_token {
                headers.push(("x-amz-security-token", t));
            }
            headers.sort();
            let auth = authorization(&self.cfg, &path, &query, &headers, &date, &stamp);
            let mut req = self.agent.get(&url).header("Authorization", &auth);
            for (k, v) in &headers {
                if *k != "host" {
                    req = req.header(*k, *v);
                }
            }
            let retry = |what: String| super::backoff("s3", what, attempt);
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    retry(format!("GET {url}: {e}"))?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            log::debug!("s3: GET {url} -> {status}");
            let want = if range.is_some() { 206 } else { 200 };
            match status {
                s if s == want => match super::read_body(resp.body_mut(), limit, range.map_or(0, |(a, b)| b - a + 1)) {
                    Ok(v) => return Ok(Answer::Body(v)),
                    Err(ureq::Error::BodyExceedsLimit(_)) => {
                        return Err(Error::corrupt(format!("GET {url}: more than {limit} bytes")));
                    }
                    Err(e) => retry(format!("GET {url}: reading the body: {e}"))?,
                },
                404 => return Ok(Answer::NotFound),
                200 => return Err(Error::io(format!("GET {url}: the server ignored the Range header (200, not 206)"))),
                416 => return Err(Error::corrupt(format!("GET {url}: range {range:?} is past the object's end"))),
                403 | 401 => {
                    let body = resp.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
                    let code = xml_values(&body, "Code").into_iter().next().unwrap_or_default();
                    return Err(Error::io(format!("GET {url}: access denied ({status} {code})")));
                }
                500..=599 => retry(format!("GET {url}: {status}"))?,
                _ => return Err(Error::io(format!("GET {url}: {status}"))),
            }
        }
    }
}

impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        format!("s3 bucket {} at {}", self.bucket, self.cfg.endpoint)
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("list-type", "2".to_string()), ("prefix", prefix.to_string())];
            if let Some(t) = &token {
                params.push(("continuation-token", t.clone()));
            }
            let body = match self.get_raw(None, &params, None, 64 << 20)? {
                Answer::Body(b) => b,
                Answer::NotFound => return Err(Error::usage(format!("S3 bucket {} does not exist", self.bucket))),
            };
            let xml = String::from_utf8_lossy(&body);
            let (keys, sizes) = (xml_values(&xml, "Key"), xml_values(&xml, "Size"));
            if keys.len() != sizes.len() {
                return Err(Error::io(format!(
                    "S3 listing of {}: {} keys but {} sizes",
                    self.bucket,
                    keys.len(),
                    sizes.len()
                )));
            }
            for (name, size) in keys.into_iter().zip(sizes) {
                let size = size.parse().map_err(|_| {
                    Error::io(format!("S3 listing of {}: object {name} has size {size:?}", self.bucket))
                })?;
                out.push(Listed { name, size });
            }
            if out.len() > super::posix::MAX_LIST {
                return Err(Error::unsupported(format!(
                    "more than {} objects under {prefix:?} in S3 bucket {}",
                    super::posix::MAX_LIST,
                    self.bucket
                )));
            }
            let truncated = xml_values(&xml, "IsTruncated").first().is_some_and(|v| v == "true");
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if !truncated || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.get_raw(Some(name), &[], None, max)? {
            Answer::Body(b) => Ok(Some(b)),
            Answer::NotFound => Ok(None),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        super::get_exact_range(name, offset, len, |first, last| {
            match self.get_raw(Some(name), &[], Some((first, last)), len as u64)? {
                Answer::Body(b) => Ok(Some(b)),
                Answer::NotFound => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_dates(0), ("19700101".into(), "19700101T000000Z".into()));
        // 2013-05-24T00:00:00Z, the date of AWS's SigV4 examples
        assert_eq!(amz_dates(1_369_353_600).1, "20130524T000000Z");
        assert_eq!(amz_dates(951_782_400 + 3661).1, "20000229T010101Z");
    }

    /// AWS's documented example: GET /test.txt with Range bytes=0-9 in bucket examplebucket
    /// (virtual-hosted style, so the path has no bucket), us-east-1, 20130524T000000Z.
    #[test]
    fn signs_the_aws_example() {
        let cfg = S3Config {
            endpoint: "https://examplebucket.s3.amazonaws.com".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let a = authorization(&cfg, "/test.txt", "", &headers, "20130524", "20130524T000000Z");
        assert!(a.ends_with("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"), "{a}");
    }

    #[test]
    fn reads_list_xml() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b/c</Key></Contents>\
                 <Contents><Key>d</Key></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        assert_eq!(xml_values(x, "Key"), vec!["a&b/c", "d"]);
        assert_eq!(xml_values(x, "IsTruncated"), vec!["true"]);
        assert_eq!(encode("a b/c", true), "a%20b/c");
    }
}
