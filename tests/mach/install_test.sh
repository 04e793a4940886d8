#!/bin/sh
# Installs portd into a temporary prefix, builds examples/mach with its
# Makefile and `pkg-config portd-mach` (PKG_CONFIG_PATH pointing into the
# prefix), and runs one of the programs, as built (no LD_LIBRARY_PATH),
# against the daemon from the build.
#
#   install_test.sh BUILD_DIR SOURCE_DIR PORTD_BINARY
set -eu
build=$1 src=$2 portd=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portd-install-test.XXXXXX")
daemon=
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
pc=$(find "$tmp/prefix" -name portd-mach.pc)
[ -n "$pc" ] || { echo "portd-mach.pc was not installed"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
echo "pkg-config --cflags --libs portd-mach: $(pkg-config --cflags --libs portd-mach)"
pkg-config --cflags portd-mach | grep -q -- "-I$tmp/prefix/.*portd-mach" ||
  { echo "Cflags do not point into the prefix"; exit 1; }
# The C++ API's pc file resolves too.
pkg-config --exists portd

mkdir "$tmp/out"
make -s -C "$tmp/out" -f "$src/examples/mach/Makefile" CFLAGS="-O1 -Wall -Wextra -Werror"
for p in mach_server mach_client portset_server notify_demo; do
  [ -x "$tmp/out/$p" ] || { echo "$p was not built"; exit 1; }
done

# They load the installed library by themselves (the Makefile's rpath), not
# the build tree's.
installed=$(readlink -f "$(find "$tmp/prefix" -name 'libportd.so.0' | head -n 1)")
used=$(ldd "$tmp/out/notify_demo" | sed -n 's/.*libportd.so.0 => \(.*\) (0x.*/\1/p')
[ -n "$used" ] && [ "$(readlink -f "$used")" = "$installed" ] ||
  { echo "notify_demo loads '$used', not $installed"; exit 1; }

# Run one against a daemon.
PORTD_SOCKET="$tmp/portd.sock"
export PORTD_SOCKET
"$portd" --socket "$PORTD_SOCKET" 2>"$tmp/daemon.log" &
daemon=$!
i=0
while [ ! -S "$PORTD_SOCKET" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
out=$("$tmp/out/notify_demo")
echo "$out"
echo "$out" | grep -q "no-senders notification: make-send count 1" ||
  { echo "notify_demo did not run as expected"; exit 1; }
echo "install test passed"
