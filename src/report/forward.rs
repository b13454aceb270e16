//! `verify` of an image that can only be read once, from start to end: a Glance image whose store
//! (rbd, swift, s3, http) refuses byte ranges, read in one plain GET ([`OneGet`]).
//!
//! Every chunk of the body feeds, in the same pass, the ciphertext hashes (SHA-256, Glance's
//! `os_hash_algo`, the image signature's hash method: [`super::hashing::hash_stream`]) and the
//! decryption: the bytes before a raw LUKS1/LUKS2 image's payload (its header and key slots, at
//! most [`MAX_HEADER`]) are kept, the header is parsed and a key slot opened exactly as for an
//! image read by range (the same volume tree, the same key rules), and then the payload sectors
//! are decrypted as they stream by ([`Image::decrypt_at`], split over the worker threads) and
//! hashed, sniffed and described as [`super::verify`] does for any image. The starts of the
//! plaintext's partitions (found in its first MiB) are kept as they pass, so partitions are
//! described too. Memory stays bounded: a few chunks in flight, the header, the partition starts.
//!
//! qcow2 images need random access (their clusters are mapped by tables): their ciphertext is
//! hashed and checked in the one GET, then they are refused plainly (exit 5).
//! A transport error mid-stream restarts the GET from the start (at most [`MAX_GETS`] GETs, with
//! backoff; bodies are never spliced); a body shorter or longer than the size listed is Corrupt.

use super::hashing::{FILE_CHUNK, HASH_QUEUE, OsAlgo, hash_stream};
use super::progress::Progress;
use super::verify::{Checks, Expected, Streamed, header_facts, report_streamed};
use crate::image::{Format, Image, ImageOptions, Prepared, UnlockSettings};
use crate::io::ReadAt;
use crate::keys::sidecar;
use crate::sniff::{self, Payload};
use crate::source::OneGet;
use crate::volume::tree::UnlockKey;
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, ErrorKind, Result};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Most bytes kept before a raw LUKS image's payload (LUKS2's default header is 16 MiB); a larger
/// header is refused.
pub const MAX_HEADER: u64 = 64 << 20;
/// GETs of one image at most: a transport error mid-stream starts the next from byte 0.
pub const MAX_GETS: u32 = 3;
/// Bytes read first: enough for the probe of the volume tree and a LUKS1 header.
const FIRST_READ: u64 = 1 << 20;
/// Most partition starts kept for the description of the plaintext.
const MAX_WINDOWS: usize = 128;
/// What the report says of how the image was read (`"read"` in the JSON).
pub const READ_ONE_GET: &str = "one GET (store refuses ranges)";

