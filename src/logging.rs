//! Log output: standard error by default, or `--log-file`; a `--daemon` child stops writing to
//! the standard error it inherited once its parent has returned ([`detach`]).
//!
//! Nothing secret is ever passed to the logger: messages carry paths, slot numbers, ids and
//! statuses only.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static DETACHED: AtomicBool = AtomicBool::new(false);

struct Sink {
    file: Option<std::fs::File>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => {
                let _ = f.write_all(buf);
            }
            None if !DETACHED.load(Ordering::Relaxed) => {
                let _ = std::io::stderr().write_all(buf);
            }
            None => {}
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set up logging: `verbosity` 0 = warnings, 1 = info, 2+ = debug (`RUST_LOG` overrides);
/// appends to `log_file` when given.
pub fn init(verbosity: u8, log_file: Option<&Path>) -> std::io::Result<()> {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let file = match log_file {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(format!("luksfs={level}")))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(Sink { file })))
        .init();
    Ok(())
}

/// Stop writing to the inherited standard error (a daemon whose parent has exited).
pub fn detach() {
    DETACHED.store(true, Ordering::Relaxed);
}
