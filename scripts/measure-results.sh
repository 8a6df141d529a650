#!/usr/bin/env bash
# Measures every result set that docs/results.md reports, then writes that
# page again (scripts/results.py). `make results` runs it.
#
#   make results           about 3 h 20 min on the project's 2-vCPU machine:
#                          sweeps 17 min, faults 7, interleave 76, servers 25,
#                          benches 5, regress 15, apps 45, bridge 4; writes
#                          docs/results/{sweeps,faults,interleave,servers,benches,regress,apps,bridge}/
#                          and docs/results.md
#   make results QUICK=1   about 2 min: one short run of a few points of
#                          everything, into a temporary directory (printed),
#                          to check the pipeline; measures nothing worth keeping
#   OUT=DIR                the sets and results.md go under DIR instead
#   SETS="regress ..."     only those sets (sweeps faults interleave servers
#                          benches regress apps bridge); the others stay as they are
#
# The binaries (echo-bench, zio-run, libzio.so, the bench executables) are
# copied to a private directory first, so a rebuild in the tree while this
# runs cannot change what is measured. Each set is written to a staging
# directory and replaces the old one only when the whole run got through.
# Run it on an otherwise idle machine: others' work disturbs the figures,
# and these runs take both CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
# zio's defaults are what is measured: no ZIO_* setting passes through.
for v in $(compgen -e | grep '^ZIO_' || true); do unset "$v"; done

quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
    out=${OUT:-$(mktemp -d /tmp/zio-results.XXXXXX)}
else
    out=${OUT:-docs/results}
fi
md=$out/results.md
[ "$out" = docs/results ] && md=docs/results.md
echo "measuring into $out (then $md)"

cargo build --release
benches=$(cargo bench -p zio-benches --no-run 2>&1 | sed -n 's|.*Executable benches/\(.*\)\.rs (\(.*\))|\1 \2|p')
bin=$(mktemp -d /tmp/zio-results-bin.XXXXXX)
# The servers of make apps run as their own users and must read libzio.so.
chmod 755 "$bin"
stage=$(mktemp -d /tmp/zio-results-stage.XXXXXX)
trap 'rm -rf "$bin" "$stage"' EXIT
cp target/release/echo-bench target/release/zio-run target/release/libzio.so "$bin/"
while read -r name exe; do cp "$exe" "$bin/bench-$name"; done <<< "$benches"
commit=$(git rev-parse HEAD)
modified=$(git diff --quiet HEAD -- zio-core libzio zio-run echo-bench benches || echo ' (sources modified)')

begin() { # a set's directory and environment.txt
    mkdir -p "$stage/$1"
    {
        echo "commit $commit$modified"
        echo "libzio.so sha256 $(sha256sum "$bin/libzio.so" | cut -d' ' -f1)"
        echo "kernel $(uname -r), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
        echo "started $(date -u +%FT%TZ)"
        echo "note load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
        if [ "$quick" = 1 ]; then echo "note QUICK=1: one short run of a few points, a check of the pipeline"; fi
    } > "$stage/$1/environment.txt"
}

