#!/usr/bin/env bash
# scripts/openstack-down.sh DIR [--purge]
# Stops the servers started by scripts/openstack-up.sh DIR, by the PIDs in
# DIR/run/*.pid (gunicorn masters; their workers exit with them).
# --purge also deletes DIR/state, DIR/log and the generated client files
# (keeps the venv, so the next up is a warm start).
set -euo pipefail
BASE=${1:?usage: $0 DIR [--purge]}
PURGE=0; [ "${2:-}" = --purge ] && PURGE=1
BASE=$(cd "$BASE" && pwd)
RUN=$BASE/run

is_gunicorn() { grep -qa gunicorn "/proc/$1/cmdline" 2>/dev/null; }
children() { grep -l "^PPid:[[:space:]]*$1\$" /proc/[0-9]*/status 2>/dev/null | cut -d/ -f3 || true; }

for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -z "$pid" ] || ! is_gunicorn "$pid"; then
        echo "$name: not running"; rm -f "$f"; continue
    fi
    kids=$(children "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do is_gunicorn "$pid" || break; sleep 0.2; done
    if is_gunicorn "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for k in $kids; do is_gunicorn "$k" && kill -KILL "$k" 2>/dev/null || true; done
    rm -f "$f"
    echo "$name: stopped (pid $pid)"
done
if [ "$PURGE" = 1 ]; then
    rm -rf "$BASE/state" "$BASE/log" "$BASE/run" "$BASE/clouds.yaml" \
        "$BASE/osk.env" "$BASE/openrc-appcred.sh" "$BASE/openrc-demo.sh"
    echo "purged state (venv kept)"
fi
