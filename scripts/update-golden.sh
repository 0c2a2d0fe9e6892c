#!/usr/bin/env bash
# Regenerates tests/golden/<capture>.jsonl for every capture in pcaps/ with the release binary
# (`netpipe-fast read FILE`, SOURCE_HOST unset so "source" is "localdev"). A capture whose run
# does not exit 0 also gets tests/golden/<capture>.exit with its exit code, which
# tests/it/golden.rs then expects. Review `git diff tests/golden` before committing: the golden
# files are the reviewed contract, not whatever the decoder prints today.
#
# So that a regression is not blessed by accident, nothing is replaced unless:
# - the scapy oracle (tests/oracle/compare.py, Debian's python3-scapy) finds no difference
#   between the new output and scapy's view of every capture;
# - no capture gets a new or changed exit code (a new tests/golden/<capture>.exit): a capture
#   that stops decoding is a regression until a person says otherwise, by writing the .exit
#   file by hand after review.
# Afterwards it prints `git diff --stat` of tests/golden.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "${HOME:-/root}/.cargo/env"
fi

echo "==> cargo build --release --bin netpipe-fast"
cargo build --release --bin netpipe-fast
bin="${CARGO_TARGET_DIR:-target}/release/netpipe-fast"
[ -x "$bin" ] || { echo "update-golden: $bin was not built" >&2; exit 1; }

# Same rule as tests/it/golden.rs: a capture is a file with a pcap or pcapng magic number.
is_capture() {
  case "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" in
    a1b2c3d4 | d4c3b2a1 | a1b23c4d | 4d3cb2a1 | 0a0d0d0a) return 0 ;;
    *) return 1 ;;
  esac
}

# Build the new set beside the old one and swap only when every capture has been run.
new=$(mktemp -d "${TMPDIR:-/tmp}/netpipe-golden.XXXXXX")
trap 'rm -rf "$new"' EXIT

count=0
captures=()
for capture in pcaps/*; do
  [ -f "$capture" ] && is_capture "$capture" || continue
  name=$(basename "$capture")
  captures+=("$capture")
  rc=0
  env -u SOURCE_HOST "$bin" read "$capture" >"$new/$name.jsonl" 2>"$new/stderr" </dev/null || rc=$?
  lines=$(wc -l <"$new/$name.jsonl")
  if [ "$rc" -eq 101 ] || grep -q panicked "$new/stderr"; then
    echo "update-golden: netpipe-fast panicked on $capture:" >&2
    cat "$new/stderr" >&2
    exit 1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "$rc" >"$new/$name.exit"
    printf '    %-40s %7d lines  exit %d: %s\n' "$name" "$lines" "$rc" "$(head -n 1 "$new/stderr")"
  else
    printf '    %-40s %7d lines\n' "$name" "$lines"
  fi
  count=$((count + 1))
done
rm -f "$new/stderr"
# `read --reassemble` goldens (tests/golden/reassemble/<capture>.jsonl) for the captures made
# for it.
mkdir -p "$new/reassemble"
for name in fragments.pcap; do
  env -u SOURCE_HOST "$bin" read --reassemble "pcaps/$name" >"$new/reassemble/$name.jsonl" \
    2>/dev/null </dev/null || { echo "update-golden: read --reassemble pcaps/$name failed" >&2; exit 1; }
  printf '    %-40s %7d lines\n' "reassemble/$name" "$(wc -l <"$new/reassemble/$name.jsonl")"
done
[ "$count" -gt 0 ] || { echo "update-golden: no pcap or pcapng file in pcaps/" >&2; exit 1; }

# An exit code that is new, or differs from the reviewed one, is not blessed here.
refused=0
for f in "$new"/*.exit; do
  [ -e "$f" ] || continue
  name=$(basename "$f")
  if [ ! -f "tests/golden/$name" ]; then
    echo "update-golden: ${name%.exit} now exits $(cat "$f") (no tests/golden/$name was reviewed)" >&2
    refused=1
  elif ! cmp -s "$f" "tests/golden/$name"; then
    echo "update-golden: ${name%.exit} now exits $(cat "$f"), reviewed: $(cat "tests/golden/$name")" >&2
    refused=1
  fi
done
if [ "$refused" -ne 0 ]; then
  echo "update-golden: nothing replaced; if the new exit code is right, write the .exit file by hand and run again" >&2
  exit 1
fi

echo "==> scapy oracle (tests/oracle/compare.py) on ${#captures[@]} captures"
if ! /usr/bin/python3 tests/oracle/compare.py --bin "$bin" "${captures[@]}" >"$new/oracle.txt" 2>&1; then
  # The report of each capture that differs (at most 80 lines).
  awk '/^== /{blk=""} {blk=blk $0 "\n"} /^   DIFFERENT$/{printf "%s", blk}' "$new/oracle.txt" |
    head -n 80 >&2
  echo "update-golden: the new output differs from scapy's view; nothing replaced" >&2
  exit 1
fi
rm -f "$new/oracle.txt"

mkdir -p tests/golden
rm -f tests/golden/*.jsonl tests/golden/*.exit tests/golden/reassemble/*.jsonl
mkdir -p tests/golden/reassemble
cp "$new"/reassemble/* tests/golden/reassemble/
rm -rf "$new/reassemble"
cp "$new"/* tests/golden/
echo "==> wrote $count golden files to tests/golden/:"
git diff --stat -- tests/golden
git status --short -- tests/golden | grep -v '^ M' || true
echo "==> review with: git diff tests/golden"
