#!/usr/bin/env bash
# Live-capture figures for PERFORMANCE.md ("Live capture"), measured in one run on this
# machine, through a veth pair between two network namespaces made here (nothing else is
# touched). 64-byte frames (60 bytes + the 4-byte FCS a wire would add) from one sending core:
#
#   1. offered rate: `netpipe-fast replay` (TX ring, qdisc bypass) with nobody capturing, and
#      the anchor `trafgen` (netsniff-ng) sending the same size of frame the same way;
#   2. tcpdump -w /dev/null on the far end while replay sends at full speed: its drops;
#   3. netpipe-fast with one worker writing full JSON to a file, same traffic: kernel drops,
#      drops inside netpipe-fast, CPU time per packet (utime + stime of the process, from
#      /proc/PID/stat) and peak RSS (VmHWM) against the ring budget + 64 MiB;
#   4. zero-drop rate for 1 and 2 workers: replay paced with --pps at falling rates; the
#      highest rate at which every run had 0 drops (kernel, inside netpipe-fast and the veth's
#      own rx_dropped).
#
# Medians of RUNS runs (ZERO_RUNS for each zero-drop step). The sender is pinned to SEND_CPU,
# the capture (tcpdump, or the whole netpipe-fast process with one worker) to CAP_CPU; with two
# workers netpipe-fast runs on both CPUs, its second worker beside the sender. Usage, as root:
#
#   scripts/bench-live.sh
#   RUNS=7 LOOPS=100 scripts/bench-live.sh
#   DIRECT_IO=1 scripts/bench-live.sh      # netpipe-fast writes its JSON file with --direct-io
#
# Needs: root, ip (iproute2), taskset, python3, tcpdump, trafgen (Debian package netsniff-ng;
# installed when missing). The machine should be otherwise idle; on a shared one, compare the
# figures measured in the same run rather than absolute rates.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${RUNS:-5}
FRAMES=${FRAMES:-10000}       # unique frames in the generated pcap
LOOPS=${LOOPS:-60}            # passes over it per full-speed run (600,000 frames)
SEND_CPU=${SEND_CPU:-0}
CAP_CPU=${CAP_CPU:-1}
ZERO_RATES=${ZERO_RATES:-"500000 400000 300000 250000 200000 150000 100000 50000"}
ZERO_RUNS=${ZERO_RUNS:-3}
ZERO_SECONDS=${ZERO_SECONDS:-2}
RING_MB=${RING_MB:-64}
DIRECT_IO=${DIRECT_IO:-0}
# DIRECT_IO=1: the JSON file is written with O_DIRECT (README, "--direct-io"); nothing else
# changes.
NP_OUT_FLAGS=()
if [ "$DIRECT_IO" = 1 ]; then
  NP_OUT_FLAGS=(--direct-io)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$(realpath -m "$TARGET_DIR/release/netpipe-fast")
NS_A=np-bench-$$-a
NS_B=np-bench-$$-b
WORK=$(mktemp -d /tmp/np-bench-live.XXXXXX)
FILTER="ether src 02:00:00:00:00:01"

