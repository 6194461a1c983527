#!/bin/sh
# moerate bootstrap and fit --se: JSON keys, determinism across thread counts,
# progress on stderr, usage errors.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" simulate --model data/experiment-a.json --n 300 --seed 4 --out "$T/d.csv" >/dev/null || fail "simulate failed"
"$M" fit --data "$T/d.csv" --experts 2 --starts 2 --seed 1 --se --out "$T/f.json" >"$T/fit.txt" || fail "fit --se failed"
grep -q '"standard_errors"' "$T/f.json" || fail "fit --se: no standard_errors in the JSON"
grep -Eq "Wald intervals|near singular" "$T/fit.txt" || { cat "$T/fit.txt"; fail "fit --se: no table"; }
"$M" bootstrap --data "$T/d.csv" --model "$T/f.json" --replicates 6 --seed 3 --threads 1 --out "$T/b1.json" \
  >"$T/b1.txt" 2>"$T/b1.err" || { cat "$T/b1.err"; fail "bootstrap failed"; }
grep -q "bootstrap: 6/6 replicates" "$T/b1.err" || fail "no progress on stderr"
grep -q "percentile intervals" "$T/b1.txt" || fail "no summary table"
for key in '"parameters"' '"draws"' '"lower"' '"upper"' '"seed": 3' '"replicates": 6'; do
  grep -q "$key" "$T/b1.json" || fail "bootstrap JSON lacks $key"
done
"$M" bootstrap --data "$T/d.csv" --model "$T/f.json" --replicates 6 --seed 3 --threads 2 --quiet --out "$T/b2.json" \
  >/dev/null 2>&1 || fail "bootstrap (2 threads) failed"
grep -v '"seconds"' "$T/b1.json" >"$T/b1.cmp"
grep -v '"seconds"' "$T/b2.json" >"$T/b2.cmp"
cmp -s "$T/b1.cmp" "$T/b2.cmp" || fail "bootstrap depends on the thread count"
expect_error 2 "replicates" "$T/bad.json" -- "$M" bootstrap --data "$T/d.csv" --model "$T/f.json" --replicates 0 --out "$T/bad.json"
expect_error 1 "nope.csv" "$T/bad.json" -- "$M" bootstrap --data "$T/nope.csv" --model "$T/f.json" --out "$T/bad.json"
exit 0
