#!/usr/bin/env bash
# openstack-up.sh - run a REAL OpenStack Keystone + Barbican on loopback
# (sqlite, simple_crypto) for luksfs's integration tests and for trying
# `luksfs --os-cloud ...` by hand. Idempotent; a second run reuses the venv
# and state (warm start) and leaves running servers alone.
#
#   scripts/openstack-up.sh [--mode keystone|noauth|both] [--with-cli] DIR
#
#   --mode keystone  (default) Keystone + Barbican behind keystonemiddleware
#   --mode noauth    Barbican only, unauthenticated pipeline (X-Project-Id)
#   --mode both      both of the above; the two Barbican processes share one
#                    database, so a secret stored through one is readable
#                    through the other (same project id).
#   --with-cli       also install python-openstackclient + python-barbicanclient
#                    into the venv (the 'openstack secret ...' commands)
#
# Everything lives under DIR: venv/ (override with OSK_VENV), state/ (configs,
# sqlite, keys, generated passwords), log/, run/*.pid, clouds.yaml, osk.env,
# openrc-*.sh. Stop with scripts/openstack-down.sh DIR.
#
# DIR/clouds.yaml (use OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml) has the clouds
#   osk-demo     auth_type password, user demo, project demo (role member)
#   osk-appcred  auth_type v3applicationcredential (demo's credential)
#   osk-token    auth_type token, a demo token minted by this run (it expires
#                after OSK_TOKEN_EXPIRATION seconds; re-run to refresh it)
#   osk-admin    auth_type password, the Keystone admin
# DIR/osk.env (KEY=VALUE; `set -a; . DIR/osk.env; set +a`) has the URLs, ids
# and the demo/admin passwords plus OS_* variables for demo's app credential.
#
# Environment knobs:
#   OSK_PYTHON (python3)  OSK_VENV (DIR/venv)  OSK_WORKERS (1)
#   OSK_BARBICAN_VERSION (23.0.0)  OSK_KEYSTONE_VERSION (30.0.0)
#   OSK_CONSTRAINTS (openstack-constraints.txt next to this script; set to ''
#       to resolve freely)
#   OSK_WHEELHOUSE  a directory to cache wheels in; when set, installs come
#       from it (--no-index) and it is filled on a miss, so CI can cache it
#   OSK_KEYSTONE_PORT / OSK_BARBICAN_PORT / OSK_BARBICAN_NOAUTH_PORT
#       fixed ports; default: the previous run's ports if free, else random
#   OSK_START_TIMEOUT (90) seconds to wait for each server
#   OSK_TOKEN_EXPIRATION (3600) Keystone token lifetime in seconds
#   OSK_NOAUTH_DEFAULT_ROLES  e.g. 'member': X-Roles assumed by the noauth
#       Barbican when a request sends none (default: upstream behaviour,
#       i.e. ['admin'] only -> POST /v1/secrets and the list get 403)
# Servers bind to 127.0.0.1 only.
#
# Traps handled here (details in the comments below):
#  1. Barbican 22+ noauth pipeline: HTTP 500 "AttributeError: request_id"
#     -> a paste filter sets req.request_id.
#  2. keystone.wsgi.api parses sys.argv -> under gunicorn the worker dies
#     ("unrecognized arguments") and is respawned forever -> a shim clears argv.
#  3. keystonemiddleware looks up the 'internal' identity endpoint by default
#     -> interface = public (and Keystone gets an internal endpoint too).
#  4. New RBAC defaults: Barbican needs role member (granted to demo).
#  5. bcrypt at 12 rounds costs 0.25 s per auth -> password_hash_rounds = 4.
#  6. Backgrounding gunicorn from a subshell kept the caller's stdout open, so
#     `openstack-up.sh | tee` hung -> (exec ...) >log 2>&1 &.
#  7. openstacksdk merges OS_* env over clouds.yaml -> osk.env has no OS_CLOUD.
#  8. Restarts keep their ports (probe with SO_REUSEADDR, TIME_WAIT), so the
#     catalog stays valid.
#  9. A password change revokes the user's tokens with 1-second granularity
#     -> passwords are PATCHed only when they differ, then we wait 1.1 s.
# 10. Barbican reads its config at import time from ~/.barbican/ only
#     -> it runs with HOME=state/barbican/home; its WSGI entry point hard-codes
#     /etc/barbican/barbican-api-paste.ini -> our own loadapp shim.
set -euo pipefail

