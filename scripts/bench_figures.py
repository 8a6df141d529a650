#!/usr/bin/env python3
"""Turns criterion's and callgrind's results into rows of micro.csv
(bench,id,variant,value,unit,commit,source), the file the benches set of
docs/results/ holds and scripts/results.py reads.

    bench_figures.py criterion CRITERION_HOME COMMIT
        one row per benchmark criterion measured: its point estimate per
        iteration in ns (the slope where criterion fitted one, else the
        mean: the middle figure it prints)
    bench_figures.py callgrind BIN_DIR COMMIT PROFILE_SECS
        runs the bench executables BIN_DIR/bench-{hook,chain} under
        callgrind (libzio from ZIO_LIB) and prints instructions per call of
        the hook's pass-through path (libc, the hook, and what it adds) and
        per message of chain_64KiB_static through 1 and 12 copies
"""
import csv
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

VARIANTS = {"libc", "zio", "zio_hook", "zio_held", "zio_copy_only"}
ITER = r"criterion::bencher::Bencher.*::iter"
# Criterion group names (their first word) -> the bench they belong to.
BENCH_OF = {"memcpy": "hook", "tracker": "tracker", "chain": "chain", "engine": "engine",
            "elided": "ops", "fault": "ops", "output": "ops"}
OUT = csv.writer(sys.stdout, lineterminator="\n")


def row(bench, ident, variant, value, unit, commit, source):
    OUT.writerow([bench, ident, variant, f"{value:.6g}", unit, commit, source])


def natural(s):
    """A sort key that puts chain_512KiB/5 before chain_512KiB/12."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def criterion(home, commit):
    paths = glob.glob(os.path.join(home, "**", "new", "benchmark.json"), recursive=True)
    for path in sorted(paths, key=natural):
        with open(path) as f:
            b = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            e = json.load(f)
        est = (e.get("slope") or e["mean"])["point_estimate"]
        parts = b["full_id"].split("/")
        variant = next((p for p in parts if p in VARIANTS), "zio")
        ident = "/".join(p for p in parts if p != variant)
        bench = BENCH_OF.get(b["group_id"].split("_")[0], b["group_id"])
        row(bench, ident, variant, est, "ns", commit, "criterion")



def per_call(out, caller, callee):
    """Instructions collected in callgrind's output file `out`, divided by
    the calls from functions matching `caller` to functions matching
    `callee`."""
    names, total, calls, fn = {}, 0, 0, ""
    cfn = ""

    def name(rest):
        m = re.match(r"\((\d+)\)(?: (.*))?", rest)
        if not m:
            return rest
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "")

    with open(out) as f:
        for line in f:
            if line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                cfn = name(line[4:].strip())
            elif line.startswith("calls=") and re.search(caller, fn) and re.search(callee, cfn):
                calls += int(line[6:].split()[0])
            elif line.startswith("summary:"):
                total = int(line.split()[1])
    if not calls:
        sys.exit(f"bench_figures.py: no call of {callee} from {caller} in {out}")
    return total / calls


def callgrind_run(exe, bench_filter, toggle, secs, caller, callee):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "callgrind.out")
        # zio stands aside under valgrind unless told otherwise; the benches
        # never touch an elided copy, which is what would hang there.
        env = dict(os.environ, ZIO_VALGRIND="1")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        f"--toggle-collect={toggle}", exe, "--bench", bench_filter,
                        "--profile-time", str(secs)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return per_call(out, caller, callee)


def callgrind(bin_dir, commit, secs):
    hook = os.path.join(bin_dir, "bench-hook")
    for size in ("64B", "4096B"):
        ident = f"memcpy_{size}"
        v = {var: callgrind_run(hook, f"{ident}/{var}$", "criterion::bencher::Bencher*::iter*",
                                secs, ITER, r"mem(cpy|move)")
             for var in ("libc", "zio_hook")}
        for var, x in v.items():
            row("callgrind", ident, var, x, "instructions", commit, "callgrind, per call")
        row("callgrind", ident, "added", v["zio_hook"] - v["libc"], "instructions", commit,
                  "callgrind, per call")
    chain = os.path.join(bin_dir, "bench-chain")
    for k in (1, 12):
        x = callgrind_run(chain, f"chain_64KiB_static/zio/{k}$", "*static_message*", secs,
                          ITER, r"static_message")
        row("callgrind", f"chain_64KiB_static/{k}", "zio", x, "instructions", commit,
                  "callgrind, per message")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "criterion":
        criterion(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "callgrind":
        callgrind(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(__doc__)
