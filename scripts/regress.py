#!/usr/bin/env python3
"""The regression suite of ordinary programs (`make regress`): each case
runs without and with zio in alternation (A B B A A B ...), its output is
compared byte for byte every time, and its speed under zio (the median of
the pairwise wall-time ratios, without / with: 1.00 is as fast, above is
faster) is printed with zio's counters from one more run, so that a
program zio makes slower shows at a glance. Where the spread of a case's
pairs is wider than 2% (half the interquartile range over the median), it
runs up to three times as many pairs, and the line says if the spread is
still wider.

Two of them run again with an empty library preloaded in place of zio:
the noise floor of the machine at that moment. Then one elided copy of the
input read in five orders (forward, backward,
strided, random, a random 1/64): speed and faults against the bound on
faults per copy (docs/design.md); and zio's cost per process start (an
exec of /bin/true) and per fork (nothing tracked, and with 8 elided copies
of 4 MiB live), in microseconds.

    regress.py [--pairs N] [--quick] [--only NAME[,NAME]] [--csv FILE]
               [--before LIB]

--quick: one pair per case and smaller inputs (a check that every case
runs and gives the same bytes; `make test` runs it). --before LIB: the
start-up and fork costs of another build of libzio.so too, measured in the
same alternation. Needs the release build (libzio.so next to this tree's
target/) and gcc.
"""
import argparse
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.environ.get("ZIO_LIB", os.path.join(ROOT, "target", "release", "libzio.so"))
# The system's interpreter: a version manager's shim would start a shell
# and several programs per run, and time those.
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def cases(d):
    """(name, shell command) pairs; `d` holds the inputs."""
    f = os.path.join(d, "in.bin")
    py = PY
    relay = os.path.join(d, "relay.py")
    with open(relay, "w") as r:
        r.write(RELAY)
    mp = os.path.join(d, "mp.py")
    with open(mp, "w") as m:
        m.write(MULTIPROCESSING)
    http = os.path.join(d, "web.py")
    with open(http, "w") as h:
        h.write(HTTP)
    read_all = "import sys,hashlib;b=open(sys.argv[1],'rb').read();{};print(hashlib.sha256(b).hexdigest())"
    stdin_all = "import sys,hashlib;b=sys.stdin.buffer.read();{};print(hashlib.sha256(b).hexdigest())"
    readinto = ("import sys,hashlib;h=hashlib.sha256();f=open(sys.argv[1],'rb',buffering=0);"
                "b=bytearray(1<<20)\nwhile True:\n n=f.readinto(b)\n if not n: break\n h.update(b[:n])\n"
                "print(h.hexdigest())")
    child = "import sys;b=sys.stdin.buffer.read();sys.stdout.buffer.write(b[::-1])"
    sub = ("import subprocess,sys,hashlib;d=open(sys.argv[1],'rb').read();"
           f"r=subprocess.run([{py!r},'-c',{child!r}],input=d,capture_output=True,check=True);"
           "print(hashlib.sha256(r.stdout).hexdigest())")
    return [
        ("python read", f"{py} -c \"{read_all.format('pass')}\" {f}"),
        ("python read backwards", f"{py} -c \"{read_all.format('b=b[::-1]')}\" {f}"),
        ("python stdin file", f"{py} -c \"{stdin_all.format('pass')}\" < {f}"),
        ("python stdin pipe backwards", f"cat {f} | {py} -c \"{stdin_all.format('b=b[::-1]')}\""),
        ("python readinto", f"{py} -c \"{readinto}\" {f}"),
        ("python socket relay", f"{py} {relay} {f}"),
        ("python http.server", f"{py} {http} {f}"),
        ("multiprocessing fork", f"{py} {mp} fork {f}"),
        ("multiprocessing forkserver", f"{py} {mp} forkserver {f}"),
        ("multiprocessing spawn", f"{py} {mp} spawn {f}"),
        ("python subprocess", f"{py} -c \"{sub}\" {f}"),
        ("dd bs=1M", f"dd if={f} bs=1M status=none | sha256sum"),
        ("cat", f"cat {f} {f} | sha256sum"),
        ("sort", f"sort {os.path.join(d, 'lines.txt')} | sha256sum"),
        ("tar", f"tar cf - -C {d} in.bin | sha256sum"),
        ("gzip", f"gzip -1 -c {f} | gzip -dc | sha256sum"),
        ("zstd", f"zstd -q -1 -c {f} | zstd -q -dc | sha256sum"),
    ]


