#!/usr/bin/env bash
# The main job: the zIO paper's echo benchmark (figure 4.3), side by side.
# An echo server makes N chained memcpy copies of every 512 KiB message
# before echoing the last one; it runs once without zio and once under zio
# (zio-run --stats) for N = 0, 1, 5, 12, pinned to CPU 0 with the client on
# CPU 1. Prints throughput with and without zio, the 0-copy ceiling and
# zio's counters per message; writes CSV and SVG to target/echo-bench-demo/.
# Takes about a minute (longer if the machine is busy: a run during which
# other processes take the CPUs is repeated).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
bin=target/release
out=target/echo-bench-demo

echo "== echo-bench sweep copies --quick --reps 2 (512 KiB messages, copies 0,1,5,12)"
"$bin/echo-bench" sweep copies --quick --reps 2 --size 512K --out "$out"
echo "== plot: $out/copies.svg (data: $out/copies.csv); figures of the full sweeps: docs/results.md"
