#!/usr/bin/env python3
"""randcmp.py EXPOSED PLAIN COUNT [SEED]: compare COUNT random reads (aligned and unaligned
offsets, 1 B .. 300 KiB, plus the last bytes of the file) of EXPOSED against PLAIN.
Exit 1 with the first differing range on a mismatch."""
import os
import random
import sys

exposed, plain, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(sys.argv[4] if len(sys.argv) > 4 else "luksfs-bench")
size = os.path.getsize(plain)
fe, fp = os.open(exposed, os.O_RDONLY), os.open(plain, os.O_RDONLY)
cases = [(max(0, size - 1), 1), (max(0, size - 4096), 4096), (max(0, size - 1000), 5000)]
for _ in range(count):
    length = rng.choice([1, 511, 512, 4096, 4097, 65536, 131072 + 17, 300 * 1024])
    off = rng.randrange(size)
    if rng.random() < 0.5:
        off -= off % 4096
    cases.append((off, length))
for off, length in cases:
    want = os.pread(fp, length, off)
    got = b""
    while len(got) < len(want):
        chunk = os.pread(fe, len(want) - len(got), off + len(got))
        if not chunk:
            break
        got += chunk
    if got != want:
        first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        print(f"randcmp: {exposed}: pread(offset={off}, length={length}) returned {len(got)} bytes, "
              f"expected {len(want)}; first difference at byte {off + first}", file=sys.stderr)
        sys.exit(1)
print(f"randcmp: {len(cases)} random reads equal")
