#!/usr/bin/env bash
# The one test command (README): installs the system packages the tests use, starts the
# brokers the sink tests talk to, then runs rustfmt, clippy and every test target.
# Run from anywhere; it works in the repository root. Idempotent: installs and starts only
# what is missing. .ci/run calls it with NETPIPE_REQUIRE_LIVE=1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started_at=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - started_at))" "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'scripts/test.sh: %s\n' "$*" >&2
  exit 1
}

# Root runs commands directly; anyone else goes through sudo (and only when needed).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for '$*' and sudo is not installed"
  fi
}

# ---------------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------------

pkg_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
  if [ "$apt_updated" -eq 0 ]; then
    info "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    apt_updated=1
  fi
  info "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 "$@" </dev/null
}

# Each entry: package, and a command it provides ("-" when it is a library or module).
# python3-cryptography: scapy's TLS layer (the oracle of tls.pcap) imports key shares with it.
step "system packages"
missing=()
# wireshark-common: capinfos; gzip, zstd, xz-utils, bzip2: the compressed-file tests (-w, read);
# time (/usr/bin/time): peak RSS of big records; util-linux: setpriv for the capability tests;
# groff-base, man-db: the man page tests; redis-tools: redis-cli inside a test's namespace;
# python3-cryptography: scapy's TLS layer (the oracle of the tls fixtures); e2fsprogs, mount:
# the --direct-io full-disk test (a small ext4 image mounted through a loop device).
for entry in libpcap-dev:- python3-scapy:- python3-cryptography:- tshark:tshark \
  wireshark-common:capinfos tcpdump:tcpdump iproute2:ip gzip:gzip zstd:zstd xz-utils:xz bzip2:bzip2 \
  time:/usr/bin/time util-linux:setpriv groff-base:groff man-db:man redis-tools:redis-cli \
  e2fsprogs:mkfs.ext4 mount:mount; do
  pkg=${entry%%:*}
  cmd=${entry#*:}
  if pkg_installed "$pkg" && { [ "$cmd" = - ] || command -v "$cmd" >/dev/null 2>&1; }; then
    info "$pkg: present"
  else
    info "$pkg: missing"
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
# systemd-analyze verifies scripts/netpipe-fast.service (tests/it/operations.rs). The systemd
# package installs without starting anything in a container; where it cannot be installed the
# test says so and skips (a host without systemd is no failure of ours).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt_install systemd || info "systemd-analyze unavailable: the unit verify test will skip"
fi
# python3-scapy lands in the system interpreter; a pyenv or venv python3 earlier on PATH does
# not see it, so say which interpreter the scapy oracle lives in.
if python3 -c 'import scapy' >/dev/null 2>&1; then
  info "scapy: importable by $(command -v python3)"
elif /usr/bin/python3 -c 'import scapy' >/dev/null 2>&1; then
  info "scapy: importable by /usr/bin/python3 only (python3 on PATH is $(command -v python3 || echo none))"
else
  die "python3-scapy is installed but /usr/bin/python3 cannot import scapy"
fi

# ---------------------------------------------------------------------------------------------
# Python virtual environment with kombu (the original's messaging library), from PyPI, for
# tests/it/sink_redis.rs: its consumer must read what we publish. Made once, kept in target/.
# ---------------------------------------------------------------------------------------------

# fresh_venv DIR [--system-site-packages] PACKAGE...: a new virtual environment in DIR (what
# was there is removed) with PACKAGE... from PyPI.
fresh_venv() {
  local dir=$1
  shift
  local venv_args=()
  if [ "${1:-}" = --system-site-packages ]; then
    venv_args+=("$1")
    shift
  fi
  if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  rm -rf "$dir"
  /usr/bin/python3 -m venv "${venv_args[@]}" "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
}

step "kombu virtual environment (target/kombu-venv)"
kombu_venv=target/kombu-venv
if "$kombu_venv/bin/python" -c 'import kombu.transport.redis, redis' >/dev/null 2>&1; then
  info "present"
else
  # kombu's redis extra brings redis-py and what its Redis transport imports.
  fresh_venv "$kombu_venv" 'kombu[redis]'
fi
info "$("$kombu_venv/bin/python" -c 'import kombu, redis; print("kombu", kombu.__version__, "redis-py", redis.__version__)')"

# Community ID reference implementation (Corelight's `communityid` from PyPI) for
# tests/it/community_id.rs, in a venv that also sees the system site packages (python3-scapy, for
# the oracle's dissection).
step "communityid virtual environment (target/communityid-venv)"
cid_venv=target/communityid-venv
if "$cid_venv/bin/python" -c 'import communityid, scapy' >/dev/null 2>&1; then
  info "present"
else
  fresh_venv "$cid_venv" --system-site-packages communityid
fi
info "$("$cid_venv/bin/python" -c 'import importlib.metadata as m; print("communityid", m.version("communityid"))')"

# ---------------------------------------------------------------------------------------------
# Python virtual environment with reference JA3/JA4 implementations from PyPI, for
# tests/it/tls_fingerprints.rs: Salesforce's ja3 (with dpkt) and FoxIO's ja4plus. Made once.
# ---------------------------------------------------------------------------------------------

step "fingerprint virtual environment (target/fingerprint-venv)"
fingerprint_venv=target/fingerprint-venv
if [ -x "$fingerprint_venv/bin/ja3" ] && [ -x "$fingerprint_venv/bin/ja4plus" ]; then
  info "present"
else
  fresh_venv "$fingerprint_venv" ja3 dpkt ja4plus
fi
info "$("$fingerprint_venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^(ja3|ja4plus|dpkt) ' | tr -s ' ' | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
# Rust toolchain
# ---------------------------------------------------------------------------------------------

step "rust toolchain"
if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "${HOME:-/root}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
for component in rustfmt clippy; do
  sub=${component/rustfmt/fmt}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "cargo $sub is missing and rustup is not installed"
    info "rustup component add $component"
    rustup component add "$component"
  fi
done
info "$(cargo --version)"

# ---------------------------------------------------------------------------------------------
# Brokers: Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672
# ---------------------------------------------------------------------------------------------

# True when a Redis server answers PING on 127.0.0.1:6379 (plain bash, no redis-cli needed).
redis_answers() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ $reply == +PONG* ]]' 2>/dev/null
}

