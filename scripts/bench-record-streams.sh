#!/usr/bin/env bash
# `record` from each stream (issue 10: at least 150,000 msg/s of the recorder's CPU time on one
# core), beside its anchors measured in the same run (PERFORMANCE.md, "Recorder from streams"):
#   file    record --input file:messages.jsonl           (the same messages, no broker: what
#                                                         flattening and writing cost alone)
#   redis   record --input redis://... --redis-mode stream --group G --consumer c1
#   rabbit  record --input rabbitmq-stream://... --reader-name R
# for the binary under test (BIN) and, if given, a baseline binary (BASE_BIN, e.g. built from
# an older commit), alternating per run so both see the same load. Each stream is filled once
# by `netpipe-fast read BIG -o ...` (BIG: pcaps/mixed.pcap repeated to BIG_MB); every run reads
# all of it with a new group / reader name, and its row count is checked. Figures: messages per
# CPU second of the recorder (user + system, GNU time), median of RUNS runs.
# Brokers are private to the script (a redis-server and a RabbitMQ node on free ports).
# Output goes to OUT_DIR (default /dev/shm when writable: no disk waits in the figures).
#
# Usage: [RUNS=5] [BIG_MB=170] [BASE_BIN=path] scripts/bench-record-streams.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${RUNS:-5}
BIG_MB=${BIG_MB:-170}
BIN=${BIN:-target/release/netpipe-fast}
BASE_BIN=${BASE_BIN:-}
die() {
  printf 'bench-record-streams.sh: %s\n' "$*" >&2
  exit 1
}
[ -x "$BIN" ] || die "$BIN is missing: cargo build --release"
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "$BASE_BIN is missing"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "rabbitmq-server is not installed"

work=$(mktemp -d /tmp/npf-bench-record.XXXXXX)
out_base=${OUT_DIR:-}
if [ -z "$out_base" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then out_base=/dev/shm; else out_base=$work; fi
fi
out=$(mktemp -d "$out_base/npf-bench-record-out.XXXXXX")
redis_pid=
rabbit_child=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  if [ -f "$work/rabbit/pid" ]; then
    kill -TERM "$(cat "$work/rabbit/pid")" 2>/dev/null || true
  fi
  if [ -n "$rabbit_child" ]; then
    for _ in $(seq 1 120); do kill -0 "$rabbit_child" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$rabbit_child" 2>/dev/null || true
  fi
  rm -rf "$work" "$out"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "==> inputs"
python3 scripts/make-big-pcap.py pcaps/mixed.pcap "$work/big.pcap" $((BIG_MB << 20))
"$BIN" read "$work/big.pcap" -q >"$work/big.jsonl"
n=$(wc -l <"$work/big.jsonl")
echo "    $n messages, $(($(wc -c <"$work/big.jsonl") / n)) bytes each on average"

echo "==> private redis-server"
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_pid=$(cat "$work/redis.pid")

echo "==> private RabbitMQ node"
mkdir -p "$work/rabbit"
aport=$(free_port)
sport=$(free_port)
cat >"$work/rabbit/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$aport
stream.listeners.tcp.1 = 127.0.0.1:$sport
stream.advertised_host = 127.0.0.1
stream.advertised_port = $sport
default_user = bench
default_pass = bench
CONF
echo "[rabbitmq_stream]." >"$work/rabbit/enabled_plugins"
RABBITMQ_NODENAME="npf-rbench-$$@localhost" RABBITMQ_DIST_PORT="$(free_port)" \
  RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbit/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" RABBITMQ_LOG_BASE="$work/rabbit/log" \
  RABBITMQ_PID_FILE="$work/rabbit/pid" \
  /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$work/rabbit/out.log" 2>&1 &
rabbit_child=$!
for _ in $(seq 1 240); do
  (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break
  sleep 0.5
done
(exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null || die "RabbitMQ did not start: $(tail -5 "$work/rabbit/out.log")"
redis_url="redis://127.0.0.1:$rport/0"
stream_url="rabbitmq-stream://bench:bench@127.0.0.1:$sport"

echo "==> filling the streams"
"$BIN" read -q "$work/big.pcap" -o "$redis_url" --redis-mode stream --queue npf_rec
[ "$(redis-cli -p "$rport" xlen npf_rec)" = "$n" ] || die "redis stream: XLEN is not $n"
"$BIN" read -q "$work/big.pcap" -o "$stream_url" --queue npf_rec --producer-name fill

# one KIND BINARY TAG: one recording; appends "msg-per-cpu-second" to $work/KIND-TAG.
one() {
  local kind=$1 bin=$2 tag=$3 i=$4
  rm -rf "$out/r" && mkdir "$out/r"
  local input=()
  case $kind in
    file) input=(--input "file:$work/big.jsonl") ;;
    redis) input=(--input "$redis_url" --redis-mode stream --queue npf_rec --group "g-$tag-$i" --consumer c1) ;;
    rabbit) input=(--input "$stream_url" --queue npf_rec --reader-name "r-$tag-$i") ;;
  esac
  /usr/bin/time -f "%U %S" -o "$work/time" "$bin" record -q "${input[@]}" \
    --save-after-num 10000 --stop-after-num "$n" --output-csv "$out/r/r.csv" \
    --archive-json "$out/r/r.json" --stop-file "$work/never"
  local rows=$(($(wc -l <"$out/r/r.csv") - 1))
  [ "$rows" = "$n" ] || die "$kind with $bin: $rows rows, $n expected"
  awk -v n="$n" '{printf "%.0f\n", n / ($1 + $2)}' "$work/time" >>"$work/$kind-$tag"
}

bins=("new:$BIN")
[ -n "$BASE_BIN" ] && bins+=("base:$BASE_BIN")
for i in $(seq 1 "$RUNS"); do
  echo "==> run $i of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for kind in file redis rabbit; do
    for b in "${bins[@]}"; do
      one "$kind" "${b#*:}" "${b%%:*}" "$i"
    done
  done
done

echo
echo "== record, messages per CPU second (user+sys), median of $RUNS runs; $n messages;"
echo "   $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), output in $out_base"
for kind in file redis rabbit; do
  for b in "${bins[@]}"; do
    tag=${b%%:*}
    printf '%-7s %-5s %9s msg/s   runs: %s\n' "$kind" "$tag" "$(median <"$work/$kind-$tag")" \
      "$(tr '\n' ' ' <"$work/$kind-$tag")"
  done
done
ratio() { awk -v a="$(median <"$work/$1")" -v b="$(median <"$work/$2")" 'BEGIN {printf "%.2f", a / b}'; }
echo "ratios: redis/file (new) $(ratio redis-new file-new), rabbit/file (new) $(ratio rabbit-new file-new)"
if [ -n "$BASE_BIN" ]; then
  echo "        new/base: file $(ratio file-new file-base), redis $(ratio redis-new redis-base), rabbit $(ratio rabbit-new rabbit-base)"
fi
