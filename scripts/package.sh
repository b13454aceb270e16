#!/usr/bin/env bash
# scripts/package.sh -- build the Debian package: target/debian/luksfs_VERSION-1_ARCH.deb
#
# Builds the stripped release binary (its debug info split off into target/release/luksfs.dwp),
# generates the man pages and shell completions from the command-line definitions
# (`luksfs generate-assets`), and runs `cargo deb --no-build` ([package.metadata.deb] in
# Cargo.toml lists what goes in). Installs cargo-deb from crates.io when it is missing.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[package] %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb (cargo install cargo-deb)"
    cargo install --locked cargo-deb >&2
fi
log "cargo build --release"
cargo build --release --locked >&2
log "generating man pages and completions"
rm -rf target/assets
target/release/luksfs generate-assets target/assets
log "cargo deb"
# The binary is already stripped by the release profile.
out=$(cargo deb --no-build --no-strip --locked 2>&1 | tee /dev/stderr | tail -n 1)
[[ -f "$out" ]] || { log "cargo deb did not report a package: $out"; exit 1; }
printf '%s\n' "$out"