# True when an AMQP 0-9-1 broker answers on 127.0.0.1:5672: after the protocol header a broker
# that accepts it sends a method frame, whose first byte (frame type) is 1 (AMQP 0-9-1, 4.2.3).
amqp_answers() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/5672 || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    first=$(head -c 1 <&3 | od -An -tu1 | tr -d " \n")
    [ "$first" = 1 ]' 2>/dev/null
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second until it succeeds,
# failing after SECONDS.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "$what did not become ready within ${limit}s"
    fi
    sleep 0.5
  done
}

step "Redis on 127.0.0.1:6379"
if redis_answers; then
  info "already answering"
else
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  # Installing the package may have started its own service.
  if ! redis_answers; then
    info "starting redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  fi
  wait_until 30 "Redis" redis_answers
  info "ready"
fi

# Waits for the node with rabbitmqctl (bounded), then for the AMQP port itself.
rabbit_ready() {
  as_root timeout 15 rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1 || true
  amqp_answers
}

step "RabbitMQ on 127.0.0.1:5672"
if amqp_answers; then
  info "already answering"
else
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    apt_install rabbitmq-server
  fi
  # A node named after the container's host name may not resolve; where the Debian config
  # does not name the node, pin it (and the listener) to the loopback interface.
  if ! grep -qs '^[[:space:]]*NODENAME=' /etc/rabbitmq/rabbitmq-env.conf; then
    export RABBITMQ_NODENAME=rabbit@localhost
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export ERL_EPMD_ADDRESS=127.0.0.1
  fi
  if ! amqp_answers; then
    info "starting rabbitmq-server"
    as_root rabbitmq-server -detached </dev/null
  fi
  wait_until 180 "RabbitMQ" rabbit_ready
  info "ready"
fi

