//! `luksfs cat IMAGE [--volume NAME]`: write one volume's decrypted bytes to standard output;
//! `luksfs cat SOURCE --volume IMAGE.d/NAME`: a volume as a mount of the whole source shows it.

use super::CatArgs;
use crate::catalog::Location;
use crate::cli::source_keys::{Given, Shown, source_keys};
use crate::dir::{NodeKind, Tree};
use crate::image::UnlockSettings;
use crate::io::ReadAt;
use crate::volume::tree::UnlockKey;
use crate::volume::{ImageTree, Limits, Volume};
use crate::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

pub(super) fn cat(a: CatArgs) -> Result<i32> {
    if let Some(want) = a.volume.as_deref().filter(|v| v.contains(".d/")) {
        let location = Location::parse(a.image.as_os_str(), a.key.os_cloud.as_deref())?;
        if location.local().is_none_or(Path::is_dir) {
            return cat_in_source(&a, &location, want);
        }
    }
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
    let want = a.volume.as_deref().map(|v| own_volume(v, &a.image));
    let vol = match select_volume(&tree, want, &|v| keys.key_for(v), settings) {
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
    write_out(&*image, &a.image.display().to_string(), &a)
}

/// `IMAGE.d/NAME`, as a mount of the folder of `image` shows a volume of it, names volume NAME
/// of `image` itself.
fn own_volume<'a>(want: &'a str, image: &Path) -> &'a str {
    let own = image.file_name().and_then(|n| n.to_str());
    own.and_then(|n| want.strip_prefix(n)).and_then(|rest| rest.strip_prefix(".d/")).unwrap_or(want)
}

/// Write `image` from `--offset` for `--length` bytes to standard output (a progress bar named
/// `label` on standard error when wanted); a reader that goes away (`| head`) ends it quietly.
fn write_out(image: &dyn ReadAt, label: &str, a: &CatArgs) -> Result<i32> {
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
        true => crate::progress::bar(label, end - a.offset, crate::progress::BYTES, a.progress),
        false => indicatif::ProgressBar::hidden(),
    };
    let result = crate::stream::for_each_chunk(image, a.offset, end, threads, |chunk| {
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

/// `cat SOURCE --volume IMAGE.d/NAME`: the volume at that path of a mount of the whole source,
/// for the volumes only a whole source shows (an LV whose PVs lie in several images). Every
/// image is unlocked first, as a PV of the LV, or a differing copy of one that refuses it, may lie
/// in any of them; the named volume's own failure is the error, the others' are warnings.
fn cat_in_source(a: &CatArgs, location: &Location, want: &str) -> Result<i32> {
    if a.opts.header.is_some() {
        return Err(Error::usage(
            "--header needs a single image; for a volume of a source, give its image a keytab line with header=",
        ));
    }
    let settings = UnlockSettings { tries: a.prompt.tries, ..a.key.settings()? };
    let source = location.describe();
    let given = Given {
        key: &a.key,
        keytab: a.keytab.keytab.as_deref(),
        barbican_secret: Some(a.barbican_secret.as_deref()),
        source: &source,
    };
    let shown = Shown { options: a.opts.options(), all_volumes: true, verify: false };
    let (plan, unlocker) = source_keys(given, shown, settings)?;
    let tree = Tree::scan(location, &plan)?;
    let path = std::path::PathBuf::from(if want.ends_with(".raw") { want.to_string() } else { format!("{want}.raw") });
    let image_rel = Path::new(want.split_once(".d/").map_or(want, |(i, _)| i));
    let failures = unlocker.unlock_every(&tree);
    let Some(node) = tree.at(&path) else {
        if let Some((_, e)) = failures.iter().find(|(e, _)| e.rel() == image_rel) {
            return Err(e.clone());
        }
        return Err(not_in_source(&tree, &source, want, image_rel));
    };
    let NodeKind::File(f) = &node.kind else {
        return Err(Error::usage(format!("{want} is a folder of the source {source}, not a volume")));
    };
    for (e, err) in &failures {
        log::warn!("{}: {err}", e.rel().display());
    }
    if let Some(e) = f.volume.failure() {
        return Err(e);
    }
    let image = f.volume.reader().ok_or_else(|| Error::io(format!("{want}: the volume is not readable")))?;
    write_out(&*image, &format!("{source}/{want}"), a)
}

/// Why `want` is not in the source: no such image, or what the image shows instead.
fn not_in_source(tree: &Tree, source: &str, want: &str, image_rel: &Path) -> Error {
    let Some(image) = tree.images.iter().find(|e| e.rel() == image_rel) else {
        let names: Vec<String> = tree.images.iter().take(8).map(|e| e.rel().display().to_string()).collect();
        return Error::usage(format!(
            "{source} holds no image {} (images: {}{})",
            image_rel.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") },
            if tree.images.len() > names.len() { ", ..." } else { "" }
        ));
    };
    let mut dir = image_rel.as_os_str().to_owned();
    dir.push(".d");
    let names: Vec<String> = tree
        .at(Path::new(&dir))
        .and_then(|d| tree.children(d.ino))
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect();
    Error::usage(format!(
        "{}: no volume {want} (shown: {}; see `luksfs inspect {}` or a mount of {source})",
        image.rel().display(),
        if names.is_empty() { "none".to_string() } else { names.join(", ") },
        image.source().display()
    ))
}
