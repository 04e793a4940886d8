#!/bin/sh
# Installs the Debian 12 packages portd needs to build and test, if missing.
# Run as root, or as a user who may sudo. (clang and its runtimes build the
# libFuzzer targets, tests/fuzz; the project itself builds with g++.)
set -eu

PACKAGES="
  g++ make cmake ninja-build pkg-config
  capnproto libcapnp-dev libssl-dev
  libasio-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libsystemd-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev
"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