RELAY = r"""
import socket, sys, threading, hashlib
data = open(sys.argv[1], 'rb').read()
a, b = socket.socketpair()
c, e = socket.socketpair()
def relay():
    while True:
        m = b.recv(1 << 20)
        if not m: break
        c.sendall(m)
    c.shutdown(socket.SHUT_WR)
def feed():
    for i in range(0, len(data), 4 << 20): a.sendall(data[i:i + (4 << 20)])
    a.shutdown(socket.SHUT_WR)
t1 = threading.Thread(target=relay); t2 = threading.Thread(target=feed)
t1.start(); t2.start()
h = hashlib.sha256()
while True:
    m = e.recv(1 << 20)
    if not m: break
    h.update(m)
t1.join(); t2.join()
print(h.hexdigest())
"""

MULTIPROCESSING = r"""
import sys, multiprocessing as mp, hashlib
def work(c): return hashlib.sha256(c).hexdigest()
if __name__ == '__main__':
    mp.set_start_method(sys.argv[1])
    data = open(sys.argv[2], 'rb').read()
    step = 4 << 20
    with mp.Pool(2) as p:
        print(hashlib.sha256(''.join(p.map(work, [data[i:i + step] for i in range(0, len(data), step)])).encode()).hexdigest())
"""

HTTP = r"""
import http.server, threading, urllib.request, sys, hashlib, os
os.chdir(os.path.dirname(sys.argv[1]))
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)
threading.Thread(target=s.serve_forever, daemon=True).start()
body = urllib.request.urlopen(f'http://127.0.0.1:{s.server_port}/' + os.path.basename(sys.argv[1])).read()
print(hashlib.sha256(body).hexdigest())
s.shutdown()
"""


def env_for(lib):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIO_") and k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def run(cmd, zio, logs=None, lib=None):
    """Wall seconds and the output's hash of one run, `zio` preloading `lib`
    (libzio.so unless given). With `logs`, zio's summary goes there (the
    untimed run that reads the counters)."""
    env = env_for((lib or LIB) if zio else None)
    if logs:
        env.update(ZIO_STATS="1", ZIO_LOG_FILE=os.path.join(logs, "zio.%p.log"))
    t = time.monotonic()
    p = subprocess.run(["sh", "-c", cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"regress: {cmd!r} failed ({'with' if zio else 'without'} zio): {p.stderr.decode()[-500:]}")
    return wall, hashlib.sha256(p.stdout).hexdigest()


def counters(logs):
    """Engine counters summed over the processes of one run."""
    total = {}
    for name in os.listdir(logs):
        with open(os.path.join(logs, name)) as f:
            for line in f:
                w = line.split()
                if len(w) == 3 and w[0].startswith("zio[") and w[2].isdigit():
                    total[w[1]] = total.get(w[1], 0) + int(w[2])
        os.remove(os.path.join(logs, name))
    return total


def paired(cmd, pairs, quick, name, lib=None):
    """Speeds (without / with) of `pairs` alternating pairs, more where the
    spread is wide, and the medians of both times. Exits if an output
    differs."""
    speeds, plain_t, zio_t = [], [], []
    limit = pairs if quick else 3 * pairs
    while len(speeds) < limit:
        i = len(speeds)
        got = {}
        for zio in ((False, True) if i % 2 == 0 else (True, False)):
            got[zio] = run(cmd, zio, lib=lib)
        if got[False][1] != got[True][1]:
            sys.exit(f"regress: {name}: output differs with zio")
        plain_t.append(got[False][0])
        zio_t.append(got[True][0])
        speeds.append(got[False][0] / got[True][0])
        if len(speeds) >= pairs and spread(speeds) <= 0.02:
            break
    return speeds, statistics.median(plain_t), statistics.median(zio_t)


def spread(v):
    """Half the interquartile range of `v` over its median (0.02: the middle
    half of the pairs within 2% either side; one pair disturbed by the
    machine's other work does not count)."""
    if len(v) < 4:
        return (max(v) - min(v)) / 2 / statistics.median(v)
    q = statistics.quantiles(v, n=4)
    return (q[2] - q[0]) / 2 / statistics.median(v)


def empty_library(d):
    """A shared library with nothing in it: preloaded in place of zio, it
    shows what the machine's noise and loading any library cost."""
    src, lib = os.path.join(d, "empty.c"), os.path.join(d, "libempty.so")
    with open(src, "w") as f:
        f.write("int zio_regress_empty;\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", lib, src], check=True)
    return lib