/// Check the image `src` in one read from start to end, filling the report `j` as
/// [`super::verify`] does (and `"read"`: [`READ_ONE_GET`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify(
    path: &Path,
    src: &dyn OneGet,
    opts: &ImageOptions,
    checks: &Checks,
    progress: &mut Progress,
    key: &dyn Fn(&Volume) -> Result<UnlockKey>,
    settings: UnlockSettings,
    glance: Option<&sidecar::ImageMeta>,
    j: &mut Map<String, Value>,
    (warnings, mismatches): (&mut Vec<String>, &mut Vec<String>),
) -> Result<()> {
    let size = src.size();
    let name = src.name();
    j.insert("read".into(), json!(READ_ONE_GET));
    j.insert("file_size".into(), json!(size));
    let mut body = src.open()?;
    let (head, prepared) = match read_header(&mut body, size, path, opts, &name)? {
        Start::Luks(head, prepared) => (head, prepared),
        // its data cannot be decrypted in order; its ciphertext can still be hashed and checked
        Start::Qcow2(head) => {
            j.insert("format".into(), json!("qcow2"));
            let expected = Expected::of(path, glance, warnings);
            let head = Arc::new(head);
            let pass = Pass { head: &head, image: None, src, expected: &expected, threads: checks.threads };
            let (s, _) = read_all(body, &pass, progress, j)?;
            report_streamed(path, expected, s, None, None, checks, j, (warnings, mismatches))?;
            return Err(Error::unsupported(format!(
                "{name} is a qcow2 image: its data cannot be checked without byte ranges (its clusters are \
                 mapped by tables read at random), and its store refuses them (its ciphertext was hashed and \
                 checked in one GET); download it (`openstack image save`) and verify the file"
            )));
        }
    };
    header_facts(&prepared, size, opts, j, warnings);
    let expected = Expected::of(path, glance, warnings);

    // The key slot opens through the image's volume tree over the bytes kept: the same key rules
    // (keytab lines by UUID, Barbican, prompts) as an image read by range.
    let head = Arc::new(head);
    let tree = ImageTree::on(Arc::new(Head::new(head.clone(), size)), path, Path::new(""), opts, Limits::default());
    let top = tree.top().filter(|t| t.lock().is_some()).ok_or_else(|| {
        let why = tree.emptiness().map_or_else(String::new, |e| format!(": {}", e.message()));
        Error::corrupt(format!("{name}: no encrypted volume found in its header{why}"))
    })?;
    top.unlock(key, settings)?;
    let image = top.image().ok_or_else(|| Error::io("the unlocked volume has no decrypted view"))?;
    j.insert("key_slot".into(), json!(image.slot()));

    let pass = Pass { head: &head, image: Some(&image), src, expected: &expected, threads: checks.threads };
    let (s, kept) = read_all(body, &pass, progress, j)?;
    let kept = kept.ok_or_else(|| Error::io("the plaintext was not read"))?;
    report_streamed(path, expected, s, Some(&kept), None, checks, j, (warnings, mismatches))
}

/// What a read of the whole image works with.
struct Pass<'a> {
    /// Its first bytes, read already.
    head: &'a Arc<Vec<u8>>,
    /// The unlocked image, to decrypt its payload (`None`: the ciphertext is only hashed).
    image: Option<&'a Image>,
    src: &'a dyn OneGet,
    expected: &'a Expected,
    threads: usize,
}

/// Read the whole image from `body` (whose first bytes, `pass.head`, were read already), hashing
/// it and decrypting it when `pass.image` is given: [`stream_once`], and again from the start
/// after a transport error ([`MAX_GETS`] GETs at most; `"gets"` in the report says how many).
fn read_all(
    mut body: Box<dyn Read + Send>,
    pass: &Pass,
    progress: &mut Progress,
    j: &mut Map<String, Value>,
) -> Result<(Streamed, Option<Kept>)> {
    let (head, src) = (pass.head, pass.src);
    let (name, size) = (src.name(), src.size());
    let mut gets = 1;
    // where each GET broke off: every one at the same byte is a body shorter than listed
    let mut ends = Vec::new();
    let done = loop {
        let mut got = head.len() as u64;
        match stream_once(&mut body, pass, progress, &mut got) {
            Ok(done) => break done,
            Err(e) if e.kind() == ErrorKind::Io && gets == MAX_GETS && ends.iter().all(|&n| n == got) => {
                return Err(Error::corrupt(format!(
                    "{name}: each of {MAX_GETS} GETs of its data broke off after {got} bytes, but Glance lists \
                     {size} (short body: {})",
                    e.message()
                )));
            }
            // a transport error (not a body of the wrong length, not a failed check): GET again
            Err(e) if e.kind() == ErrorKind::Io && gets < MAX_GETS => {
                ends.push(got);
                log::warn!("{name}: {e} after {got} bytes; reading it again from the start");
                std::thread::sleep(std::time::Duration::from_millis(200 << (2 * (gets - 1))));
                gets += 1;
                body = src.open()?;
                let mut again = Vec::with_capacity(head.len());
                fill(&mut body, &mut again, head.len() as u64)?;
                if again != **head {
                    return Err(Error::corrupt(format!("{name}: its header changed between two reads")));
                }
            }
            Err(e) if e.message().contains(&name) => return Err(e),
            Err(e) => return Err(e.context(&name)),
        }
    };
    if gets > 1 {
        j.insert("gets".into(), json!(gets));
    }
    Ok(done)
}

