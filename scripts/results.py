#!/usr/bin/env python3
"""Writes docs/results.md from the result sets in docs/results/.

    python3 scripts/results.py                      # docs/results/ -> docs/results.md
    python3 scripts/results.py --results DIR --out FILE

A result set is a directory with its files and an environment.txt (commit,
machine, when): sweeps/ (echo-bench sweep copies, size, threads, touch),
faults/ (sweep faults, and with --copies 1), interleave/ (the grid-*.txt
tables of `echo-bench interleave --ceiling-inputs 2`, small.txt,
touch1.txt), servers/ (interleave per buffer mode, allocator and thread
count), benches/ (micro.csv), regress/ and apps/ (the CSVs of
scripts/regress.py and scripts/apps.py). `scripts/measure-results.sh` (make
results) writes them. Every figure and verdict is computed here from those
files; the text around them is scripts/results.md.in, whose {{name}}
placeholders are filled by the functions of BLOCKS.
"""
import argparse
import csv
import glob
import math
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pool  # noqa: E402
import results_apps  # noqa: E402
import results_bridge  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = {5: 2.9, 12: 3.8}  # zIO over Linux at 512 KiB (figures 4.3 and 4.5)
GOAL1, GOAL3, GOAL4 = 0.95, 0.98, 0.95
SETS = {
    "sweeps": "`echo-bench sweep` copies, size, threads, touch",
    "faults": "`echo-bench sweep faults`, and with `--copies 1`",
    "interleave": "`echo-bench interleave`: the grid with the two-buffer server, small messages, every byte read",
    "servers": "`echo-bench interleave` for every buffer mode, allocator and 1 and 2 server threads",
    "benches": "criterion benches and callgrind counts (`make bench`)",
    "regress": "`make regress`: ordinary programs, one copy read in five orders, start and fork costs",
    "apps": "`make apps`: Redis, nginx, HAProxy, PostgreSQL, memcached as their own users",
    "bridge": "`echo-bench stack`: iceoryx2 and smoltcp with zio's bridge (zio+IO)",
}
GOAL6 = 0.98
# Goal 7 (the memory real servers use): zio / 0-copy and zio / without zio
# at every point, and zio's system calls per elided copy.
GOAL7_Z0, GOAL7_ZW, GOAL7_SYS = 0.95, 1.0, 1.0
BUFFERS, ALLOCATORS = ("static", "malloc", "chain"), ("glibc", "jemalloc")


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KM]?)", s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20}[m.group(2)]


def fmt_size(n):
    return f"{n >> 20}M" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10}K"


def environment(d):
    """The keys of d/environment.txt: commit, started, finished, date,
    kernel (the machine line) and notes."""
    env = {"notes": []}
    path = os.path.join(d, "environment.txt")
    if not os.path.exists(path):
        return env
    with open(path) as f:
        for line in f:
            key, _, rest = line.strip().partition(" ")
            if key == "note":
                env["notes"].append(rest)
            elif key in ("commit", "started", "finished", "date", "kernel"):
                env[key] = rest
    return env


def when(env):
    a, b = env.get("started", ""), env.get("finished", "")
    if not a:
        return env.get("date", "?")
    day, t0 = a.rstrip("Z").split("T")
    t0 = t0[:5]
    if not b:
        return f"{day} {t0} UTC"
    day1, t1 = b.rstrip("Z").split("T")
    if (day1, t1[:5]) == (day, t0):
        return f"{day} {t0} UTC"
    return f"{day} {t0}–{t1[:5]} UTC" if day1 == day else f"{day} {t0} – {day1} {t1[:5]} UTC"


def short(commit):
    sha, _, rest = commit.partition(" ")
    return f"`{sha[:7]}`" + (f" {rest}" if rest else "")


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def f3(x):
    return "–" if math.isnan(x) else f"{x:.3f}"


def interval(r, key):
    return f"{r[key]:.3f} ({r[key + '_lo']:.3f}–{r[key + '_hi']:.3f})"


