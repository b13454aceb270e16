#!/usr/bin/env bash
# glance-down.sh DIR - stop the Glance that scripts/glance-up.sh DIR started (its gunicorn master,
# by the recorded PID; the worker exits with it). Keeps the venv, database and images.
set -euo pipefail
D=${1:?usage: $0 DIR}
f=$D/run/glance.pid
[ -f "$f" ] || { echo "glance: not running"; exit 0; }
pid=$(cat "$f")
if grep -qa gunicorn "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do grep -qa gunicorn "/proc/$pid/cmdline" 2>/dev/null || break; sleep 0.2; done
    grep -qa gunicorn "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid"
    echo "glance: stopped (pid $pid)"
else
    echo "glance: not running"
fi
rm -f "$f"
