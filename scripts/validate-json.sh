#!/usr/bin/env bash
# scripts/validate-json.sh SCHEMA DOCUMENT... -- check JSON documents against a JSON Schema
# (draft 2020-12) with python-jsonschema, the reference validator of the JSON Schema ecosystem
# (an implementation luksfs did not write, so the schema and the output are judged by a third
# party). The schema itself is checked against the draft's metaschema first.
#
# jsonschema is installed from PyPI, pinned, into a venv made once: $LUKSFS_SCHEMA_VENV, default
# target/schema-venv (kept, so reruns take milliseconds; one installer at a time, under a lock).
# DOCUMENT `-` reads standard input. Exit 0 when every document is valid, 1 otherwise (each
# error printed with the path of the offending value).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv=${LUKSFS_SCHEMA_VENV:-$root/target/schema-venv}
(($# >= 2)) || { echo "usage: $0 SCHEMA DOCUMENT..." >&2; exit 2; }

mkdir -p "$(dirname "$venv")"
(
    flock 9
    if ! "$venv/bin/python" -c 'import jsonschema' 2>/dev/null; then
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check 'jsonschema==4.26.0' >&2
    fi
) 9>"$venv.lock"

exec "$venv/bin/python" - "$@" <<'PY'
import json, sys
from jsonschema import Draft202012Validator

schema_path, docs = sys.argv[1], sys.argv[2:]
with open(schema_path) as f:
    schema = json.load(f)
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
bad = 0
for d in docs:
    text = sys.stdin.read() if d == "-" else open(d).read()
    errors = sorted(validator.iter_errors(json.loads(text)), key=lambda e: list(e.absolute_path))
    for e in errors:
        path = "/".join(str(p) for p in e.absolute_path) or "(top)"
        print(f"{d}: {path}: {e.message}", file=sys.stderr)
    bad += bool(errors)
sys.exit(1 if bad else 0)
PY
