//! The luksfs binary: parse the command line, set up logging, run. All logic is in the library.

use clap::Parser;

fn main() {
    // Before any secret is read: no core dumps, no ptrace/`/proc/PID/mem` by other processes.
    luksfs::sys::harden_process();
    // `mount -t fuse.luksfs` / fstab call `luksfs SOURCE MOUNTPOINT -o OPTIONS` (mount.fuse3).
    let args = luksfs::mount_helper::rewrite(std::env::args_os().collect());
    let cli = match luksfs::cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = luksfs::logging::init(cli.verbose, cli.log_file.as_deref()) {
        eprintln!("luksfs: cannot open the log file: {e}");
        std::process::exit(1);
    }
    std::process::exit(luksfs::cli::run(cli));
}
