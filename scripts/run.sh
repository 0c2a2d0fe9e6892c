#!/usr/bin/env bash
# The main job on a fresh machine: installs libpcap (opened at run time for filter
# expressions; the build itself needs no system library), builds the
# release binary, and runs it. With no arguments it turns the bundled pcaps/mixed.pcap into
# JSON lines on stdout; any arguments are passed to netpipe-fast instead, e.g.
#   scripts/run.sh read pcaps/ethernet-udp-dns.pcap --filter 'udp port 53'
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.\(1\|0\.8\) '; then
  echo "scripts/run.sh: installing libpcap (needed to compile filter expressions)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  # Debian 13 and Ubuntu 24.04 name the package libpcap0.8t64; earlier releases libpcap0.8.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpcap0.8t64 </dev/null >&2 ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpcap0.8 </dev/null >&2
fi
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
cargo build --release --quiet --bin netpipe-fast >&2

if [ "$#" -eq 0 ]; then
  set -- read pcaps/mixed.pcap
fi
exec target/release/netpipe-fast "$@"
