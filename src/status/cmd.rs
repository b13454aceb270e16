//! The `luksfs list` and `luksfs status` commands: find luksfs mounts in
//! `/proc/self/mountinfo`, ask their daemons over the status socket, print text or JSON.

use super::report::{Report, SCHEMA_VERSION};
use super::socket;
use crate::fuse::mountinfo::{self, Entry};
use crate::{Error, Result};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `luksfs status` arguments.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Where the luksfs file system is mounted.
    pub mountpoint: PathBuf,
    /// Print the report as JSON (schema: docs/schema/status.schema.json).
    #[arg(long)]
    pub json: bool,
}

/// `luksfs list` arguments.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print the list as JSON (schema: docs/schema/list.schema.json).
    #[arg(long)]
    pub json: bool,
}

fn read_mountinfo() -> Result<String> {
    std::fs::read_to_string(mountinfo::PATH).map_err(|e| Error::from_io(format!("reading {}", mountinfo::PATH), &e))
}

/// The luksfs mount at `path` (the top one, if mounts are stacked).
fn mount_at(path: &Path) -> Result<Entry> {
    // Canonical when we may look (a mount without allow_other refuses other users a stat).
    let abs = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .map_err(|e| Error::from_io(format!("{}", path.display()), &e))?;
    match mountinfo::top_at(&read_mountinfo()?, &abs) {
        Some(e) if e.is_luksfs() => Ok(e),
        Some(e) => {
            Err(Error::usage(format!("{} is a {} mount, not luksfs (see `luksfs list`)", abs.display(), e.fstype)))
        }
        None => Err(Error::usage(format!("nothing is mounted on {} (see `luksfs list`)", abs.display()))),
    }
}

/// `luksfs status MOUNTPOINT`.
pub fn status(a: StatusArgs) -> Result<i32> {
    let entry = mount_at(&a.mountpoint)?;
    let report = socket::query(&entry)?;
    let text =
        if a.json { serde_json::to_string_pretty(&report).unwrap_or_default() + "\n" } else { report.render_text() };
    crate::cli::print_stdout(text.as_bytes())?;
    Ok(0)
}

/// One line of `luksfs list --json`.
#[derive(Debug, Serialize)]
struct Listed {
    mount_point: String,
    source: String,
    dev: String,
    mount_id: u64,
    /// The mounting user (`user_id=` of the mount).
    uid: Option<u32>,
    /// From the daemon; `null` when it did not answer.
    pid: Option<u32>,
    images: Option<usize>,
    unlocked: Option<usize>,
    locked: Option<usize>,
    failed: Option<usize>,
    /// Why the daemon did not answer.
    error: Option<String>,
}

fn listed(e: &Entry, r: std::result::Result<Report, Error>) -> Listed {
    let source = e.source.strip_prefix("luksfs:").unwrap_or(&e.source).to_string();
    let mut l = Listed {
        mount_point: e.mount_point.clone(),
        source,
        dev: e.dev.clone(),
        mount_id: e.id,
        uid: e.fuse_user(),
        pid: None,
        images: None,
        unlocked: None,
        locked: None,
        failed: None,
        error: None,
    };
    match r {
        Ok(r) => {
            l.pid = Some(r.mount.pid);
            l.images = Some(r.totals.images);
            l.unlocked = Some(r.totals.unlocked);
            l.locked = Some(r.totals.locked);
            l.failed = Some(r.totals.failed);
        }
        Err(e) => l.error = Some(e.message().to_string()),
    }
    l
}

/// `luksfs list`.
pub fn list(a: ListArgs) -> Result<i32> {
    let mounts: Vec<Listed> =
        mountinfo::luksfs_mounts(&read_mountinfo()?).iter().map(|e| listed(e, socket::query(e))).collect();
    let text = if a.json {
        let doc = serde_json::json!({ "schema_version": SCHEMA_VERSION, "mounts": mounts });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        render(&mounts)
    };
    crate::cli::print_stdout(text.as_bytes())?;
    Ok(0)
}

/// The table of `luksfs list`; mounts whose daemon did not answer show `-` and a note below.
fn render(mounts: &[Listed]) -> String {
    let opt = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
    let rows: Vec<[String; 5]> = mounts
        .iter()
        .map(|m| {
            [
                m.source.clone(),
                m.mount_point.clone(),
                m.pid.map_or("-".into(), |p| p.to_string()),
                opt(m.images),
                opt(m.unlocked),
            ]
        })
        .collect();
    let head = ["SOURCE", "MOUNTPOINT", "PID", "IMAGES", "UNLOCKED"].map(String::from);
    let mut width = [0usize; 5];
    for r in std::iter::once(&head).chain(&rows) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for m in mounts {
        if let Some(e) = &m.error {
            out.push_str(&format!("{e}\n"));
        }
    }
    out
}
