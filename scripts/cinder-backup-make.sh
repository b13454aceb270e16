#!/usr/bin/env bash
# cinder-backup-make.sh -- write real Cinder backups (cinder's own PosixBackupDriver) for the tests.
#
#   scripts/cinder-backup-make.sh OUTDIR
#
# Installs cinder (pinned by scripts/cinder-constraints.txt) into a venv, once: $LUKSFS_CINDER_VENV,
# default target/cinder-venv (kept, so reruns take seconds). Makes a cinder sqlite database with
# `cinder-manage db sync` and drives the driver with scripts/cinder-backup.py (no Cinder services).
#
# What it writes under OUTDIR:
#   key                    the LUKS passphrase
#   vol/luks.N             a LUKS1 volume made by qemu-img, in states N = 0, 1, 2 (changed in place
#                          by qemu-io through the luks driver between states)
#   vol/plain.N            its plaintext in each state (qemu-img convert to raw)
#   backups/               the backup_posix_path root: <id[0:2]>/<id[2:4]>/<backup id>/...
#   manifest.tsv           kind compression state backup_id volume_id parent_id expected-file
#                          for kind luks (the LUKS volume backed up) and raw (the plaintext volume
#                          backed up: it compresses, so every object goes through the decompressor),
#                          each compression zlib, bz2, zstd, none; state 0 is the full backup,
#                          1 and 2 incrementals on the previous one
#   restored.raw-zlib      cinder's own restore of the raw/zlib state-2 backup (a cross-check)
# backup_file_size is 1 MiB so the small volumes span several objects.
#
#   scripts/cinder-backup-make.sh --install
#
# Only installs the venv (for scripts/bench/cinder.sh, which writes its own backups).
#
#   scripts/cinder-backup-make.sh OUTDIR --swift SWIFT_ENV
#   scripts/cinder-backup-make.sh OUTDIR --s3 SWIFT_ENV
#
# The same volumes backed up by cinder's SwiftBackupDriver (tempauth v1 with the
# SWIFT_AUTH_URL/SWIFT_USER/SWIFT_KEY of SWIFT_ENV, as scripts/swift-up.sh writes it; container
# `volumebackups`; luks with zlib and raw with zstd) or S3BackupDriver (boto3 against Swift's s3api
# at S3_ENDPOINT with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; bucket `s3backups`; luks with zstd
# and raw with bz2) instead, 1 MiB objects, 3 states each; OUTDIR/backups stays empty and there is
# no restore.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:?usage: cinder-backup-make.sh OUTDIR [--swift|--s3 SWIFT_ENV]}
remote=${2:-} swift_env=
case $remote in
    --swift | --s3) swift_env=$(cd "$(dirname "$3")" && pwd)/$(basename "$3") ;;
    '') ;;
    *) echo "usage: cinder-backup-make.sh OUTDIR [--swift|--s3 SWIFT_ENV]" >&2; exit 2 ;;
esac
venv=${LUKSFS_CINDER_VENV:-$root/target/cinder-venv}
export PYTHONWARNINGS=ignore # eventlet's deprecation banner on every run
log() { printf '[cinder-backup-make] %s\n' "$*" >&2; }

