#!/usr/bin/env bash
# scripts/test.sh -- the whole test suite, as CI runs it (.ci/run):
#   install-deps, cargo fmt --check, clippy -D warnings, release build, unit + integration tests
#   (cargo-nextest when present, else cargo test; dev profile: building the tests with the
#   release profile's thin LTO costs more than the debug binary's slower run), doc tests, then
#   the third-party corpus through the release `luksfs cat` and a FUSE mount.
# Stops at the first failing step; prints each step's time. Under CI=true a missing tool,
# /dev/fuse or root fails the tests instead of skipping them.
# Then each fuzz target briefly (scripts/fuzz.sh, FUZZ_SMOKE_SECS each, default 30) as a smoke test.
# Environment: CORPUS_ARGS (extra arguments for scripts/corpus.sh, e.g. "--formats luks1,qcow2-luks"),
#              TEST_ARGS (extra arguments for the test runner, e.g. a filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

T0=$SECONDS
TIMES=()
step() {
    local name=$1 t=$SECONDS rc=0
    shift
    printf '\n==> %s\n' "$name"
    "$@" || rc=$?
    TIMES+=("$(printf '%5d s  %s' $((SECONDS - t)) "$name")")
    if ((rc != 0)); then
        printf '\n==> FAILED: %s (exit %d) after %d s\n' "$name" "$rc" $((SECONDS - t))
        printf '%s\n' "${TIMES[@]}"
        exit "$rc"
    fi
    printf '==> %s: ok, %d s\n' "$name" $((SECONDS - t))
}

run_tests() {
    # shellcheck disable=SC2086  # TEST_ARGS is a word list
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --locked --no-fail-fast --failure-output final ${TEST_ARGS:-}
    else
        echo "(cargo-nextest not found: using cargo test)"
        cargo test --locked --no-fail-fast ${TEST_ARGS:-}
    fi
}

enable_fuse_uring() {
    # `mount --io-uring` needs the fuse module's enable_uring (Linux >= 6.14); the transport
    # tests demand it under CI=true. Switching it on only lets daemons ask for io_uring.
    local p=/sys/module/fuse/parameters/enable_uring
    if [ -w "$p" ]; then
        [ "$(cat "$p")" = Y ] || echo Y >"$p"
        echo "fuse.enable_uring=$(cat "$p")"
    else
        echo "fuse.enable_uring: $p is not writable here (kernel < 6.14 or not root)"
    fi
}

step "install dependencies" scripts/install-deps.sh
step "FUSE over io_uring on (for the --io-uring tests)" enable_fuse_uring
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy --all-targets -D warnings" cargo clippy --locked --all-targets -- -D warnings
step "cargo build --release" cargo build --release --locked
step "tests (unit + integration)" run_tests
step "doc tests" cargo test --locked --doc
# shellcheck disable=SC2086  # CORPUS_ARGS is a word list
step "corpus (quick, cat + mount, external)" scripts/corpus.sh --quick --via both --external ${CORPUS_ARGS:-}
step "fuzz harness unit tests" cargo test --locked --manifest-path fuzz/Cargo.toml --lib
step "fuzz smoke (${FUZZ_SMOKE_SECS:-30} s per target)" env FUZZ_NO_RECORD=1 scripts/fuzz.sh "${FUZZ_SMOKE_SECS:-30}"

printf '\nall steps passed in %d s:\n' $((SECONDS - T0))
printf '%s\n' "${TIMES[@]}"
