"""memcached with large items (-I 8m) as user memcache: clients that set
and get items of 64 KiB to 4 MiB for a fixed time, every value read back
compared with what was stored. memcached reads a value straight into its
item and sends it from there: there is no large copy for zio to remove,
so this is the check that zio costs nothing where it cannot help."""
import os
import socket
import time

from . import common
from .common import Failure

USER = "memcache"


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.sock.makefile("rb")

    def set(self, key, value):
        self.sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        line = self.f.readline()
        if line != b"STORED\r\n":
            raise Failure(f"memcached set: {line[:200]!r}")

    def get(self, key):
        self.sock.sendall(b"get %s\r\n" % key)
        line = self.f.readline()
        if line == b"END\r\n":
            return None
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE":
            raise Failure(f"memcached get: {line[:200]!r}")
        data = self.f.read(int(parts[3]) + 2)[:-2]
        if self.f.readline() != b"END\r\n":
            raise Failure("memcached get: no END")
        return data

    def close(self):
        self.sock.close()


class Workload:
    expect_elided = 0

    def __init__(self, size, conns, quick):
        self.size, self.conns = size, conns
        self.name = f"set+get {size >> 10}K c{conns}"
        self.seconds = 0.7 if quick else 3.0

    def run(self, zio, tmp, perf=None):
        logs = common.own_dir(os.path.join(tmp, "logs"), USER)
        port = common.free_port()
        argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-I", "8m",
                "-m", "2048", "-t", "2", "-c", "64"]
        proc = common.start(argv, USER, zio, logs, "memcached")
        common.wait_port(port, proc, "memcached")
        values = [common.pattern(self.size + 13 * i, 70 + i) for i in range(4)]
        counts, bad = [0] * self.conns, []
        prof = common.profile(common.children(proc.pid), perf) if perf else None
        cpu0 = common.tree_cpu(proc.pid)

        def client(c):
            cl = Client(port)
            try:
                end = time.monotonic() + self.seconds
                i = 0
                while time.monotonic() < end:
                    key = b"k%d:%d" % (c, i % len(values))
                    v = values[(i + c) % len(values)]
                    cl.set(key, v)
                    if cl.get(key) != v:
                        bad.append(key)
                    counts[c] += 2
                    i += 1
            except Exception as e:  # noqa: BLE001 - reported as a failed check
                bad.append(repr(e))
            finally:
                cl.close()

        try:
            secs = common.run_clients(self.conns, client)
            cpu = common.tree_cpu(proc.pid) - cpu0
            share = common.end_profile(prof, perf) if perf else None
        finally:
            common.stop(proc)
        n = sum(counts)
        return common.result(n, self.size, secs, not bad, logs, share, cpu)


def workloads(quick):
    if quick:
        return [Workload(1 << 20, 2, True)]
    return [Workload(s, c, False) for s in (64 << 10, 1 << 20, 4 << 20) for c in (1, 4)]
