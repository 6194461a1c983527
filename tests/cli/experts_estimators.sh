#!/bin/sh
# --expert families with options (ffn units, polynomial) and --estimator mle|lse.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" simulate --model data/experiment-a.json --n 1000 --seed 5 --out "$T/a.csv" >/dev/null || fail simulate
# EM and the direct MLE reach the same log-likelihood.
"$M" fit --data "$T/a.csv" --experts 2 --starts 3 --seed 1 --tol 1e-12 --max-iter 5000 --out "$T/em.json" >/dev/null || fail "fit em"
"$M" fit --data "$T/a.csv" --experts 2 --starts 3 --seed 1 --tol 1e-12 --max-iter 5000 --estimator mle --out "$T/mle.json" >/dev/null || fail "fit mle"
python3 - "$T/em.json" "$T/mle.json" <<'PY' || fail "em and mle disagree"
import json, sys
e = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
assert m["fit"]["estimator"] == "mle", m["fit"]["estimator"]
assert m["stop_reason"] == "converged", m["stop_reason"]
assert abs(e["log_likelihood"] - m["log_likelihood"]) < 1e-6 * abs(e["log_likelihood"]), (e["log_likelihood"], m["log_likelihood"])
PY
# Least squares: a regression model file without variances.
"$M" fit --data "$T/a.csv" --experts 2 --starts 3 --seed 1 --estimator lse --out "$T/lse.json" >/dev/null || fail "fit lse"
python3 - "$T/lse.json" <<'PY' || fail "lse output"
import json, sys
f = json.load(open(sys.argv[1]))
assert f["model"] == "regression", f["model"]
assert "variance" not in f["experts"][0], f["experts"][0]
assert f["fit"]["rss"] > 0 and f["noise_variance"] > 0
for s in f["fit"]["starts"]:
    assert s["objective"] <= 0 and s["objective"] >= s["objective_initial"], s
PY
"$M" loglik --model "$T/lse.json" --data "$T/a.csv" >/dev/null || fail "loglik of an lse fit"
# Expert families with options; the fit is a model file that reads back.
"$M" fit --data "$T/a.csv" --experts 2 --starts 2 --seed 1 --max-iter 50 --expert ffn:tanh,units=2 --out "$T/ffn.json" >/dev/null || fail "fit ffn units=2"
python3 - "$T/ffn.json" <<'PY' || fail "ffn units file"
import json, sys
f = json.load(open(sys.argv[1]))
assert f["expert_family"] == {"family": "ffn", "activation": "tanh", "units": 2}, f["expert_family"]
e = f["experts"][0]["expert"]
assert set(e) == {"c0", "units"} and len(e["units"]) == 2 and set(e["units"][0]) == {"w", "u", "c"}, e
PY
"$M" loglik --model "$T/ffn.json" --data "$T/a.csv" >/dev/null || fail "loglik of an ffn units=2 fit"
"$M" fit --data "$T/a.csv" --experts 2 --starts 2 --seed 1 --max-iter 50 --expert polynomial:p=2 --out "$T/poly.json" >/dev/null || fail "fit polynomial"
grep -q '"p": *2' "$T/poly.json" || fail "polynomial family object"
# Bad options are usage errors.
expect_error 2 "unknown option" "$T/bad.json" -- "$M" fit --data "$T/a.csv" --experts 2 --expert ffn:tanh,unit=3 --out "$T/bad.json"
expect_error 2 "integer >= 2" "$T/bad.json" -- "$M" fit --data "$T/a.csv" --experts 2 --expert polynomial:p=1 --out "$T/bad.json"
expect_error 2 "unknown estimator" "$T/bad.json" -- "$M" fit --data "$T/a.csv" --experts 2 --estimator nope --out "$T/bad.json"
exit 0
