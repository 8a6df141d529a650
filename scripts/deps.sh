#!/usr/bin/env bash
# Installs what the test suite and make apps need when it is missing
# (Debian packages).
# Idempotent and quiet when everything is present.
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v setpriv >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
# The smoltcp adapter's TUN test builds a network namespace.
command -v ip >/dev/null || need+=(iproute2)
command -v valgrind >/dev/null || need+=(valgrind)
[ -e /usr/include/liburing.h ] || need+=(liburing-dev)
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || need+=(libjemalloc2)
# The real servers of make apps (and of its short form in make test).
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v memcached >/dev/null || need+=(memcached)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v icecast2 >/dev/null || need+=(icecast2)
command -v bpftrace >/dev/null || need+=(bpftrace)
command -v perf >/dev/null || need+=(linux-perf)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root; install these Debian packages by hand: ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# redis-server's package starts a system service on install where it can;
# the tests start their own servers on free ports, so that one is irrelevant.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Do not leave the packaged services running on their usual ports behind
# us: the tests start their own servers on free ports.
if command -v service >/dev/null; then
    for s in redis-server nginx haproxy memcached postgresql icecast2; do
        [ -x /etc/init.d/$s ] && service $s stop >/dev/null 2>&1 || true
    done
fi
echo "deps: ok"
