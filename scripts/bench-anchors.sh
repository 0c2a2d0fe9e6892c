#!/usr/bin/env bash
# Performance figures and their anchors, measured in one run on this machine (PERFORMANCE.md).
#
#   1. `netpipe-fast read pcaps/mixed.pcap -q > /dev/null`, with 1 and 2 workers (hyperfine,
#      median of RUNS runs), and the anchor `tshark -T ek -r pcaps/mixed.pcap > /dev/null`
#      (median of TSHARK_RUNS runs): packets/s = packets / median seconds, and the ratio.
#   1b. The same three on a 10x copy of mixed.pcap (136,200 packets, close to the 140k of the
#      REFERENCE.md anchor), where tshark's ~0.25 s start-up weighs less: the steady-state
#      ratio. And both tools on a one-packet file: their start-up cost.
#   2. The criterion benches (`cargo bench --bench decode_encode`): decode only and decode +
#      JSON encode, one core, median time per pass over the capture.
#   3. Peak RSS of `netpipe-fast read BIG -q > /dev/null` (GNU time -v) on a >= 1 GiB pcap made
#      by scripts/make-big-pcap.py from repeats of mixed.pcap; the file is deleted afterwards.
#
# Then it prints a results table and the machine line. Usage, from anywhere:
#
#   scripts/bench-anchors.sh            # everything
#   RUNS=10 TSHARK_RUNS=5 scripts/bench-anchors.sh
#   SKIP_BIG=1 scripts/bench-anchors.sh # without the 1 GiB memory check
#
# Needs: cargo, python3, hyperfine, tshark, GNU time (/usr/bin/time); installs the missing
# Debian packages when run as root. The machine should be otherwise idle; on a noisy one,
# compare the ratios (measured in the same run) rather than the absolute rates.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${RUNS:-15}
TSHARK_RUNS=${TSHARK_RUNS:-3}
COPIES=${COPIES:-10}
SKIP_BIG=${SKIP_BIG:-0}
BIG_BYTES=${BIG_BYTES:-1073741824}
FIXTURE=pcaps/mixed.pcap
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release/netpipe-fast
# The pre-existing baseline from ../shared/reference/REFERENCE.md section 5 (not measured here).
ORIGINAL_PPS=4000

die() {
  printf 'bench-anchors.sh: %s\n' "$*" >&2
  exit 1
}
step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "${HOME:-/root}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"
[ -f "$FIXTURE" ] || die "$FIXTURE is missing (scripts/gen-pcaps.py writes it)"

# ---- tools ----------------------------------------------------------------------------------

