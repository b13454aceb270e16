//! The reassembled volume as an extent map: the full backup's objects, then each incremental of
//! the parent chain laid over them in order (a later object wins where they overlap), the way
//! `ChunkedBackupDriver.restore` writes them one after the other into the new volume.
//!
//! The volume's size is the end of the full backup's last object: a full backup reads the volume
//! to its end, and cinder refuses an incremental of a volume that grew. Volume bytes no object
//! holds read as zeros, as they do after cinder's restore into a new volume (which writes only
//! the non-zero parts of the base backup).

use super::CinderError;
use super::metadata::Metadata;
use std::collections::BTreeMap;

/// Longest parent chain accepted (the full backup and its incrementals).
pub const MAX_CHAIN: usize = 1000;

/// Which object holds a volume range: `(backup, object)` indexes into the chain and into that
/// backup's [`Metadata::objects`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub backup: usize,
    pub object: usize,
}

/// A maximal volume range `[start, end)` held by one object (or by none: zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub source: Option<Source>,
}

/// The reassembled volume: sorted, non-overlapping extents covering `[0, size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentMap {
    size: u64,
    extents: Vec<Extent>,
}

/// Check that `chain` (full backup first) links up: each backup's `parent_id` is the previous
/// one's `backup_id`, all are of one volume, and only the first is a full backup.
pub fn check_chain(chain: &[&Metadata]) -> Result<(), CinderError> {
    let Some(first) = chain.first() else {
        return Err(CinderError::Chain("no backups".into()));
    };
    if chain.len() > MAX_CHAIN {
        return Err(CinderError::Limit {
            what: "backup chain length",
            value: chain.len() as u64,
            limit: MAX_CHAIN as u64,
        });
    }
    if let Some(p) = &first.parent_id {
        return Err(CinderError::Chain(format!(
            "backup {} is incremental (parent {p}) but starts the chain",
            first.backup_id
        )));
    }
    for w in chain.windows(2) {
        if w[1].parent_id.as_deref() != Some(w[0].backup_id.as_str()) {
            return Err(CinderError::Chain(format!(
                "backup {} has parent {:?}, not {}",
                w[1].backup_id, w[1].parent_id, w[0].backup_id
            )));
        }
        if w[1].volume_id != w[0].volume_id {
            return Err(CinderError::Chain(format!(
                "backup {} is of volume {}, its parent {} of volume {}",
                w[1].backup_id, w[1].volume_id, w[0].backup_id, w[0].volume_id
            )));
        }
    }
    Ok(())
}

impl ExtentMap {
    /// Lay the objects of `chain` (full backup first, see [`check_chain`]) over each other.
    pub fn build(chain: &[&Metadata]) -> Result<ExtentMap, CinderError> {
        check_chain(chain)?;
        let size = chain[0].extent_end();
        // start → (end, source); invariant: disjoint
        let mut map: BTreeMap<u64, (u64, Source)> = BTreeMap::new();
        for (b, meta) in chain.iter().enumerate() {
            for (o, obj) in meta.objects.iter().enumerate() {
                let (start, end) = (obj.offset, obj.end());
                if end > size {
                    return Err(CinderError::Chain(format!(
                        "object {} of backup {} ends at volume byte {end}, past the end {size} of the full backup",
                        obj.name, meta.backup_id
                    )));
                }
                // cut back the extent that starts before `start` and reaches into it
                if let Some((&s, &(e, src))) = map.range(..start).next_back()
                    && e > start
                {
                    map.insert(s, (start, src));
                    if e > end {
                        map.insert(end, (e, src));
                    }
                }
                // drop or trim extents starting inside [start, end)
                let inside: Vec<u64> = map.range(start..end).map(|(&s, _)| s).collect();
                for s in inside {
                    let (e, src) = map.remove(&s).expect("key just listed");
                    if e > end {
                        map.insert(end, (e, src));
                    }
                }
                map.insert(start, (end, Source { backup: b, object: o }));
            }
        }
        let mut extents = Vec::with_capacity(map.len() + 1);
        let mut at = 0u64;
        for (s, (e, src)) in map {
            if s > at {
                extents.push(Extent { start: at, end: s, source: None });
            }
            extents.push(Extent { start: s, end: e, source: Some(src) });
            at = e;
        }
        if at < size {
            extents.push(Extent { start: at, end: size, source: None });
        }
        Ok(ExtentMap { size, extents })
    }

