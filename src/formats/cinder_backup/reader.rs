//! Backups found in an [`ObjectStore`] ([`Catalog`]) and the reassembled volume of one of them
//! read in place ([`BackupReader`]): each object is fetched when a read first touches it, its
//! md5 checked, decompressed once into a bounded cache of chunks, its bytes checked against its
//! backup's `_sha256file`, and copied out from there.
//! A missing object, a bad md5, corrupt compressed data or a missing parent fails the read with
//! an error naming the backup, the object and the reason: never wrong bytes.

use super::assemble::{ExtentMap, Source};
use super::metadata::{MAX_METADATA_BYTES, Metadata};
use super::names::{self, METADATA_SUFFIX, PrefixInfo};
use super::sha256file::{MAX_SHA256FILE_BYTES, Sha256File};
use super::{CinderError, chunks};
use crate::source::ObjectStore;
use crate::{Error, Result};
use quick_cache::Weighter;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Default budget of the decompressed-chunk cache of one reader.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// One backup found in a store: its object-name prefix and what the prefix says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupEntry {
    /// The full prefix of its object names (with the directories of a posix store).
    pub prefix: String,
    pub info: PrefixInfo,
}

impl BackupEntry {
    /// The name of its `_metadata` object.
    pub fn metadata_name(&self) -> String {
        format!("{}{METADATA_SUFFIX}", self.prefix)
    }
    /// The name of its `_sha256file` object.
    pub fn sha256_name(&self) -> String {
        format!("{}{}", self.prefix, names::SHA256_SUFFIX)
    }
}

/// The backups of one store, found by their `_metadata` objects.
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    backups: Vec<BackupEntry>,
}

fn in_backup(id: &str, e: impl Into<Error>) -> Error {
    e.into().context(format!("cinder backup {id}"))
}

impl Catalog {
    /// List `store` (under `prefix`, "" for all of it) and collect every backup whose
    /// `_metadata` object has a cinder-shaped name.
    pub fn discover(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Catalog> {
        let names = store.list(prefix)?;
        Ok(Self::from_names(store, names.iter().map(String::as_str)))
    }

    /// The backups whose `_metadata` objects are among `names` (a listing of `store`).
    pub fn from_names<'a>(store: Arc<dyn ObjectStore>, names: impl Iterator<Item = &'a str>) -> Catalog {
        let mut backups: Vec<BackupEntry> = Vec::new();
        for name in names {
            let Some(p) = name.strip_suffix(METADATA_SUFFIX) else { continue };
            let Some(info) = names::parse_prefix(p) else { continue };
            if let Some(dup) = backups.iter().find(|b| b.info.backup_id == info.backup_id) {
                log::warn!(
                    "{}: backup {} appears twice ({} and {}); using the first",
                    store.describe(),
                    info.backup_id,
                    dup.prefix,
                    p
                );
                continue;
            }
            backups.push(BackupEntry { prefix: p.to_string(), info });
        }
        Catalog { store, backups }
    }

    /// The store the backups are in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Every backup found, in name order.
    pub fn backups(&self) -> &[BackupEntry] {
        &self.backups
    }

    /// The backup with this id.
    pub fn find(&self, backup_id: &str) -> Option<&BackupEntry> {
        self.backups.iter().find(|b| b.info.backup_id == backup_id)
    }

    /// Fetch and parse a backup's `_metadata`, checking that it is about that backup.
    pub fn metadata(&self, entry: &BackupEntry) -> Result<Metadata> {
        let id = &entry.info.backup_id;
        let name = entry.metadata_name();
        let bytes = self
            .store
            .get(&name, MAX_METADATA_BYTES as u64)
            .map_err(|e| in_backup(id, e))?
            .ok_or_else(|| in_backup(id, Error::corrupt(format!("object {name} is missing"))))?;
        let meta = Metadata::parse(&bytes).map_err(|e| in_backup(id, e))?;
        if meta.backup_id != *id || meta.volume_id != entry.info.volume_id {
            return Err(in_backup(
                id,
                CinderError::Chain(format!(
                    "{name} describes backup {} of volume {}, not what its name says",
                    meta.backup_id, meta.volume_id
                )),
            ));
        }
        Ok(meta)
    }

