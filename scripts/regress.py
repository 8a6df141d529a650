#!/usr/bin/env python3
"""The regression suite of ordinary programs (`make regress`): each case
runs without and with zio in alternation (A B B A A B ...), its output is
compared byte for byte every time, and the median of the pairwise wall-time
ratios (with zio / without) is printed with zio's counters, so that a
program zio makes slower shows at a glance.

    regress.py [--pairs N] [--quick] [--only NAME[,NAME]] [--csv FILE]

--quick: one pair per case and smaller inputs (a check that every case
runs and gives the same bytes; `make test` runs it). A ratio is printed
with the spread of its pairs; where the spread is wider than 2%, run more
pairs. Needs the release build (libzio.so next to this tree's target/).
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


def cases(d, mib):
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


def run(cmd, zio, logs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIO_") and k != "LD_PRELOAD"}
    if zio:
        env.update(LD_PRELOAD=LIB, ZIO_STATS="1", ZIO_LOG_FILE=os.path.join(logs, "zio.%p.log"))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--csv", default="")
    a = ap.parse_args()
    if not os.path.exists(LIB):
        sys.exit(f"regress: no {LIB}: run cargo build --release first")
    pairs = 1 if a.quick else a.pairs
    mib = 8 if a.quick else 64
    d = tempfile.mkdtemp(prefix="zio-regress-")
    logs = os.path.join(d, "logs")
    os.mkdir(logs)
    try:
        with open(os.path.join(d, "in.bin"), "wb") as f:
            f.write(os.urandom(mib << 20))
        with open(os.path.join(d, "lines.txt"), "w") as f:
            for i in range(mib * 20000):
                f.write(f"{(i * 7919) % 1000003:07d} line\n")
        only = set(filter(None, a.only.split(",")))
        rows = []
        print(f"{'case':<28} {'ratio':>6} {'spread':>13} {'w/o s':>7} {'with s':>7}  zio counters (last run)")
        for name, cmd in cases(d, mib):
            if only and name not in only:
                continue
            if name == "zstd" and not shutil.which("zstd"):
                continue
            ratios, plain_t, zio_t = [], [], []
            for i in range(pairs):
                order = (False, True) if i % 2 == 0 else (True, False)
                got = {}
                for zio in order:
                    got[zio] = run(cmd, zio, logs)
                if got[False][1] != got[True][1]:
                    sys.exit(f"regress: {name}: output differs with zio")
                plain_t.append(got[False][0])
                zio_t.append(got[True][0])
                ratios.append(got[True][0] / got[False][0])
            c = counters(logs)
            r = statistics.median(ratios)
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            info = f"elided {c.get('elided_copies', 0)}, faults {c.get('faults_missing', 0)}, backed up {c.get('bytes_backed_up', 0) >> 20} MiB"
            print(f"{name:<28} {r:>5.2f}x {spread:>13} {statistics.median(plain_t):>7.3f} {statistics.median(zio_t):>7.3f}  {info}")
            rows.append([name, f"{r:.4f}", f"{min(ratios):.4f}", f"{max(ratios):.4f}", pairs,
                         f"{statistics.median(plain_t):.4f}", f"{statistics.median(zio_t):.4f}",
                         c.get("elided_copies", 0), c.get("faults_missing", 0), c.get("bytes_backed_up", 0)])
        if a.csv:
            with open(a.csv, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["case", "ratio", "min", "max", "pairs", "without_s", "with_s",
                            "elided_copies", "faults_missing", "bytes_backed_up"])
                w.writerows(rows)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
