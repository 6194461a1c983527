#!/bin/sh
# Bernoulli experts end to end (issue 15): simulate from a Bernoulli MoE model
# file, fit with --response bernoulli (the model file records "model":
# "bernoulli" and has no variances), predict probabilities, log-likelihood of
# the fit at least that of the truth, loss against the truth; a response that
# is not 0/1 is refused naming the file and line; old model files still load.
M=$1
. "$(dirname "$0")/lib.sh"
cat >"$T/truth.json" <<'JSON'
{"model": "bernoulli", "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
 "experts": [
  {"gate": {"beta0": 0, "beta1": [6]}, "expert": {"a": [4], "b": 1}},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-3], "b": -0.5}}]}
JSON
"$M" simulate --model "$T/truth.json" --n 1500 --seed 4 --design uniform:-1,1 --out "$T/d.csv" >/dev/null || fail "simulate"
python3 - "$T/d.csv" <<'PY' || fail "simulated y not in {0, 1}"
import csv, sys
ys = [float(r["y"]) for r in csv.DictReader(open(sys.argv[1]))]
assert set(ys) <= {0.0, 1.0} and 0 < sum(ys) < len(ys), set(ys)
PY
"$M" fit --data "$T/d.csv" --experts 2 --response bernoulli --starts 2 --seed 1 --out "$T/fit.json" >"$T/fit.txt" || fail "fit"
grep -q "converged" "$T/fit.txt" || { cat "$T/fit.txt"; fail "fit did not converge"; }
"$M" loglik --model "$T/fit.json" --data "$T/d.csv" --json >"$T/llf.json" || fail "loglik fit"
"$M" loglik --model "$T/truth.json" --data "$T/d.csv" --json >"$T/llt.json" || fail "loglik truth"
"$M" predict --model "$T/fit.json" --data "$T/d.csv" --out "$T/p.csv" >/dev/null || fail "predict"
"$M" loss --truth "$T/truth.json" --fit "$T/fit.json" --json >"$T/loss.json" || fail "loss"
python3 - "$T" <<'PY' || fail "checks on the fit"
import csv, json, sys
t = sys.argv[1]
f = json.load(open(t + "/fit.json"))
assert f["model"] == "bernoulli", f["model"]
assert all("variance" not in e for e in f["experts"]), "a Bernoulli expert has a variance"
llf = json.load(open(t + "/llf.json"))["log_likelihood"]
llt = json.load(open(t + "/llt.json"))["log_likelihood"]
assert llf >= llt - 1e-6, (llf, llt)
rows = list(csv.DictReader(open(t + "/p.csv")))
assert all(0 <= float(r["mean"]) <= 1 for r in rows), "probabilities outside [0, 1]"
assert all(abs(float(r["variance"]) - float(r["mean"]) * (1 - float(r["mean"]))) < 1e-12 for r in rows)
loss = json.load(open(t + "/loss.json"))
assert loss["loss"] >= 0, loss["loss"]
assert not any(k.split(".")[-1] == "nu" for k in loss["terms"]), loss["terms"]
PY
# A response other than 0 and 1: the file and the line are named.
printf 'x,y\n0.1,0\n\n0.2,1\n0.3,0.5\n' >"$T/bad.csv"
expect_error 1 "bad.csv:5: .*must be 0 or 1; got 0.5" "$T/o.json" -- "$M" fit --data "$T/bad.csv" --experts 1 --response bernoulli --out "$T/o.json"
# Old (Gaussian) model files load as before, and fitting them is unchanged.
"$M" simulate --model data/experiment-a.json --n 50 --seed 1 --out "$T/g.csv" >/dev/null || fail "old model file"
echo "bernoulli: ok"
