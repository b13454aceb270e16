#!/usr/bin/env bash
# cinder-api-up.sh DIR --keystone OSK_ENV - run a REAL OpenStack cinder-api (cinder 29 from PyPI,
# the venv scripts/cinder-backup-make.sh --install makes, pinned by cinder-constraints.txt) on
# 127.0.0.1 for luksfs's integration tests: a sqlite database (`cinder-manage db sync`),
# keystonemiddleware `authtoken` against the Keystone of OSK_ENV (the osk.env
# scripts/openstack-up.sh writes), and the `fake://` messaging transport (no broker: the API only
# has to answer GETs; nothing here creates volumes or backups through it).
#
# Registers a `cinder` service user (role service in project service) and the `volumev3` and
# `block-storage` services (public and internal endpoints `http://127.0.0.1:PORT/v3/%(project_id)s`,
# RegionOne) in Keystone, so clients find Cinder in the catalog of the same clouds.yaml / OS_*
# credentials they use for Barbican. Records are put in its database with cinder's own objects
# API by scripts/cinder-api-record.py.
#
# Policy: cinder's defaults, except that a user with the role `luksfs-no-backups` may not read
# backups (403), so tests can see how a refusal is reported.
#
# Writes DIR/cinder.env:
#   CINDER_URL      the API root (http://127.0.0.1:PORT)
#   CINDER_CONF     its configuration (for scripts/cinder-api-record.py --config-file)
#   CINDER_VENV     the venv (run cinder-api-record.py with its python)
# Idempotent: a second run reuses the venv and the database and leaves a running cinder-api alone
# (keeping its port). Stop it with scripts/cinder-api-down.sh DIR.
#
# Environment: LUKSFS_CINDER_VENV (target/cinder-venv), CINDER_START_TIMEOUT (60 seconds),
# CINDER_CATALOG (1; 0: register the service user but no catalog endpoints, for a second
# cinder-api that clients reach with `block_storage_endpoint_override`), CINDER_PAGE_MAX (unset:
# cinder's default; N: at most N records per page of a listing, so that clients follow `next`).
#
# Barbican (of the same Keystone's catalog) is its key manager: creating a volume of an
# encrypted type through the API makes the volume's key there, with the caller's token.
set -euo pipefail
die() { echo "cinder-api-up: $*" >&2; exit 1; }
log() { printf '[cinder-api-up] %s\n' "$*" >&2; }
[ $# -eq 3 ] && [ "$2" = --keystone ] || die "usage: $0 DIR --keystone OSK_ENV"
D=$(mkdir -p "$1" && cd "$1" && pwd)
OSK_ENV=$3
[ -f "$OSK_ENV" ] || die "$OSK_ENV missing: run scripts/openstack-up.sh first"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OSK_KEYSTONE_URL=$(sed -n 's/^OSK_KEYSTONE_URL=//p' "$OSK_ENV")
OSK_ADMIN_PASSWORD=$(sed -n 's/^OSK_ADMIN_PASSWORD=//p' "$OSK_ENV")
[ -n "$OSK_KEYSTONE_URL" ] && [ -n "$OSK_ADMIN_PASSWORD" ] || die "$OSK_ENV lacks the Keystone URL or admin password"
TIMEOUT=${CINDER_START_TIMEOUT:-60}
mkdir -p "$D/state" "$D/log" "$D/run" "$D/etc"
export PYTHONWARNINGS=ignore # eventlet's deprecation banner

# ---------------------------------------------------------------- venv ----
# the same venv (and lock) as the backups of the tests: one install of cinder
VENV=$(bash "$HERE/cinder-backup-make.sh" --install) || die "installing cinder failed"
PY=$VENV/bin/python
(
    flock 9
    "$PY" -c 'import keystonemiddleware.auth_token, oslo_messaging' 2>/dev/null ||
        "$PY" -m pip install -q --disable-pip-version-check -c "$HERE/cinder-constraints.txt" keystonemiddleware \
            >"$D/log/pip.log" 2>&1 || { tail -20 "$D/log/pip.log" >&2; exit 1; }
) 9>"$VENV.lock" || die "installing keystonemiddleware failed (see $D/log/pip.log)"

alive() { [ -f "$D/run/cinder-api.pid" ] && grep -qa cinder-api "/proc/$(cat "$D/run/cinder-api.pid")/cmdline" 2>/dev/null; }
PORT=
[ -f "$D/cinder.env" ] && PORT=$(sed -n 's#^CINDER_URL=http://127.0.0.1:##p' "$D/cinder.env")
# a stopped cinder-api comes back on its old port when that is free (the catalog stays right)
if ! alive || [ -z "$PORT" ]; then
    PORT=$("$PY" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1] or "x")))
