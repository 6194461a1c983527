#!/bin/sh
# Configures and builds ./build-san: the same project with
# -Db_sanitize=address,undefined (UBSan errors are fatal), the slow recovery
# suite and the Python module off (an ASan library cannot be loaded into an
# uninstrumented interpreter). `meson test -C build-san` then runs the unit and command-line
# suites under the sanitizers. Idempotent; called by `scripts/setup.sh --sanitizers`.
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build-san/build.ninja ]; then
  # -O1 (what the sanitizers are designed for) compiles about twice as fast as
  # the release build's -O3; Armadillo's checks stay off as in release. Unity build as
  # in scripts/setup.sh.
  meson setup build-san --buildtype=plain -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false \
    -Dslow_tests=false -Dpython=disabled -Dcpp_args="-DARMA_NO_DEBUG -fno-sanitize-recover=undefined" \
    -Dcpp_link_args=-fno-sanitize-recover=undefined -Dunity=on -Dunity_size=6 \
    >build-san-setup.log 2>&1 || { cat build-san-setup.log >&2; exit 1; }
  rm -f build-san-setup.log
fi
echo "setup: building moerate with address and undefined-behaviour sanitizers (build-san)..." >&2
nice -n 10 ninja -C build-san >build-san/ninja.log 2>&1 || { grep -E -A5 'error|FAILED' build-san/ninja.log >&2 | head -80; exit 1; }
echo "setup: built build-san/apps/moerate" >&2