    /// The backup and its parents, full backup first. A parent is looked for among the backups
    /// of the same volume in this store.
    pub fn chain(&self, backup_id: &str) -> Result<Vec<(BackupEntry, Metadata)>> {
        let entry = self
            .find(backup_id)
            .ok_or_else(|| Error::usage(format!("no cinder backup {backup_id} in {}", self.store.describe())))?;
        let mut chain = vec![(entry.clone(), self.metadata(entry)?)];
        while let Some(parent) = chain.last().and_then(|(_, m)| m.parent_id.clone()) {
            if chain.len() >= super::assemble::MAX_CHAIN {
                return Err(in_backup(
                    backup_id,
                    CinderError::Limit {
                        what: "backup chain length",
                        value: chain.len() as u64 + 1,
                        limit: super::assemble::MAX_CHAIN as u64,
                    },
                ));
            }
            if chain.iter().any(|(e, _)| e.info.backup_id == parent) {
                return Err(in_backup(
                    backup_id,
                    CinderError::Chain(format!("parent {parent} appears twice (a loop)")),
                ));
            }
            let child = &chain.last().expect("non-empty").0;
            let found =
                self.backups.iter().find(|b| b.info.backup_id == parent && b.info.volume_id == child.info.volume_id);
            let Some(p) = found else {
                return Err(in_backup(
                    backup_id,
                    CinderError::Chain(format!(
                        "parent backup {parent} of {} is missing from {}",
                        child.info.backup_id,
                        self.store.describe()
                    )),
                ));
            };
            chain.push((p.clone(), self.metadata(p)?));
        }
        chain.reverse();
        Ok(chain)
    }

    /// A reader of the reassembled volume of `backup_id` with a chunk cache of `cache_bytes`.
    pub fn open(&self, backup_id: &str, cache_bytes: u64) -> Result<BackupReader> {
        let chain = self.chain(backup_id)?;
        let metas: Vec<&Metadata> = chain.iter().map(|(_, m)| m).collect();
        let map = ExtentMap::build(&metas).map_err(|e| in_backup(backup_id, e))?;
        let metas = metas.len();
        let items = (cache_bytes / (1 << 20)).clamp(4, 1 << 16) as usize;
        Ok(BackupReader {
            shared: Arc::new(Shared {
                store: self.store.clone(),
                backup_id: backup_id.to_string(),
                chain,
                map,
                cache: quick_cache::sync::Cache::with_weighter(items, cache_bytes.max(1), Bytes),
                shas: (0..metas).map(|_| OnceLock::new()).collect(),
            }),
            next_miss: AtomicUsize::new(usize::MAX),
            inflight: Arc::new(AtomicUsize::new(0)),
            prefetch: (cache_bytes / PREFETCH_BUDGET_SHARE).max(1),
        })
    }
}

#[derive(Clone)]
struct Bytes;

impl Weighter<(usize, usize), Arc<[u8]>> for Bytes {
    fn weight(&self, _key: &(usize, usize), val: &Arc<[u8]>) -> u64 {
        val.len() as u64
    }
}

/// Objects fetched ahead of a sequential reader, at most (and fewer when objects are large:
/// what is fetched ahead may take at most a quarter of the chunk cache).
const PREFETCH: usize = 4;
/// The share of the chunk cache prefetched objects may fill (1/4).
const PREFETCH_BUDGET_SHARE: u64 = 4;

/// The reassembled volume of one backup (full backup plus its incrementals), read in place.
///
/// A reader that misses the cache on consecutive objects is streaming: the next objects are
/// then fetched (and decompressed and checked) ahead on background threads, so the network and
/// the decompression overlap the reader's own work.
pub struct BackupReader {
    shared: Arc<Shared>,
    /// The extent whose cache miss would continue a sequential run (`usize::MAX`: none yet).
    next_miss: AtomicUsize,
    /// Prefetches running now.
    inflight: Arc<AtomicUsize>,
    /// Bytes that may be fetched ahead.
    prefetch: u64,
}

