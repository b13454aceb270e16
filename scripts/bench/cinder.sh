#!/usr/bin/env bash
# scripts/bench/cinder.sh LUKSFS WORKDIR [SIZE_MIB] [REPS] -- Cinder backups read in place against
# their peers, side by side in one run (issue 13). Called by scripts/bench.sh; runs alone too
# (needs root, /dev/fuse, qemu-img, fio, curl, vmtouch; installs cinder and Swift into target/).
#
# * Volume: SIZE MiB of seeded random plaintext in a LUKS1 image made by qemu-img (aes-xts-plain64,
#   the format Cinder's encrypted volumes use). Backed up twice by cinder's own drivers
#   (scripts/cinder-backup.py): PosixBackupDriver and SwiftBackupDriver (a real Swift,
#   scripts/swift-up.sh, tempauth), 50 MiB objects (the Swift driver's default; with the posix
#   driver's 2 GB default, verify would hold a 2 GB object at a time: it checks each object's
#   md5, over the whole object),
#   default zlib compression (a LUKS ciphertext does not shrink: cinder stores it uncompressed).
# * Bytes first: the mounted posix backup and the plain image are compared with the plaintext.
# * verify, posix: `luksfs verify BACKUP` (objects md5- and sha256file-checked, decrypted,
#   plaintext and ciphertext hashed) against `luksfs verify IMAGE` of the plain LUKS file.
# * verify, Swift: `luksfs verify swift://…/ID` against one plain sequential client fetching the
#   same objects (curl, one connection, every object of the backup to /dev/null).
# * seq: dd bs=1M of the mounted backup and of the mounted plain image (page cache of the exposed
#   file dropped; backup objects and image in the page cache).
# * random: fio randread bs=4k psync over the first 128 MiB of each exposed file, after one dd of
#   that range (the "chunk already touched" case: the backup's objects are in its chunk cache).
#   Each figure on a fresh mount; the median of REPS.
# * floor: the least time any verify of the posix backup can take on this machine's cores (the
#   plain verify's CPU time plus md5 and SHA-256 of every byte, timed with openssl), and the
#   best ratio that allows.
# Output: a markdown table on stdout (figure | backup | peer | ratio | target | verdict).
set -Eeuo pipefail
BENCH=cinder
. "$(dirname "$0")/lib.sh"
bench_args "$@"
cleanup() {
    unmount_all
    [ -s "$W/vmtouch.pid" ] && kill "$(cat "$W/vmtouch.pid")" 2>/dev/null || true
    [ -d "$W/swift" ] && bash "$HERE/swift-down.sh" "$W/swift" >/dev/null 2>&1 || true
}
trap cleanup EXIT
printf %s 'cinder bench passphrase' >"$W/key"
KEY=$W/key
VENV=$(bash "$HERE/cinder-backup-make.sh" --install)

# ---------------------------------------------------------------- volume and backups
if [ ! -s "$W/vol.luks" ] || [ "$(stat -c %s "$W/plain")" != $((SIZE << 20)) ]; then
    log "making the volume ($SIZE MiB plaintext)"
    rm -rf "$W/posix" "$W/state"
    { openssl enc -aes-256-ctr -nosalt -pass pass:cinder -in /dev/zero 2>/dev/null || true; } | head -c $((SIZE << 20)) >"$W/plain"
    qemu-img convert -q -f raw "$W/plain" --object "secret,id=s0,file=$KEY" -O luks \
        -o key-secret=s0,iter-time=10 "$W/vol.luks"
fi
mkdir -p "$W/posix" "$W/state"
conf() { # DRIVER-LINES... -> a cinder.conf on stdout
    printf '[DEFAULT]\nstate_path = %s\nbackup_compression_algorithm = zlib\n' "$W/state"
    printf 'backup_sha_block_size_bytes = 32768\nbackup_enable_progress_timer = false\nlog_file = %s\n' "$W/state/cinder.log"
    printf '%s\n' "$@"
    printf '[database]\nconnection = sqlite:///%s\n' "$W/state/cinder.sqlite"
}
conf "backup_driver = cinder.backup.drivers.posix.PosixBackupDriver" "backup_posix_path = $W/posix" \
    "backup_file_size = 52428800" >"$W/state/posix.conf"