def span(v):
    lo, hi = f"{min(v):.3f}", f"{max(v):.3f}"
    return lo if lo == hi else f"{lo}–{hi}"


def met(ok):
    return "**met**" if ok else "**not met**"


def existing(*p):
    path = os.path.join(*p)
    return [path] if os.path.exists(path) else []


class Results:
    """The result sets under one directory, read once."""

    def __init__(self, root, out_dir):
        self.root, self.out_dir = root, out_dir
        il = os.path.join(root, "interleave")
        self.grid, self.grid_failed = pool.read_runs(sorted(glob.glob(os.path.join(il, "grid*.txt"))))
        self.small, self.small_failed = pool.read_runs(existing(il, "small.txt"))
        self.touch1, self.touch1_failed = pool.read_runs(existing(il, "touch1.txt"))
        # servers/: {buffers}-{allocator}-t{threads}.txt, {buffers}-small.txt,
        # {buffers}-touch1.txt; one run per point.
        self.servers, self.servers_failed = {}, []
        for path in sorted(glob.glob(os.path.join(root, "servers", "*.txt"))):
            runs, failed = pool.read_runs([path])
            self.servers[os.path.basename(path)[:-4]] = {k: v[0] for k, v in runs.items()}
            self.servers_failed += failed
        self.micro = self.csv("benches", "micro.csv")
        self.regress = self.csv("regress", "regress.csv")

    def path(self, *p):
        return os.path.join(self.root, *p)

    def rel(self, *p):
        return os.path.relpath(self.path(*p), self.out_dir)

    def csv(self, *p):
        path = self.path(*p)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return list(csv.DictReader(f))

    def sweep(self, s, name):
        """A sweep's points, with zio's counters per message."""
        rows = self.csv(s, name + ".csv")
        for r in rows:
            m = max(int(r["zio_messages"]), 1)
            for k in ("elided_bytes", "faults_missing", "policy_skips", "bytes_substituted"):
                r[k + "_msg"] = int(r[k]) / m
            for k in ("without_gbps", "with_gbps", "ratio", "zio_over_ceiling"):
                r[k] = float(r[k])
        return rows

    def plot(self, s, name, alt):
        return f"![{alt}]({self.rel(s, name + '.svg')})"

    def grid_points(self):
        """Goal 1's points (size >= 64 KiB, 1-12 copies), pooled."""
        pts = [(size, copies, pool.pool(v)) for (size, copies), v in self.grid.items()
               if parse_size(size) >= 64 << 10 and 1 <= copies <= 12]
        return sorted(pts, key=lambda p: (parse_size(p[0]), p[1]))


# Blocks: each returns the text of one {{placeholder}} of the template.

def sets(r):
    rows = []
    for s, what in SETS.items():
        env = environment(r.path(s))
        commit = short(env["commit"]) if "commit" in env else "per row"
        notes = "; ".join(env["notes"])
        rows.append([f"[`{s}/`]({r.rel(s, 'environment.txt')})", what, commit, when(env), env.get("kernel", "?"), notes])
    return table(["set", "what", "commit", "measured", "machine", "notes"], rows)


def failures(r):
    n = 0
    for s, names in (("sweeps", ("copies", "size", "threads", "touch")),
                     ("faults", ("faults", "faults-copies1"))):
        for name in names:
            n += sum(int(p["failures"]) for p in r.csv(s, name + ".csv"))
    lines = r.grid_failed + r.small_failed + r.touch1_failed + r.servers_failed
    if not n and not lines:
        return "No run of these sets failed (every echo was verified)."
    return f"Failed runs: {n} in the sweeps; interleave: " + ("; ".join(lines) or "none") + "."


def goal1_verdict(r):
    pts = r.grid_points()
    if not pts:
        return False, "no data", []
    low = min(pts, key=lambda p: p[2]["z0"][0])
    sizes = sorted({parse_size(p[0]) for p in pts})
    missing = [fmt_size(s) for s in (64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20)
               if s not in sizes]
    ok = all(p[2]["z0"][0] >= GOAL1 for p in pts)
    text = span([p[2]["z0"][0] for p in pts]) + f" ({len(pts)} points, lowest {low[0]} × {low[1]})"
    if missing:
        text += "; not measured: " + ", ".join(missing)
    return ok, text, missing