except (OSError, ValueError):
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$PORT")
fi
URL=http://127.0.0.1:$PORT

# ------------------------------------------- keystone user and catalog ----
if [ ! -f "$D/state/password" ]; then
    (umask 077; "$PY" -c 'import secrets; print("c" + secrets.token_hex(16))' >"$D/state/password")
fi
CPW=$(cat "$D/state/password")
{
    OSK_ADMIN_PASSWORD=$OSK_ADMIN_PASSWORD SERVICE_PASSWORD=$CPW python3 "$HERE/keystone-service.py" --user \
        "$OSK_KEYSTONE_URL" cinder &&
        { [ "${CINDER_CATALOG:-1}" = 0 ] ||
        for t in volumev3:cinderv3 block-storage:cinder; do
            OSK_ADMIN_PASSWORD=$OSK_ADMIN_PASSWORD python3 "$HERE/keystone-service.py" "$OSK_KEYSTONE_URL" \
                "${t%%:*}" "${t#*:}" "$URL/v3/%(project_id)s" || exit 1
        done; }
} >"$D/log/keystone.log" 2>&1 || { cat "$D/log/keystone.log" >&2; die "registering Cinder in Keystone failed"; }

# ------------------------------------------------------------- config -----
cat >"$D/etc/cinder.conf.new" <<C
[DEFAULT]
state_path = $D/state
log_file = $D/log/cinder-api.log
auth_strategy = keystone
api_paste_config = $VENV/etc/cinder/api-paste.ini
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $PORT
osapi_volume_workers = 1
# no broker: the API answers GETs from its database
transport_url = fake://
${CINDER_PAGE_MAX:+osapi_max_limit = $CINDER_PAGE_MAX}
[oslo_messaging_notifications]
driver = noop
[oslo_policy]
policy_file = $D/etc/policy.yaml
[oslo_concurrency]
lock_path = $D/state/lock
[coordination]
backend_url = file://$D/state/coordination
[database]
connection = sqlite:///$D/state/cinder.sqlite
[keystone_authtoken]
www_authenticate_uri = $OSK_KEYSTONE_URL
auth_url = $OSK_KEYSTONE_URL
auth_type = password
username = cinder
password = $CPW
user_domain_name = Default
project_name = service
project_domain_name = Default
# keystonemiddleware looks for the 'internal' identity endpoint by default
interface = public
[key_manager]
backend = barbican
[barbican]
auth_endpoint = $OSK_KEYSTONE_URL
barbican_endpoint_type = public
C

# cinder's default rule for reading a backup, except for users with the role luksfs-no-backups
# (if Keystone has one): they get 403, for the tests of how a refusal is reported
cat >"$D/etc/policy.yaml" <<'C'
"backup:get": "(rule:xena_system_admin_or_project_reader) and not role:luksfs-no-backups"
C

# a running cinder-api with another configuration (an older version of this script) is restarted
if alive && ! cmp -s "$D/etc/cinder.conf.new" "$D/etc/cinder.conf"; then
    log "configuration changed: restarting cinder-api"
    "$HERE/cinder-api-down.sh" "$D" >&2
fi
mv "$D/etc/cinder.conf.new" "$D/etc/cinder.conf"
if alive; then
    log "cinder-api already running (pid $(cat "$D/run/cinder-api.pid"))"
else
    "$PY" "$VENV/bin/cinder-manage" --config-file "$D/etc/cinder.conf" db sync >"$D/log/db_sync.log" 2>&1 ||
        { tail -20 "$D/log/db_sync.log" >&2; die "cinder-manage db sync failed"; }
    # (exec ...) >log: the server must not keep the caller's stdout open
    (cd "$D" && exec "$PY" "$VENV/bin/cinder-api" --config-file "$D/etc/cinder.conf") \
        >"$D/log/stdout.log" 2>&1 </dev/null &
    echo $! >"$D/run/cinder-api.pid"
fi
for _ in $(seq $((TIMEOUT * 5))); do
    curl -fsS -o /dev/null "$URL/" 2>/dev/null && break
    alive || { tail -20 "$D/log/stdout.log" "$D/log/cinder-api.log" >&2 2>/dev/null; die "cinder-api exited (see $D/log)"; }
    sleep 0.2
done
# the version document answers 300 (Multiple Choices): any answer means it is up
curl -sS -o /dev/null "$URL/" || die "cinder-api did not answer at $URL within ${TIMEOUT}s (see $D/log)"
{
    echo "CINDER_URL=$URL"
    echo "CINDER_CONF=$D/etc/cinder.conf"
    echo "CINDER_VENV=$VENV"
} >"$D/cinder.env"
cat "$D/cinder.env"
