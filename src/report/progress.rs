//! `verify`'s progress line: both passes (plaintext and ciphertext) as one fraction.

/// A one-line progress display on standard error, only when it is a terminal.
pub(crate) struct Progress {
    label: String,
    bar: Option<indicatif::ProgressBar>,
    /// Plaintext and ciphertext bytes to go through.
    pub(crate) plain_total: u64,
    pub(crate) cipher_total: u64,
}

impl Progress {
    pub(crate) fn new(label: &str) -> Progress {
        Progress { label: label.to_string(), bar: None, plain_total: 0, cipher_total: 0 }
    }

    /// `plain` plaintext bytes hashed, `cipher` ciphertext bytes: both passes count as one
    /// fraction (the ciphertext hash may finish after the plaintext).
    pub(crate) fn draw(&mut self, plain: u64, cipher: u64) {
        let (label, total) = (&self.label, self.plain_total + self.cipher_total);
        let bar = self.bar.get_or_insert_with(|| crate::progress::bar(label, total, crate::progress::PERCENT, false));
        bar.set_position(plain + cipher);
    }

    /// Both passes are done: the last frame reads 100%.
    pub(crate) fn complete(&mut self) {
        if let Some(b) = self.bar.take() {
            crate::progress::complete(&b);
        }
    }

    /// Wipe an unfinished bar (the image failed).
    pub(crate) fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