def goal2_points(r):
    return [(c, pool.pool(r.grid[("512K", c)])) for c in PAPER if ("512K", c) in r.grid]


def small_rows(r):
    return [(k, v[0]) for k, v in r.small.items()]


def goal3_verdict(r):
    rows = [(k, x) for k, x in small_rows(r) if parse_size(k[0]) < 16 << 10]
    if not rows:
        return False, "no data"
    v = [x["zw"] for _, x in rows]
    return all(x >= GOAL3 for x in v), span(v) + " (sizes under 16 KiB)"


def goal4_verdict(r):
    v = [x[0]["zw"] for x in r.touch1.values()]
    if not v:
        return False, "no data"
    return all(x >= GOAL4 for x in v), span(v)


def faults_story(r):
    """Goal 5 in one line, from the 1-copy faults sweep."""
    pts = r.sweep("faults", "faults-copies1")
    if not pts:
        return "no data"
    elided = [p["point"] for p in pts if p["policy_skips_msg"] < 0.5 and p["faults_missing_msg"] > 0]
    stopped = [p["point"] for p in pts if p["policy_skips_msg"] >= 0.5]
    return (f"pages of the copy read: elided with faults at {', '.join(elided) or 'none'}; "
            f"copied for real (policy) from {stopped[0] if stopped else 'never'}")


def server_points(r):
    """Goal 7's grid: (buffers, allocator, threads, size, copies, run)."""
    pts = []
    for b in BUFFERS:
        for a in ALLOCATORS:
            for t in (1, 2):
                for (size, copies), x in r.servers.get(f"{b}-{a}-t{t}", {}).items():
                    pts.append((b, a, t, size, copies, x))
    return pts


def server_sys_ok(b, copies, x):
    per_copy = x["sys"] / max(copies, 1)
    return per_copy < 0.05 if b == "static" else per_copy <= GOAL7_SYS


def server_ok(b, copies, x):
    return x["z0"] >= GOAL7_Z0 and x["zw"] >= GOAL7_ZW and server_sys_ok(b, copies, x)


def goal7_verdict(r):
    pts = server_points(r)
    if not pts:
        return "no data", "**not measured**"
    n = len(pts)
    k = lambda f: sum(1 for p in pts if f(p))  # noqa: E731
    z0 = k(lambda p: p[5]["z0"] >= GOAL7_Z0)
    zw = k(lambda p: p[5]["zw"] >= GOAL7_ZW)
    sy = k(lambda p: server_sys_ok(p[0], p[4], p[5]))
    low = min(pts, key=lambda p: p[5]["z0"])
    text = (f"{n} points: zio / 0-copy ≥ {GOAL7_Z0} at {z0}, zio / without ≥ {GOAL7_ZW} at {zw}, "
            f"system calls within bound at {sy}; lowest zio / 0-copy {low[5]['z0']:.2f} "
            f"({low[0]}, {low[1]}, {low[2]} thread(s), {low[3]} × {low[4]})")
    return text, met(all(server_ok(p[0], p[4], p[5]) for p in pts))


