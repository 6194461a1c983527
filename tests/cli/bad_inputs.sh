#!/bin/sh
# Bad inputs: a clear message naming the file (and line/column), non-zero exit,
# no partial output file.
M=$1
. "$(dirname "$0")/lib.sh"
A=data/experiment-a.json
printf 'x1,y\n0.1,1\n0.2,2\n0.3,1.5\n' >"$T/ok.csv"
: >"$T/empty.csv"
printf 'x1,y\n' >"$T/header.csv"
printf 'x1,y\n0.1,1\n0.2\n' >"$T/ragged.csv"
printf 'x1,y\n0.1,1\n0.2,abc\n' >"$T/text.csv"
printf 'x1,y\n0.1,1\nNaN,2\n' >"$T/nan.csv"
printf 'x1,x2,y\n0.1,0.2,1\n0.2,0.1,2\n' >"$T/d2.csv"
sed 's/"variance": 0.16/"variance": -0.16/' "$A" >"$T/negvar.json"
sed 's/"linear"/"quadratic"/' "$A" >"$T/unknown.json"
printf '{"gating": {"family": "softmax",\n  "experts": [}\n' >"$T/broken.json"
O="$T/out.json"
expect_error 1 "missing.csv.*cannot open" "$O" -- "$M" fit --data "$T/missing.csv" --experts 2 --out "$O"
expect_error 1 "empty.csv.*empty" "$O" -- "$M" fit --data "$T/empty.csv" --experts 2 --out "$O"
expect_error 1 "header.csv.*no data rows" "$O" -- "$M" fit --data "$T/header.csv" --experts 2 --out "$O"
expect_error 1 "ragged.csv:3:2: row has 1 fields" "$O" -- "$M" fit --data "$T/ragged.csv" --experts 2 --out "$O"
expect_error 1 "text.csv:3:2: non-numeric value 'abc'" "$O" -- "$M" fit --data "$T/text.csv" --experts 2 --out "$O"
expect_error 1 "nan.csv:3:1: non-finite" "$O" -- "$M" fit --data "$T/nan.csv" --experts 2 --out "$O"
expect_error 1 "d2.csv.*2 covariates.*dimension 1" "$T/ll.txt" -- "$M" loglik --model "$A" --data "$T/d2.csv"
expect_error 1 "negvar.json.*experts\[1\]\.variance" "$T/s.csv" -- "$M" simulate --model "$T/negvar.json" --n 10 --out "$T/s.csv"
expect_error 1 "unknown.json.*unknown family 'quadratic'" "$T/s.csv" -- "$M" simulate --model "$T/unknown.json" --n 10 --out "$T/s.csv"
expect_error 1 "broken.json:2:1[0-9]: invalid JSON" "$T/s.csv" -- "$M" simulate --model "$T/broken.json" --n 10 --out "$T/s.csv"
expect_error 1 "k = 5 experts need at least k observations" "$O" -- "$M" fit --data "$T/ok.csv" --experts 5 --out "$O"
expect_error 2 "unknown family 'nosuch'" "$O" -- "$M" fit --data "$T/ok.csv" --experts 2 --expert nosuch --out "$O"
expect_error 2 "unknown family 'nosuch'" "$O" -- "$M" fit --data "$T/ok.csv" --experts 2 --gating nosuch --out "$O"
expect_error 2 "init" "$O" -- "$M" fit --data "$T/ok.csv" --experts 2 --init bogus --out "$O"
expect_error 2 "--experts" "$O" -- "$M" fit --data "$T/ok.csv" --out "$O"
expect_error 1 "directory does not exist" "$T/nodir/out.json" -- "$M" fit --data "$T/ok.csv" --experts 1 --out "$T/nodir/out.json"
# An earlier result is never lost: a failing run leaves the old file intact.
echo '{"keep": true}' >"$T/keep.json"
"$M" fit --data "$T/text.csv" --experts 2 --out "$T/keep.json" >/dev/null 2>&1 && fail "should fail"
grep -q keep "$T/keep.json" || fail "earlier output was overwritten by a failing run"
echo ok
