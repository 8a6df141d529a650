"""What every real server of `make apps` shares: starting it as its own
user with or without zio, free loopback ports, zio's summaries read back
from its log files, the user-space copy share of a perf profile, and the
pattern data the verifying clients write."""
import glob
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.environ.get("ZIO_LIB", os.path.join(ROOT, "target", "release", "libzio.so"))
ZIO_RUN = os.path.join(ROOT, "target", "release", "zio-run")

# APPS_KEEP_LOGS=DIR: a copy of every zio log file read goes there.
KEEP_LOGS = os.environ.get("APPS_KEEP_LOGS")
# The engine counters a row shows per request, summed over the server's
# processes.
FAULTS = ("faults_missing", "faults_zero", "faults_wp")
SYSCALLS = ("syscalls_uffd", "syscalls_madvise", "syscalls_maps")
# The symbols glibc's memcpy and memmove resolve to on x86-64, and the
# names they have without their ifunc suffixes.
COPY_SYMBOL = re.compile(r"__mem(cpy|move)\w*|^mem(cpy|move)$")


class Failure(Exception):
    """A server that did not start, answered wrongly or lost data."""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=20.0):
    """Waits until something accepts on `port`, or fails if `proc` ends."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise Failure(f"{what} exited at start with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"{what} did not listen on {port} within {timeout:.0f} s")


def pattern(n, seed):
    """`n` reproducible bytes that differ with `seed`."""
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest() * 2048
    reps = n // len(block) + 1
    return (block * reps)[:n]


def user_ids(user):
    p = pwd.getpwnam(user)
    return p.pw_uid, p.pw_gid


def own_dir(path, user, mode=0o755):
    """Creates `path` (if needed) owned by `user`."""
    os.makedirs(path, exist_ok=True)
    uid, gid = user_ids(user)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def zio_env(logs, zio):
    """Environment for a server: zio's summary into `logs` if `zio`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIO_")}
    env.pop("LD_PRELOAD", None)
    if zio:
        env.update(EXTRA_ENV)
        env["ZIO_STATS"] = "1"
        env["ZIO_LOG_FILE"] = os.path.join(logs, "zio.%p.log")
    return env


def command(argv, user, zio):
    """`argv` run as `user` (None: as root, for servers that drop their
    privileges themselves), with libzio.so preloaded after the switch."""
    pre = []
    if user is not None:
        uid, gid = user_ids(user)
        pre = ["setpriv", "--reuid", str(uid), "--regid", str(gid), "--init-groups"]
    env = ["env"] + ([f"LD_PRELOAD={LIB}"] if zio else [])
    return pre + env + list(argv)


def start(argv, user, zio, logs, what, **kw):
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        command(argv, user, zio), env=zio_env(logs, zio), start_new_session=True, **kw
    )


def stop(proc, sig=signal.SIGTERM, timeout=30.0):
    """Sends `sig` and waits (bounded) for a clean exit; kills otherwise."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise Failure(f"server did not stop within {timeout:.0f} s of signal {sig}")


def summaries(logs):
    """zio's counters from every log file in `logs`, summed over processes,
    plus 'processes' and 'pass_through' (processes that could not elide).
    Removes the files."""
    total = {"processes": 0, "pass_through": 0}
    for path in glob.glob(os.path.join(logs, "zio.*.log")):
        with open(path, errors="replace") as f:
            text = f.read()
        if KEEP_LOGS:
            os.makedirs(KEEP_LOGS, exist_ok=True)
            shutil.copy(path, KEEP_LOGS)
        os.unlink(path)
        if " stats: " not in text:
            continue
        total["processes"] += 1
        if "pass-through" in text.split(" stats: ", 1)[1].split("\n", 1)[0]:
            total["pass_through"] += 1
        for line in text.splitlines():
            m = re.match(r"zio\[\d+\]\s+([a-z_]+)\s+(\d+)\s*$", line)
            if m:
                total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
    return total


def per_request(counters, requests):
    """The row's zio columns: elided copies, MB substituted, faults and
    system calls, each per request."""
    r = max(requests, 1)
    return {
        "elided": counters.get("elided_copies", 0) / r,
        "subst_kb": counters.get("bytes_substituted", 0) / r / 1024,
        "faults": sum(counters.get(k, 0) for k in FAULTS) / r,
        "syscalls": sum(counters.get(k, 0) for k in SYSCALLS) / r,
    }


def copy_share(perf_data):
    """The share of samples in user-space memcpy/memmove in a
    `perf record` file (0..1), and the top copy symbols."""
    out = subprocess.run(
        ["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym",
         "--stdio", "-q", "-g", "none"],
        capture_output=True, text=True,
    ).stdout
    share, names = 0.0, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(\S+)", line)
        if m and COPY_SYMBOL.search(m.group(2)):
            share += float(m.group(1)) / 100
            names.append(m.group(2))
    return share, names


class Perf:
    """The default observer of a run's load: perf samples of the server."""

    def start(self, pids, out):
        if not shutil.which("perf") or not pids:
            return None
        return subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", out,
             "-p", ",".join(str(x) for x in pids)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self, p, out):
        if p is None:
            return None
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
        return copy_share(out)[0]


# What profile() runs during a load: perf, or the coverage trace
# (appbench.coverage sets it).
OBSERVER = Perf()
# Added to a server's environment under zio (the coverage run's ZIO_ENABLE=0).
EXTRA_ENV = {}


def profile(pids, out):
    """Starts observing `pids` during the load (perf: cpu-clock samples
    with call graphs into `out`); `end_profile` stops it."""
    return OBSERVER.start(pids, out)


def end_profile(p, out):
    """Stops `profile` and returns the copy share (None: no perf)."""
    return OBSERVER.stop(p, out)


def children(pid):
    """`pid` and every descendant of it."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return found


def tree_cpu(pid):
    """CPU seconds used so far by `pid`, its reaped children and its live
    descendants (a server's forked backends and workers included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for i, p in enumerate(children(pid)):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and for the root cutime, cstime (fields 14-17).
        total += sum(int(x) for x in fields[11:15 if i == 0 else 13])
    return total / tick


def run_clients(conns, client):
    """Runs `client(c)` for c in 0..conns, each in its own thread; the
    seconds until the last is done."""
    t = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t


def result(n, size, secs, ok, logs, share, cpu):
    """A run's figures from `n` requests of `size` bytes in `secs`."""
    return {
        "ops": n / secs, "mbs": n * size / secs / 1e6, "requests": max(n, 1),
        "verified": ok and n > 0, "counters": summaries(logs),
        "share": share, "cpu": cpu, "seconds": secs,
    }

