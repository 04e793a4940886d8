#!/bin/sh
# Builds portd optimized with the profile of a training run (GCC's
# profile-guided optimization) and across objects (link-time optimization),
# in one build tree:
#
#   tools/build-pgo.sh [BUILD_DIR [CMAKE_ARGS...]]     (default: build-pgo)
#
# 1. configures BUILD_DIR with PORTD_PGO=generate and builds the daemon,
#    libportd and portbench instrumented;
# 2. trains them: portbench starts a daemon of its own and runs the RPC,
#    one-way and out-of-line scenarios against it, and every process writes
#    its profile to BUILD_DIR/pgo-profile when it exits;
# 3. configures again with PORTD_PGO=use and builds everything (the test
#    suite excepted) laid out by those profiles.
#
# CMAKE_ARGS go to both configure steps (e.g. -DCMAKE_INSTALL_PREFIX=/usr);
# `cmake --install BUILD_DIR` installs the result. The figures in
# docs/performance.md say which build they come from.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-pgo}
[ $# -gt 0 ] && shift
profile=$build/pgo-profile

fail() {
  echo "build-pgo: $*" >&2
  exit 1
}

"$src/tools/install-deps.sh"

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON -DPORTD_BUILD_TESTS=OFF -DPORTD_PGO=generate -DPORTD_PGO_DIR="$profile" "$@"
cmake --build "$build" --target portd portd_client portbench

# A fresh profile: one left from an earlier training would be added to.
rm -rf "$profile"
echo "build-pgo: training (portbench against a daemon of its own)"
"$build/tools/portbench" --spawn --only '^(rpc_64|rpc_4096|oneway_s4|oneway_set_s4|ool_1M)$' \
  --rounds 2 --rpc-iterations 10000 --messages 100000 >"$build/pgo-training.txt" ||
  { cat "$build/pgo-training.txt"; fail "the training run failed"; }

# Every side must have written a profile: the daemon's (it exits cleanly when
# portbench stops it), libportd's and the server library's.
for object in 'daemon#CMakeFiles#portd.dir#main.cc.gcda' \
  'portd_server.dir#server#driver.cc.gcda' 'portd_client_objects.dir#src#task.cc.gcda'; do
  [ -n "$(find "$profile" -name "*$object" 2>/dev/null)" ] ||
    fail "the training wrote no profile for $object (in $profile)"
done

cmake -S "$src" -B "$build" -DPORTD_PGO=use "$@"
cmake --build "$build"
echo "build-pgo: done: $build (profiles in $profile)"
