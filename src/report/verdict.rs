//! `verify`'s verdicts and exit codes, and the worst of several.

/// Exit code of a `WARN` verdict.
pub const EXIT_WARN: i32 = 6;

/// Exit code of a `FAIL` verdict caused by a hash mismatch.
pub const EXIT_MISMATCH: i32 = 7;

/// The outcome of checking one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    /// `OK`, `WARN`, `FAIL`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// The worse of two exit codes of `verify`: any FAIL beats WARN (6) beats OK (0); among FAILs,
/// corrupt (4) > hash mismatch (7) > wrong key (3) > refused (5) > I/O and other (1) > usage (2)
/// (damaged data first, then what stops a restore).
pub fn worst(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        0 => 0,
        EXIT_WARN => 1,
        2 => 2,
        1 => 3,
        5 => 4,
        3 => 5,
        EXIT_MISMATCH => 6,
        4 => 7,
        _ => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_orders_failures_before_warnings() {
        assert_eq!(worst(0, EXIT_WARN), EXIT_WARN);
        assert_eq!(worst(EXIT_WARN, 0), EXIT_WARN);
        assert_eq!(worst(EXIT_WARN, 3), 3);
        assert_eq!(worst(3, EXIT_MISMATCH), EXIT_MISMATCH);
        assert_eq!(worst(4, EXIT_MISMATCH), 4);
        assert_eq!(worst(1, 5), 5);
        assert_eq!([0, 6, 3, 0, 1].into_iter().fold(0, worst), 3);
    }
}
