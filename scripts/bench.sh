#!/usr/bin/env bash
# scripts/bench.sh -- luksfs against qemu-storage-daemon's FUSE export, side by side (issue 5).
#
# Usage: scripts/bench.sh [--quick] [--size 1G] [--reps 3] [--keep DIR]
#                         [--fio-runtime S] [--cache-size 64M] [--rev REV | --bin PATH] [--no-uring]
#   --quick        smoke mode: 128 MiB images, 1 repetition, 2 s fio runs, unlock headers with
#                  200,000 PBKDF2 iterations instead of 1,000,000 (about a minute plus the build)
#   --size SIZE    plaintext size of the main images (M or G suffix; default 1G, --quick 128M)
#   --reps N       repetitions of every figure; the table shows the median (default 3, --quick 1)
#   --keep DIR     work in DIR and keep everything (images are reused by a later run with the
#                  same --size); default: a new /var/tmp/luksfs-bench.XXXXXX whose images are
#                  removed at the end (the results and logs in it are kept)
#   --fio-runtime S  cap of each fio run in seconds (default 10, --quick 2)
#   --cache-size SIZE  luksfs --cache-size, the RSS budget is this + 16 MiB (default 64M)
#   --rev REV      build the committed revision REV (e.g. HEAD) from `git archive` instead of the
#                  work tree (other people's unfinished edits), in target/bench (seeded from
#                  target/release, so only luksfs itself is compiled)
#   --bin PATH     benchmark this luksfs binary instead of building
#   --no-uring     do not measure luksfs --io-uring (by default the script switches the kernel's
#                  fuse.enable_uring on for the run, puts it back at the end, and adds info rows
#                  for luksfs --io-uring: sequential, random 1 and 2 jobs, CPU)
#
# Needs root (drops page caches of the files it reads, mounts FUSE), /dev/fuse, qemu-img,
# qemu-storage-daemon, cryptsetup, fio, fusermount3, openssl, python3 (scripts/install-deps.sh).
# Not part of CI (noisy); --quick is a smoke test of the script itself.
#
# Method (see ../shared/docs/PEERS.md; adapted where noted):
# * Images: SIZE of seeded pseudo-random plaintext (openssl aes-256-ctr of zeros); LUKS1
#   aes-xts-plain64/sha256 and qcow2+LUKS (encrypt.format=luks) by qemu-img convert
#   (iter-time=10); LUKS2 aes-xts-plain64, 512-bit key, 4 KiB sectors, PBKDF2 by
#   `cryptsetup reencrypt --encrypt` (as shared/corpus/corpus-lib.sh); a SIZE/4 LUKS1 image for
#   the RSS figure; 16 MiB LUKS1 headers with exactly 1,000,000 PBKDF2-sha256 iterations
#   (`cryptsetup luksFormat --pbkdf-force-iterations`; --quick: 200,000), one plus 8 distinct
#   ones for the unlock figures; a directory of 1,000 copies of a small LUKS1 image for the
#   mount figure.
# * Bytes first: every exposed file (both tools) is compared with its plaintext (`cmp`, two
#   concurrent half-file cmps and random preads for luksfs) before any speed is measured; a
#   mismatch aborts.
# * Each figure runs on a freshly started daemon (empty userspace cache), one tool at a time,
#   with the ciphertext locked in the host page cache (vmtouch -l: this VM's DAMON pageout
#   evicts cold file pages) (`cat IMAGE > /dev/null`) and the exposed file's
#   page cache dropped (`dd iflag=nocache count=0`, checked with fincore; luksfs opens files with
#   FOPEN_KEEP_CACHE, so without the drop the kernel would serve the plaintext).
# * seq: `dd if=EXPOSED of=/dev/null bs=1M`; CPU: utime+stime of the daemon process
#   (/proc/PID/stat) around that dd, per GiB; re-read: a second dd without dropping the cache.
# * random: fio randread bs=4k psync direct=0 invalidate=1, one job over the file or two jobs
#   over disjoint halves, each 4 KiB block read at most once (fio random map, no
#   --time_based: with the plaintext kept in the page cache a second pass would measure the
#   page cache, not the daemon); --runtime caps each run.
# * unlock: from spawning the daemon until 512 bytes of the exposed file are read (stat polling
#   at 1 ms, scripts/bench/firstread.py), header in the host page cache; 8 images: until all 8
#   first reads are done, luksfs one mount of a directory vs qsd one process with 8 exports and
#   vs 8 qsd processes started together.
# * mount: from spawning luksfs on the 1,000-image directory until `ls` (readdir) lists 1,000.
# * RSS: VmHWM of the daemon after a full dd and a 2-job fio run, at SIZE/4 and at SIZE.
# * Wall-clock figures follow the machine's load: the report gives the load averages, and
#   load-independent companions (daemon CPU per GiB, daemon CPU time of the unlocks).
#
# Output: one table (figure | luksfs | qsd | ratio | target | PASS/FAIL), also written to
# WORKDIR/table.md and WORKDIR/table.tsv; raw rows in WORKDIR/results.tsv; logs in WORKDIR/logs.
# Every mount and process the script starts is tracked by PID and removed on exit, error or
# Ctrl-C (fusermount3 -u, kill PID); nothing is killed by name.
# Exit status: 0 when the benchmark ran (whatever the PASS/FAIL verdicts), 1 on an error
# (wrong bytes, a daemon that died or hung), 2 on a usage error.

set -Eeuo pipefail
LAST_ERR=''
trap 'LAST_ERR="line $LINENO: $BASH_COMMAND"' ERR   # named by cleanup if set -e stops the script
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/scripts/bench
PY=${PYTHON:-python3}
T_START=$SECONDS

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() {
    printf '\nbench.sh: ERROR: %s\n' "$*" >&2
    [ -d "${RUN:-}" ] && : >"$RUN/died"   # a file: die may run in a $(...) subshell
    exit 1
}
log() { printf '[%s %4ds] %s\n' "$(date +%T)" $((SECONDS - T_START)) "$*" >&2; }

