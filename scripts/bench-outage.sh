#!/usr/bin/env bash
# Broker outage under load: RSS of netpipe-fast while Redis is gone for 30 seconds.
#
# A private redis-server (free port, no persistence) takes the output. A feeder writes pcap
# records of pcaps/mixed.pcap into a named pipe at a fixed packet rate (default 100,000/s);
# `netpipe-fast read` reads the pipe and publishes to Redis with the default
# `--when-full spool`. After WARMUP seconds the Redis server is killed (SIGKILL); OUTAGE
# seconds later it is started again on the same port. Every second the script prints the
# process's RSS (VmRSS), the spool's size on disk and the packets fed so far; at the end the
# run's summary (spooled, replayed, dropped).
#
# Usage: scripts/bench-outage.sh [RATE_PER_S] [OUTAGE_S] [WARMUP_S] [AFTER_S] [SPOOL_MB]
# (the messages of pcaps/mixed.pcap average about 1 KB: 100,000/s for 30 s is about 3 GB of
# spool, so SPOOL_MB defaults to 4096 here; the program's own default is 1024).
# Needs: redis-server, python3, a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${1:-100000}
outage=${2:-30}
warmup=${3:-10}
after=${4:-20}
spool_mb=${5:-4096}
total=$((warmup + outage + after))
bin=target/release/netpipe-fast
[ -x "$bin" ] || cargo build --release

work=$(mktemp -d /tmp/npf-bench-outage.XXXXXX)
# The spool refuses a path through a world-writable directory such as /tmp: keep it in target/.
spool="$PWD/target/bench-outage-spool.$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work" "$spool"
}
trap cleanup EXIT

start_redis() {
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >/dev/null 2>&1 &
  redis_pid=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
}

start_redis
mkfifo "$work/in.pcap"
"$bin" read "$work/in.pcap" --output "redis://127.0.0.1:$port/0" --redis-format raw \
  --queue bench_outage --spool-dir "$spool" --spool-mb "$spool_mb" 2>"$work/stderr" &
npf=$!
pids+=("$npf")

# The feeder: the global header once, then records at RATE per second in 10 ms slices; it
# counts what it wrote in $work/fed.
python3 - "$work/in.pcap" "$rate" "$total" "$work/fed" <<'PY' &
import struct, sys, time
path, rate, seconds, fed_path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
data = open("pcaps/mixed.pcap", "rb").read()
header, records, at = data[:24], [], 24
while at + 16 <= len(data):
    caplen = struct.unpack_from("<I", data, at + 8)[0]
    records.append(data[at:at + 16 + caplen])
    at += 16 + caplen
out = open(path, "wb", buffering=0)
out.write(header)
slice_s, per_slice = 0.01, max(1, rate // 100)
start, sent, i, n = time.monotonic(), 0, 0, len(records)
next_t = start
while time.monotonic() - start < seconds:
    chunk = []
    for _ in range(per_slice):
        chunk.append(records[i])
        i = (i + 1) % n
    out.write(b"".join(chunk))
    sent += per_slice
    if sent % (per_slice * 100) == 0:
        open(fed_path, "w").write(str(sent))
    next_t += slice_s
    delay = next_t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
open(fed_path, "w").write(str(sent))
out.close()
PY
feeder=$!
pids+=("$feeder")

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, rate $rate/s, outage ${outage}s after ${warmup}s, --spool-mb $spool_mb"
printf '%4s %8s %10s %10s %s\n' t_s rss_kib spool_kib fed_pkts broker
for t in $(seq 1 "$total"); do
  sleep 1
  if [ "$t" -eq "$warmup" ]; then
    kill -9 "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=
    state=down
  elif [ "$t" -eq $((warmup + outage)) ]; then
    start_redis
    state=up
  fi
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$npf/status" 2>/dev/null || echo gone)
  # Segments come and go while du looks: its complaints do not matter.
  spool=$( (du -sk "$spool" 2>/dev/null || true) | cut -f1)
  fed=$(cat "$work/fed" 2>/dev/null || echo 0)
  printf '%4d %8s %10s %10s %s\n' "$t" "$rss" "$spool" "$fed" "${state:-up}"
done
wait "$feeder" || true
# The pipe is closed: the run sends what is left and ends.
wait "$npf" || true
echo "--- summary of the run"
cat "$work/stderr"
echo "--- in Redis: $(redis-cli -p "$port" llen bench_outage) (the server lost what it held at the kill: no persistence)"
