#!/usr/bin/env python3
"""Real servers under zio (`make apps`): each program is installed from
Debian (scripts/deps.sh), started on 127.0.0.1 as its own service user
with its config from integration/apps/, driven by its usual load tool and
checked by a verifying client, without and with zio in alternation (a
fresh server per run, the order flipped every pair; Redis's runs sized to
last RUN_SECONDS each by a run before them). One table: ops/s and MB/s
without -> with zio, the median of the pairwise ratios with its 95%
interval, the ceiling (what removing every user-space memcpy/memmove of
the server would give, from a perf profile of a run without zio),
whether every byte was verified, and zio's counters per request.

    apps.py [--quick] [--only NAME[,NAME]] [--pairs N] [--csv FILE]
            [--no-profile] [--coverage FILE]

The service users get /dev/userfaultfd for the run (`zio-run --setup
--user ...`, undone at the end, unless a setup was already in place).
--coverage FILE: then, for each program's short workloads, the copies
of at least 64 KiB it calls libc for, by call site (bpftrace on zio's
exported copy functions, elision off), next to those zio elided.
--quick: small workloads, one pair, no profile; the exit status is 1 if
any byte differs, a server under zio passed everything through, or zio
elided less than the workload expects (`make test` runs it).
"""
import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from appbench import common, coverage  # noqa: E402
from appbench.goal import median_ci, verdict  # noqa: E402
from appbench import icecast, memcached, postgres, redis, web  # noqa: E402

APPS = {
    "redis": redis,
    "nginx": web.nginx,
    "haproxy": web.haproxy,
    "postgres": postgres,
    "memcached": memcached,
    "icecast": icecast,
}
STATE = "/var/lib/zio/setup"
# How long each run of a workload sized by requests (Redis) lasts.
RUN_SECONDS = 2.5


