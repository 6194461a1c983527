#!/bin/sh
# Bias-free two-layer experts (--expert ffn:ACT,bias=false; models.md 9.1): fit,
# model file, list; relu's positive homogeneity quotiented out by the Voronoi
# loss (a rescaled copy c relu(z) = (c/s) relu(s z) has loss 0, with and without
# bias); bad options are usage errors naming the option.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" list >"$T/list.txt" || fail "list"
grep -q "bias=false" "$T/list.txt" || { cat "$T/list.txt"; fail "list does not show bias=false"; }
# relu with bias: 2 relu(5x - 2) vs (2/4) relu(20x - 8) and 3 relu(-4x + 1) vs 6 relu(-2x + 0.5).
for bias in true false; do
  if [ "$bias" = true ]; then
    fam='{"family": "ffn", "activation": "relu"}'
    e1='"a": [5], "b": -2, "c": 2'; e1s='"a": [20], "b": -8, "c": 0.5'
    e2='"a": [-4], "b": 1, "c": 3'; e2s='"a": [-2], "b": 0.5, "c": 6'
  else
    fam='{"family": "ffn", "activation": "relu", "bias": false}'
    e1='"a": [5], "c": 2'; e1s='"a": [20], "c": 0.5'
    e2='"a": [-4], "c": 3'; e2s='"a": [-0.5], "c": 24'
  fi
  cat >"$T/truth.json" <<JSON
{"gating": {"family": "softmax"}, "expert_family": $fam,
 "experts": [
  {"gate": {"beta0": -8, "beta1": [25]}, "expert": {$e1}, "variance": 0.09},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {$e2}, "variance": 0.16}]}
JSON
  cat >"$T/scaled.json" <<JSON
{"gating": {"family": "softmax"}, "expert_family": $fam,
 "experts": [
  {"gate": {"beta0": -8, "beta1": [25]}, "expert": {$e1s}, "variance": 0.09},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {$e2s}, "variance": 0.16}]}
JSON
  "$M" loss --truth "$T/truth.json" --fit "$T/scaled.json" --json >"$T/loss.json" || fail "loss relu bias=$bias"
  python3 - "$T/loss.json" <<'PY' || fail "relu rescaled copy (bias=$bias): Voronoi loss not 0"
import json, sys
r = json.load(open(sys.argv[1]))
assert abs(r["loss"]) < 1e-12, r["loss"]
PY
done
# Fit with bias-free tanh experts: the model file has "bias": false and experts {"a", "c"}.
cat >"$T/tanh.json" <<'JSON'
{"gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh", "bias": false},
 "experts": [
  {"gate": {"beta0": 0, "beta1": [4]}, "expert": {"a": [2], "c": 3}, "variance": 0.09},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-3], "c": 1}, "variance": 0.16}]}
JSON
"$M" simulate --model "$T/tanh.json" --n 1000 --seed 5 --out "$T/d.csv" >/dev/null || fail simulate
"$M" fit --data "$T/d.csv" --experts 2 --starts 2 --seed 1 --max-iter 100 --expert ffn:tanh,bias=false --out "$T/fit.json" >/dev/null || fail "fit bias-free tanh"
python3 - "$T/fit.json" <<'PY' || fail "bias-free ffn file"
import json, sys
f = json.load(open(sys.argv[1]))
assert f["expert_family"] == {"family": "ffn", "activation": "tanh", "bias": False}, f["expert_family"]
for e in f["experts"]:
    assert set(e["expert"]) == {"a", "c"}, e
PY
"$M" loglik --model "$T/fit.json" --data "$T/d.csv" >/dev/null || fail "loglik of a bias-free fit"
"$M" loss --truth "$T/tanh.json" --fit "$T/fit.json" >/dev/null || fail "loss of a bias-free fit"
"$M" fit --data "$T/d.csv" --experts 2 --starts 1 --seed 1 --max-iter 20 --expert ffn:tanh,bias=false,units=2 --out "$T/fit2.json" >/dev/null || fail "fit bias-free units=2"
grep -q '"bias": *false' "$T/fit2.json" || fail "units=2 file lacks bias false"
# Bad options: usage errors naming the option, no output file.
expect_error 2 "bias" "$T/bad.json" -- "$M" fit --data "$T/d.csv" --experts 2 --expert ffn:tanh,bias=maybe --out "$T/bad.json"
expect_error 2 "units" "$T/bad.json" -- "$M" fit --data "$T/d.csv" --experts 2 --expert ffn:tanh,bias=false,units=0 --out "$T/bad.json"
# A bias-free file with a "b" is an error naming the key.
sed 's/"a": \[2\], "c": 3/"a": [2], "b": 0, "c": 3/' "$T/tanh.json" >"$T/withb.json"
expect_error 1 'withb.json.*experts\[0\]\.expert\.b' "$T/bad.csv" -- "$M" simulate --model "$T/withb.json" --n 10 --out "$T/bad.csv"
exit 0
