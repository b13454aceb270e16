//! The luksfs binary: parse the command line, set up logging, run. All logic is in the library.

use clap::Parser;

fn main() {
    let cli = match luksfs::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(format!("luksfs={level}")))
        .format_timestamp_millis()
        .init();
    std::process::exit(luksfs::cli::run(cli));
}