die() {
  printf 'bench-live.sh: %s\n' "$*" >&2
  exit 1
}
step() { printf '\n==> %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, packet sockets)"
if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "${HOME:-/root}/.cargo/env"
fi

missing=()
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
command -v trafgen >/dev/null 2>&1 || missing+=(netsniff-ng)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    </dev/null >/dev/null
fi

step "cargo build --release"
cargo build --release -q

cleanup() {
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step "veth pair $NS_A/va <-> $NS_B/vb"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B"
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
# No IPv6 on the pair: its neighbour discovery would add frames to the counts.
ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$NS_B" sysctl -qw net.ipv6.conf.all.disable_ipv6=1

PCAP=$WORK/frames64.pcap
python3 - "$PCAP" "$FRAMES" <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
out = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)]
for i in range(n):
    # 60 bytes: Ethernet (14) + IPv4 (20) + UDP (8) + 18 bytes of payload; unique per frame,
    # source port varies so a hash fanout spreads the frames.
    payload = struct.pack("!I", i) + b"netpipe-bench"[:14].ljust(14, b".")
    udp = struct.pack("!HHHH", 10000 + (i % 5000), 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frame = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]) + b"\x08\x00" + ip + udp
    assert len(frame) == 60, len(frame)
    out.append(struct.pack("<IIII", 1700000000 + i // 1000000, i % 1000000, 60, 60) + frame)
open(path, "wb").write(b"".join(out))
PY

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.0f}" if v else "n/a")' "$@"; }
veth_rx_dropped() { ip netns exec "$NS_B" cat /sys/class/net/vb/statistics/rx_dropped; }

# replay ARGS... -> prints "sent rate" of the summary line
replay() {
  local err
  err=$(ip netns exec "$NS_A" taskset -c "$SEND_CPU" "$BIN" replay --iface va "$@" 2>&1 >/dev/null) ||
    die "replay failed: $err"
  python3 - "$err" <<'PY'
import re, sys
line = [l for l in sys.argv[1].splitlines() if l.startswith("replay: ")][0]
sent = int(re.search(r"(\d+) frames sent", line).group(1))
rate = float(re.search(r"s, (\d+) frames/s", line).group(1))
print(sent, rate)
PY
}

# Waits (bounded) until FILE has a line matching PATTERN.
wait_for() {
  local file=$1 pattern=$2 i
  for i in $(seq 1 500); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.01
  done
  die "no '$pattern' in $file: $(cat "$file")"
}

# Waits until FILE stops growing (no new bytes for 0.5 s), at most 30 s.
wait_quiet() {
  local file=$1 last=-1 now i
  for i in $(seq 1 60); do
    now=$(stat -c %s "$file" 2>/dev/null || echo 0)
    [ "$now" = "$last" ] && return 0
    last=$now
    sleep 0.5
  done
}

# ---- 1. offered rate ------------------------------------------------------------------------
step "offered rate: replay, $RUNS runs of $((FRAMES * LOOPS)) frames, nobody capturing"
replay_rates=()
for _ in $(seq 1 "$RUNS"); do
  read -r _sent rate < <(replay --loop "$LOOPS" "$PCAP")
  replay_rates+=("$rate")
done
REPLAY_PPS=$(median "${replay_rates[@]}")

step "offered rate: trafgen, $RUNS runs of $((FRAMES * LOOPS)) frames"
trafgen_rates=()
for _ in $(seq 1 "$RUNS"); do
  out=$(ip netns exec "$NS_A" taskset -c "$SEND_CPU" trafgen --dev va -P 1 -n $((FRAMES * LOOPS)) \
    --no-sock-mem --notouch-irq \
    '{ 0x02,0,0,0,0,0x02, 0x02,0,0,0,0,0x01, c16(0x0800), 0x45,0,0,46, 0,0,0x40,0, 64,17,0,0, 192,0,2,1, 192,0,2,2, c16(10000),c16(9),c16(26),0,0, fill(0x2e,18) }' 2>&1) ||
    die "trafgen failed: $out"
  rate=$(python3 - "$out" <<'PY'
import re, sys
t = sys.argv[1]
pk = int(re.search(r"(\d+) packets outgoing", t).group(1))
m = re.search(r"(\d+) sec, (\d+) usec on CPU", t)
print(pk / (int(m.group(1)) + int(m.group(2)) / 1e6))
PY
)
  trafgen_rates+=("$rate")
done
TRAFGEN_PPS=$(median "${trafgen_rates[@]}")

# ---- 2. tcpdump -w /dev/null ----------------------------------------------------------------
step "tcpdump -w /dev/null on vb, replay at full speed, $RUNS runs"
td_drops=()
td_rates=()
for _ in $(seq 1 "$RUNS"); do
  log=$WORK/tcpdump.err
  : >"$log"
  ip netns exec "$NS_B" taskset -c "$CAP_CPU" tcpdump -i vb -n -w /dev/null "$FILTER" 2>"$log" &
  pid=$!
  wait_for "$log" "listening on"
  read -r sent rate < <(replay --loop "$LOOPS" "$PCAP")
  sleep 1 # tcpdump shows no progress to poll; a second is ample for its buffer to drain
  kill -INT "$pid"
  wait "$pid" || true
  drops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$log")
  captured=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$log")
  printf '  tcpdump: sent %s at %.0f/s, captured %s, dropped by kernel %s\n' "$sent" "$rate" \
    "$captured" "$drops" >&2
  td_drops+=("$drops")
  td_rates+=("$rate")
done
TD_DROPS=$(median "${td_drops[@]}")
TD_RATE=$(median "${td_rates[@]}")

# ---- 3 and 4. netpipe-fast ------------------------------------------------------------------
# capture_run WORKERS CPUS REPLAY_ARGS... -> "sent rate captured kernel_drops inside_drops
# written veth_drops cpu_s rss_kib capture_ns,publisher_ns,other_ns"
capture_run() {
  local workers=$1 cpus=$2
  shift 2
  local log=$WORK/capture.err out=$WORK/capture.jsonl
  : >"$log"
  rm -f "$out"
  local veth_before
  veth_before=$(veth_rx_dropped)
  # The whole process (workers and the publisher thread that writes the file) on CPUS, so
  # with one worker it stays off the sender's core, as tcpdump does.
  ip netns exec "$NS_B" taskset -c "$cpus" "$BIN" --iface vb --workers "$workers" --cpus "$cpus" \
    --ring-mb "$RING_MB" --filter "$FILTER" -o "file:$out" "${NP_OUT_FLAGS[@]}" 2>"$log" &
  local pid=$!
  wait_for "$log" "listening on vb"
  local sent rate
  read -r sent rate < <(replay "$@")
  wait_quiet "$out"
  # CPU time (utime + stime, all threads) and peak RSS, read before the process ends.
  local ticks rss split
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # The same time per thread, in ns (schedstat: run time, exact rather than in ticks): the
  # capture worker(s), the publisher that writes the file, and the rest (the coordinating
  # thread, which also opened the rings).
  split=$(for t in /proc/"$pid"/task/*; do
    printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{print $1}' "$t/schedstat")"
  done | awk '$1 ~ /^netpipe-capture/ {c += $2; next} $1 == "netpipe-publish" {p += $2; next}
    {o += $2} END {printf "%d,%d,%d", c, p, o}')
  rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  kill -INT "$pid"
  wait "$pid" || die "capture failed: $(cat "$log")"
  local veth_after
  veth_after=$(veth_rx_dropped)
  python3 - "$(cat "$log")" "$sent" "$rate" "$((veth_after - veth_before))" "$ticks" \
    "$(getconf CLK_TCK)" "$rss" "$split" <<'PY'
import re, sys
log, sent, rate, veth, ticks, hz, rss, split = sys.argv[1:]
line = [l for l in log.splitlines() if "packets captured" in l][0]
num = lambda label: int(re.search(r"(\d+) " + label, line).group(1))
print(sent, rate, num("packets captured"), num("dropped by kernel"),
      num("dropped inside netpipe-fast"), num("written"), veth, int(ticks) / int(hz), rss,
      split)
PY
  rm -f "$out"
}

step "netpipe-fast, 1 worker, JSON to a file, replay at full speed, $RUNS runs"
np_rates=()
np_kdrops=()
np_idrops=()
np_cpu_ns=()
np_rss=()
np_cap_ns=()
np_pub_ns=()
np_other_ns=()
for _ in $(seq 1 "$RUNS"); do
  read -r sent rate captured kdrops idrops written veth cpu_s rss split < <(capture_run 1 "$CAP_CPU" --loop "$LOOPS" "$PCAP")
  IFS=, read -r cap_ns pub_ns other_ns <<<"$split"
  printf '  netpipe-fast: sent %s at %.0f/s, captured %s, written %s, dropped by kernel %s, inside %s, veth rx_dropped %s, cpu %.2f s (ns/packet: capture %d, publisher %d, other %d), peak RSS %s KiB\n' \
    "$sent" "$rate" "$captured" "$written" "$kdrops" "$idrops" "$veth" "$cpu_s" \
    "$((cap_ns / captured))" "$((pub_ns / captured))" "$((other_ns / captured))" "$rss" >&2
  np_cap_ns+=("$((cap_ns / captured))")
  np_pub_ns+=("$((pub_ns / captured))")
  np_other_ns+=("$((other_ns / captured))")
  np_rates+=("$rate")
  np_kdrops+=("$kdrops")
  np_idrops+=("$((idrops + veth))")
  np_cpu_ns+=("$(python3 -c "print($cpu_s * 1e9 / max(1, $captured))")")
  np_rss+=("$rss")
done
NP_RATE=$(median "${np_rates[@]}")
NP_KDROPS=$(median "${np_kdrops[@]}")
NP_IDROPS=$(median "${np_idrops[@]}")
NP_CPU_NS=$(median "${np_cpu_ns[@]}")
NP_RSS=$(median "${np_rss[@]}")
NP_RSS_MAX=$(printf '%s\n' "${np_rss[@]}" | sort -n | tail -1)

# zero_drop_rate WORKERS CPUS -> "REQUESTED ACHIEVED": the highest --pps step at which every
# run had no drop anywhere (kernel, inside, veth) and wrote every frame, with the median rate
# the sender actually reached there (it cannot always reach the rate asked for).
zero_drop_rate() {
  local workers=$1 cpus=$2 pps loops ok achieved
  for pps in $ZERO_RATES; do
    loops=$(((pps * ZERO_SECONDS + FRAMES - 1) / FRAMES))
    ok=1
    achieved=()
    for _ in $(seq 1 "$ZERO_RUNS"); do
      read -r sent rate captured kdrops idrops written veth cpu_s rss _split < <(capture_run "$workers" "$cpus" --pps "$pps" --loop "$loops" "$PCAP")
      printf '  %s worker(s) at --pps %s: sent %s at %.0f/s, captured %s, dropped by kernel %s, inside %s, veth %s\n' \
        "$workers" "$pps" "$sent" "$rate" "$captured" "$kdrops" "$idrops" "$veth" >&2
      achieved+=("$rate")
      if [ "$kdrops" != 0 ] || [ "$idrops" != 0 ] || [ "$veth" != 0 ] || [ "$written" != "$sent" ]; then
        ok=0
        break
      fi
    done
    if [ "$ok" = 1 ]; then
      echo "$pps $(median "${achieved[@]}")"
      return
    fi
  done
  echo "none none"
}

step "zero-drop rate, 1 worker (rates: $ZERO_RATES; $ZERO_RUNS runs of ${ZERO_SECONDS}s each)"
read -r ZERO_1_ASKED ZERO_1 < <(zero_drop_rate 1 "$CAP_CPU")
step "zero-drop rate, 2 workers"
read -r ZERO_2_ASKED ZERO_2 < <(zero_drop_rate 2 "$CAP_CPU,$SEND_CPU")

# ---- results --------------------------------------------------------------------------------
cat <<EOT

## bench-live.sh results ($(date -u '+%Y-%m-%d %H:%M UTC'))

machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr), load before run: see uptime below
code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(rustc --version 2>/dev/null)
anchors: $(tcpdump --version 2>&1 | head -1), $(trafgen -v 2>&1 | head -1)
frames: 60 bytes (64 on a wire with FCS), $FRAMES unique, $((FRAMES * LOOPS)) per full-speed run; sender on CPU $SEND_CPU, capture on CPU $CAP_CPU
netpipe-fast JSON file: $([ "$DIRECT_IO" = 1 ] && echo "--direct-io (O_DIRECT)" || echo "through the page cache")
runs: $RUNS (medians); zero-drop steps: $ZERO_RUNS runs of ${ZERO_SECONDS}s each

| figure | median |
|---|---|
| offered rate, netpipe-fast replay, nobody capturing | $REPLAY_PPS frames/s |
| offered rate, trafgen (anchor) | $TRAFGEN_PPS frames/s |
| replay / trafgen | $(python3 -c "print(f'{$REPLAY_PPS / $TRAFGEN_PPS:.2f}')") |
| tcpdump -w /dev/null: replay rate while it captured | $TD_RATE frames/s |
| tcpdump -w /dev/null: dropped by kernel | $TD_DROPS |
| netpipe-fast 1 worker, JSON file: replay rate while it captured | $NP_RATE frames/s |
| netpipe-fast 1 worker: dropped by kernel | $NP_KDROPS |
| netpipe-fast 1 worker: dropped inside + veth rx_dropped | $NP_IDROPS |
| netpipe-fast 1 worker: CPU per packet (utime+stime / captured) | $NP_CPU_NS ns |
| same, by thread (schedstat run time / captured): capture worker / publisher / other | $(median "${np_cap_ns[@]}") / $(median "${np_pub_ns[@]}") / $(median "${np_other_ns[@]}") ns |
| netpipe-fast 1 worker: peak RSS (VmHWM), median / max | $NP_RSS / $NP_RSS_MAX KiB (limit: ring $RING_MB MiB + 64 MiB = $(((RING_MB + 64) * 1024)) KiB) |
| zero-drop rate, 1 worker: highest step passed (--pps asked) / rate reached | $ZERO_1_ASKED / $ZERO_1 frames/s |
| zero-drop rate, 2 workers: highest step passed (--pps asked) / rate reached | $ZERO_2_ASKED / $ZERO_2 frames/s |

per-run: replay ${replay_rates[*]} | trafgen ${trafgen_rates[*]} | tcpdump drops ${td_drops[*]} | netpipe-fast kernel drops ${np_kdrops[*]}, rates ${np_rates[*]}, cpu ns/pkt ${np_cpu_ns[*]}, rss ${np_rss[*]}
uptime: $(uptime)
EOT
