#!/usr/bin/env bash
# scripts/bench/nested.sh LUKSFS WORKDIR [SIZE_MIB] [REPS] -- the layer stack's cost, side by side in
# one run (issue 12): an LV inside LUKS2 inside a GPT partition against a whole-file LUKS2 image of
# the same plaintext, same cipher and sector size; and how fast a directory of 100 laptop-style
# disks is listed. Called by scripts/bench.sh; runs alone too (needs root, /dev/fuse, sgdisk,
# lvm2, cryptsetup, fio, losetup).
#
# * Images: SIZE MiB of seeded random plaintext (openssl aes-256-ctr of zeros). Whole file:
#   `cryptsetup reencrypt --encrypt` of it (LUKS2, aes-xts-plain64, 512-bit key, 4 KiB sectors,
#   PBKDF2). Nested: an LVM2 PV (lvm2 on a loop device, activation=0) whose one LV holds the
#   same plaintext, encrypted the same way, placed in partition 2 of a GPT disk made by sgdisk
#   (partition 1: a 32 MiB ESP).
# * Ciphertexts locked in the page cache (vmtouch -l), as in scripts/bench.sh.
# * Bytes first: both exposed files are compared with the plaintext (cmp) before any figure.
# * seq: dd bs=1M of the exposed file (page cache of the exposed file dropped, ciphertext in the
#   page cache); random: fio randread bs=4k psync, 1 job, every block at most once (as bench.sh).
#   Each figure on a fresh mount, tools alternating; the median of REPS.
# * list: from spawning `luksfs mount` on a directory of 100 hard links to the nested disk (GPT:
#   ESP, LUKS2 -> LVM2), each probed as its own image until `ls` shows 100 `.d` folders.
# Output: a markdown table on stdout (figure | nested | whole file | ratio | target | verdict).
set -Eeuo pipefail
BENCH=nested
. "$(dirname "$0")/lib.sh"
bench_args "$@"
LVMC='global { activation = 0 } devices { obtain_device_list_from_udev = 0 } activation { udev_sync = 0 udev_rules = 0 }'
LOOPS=()
cleanup() {
    local l
    unmount_all
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    [ -s "$W/vmtouch.pid" ] && kill "$(cat "$W/vmtouch.pid")" 2>/dev/null || true
}
trap cleanup EXIT
printf %s 'nested bench passphrase' >"$W/key"
KEY=$W/key
enc() { # FILE: LUKS2 in place (16 MiB header in front), as scripts/bench.sh makes its LUKS2 image
    local f=$1 sz; sz=$(stat -c %s "$f")
    truncate -s $((sz + 32 * 1024 * 1024)) "$f"
    cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --force-offline-reencrypt --batch-mode \
        --key-file "$KEY" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 \
        --cipher aes-xts-plain64 --key-size 512 "$f" >/dev/null
    truncate -s $((sz + 16 * 1024 * 1024)) "$f"
}

# ---------------------------------------------------------------- images
if [ ! -s "$W/disk.raw" ] || [ "$(stat -c %s "$W/plain")" != $((SIZE << 20)) ]; then
    log "making the images ($SIZE MiB plaintext)"
    # (openssl dies of SIGPIPE when head has enough: not an error)
    { openssl enc -aes-256-ctr -nosalt -pass pass:nested -in /dev/zero 2>/dev/null || true; } | head -c $((SIZE << 20)) >"$W/plain"
    cp "$W/plain" "$W/whole.luks2"; enc "$W/whole.luks2"
    # PV with one LV of exactly SIZE MiB (4 MiB extents, 1 MiB data alignment), then the LV's bytes
    truncate -s $(((SIZE + 8) << 20)) "$W/pv.img"
    L=$(losetup -f --show "$W/pv.img"); LOOPS+=("$L")
    pvcreate --config "$LVMC" -q "$L" >/dev/null 2>&1
    vgcreate --config "$LVMC" -q -s 4M bench-vg "$L" >/dev/null 2>&1
    lvcreate --config "$LVMC" -q -an -Zn -L "${SIZE}M" -n data bench-vg >/dev/null 2>&1
    PE=$(pvs --config "$LVMC" --noheadings --units b --nosuffix -o pe_start "$L" 2>/dev/null | tr -d ' ')
    losetup -d "$L"; LOOPS=()
    dd if="$W/plain" of="$W/pv.img" bs=1M seek="$PE" oflag=seek_bytes conv=notrunc status=none
    enc "$W/pv.img"
    local_sz=$(stat -c %s "$W/pv.img")
    truncate -s $((34 * 1024 * 1024 + local_sz + 1024 * 1024)) "$W/disk.raw"
    sgdisk -o -n1:2048:+32M -t1:ef00 -n2:0:+$((local_sz / 512)) -t2:8309 -c2:cryptdata "$W/disk.raw" >/dev/null
    P2=$(sgdisk -i2 "$W/disk.raw" | awk '/First sector/{print $3}')
    dd if="$W/pv.img" of="$W/disk.raw" bs=1M seek=$((P2 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
    rm -f "$W/pv.img"
fi

# ---------------------------------------------------------------- helpers
MP=$W/mnt
start() { # SOURCE -> mounted at $MP, waits for FILE ($2, relative) to appear
    mkdir -p "$MP"
    "$LUKSFS" mount "$1" "$MP" --key-file "$KEY" --daemon >>"$W/mount.log" 2>&1
    MOUNTS=("$MP")
    local i
    for ((i = 0; i < 600; i++)); do [ -e "$MP/$2" ] && return 0; sleep 0.05; done
    echo "nested.sh: $MP/$2 did not appear" >&2; ls -R "$MP" >&2; exit 1
}
NESTED_REL=disk.raw.d/bench--vg-data.raw
WHOLE_REL=whole.luks2.raw
iops() {
    fio --name=rr --filename="$1" --readonly --rw=randread --bs=4k --direct=0 --ioengine=psync --iodepth=1 \
        --invalidate=1 --numjobs=1 --runtime=10 --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))'
}

