//! One Cinder backup as an image of a source: the name it is shown under, its time, the key id
//! its metadata records, and the reader of its reassembled volume.

use crate::Result;
use crate::formats::cinder_backup::reader::ObjectChecks;
use crate::formats::cinder_backup::{BackupEntry, Catalog};
use crate::io::ReadAt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A backup of a [`Catalog`] (the catalog is shared: parents are found in it).
#[derive(Clone)]
pub struct BackupItem {
    pub catalog: Arc<Catalog>,
    pub entry: BackupEntry,
}

impl BackupItem {
    /// The name it is shown under: `volume_<volume id>_<YYYYmmddHHMMSS>_backup_<backup id>` (the
    /// posix driver's own prefix, so a person sees volume, time and backup at once; Swift/S3
    /// prefixes say the same with `/` and the availability zone).
    pub fn display_name(&self) -> String {
        let i = &self.entry.info;
        format!("volume_{}_{}_backup_{}", i.volume_id, i.timestamp, i.backup_id)
    }

    /// When the backup started (from its name; cinder writes UTC).
    pub fn time(&self) -> Option<SystemTime> {
        timestamp_time(&self.entry.info.timestamp)
    }

    /// The reassembled volume (full backup plus incrementals), read in place.
    pub fn open(&self, cache_bytes: u64, checks: ObjectChecks) -> Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(self.catalog.open_with(&self.entry.info.backup_id, cache_bytes, checks)?))
    }

    /// What the backup is, for `inspect` and `verify` (fetches the metadata of its chain):
    /// `encryption_key_id` is the one in its `volume_meta`; `key_id`, `key_id_source`
    /// (`cinder-api`, `volume-meta`) and `key_id_reason` say which Barbican key was used and why
    /// (null when the key was not taken from Barbican).
    pub fn facts(&self) -> Result<serde_json::Value> {
        let id = &self.entry.info.backup_id;
        let chain = self.catalog.chain(id)?;
        // the key id used, when one was chosen for Barbican (keys::cinder)
        let chosen = crate::keys::cinder::chosen(id);
        Ok(serde_json::json!({
            "id": id,
            "volume_id": self.entry.info.volume_id,
            "timestamp": self.entry.info.timestamp,
            "availability_zone": self.entry.info.az,
            "store": self.catalog.store().describe(),
            "prefix": self.entry.prefix,
            "chain": chain.iter().map(|(e, _)| e.info.backup_id.clone()).collect::<Vec<_>>(),
            "objects": chain.iter().map(|(_, m)| m.objects.len()).sum::<usize>(),
            "encryption_key_id": chain.last().and_then(|(_, m)| m.encryption_key_id.clone()),
            "key_id": chosen.as_ref().and_then(|c| c.id.clone()),
            "key_id_source": chosen.as_ref().map(|c| c.source.name()),
            "key_id_reason": chosen.as_ref().map(|c| c.why.clone()),
        }))
    }

    /// The Barbican id of the key of the volume the backup was made from (`volume_meta`'s
    /// `encryption_key_id`), if its metadata records one.
    pub fn key_id(&self) -> Result<Option<String>> {
        Ok(self.catalog.metadata(&self.entry)?.encryption_key_id)
    }
}

/// `YYYYmmddHHMMSS` (UTC) as a time.
pub fn timestamp_time(ts: &str) -> Option<SystemTime> {
    if ts.len() != 14 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (n(0..4)?, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = crate::civil::unix_seconds(y, m, d, hh, mm, ss);
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cinder_timestamps() {
        let t = |s| timestamp_time(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(t("19700101000000"), Some(0));
        assert_eq!(t("20000301000000"), Some(951_868_800));
        assert_eq!(t("20261206184916"), Some(1_796_582_956));
        assert_eq!(t("20261306184916"), None);
        assert_eq!(t("2026120618491"), None);
    }
}
