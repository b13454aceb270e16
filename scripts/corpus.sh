#!/usr/bin/env bash
# scripts/corpus.sh [--quick] [--via cat|mount|both] [--external|--no-external] [--keep]
#                   [--formats LIST] [OUTDIR]
#
# Runs luksfs over every row of the third-party corpus manifest (../shared/corpus, see its
# README.md) and prints one line per check:
#     PASS|FAIL|SKIP  via  file  expect  detail
# then, last, exactly "N passed, M failed" (plus ", K skipped" if any). Exit 1 on any FAIL.
#
#   OUTDIR         where the corpus is (or gets) built; default: a temporary directory, removed
#                  at the end unless --keep. If OUTDIR/manifest.tsv exists it is reused.
#   --quick        build with visible.sh --quick (2-4 MiB plaintexts instead of 8-32 MiB)
#   --via          cat: `luksfs cat` per row; mount: one FUSE mount of all of OUTDIR with a
#                  generated keytab (one row per image: an ok row's key if any; the other rows,
#                  e.g. wrong keys, are checked with cat); both (default): cat and mount
#   --external     also unpack and check ../shared/corpus/external (cryptsetup's upstream images)
#                  into OUTDIR/external; the default when CI=true (--no-external turns it off)
#   --formats L    only rows whose format is in the comma list L (luks1,luks2,qcow2-luks,qcow2-aes);
#                  the others are counted as skipped
# Environment: LUKSFS (binary; default target/release/luksfs, rebuilt with cargo build --release
# when older than the sources), LUKSFS_SHARED (default REPO/../shared), CI.
# Sparse rows (ok-spot, or a plaintext over 1 GiB: the 3 TiB image) are only read at their
# spotchecks.tsv ranges. Every failing command must leave stdout empty.
set -euo pipefail
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${LUKSFS_SHARED:-$REPO/../shared}
CORPUS_SRC="$SHARED/corpus"

QUICK=0 VIA=both KEEP=0 OUTDIR="" FORMATS=""
EXTERNAL=0
case ${CI:-} in true | 1) EXTERNAL=1 ;; esac
usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --via) VIA=${2:?--via needs cat, mount or both}; shift ;;
        --via=*) VIA=${1#--via=} ;;
        --external) EXTERNAL=1 ;;
        --no-external) EXTERNAL=0 ;;
        --keep) KEEP=1 ;;
        --formats) FORMATS=${2:?--formats needs a list}; shift ;;
        --formats=*) FORMATS=${1#--formats=} ;;
        -h | --help) usage ;;
        -*) echo "corpus.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$OUTDIR" ] || usage; OUTDIR=$1 ;;
    esac
    shift
done
case $VIA in cat | mount | both) ;; *) echo "corpus.sh: --via cat|mount|both" >&2; exit 2 ;; esac