def goals(r):
    ok1, t1, missing = goal1_verdict(r)
    g2 = goal2_points(r)
    t2 = ", ".join(f"{p['zw'][0]:.2f}× at {c} (bound {1 / p['w0'][0]:.2f}×)" for c, p in g2)
    paper = all(p["zw"][0] >= PAPER[c] for c, p in g2)
    s2 = (("paper's reached" if paper else "under the paper's")
          + "; zio / 0-copy " + ", ".join(f"{p['z0'][0]:.2f}" for _, p in g2))
    ok3, t3 = goal3_verdict(r)
    ok4, t4 = goal4_verdict(r)
    rows = [
        ["1", "every size ≥ 64 KiB, 1–12 copies: zio / 0-copy", f"≥ {GOAL1}", t1,
         met(ok1) + (" where measured" if missing else "")],
        ["2", "512 KiB, 5 and 12 copies: zio / without zio", "paper: 2.9×, 3.8×", t2, s2],
        ["3", "messages under 16 KiB: zio / without zio", f"≥ {GOAL3}", t3, met(ok3)],
        ["4", "every copied byte read: zio / without zio", f"≥ {GOAL4}", t4, met(ok4)],
        ["5", "page faults (figure 4.8)", "the curve", faults_story(r), "reported"],
        ["6", "ordinary programs (`make regress`): speed under zio", f"≥ {GOAL6}", *goal6_verdict(r)],
        ["7", "malloc'd, chained and static buffers, glibc and jemalloc, 1 and 2 threads",
         f"zio / 0-copy ≥ {GOAL7_Z0}, / without ≥ {GOAL7_ZW}; ≤ {GOAL7_SYS:.0f} system call "
         "per elided copy (0 static)", *goal7_verdict(r)],
        ["8", "real servers (`make apps`): zio / without zio, and the gain against the ceiling",
         f"≥ {results_apps.FLOOR}; ≥ {results_apps.SHARE:.0%} of the ceiling's gain where it is above "
         f"{results_apps.CEILING_MIN}; every byte verified", *results_apps.verdict(r)],
        ["9", "IO stacks with the bridge (`echo-bench stack`), 64 KiB–8 MiB, 2 copies",
         f"iceoryx2: zio+bridge ≥ {results_bridge.IOX_FLOOR}× the 1-copy pipeline and above zio and "
         "no zio; smoltcp: zio+bridge ≥ zio", *results_bridge.verdict(r)],
    ]
    return table(["goal", "what", "threshold", "now", "status"], rows)


def goal1(r):
    rows = []
    for size, copies, p in r.grid_points():
        rows.append([size, copies, p["runs"], pool.fmt_spread(p["z0"], "–"), p["below"], f3(p["z2"][0]),
                     f"{p['cpu_step2']:+.1f}", f"{p['cpu_stepz']:+.1f}",
                     "met" if p["z0"][0] >= GOAL1 else "not met"])
    return table(["size", "copies", "runs", "zio / 0-copy [lowest–highest run]", "runs < 0.95",
                  "zio / two-buffer server", "CPU µs/msg: two-buffer − 0-copy",
                  "zio − two-buffer", "goal"], rows)


def goal1_elision(r):
    odd = []
    for (size, copies), v in r.grid.items():
        want = copies * parse_size(size) / 1024
        for run in v:
            if abs(run["elided_k"] - want) > 1 or run["skips"] > 0:
                odd.append(f"{size} × {copies}: {run['elided_k']:.0f} KiB elided, "
                           f"{run['skips']:.2f} skips per message")
    if not odd:
        return "Every copy was elided in every run (copies × size per message), with no policy skips."
    return "Not every copy was elided: " + "; ".join(odd) + "."


def goal2(r):
    rows = []
    for c, p in goal2_points(r):
        rows.append([c, p["runs"], pool.fmt_spread(p["zw"], "–"), f3(p["w0"][0]), f"{1 / p['w0'][0]:.2f}×",
                     f3(p["z0"][0]), f"{PAPER[c]}×"])
    return table(["copies", "runs", "zio / without zio [lowest–highest]", "without zio / 0-copy",
                  "most any elision can give (1 / that)", "zio / 0-copy", "paper"], rows)


def goal3(r):
    rows = []
    for (size, copies), x in small_rows(r):
        goal = ("met" if x["zw"] >= GOAL3 else "not met") if parse_size(size) < 16 << 10 else "(not under 16 KiB)"
        rows.append([size, copies, interval(x, "zw"), f"{x['cpuw']:.1f} → {x['cpuz']:.1f}",
                     f"{x['elided_k']:.0f}K", goal])
    return table(["size", "copies", "zio / without zio (95% interval)",
                  "server CPU µs/msg, without → with", "elided/msg", "goal"], rows)


