"""Which large copies a server makes that a preload library can see:
the workload runs with zio loaded but told not to elide (ZIO_ENABLE=0),
so every memcpy/memmove/mempcpy the program calls through the PLT lands
in libzio.so's exported copy functions, where a bpftrace uprobe counts
the ones of at least the threshold by call site. Copies glibc makes
inside itself (stdio, realloc) and copies the compiler inlined never
reach those functions and are not counted; the ceiling's profile counts
them."""
import os
import re
import shutil
import signal
import subprocess
import time

from . import common

SYMBOLS = ("memcpy", "memmove", "mempcpy", "__memcpy_chk", "__memmove_chk", "__mempcpy_chk")
THRESHOLD = 64 << 10

SCRIPT = """
%s
/ arg2 >= %d /
{
    @calls[comm, usym(*(uint64 *)reg("sp"))] = count();
    @bytes[comm, usym(*(uint64 *)reg("sp"))] = sum(arg2);
}
"""


def probe_script():
    probes = ",\n".join(f"uprobe:{common.LIB}:{s}" for s in SYMBOLS)
    return SCRIPT % (probes, THRESHOLD)


class Trace:
    """The observer of a coverage run: bpftrace counting large copies in
    every process during the load (the server still runs when it stops,
    so call sites resolve to symbols)."""

    def __init__(self):
        self.sites = None

    def start(self, pids, out):
        if not shutil.which("bpftrace"):
            return None
        f = open(out, "w")
        p = subprocess.Popen(["bpftrace", "-e", probe_script()], stdout=f,
                             stderr=subprocess.STDOUT, text=True)
        end = time.monotonic() + 30
        while time.monotonic() < end and p.poll() is None:
            with open(out) as g:
                if "Attaching" in g.read():
                    time.sleep(0.5)
                    return p, f
            time.sleep(0.1)
        p.kill()
        p.wait()
        f.close()
        return None

    def stop(self, started, out):
        if started is None:
            return None
        p, f = started
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        f.close()
        with open(out) as g:
            text = g.read()
        sites = {}
        for kind, comm, site, value in re.findall(r"@(calls|bytes)\[(.*?), (.*?)\]: (\d+)", text):
            c, b = sites.get((comm, site), (0, 0))
            sites[(comm, site)] = (c + int(value), b) if kind == "calls" else (c, b + int(value))
        self.sites = sites
        return None


def measure(workload, tmp):
    """Runs `workload` once under zio with elision off and the trace on:
    {(comm, call site): (calls, bytes)} and the run's requests, or None
    if bpftrace could not attach."""
    trace = Trace()
    saved_obs, saved_env = common.OBSERVER, dict(common.EXTRA_ENV)
    common.OBSERVER, common.EXTRA_ENV["ZIO_ENABLE"] = trace, "0"
    try:
        r = workload.run(True, tmp, perf=os.path.join(tmp, "trace.txt"))
    finally:
        common.OBSERVER = saved_obs
        common.EXTRA_ENV.clear()
        common.EXTRA_ENV.update(saved_env)
    return None if trace.sites is None else (trace.sites, r["requests"])
