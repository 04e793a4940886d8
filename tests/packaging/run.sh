#!/bin/bash
# The packaging test: `cmake --install` portd into a temporary prefix, check
# what landed where, build two consumers outside the tree against it (CMake's
# find_package(portd), and pkg-config), then run them against the installed
# daemon.
#
# Environment (set by tests/CMakeLists.txt): PORTD_BUILD_DIR, PORTD_SOURCE_DIR,
# PORTD_VERSION, PORTD_BINDIR, PORTD_LIBDIR, PORTD_INCLUDEDIR, PORTD_SYSCONFDIR,
# PORTD_DOCDIR, CMAKE, CMAKE_GENERATOR, CC, CXX, PORTD_SANITIZE_FLAGS.
set -euo pipefail

: "${PORTD_BUILD_DIR:?}" "${PORTD_SOURCE_DIR:?}" "${PORTD_VERSION:?}"
: "${PORTD_BINDIR:=bin}" "${PORTD_LIBDIR:=lib}" "${PORTD_INCLUDEDIR:=include}"
: "${PORTD_SYSCONFDIR:=etc}" "${PORTD_DOCDIR:=share/doc/portd}"
: "${CMAKE:=cmake}" "${CC:=cc}" "${CXX:=c++}" "${PORTD_SANITIZE_FLAGS:=}"

work=$(mktemp -d "${TMPDIR:-/tmp}/portd-packaging-XXXXXX")
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

prefix=$work/prefix
consumer_src=$PORTD_SOURCE_DIR/tests/packaging/consumer

step "cmake --install $PORTD_BUILD_DIR --prefix $prefix"
"$CMAKE" --install "$PORTD_BUILD_DIR" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "cmake --install"; }

step "layout"
for f in \
  "$PORTD_BINDIR/portd" "$PORTD_BINDIR/portctl" \
  "$PORTD_LIBDIR/libportd.so.$PORTD_VERSION" "$PORTD_LIBDIR/libportd.so.0" "$PORTD_LIBDIR/libportd.so" \
  "$PORTD_INCLUDEDIR/portd/portd.h" "$PORTD_INCLUDEDIR/portd/status.h" \
  "$PORTD_INCLUDEDIR/portd/proto/unique_fd.h" \
  "$PORTD_LIBDIR/cmake/portd/portdConfig.cmake" "$PORTD_LIBDIR/cmake/portd/portdConfigVersion.cmake" \
  "$PORTD_LIBDIR/cmake/portd/portdTargets.cmake" "$PORTD_LIBDIR/pkgconfig/portd.pc" \
  "$PORTD_LIBDIR/pkgconfig/portd-mach.pc" \
  "$PORTD_INCLUDEDIR/portd-mach/mach/mach.h" "$PORTD_INCLUDEDIR/portd-mach/mach/message.h" \
  "$PORTD_INCLUDEDIR/portd-mach/mach/port.h" "$PORTD_INCLUDEDIR/portd-mach/mach/notify.h" \
  "$PORTD_INCLUDEDIR/portd-mach/mach/kern_return.h" "$PORTD_INCLUDEDIR/portd-mach/mach/mach_error.h" \
  "$PORTD_INCLUDEDIR/portd-mach/servers/bootstrap.h" \
  "$PORTD_SYSCONFDIR/portd/portd.toml" "$PORTD_DOCDIR/examples/portd.toml" "$PORTD_DOCDIR/operating.md" \
  "$PORTD_DOCDIR/portctl.md" "$PORTD_DOCDIR/mach.md" "$PORTD_DOCDIR/libportd.md" \
  lib/systemd/system/portd.service lib/systemd/system/portd.socket \
  lib/systemd/user/portd.service lib/systemd/user/portd.socket; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
