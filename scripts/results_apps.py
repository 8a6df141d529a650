"""The real-servers part of docs/results.md, from the apps/ set
(`make apps`: scripts/apps.py's CSV): the table of every workload and
goal 8's verdict. Imported by scripts/results.py."""

# Goal 8: no workload below 0.97x without zio; where the ceiling (removing
# every user-space copy of the server) is above 1.1x, at least 80% of the
# gain it implies; every byte verified.
FLOOR, SHARE, CEILING_MIN = 0.97, 0.8, 1.1


def num(x):
    return float(x) if x not in ("", None) else None


def rows(r):
    return r.csv("apps", "apps.csv")


def reaches(row):
    """(below the floor, short of the ceiling's share) for one row."""
    ratio, ceiling = num(row["ratio"]), num(row["ceiling"])
    if ratio is None:
        return False, False
    short = ceiling is not None and ceiling > CEILING_MIN and ratio - 1 < SHARE * (ceiling - 1)
    return ratio < FLOOR, short


def verdict(r):
    """Goal 8's 'now' and 'status' cells."""
    rs = rows(r)
    if not rs:
        return "no data", "not measured"
    below = [x for x in rs if reaches(x)[0]]
    short = [x for x in rs if reaches(x)[1]]
    bad = [x for x in rs if x["verified"] != "True"]
    worst = min(rs, key=lambda x: num(x["ratio"]) or 9)
    now = (f"{len(rs)} workloads of {len(set(x['program'] for x in rs))} programs; "
           f"{len(rs) - len(below)} at ≥ {FLOOR} (lowest {num(worst['ratio']):.2f}, "
           f"{worst['program']} {worst['workload']}); {len(short)} short of {SHARE:.0%} "
           f"of a ceiling above {CEILING_MIN}; data verified in {len(rs) - len(bad)}")
    ok = not below and not short and not bad
    return now, "met" if ok else "not met"


def f2(x):
    v = num(x)
    return "" if v is None else f"{v:.2f}"


def block(r, table):
    rs = rows(r)
    if not rs:
        return "no data"
    out = []
    for x in rs:
        below, short = reaches(x)
        mark = "below" if below else ("short of ceiling" if short else "")
        out.append([
            x["program"], x["workload"],
            f"{num(x['ops_without']):.0f} → {num(x['ops_with']):.0f}",
            f"{num(x['mbs_without']):.0f} → {num(x['mbs_with']):.0f}",
            f2(x["ratio"]), f2(x["cpu_ratio"]), f2(x["ceiling"]),
            "yes" if x["verified"] == "True" else "**no**",
            f2(x["elided"]), f"{num(x['subst_kb']):.0f}", f2(x["faults"]), f2(x["syscalls"]),
            mark,
        ])
    return table(["program", "workload", "ops/s without → zio", "MB/s without → zio",
                  "zio / without", "CPU per request, zio / without", "ceiling", "verified",
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
