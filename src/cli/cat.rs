//! `luksfs cat IMAGE [--volume PATH]`: write one volume's decrypted bytes to standard output.

use super::CatArgs;
use crate::image::UnlockSettings;
use crate::volume::tree::UnlockKey;
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

pub(super) fn cat(a: CatArgs) -> Result<i32> {
    let (opts, from_tab) = crate::cli::unlock_one::keytab_line(&a.keytab, &a.image, a.opts.options())?;
    let settings = UnlockSettings { tries: a.prompt.tries, ..a.key.settings()? };
    let item = crate::catalog::resolve_one(&a.image, a.key.os_cloud.as_deref())?;
    let src = item.open()?;
    let tree = ImageTree::on(src, &item.path, Path::new(""), &opts, Limits::default());
    // One key for every encrypted volume on the way, asked for once (and only if needed).
    // (a keytab line or --barbican-secret wins: Cinder is not asked then)
    let backup_key = match (&a.barbican_secret, &from_tab) {
        (None, None) => crate::cli::unlock_one::backup_key_id(&item, &a.key),
        _ => None,
    };
    let secret = a.barbican_secret.as_deref().or(backup_key.as_deref());
    let keys = crate::cli::unlock_one::ImageKey::new(&a.image, &a.key, from_tab, secret, &opts);
    let vol = match select_volume(&tree, a.volume.as_deref(), &|v| keys.key_for(v), settings) {
        Ok(v) => v,
        Err(e) => {
            if let Some(missing) = keys.missing() {
                return Err(missing.with_path(&a.image));
            }
            let Some(n) = keys.note(&e) else { return Err(e) };
            eprintln!("luksfs: {e}");
            eprintln!("luksfs: note: {n}");
            return Ok(e.kind().exit_code());
        }
    };
    let image = vol.reader().ok_or_else(|| Error::io("the volume is not readable"))?;
    let size = image.size();
    if a.offset > size {
        return Err(Error::usage(format!("--offset {} is beyond the volume size {size}", a.offset)));
    }
    let end = a.length.map_or(size, |l| a.offset.saturating_add(l).min(size));
    let mut out = std::io::stdout().lock();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reader_gone = false;
    let mut write = |r: std::io::Result<()>| match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader went away (`| head`): stop quietly.
            reader_gone = true;
            Err(Error::io("broken pipe"))
        }
        Err(e) => Err(Error::from_io("writing to standard output", &e)),
    };
    let show = a.progress || (std::io::stderr().is_terminal() && !std::io::stdout().is_terminal());
    let bar = match show {
        true => {
            crate::progress::bar(&a.image.display().to_string(), end - a.offset, crate::progress::BYTES, a.progress)
        }
        false => indicatif::ProgressBar::hidden(),
    };
    let result = crate::stream::for_each_chunk(&*image, a.offset, end, threads, |chunk| {
        write(out.write_all(chunk)).map(|()| bar.inc(chunk.len() as u64))
    })
    .and_then(|()| write(out.flush()));
    match &result {
        Ok(()) => crate::progress::complete(&bar),
        Err(_) => bar.abandon(),
    }
    match result {
        Err(_) if reader_gone => Ok(0),
        Err(e) => Err(e),
        Ok(()) => Ok(0),
    }
}

/// The volume `want` names in `tree` (see [`Volume::matches`]), or the image's top view; unlocks
/// the encrypted volumes on the way with `key`.
pub(crate) fn select_volume(
    tree: &ImageTree,
    want: Option<&str>,
    key: &dyn Fn(&Volume) -> Result<UnlockKey>,
    settings: crate::image::UnlockSettings,
) -> Result<Arc<Volume>> {
    let path = &tree.ctx.path;
    if let Some(e) = tree.emptiness() {
        return Err(e);
    }
    let Some(want) = want else {
        let top = tree.top().ok_or_else(|| {
            let names: Vec<_> = tree.volumes().iter().filter(|v| !v.name.is_empty()).map(|v| v.name.clone()).collect();
            Error::usage(format!(
                "the image itself is not encrypted: choose a volume with --volume NAME (volumes: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
            .with_path(path)
        })?;
        top.unlock(key, settings)?;
        return Ok(top);
    };
    let mut tried = std::collections::HashSet::new();
    loop {
        if let Some(v) = tree.find(want) {
            v.unlock(key, settings)?;
            if let Some(e) = v.failure() {
                return Err(e);
            }
            return Ok(v);
        }
        // Not found yet: it may be inside a volume still locked.
        let locked: Vec<_> =
            tree.volumes().into_iter().filter(|v| v.is_locked() && tried.insert(Arc::as_ptr(v) as usize)).collect();
        if locked.is_empty() {
            let names: Vec<_> = tree.volumes().iter().filter(|v| !v.name.is_empty()).map(|v| v.name.clone()).collect();
            return Err(Error::usage(format!(
                "no volume named {want:?} (volumes: {}; see `luksfs inspect`)",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
            .with_path(path));
        }
        for v in locked {
            v.unlock(key, settings)?;
        }
    }
}
