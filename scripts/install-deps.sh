#!/usr/bin/env bash
# scripts/install-deps.sh -- install what the tests, the corpus and the demo need (Debian 12).
#
# Idempotent: installs only missing packages, runs `apt-get update` only when package lists are
# missing or an install fails, and on Debian 12 takes qemu-utils (>= 8, with
# qemu-storage-daemon) from bookworm-backports, as ../shared/corpus/corpus-lib.sh does.
# Must run as root unless everything is already present. Checks the Rust toolchain (cargo,
# clippy, rustfmt; cargo-nextest optional) but does not install it. Ends by verifying each tool.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[install-deps] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# command:package (command checked with command -v). jq, xxd and dpkg-source (dpkg-dev) run
# cryptsetup's LUKS2 validation suite, which tests/it/luks2_validation.rs fetches with
# `apt-get source cryptsetup` (adding a deb-src entry that mirrors the configured Debian mirror).
TOOLS="fusermount3:fuse3 cryptsetup:cryptsetup-bin qemu-img:qemu-utils qemu-io:qemu-utils
qemu-storage-daemon:qemu-utils mkfs.ext4:e2fsprogs e2fsck:e2fsprogs debugfs:e2fsprogs
sgdisk:gdisk sfdisk:fdisk lvm:lvm2 losetup:mount mkfs.vfat:dosfstools mcopy:mtools fio:fio vmtouch:vmtouch xxd:xxd jq:jq dpkg-source:dpkg-dev python3:python3
xz:xz-utils script:bsdutils tar:tar fallocate:util-linux flock:util-linux curl:curl truncate:coreutils sha256sum:coreutils cc:gcc
mount.fuse3:fuse3 findmnt:util-linux runuser:util-linux mount:mount useradd:passwd
systemd-analyze:systemd man:man-db file:file dpkg-deb:dpkg getfattr:attr setpriv:util-linux dd:coreutils openssl:openssl mkswap:util-linux"

missing_pkgs() {
    local tp t p out=()
    for tp in $TOOLS; do
        t=${tp%%:*} p=${tp#*:}
        command -v "$t" >/dev/null 2>&1 || out+=("$p")
    done
    ((${#out[@]})) && printf '%s\n' "${out[@]}" | sort -u | tr '\n' ' '
    return 0
}

qemu_major() { qemu-img --version 2>/dev/null | sed -n '1s/^qemu-img version \([0-9]*\).*/\1/p'; }

have_lists() { compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; }

apt_update() {
    log "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
}

# apt_install [apt-get options...] PKG... : install quietly; update the lists and retry once
apt_install() {
    have_lists || apt_update
    if ! apt-get install -y -qq --no-install-recommends "$@" >/tmp/install-deps.$$.log 2>&1; then
        apt_update
        apt-get install -y -qq --no-install-recommends "$@" >/tmp/install-deps.$$.log 2>&1 || {
            cat /tmp/install-deps.$$.log >&2
            rm -f /tmp/install-deps.$$.log
            die "apt-get install $* failed"
        }
    fi
    rm -f /tmp/install-deps.$$.log
}

is_bookworm() { grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; }

# Debian 12 ships qemu 7.2, whose PBKDF2 benchmark fails at random; use bookworm-backports
ensure_backports() {
    grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    local mirror
    mirror=$(grep -rhs -o -E '(https?://[^ ]+)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(grep -rhs -o -E '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//')
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    log "adding bookworm-backports ($mirror)"
    echo "deb $mirror bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
    apt_update
}

# tests/it/partition.rs fetches util-linux's test samples with `apt-get source`: needs a deb-src
# entry for the configured distribution and mirror
ensure_deb_src() {
    grep -rqsE '^[^#]*(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    local mirror codename
    mirror=$(grep -rhs -o -E '(https?://[^ ]+)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(grep -rhs -o -E '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//')
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    [ -n "$codename" ] || return 0
    log "adding deb-src $mirror $codename main (util-linux test samples)"
    echo "deb-src $mirror $codename main" >/etc/apt/sources.list.d/luksfs-deb-src.list
    apt_update
}

need_root() { [ "$(id -u)" = 0 ] || die "$1: run as root (or install: $2)"; }

pkgs=$(missing_pkgs)
v=$(qemu_major)
qemu_old=0
if [ -n "$v" ] && ((v < 8)); then qemu_old=1; fi
if [ -n "$pkgs" ] || ((qemu_old)); then
    command -v apt-get >/dev/null 2>&1 || die "missing packages ($pkgs) and no apt-get"
    need_root "missing packages" "${pkgs:-qemu-utils from bookworm-backports}"
    if is_bookworm && { ((qemu_old)) || [[ " $pkgs " == *" qemu-utils "* ]]; }; then
        ensure_backports
        log "installing qemu-utils from bookworm-backports"
        apt_install -t bookworm-backports qemu-utils
        pkgs=$(missing_pkgs)
    fi
    if [ -n "$pkgs" ]; then
        log "installing: $pkgs"
        # shellcheck disable=SC2086  # word splitting intended
        apt_install $pkgs
    fi
fi

# python3 -m venv (cinder for the Cinder-backup and cinder-api tests, Keystone/Barbican): Debian splits it out
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_root "python3 venv" python3-venv
    log "installing python3-venv"
    apt_install python3-venv
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then ensure_deb_src; fi

# ---- verify
fail=0
for tp in $TOOLS; do
    t=${tp%%:*}
    if ! command -v "$t" >/dev/null 2>&1; then
        log "missing after install: $t (package ${tp#*:})"
        fail=1
    fi
done
v=$(qemu_major)
if [ -z "$v" ] || ((v < 8)); then
    log "qemu-img ${v:-?} is too old: need >= 8 (Debian 12: apt-get install -t bookworm-backports qemu-utils)"
    fail=1
fi
cs=$(cryptsetup --version 2>/dev/null | awk '{print $2}')
case $cs in
    2.[4-9]* | 2.[1-9][0-9]* | [3-9].*) ;;
    *) log "cryptsetup ${cs:-?} is too old: need >= 2.4"; fail=1 ;;
esac
[ -e /dev/fuse ] || log "warning: /dev/fuse is missing: mount tests will be skipped (or fail under CI=true)"

# ---- Rust toolchain (preinstalled; not installed here)
for t in cargo rustc cargo-clippy rustfmt; do
    command -v "$t" >/dev/null 2>&1 || { log "missing Rust tool: $t (install the Rust toolchain with rustup: components clippy, rustfmt)"; fail=1; }
done
if ! command -v cargo-nextest >/dev/null 2>&1; then
    log "note: cargo-nextest not found; scripts/test.sh falls back to cargo test"
fi
((fail == 0)) || die "dependencies incomplete"
log "ok: qemu-img $(qemu_major).x, cryptsetup $cs, $(fusermount3 --version 2>&1 | head -n1), $(cargo --version)"
