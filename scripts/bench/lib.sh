# scripts/bench/lib.sh -- what the scripts of scripts/bench/ share; sourced, after setting BENCH
# (the tag of log lines), and MP, MOUNTS and W where the functions use them.

bench_args() { # LUKSFS WORKDIR [SIZE_MIB] [REPS] -> LUKSFS W SIZE REPS HERE MOUNTS; makes W/mnt
    local usage="usage: $BENCH.sh LUKSFS WORKDIR [SIZE_MIB] [REPS]"
    LUKSFS=${1:?$usage}
    W=${2:?$usage}
    SIZE=${3:-1024}
    REPS=${4:-3}
    HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mkdir -p "$W/mnt"
    W=$(cd "$W" && pwd)
    MOUNTS=()
}
unmount_all() { # every mount in MOUNTS (lazily when busy)
    local m
    for m in "${MOUNTS[@]}"; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; }; done
}
log() { printf '[%s %s] %s\n' "$BENCH" "$(date +%T)" "$*" >&2; }
stop() { fusermount3 -u "$MP"; MOUNTS=(); sleep 0.2; } # unmount $MP
seqmb() { # FILE: MB/s of one dd bs=1M of it, its page cache dropped first
    dd if="$1" iflag=nocache count=0 status=none
    LC_ALL=C dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied,/{for(i=1;i<=NF;i++) if($i=="copied,"){printf "%.0f", $1/$(i+1)/1e6}}'
}
secs() { # COMMAND...: seconds it took; verify may exit 6 (WARN: random plaintext is unrecognised)
    local t0 t1 rc=0
    t0=$(date +%s%N); "$@" >/dev/null 2>>"$W/verify.log" || rc=$?; t1=$(date +%s%N)
    [ $rc = 0 ] || [ $rc = 6 ] || { echo "failed (exit $rc): $*" >&2; exit 1; }
    awk -v n=$((t1 - t0)) 'BEGIN {printf "%.3f", n / 1e9}'
}
cpusecs() { # COMMAND...: CPU seconds (user + system) it took, threads included
    local TIMEFORMAT='%U %S' t rc=0
    t=$( { time "$@" >/dev/null 2>>"$W/verify.log" || rc=$?; } 2>&1 )
    [ $rc = 0 ] || [ $rc = 6 ] || { echo "failed (exit $rc): $*" >&2; exit 1; }
    awk -v t="$t" 'BEGIN {split(t, a, " "); printf "%.3f", a[1] + a[2]}'
}
floor_verdict() { # BEST_RATIO TARGET: whether this machine's cores allow the target at all
    awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "within reach" : "out of reach here"}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "PASS" : "FAIL"}'; } # RATIO TARGET