/// The start of an image read in one GET.
enum Start {
    /// A raw LUKS image: every byte up to its payload, and its header.
    Luks(Vec<u8>, Box<Prepared>),
    /// A qcow2 image: its first bytes.
    Qcow2(Vec<u8>),
}

/// Read the first bytes of `body` until they hold the LUKS header and everything up to the
/// payload: the bytes read and the header.
fn read_header(body: &mut dyn Read, size: u64, path: &Path, opts: &ImageOptions, name: &str) -> Result<Start> {
    let mut head = Vec::new();
    let mut want = FIRST_READ.min(size);
    loop {
        fill(body, &mut head, want)?;
        if (head.len() as u64) < want {
            return Err(short_body(name, head.len() as u64, size));
        }
        if Format::probe(&head) == Some(Format::Qcow2) {
            return Ok(Start::Qcow2(head));
        }
        if opts.header.is_none() && Format::probe(&head).is_none() {
            return Err(Error::unsupported(format!(
                "{name} has no LUKS header at byte 0: read in one GET (its store refuses byte ranges), only a \
                 raw LUKS1 or LUKS2 image can be checked; download it (`openstack image save`) and verify the file"
            )));
        }
        let reader = Arc::new(Head::new(Arc::new(head.clone()), size));
        match Prepared::open_on(reader.clone(), path, opts) {
            Ok(p) => {
                let need = p.layout().offset;
                if need > MAX_HEADER {
                    return Err(header_too_large(name, need));
                }
                fill(body, &mut head, need)?;
                if (head.len() as u64) < need {
                    return Err(short_body(name, head.len() as u64, size));
                }
                return Ok(Start::Luks(head, Box::new(p)));
            }
            // the header reaches past what was read: read on
            Err(_) if reader.wanted_more() && want < size.min(MAX_HEADER) => {
                want = (want * 2).min(size).min(MAX_HEADER);
            }
            Err(_) if reader.wanted_more() => return Err(header_too_large(name, want)),
            Err(e) => return Err(e),
        }
    }
}

fn header_too_large(name: &str, at_least: u64) -> Error {
    Error::unsupported(format!(
        "{name}: its LUKS header and key slots take {at_least} bytes or more, more than the {MAX_HEADER} kept \
         when an image is read in one GET; download it (`openstack image save`) and verify the file"
    ))
}

fn short_body(name: &str, got: u64, size: u64) -> Error {
    Error::corrupt(format!("{name}: the GET of its data ended after {got} bytes, but Glance lists {size} (short body)"))
}

/// Read from `body` until `buf` holds `len` bytes or the body ends. A transport error is Io.
fn fill(body: &mut dyn Read, buf: &mut Vec<u8>, len: u64) -> Result<()> {
    if (buf.len() as u64) < len {
        let need = len - buf.len() as u64;
        body.take(need).read_to_end(buf).map_err(|e| Error::from_io("reading the image's data", &e))?;
    }
    Ok(())
}

/// The bytes of an image read so far, as a reader of the whole image: a read past them is an
/// error, and remembered ([`Head::wanted_more`]).
struct Head {
    bytes: Arc<Vec<u8>>,
    size: u64,
    wanted: AtomicBool,
}

impl Head {
    fn new(bytes: Arc<Vec<u8>>, size: u64) -> Head {
        Head { bytes, size, wanted: AtomicBool::new(false) }
    }
    fn wanted_more(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }
}

