#!/usr/bin/env bash
# glance-up.sh DIR OSK_DIR - run a REAL OpenStack Glance (glance 33 from PyPI, file store, sqlite)
# on 127.0.0.1 for luksfs's integration tests, authenticating against the Keystone that
# scripts/openstack-up.sh runs in OSK_DIR, with its Barbican as key manager.
#
# Registers a `glance` service user (role service in project service) and `image` endpoints
# (public, internal) in Keystone, so clients find Glance in the service catalog of the same
# clouds.yaml / OS_* credentials they use for Barbican. Writes DIR/glance.env (GLANCE_URL).
# Idempotent: a second run reuses the venv, the database and the images, and leaves a running
# Glance alone (keeping its port). Stop it with scripts/glance-down.sh DIR.
#
# The file store answers Range requests with 206 (as the cinder store does); rbd, swift, s3 and
# http stores answer 400 to them.
#
# Environment: GLANCE_VENV (DIR/venv), GLANCE_CONSTRAINTS (glance-constraints.txt next to this
# script; '' resolves freely), GLANCE_START_TIMEOUT (60 seconds), GLANCE_PAGE_MAX (3: images per
# page of a listing, so that tests follow 'next'; a running Glance keeps its setting).
set -euo pipefail
die() { echo "glance-up: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 DIR OSK_DIR"
D=$(mkdir -p "$1" && cd "$1" && pwd)
O=$(cd "$2" && pwd) || die "no $2"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -f "$O/osk.env" ] || die "$O/osk.env missing: run scripts/openstack-up.sh $O first"
OSK_KEYSTONE_URL=$(sed -n 's/^OSK_KEYSTONE_URL=//p' "$O/osk.env")
OSK_ADMIN_PASSWORD=$(sed -n 's/^OSK_ADMIN_PASSWORD=//p' "$O/osk.env")
[ -n "$OSK_KEYSTONE_URL" ] && [ -n "$OSK_ADMIN_PASSWORD" ] || die "$O/osk.env lacks the Keystone URL or admin password"
VENV=${GLANCE_VENV:-$D/venv}
if [ -z "${GLANCE_CONSTRAINTS+x}" ]; then GLANCE_CONSTRAINTS=$HERE/glance-constraints.txt; fi
TIMEOUT=${GLANCE_START_TIMEOUT:-60}
PAGE_MAX=${GLANCE_PAGE_MAX:-3}
mkdir -p "$D/state/images" "$D/state/staging" "$D/state/tasks" "$D/log" "$D/run" "$D/etc"
export PYTHONWARNINGS=ignore

# ---------------------------------------------------------------- venv ----
STAMP=$({ echo glance gunicorn; python3 -V 2>&1; [ -z "$GLANCE_CONSTRAINTS" ] || cat "$GLANCE_CONSTRAINTS"; } \
    | sha256sum | cut -c1-16)
if [ ! -f "$VENV/.glance-stamp" ] || ! grep -qx "$STAMP" "$VENV/.glance-stamp"; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    ARGS=(--disable-pip-version-check -q)
    [ -z "$GLANCE_CONSTRAINTS" ] || ARGS+=(-c "$GLANCE_CONSTRAINTS")
    echo "glance-up: installing glance into $VENV" >&2
    "$VENV/bin/pip" install "${ARGS[@]}" glance gunicorn >"$D/log/pip.log" 2>&1 \
        || { tail -20 "$D/log/pip.log" >&2; die "pip install failed (see $D/log/pip.log)"; }
    echo "$STAMP" >"$VENV/.glance-stamp"
fi

alive() { [ -f "$D/run/glance.pid" ] && grep -qa gunicorn "/proc/$(cat "$D/run/glance.pid")/cmdline" 2>/dev/null; }
PORT=
[ -f "$D/glance.env" ] && PORT=$(sed -n 's#^GLANCE_URL=http://127.0.0.1:##p' "$D/glance.env")
if ! alive; then
    PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
URL=http://127.0.0.1:$PORT

# ------------------------------------------- keystone user and catalog ----
if [ ! -f "$D/state/password" ]; then
    (umask 077; "$VENV/bin/python" -c 'import secrets; print("g" + secrets.token_hex(16))' >"$D/state/password")
fi
GPW=$(cat "$D/state/password")
OSK_ADMIN_PASSWORD=$OSK_ADMIN_PASSWORD GPW=$GPW "$VENV/bin/python" - "$OSK_KEYSTONE_URL" "$URL" >"$D/log/keystone.log" 2>&1 <<'PY' || { cat "$D/log/keystone.log" >&2; die "registering Glance in Keystone failed"; }
"""Idempotently: user glance (role service in project service) and image endpoints at URL."""
import json, os, sys, time, urllib.error, urllib.request
ks, url = sys.argv[1:3]
admin_pw = os.environ['OSK_ADMIN_PASSWORD']
glance_pw = os.environ['GPW']
def req(method, path, body=None, token=None, ok=(200, 201, 204)):
    r = urllib.request.Request(ks + path, method=method,
                               data=json.dumps(body).encode() if body is not None else None)
    r.add_header('Content-Type', 'application/json')
    if token:
        r.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.headers, None
        sys.exit('%s %s -> %s %s' % (method, path, e.code, e.read()[:300]))
