//! Backups found in an [`ObjectStore`] ([`Catalog`]) and the reassembled volume of one of them
//! read in place ([`BackupReader`]): each object is fetched when a read first touches it, its
//! md5 checked, decompressed once into a bounded cache of chunks, its bytes checked against its
//! backup's `_sha256file`, and copied out from there. A large uncompressed object (a posix
//! backup's are up to 2 GB) is read in pieces by range instead, each piece checked against the
//! `_sha256file` blocks it holds, when that covers every byte of it; `verify` folds the pieces
//! into the object's md5 in order as they come ([`super::md5s`]) and completes the md5s with
//! [`BackupReader::check_md5s`] once the volume has been read.
//! A missing object, a bad md5, corrupt compressed data or a missing parent fails the read with
//! an error naming the backup, the object and the reason: never wrong bytes.

use super::assemble::{ExtentMap, Source};
use super::md5s::Md5s;
use super::metadata::{MAX_METADATA_BYTES, Metadata};
use super::names::{self, METADATA_SUFFIX, PrefixInfo};
use super::sha256file::{MAX_SHA256FILE_BYTES, Sha256File};
use super::{CinderError, chunks};
use crate::source::ObjectStore;
use crate::{Error, Result};
use quick_cache::Weighter;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// An object's uncompressed bytes, shared by the cache and its readers (a `Vec` in an `Arc`:
/// no copy after decompression).
pub type Data = Arc<Vec<u8>>;

/// What the cache holds: a chain member's object, and which piece of it (0 for a whole object).
type Key = (usize, usize, u64);

/// The size of the pieces a large uncompressed object is read in, by range (a multiple of
/// every `_sha256file` block size cinder uses).
pub const PIECE_BYTES: u64 = 8 << 20;

/// What each fetched object is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectChecks {
    /// Its backup's `_sha256file` blocks; its md5 only when those do not cover all of its bytes
    /// (mounts, `cat`: the same guarantee, one digest pass instead of two).
    Digests,
    /// Its md5 and its backup's `_sha256file` blocks (`verify`, and the default). The md5s are
    /// made beside the reads: [`BackupReader::check_md5s`] gives their verdict.
    All,
}

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

    /// A reader of the reassembled volume of `backup_id` with a chunk cache of `cache_bytes`,
    /// checking every object it fetches against its md5 and the `_sha256file`.
    pub fn open(&self, backup_id: &str, cache_bytes: u64) -> Result<BackupReader> {
        self.open_with(backup_id, cache_bytes, ObjectChecks::All)
    }

    /// [`Self::open`], with the checks of each fetched object chosen.
    pub fn open_with(&self, backup_id: &str, cache_bytes: u64, checks: ObjectChecks) -> Result<BackupReader> {
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
                cache: object_cache(items, cache_bytes),
                last: Mutex::new(None),
                checks,
                shas: (0..metas).map(|_| OnceLock::new()).collect(),
                piece: PIECE_BYTES,
                md5s: Md5s::default(),
            }),
            next_piece: Mutex::new(None),
            inflight: Arc::new(AtomicUsize::new(0)),
            prefetch: (cache_bytes / PREFETCH_BUDGET_SHARE).max(1),
        })
    }
}

/// The cache of decompressed objects: one shard and all of it for "hot" items, since objects
/// are few and large (50 MiB is cinder's Swift default): split into per-core shards, or with
/// quick_cache's default 3% kept for new items, an object larger than a shard's part would
/// never be kept at all, and every read would fetch its whole object again.
fn object_cache(items: usize, bytes: u64) -> quick_cache::sync::Cache<Key, Data, Bytes> {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(items)
        .weight_capacity(bytes.max(1))
        .shards(1)
        .hot_allocation(0.5)
        .build()
        .expect("valid cache options");
    quick_cache::sync::Cache::with_options(options, Bytes, Default::default(), Default::default())
}

#[derive(Clone)]
struct Bytes;