step() { # set, name, command: its stdout goes to set/name.txt, stderr to set/name.log
    local set=$1 name=$2 t cmd
    shift 2
    cmd="$*"
    cmd=${cmd//$stage\/$set\//}
    cmd=${cmd//$stage\/$set/.}
    cmd=${cmd//$stage\//}
    echo "ran $name: ${cmd//$bin\//}" >> "$stage/$set/environment.txt"
    echo "== $set/$name"
    t=$(date +%s)
    "$@" > "$stage/$set/$name.txt" 2> "$stage/$set/$name.log" ||
        echo "note $name: some runs failed (see $name.log)" | tee -a "$stage/$set/environment.txt"
    echo "$name: $(($(date +%s) - t)) s" | tee -a "$stage/$set/environment.txt"
}

finish() {
    echo "finished $(date -u +%FT%TZ)" >> "$stage/$1/environment.txt"
}

eb=$bin/echo-bench
sets=${SETS:-sweeps faults interleave servers benches regress apps bridge}
want() { [[ " $sets " == *" $1 "* ]]; }
if [ "$quick" = 1 ]; then
    rounds=(--rounds 3 --slice 0.1 --warmup 0.02)
    grid=(--sizes 64K,512K --copies 1,5,12 --runs 1)
    servers=(--sizes 64K --copies 5)
    passes=1
    small=(--sizes 8K --copies 0,1)
    touch1=(--sizes 512K)
    crit=(--warm-up-time 0.1 --measurement-time 0.2 --sample-size 10)
    profile=1
else
    rounds=()
    grid=(--sizes 64K,128K,256K,512K,1M --copies 1,5,12 --runs 5 --rounds 15)
    servers=(--sizes 64K,512K,1M --copies 1,5,12 --rounds 12)
    passes=3
    small=(--sizes 8K,16K --copies 0,1,5)
    touch1=(--sizes 16K,512K)
    crit=()
    profile=2
fi

sweep() { # set, name, the points of a quick run, then echo-bench sweep's arguments
    local set=$1 name=$2 points=$3 extra=()
    shift 3
    if [ "$quick" = 1 ]; then extra=(--quick --reps 1 --duration 0.5 --warmup 0.2 --points "$points"); fi
    step "$set" "$name" "$eb" sweep "$@" --out "$stage/$set" "${extra[@]}"
}

if want sweeps; then
    begin sweeps
    sweep sweeps copies 0,1,12 copies
    sweep sweeps size 16K,512K size
    sweep sweeps threads 1/1,2/2 threads
    sweep sweeps touch 0,1 touch
    finish sweeps
fi

if want faults; then
    begin faults
    sweep faults faults 0,2 faults
    sweep faults faults-copies1 0,1,2 faults --copies 1 --tag copies1
    finish faults
fi

# The grid in passes, so that the machine's drift over the hour reaches
# every point alike; results.py pools the runs of every grid-*.txt.
if want interleave; then
    begin interleave
    il=$stage/interleave
    for p in $(seq "$passes"); do
        step interleave "grid-pass$p" "$eb" interleave "${grid[@]}" --ceiling-inputs 2 "${rounds[@]}" --csv "$il/grid-pass$p.csv"
    done
    step interleave small "$eb" interleave "${small[@]}" "${rounds[@]}" --csv "$il/small.csv"
    step interleave touch1 "$eb" interleave "${touch1[@]}" --copies 1 --touch-fraction 1 "${rounds[@]}" --csv "$il/touch1.csv"
    finish interleave
fi

# The memory real servers use: every buffer mode and allocator, 1 and 2
# server threads, 2 connections per server; small messages and every byte
# read in each buffer mode.
if want servers; then
    begin servers
    sv=$stage/servers
    for buf in static malloc chain; do
        for alloc in glibc jemalloc; do
            for t in 1 2; do
                step servers "$buf-$alloc-t$t" "$eb" interleave --buffers "$buf" --allocator "$alloc" --threads "$t" --conns 2 "${servers[@]}" "${rounds[@]}" --csv "$sv/$buf-$alloc-t$t.csv"
            done
        done
        step servers "$buf-small" "$eb" interleave --buffers "$buf" --conns 2 --sizes 8K --copies 1,5 "${rounds[@]}" --csv "$sv/$buf-small.csv"
        step servers "$buf-touch1" "$eb" interleave --buffers "$buf" --conns 2 "${touch1[@]}" --copies 1 --touch-fraction 1 "${rounds[@]}" --csv "$sv/$buf-touch1.csv"
    done
    finish servers
fi

if want benches; then
    begin benches
    micro=$stage/benches/micro.csv
    for b in hook tracker chain engine ops; do
        step benches "$b" env CRITERION_HOME="$stage/criterion" ZIO_LIB="$bin/libzio.so" "$bin/bench-$b" --bench "${crit[@]}"
    done
    echo "bench,id,variant,value,unit,commit,source" > "$micro"
    python3 scripts/bench_figures.py criterion "$stage/criterion" "${commit:0:7}" >> "$micro"
    if command -v valgrind > /dev/null; then
        echo "== benches/callgrind"
        ZIO_LIB="$bin/libzio.so" python3 scripts/bench_figures.py callgrind "$bin" "${commit:0:7}" "$profile" >> "$micro"
    else
        echo "note valgrind not found: no instruction counts" | tee -a "$stage/benches/environment.txt"
fi
finish benches
fi

if want apps; then
    # The servers come from Debian packages a fresh machine lacks.
    bash scripts/deps.sh
    begin apps
    if [ "$quick" = 1 ]; then apps=(--quick); else apps=(--pairs 4); fi
    step apps apps env ZIO_LIB="$bin/libzio.so" python3 scripts/apps.py "${apps[@]}" --csv "$stage/apps/apps.csv" --coverage "$stage/apps/coverage.csv"
    finish apps
fi

if want bridge; then
    begin bridge
    if [ "$quick" = 1 ]; then iox=(--sizes 64K,1M --rounds 1 --bytes 16M); smol=(--sizes 64K --rounds 1 --bytes 4M)
    else iox=(--rounds 9 --bytes 2G); smol=(--rounds 7 --bytes 512M); fi
    step bridge iceoryx2 "$eb" stack --stack iceoryx2 "${iox[@]}" \
        --csv "$stage/bridge/iceoryx2.csv" --plot "$stage/bridge/iceoryx2.svg"
    step bridge smoltcp "$eb" stack --stack smoltcp "${smol[@]}" \
        --csv "$stage/bridge/smoltcp.csv" --plot "$stage/bridge/smoltcp.svg"
    finish bridge
fi

if want regress; then
    begin regress
    if [ "$quick" = 1 ]; then regress=(--quick); else regress=(--pairs 10); fi
    step regress regress env ZIO_LIB="$bin/libzio.so" python3 scripts/regress.py "${regress[@]}" --csv "$stage/regress/regress.csv"
    finish regress
fi

mkdir -p "$out"
for s in $sets; do
    rm -rf "${out:?}/$s"
    mv "$stage/$s" "$out/$s"
done
python3 scripts/results.py --results "$out" --out "$md"