die() { echo "openstack-up: $*" >&2; exit 1; }
log() { echo "[osk $(date +%H:%M:%S)] $*" >&2; }

MODE=keystone
WITH_CLI=0
BASE=${OSK_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE=${2:-}; shift 2 ;;
        --mode=*) MODE=${1#--mode=}; shift ;;
        --noauth) MODE=noauth; shift ;;
        --with-cli) WITH_CLI=1; shift ;;
        -h|--help) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) BASE=$1; shift ;;
    esac
done
[ -n "$BASE" ] || die "usage: $0 [--mode keystone|noauth|both] [--with-cli] DIR"
case "$MODE" in keystone|noauth|both) ;; *) die "bad --mode $MODE" ;; esac
WANT_KS=1; WANT_AUTH=1; WANT_NOAUTH=1
[ "$MODE" = noauth ] && { WANT_KS=0; WANT_AUTH=0; }
[ "$MODE" = keystone ] && WANT_NOAUTH=0

T0=$(date +%s.%N)
mkdir -p "$BASE"
BASE=$(cd "$BASE" && pwd)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOST=127.0.0.1
PY=${OSK_PYTHON:-python3}
VENV=${OSK_VENV:-$BASE/venv}
STATE=$BASE/state
LOGD=$BASE/log
RUN=$BASE/run
WORKERS=${OSK_WORKERS:-1}
TIMEOUT=${OSK_START_TIMEOUT:-90}
BARBICAN_VERSION=${OSK_BARBICAN_VERSION:-23.0.0}
KEYSTONE_VERSION=${OSK_KEYSTONE_VERSION:-30.0.0}
if [ -z "${OSK_CONSTRAINTS+x}" ] && [ -f "$SCRIPT_DIR/openstack-constraints.txt" ]; then
    OSK_CONSTRAINTS=$SCRIPT_DIR/openstack-constraints.txt
fi
CONSTRAINTS=${OSK_CONSTRAINTS:-}
mkdir -p "$STATE/keystone" "$STATE/barbican/home/.barbican" "$LOGD" "$RUN"
export PYTHONWARNINGS=ignore   # eventlet/oslo deprecation noise

# ---------------------------------------------------------------- venv ----
REQS=("barbican==$BARBICAN_VERSION" "gunicorn")
[ "$WANT_KS" = 1 ] && REQS+=("keystone==$KEYSTONE_VERSION")
[ "$WITH_CLI" = 1 ] && REQS+=("python-openstackclient" "python-barbicanclient")

stamp_of() {
    {
        printf '%s\n' "$@"
        "$PY" -V 2>&1
        if [ -n "$CONSTRAINTS" ]; then cat "$CONSTRAINTS"; fi
    } | sha256sum | cut -c1-16
}
STAMP=$(stamp_of "${REQS[@]}")
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.osk-stamp" ] \
        && grep -qx "$STAMP" "$VENV/.osk-stamp"; then
    log "venv $VENV up to date"
else
    TI=$(date +%s)
    if [ ! -x "$VENV/bin/python" ]; then
        # Debian/Ubuntu ship venv's ensurepip separately (python3-venv)
        if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                log "installing python3-venv with apt-get"
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq python3-venv >/dev/null
            else
                die "$PY lacks ensurepip: apt-get install python3-venv"
            fi
        fi
        "$PY" -m venv "$VENV"
    fi
    PIPARGS=(--disable-pip-version-check -q)
    [ -n "$CONSTRAINTS" ] && PIPARGS+=(-c "$CONSTRAINTS")
    log "installing ${REQS[*]} into $VENV"
    if [ -n "${OSK_WHEELHOUSE:-}" ]; then
        mkdir -p "$OSK_WHEELHOUSE"
        if ! "$VENV/bin/pip" install "${PIPARGS[@]}" --no-index \
                --find-links "$OSK_WHEELHOUSE" "${REQS[@]}" 2>/dev/null; then
            "$VENV/bin/pip" download "${PIPARGS[@]}" -d "$OSK_WHEELHOUSE" "${REQS[@]}"
            "$VENV/bin/pip" install "${PIPARGS[@]}" --no-index \
                --find-links "$OSK_WHEELHOUSE" "${REQS[@]}"
        fi
    else
        "$VENV/bin/pip" install "${PIPARGS[@]}" "${REQS[@]}"
    fi
    echo "$STAMP" >> "$VENV/.osk-stamp"
    log "pip install took $(( $(date +%s) - TI ))s"
