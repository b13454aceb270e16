#!/usr/bin/env python3
"""summary.py RESULTS.TSV OUT_PREFIX BUDGET_MIB NPROC SMALL_LABEL BIG_LABEL UNLOCK_ITERS

Reads the raw rows written by scripts/bench.sh (tool, figure, rep, value, load1), takes the
median of the repetitions, and writes OUT_PREFIX.md (markdown table) and OUT_PREFIX.tsv
(same table plus every repetition's value). Prints the markdown table."""
import collections
import statistics
import sys

res, prefix, budget, nproc, small, big, iters = sys.argv[1:8]
budget, nproc = float(budget), int(nproc)
vals = collections.defaultdict(list)
loads = []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4:
        continue
    tool, fig, _rep, v = f[:4]
    vals[(tool, fig)].append(v)
    if len(f) > 4 and f[4]:
        loads.append(float(f[4]))


def med(tool, fig):
    v = vals.get((tool, fig))
    if not v:
        return None
    try:
        return statistics.median(float(x) for x in v)
    except ValueError:
        return "ERR"


def num(x):
    return isinstance(x, float)


def fmt(x, d):
    if x is None:
        return "–"
    if not num(x):
        return str(x)
    return f"{x:,.{d}f}"


rows = []


def row(label, fig, d, target, check, qsd_tool="qsd", qsd_text=None, ratio=None, tool="luksfs"):
    lf, q = med(tool, fig), med(qsd_tool, fig)
    if ratio is None and num(lf) and num(q) and q:
        ratio = lf / q
    r = f"{ratio:.2f}×" if num(ratio) else "–"
    if check is None:
        verdict = "info"
    elif not num(lf) or (check.__code__.co_argcount == 2 and not num(q)):
        verdict = "FAIL (no value)"
    else:
        verdict = "PASS" if (check(lf, q) if check.__code__.co_argcount == 2 else check(lf)) else "FAIL"
    reps = lambda t: " / ".join(vals.get((t, fig), [])) or "–"  # noqa: E731
    rows.append((label, fmt(lf, d), qsd_text if qsd_text else fmt(q, d), r, target, verdict, reps(tool),
                 reps(qsd_tool) if not qsd_text else "–"))


l1 = med("luksfs", "seq_MBps.luks1")
l2 = med("luksfs", "seq_MBps.luks2")
u1 = med("luksfs", "unlock1m_ms")
row("sequential read `dd bs=1M`, LUKS1 aes-xts-plain64 (MB/s)", "seq_MBps.luks1", 0, "≥ 5× qsd", lambda a, b: a >= 5 * b)
row("sequential read, qcow2+LUKS (MB/s)", "seq_MBps.qcow2", 0, "≥ 5× qsd", lambda a, b: a >= 5 * b)
row("sequential read, LUKS2 aes-xts 4 KiB sectors (MB/s; ratio = LUKS2/LUKS1)", "seq_MBps.luks2", 0,
    "≥ 0.90× luksfs LUKS1", (lambda a: num(l1) and a >= 0.9 * l1), qsd_text="n/a (no LUKS2)",
    ratio=(l2 / l1 if num(l1) and num(l2) and l1 else None))
row("random 4 KiB reads, fio 1 job (IOPS)", "rand4k_iops.j1", 0, "≥ 3× qsd", lambda a, b: a >= 3 * b)
row("random 4 KiB reads, fio 2 jobs (IOPS)", "rand4k_iops.j2", 0, "≥ 4× qsd", lambda a, b: a >= 4 * b)
if vals.get(("luksfs_uring", "seq_MBps.luks1")):
    for label, fig, d in [("sequential read, LUKS1 (MB/s)", "seq_MBps.luks1", 0),
                          ("random 4 KiB reads, 1 job (IOPS)", "rand4k_iops.j1", 0),
                          ("random 4 KiB reads, 2 jobs (IOPS)", "rand4k_iops.j2", 0),
                          ("daemon CPU per GiB read, LUKS1 (s)", "cpu_s_per_GiB.luks1", 3)]:
        row(f"  io_uring (luksfs --io-uring): {label}", fig, d, "–", None, tool="luksfs_uring")
