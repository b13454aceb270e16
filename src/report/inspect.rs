//! `luksfs inspect`: header facts of an image, no key needed, nothing decrypted.
//!
//! The report is built once as JSON ([`report`]) and rendered either as JSON or as indented
//! `key: value` text ([`super::render_text`]), so both outputs always say the same thing.

use crate::image::{Format, ImageOptions, Prepared};
use crate::io::{FileSource, ReadAt, Window};
use crate::luks;
use crate::qcow2::header as qh;
use crate::volume::{ImageTree, Limits};
use crate::{Error, Result};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::Arc;

fn luks_report(h: &luks::Header) -> Value {
    let mut m = Map::new();
    m.insert("version".into(), json!(h.version()));
    m.insert("uuid".into(), json!(h.uuid()));
    match h {
        luks::Header::V1(v) => {
            m.insert("cipher".into(), json!(format!("{}-{}", v.cipher_name, v.cipher_mode)));
            m.insert("key_bits".into(), json!(v.key_bytes * 8));
            m.insert("hash".into(), json!(v.hash_spec));
            m.insert("payload_offset".into(), json!(v.payload_offset_bytes()));
            m.insert("mk_digest_iterations".into(), json!(v.mk_digest_iterations));
            let slots: Vec<Value> = v
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if s.is_active() {
                        json!({"slot": i, "state": "active", "kdf": format!("pbkdf2-{}", v.hash_spec),
                               "iterations": s.iterations, "stripes": s.stripes,
                               "key_material_offset": u64::from(s.key_material_offset) * 512})
                    } else {
                        json!({"slot": i, "state": "inactive"})
                    }
                })
                .collect();
            m.insert("keyslots".into(), Value::Array(slots));
        }
        luks::Header::V2(v) => {
            m.insert("label".into(), json!(v.bin.label));
            m.insert("subsystem".into(), json!(v.bin.subsystem));
            m.insert("seqid".into(), json!(v.bin.seqid));
            m.insert("header_size".into(), json!(v.bin.hdr_size));
            m.insert(
                "header_copy".into(),
                json!({"used": format!("{:?}", v.bin.copy).to_lowercase(), "offset": v.offset, "why": v.why,
                       "other_copy_problem": v.other_copy_problem}),
            );
            let unusable = h.unusable_slots();
            let slots: Vec<Value> =
                v.md.keyslots
                    .iter()
                    .map(|k| {
                        let mut s =
                            json!({"slot": k.id, "type": k.kind, "key_bits": k.key_size * 8, "priority": k.priority});
                        if let Some(u) = &k.usable {
                            let kdf = match &u.kdf {
                                luks::v2::Kdf::Pbkdf2 { hash, iterations, .. } => {
                                    json!({"type": "pbkdf2", "hash": hash, "iterations": iterations})
                                }
                                luks::v2::Kdf::Argon2 { id, time, memory_kib, lanes, .. } => json!({
                                "type": if *id { "argon2id" } else { "argon2i" },
                                "time": time, "memory_kib": memory_kib, "parallel": lanes}),
                            };
                            s["kdf"] = kdf;
                            s["af"] = json!({"stripes": u.af_stripes, "hash": u.af_hash});
                            s["area"] = json!({"offset": u.area_offset, "size": u.area_size,
                                           "encryption": u.area_encryption, "key_bits": u.area_key_size * 8});
                        } else if let Some(kind) = &k.kdf_kind {
                            s["kdf"] = json!({"type": kind});
                        }
                        if let Some((_, e)) = unusable.iter().find(|u| u.0 == k.id) {
                            s["unusable"] = json!(e.message());
                        }
                        s
                    })
                    .collect();
            m.insert("keyslots".into(), Value::Array(slots));
            let segs: Vec<Value> =
                v.md.segments
                    .iter()
                    .map(|s| {
                        json!({"segment": s.id, "type": s.kind, "offset": s.offset,
                       "size": s.size.map_or(json!("dynamic"), |n| json!(n)), "iv_tweak": s.iv_tweak,
                       "encryption": s.encryption, "sector_size": s.sector_size, "integrity": s.integrity,
                       "flags": s.flags})
                    })
                    .collect();
            m.insert("segments".into(), Value::Array(segs));
            let digests: Vec<Value> =
                v.md.digests
                    .iter()
                    .map(|d| {
                        json!({"digest": d.id, "type": d.kind, "keyslots": d.keyslots, "segments": d.segments,
                       "hash": d.hash, "iterations": d.iterations})
                    })
                    .collect();
            m.insert("digests".into(), Value::Array(digests));
            let tokens: Vec<Value> =
                v.md.tokens
                    .iter()
                    .map(|(id, t)| {
                        json!({"token": id, "type": t.get("type").cloned().unwrap_or(Value::Null),
                                      "keyslots": t.get("keyslots").cloned().unwrap_or(Value::Null)})
                    })
                    .collect();
            m.insert("tokens".into(), Value::Array(tokens));
            m.insert(
                "config".into(),
                json!({"json_size": v.md.json_size, "keyslots_size": v.md.keyslots_size,
                                             "flags": v.md.flags, "requirements": v.md.requirements}),
            );
        }
    }
    if let Ok(plans) = h.slot_plans() {
        let unbound: Vec<Value> = plans
            .iter()
            .filter(|p| p.digest.is_none())
            .map(|p| json!(format!("key slot {} is not bound to the data segment: it cannot open the data", p.id)))
            .collect();
        if !unbound.is_empty() {
            m.insert("warnings".into(), Value::Array(unbound));
        }
    }
    Value::Object(m)
}

