#!/usr/bin/env bash
# Builds and installs netpipe-fast: the binary, its man pages, bash/zsh/fish completions, the
# systemd unit and (once, never overwritten) example settings in /etc/netpipe-fast.
#
#   scripts/install.sh                  # build (cargo build --release) and install as root
#   PREFIX=$HOME/.local scripts/install.sh --no-service   # a user install, no unit
#   DESTDIR=/tmp/pkg scripts/install.sh # stage for a package
#
# Needs a Rust toolchain; libpcap (Debian/Ubuntu: libpcap0.8) at run time for filter expressions.
# NETPIPE_BIN=PATH installs that binary instead of building one (used by tests/it/operations.rs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
service=1
for arg in "$@"; do
  case $arg in
    --no-service) service=0 ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      printf 'scripts/install.sh: unknown argument %s\n' "$arg" >&2
      exit 2
      ;;
  esac
done

if [ -n "${NETPIPE_BIN:-}" ]; then
  bin=$NETPIPE_BIN
else
  cargo build --release --locked
  bin=target/release/netpipe-fast
fi
[ -x "$bin" ] || { echo "scripts/install.sh: $bin is not an executable" >&2; exit 1; }

root=$DESTDIR
bindir=$root$PREFIX/bin
mandir=$root$PREFIX/share/man/man1
bashdir=$root$PREFIX/share/bash-completion/completions
zshdir=$root$PREFIX/share/zsh/site-functions
fishdir=$root$PREFIX/share/fish/vendor_completions.d

install -d -m 0755 "$bindir" "$mandir" "$bashdir" "$zshdir" "$fishdir"
install -m 0755 "$bin" "$bindir/netpipe-fast"

# Made in a private scratch directory (mktemp -d: 0700, unpredictable name), then installed.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$bin" generate man "$scratch/man" 2>/dev/null
install -m 0644 "$scratch"/man/*.1 "$mandir/"
"$bin" generate completions bash >"$scratch/netpipe-fast.bash"
"$bin" generate completions zsh >"$scratch/_netpipe-fast"
"$bin" generate completions fish >"$scratch/netpipe-fast.fish"
install -m 0644 "$scratch/netpipe-fast.bash" "$bashdir/netpipe-fast"
install -m 0644 "$scratch/_netpipe-fast" "$zshdir/_netpipe-fast"
install -m 0644 "$scratch/netpipe-fast.fish" "$fishdir/netpipe-fast.fish"

if [ "$service" -eq 1 ]; then
  confdir=$root$SYSCONFDIR/netpipe-fast
  install -d -m 0755 "$root$UNITDIR" "$confdir"
  # The unit runs the binary where it was installed.
  sed "s#/usr/local/bin/netpipe-fast#$PREFIX/bin/netpipe-fast#" scripts/netpipe-fast.service \
    >"$scratch/netpipe-fast.service"
  install -m 0644 "$scratch/netpipe-fast.service" "$root$UNITDIR/netpipe-fast.service"
  # Settings are the operator's: installed only when absent. The TOML file is read by the
  # service's own (dynamic) user, so 0644; the env file is read by systemd as root, so 0600.
  [ -e "$confdir/netpipe-fast.toml" ] || install -m 0644 scripts/netpipe-fast.toml "$confdir/"
  [ -e "$confdir/netpipe-fast.env" ] || install -m 0600 scripts/netpipe-fast.env "$confdir/"
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "installed; edit $SYSCONFDIR/netpipe-fast/netpipe-fast.{toml,env}, then: systemctl enable --now netpipe-fast"
  fi
fi
echo "netpipe-fast installed under $root$PREFIX"
