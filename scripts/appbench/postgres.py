"""PostgreSQL (Debian's 15) as user postgres: large bytea values (1 to 16
MiB) inserted and read back over the binary extended protocol, each one
compared byte for byte and with md5() on the server. The stand-in for a
database server copying large documents between its network and storage
buffers. The column is stored uncompressed (STORAGE EXTERNAL), so the
server's time goes to moving bytes rather than to pglz."""
import glob
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time

from . import common
from .common import Failure

USER = "postgres"
_TEMPLATE = {}


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise Failure("PostgreSQL is not installed (scripts/deps.sh installs it)")
    return os.path.dirname(found[-1])


def template():
    """A data directory made by initdb once per run of the suite."""
    if "dir" not in _TEMPLATE:
        import tempfile
        base = tempfile.mkdtemp(prefix="zio-apps-pg-")
        os.chmod(base, 0o755)
        data = os.path.join(base, "data")
        common.own_dir(data, USER, 0o700)
        out = subprocess.run(
            common.command([os.path.join(bindir(), "initdb"), "-D", data, "-A", "trust",
                            "-U", "postgres", "--no-sync"], USER, False),
            capture_output=True, text=True, env=common.zio_env("", False))
        if out.returncode != 0:
            raise Failure(f"initdb: {out.stderr[-400:]}")
        _TEMPLATE["dir"] = base
    return os.path.join(_TEMPLATE["dir"], "data")


def cleanup():
    if "dir" in _TEMPLATE:
        shutil.rmtree(_TEMPLATE.pop("dir"), ignore_errors=True)


class Conn:
    """A minimal client of the v3 protocol (trust authentication)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.f = self.sock.makefile("rb")
        body = struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        self.until_ready()

    def msg(self):
        head = self.f.read(5)
        if len(head) < 5:
            raise Failure("PostgreSQL closed the connection")
        kind, n = head[:1], struct.unpack("!I", head[1:])[0]
        return kind, self.f.read(n - 4)

    def until_ready(self):
        rows = []
        while True:
            kind, body = self.msg()
            if kind == b"E":
                raise Failure("PostgreSQL: " + body.replace(b"\0", b" ").decode(errors="replace"))
            if kind == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                raise Failure("PostgreSQL asked for a password")
            if kind == b"D":
                ncol = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(ncol):
                    n = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    row.append(None if n < 0 else body[pos:pos + n])
                    pos += max(n, 0)
                rows.append(row)
            if kind == b"Z":
                return rows

    def simple(self, sql):
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
        return self.until_ready()

    def query(self, sql, params):
        """`sql` with binary parameters and binary results."""
        def m(kind, body):
            return kind + struct.pack("!I", len(body) + 4) + body
        parse = b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)
        bind = [b"\0\0", struct.pack("!HH", 1, 1), struct.pack("!H", len(params))]
        for p in params:
            bind += [struct.pack("!I", len(p)), p]
        bind.append(struct.pack("!HH", 1, 1))
        self.sock.sendall(b"".join([
            m(b"P", parse), m(b"B", b"".join(bind)), m(b"E", b"\0" + struct.pack("!I", 0)),
            m(b"S", b""),
        ]))
        return self.until_ready()

    def close(self):
        self.sock.sendall(b"X\0\0\0\4")
        self.sock.close()


def ready(port, timeout=30.0):
    """A connection, once the server accepts them (it listens before its
    start-up is done, and refuses clients until then)."""
    end = time.monotonic() + timeout
    while True:
        try:
            return Conn(port)
        except Failure as e:
            if "57P03" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(0.1)


class Workload:
    def __init__(self, size, conns, quick):
        self.size, self.conns = size, conns
        self.name = f"bytea insert+select {size >> 20}M c{conns}"
        self.seconds = 1.0 if quick else 3.0
        # Each value comes in through a socket read and goes out through a
        # write; the copies between them are the server's (see results).
        self.expect_elided = 0

    def run(self, zio, tmp, perf=None):
        data = os.path.join(tmp, "data")
        shutil.copytree(template(), data, symlinks=True)
        for root, dirs, files in os.walk(data):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *common.user_ids(USER))
        common.own_dir(data, USER, 0o700)
        logs = common.own_dir(os.path.join(tmp, "logs"), USER)
        sock = common.own_dir(os.path.join(tmp, "sock"), USER)
        port = common.free_port()
        argv = [os.path.join(bindir(), "postgres"), "-D", data, "-p", str(port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}",
                "-c", "shared_buffers=256MB", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_wal_size=8GB", "-c", "logging_collector=off"]
        with open(os.path.join(tmp, "postgres.log"), "w") as err:
            proc = common.start(argv, USER, zio, logs, "postgres", stderr=err)
        try:
            common.wait_port(port, proc, "postgres")
        except Failure as e:
            with open(os.path.join(tmp, "postgres.log")) as f:
                raise Failure(f"{e}: {f.read()[-300:]}") from None
        values = [common.pattern(self.size + 4099 * i, 300 + i) for i in range(3)]
        counts, bad = [0] * self.conns, []
        setup = ready(port)
        setup.simple("CREATE TABLE t (id int PRIMARY KEY, b bytea);"
                     "ALTER TABLE t ALTER COLUMN b SET STORAGE EXTERNAL;")
        setup.close()
        prof = common.profile(common.children(proc.pid), perf) if perf else None
        cpu0 = common.tree_cpu(proc.pid)

        def client(c):
            try:
                conn = Conn(port)
                end, i = time.monotonic() + self.seconds, 0
                while time.monotonic() < end or i == 0:
                    key = struct.pack("!i", c * 1000000 + i)
                    v = values[(i + c) % len(values)]
                    conn.query("INSERT INTO t VALUES ($1, $2)", [key, v])
                    got = conn.query("SELECT b FROM t WHERE id = $1", [key])
                    if got != [[v]]:
                        bad.append(f"value {c}:{i} read back wrong")
                    if i % 4 == 0:
                        md5 = conn.query("SELECT md5(b) FROM t WHERE id = $1", [key])
                        if md5 != [[hashlib.md5(v).hexdigest().encode()]]:
                            bad.append(f"md5 of {c}:{i} differs")
                    conn.query("DELETE FROM t WHERE id = $1", [key])
                    counts[c] += 2
                    i += 1
                conn.close()
            except Exception as e:  # noqa: BLE001 - reported as a failed check
                bad.append(repr(e))

        try:
            secs = common.run_clients(self.conns, client)
            time.sleep(0.3)  # the backends exit and are reaped, their time counted
            cpu = common.tree_cpu(proc.pid) - cpu0
            share = common.end_profile(prof, perf) if perf else None
        finally:
            common.stop(proc, __import__("signal").SIGINT)
        n = sum(counts)
        if bad:
            print(f"postgres: {bad[:3]}", flush=True)
        return common.result(n, self.size, secs, not bad, logs, share, cpu)


def workloads(quick):
    if quick:
        return [Workload(4 << 20, 1, True)]
    return [Workload(s, c, False) for s in (1 << 20, 4 << 20, 16 << 20) for c in (1, 4)]
