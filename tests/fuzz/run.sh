#!/bin/bash
# The libFuzzer targets (tests/fuzz/CMakeLists.txt, docs/hacking.md).
#
#   run.sh build                    configure (once) and build the fuzz tree
#   run.sh run frame|request [ARG]  run one target for PORTD_FUZZ_SECONDS over
#                                   the committed corpus; ARGs go to libFuzzer
#
# The fuzz tree is the project configured with clang and PORTD_FUZZING=ON:
# only the two targets and the libraries they need are built, every one with
# -fsanitize=fuzzer-no-link,address,undefined and assertions on.
#
# A run reads the committed seeds and regressions from tests/fuzz/corpus/ and
# writes the inputs it finds interesting to $PORTD_FUZZ_FOUND if set (kept,
# and read again by the next run that names it; never committed), else to a
# temporary directory removed afterwards, so that the short runs of the test
# suite always start from the same corpus. An input that fails is saved as
# $PORTD_FUZZ_BUILD_DIR/artifacts/<target>-crash-* (or leak-, timeout-, oom-);
# the run prints it, and how to replay it.
#
# Environment (ctest sets it; these defaults suit a run from the top of the
# repository): PORTD_SOURCE_DIR (.), PORTD_FUZZ_BUILD_DIR (build/fuzz),
# PORTD_FUZZ_SECONDS (5), CC and CXX (clang, clang++), CMAKE, CMAKE_GENERATOR,
# PORTD_FUZZ_LAUNCHER (a compiler launcher such as ccache), PORTD_FUZZ_FOUND.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${PORTD_SOURCE_DIR:=$(cd "$here/../.." && pwd)}"
: "${PORTD_FUZZ_BUILD_DIR:=$PORTD_SOURCE_DIR/build/fuzz}"
: "${PORTD_FUZZ_SECONDS:=5}"
: "${CC:=clang}" "${CXX:=clang++}" "${CMAKE:=cmake}" "${CMAKE_GENERATOR:=Ninja}"
: "${PORTD_FUZZ_LAUNCHER:=}"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

build() {
  # Does this clang have libFuzzer and the sanitizer runtimes?
  local probe
  probe=$(mktemp -d "${TMPDIR:-/tmp}/portd-fuzz-probe-XXXXXX")
  trap 'rm -rf "$probe"' RETURN
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$probe/probe.cc"
  "$CXX" -fsanitize=fuzzer,address,undefined "$probe/probe.cc" -o "$probe/probe" 2>"$probe/log" ||
    { cat "$probe/log"; fail "$CXX cannot build a libFuzzer target (Debian: apt install clang libclang-rt-14-dev)"; }

  local launcher=()
  [ -n "$PORTD_FUZZ_LAUNCHER" ] &&
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER="$PORTD_FUZZ_LAUNCHER" -DCMAKE_CXX_COMPILER_LAUNCHER="$PORTD_FUZZ_LAUNCHER")
  if [ ! -e "$PORTD_FUZZ_BUILD_DIR/CMakeCache.txt" ]; then
    "$CMAKE" -S "$PORTD_SOURCE_DIR" -B "$PORTD_FUZZ_BUILD_DIR" -G "$CMAKE_GENERATOR" \
      -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" "${launcher[@]}" \
      -DPORTD_FUZZING=ON -DCMAKE_BUILD_TYPE=Fuzz >"$PORTD_FUZZ_BUILD_DIR.configure.log" 2>&1 ||
      { cat "$PORTD_FUZZ_BUILD_DIR.configure.log"; fail "configuring the fuzz tree"; }
  fi
  "$CMAKE" --build "$PORTD_FUZZ_BUILD_DIR" --target portd_fuzz_frame portd_fuzz_request ||
    fail "building the fuzz targets"
  echo "fuzz targets built in $PORTD_FUZZ_BUILD_DIR"
}

run() {
  local target=${1:?frame or request}
  shift
  local bin=$PORTD_FUZZ_BUILD_DIR/tests/fuzz/portd_fuzz_$target
  local corpus=$PORTD_SOURCE_DIR/tests/fuzz/corpus/$target
  local artifacts=$PORTD_FUZZ_BUILD_DIR/artifacts
  [ -x "$bin" ] || fail "$bin is not built (run.sh build)"
  [ -d "$corpus" ] || fail "no corpus at $corpus"
  local found=${PORTD_FUZZ_FOUND:-}
  if [ -z "$found" ]; then
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/portd-fuzz-$target-XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    found=$scratch
  fi
  mkdir -p "$found" "$artifacts"
  local before
  before=$(ls "$artifacts" | sort)
  echo "fuzzing $target for ${PORTD_FUZZ_SECONDS}s"
  local status=0
  # -timeout: an input that takes this long is a hang. The leak check is on
  # (ASan's LeakSanitizer); so is the harness's own, on fds and core state.
  "$bin" -max_total_time="$PORTD_FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -print_funcs=0 -artifact_prefix="$artifacts/$target-" "$@" "$found" "$corpus" ||
    status=$?
  if [ $status -ne 0 ]; then
    local new
    new=$(comm -13 <(echo "$before") <(ls "$artifacts" | sort) || true)
    for f in $new; do
      echo "failing input: $artifacts/$f"
      echo "  replay: $bin $artifacts/$f"
      echo "  keep it as a regression: cp $artifacts/$f $corpus/regress-<what>"
    done
    fail "fuzz_$target exited with $status"
  fi
}

case "${1:-}" in
  build) build ;;
  run)
    shift
    run "$@"
    ;;
  *) fail "usage: $0 build | run frame|request [libFuzzer args]" ;;
esac
