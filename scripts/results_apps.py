"""The real-servers part of docs/results.md, from the apps/ set
(`make apps`: scripts/apps.py's CSV): the table of every workload and
goal 8's verdict. Imported by scripts/results.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appbench.goal import CEILING_MIN, FLOOR, SHARE, verdict as row_verdict  # noqa: E402


def num(x):
    return float(x) if x not in ("", None) else None


def rows(r):
    return r.csv("apps", "apps.csv")


def status(row):
    """One row's goal 8: 'met', 'unresolved', 'below' or 'short'."""
    ratio = num(row["ratio"])
    if ratio is None:
        return "met"
    v = row_verdict(ratio, num(row.get("ratio_hi")), num(row["ceiling"]))
    return v if v in ("met", "unresolved") else ("below" if v.startswith("below") else "short")


def verdict(r):
    """Goal 8's 'now' and 'status' cells."""
    rs = rows(r)
    if not rs:
        return "no data", "not measured"
    st = [status(x) for x in rs]
    bad = [x for x in rs if x["verified"] != "True"]
    worst = min(rs, key=lambda x: num(x["ratio"]) or 9)
    now = (f"{len(rs)} workloads of {len(set(x['program'] for x in rs))} programs; "
           f"{st.count('met')} met; {st.count('below')} below {FLOOR} and "
           f"{st.count('short')} short of {SHARE:.0%} of a ceiling above {CEILING_MIN} "
           f"over their whole 95% interval; {st.count('unresolved')} unresolved "
           f"(lowest median {num(worst['ratio']):.2f}, {worst['program']} "
           f"{worst['workload']}); data verified in {len(rs) - len(bad)}")
    if bad or "below" in st or "short" in st:
        return now, "not met"
    return now, "met" if st.count("met") == len(st) else "not shown"


def f2(x):
    v = num(x)
    return "" if v is None else f"{v:.2f}"


def block(r, table):
    rs = rows(r)
    if not rs:
        return "no data"
    out = []
    for x in rs:
        mark = {"met": "", "short": "short of ceiling"}.get(status(x), status(x))
        lo, hi = num(x.get("ratio_lo")), num(x.get("ratio_hi"))
        ratio = f2(x["ratio"]) + ("" if lo is None else f" ({lo:.2f}–{hi:.2f})")
        out.append([
            x["program"], x["workload"],
            f"{num(x['ops_without']):.0f} → {num(x['ops_with']):.0f}",
            f"{num(x['mbs_without']):.0f} → {num(x['mbs_with']):.0f}",
            ratio, f2(x["cpu_ratio"]), f2(x["ceiling"]),
            "yes" if x["verified"] == "True" else "**no**",
            f2(x["elided"]), f"{num(x['subst_kb']):.0f}", f2(x["faults"]), f2(x["syscalls"]),
            mark,
        ])
    return table(["program", "workload", "ops/s without → zio", "MB/s without → zio",
                  "zio / without (95% interval)", "CPU per request, zio / without", "ceiling", "verified",
                  "elided / request", "substituted KiB / request", "faults / request",
                  "system calls / request", "goal 8"], out)


def coverage(r, table):
    """The copies of at least 64 KiB each program asked libc for, by call
    site, next to those zio elided (apps/coverage.csv)."""
    rs = r.csv("apps", "coverage.csv")
    if not rs:
        return "no data"
    out = [[x["program"], x["workload"], x["process"], f"`{x['site']}`",
            f2(x["copies_per_request"]), f"{num(x['kib_per_request']):.0f}",
            f2(x["large_copies_per_request"]), f2(x["elided_per_request"])] for x in rs]
    return table(["program", "workload", "process", "call site", "copies / request",
                  "KiB / request", "all large copies / request", "elided / request"], out)
