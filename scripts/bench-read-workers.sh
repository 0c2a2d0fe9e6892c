#!/usr/bin/env bash
# The whole `read` process, output to /dev/null, with 1 to 4 workers, for two builds (before
# and after a change), against its anchors measured in the same run (PERFORMANCE.md, issue 13):
#
#   - `tshark -T ek -r FILE` (hyperfine median of TSHARK_RUNS runs);
#   - the in-memory decode + JSON rate on one core: examples/bench_passes decode_encode
#     (the criterion bench's loop), CPU time of PASSES passes minus that of 0 passes.
#
# FILE is COPIES x pcaps/mixed.pcap (scripts/make-big-pcap.py; 136,200 packets for 10), where
# start-up weighs little. Two kinds of figures:
#   1. hyperfine medians of wall time (RUNS runs per command, commands one after the other);
#   2. CPU time (user + sys, GNU time) medians per packet from runs interleaved command by
#      command (every command once per round, RUNS rounds), which stay comparable when other
#      processes load the machine: CPU time does not count waiting for a core.
# The load average is printed before and after.
#   3. (PERF=1, the default when `perf` runs) `perf stat -e context-switches,cpu-migrations,
#      task-clock` of every command with 1, 2 and 4 workers, interleaved as in 2: medians of
#      context switches (voluntary and not: threads waiting for each other on the channels)
#      and task-clock;
#   4. (CALLGRIND=1, the default) total instructions of one run with 1, 2 and 4 workers of
#      a CG_COPIES (2) x copy, by `valgrind --tool=callgrind` (every thread of the process;
#      load-independent): what order keeping and the hand-off cost in work, and the ratio
#      of the two builds.
#
#   scripts/bench-read-workers.sh BEFORE_BIN AFTER_BIN
#   scripts/bench-read-workers.sh stdin AFTER_BIN
#
# BEFORE_BIN `stdin`: the "before" runs are AFTER_BIN reading `-` with the file on standard
# input, which the streaming reader reads (what every file went through before the mapping).
# hyperfine then runs every command through its shell (for the redirection), both builds
# alike; it subtracts the shell's own start-up.
#
# With BIG=1 it then reads a BIG_BYTES (1 GiB) copy of mixed.pcap with each build and 1 and 2
# workers, sampling /proc/PID/status every 20 ms: peak RssAnon (anonymous memory: heap,
# stacks, buffers), peak RssFile (pages of mapped files, the binary included, that are mapped
# into the process; the page cache the kernel keeps for the file is not the process's
# memory and is not counted) and GNU time's maximum RSS (anonymous + file + shared).
#
# AFTER_BIN's tree (this one) builds examples/bench_passes with --release. Needs hyperfine,
# tshark, GNU time, python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
before=${1:?usage: scripts/bench-read-workers.sh BEFORE_BIN AFTER_BIN}
after=${2:?usage: scripts/bench-read-workers.sh BEFORE_BIN AFTER_BIN}
RUNS=${RUNS:-11}
TSHARK_RUNS=${TSHARK_RUNS:-3}
COPIES=${COPIES:-10}
PASSES=${PASSES:-30}
BIG=${BIG:-0}
PERF=${PERF:-1}
CALLGRIND=${CALLGRIND:-1}
CG_COPIES=${CG_COPIES:-2}
BIG_BYTES=${BIG_BYTES:-1073741824}
FIXTURE=pcaps/mixed.pcap

