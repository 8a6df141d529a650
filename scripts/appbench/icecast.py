"""Icecast (Debian's icecast2) as user icecast2: one source pushing a
stream as fast as Icecast takes it, several listeners (curl) reading it.
The stream is the little-endian 64-bit counter 0, 1, 2, ..., so each
listener's bytes must be one contiguous run of it, wherever it joined.
Its figure is the source's MB/s; the check, each listener's bytes and
every listener still connected at the end."""
import array
import base64
import os
import socket
import subprocess
import time

from . import common, web
from .common import Failure

USER = "icecast2"
CHUNK = 1 << 20


def stream(start_word, words):
    return array.array("Q", range(start_word, start_word + words)).tobytes()


def contiguous(data):
    """True if `data` is one run of the counter stream (any start)."""
    if len(data) < 16:
        return len(data) > 0
    for shift in range(8):
        word = int.from_bytes(data[shift:shift + 8], "little")
        start = word * 8 - shift
        if start < 0:
            continue
        first = start // 8
        want = stream(first, (start + len(data)) // 8 - first + 2)
        off = start - first * 8
        if want[off:off + len(data)] == data:
            return True
    return False


class Workload:
    expect_elided = 0

    def __init__(self, listeners, quick):
        self.listeners = listeners
        self.name = f"source + {listeners} listeners"
        self.seconds = 1.0 if quick else 3.0

    def run(self, zio, tmp, perf=None):
        logs = common.own_dir(os.path.join(tmp, "logs"), USER)
        port = common.free_port()
        conf = web.fill("icecast.xml", os.path.join(tmp, "icecast.xml"), DIR=logs, PORT=port)
        os.chmod(conf, 0o644)
        proc = common.start(["icecast2", "-c", conf], USER, zio, logs, "icecast2")
        common.wait_port(port, proc, "icecast2")
        src = socket.create_connection(("127.0.0.1", port), timeout=30)
        auth = base64.b64encode(b"source:zio-source").decode()
        src.sendall((f"SOURCE /zio HTTP/1.0\r\nAuthorization: Basic {auth}\r\n"
                     "Content-Type: application/octet-stream\r\nice-name: zio\r\n\r\n").encode())
        head = src.recv(4096)
        if b"200" not in head.split(b"\r\n", 1)[0]:
            raise Failure(f"icecast refused the source: {head[:200]!r}")
        sent, word = 0, 0
        # Some stream before the listeners join, so each starts mid-stream.
        for _ in range(2):
            src.sendall(stream(word, CHUNK // 8))
            word += CHUNK // 8
            sent += CHUNK
        outs = [os.path.join(tmp, f"listener-{i}.bin") for i in range(self.listeners)]
        curls = [subprocess.Popen(["curl", "-s", "-N", "-o", o, f"http://127.0.0.1:{port}/zio"],
                                  env=common.zio_env("", False)) for o in outs]
        time.sleep(0.3)
        prof = common.profile(common.children(proc.pid), perf) if perf else None
        cpu0 = common.tree_cpu(proc.pid)
        t = time.monotonic()
        end = t + self.seconds
        while time.monotonic() < end:
            src.sendall(stream(word, CHUNK // 8))
            word += CHUNK // 8
            sent += CHUNK
        secs = time.monotonic() - t
        cpu = common.tree_cpu(proc.pid) - cpu0
        share = common.end_profile(prof, perf) if perf else None
        alive = sum(1 for c in curls if c.poll() is None)
        src.close()
        for c in curls:
            try:
                c.wait(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
        common.stop(proc)
        ok = True
        for o in outs:
            with open(o, "rb") as f:
                ok = ok and contiguous(f.read())
        mb = (sent - 2 * CHUNK) / 1e6
        # A "request" is a megabyte of stream: ops/s and MB/s are the same.
        return {
            "ops": mb / secs, "mbs": mb / secs, "requests": max(1, int(mb)),
            "verified": ok and alive == self.listeners, "counters": common.summaries(logs),
            "share": share, "cpu": cpu, "seconds": secs,
        }


def workloads(quick):
    return [Workload(4, quick)] if quick else [Workload(1, False), Workload(4, False)]