# RabbitMQ Streams (tests/it/rabbit_streams.rs): the stream protocol plugin on port 5552.
# `rabbitmq-plugins enable` is idempotent and applies to the running node at once.
stream_answers() { (exec 3<>/dev/tcp/127.0.0.1/5552) 2>/dev/null; }
step "RabbitMQ stream plugin on 127.0.0.1:5552"
if stream_answers; then
  info "already answering"
else
  as_root timeout 60 rabbitmq-plugins enable rabbitmq_stream >/dev/null
  wait_until 60 "the RabbitMQ stream port" stream_answers
  info "ready"
fi

# ---------------------------------------------------------------------------------------------
# record: Python virtual environment with pandas, for tests/it/record.rs (its oracle,
# tests/record/pandas_oracle.py, builds the CSV the original recorder's way with
# json_normalize) and scripts/bench-record.sh. Made once, kept in target/.
# ---------------------------------------------------------------------------------------------

step "pandas virtual environment (target/pandas-venv)"
pandas_venv=target/pandas-venv
if "$pandas_venv/bin/python" -c 'import pandas' >/dev/null 2>&1; then
  info "present"
else
  fresh_venv "$pandas_venv" pandas
fi
info "$("$pandas_venv/bin/python" -c 'import pandas; print("pandas", pandas.__version__)')"

# ---------------------------------------------------------------------------------------------
# Python virtual environment with prometheus_client (the Prometheus project's own Python
# client) for tests/it/metrics.rs: its parser, not a regex, reads what `--metrics` serves.
# ---------------------------------------------------------------------------------------------

step "prometheus_client virtual environment (target/prom-venv)"
prom_venv=target/prom-venv
if "$prom_venv/bin/python" -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
  info "present"
else
  fresh_venv "$prom_venv" prometheus_client
fi
info "$("$prom_venv/bin/python" -c 'import prometheus_client; print("prometheus_client", prometheus_client.__version__)' 2>/dev/null || echo prometheus_client)"
# The progress-bar test gives `read` a pseudo-terminal with script(1) (util-linux).
command -v script >/dev/null 2>&1 || apt_install bsdutils

# ---------------------------------------------------------------------------------------------
# TLS tests (tests/it/sink_tls.rs): openssl makes their CA and certificates; they start their own
# redis-server (with a TLS port: Debian's build links OpenSSL) and RabbitMQ node.
# ---------------------------------------------------------------------------------------------

step "openssl (TLS test certificates)"
if command -v openssl >/dev/null 2>&1; then
  info "present: $(openssl version)"
else
  apt_install openssl
fi
# Read whole outputs first: with pipefail, `cmd | grep -q` fails when grep exits at its first
# match and cmd then dies of SIGPIPE (it did, under load).
redis_help=$(redis-server --help 2>&1 || true)
redis_libs=$(ldd "$(command -v redis-server)" 2>/dev/null || true)
if [[ $redis_help != *--tls-port* && $redis_libs != *libssl* ]]; then
  die "this redis-server has no TLS support; tests/it/sink_tls.rs needs one built with TLS"
fi

# ---------------------------------------------------------------------------------------------
# Broker outage tests (tests/it/sink_outage.rs): they start private redis-server and RabbitMQ
# nodes of their own (installed above), feed the binary through named pipes (mkfifo) and
# pause a broker with kill -STOP/-CONT (/usr/bin/kill, from procps).
# ---------------------------------------------------------------------------------------------

step "outage test tools (mkfifo, kill)"
command -v mkfifo >/dev/null 2>&1 || apt_install coreutils
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || apt_install procps
info "ready"

# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# The library as an embedder who wants decoding only gets it (README "As a library"): no async
# runtime, TLS or libpcap in the tree, and it builds, lints and tests on its own. Debug builds:
# cheap next to the release test run below.
step "library without default features (decode, encode, file reading)"
heavy=$(cargo tree --no-default-features -e normal --prefix none)
heavy=$(grep -E '^(tokio|lapin|rustls|pcap|libloading) ' <<<"$heavy" || true)
[ -z "$heavy" ] || die "--no-default-features still pulls in: $(tr '\n' ' ' <<<"$heavy")"
info "no tokio, lapin, rustls, pcap or libloading in: cargo tree --no-default-features -e normal"
cargo clippy --no-default-features --lib --examples -- -D warnings
# Each feature on its own builds warning-free too (the dependencies are already checked by the
# clippy step above, so this re-checks only the crate).
for feature in bpf capture brokers; do
  info "cargo clippy --no-default-features --features $feature --lib"
  cargo clippy -q --no-default-features --features "$feature" --lib -- -D warnings
