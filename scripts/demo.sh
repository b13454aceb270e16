#!/usr/bin/env bash
# scripts/demo.sh [DIR] -- see luksfs work in a minute.
#
# Installs the tools (scripts/install-deps.sh), builds luksfs (cargo build --release), makes
# three small encrypted disk images with the real tools, mounts them with a keytab, shows
# the decrypted views, and unmounts:
#   images/disk.luks     LUKS1 by qemu-img, holding an MBR disk with an ext4 partition
#   images/vm.qcow2      qcow2 with native LUKS encryption by qemu-img/qemu-io (mostly sparse)
#   images/vault.luks2   LUKS2 by cryptsetup (Argon2id), holding a FAT file system
# Everything goes into DIR/demo (recreated, then kept so you can play with it) or, without DIR, into a
# temporary directory that is removed at the end. Run as root (FUSE, cryptsetup's lock dir).
set -euo pipefail
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "1. tools and build"
"$REPO/scripts/install-deps.sh"
(cd "$REPO" && cargo build --release --quiet)
LUKSFS="$REPO/target/release/luksfs"
echo "built $LUKSFS"

if [ $# -ge 1 ]; then
    D="$(mkdir -p "$1" && cd "$1" && pwd)/demo"
    KEEP=1
else
    D=$(mktemp -d "${TMPDIR:-/tmp}/luksfs-demo.XXXXXX")
    KEEP=0
fi
MNT="$D/mnt"
PID=""
cleanup() {
    if [ -n "$(findmnt -rn -M "$MNT" -o FSTYPE 2>/dev/null)" ]; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    fi
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        sleep 1
        kill "$PID" 2>/dev/null || true
    fi
    if ((KEEP == 0)); then rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -d "$D" ]; then
    if [ -n "$(findmnt -rn -M "$MNT" -o FSTYPE 2>/dev/null)" ]; then fusermount3 -u "$MNT"; fi
    rm -rf "$D"
fi
mkdir -p "$D/images" "$D/keys" "$D/work" "$MNT"
W="$D/work"

say "2. three encrypted images in $D/images"
printf '%s' 'demo disk passphrase' >"$D/keys/disk.key"
printf '%s' 'demo vm passphrase' >"$D/keys/vm.key"
head -c 32 /dev/urandom | xxd -p -c 64 | tr -d '\n' >"$D/keys/vault.key" # OpenStack style: hex text

# (a) an MBR disk with one ext4 partition, encrypted by qemu-img as LUKS1 (aes-256-xts)
mkdir -p "$W/tree/docs"
printf 'Hello from inside an encrypted disk image.\n' >"$W/tree/hello.txt"
seq 1 2000 >"$W/tree/docs/numbers.txt"
truncate -s 16M "$W/disk.raw"
printf 'label: dos\nunit: sectors\n\nstart=2048, type=83, bootable\n' | sfdisk -q "$W/disk.raw"
truncate -s $(((32768 - 2048) * 512)) "$W/part.raw"
mkfs.ext4 -q -F -L demo-root -d "$W/tree" "$W/part.raw"
dd if="$W/part.raw" of="$W/disk.raw" bs=512 seek=2048 conv=notrunc,sparse status=none
run qemu-img convert -f raw -O luks --object "secret,id=s0,file=$D/keys/disk.key" \
    -o key-secret=s0,iter-time=100,cipher-alg=aes-256,cipher-mode=xts,hash-alg=sha256 "$W/disk.raw" "$D/images/disk.luks"

# (b) a 64 MiB qcow2 + LUKS virtual disk with a few writes (the rest stays unallocated)
run qemu-img create -q -f qcow2 --object "secret,id=s0,file=$D/keys/vm.key" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=100,cluster_size=65536 "$D/images/vm.qcow2" 64M
printf 'luksfs demo: this text sits in the first guest sector of vm.qcow2.\n' >"$W/greeting"
qemu-io --object "secret,id=s0,file=$D/keys/vm.key" \
    --image-opts "driver=qcow2,file.filename=$D/images/vm.qcow2,encrypt.key-secret=s0" \
    -c "write -s $W/greeting 0 $(stat -c %s "$W/greeting")" -c "write -P 0xab 32M 1M" >/dev/null

# (c) a FAT file system encrypted in place by cryptsetup as LUKS2 (Argon2id)
truncate -s 8M "$W/fat.raw"
mkfs.vfat -S 4096 -n VAULT "$W/fat.raw" >/dev/null # 4 KiB sectors, like the LUKS2 ones
printf 'secret notes\n' >"$W/notes.txt"
mcopy -i "$W/fat.raw" "$W/notes.txt" "$W/tree/docs/numbers.txt" ::/
cp "$W/fat.raw" "$W/vault.tmp"
truncate -s $((8 * 1048576 + 4 * 1048576)) "$W/vault.tmp"
run cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 4M --force-offline-reencrypt --batch-mode \
    --key-file "$D/keys/vault.key" --pbkdf argon2id --pbkdf-memory 65536 --pbkdf-force-iterations 4 \
    -c aes-xts-plain64 -s 512 --sector-size 4096 "$W/vault.tmp" >/dev/null
truncate -s $((2 * 1048576 + 8 * 1048576)) "$W/vault.tmp" # data segment at 2 MiB; drop the tail
mv "$W/vault.tmp" "$D/images/vault.luks2"
printf 'not an image: luksfs hides me\n' >"$D/images/README.txt"
rm -rf "$W"
run ls -l "$D/images"

say "3. a keytab: image, key file (relative to the keytab), options"
cat >"$D/keytab" <<'KT'
# image          key file          [options]
disk.luks        keys/disk.key
vm.qcow2         keys/vm.key
vault.luks2      keys/vault.key
KT
cat "$D/keytab"
run "$LUKSFS" inspect "$D/images/disk.luks" || true

say "4. mount"
printf '$ %s\n' "luksfs mount $D/images $MNT --keytab $D/keytab &"
"$LUKSFS" mount "$D/images" "$MNT" --keytab "$D/keytab" >"$D/mount.log" 2>&1 &
PID=$!
for _ in $(seq 200); do
    [ -z "$(findmnt -rn -M "$MNT" -o FSTYPE 2>/dev/null)" ] || break
    kill -0 "$PID" 2>/dev/null || { cat "$D/mount.log"; echo "luksfs mount failed"; exit 1; }
    sleep 0.05
done
findmnt -M "$MNT"

say "5. the decrypted views"
run ls -l "$MNT"
run fdisk -l "$MNT/disk.luks.raw"
printf '$ head -c 512 %s | xxd | head -n 8\n' "$MNT/vm.qcow2.raw"
head -c 512 "$MNT/vm.qcow2.raw" | xxd | head -n 8
printf '$ mdir -i %s ::/\n' "$MNT/vault.luks2.raw"
if ! mdir -i "$MNT/vault.luks2.raw" ::/ 2>"$D/vault.err"; then
    echo "(vault.luks2 did not open: $(head -n1 "$D/vault.err"); LUKS2 support may not be in this build yet)"
fi

say "6. unmount"
run fusermount3 -u "$MNT"
rc=0
wait "$PID" || rc=$?
PID=""
echo "luksfs exited with status $rc"

say "what happened"
cat <<EOF
* made three encrypted images with qemu-img, qemu-io and cryptsetup (keys in $D/keys):
  disk.luks (LUKS1, MBR + ext4), vm.qcow2 (qcow2 + LUKS, 64 MiB, sparse), vault.luks2 (LUKS2, FAT);
* mounted $D/images on $MNT with luksfs and the keytab $D/keytab: every image showed up as
  NAME.raw, decrypted and read-only; README.txt (not an image) was hidden;
* read them with ordinary tools (ls, fdisk, head | xxd, mdir), then unmounted with fusermount3 -u.
EOF
if ((KEEP)); then
    echo "The demo files stay in $D. Mount them again with:"
    echo "  $LUKSFS mount $D/images $MNT --keytab $D/keytab"
fi