fi
VPY=$VENV/bin/python

# -------------------------------------------------- secrets and ports -----
if [ ! -f "$STATE/secrets.env" ]; then
    umask 077
    "$VPY" - > "$STATE/secrets.env" <<'EOF'
import base64, os, secrets
def password():
    # Never "-..." (an option to argparse and to most command lines).
    return "p" + secrets.token_urlsafe(18)
print("ADMIN_PASSWORD=" + password())
print("BARBICAN_PASSWORD=" + password())
print("DEMO_PASSWORD=" + password())
print("KEK=" + base64.urlsafe_b64encode(os.urandom(32)).decode())
EOF
    umask 022
fi
# shellcheck disable=SC1091
. "$STATE/secrets.env"

pid_alive() {  # NAME -> 0 if run/NAME.pid is a live gunicorn master
    local f=$RUN/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [ -n "$pid" ] && grep -qa gunicorn "/proc/$pid/cmdline" 2>/dev/null
}
port_free() {
    "$VPY" -c 'import socket,sys
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}
free_port() {
    "$VPY" -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
[ -f "$STATE/ports.env" ] && . "$STATE/ports.env"
pick_port() {  # NAME FIXED PREVIOUS
    local name=$1 fixed=$2 prev=$3
    if [ -n "$fixed" ]; then echo "$fixed"
    elif pid_alive "$name" && [ -n "$prev" ]; then echo "$prev"
    elif [ -n "$prev" ] && port_free "$prev"; then echo "$prev"
    else free_port
    fi
}
KS_PORT=$(pick_port keystone "${OSK_KEYSTONE_PORT:-}" "${KS_PORT:-}")
B_PORT=$(pick_port barbican "${OSK_BARBICAN_PORT:-}" "${B_PORT:-}")
BN_PORT=$(pick_port barbican-noauth "${OSK_BARBICAN_NOAUTH_PORT:-}" "${BN_PORT:-}")
[ "$B_PORT" = "$BN_PORT" ] && BN_PORT=$(free_port)
printf 'KS_PORT=%s\nB_PORT=%s\nBN_PORT=%s\n' "$KS_PORT" "$B_PORT" "$BN_PORT" \
    > "$STATE/ports.env"
KS_URL=http://$HOST:$KS_PORT/v3
B_URL=http://$HOST:$B_PORT
BN_URL=http://$HOST:$BN_PORT

# ------------------------------------------------------------- configs ----
KSD=$STATE/keystone
cat > "$KSD/keystone.conf" <<EOF
[DEFAULT]
log_file = $LOGD/keystone.log

[database]
connection = sqlite:///$KSD/keystone.sqlite

[token]
provider = fernet
expiration = ${OSK_TOKEN_EXPIRATION:-3600}

[fernet_tokens]
key_repository = $KSD/fernet-keys

[fernet_receipts]
key_repository = $KSD/fernet-keys

[credential]
key_repository = $KSD/credential-keys

[identity]
# test harness: cheap bcrypt (default 12 rounds = ~0.25 s per password or
# application-credential check); only affects newly stored hashes
password_hash_rounds = ${OSK_KEYSTONE_HASH_ROUNDS:-4}
EOF

# keystone.wsgi.api parses sys.argv with oslo.config and so chokes on the
# WSGI server's own arguments (gunicorn: "unrecognized arguments: -b ...").
cat > "$KSD/osk_keystone_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]
from keystone.server import wsgi  # noqa: E402
application = wsgi.initialize_public_application()
EOF

BD=$STATE/barbican
# Barbican parses its config at import time with args=[] (no --config-file);
# oslo.config looks in ~/.barbican/ first, so the server runs with HOME=$BD/home.
# host_href is left unset: hrefs follow the request's Host, which keeps the
# two Barbican processes (auth / noauth) returning their own URLs.
cat > "$BD/home/.barbican/barbican.conf" <<EOF
[DEFAULT]
log_file = $LOGD/barbican.log
db_auto_create = false

[database]
connection = sqlite:///$BD/barbican.sqlite

[secretstore]
enabled_secretstore_plugins = store_crypto

[crypto]
enabled_crypto_plugins = simple_crypto

[simple_crypto_plugin]
kek = $KEK

[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
username = barbican
password = $BARBICAN_PASSWORD
user_domain_name = Default
project_name = service
project_domain_name = Default
service_type = key-manager
# auth_token looks up the identity endpoint with interface 'internal' by default
interface = public
EOF

paste_common='[app:apiapp]
paste.app_factory = barbican.api.app:create_main_app

[app:versionapp]
paste.app_factory = barbican.api.app:create_version_app

[pipeline:barbican_version]
pipeline = request_id http_proxy_to_wsgi microversion versionapp

[filter:request_id]
paste.filter_factory = oslo_middleware.request_id:RequestId.factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory

[filter:microversion]
paste.filter_factory = barbican.api.middleware.microversion:MicroversionMiddleware.factory
'
cat > "$BD/paste-keystone.ini" <<EOF
[composite:main]
use = egg:Paste#urlmap
/: barbican_version
/v1: barbican_api_keystone

[pipeline:barbican_api_keystone]
pipeline = request_id http_proxy_to_wsgi authtoken context microversion apiapp

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:context]
paste.filter_factory = barbican.api.middleware.context:ContextMiddleware.factory

$paste_common
EOF
cat > "$BD/paste-noauth.ini" <<EOF
[composite:main]
use = egg:Paste#urlmap
/: barbican_version
/v1: barbican_api_noauth

[pipeline:barbican_api_noauth]
pipeline = request_id http_proxy_to_wsgi reqid_attr unauthenticated-context microversion apiapp

[filter:reqid_attr]
paste.filter_factory = osk_barbican_wsgi:reqid_attr_filter_factory

[filter:unauthenticated-context]
paste.filter_factory = barbican.api.middleware.context:UnauthenticatedContextMiddleware.factory

$paste_common
EOF
# barbican.wsgi.api hard-codes /etc/barbican/barbican-api-paste.ini.
cat > "$BD/osk_barbican_wsgi.py" <<'EOF'
import os
from paste import deploy


def reqid_attr_filter_factory(global_conf, **local_conf):
    """Barbican 22+: UnauthenticatedContextMiddleware reads req.request_id,
    which nothing sets any more since the switch to oslo.middleware's
    RequestId (upstream commit c480b665) -> AttributeError -> HTTP 500.
    Optional OSK_NOAUTH_DEFAULT_ROLES fills X-Roles when a request has none
    (upstream then assumes ['admin'] only, which may not create or list
    secrets under the new RBAC defaults: those need member / reader)."""
    roles = os.environ.get('OSK_NOAUTH_DEFAULT_ROLES', '')

    def _filter(app):
        def _app(environ, start_response):
            environ.setdefault('webob.adhoc_attrs', {})['request_id'] = \
                environ.get('openstack.request_id')
            if roles and not environ.get('HTTP_X_ROLES'):
                environ['HTTP_X_ROLES'] = roles
            return app(environ, start_response)
        return _app
    return _filter


application = deploy.loadapp('config:' + os.environ['BARBICAN_PASTE_INI'])
EOF

# ------------------------------------------------------ one-time setup ----
KM=("$VENV/bin/keystone-manage" --config-file "$KSD/keystone.conf")
if [ "$WANT_KS" = 1 ]; then
    if [ ! -f "$KSD/.db-$KEYSTONE_VERSION" ]; then
        log "keystone-manage db_sync"
        "${KM[@]}" db_sync
        touch "$KSD/.db-$KEYSTONE_VERSION"
    fi
    if [ ! -e "$KSD/fernet-keys/0" ]; then
        "${KM[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    if [ ! -e "$KSD/credential-keys/0" ]; then
        "${KM[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    if [ "$(cat "$KSD/.bootstrapped" 2>/dev/null)" != "$KS_URL" ]; then
        log "keystone-manage bootstrap ($KS_URL)"
        "${KM[@]}" bootstrap --bootstrap-password="$ADMIN_PASSWORD" \
            --bootstrap-username admin --bootstrap-project-name admin \
            --bootstrap-role-name admin --bootstrap-service-name keystone \
            --bootstrap-region-id RegionOne \
            --bootstrap-public-url "$KS_URL" --bootstrap-internal-url "$KS_URL"
        echo "$KS_URL" > "$KSD/.bootstrapped"
    fi
fi
if [ ! -f "$BD/.db-$BARBICAN_VERSION" ]; then
    log "barbican-manage db upgrade"
    HOME=$BD/home "$VENV/bin/barbican-manage" db upgrade >> "$LOGD/barbican-manage.log" 2>&1 \
        || die "barbican-manage db upgrade failed, see $LOGD/barbican-manage.log"
    touch "$BD/.db-$BARBICAN_VERSION"
fi

# --------------------------------------------------------------- start ----
http_code() {
    "$VPY" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
}
start_server() {  # NAME PORT APPDIR APP [ENV=VAL...]
    local name=$1 port=$2 appdir=$3 app=$4; shift 4
    if pid_alive "$name"; then
        log "$name already running (pid $(cat "$RUN/$name.pid"))"
        return
    fi
    rm -f "$RUN/$name.pid"
    log "starting $name on $HOST:$port"
    # exec: no shell stays behind holding the caller's stdout/stderr open
    (cd "$appdir" && exec env "$@" setsid "$VENV/bin/gunicorn" --pythonpath "$appdir" \
        --bind "$HOST:$port" --workers "$WORKERS" --no-control-socket \
        --pid "$RUN/$name.pid" --access-logfile "$LOGD/$name-access.log" \
        --name "osk-$name" "$app") >> "$LOGD/$name.out" 2>&1 < /dev/null &
}
wait_up() {  # NAME URL
    local name=$1 url=$2 t0 code
    t0=$(date +%s)
    while :; do
        code=$(http_code "$url")
        case "$code" in 200|300|401) break ;; esac
        if [ $(( $(date +%s) - t0 )) -ge "$TIMEOUT" ]; then
            tail -n 30 "$LOGD/$name.out" >&2 || true
            die "$name did not answer on $url within ${TIMEOUT}s (see $LOGD/)"
        fi
        sleep 0.3
    done
    log "$name answers on $url ($code)"
}

