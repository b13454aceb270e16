#!/usr/bin/env bash
# scripts/bench/glance.sh LUKSFS WORKDIR [SIZE_MIB] [REPS] -- an encrypted image in a real Glance
# read in place, against curl of the same image from the same Glance, side by side in one run
# (issue 15). Called by scripts/bench.sh; runs alone too (needs root, /dev/fuse, qemu-img, curl,
# python3; starts Keystone + Barbican (scripts/openstack-up.sh) and Glance (scripts/glance-up.sh)
# under WORKDIR, reusing the tests' venvs in target/openstack when they are there).
#
# * Image: SIZE MiB of seeded random plaintext in a LUKS1 image made by qemu-img (aes-xts-plain64),
#   its passphrase a Barbican `passphrase` secret, uploaded to Glance's file store with
#   os_encrypt_format / os_encrypt_key_id, as a user's encrypted upload is.
# * Bytes first: the mounted image is compared with the plaintext.
# * curl: one GET of the image's data (`/v2/images/ID/file`) to /dev/null, one connection.
# * seq: `luksfs mount glance://ID` (key from Barbican), dd bs=1M of the exposed file (its page
#   cache dropped first); MB/s against curl's MB/s.
# * verify: `luksfs verify glance://ID` (decrypt, SHA-256 of ciphertext and plaintext, the
#   image's os_hash_value) against the curl time.
#   Each figure on a fresh mount or process; the median of REPS.
# * floor: the least time any verify can take here: its SHA-512 (os_hash_value, one running hash
#   no second core can share) and two SHA-256 passes, timed with openssl.
# Output: a markdown table on stdout (figure | luksfs | curl | ratio | target | verdict).
set -Eeuo pipefail
BENCH=glance
. "$(dirname "$0")/lib.sh"
bench_args "$@"
cleanup() {
    unmount_all
    [ -d "$W/glance" ] && bash "$HERE/glance-down.sh" "$W/glance" >/dev/null 2>&1 || true
    [ -d "$W/osk" ] && bash "$HERE/openstack-down.sh" "$W/osk" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- services
TESTS_OSK=$HERE/../target/openstack
[ -z "${OSK_VENV:-}" ] && [ -x "$TESTS_OSK/venv/bin/python" ] && export OSK_VENV=$TESTS_OSK/venv
[ -z "${GLANCE_VENV:-}" ] && [ -x "$TESTS_OSK/glance/venv/bin/python" ] && export GLANCE_VENV=$TESTS_OSK/glance/venv
log "starting Keystone + Barbican"
bash "$HERE/openstack-up.sh" "$W/osk" >"$W/osk.log" 2>&1 || { tail -20 "$W/osk.log" >&2; exit 1; }
log "starting Glance"
bash "$HERE/glance-up.sh" "$W/glance" "$W/osk" >"$W/glance.log" 2>&1 || { tail -20 "$W/glance.log" >&2; exit 1; }
set -a; . "$W/osk/osk.env"; . "$W/glance/glance.env"; set +a
export OS_CLIENT_CONFIG_FILE=$W/osk/clouds.yaml
# luksfs takes the credentials of clouds.yaml's osk-demo, not the app credential in OS_*
unset OS_AUTH_TYPE OS_AUTH_URL OS_APPLICATION_CREDENTIAL_ID OS_APPLICATION_CREDENTIAL_SECRET
token() {
    python3 - "$OSK_KEYSTONE_URL" "$OSK_DEMO_USERNAME" "$OSK_DEMO_PASSWORD" "$OSK_DEMO_PROJECT_NAME" <<'EOF'
import json, sys, urllib.request
url, user, pw, project = sys.argv[1:]
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": pw}}},
                 "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
req = urllib.request.Request(url + "/auth/tokens", json.dumps(body).encode(), {"Content-Type": "application/json"})
print(urllib.request.urlopen(req).headers["X-Subject-Token"])
EOF
}
TOKEN=$(token)

# ---------------------------------------------------------------- image
PASS="glance bench passphrase"
printf %s "$PASS" >"$W/key"
if [ ! -s "$W/img.luks" ] || [ "$(stat -c %s "$W/plain" 2>/dev/null)" != $((SIZE << 20)) ]; then
    log "making the image ($SIZE MiB plaintext)"
    { openssl enc -aes-256-ctr -nosalt -pass pass:glance -in /dev/zero 2>/dev/null || true; } | head -c $((SIZE << 20)) >"$W/plain"
    qemu-img convert -q -f raw "$W/plain" --object "secret,id=s0,file=$W/key" -O luks \
        -o key-secret=s0,iter-time=10 "$W/img.luks"
fi
log "storing the passphrase in Barbican and uploading the image"
SECRET=$(curl -fsS -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"payload\": \"$PASS\", \"payload_content_type\": \"text/plain\", \"secret_type\": \"passphrase\"}" \
    "$OSK_BARBICAN_URL/v1/secrets" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret_ref"].rsplit("/", 1)[1])')
ID=$(curl -fsS -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\": \"bench-$SIZE\", \"disk_format\": \"raw\", \"container_format\": \"bare\", \"os_encrypt_format\": \"LUKSv1\", \"os_encrypt_key_id\": \"$SECRET\"}" \
    "$GLANCE_URL/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -fsS -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$W/img.luks" "$GLANCE_URL/v2/images/$ID/file"

# ---------------------------------------------------------------- helpers
MP=$W/mnt
start() { # -> the image mounted at $MP; prints the exposed file
    "$LUKSFS" mount "glance://$ID" "$MP" --os-cloud osk-demo --daemon >>"$W/mount.log" 2>&1
    MOUNTS=("$MP")
    find "$MP" -name '*.raw' | head -1
}
mbs() { awk -v b=$((SIZE << 20)) -v s="$1" 'BEGIN {printf "%.0f", b / s / 1e6}'; }
curl_get() { curl -fsS -H "X-Auth-Token: $TOKEN" -o /dev/null "$GLANCE_URL/v2/images/$ID/file"; }

# ---------------------------------------------------------------- bytes first
f=$(start); cmp "$f" "$W/plain" || { echo "BYTES DIFFER: mounted Glance image" >&2; exit 1; }; stop
log "bytes equal: mounted Glance image $ID"

# ---------------------------------------------------------------- figures
: >"$W/glance.tsv"
for ((r = 1; r <= REPS; r++)); do
    printf 'curl\t%s\n' "$(secs curl_get)" >>"$W/glance.tsv"
    f=$(start); printf 'seq\t%s\n' "$(seqmb "$f")" >>"$W/glance.tsv"; stop
    printf 'verify\t%s\n' "$(secs "$LUKSFS" verify "glance://$ID" --os-cloud osk-demo)" >>"$W/glance.tsv"
    log "rep $r: $(tail -n 3 "$W/glance.tsv" | tr '\t\n' ' ;')"
done
fig() { awk -F'\t' -v f="$1" '$1 == f {print $2}' "$W/glance.tsv" | median; }
c=$(fig curl) s=$(fig seq) v=$(fig verify)
cm=$(mbs "$c")
echo "| Glance figure ($SIZE MiB LUKS1 image, file store, median of $REPS) | luksfs | curl | ratio | target | verdict |"
echo "|---|---|---|---|---|---|"
echo "| streaming the mounted image, dd bs=1M, vs one curl GET (MB/s) | $s | $cm | $(ratio "$s" "$cm") | >= 0.8 | $(verdict "$(ratio "$s" "$cm")" 0.8) |"
echo "| verify glance://ID vs one curl GET (s) | $v | $c | $(ratio "$c" "$v") | >= 0.8 | $(verdict "$(ratio "$c" "$v")" 0.8) |"
# The floor of verify: the image's os_hash_value is SHA-512 (Glance's default os_hash_algo), one
# running hash over every byte that no second core can share, and verify hashes the ciphertext
# and the plaintext with SHA-256 too; timed with openssl here. No verify can take less than the
# SHA-512 alone, nor less than all three spread over every core.
cat "$W/img.luks" >/dev/null
sha512=$(secs openssl dgst -sha512 "$W/img.luks") sha256=$(secs openssl dgst -sha256 "$W/img.luks")
floor=$(awk -v a="$sha512" -v b="$sha256" -v n="$(nproc)" 'BEGIN {f = (a + 2 * b) / n; printf "%.3f", (f > a) ? f : a}')
echo "| floor of verify: max(SHA-512 $sha512 s, (SHA-512 + 2 x SHA-256 $sha256 s) / $(nproc) cores), openssl (s) | $floor | $c | $(ratio "$c" "$floor") at best | >= 0.8 | $(floor_verdict "$(ratio "$c" "$floor")" 0.8) |"
