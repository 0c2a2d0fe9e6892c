#!/bin/sh
# Instructions per packet of the two criterion benches' loops (decode; decode + JSON), counted
# by valgrind's callgrind, which a loaded machine does not disturb (wall-clock figures move by
# tens of per cent there). Each figure is (Ir of P2 passes - Ir of P1 passes) / ((P2 - P1) *
# packets), so loading the capture and start-up cancel out.
#
#   scripts/bench-callgrind.sh                 # this tree
#   scripts/bench-callgrind.sh ../other-tree   # this tree and another (e.g. a baseline
#                                              # worktree), side by side, with the ratio
#
# Environment: P1 (default 2), P2 (default 12), NETPIPE_BENCH_PCAP (default pcaps/mixed.pcap
# of this tree, used for both trees so they read the same file), KEEP=1 keeps the callgrind
# output files (for callgrind_annotate) and prints where they are.
#
# Under valgrind, CPUID hides SHA-NI, so the sha1 crate runs its portable code: Community ID
# misses count more instructions here than they cost on a CPU with SHA extensions.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
other=${1:-}
P1=${P1:-2}
P2=${P2:-12}
pcap=${NETPIPE_BENCH_PCAP:-$here/pcaps/mixed.pcap}
export NETPIPE_BENCH_PCAP="$pcap"

work=$(mktemp -d "${TMPDIR:-/tmp}/netpipe-callgrind.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$work"' EXIT
fi

build() {
    tree=$1
    if [ ! -f "$tree/examples/bench_passes.rs" ]; then
        # A tree from before the harness existed (a baseline): the same harness, uncommitted.
        mkdir -p "$tree/examples"
        cp "$here/examples/bench_passes.rs" "$tree/examples/bench_passes.rs"
    fi
    (cd "$tree" && cargo build --quiet --profile bench --example bench_passes)
}

# ir TREE MODE PASSES: total instructions of one run.
ir() {
    out="$work/$(basename "$1").$2.$3.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$1/target/release/examples/bench_passes" "$2" "$3" >/dev/null 2>"$out.log"
    sed -n 's/^summary: //p' "$out"
}

packets() {
    "$1/target/release/examples/bench_passes" decode 0 | sed 's/ packets.*//'
}

report() {
    tree=$1
    n=$(packets "$tree")
    for mode in decode decode_encode; do
        a=$(ir "$tree" "$mode" "$P1")
        b=$(ir "$tree" "$mode" "$P2")
        per=$(echo "scale=1; ($b - $a) / (($P2 - $P1) * $n)" | bc)
        echo "$tree $mode $per"
    done
}

build "$here"
[ -n "$other" ] && build "$other"
echo "capture: $pcap ($(packets "$here") packets); passes $P1 and $P2"
echo "tree mode instructions_per_packet"
mine=$(report "$here")
echo "$mine"
if [ -n "$other" ]; then
    theirs=$(report "$other")
    echo "$theirs"
    for mode in decode decode_encode; do
        m=$(echo "$mine" | awk -v m="$mode" '$2 == m { print $3 }')
        t=$(echo "$theirs" | awk -v m="$mode" '$2 == m { print $3 }')
        echo "ratio $mode $(echo "scale=3; $m / $t" | bc) (this tree / $other)"
    done
fi
[ "${KEEP:-0}" = 1 ] && echo "callgrind files: $work"
exit 0
