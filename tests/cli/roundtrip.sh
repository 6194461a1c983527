#!/bin/sh
# simulate -> loglik -> fit -> predict on experiment A; the fit is itself a model file.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" simulate --model data/experiment-a.json --n 2000 --seed 3 --out "$T/a.csv" >/dev/null || fail simulate
[ "$(wc -l <"$T/a.csv")" -eq 2001 ] || fail "simulate row count"
head -1 "$T/a.csv" | grep -q '^x1,y$' || fail "simulate header"
# Same seed, same file.
"$M" simulate --model data/experiment-a.json --n 2000 --seed 3 --out "$T/b.csv" >/dev/null
cmp -s "$T/a.csv" "$T/b.csv" || fail "simulate is not deterministic for a seed"
"$M" loglik --model data/experiment-a.json --data "$T/a.csv" --json >"$T/ll.json" || fail loglik
python3 - "$T/ll.json" <<'PY' || fail "loglik json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["n_obs"] == 2000 and isinstance(j["log_likelihood"], float), j
PY
"$M" fit --data "$T/a.csv" --experts 2 --starts 4 --seed 1 --out "$T/fit.json" >"$T/fit.txt" || fail fit
grep -q "log-likelihood" "$T/fit.txt" || fail "fit summary"
python3 - "$T/fit.json" "$T/ll.json" <<'PY' || fail "fit json keys"
import json, sys
f = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
for key in ["log_likelihood", "n_obs", "iterations", "stop_reason", "aic", "bic", "experts", "gating", "expert_family"]:
    assert key in f, key
assert f["stop_reason"] in ("converged", "max_iter"), f["stop_reason"]
assert len(f["fit"]["starts"]) == 4
# The MLE has a higher likelihood than the truth on the same data.
assert f["log_likelihood"] >= t["log_likelihood"] - 1e-6, (f["log_likelihood"], t["log_likelihood"])
PY
# A fit is a valid model file for every command.
"$M" loglik --model "$T/fit.json" --data "$T/a.csv" --json >"$T/ll2.json" || fail "loglik on a fit"
python3 - "$T/fit.json" "$T/ll2.json" <<'PY' || fail "loglik of the fit equals the fit's log-likelihood"
import json, sys
f = json.load(open(sys.argv[1])); l = json.load(open(sys.argv[2]))
assert abs(f["log_likelihood"] - l["log_likelihood"]) < 1e-6 * abs(l["log_likelihood"]), (f["log_likelihood"], l["log_likelihood"])
PY
"$M" predict --model "$T/fit.json" --data "$T/a.csv" --out "$T/p.csv" >/dev/null || fail predict
head -1 "$T/p.csv" | grep -q '^x1,y,mean,variance,q0.05,q0.5,q0.95,gate1,gate2,posterior1,posterior2,gate_expert,posterior_expert$' || fail "predict header: $(head -1 "$T/p.csv")"
python3 - "$T/p.csv" <<'PY' || fail "predict values"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2000
for r in rows[:200]:
    g = float(r["gate1"]) + float(r["gate2"]); p = float(r["posterior1"]) + float(r["posterior2"])
    assert abs(g - 1) < 1e-12 and abs(p - 1) < 1e-12
    assert float(r["q0.05"]) <= float(r["q0.5"]) <= float(r["q0.95"])
    assert float(r["variance"]) > 0
PY
# Rerun with the same seed: identical fit.
"$M" fit --data "$T/a.csv" --experts 2 --starts 4 --seed 1 --threads 1 --out "$T/fit2.json" >/dev/null
python3 - "$T/fit.json" "$T/fit2.json" <<'PY' || fail "fit not deterministic across thread counts"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["experts"] == b["experts"] and a["log_likelihood"] == b["log_likelihood"]
PY
echo ok