[ -s "$W/state/cinder.sqlite" ] || PYTHONWARNINGS=ignore "$VENV/bin/cinder-manage" --config-file "$W/state/posix.conf" db sync >/dev/null 2>&1
if [ ! -s "$W/posix.id" ]; then
    log "cinder posix backup"
    PYTHONWARNINGS=ignore "$VENV/bin/python" "$HERE/cinder-backup.py" "$W/state/posix.conf" "$W/vol.luks" |
        awk '$1 == "backup" {print $2}' >"$W/posix.id"
fi
POSIX_ID=$(cat "$W/posix.id")
log "starting Swift"
bash "$HERE/swift-up.sh" "$W/swift" >/dev/null
set -a; . "$W/swift/swift.env"; set +a
conf "backup_driver = cinder.backup.drivers.swift.SwiftBackupDriver" "backup_swift_auth = single_user" \
    "backup_swift_auth_version = 1" "backup_swift_auth_url = $SWIFT_AUTH_URL" "backup_swift_user = $SWIFT_USER" \
    "backup_swift_key = $SWIFT_KEY" "backup_swift_container = volumebackups" \
    "backup_swift_object_size = 52428800" "backup_swift_block_size = 32768" >"$W/state/swift.conf"
log "cinder Swift backup"
PYTHONWARNINGS=ignore "$VENV/bin/python" "$HERE/cinder-backup.py" "$W/state/swift.conf" "$W/vol.luks" >"$W/swift.out"
SWIFT_ID=$(awk '$1 == "backup" {print $2}' "$W/swift.out")
SWIFT_PREFIX=$(awk '$1 == "prefix" {print $2}' "$W/swift.out")
export ST_AUTH=$SWIFT_AUTH_URL ST_USER=$SWIFT_USER ST_KEY=$SWIFT_KEY