def goal4(r):
    rows = []
    for (size, copies), v in r.touch1.items():
        x = v[0]
        rows.append([size, copies, interval(x, "zw"), f"{x['elided_k']:.0f}K", f"{x['skips']:.2f}",
                     "met" if x["zw"] >= GOAL4 else "not met"])
    return table(["size", "copies", "zio / without zio (95% interval)", "elided/msg",
                  "policy skips/msg", "goal"], rows)


def goal7(r):
    """One row per buffer mode, allocator, threads and size; per copy count
    zio / 0-copy, zio / without zio and zio's system calls per message."""
    rows, cell = [], {}
    for b, a, t, size, copies, x in server_points(r):
        cell[(b, a, t, size, copies)] = x
    keys = sorted({k[:4] for k in cell}, key=lambda k: (BUFFERS.index(k[0]), ALLOCATORS.index(k[1]),
                                                         k[2], parse_size(k[3])))
    copies = sorted({k[4] for k in cell})
    for k in keys:
        row = list(k)
        for c in copies:
            x = cell.get(k + (c,))
            row.append("–" if x is None else
                       f"{x['z0']:.2f} · {x['zw']:.2f} · {x['sys']:.1f}" + ("" if server_ok(k[0], c, x) else " ✗"))
        rows.append(row)
    head = ["buffers", "allocator", "threads", "size"] + [f"{c} copies: zio / 0-copy · / without · sys/msg"
                                                          for c in copies]
    return table(head, rows)


def goal7_small(r):
    """Small messages and every byte read, per buffer mode."""
    rows = []
    for b in BUFFERS:
        for name, goal in (("small", GOAL3), ("touch1", GOAL4)):
            for (size, copies), x in r.servers.get(f"{b}-{name}", {}).items():
                judged = name == "touch1" or parse_size(size) < 16 << 10
                verdict = ("met" if x["zw"] >= goal else "not met") if judged else "(not under 16 KiB)"
                what = "every byte read" if name == "touch1" else "small message"
                rows.append([b, what, size, copies, interval(x, "zw"), f"≥ {goal}",
                             f"{x['elided_k']:.0f}K", f"{x['sys']:.1f}", verdict])
    return table(["buffers", "case", "size", "copies", "zio / without zio (95% interval)", "goal",
                  "elided/msg", "sys/msg", "status"], rows)


def across(pts, xname, lines):
    """A sweep's points as one table with its x values as columns:
    `lines` are (label, function of a point) rows."""
    head = [xname] + [p["point"] for p in pts]
    return table(head, [[label] + [fn(p) for p in pts] for label, fn in lines])


def kib(x):
    return f"{x / 1024:.0f}K"


def goal5(r):
    zero = r.sweep("faults", "faults")
    one = r.sweep("faults", "faults-copies1")
    if not zero or not one:
        return "no data"
    lines = [
        ("0 copies, input buffer read: with / without", lambda p: f"{p['ratio']:.2f}×"),
        ("0 copies: faults per message", lambda p: f"{p['faults_missing_msg']:.1f}"),
    ]
    t0 = across(zero, "pages read", lines)
    lines = [
        ("1 copy, the copy read: with / without", lambda p: f"{p['ratio']:.2f}×"),
        ("1 copy: elided per message", lambda p: kib(p["elided_bytes_msg"])),
        ("1 copy: faults / policy skips per message",
         lambda p: f"{p['faults_missing_msg']:.1f} / {p['policy_skips_msg']:.2f}"),
    ]
    t1 = across(one, "pages read", lines)
    plots = (r.plot("faults", "faults", "figure 4.8, 0 copies") + "\n"
             + r.plot("faults", "faults-copies1", "figure 4.8, 1 copy"))
    return f"{t0}\n\n{t1}\n\n{plots}"


def copy_cost(r):
    """What one 512 KiB copy costs a server without zio, from the copies sweep."""
    pts = {p["point"]: p for p in r.sweep("sweeps", "copies")}
    if "0" not in pts or "1" not in pts:
        return "no data"
    size = int(pts["0"]["size"])
    us = [size * 8 / (pts[k]["without_gbps"] * 1e9) * 1e6 for k in ("0", "1")]
    return (f"{us[1] - us[0]:.0f} µs ({us[0]:.0f} µs per {fmt_size(size)} message at 0 copies, "
            f"{us[1]:.0f} at 1, without zio, in the copies sweep)")


