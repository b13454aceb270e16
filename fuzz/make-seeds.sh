#!/usr/bin/env bash
# fuzz/make-seeds.sh -- build the seed corpus of every fuzz target from images made by the real
# tools (cryptsetup, qemu-img, qemu-io), with the passphrase "fuzz" and the cheapest KDF settings
# (so the harness actually tries their key slots; see src/lib.rs, CHEAP).
#
#   fuzz/make-seeds.sh [OUT]     # default OUT: fuzz/corpus (not committed; a few MiB)
#
# Writes OUT/<target>/*: luks1_header (LUKS1 files cut after slot 0's key material),
# luks2_header (mode byte 0 + the metadata and slot 0 of LUKS2 files; mode byte 1 + their JSON,
# also the JSON of cryptsetup's upstream test images when ../shared/corpus is there),
# qcow2_header (first 4 KiB of encrypted qcow2 images: header + extensions), qcow2_map (small
# unencrypted qcow2 images written by qemu-io: data, zero and discarded clusters, v2/v3,
# extended L2), qcow2_read (the same, plus images compressed by qemu-img convert -c with zlib and
# zstd and partly rewritten by qemu-io). The committed seeds in fuzz/seeds/ (a few KiB) are copied in as well.
# Needs: cryptsetup, qemu-img, qemu-io, python3. Never needs root (cryptsetup works on files).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
targets=(luks1_header luks2_header luks_keyslot qcow2_header qcow2_map qcow2_read volume_tree)
for t in "${targets[@]}"; do mkdir -p "$out/$t"; done
for t in "${targets[@]}"; do
    if [[ -d $here/seeds/$t ]]; then cp "$here/seeds/$t"/* "$out/$t/"; fi
done
printf fuzz > "$tmp/key"
cs() { cryptsetup --batch-mode --key-file "$tmp/key" "$@"; }
# head FILE BYTES DEST: the first BYTES bytes of FILE
head_of() { head -c "$2" "$1" > "$3"; }
be32() { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' '; }

# ---- LUKS1 (cryptsetup): header + slot 0 key material
n=0
for spec in "aes-cbc-essiv:sha256 128 sha256" "aes-xts-plain64 256 sha1" "aes-ecb 128 sha512" "aes-cbc-plain 256 ripemd160" "aes-xts-plain 512 whirlpool" \
    "aes-cbc-benbi 128 sha1" "aes-cbc-plain64 256 sha256"; do
    read -r cipher bits hash <<< "$spec"
    f=$tmp/l1-$n.img
    truncate -s 4M "$f"
    cs luksFormat --type luks1 --pbkdf-force-iterations 1000 -c "$cipher" -s "$bits" --hash "$hash" "$f"
    km=$(( $(be32 "$f" 248) * 512 ))                 # slot 0 key material offset
    len=$(( km + (bits / 8) * 4000 ))
    len=$(( (len + 511) / 512 * 512 ))
    head_of "$f" "$len" "$out/luks1_header/cryptsetup-$n-${cipher//:/_}"
    head_of "$f" 592 "$out/luks1_header/cryptsetup-$n-header-only"
    n=$((n + 1))
done

# ---- LUKS2 (cryptsetup): mode 0 = whole metadata + slot 0; mode 1 = JSON text
luks2_seed() { # NAME FILE [json-only]
    local name=$1 f=$2
    python3 - "$f" "$out/luks2_header/$name" "${3:-}" <<'PY'
import json, sys
f, dest, json_only = sys.argv[1], sys.argv[2], sys.argv[3]
b = open(f, 'rb').read()
hs = int.from_bytes(b[8:16], 'big')
j = b[4096:hs].split(b'\0', 1)[0]
md = json.loads(j)
end = 2 * hs
for ks in md.get('keyslots', {}).values():
    a = ks.get('area', {})
    end = max(end, int(a.get('offset', 0)) + int(a.get('size', 0)))
if not json_only:
    open(dest + '-file', 'wb').write(b'\0' + b[:min(end, len(b))])
open(dest + '-json', 'wb').write(b'\1' + j)
# the same JSON with cheap digest iterations (so the harness tries the slots)
for d in md.get('digests', {}).values():
    if 'iterations' in d:
        d['iterations'] = 1000
open(dest + '-json-cheap', 'wb').write(b'\1' + json.dumps(md, separators=(',', ':')).encode())
PY
}
n=0
for args in "--pbkdf pbkdf2 --pbkdf-force-iterations 1000 -c aes-xts-plain64 -s 512" \
    "--pbkdf argon2id --pbkdf-memory 32 --pbkdf-force-iterations 4 --pbkdf-parallel 1 -c aes-cbc-essiv:sha256 -s 256" \
    "--pbkdf argon2i --pbkdf-memory 64 --pbkdf-force-iterations 4 --pbkdf-parallel 2 --sector-size 4096 -c aes-xts-plain64 -s 256" \
    "--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --luks2-metadata-size 64k --luks2-keyslots-size 1m --label fuzz --subsystem seeds"; do
    f=$tmp/l2-$n.img
    truncate -s 32M "$f"
    # shellcheck disable=SC2086  # args is a word list
    cs luksFormat --type luks2 $args "$f"
    if [[ $n == 0 ]]; then   # a second slot and a token
        printf fuzz2 > "$tmp/key2"
        cryptsetup luksAddKey --batch-mode --key-file "$tmp/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$f" "$tmp/key2"
    fi
    luks2_seed "cryptsetup-$n" "$f"
    n=$((n + 1))
done
shared=$here/../../shared/corpus/external
if [[ -f $shared/luks2_mda_images.tar.xz ]]; then
    mkdir -p "$tmp/mda" && tar -C "$tmp/mda" -xJf "$shared/luks2_mda_images.tar.xz" --no-same-owner
    for f in $(find "$tmp/mda" -type f -name 'test_image_*' | sort); do
        luks2_seed "upstream-$(basename "$f")" "$f" json-only
    done
fi
if [[ -f $shared/luks2_header_requirements.tar.xz ]]; then
    mkdir -p "$tmp/req" && tar -C "$tmp/req" -xJf "$shared/luks2_header_requirements.tar.xz" --no-same-owner
    for f in $(find "$tmp/req" -type f | sort | head -20); do
        if head -c 6 "$f" | grep -q LUKS; then luks2_seed "upstream-req-$(basename "$f")" "$f" 2>/dev/null || true; fi
    done
fi

# ---- qcow2 + LUKS (qemu-img): header + extensions
n=0
for o in "cluster_size=512" "cluster_size=4096,compat=0.10" "cluster_size=65536,lazy_refcounts=on,refcount_bits=64" \
    "cluster_size=65536,extended_l2=on" "cluster_size=2097152"; do
    f=$tmp/q-$n.qcow2
    qemu-img create -q -f qcow2 --object secret,id=s0,file="$tmp/key" \
        -o "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,$o" "$f" 4M
    head_of "$f" 4096 "$out/qcow2_header/qemu-$n"
    n=$((n + 1))
done

# ---- small unencrypted qcow2 images for the mapper (crypt_method 0 parses; mapping is the same)
n=0
for o in "cluster_size=512" "cluster_size=512,compat=0.10" "cluster_size=16384,extended_l2=on" "cluster_size=4096"; do
    f=$tmp/m-$n.qcow2
    qemu-img create -q -f qcow2 -o "$o" "$f" 256K
    qemu-io -f qcow2 -c "write -P 0x11 0 8K" -c "write -P 0x22 64K 3K" -c "write -z 100K 4K" \
        -c "discard 4K 2K" -c "write -P 0x33 200K 1K" "$f" > /dev/null
    cp "$f" "$out/qcow2_map/qemu-$n"
    cp "$f" "$out/qcow2_read/qemu-$n"
    n=$((n + 1))
done

# ---- compressed unencrypted qcow2 images for the guest-disk reader: text (compresses) and
# random (stays uncompressed) sectors, then qemu-io writes over compressed clusters
python3 -c '
import os, sys
out = bytearray()
for i in range(96):
    out += (b"seed sector %06d " % i + bytes(range(65, 91)) * 19)[:512] if i % 3 else os.urandom(512)
sys.stdout.buffer.write(out)' > "$tmp/plain.raw"
n=0
for o in "cluster_size=512" "cluster_size=512,compression_type=zstd" "cluster_size=512,compat=0.10" \
    "cluster_size=4096,compression_type=zstd" "cluster_size=16384,extended_l2=on" \
    "cluster_size=16384,extended_l2=on,compression_type=zstd"; do
    f=$tmp/c-$n.qcow2
    qemu-img convert -c -f raw -O qcow2 -o "$o" "$tmp/plain.raw" "$f"
    qemu-io -f qcow2 -c "write -P 0x5a 1000 700" -c "write -z 8192 1024" "$f" > /dev/null
    cp "$f" "$out/qcow2_read/compressed-$n"
    n=$((n + 1))
done

# ---- small nested disks for volume_tree: GPT and MBR (with logicals) made by sgdisk/sfdisk, a
# LUKS1 partition made by qemu-img, and the GPT disk inside an unencrypted qcow2.
mkdir -p "$out/volume_tree"
if command -v sgdisk >/dev/null && command -v sfdisk >/dev/null; then
    truncate -s 96K "$tmp/gpt.raw"
    sgdisk -o -n1:34:+40 -c1:one -t1:8309 -n2:0:+40 -c2:two -t2:8e00 "$tmp/gpt.raw" > /dev/null
    qemu-img create -q -f luks --object secret,id=s0,file="$tmp/key" \
        -o "key-secret=s0,iter-time=10,cipher-alg=aes-128,hash-alg=sha1" "$tmp/p.luks" 0
    dd if="$tmp/p.luks" of="$tmp/gpt.raw" bs=512 seek=34 conv=notrunc status=none 2>/dev/null || true
    cp "$tmp/gpt.raw" "$out/volume_tree/gpt"
    truncate -s 64K "$tmp/mbr.raw"
    printf 'label: dos\nstart=1, size=20, type=83\nstart=21, size=80, type=5\nstart=22, size=10, type=83\nstart=33, size=10, type=8e\n' \
        | sfdisk -q "$tmp/mbr.raw" > /dev/null
    cp "$tmp/mbr.raw" "$out/volume_tree/mbr"
    qemu-img convert -f raw -O qcow2 -o cluster_size=512 "$tmp/gpt.raw" "$out/volume_tree/gpt.qcow2"
fi

# luks_keyslot fuzzes the key slots of both versions: the LUKS seeds of both.
mkdir -p "$out/luks_keyslot"
cp "$out"/luks1_header/* "$out"/luks2_header/* "$out/luks_keyslot/" 2>/dev/null || true

for t in "${targets[@]}"; do
    printf '%-13s %3d files %8d bytes\n' "$t" "$(find "$out/$t" -type f | wc -l)" "$(cat "$out/$t"/* | wc -c)"
done
