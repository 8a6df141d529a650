#!/usr/bin/env bash
# Debian's redis-server run under zio (through zio-run, with --stats),
# loaded by redis-benchmark with 512 KiB values, then stopped so that zio
# prints what it intercepted and elided. Needs redis-server and redis-tools
# (scripts/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release
[ -x "$bin/zio-run" ] && [ -f "$bin/libzio.so" ] || cargo build --release
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/zio-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT

echo "== redis-server on 127.0.0.1:$port under zio-run --stats"
"$bin/zio-run" --stats --log-file "$dir/zio.log" -- \
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --protected-mode no --loglevel warning --dir "$dir" >/dev/null &
server=$!
for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done

echo "== redis-benchmark -t set,get -d 524288 -n 400 -c 4"
redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 524288 -n 400 -c 4 -q
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$server" || true

echo "== what zio saw in redis-server"
cat "$dir/zio.log"