def compile_c(d, name):
    exe = os.path.join(d, name)
    src = os.path.join(ROOT, "integration", "c", name + ".c")
    # The flags of integration/src/lib.rs's compile_c, optimized for timing.
    subprocess.run(["cc", "-O2", "-g", "-fno-builtin", "-Wall", "-Werror", "-o", exe, src], check=True)
    return exe


def per_run_us(argv, lib, n):
    """Microseconds per process start of `argv` (posix_spawn and wait, `n`
    times), preloading `lib` (None: nothing)."""
    env = env_for(lib)
    t = time.perf_counter()
    for _ in range(n):
        os.waitpid(os.posix_spawn(argv[0], argv, env), 0)
    return (time.perf_counter() - t) / n * 1e6


def fork_us(exe, args, lib):
    out = subprocess.run([exe, *args], env=env_for(lib), stdout=subprocess.PIPE, check=True)
    return float(out.stdout)


def costs(d, quick, before):
    """(what, {build: median µs}, {build: added µs with its range}) for the
    start and the two forks, each build measured in turn, round after round."""
    fork = compile_c(d, "fork_cost")
    f4 = os.path.join(d, "in4.bin")
    with open(f4, "wb") as f:
        f.write(os.urandom(4 << 20))
    builds = [("without", None), ("with", LIB)] + ([("before", before)] if before else [])
    rounds = 2 if quick else 12
    n = 20 if quick else 200
    what = [
        ("start (exec /bin/true)", lambda lib: per_run_us(["/bin/true"], lib, n)),
        ("fork, nothing tracked", lambda lib: fork_us(fork, [str(5 * n)], lib)),
        ("fork, 8 x 4 MiB elided live", lambda lib: fork_us(fork, [str(n), f4, "8"], lib)),
    ]
    out = []
    for name, measure in what:
        got = {b: [] for b, _ in builds}
        for r in range(rounds):
            order = builds if r % 2 == 0 else builds[::-1]
            for b, lib in order:
                got[b].append(measure(lib))
        med = {b: statistics.median(v) for b, v in got.items()}
        added = {}
        for b in got:
            if b != "without":
                diffs = [x - y for x, y in zip(got[b], got["without"])]
                added[b] = (statistics.median(diffs), min(diffs), max(diffs))
        out.append((name, med, added))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--csv", default="")
    ap.add_argument("--before", default="")
    a = ap.parse_args()
    if not os.path.exists(LIB):
        sys.exit(f"regress: no {LIB}: run cargo build --release first")
    pairs = 1 if a.quick else a.pairs
    mib = 8 if a.quick else 64
    d = tempfile.mkdtemp(prefix="zio-regress-")
    logs = os.path.join(d, "logs")
    os.mkdir(logs)
    rows = []
    try:
        with open(os.path.join(d, "in.bin"), "wb") as f:
            f.write(os.urandom(mib << 20))
        with open(os.path.join(d, "lines.txt"), "w") as f:
            for i in range(mib * 20000):
                f.write(f"{(i * 7919) % 1000003:07d} line\n")
        only = set(filter(None, a.only.split(",")))
        orders = compile_c(d, "read_orders")
        pages = (mib << 20) // 4096
        bound = 2 * (pages // 64) + 1
        empty = empty_library(d)
        control = [(f"control: {n} (empty library)", c) for n, c in cases(d) if n in ("cat", "python read")]
        groups = [
            ("program", cases(d)),
            ("control", control),
            ("order", [(f"read one copy: {o}", f"{orders} {os.path.join(d, 'in.bin')} {o}")
                       for o in ("forward", "backward", "stride", "random", "sparse")]),
        ]
        print(f"{'case':<30} {'speed':>6} {'range':>11} {'pairs':>5} {'w/o s':>7} {'with s':>7}  zio counters (one more run)")
        for kind, group in groups:
            if kind == "control":
                print("-- the same with an empty library preloaded in place of zio: the noise floor")
            if kind == "order":
                print(f"-- one elided copy of {mib} MiB read in five orders; faults bound {bound} "
                      f"(2 x {pages} pages / 64 + 1, docs/design.md)")
            for name, cmd in group:
                if only and name not in only:
                    continue
                if name == "zstd" and not shutil.which("zstd"):
                    continue
                lib = empty if kind == "control" else None
                speeds, t0, t1 = paired(cmd, pairs, a.quick, name, lib)
                c = {}
                if kind != "control":
                    run(cmd, True, logs)
                    c = counters(logs)
                s = statistics.median(speeds)
                wide = " (spread > 2%)" if len(speeds) > 1 and spread(speeds) > 0.02 else ""
                info = (f"elided {c.get('elided_copies', 0)}, faults {c.get('faults_missing', 0)}, "
                        f"backed up {c.get('bytes_backed_up', 0) >> 20} MiB{wide}")
                if kind == "control":
                    info = f"no zio{wide}"
                print(f"{name:<30} {s:>5.2f}x {min(speeds):>5.2f}-{max(speeds):.2f} {len(speeds):>5} "
                      f"{t0:>7.3f} {t1:>7.3f}  {info}")
                rows.append([kind, name, f"{s:.4f}", f"{min(speeds):.4f}", f"{max(speeds):.4f}", len(speeds),
                             f"{t0:.4f}", f"{t1:.4f}", "s", c.get("elided_copies", 0),
                             c.get("faults_missing", 0), c.get("bytes_backed_up", 0), bound if kind == "order" else "",
                             f"{spread(speeds):.4f}"])
        if not only:
            print("-- zio's cost per process start and per fork (microseconds; added: median of paired differences)")
            for name, med, added in costs(d, a.quick, a.before):
                parts = [f"without {med['without']:.0f}"]
                for b in added:
                    m, lo, hi = added[b]
                    parts.append(f"{b} {med[b]:.0f} (+{m:.0f}, {lo:.0f} to {hi:.0f})")
                print(f"{name:<30} " + ", ".join(parts))
                for b in added:
                    rows.append(["cost", f"{name} [{b}]", "", f"{added[b][1]:.1f}", f"{added[b][2]:.1f}", "",
                                 f"{med['without']:.1f}", f"{med[b]:.1f}", "us", "", "", "", f"{added[b][0]:.1f}", ""])
        if a.csv:
            with open(a.csv, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["kind", "case", "speed", "min", "max", "pairs", "without", "with", "unit",
                            "elided_copies", "faults_missing", "bytes_backed_up", "bound_or_added", "spread"])
                w.writerows(rows)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
