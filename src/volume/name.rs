//! Volume names: stable, readable, unique within an image.
//!
//! | volume | name | example |
//! |---|---|---|
//! | the image's top view (its decrypted LUKS volume, or its qcow2 guest disk) | `""`: shown as `IMAGE.raw` | `vol.luks.raw` |
//! | partition `N` of a table on the image or its top view | `pN`, plus `-NAME` for a named GPT partition | `p1-EFI_System_Partition`, `p2` |
//! | partition `N` of a table deeper down | `PARENT-pN[-NAME]` | `laptop--vg-data-p1` |
//! | the decrypted view of a LUKS volume `PARENT` | `PARENT-luks` | `p3-cryptroot-luks` |
//! | the guest disk of a qcow2 file `PARENT` | `PARENT-qcow2` | |
//! | logical volume `LV` of volume group `VG` | as `/dev/mapper` shows it: dashes doubled | `laptop--vg-root` |
//! | an LV whose PVs lie in several images ([`super::span`]) | the same, in the image holding its first PV | |
//!
//! Characters other than ASCII letters, digits, `.`, `_`, `+` and `-` become `_` (a GPT name
//! "EFI System Partition" gives `EFI_System_Partition`). When two volumes of one image would get
//! the same name, the later one gets `~2`, `~3`, ...

use std::collections::HashSet;
use std::sync::Mutex;

/// Keep a name safe for a file name and a keytab line.
pub fn sanitize(s: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') { c } else { '_' })
        .take(64)
        .collect();
    if t.chars().all(|c| c == '.') { t.replace('.', "_") } else { t }
}

/// `parent-suffix`, or `suffix` at the top.
pub fn join(parent: &str, suffix: &str) -> String {
    if parent.is_empty() { suffix.to_string() } else { format!("{parent}-{suffix}") }
}

/// Partition `number` (with its GPT name, if any) of a table on volume `parent`.
pub fn partition(parent: &str, number: u32, gpt_name: Option<&str>) -> String {
    let base = match gpt_name.map(sanitize).filter(|n| !n.is_empty()) {
        Some(n) => format!("p{number}-{n}"),
        None => format!("p{number}"),
    };
    join(parent, &base)
}

/// The `/dev/mapper` name of logical volume `lv` of volume group `vg`: dashes doubled, joined by one.
pub fn dm(vg: &str, lv: &str) -> String {
    format!("{}-{}", sanitize(vg).replace('-', "--"), sanitize(lv).replace('-', "--"))
}

/// The names given out in one image, so none is used twice.
#[derive(Default)]
pub struct Names {
    used: Mutex<HashSet<String>>,
}

impl Names {
    /// Reserve `want`, or `want~2`, `want~3`, ... if it is taken.
    pub fn claim(&self, want: String) -> String {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.insert(want.clone()) {
            return want;
        }
        let name = (2..).map(|i| format!("{want}~{i}")).find(|n| !used.contains(n)).unwrap_or_default();
        used.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_and_unique() {
        assert_eq!(partition("", 1, Some("EFI System Partition")), "p1-EFI_System_Partition");
        assert_eq!(partition("", 5, None), "p5");
        assert_eq!(partition("laptop--vg-data", 1, Some("")), "laptop--vg-data-p1");
        assert_eq!(dm("laptop-vg", "swap_1"), "laptop--vg-swap_1");
        assert_eq!(join("p3-cryptroot", "luks"), "p3-cryptroot-luks");
        assert_eq!(sanitize("a/b\\c d..\u{e9}"), "a_b_c_d.._");
        assert_eq!(sanitize(".."), "__");
        let n = Names::default();
        assert_eq!(n.claim("p1".into()), "p1");
        assert_eq!(n.claim("p1".into()), "p1~2");
        assert_eq!(n.claim("p1".into()), "p1~3");
    }
}
