#!/usr/bin/env bash
# What --partitions costs netpipe-fast (PERFORMANCE.md, "Partitions"): instructions counted by
# valgrind callgrind (all threads), which stay put on a loaded machine where CPU seconds do
# not. A redis-server private to the script (free port, own folder, stopped at the end).
#
# Per run, for Redis stream mode and list mode (raw):
#   1. netpipe-fast read BIG -o redis://... --partitions 1   (the anchor: today's output)
#   2. the same with --partitions 4
#   3. with BASE_BIN=path: that binary (e.g. one built from main) without --partitions
# BIG is pcaps/mixed.pcap given COPIES times (12: 163,440 packets). Every run is checked: the
# entries stored over all keys equal the packets read.
#
# Usage:  scripts/bench-partitions.sh       RUNS=3 COPIES=12 BIN=target/release/netpipe-fast
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/netpipe-fast}
RUNS=${RUNS:-3}
COPIES=${COPIES:-12}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p target/bench
DIR=$(mktemp -d target/bench/partitions.XXXXXX)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
    >"$DIR/log" 2>&1 &
RPID=$!
trap 'kill $RPID; rm -rf "$DIR"' EXIT
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done
FILES=()
for _ in $(seq "$COPIES"); do FILES+=(pcaps/mixed.pcap); done
PACKETS=$(( COPIES * $("$BIN" read -q pcaps/mixed.pcap | wc -l) ))

stored() { # mode key...
    local mode=$1 total=0 n
    shift
    for k in "$@"; do
        if [ "$mode" = stream ]; then n=$(redis-cli -p "$PORT" xlen "$k"); else n=$(redis-cli -p "$PORT" llen "$k"); fi
        total=$((total + n))
    done
    echo "$total"
}

one() { # label bin mode partitions-or-empty
    local label=$1 bin=$2 mode=$3 parts=$4 extra=() keys=("b_$mode")
    [ "$mode" = list ] && extra+=(--redis-format raw)
    if [ -n "$parts" ]; then
        extra+=(--partitions "$parts")
        if [ "$parts" -gt 1 ]; then
            keys=()
            for i in $(seq 0 $((parts - 1))); do keys+=("b_$mode-$i"); done
        fi
    fi
    local out
    out=$(valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.%p" "$bin" read -q "${FILES[@]}" \
        -o "redis://127.0.0.1:$PORT/0" --redis-mode "$mode" --queue "b_$mode" \
        --redis-maxlen 1000000 --when-full block "${extra[@]}" 2>&1)
    local ir got
    ir=$(echo "$out" | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*$')
    got=$(stored "$mode" "${keys[@]}")
    [ "$got" = "$PACKETS" ] || { echo "$label: $got of $PACKETS stored" >&2; exit 1; }
    printf '%-28s %-6s instructions %12d  per message %6d\n' "$label" "$mode" "$ir" $((ir / PACKETS))
    redis-cli -p "$PORT" flushall >/dev/null
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD), $PACKETS packets, $(uptime)"
for run in $(seq "$RUNS"); do
    echo "## run $run"
    for mode in stream list; do
        one "--partitions 1" "$BIN" "$mode" 1
        one "--partitions 4" "$BIN" "$mode" 4
        if [ -n "${BASE_BIN:-}" ]; then one "base (no --partitions)" "$BASE_BIN" "$mode" ""; fi
    done
done