/// What the reader and its prefetch threads share.
struct Shared {
    store: Arc<dyn ObjectStore>,
    backup_id: String,
    chain: Vec<(BackupEntry, Metadata)>,
    map: ExtentMap,
    cache: quick_cache::sync::Cache<(usize, usize), Arc<[u8]>, Bytes>,
    /// Each chain member's `_sha256file`, fetched when its first object is.
    shas: Vec<OnceLock<std::result::Result<Arc<Sha256File>, Error>>>,
}

impl BackupReader {
    /// The volume size in bytes.
    pub fn size(&self) -> u64 {
        self.shared.map.size()
    }

    /// The backup this reader shows.
    pub fn backup_id(&self) -> &str {
        &self.shared.backup_id
    }

    /// The chain read, full backup first (the last entry is this backup).
    pub fn chain(&self) -> &[(BackupEntry, Metadata)] {
        &self.shared.chain
    }

    /// The extent map of the volume.
    pub fn map(&self) -> &ExtentMap {
        &self.shared.map
    }

    /// The uncompressed, md5- and sha256-checked bytes of one object (cached, or fetched now).
    pub fn object(&self, src: Source) -> Result<Arc<[u8]>> {
        self.shared.object(src)
    }

    /// The `_sha256file` of chain member `b`.
    pub fn sha256file(&self, b: usize) -> Result<Arc<Sha256File>> {
        self.shared.sha256file(b)
    }

    /// A cache miss on extent `i`: when it continues a run of misses on consecutive extents,
    /// fetch the next objects ahead.
    fn missed(&self, i: usize) {
        let sequential = self.next_miss.swap(i + 1, Ordering::Relaxed) == i;
        if !sequential {
            return;
        }
        let extents = self.shared.map.extents();
        let mut budget = self.prefetch;
        for ext in extents.iter().skip(i + 1).take(PREFETCH) {
            let Some(src) = ext.source else { continue };
            let len = self.shared.chain[src.backup].1.objects[src.object].length;
            if len > budget || self.inflight.load(Ordering::Relaxed) >= PREFETCH {
                break;
            }
            budget -= len;
            if self.shared.cache.contains_key(&(src.backup, src.object)) {
                continue;
            }
            self.inflight.fetch_add(1, Ordering::Relaxed);
            let (shared, inflight) = (self.shared.clone(), self.inflight.clone());
            let spawned = std::thread::Builder::new().name("backup-prefetch".into()).spawn(move || {
                // a failure is not reported here: the read that needs the object fetches it
                // again and reports it
                let _ = shared.object(src);
                inflight.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                self.inflight.fetch_sub(1, Ordering::Relaxed);
                break;
            }
        }
    }

    /// Fill `buf` with the volume bytes at `offset`; a range outside [`Self::size`] is a
    /// [`crate::ErrorKind::Corrupt`] error, as for every [`crate::io::ReadAt`] layer.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size()) {
            // the layer contract: a read outside the volume is Corrupt (data promised, not there)
            return Err(crate::io::past_end(
                &format!("cinder backup {}", self.shared.backup_id),
                offset,
                buf.len(),
                self.size(),
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let i = self.shared.map.lookup_index(pos).expect("pos < size has an extent");
            let ext = self.shared.map.extents()[i];
            let n = (ext.end - pos).min((buf.len() - done) as u64) as usize;
            let out = &mut buf[done..done + n];
            match ext.source {
                None => out.fill(0),
                Some(src) => {
                    let data = match self.shared.cache.get(&(src.backup, src.object)) {
                        Some(d) => d,
                        None => {
                            self.missed(i);
                            self.shared.object(src)?
                        }
                    };
                    let obj = &self.shared.chain[src.backup].1.objects[src.object];
                    let at = (pos - obj.offset) as usize;
                    out.copy_from_slice(&data[at..at + n]);
                }
            }
            done += n;
        }
        Ok(())
    }
}

impl Shared {
    fn object(&self, src: Source) -> Result<Arc<[u8]>> {
        self.cache.get_or_insert_with(&(src.backup, src.object), || self.fetch(src))
    }

