#!/usr/bin/env bash
# scripts/fuzz.sh -- build and run the cargo-fuzz targets of fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s each, every target in fuzz/fuzz_targets/
#
# Targets: every file in fuzz/fuzz_targets/ (the harness is fuzz/src/lib.rs). Each runs under
# `nice -n 19` with its dictionary (fuzz/dictionaries/), on fuzz/corpus/TARGET (made by
# fuzz/make-seeds.sh from cryptsetup/qemu-img images when the tools are there, else the
# committed fuzz/seeds/), with -timeout=10 s per input and -rss_limit_mb=2048: a hang or a huge
# allocation is a finding like a crash. Findings land in fuzz/artifacts/TARGET/; the script
# exits 1 if there is any. One line per run is appended to fuzz/runs.tsv (date, target,
# seconds, executions, corpus size, result) and printed.
#
# Toolchain: cargo-fuzz needs nightly for its default AddressSanitizer build (-Zsanitizer).
# With a nightly toolchain installed (`rustup toolchain list`), `cargo +nightly fuzz` is used.
# Without one, the stable toolchain builds the targets with `--sanitizer none` and
# RUSTC_BOOTSTRAP=1 (cargo-fuzz still passes -Z flags for the coverage instrumentation):
# panics, overflows (debug assertions are on), hangs and OOMs are still caught, only memory
# errors in unsafe code would be missed (luksfs has none outside src/sys.rs).
# cargo-fuzz itself is installed with `cargo install cargo-fuzz --locked` when missing.
#
# Environment: FUZZ_JOBS (parallel fuzzing processes per target, default 1),
#              FUZZ_NO_RECORD=1 (do not append to fuzz/runs.tsv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
# Every target in fuzz/fuzz_targets/ (one file each), unless named.
if ((${#targets[@]} == 0)); then
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: cargo install cargo-fuzz --locked"
    nice -n 19 cargo install cargo-fuzz --locked
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    build_flags=(-O)
    echo "toolchain: $(rustup run nightly rustc --version) (AddressSanitizer)"
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    build_flags=(-O --sanitizer none)
    echo "toolchain: $(rustc --version) with RUSTC_BOOTSTRAP=1, --sanitizer none (no nightly installed)"
fi

need_seeds=0
for t in "${targets[@]}"; do [[ -d corpus/$t ]] || need_seeds=1; done
if ((need_seeds)); then
    if command -v cryptsetup >/dev/null && command -v qemu-img >/dev/null && command -v qemu-io >/dev/null; then
        ./make-seeds.sh corpus
    else
        echo "cryptsetup/qemu-img missing: seeding from the committed fuzz/seeds/ only"
    fi
fi
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
done
# luks_keyslot tries the key slots of the LUKS1 and LUKS2 header seeds.
if [[ " ${targets[*]} " == *" luks_keyslot "* ]]; then
    cp -n seeds/luks1_header/* seeds/luks2_header/* corpus/luks_keyslot/ 2>/dev/null || true
fi

t0=$SECONDS
nice -n 19 "${fuzz[@]}" build "${build_flags[@]}"
echo "build: $((SECONDS - t0)) s"

dict_for() {
    case $1 in
        luks1_header) echo dictionaries/luks1.dict ;;
        luks2_header) echo dictionaries/luks2.dict ;;
        lvm_*) echo dictionaries/lvm.dict ;;
        cinder_*) echo dictionaries/cinder.dict ;;
        mbr) echo dictionaries/mbr.dict ;;
        gpt) echo dictionaries/gpt.dict ;;
        image_signature) echo dictionaries/x509.dict ;;
        *) echo dictionaries/qcow2.dict ;;
    esac
}

jobs=()
if ((${FUZZ_JOBS:-1} > 1)); then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
failed=0
[[ -f runs.tsv ]] || printf 'date\ttarget\tseconds\texecutions\tcorpus_files\tresult\n' > runs.tsv
for t in "${targets[@]}"; do
    log=$(mktemp)
    mkdir -p "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    rc=0
    nice -n 19 "${fuzz[@]}" run "${build_flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -dict="$(dict_for "$t")" -timeout=10 -rss_limit_mb=2048 \
        "${jobs[@]}" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" > "$log" 2>&1 || rc=$?
    runs=$({ grep -h 'stat::number_of_executed_units' "$log" fuzz-*.log 2>/dev/null || true; } | awk '{s+=$2} END {print s+0}')
    rm -f fuzz-*.log
    after=$(find "artifacts/$t" -type f | wc -l)
    files=$(find "corpus/$t" -type f | wc -l)
    result=ok
    if ((rc != 0 || after > before)); then
        result="FINDING (exit $rc; see artifacts/$t/)"
        failed=1
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || true
    fi
    printf '%-13s %5d s %12d execs %5d corpus files  %s\n' "$t" "$secs" "$runs" "$files" "$result"
    if [[ ${FUZZ_NO_RECORD:-0} != 1 ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "$runs" "$files" "$result" >> runs.tsv
    fi
    rm -f "$log"
done
exit "$failed"