fn qcow2_report(h: &qh::Header) -> Value {
    let ext_name = |k: u32| match k {
        qh::EXT_CRYPTO => "full disk encryption header".to_string(),
        qh::EXT_BACKING_FORMAT => "backing format".to_string(),
        qh::EXT_FEATURE_TABLE => "feature name table".to_string(),
        qh::EXT_BITMAPS => "bitmaps".to_string(),
        qh::EXT_DATA_FILE => "external data file".to_string(),
        other => format!("unknown 0x{other:08x}"),
    };
    let mut features = Vec::new();
    for (bit, name) in [
        (qh::INCOMPAT_DIRTY, "dirty"),
        (qh::INCOMPAT_CORRUPT, "corrupt"),
        (qh::INCOMPAT_DATA_FILE, "external data file"),
        (qh::INCOMPAT_COMPRESSION, "compression type"),
        (qh::INCOMPAT_EXTL2, "extended L2"),
    ] {
        if h.incompatible_features & bit != 0 {
            features.push(name);
        }
    }
    json!({
        "version": h.version,
        "virtual_size": h.size,
        "cluster_size": h.cluster_size(),
        "crypt_method": match h.crypt_method { 0 => "none".to_string(), 1 => "aes (legacy)".to_string(),
                                              2 => "luks".to_string(), m => format!("unknown ({m})") },
        "l1_size": h.l1_size,
        "l1_table_offset": h.l1_table_offset,
        "refcount_order": h.refcount_order,
        "snapshots": h.nb_snapshots,
        "incompatible_features": features,
        "incompatible_bits": format!("0x{:x}", h.incompatible_features),
        "compatible_bits": format!("0x{:x}", h.compatible_features),
        "autoclear_bits": format!("0x{:x}", h.autoclear_features),
        "backing_file": h.backing_file.clone().or_else(|| (h.backing_file_offset != 0).then(|| "(unreadable name)".into())),
        "backing_format": h.backing_format,
        "data_file": h.data_file,
        "encryption_header": h.crypto_header.map(|(o, l)| json!({"offset": o, "length": l})),
        "extensions": h.extensions.iter().map(|e| json!({"type": ext_name(e.kind), "length": e.len})).collect::<Vec<_>>(),
    })
}

