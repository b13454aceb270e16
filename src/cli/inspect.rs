//! `luksfs inspect IMAGE [--json]`: header facts and the volume tree, no key needed.

use super::{InspectArgs, print_stdout};
use crate::Result;
use crate::image::ImageOptions;

pub(super) fn inspect(a: InspectArgs) -> Result<i32> {
    let (opts, _) =
        crate::cli::unlock_one::keytab_line(&a.keytab, &a.image, ImageOptions { header: a.header, key_slot: None })?;
    let (report, problem) = crate::report::inspect::report(&a.image, a.os_cloud.as_deref(), &opts)?;
    let text = if a.json {
        serde_json::to_string_pretty(&crate::schema::versioned(report)).unwrap_or_default() + "\n"
    } else {
        crate::report::render_text(&report)
    };
    print_stdout(text.as_bytes())?;
    match problem {
        Some(e) => {
            eprintln!("luksfs: {e}");
            Ok(e.kind().exit_code())
        }
        None => Ok(0),
    }
}
