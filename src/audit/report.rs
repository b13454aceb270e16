//! The audit's report: one JSON document (`audit --json`, `docs/schema/audit.schema.json`) and
//! its text rendering. Pure: facts and judgement in, a document out.

use super::cinder::CinderPart;
use super::collect::Facts;
use super::judge::{self, Judgement, KeyReport};
use serde_json::{Value, json};
use std::fmt::Write;

/// The report document (without `schema_version`: see [`crate::schema::versioned`]).
pub fn document(facts: &Facts, j: &Judgement) -> Value {
    let (volumes, backups, cinder_detail) = match &facts.cinder {
        CinderPart::Checked { volumes, backups } => (Some(volumes.len()), Some(backups.len()), None),
        CinderPart::NotChecked(why) => (None, None, Some(why.clone())),
    };
    let mut notes: Vec<String> = Vec::new();
    if let Some(why) = &cinder_detail {
        notes.push(format!("volumes and backups were not checked: {why}"));
    }
    if let Some(why) = &facts.barbican_error {
        notes.push(format!("Barbican was not asked about every key: {why}"));
    }
    notes.extend(judge::bad_ref_notes(&facts.bad));
    let count = |s: &str| j.keys.iter().filter(|k| k.state == s).count();
    json!({
        "verdict": if j.findings.is_empty() { "OK" } else { "RISK" },
        "risks": j.findings.len(),
        "checked": {
            "images": facts.images,
            "volumes": volumes,
            "backups": backups,
            "cinder": {"checked": cinder_detail.is_none(), "detail": cinder_detail},
            "barbican": {"checked": facts.barbican_error.is_none(), "endpoint": facts.barbican,
                         "detail": facts.barbican_error},
        },
        "summary": {
            "keys": j.keys.len(),
            "present": count("present"),
            "missing": count("missing"),
            "forbidden": count("forbidden"),
            "not_checked": count("not_checked"),
        },
        "findings": j.findings,
        "keys": j.keys,
        "notes": notes,
    })
}

/// The text report of [`document`]'s facts.
pub fn render_text(facts: &Facts, j: &Judgement) -> String {
    let mut t = String::new();
    let cinder = match &facts.cinder {
        CinderPart::Checked { volumes, backups } => format!("{} volumes, {} backups", volumes.len(), backups.len()),
        CinderPart::NotChecked(_) => "volumes and backups NOT CHECKED (see below)".into(),
    };
    let _ = writeln!(t, "Audited {} images, {cinder}: {} keys referenced", facts.images, j.keys.len());
    for f in &j.findings {
        let _ = writeln!(t, "\nRISK {}: {}", f.kind, f.message);
        let _ = writeln!(t, "  fix:");
        for line in &f.fix {
            let _ = writeln!(t, "    {line}");
        }
    }
    if !j.keys.is_empty() {
        let _ = writeln!(t, "\nKeys:");
        for k in &j.keys {
            let _ = writeln!(t, "  {}", key_line(k));
        }
    }
    let doc = document(facts, j);
    if let Some(notes) = doc["notes"].as_array().filter(|n| !n.is_empty()) {
        let _ = writeln!(t, "\nNotes:");
        for n in notes {
            let _ = writeln!(t, "  {}", n.as_str().unwrap_or_default());
        }
    }
    let _ = match j.findings.len() {
        0 => writeln!(t, "\nOK: no key is shared with an image that deletes it, and none is missing"),
        n => writeln!(t, "\n{n} risk{} found", if n == 1 { "" } else { "s" }),
    };
    t
}

fn key_line(k: &KeyReport) -> String {
    let users: Vec<String> = k
        .references
        .iter()
        .map(|r| {
            let policy = match &r.deletion_policy {
                Some(p) => format!(", {p}"),
                None => String::new(),
            };
            format!("{} {} ({}{policy})", r.kind.word(), r.id, r.property)
        })
        .collect();
    let state = match k.state {
        "present" => "present".to_string(),
        "missing" => "MISSING (404)".to_string(),
        "forbidden" => "cannot tell (403)".to_string(),
        _ => format!("not checked ({})", k.detail.as_deref().unwrap_or("")),
    };
    let consumers = match &k.consumers {
        Some(c) if c.state == "unknown" => format!("; consumers unknown: {}", c.detail.as_deref().unwrap_or("")),
        Some(c) if c.state == "registered" => format!("; consumers registered ({})", c.registered.len()),
        Some(c) => format!("; consumers {} (none for {})", c.state, c.missing.join(", ")),
        None => String::new(),
    };
    format!("{} {state}{consumers}\n    used by {}", k.key_id, users.join(", "))
}
