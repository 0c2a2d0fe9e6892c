#!/usr/bin/env bash
# The recorder's rate (PERFORMANCE.md, "Recorder"): `netpipe-fast record` from a JSON-lines
# file beside the anchor, scripts/record_anchor.py (the original recorder's pandas algorithm,
# re-implemented: json_normalize per layer, the whole CSV and archive rewritten every
# SAVE_AFTER_NUM messages), on the same messages: the first N messages of pcaps/mixed.pcap.
# Then our rate on 22 copies of the whole fixture (299,640 messages), on disk and on tmpfs
# (/dev/shm: no disk waits, so it shows the recorder's own cost).
#
# Each figure is the median of RUNS runs; wall-clock and CPU (user+sys) rates are both shown,
# because on a shared machine the wall clock includes waiting for a core.
# Needs: cargo build --release, target/pandas-venv (scripts/test.sh makes it).
# Usage: scripts/bench-record.sh [N (default 2000)] [RUNS (default 3)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-2000}
runs=${2:-3}
bin=target/release/netpipe-fast
py=target/pandas-venv/bin/python
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x "$py" ] || { echo "target/pandas-venv missing: run scripts/test.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-record.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bin" read -q pcaps/mixed.pcap >"$work/all.jsonl"
head -n "$n" "$work/all.jsonl" >"$work/n.jsonl"
for _ in $(seq 22); do cat "$work/all.jsonl"; done >"$work/big.jsonl"
big=$(wc -l <"$work/big.jsonl")

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ours FILE SAVE_AFTER DIR: prints "wall cpu" seconds of one run.
ours() {
  rm -rf "$3/o" && mkdir -p "$3/o"
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$bin" record -q --input "file:$1" \
    --save-after-num "$2" --output-csv "$3/o/o.csv" --archive-json "$3/o/o.json" \
    --stop-file "$work/never"
  awk '{ print $1, $2 + $3 }' "$work/time"
}

report() { # label messages walls cpus
  local wall cpu
  wall=$(tr ' ' '\n' <<<"$3" | median)
  cpu=$(tr ' ' '\n' <<<"$4" | median)
  awk -v l="$1" -v m="$2" -v w="$wall" -v c="$cpu" \
    'BEGIN { printf "%-58s %8d msgs  wall %8.3f s %10.0f msg/s   cpu %8.3f s %10.0f msg/s\n", l, m, w, m / w, c, m / c }'
}

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"

walls="" cpus=""
for _ in $(seq "$runs"); do
  rm -f "$work"/anchor.*
  read -r _ w c < <("$py" scripts/record_anchor.py "$work/n.jsonl" "$work" 100)
  walls+="$w " cpus+="$c "
done
report "anchor (pandas algorithm), SAVE_AFTER_NUM=100" "$n" "$walls" "$cpus"
anchor_wall=$(tr ' ' '\n' <<<"$walls" | median)
anchor_cpu=$(tr ' ' '\n' <<<"$cpus" | median)

for save in 100 10000; do
  walls="" cpus=""
  for _ in $(seq "$runs"); do
    read -r w c < <(ours "$work/n.jsonl" "$save" "$work")
    walls+="$w " cpus+="$c "
  done
  report "netpipe-fast record, SAVE_AFTER_NUM=$save (disk, fsync)" "$n" "$walls" "$cpus"
  if [ "$save" = 100 ]; then
    w=$(tr ' ' '\n' <<<"$walls" | median)
    c=$(tr ' ' '\n' <<<"$cpus" | median)
    awk -v aw="$anchor_wall" -v ac="$anchor_cpu" -v w="$w" -v c="$c" \
      'BEGIN { printf "ratio at SAVE_AFTER_NUM=100 on the same messages: wall %.0fx, cpu %.0fx\n", aw / w, ac / c }'
  fi
done

for target in "$work" /dev/shm; do
  [ -d "$target" ] && [ -w "$target" ] || continue
  for save in 100 10000; do
    # On disk every snapshot waits for fsync: SAVE_AFTER_NUM=100 there is shown on N above.
    if [ "$target" != /dev/shm ] && [ "$save" = 100 ]; then continue; fi
    walls="" cpus=""
    dir=$(mktemp -d "$target/bench-record-out.XXXXXX")
    for _ in $(seq "$runs"); do
      read -r w c < <(ours "$work/big.jsonl" "$save" "$dir")
      walls+="$w " cpus+="$c "
    done
    rm -rf "$dir"
    where=$([ "$target" = /dev/shm ] && echo "tmpfs" || echo "disk, fsync")
    report "netpipe-fast record, SAVE_AFTER_NUM=$save ($where)" "$big" "$walls" "$cpus"
  done
done
