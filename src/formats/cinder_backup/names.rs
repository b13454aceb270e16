//! Object names of a backup: the prefix and what it tells (volume id, timestamp, backup id), and
//! which objects belong to a prefix.
//!
//! posix/NFS (`drivers/posix.py`): `volume_<volume id>_<YYYYmmddHHMMSS>_backup_<backup id>` in
//! the directory `<backup_posix_path>/<id[0:2]>/<id[2:4]>/<backup id>/`.
//! Swift and S3 (`drivers/swift.py`, `s3.py`): `volume_<volume id>/<YYYYmmddHHMMSS>/az_<az>_backup_<backup id>`.
//! Objects: `<prefix>-00001`, … (`'%s-%05d'`), `<prefix>_metadata`, `<prefix>_sha256file`.

/// Suffix of the metadata object.
pub const METADATA_SUFFIX: &str = "_metadata";
/// Suffix of the sha256 object.
pub const SHA256_SUFFIX: &str = "_sha256file";

/// What a backup's object-name prefix says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    pub volume_id: String,
    /// `YYYYmmddHHMMSS` (UTC) when the backup started.
    pub timestamp: String,
    pub backup_id: String,
    /// The availability zone (Swift/S3 prefixes only).
    pub az: Option<String>,
}

fn is_timestamp(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parse the last path component of a prefix in either driver's form; `None` for other names.
pub fn parse_prefix(prefix: &str) -> Option<PrefixInfo> {
    let parts: Vec<&str> = prefix.rsplitn(3, '/').collect();
    // Swift/S3: [.. , "volume_<vol>", "<ts>", "az_<az>_backup_<id>"] (rsplitn gives them reversed)
    if parts.len() == 3
        && let Some(vol) = parts[2].rsplit('/').next().and_then(|v| v.strip_prefix("volume_"))
        && is_timestamp(parts[1])
        && let Some(rest) = parts[0].strip_prefix("az_")
        && let Some((az, id)) = rest.rsplit_once("_backup_")
        && !vol.is_empty()
        && !id.is_empty()
    {
        return Some(PrefixInfo {
            volume_id: vol.to_string(),
            timestamp: parts[1].to_string(),
            backup_id: id.to_string(),
            az: Some(az.to_string()),
        });
    }
    let base = prefix.rsplit('/').next()?;
    let rest = base.strip_prefix("volume_")?;
    let (head, id) = rest.rsplit_once("_backup_")?;
    let (vol, ts) = head.rsplit_once('_')?;
    (is_timestamp(ts) && !vol.is_empty() && !id.is_empty()).then(|| PrefixInfo {
        volume_id: vol.to_string(),
        timestamp: ts.to_string(),
        backup_id: id.to_string(),
        az: None,
    })
}

/// Is `name` a chunk object of `prefix` (`<prefix>-` and at least five digits)?
pub fn is_chunk_of(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|n| n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOL: &str = "a3e0c773-7d21-4c22-a5a2-4a771925cdf2";
    const BK: &str = "0756cfaf-b958-478c-b0fe-e13a0bddc8d1";

    #[test]
    fn posix_and_object_store_prefixes() {
        let p = format!("07/56/{BK}/volume_{VOL}_20261206160422_backup_{BK}");
        let i = parse_prefix(&p).unwrap();
        assert_eq!((i.volume_id.as_str(), i.timestamp.as_str(), i.backup_id.as_str()), (VOL, "20261206160422", BK));
        assert_eq!(i.az, None);
        let s = format!("volume_{VOL}/20261206160422/az_nova_backup_{BK}");
        let i = parse_prefix(&s).unwrap();
        assert_eq!((i.volume_id.as_str(), i.backup_id.as_str(), i.az.as_deref()), (VOL, BK, Some("nova")));
        assert!(parse_prefix("volume_x_2026_backup_y").is_none());
        assert!(parse_prefix("something-else").is_none());
        assert!(is_chunk_of(&format!("{p}-00001"), &p));
        assert!(is_chunk_of(&format!("{p}-123456"), &p));
        assert!(!is_chunk_of(&format!("{p}-1"), &p));
        assert!(!is_chunk_of(&format!("{p}_metadata"), &p));
    }
}