def one_fault(r):
    """One fault and the next copy's unmapping, from the ops bench."""
    v = {(m["id"], m["variant"]): float(m["value"]) for m in r.micro if m["bench"] == "ops"}
    a, b = v.get(("fault/one_page", "zio")), v.get(("fault/one_page", "zio_copy_only"))
    if a is None or b is None:
        return "not measured"
    return f"{(a - b) / 1000:.1f} µs"


def sweep_block(s, name, xname, alt, with_ceiling=False):
    def block(r):
        pts = r.sweep(s, name)
        if not pts:
            return "no data"
        groups = list(dict.fromkeys(p["group"] for p in pts))
        out = [r.plot(s, name, alt)]
        for g in groups:
            gp = [p for p in pts if p["group"] == g]
            lines = [
                ("without zio, Gbit/s", lambda p: f"{p['without_gbps']:.2f}"),
                ("with zio, Gbit/s", lambda p: f"{p['with_gbps']:.2f}"),
                ("with / without", lambda p: f"{p['ratio']:.2f}×"),
            ]
            if with_ceiling:
                lines.append(("with zio / 0-copy", lambda p: f"{p['zio_over_ceiling']:.2f}"))
            lines += [
                ("elided per message", lambda p: kib(p["elided_bytes_msg"])),
                ("policy skips per message", lambda p: f"{p['policy_skips_msg']:.2f}"),
            ]
            label = f"{xname} ({g})" if len(groups) > 1 else xname
            out.append(across(gp, label, lines))
        return "\n\n".join(out)
    return block


VARIANTS = ["libc", "zio_hook", "zio", "zio_held", "zio_copy_only", "added"]


def fmt_value(v, unit):
    if unit == "instructions":
        return f"{round(v):,}".replace(",", " ")
    if v >= 1000:
        return f"{v / 1000:.3g} µs"
    return f"{v:.3g} ns"


def micro(r):
    out = []
    order = ["hook", "tracker", "chain", "engine", "ops", "callgrind"]
    benches = sorted(dict.fromkeys(m["bench"] for m in r.micro),
                     key=lambda b: order.index(b) if b in order else len(order))
    for b in benches:
        ms = [m for m in r.micro if m["bench"] == b]
        variants = [v for v in VARIANTS if any(m["variant"] == v for m in ms)]
        rows = []
        for i in dict.fromkeys(m["id"] for m in ms):
            row = {m["variant"]: m for m in ms if m["id"] == i}
            first = next(iter(row.values()))
            rows.append([f"`{i}`"] + [fmt_value(float(row[v]["value"]), row[v]["unit"]) if v in row else ""
                                      for v in variants] + [short(first["commit"]), first["source"]])
        out.append(f"`{b}`:\n\n" + table([b] + variants + ["commit", "how"], rows))
    return "\n\n".join(out) if out else "no data"


def regress_rows(r, kind):
    return [x for x in r.regress if x["kind"] == kind]


def goal6_verdict(r):
    progs = regress_rows(r, "program")
    if not progs:
        return "no data", "not measured"
    low = [p for p in progs if float(p["speed"]) < GOAL6]
    worst = min(progs, key=lambda p: float(p["speed"]))
    wide = sum(1 for p in progs if p.get("spread") and float(p["spread"]) > 0.02)
    now = (f"{len(progs) - len(low)} of {len(progs)}; lowest {float(worst['speed']):.3f}× ({worst['case']})"
           + (f"; {wide} of {len(progs)} spread more than 2%" if wide else ""))
    return now, met(not low)