# Symlinks as a versioned library has them.
[ "$(readlink "$prefix/$PORTD_LIBDIR/libportd.so")" = libportd.so.0 ] || fail "libportd.so -> $(readlink "$prefix/$PORTD_LIBDIR/libportd.so")"
[ "$(readlink "$prefix/$PORTD_LIBDIR/libportd.so.0")" = "libportd.so.$PORTD_VERSION" ] || fail "libportd.so.0 link"
soname=$(readelf -d "$prefix/$PORTD_LIBDIR/libportd.so.$PORTD_VERSION" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libportd.so.0 ] || fail "SONAME is '$soname'"
# Only the public API: no wire-layer internals, no Cap'n Proto or Asio.
[ ! -e "$prefix/$PORTD_INCLUDEDIR/portd/proto/frame.h" ] || fail "frame.h installed"
if grep -rlE 'capnp|kj/|asio' "$prefix/$PORTD_INCLUDEDIR/portd"; then fail "public headers include internals"; fi
# The Mach headers only there, where nothing finds them without asking.
[ ! -e "$prefix/$PORTD_INCLUDEDIR/mach" ] || fail "mach/ installed into the include directory itself"

step "unit files"
for unit in system/portd.service user/portd.service; do
  grep -qx "ExecStart=$prefix/$PORTD_BINDIR/portd" "$prefix/lib/systemd/$unit" ||
    fail "$unit: $(grep ExecStart= "$prefix/lib/systemd/$unit")"
done
grep -qx "ListenStream=/run/portd/portd.sock" "$prefix/lib/systemd/system/portd.socket" || fail "system socket"
grep -qx "ListenStream=%t/portd.sock" "$prefix/lib/systemd/user/portd.socket" || fail "user socket"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$prefix/lib/systemd/system/portd.socket" \
    "$prefix/lib/systemd/system/portd.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify (system): $out"
  mkdir -p "$work/xdg"
  out=$(XDG_RUNTIME_DIR=$work/xdg systemd-analyze --user verify "$prefix/lib/systemd/user/portd.socket" \
    "$prefix/lib/systemd/user/portd.service" 2>&1) || fail "systemd-analyze --user verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify (user): $out"
else
  echo "(no systemd-analyze: unit syntax not verified)"
fi

step "configuration"
config=$prefix/$PORTD_SYSCONFDIR/portd/portd.toml
"$prefix/$PORTD_BINDIR/portd" --config "$config" --check-config | grep -qx "portd: configuration is valid ($config)" ||
  fail "the installed example configuration is not valid"
# A second install keeps the administrator's file.
echo '[log]' >"$config"
echo 'level = "debug"' >>"$config"
"$CMAKE" --install "$PORTD_BUILD_DIR" --prefix "$prefix" >"$work/install2.log" 2>&1 || fail "second install"
grep -qx 'level = "debug"' "$config" || fail "cmake --install replaced an edited $config"
grep -q "Kept: $config" "$work/install2.log" || fail "no 'Kept:' line"

step "find_package(portd) consumer"
generator=()
[ -n "${CMAKE_GENERATOR:-}" ] && generator=(-G "$CMAKE_GENERATOR")
"$CMAKE" -S "$consumer_src" -B "$work/cmake-build" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_CXX_FLAGS="$PORTD_SANITIZE_FLAGS" -DCMAKE_C_FLAGS="$PORTD_SANITIZE_FLAGS" \
  -DPORTD_CONSUMER_MACH=ON >"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; fail "configuring the find_package consumer"; }
grep -q "portd $PORTD_VERSION from $prefix/$PORTD_LIBDIR/cmake/portd" "$work/cmake.log" ||
  { cat "$work/cmake.log"; fail "found the wrong portd"; }
"$CMAKE" --build "$work/cmake-build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building it"; }

step "pkg-config consumer"
export PKG_CONFIG_PATH=$prefix/$PORTD_LIBDIR/pkgconfig
[ "$(pkg-config --modversion portd)" = "$PORTD_VERSION" ] || fail "pkg-config --modversion portd"
libdir=$(pkg-config --variable=libdir portd)
# Only what pkg-config says: nothing from the source tree.
# shellcheck disable=SC2046,SC2086
"$CXX" -std=c++20 $PORTD_SANITIZE_FLAGS "$consumer_src/consumer.cc" -o "$work/pc-consumer" \
  $(pkg-config --cflags --libs portd) -Wl,-rpath,"$libdir" || fail "building with pkg-config"
[ "$(pkg-config --modversion portd-mach)" = "$PORTD_VERSION" ] || fail "pkg-config portd-mach"
# shellcheck disable=SC2046,SC2086
"$CC" $PORTD_SANITIZE_FLAGS "$consumer_src/mach_consumer.c" -o "$work/pc-mach-consumer" \
  $(pkg-config --cflags --libs portd-mach) -Wl,-rpath,"$libdir" || fail "building the C consumer"
