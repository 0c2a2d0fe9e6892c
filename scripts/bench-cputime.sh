#!/bin/sh
# CPU time (user + sys) per packet of the two criterion benches' loops (decode; decode +
# JSON), this tree against another (e.g. a baseline worktree), runs alternated
# other/this/other/this so both see the same load. CPU time, unlike wall time, does not count
# the time the process waits for a core, so it stays usable when the machine is loaded; the
# medians are printed with the ratio this/other.
#
#   scripts/bench-cputime.sh ../baseline-tree
#
# Environment: RUNS (default 7 per tree and mode), DECODE_PASSES (default 200),
# ENCODE_PASSES (default 40), NETPIPE_BENCH_PCAP (default pcaps/mixed.pcap of this tree, used
# by both). Start-up and loading the capture are measured with 0 passes and subtracted.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
other=${1:?usage: scripts/bench-cputime.sh OTHER_TREE}
RUNS=${RUNS:-7}
DECODE_PASSES=${DECODE_PASSES:-200}
ENCODE_PASSES=${ENCODE_PASSES:-40}
export NETPIPE_BENCH_PCAP="${NETPIPE_BENCH_PCAP:-$here/pcaps/mixed.pcap}"
work=$(mktemp -d "${TMPDIR:-/tmp}/netpipe-cputime.XXXXXX")
trap 'rm -rf "$work"' EXIT

for tree in "$other" "$here"; do
    if [ ! -f "$tree/examples/bench_passes.rs" ]; then
        mkdir -p "$tree/examples"
        cp "$here/examples/bench_passes.rs" "$tree/examples/bench_passes.rs"
    fi
    (cd "$tree" && cargo build --quiet --profile bench --example bench_passes)
done

# cpu TREE MODE PASSES: user + sys seconds of one run.
cpu() {
    /usr/bin/time -f "%U %S" "$1/target/release/examples/bench_passes" "$2" "$3" 2>&1 >/dev/null |
        tail -n 1 | awk '{ printf "%.3f\n", $1 + $2 }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

n=$("$here/target/release/examples/bench_passes" decode 0 | sed 's/ packets.*//')
echo "capture: $NETPIPE_BENCH_PCAP ($n packets); $RUNS runs each, alternated; $(uptime)"
for mode in decode decode_encode; do
    passes=$DECODE_PASSES
    [ "$mode" = decode_encode ] && passes=$ENCODE_PASSES
    : >"$work/other"
    : >"$work/this"
    o0=$(for i in 1 2 3; do cpu "$other" "$mode" 0; done | median)
    h0=$(for i in 1 2 3; do cpu "$here" "$mode" 0; done | median)
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        cpu "$other" "$mode" "$passes" >>"$work/other"
        cpu "$here" "$mode" "$passes" >>"$work/this"
        i=$((i + 1))
    done
    o=$(median <"$work/other")
    h=$(median <"$work/this")
    echo "$mode: other runs $(tr '\n' ' ' <"$work/other")"
    echo "$mode: this  runs $(tr '\n' ' ' <"$work/this")"
    awk -v o="$o" -v h="$h" -v o0="$o0" -v h0="$h0" -v p="$passes" -v n="$n" -v m="$mode" 'BEGIN {
        on = (o - o0) * 1e9 / (p * n); hn = (h - h0) * 1e9 / (p * n);
        printf "%s: median cpu other %.3f s, this %.3f s (start-up %.3f / %.3f s); ns/packet other %.1f, this %.1f; packets/s other %.0f, this %.0f; this/other time %.3f\n",
            m, o, h, o0, h0, on, hn, 1e9 / on, 1e9 / hn, hn / on }'
done
