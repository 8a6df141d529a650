"""nginx and HAProxy: nginx serving files with sendfile off and as a
buffering reverse proxy, HAProxy in HTTP and TCP mode, both in front of
an origin nginx that never runs under zio. Load from wrk; every body
fetched again after the load and compared with the file it came from."""
import hashlib
import http.client
import os
import re
import signal
import subprocess
import time

from . import common
from .common import Failure

CONF = os.path.join(common.ROOT, "integration", "apps")
SIZES_FULL = (64 << 10, 1 << 20, 8 << 20)


def fill(template, out, **subst):
    with open(os.path.join(CONF, template)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", str(v))
    if "@" in re.sub(r"#.*", "", text):
        raise Failure(f"{template}: a placeholder was left")
    with open(out, "w") as f:
        f.write(text)
    return out


def body_name(size):
    return f"body-{size}.bin"


def make_bodies(www, sizes):
    os.makedirs(www, exist_ok=True)
    sums = {}
    for i, size in enumerate(sizes):
        data = common.pattern(size, 900 + i)
        with open(os.path.join(www, body_name(size)), "wb") as f:
            f.write(data)
        sums[size] = hashlib.sha256(data).digest()
    os.chmod(www, 0o755)
    return sums


def fetch_ok(port, size, want, times=3):
    """Fetches the body `times` over one connection; all must match."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(times):
            c.request("GET", "/" + body_name(size))
            r = c.getresponse()
            data = r.read()
            if r.status != 200 or hashlib.sha256(data).digest() != want:
                return False
        return True
    finally:
        c.close()


def wrk(port, size, seconds, conns=4):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s",
         f"http://127.0.0.1:{port}/{body_name(size)}"],
        capture_output=True, text=True, env=common.zio_env("", False),
    )
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if out.returncode != 0 or not m or "Non-2xx" in out.stdout:
        raise Failure(f"wrk: {out.stdout[-400:]}{out.stderr[-200:]}")
    m2 = re.search(r"(\d+) requests in", out.stdout)
    return float(m.group(1)), int(m2.group(1)) if m2 else 0


class Site:
    """The origin and the bodies in `tmp`; the server under test is the
    caller's."""

    def __init__(self, tmp, sizes):
        self.dir = tmp
        self.logs = common.own_dir(os.path.join(tmp, "logs"), "www-data", 0o1777)
        self.sums = make_bodies(os.path.join(tmp, "www"), sizes)
        self.origin_port = common.free_port()
        conf = fill("origin.conf", os.path.join(tmp, "origin.conf"), DIR=tmp,
                    ORIGIN_PORT=self.origin_port)
        self.origin = common.start(["nginx", "-c", conf], None, False, self.logs, "origin")
        common.wait_port(self.origin_port, self.origin, "origin nginx")

    def close(self):
        common.stop(self.origin, signal.SIGQUIT)


class Workload:
    """One server kind (`kind`: static, proxy, http, tcp) at one size."""

    def __init__(self, program, kind, size, quick):
        self.program, self.kind, self.size = program, kind, size
        self.name = f"{kind} {size >> 10}K" if size < (1 << 20) else f"{kind} {size >> 20}M"
        self.seconds = 1 if quick else 3
        # Neither copies the bodies in user space (see docs/results.md):
        # the check is that zio costs nothing here, not that it elides.
        self.expect_elided = 0

    def start(self, site, zio):
        tmp = site.dir
        if self.program == "nginx":
            ports = {"STATIC_PORT": common.free_port(), "PROXY_PORT": common.free_port()}
            conf = fill("nginx.conf", os.path.join(tmp, "nginx.conf"), DIR=tmp,
                        ORIGIN_PORT=site.origin_port, **ports)
            proc = common.start(["nginx", "-c", conf], None, zio, site.logs, "nginx")
            port = ports["STATIC_PORT" if self.kind == "static" else "PROXY_PORT"]
            stop_sig = signal.SIGQUIT
        else:
            ports = {"HTTP_PORT": common.free_port(), "TCP_PORT": common.free_port()}
            conf = fill("haproxy.cfg", os.path.join(tmp, "haproxy.cfg"), DIR=tmp,
                        ORIGIN_PORT=site.origin_port, **ports)
            proc = common.start(["haproxy", "-db", "-f", conf], "haproxy", zio, site.logs,
                                "haproxy")
            port = ports["HTTP_PORT" if self.kind == "http" else "TCP_PORT"]
            stop_sig = signal.SIGUSR1
        common.wait_port(port, proc, self.program)
        return proc, port, stop_sig

    def run(self, zio, tmp, perf=None):
        site = Site(tmp, [self.size])
        try:
            proc, port, stop_sig = self.start(site, zio)
            try:
                ok = fetch_ok(port, self.size, site.sums[self.size], 1)
                prof = common.profile(common.children(proc.pid), perf) if perf else None
                cpu0 = common.tree_cpu(proc.pid)
                t = time.monotonic()
                rate, n = wrk(port, self.size, self.seconds)
                secs = time.monotonic() - t
                cpu = common.tree_cpu(proc.pid) - cpu0
                share = common.end_profile(prof, perf) if perf else None
                ok = ok and fetch_ok(port, self.size, site.sums[self.size])
            finally:
                common.stop(proc, stop_sig)
        finally:
            site.close()
        return {
            "ops": rate, "mbs": rate * self.size / 1e6, "requests": max(n, 1),
            "verified": ok, "counters": common.summaries(site.logs), "share": share, "cpu": cpu,
            "seconds": secs,
        }


class App:
    def __init__(self, program, user, kinds):
        self.program, self.USER, self.kinds = program, user, kinds

    def workloads(self, quick):
        sizes = (1 << 20,) if quick else SIZES_FULL
        return [Workload(self.program, k, s, quick) for k in self.kinds for s in sizes]


nginx = App("nginx", "www-data", ("static", "proxy"))
haproxy = App("haproxy", "haproxy", ("http", "tcp"))