# ------------------------------------------------------------------ arguments
QUICK=0 SIZE='' REPS='' KEEP='' BIN='' FIO_RT='' CACHE=64M GITREV='' NO_URING=
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "bench.sh: $1 needs a value (see --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --no-uring) NO_URING=1 ;;
        --size | --reps | --keep | --bin | --fio-runtime | --cache-size | --rev)
            need "$@"
            case $1 in
                --size) SIZE=$2 ;; --reps) REPS=$2 ;; --keep) KEEP=$2 ;; --bin) BIN=$2 ;;
                --fio-runtime) FIO_RT=$2 ;; --cache-size) CACHE=$2 ;; --rev) GITREV=$2 ;;
            esac
            shift ;;
        --size=* | --reps=* | --keep=* | --bin=* | --fio-runtime=* | --cache-size=* | --rev=*)
            v=${1#*=}; k=${1%%=*}; set -- "$k" "$v" "${@:2}"; continue ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
UNLOCK_ITERS=1000000
if [ "$QUICK" = 1 ]; then SIZE=${SIZE:-128M} REPS=${REPS:-1} FIO_RT=${FIO_RT:-2} UNLOCK_ITERS=200000; fi
SIZE=${SIZE:-1G} REPS=${REPS:-3} FIO_RT=${FIO_RT:-10}

mib() { # SIZE (N, NM, NG; plain numbers are MiB) -> MiB
    case $1 in
        *[gG]) echo $((${1%[gG]} * 1024)) ;;
        *[mM]) echo $((${1%[mM]})) ;;
        *) echo $(($1)) ;;
    esac
}
[[ $SIZE =~ ^[0-9]+[mMgG]?$ ]] || { echo "bench.sh: --size $SIZE: use e.g. 256M or 1G" >&2; exit 2; }
[[ $CACHE =~ ^[0-9]+[mMgG]?$ ]] || { echo "bench.sh: --cache-size $CACHE: use e.g. 64M" >&2; exit 2; }
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --reps $REPS: a positive number" >&2; exit 2; }
[[ $FIO_RT =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --fio-runtime $FIO_RT: whole seconds" >&2; exit 2; }
S=$(mib "$SIZE")                 # main image size, MiB
SMALL=$((S / 4))                 # RSS comparison image, MiB
BUDGET=$(mib "$CACHE")
((S >= 64 && S % 4 == 0)) || { echo "bench.sh: --size must be at least 64M and a multiple of 4M" >&2; exit 2; }
label() { if (($1 % 1024 == 0)); then echo "$(($1 / 1024)) GiB"; else echo "$1 MiB"; fi; }

# ------------------------------------------------------------------ preflight
[ "$(id -u)" = 0 ] || die "run as root (page-cache drops, FUSE mounts)"
[ -c /dev/fuse ] || die "/dev/fuse is missing"
missing=()
for t in qemu-img qemu-storage-daemon cryptsetup fio vmtouch fusermount3 openssl fincore "$PY" cmp dd timeout flock mountpoint; do
    command -v "$t" >/dev/null || missing+=("$t")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (scripts/install-deps.sh installs them)"

# ------------------------------------------------------------------ work dir, cleanup
if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"; W=$(cd "$KEEP" && pwd)
else
    mkdir -p /var/tmp; W=$(mktemp -d /var/tmp/luksfs-bench.XXXXXX)
fi
IMG=$W/img MNT=$W/mnt LOGD=$W/logs RUN=$W/run
RES=$W/results.tsv ANOM=$W/anomalies.txt
mkdir -p "$IMG" "$MNT" "$LOGD" "$RUN" "$W/bin"
exec 9>"$W/.lock"
flock -n 9 || die "another bench.sh run is using $W"
if awk -v d="$MNT/" 'index($2, d) == 1 {f = 1} END {exit !f}' /proc/mounts; then
    die "something is still mounted under $MNT (an earlier run?): fusermount3 -u it first"
fi
rm -f "$MNT"/*.raw "$RUN"/*
: >"$RES"; : >"$ANOM"

# Every daemon we start (our children, or spawned by firstread.py) is remembered as an ENTRY
# PID:STARTTIME (field 22 of /proc/PID/stat) and only signalled while that very process still
# runs: a PID the kernel has since handed to someone else's process is never touched.
PROCS=()
LAST_ENT='' D_PID='' D_ENT='' D_TOOL='' D_LOG=''
stat_fields() { # PID -> the fields of /proc/PID/stat after "(comm)", i.e. state ppid ... (22 = $20)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    echo "${s##*) }"
}
track() { # PID: remember it (LAST_ENT = its entry, empty if it is already gone)
    local f
    LAST_ENT=''
    f=$(stat_fields "$1") || return 0
    # shellcheck disable=SC2086  # split the stat fields
    set -- "$1" $f
    LAST_ENT="$1:${21}"
    PROCS+=("$LAST_ENT")
}
untrack() { # ENTRY
    local i
    for i in "${!PROCS[@]}"; do [ "${PROCS[$i]}" != "$1" ] || unset 'PROCS[i]'; done
    PROCS=("${PROCS[@]}")   # keep the indices dense (firstread slices the array)
}
live() { # ENTRY: that process still runs (not a zombie)
    local want=${1#*:} f
    [ -n "$1" ] || return 1
    f=$(stat_fields "${1%%:*}") || return 1
    # shellcheck disable=SC2086
    set -- $f
    [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$want" ]
}
signal() { live "$2" && kill "-$1" "${2%%:*}" 2>/dev/null; return 0; }   # SIG ENTRY
wait_gone() { # ENTRY SECONDS
    local i
    for ((i = 0; i < $2 * 50; i++)); do live "$1" || return 0; sleep 0.02; done
    return 1
}
adopt_pidfile() { # FILE from firstread.py: track its PIDs that still run our daemons' binaries
    local p a0
    for p in $(cat "$1" 2>/dev/null); do
        a0=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline" | head -1) || a0=''
        case $a0 in "${LUKSFS:-/nonexistent}" | qemu-storage-daemon | */qemu-storage-daemon) track "$p" ;; esac
    done
    rm -f "$1"
}
our_mounts() { awk -v d="$MNT/" 'index($2, d) == 1 {print $2}' /proc/mounts | sed 's/\\040/ /g' | sort -r; }
cleanup() {
    local rc=$? e f m
    set +e
    trap - EXIT INT TERM ERR
    if ((rc != 0 && rc != 130)) && [ ! -e "$RUN/died" ]; then
        printf '\nbench.sh: ERROR: aborted (exit %s) at %s\n' "$rc" "${LAST_ERR:-?}" >&2
    fi
    if ((rc != 0)) && [ -n "$D_ENT" ] && ! live "$D_ENT"; then
        echo "bench.sh: the $D_TOOL daemon (pid $D_PID) had exited; log $D_LOG: $(tail -3 "$D_LOG" 2>/dev/null)" >&2
    fi
    for f in "$RUN"/*.pid; do [ -f "$f" ] && adopt_pidfile "$f"; done
    for e in "${PROCS[@]}"; do signal TERM "$e"; done
    for e in "${PROCS[@]}"; do
        wait_gone "$e" 5 || { echo "bench.sh: pid ${e%%:*} ignored SIGTERM, sending SIGKILL" >&2; signal KILL "$e"; }
    done
    while IFS= read -r m; do
        [ -n "$m" ] && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
    done < <(our_mounts)
    [ -n "$(our_mounts)" ] && echo "bench.sh: WARNING: still mounted: $(our_mounts | tr '\n' ' ')" >&2
    if [ -s "$RUN/vmtouch.pidfile" ]; then   # the page-cache lock (only if it is still vmtouch)
        e=$(cat "$RUN/vmtouch.pidfile"); [ "$(cat "/proc/$e/comm" 2>/dev/null)" = vmtouch ] && kill "$e"
    fi
    rm -rf "$RUN"
    [ -n "$URING_WAS" ] && echo "$URING_WAS" >"$URING_PARAM"
    if [ -z "$KEEP" ]; then
        rm -rf "${W:?}/img" "${W:?}/mnt" "${W:?}/bin"
        echo "bench.sh: images removed; results and logs kept in $W" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

anomaly() { log "ANOMALY: $*"; printf '%s\n' "$*" >>"$ANOM"; }
# FUSE over io_uring (luksfs --io-uring): the kernel switch is turned on for the run unless
# --no-uring, and put back as it was on exit.
URING_PARAM=/sys/module/fuse/parameters/enable_uring URING=off URING_WAS=
if [ -z "$NO_URING" ] && [ -w "$URING_PARAM" ]; then
    URING_WAS=$(cat "$URING_PARAM")
    if echo Y >"$URING_PARAM" 2>/dev/null; then URING=on; else URING_WAS=; fi
fi
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RES"; }
info() { printf 'info\t%s\t1\t%s\t\n' "$1" "$2" >>"$RES"; }

# ------------------------------------------------------------------ build
log "work dir $W; size $(label "$S") (RSS images $(label "$SMALL") and $(label "$S")), $REPS rep(s), fio cap ${FIO_RT} s, luksfs --cache-size $CACHE"
build_failed() { die "cargo build --release failed (log $LOGD/build.log):
$(grep -m1 -A12 '^error' "$LOGD/build.log")"; }
if [ -n "$BIN" ] && [ -n "$GITREV" ]; then die "--bin and --rev exclude each other"; fi
if [ -n "$GITREV" ]; then
    DESC=$(git -C "$ROOT" rev-parse --short "$GITREV^{commit}") || die "--rev $GITREV: not a commit"
    log "cargo build --release of $GITREV ($DESC) from git archive, target dir $ROOT/target/bench"
    TB=$ROOT/target/bench
    mkdir -p "$TB"
    if [ "$(cat "$TB/src.rev" 2>/dev/null)" != "$DESC" ]; then   # same path and mtimes: no rebuild for the same rev
        rm -rf "$TB/src" "$TB/src.rev"; mkdir -p "$TB/src"
        git -C "$ROOT" archive --format=tar "$DESC" | tar -x -C "$TB/src" || die "git archive $DESC failed"
        echo "$DESC" >"$TB/src.rev"
    fi
    if [ ! -d "$TB/release" ] && [ -d "$ROOT/target/release" ]; then cp -a "$ROOT/target/release" "$TB/release"; fi
    (cd "$TB/src" && cargo build --release --locked --target-dir "$TB") >"$LOGD/build.log" 2>&1 || build_failed
    BIN=$TB/release/luksfs
elif [ -z "$BIN" ]; then
    log "cargo build --release (work tree)"
    (cd "$ROOT" && cargo build --release) >"$LOGD/build.log" 2>&1 || build_failed
    BIN=$ROOT/target/release/luksfs
    DESC=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        DESC="$DESC+uncommitted-changes"
    fi
else
    DESC="binary $BIN"
fi
[ -x "$BIN" ] || die "$BIN is not an executable"
# A private copy: other builds in the tree must not swap the binary under a running benchmark.
cp "$BIN" "$W/bin/luksfs"
LUKSFS=$W/bin/luksfs
# The FUSE ceiling: ../shared's fuserbase, a 60-line fuser passthrough of the plaintext (no
# decryption, FOPEN_KEEP_CACHE, one thread per core like luksfs). Info rows; skipped if absent.
FUSERBASE=''
FB_SRC=${LUKSFS_SHARED:-$ROOT/../shared}/tools/bench-peers/fuserbase
if [ -f "$FB_SRC/Cargo.toml" ]; then
    log "building the passthrough baseline ($FB_SRC)"
    rm -rf "$W/fuserbase" && cp -r "$FB_SRC" "$W/fuserbase"
    if (cd "$W/fuserbase" && CARGO_TARGET_DIR=$W/fuserbase/target cargo build --release) >"$LOGD/fuserbase-build.log" 2>&1; then
        FUSERBASE=$W/fuserbase/target/release/fuserbase
    else
        log "note: fuserbase did not build (log $LOGD/fuserbase-build.log): no passthrough rows"
    fi
fi

# ------------------------------------------------------------------ images
KEY=$IMG/key
PLAIN=$IMG/plain.raw PLAIN_SMALL=$IMG/plain-small.raw TINY_PLAIN=$IMG/tiny.raw
QOPT="cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256"
mk_unlock_hdr() { # FILE: 16 MiB LUKS1, aes-xts-plain64 512-bit, PBKDF2-sha256 exactly UNLOCK_ITERS iterations
    rm -f "$1"; truncate -s 16M "$1"
    cryptsetup luksFormat --batch-mode --type luks1 --cipher aes-xts-plain64 --key-size 512 --hash sha256 \
        --pbkdf-force-iterations "$UNLOCK_ITERS" --key-file "$KEY" "$1" >/dev/null
}
mk_images() {
    local stamp="bench-images v1 size=$S small=$SMALL unlock=$UNLOCK_ITERS" i pids=() t off
    if [ -f "$IMG/stamp" ] && [ "$(cat "$IMG/stamp")" = "$stamp" ]; then
        log "reusing the images in $IMG"; return 0
    fi
    rm -rf "$IMG"; mkdir -p "$IMG"
    printf '%s' 'luksfs-bench-passphrase' >"$KEY"      # exact bytes, no newline
    log "images: $(label "$S") seeded plaintext"
    head -c $((S << 20)) /dev/zero | openssl enc -aes-256-ctr -nosalt -pbkdf2 -pass pass:luksfs-bench-seed >"$PLAIN"
    [ "$(stat -c %s "$PLAIN")" = $((S << 20)) ] || die "plaintext has the wrong size"
    head -c $((SMALL << 20)) "$PLAIN" >"$PLAIN_SMALL"
    head -c 65536 "$PLAIN" >"$TINY_PLAIN"
    # unlock headers (8 distinct ones: no salt is shared), two at a time, while qemu-img works
    (
        mk_unlock_hdr "$IMG/unlock1m.img" || exit 1
        mkdir -p "$IMG/par8"
        for i in 1 3 5 7; do
            mk_unlock_hdr "$IMG/par8/u$i.img" & p=$!
            mk_unlock_hdr "$IMG/par8/u$((i + 1)).img" || exit 1
            wait "$p" || exit 1
        done
    ) >"$LOGD/unlock-headers.log" 2>&1 &
    pids+=($!)
    log "images: LUKS1 (qemu-img -O luks), qcow2+LUKS, LUKS1 $(label "$SMALL"), small LUKS1"
    # qemu-img spends seconds on its PBKDF2 benchmark whatever the size: two at a time
    (qemu-img convert -f raw -O luks --object "secret,id=s0,file=$KEY" -o "key-secret=s0,iter-time=10,$QOPT" \
        "$PLAIN_SMALL" "$IMG/luks1-small.img" &&
        qemu-img convert -f raw -O luks --object "secret,id=s0,file=$KEY" -o "key-secret=s0,iter-time=1,$QOPT" \
            "$TINY_PLAIN" "$IMG/tiny.img") >"$LOGD/qemu-img-small.log" 2>&1 &
    pids+=($!)
    qemu-img convert -f raw -O luks --object "secret,id=s0,file=$KEY" -o "key-secret=s0,iter-time=10,$QOPT" \
        "$PLAIN" "$IMG/luks1.img"
    qemu-img convert -f raw -O qcow2 --object "secret,id=s0,file=$KEY" \
        -o "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,$(sed 's/\([a-z-]*=\)/encrypt.\1/g' <<<"$QOPT")" \
        "$PLAIN" "$IMG/qcow2.img"
    log "images: LUKS2 4 KiB sectors (cryptsetup reencrypt --encrypt)"
    # corpus-lib.sh cs_luks2: with --reduce-device-size R the data segment starts at R/2 and the
    # first (file size - R) bytes of the device are the original data; cut the rest off.
    t=$IMG/luks2-4k.tmp
    cp --sparse=always "$PLAIN" "$t"; truncate -s $(((S + 32) << 20)) "$t"
    cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --force-offline-reencrypt --batch-mode \
        --key-file "$KEY" --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --hash sha256 \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$t" >"$LOGD/luks2-reencrypt.log" 2>&1 ||
        die "cryptsetup reencrypt failed: $(tail -3 "$LOGD/luks2-reencrypt.log")"
    off=$(cryptsetup luksDump --dump-json-metadata "$t" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["segments"]["0"]["offset"])')
    truncate -s $((off + (S << 20))) "$t"; mv "$t" "$IMG/luks2-4k.img"
    for i in "${pids[@]}"; do
        wait "$i" || die "image creation failed: $(tail -3 "$LOGD/unlock-headers.log" "$LOGD/qemu-img-small.log")"
    done
    log "images: 1,000 copies of a small LUKS1 image"
    "$PY" - "$IMG/tiny.img" "$IMG/dir1000" <<'PY' || die "copying the small images failed"
import os, sys
src, d = sys.argv[1:3]
data = open(src, "rb").read()
os.makedirs(d, exist_ok=True)
for i in range(1, 1001):  # sparse copies: only the non-zero 4 KiB blocks are written
    fd = os.open(f"{d}/img{i:04d}.img", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for off in range(0, len(data), 4096):
        blk = data[off:off + 4096]
        if blk.count(0) != len(blk):
            os.pwrite(fd, blk, off)
    os.ftruncate(fd, len(data))
    os.close(fd)
PY
    echo "$stamp" >"$IMG/stamp"
}
mk_images
ls "$IMG"/par8/u{1..8}.img >/dev/null || die "missing unlock headers"
info iterations.luks1 "$(cryptsetup luksDump "$IMG/luks1.img" | awk '/Iterations:/ {print $2; exit}')"
info iterations.unlock1m "$(cryptsetup luksDump "$IMG/unlock1m.img" | awk '/Iterations:/ {print $2; exit}')"
info sector_size.luks2 "$(cryptsetup luksDump "$IMG/luks2-4k.img" | awk '/sector:/ {print $2; exit}')"

# ------------------------------------------------------------------ daemons started by this shell
# start_luksfs IMAGE | start_qsd IMAGE luks|qcow2 -> D_TOOL D_PID D_MP D_FILE D_LOG
BASEDEV=$(stat -c %d "$MNT")
start_luksfs() { # IMAGE [EXTRA-ARGS...]
    local name; name=$(basename "$1")
    D_TOOL=luksfs D_MP=$MNT/lf.$name D_FILE=$MNT/lf.$name/$name.raw D_LOG=$LOGD/luksfs.$name.log
    mkdir -p "$D_MP"
    "$LUKSFS" mount "$1" "$D_MP" --key-file "$KEY" --cache-size "$CACHE" "${@:2}" >>"$D_LOG" 2>&1 &
    D_PID=$!; track "$D_PID"; D_ENT=$LAST_ENT
    wait_ready
}
start_fuserbase() { # passthrough of the plaintext (the FMT is irrelevant)
    D_TOOL=fuserbase D_MP=$MNT/fb D_FILE=$MNT/fb/data.raw D_LOG=$LOGD/fuserbase.log
    mkdir -p "$D_MP"
    FUSERBASE_KEEP_CACHE=1 "$FUSERBASE" "$PLAIN" "$D_MP" "$(nproc)" >>"$D_LOG" 2>&1 &
    D_PID=$!; track "$D_PID"; D_ENT=$LAST_ENT
    wait_ready
}
start_tool() { # TOOL FMT: luksfs, luksfs_uring (--io-uring), fuserbase or qsd
    case $1 in
        fuserbase) start_fuserbase ;;
        luksfs) start_luksfs "${IMGF[$2]}" ;;
        luksfs_uring) start_luksfs "${IMGF[$2]}" --io-uring; D_TOOL=luksfs_uring ;;
        qsd) start_qsd "${IMGF[$2]}" "${DRV[$2]}" ;;
    esac
}
qsd_node() { # DRIVER FILE-NODE SECRET
    case $1 in
        luks) echo "driver=luks,file=$2,key-secret=$3" ;;
        qcow2) echo "driver=qcow2,file=$2,encrypt.format=luks,encrypt.key-secret=$3" ;;
    esac
}
start_qsd() {
    local name; name=$(basename "$1")
    D_TOOL=qsd D_MP=$MNT/qsd.$name.raw D_FILE=$MNT/qsd.$name.raw D_LOG=$LOGD/qsd.$name.log
    : >"$D_MP"
    qemu-storage-daemon --object "secret,id=sec0,file=$KEY" \
        --blockdev "driver=file,filename=$1,node-name=f0,read-only=on" \
        --blockdev "$(qsd_node "$2" f0 sec0),node-name=n0,read-only=on" \
        --export "type=fuse,id=e0,node-name=n0,mountpoint=$D_MP" >>"$D_LOG" 2>&1 &
    D_PID=$!; track "$D_PID"; D_ENT=$LAST_ENT
    wait_ready
}
wait_ready() { # until 512 bytes of D_FILE are readable from the mount
    local i n
    for ((i = 0; i < 6000; i++)); do
        if [ "$(stat -c %d "$D_FILE" 2>/dev/null)" != "" ] && [ "$(stat -c %d "$D_FILE")" != "$BASEDEV" ]; then
            n=$(timeout -k 5 120 head -c 512 "$D_FILE" 2>>"$D_LOG" | wc -c) || true
            [ "$n" = 512 ] && return 0
            die "$D_TOOL: reading the first 512 bytes of $D_FILE gave $n bytes; log $D_LOG: $(tail -3 "$D_LOG")"
        fi
        live "$D_ENT" || die "$D_TOOL (pid $D_PID) exited during start-up; log $D_LOG: $(tail -5 "$D_LOG")"
        sleep 0.01
    done
    die "$D_TOOL: $D_FILE not mounted after 60 s"
}
stop_daemon() {
    local rc=0
    [ -n "${D_PID:-}" ] || return 0
    if [[ $D_TOOL == luksfs* || $D_TOOL == fuserbase ]]; then
        # luksfs (and fuserbase) must exit 0 on their own after fusermount3 -u
        fusermount3 -u "$D_MP" 2>>"$D_LOG" || anomaly "fusermount3 -u $D_MP failed (see $D_LOG)"
        if wait_gone "$D_ENT" 10; then
            wait "$D_PID" 2>/dev/null || rc=$?
            [ "$rc" = 0 ] || anomaly "luksfs exited with status $rc after fusermount3 -u $D_MP (log $D_LOG)"
        else
            anomaly "luksfs (pid $D_PID) still running 10 s after fusermount3 -u $D_MP; sent SIGTERM"
            signal TERM "$D_ENT"; wait_gone "$D_ENT" 5 || signal KILL "$D_ENT"
            wait "$D_PID" 2>/dev/null || true
        fi
    else
        # qsd does not exit when unmounted (PEERS.md): SIGTERM, which also unmounts
        signal TERM "$D_ENT"
        wait_gone "$D_ENT" 10 || signal KILL "$D_ENT"
        wait "$D_PID" 2>/dev/null || true
        if mountpoint -q "$D_MP" 2>/dev/null; then fusermount3 -u "$D_MP" 2>/dev/null || fusermount3 -uz "$D_MP"; fi
    fi
    untrack "$D_ENT"   # reaped: its PID may be reused from now on
    D_PID='' D_ENT=''
}

# ------------------------------------------------------------------ measurement helpers
HZ=$(getconf CLK_TCK)
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }   # utime+stime (fields 14, 15)
hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
drop_exposed() { # FILE: drop its page cache, and check that nothing of it stays resident
    local res
    dd if="$1" iflag=nocache count=0 status=none
    res=$(fincore -nb -o RES "$1" 2>/dev/null | awk '{s += $1} END {print s + 0}')
    if [ "$res" != 0 ]; then
        [ -f "$RUN/dropwarn" ] || { log "note: fadvise did not drop $1 ($res bytes resident); using drop_caches"; touch "$RUN/dropwarn"; }
        sync; echo 1 >/proc/sys/vm/drop_caches
        res=$(fincore -nb -o RES "$1" 2>/dev/null | awk '{s += $1} END {print s + 0}')
        [ "$res" = 0 ] || die "cannot drop the page cache of $1 ($res bytes stay resident)"
    fi
}
dd_mbs() { # FILE -> MB/s (10^6 B/s) of one whole-file read, bs=1M
    local out
    out=$(LC_ALL=C timeout -k 5 900 dd if="$1" of=/dev/null bs=1M 2>&1) ||
        die "$D_TOOL: 'dd if=$1 of=/dev/null bs=1M' failed or hung (> 900 s): $(grep -v -e 'records in' -e 'records out' <<<"$out" | tr '\n' ' ')"
    awk '/ copied, / { for (i = 1; i <= NF; i++) if ($i == "copied,") { printf "%.0f", $1 / $(i + 1) / 1e6; exit } }' <<<"$out"
}
fio_iops() { # FILE JOBS RUNTIME -> IOPS (jobs over disjoint slices; every 4 KiB block read at most once)
    local f=$1 j=$2 rt=$3 size slice out=$RUN/fio.json
    size=$(stat -c %s "$f"); slice=$((size / j / 4096 * 4096))
    timeout -k 5 $((rt + 120)) fio --name=rr --filename="$f" --readonly --rw=randread --bs=4k --direct=0 \
        --ioengine=psync --iodepth=1 --invalidate=1 --numjobs="$j" --size="$slice" --offset_increment="$slice" \
        --runtime="$rt" --group_reporting --output-format=json >"$out" 2>"$RUN/fio.err" ||
        die "$D_TOOL: fio randread ($j jobs) on $f failed or hung: $(tail -3 "$RUN/fio.err")"
    "$PY" - "$out" <<'PY' || die "$D_TOOL: fio reported an error: $(tail -3 "$RUN/fio.err")"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
if j.get("error"):
    sys.exit(1)
print(int(j["read"]["iops"]))
PY
}
bdi_ra() { # MOUNTPOINT -> read_ahead_kb of its FUSE bdi
    local d; d=$(mountpoint -d "$1" 2>/dev/null) && cat "/sys/class/bdi/$d/read_ahead_kb" 2>/dev/null || echo '?'
}
gib_per() { awk -v t="$1" -v hz="$HZ" -v mb="$2" 'BEGIN {printf "%.3f", t / hz * 1024 / mb}'; }

# ------------------------------------------------------------------ 1. bytes first
declare -A IMGF=([luks1]=$IMG/luks1.img [qcow2]=$IMG/qcow2.img [luks2]=$IMG/luks2-4k.img [small]=$IMG/luks1-small.img)
declare -A DRV=([luks1]=luks [qcow2]=qcow2 [luks2]=none [small]=luks)
plain_of() { if [ "$1" = small ]; then echo "$PLAIN_SMALL"; else echo "$PLAIN"; fi; }
verify() { # TOOL FMT
    local tool=$1 fmt=$2 plain size got half rc1=0 rc2=0 out
    plain=$(plain_of "$fmt"); size=$(stat -c %s "$plain")
    start_tool "$tool" "$fmt"
    got=$(stat -c %s "$D_FILE")
    [ "$got" = "$size" ] || die "WRONG SIZE: $tool exposes $D_FILE with $got bytes, the plaintext has $size ($fmt image ${IMGF[$fmt]})"
    out=$(timeout -k 5 900 cmp "$D_FILE" "$plain" 2>&1) ||
        die "BYTES DIFFER: $tool, $fmt image ${IMGF[$fmt]}: 'cmp $D_FILE $plain': $out"
    if [ "$tool" = luksfs ]; then
        # two concurrent readers on a fresh mount (nothing cached): each half against the plaintext
        stop_daemon; start_luksfs "${IMGF[$fmt]}"; drop_exposed "$D_FILE"
        half=$((size / 2))
        timeout -k 5 900 cmp -n "$half" "$D_FILE" "$plain" >"$RUN/cmp1" 2>&1 & local c1=$!
        timeout -k 5 900 cmp -i "$half:$half" "$D_FILE" "$plain" >"$RUN/cmp2" 2>&1 || rc2=$?
        wait "$c1" || rc1=$?
        ((rc1 == 0 && rc2 == 0)) || die "BYTES DIFFER: luksfs, $fmt, two concurrent cmp of the halves of $D_FILE: $(cat "$RUN/cmp1" "$RUN/cmp2")"
        stop_daemon; start_luksfs "${IMGF[$fmt]}"
        out=$("$PY" "$HELPERS/randcmp.py" "$D_FILE" "$plain" 400 "$fmt" 2>&1) ||
            die "BYTES DIFFER: luksfs, $fmt, random reads: $out"
    fi
    stop_daemon
    log "bytes equal: $tool $fmt ($(label $((size >> 20))))"
}
# Ciphertext (and plaintext) stay in the page cache for the whole run: locked with vmtouch. This
# VM's DAMON "pageout" scheme otherwise evicts file pages it sees as cold within seconds to a
# minute, and a read that meets an evicted page measures the virtual disk, not the daemon.
vmtouch -l -d -q -P "$RUN/vmtouch.pidfile" "$IMG" >>"$LOGD/vmtouch.log" 2>&1 || die "vmtouch -l $IMG failed: $(tail -2 "$LOGD/vmtouch.log")"
for _ in $(seq 100); do [ -s "$RUN/vmtouch.pidfile" ] && break; sleep 0.05; done
log "images locked in the page cache (vmtouch pid $(cat "$RUN/vmtouch.pidfile" 2>/dev/null))"
log "1. verifying the exposed bytes against the plaintext (both tools)"
for fmt in luks1 qcow2 luks2 small; do
    verify luksfs "$fmt"
    [ "$URING" = on ] && [ "$fmt" = luks1 ] && verify luksfs_uring "$fmt"
    [ -n "$FUSERBASE" ] && [ "$fmt" = luks1 ] && verify fuserbase "$fmt"
    [ "$fmt" = luks2 ] || verify qsd "$fmt"
done

# ------------------------------------------------------------------ figures
tool_order() { if (($1 % 2)); then echo luksfs qsd; else echo qsd luksfs; fi; }   # alternate who goes first
# where the kernel offers FUSE over io_uring, luksfs --io-uring runs too (info rows)
tools_for() { # REP FMT
    local t
    for t in $(tool_order "$1"); do
        echo "$t"
        [ "$t" = luksfs ] && [ "$URING" = on ] && [ "$2" = luks1 ] && echo luksfs_uring
        [ "$t" = luksfs ] && [ -n "$FUSERBASE" ] && [ "$2" = luks1 ] && echo fuserbase
    done
}
seq_figs() { # REP: dd + CPU + re-read for every format, both tools
    local rep=$1 fmt tool c0 c1 v img
    for fmt in luks1 qcow2 luks2; do
        img=${IMGF[$fmt]}
        for tool in $(tools_for "$rep" "$fmt"); do
            [ "$fmt:$tool" = luks2:qsd ] && continue
            start_tool "$tool" "$fmt"
            [ "$rep" = 1 ] && info "read_ahead_kb.$tool.$fmt" "$(bdi_ra "$D_MP")"
            drop_exposed "$D_FILE"; cat "$img" >/dev/null
            c0=$(ticks "$D_PID"); v=$(dd_mbs "$D_FILE"); c1=$(ticks "$D_PID")
            record "$tool" "seq_MBps.$fmt" "$rep" "$v"
            record "$tool" "cpu_s_per_GiB.$fmt" "$rep" "$(gib_per $((c1 - c0)) "$S")"
            c0=$c1; v=$(dd_mbs "$D_FILE"); c1=$(ticks "$D_PID")
            record "$tool" "reread_MBps.$fmt" "$rep" "$v"
            record "$tool" "reread_cpu_s_per_GiB.$fmt" "$rep" "$(gib_per $((c1 - c0)) "$S")"
            record "$tool" "hwm_after_seq_MiB.$fmt" "$rep" "$(hwm_mib "$D_PID")"
            stop_daemon
        done
        log "rep $rep: seq $fmt: $(awk -F'\t' -v f="seq_MBps.$fmt" -v r="$rep" '$2 == f && $3 == r {printf "%s %s MB/s  ", $1, $4}' "$RES")"
    done
}
rand_figs() { # REP: fio randread 4k, 1 and 2 jobs, LUKS1
    local rep=$1 jobs tool v
    for jobs in 1 2; do
        for tool in $(tools_for "$rep" luks1); do
            start_tool "$tool" luks1
            cat "${IMGF[luks1]}" >/dev/null
            v=$(fio_iops "$D_FILE" "$jobs" "$FIO_RT")
            record "$tool" "rand4k_iops.j$jobs" "$rep" "$v"
            log "rep $rep: randread 4k, $jobs job(s): $tool $v IOPS"
            stop_daemon
        done
    done
}
rss_figs() { # REP: VmHWM after a full dd and a 2-job fio run, SIZE/4 and SIZE images
    local rep=$1 which tool img
    for which in small big; do
        img=${IMGF[luks1]}; [ "$which" = small ] && img=${IMGF[small]}
        for tool in $(tool_order "$rep"); do
            if [ "$tool" = luksfs ]; then start_luksfs "$img"; else start_qsd "$img" luks; fi
            drop_exposed "$D_FILE"; cat "$img" >/dev/null
            dd_mbs "$D_FILE" >/dev/null
            fio_iops "$D_FILE" 2 $((FIO_RT < 3 ? FIO_RT : 3)) >/dev/null
            record "$tool" "rss_MiB.$which" "$rep" "$(hwm_mib "$D_PID")"
            stop_daemon
        done
    done
    log "rep $rep: peak RSS measured"
}

# firstread NAME ARGS...: run scripts/bench/firstread.py, leave its JSON in $RUN/NAME.json and the
# daemons' PIDs in $RUN/NAME.pid (cleanup reads them)
FR_ENTS=()
firstread() {
    local name=$1 rc=0 n; shift
    n=${#PROCS[@]}
    "$PY" "$HELPERS/firstread.py" --base "$MNT" --pidfile "$RUN/$name.pid" --log "$LOGD/$name.log" --timeout 180 "$@" \
        >"$RUN/$name.json" 2>"$RUN/$name.err" || rc=$?
    adopt_pidfile "$RUN/$name.pid"
    FR_ENTS=("${PROCS[@]:n}")
    ((rc == 0)) || die "$name: $(cat "$RUN/$name.err"); daemon log $LOGD/$name.log: $(tail -5 "$LOGD/$name.log")"
}
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
stop_spawned() { # NAME luksfs|qsd MOUNTPOINT...: stop the daemons of the last firstread run (FR_ENTS)
    local name=$1 tool=$2 e m; shift 2
    if [ "$tool" = luksfs ]; then
        for m in "$@"; do fusermount3 -u "$m" 2>>"$LOGD/$name.log" || anomaly "fusermount3 -u $m failed ($name)"; done
        for e in "${FR_ENTS[@]}"; do
            wait_gone "$e" 10 || {
                anomaly "luksfs (pid ${e%%:*}, $name) still running 10 s after fusermount3 -u"
                signal TERM "$e"; wait_gone "$e" 5 || signal KILL "$e"
            }
        done
    else
        for e in "${FR_ENTS[@]}"; do signal TERM "$e"; done
        for e in "${FR_ENTS[@]}"; do wait_gone "$e" 10 || signal KILL "$e"; done
        for m in "$@"; do if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u "$m" || fusermount3 -uz "$m"; fi; done
    fi
    for e in "${FR_ENTS[@]}"; do untrack "$e"; done
    FR_ENTS=()
}
q() { printf '%q ' "$@"; }
qsd_cmd() { # MOUNTPOINT-PREFIX IMAGE... : one qemu-storage-daemon exporting every IMAGE (luks) at PREFIX<i>.raw
    local pre=$1 i=0 img; shift
    local a=(qemu-storage-daemon --object "secret,id=sec0,file=$KEY")
    for img in "$@"; do
        i=$((i + 1)); : >"$pre$i.raw"
        a+=(--blockdev "driver=file,filename=$img,node-name=f$i,read-only=on"
            --blockdev "driver=luks,file=f$i,key-secret=sec0,node-name=n$i,read-only=on"
            --export "type=fuse,id=e$i,node-name=n$i,mountpoint=$pre$i.raw")
    done
    q "${a[@]}"
}
unlock_figs() { # REP
    local rep=$1 i mp reads=() qreads=() cmds=() a b
    cat "$IMG/unlock1m.img" "$IMG"/par8/*.img >/dev/null     # headers hot: measure the KDF, not the disk
    # one image, 1M iterations
    mp=$MNT/u1; mkdir -p "$mp"
    firstread u1-luksfs --read "$mp/unlock1m.img.raw" --cmd "$(q "$LUKSFS" mount "$IMG/unlock1m.img" "$mp" --key-file "$KEY" --cache-size "$CACHE")"
    stop_spawned u1-luksfs luksfs "$mp"
    record luksfs unlock1m_ms "$rep" "$(jget "$RUN/u1-luksfs.json" 'd["ms"]')"
    record luksfs unlock1m_cpu_ms "$rep" "$(jget "$RUN/u1-luksfs.json" 'round(d["cpu_ms"])')"
    firstread u1-qsd --read "$MNT/u1q1.raw" --cmd "$(qsd_cmd "$MNT/u1q" "$IMG/unlock1m.img")"
    stop_spawned u1-qsd qsd "$MNT/u1q1.raw"
    record qsd unlock1m_ms "$rep" "$(jget "$RUN/u1-qsd.json" 'd["ms"]')"
    record qsd unlock1m_cpu_ms "$rep" "$(jget "$RUN/u1-qsd.json" 'round(d["cpu_ms"])')"
    a=$(jget "$RUN/u1-luksfs.json" 'list(d["sha256"].values())[0]'); b=$(jget "$RUN/u1-qsd.json" 'list(d["sha256"].values())[0]')
    [ "$a" = "$b" ] || die "BYTES DIFFER: first 512 bytes of unlock1m.img: luksfs sha256 $a, qsd $b"
    # 8 images: luksfs one mount; qsd one process with 8 exports; 8 qsd processes
    mp=$MNT/p8; mkdir -p "$mp"
    for i in 1 2 3 4 5 6 7 8; do reads+=(--read "$mp/u$i.img.raw"); done
    firstread p8-luksfs "${reads[@]}" --cmd "$(q "$LUKSFS" mount "$IMG/par8" "$mp" --key-file "$KEY" --cache-size "$CACHE")"
    stop_spawned p8-luksfs luksfs "$mp"
    record luksfs unlock8_ms "$rep" "$(jget "$RUN/p8-luksfs.json" 'd["ms"]')"
    record luksfs unlock8_cpu_ms "$rep" "$(jget "$RUN/p8-luksfs.json" 'round(d["cpu_ms"])')"
    for i in 1 2 3 4 5 6 7 8; do qreads+=(--read "$MNT/p8q$i.raw"); done
    firstread p8-qsd "${qreads[@]}" --cmd "$(qsd_cmd "$MNT/p8q" "$IMG"/par8/u{1..8}.img)"
    stop_spawned p8-qsd qsd "$MNT"/p8q{1..8}.raw
    record qsd unlock8_ms "$rep" "$(jget "$RUN/p8-qsd.json" 'd["ms"]')"
    record qsd unlock8_cpu_ms "$rep" "$(jget "$RUN/p8-qsd.json" 'round(d["cpu_ms"])')"
    for i in 1 2 3 4 5 6 7 8; do cmds+=(--cmd "$(qsd_cmd "$MNT/p8p$i-" "$IMG/par8/u$i.img")"); done
    qreads=(); for i in 1 2 3 4 5 6 7 8; do qreads+=(--read "$MNT/p8p$i-1.raw"); done
    firstread p8-qsd8 "${qreads[@]}" "${cmds[@]}"
    stop_spawned p8-qsd8 qsd "$MNT"/p8p{1..8}-1.raw
    record qsd8 unlock8_ms "$rep" "$(jget "$RUN/p8-qsd8.json" 'd["ms"]')"
    record qsd8 unlock8_cpu_ms "$rep" "$(jget "$RUN/p8-qsd8.json" 'round(d["cpu_ms"])')"
    for i in 1 2 3 4 5 6 7 8; do
        a=$(jget "$RUN/p8-luksfs.json" "d['sha256']['$mp/u$i.img.raw']"); b=$(jget "$RUN/p8-qsd.json" "d['sha256']['$MNT/p8q$i.raw']")
        [ "$a" = "$b" ] || die "BYTES DIFFER: first 512 bytes of par8/u$i.img: luksfs sha256 $a, qsd $b"
    done
    log "rep $rep: unlock ($UNLOCK_ITERS iterations): luksfs $(jget "$RUN/u1-luksfs.json" 'd["ms"]') ms, qsd $(jget "$RUN/u1-qsd.json" 'd["ms"]') ms; 8 images: luksfs $(jget "$RUN/p8-luksfs.json" 'd["ms"]') ms, qsd 1 process $(jget "$RUN/p8-qsd.json" 'd["ms"]') ms, 8 processes $(jget "$RUN/p8-qsd8.json" 'd["ms"]') ms"
}
mount_figs() { # REP: 1,000-image directory, spawn -> readdir lists 1,000
    local rep=$1 mp=$MNT/d1000 out t0
    mkdir -p "$mp"
    cat "$IMG"/dir1000/*.img >/dev/null
    firstread d1000 --list "$mp" --expect 1000 --cmd "$(q "$LUKSFS" mount "$IMG/dir1000" "$mp" --key-file "$KEY" --cache-size "$CACHE")"
    record luksfs mount1000_ms "$rep" "$(jget "$RUN/d1000.json" 'd["ms"]')"
    if [ "$rep" = 1 ]; then
        out=$(timeout -k 5 120 cmp "$mp/img0001.img.raw" "$TINY_PLAIN" 2>&1) || die "BYTES DIFFER: luksfs, dir1000/img0001.img: $out"
        out=$(timeout -k 5 120 cmp "$mp/img1000.img.raw" "$TINY_PLAIN" 2>&1) || die "BYTES DIFFER: luksfs, dir1000/img1000.img: $out"
    fi
    t0=$(date +%s%N)
    stop_spawned d1000 luksfs "$mp"
    record luksfs unmount1000_ms "$rep" $((($(date +%s%N) - t0) / 1000000))
    log "rep $rep: mount of 1,000 images → ls: $(jget "$RUN/d1000.json" 'd["ms"]') ms"
}

LOAD_START=$(uptime)
log "2. figures ($REPS rep(s)); load: $LOAD_START"
for rep in $(seq 1 "$REPS"); do
    seq_figs "$rep"
    rand_figs "$rep"
    rss_figs "$rep"
    unlock_figs "$rep"
    mount_figs "$rep"
done
LOAD_END=$(uptime)

# ------------------------------------------------------------------ report
{
    echo "# luksfs benchmark ($(date -u +%FT%TZ))"
    echo
    echo "- luksfs $DESC ($("$LUKSFS" --version 2>/dev/null | head -1)), --cache-size $CACHE, default threads; vs $(qemu-storage-daemon --version | head -1) FUSE export"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "- images: $(label "$S") plaintext (RSS also at $(label "$SMALL")), $REPS repetition(s), median shown; fio runs capped at ${FIO_RT} s"
    echo "- load at start: ${LOAD_START#*load average: }; at end: ${LOAD_END#*load average: }"
    echo "- read_ahead_kb of the FUSE mounts: luksfs $(awk -F'\t' '$2 == "read_ahead_kb.luksfs.luks1" {print $4}' "$RES"), qsd $(awk -F'\t' '$2 == "read_ahead_kb.qsd.luks1" {print $4}' "$RES"); PBKDF2 iterations: LUKS1 image $(awk -F'\t' '$2 == "iterations.luks1" {print $4}' "$RES"), unlock headers $(awk -F'\t' '$2 == "iterations.unlock1m" {print $4}' "$RES")"
    if [ "$URING" = on ]; then
        echo "- luksfs serves through /dev/fuse (its default); rows marked io_uring: luksfs --io-uring (bench.sh set fuse.enable_uring=Y for the run, it was ${URING_WAS:-?})"
    else
        echo "- luksfs serves through /dev/fuse (its default); luksfs --io-uring not measured: $([ -n "$NO_URING" ] && echo '--no-uring' || echo 'the kernel does not offer FUSE over io_uring')"
    fi
    echo "- ciphertext images and plaintext locked in the page cache for the run (vmtouch -l: this VM's DAMON pageout evicts cold file pages)"
    echo "- all exposed files were byte-identical to the plaintext (cmp, both tools)"
    echo
} >"$W/table-header.md"
cat "$W/table-header.md"
"$PY" "$HELPERS/summary.py" "$RES" "$W/table" "$BUDGET" "$(nproc)" "$(label "$SMALL")" "$(label "$S")" "$UNLOCK_ITERS"
{ cat "$W/table-header.md" "$W/table.md"; } >"$W/table.md.tmp" && mv "$W/table.md.tmp" "$W/table.md"
# The layer stack (issue 12): an LV in LUKS2 in a GPT partition against a whole-file LUKS2 image.
log "nested volumes: scripts/bench/nested.sh"
{ echo; "$HELPERS/nested.sh" "$LUKSFS" "$W/nested" "$S" "$REPS"; } >>"$W/table.md" 2>>"$LOGD/nested.log" ||
    anomaly "scripts/bench/nested.sh failed (see $LOGD/nested.log)"
# Cinder backups read in place (issue 13): posix and Swift backups by cinder's own drivers.
log "cinder backups: scripts/bench/cinder.sh"
{ echo; "$HELPERS/cinder.sh" "$LUKSFS" "$W/cinder" "$S" "$REPS"; } >>"$W/table.md" 2>>"$LOGD/cinder.log" ||
    anomaly "scripts/bench/cinder.sh failed (see $LOGD/cinder.log)"
# Glance images read in place (issue 15): a LUKS image in a real Glance, against curl.
log "glance images: scripts/bench/glance.sh"
{ echo; "$HELPERS/glance.sh" "$LUKSFS" "$W/glance" "$S" "$REPS"; } >>"$W/table.md" 2>>"$LOGD/glance.log" ||
    anomaly "scripts/bench/glance.sh failed (see $LOGD/glance.log)"
if [ -s "$ANOM" ]; then
    echo; echo "Anomalies seen in luksfs/qsd during the run:"; sed 's/^/  - /' "$ANOM"
    { echo; echo "Anomalies:"; sed 's/^/- /' "$ANOM"; } >>"$W/table.md"
fi
echo
echo "table: $W/table.md and $W/table.tsv; raw rows: $RES; logs: $LOGD"
log "done in $((SECONDS - T_START)) s"
