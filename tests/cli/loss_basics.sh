#!/bin/sh
# moerate loss: the truth against itself, a relabelled copy and an over-fitted
# exact copy all have loss 0; the JSON has the documented keys; --distances.
M=$1
. "$(dirname "$0")/lib.sh"
A=data/experiment-a.json
# Relabelled copy of experiment A (expert order swapped, stored relative to the new last expert).
cat >"$T/swap.json" <<'JSON'
{"gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
 "experts": [
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16},
  {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [-20], "b": 15}, "variance": 0.09}]}
JSON
# Over-fitted exact copy: the reference expert split in two halves (beta0 = log 1/2).
cat >"$T/split.json" <<'JSON'
{"gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
 "experts": [
  {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [-20], "b": 15}, "variance": 0.09},
  {"gate": {"beta0": -0.69314718055994530942, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16},
  {"gate": {"beta0": -0.69314718055994530942, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16}]}
JSON
"$M" loss --truth "$A" --fit "$A" --json >"$T/self.json" || fail "loss truth vs itself failed"
grep -q '"loss":0.0[,}]' "$T/self.json" || { cat "$T/self.json"; fail "loss of the truth against itself is not 0"; }
for key in '"kind":"D1"' '"convention":"reference-atoms"' '"terms":' '"cells":' '"exponents":' '"seed":'; do
  grep -q "$key" "$T/self.json" || fail "JSON lacks $key"
done
"$M" loss --truth "$A" --fit "$T/swap.json" --json >"$T/swap.out" || fail "relabelled copy failed"
grep -Eq '"loss":(0\.0|[0-9.]+e-1[0-9])[,}]' "$T/swap.out" || { cat "$T/swap.out"; fail "relabelled copy: loss not 0"; }
"$M" loss --truth "$A" --fit "$T/split.json" --json >"$T/split.out" || fail "over-fitted copy failed"
grep -q '"kind":"D2"' "$T/split.out" || fail "over-fitted fit is not D2"
grep -Eq '"loss":(0\.0|[0-9.]+e-1[0-9])[,}]' "$T/split.out" || { cat "$T/split.out"; fail "split copy: loss not 0"; }
grep -q '"cell2.size":2.0' "$T/split.out" || fail "cell 2 should hold two fitted atoms"
"$M" loss --truth "$A" --fit "$T/split.json" --translation infimum --json >"$T/inf.out" || fail "infimum failed"
grep -q '"convention":"infimum"' "$T/inf.out" || fail "infimum not reported"
# Human summary names the kind and the translation.
"$M" loss --truth "$A" --fit "$T/split.json" >"$T/human.txt" || fail "human summary failed"
grep -q "D2 Voronoi loss" "$T/human.txt" || fail "summary lacks the kind"
grep -q "translation: reference-atoms" "$T/human.txt" || fail "summary lacks the convention"
# Density distances of identical models are 0, with the seed echoed.
"$M" loss --truth "$A" --fit "$T/swap.json" --distances --mc 50 --seed 9 --json >"$T/dist.out" || fail "--distances failed"
# (the relabelled copy computes its gate in another order: round-off of 1e-16 allowed)
grep -Eq '"hellinger":(0\.0|[0-9.]+e-1[5-9])[,}]' "$T/dist.out" || { cat "$T/dist.out"; fail "Hellinger of identical models not 0"; }
"$M" loss --truth "$A" --fit "$A" --distances --mc 50 --json >"$T/dist0.out" || fail "--distances failed"
grep -q '"hellinger":0.0,' "$T/dist0.out" || { cat "$T/dist0.out"; fail "Hellinger of the truth against itself not 0"; }
grep -q '"seed":9' "$T/dist.out" || fail "seed not echoed"
echo ok