if [ "$WANT_KS" = 1 ]; then
    start_server keystone "$KS_PORT" "$KSD" osk_keystone_wsgi:application \
        HOME="$KSD" OS_KEYSTONE_CONFIG_FILES="$KSD/keystone.conf"
fi
if [ "$WANT_AUTH" = 1 ]; then
    start_server barbican "$B_PORT" "$BD" osk_barbican_wsgi:application \
        HOME="$BD/home" BARBICAN_PASTE_INI="$BD/paste-keystone.ini"
fi
if [ "$WANT_NOAUTH" = 1 ]; then
    start_server barbican-noauth "$BN_PORT" "$BD" osk_barbican_wsgi:application \
        HOME="$BD/home" BARBICAN_PASTE_INI="$BD/paste-noauth.ini" \
        OSK_NOAUTH_DEFAULT_ROLES="${OSK_NOAUTH_DEFAULT_ROLES:-}"
fi
[ "$WANT_KS" = 1 ] && wait_up keystone "$KS_URL"
[ "$WANT_AUTH" = 1 ] && wait_up barbican "$B_URL/"
[ "$WANT_NOAUTH" = 1 ] && wait_up barbican-noauth "$BN_URL/"

# ----------------------------------------- keystone users and catalog -----
cat > "$STATE/osk_bootstrap.py" <<'PYEOF'
"""Idempotently create service user, key-manager endpoint, demo user and an
application credential via plain Keystone v3 REST. Prints JSON."""
import argparse, json, os, sys, time, urllib.error, urllib.request