impl ReadAt for Head {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !crate::io::within(offset, buf.len(), self.size) {
            return Err(crate::io::past_end("the image", offset, buf.len(), self.size));
        }
        if !crate::io::within(offset, buf.len(), self.bytes.len() as u64) {
            self.wanted.store(true, Ordering::Relaxed);
            return Err(Error::unsupported(format!(
                "{} bytes at byte {offset}: past the {} bytes read before the payload",
                buf.len(),
                self.bytes.len()
            )));
        }
        self.bytes.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// One read of the whole image: `pass.head` (already read from `body`) and the rest of `body`,
/// every chunk hashed and its payload part decrypted; `got` counts the bytes read. Returns what
/// [`super::verify`]'s report needs and the partition starts kept.
fn stream_once(
    body: &mut Box<dyn Read + Send>,
    pass: &Pass,
    progress: &mut Progress,
    got: &mut u64,
) -> Result<(Streamed, Option<Kept>)> {
    let Pass { head, image, src, expected, threads } = *pass;
    let size = src.size();
    let name = src.name();
    let sink = match image {
        Some(image) => {
            let payload = image.payload_offset().ok_or_else(|| Error::unsupported("qcow2 cannot be read forward"))?;
            Some(Plain::new(image, payload, threads))
        }
        None => None,
    };
    let plain_size = image.map_or(0, Image::size);
    let mut algos = vec![OsAlgo::Sha256];
    for a in expected.os_algo.into_iter().chain(expected.signature_hash.map(OsAlgo::of_signature)) {
        if !algos.contains(&a) {
            algos.push(a);
        }
    }
    progress.plain_total = plain_size;
    progress.cipher_total = size;
    let cipher_done = AtomicU64::new(0);
    let plain_done = AtomicU64::new(0);
    let (digests, sink) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Arc<Vec<u8>>)>(HASH_QUEUE);
        let plain_done = &plain_done;
        let worker = s.spawn(move || {
            let Some(mut sink) = sink else { return Ok(None) };
            for (off, chunk) in rx {
                sink.take(off, &chunk)?;
                plain_done.store(sink.next, Ordering::Relaxed);
            }
            Ok::<_, Error>(Some(sink))
        });
        let digests = hash_stream(algos.iter().map(|a| a.hasher()).collect(), &cipher_done, |send| {
            let mut deliver = |off: u64, buf: Arc<Vec<u8>>| {
                send(buf.clone())?;
                if image.is_none() {
                    return Ok(());
                }
                tx.send((off, buf)).map_err(|_| Error::io("the decryption thread stopped"))
            };
            deliver(0, head.clone())?;
            let mut off = head.len() as u64;
            loop {
                let mut buf = Vec::with_capacity(FILE_CHUNK);
                let read = fill(body, &mut buf, FILE_CHUNK as u64);
                *got = off + buf.len() as u64;
                read?;
                if buf.is_empty() {
                    break;
                }
                let n = buf.len() as u64;
                if off + n > size {
                    return Err(Error::corrupt(format!(
                        "{name}: the GET of its data sent more than the {size} bytes Glance lists"
                    )));
                }
                deliver(off, Arc::new(buf))?;
                off += n;
                progress.draw(plain_done.load(Ordering::Relaxed), cipher_done.load(Ordering::Relaxed));
            }
            if off < size {
                return Err(short_body(&name, off, size));
            }
            Ok(())
        });
        drop(tx);
        let sink = worker.join().map_err(|_| Error::io("the decryption thread failed"))?;
        // the decryption's own error explains a failed hand-over best
        match (digests, sink) {
            (Err(e), Ok(_)) | (_, Err(e)) => Err(e),
            (Ok(d), Ok(s)) => s.as_ref().map_or(Ok(()), Plain::finish).map(|()| (d, s)),
        }
    })?;
    progress.draw(plain_size, size);
    progress.complete();
    let of = |a: OsAlgo| algos.iter().position(|&x| x == a).and_then(|i| digests.get(i)).cloned();
    let (streamed, kept) = match sink {
        Some(sink) => {
            let (s, k) = sink.done(plain_size);
            (s, Some(k))
        }
        None => (Streamed::default(), None),
    };
    Ok((
        Streamed {
            cipher_sha256: of(OsAlgo::Sha256).map(hex::encode).unwrap_or_default(),
            os_hash: expected.os_algo.and_then(of).map(hex::encode),
            signature_digest: expected.signature_hash.and_then(|h| of(OsAlgo::of_signature(h))),
            ..streamed
        },
        kept,
    ))
}

