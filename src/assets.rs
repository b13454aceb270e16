//! `luksfs generate-assets DIR` (hidden; for packaging): man pages and shell completions made
//! from the clap definitions, so they never drift from `--help`:
//! * `DIR/man/luksfs.1` and `DIR/man/luksfs-SUBCOMMAND.1` for each visible subcommand;
//! * `DIR/completions/luksfs.bash`, `_luksfs` (zsh) and `luksfs.fish`.

use crate::{Error, Result};
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// Arguments of `generate-assets`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Where to write `man/` and `completions/`.
    pub dir: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::from_io(format!("writing {}", path.display()), &e))
}

fn man_page(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| Error::from_io("rendering a man page", &e))?;
    Ok(out)
}

/// Write every asset under `a.dir`; returns the exit code.
pub fn run(a: GenerateArgs) -> Result<i32> {
    let (man, comp) = (a.dir.join("man"), a.dir.join("completions"));
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).map_err(|e| Error::from_io(format!("creating {}", d.display()), &e))?;
    }
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    write(&man.join("luksfs.1"), &man_page(cmd.clone())?)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        // Named as the page says: `luksfs-mount(1)`.
        let name = format!("luksfs-{}", sub.get_name());
        let page =
            sub.clone().name(name.clone()).display_name(name.clone()).bin_name(format!("luksfs {}", sub.get_name()));
        write(&man.join(format!("{name}.1")), &man_page(page)?)?;
    }
    use clap_complete::Shell;
    for (shell, file) in [(Shell::Bash, "luksfs.bash"), (Shell::Zsh, "_luksfs"), (Shell::Fish, "luksfs.fish")] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "luksfs", &mut out);
        write(&comp.join(file), &out)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pages_and_completions() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(run(GenerateArgs { dir: d.path().to_path_buf() }).unwrap(), 0);
        for f in ["luksfs.1", "luksfs-mount.1", "luksfs-cat.1", "luksfs-inspect.1", "luksfs-verify.1"] {
            let t = std::fs::read_to_string(d.path().join("man").join(f)).unwrap();
            assert!(t.starts_with(".ie") || t.contains(".TH"), "{f}: {}", &t[..t.len().min(200)]);
        }
        assert!(!d.path().join("man/luksfs-generate-assets.1").exists(), "hidden subcommands get no page");
        let mount = std::fs::read_to_string(d.path().join("man/luksfs-mount.1")).unwrap();
        assert!(mount.contains("keytab"), "the mount page documents --keytab");
        let bash = std::fs::read_to_string(d.path().join("completions/luksfs.bash")).unwrap();
        assert!(bash.contains("--key-file") && bash.contains("mount"));
        assert!(std::fs::read_to_string(d.path().join("completions/_luksfs")).unwrap().contains("#compdef luksfs"));
        assert!(
            std::fs::read_to_string(d.path().join("completions/luksfs.fish")).unwrap().contains("complete -c luksfs")
        );
    }
}
