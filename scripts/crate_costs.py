#!/usr/bin/env python3
"""Measures the crates docs/design.md says zio does not use, against what
zio does instead, and prints the figures (`make crate-costs`, a few
minutes; needs valgrind, and libclang for the userfaultfd crate's build):

- redhook: bench-hook's pass-through memcpy through libzio.so and through
  a redhook hook that counts the same (benches/crates/redhook-hook), in
  callgrind instructions per call and criterion ns, alternating;
- userfaultfd: ns per ioctl through the crate and raw, alternating
  (benches/crates/uffd-ioctls), and the crates its build pulls in;
- once_cell: ns per read of once_cell, OnceLock and an atomic load
  (benches/crates/once-get);
- crossbeam-skiplist: the record index at 640 records, ns per lookup and
  per insert+remove, against zio's tracker (benches/crates/skiplist-index).
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = os.path.join(ROOT, "benches", "crates")
spec = importlib.util.spec_from_file_location("bench_figures",
                                              os.path.join(ROOT, "scripts", "bench_figures.py"))
bench_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_figures)
# Callgrind collects inside criterion's timing loop only.
TOGGLE = "criterion::bencher::Bencher*::iter*"


def cargo(args, cwd):
    return subprocess.run(["cargo", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def bench_hook():
    """Builds the hook bench and returns its executable."""
    out = cargo(["bench", "-p", "zio-benches", "--bench", "hook", "--no-run",
                 "--message-format=json"], ROOT)
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "hook":
            return msg["executable"]
    sys.exit("crate_costs.py: no hook bench executable")


def criterion_ns(exe, lib, ident):
    env = dict(os.environ, ZIO_LIB=lib, CRITERION_HOME=os.path.join(CRATES, "target", "criterion"))
    out = subprocess.run([exe, "--bench", f"{ident}$"], env=env, check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", out)
    if not m:
        sys.exit(f"crate_costs.py: no criterion time in:\n{out}")
    scale = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3}[m.group(2)]
    return float(m.group(1)) * scale


def run_bin(name):
    """Runs one of benches/crates' timing programs and prints its lines."""
    print(subprocess.run([os.path.join(CRATES, "target", "release", name)], check=True,
                         capture_output=True, text=True).stdout, end="")


def main():
    cargo(["build", "--release"], CRATES)
    cargo(["build", "--release", "-p", "libzio"], ROOT)
    hook = bench_hook()
    libs = {"zio": os.path.join(ROOT, "target", "release", "libzio.so"),
            "redhook": os.path.join(CRATES, "target", "release", "libredhook_hook.so")}

    print("== redhook: pass-through memcpy, callgrind instructions per call")
    for size in ("64B", "4096B"):
        ident = f"memcpy_{size}"
        os.environ["ZIO_LIB"] = libs["zio"]
        base = bench_figures.callgrind_run(hook, f"{ident}/libc$", TOGGLE, 1.0,
                                           bench_figures.ITER, r"mem(cpy|move)")
        line = [f"{ident}: libc {base:.0f}"]
        for name, lib in libs.items():
            os.environ["ZIO_LIB"] = lib
            x = bench_figures.callgrind_run(hook, f"{ident}/zio_hook$", TOGGLE, 1.0,
                                            bench_figures.ITER, r"mem(cpy|move)")
            line.append(f"{name} {x:.0f} (+{x - base:.0f})")
        print(", ".join(line))

    print("== redhook: pass-through memcpy_64B, criterion ns per call, alternating")
    for r in range(1, 4):
        ns = {name: criterion_ns(hook, lib, "memcpy_64B/zio_hook") for name, lib in libs.items()}
        print(f"round {r}: " + ", ".join(f"{n} {v:.2f} ns" for n, v in ns.items()))

    print("== userfaultfd: ns per ioctl, crate and raw, alternating")
    run_bin("uffd-ioctls")
    tree = cargo(["tree", "-p", "uffd-ioctls", "-e", "normal,build", "--prefix", "none"], CRATES)
    pulled = {l.split()[0] for l in tree.splitlines() if l.strip()} - {"uffd-ioctls", "libc"}
    print(f"the userfaultfd crate's build pulls in {len(pulled)} crates, bindgen among them: "
          f"{'yes' if 'bindgen' in pulled else 'no'}")

    print("== once_cell: ns per read of a set cell")
    run_bin("once-get")

    print("== crossbeam-skiplist: the record index at 640 records")
    run_bin("skiplist-index")


if __name__ == "__main__":
    main()
