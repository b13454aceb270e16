//! End-to-end check of one backup without writing anything: the objects in the store are exactly
//! those each metadata lists (as cinder's restore demands), every object of the chain fetches,
//! decompresses to its length and matches its md5, and the reassembled volume matches every
//! digest of the backup's `_sha256file`.

use super::metadata::Metadata;
use super::reader::{BackupEntry, Catalog, object_path};
use super::sha256file::{MAX_SHA256FILE_BYTES, Sha256File};
use super::{CinderError, names};
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Bytes read per step while hashing the volume (rounded to whole hash blocks).
const STEP: u64 = 4 << 20;

/// What [`verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub backup_id: String,
    /// Backup ids of the chain, full backup first.
    pub chain: Vec<String>,
    /// Volume size in bytes.
    pub size: u64,
    /// Objects fetched and md5-checked (over the whole chain).
    pub objects: usize,
    /// `_sha256file` blocks compared.
    pub blocks: u64,
}

fn ctx(id: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| e.context(format!("cinder backup {id}"))
}

/// Check that the store holds exactly the chunk objects the metadata of each chain member lists.
pub fn check_listing(catalog: &Catalog, chain: &[(BackupEntry, Metadata)]) -> Result<()> {
    for (entry, meta) in chain {
        let id = &entry.info.backup_id;
        let listed: BTreeSet<String> =
            catalog.store().list(&entry.prefix)?.into_iter().filter(|n| names::is_chunk_of(n, &entry.prefix)).collect();
        let wanted: BTreeSet<String> = meta.objects.iter().map(|o| object_path(&entry.prefix, &o.name)).collect();
        if let Some(missing) = wanted.difference(&listed).next() {
            return Err(ctx(id)(Error::corrupt(format!("object {missing} is missing"))));
        }
        if let Some(extra) = listed.difference(&wanted).next() {
            return Err(ctx(id)(Error::corrupt(format!("object {extra} is not listed in the metadata"))));
        }
    }
    Ok(())
}

/// Verify backup `backup_id` of `catalog` end to end (see the module docs).
pub fn verify(catalog: &Catalog, backup_id: &str, cache_bytes: u64) -> Result<VerifyReport> {
    let reader = catalog.open(backup_id, cache_bytes)?;
    check_listing(catalog, reader.chain())?;
    let mut objects = 0usize;
    for (b, (_, meta)) in reader.chain().iter().enumerate() {
        for o in 0..meta.objects.len() {
            reader.object(super::assemble::Source { backup: b, object: o })?;
            objects += 1;
        }
    }
    let (top, top_meta) = reader.chain().last().expect("a chain is never empty");
    let name = top.sha256_name();
    let bytes = catalog
        .store()
        .get(&name, MAX_SHA256FILE_BYTES as u64)?
        .ok_or_else(|| ctx(backup_id)(Error::corrupt(format!("object {name} is missing"))))?;
    let shas = Sha256File::parse(&bytes).map_err(|e| ctx(backup_id)(e.into()))?;
    if shas.backup_id != top_meta.backup_id {
        return Err(ctx(backup_id)(CinderError::Chain(format!("{name} is about backup {}", shas.backup_id)).into()));
    }
    shas.check_covers(reader.size()).map_err(|e| ctx(backup_id)(e.into()))?;
    let cs = shas.chunk_size;
    let step = (STEP / cs).max(1) * cs;
    let mut buf = vec![0u8; step.min(reader.size()) as usize];
    let mut off = 0u64;
    let mut block = 0u64;
    while off < reader.size() {
        let n = step.min(reader.size() - off) as usize;
        reader.read_exact_at(&mut buf[..n], off)?;
        for piece in buf[..n].chunks(cs as usize) {
            let got: [u8; 32] = Sha256::digest(piece).into();
            if got != shas.sha256s[block as usize] {
                let start = block * cs;
                return Err(ctx(backup_id)(
                    CinderError::Sha256 { block, offset: start, end: start + piece.len() as u64 }.into(),
                ));
            }
            block += 1;
        }
        off += n as u64;
    }
    Ok(VerifyReport {
        backup_id: backup_id.to_string(),
        chain: reader.chain().iter().map(|(e, _)| e.info.backup_id.clone()).collect(),
        size: reader.size(),
        objects,
        blocks: block,
    })
}
