//! `luksfs audit`: which Barbican keys the project's images, volumes and backups share, and
//! whether deleting one of them deletes a key the others still need (Launchpad bug 1852106:
//! images made from one encrypted volume share its key and carry
//! `cinder_encryption_key_deletion_policy: on_image_deletion`), which referenced keys Barbican
//! no longer has, and whether secret consumers are registered for them. Reads only; the fixes
//! are printed as commands.
//!
//! [`collect`] does the reading (Glance, [`cinder`], Barbican), [`refs`] finds the key
//! references in records, [`judge`] decides (sans I/O), [`report`] renders. Exit codes: 0 no
//! risk, 6 risks found, 1 an error (Glance unreachable, bad credentials), 2 usage.

pub mod cinder;
pub mod collect;
pub mod judge;
pub mod refs;
pub mod report;

use crate::Result;
use clap::Args;

/// The exit code when risks are found.
pub const EXIT_RISKS: i32 = 6;

/// `luksfs audit` arguments.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// OpenStack cloud (clouds.yaml) to audit; default: OS_CLOUD or the OS_* variables.
    #[arg(long, value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the audit; the exit code.
pub fn run(a: AuditArgs) -> Result<i32> {
    let facts = collect::collect(a.os_cloud.as_deref())?;
    let j = judge::judge(&facts.refs, &facts.states, facts.barbican.as_deref());
    let text = if a.json {
        let doc = crate::schema::versioned(report::document(&facts, &j));
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        report::render_text(&facts, &j)
    };
    crate::cli::print_stdout(text.as_bytes())?;
    Ok(if j.findings.is_empty() { 0 } else { EXIT_RISKS })
}