/// The plaintext side of a forward read: decrypts the payload part of each chunk (whole sectors;
/// a sector split between chunks waits for the next) and hashes, sniffs and keeps what the report
/// needs.
struct Plain<'a> {
    image: &'a Image,
    /// File offset of plaintext byte 0.
    payload: u64,
    threads: usize,
    /// Ciphertext of a sector begun in the last chunk.
    carry: Vec<u8>,
    /// Plaintext bytes done.
    next: u64,
    sha: sha2::Sha256,
    head: Vec<u8>,
    tail: Vec<u8>,
    all_zero: bool,
    /// The partition starts to keep (known once the first MiB is), and what was kept.
    kept: Option<Kept>,
}

impl<'a> Plain<'a> {
    fn new(image: &'a Image, payload: u64, threads: usize) -> Plain<'a> {
        Plain {
            image,
            payload,
            threads: threads.max(1),
            carry: Vec::new(),
            next: 0,
            sha: sha2::Sha256::new(),
            head: Vec::new(),
            tail: Vec::new(),
            all_zero: true,
            kept: None,
        }
    }

    /// The ciphertext `chunk` at file offset `off` (chunks come in order, without gaps).
    fn take(&mut self, off: u64, chunk: &[u8]) -> Result<()> {
        let end = self.payload + self.image.size();
        let from = off.max(self.payload);
        let to = (off + chunk.len() as u64).min(end);
        if from >= to {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(&chunk[(from - off) as usize..(to - off) as usize]);
        let ss = self.image.sector_size() as usize;
        let whole = buf.len() / ss * ss;
        self.carry = buf.split_off(whole);
        self.decrypt(&mut buf)?;
        self.plain(&buf);
        Ok(())
    }

    /// Every payload byte has come.
    fn finish(&self) -> Result<()> {
        if self.next != self.image.size() || !self.carry.is_empty() {
            return Err(Error::corrupt(format!(
                "the payload ended after {} of its {} bytes",
                self.next + self.carry.len() as u64,
                self.image.size()
            )));
        }
        Ok(())
    }

    /// Decrypt whole sectors at plaintext offset `self.next`, split over the threads.
    fn decrypt(&self, buf: &mut [u8]) -> Result<()> {
        let ss = self.image.sector_size() as usize;
        let sectors = buf.len() / ss;
        let per = sectors.div_ceil(self.threads).max(1) * ss;
        if self.threads == 1 || buf.len() <= per {
            return self.image.decrypt_at(self.next, buf);
        }
        std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks_mut(per)
                .enumerate()
                .map(|(i, part)| {
                    let at = self.next + (i * per) as u64;
                    s.spawn(move || self.image.decrypt_at(at, part))
                })
                .collect();
            parts.into_iter().try_for_each(|p| p.join().map_err(|_| Error::io("a decryption thread failed"))?)
        })
    }

