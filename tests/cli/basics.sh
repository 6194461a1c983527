#!/bin/sh
# --help at every level (with a worked example), --version, no arguments fails.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" --help | grep -q "simulate" || fail "top-level help lacks simulate"
"$M" --version | grep -Eq '^moerate [0-9]+\.[0-9]+' || fail "--version"
for c in simulate loglik fit predict bench list; do
  "$M" "$c" --help >"$T/h" || fail "$c --help exit code"
  grep -q "Example:" "$T/h" || fail "$c --help has no worked example"
  grep -q "moerate $c" "$T/h" || fail "$c example does not run $c"
done
"$M" >"$T/o" 2>"$T/e" && fail "no arguments must fail"
[ $? -eq 2 ] || fail "no arguments: exit code should be 2"
grep -q "error" "$T/e" || fail "no arguments: no error message"
"$M" frobnicate >/dev/null 2>&1 && fail "unknown command must fail"
"$M" list | grep -q "softmax" || fail "list lacks softmax"
echo ok
