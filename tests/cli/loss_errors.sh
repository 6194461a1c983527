#!/bin/sh
# moerate loss: a cell of four without --rbar is a clear error; --rbar 4=R fixes
# it; malformed flags are usage errors (exit 2); incomparable models exit 1.
M=$1
. "$(dirname "$0")/lib.sh"
A=data/experiment-a.json
# Five fitted atoms: four next to expert 1 of experiment A, one on the reference.
cat >"$T/four.json" <<'JSON'
{"gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
 "experts": [
  {"gate": {"beta0": -9.4, "beta1": [25.1]}, "expert": {"a": [-20], "b": 15}, "variance": 0.09},
  {"gate": {"beta0": -9.4, "beta1": [24.9]}, "expert": {"a": [-20.2], "b": 15}, "variance": 0.09},
  {"gate": {"beta0": -9.4, "beta1": [25]}, "expert": {"a": [-20], "b": 15.1}, "variance": 0.1},
  {"gate": {"beta0": -9.4, "beta1": [25]}, "expert": {"a": [-19.9], "b": 15}, "variance": 0.09},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16}]}
JSON
sed 's/"linear"/"ffn", "activation": "tanh"/; s/"b": 15}/"b": 15, "c": 1}/; s/"b": -5}/"b": -5, "c": 1}/' "$A" >"$T/ffn.json"
expect_error 1 "no rbar known for a Voronoi cell of 4 .*--rbar 4=" "" -- "$M" loss --truth "$A" --fit "$T/four.json"
"$M" loss --truth "$A" --fit "$T/four.json" --rbar 4=8 --json >"$T/ok.json" || fail "--rbar 4=8 should make it work"
grep -q '"cell1.size":4.0' "$T/ok.json" || fail "cell 1 should hold four atoms"
grep -q '"rbar":8.0' "$T/ok.json" || fail "the rbar used is not reported"
expect_error 2 "--rbar expects M=R" "" -- "$M" loss --truth "$A" --fit "$T/four.json" --rbar four=8
expect_error 2 "--rbar expects M=R" "" -- "$M" loss --truth "$A" --fit "$T/four.json" --rbar 1=3
expect_error 2 "translation" "" -- "$M" loss --truth "$A" --fit "$A" --translation sideways
expect_error 2 "--mc" "" -- "$M" loss --truth "$A" --fit "$A" --mc 10
expect_error 2 "--fit" "" -- "$M" loss --truth "$A"
expect_error 1 "same expert family" "" -- "$M" loss --truth "$A" --fit "$T/ffn.json"
expect_error 1 "missing.json" "" -- "$M" loss --truth "$A" --fit "$T/missing.json"
echo ok