    /// Plaintext `buf` at offset `self.next`.
    fn plain(&mut self, buf: &[u8]) {
        let off = self.next;
        self.sha.update(buf);
        if self.head.len() < sniff::HEAD_LEN {
            let take = (sniff::HEAD_LEN - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..take]);
        }
        self.tail.extend_from_slice(&buf[buf.len().saturating_sub(sniff::TAIL_LEN)..]);
        let excess = self.tail.len().saturating_sub(sniff::TAIL_LEN);
        self.tail.drain(..excess);
        if self.all_zero {
            self.all_zero = buf.iter().all(|&b| b == 0);
        }
        self.next += buf.len() as u64;
        let size = self.image.size();
        if self.kept.is_none() && (self.head.len() >= sniff::HEAD_LEN || self.next >= size) {
            // the partition table is in the first MiB: keep the starts of its partitions
            let mut kept = Kept { size, windows: Vec::new() };
            if let Payload::Table(t) = sniff::classify(&self.head, &[], size, false) {
                for p in t.partitions.iter().take(MAX_WINDOWS) {
                    let len = (sniff::VOLUME_PROBE_LEN as u64).min(p.size).min(size.saturating_sub(p.start));
                    if len > 0 {
                        kept.windows.push((p.start, Vec::new(), len as usize));
                    }
                }
            }
            // what went by before this buffer is in the head
            kept.keep(0, &self.head[..(off as usize).min(self.head.len())]);
            self.kept = Some(kept);
        }
        if let Some(k) = &mut self.kept {
            k.keep(off, buf);
        }
    }

    fn done(self, size: u64) -> (Streamed, Kept) {
        let streamed = Streamed {
            plain_sha256: hex::encode(self.sha.finalize()),
            head: self.head,
            tail: self.tail,
            all_zero: self.all_zero,
            cipher_sha256: String::new(),
            os_hash: None,
            signature_digest: None,
        };
        (streamed, self.kept.unwrap_or(Kept { size, windows: Vec::new() }))
    }
}

/// The plaintext at the starts of its partitions, kept as it streamed by: a reader of exactly
/// those bytes (the description of the partitions reads nothing else).
struct Kept {
    size: u64,
    /// (start, bytes kept, bytes wanted).
    windows: Vec<(u64, Vec<u8>, usize)>,
}

impl Kept {
    /// Keep what of plaintext `buf` at `off` lies in a window (bytes come in order).
    fn keep(&mut self, off: u64, buf: &[u8]) {
        let end = off + buf.len() as u64;
        for (start, got, want) in &mut self.windows {
            let at = *start + got.len() as u64;
            if got.len() < *want && at >= off && at < end {
                let n = (*want - got.len()).min((end - at) as usize);
                let from = (at - off) as usize;
                got.extend_from_slice(&buf[from..from + n]);
            }
        }
    }
}