log() { printf '[corpus.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
T0=$SECONDS

# ------------------------------------------------------------------ the binary
if [ -n "${LUKSFS:-}" ]; then
    BIN=$LUKSFS
else
    BIN="$REPO/target/release/luksfs"
    if [ ! -x "$BIN" ] || [ -n "$(find "$REPO/src" "$REPO/Cargo.toml" "$REPO/Cargo.lock" -newer "$BIN" -print -quit)" ]; then
        log "building $BIN (cargo build --release)"
        (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
    fi
fi
[ -x "$BIN" ] || die "no luksfs binary at $BIN"

# ------------------------------------------------------------------ the corpus
TMP_OUT=0
if [ -z "$OUTDIR" ]; then
    OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/luksfs-corpus.XXXXXX")
    TMP_OUT=1
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/luksfs-corpus-work.XXXXXX")
MNT="$WORK/mnt"
MOUNT_PID=""

is_mounted() { [ -n "$(findmnt -rn -M "$1" -o FSTYPE 2>/dev/null)" ]; }
cleanup() {
    if [ -d "$MNT" ] && is_mounted "$MNT"; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    fi
    if [ -n "$MOUNT_PID" ] && kill -0 "$MOUNT_PID" 2>/dev/null; then
        sleep 1
        kill -KILL "$MOUNT_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    if ((TMP_OUT)) && ((KEEP == 0)); then rm -rf "$OUTDIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$OUTDIR/manifest.tsv" ]; then
    [ -x "$CORPUS_SRC/visible.sh" ] || die "$CORPUS_SRC/visible.sh not found (set LUKSFS_SHARED)"
    log "building the visible corpus in $OUTDIR$( ((QUICK)) && echo ' (--quick)')"
    t=$SECONDS
    qargs=()
    ((QUICK == 0)) || qargs=(--quick)
    if ! "$CORPUS_SRC/visible.sh" "$OUTDIR" "${qargs[@]}" >"$WORK/visible.log" 2>&1; then
        tail -n 30 "$WORK/visible.log" >&2
        die "visible.sh failed"
    fi
    log "visible corpus built in $((SECONDS - t)) s"
else
    log "reusing the corpus in $OUTDIR"
fi
DIRS=("")
if ((EXTERNAL)); then
    EXT="$OUTDIR/external"
    if [ ! -f "$EXT/manifest.tsv" ]; then
        [ -f "$CORPUS_SRC/external/manifest.tsv" ] || die "$CORPUS_SRC/external not found"
        log "unpacking $CORPUS_SRC/external into $EXT"
        rm -rf "$EXT.tmp" && mkdir -p "$EXT.tmp"
        for f in "$CORPUS_SRC"/external/*.img.xz "$CORPUS_SRC"/external/evil_hdr-*.xz; do
            xz -dc "$f" >"$EXT.tmp/$(basename "${f%.xz}")"
        done
        for t in "$CORPUS_SRC"/external/*.tar.xz; do tar -C "$EXT.tmp" -xJf "$t" --no-same-owner; done
        cp "$CORPUS_SRC/external/manifest.tsv" "$EXT.tmp/"
        printf 'file\toffset\tlength\tsha256\tnote\n' >"$EXT.tmp/spotchecks.tsv"
        find "$EXT.tmp" -type f -exec fallocate --dig-holes {} \; 2>/dev/null || true # one file per call
        mv "$EXT.tmp" "$EXT"
    fi
    DIRS+=("external/")
fi

# ------------------------------------------------------------------ rows
# ROWS: one line per manifest row, TAB separated: prefix file format kind value size sha expect notes
ROWS="$WORK/rows.tsv"
: >"$ROWS"
for p in "${DIRS[@]}"; do
    # (a TAB is IFS white space for `read`: empty fields would collapse, so the root prefix is ".")
    tail -n +2 "$OUTDIR/${p}manifest.tsv" | awk -F'\t' -v p="${p:-.}" 'NF >= 14 {
        print p "\t" $1 "\t" $2 "\t" $10 "\t" $11 "\t" $12 "\t" $13 "\t" $14 "\t" ($15 == "" ? "-" : $15) }' >>"$ROWS"
done
mkdir -p "$WORK/keys" "$WORK/out"

PASSED=0 FAILED=0 SKIPPED=0
result() { # result PASS|FAIL|SKIP via file expect detail
    printf '%s  %-5s  %s  %s  %s\n' "$1" "$2" "$3" "$4" "$5"
    case $1 in PASS) PASSED=$((PASSED + 1)) ;; FAIL) FAILED=$((FAILED + 1)) ;; *) SKIPPED=$((SKIPPED + 1)) ;; esac
}
selected() { [ -z "$FORMATS" ] || [[ ",$FORMATS," == *",$1,"* ]]; }

# key_for N PREFIX KIND VALUE -> path of the row's key file (exact bytes)
key_for() {
    local k="$WORK/keys/row$1.key"
    case $3 in
        passphrase | hex) printf '%s' "$4" >"$k" ;;
        keyfile) cp "$OUTDIR/$2$4" "$k" ;;
        *) die "unknown secret kind $3" ;;
    esac
    echo "$k"
}
header_of() { if [[ $1 =~ header=([^ \;]+) ]]; then echo "${BASH_REMATCH[1]}"; fi; }
spots_of() { awk -F'\t' -v f="$2" 'NR > 1 && $1 == f { print $2 " " $3 " " $4 }' "$OUTDIR/$1spotchecks.tsv" 2>/dev/null || true; }
is_sparse() { [ "$1" = ok-spot ] || { [ "$2" != - ] && (($2 > 1073741824)); }; }

# check_cat N PREFIX FILE KIND VALUE SIZE SHA EXPECT NOTES: prints detail, returns 0 on pass
check_cat() {
    local n=$1 p=$2 f=$3 kind=$4 value=$5 size=$6 sha=$7 expect=$8 notes=$9
    local key hdr args rc out="$WORK/out/stdout" err="$WORK/out/stderr" want got off len ssha nspots=0
    key=$(key_for "$n" "$p" "$kind" "$value")
    args=(cat "$OUTDIR/$p$f" --key-file "$key")
    hdr=$(header_of "$notes")
    [ -z "$hdr" ] || args+=(--header "$OUTDIR/$p$hdr")
    case $expect in error-badkey) want=3 ;; error-corrupt) want=4 ;; refuse) want=5 ;; *) want=0 ;; esac
    if ((want != 0)) || ! is_sparse "$expect" "$size"; then
        rc=0; timeout 600 "$BIN" "${args[@]}" >"$out" 2>"$err" </dev/null || rc=$?
        if ((want != 0)); then
            if ((rc == want)) && [ ! -s "$out" ]; then echo "exit $rc"; return 0; fi
            echo "exit $rc (want $want), $(stat -c %s "$out") bytes on stdout: $(head -c 300 "$err" | tr '\n' ' ')"
            return 1
        fi
        if [ "$expect" = ok-or-unsupported ] && ((rc == 5)) && [ ! -s "$out" ]; then echo "unsupported (exit 5)"; return 0; fi
        if ((rc != 0)); then echo "exit $rc: $(head -c 300 "$err" | tr '\n' ' ')"; return 1; fi
        got="$(stat -c %s "$out") $(sha256sum <"$out" | cut -d' ' -f1)"
        if [ "$got" != "$size $sha" ]; then echo "got size+sha256 $got, want $size $sha"; return 1; fi
    fi
    while read -r off len ssha; do
        [ -n "$off" ] || continue
        rc=0; timeout 600 "$BIN" "${args[@]}" --offset "$off" --length "$len" >"$out" 2>"$err" </dev/null || rc=$?
        got=$(sha256sum <"$out" | cut -d' ' -f1)
        if ((rc != 0)) || [ "$got" != "$ssha" ]; then
            echo "spot [$off, +$len]: exit $rc, $(stat -c %s "$out") bytes: $(head -c 200 "$err" | tr '\n' ' ')"
            return 1
        fi
        nspots=$((nspots + 1))
    done < <(spots_of "$p" "$f")
    if is_sparse "$expect" "$size" && ((nspots == 0)); then echo "sparse row without spot checks"; return 1; fi
    if ((nspots)); then echo "ok, $nspots spot checks"; else echo "sha256 ok"; fi
}

# reads one file of the mount; argv: PATH EXPECTED_ERRNO|ok|ok-or-unsupported|ok-spot SIZE SHA [OFF LEN SHA]...
MOUNT_CHECK='
import errno, hashlib, os, sys
path, mode = sys.argv[1], sys.argv[2]
name = lambda e: errno.errorcode.get(e, str(e))
try:
    st = os.stat(path)
except OSError as e:
    if mode == "HIDDEN" and e.errno == errno.ENOENT:
        print("PASS not listed: no LUKS/qcow2 magic, so not an image (cat exits 4)"); sys.exit()
    print("FAIL not listed: " + name(e.errno)); sys.exit()
if mode == "HIDDEN":
    print("FAIL listed although the file has no LUKS/qcow2 magic"); sys.exit()
if mode.startswith("E"):
    want = getattr(errno, mode)
    try:
        os.close(os.open(path, os.O_RDONLY))
        print("FAIL open succeeded, want " + mode)
    except OSError as e:
        print(("PASS open: " if e.errno == want else "FAIL open: ") + os.strerror(e.errno) + ("" if e.errno == want else " (want %s)" % mode))
    sys.exit()
size, sha, spots = sys.argv[3], sys.argv[4], sys.argv[5:]
try:
    fd = os.open(path, os.O_RDONLY)
except OSError as e:
    if mode == "ok-or-unsupported" and e.errno == errno.EOPNOTSUPP:
        print("PASS unsupported (EOPNOTSUPP)")
    else:
        print("FAIL open: " + os.strerror(e.errno))
    sys.exit()
if size != "-" and st.st_size != int(size):
    print("FAIL size %d, want %s" % (st.st_size, size)); sys.exit()
try:
    if mode != "ok-spot" and st.st_size <= 1 << 30:
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            h.update(b)
        if h.hexdigest() != sha:
            print("FAIL sha256 %s, want %s" % (h.hexdigest(), sha)); sys.exit()
    for i in range(0, len(spots), 3):
        off, n, want = int(spots[i]), int(spots[i + 1]), spots[i + 2]
        data = b""
        while len(data) < n:
            b = os.pread(fd, n - len(data), off + len(data))
            if not b:
                break
            data += b
        if hashlib.sha256(data).hexdigest() != want:
            print("FAIL spot [%d, +%d]: %d bytes, wrong sha256" % (off, n, len(data))); sys.exit()
except OSError as e:
    print("FAIL read: " + os.strerror(e.errno)); sys.exit()
print("PASS sha256 ok" + (", %d spot checks" % (len(spots) // 3) if spots else ""))
'

# ------------------------------------------------------------------ via cat
run_cat_rows() { # run_cat_rows FILTER: all | unchosen
    local n=0 p f fmt kind value size sha expect notes detail
    while IFS=$'\t' read -r p f fmt kind value size sha expect notes; do
        [ "$p" != . ] || p=""
        n=$((n + 1))
        if [ "$1" = unchosen ] && grep -qx "$n" "$WORK/chosen"; then continue; fi
        if ! selected "$fmt"; then result SKIP cat "$p$f" "$expect" "format $fmt not selected"; continue; fi
        if detail=$(check_cat "$n" "$p" "$f" "$kind" "$value" "$size" "$sha" "$expect" "$notes"); then
            result PASS cat "$p$f" "$expect" "$kind: $detail"
        else
            result FAIL cat "$p$f" "$expect" "$kind: $detail"
        fi
    done <"$ROWS"
}

# rows chosen for the mount: per image the first ok* row, else its first row (row numbers)
awk -F'\t' '{ k = $1 $2; if (!(k in row) || (!(ok[k]) && $8 ~ /^ok/)) { row[k] = NR; ok[k] = ($8 ~ /^ok/) } }
    END { for (k in row) print row[k] }' "$ROWS" | sort -n >"$WORK/chosen"

if [ "$VIA" = cat ] || [ "$VIA" = both ]; then
    log "checking $(wc -l <"$ROWS") rows with luksfs cat"
    run_cat_rows all
fi

# ------------------------------------------------------------------ via mount
if [ "$VIA" = mount ] || [ "$VIA" = both ]; then
    fuse_ok=1
    if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
        case ${CI:-} in true | 1) die "CI=true but /dev/fuse or fusermount3 is missing" ;; esac
        fuse_ok=0
    fi
    # keytab: IMAGE (relative to OUTDIR) KEY [header=...]
    KT="$WORK/keytab"
    : >"$KT"
    n=0
    while IFS=$'\t' read -r p f fmt kind value size sha expect notes; do
        [ "$p" != . ] || p=""
        n=$((n + 1))
        grep -qx "$n" "$WORK/chosen" || continue
        selected "$fmt" || continue
        key=$(key_for "m$n" "$p" "$kind" "$value")
        hdr=$(header_of "$notes")
        printf '%s %s%s\n' "$p$f" "$key" "${hdr:+ header=$OUTDIR/$p$hdr}" >>"$KT"
    done <"$ROWS"
    if ((fuse_ok)); then
        mkdir -p "$MNT"
        log "mounting $OUTDIR on $MNT ($(wc -l <"$KT") keytab lines)"
        "$BIN" mount "$OUTDIR" "$MNT" --keytab "$KT" >"$WORK/mount.log" 2>&1 </dev/null &
        MOUNT_PID=$!
        t=$SECONDS
        until is_mounted "$MNT"; do
            if ! kill -0 "$MOUNT_PID" 2>/dev/null || ((SECONDS - t > 30)); then
                cat "$WORK/mount.log" >&2
                die "luksfs mount did not come up"
            fi
            sleep 0.05
        done
    fi
    n=0
    while IFS=$'\t' read -r p f fmt kind value size sha expect notes; do
        [ "$p" != . ] || p=""
        n=$((n + 1))
        grep -qx "$n" "$WORK/chosen" || continue
        if ! selected "$fmt"; then result SKIP mount "$p$f" "$expect" "format $fmt not selected"; continue; fi
        if ((fuse_ok == 0)); then result SKIP mount "$p$f" "$expect" "no /dev/fuse"; continue; fi
        case $expect in
            error-badkey) mode=EACCES ;; error-corrupt) mode=EIO ;; refuse) mode=EOPNOTSUPP ;;
            ok-spot) mode=ok-spot ;; ok-or-unsupported) mode=ok-or-unsupported ;; *) mode=ok ;;
        esac
        is_sparse "$expect" "$size" && [ "$mode" = ok ] && mode=ok-spot
        # A damaged file without LUKS/qcow2 magic is not an image: the mount must not list it
        # (images are recognised by content); cat still has to refuse it with exit 4.
        if [ "$mode" = EIO ] && [ -z "$(header_of "$notes")" ]; then
            case $(head -c 4 "$OUTDIR/$p$f" | od -An -tx1 | tr -d ' \n') in
                4c554b53 | 514649fb) ;;
                *) mode=HIDDEN ;;
            esac
        fi
        # shellcheck disable=SC2046  # spot triples split into words on purpose
        line=$(timeout 600 python3 -c "$MOUNT_CHECK" "$MNT/$p$f.raw" "$mode" "$size" "$sha" $(spots_of "$p" "$f") 2>&1 </dev/null ||
            echo "FAIL checker exit $?")
        line=${line##*$'\n'}
        result "${line%% *}" mount "$p$f" "$expect" "$kind: ${line#* }"
    done <"$ROWS"
    if ((fuse_ok)); then
        if fusermount3 -u "$MNT"; then
            rc=0
            for _ in $(seq 100); do kill -0 "$MOUNT_PID" 2>/dev/null || break; sleep 0.1; done
            wait "$MOUNT_PID" || rc=$?
            MOUNT_PID=""
            if ((rc == 0)); then result PASS mount "(whole corpus)" unmount "fusermount3 -u, luksfs exit 0"; else
                result FAIL mount "(whole corpus)" unmount "luksfs exit $rc after fusermount3 -u"; fi
        else
            result FAIL mount "(whole corpus)" unmount "fusermount3 -u failed"
        fi
        if ((FAILED)) && [ -s "$WORK/mount.log" ]; then
            log "mount log (last 20 lines):"; tail -n 20 "$WORK/mount.log" >&2
        fi
    fi
    if [ "$VIA" = mount ]; then
        log "rows not used for the mount (other keys of the same image) go through cat"
        run_cat_rows unchosen
    fi
fi

log "done in $((SECONDS - T0)) s"
summary="$PASSED passed, $FAILED failed"
((SKIPPED == 0)) || summary+=", $SKIPPED skipped"
echo "$summary"
((FAILED == 0))
