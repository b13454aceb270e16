#!/usr/bin/env bash
# cinder-api-down.sh DIR - stop the cinder-api that scripts/cinder-api-up.sh DIR started (its
# parent process, by the recorded PID; its worker exits with it). Keeps the database.
set -euo pipefail
D=${1:?usage: $0 DIR}
f=$D/run/cinder-api.pid
[ -f "$f" ] || { echo "cinder-api: not running"; exit 0; }
pid=$(cat "$f")
if grep -qa cinder-api "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do grep -qa cinder-api "/proc/$pid/cmdline" 2>/dev/null || break; sleep 0.2; done
    grep -qa cinder-api "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid"
    echo "cinder-api: stopped (pid $pid)"
else
    echo "cinder-api: not running"
fi
rm -f "$f"