# ---------------------------------------------------------------- helpers
MP=$W/mnt
start() { # SOURCE -> mounted at $MP; prints the exposed file
    "$LUKSFS" mount "$1" "$MP" --key-file "$KEY" --daemon >>"$W/mount.log" 2>&1
    MOUNTS=("$MP")
    ls -d "$MP"/*.raw | head -1
}
iops() { # FILE: 4 KiB random reads over its first 128 MiB, touched once first
    dd if="$1" of=/dev/null bs=1M count=128 status=none
    fio --name=rr --filename="$1" --readonly --rw=randread --bs=4k --size=128m --direct=0 --ioengine=psync \
        --iodepth=1 --invalidate=1 --numjobs=1 --runtime=10 --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))'
}
curl_all() { # every object of the Swift backup, by one sequential client (one connection)
    local tok url
    tok=$(curl -fsS -D - -o /dev/null -H "X-Auth-User: $SWIFT_USER" -H "X-Auth-Key: $SWIFT_KEY" "$SWIFT_AUTH_URL" |
        tr -d '\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
    url=$SWIFT_URL/volumebackups
    curl -fsS -H "X-Auth-Token: $tok" "$url?prefix=$SWIFT_PREFIX" |
        awk -v u="$url" '{printf "url = \"%s/%s\"\noutput = \"/dev/null\"\n", u, $0}' >"$W/curl.cfg"
    curl -fsS -H "X-Auth-Token: $tok" -K "$W/curl.cfg"
}

# ---------------------------------------------------------------- bytes first
rm -f "$W/vmtouch.pid"
vmtouch -l -d -q -P "$W/vmtouch.pid" "$W/vol.luks" "$W/posix" || { echo "vmtouch -l failed" >&2; exit 1; }
for _ in $(seq 100); do [ -s "$W/vmtouch.pid" ] && break; sleep 0.05; done
f=$(start "$W/posix"); cmp "$f" "$W/plain" || { echo "BYTES DIFFER: posix backup" >&2; exit 1; }; stop
f=$(start "$W/vol.luks"); cmp "$f" "$W/plain" || { echo "BYTES DIFFER: plain image" >&2; exit 1; }; stop
log "bytes equal: mounted posix backup and plain image"

# ---------------------------------------------------------------- figures
: >"$W/cinder.tsv"
for ((r = 1; r <= REPS; r++)); do
    printf 'verify\tposix\t%s\n' "$(secs "$LUKSFS" verify "$W/posix/$POSIX_ID" --key-file "$KEY")" >>"$W/cinder.tsv"
    printf 'verify\tplain\t%s\n' "$(secs "$LUKSFS" verify "$W/vol.luks" --key-file "$KEY")" >>"$W/cinder.tsv"
    printf 'verify\tswift\t%s\n' "$(secs "$LUKSFS" verify "swift://volumebackups/$SWIFT_ID" --key-file "$KEY")" >>"$W/cinder.tsv"
    printf 'verify\tcurl\t%s\n' "$(secs curl_all)" >>"$W/cinder.tsv"
    for which in posix plain; do
        if [ $which = posix ]; then src=$W/posix; else src=$W/vol.luks; fi
        f=$(start "$src"); printf 'seq\t%s\t%s\n' $which "$(seqmb "$f")" >>"$W/cinder.tsv"; stop
        f=$(start "$src"); printf 'rand\t%s\t%s\n' $which "$(iops "$f")" >>"$W/cinder.tsv"; stop
    done
    log "rep $r: $(tail -n 8 "$W/cinder.tsv" | tr '\t\n' ' ;')"
done
fig() { awk -F'\t' -v f="$1" -v w="$2" '$1 == f && $2 == w {print $3}' "$W/cinder.tsv" | median; }
vp=$(fig verify posix) vl=$(fig verify plain) vs=$(fig verify swift) vc=$(fig verify curl)
sp=$(fig seq posix) sl=$(fig seq plain) rp=$(fig rand posix) rl=$(fig rand plain)
echo "| Cinder backup figure ($SIZE MiB LUKS1 volume, 50 MiB objects, median of $REPS) | backup | peer | ratio | target | verdict |"
echo "|---|---|---|---|---|---|"
echo "| verify, posix backup vs the plain LUKS file (s) | $vp | $vl | $(ratio "$vl" "$vp") | >= 0.8 | $(verdict "$(ratio "$vl" "$vp")" 0.8) |"
echo "| verify, Swift backup vs curl of its objects (s) | $vs | $vc | $(ratio "$vc" "$vs") | >= 0.8 | $(verdict "$(ratio "$vc" "$vs")" 0.8) |"
echo "| streaming a mounted posix backup vs the plain file, dd bs=1M (MB/s) | $sp | $sl | $(ratio "$sp" "$sl") | >= 0.8 | $(verdict "$(ratio "$sp" "$sl")" 0.8) |"
echo "| random 4 KiB reads in touched chunks, fio 1 job (IOPS) | $rp | $rl | $(ratio "$rp" "$rl") | >= 0.9 | $(verdict "$(ratio "$rp" "$rl")" 0.9) |"
# The CPU floor of the posix verify: what it must compute beyond the plain file's verify (each
# object's md5 and its _sha256file digests, over every byte), timed with openssl on this
# machine, added to the plain verify's own CPU time and spread over every core: no verify of
# the backup can take less, so no ratio above plain/floor is possible here.
cat "$W/vol.luks" >/dev/null
md5=$(secs openssl dgst -md5 "$W/vol.luks") sha=$(secs openssl dgst -sha256 "$W/vol.luks")
pc=$(cpusecs "$LUKSFS" verify "$W/vol.luks" --key-file "$KEY")
floor=$(awk -v a="$pc" -v b="$md5" -v c="$sha" -v n="$(nproc)" 'BEGIN {printf "%.3f", (a + b + c) / n}')
echo "| CPU floor of the posix verify: (plain verify's CPU $pc s + md5 $md5 s + sha256 $sha s) / $(nproc) cores (s) | $floor | $vl | $(ratio "$vl" "$floor") at best | >= 0.8 | $(floor_verdict "$(ratio "$vl" "$floor")" 0.8) |"
