//! Progress bars on standard error (indicatif), for `cat` and `verify`: drawn when standard
//! error is a terminal, or everywhere when forced (`cat --progress`); at most 5 redraws a
//! second. A finished bar's last frame reads 100%.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// `cat`: bytes written of the total, rate, time left.
pub const BYTES: &str =
    "{msg}: {binary_bytes} of {binary_total_bytes} ({percent}%) [{bar:30}] {binary_bytes_per_sec}, ETA {eta}";
/// `verify`: both passes (plaintext and ciphertext hashes) as one fraction.
pub const PERCENT: &str = "{msg}: {percent}% [{bar:30}] {elapsed} elapsed, ETA {eta}";

/// Redraws per second.
const HZ: u8 = 5;

/// A bar for `total` units labelled `label`, in the layout `template` ([`BYTES`], [`PERCENT`]);
/// hidden unless standard error is a terminal or `force`.
pub fn bar(label: &str, total: u64, template: &str, force: bool) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(HZ)
    } else if force {
        ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), HZ)
    } else {
        ProgressDrawTarget::hidden()
    };
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let pb = ProgressBar::with_draw_target(Some(total), target).with_style(style.progress_chars("=> "));
    pb.set_message(label.to_string());
    pb
}

/// Finish `pb` complete: its last frame reads 100% and stays on the screen.
pub fn complete(pb: &ProgressBar) {
    if let Some(len) = pb.length() {
        pb.set_position(len);
    }
    pb.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_frame_reads_100_percent() {
        let term = indicatif::InMemoryTerm::new(4, 160);
        let pb = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::term_like(Box::new(term.clone())))
            .with_style(ProgressStyle::with_template(PERCENT).unwrap());
        pb.set_message("vol.luks");
        pb.set_position(970);
        complete(&pb);
        let screen = term.contents();
        assert!(screen.contains("vol.luks: 100%"), "{screen:?}");
        for t in [BYTES, PERCENT] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