installed_lib=$(readlink -f "$prefix/$PORTD_LIBDIR/libportd.so.0")
for p in "$work/cmake-build/consumer" "$work/pc-consumer" "$work/cmake-build/mach_consumer" \
  "$work/pc-mach-consumer" "$prefix/$PORTD_BINDIR/portctl"; do
  used=$(ldd "$p" | sed -n 's/.*libportd.so.0 => \(.*\) (0x.*/\1/p')
  [ -n "$used" ] && [ "$(readlink -f "$used")" = "$installed_lib" ] ||
    fail "$p does not use the installed libportd: $(ldd "$p" | grep portd)"
done

step "against the installed daemon"
mkdir -p "$work/run"
export PORTD_SOCKET=$work/run/portd.sock
"$prefix/$PORTD_BINDIR/portd" --config "$config" --log-level debug 2>"$work/portd.log" &
daemon_pid=$!
for _ in $(seq 500); do
  grep -q "serving on $PORTD_SOCKET" "$work/portd.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/portd.log"; fail "portd exited"; }
  sleep 0.02
done
grep -q "serving on $PORTD_SOCKET (created)" "$work/portd.log" || { cat "$work/portd.log"; fail "portd did not start"; }

run_consumer() { # label program expected-regex
  local out
  out=$("$2" "$1") || { cat "$work/portd.log"; fail "$1 failed: $out"; }
  [[ "$out" =~ $3 ]] || fail "$1 printed '$out'"
  echo "$out"
}
run_consumer cmake "$work/cmake-build/consumer" '^cmake: hello from cmake \(message 7 from pid [0-9]+\)$'
run_consumer pkgconfig "$work/pc-consumer" '^pkgconfig: hello from pkgconfig \(message 7 from pid [0-9]+\)$'
run_consumer cmake-mach "$work/cmake-build/mach_consumer" '^cmake-mach: hello from cmake-mach \(message 42\)$'
run_consumer pkgconfig-mach "$work/pc-mach-consumer" '^pkgconfig-mach: hello from pkgconfig-mach \(message 42\)$'
# Installed tools find the installed library by themselves, and --help
# documents them.
help=$("$prefix/$PORTD_BINDIR/portd" --help) || fail "portd --help"
[[ "$help" == *"--config PATH"* ]] || fail "portd --help: $help"
for tool in portctl portbench; do
  [ -x "$prefix/$PORTD_BINDIR/$tool" ] || fail "$tool is not installed"
  "$prefix/$PORTD_BINDIR/$tool" --help >/dev/null 2>&1 || fail "$tool --help"
  echo "$tool --help: ok"
done
# The installed portctl sees the installed daemon ($PORTD_SOCKET, as clients
# resolve it).
pc_status=$("$prefix/$PORTD_BINDIR/portctl" --json status) || fail "portctl status"
echo "$pc_status" | grep -q "\"version\": \"$PORTD_VERSION\"" || fail "portctl status: $pc_status"
echo "$pc_status" | grep -q "\"socket\": \"$PORTD_SOCKET\"" || fail "portctl status: $pc_status"
echo "$pc_status" | grep -q '"messages_sent": 4,' || fail "portctl status (4 consumers, 1 message each): $pc_status"
echo "portctl status: ok"
# The installed portbench measures the installed daemon (one scenario, smoke
# size: that it runs, not how fast).
pb=$("$prefix/$PORTD_BINDIR/portbench" --smoke --only rpc_64 --json) || fail "portbench: $pb"
echo "$pb" | grep -q '"name": "rpc_64"' || fail "portbench: $pb"
echo "$pb" | grep -q '"failed": 0,' || fail "portbench: $pb"
echo "portbench: ok"

step "stop"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
[ $status -eq 0 ] || { cat "$work/portd.log"; fail "portd exited with $status"; }
[ ! -e "$PORTD_SOCKET" ] || fail "socket left behind"
grep -q "command 'consumer'" "$work/portd.log" || fail "the daemon did not see the consumers"
echo "packaging: ok"