impl ReadAt for Kept {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let w = self.windows.iter().find(|(start, got, _)| {
            offset >= *start && crate::io::within(offset - *start, buf.len(), got.len() as u64)
        });
        match w {
            Some((start, got, _)) => got.read_exact_at(buf, offset - start),
            None => Err(Error::io(format!(
                "{} plaintext bytes at {offset} were not kept while the image was read in one GET",
                buf.len()
            ))),
        }
    }
    fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    //! The forward-only pipeline without a server: a LUKS1 image made by `qemu-img` (skipped when
    //! it is missing, a failure under `CI=true`) fed through [`OneGet`]s that read in odd-sized
    //! pieces, break off, or send too little or too much; compared with the range path's report.
    use super::*;
    use crate::keys::{Keyring, Secret};
    use crate::report::verify::{Report, verify_image};
    use std::process::Command;
    use std::sync::Mutex;

    const PASS: &str = "forward test passphrase";

    /// A qemu-img LUKS1 image of `plain` (its bytes), or `None` without qemu-img.
    fn qemu_luks(plain: &[u8]) -> Option<Vec<u8>> {
        let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
        if !ok {
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true and qemu-img is missing");
            eprintln!("SKIPPED: qemu-img not found");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("plain.raw"), dir.path().join("img.luks"));
        std::fs::write(&src, plain).unwrap();
        let st = Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "luks", "--object"])
            .arg(format!("secret,id=s0,data={PASS}"))
            .args(["-o", "key-secret=s0,iter-time=10"])
            .arg(&src)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "qemu-img convert failed");
        Some(std::fs::read(out).unwrap())
    }

    /// How a test GET behaves.
    #[derive(Clone, Copy)]
    enum Fault {
        None,
        /// The first GET breaks off after this many bytes (a transport error).
        BreakOnce(usize),
        /// Every GET breaks off after this many bytes.
        BreakAlways(usize),
    }

    /// `data` served in pieces of `piece` bytes; `size` as listed.
    struct Served {
        data: Vec<u8>,
        size: u64,
        piece: usize,
        fault: Fault,
        gets: Mutex<u32>,
    }

    struct Pieces {
        data: Arc<Vec<u8>>,
        at: usize,
        piece: usize,
        stop: Option<usize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.stop == Some(self.at) {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer disconnected"));
            }
            let end = self.data.len().min(self.stop.unwrap_or(usize::MAX));
            let n = buf.len().min(self.piece).min(end - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl OneGet for Served {
        fn name(&self) -> String {
            "test image".into()
        }
        fn size(&self) -> u64 {
            self.size
        }
        fn refuses_ranges(&self) -> bool {
            true
        }
        fn open(&self) -> Result<Box<dyn Read + Send>> {
            let mut gets = self.gets.lock().unwrap();
            *gets += 1;
            let stop = match self.fault {
                Fault::BreakOnce(n) if *gets == 1 => Some(n),
                Fault::BreakAlways(n) => Some(n),
                _ => None,
            };
            Ok(Box::new(Pieces { data: Arc::new(self.data.clone()), at: 0, piece: self.piece, stop }))
        }
    }

    /// A reader that refuses every range, as Glance does for such a store.
    struct NoRanges(u64);

    impl ReadAt for NoRanges {
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> Result<()> {
            Err(Error::unsupported("Glance refuses range requests for this image (400)"))
        }
        fn size(&self) -> u64 {
            self.0
        }
    }

    fn report(src: Arc<dyn ReadAt>, one_get: Option<&dyn OneGet>) -> Report {
        let tree =
            ImageTree::on(src, Path::new("test.luks"), Path::new(""), &ImageOptions::default(), Limits::default());
        let checks = Checks { expect_sha256: None, threads: 3, ca: None, keyring: Arc::new(Keyring::new(None, None)) };
        let key = |_: &Volume| {
            Ok(UnlockKey { passphrase: Secret::from_slice(PASS.as_bytes()), key_slot: None, asked: false })
        };
        let progress = Progress::new("test");
        verify_image(
            &tree,
            &ImageOptions::default(),
            &checks,
            progress,
            &key,
            UnlockSettings::default(),
            super::super::verify::Known { one_get, ..Default::default() },
        )
    }

    fn served(data: &[u8], size: u64, piece: usize, fault: Fault) -> Served {
        Served { data: data.to_vec(), size, piece, fault, gets: Mutex::new(0) }
    }

    fn forward(s: &Served) -> Report {
        report(Arc::new(NoRanges(s.size)), Some(s))
    }

    /// A plaintext of several chunks whose bytes are not all alike (an unrecognised one: WARN).
    fn plaintext() -> Vec<u8> {
        (0..(9 * FILE_CHUNK + 3 * 512)).map(|i| ((i as u64).wrapping_mul(0x9e37_79b9) >> 7) as u8).collect()
    }

    #[test]
    fn one_get_reports_what_ranges_report() {
        let plain = plaintext();
        let Some(img) = qemu_luks(&plain) else { return };
        let by_range = report(Arc::new(img.clone()), None);
        assert!(by_range.json["read"].is_null(), "{:#}", by_range.json);
        // pieces of odd sizes: sectors split between reads and chunks
        for piece in [FILE_CHUNK, 777, 65_537] {
            let r = forward(&served(&img, img.len() as u64, piece, Fault::None));
            assert_eq!(r.json["read"], READ_ONE_GET, "{:#}", r.json);
            assert_eq!(r.exit_code, by_range.exit_code, "{:#}", r.json);
            for k in ["format", "cipher", "key_bits", "sector_size", "payload_offset", "decrypted_size", "key_slot"] {
                assert_eq!(r.json[k], by_range.json[k], "{k}");
            }
            assert_eq!(r.json["sha256"], by_range.json["sha256"]);
            assert_eq!(r.json["plaintext"], by_range.json["plaintext"]);
            assert_eq!(r.json["warnings"], by_range.json["warnings"]);
            assert_eq!(r.json["sha256"]["plaintext"], hex::encode(sha2::Sha256::digest(&plain)));
            assert_eq!(r.json["sha256"]["ciphertext"], hex::encode(sha2::Sha256::digest(&img)));
        }
    }

    /// Chunks that split sectors anywhere decrypt to the plaintext the range path reads.
    #[test]
    fn sectors_split_between_chunks() {
        let plain: Vec<u8> = plaintext()[..3 * FILE_CHUNK].to_vec();
        let Some(img) = qemu_luks(&plain) else { return };
        let prepared = Prepared::open_on(Arc::new(img.clone()), Path::new("t"), &ImageOptions::default()).unwrap();
        let image = prepared.unlock(&Secret::from_slice(PASS.as_bytes()), UnlockSettings::default()).unwrap();
        let payload = image.payload_offset().unwrap();
        for (threads, piece) in [(1, 1000), (3, 4095), (2, 513 * 1024 + 7)] {
            let mut sink = Plain::new(&image, payload, threads);
            for (i, chunk) in img.chunks(piece).enumerate() {
                sink.take((i * piece) as u64, chunk).unwrap();
            }
            sink.finish().unwrap();
            let (s, _) = sink.done(image.size());
            assert_eq!(s.plain_sha256, hex::encode(sha2::Sha256::digest(&plain)), "{threads} threads, {piece}");
            assert_eq!(s.head, plain[..sniff::HEAD_LEN]);
            assert_eq!(s.tail, plain[plain.len() - sniff::TAIL_LEN..]);
        }
        // a payload cut inside a sector is not whole
        let mut sink = Plain::new(&image, payload, 2);
        sink.take(0, &img[..img.len() - 100]).unwrap();
        assert_eq!(sink.finish().unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn one_get_bodies_of_the_wrong_length_and_broken_reads() {
        let plain = plaintext();
        let Some(img) = qemu_luks(&plain) else { return };
        let size = img.len() as u64;
        let sha = hex::encode(sha2::Sha256::digest(&plain));
        // shorter than listed, inside the header and inside the payload; longer than listed
        for (data, listed) in [(&img[..4096], size), (&img[..img.len() - 512], size), (&img[..], size - 512)] {
            let r = forward(&served(data, listed, 65_536, Fault::None));
            let e = r.error.as_ref().expect("a failure");
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
            assert!(e.message().contains("test image"), "{e}");
            assert_eq!(r.exit_code, 4);
        }
        // a GET that breaks off once is read again from the start
        let s = served(&img, size, FILE_CHUNK, Fault::BreakOnce(5 * FILE_CHUNK + 100));
        let r = forward(&s);
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.json["sha256"]["plaintext"], sha);
        assert_eq!(r.json["gets"], 2);
        // every GET breaking off at the same byte: a short body
        let s = served(&img, size, FILE_CHUNK, Fault::BreakAlways(5 * FILE_CHUNK + 100));
        let r = forward(&s);
        let e = r.error.as_ref().expect("a failure");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.message().contains("short body"), "{e}");
        assert_eq!(*s.gets.lock().unwrap(), MAX_GETS);
        // a flipped payload byte decrypts to other plaintext: another sha256, never a panic
        let mut bad = img.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let r = forward(&served(&bad, size, 4096, Fault::None));
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_ne!(r.json["sha256"]["plaintext"], sha);
    }
}
