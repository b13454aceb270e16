//! The encryption layer: LUKS on a byte range, or qcow2 with LUKS, × cipher × key → plaintext.
//!
//! Opening happens in two steps so a mount can list volumes before any key is derived:
//! [`Prepared::open_on`] reads and validates the headers of the volume in a reader (no key, no
//! KDF) and knows the decrypted size; [`Prepared::unlock`] runs the key slots and returns an
//! [`Image`], itself a [`ReadAt`], which decrypts any byte range of the layer below. The reader
//! below is any layer: a file, a partition, a logical volume, another decrypted volume.

use crate::crypto::{SectorCipher, sector_cipher};
use crate::io::{FileSource, ReadAt, Window};
use crate::keys::Secret;
use crate::luks::keyslot::{self, UnlockOptions};
use crate::luks::{self, DataLayout};
use crate::qcow2::table::Storage;
use crate::qcow2::{self, Qcow2};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Container formats luksfs recognises by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Luks1,
    Luks2,
    Qcow2,
}

impl Format {
    /// Recognise a format from the first bytes of a file (8 are enough).
    pub fn probe(head: &[u8]) -> Option<Format> {
        if luks::probe(head) {
            return match head.get(6..8) {
                Some([0, 2]) => Some(Format::Luks2),
                _ => Some(Format::Luks1),
            };
        }
        (head.len() >= 4 && head[..4] == qcow2::header::MAGIC).then_some(Format::Qcow2)
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Luks1 => "LUKS1",
            Format::Luks2 => "LUKS2",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// Per-image options (command-line flags or keytab options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Detached LUKS header file.
    pub header: Option<PathBuf>,
    /// Only try this key slot.
    pub key_slot: Option<u32>,
}

/// Process-wide unlock settings.
#[derive(Clone, Copy, Debug)]
pub struct UnlockSettings {
    /// Refuse Argon2 slots needing more memory than this (KiB).
    pub max_kdf_memory_kib: u32,
    /// Key slots tried at once.
    pub parallel: usize,
    /// Attempts at a passphrase typed at a prompt (`--tries`; 1 for keys from files or stores).
    pub tries: u32,
}

impl Default for UnlockSettings {
    fn default() -> Self {
        UnlockSettings {
            max_kdf_memory_kib: DEFAULT_MAX_KDF_MEMORY_KIB,
            parallel: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tries: 1,
        }
    }
}

/// Default Argon2 memory cap: 4 GiB (the LUKS2 maximum), or half the machine's RAM if less.
pub const DEFAULT_MAX_KDF_MEMORY_KIB: u32 = 4 * 1024 * 1024;

pub use crate::io::file::open_readonly;

/// Read the first bytes of a file to recognise its format.
pub fn probe_file(path: &Path) -> Result<Option<Format>> {
    let f = FileSource::open(path)?;
    let head = crate::io::read_upto(&f, 0, 8)?;
    // A LUKS2 image whose primary header is destroyed still opens from its secondary.
    Ok(if head.len() < 8 {
        None
    } else {
        Format::probe(&head).or_else(|| luks::probe_secondary(&f).then_some(Format::Luks2))
    })
}

/// Where the ciphertext of the plaintext view lives.
#[derive(Clone, Debug)]
enum Layout {
    /// LUKS on a raw file: sector `n` at `offset + n * sector_size`.
    Raw { offset: u64 },
    /// qcow2 clusters; IVs are host offsets / 512.
    Qcow2(Arc<Qcow2>),
}

/// An image with validated headers, not yet unlocked.
#[derive(Clone)]
pub struct Prepared {
    path: PathBuf,
    format: Format,
    data: Arc<dyn ReadAt>,
    header_src: Arc<dyn ReadAt>,
    luks: luks::Header,
    layout: DataLayout,
    storage: Layout,
    size: u64,
    options: ImageOptions,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("size", &self.size)
            .finish()
    }
}

impl Prepared {
    /// Read and validate the headers of the image at `path` (no key needed). Refused and
    /// unsupported images fail here with [`crate::ErrorKind::Unsupported`].
    pub fn open(path: &Path, options: &ImageOptions) -> Result<Prepared> {
        let file: Arc<dyn ReadAt> = Arc::new(FileSource::open(path)?);
        Self::open_on(file, path, options)
    }