work=$(mktemp -d "${TMPDIR:-/tmp}/netpipe-read-workers.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --example bench_passes
passes_bin=target/release/examples/bench_passes

fixture_bytes=$(stat -c %s "$FIXTURE")
file=$work/mixed-x$COPIES.pcap
line=$(python3 scripts/make-big-pcap.py "$FIXTURE" "$file" $((COPIES * (fixture_bytes - 24) + 24)))
packets=$(printf '%s\n' "$line" | sed -E 's/^[^:]*: ([0-9]+) packets.*/\1/')
fixture_packets=$("$after" read "$FIXTURE" -q | wc -l)
echo "file: $COPIES x $FIXTURE, $packets packets, $(stat -c %s "$file") bytes"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

# ---- 1. hyperfine, wall time --------------------------------------------------------------------
# read_cmd TREE WORKERS: the command line of one run.
read_cmd() {
  if [ "$1" = before ] && [ "$before" = stdin ]; then
    echo "$after read - -q -j $2 < $file"
  else
    echo "${!1} read $file -q -j $2"
  fi
}
cmds=()
for tree in before after; do
  for j in 1 2 3 4; do cmds+=("$(read_cmd "$tree" "$j")"); done
done
shell_flag=-N
[ "$before" != stdin ] || shell_flag=""
hyperfine $shell_flag --style basic --warmup 1 --runs "$RUNS" --export-json "$work/read.json" \
  "${cmds[@]}" >&2
hyperfine -N --style basic --warmup 0 --runs "$TSHARK_RUNS" --export-json "$work/tshark.json" \
  "tshark -T ek -r $file" >&2

# ---- 2. interleaved CPU time --------------------------------------------------------------------
# cpu CMD...: "wall user+sys" of one run (stdin: $stdin_file, else /dev/null).
stdin_file=/dev/null
cpu() {
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" <"$stdin_file" >/dev/null 2>&1
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$work/t"
}
# cpu_read TREE WORKERS: cpu of one read run.
cpu_read() {
  if [ "$1" = before ] && [ "$before" = stdin ]; then
    stdin_file=$file cpu "$after" read - -q -j "$2"
  else
    cpu "${!1}" read "$file" -q -j "$2"
  fi
}
: >"$work/cpu.txt"
for _ in $(seq "$RUNS"); do
  for tree in before after; do
    for j in 1 2 3 4; do echo "$tree-j$j $(cpu_read "$tree" "$j")" >>"$work/cpu.txt"; done
  done
  echo "inmem-0 $(cpu "$passes_bin" decode_encode 0)" >>"$work/cpu.txt"
  echo "inmem-$PASSES $(cpu "$passes_bin" decode_encode "$PASSES")" >>"$work/cpu.txt"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work/read.json" "$work/tshark.json" "$work/cpu.txt" "$packets" "$fixture_packets" "$PASSES" <<'PY'
import json, statistics, sys
read = json.load(open(sys.argv[1]))["results"]
tshark = json.load(open(sys.argv[2]))["results"][0]["median"]
rows = {}
for line in open(sys.argv[3]):
    name, wall, cpu = line.split()
    rows.setdefault(name, []).append((float(wall), float(cpu)))
packets, fixture_packets, passes = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
med = lambda name, i: statistics.median(r[i] for r in rows[name])
# In memory, one core: a pass is fixture_packets frames; start-up and loading cancel.
inmem_cpu_ns = (med(f"inmem-{passes}", 1) - med("inmem-0", 1)) / (passes * fixture_packets) * 1e9
inmem_wall_ns = (med(f"inmem-{passes}", 0) - med("inmem-0", 0)) / (passes * fixture_packets) * 1e9
inmem_pps = 1e9 / inmem_cpu_ns
print(f"tshark -T ek: median {tshark:.2f} s, {packets / tshark:,.0f} packets/s")
print(f"in memory decode + JSON, one core: {inmem_cpu_ns:.1f} ns CPU/packet "
      f"({inmem_pps:,.0f} packets/s per CPU second; wall {1e9 / inmem_wall_ns:,.0f}/s)")
print("| build | workers | hyperfine median | packets/s | x tshark | / in-memory rate | "
      "CPU median (user+sys) | CPU ns/packet | interleaved wall median |")
print("|---|---|---|---|---|---|---|---|---|")
for k, tree in enumerate(["before", "after"]):
    for j in range(1, 5):
        s = read[k * 4 + j - 1]["median"]
        pps = packets / s
        name = f"{tree}-j{j}"
        c = med(name, 1)
        print(f"| {tree} | {j} | {s * 1000:.1f} ms | {pps:,.0f} | {pps / (packets / tshark):.0f}x | "
              f"{pps / inmem_pps * 100:.0f} % | {c:.3f} s | {c / packets * 1e9:.0f} | "
              f"{med(name, 0) * 1000:.0f} ms |")
PY

# ---- 3. perf stat: context switches, task-clock ------------------------------------------------
if [ "$PERF" = 1 ] && perf stat -e context-switches true >/dev/null 2>&1; then
  # pstat TREE WORKERS: "context-switches cpu-migrations task-clock-ms" of one read run.
  pstat() {
    local cmd
    if [ "$1" = before ] && [ "$before" = stdin ]; then
      perf stat -x, -o "$work/p" -e context-switches,cpu-migrations,task-clock \
        "$after" read - -q -j "$2" <"$file" >/dev/null 2>&1
    else
      perf stat -x, -o "$work/p" -e context-switches,cpu-migrations,task-clock \
        "${!1}" read "$file" -q -j "$2" >/dev/null 2>&1
    fi
    awk -F, '$3 == "context-switches" { c = $1 } $3 == "cpu-migrations" { m = $1 }
      $3 == "task-clock" { t = $1 } END { print c, m, t }' "$work/p"
  }
  : >"$work/perf.txt"
  for _ in $(seq "$RUNS"); do
    for tree in before after; do
      for j in 1 2 4; do echo "$tree-j$j $(pstat "$tree" "$j")" >>"$work/perf.txt"; done
    done
  done
  echo "load after perf stat: $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 - "$work/perf.txt" "$packets" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, cs, mig, ms = line.split()
    rows.setdefault(name, []).append((float(cs), float(mig), float(ms)))
packets = int(sys.argv[2])
print("| build | workers | context switches (median) | per 1,000 packets | cpu-migrations | "
      "task-clock median | task-clock ns/packet |")
print("|---|---|---|---|---|---|---|")
for name, r in rows.items():
    tree, j = name.split("-j")
    cs = statistics.median(x[0] for x in r)
    mig = statistics.median(x[1] for x in r)
    ms = statistics.median(x[2] for x in r)
    print(f"| {tree} | {j} | {cs:,.0f} | {cs / packets * 1000:.2f} | {mig:,.0f} | {ms:.1f} ms | "
          f"{ms * 1e6 / packets:.0f} |")
PY
fi

# ---- 4. callgrind: instructions of the whole process --------------------------------------------
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
  cg_file=$work/mixed-x$CG_COPIES.pcap
  cg_line=$(python3 scripts/make-big-pcap.py "$FIXTURE" "$cg_file" \
    $((CG_COPIES * (fixture_bytes - 24) + 24)))
  cg_packets=$(printf '%s\n' "$cg_line" | sed -E 's/^[^:]*: ([0-9]+) packets.*/\1/')
  # instr TREE WORKERS: total instructions (all threads) of one read of $cg_file.
  instr() {
    local bin=${!1}
    local input=(read "$cg_file")
    if [ "$1" = before ] && [ "$before" = stdin ]; then bin=$after input=(read -); fi
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "${input[@]}" -q -j "$2" \
      <"$cg_file" 2>&1 >/dev/null | sed -nE 's/.*Collected : ([0-9]+).*/\1/p'
  }
  echo "callgrind: $CG_COPIES x $FIXTURE, $cg_packets packets"
  echo "| build | workers | instructions | per packet | / 1 worker of the same build |"
  echo "|---|---|---|---|---|"
  for tree in before after; do
    one=""
    for j in 1 2 4; do
      n=$(instr "$tree" "$j")
      [ -n "$one" ] || one=$n
      awk -v t="$tree" -v j="$j" -v n="$n" -v one="$one" -v p="$cg_packets" \
        'BEGIN { printf "| %s | %d | %d | %.1f | %.4f |\n", t, j, n, n / p, n / one }'
    done
  done
fi

[ "$BIG" = 1 ] || exit 0
rm -f "$file"
big=$work/big.pcap
python3 scripts/make-big-pcap.py "$FIXTURE" "$big" "$BIG_BYTES"
# peak TREE WORKERS: "peak-RssAnon-KiB peak-RssFile-KiB max-RSS-KiB" of one read of the big file.
peak() {
  if [ "$1" = before ] && [ "$before" = stdin ]; then
    /usr/bin/time -f "%M" -o "$work/m" "$after" read - -q -j "$2" <"$big" >/dev/null 2>&1 &
  else
    /usr/bin/time -f "%M" -o "$work/m" "${!1}" read "$big" -q -j "$2" >/dev/null 2>&1 &
  fi
  local timer=$! pid="" anon=0 filed=0 a f
  while kill -0 "$timer" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$timer" | head -n 1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      f=$(awk '/^RssFile:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
      [ -n "$f" ] && [ "$f" -gt "$filed" ] && filed=$f
    fi
    sleep 0.02
  done
  wait "$timer"
  echo "$anon $filed $(cat "$work/m")"
}
echo "| build | workers | peak RssAnon | peak RssFile | max RSS (GNU time) |"
echo "|---|---|---|---|---|"
for tree in before after; do
  for j in 1 2; do
    read -r anon filed max <<<"$(peak "$tree" "$j")"
    echo "| $tree | $j | $anon KiB | $filed KiB | $max KiB |"
  done
done
