//! Asking a person for a passphrase: on the terminal (no echo), or, with no terminal under
//! systemd (`$INVOCATION_ID` or `$NOTIFY_SOCKET` set, as for a service or a mount at boot),
//! through `systemd-ask-password`, which reaches whatever password agent runs (the boot
//! splash, the console, `systemd-tty-ask-password-agent`). A wrong passphrase typed here is asked
//! again, `--tries` times in all (cryptsetup's default: 3): see `volume::Volume::unlock`.

use super::Secret;
use crate::{Error, Result};
use std::io::IsTerminal;

/// Default number of attempts at the prompt (cryptsetup's `--tries` default).
pub const DEFAULT_TRIES: u32 = 3;

/// Whether this process runs under systemd (a service, or a mount started by it).
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Whether [`ask`] can ask anyone: a terminal on standard input, or systemd.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() || under_systemd()
}

/// Ask for the passphrase of `what` (e.g. `vol.luks`); `None` when there is nobody to ask.
pub fn ask(what: &str) -> Result<Option<Secret>> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("Enter passphrase for {what}: "))
            .map_err(|e| Error::usage(format!("cannot read the passphrase: {e}")))?;
        return Ok(Some(Secret::new(p.into_bytes())));
    }
    if under_systemd() {
        return ask_systemd(what).map(Some);
    }
    Ok(None)
}

fn ask_systemd(what: &str) -> Result<Secret> {
    use std::process::{Command, Stdio};
    let out = Command::new("systemd-ask-password")
        .arg(format!("--id=luksfs:{what}"))
        .arg("--icon=drive-harddisk")
        .arg(format!("Enter passphrase for {what}:"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::usage(format!("no terminal, and systemd-ask-password cannot run: {e}")))?;
    let mut bytes = zeroize::Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::usage(format!("systemd-ask-password gave no passphrase ({})", out.status)));
    }
    // It prints the passphrase and a newline.
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    Ok(Secret::new(std::mem::take(&mut *bytes)))
}