    /// Read and validate the headers of the encrypted volume in `file` (any layer); `name` is
    /// how errors and logs call it (a path, or a path and a volume name).
    pub fn open_on(file: Arc<dyn ReadAt>, name: &Path, options: &ImageOptions) -> Result<Prepared> {
        Self::open_inner(file, name, options).map_err(|e| e.with_path(name))
    }

    fn open_inner(file: Arc<dyn ReadAt>, path: &Path, options: &ImageOptions) -> Result<Prepared> {
        let file_len = file.size();
        let head = crate::io::read_upto(&*file, 0, 8)?;
        let format = match (&options.header, Format::probe(&head)) {
            (_, Some(Format::Qcow2)) => Format::Qcow2,
            (Some(_), _) => Format::Luks1, // refined below from the detached header
            (None, Some(f)) => f,
            // A LUKS2 image whose primary header is destroyed still opens from its secondary.
            (None, None) if luks::probe_secondary(&*file) => Format::Luks2,
            (None, None) => return Err(Error::corrupt("not a LUKS or qcow2 image (no known magic)")),
        };
        if format == Format::Qcow2 {
            if options.header.is_some() {
                return Err(Error::usage("--header applies to raw LUKS images, not qcow2"));
            }
            return Self::open_qcow2(path, file, file_len, options);
        }
        let (header_src, detached): (Arc<dyn ReadAt>, bool) = match &options.header {
            Some(h) => {
                let f = FileSource::open(h).map_err(|e| e.context("cannot open the detached header"))?;
                (Arc::new(f), true)
            }
            None => (file.clone(), false),
        };
        let hdr = luks::read_header(&*header_src).map_err(|e| match &options.header {
            Some(h) => e.context(format!("detached header {}", h.display())),
            None => e,
        })?;
        let format = if hdr.version() == 2 { Format::Luks2 } else { Format::Luks1 };
        let layout = hdr.data_layout()?;
        if !detached && layout.offset < hdr.header_area_end() {
            return Err(Error::corrupt(format!(
                "data offset {} overlaps the header and key slots (which end at byte {}); \
                 for a detached header use --header",
                layout.offset,
                hdr.header_area_end()
            )));
        }
        if layout.offset > file_len {
            return Err(Error::corrupt(format!(
                "file is truncated: the encrypted data should start at byte {} but the file has {file_len} bytes",
                layout.offset
            )));
        }
        let ss = u64::from(layout.sector_size);
        let available = file_len - layout.offset;
        let size = match layout.size {
            None => available / ss * ss,
            Some(s) if s % ss != 0 => {
                return Err(Error::corrupt(format!("data segment size {s} is not a multiple of the sector size {ss}")));
            }
            Some(s) if s > available => {
                return Err(Error::corrupt(format!(
                    "file is truncated: the data segment needs {s} bytes after byte {} but only {available} remain",
                    layout.offset
                )));
            }
            Some(s) => s,
        };
        Ok(Prepared {
            path: path.to_path_buf(),
            format,
            data: file,
            header_src,
            luks: hdr,
            storage: Layout::Raw { offset: layout.offset },
            layout,
            size,
            options: options.clone(),
        })
    }

    fn open_qcow2(path: &Path, file: Arc<dyn ReadAt>, file_len: u64, options: &ImageOptions) -> Result<Prepared> {
        let qh = qcow2::read_header(&*file, file_len)?;
        if let Some(why) = qh.refusal() {
            return Err(Error::unsupported(why));
        }
        if qh.encryption() == qcow2::header::Encryption::Plain {
            return Err(Error::unsupported("qcow2 image is not encrypted; luksfs only serves encrypted images"));
        }
        let Some((off, len)) = qh.crypto_header else {
            return Err(Error::corrupt("encrypted qcow2 image has no encryption header extension"));
        };
        let header_src: Arc<dyn ReadAt> =
            Arc::new(Window::new(file.clone(), off, len, "the embedded LUKS header").map_err(|e| e.context("qcow2"))?);
        let hdr = luks::read_header(&*header_src).map_err(|e| e.context("embedded LUKS header"))?;
        if hdr.version() != 1 {
            return Err(Error::unsupported("qcow2 embeds a LUKS header other than LUKS1"));
        }
        let layout = hdr.data_layout()?;
        let size = qh.size;
        let q = Qcow2::new(qh, file.clone(), file_len)?;
        Ok(Prepared {
            path: path.to_path_buf(),
            format: Format::Qcow2,
            data: file,
            header_src,
            luks: hdr,
            layout,
            storage: Layout::Qcow2(Arc::new(q)),
            size,
            options: options.clone(),
        })
    }

