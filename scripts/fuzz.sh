#!/bin/sh
# Builds the libFuzzer harnesses (clang, AddressSanitizer + UBSan, -O1) in
# ./build-fuzz and runs each for SECONDS (default 60) on a scratch copy of its
# seed corpus (fuzz/corpus/NAME), printing the executions reached.
#   sh scripts/fuzz.sh [SECONDS] [csv model study]
# Needs Debian's clang (apt-get install clang). See docs/robustness.md.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
names=${*:-csv model study}
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dopenmp=disabled -Dslow_tests=false -Dpython=disabled --buildtype=plain -Doptimization=1 -Dcpp_args=-DARMA_NO_DEBUG >/dev/null
fi
targets=""
for n in $names; do targets="$targets fuzz/fuzz_$n"; done
nice -n 10 ninja -C build-fuzz $targets >/dev/null
root=$(pwd)
for n in $names; do
  work=$(mktemp -d)
  # Study files name truth files relative to their directory: run from the corpus.
  (cd fuzz/corpus/study && "$root/build-fuzz/fuzz/fuzz_$n" -max_total_time="$secs" -rss_limit_mb=2048 \
     -print_final_stats=1 "$work" "$root/fuzz/corpus/$n") >"build-fuzz/fuzz_$n.log" 2>&1 || {
    tail -40 "build-fuzz/fuzz_$n.log" >&2; rm -rf "$work"; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/fuzz_$n.log")
  echo "fuzz_$n: $runs executions in $secs s, no crash (log build-fuzz/fuzz_$n.log)"
  rm -rf "$work"
done
