#!/usr/bin/env bash
# Publishing figures and their anchors, measured in one run on this machine (PERFORMANCE.md,
# section "Publishing"). Every broker here is private to the script: a redis-server and a
# RabbitMQ node on free ports, with their own data folders, stopped at the end; the shared
# brokers on 6379/5672 are not touched.
#
# Per run (RUNS runs, medians reported):
#   Redis  1. redis-benchmark -t lpush -d 400 -P 64 (the anchor: pipelined LPUSH, 1 value each)
#          2. netpipe-fast read BIG --redis-format raw    (BIG: mixed.pcap repeated, ~313k msgs)
#          3. netpipe-fast read BIG --redis-format kombu
#          4. the original's path: one kombu publish per message (scripts/bench/kombu_publish.py)
#   Redis streams (issue 10):
#          s1. redis-benchmark -P 64 XADD key MAXLEN ~ 10000000 * msg <AVG bytes> (the anchor:
#              pipelined XADD of a value the size of the average packet message)
#          s2. netpipe-fast read BIG -o redis://... --redis-mode stream (pipelined XADD)
#          s3. netpipe-fast record from that stream (--redis-mode stream --group): CPU time
#              per message of the recorder (user + system, GNU time), one core
#   AMQP   5. netpipe-fast read AMQP_PCAP -o amqp://... (publisher confirms)
#          6. the same with --no-confirms
#          7. the original's path into RabbitMQ (kombu, one publish per message)
#   Stream 8. netpipe-fast read AMQP_PCAP -o rabbitmq-stream://... (confirmed, deduplicating
#             producer; a new stream per run), compared with 5.
#          9. netpipe-fast record --input rabbitmq-stream://... of that stream: messages per
#             second of its CPU time (user + system)
# with the broker's CPU time over each netpipe-fast run (100% = one core busy) from
# /proc/PID/stat, and CPU microseconds per message of the broker and of netpipe-fast (GNU
# time): on a shared machine the per-message CPU costs say more than the wall-clock rates. Every netpipe-fast run is checked: the list length / the queue's message
# count equals the packets read.
#
# Usage:  scripts/bench-publish.sh                 RUNS=5 by default
#         RUNS=3 BIG_MB=100 AMQP_MB=20 KOMBU_COUNT=2000 scripts/bench-publish.sh
#         SECTIONS="amqp stream" scripts/bench-publish.sh   (only those parts; default all three:
#         redis amqp stream; stream's ratio needs amqp in the same run)
# Needs: a release build (cargo build --release), redis-server, redis-benchmark,
# rabbitmq-server, python3, target/kombu-venv (scripts/test.sh makes it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${RUNS:-5}
SECTIONS=${SECTIONS:-redis amqp stream}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
BIG_MB=${BIG_MB:-100}
AMQP_MB=${AMQP_MB:-20}
KOMBU_COUNT=${KOMBU_COUNT:-2000}
BENCH_N=${BENCH_N:-1000000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release/netpipe-fast
PY=target/kombu-venv/bin/python

die() {
  printf 'bench-publish.sh: %s\n' "$*" >&2
  exit 1
}
for cmd in redis-server redis-benchmark redis-cli python3; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed"
done
[ -x "$BIN" ] || die "$BIN is missing: cargo build --release"
[ -x "$PY" ] || die "$PY is missing: run scripts/test.sh (it makes the kombu venv)"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "rabbitmq-server is not installed"

work=$(mktemp -d /tmp/npf-bench-publish.XXXXXX)
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
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks (user + system) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "==> inputs"
python3 scripts/make-big-pcap.py pcaps/mixed.pcap "$work/big.pcap" $((BIG_MB << 20))
python3 scripts/make-big-pcap.py pcaps/mixed.pcap "$work/amqp.pcap" $((AMQP_MB << 20))
big_n=$("$BIN" read "$work/big.pcap" -q | wc -l)
amqp_n=$("$BIN" read "$work/amqp.pcap" -q | wc -l)
"$BIN" read pcaps/mixed.pcap -q >"$work/messages.jsonl"
echo "    big.pcap: $big_n messages, amqp.pcap: $amqp_n messages"
avg_bytes=$(awk '{s += length($0)} END {printf "%d", s / NR}' "$work/messages.jsonl")
xadd_value=$(head -c "$avg_bytes" </dev/zero | tr '\0' x)
echo "    average packet message: $avg_bytes bytes"

echo "==> private redis-server"
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_pid=$(cat "$work/redis.pid")
R() { redis-cli -p "$rport" "$@"; }

echo "==> private RabbitMQ node"
mkdir -p "$work/rabbit"
aport=$(free_port)
sport=$(free_port)
cat >"$work/rabbit/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$aport
stream.listeners.tcp.1 = 127.0.0.1:$sport
stream.advertised_host = 127.0.0.1
stream.advertised_port = $sport
default_user = bench
default_pass = bench
EOF
echo "[rabbitmq_stream]." >"$work/rabbit/enabled_plugins"
RABBITMQ_NODENAME="npf-bench-$$@localhost" RABBITMQ_DIST_PORT="$(free_port)" \
  RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbit/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" RABBITMQ_LOG_BASE="$work/rabbit/log" \
  RABBITMQ_PID_FILE="$work/rabbit/pid" \
  /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$work/rabbit/out.log" 2>&1 &
rabbit_child=$!
for _ in $(seq 1 240); do
  (exec 3<>"/dev/tcp/127.0.0.1/$aport") 2>/dev/null && break
  sleep 0.5
done
(exec 3<>"/dev/tcp/127.0.0.1/$aport") 2>/dev/null || die "RabbitMQ did not start: $(tail -5 "$work/rabbit/out.log")"
for _ in $(seq 1 120); do
  (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break
  sleep 0.5
done
beam_pid=$(cat "$work/rabbit/pid")
stream_url="rabbitmq-stream://bench:bench@127.0.0.1:$sport"
amqp_url="amqp://bench:bench@127.0.0.1:$aport/"
Q=npf_bench
amqp_drop() {
  "$PY" tests/kombu/consume_amqp.py --url "$amqp_url" --queue "$Q" --exchange "$Q" \
    --routing-key "$Q" --delete >/dev/null
}
amqp_count() {
  "$PY" - "$amqp_url" "$Q" <<'PYEOF'
import sys
from kombu import Connection
with Connection(sys.argv[1]) as c:
    print(c.default_channel.queue_declare(sys.argv[2], passive=True).message_count)
PYEOF
}

# run_netpipe NAME PCAP EXPECTED BROKER_PID CHECK_CMD -- ARGS...: one timed run; appends
# "rate cpu%" to $work/NAME.
run_netpipe() {
  local name=$1 pcap=$2 want=$3 bpid=$4 check=$5
  shift 6
  local t0 s0 s1 t1 got
  t0=$(ticks "$bpid")
  s0=$(now)
  /usr/bin/time -f "%U %S" -o "$work/time" "$BIN" read "$pcap" -q "$@"
  s1=$(now)
  got=$($check)
  # Without confirms the run ends when the messages are on the socket, not in the queue: the
  # clock stops only once the broker holds them all (polled; the poll's own ~0.3 s included).
  local deadline=$((SECONDS + 120))
  while [ "$got" != "$want" ] && [ "$SECONDS" -lt "$deadline" ]; do
    got=$($check)
    s1=$(now)
  done
  t1=$(ticks "$bpid")
  [ "$got" = "$want" ] || die "$name: $got messages at the broker, $want expected"
  # rate, broker CPU %, broker CPU µs per message, netpipe-fast CPU µs per message
  awk -v n="$want" -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
    -v ours="$(awk '{print $1 + $2}' "$work/time")" \
    'BEGIN {printf "%.0f %.0f %.2f %.2f\n", n / (b - a), 100 * (t1 - t0) / hz / (b - a),
            1e6 * (t1 - t0) / hz / n, 1e6 * ours / n}' >>"$work/$name"
}
redis_len() { R llen "$Q"; }
stream_len() { R xlen "$Q"; }

# A stream has no exact message count to ask for: netpipe-fast exits non-zero (ending this
# script) unless every message was confirmed, and `record_stream` then reads all of them back.
stream_count() { echo "$amqp_n"; }

# record_stream RUN: `record` reads the run's stream to its end; appends "rate-per-cpu-second"
# (user + system time of the recorder) to $work/stream_record.
record_stream() {
  local run=$1 rec="$work/rec-$1"
  mkdir -p "$rec"
  /usr/bin/time -f "%U %S" -o "$work/rtime" "$BIN" record --input "$stream_url" \
    --queue "${Q}_stream_$run" --reader-name "bench-$run" --stop-after-num "$amqp_n" \
    --save-after-num 10000 --output-csv "$rec/out.csv" --archive-json "$rec/out.json" -q
  local rows
  rows=$(($(wc -l <"$rec/out.csv") - 1))
  [ "$rows" = "$amqp_n" ] || die "record from the stream: $rows rows, $amqp_n expected"
  awk -v n="$amqp_n" '{printf "%.0f - - %.2f\n", n / ($1 + $2), 1e6 * ($1 + $2) / n}' \
    "$work/rtime" >>"$work/stream_record"
  rm -rf "$rec"
}

for run in $(seq 1 "$RUNS"); do
  echo "==> run $run of $RUNS"
  if want redis; then
  R flushall >/dev/null
  redis-benchmark -p "$rport" -t lpush -d 400 -P 64 -n "$BENCH_N" -q --csv |
    awk -F'"' '/LPUSH/ {printf "%.0f - - -\n", $4}' >>"$work/redis_benchmark"
  R flushall >/dev/null
  run_netpipe redis_raw "$work/big.pcap" "$big_n" "$redis_pid" redis_len -- \
    -o "redis://127.0.0.1:$rport/0" --redis-format raw --queue "$Q"
  R flushall >/dev/null
  run_netpipe redis_kombu "$work/big.pcap" "$big_n" "$redis_pid" redis_len -- \
    -o "redis://127.0.0.1:$rport/0" --redis-format kombu --queue "$Q" --exchange "$Q" \
    --routing-key "$Q"
  R flushall >/dev/null
  "$PY" scripts/bench/kombu_publish.py --url "redis://127.0.0.1:$rport/0" \
    --file "$work/messages.jsonl" --count "$KOMBU_COUNT" --queue "$Q" --exchange "$Q" \
    --routing-key "$Q" | python3 -c 'import json,sys; print("%.0f - - -" % json.load(sys.stdin)["rate"])' \
    >>"$work/redis_original"
  R flushall >/dev/null
  redis-benchmark -p "$rport" -P 64 -n "$BENCH_N" -q --csv \
    XADD npf_bench_xadd MAXLEN '~' 10000000 '*' msg "$xadd_value" |
    awk -F'"' '/XADD/ {printf "%.0f - - -\n", $4}' >>"$work/redis_benchmark_xadd"
  R flushall >/dev/null
  run_netpipe redis_stream "$work/big.pcap" "$big_n" "$redis_pid" stream_len -- \
    -o "redis://127.0.0.1:$rport/0" --redis-mode stream --queue "$Q"
  rm -rf "$work/recording" && mkdir "$work/recording"
  /usr/bin/time -f "%U %S" -o "$work/time" "$BIN" record -q \
    --input "redis://127.0.0.1:$rport/0" --redis-mode stream --queue "$Q" --group bench \
    --consumer c1 --save-after-num 10000 --stop-after-num "$big_n" \
    --output-csv "$work/recording/r.csv" --archive-json "$work/recording/r.json" \
    --stop-file "$work/recording/r.stop"
  [ "$(R xpending "$Q" bench | head -1)" = 0 ] || die "record_stream: entries left pending"
  awk -v n="$big_n" '{printf "%.0f - - %.2f\n", n / ($1 + $2), 1e6 * ($1 + $2) / n}' \
    "$work/time" >>"$work/record_stream_cpu"
  rm -rf "$work/recording"
  R flushall >/dev/null
  fi

  if want amqp; then
  amqp_drop
  run_netpipe amqp_confirms "$work/amqp.pcap" "$amqp_n" "$beam_pid" amqp_count -- \
    -o "$amqp_url" --queue "$Q" --exchange "$Q" --routing-key "$Q"
  amqp_drop
  run_netpipe amqp_no_confirms "$work/amqp.pcap" "$amqp_n" "$beam_pid" amqp_count -- \
    -o "$amqp_url" --queue "$Q" --exchange "$Q" --routing-key "$Q" --no-confirms
  amqp_drop
  "$PY" scripts/bench/kombu_publish.py --url "$amqp_url" \
    --file "$work/messages.jsonl" --count "$KOMBU_COUNT" --queue "$Q" --exchange "$Q" \
    --routing-key "$Q" | python3 -c 'import json,sys; print("%.0f - - -" % json.load(sys.stdin)["rate"])' \
    >>"$work/amqp_original"
  amqp_drop
  fi

  if want stream; then
  run_netpipe stream_confirms "$work/amqp.pcap" "$amqp_n" "$beam_pid" stream_count -- \
    -o "$stream_url" --queue "${Q}_stream_$run" --producer-name "bench-$run"
  record_stream "$run"
  fi
done

med() {
  [ -f "$work/$1" ] || { echo -; return; }
  if grep -q -- ' -' "$work/$1"; then [ "$2" = 1 ] && cut -d' ' -f1 "$work/$1" | median || echo -; else cut -d' ' -f"$2" "$work/$1" | median; fi
}
all() { cut -d' ' -f1 "$work/$1" | tr '\n' ' '; }
echo
echo "== medians of $RUNS runs ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-18s %10s %8s %12s %12s   %s\n' "what" "msg/s" "broker" "broker µs/msg" "ours µs/msg" "all runs (msg/s)"
for name in redis_benchmark redis_raw redis_kombu redis_original redis_benchmark_xadd redis_stream \
  record_stream_cpu amqp_confirms amqp_no_confirms amqp_original stream_confirms stream_record; do
  [ -f "$work/$name" ] || continue
  printf '%-18s %10s %7s%% %12s %12s   %s\n' "$name" "$(med "$name" 1)" "$(med "$name" 2)" \
    "$(med "$name" 3)" "$(med "$name" 4)" "$(all "$name")"
done
ratio() {
  if [ -f "$work/$1" ] && [ -f "$work/$2" ]; then
    awk -v a="$(med "$1" 1)" -v b="$(med "$2" 1)" 'BEGIN {printf "%.2f", a / b}'
  else
    echo "- (not measured)"
  fi
}
echo
echo "ratios (medians):"
echo "  redis raw   / redis-benchmark LPUSH ops/s : $(ratio redis_raw redis_benchmark)"
echo "  redis kombu / redis-benchmark LPUSH ops/s : $(ratio redis_kombu redis_benchmark)"
echo "  redis raw   / original kombu publish      : $(ratio redis_raw redis_original)"
echo "  redis kombu / original kombu publish      : $(ratio redis_kombu redis_original)"
echo "  redis stream / redis-benchmark XADD ops/s : $(ratio redis_stream redis_benchmark_xadd) (target >= 0.6)"
echo "  record from the stream, msg per CPU second : $(med record_stream_cpu 1) (target >= 150000)"
echo "  amqp confirmed / original kombu publish   : $(ratio amqp_confirms amqp_original)"
echo "  amqp confirmed / amqp confirms off        : $(ratio amqp_confirms amqp_no_confirms)"
echo "  stream confirmed / amqp confirmed         : $(ratio stream_confirms amqp_confirms)"
echo "messages: redis $big_n per run, amqp $amqp_n per run, original path $KOMBU_COUNT per run"