missing=()
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
[ -x /usr/bin/time ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing: ${missing[*]} (install them, or run as root)"
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    </dev/null >&2
fi

work=$(mktemp -d)
big=""
cleanup() {
  rm -rf "$work"
  if [ -n "$big" ]; then rm -f "$big"; fi
}
trap cleanup EXIT

# ---- build ----------------------------------------------------------------------------------

step "cargo build --release"
cargo build --release --bin netpipe-fast >&2
# The tree state being measured (the criterion build below uses the same sources).
revision=$(git describe --always --dirty 2>/dev/null || echo '?')
src_state=$(git diff --stat HEAD -- src 2>/dev/null | tail -n 1)
src_hash=$(git diff HEAD -- src 2>/dev/null | sha256sum | cut -c1-12)

packets=$("$BIN" read "$FIXTURE" | wc -l)
[ "$packets" -gt 0 ] || die "$BIN read $FIXTURE wrote no messages"

# median_s FILE.json INDEX: the median wall time of hyperfine's INDEX-th command, in seconds.
median_s() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"])' "$1" "$2"
}
# rate PACKETS SECONDS: packets/s, rounded.
rate() { python3 -c 'import sys; print(round(int(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
# ratio A B: A / B with one decimal.
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$1" "$2"; }

# ---- 1. the read path and the tshark anchor --------------------------------------------------
# hyperfine -N runs each command without a shell, with stdout and stderr on /dev/null (its
# default --output=null): the same as `COMMAND > /dev/null` minus the shell's start-up noise.

step "hyperfine: netpipe-fast read (-j 1, -j 2), $RUNS runs each"
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$work/read.json" \
  "$BIN read $FIXTURE -q" \
  "$BIN read $FIXTURE -q -j 2" >&2

step "hyperfine: tshark -T ek, $TSHARK_RUNS runs"
hyperfine -N --style basic --warmup 1 --runs "$TSHARK_RUNS" --export-json "$work/tshark.json" \
  "tshark -T ek -r $FIXTURE" >&2
tshark_version=$(tshark --version 2>/dev/null | head -n 1)

read_w1_s=$(median_s "$work/read.json" 0)
read_w2_s=$(median_s "$work/read.json" 1)
tshark_s=$(median_s "$work/tshark.json" 0)
read_w1_pps=$(rate "$packets" "$read_w1_s")
read_w2_pps=$(rate "$packets" "$read_w2_s")
tshark_pps=$(rate "$packets" "$tshark_s")

# ---- 1b. steady state on COPIES x mixed.pcap, and start-up on one packet -----------------------

fixture_bytes=$(stat -c %s "$FIXTURE")
med=$work/mixed-x$COPIES.pcap
med_line=$(python3 scripts/make-big-pcap.py "$FIXTURE" "$med" $((COPIES * (fixture_bytes - 24) + 24)))
med_packets=$(printf '%s\n' "$med_line" | sed -E 's/^[^:]*: ([0-9]+) packets.*/\1/')
step "hyperfine: $COPIES x $FIXTURE ($med_packets packets)"
hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$work/med.json" \
  "$BIN read $med -q" \
  "$BIN read $med -q -j 2" >&2
hyperfine -N --style basic --warmup 0 --runs "$TSHARK_RUNS" --export-json "$work/med-tshark.json" \
  "tshark -T ek -r $med" >&2
med_w1_s=$(median_s "$work/med.json" 0)
med_w2_s=$(median_s "$work/med.json" 1)
med_tshark_s=$(median_s "$work/med-tshark.json" 0)
med_w1_pps=$(rate "$med_packets" "$med_w1_s")
med_w2_pps=$(rate "$med_packets" "$med_w2_s")
med_tshark_pps=$(rate "$med_packets" "$med_tshark_s")

one=$work/one.pcap
python3 - "$FIXTURE" "$one" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
incl = struct.unpack(order + "I", data[32:36])[0]
open(sys.argv[2], "wb").write(data[:40 + incl])
PY
step "hyperfine: start-up (one packet)"
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$work/one.json" \
  "$BIN read $one -q" \
  "tshark -T ek -r $one" >&2
one_s=$(median_s "$work/one.json" 0)
one_tshark_s=$(median_s "$work/one.json" 1)
rm -f "$med"

# ---- 2. criterion: decode only, decode + encode -----------------------------------------------

step "cargo bench --bench decode_encode"
cargo bench --bench decode_encode >&2

# crit NAME: "packets/s milliseconds" from criterion's median time per iteration (one pass
# over the capture) and the element count it recorded.
crit() {
  python3 - "$TARGET_DIR/criterion/mixed.pcap/$1" <<'PY'
import json, sys, os
d = sys.argv[1]
est = json.load(open(os.path.join(d, "new", "estimates.json")))
bench = json.load(open(os.path.join(d, "new", "benchmark.json")))
elements = bench["throughput"]["Elements"]
median_ns = est["median"]["point_estimate"]
print(round(elements / (median_ns / 1e9)), f"{median_ns / 1e6:.3f}")
PY
}
out=$(crit decode)
read -r decode_pps decode_ms <<<"$out"
out=$(crit decode_encode)
read -r decode_encode_pps decode_encode_ms <<<"$out"

# ---- 3. peak RSS on a >= 1 GiB pcap -----------------------------------------------------------

big_line="skipped (SKIP_BIG=1)"
rss_w1_kib=""
rss_w2_kib=""
if [ "$SKIP_BIG" != 1 ]; then
  big=$(mktemp /tmp/netpipe-big.XXXXXX.pcap)
  step "scripts/make-big-pcap.py $FIXTURE $big $BIG_BYTES"
  big_line=$(python3 scripts/make-big-pcap.py "$FIXTURE" "$big" "$BIG_BYTES")
  printf '%s\n' "$big_line" >&2
  big_packets=$(printf '%s\n' "$big_line" | sed -E 's/^[^:]*: ([0-9]+) packets.*/\1/')

  # peak_rss WORKERS: runs the read under GNU time, prints "KiB seconds".
  peak_rss() {
    /usr/bin/time -v -o "$work/time.txt" "$BIN" read "$big" -q -j "$1" >/dev/null
    python3 - "$work/time.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
print(rss, secs)
PY
  }
  step "/usr/bin/time -v netpipe-fast read BIG -q (-j 1, -j 2)"
  out=$(peak_rss 1)
  read -r rss_w1_kib big_w1_s <<<"$out"
  out=$(peak_rss 2)
  read -r rss_w2_kib big_w2_s <<<"$out"
  big_w1_pps=$(rate "$big_packets" "$big_w1_s")
  big_w2_pps=$(rate "$big_packets" "$big_w2_s")
  rm -f "$big"
  big=""
fi

# ---- results --------------------------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1024:.1f}")' "$1"; }

printf '\n## bench-anchors.sh results\n\n'
printf 'machine: %s cores, %s, %s; %s\n' "$(nproc)" "$cpu" "$(uname -srm)" "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
printf 'netpipe-fast %s (%s); %s; %s\n' \
  "$revision" "$(rustc --version)" "$tshark_version" \
  "$(hyperfine --version)"
if [ -n "$src_state" ]; then
  printf 'uncommitted src/ changes measured: %s (diff sha256 %s)\n' "${src_state# }" "$src_hash"
fi
printf 'fixture: %s, %s packets\n\n' "$FIXTURE" "$packets"
printf '| figure | command | median | packets/s | vs tshark -T ek (same run) |\n'
printf '|---|---|---|---|---|\n'
printf '| read, 1 worker | `%s read %s -q > /dev/null` (%s runs) | %.4f s | %s | %sx |\n' \
  "$BIN" "$FIXTURE" "$RUNS" "$read_w1_s" "$read_w1_pps" "$(ratio "$read_w1_pps" "$tshark_pps")"
printf '| read, 2 workers | `%s read %s -q -j 2 > /dev/null` (%s runs) | %.4f s | %s | %sx |\n' \
  "$BIN" "$FIXTURE" "$RUNS" "$read_w2_s" "$read_w2_pps" "$(ratio "$read_w2_pps" "$tshark_pps")"
printf '| anchor: tshark -T ek | `tshark -T ek -r %s > /dev/null` (%s runs) | %.3f s | %s | 1x |\n' \
  "$FIXTURE" "$TSHARK_RUNS" "$tshark_s" "$tshark_pps"
printf '| read, 1 worker, %sx file | `%s read mixed-x%s.pcap -q > /dev/null` (%s runs, %s packets) | %.4f s | %s | %sx |\n' \
  "$COPIES" "$BIN" "$COPIES" "$RUNS" "$med_packets" "$med_w1_s" "$med_w1_pps" "$(ratio "$med_w1_pps" "$med_tshark_pps")"
printf '| read, 2 workers, %sx file | `%s read mixed-x%s.pcap -q -j 2 > /dev/null` (%s runs) | %.4f s | %s | %sx |\n' \
  "$COPIES" "$BIN" "$COPIES" "$RUNS" "$med_w2_s" "$med_w2_pps" "$(ratio "$med_w2_pps" "$med_tshark_pps")"
printf '| anchor: tshark -T ek, %sx file | `tshark -T ek -r mixed-x%s.pcap > /dev/null` (%s runs) | %.3f s | %s | 1x |\n' \
  "$COPIES" "$COPIES" "$TSHARK_RUNS" "$med_tshark_s" "$med_tshark_pps"
printf '| decode only, 1 core | `cargo bench --bench decode_encode` mixed.pcap/decode | %s ms per pass | %s | %sx |\n' \
  "$decode_ms" "$decode_pps" "$(ratio "$decode_pps" "$tshark_pps")"
printf '| decode + JSON (full payload hex), 1 core | `cargo bench --bench decode_encode` mixed.pcap/decode_encode | %s ms per pass | %s | %sx |\n' \
  "$decode_encode_ms" "$decode_encode_pps" "$(ratio "$decode_encode_pps" "$tshark_pps")"
printf '| reference: original (REFERENCE.md 5, not measured here) | kamene + convert_pkt_to_json + json.dumps | | ~%s | |\n' \
  "$ORIGINAL_PPS"
printf '\nvs the original'"'"'s ~%s packets/s (reference figure): read -j 1 %sx, decode+JSON %sx\n' \
  "$ORIGINAL_PPS" "$(ratio "$read_w1_pps" "$ORIGINAL_PPS")" "$(ratio "$decode_encode_pps" "$ORIGINAL_PPS")"
printf '\nstart-up, one-packet file (median of %s): netpipe-fast read %.4f s, tshark -T ek %.3f s\n' \
  "$RUNS" "$one_s" "$one_tshark_s"
printf 'ratios of the decode rows: to the tshark -T ek rate on mixed.pcap (row 3)\n'
if [ "$SKIP_BIG" != 1 ]; then
  printf '\nbig pcap: %s\n\n' "$big_line"
  printf '| big pcap read | peak RSS | wall | packets/s |\n|---|---|---|---|\n'
  printf '| `/usr/bin/time -v %s read BIG -q > /dev/null` | %s KiB (%s MiB) | %.2f s | %s |\n' \
    "$BIN" "$rss_w1_kib" "$(mib "$rss_w1_kib")" "$big_w1_s" "$big_w1_pps"
  printf '| `/usr/bin/time -v %s read BIG -q -j 2 > /dev/null` | %s KiB (%s MiB) | %.2f s | %s |\n' \
    "$BIN" "$rss_w2_kib" "$(mib "$rss_w2_kib")" "$big_w2_s" "$big_w2_pps"
else
  printf '\nbig pcap: %s\n' "$big_line"
fi