if vals.get(("fuserbase", "seq_MBps.luks1")):
    # only the random rows: fuserbase's 128 KiB requests make it no ceiling for streaming
    for label, fig, d in [("random 4 KiB reads, 1 job (IOPS)", "rand4k_iops.j1", 0),
                          ("random 4 KiB reads, 2 jobs (IOPS)", "rand4k_iops.j2", 0)]:
        row(f"  FUSE ceiling, plaintext passthrough (fuserbase, no decryption): {label}", fig, d, "–", None,
            tool="fuserbase")
row("daemon CPU per GiB read, LUKS1 (s)", "cpu_s_per_GiB.luks1", 3, "≤ 0.2× qsd", lambda a, b: a <= 0.2 * b)
row("daemon CPU per GiB read, qcow2+LUKS (s)", "cpu_s_per_GiB.qcow2", 3, "≤ 0.2× qsd", lambda a, b: a <= 0.2 * b)
row("daemon CPU per GiB read, LUKS2 4K (s)", "cpu_s_per_GiB.luks2", 3, "–", None, qsd_text="n/a")
row("re-read of data already read, LUKS1 (MB/s)", "reread_MBps.luks1", 0, "≥ 5,000 MB/s", lambda a: a >= 5000)
row(f"unlock, PBKDF2-sha256 {int(iters):,} iterations, start → first 512 B (ms)", "unlock1m_ms", 0, "≤ qsd", lambda a, b: a <= b)
row("  daemon CPU time of the 1-image unlock (ms; load-independent)", "unlock1m_cpu_ms", 0, "–", None)
lim8 = 1.25 * 8 / nproc
row("8 images unlock in parallel (same iterations) → all first reads (ms; qsd: 1 process, 8 exports)", "unlock8_ms", 0,
    f"≤ qsd and ≤ {lim8:g}× own 1-image unlock",
    lambda a, b: a <= b and num(u1) and a <= lim8 * u1)
row("8 images unlock in parallel (ms; qsd: 8 processes)", "unlock8_ms", 0, "≤ qsd", lambda a, b: a <= b,
    qsd_tool="qsd8")
row("  daemon CPU time of those 8 unlocks (ms; qsd: 1 process)", "unlock8_cpu_ms", 0, "–", None)
row("mount of a 1,000-image directory → first `ls` (ms)", "mount1000_ms", 0, "< 1,000 ms", lambda a: a < 1000,
    qsd_text="n/a")
lim = budget + 16
rs = med("luksfs", "rss_MiB.small")
row(f"peak RSS (VmHWM) after reads, {small} image (MiB)", "rss_MiB.small", 1, f"≤ {lim:g} MiB (cache {budget:g} + 16)",
    lambda a: a <= lim)
row(f"peak RSS (VmHWM) after reads, {big} image (MiB)", "rss_MiB.big", 1, f"≤ {lim:g} MiB, flat (≤ {small} + 4 MiB)",
    lambda a: a <= lim and num(rs) and a <= rs + 4)

head = ["figure", "luksfs", "qsd", "ratio", "target", "PASS/FAIL"]
md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
md += ["| " + " | ".join(r[:6]) + " |" for r in rows]
if loads:
    md.append("")
    md.append(f"1-min load average during the measurements: min {min(loads):.2f}, median "
              f"{statistics.median(loads):.2f}, max {max(loads):.2f} (on {nproc} cores)")
with open(prefix + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
with open(prefix + ".tsv", "w") as f:
    f.write("\t".join(head + ["luksfs reps", "qsd reps"]) + "\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
print("\n".join(md))
passed = sum(r[5] == "PASS" for r in rows)
failed = sum(r[5].startswith("FAIL") for r in rows)
print(f"\n{passed} PASS, {failed} FAIL")
