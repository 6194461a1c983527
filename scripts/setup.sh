#!/bin/sh
# Installs what is missing (Debian 12, as root), configures and builds moerate
# in release mode in ./build. Idempotent and quiet when everything is there.
set -eu
cd "$(dirname "$0")/.."
PKGS="g++ meson ninja-build pkg-config libarmadillo-dev libopenblas-dev libboost-dev doctest-dev \
nlohmann-json3-dev libcli11-dev libcsv-dev liblbfgs-dev libsleef-dev gnuplot-nox python3 \
pybind11-dev python3-dev python3-numpy python3-pytest"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ ! -f build/build.ninja ]; then
  # Unity build (6 sources per compiler run): the headers (Armadillo, CLI11, JSON) are
  # parsed and their templates compiled once per group, not once per file; it halves
  # the build's CPU time. A name defined twice at file scope breaks it: give helpers
  # distinct names or share them.
  meson setup build --buildtype=release -Dunity=on -Dunity_size=6 >build-setup.log 2>&1 || { cat build-setup.log >&2; exit 1; }
  rm -f build-setup.log
fi
echo "setup: building moerate (release)..." >&2
ninja -C build >build/ninja.log 2>&1 || { grep -E -A5 'error|FAILED' build/ninja.log >&2 | head -80; exit 1; }
echo "setup: built build/apps/moerate" >&2
# --sanitizers: also configure and build ./build-san with AddressSanitizer and
# UndefinedBehaviorSanitizer (slow suite off); used by the README's test command.
if [ "${1:-}" = "--sanitizers" ]; then
  sh scripts/setup-sanitizers.sh
fi