    /// Decrypted size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The LUKS header (for qcow2, the embedded one).
    pub fn luks(&self) -> &luks::Header {
        &self.luks
    }
    /// Where the data lies and how it is encrypted.
    pub fn layout(&self) -> &DataLayout {
        &self.layout
    }
    /// The qcow2 mapper, for qcow2 images.
    pub fn qcow2(&self) -> Option<&Qcow2> {
        match &self.storage {
            Layout::Qcow2(q) => Some(q),
            Layout::Raw { .. } => None,
        }
    }
    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open a key slot with `passphrase` (only `key_slot` if given, else the image's option) and
    /// return the readable image.
    pub fn unlock_slot(
        mut self,
        passphrase: &Secret,
        settings: UnlockSettings,
        key_slot: Option<u32>,
    ) -> Result<Image> {
        if key_slot.is_some() {
            self.options.key_slot = key_slot;
        }
        self.unlock(passphrase, settings)
    }

    /// Open a key slot with `passphrase` and return the readable image.
    pub fn unlock(self, passphrase: &Secret, settings: UnlockSettings) -> Result<Image> {
        let path = self.path.clone();
        self.unlock_inner(passphrase, settings).map_err(|e| e.with_path(path))
    }

    fn unlock_inner(self, passphrase: &Secret, settings: UnlockSettings) -> Result<Image> {
        let plans = self.luks.slot_plans()?;
        let opts = UnlockOptions {
            key_slot: self.options.key_slot,
            max_kdf_memory_kib: settings.max_kdf_memory_kib,
            parallel: settings.parallel,
        };
        let unlocked = keyslot::unlock(&plans, passphrase, &*self.header_src, opts).map_err(|e| {
            // No usable slot was wrong for the key: say why the unusable ones cannot be used.
            let unusable = self.luks.unusable_slots();
            let named = opts.key_slot.and_then(|n| unusable.iter().find(|u| u.0 == n));
            let only = (opts.key_slot.is_none() && plans.is_empty()).then(|| unusable.first()).flatten();
            match (e.kind(), named.or(only)) {
                (crate::ErrorKind::BadKey, Some((_, why))) => why.clone(),
                _ => e,
            }
        })?;
        if unlocked.volume_key.len() != self.layout.key_len {
            return Err(Error::corrupt(format!(
                "key slot {} holds a {}-byte key but the data segment needs {}",
                unlocked.slot,
                unlocked.volume_key.len(),
                self.layout.key_len
            )));
        }
        let cipher = sector_cipher(&self.layout.cipher, unlocked.volume_key.as_bytes())?;
        log::info!("{}: unlocked with key slot {}", self.path.display(), unlocked.slot);
        Ok(Image {
            path: self.path,
            format: self.format,
            size: self.size,
            sector_size: u64::from(self.layout.sector_size),
            iv_tweak: self.layout.iv_tweak,
            cipher,
            data: self.data,
            storage: self.storage,
            slot: unlocked.slot,
        })
    }
}

/// An unlocked image: decrypts any range of its plaintext view.
pub struct Image {
    path: PathBuf,
    format: Format,
    size: u64,
    sector_size: u64,
    iv_tweak: u64,
    cipher: Box<dyn SectorCipher>,
    data: Arc<dyn ReadAt>,
    storage: Layout,
    slot: u32,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("size", &self.size)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

fn read_error(off: u64, e: Error) -> Error {
    e.context(format!("reading ciphertext at byte {off}"))
}

impl Image {
    /// Decrypted size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The encryption sector size (reads aligned to it avoid a copy).
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }
    /// The key slot that opened the image.
    pub fn slot(&self) -> u32 {
        self.slot
    }
    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fill `buf` with plaintext starting at byte `off`. The range must lie within
    /// [`Image::size`]; any alignment is accepted.
    pub fn read_plain(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        self.read_plain_inner(off, buf).map_err(|e| e.with_path(&self.path))
    }