class KS:
    def __init__(self, url):
        self.url, self.token = url.rstrip('/'), None

    def req(self, method, path, body=None, token=None, ok=(200, 201, 204)):
        r = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None)
        r.add_header('Content-Type', 'application/json')
        r.add_header('Accept', 'application/json')
        tok = self.token if token is None else token
        if tok:
            r.add_header('X-Auth-Token', tok)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                raw = resp.read()
                return resp.status, resp.headers, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            if e.code in ok:
                return e.code, e.headers, json.loads(raw) if raw else None
            sys.exit('%s %s -> %s %s' % (method, path, e.code, raw[:300]))

    def login(self, user, password, project):
        _, h, _ = self.req('POST', '/auth/tokens', {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': user, 'domain': {'name': 'Default'},
                'password': password}}},
            'scope': {'project': {'name': project,
                                  'domain': {'name': 'Default'}}}}}, token='')
        return h['X-Subject-Token']

    def ensure(self, coll, query, body):
        qs = '&'.join('%s=%s' % kv for kv in query.items())
        items = self.req('GET', '/%s?%s' % (coll, qs))[2][coll]
        if items:
            return items[0]
        single = coll[:-1]
        return self.req('POST', '/' + coll, {single: body})[2][single]


def sync_password(ks, user, password):
    # Only PATCH when needed: a password change revokes the user's tokens
    # with 1-second granularity, so a token issued in the same second is 401.
    code = ks.req('POST', '/auth/tokens', {'auth': {'identity': {
        'methods': ['password'], 'password': {'user': {
            'id': user['id'], 'password': password}}}}},
        token='', ok=(201, 401))[0]
    if code == 401:
        ks.req('PATCH', '/users/' + user['id'], {'user': {'password': password}})
        time.sleep(1.1)


