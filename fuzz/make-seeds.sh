#!/usr/bin/env bash
# fuzz/make-seeds.sh -- build the seed corpus of every fuzz target from images made by the real
# tools (cryptsetup, qemu-img, qemu-io), with the passphrase "fuzz" and the cheapest KDF settings
# (so the harness actually tries their key slots; see src/lib.rs, CHEAP).
#
#   fuzz/make-seeds.sh [OUT]     # default OUT: fuzz/corpus (not committed; a few MiB)
#
# Writes OUT/<target>/*: luks1_header (LUKS1 files cut after slot 0's key material),
# luks2_header (mode byte 0 + the metadata and slot 0 of LUKS2 files; mode byte 1 + their JSON,
# also the JSON of cryptsetup's upstream test images when ../shared/corpus is there, and the 166
# headers of cryptsetup 2.6.1's LUKS2 validation suite, see below),
# qcow2_header (first 4 KiB of encrypted qcow2 images: header + extensions), qcow2_map (small
# unencrypted qcow2 images written by qemu-io: data, zero and discarded clusters, v2/v3,
# extended L2), lvm_pv (the first 64 KiB or 1 MiB of lvm2 PVs: label, pv_header, metadata
# areas) and lvm_metadata (their committed metadata texts, as `pvck --dump metadata` writes
# them), cinder_metadata / cinder_sha256file (the JSON objects of Cinder backups written by
# cinder's posix driver, ../scripts/cinder-backup-make.sh; FUZZ_NO_CINDER=1 skips). The committed
# seeds in fuzz/seeds/ (a few KiB) are copied in as well.
# Needs: cryptsetup, qemu-img, qemu-io, python3; jq, xxd and the cryptsetup source package for the
# LUKS2 validation-suite seeds; for the LVM seeds lvm2, losetup and root (lvm2
# works on block devices only: loop devices, activation=0, no device-mapper), else they are
# skipped; mbr (small disks with DOS labels by sfdisk: primaries,
# extended partitions and EBR chains), gpt (small disks by sgdisk and sfdisk: names,
# attributes, short entry arrays, a hybrid MBR; 4096-byte sectors on a loop device when root).
# qcow2_read (the qcow2 images, plus images compressed by qemu-img convert -c with zlib and
# zstd and partly rewritten by qemu-io). Nothing else needs root (cryptsetup works on files).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
for t in luks1_header luks2_header qcow2_header qcow2_map lvm_metadata lvm_pv cinder_metadata cinder_sha256file mbr gpt qcow2_read image_signature; do mkdir -p "$out/$t"; done
for t in luks1_header luks2_header qcow2_header qcow2_map lvm_metadata lvm_pv cinder_metadata cinder_sha256file mbr gpt qcow2_read image_signature; do
    if compgen -G "$here/seeds/$t/*" >/dev/null; then cp "$here/seeds/$t"/* "$out/$t/"; fi
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

# ---- cryptsetup 2.6.1's LUKS2 header-validation suite (tests/generators/*.sh over its base
# header, and over the same header with the KDF renamed argon2 -> argon2i), as the integration
# test tests/it/luks2_validation.rs runs it: its cached source package, else `apt-get source`.
suite=${CRYPTSETUP_SRC:-$here/../target/tmp/cryptsetup-source/cryptsetup-2.6.1}
if [[ ! -f $suite/tests/luks2-validation-test ]] && command -v apt-get > /dev/null; then
    (cd "$tmp" && apt-get source -qq cryptsetup > /dev/null 2>&1) || true
    suite=$tmp/cryptsetup-2.6.1
fi
if [[ -f $suite/tests/luks2-validation-test ]] && command -v jq > /dev/null && command -v xxd > /dev/null; then
    mkdir -p "$tmp/suite/argon2" "$tmp/suite/argon2i"
    xz -dkc "$suite/tests/luks2_valid_hdr.img.xz" > "$tmp/suite/base-argon2.img"
    cp "$tmp/suite/base-argon2.img" "$tmp/suite/base-argon2i.img"
    python3 - "$tmp/suite/base-argon2i.img" <<'PY'
import hashlib, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
hs = int.from_bytes(b[8:16], 'big')
for base in (0, hs):
    area = b[base:base + hs]
    j = bytes(area[4096:]).split(b'\0', 1)[0].replace(b'"type":"argon2",', b'"type":"argon2i",')
    area[4096:] = j + bytes(hs - 4096 - len(j))
    area[448:512] = bytes(64)
    area[448:480] = hashlib.sha256(area).digest()
    b[base:base + hs] = area
open(p, 'wb').write(b)
PY
    gens=$tmp/suite/generators
    cp -r "$suite/tests/generators" "$gens"
    for kdf in argon2 argon2i; do
        for g in "$gens"/generate-*.sh; do
            (cd "$gens" && bash "$g" "$tmp/suite/$kdf" "$tmp/suite/base-$kdf.img" > /dev/null)
        done
        for f in "$tmp/suite/$kdf"/*.img; do
            python3 - "$f" "$out/luks2_header/cryptsetup-suite-$kdf-$(basename "$f" .img)" <<'PY'
import sys
f, dest = sys.argv[1], sys.argv[2]
b = open(f, 'rb').read()
hs = min(int.from_bytes(b[8:16], 'big'), 4 << 20)
# mode 0: both metadata copies (no key material), for metadata up to 256 KiB
if hs <= 256 << 10:
    open(dest + '-file', 'wb').write(b'\0' + b[:2 * hs])
# mode 1: the primary's JSON area text
open(dest + '-json', 'wb').write(b'\1' + b[4096:max(4096, hs)].split(b'\0', 1)[0])
PY
        done
    done
else
    echo "note: cryptsetup's LUKS2 validation suite not available (apt-get source cryptsetup, jq, xxd): its headers are not seeded" >&2
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

# ---- LVM2 PVs (lvm2 on loop devices, activation=0: no device-mapper needed)
if command -v lvm >/dev/null && command -v losetup >/dev/null && [[ $(id -u) == 0 ]]; then
    loops=()
    lvm_cleanup() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done; rm -rf "$tmp"; }
    trap lvm_cleanup EXIT
    lvmc() { # SUB ARGS...: lvm2 restricted to our loop devices, no activation, no udev, no backups
        local sub=$1
        shift
        LVM_SUPPRESS_FD_WARNINGS=1 lvm "$sub" --config "global { activation = 0 } devices { obtain_device_list_from_udev = 0 \
use_devicesfile = 0 global_filter = [ $(printf '"a|^%s$|", ' "${loops[@]}")\"r|.*|\" ] } \
activation { udev_sync = 0 udev_rules = 0 } backup { backup = 0 archive = 0 }" "$@" >/dev/null 2>&1
    }
    new_pv() { # NAME SIZE_MIB PVCREATE_ARGS...: sets dev to a loop device over $tmp/NAME.img, a PV
        local f=$tmp/$1.img
        truncate -s "$2M" "$f"
        dev=$(losetup -f --show "$f")
        loops+=("$dev")
        lvmc pvcreate -q "${@:3}" "$dev"
    }
    vg=fuzzseed$$
    # small metadata area (60 KiB at 4 KiB, pe_start 64 KiB), linear LVs with several segments
    new_pv small 8 --metadatasize 16k --dataalignment 64k
    small=$dev
    lvmc vgcreate -q -s 64k "$vg" "$small"
    lvmc lvcreate -q -an -Zn -L 512k -n a "$vg"
    lvmc lvcreate -q -an -Zn -L 256k -n b-1 "$vg"
    lvmc lvextend -q -L +256k "$vg/a"
    # a second PV with two metadata copies, a striped LV over both
    new_pv s2 8 --pvmetadatacopies 2 --metadatasize 16k --dataalignment 64k
    lvmc vgextend -q "$vg" "$dev"
    lvmc lvcreate -q -an -Zn -i 2 -I 64k -L 1M -n striped "$vg"
    head -c 65536 "$tmp/small.img" > "$out/lvm_pv/lvm2-small"
    head -c 65536 "$tmp/s2.img" > "$out/lvm_pv/lvm2-2copies"
    lvmc pvck --dump metadata -f "$out/lvm_metadata/lvm2-striped" "$small"
    # the metadata wrapped round its circular buffer
    for i in $(seq 1 40); do lvmc vgchange -q --addtag "t$i" "$vg"; done
    head -c 65536 "$tmp/small.img" > "$out/lvm_pv/lvm2-wrapped"
    # a default PV (metadata area of ~1 MiB, pe_start 1 MiB): its first MiB
    new_pv big 16
    lvmc vgcreate -q laptop-vg "$dev"
    lvmc lvcreate -q -an -Zn -L 4M -n root laptop-vg
    lvmc lvcreate -q -an -Zn -l 100%FREE -n swap_1 laptop-vg
    head -c 1048576 "$tmp/big.img" > "$out/lvm_pv/lvm2-default-1MiB"
    lvmc pvck --dump metadata -f "$out/lvm_metadata/lvm2-laptop" "$dev"
    # an orphan PV (label, no VG)
    new_pv orphan 4 --metadatasize 16k --dataalignment 64k
    head -c 16384 "$tmp/orphan.img" > "$out/lvm_pv/lvm2-orphan"
    # thin pool, thin volume, snapshot and raid1 sections (lvm2 cannot create them without
    # device-mapper) added to lvm2's own text, for the parser and the VG model
    python3 - "$out/lvm_metadata/lvm2-laptop" "$out/lvm_metadata/lvm2-thin-snapshot-raid" <<'PY'
import sys
s = open(sys.argv[1]).read().split("\0")[0]
extra = """
pool {
id = "Pool00-0000-0000-0000-0000-0000-000000"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 1
segment1 { start_extent = 0 extent_count = 1 type = "thin-pool" metadata = "root" pool = "swap_1" transaction_id = 1 chunk_size = 128 }
}
thin { id = "Thin00-0000-0000-0000-0000-0000-000000" status = ["READ", "WRITE", "VISIBLE"] segment_count = 1
segment1 { start_extent = 0 extent_count = 4 type = "thin" thin_pool = "pool" device_id = 1 } }
snapshot0 { id = "Snap00-0000-0000-0000-0000-0000-000000" status = ["READ"] segment_count = 1
segment1 { start_extent = 0 extent_count = 1 type = "snapshot" chunk_size = 8 origin = "root" cow_store = "swap_1" } }
r { id = "Raid00-0000-0000-0000-0000-0000-000000" status = ["READ", "WRITE", "VISIBLE"] segment_count = 1
segment1 { start_extent = 0 extent_count = 1 type = "raid1" device_count = 2 region_size = 1024 raids = ["r_rmeta_0", "r_rimage_0"] } }
"""
k = s.rindex("}\n\n}")
open(sys.argv[2], "w").write(s[:k] + extra + s[k:])
PY
else
    echo "lvm2, losetup or root missing: LVM seeds from the committed fuzz/seeds/ only"
fi

# ---- Cinder backups written by cinder's own posix driver (../scripts/cinder-backup-make.sh: a
# pip-installed cinder; about a minute the first time): every _metadata and _sha256file
if [[ ${FUZZ_NO_CINDER:-} != 1 ]] && "$here/../scripts/cinder-backup-make.sh" "$tmp/cinder" 2>/dev/null; then
    for f in $(find "$tmp/cinder/backups" -name '*_metadata' | sort); do
        cp "$f" "$out/cinder_metadata/cinder-$(basename "$f" | sha256sum | cut -c1-12)"
    done
    for f in $(find "$tmp/cinder/backups" -name '*_sha256file' | sort | head -4); do
        cp "$f" "$out/cinder_sha256file/cinder-$(basename "$f" | sha256sum | cut -c1-12)"
    done
else
    echo "cinder backups could not be made: seeding cinder targets from fuzz/seeds/ only" >&2
fi

# ---- partition tables (sfdisk, sgdisk) on small sparse disks, so the fuzzed input is the disk
if command -v sfdisk >/dev/null; then
    n=0
    for script in \
        "label: dos|start=1, size=8, type=83, bootable|start=10, size=50, type=5|start=12, size=4, type=82|start=18, size=4, type=83|start=24, size=8, type=e8" \
        "label: dos|label-id: 0x1234abcd|start=4, size=20, type=7|start=24, size=8, type=8e|start=32, size=28, type=f|start=40, size=4|start=48, size=4, type=c" \
        "label: dos|start=2, size=60, type=85|start=4, size=2|start=8, size=2|start=12, size=2|start=16, size=2|start=20, size=2|start=24, size=2" \
        "label: dos|start=1, size=63, type=ee" \
        "label: dos"; do
        f=$tmp/mbr-$n.img
        truncate -s 32K "$f"
        tr '|' '\n' <<< "$script" | sfdisk -q --no-reread --no-tell-kernel "$f" > /dev/null
        cp "$f" "$out/mbr/sfdisk-$n"
        n=$((n + 1))
    done
    f=$tmp/gpt-sf.img
    truncate -s 64K "$f"
    printf 'label: gpt\nfirst-lba: 34\ntable-length: 8\n\nstart=40, size=8, name=one\nstart=48, size=16, type=CA7D7CCB-63ED-4C53-861C-1742536059CC, name="crypt root", attrs=LegacyBIOSBootable\nstart=64, size=8, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n' |
        sfdisk -q --no-reread --no-tell-kernel "$f" > /dev/null
    cp "$f" "$out/gpt/sfdisk-0"
fi
if command -v sgdisk >/dev/null; then
    n=0
    for args in "-n 1:0:+4 -t 1:ef00 -c 1:esp -n 2:0:+16 -t 2:8309 -c 2:cryptroot -n 3:0:0 -t 3:8e00 -A 3:set:2" \
        "-n 2:0:+8 -t 2:8300 -c 2:two -n 1:0:+8 -c 1:one -n 4:0:0 -t 4:8200" \
        "-n 1:0:+8 -n 2:0:+8 -n 3:0:+8 -n 4:0:0 -h 1:2"; do
        f=$tmp/gpt-$n.img
        truncate -s 40K "$f"
        # shellcheck disable=SC2086  # args is a word list
        sgdisk -a 1 --resize-table=4 $args "$f" > /dev/null
        cp "$f" "$out/gpt/sgdisk-$n"
        n=$((n + 1))
    done
    if [[ $(id -u) == 0 ]] && command -v losetup >/dev/null; then
        f=$tmp/gpt-4k.img
        truncate -s 256K "$f"
        if dev=$(losetup --show -f --sector-size 4096 "$f" 2> /dev/null); then
            sgdisk -a 1 --resize-table=4 -n 1:0:+4 -c 1:four -n 2:0:0 -t 2:8309 "$dev" > /dev/null || true
            losetup -d "$dev"
            cp "$f" "$out/gpt/sgdisk-4k"
        fi
    fi
fi

# ---- image_signature (openssl): [key type | hash << 2] [signature length, 2 bytes BE] signature
# certificate; each signs an empty file as `openssl dgst -sign` does for Glance
if command -v openssl >/dev/null; then
    : > "$tmp/empty"
    n=0
    for spec in "rsa 0 1 pss DER" "rsa 0 3 pss PEM" "dsa 1 1 - DER" "p384 2 2 - DER" "p521 3 3 - PEM"; do
        read -r kind kt h pss form <<< "$spec"
        k=$tmp/sig-$n.key
        case $kind in
            rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k" 2> /dev/null ;;
            dsa) openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out "$k.param" 2> /dev/null
                openssl genpkey -paramfile "$k.param" -out "$k" ;;
            *) openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:P-${kind#p}" -out "$k" ;;
        esac
        openssl req -x509 -new -key "$k" -days 3650 -subj "/CN=fuzz-$kind" -outform "$form" -out "$tmp/sig-$n.crt"
        md=(-sha224 -sha256 -sha384 -sha512)
        opts=()
        [[ $pss == pss ]] && opts=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2)
        openssl dgst "${md[$h]}" -sign "$k" "${opts[@]}" -out "$tmp/sig-$n.bin" "$tmp/empty"
        len=$(stat -c %s "$tmp/sig-$n.bin")
        # shellcheck disable=SC2059  # the format is the byte
        {
            printf "\\x$(printf %02x $((kt + 4 * h)))"
            printf "\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))"
            cat "$tmp/sig-$n.bin" "$tmp/sig-$n.crt"
        } > "$out/image_signature/openssl-$n-$kind-$form"
        n=$((n + 1))
    done
fi

for t in luks1_header luks2_header luks_keyslot qcow2_header qcow2_map volume_tree lvm_metadata lvm_pv \
    cinder_metadata cinder_sha256file mbr gpt qcow2_read image_signature; do
    printf '%-13s %3d files %8d bytes\n' "$t" "$(find "$out/$t" -type f | wc -l)" "$(cat "$out/$t"/* | wc -c)"
done
