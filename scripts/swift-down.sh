#!/usr/bin/env bash
# swift-down.sh DIR -- stop what scripts/swift-up.sh DIR started (by the PIDs it recorded).
D=${1:?usage: swift-down.sh DIR}
for f in "$D"/run/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null
    rm -f "$f"
done
exit 0