impl Weighter<Key, Data> for Bytes {
    fn weight(&self, _key: &Key, val: &Data) -> u64 {
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
/// A reader that reads on into the next piece (object, or piece of a large one) is streaming:
/// the pieces after it are then fetched (and decompressed and checked) ahead on background
/// threads, a window that moves on with the reader, so the network, the decompression and the
/// digests overlap the reader's own work.
pub struct BackupReader {
    shared: Arc<Shared>,
    /// The piece whose read would continue a sequential run.
    next_piece: Mutex<Option<Key>>,
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
    cache: quick_cache::sync::Cache<Key, Data, Bytes>,
    /// The piece fetched last, kept even when the cache cannot hold it (a compressed object is
    /// one piece, and can be large): sequential reads within it fetch it once.
    last: Mutex<Option<(Key, Data)>>,
    checks: ObjectChecks,
    /// Each chain member's `_sha256file`, fetched when its first object is.
    shas: Vec<OnceLock<std::result::Result<Arc<Sha256File>, Error>>>,
    /// The piece size of large uncompressed objects ([`PIECE_BYTES`]).
    piece: u64,
    /// The md5s of objects read in pieces, under [`ObjectChecks::All`].
    md5s: Md5s,
}

/// One piece of an object, where the volume holds it.
#[derive(Clone, Copy, Debug)]
struct Unit {
    key: Key,
    src: Source,
    /// The piece's first byte, in the object.
    start: u64,
    len: u64,
}

impl BackupReader {
    /// The volume size in bytes.
    pub fn size(&self) -> u64 {
        self.shared.map.size()
    }

    /// Read large uncompressed objects in pieces of `bytes` (default [`PIECE_BYTES`]); a size
    /// that is not a multiple of a backup's `_sha256file` block reads its objects whole.
    pub fn with_piece_bytes(mut self, bytes: u64) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.piece = bytes.max(1);
        }
        self
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
    pub fn object(&self, src: Source) -> Result<Data> {
        let data = self.shared.object(src)?;
        if self.shared.checks == ObjectChecks::All {
            self.shared.md5_verdict(src)?;
        }
        Ok(data)
    }

    /// The `_sha256file` of chain member `b`.
    pub fn sha256file(&self, b: usize) -> Result<Arc<Sha256File>> {
        self.shared.sha256file(b)
    }

    /// After a read of the whole volume (`verify`, [`ObjectChecks::All`]): the md5 of every object
    /// of the chain, those no volume byte comes from (replaced by a later incremental) included.
    /// The md5s are made beside the reads, by a thread of their own ([`Md5s`]); here they are
    /// awaited and completed, fetching (in order) only the pieces they still lack. An md5
    /// mismatch is a digest mismatch naming the backup and the object.
    pub fn check_md5s(&self) -> Result<()> {
        if self.shared.checks != ObjectChecks::All {
            return Ok(());
        }
        for (b, (_, meta)) in self.shared.chain.iter().enumerate() {
            for o in 0..meta.objects.len() {
                self.shared.md5_verdict(Source { backup: b, object: o })?;
            }
        }
        Ok(())
    }

    /// A read of `unit` (`miss`: not in the cache). A reader that goes on into the piece after
    /// the one it last entered (fetched ahead, or missed) is streaming: the pieces after it are
    /// fetched ahead, so the window ahead moves on with every piece it enters, and the reader
    /// finds its pieces fetched and checked rather than waiting for them.
    fn entered(&self, unit: &Unit, miss: bool) {
        let (sequential, next) = {
            let mut want = self.next_piece.lock().unwrap_or_else(|e| e.into_inner());
            let sequential = *want == Some(unit.key);
            if !sequential && !miss {
                // a read within a piece already entered
                return;
            }
            let next = self.shared.unit_after(unit);
            *want = next.map(|u| u.key);
            (sequential, next)
        };
        // `verify` (all checks) reads every byte: its first miss starts the window already, so
        // the next pieces are fetched while the first object (read whole, the LUKS header in it)
        // is inflated and checked
        if !sequential && self.shared.checks != ObjectChecks::All {
            return;
        }
        let mut budget = self.prefetch;
        let mut ahead = next;
        for _ in 0..PREFETCH {
            let Some(u) = ahead else { break };
            if u.len > budget || self.inflight.load(Ordering::Relaxed) >= PREFETCH {
                break;
            }
            budget -= u.len;
            ahead = self.shared.unit_after(&u);
            if self.shared.cache.contains_key(&u.key) {
                continue;
            }
            self.inflight.fetch_add(1, Ordering::Relaxed);
            let (shared, inflight) = (self.shared.clone(), self.inflight.clone());
            let spawned = std::thread::Builder::new().name("backup-prefetch".into()).spawn(move || {
                // a failure is not reported here: the read that needs the piece fetches it
                // again and reports it
                let _ = shared.unit(&u);
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
            let n = match ext.source {
                None => {
                    out.fill(0);
                    n
                }
                Some(src) => {
                    let unit = self.shared.unit_at(src, pos)?;
                    let obj = &self.shared.chain[src.backup].1.objects[src.object];
                    let at = pos - obj.offset - unit.start;
                    let n = n.min((unit.len - at) as usize);
                    let data = match self.shared.cached(unit.key) {
                        Some(d) => {
                            self.entered(&unit, false);
                            d
                        }
                        None => {
                            self.entered(&unit, true);
                            self.shared.unit(&unit)?
                        }
                    };
                    let at = at as usize;
                    out[..n].copy_from_slice(&data[at..at + n]);
                    n
                }
            };
            done += n;
        }
        Ok(())
    }
}

impl Shared {
    /// The whole object (cached when it is read whole anyway).
    fn object(&self, src: Source) -> Result<Data> {
        let len = self.chain[src.backup].1.objects[src.object].length;
        let unit = self.unit_at(src, self.chain[src.backup].1.objects[src.object].offset)?;
        if unit.len == len {
            return self.unit(&unit);
        }
        self.fetch(src)
    }

    /// The md5 of object `src`, awaited from the md5 thread and completed by fetching (in order)
    /// the pieces it still lacks; a mismatch is a digest mismatch naming backup and object.
    fn md5_verdict(&self, src: Source) -> Result<()> {
        let (entry, meta) = &self.chain[src.backup];
        let obj = &meta.objects[src.object];
        let piece = |at: u64| {
            let u = self.unit_at(src, obj.offset + at)?;
            Ok((u.start, self.unit(&u)?))
        };
        let verdict = self.md5s.sweep((src.backup, src.object), obj, piece)?;
        verdict.map_err(|e| Error::from(e).context(format!("cinder backup {}", entry.info.backup_id)))
    }

    /// How object `src` is read: whole, or in pieces of `self.piece` when it is large,
    /// uncompressed, and its backup's `_sha256file` blocks cover every byte of every piece
    /// (under [`ObjectChecks::All`] its md5 is then made over the pieces in order).
    fn piece_len(&self, src: Source) -> Result<u64> {
        let obj = &self.chain[src.backup].1.objects[src.object];
        if obj.compression != super::metadata::Compression::None || obj.length <= self.piece {
            return Ok(obj.length);
        }
        let cs = self.sha256file(src.backup)?.chunk_size;
        let aligned = cs > 0
            && self.piece.is_multiple_of(cs)
            && obj.offset.is_multiple_of(cs)
            && (obj.length.is_multiple_of(cs) || obj.offset.saturating_add(obj.length) >= self.map.size());
        Ok(if aligned { self.piece } else { obj.length })
    }

    /// The piece of object `src` that holds volume byte `pos` (within the object).
    fn unit_at(&self, src: Source, pos: u64) -> Result<Unit> {
        let obj = &self.chain[src.backup].1.objects[src.object];
        let piece = self.piece_len(src)?;
        let index = (pos - obj.offset) / piece;
        let start = index * piece;
        Ok(Unit { key: (src.backup, src.object, index), src, start, len: piece.min(obj.length - start) })
    }

    /// The next piece a sequential reader needs after `u` (skipping zeros), if any.
    fn unit_after(&self, u: &Unit) -> Option<Unit> {
        let obj = &self.chain[u.src.backup].1.objects[u.src.object];
        let mut pos = obj.offset + u.start + u.len;
        // a few extents of zeros at most are skipped: the prefetch is a hint
        for _ in 0..8 {
            let ext = self.map.extents()[self.map.lookup_index(pos)?];
            match ext.source {
                Some(src) => return self.unit_at(src, pos).ok(),
                None => pos = ext.end,
            }
        }
        None
    }

    /// The bytes of one piece (cached, or fetched now).
    fn unit(&self, u: &Unit) -> Result<Data> {
        if let Some(data) = self.cached(u.key) {
            return Ok(data);
        }
        let data = self.cache.get_or_insert_with(&u.key, || {
            let obj = &self.chain[u.src.backup].1.objects[u.src.object];
            if u.len == obj.length { self.fetch(u.src) } else { self.fetch_piece(u) }
        })?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((u.key, data.clone()));
        Ok(data)
    }

    /// One piece of a large uncompressed object, read by range and checked against the
    /// `_sha256file` blocks it holds (which cover all of it: see [`Self::piece_len`]).
    fn fetch_piece(&self, u: &Unit) -> Result<Data> {
        let (entry, meta) = &self.chain[u.src.backup];
        let obj = &meta.objects[u.src.object];
        let ctx = |e: Error| e.context(format!("cinder backup {}", entry.info.backup_id));
        self.check_name(entry, &obj.name).map_err(ctx)?;
        log::debug!("cinder backup {}: fetching {} bytes {}+{}", entry.info.backup_id, obj.name, u.start, u.len);
        let name = object_path(&entry.prefix, &obj.name);
        let data = self
            .store
            .get_range(&name, u.start, u.len as usize)
            .map_err(ctx)?
            .ok_or_else(|| ctx(Error::corrupt(format!("object {} is missing", obj.name))))?;
        if data.len() as u64 != u.len {
            return Err(ctx(Error::corrupt(format!(
                "object {}: {} bytes at {} read, {} asked for",
                obj.name,
                data.len(),
                u.start,
                u.len
            ))));
        }
        let in_object = |e: Error| ctx(e.context(format!("object {}", obj.name)));
        if !self.check_digests(u.src.backup, obj.offset + u.start, &data).map_err(in_object)? {
            return Err(ctx(Error::corrupt(format!("object {}: a piece not covered by the _sha256file", obj.name))));
        }
        let data = Arc::new(data);
        if self.checks == ObjectChecks::All {
            self.md5s.feed((u.src.backup, u.src.object), obj, u.start, &data);
        }
        Ok(data)
    }

    /// A chunk object's name must be one of its backup's.
    fn check_name(&self, entry: &BackupEntry, name: &str) -> Result<()> {
        if !names::is_chunk_of(name, &entry.prefix) && !names::is_chunk_of(name, base_name(&entry.prefix)) {
            return Err(Error::corrupt(format!("object {name} is not named like a chunk of {}", entry.prefix)));
        }
        Ok(())
    }

    /// The piece, if the cache or the last-piece slot holds it.
    fn cached(&self, key: Key) -> Option<Data> {
        self.cache.get(&key).or_else(|| {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            last.as_ref().filter(|(k, _)| *k == key).map(|(_, d)| d.clone())
        })
    }

    fn fetch(&self, src: Source) -> Result<Data> {
        let (entry, meta) = &self.chain[src.backup];
        let obj = &meta.objects[src.object];
        log::debug!("cinder backup {}: fetching object {}", entry.info.backup_id, obj.name);
        let ctx = |e: Error| e.context(format!("cinder backup {}", entry.info.backup_id));
        self.check_name(entry, &obj.name).map_err(ctx)?;
        let name = object_path(&entry.prefix, &obj.name);
        // cinder stores an object uncompressed when compressing did not shrink it, so no
        // stored object is longer than its data
        let stored = self
            .store
            .get(&name, obj.length)
            .map_err(ctx)?
            .ok_or_else(|| ctx(Error::corrupt(format!("object {} is missing", obj.name))))?;
        let data = chunks::decompress(obj, stored).map_err(|e| ctx(e.into()))?;
        let in_object = |e: Error| ctx(e.context(format!("object {}", obj.name)));
        let covered = self.check_digests(src.backup, obj.offset, &data).map_err(in_object)?;
        if self.checks == ObjectChecks::Digests && !covered {
            chunks::check_md5(obj, &data).map_err(|e| ctx(e.into()))?;
        }
        let data = Arc::new(data);
        if self.checks == ObjectChecks::All {
            // beside the reads; `check_md5s` has the verdict
            self.md5s.feed((src.backup, src.object), obj, 0, &data);
        }
        Ok(data)
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

    /// Check `data`, uncompressed volume bytes of chain member `b` from volume offset `offset`
    /// (an object, or a piece of one), against that backup's `_sha256file`: every hash block it
    /// holds whole (cinder aligns objects to hash blocks). Returns whether those blocks covered
    /// every byte (when not, a block shared with a neighbouring object was left to the md5).
    fn check_digests(&self, b: usize, offset: u64, data: &[u8]) -> Result<bool> {
        let shas = self.sha256file(b)?;
        let cs = shas.chunk_size;
        let end = offset + data.len() as u64;
        let mut block = offset.div_ceil(cs);
        let mut covered = offset.is_multiple_of(cs);
        while block * cs < end {
            let start = block * cs;
            let stop = (start + cs).min(end);
            let whole = stop - start == cs || stop >= self.map.size();
            let want = shas.sha256s.get(block as usize);
            match want {
                Some(want) if whole => {
                    let piece = &data[(start - offset) as usize..(stop - offset) as usize];
                    let got: [u8; 32] = Sha256::digest(piece).into();
                    if got != *want {
                        return Err(CinderError::Sha256 { block, offset: start, end: stop }.into());
                    }
                }
                Some(_) => covered = false,
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
        Ok(covered)
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
    fn finish_checks(&self) -> Result<()> {
        self.check_md5s()
    }
}
