#!/usr/bin/env bash
# swift-up.sh DIR -- run a REAL OpenStack Swift (PyPI swift, pinned by swift-constraints.txt; one
# replica, one device) on 127.0.0.1 for the Cinder-backup tests: tempauth (user test:tester, key
# testing) and s3api (access key test:tester, secret testing). memcached, which tempauth needs,
# comes from Debian's package unpacked into DIR (no system service). About 20 s from nothing.
#
# Everything lives in DIR (configs, rings, the device, logs, run/*.pid) except the venv:
# $LUKSFS_SWIFT_VENV, default target/swift-venv (kept between runs). Writes DIR/swift.env:
#   SWIFT_AUTH_URL   tempauth v1 (GET with X-Auth-User/X-Auth-Key -> X-Storage-Url, X-Auth-Token)
#   SWIFT_URL        the account URL; SWIFT_USER, SWIFT_KEY
#   S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION   (s3api on the same port)
# Stop with scripts/swift-down.sh DIR.
#
#   swift-up.sh DIR --keystone OSK_ENV
#
# Also authenticates Keystone tokens (keystonemiddleware authtoken + Swift's keystoneauth, accounts
# KEY_<project id>) against the Keystone of OSK_ENV (the osk.env scripts/openstack-up.sh writes),
# beside tempauth (accounts AUTH_<user>), and registers Swift in that Keystone's catalog as the
# `object-store` service (public and internal endpoints, RegionOne), as a deployment does. Adds
# SWIFT_KEYSTONE_URL (the object-store endpoint template) to DIR/swift.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=$(mkdir -p "${1:?usage: swift-up.sh DIR [--keystone OSK_ENV]}" && cd "$1" && pwd)
OSK_ENV=
if [ "${2:-}" = --keystone ]; then
    OSK_ENV=$(cd "$(dirname "${3:?--keystone needs the osk.env of scripts/openstack-up.sh}")" && pwd)/$(basename "$3")
fi
venv=${LUKSFS_SWIFT_VENV:-$(dirname "$here")/target/swift-venv}
log() { printf '[swift-up] %s\n' "$*" >&2; }
mkdir -p "$D/etc" "$D/srv/d1" "$D/run" "$D/log" "$D/deb"
# one installer at a time (tests start Swift from several processes)
mkdir -p "$(dirname "$venv")"
(
    flock 9
    if ! "$venv/bin/python" -c 'import swift.proxy.server, keystonemiddleware.auth_token' 2>/dev/null; then
        log "installing swift and keystonemiddleware into $venv"
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/swift-constraints.txt" \
            swift keystonemiddleware >"$D/pip.log" 2>&1 || { cat "$D/pip.log" >&2; exit 1; }
    fi
) 9>"$venv.lock"
if [ ! -x "$D/deb/usr/bin/memcached" ]; then
    (cd "$D/deb" && { apt-get download -q memcached >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q memcached >/dev/null; }; } &&
        dpkg -x memcached_*.deb .)
fi
dpkg -s libevent-2.1-7 >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libevent-2.1-7 >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PP=$(free_port) AP=$(free_port) CP=$(free_port) OP=$(free_port) MP=$(free_port)
cat >"$D/etc/swift.conf" <<C
[swift-hash]
swift_hash_path_suffix = luksfs-test-suffix
swift_hash_path_prefix = luksfs-test-prefix
[storage-policy:0]
name = Policy-0
default = yes
C
for s in account:$AP container:$CP object:$OP; do
    n=${s%%:*} p=${s#*:}
    cat >"$D/etc/$n-server.conf" <<C
[DEFAULT]
swift_dir = $D/etc
devices = $D/srv
mount_check = false
bind_ip = 127.0.0.1
bind_port = $p
workers = 0
[pipeline:main]
pipeline = $n-server
[app:$n-server]
use = egg:swift#$n
[$n-replicator]
C
done
printf '[object-updater]\n[object-auditor]\n' >>"$D/etc/object-server.conf"
cat >"$D/etc/proxy-server.conf" <<C
[DEFAULT]
swift_dir = $D/etc
bind_ip = 127.0.0.1
bind_port = $PP
workers = 0
[pipeline:main]
pipeline = catch_errors proxy-logging cache s3api tempauth $([ -n "$OSK_ENV" ] && echo "authtoken keystoneauth") proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:s3api]
use = egg:swift#s3api
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MP
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:proxy-logging]
use = egg:swift#proxy_logging
C
if [ -n "$OSK_ENV" ]; then
    # shellcheck disable=SC1090
    . "$OSK_ENV"
    cat >>"$D/etc/proxy-server.conf" <<C
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $OSK_KEYSTONE_URL
auth_url = $OSK_KEYSTONE_URL
auth_type = password
username = admin
password = $OSK_ADMIN_PASSWORD
project_name = admin
user_domain_id = default
project_domain_id = default
delay_auth_decision = True
[filter:keystoneauth]
use = egg:swift#keystoneauth
reseller_prefix = KEY_
operator_roles = admin, member
C
    SWIFT_KS_URL="http://127.0.0.1:$PP/v1/KEY_%(project_id)s"
    log "registering object-store at $SWIFT_KS_URL in $OSK_KEYSTONE_URL"
    OSK_ADMIN_PASSWORD=$OSK_ADMIN_PASSWORD python3 "$here/keystone-service.py" "$OSK_KEYSTONE_URL" object-store swift \
        "$SWIFT_KS_URL" >/dev/null
fi
(
    cd "$D/etc"
    for r in account:$AP container:$CP object:$OP; do
        n=${r%%:*} p=${r#*:}
        rm -f "$n.builder" "$n.ring.gz"
        "$venv/bin/swift-ring-builder" "$n.builder" create 10 1 1 >/dev/null
        "$venv/bin/swift-ring-builder" "$n.builder" add "r1z1-127.0.0.1:$p/d1" 1 >/dev/null
        "$venv/bin/swift-ring-builder" "$n.builder" rebalance >/dev/null 2>&1 || true
    done
)
LD_LIBRARY_PATH="$D/deb/usr/lib/x86_64-linux-gnu" "$D/deb/usr/bin/memcached" -u root -l 127.0.0.1 -p "$MP" -m 32 \
    >"$D/log/memcached.log" 2>&1 &
echo $! >"$D/run/memcached.pid"
for n in account container object proxy; do
    "$venv/bin/swift-$n-server" "$D/etc/$n-server.conf" >"$D/log/$n.log" 2>&1 &
    echo $! >"$D/run/$n.pid"
done
auth() { curl -fsS -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' "http://127.0.0.1:$PP/auth/v1.0" 2>/dev/null; }
for _ in $(seq 150); do auth && break; sleep 0.2; done
auth || { log "swift did not come up; logs in $D/log"; "$here/swift-down.sh" "$D"; exit 1; }
cat >"$D/swift.env" <<C
SWIFT_AUTH_URL=http://127.0.0.1:$PP/auth/v1.0
SWIFT_URL=http://127.0.0.1:$PP/v1/AUTH_test
SWIFT_USER=test:tester
SWIFT_KEY=testing
S3_ENDPOINT=http://127.0.0.1:$PP
AWS_ACCESS_KEY_ID=test:tester
AWS_SECRET_ACCESS_KEY=testing
AWS_REGION=us-east-1
C
[ -z "$OSK_ENV" ] || echo "SWIFT_KEYSTONE_URL=$SWIFT_KS_URL" >>"$D/swift.env"
cat "$D/swift.env"