def login(user, pw, project):
    return req('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
        'name': user, 'domain': {'name': 'Default'}, 'password': pw}}},
        'scope': {'project': {'name': project, 'domain': {'name': 'Default'}}}}})[1]['X-Subject-Token']
t = login('admin', admin_pw, 'admin')
roles = {r['name']: r['id'] for r in req('GET', '/roles', token=t)[2]['roles']}
svc = req('GET', '/projects?name=service', token=t)[2]['projects'][0]
us = req('GET', '/users?name=glance', token=t)[2]['users']
u = us[0] if us else req('POST', '/users', {'user': {'name': 'glance', 'domain_id': 'default',
    'password': glance_pw, 'default_project_id': svc['id']}}, token=t)[2]['user']
# a password change revokes tokens with 1-second granularity: change it only when it differs
code = req('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
    'id': u['id'], 'password': glance_pw}}}}}, ok=(201, 401))[0]
if code == 401:
    req('PATCH', '/users/' + u['id'], {'user': {'password': glance_pw}}, token=t)
    time.sleep(1.1)
req('PUT', '/projects/%s/users/%s/roles/%s' % (svc['id'], u['id'], roles['service']), token=t)
print('glance user', u['id'])
PY
OSK_ADMIN_PASSWORD=$OSK_ADMIN_PASSWORD python3 "$HERE/keystone-service.py" "$OSK_KEYSTONE_URL" image glance "$URL" \
    >>"$D/log/keystone.log" 2>&1 || { cat "$D/log/keystone.log" >&2; die "registering Glance in Keystone failed"; }

# ------------------------------------------------------------- config -----
cat >"$D/etc/glance-api.conf.new" <<C
[DEFAULT]
log_file = $D/log/glance-api.log
# the http store too (read-only: images whose data is at a URL, added by POST .../locations),
# whose images Glance cannot serve by range
enabled_backends = fs:file, web:http
# small pages (of at most GLANCE_PAGE_MAX images; Glance's default is 1000), so that every
# listing of a few test images already follows 'next'
api_limit_max = $PAGE_MAX
limit_param_default = $PAGE_MAX
[database]
connection = sqlite:///$D/state/glance.sqlite
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $D/state/images
[import_filtering_opts]
# a location on this host (any port) for the http store's test images
allowed_hosts = [127.0.0.1]
allowed_ports = []
[os_glance_staging_store]
filesystem_store_datadir = $D/state/staging
[os_glance_tasks_store]
filesystem_store_datadir = $D/state/tasks
[paste_deploy]
flavor = keystone
config_file = $VENV/etc/glance/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = $OSK_KEYSTONE_URL
auth_url = $OSK_KEYSTONE_URL
auth_type = password
username = glance
password = $GPW
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

# a running Glance with another configuration (an older version of this script) is restarted
if alive && ! cmp -s "$D/etc/glance-api.conf.new" "$D/etc/glance-api.conf"; then
    echo "glance-up: configuration changed: restarting Glance" >&2
    "$HERE/glance-down.sh" "$D" >&2
fi
mv "$D/etc/glance-api.conf.new" "$D/etc/glance-api.conf"
if alive; then
    echo "glance-up: Glance already running (pid $(cat "$D/run/glance.pid"))" >&2
else
    OS_GLANCE_CONFIG_DIR=$D/etc "$VENV/bin/glance-manage" --config-file "$D/etc/glance-api.conf" db_sync \
        >"$D/log/db_sync.log" 2>&1 || { tail -20 "$D/log/db_sync.log" >&2; die "glance-manage db_sync failed"; }
    # (exec ...) >log: the server must not keep the caller's stdout open. One process with 4
    # threads serves requests side by side, as deployments do (uwsgi processes × threads); a
    # sync worker would hold every other request while one long download is being read.
    (cd "$D" && OS_GLANCE_CONFIG_DIR=$D/etc exec "$VENV/bin/gunicorn" --bind "127.0.0.1:$PORT" --workers 1 \
        --threads 4 --no-control-socket --name luksfs-glance glance.wsgi.api:application) >"$D/log/gunicorn.log" 2>&1 &
    echo $! >"$D/run/glance.pid"
fi
for _ in $(seq $((TIMEOUT * 5))); do
    curl -fsS -o /dev/null "$URL/versions" 2>/dev/null && break
    alive || { tail -20 "$D/log/gunicorn.log" >&2; die "Glance exited (see $D/log)"; }
    sleep 0.2
done
curl -fsS -o /dev/null "$URL/versions" || die "Glance did not answer at $URL within ${TIMEOUT}s (see $D/log)"
echo "GLANCE_URL=$URL" >"$D/glance.env"
echo "GLANCE_URL=$URL"