    /// The volume size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All extents in volume order.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The extent holding volume byte `offset` (`None` at or past the end).
    pub fn lookup(&self, offset: u64) -> Option<&Extent> {
        self.lookup_index(offset).and_then(|i| self.extents.get(i))
    }

    /// The index in [`Self::extents`] of the extent holding volume byte `offset`.
    pub fn lookup_index(&self, offset: u64) -> Option<usize> {
        if offset >= self.size {
            return None;
        }
        Some(self.extents.partition_point(|e| e.end <= offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::cinder_backup::metadata::{Compression, ObjectEntry};

    fn meta(id: &str, parent: Option<&str>, objs: &[(u64, u64)]) -> Metadata {
        Metadata {
            backup_id: id.into(),
            volume_id: "v".into(),
            parent_id: parent.map(str::to_string),
            backup_name: None,
            backup_description: None,
            created_at: None,
            objects: objs
                .iter()
                .enumerate()
                .map(|(i, &(offset, length))| ObjectEntry {
                    name: format!("{id}-{i:05}"),
                    offset,
                    length,
                    compression: Compression::None,
                    md5: [0; 16],
                })
                .collect(),
            encryption_key_id: None,
            volume_meta_problem: None,
        }
    }

    fn src(b: usize, o: usize) -> Option<Source> {
        Some(Source { backup: b, object: o })
    }

    #[test]
    fn later_objects_win_and_holes_are_zero() {
        let full = meta("f", None, &[(0, 100), (100, 100), (300, 100)]);
        let inc1 = meta("i1", Some("f"), &[(50, 100), (350, 10)]);
        let inc2 = meta("i2", Some("i1"), &[(60, 10), (200, 50)]);
        let m = ExtentMap::build(&[&full, &inc1, &inc2]).unwrap();
        let got: Vec<(u64, u64, Option<Source>)> = m.extents().iter().map(|e| (e.start, e.end, e.source)).collect();
        assert_eq!(
            got,
            vec![
                (0, 50, src(0, 0)),
                (50, 60, src(1, 0)),
                (60, 70, src(2, 0)),
                (70, 150, src(1, 0)),
                (150, 200, src(0, 1)),
                (200, 250, src(2, 1)),
                (250, 300, None),
                (300, 350, src(0, 2)),
                (350, 360, src(1, 1)),
                (360, 400, src(0, 2)),
            ]
        );
        assert_eq!(m.size(), 400);
        assert_eq!(m.lookup(0).unwrap().start, 0);
        assert_eq!(m.lookup(149).unwrap().start, 70);
        assert_eq!(m.lookup(399).unwrap().end, 400);
        assert!(m.lookup(400).is_none());
    }

    #[test]
    fn refuses_broken_chains() {
        let full = meta("f", None, &[(0, 100)]);
        let orphan = meta("i", Some("x"), &[(0, 10)]);
        assert!(ExtentMap::build(&[&full, &orphan]).is_err());
        assert!(ExtentMap::build(&[&orphan]).is_err());
        let past = meta("i", Some("f"), &[(90, 20)]);
        assert!(ExtentMap::build(&[&full, &past]).unwrap_err().to_string().contains("past the end"));
        let mut other = meta("i", Some("f"), &[(0, 10)]);
        other.volume_id = "w".into();
        assert!(ExtentMap::build(&[&full, &other]).is_err());
        assert!(ExtentMap::build(&[]).is_err());
    }
}
