#!/usr/bin/env bash
# Runs the five full echo-bench sweeps with default settings, then one
# supplementary sweep (faults with 1 copy, see docs/echo-bench.md), and writes
# docs/results/<sweep>.{csv,svg,txt,log} plus environment.txt (commit, machine,
# how long each sweep took). The binaries are copied to a private directory
# first, so a rebuild while the sweeps run cannot change the zio being
# measured. About 21 minutes for the five sweeps, 4 more for the supplement,
# on the project's 2-vCPU VM.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
bin=$(mktemp -d /tmp/echo-bench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
cp target/release/echo-bench target/release/zio-run target/release/libzio.so "$bin/"
out=docs/results
mkdir -p "$out"
rm -rf "$out/failures"
{
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- zio-core libzio zio-run || echo ' (zio sources modified)')"
    echo "libzio.so sha256 $(sha256sum "$bin/libzio.so" | cut -d' ' -f1)"
    echo "kernel $(uname -r), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "started $(date -u +%FT%TZ)"
} > "$out/environment.txt"

sweep() { # name, then echo-bench sweep arguments
    local name=$1
    shift
    local t
    t=$(date +%s)
    "$bin/echo-bench" sweep "$@" --out "$out" > "$out/$name.txt" 2> "$out/$name.log" ||
        echo "sweep $name: some runs failed (see $out/$name.log)" | tee -a "$out/environment.txt"
    echo "sweep $name: $(( $(date +%s) - t )) s" | tee -a "$out/environment.txt"
}

for s in copies size threads faults touch; do
    sweep "$s" "$s"
done
sweep faults-copies1 faults --copies 1 --tag copies1
echo "finished $(date -u +%FT%TZ)" >> "$out/environment.txt"