def zio_run(*args):
    out = subprocess.run([common.ZIO_RUN, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"apps: zio-run {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def grant(users):
    """Lets `users` open /dev/userfaultfd; returns how to take it back."""
    if not os.path.exists(STATE):
        zio_run("--setup", "--user", ",".join(users))
        return ["--setup", "--undo"]
    members = subprocess.run(["getent", "group", "zio"], capture_output=True,
                             text=True).stdout.strip().split(":")[-1].split(",")
    new = [u for u in users if u not in members]
    if not new:
        return None
    zio_run("--setup", "--user", ",".join(new))
    return ["--setup", "--undo", "--user", ",".join(new)]


def ratio_text(x):
    return "-" if x is None else f"{x:.2f}"


def row_of(app, w, runs, prof):
    off = [r for z, r in runs if not z]
    on = [r for z, r in runs if z]
    ratios = [b["ops"] / a["ops"] for a, b in zip(off, on) if a["ops"] > 0]
    ratio, lo, hi = median_ci(ratios) if ratios else (None, None, None)
    cpus = [(b["cpu"] / b["requests"]) / (a["cpu"] / a["requests"])
            for a, b in zip(off, on) if a.get("cpu") and b.get("cpu") is not None]
    cpu = statistics.median(cpus) if cpus else None
    ceiling = None if prof is None else 1 / max(1e-9, 1 - prof)
    zc = {}
    for r in on:
        for k, v in r["counters"].items():
            zc[k] = zc.get(k, 0) + v
    per = common.per_request(zc, sum(r["requests"] for r in on))
    verified = all(r["verified"] for _, r in runs)
    goal = "-" if ratio is None else verdict(ratio, hi, ceiling)
    return {
        "program": app, "workload": w.name,
        "ops_without": statistics.median(r["ops"] for r in off),
        "ops_with": statistics.median(r["ops"] for r in on),
        "mbs_without": statistics.median(r["mbs"] for r in off),
        "mbs_with": statistics.median(r["mbs"] for r in on),
        "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi, "cpu_ratio": cpu, "ceiling": ceiling,
        "verified": verified,
        "pass_through": sum(r["counters"].get("pass_through", 0) for r in on),
        "processes": sum(r["counters"].get("processes", 0) for r in on) // max(1, len(on)),
        "goal": goal, "pairs": len(ratios), **per,
    }


HEAD = ("program", "workload", "ops/s without -> zio", "MB/s without -> zio", "ratio (95%)",
        "CPU/req", "ceiling", "verified", "elided/req", "subst KiB/req", "faults/req", "syscalls/req",
        "goal")


def cells(r):
    return (
        r["program"], r["workload"],
        f"{r['ops_without']:.0f} -> {r['ops_with']:.0f}",
        f"{r['mbs_without']:.0f} -> {r['mbs_with']:.0f}",
        f"{ratio_text(r['ratio'])} ({ratio_text(r['ratio_lo'])}-{ratio_text(r['ratio_hi'])})",
        ratio_text(r["cpu_ratio"]), ratio_text(r["ceiling"]),
        "yes" if r["verified"] else "NO",
        f"{r['elided']:.2f}", f"{r['subst_kb']:.0f}", f"{r['faults']:.2f}",
        f"{r['syscalls']:.2f}",
        "NOT LOADED" if not r["processes"] else ("PASS-THROUGH" if r["pass_through"] else r["goal"]),
    )


def print_row(r, widths):
    print("  ".join(str(c).ljust(w) for c, w in zip(cells(r), widths)).rstrip(), flush=True)


def coverage_rows(names):
    """Per program, for its short workloads: the large copies it calls
    libc for (per call site, per request) next to those zio elided."""
    out = []
    for n in names:
        for w in APPS[n].workloads(True):
            with tempfile.TemporaryDirectory(prefix="zio-apps-") as tmp:
                os.chmod(tmp, 0o755)
                m = coverage.measure(w, tmp)
            if m is None:
                # bpftrace missing or not attached, or a workload whose
                # load is not observed (Redis's persistence check).
                print(f"{n:<9}  {w.name:<40}  not traced", flush=True)
                continue
            sites, requests = m
            with tempfile.TemporaryDirectory(prefix="zio-apps-") as tmp:
                os.chmod(tmp, 0o755)
                r = w.run(True, tmp)
            elided = r["counters"].get("elided_copies", 0) / max(r["requests"], 1)
            seen = sum(c for c, _ in sites.values()) / max(requests, 1)
            top = sorted(sites.items(), key=lambda kv: -kv[1][0])[:6] or [(("-", "-"), (0, 0))]
            for (comm, site), (calls, nbytes) in top:
                out.append({
                    "program": n, "workload": w.name, "process": comm, "site": site,
                    "copies_per_request": calls / max(requests, 1),
                    "kib_per_request": nbytes / max(requests, 1) / 1024,
                    "large_copies_per_request": seen, "elided_per_request": elided,
                })
            print(f"{n:<9}  {w.name:<40}  {seen:6.2f} large copies/request seen, "
                  f"{elided:6.2f} elided", flush=True)
            for (comm, site), (calls, nbytes) in top:
                if calls:
                    print(f"{'':<9}    {comm:<16} {site:<48} {calls / max(requests, 1):7.2f}/req "
                          f"{nbytes / max(requests, 1) / 1024:9.0f} KiB/req", flush=True)
    return out


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["program"])
        out.writeheader()
        out.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--csv")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--coverage", metavar="CSV",
                    help="after the table, which large copies each program makes (bpftrace), to CSV")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("apps: needs root (servers run as their own users; the setup grants them)")
    if not os.path.exists(common.LIB):
        sys.exit(f"apps: {common.LIB} is missing: run `cargo build --release`")
    # Every service user must be able to preload it, or ld.so skips it.
    d = os.path.dirname(os.path.abspath(common.LIB))
    while d != "/":
        if os.stat(d).st_mode & 0o005 != 0o005:
            sys.exit(f"apps: {d} is not readable by other users, who could not preload "
                     f"{common.LIB}")
        d = os.path.dirname(d)
    names = [n for n in args.only.split(",") if n] or list(APPS)
    for n in names:
        if n not in APPS:
            sys.exit(f"apps: no program {n!r} (have: {', '.join(APPS)})")
    # A TERM (a CI timeout, kill) still takes the grant back (finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pairs = 1 if args.quick else max(1, args.pairs)
    profile = not args.quick and not args.no_profile
    undo = grant(sorted({APPS[n].USER for n in names}))
    rows, failures = [], []
    widths = (9, 40, 22, 16, 16, 7, 7, 8, 10, 13, 10, 12, 10)
    print("  ".join(h.ljust(w) for h, w in zip(HEAD, widths)).rstrip(), flush=True)
    try:
        for n in names:
            for w in APPS[n].workloads(args.quick):
                runs = []
                try:
                    if not args.quick and hasattr(w, "calibrate"):
                        with tempfile.TemporaryDirectory(prefix="zio-apps-") as tmp:
                            os.chmod(tmp, 0o755)
                            w.calibrate(tmp, RUN_SECONDS)
                    for i in range(pairs):
                        for z in ((False, True) if i % 2 == 0 else (True, False)):
                            with tempfile.TemporaryDirectory(prefix="zio-apps-") as tmp:
                                os.chmod(tmp, 0o755)
                                runs.append((z, w.run(z, tmp)))
                    prof = None
                    if profile:
                        with tempfile.TemporaryDirectory(prefix="zio-apps-") as tmp:
                            os.chmod(tmp, 0o755)
                            prof = w.run(False, tmp, perf=os.path.join(tmp, "perf.data"))["share"]
                except common.Failure as e:
                    failures.append(f"{n} {w.name}: {e}")
                    print(f"{n:<9}  {w.name:<40}  FAILED: {e}", flush=True)
                    continue
                r = row_of(n, w, runs, prof)
                rows.append(r)
                print_row(r, widths)
                if not r["verified"]:
                    failures.append(f"{n} {w.name}: data differed")
                if r["pass_through"]:
                    failures.append(f"{n} {w.name}: {r['pass_through']} process(es) under zio "
                                    "could not open userfaultfd")
                if r["processes"] == 0:
                    failures.append(f"{n} {w.name}: no zio summary (zio was not loaded)")
                want = getattr(w, "expect_elided", 0)
                if args.quick and r["elided"] < want:
                    failures.append(f"{n} {w.name}: {r['elided']:.2f} elided copies per request,"
                                    f" expected at least {want}")
        if args.coverage:
            print("\ncoverage: copies of >= 64 KiB the server asked libc for, by call site", flush=True)
            write_csv(args.coverage, coverage_rows(names))
    finally:
        postgres.cleanup()
        if undo:
            zio_run(*undo)
    if args.csv:
        write_csv(args.csv, rows)
    for f in failures:
        print(f"apps: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if not shutil.which("setpriv"):
        sys.exit("apps: setpriv is missing (util-linux)")
    main()
