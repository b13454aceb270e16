#!/usr/bin/env python3
"""Start one or more FUSE daemons and time how long until they serve data.

Used by scripts/bench.sh for the unlock and mount-time figures.  The clock starts just
before the first daemon is spawned; a path counts as mounted once its st_dev differs from
that of --base (the directory that holds the mount points).  For every --read FILE a thread
waits for FILE to be mounted, opens it and reads its first 512 bytes; with --list DIR it
waits for DIR to be mounted and lists it once.  The daemons are left running: their PIDs
are written to --pidfile at once (the caller stops them).  Prints one JSON object:
  {"ms": <time until the last read/list finished>, "each_ms": {...}, "sha256": {...}, "count": N,
   "cpu_ms": <utime+stime of the daemons at that moment>}
Exit 1 (message on stderr) if a daemon exits, a read fails or --timeout passes.
"""
import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True, help="directory holding the mount points")
ap.add_argument("--pidfile", required=True)
ap.add_argument("--log", required=True, help="daemons' stdout/stderr go here")
ap.add_argument("--timeout", type=float, default=120.0)
ap.add_argument("--read", action="append", default=[], metavar="FILE")
ap.add_argument("--list", metavar="DIR")
ap.add_argument("--expect", type=int, default=0, help="--list: entries expected")
ap.add_argument("--cmd", action="append", required=True, help="shell-quoted command; several start together")
a = ap.parse_args()

base = os.stat(a.base).st_dev
cmds = [shlex.split(c) for c in a.cmd]
log = open(a.log, "ab")
procs = []
t0 = time.perf_counter()
for c in cmds:
    procs.append(subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=log, stderr=log))
with open(a.pidfile, "w") as f:
    f.write(" ".join(str(p.pid) for p in procs) + "\n")
deadline = t0 + a.timeout
lock = threading.Lock()
each, sha, errors = {}, {}, []
count = 0


def mounted(path):
    try:
        return os.stat(path).st_dev != base
    except OSError:
        return False


def dead():
    with lock:
        for p, c in zip(procs, cmds):
            if p.poll() is not None:
                return f"{os.path.basename(c[0])} (pid {p.pid}) exited with {p.returncode} before serving data"
    return None


def wait_mounted(path):
    while not mounted(path):
        d = dead()
        if d:
            raise RuntimeError(d)
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{path}: not mounted after {a.timeout:.0f} s")
        time.sleep(0.001)


def reader(path):
    try:
        wait_mounted(path)
        data = b""
        with open(path, "rb", buffering=0) as fh:
            while len(data) < 512:
                chunk = fh.read(512 - len(data))
                if not chunk:
                    break
                data += chunk
        t = time.perf_counter() - t0
        if len(data) < 512:
            raise RuntimeError(f"{path}: short read ({len(data)} bytes)")
        with lock:
            each[path] = round(t * 1000, 1)
            sha[path] = hashlib.sha256(data).hexdigest()
    except Exception as e:  # noqa: BLE001 - reported to the caller
        with lock:
            errors.append(f"{path}: {e}")


def lister(path):
    global count
    try:
        wait_mounted(path)
        names = os.listdir(path)
        t = time.perf_counter() - t0
        with lock:
            each[path] = round(t * 1000, 1)
            count = len(names)
        if a.expect and len(names) != a.expect:
            raise RuntimeError(f"{path}: listed {len(names)} entries, expected {a.expect}")
    except Exception as e:  # noqa: BLE001
        with lock:
            errors.append(f"{path}: {e}")


threads = [threading.Thread(target=reader, args=(p,)) for p in a.read]
if a.list:
    threads.append(threading.Thread(target=lister, args=(a.list,)))
for t in threads:
    t.start()
for t in threads:
    t.join()
cpu_ms = 0.0  # utime+stime of the daemons so far: unlock work, whatever the machine's load
for p in procs:
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu_ms += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
if errors:
    print("firstread: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
print(json.dumps({"ms": max(each.values()), "each_ms": each, "sha256": sha, "count": count, "cpu_ms": cpu_ms}))