# ---------------------------------------------------------------- bytes first
# Both ciphertexts stay in the page cache for the run (this VM's DAMON pageout evicts cold file
# pages; scripts/bench.sh does the same).
rm -f "$W/vmtouch.pid"
vmtouch -l -d -q -P "$W/vmtouch.pid" "$W/disk.raw" "$W/whole.luks2" || { echo "vmtouch -l failed" >&2; exit 1; }
for _ in $(seq 100); do [ -s "$W/vmtouch.pid" ] && break; sleep 0.05; done
cat "$W/disk.raw" "$W/whole.luks2" >/dev/null
start "$W/disk.raw" "$NESTED_REL"; cmp "$MP/$NESTED_REL" "$W/plain" || { echo "BYTES DIFFER: nested LV" >&2; exit 1; }; stop
start "$W/whole.luks2" "$WHOLE_REL"; cmp "$MP/$WHOLE_REL" "$W/plain" || { echo "BYTES DIFFER: whole file" >&2; exit 1; }; stop
log "bytes equal: nested LV and whole file"

# ---------------------------------------------------------------- figures
: >"$W/nested.tsv"
for ((r = 1; r <= REPS; r++)); do
    for which in nested whole; do
        if [ $which = nested ]; then src=$W/disk.raw rel=$NESTED_REL; else src=$W/whole.luks2 rel=$WHOLE_REL; fi
        cat "$src" >/dev/null
        start "$src" "$rel"; printf '%s\tseq\t%s\n' $which "$(seqmb "$MP/$rel")" >>"$W/nested.tsv"; stop
        start "$src" "$rel"; printf '%s\trand\t%s\n' $which "$(iops "$MP/$rel")" >>"$W/nested.tsv"; stop
    done
    log "rep $r: $(tr '\n' ' ' <"$W/nested.tsv" | tail -c 200)"
done
# 100 laptop-style disks: sparse copies of the nested disk, listed
mkdir -p "$W/many"
# (hard links: 100 names, each opened and probed as its own image, without 100 copies' space)
for i in $(seq -w 1 100); do [ -e "$W/many/disk-$i.raw" ] || ln "$W/disk.raw" "$W/many/disk-$i.raw"; done
LIST_MS=()
for ((r = 1; r <= REPS; r++)); do
    t0=$(date +%s%N)
    "$LUKSFS" mount "$W/many" "$MP" --key-file "$KEY" >>"$W/mount.log" 2>&1 &
    pid=$!; MOUNTS=("$MP")
    for ((i = 0; i < 6000; i++)); do
        n=$(ls "$MP" 2>/dev/null | grep -c '\.d$' || true)
        [ "$n" = 100 ] && break
        sleep 0.002
    done
    t1=$(date +%s%N)
    LIST_MS+=($(((t1 - t0) / 1000000)))
    stop; wait "$pid" || true
done
fig() { awk -F'\t' -v w="$1" -v f="$2" '$1 == w && $2 == f {print $3}' "$W/nested.tsv" | median; }
ns=$(fig nested seq) ws=$(fig whole seq) nr=$(fig nested rand) wr=$(fig whole rand)
lm=$(printf '%s\n' "${LIST_MS[@]}" | median)
echo "| figure ($SIZE MiB, median of $REPS) | LV in LUKS2 in GPT p2 | whole-file LUKS2 | ratio | target | verdict |"
echo "|---|---|---|---|---|---|"
echo "| streaming, dd bs=1M (MB/s) | $ns | $ws | $(ratio "$ns" "$ws") | >= 0.95 | $(verdict "$(ratio "$ns" "$ws")" 0.95) |"
echo "| random 4 KiB reads, fio 1 job (IOPS) | $nr | $wr | $(ratio "$nr" "$wr") | >= 0.95 | $(verdict "$(ratio "$nr" "$wr")" 0.95) |"
echo "| 100 laptop disks listed after mount start (ms) | $lm | - | - | <= 1000 | $(awk -v m="$lm" 'BEGIN {print (m <= 1000) ? "PASS" : "FAIL"}') |"