def main():
    ap = argparse.ArgumentParser()
    for a in ('auth-url', 'admin-password', 'barbican-url', 'barbican-password',
              'demo-password', 'appcred-file'):
        ap.add_argument('--' + a, required=True)
    a = ap.parse_args()
    ks = KS(a.auth_url)
    ks.token = ks.login('admin', a.admin_password, 'admin')
    roles = {r['name']: r['id'] for r in ks.req('GET', '/roles')[2]['roles']}

    def grant(p, u, role):
        ks.req('PUT', '/projects/%s/users/%s/roles/%s' % (p['id'], u['id'],
                                                         roles[role]))
    d = 'default'
    svc = ks.ensure('projects', {'name': 'service', 'domain_id': d},
                    {'name': 'service', 'domain_id': d})
    bu = ks.ensure('users', {'name': 'barbican', 'domain_id': d},
                   {'name': 'barbican', 'domain_id': d,
                    'password': a.barbican_password,
                    'default_project_id': svc['id']})
    sync_password(ks, bu, a.barbican_password)
    grant(svc, bu, 'service')      # identity:validate_token allows role:service
    km = ks.ensure('services', {'type': 'key-manager'},
                   {'name': 'barbican', 'type': 'key-manager',
                    'description': 'Barbican Key Manager'})
    eps = ks.req('GET', '/endpoints?service_id=' + km['id'])[2]['endpoints']
    for iface in ('public', 'internal'):
        mine = [e for e in eps if e['interface'] == iface]
        if not mine:
            ks.req('POST', '/endpoints', {'endpoint': {
                'service_id': km['id'], 'interface': iface,
                'url': a.barbican_url, 'region_id': 'RegionOne'}})
        elif mine[0]['url'] != a.barbican_url:
            ks.req('PATCH', '/endpoints/' + mine[0]['id'],
                   {'endpoint': {'url': a.barbican_url}})
    dp = ks.ensure('projects', {'name': 'demo', 'domain_id': d},
                   {'name': 'demo', 'domain_id': d})
    du = ks.ensure('users', {'name': 'demo', 'domain_id': d},
                   {'name': 'demo', 'domain_id': d, 'password': a.demo_password,
                    'default_project_id': dp['id']})
    sync_password(ks, du, a.demo_password)
    grant(dp, du, 'member')        # implies reader; Barbican needs member

    # The app credential secret is returned only at creation: cache it.
    demo_tok = ks.login('demo', a.demo_password, 'demo')
    cached = None
    if os.path.exists(a.appcred_file):
        with open(a.appcred_file) as f:
            cached = json.load(f)
    path = '/users/%s/application_credentials' % du['id']
    have = ks.req('GET', path + '?name=osk-appcred',
                  token=demo_tok)[2]['application_credentials']
    if have and not (cached and cached.get('id') == have[0]['id']):
        ks.req('DELETE', '%s/%s' % (path, have[0]['id']), token=demo_tok)
        have = []
    if not have:
        ac = ks.req('POST', path, {'application_credential': {
            'name': 'osk-appcred', 'description': 'osk test harness'}},
            token=demo_tok)[2]['application_credential']
        cached = {'id': ac['id'], 'secret': ac['secret']}
        fd = os.open(a.appcred_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump(cached, f)
    print('SERVICE_PROJECT_ID=%s' % svc['id'])
    print('DEMO_PROJECT_ID=%s' % dp['id'])
    print('DEMO_USER_ID=%s' % du['id'])
    print('ADMIN_PROJECT_ID=%s' % ks.req('GET', '/projects?name=admin')[2]['projects'][0]['id'])
    print('APPCRED_ID=%s' % cached['id'])
    print('APPCRED_SECRET=%s' % cached['secret'])
    print('DEMO_TOKEN=%s' % demo_tok)


main()
PYEOF

DEMO_PROJECT_ID=${OSK_NOAUTH_PROJECT_ID:-osk-noauth-project}
if [ "$WANT_KS" = 1 ]; then
    log "bootstrapping Keystone users/projects/catalog/app-credential"
    # --opt=VALUE: a generated secret may begin with "-", which argparse
    # would take for an option if it were a separate argument.
    (umask 077; "$VPY" "$STATE/osk_bootstrap.py" --auth-url="$KS_URL" \
        --admin-password="$ADMIN_PASSWORD" --barbican-url="$B_URL" \
        --barbican-password="$BARBICAN_PASSWORD" --demo-password="$DEMO_PASSWORD" \
        --appcred-file="$STATE/appcred.json" > "$STATE/ids.env.tmp")
    mv "$STATE/ids.env.tmp" "$STATE/ids.env"
    . "$STATE/ids.env"
fi

# A private, extra Barbican (keystone auth, same database and KEK) in the
# foreground, for tests that stop "Barbican" without disturbing the shared one.
cat > "$BASE/barbican-serve.sh" <<EOF
#!/bin/sh
# usage: barbican-serve.sh PORT [GUNICORN-OPTION...]  - an extra Barbican on
# $HOST:PORT in the foreground (gunicorn master; stop it with SIGTERM), e.g.
# with --certfile F --keyfile K for HTTPS. Written by openstack-up.sh.
[ -n "\$1" ] || { echo "usage: \$0 PORT [GUNICORN-OPTION...]" >&2; exit 2; }
port=\$1; shift
cd "$BD" || exit 1
HOME="$BD/home" BARBICAN_PASTE_INI="$BD/paste-keystone.ini" PYTHONWARNINGS=ignore \
    exec "$VENV/bin/gunicorn" --pythonpath "$BD" --bind "$HOST:\$port" --workers 1 \
    --no-control-socket --name osk-barbican-extra "\$@" osk_barbican_wsgi:application
EOF
chmod 755 "$BASE/barbican-serve.sh"

# -------------------------------------------------------------- outputs ---
umask 077
if [ "$WANT_KS" = 1 ]; then
    cat > "$BASE/clouds.yaml" <<EOF
# openstacksdk / os-client-config format. Use: OS_CLIENT_CONFIG_FILE=$BASE/clouds.yaml
# openstack --os-cloud osk-appcred secret list
clouds:
  osk-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: $KS_URL
      application_credential_id: $APPCRED_ID
      application_credential_secret: $APPCRED_SECRET
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  osk-demo:
    auth_type: password
    auth:
      auth_url: $KS_URL
      username: demo
      password: $DEMO_PASSWORD
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  osk-token:
    auth_type: token
    auth:
      auth_url: $KS_URL
      token: $DEMO_TOKEN
      project_id: $DEMO_PROJECT_ID
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  osk-admin:
    auth_type: password
    auth:
      auth_url: $KS_URL
      username: admin
      password: $ADMIN_PASSWORD
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
    cat > "$BASE/openrc-appcred.sh" <<EOF
export OS_AUTH_TYPE=v3applicationcredential
export OS_AUTH_URL=$KS_URL
export OS_APPLICATION_CREDENTIAL_ID=$APPCRED_ID
export OS_APPLICATION_CREDENTIAL_SECRET=$APPCRED_SECRET
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
EOF
    cat > "$BASE/openrc-demo.sh" <<EOF
export OS_AUTH_TYPE=password
export OS_AUTH_URL=$KS_URL
export OS_USERNAME=demo
export OS_PASSWORD=$DEMO_PASSWORD
export OS_PROJECT_NAME=demo
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
EOF
fi
{
    echo "# written by scripts/openstack-up.sh; KEY=VALUE, no quoting needed"
    echo "OSK_DIR=$BASE"
    echo "OSK_VENV=$VENV"
    if [ "$WANT_KS" = 1 ]; then
        # OS_* below = app credential of user demo. Don't combine them with
        # --os-cloud/OS_CLOUD: openstacksdk merges env over clouds.yaml.
        echo "OSK_CLOUDS_YAML=$BASE/clouds.yaml"
        echo "OS_AUTH_TYPE=v3applicationcredential"
        echo "OS_AUTH_URL=$KS_URL"
        echo "OS_APPLICATION_CREDENTIAL_ID=$APPCRED_ID"
        echo "OS_APPLICATION_CREDENTIAL_SECRET=$APPCRED_SECRET"
        echo "OS_REGION_NAME=RegionOne"
        echo "OS_INTERFACE=public"
        echo "OS_IDENTITY_API_VERSION=3"
        echo "OSK_DEMO_USERNAME=demo"
        echo "OSK_DEMO_PASSWORD=$DEMO_PASSWORD"
        echo "OSK_DEMO_PROJECT_NAME=demo"
        echo "OSK_DEMO_PROJECT_ID=$DEMO_PROJECT_ID"
        echo "OSK_DEMO_USER_ID=$DEMO_USER_ID"
        echo "OSK_ADMIN_PASSWORD=$ADMIN_PASSWORD"
        echo "OSK_KEYSTONE_URL=$KS_URL"
    fi
    if [ "$WANT_AUTH" = 1 ]; then
        echo "OSK_BARBICAN_URL=$B_URL"
        echo "OSK_BARBICAN_SERVE=$BASE/barbican-serve.sh"
    fi
    if [ "$WANT_NOAUTH" = 1 ]; then
        echo "OSK_BARBICAN_NOAUTH_URL=$BN_URL"
        echo "# noauth: send X-Project-Id (any string) and X-Roles: member (without it:"
        echo "# upstream assumes 'admin' only, which can read but not create or list)"
        echo "OSK_NOAUTH_PROJECT_ID=$DEMO_PROJECT_ID"
    fi
} > "$BASE/osk.env"
umask 022

rss_mb() {  # master pid -> summed RSS (MiB) of master + direct children
    local m=$1 tot=0 p kb
    for p in "$m" $(grep -l "^PPid:[[:space:]]*$m\$" /proc/[0-9]*/status 2>/dev/null \
                    | cut -d/ -f3); do
        kb=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        tot=$(( tot + ${kb:-0} ))
    done
    echo $(( tot / 1024 ))
}
T1=$(date +%s.%N)
echo
echo "OpenStack keys harness is up in $BASE ($(awk "BEGIN{printf \"%.1f\", $T1-$T0}")s)"
for n in keystone barbican barbican-noauth; do
    if pid_alive "$n"; then
        p=$(cat "$RUN/$n.pid")
        case $n in keystone) u=$KS_URL ;; barbican) u=$B_URL ;; *) u=$BN_URL ;; esac
        printf '  %-16s %-28s pid %-7s rss %4s MiB  log %s\n' "$n" "$u" "$p" \
            "$(rss_mb "$p")" "$LOGD/$n.out"
    fi
done
echo "  env file:   $BASE/osk.env   (set -a; . $BASE/osk.env; set +a)"
[ "$WANT_KS" = 1 ] && echo "  clouds.yaml: $BASE/clouds.yaml  (clouds: osk-demo, osk-appcred, osk-token, osk-admin)" \
    && echo "  openrc:     $BASE/openrc-appcred.sh, $BASE/openrc-demo.sh"
[ "$WITH_CLI" = 1 ] && echo "  client:     $VENV/bin/openstack --os-cloud osk-appcred secret list"
echo "  stop:       $SCRIPT_DIR/openstack-down.sh $BASE"
