#!/usr/bin/env python3
"""Instructions per message of the static-buffer chain bench, through
libzio.so's exported hooks, counted by callgrind (repeatable whatever else
the machine does).

    python3 scripts/instructions.py [COPIES ...]     (default: 1 12)

For each number of copies it runs `benches/benches/chain.rs`'s
`chain_64KiB_static/zio/K` under `valgrind --tool=callgrind` and prints
the inclusive instructions per call of the hooks one message goes through
(`pread`, `memcpy`, `pwrite`) and their sum per message (pread + K memcpy
+ pwrite). Needs valgrind and a release build (`cargo build --release`).
"""
import collections
import json
import os
import subprocess
import sys
import tempfile

HOOKS = ("pread", "memcpy", "pwrite")


def bench_binary():
    out = subprocess.run(
        ["cargo", "bench", "-p", "zio-benches", "--bench", "chain", "--no-run",
         "--message-format=json"],
        check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "chain":
            return msg["executable"]
    sys.exit("instructions.py: cargo built no chain bench")


def per_call(path):
    """Calls into libzio.so's functions, and their inclusive instructions,
    from a callgrind file written with --compress-strings=no."""
    calls, incl = collections.Counter(), collections.Counter()
    ob = cob = cfn = None
    pending = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if pending is not None:
                if cob and "libzio" in cob and "libzio" not in (ob or ""):
                    calls[cfn] += pending
                    incl[cfn] += int(line.split()[1])
                pending, cob = None, None
            elif line.startswith("ob="):
                ob = line[3:]
            elif line.startswith("fn="):
                cob = None
            elif line.startswith("cob="):
                cob = line[4:]
            elif line.startswith("cfn="):
                cfn = line[4:]
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
                cob = cob or ob
    return {h: incl[h] / calls[h] for h in HOOKS if calls[h]}


def main():
    copies = [int(k) for k in sys.argv[1:]] or [1, 12]
    binary = bench_binary()
    print(f"{'64 KiB x':>9} {'pread':>8} {'memcpy':>8} {'pwrite':>8} {'message':>9}")
    for k in copies:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            subprocess.run(
                ["valgrind", "--tool=callgrind", "--compress-strings=no",
                 "--compress-pos=no", f"--callgrind-out-file={out}", binary,
                 "--bench", "--profile-time", "3", f"chain_64KiB_static/zio/{k}$"],
                check=True, capture_output=True)
            h = per_call(out)
        needed = {"pread", "pwrite"} | ({"memcpy"} if k else set())
        if not needed <= set(h):
            sys.exit(f"instructions.py: hooks missing from the profile at {k} copies: {h}")
        msg = h["pread"] + k * h.get("memcpy", 0) + h["pwrite"]
        print(f"{k:>9} {h['pread']:>8.0f} {h.get('memcpy', 0):>8.0f} {h['pwrite']:>8.0f} {msg:>9.0f}")


if __name__ == "__main__":
    main()