def regress(r):
    progs, orders, costs = (regress_rows(r, k) for k in ("program", "order", "cost"))
    if not progs and not orders and not costs:
        return "no data"
    out = []
    if progs:
        rows = [[p["case"], f"{float(p['speed']):.3f}×", f"{float(p['min']):.2f}–{float(p['max']):.2f}",
                 f"±{float(p['spread']) * 100:.1f}%" if p.get("spread") else "", p["pairs"],
                 f"{float(p['without']):.3f}", f"{float(p['with']):.3f}", p["elided_copies"], p["faults_missing"],
                 "" if float(p["speed"]) >= GOAL6 else "below"]
                for p in progs]
        out.append(table(["program", "speed", "range", "spread", "pairs", "without (s)", "with (s)",
                          "elided", "faults", f"≥ {GOAL6}"], rows))
    controls = regress_rows(r, "control")
    if controls:
        rows = [[c["case"].split(": ", 1)[-1], f"{float(c['speed']):.3f}×", f"{float(c['min']):.2f}–{float(c['max']):.2f}",
                 f"±{float(c['spread']) * 100:.1f}%" if c.get("spread") else "", c["pairs"]]
                for c in controls]
        out.append("The noise floor: the same programs with an empty library preloaded in place of zio, "
                   "in the same run:\n\n" + table(["control", "speed", "range", "spread", "pairs"], rows))
    if orders:
        rows = [[o["case"].split(": ", 1)[-1], f"{float(o['speed']):.2f}×", f"{float(o['min']):.2f}–{float(o['max']):.2f}",
                 f"{float(o['without']):.3f}", f"{float(o['with']):.3f}", o["faults_missing"], o["bound_or_added"]]
                for o in orders]
        out.append("One elided copy read one byte per page (`integration/c/read_orders.c`; the whole process, "
                   "its file read included):\n\n"
                   + table(["order", "speed", "range", "without (s)", "with (s)", "faults", "bound"], rows))
    if costs:
        rows = [[c["case"], f"{float(c['without']):.0f}", f"{float(c['with']):.0f}",
                 f"+{float(c['bound_or_added']):.0f}", f"{float(c['min']):.0f} to {float(c['max']):.0f}"]
                for c in costs]
        out.append("zio's cost per process start and per fork, in microseconds (the median of paired "
                   "differences; `[before]` is another build measured in the same rounds):\n\n"
                   + table(["what", "without", "with", "added", "range"], rows))
    return "\n\n".join(out)


BLOCKS = {
    "sets": sets,
    "failures": failures,
    "goals": goals,
    "goal1": goal1,
    "goal1_elision": goal1_elision,
    "goal2": goal2,
    "goal7": goal7,
    "goal7_small": goal7_small,
    "goal3": goal3,
    "goal4": goal4,
    "goal5": goal5,
    "copy_cost": copy_cost,
    "one_fault": one_fault,
    "copies": sweep_block("sweeps", "copies", "copies", "figure 4.3: copies", True),
    "size": sweep_block("sweeps", "size", "size", "figure 4.5: size", True),
    "threads": sweep_block("sweeps", "threads", "server threads / connections", "figure 4.7: threads"),
    "touch": sweep_block("sweeps", "touch", "fraction read", "figure 4.9: data read"),
    "micro": micro,
    "regress": regress,
    "apps": lambda r: results_apps.block(r, table),
    "apps_coverage": lambda r: results_apps.coverage(r, table),
    "bridge_iceoryx2": lambda r: results_bridge.block(r, table, "iceoryx2"),
    "bridge_smoltcp": lambda r: results_bridge.block(r, table, "smoltcp"),
}


def render(template, r):
    used = set(re.findall(r"\{\{(\w+)\}\}", template))
    unknown = used - BLOCKS.keys()
    if unknown:
        sys.exit(f"results.py: unknown placeholders in the template: {sorted(unknown)}")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: BLOCKS[m.group(1)](r), template)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(ROOT, "docs", "results"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    ap.add_argument("--template", default=os.path.join(ROOT, "scripts", "results.md.in"))
    a = ap.parse_args()
    with open(a.template) as f:
        template = f.read()
    r = Results(a.results, os.path.dirname(os.path.abspath(a.out)))
    text = render(template, r)
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