done

step "cargo doc --no-deps, warnings denied (default and no default features)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features

step "cargo test --release --all-targets (and documentation examples)"
# Tests run optimised (the 10^5-message broker runs and the big-record test need it), but
# without the release profile's fat LTO and single codegen unit: linking the test binaries
# with fat LTO took most of the run's time (the integration tests are one binary, tests/it, with
# the `test-util` feature through the crate's dev-dependency on itself). The shipped binary
# (scripts/run.sh, install.sh) keeps fat LTO and has no `test-util`.
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
log=$(mktemp)
# Tests that skip themselves (no root, no namespaces, no systemd-analyze, no ../shared) append
# one "skipping WHAT: WHY" line here (tests/it/common: note_skip); counted at the end.
NETPIPE_SKIP_LOG=$(mktemp)
export NETPIPE_SKIP_LOG
trap 'rm -f "$log" "$NETPIPE_SKIP_LOG"' EXIT
# --no-fail-fast: one failing test binary does not hide the others' results. The integration
# tests are one binary; the live capture tests in it (live_capture, live_ring, metrics: rates,
# kernel counters and scrapes taken while a capture runs) run as a group of their own, after
# the rest, so that they share the 2 cores of a CI machine only with each other, as they did
# when each test file was its own binary (run with the broker and corpus tests, they failed
# by output lag and counter races). Each test still runs once: the count below is unchanged.
live_modules=(live_capture:: live_ring:: metrics::)
cargo test --release --lib --bins --examples --benches --no-fail-fast 2>&1 | tee "$log"
cargo test --release --test alloc --no-fail-fast 2>&1 | tee -a "$log"
cargo test --release --test it --no-fail-fast -- "${live_modules[@]/#/--skip=}" 2>&1 | tee -a "$log"
cargo test --release --test it --no-fail-fast -- "${live_modules[@]}" 2>&1 | tee -a "$log"
# --all-targets leaves out documentation examples; they are part of "everything".
cargo test --release --doc 2>&1 | tee -a "$log"

# The library without default features, and both examples, in the release profile of the
# run above (its dependencies and the examples are built already).
step "library tests without default features; examples (built and run)"
cargo test --release --no-default-features --lib 2>&1 | tee -a "$log"
# decode_buffer needs no feature; it checks its own steps and prints one JSON message.
example_out=$(cargo run -q --release --no-default-features --example decode_buffer)
[[ $example_out == '{"data":{"ether":'*'"qname":"example.com."'*'"source":"example-host"'* ]] ||
  die "examples/decode_buffer.rs printed an unexpected message: $example_out"
info "decode_buffer: one DNS query decoded, encoded, filtered and read back"
# appliance_sink embeds the engine with a Sink of its own and compares what it received with a
# frame-by-frame decode of the same file; mixed.pcap holds 13,620 frames.
example_out=$(cargo run -q --release --example appliance_sink)
[[ $example_out == *"ok: 13620 messages"* ]] ||
  die "examples/appliance_sink.rs: unexpected output: $example_out"
info "appliance_sink: $(tail -n 1 <<<"$example_out")"

# One closing line for the whole run, added up over every test binary.
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i }
  } END { print p + 0, f + 0 }' "$log")

skipped=$(wc -l <"$NETPIPE_SKIP_LOG")

step "all checks passed in $((SECONDS - started_at))s"
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped themselves"
if [ "$skipped" -gt 0 ]; then
  # Passed, but did not test what they are for (NETPIPE_REQUIRE_LIVE=1, as in CI, makes most
  # of them fail instead).
  sort "$NETPIPE_SKIP_LOG" | uniq -c | sed 's/^/    /'
fi