    fn fetch(&self, src: Source) -> Result<Arc<[u8]>> {
        let (entry, meta) = &self.chain[src.backup];
        let obj = &meta.objects[src.object];
        let ctx = |e: Error| e.context(format!("cinder backup {}", entry.info.backup_id));
        if !names::is_chunk_of(&obj.name, &entry.prefix) && !names::is_chunk_of(&obj.name, base_name(&entry.prefix)) {
            return Err(ctx(Error::corrupt(format!(
                "object {} is not named like a chunk of {}",
                obj.name, entry.prefix
            ))));
        }
        let name = object_path(&entry.prefix, &obj.name);
        // cinder stores an object uncompressed when compressing did not shrink it, so no
        // stored object is longer than its data
        let stored = self
            .store
            .get(&name, obj.length)
            .map_err(ctx)?
            .ok_or_else(|| ctx(Error::corrupt(format!("object {} is missing", obj.name))))?;
        let data = chunks::unpack(obj, stored).map_err(|e| ctx(e.into()))?;
        self.check_digests(src.backup, obj, &data).map_err(ctx)?;
        Ok(data.into())
    }

    /// The `_sha256file` of chain member `b` (fetched once; a failure is kept and repeated).
    fn sha256file(&self, b: usize) -> Result<Arc<Sha256File>> {
        let (entry, meta) = &self.chain[b];
        self.shas[b]
            .get_or_init(|| {
                let name = entry.sha256_name();
                let bytes = self
                    .store
                    .get(&name, MAX_SHA256FILE_BYTES as u64)?
                    .ok_or_else(|| Error::corrupt(format!("object {name} is missing")))?;
                let shas = Sha256File::parse(&bytes)?;
                if shas.backup_id != meta.backup_id {
                    return Err(CinderError::Chain(format!("{name} is about backup {}", shas.backup_id)).into());
                }
                Ok(Arc::new(shas))
            })
            .clone()
    }

    /// Check the uncompressed bytes of object `obj` of chain member `b` against that backup's
    /// `_sha256file`: every hash block the object holds whole (cinder aligns objects to hash
    /// blocks; a block reaching past the object is checked by the object holding its end).
    fn check_digests(&self, b: usize, obj: &super::metadata::ObjectEntry, data: &[u8]) -> Result<()> {
        let shas = self.sha256file(b)?;
        let cs = shas.chunk_size;
        let end = obj.offset + data.len() as u64;
        let mut block = obj.offset.div_ceil(cs);
        while block * cs < end {
            let start = block * cs;
            let stop = (start + cs).min(end);
            let whole = stop - start == cs || stop >= self.map.size();
            let want = shas.sha256s.get(block as usize);
            match want {
                Some(want) if whole => {
                    let piece = &data[(start - obj.offset) as usize..(stop - obj.offset) as usize];
                    let got: [u8; 32] = Sha256::digest(piece).into();
                    if got != *want {
                        return Err(CinderError::Sha256 { block, offset: start, end: stop }.into());
                    }
                }
                Some(_) => {}
                None => {
                    return Err(CinderError::BadField {
                        file: "sha256file",
                        field: "sha256s".into(),
                        value: format!("{} digests", shas.sha256s.len()),
                        why: "fewer than the objects of the backup need",
                    }
                    .into());
                }
            }
            block += 1;
        }
        Ok(())
    }
}

/// The last path component of a prefix (posix objects are named without their directories in
/// the metadata).
fn base_name(prefix: &str) -> &str {
    prefix.rsplit('/').next().unwrap_or(prefix)
}

/// The store name of a chunk object listed in the metadata as `name`, for a backup whose
/// prefix is `prefix`: posix metadata names objects by file name alone (they live in the
/// backup's directory); Swift/S3 metadata names them by their full name.
pub fn object_path(prefix: &str, name: &str) -> String {
    if name.starts_with(prefix) {
        return name.to_string();
    }
    match prefix.rfind('/') {
        Some(i) => format!("{}{name}", &prefix[..=i]),
        None => name.to_string(),
    }
}

/// The reassembled volume is a layer like any other: what it holds (usually LUKS) is probed and
/// read through this.
impl crate::io::ReadAt for BackupReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        BackupReader::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> u64 {
        BackupReader::size(self)
    }
}
