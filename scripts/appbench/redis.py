"""Debian's redis-server (linked with jemalloc) as user redis: SET, GET and
a 50/50 mix from redis-benchmark, with and without the append-only file,
pipelined or not, 1 or 4 connections; each run checked by a client that
writes values and verifies every byte read back, and the persistence
paths (BGSAVE during writes, DEBUG RELOAD, an AOF loaded again) verified
on their own."""
import os
import re
import socket
import subprocess
import sys
import threading
import time

from . import common
from .common import Failure

USER = "redis"


class Resp:
    """A minimal RESP client."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += [b"$%d\r\n" % len(a), a, b"\r\n"]
        self.sock.sendall(b"".join(out))
        return self.reply()

    def reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind in (b"+", b":"):
            return rest
        raise Failure(f"redis answered {line[:200]!r}")

    def close(self):
        self.sock.close()


class Server:
    def __init__(self, tmp, zio, aof, extra=()):
        self.dir = common.own_dir(os.path.join(tmp, "redis"), USER)
        self.logs = common.own_dir(os.path.join(tmp, "logs"), USER)
        self.port = common.free_port()
        argv = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--daemonize", "no", "--protected-mode", "no",
            "--appendonly", "yes" if aof else "no", "--appendfsync", "no",
            "--enable-debug-command", "local", "--dir", self.dir, *extra,
        ]
        self.proc = common.start(argv, USER, zio, self.logs, "redis-server")
        common.wait_port(self.port, self.proc, "redis-server")

    def shutdown(self):
        c = Resp(self.port)
        try:
            c.sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        finally:
            c.close()
        self.proc.wait(timeout=30)
        return common.summaries(self.logs)


def verify(port, size, keys=6, seed=0):
    """Writes `keys` values of `size` bytes and reads each back twice."""
    c = Resp(port)
    try:
        vals = [common.pattern(size + 7 * i, seed + i) for i in range(keys)]
        for i, v in enumerate(vals):
            if c.call("SET", f"verify:{seed}:{i}", v) != b"OK":
                return False
        return all(
            c.call("GET", f"verify:{seed}:{i}") == v for _ in range(2) for i, v in enumerate(vals)
        )
    finally:
        c.close()


def bench(port, op, size, n, conns, pipeline):
    argv = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-d", str(size),
        "-n", str(n), "-c", str(conns), "-P", str(pipeline), "-q", "--precision", "1",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, env=common.zio_env("", False))
    if out.returncode != 0 and "All clients disconnected" in out.stdout:
        # redis-benchmark now and then gives up on a deep pipeline of large
        # values with nothing in the server's log, without zio as with it:
        # run it once more, and say so. A server that really drops its
        # clients does it again.
        print(f"apps: redis-benchmark {op} -d {size} -P {pipeline} -c {conns} aborted "
              "(all clients disconnected); running it again", file=sys.stderr, flush=True)
        out = subprocess.run(argv, capture_output=True, text=True, env=common.zio_env("", False))
    # A run too short for its clock says "inf".
    m = re.search(r"%s: ([\d.]+|inf) requests per second" % op.upper(), out.stdout)
    if out.returncode != 0 or not m:
        raise Failure(f"redis-benchmark {op}: {out.stdout[-300:]}{out.stderr[-300:]}")
    return float(m.group(1))


class Workload:
    def __init__(self, op, size, aof, pipeline, conns, quick):
        self.op, self.size, self.aof = op, size, aof
        # Each GET's reply copy (and, with the AOF, each SET's append to
        # the AOF buffer) is large enough to elide; a SET alone reads the
        # value straight into the object it stores. In the mix, the
        # allocator hands the memory of freed elided copies to the SETs'
        # input, and the policy stops the sites that churn so.
        if op == "set" and not aof:
            self.expect_elided = 0
        else:
            self.expect_elided = 0.25 if op == "mix" else 0.5
        self.pipeline, self.conns = pipeline, conns
        self.name = "%s %s aof=%s P%d c%d" % (
            op, human(size), "yes" if aof else "no", pipeline, conns)
        budget = 3e8 if quick else 1.5e9
        self.n = int(max(64, min(40000, budget / size)))

    def calibrate(self, tmp, seconds):
        """Sizes every later run to last about `seconds`: a run of the
        budgeted size without zio, its rate scaled. A fixed byte budget
        makes the runs of large values too short for the ratio of two
        runs to mean much on a shared machine."""
        r = self.run(False, tmp)
        self.n = int(max(64, min(400000, r["ops"] * seconds)))

    def run(self, zio, tmp, perf=None):
        s = Server(tmp, zio, self.aof)
        try:
            # GETs need the key redis-benchmark reads to hold a value.
            bench(s.port, "set", self.size, 4, 1, 1)
            prof = common.profile(common.children(s.proc.pid), perf) if perf else None
            cpu0 = common.tree_cpu(s.proc.pid)
            t = time.monotonic()
            if self.op == "mix":
                rates = {}
                threads = [
                    threading.Thread(target=lambda o=o: rates.__setitem__(
                        o, bench(s.port, o, self.size, self.n // 2, self.conns, self.pipeline)))
                    for o in ("set", "get")
                ]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                if len(rates) != 2:
                    raise Failure("a redis-benchmark of the mix failed")
                rate = sum(rates.values())
            else:
                rate = bench(s.port, self.op, self.size, self.n, self.conns, self.pipeline)
            cpu = common.tree_cpu(s.proc.pid) - cpu0
            share = common.end_profile(prof, perf) if perf else None
            ok = verify(s.port, self.size)
        finally:
            counters = s.shutdown()
        return {
            "ops": rate, "mbs": rate * self.size / 1e6, "requests": self.n,
            "verified": ok, "counters": counters, "share": share, "cpu": cpu,
            "seconds": time.monotonic() - t,
        }


class Persistence:
    """BGSAVE during writes, DEBUG RELOAD, and the AOF read back by a new
    server: every value intact (and the same under zio as without)."""

    name = "persist: BGSAVE + DEBUG RELOAD + AOF reload"
    expect_elided = 0.5

    def __init__(self, quick):
        self.keys = 12 if quick else 40

    def run(self, zio, tmp, perf=None):
        t = time.monotonic()
        vals = {f"p:{i}": common.pattern((256 << 10) + 4099 * i, 500 + i) for i in range(self.keys)}
        s = Server(tmp, zio, True)
        c = Resp(s.port)
        ok = True
        try:
            items = list(vals.items())
            half = len(items) // 2
            for k, v in items[:half]:
                ok &= c.call("SET", k, v) == b"OK"
            ok &= c.call("BGSAVE") is not None
            for k, v in items[half:]:
                ok &= c.call("SET", k, v) == b"OK"
            deadline = time.monotonic() + 60
            while b"rdb_bgsave_in_progress:1" in (c.call("INFO", "persistence") or b""):
                if time.monotonic() > deadline:
                    raise Failure("BGSAVE did not finish within 60 s")
                time.sleep(0.05)
            ok &= c.call("DEBUG", "RELOAD") == b"OK"
            ok &= all(c.call("GET", k) == v for k, v in items)
        finally:
            c.close()
            counters = s.shutdown()
        # The AOF (and the RDB written by DEBUG RELOAD) loaded by a new
        # server, this time without zio, holds every value.
        s = Server(tmp, False, True)
        c = Resp(s.port)
        try:
            ok &= all(c.call("GET", k) == v for k, v in vals.items())
        finally:
            c.close()
            s.shutdown()
        n = 2 * len(vals)
        secs = time.monotonic() - t
        return {
            "ops": n / secs, "mbs": sum(map(len, vals.values())) * 2 / secs / 1e6,
            "requests": n, "verified": ok, "counters": counters, "share": None, "cpu": None,
            "seconds": secs,
        }


def human(n):
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def workloads(quick):
    if quick:
        return [
            Workload("get", 512 << 10, False, 1, 1, True),
            Workload("mix", 512 << 10, True, 1, 4, True),
            Persistence(True),
        ]
    out = []
    for size in (16 << 10, 512 << 10, 4 << 20):
        for op in ("set", "get", "mix"):
            for aof in (False, True):
                for pipeline, conns in ((1, 1), (1, 4), (16, 1), (16, 4)):
                    if aof and op == "get":
                        continue  # GETs write nothing to the AOF
                    out.append(Workload(op, size, aof, pipeline, conns, False))
    out.append(Persistence(False))
    return out
