#!/bin/sh
# moerate rates: usage errors exit 2, input errors exit 1, never a partial JSON.
M=$1
. "$(dirname "$0")/lib.sh"
D=$(dirname "$0")
python3 "$D/rates_make_results.py" "$T/res.csv" 1 || fail "cannot write synthetic results"
J="$T/out.json"
expect_error 2 "results" "$J" -- "$M" rates --json "$J"
expect_error 2 "no metric column 'nope'" "$J" -- "$M" rates --results "$T/res.csv" --metric nope --json "$J"
expect_error 2 "level" "$J" -- "$M" rates --results "$T/res.csv" --level 1.5 --json "$J"
expect_error 2 "bootstrap" "$J" -- "$M" rates --results "$T/res.csv" --bootstrap -3 --json "$J"
expect_error 2 "setting 'quadratic'" "$J" -- "$M" rates --results "$T/res.csv" --setting quadratic --json "$J"
expect_error 2 "plain exponents" "$J" -- "$M" rates --results "$T/res.csv" --metric loss a --theory 1/2 1/4 1/8 --json "$J"
expect_error 2 "fraction" "$J" -- "$M" rates --results "$T/res.csv" --theory half --json "$J"
expect_error 1 "missing.csv" "$J" -- "$M" rates --results "$T/missing.csv" --json "$J"
# A stop_reason outside the contract: FILE:LINE:COL message, exit 1.
sed '5s/converged/exploded/' "$T/res.csv" >"$T/bad.csv"
expect_error 1 "bad.csv:5:8: stop_reason" "$J" -- "$M" rates --results "$T/bad.csv" --json "$J"
# A non-numeric loss.
python3 - "$T/res.csv" "$T/bad2.csv" <<'PY' || fail "cannot write bad2.csv"
import sys
lines = open(sys.argv[1], newline="").read().split("\r\n")
f = lines[5].split(",")
f[11] = "abc"   # m.loss of the row on line 6
lines[5] = ",".join(f)
open(sys.argv[2], "w", newline="").write("\r\n".join(lines))
PY
expect_error 1 "bad2.csv:6:12: m.loss is not a number" "$J" -- "$M" rates --results "$T/bad2.csv" --json "$J"
# No metric columns at all.
printf 'setting,n,rep,stop_reason\nx,100,0,converged\n' >"$T/nometric.csv"
expect_error 1 "no metric columns" "$J" -- "$M" rates --results "$T/nometric.csv" --json "$J"
echo ok