/// Build the inspect report for `path`. Returns the report and, when the image cannot be opened,
/// the error that explains why (whose kind sets the exit code).
pub fn report(arg: &Path, os_cloud: Option<&str>, options: &ImageOptions) -> Result<(Value, Option<Error>)> {
    let item = crate::catalog::resolve_one(arg, os_cloud)?;
    let path = item.path.as_path();
    let file = item.open()?;
    let tree = ImageTree::on(file.clone(), path, Path::new(""), options, Limits::default());
    let encrypted_top = tree.top().is_some_and(|t| t.lock().is_some());
    // A damaged or refused LUKS/qcow2 header still gets its header report, with the problem.
    let head = crate::io::read_upto(&*tree.root.reader().ok_or_else(|| Error::io("unreadable"))?, 0, 8)?;
    let damaged_header = tree.top().is_none() && (Format::probe(&head).is_some() || options.header.is_some());
    let (mut v, problem) = if encrypted_top || damaged_header {
        header_report(path, file, options, item.glance())?
    } else {
        let mut r = Map::new();
        r.insert("file".into(), json!(path.display().to_string()));
        r.insert("file_size".into(), json!(tree.root.size));
        let layer = tree.root.layer();
        r.insert("format".into(), json!(layer.map_or("-".to_string(), |l| l.kind.to_lowercase())));
        let problem = tree.emptiness().filter(|e| e.kind() != crate::ErrorKind::NothingToShow);
        if let Some(e) = &problem {
            r.insert("problem".into(), json!({"class": e.kind().name(), "reason": e.message()}));
        }
        (Value::Object(r), problem)
    };
    let vols = volumes(&tree);
    // VGs with PVs in this image and others (found by a mount or verify of the directory).
    let lvm_notes = tree.ctx.lvm_incomplete_notes();
    if let Value::Object(m) = &mut v {
        if !lvm_notes.is_empty() {
            m.insert("notes".into(), json!(lvm_notes));
        }
        if let Some(l) = tree.root.layer() {
            if !l.notes.is_empty() {
                m.insert("notes".into(), json!(l.notes.iter().chain(&lvm_notes).collect::<Vec<_>>()));
            }
            if !l.facts.is_null() {
                m.insert(l.kind.to_lowercase().replace(' ', "_"), l.facts.clone());
            }
        }
        m.insert("volumes".into(), json!(vols));
        if let Some(b) = item.backup() {
            // with OpenStack credentials: which Barbican key would be used (keys::cinder)
            if crate::keys::Keyring::new(None, os_cloud.map(str::to_string)).barbican_configured() {
                crate::keys::cinder::backup_key_id(b, os_cloud);
            }
            m.insert("backup".into(), b.facts()?);
        }
    }
    Ok((v, problem))
}

/// Every volume of the tree below the image (found without a key; what lies inside encrypted
/// volumes appears in `verify` and the mount once they unlock).
fn volumes(tree: &ImageTree) -> Vec<Value> {
    let mut out = Vec::new();
    for v in tree.volumes().iter().skip(1) {
        let mut e = Map::new();
        e.insert("name".into(), json!(if v.name.is_empty() { "(top view: IMAGE.raw)".into() } else { v.name.clone() }));
        e.insert("what".into(), json!(v.describe_origin()));
        e.insert("depth".into(), json!(v.depth));
        e.insert("offset".into(), json!(v.offset));
        e.insert("size".into(), json!(v.size));
        if let Some(lock) = v.lock() {
            e.insert("needs_key".into(), json!(true));
            e.insert("luks_uuid".into(), json!(lock.uuid));
        }
        if let Some(err) = v.failure() {
            e.insert("error".into(), json!({"class": err.kind().name(), "reason": err.message()}));
        }
        if let Some(l) = v.layer() {
            e.insert("holds".into(), json!(l.kind));
            if let Some(leaf) = &l.leaf {
                e.insert("description".into(), json!(leaf.describe()));
            }
            if let Some(p) = &l.problem {
                e.insert("problem".into(), json!({"class": p.kind().name(), "reason": p.message()}));
            }
            if !l.notes.is_empty() || !v.origin_notes.is_empty() {
                e.insert("notes".into(), json!(v.origin_notes.iter().chain(&l.notes).collect::<Vec<_>>()));
            }
            if !l.facts.is_null() {
                e.insert("facts".into(), l.facts.clone());
            }
            if let Some(h) = &l.header {
                e.insert("luks".into(), luks_report(h.luks()));
            }
        }
        out.push(Value::Object(e));
    }
    out
}