# one installer at a time (tests run this script from several processes)
mkdir -p "$(dirname "$venv")"
(
    flock 9
    if ! "$venv/bin/python" -c 'import cinder.backup.chunkeddriver, zstd, swiftclient, boto3' 2>/dev/null; then
        log "installing cinder into $venv (about two minutes)"
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/cinder-constraints.txt" \
            cinder zstd python-swiftclient boto3
    fi
) 9>"$venv.lock"
[[ $out == --install ]] && { echo "$venv"; exit 0; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/backups" "$out/state" "$out/vol" "$out/manifest.tsv"
mkdir -p "$out/backups" "$out/state" "$out/vol"
printf 'luksfs-cinder-test' >"$out/key"

for comp in zlib bz2 zstd none; do
    cat >"$out/state/$comp.conf" <<EOF
[DEFAULT]
state_path = $out/state
backup_driver = cinder.backup.drivers.posix.PosixBackupDriver
backup_posix_path = $out/backups
backup_compression_algorithm = $comp
backup_file_size = 1048576
backup_sha_block_size_bytes = 32768
backup_enable_progress_timer = false
log_file = $out/state/cinder.log
[database]
connection = sqlite:///$out/state/cinder.sqlite
EOF
done
"$venv/bin/cinder-manage" --config-file "$out/state/zlib.conf" db sync >/dev/null 2>&1

# The volume: 6 MiB + 4608 bytes of plaintext (not a multiple of the 32 KiB hash block): seeded
# random data, zeros and text, so the raw backups compress and the LUKS header chunk compresses.
python3 - "$out/vol/plain.0" <<'EOF'
import random, sys
r = random.Random(13)
parts = [r.randbytes(1 << 20), bytes(1 << 20), b'luksfs cinder backup test line\n' * 40000]
data = b''.join(parts)
data += r.randbytes(6 * 2**20 + 4608 - len(data))
open(sys.argv[1], 'wb').write(data)
EOF
sec="--object secret,id=s0,file=$out/key"
qemu-img convert -q -f raw "$out/vol/plain.0" $sec -O luks -o key-secret=s0,iter-time=10 "$out/vol/luks.0"
luks_io() { # luks_io FILE qemu-io-command...
    local f=$1; shift
    local args=()
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io $sec --image-opts "driver=luks,file.filename=$f,key-secret=s0" "${args[@]}" >/dev/null
}
cp "$out/vol/luks.0" "$out/vol/luks.1"
# state 1: an unaligned 100,000-byte change, a run of zeros over data, the last sector
luks_io "$out/vol/luks.1" 'write -P 0xa5 1000000 100000' 'write -z 196608 65536' "write -P 0x3c $((6 * 2**20 + 4096)) 512"
cp "$out/vol/luks.1" "$out/vol/luks.2"
# state 2: overwrite part of state 1's change and a block in the text
luks_io "$out/vol/luks.2" 'write -P 0x5a 1050000 4096' "write -P 0x11 $((4 * 2**20)) 32768"
for n in 1 2; do
    qemu-img convert -q $sec --image-opts "driver=luks,file.filename=$out/vol/luks.$n,key-secret=s0" -O raw "$out/vol/plain.$n"
done

# every backup in one python process (importing cinder takes seconds)
jobs=$out/state/jobs.tsv
: >"$jobs"
conf=$out/state/zlib.conf
chains="luks:zlib luks:bz2 luks:zstd luks:none raw:zlib raw:bz2 raw:zstd raw:none"
if [[ $remote == --s3 ]]; then
    # shellcheck disable=SC1090
    . "$swift_env"
    conf=$out/state/s3.conf
    cat >"$conf" <<EOF
[DEFAULT]
state_path = $out/state
backup_driver = cinder.backup.drivers.s3.S3BackupDriver
backup_s3_endpoint_url = $S3_ENDPOINT
backup_s3_store_access_key = $AWS_ACCESS_KEY_ID
backup_s3_store_secret_key = $AWS_SECRET_ACCESS_KEY
backup_s3_store_bucket = s3backups
backup_s3_object_size = 1048576
backup_s3_block_size = 32768
backup_compression_algorithm = zlib
backup_enable_progress_timer = false
log_file = $out/state/cinder.log
[database]
connection = sqlite:///$out/state/cinder.sqlite
EOF
    chains="luks:zstd raw:bz2"
elif [[ -n $swift_env ]]; then
    # shellcheck disable=SC1090
    . "$swift_env"
    conf=$out/state/swift.conf
    cat >"$conf" <<EOF
[DEFAULT]
state_path = $out/state
backup_driver = cinder.backup.drivers.swift.SwiftBackupDriver
backup_swift_auth = single_user
backup_swift_auth_version = 1
backup_swift_auth_url = $SWIFT_AUTH_URL
backup_swift_user = $SWIFT_USER
backup_swift_key = $SWIFT_KEY
backup_swift_container = volumebackups
backup_swift_object_size = 1048576
backup_swift_block_size = 32768
backup_compression_algorithm = zlib
backup_enable_progress_timer = false
log_file = $out/state/cinder.log
[database]
connection = sqlite:///$out/state/cinder.sqlite
EOF
    chains="luks:zlib raw:zstd"
fi
for chain in $chains; do
    kind=${chain%:*} comp=${chain#*:}
    {
        src=$out/vol/luks key=00000000-0000-4000-8000-00000000001c
        [[ $kind == raw ]] && src=$out/vol/plain key=-
        printf '%s\t%s\t%s\t%s\t%s\n' "$kind-$comp-0" "$comp" "$src.0" - "$key" \
            "$kind-$comp-1" "$comp" "$src.1" "$kind-$comp-0" "$key" \
            "$kind-$comp-2" "$comp" "$src.2" "$kind-$comp-1" "$key" >>"$jobs"
    }
done
"$venv/bin/python" "$here/cinder-backup.py" "$conf" - --jobs "$jobs" >"$out/state/jobs.out" ||
    { log "cinder backups failed: see $out/state/cinder.log"; exit 1; }
printf 'kind\tcompression\tstate\tbackup_id\tvolume_id\tparent_id\texpected\n' >"$out/manifest.tsv"
declare -A bk
while read -r label vol id; do
    IFS=- read -r kind comp n <<<"$label"
    bk[$label]=$id
    parent=-
    ((n > 0)) && parent=${bk[$kind-$comp-$((n - 1))]}
    src=$out/vol/luks
    [[ $kind == raw ]] && src=$out/vol/plain
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$comp" "$n" "$id" "$vol" "$parent" "$src.$n" >>"$out/manifest.tsv"
done <"$out/state/jobs.out"
[[ -n $swift_env ]] || "$venv/bin/python" "$here/cinder-backup.py" "$out/state/zlib.conf" "${bk[raw-zlib-2]}" --restore "$out/restored.raw-zlib" >/dev/null
log "wrote $(($(wc -l <"$out/manifest.tsv") - 1)) backups under $out/backups"