    fn read_plain_inner(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        if off.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(Error::usage(format!("read of {len} bytes at {off} is beyond the image size {}", self.size)));
        }
        let ss = self.sector_size;
        let start = off / ss * ss;
        let end = (off + len).div_ceil(ss) * ss;
        if start == off && end == off + len {
            return self.read_aligned(off, buf);
        }
        let mut tmp = vec![0u8; (end - start) as usize];
        self.read_aligned(start, &mut tmp)?;
        let skip = (off - start) as usize;
        buf.copy_from_slice(&tmp[skip..skip + buf.len()]);
        Ok(())
    }

    /// Where the ciphertext of plaintext byte 0 lies in the image file: the payload offset of a
    /// raw LUKS image; `None` for qcow2 (its clusters are mapped, not contiguous).
    pub fn payload_offset(&self) -> Option<u64> {
        match &self.storage {
            Layout::Raw { offset } => Some(*offset),
            Layout::Qcow2(_) => None,
        }
    }

    /// Decrypt in place ciphertext read by other means (a stream) that holds plaintext bytes
    /// `off..off + buf.len()` of a raw LUKS image: what [`Image::read_plain`] does after its
    /// read. `off` and `buf.len()` must be multiples of the sector size and lie within the image.
    pub fn decrypt_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let ss = self.sector_size;
        let len = buf.len() as u64;
        if !off.is_multiple_of(ss) || !len.is_multiple_of(ss) || off.checked_add(len).is_none_or(|end| end > self.size)
        {
            return Err(Error::usage(format!(
                "decrypting {len} bytes at {off}: not whole {ss}-byte sectors within the image size {}",
                self.size
            )));
        }
        if self.payload_offset().is_none() {
            return Err(Error::unsupported("qcow2 data is mapped by its tables: it cannot be decrypted as a stream"));
        }
        self.cipher.decrypt(buf, self.iv_tweak + off / 512, ss as usize);
        Ok(())
    }

    /// `off` and `buf.len()` are multiples of the sector size.
    fn read_aligned(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        match &self.storage {
            Layout::Raw { offset } => {
                let at = offset + off;
                self.data.read_exact_at(buf, at).map_err(|e| read_error(at, e))?;
                self.cipher.decrypt(buf, self.iv_tweak + off / 512, self.sector_size as usize);
                Ok(())
            }
            Layout::Qcow2(q) => self.read_qcow2(q, off, buf),
        }
    }

    fn read_qcow2(&self, q: &Qcow2, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let guest = off + done as u64;
            let (st, mut n) = q.map(guest, (buf.len() - done) as u64)?;
            match st {
                Storage::Zero | Storage::Unallocated => buf[done..done + n as usize].fill(0),
                Storage::Compressed(_) => {
                    return Err(Error::unsupported(format!(
                        "guest offset {guest} is in a compressed cluster, which an encrypted qcow2 image cannot have"
                    )));
                }
                Storage::Data(host) => {
                    // Coalesce clusters that are contiguous on the host into one read.
                    while done + (n as usize) < buf.len() {
                        let (next, m) = q.map(guest + n, (buf.len() - done) as u64 - n)?;
                        if next != Storage::Data(host + n) {
                            break;
                        }
                        n += m;
                    }
                    let chunk = &mut buf[done..done + n as usize];
                    self.data.read_exact_at(chunk, host).map_err(|e| read_error(host, e))?;
                    self.cipher.decrypt(chunk, host / 512, 512);
                }
            }
            done += n as usize;
        }
        Ok(())
    }
}

impl ReadAt for Image {
    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_plain(offset, buf)
    }
    fn size(&self) -> u64 {
        self.size
    }
}