/// The header report of an image that is itself encrypted (LUKS, qcow2 with LUKS).
/// The header report of `path`; `glance`: the image's Glance properties, when it is a Glance
/// image (else its sidecar's are looked for).
fn header_report(
    path: &Path,
    file: Arc<dyn ReadAt>,
    options: &ImageOptions,
    glance: Option<&crate::keys::sidecar::ImageMeta>,
) -> Result<(Value, Option<Error>)> {
    let len = file.size();
    let head = crate::io::read_upto(&*file, 0, 8).map_err(|e| e.with_path(path))?;
    let mut r = Map::new();
    r.insert("file".into(), json!(path.display().to_string()));
    r.insert("file_size".into(), json!(len));
    let format = if options.header.is_some() && Format::probe(&head) != Some(Format::Qcow2) {
        Some(Format::Luks1)
    } else {
        // A LUKS2 image whose primary header is destroyed still opens from its secondary.
        Format::probe(&head).or_else(|| luks::probe_secondary(&*file).then_some(Format::Luks2))
    };
    match format {
        None => return Err(Error::corrupt("not a LUKS or qcow2 image (no known magic)").with_path(path)),
        Some(Format::Qcow2) => {
            r.insert("format".into(), json!("qcow2"));
            let h = crate::qcow2::read_header(&*file, len).map_err(|e| e.with_path(path))?;
            r.insert("qcow2".into(), qcow2_report(&h));
            if let Some((off, l)) = h.crypto_header {
                match Window::new(file.clone(), off, l, "the embedded LUKS header").and_then(|w| luks::read_header(&w))
                {
                    Ok(lh) => r.insert("luks".into(), luks_report(&lh)),
                    Err(e) => r.insert("luks".into(), json!({"error": e.to_string()})),
                };
            }
        }
        Some(_) => {
            let hdr = match &options.header {
                Some(hp) => {
                    r.insert("detached_header".into(), json!(hp.display().to_string()));
                    let f = FileSource::open(hp)?;
                    luks::read_header(&f).map_err(|e| e.with_path(hp))?
                }
                None => luks::read_header(&*file).map_err(|e| e.with_path(path))?,
            };
            r.insert("format".into(), json!(if hdr.version() == 2 { "luks2" } else { "luks1" }));
            r.insert("luks".into(), luks_report(&hdr));
        }
    }
    let opened = Prepared::open_on(file.clone(), path, options);
    let problem = match &opened {
        Ok(p) => {
            r.insert("decrypted_size".into(), json!(p.size()));
            r.insert(
                "data".into(),
                json!({"cipher": p.layout().cipher.to_string(), "key_bits": p.layout().key_len * 8,
                "sector_size": p.layout().sector_size, "offset": p.layout().offset, "iv_tweak": p.layout().iv_tweak}),
            );
            r.insert("safe_to_open".into(), json!(true));
            None
        }
        Err(e) => {
            r.insert("safe_to_open".into(), json!(false));
            r.insert("problem".into(), json!({"class": e.kind().name(), "reason": e.message()}));
            Some(e.clone())
        }
    };
    let meta = match glance {
        Some(m) => Ok(Some(m.clone())),
        None => crate::keys::sidecar::load_for_image(path),
    };
    let said_by = if glance.is_some() { "Glance" } else { "the Glance sidecar" };
    match meta {
        Ok(Some(m)) => {
            let size = opened.as_ref().ok().map(Prepared::size);
            let matches = m.decrypt_size.zip(size).map(|(want, got)| want == got);
            r.insert(
                "openstack".into(),
                json!({"sidecar": glance.is_none().then(|| crate::keys::sidecar::sidecar_path(path).display().to_string()),
                       "glance": glance.is_some(), "image_id": m.id, "name": m.name, "disk_format": m.disk_format,
                       "encrypt_format": m.encrypt_format, "key_id": m.key_id,
                       "os_decrypt_size": m.decrypt_size, "decrypt_size_matches": matches,
                       "os_hash_algo": m.hash_algo, "os_hash_value": m.hash_value}),
            );
            if matches == Some(false) {
                r.insert(
                    "warnings".into(),
                    json!([format!(
                        "{said_by} says os_decrypt_size {}, but the image decrypts to {} bytes",
                        m.decrypt_size.unwrap_or(0),
                        size.unwrap_or(0)
                    )]),
                );
            }
        }
        Ok(None) => {}
        Err(e) => {
            r.insert("openstack".into(), json!({"error": e.to_string()}));
        }
    }
    Ok((Value::Object(r), problem))
}
