#!/usr/bin/env python3
"""Reads the tables `echo-bench interleave` prints and pools their runs.

Each row of such a table is one run of one point (size, copies): the
medians over its rounds. `read_runs` collects the rows of every file given
by point; `pool` sums up one point's runs: per ratio, the median of the
runs' medians and the lowest and highest run, how many runs fell under
0.95 (zio / 0-copy), and, when the table has the two-buffer server
(`--ceiling-inputs 2`), zio / it and the server CPU per message split into
two steps: two-buffer server - 0-copy, and zio - two-buffer server (median
over the runs of each run's difference).

As a command it prints that summary, one line per point:

    python3 scripts/pool.py docs/results/interleave/grid-*.txt
"""
import collections
import math
import re
import statistics
import sys

NUM = r"(NaN|-?[\d.]+)"
# "-" where a server is missing (0 copies), else "median (low-high)".
RATIO = r"(?:-|([\d.]+|NaN) \(([\d.]+|NaN)-([\d.]+|NaN)\))"
ROW = re.compile(
    r"^(\S+)\s+(\d+)\s+" + r"\s+".join([NUM] * 3) + r"\s+"
    + r"\s+".join([RATIO] * 3)
    + r"\s+(\d+)K\s+" + NUM + r"(?:\s+" + NUM + r")?\s+" + NUM + ", " + NUM + ", " + NUM
    + r"(?:\s+\|\s+" + NUM + ", " + RATIO + ", " + NUM + r")?\s*$"
)
# The names of ROW's groups after size and copies: Gbit/s of each server,
# each ratio with its interval, zio's counters per message (the system
# calls column is optional), CPU us per message; then the two-buffer
# server's.
FIELDS = (
    ["g0", "gw", "gz"]
    + [k + s for k in ("z0", "zw", "w0") for s in ("", "_lo", "_hi")]
    + ["elided_k", "skips", "sys", "cpu0", "cpuw", "cpuz", "g2", "z2", "z2_lo", "z2_hi", "cpu2"]
)
FAIL = re.compile(r"^(\S+)\s+(\d+) FAIL: (.*)$")


def _num(s):
    return float("nan") if s is None else float(s)


def read_runs(paths):
    """{(size, copies): [run, ...]} over the files, in the order met, and
    the failed runs' lines; a run is a dict of FIELDS (NaN where absent)."""
    runs = collections.OrderedDict()
    failed = []
    for path in paths:
        with open(path) as f:
            for line in f:
                m = ROW.match(line)
                if m:
                    run = dict(zip(FIELDS, (_num(x) for x in m.groups()[2:])))
                    runs.setdefault((m.group(1), int(m.group(2))), []).append(run)
                elif FAIL.match(line):
                    failed.append(line.strip())
    return runs, failed


def spread(runs, key):
    """(median, lowest, highest) of one field over the runs that have it."""
    x = sorted(r[key] for r in runs if not math.isnan(r[key]))
    if not x:
        return (float("nan"),) * 3
    return statistics.median(x), x[0], x[-1]


def pool(runs):
    """One point's runs summed up (see the module's description)."""
    def step(a, b):
        d = [r[a] - r[b] for r in runs if not math.isnan(r[a] - r[b])]
        return statistics.median(d) if d else float("nan")

    return {
        "runs": len(runs),
        "z0": spread(runs, "z0"),
        "zw": spread(runs, "zw"),
        "w0": spread(runs, "w0"),
        "z2": spread(runs, "z2"),
        "below": sum(r["z0"] < 0.95 for r in runs),
        "elided_k": spread(runs, "elided_k"),
        "skips": spread(runs, "skips"),
        "cpu_step2": step("cpu2", "cpu0"),
        "cpu_stepz": step("cpuz", "cpu2"),
        "cpuw": spread(runs, "cpuw")[0],
        "cpuz": spread(runs, "cpuz")[0],
    }


def fmt_spread(s, dash="-"):
    """(median, lowest, highest) as "median [lowest-highest]"."""
    return f"{s[0]:.3f} [{s[1]:.3f}{dash}{s[2]:.3f}]"


def main(paths):
    runs, failed = read_runs(paths)
    print("size copies runs  zio/0-copy [range]     <0.95  zio/2-buf  zio/w/o [range]"
          "        w/o/0-copy  CPU us/msg: 2-buf - 0-copy, zio - 2-buf")
    for (size, copies), v in runs.items():
        p = pool(v)
        print(f"{size:>4} {copies:>6} {p['runs']:>4}  {fmt_spread(p['z0'])}  {p['below']:>5}"
              f"  {p['z2'][0]:.3f}      {fmt_spread(p['zw'])}  {p['w0'][0]:.3f}"
              f"       {p['cpu_step2']:+.1f}, {p['cpu_stepz']:+.1f}")
    for line in failed:
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
