#!/bin/sh
# moerate rates on a synthetic results table of known exponents
# (rates_make_results.py, seed 1): summary, JSON, accounting, determinism.
M=$1
. "$(dirname "$0")/lib.sh"
D=$(dirname "$0")
python3 "$D/rates_make_results.py" "$T/res.csv" 1 || fail "cannot write synthetic results"

"$M" rates --help >"$T/h" || fail "rates --help"
grep -q "Example:" "$T/h" || fail "rates --help has no example"
grep -q "moerate rates" "$T/h" || fail "rates example does not run rates"

"$M" rates --results "$T/res.csv" --bootstrap 400 --theory loss=1/2 beta1=1/8 a=1/4 \
  --json "$T/r.json" --windows >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "rates exit code"; }
grep -q "seed 1" "$T/out" || fail "seed not echoed"
grep -q "BIC" "$T/out" || fail "model criterion not stated"
grep -q "max_iter (capped) are included" "$T/out" || fail "capped policy not stated"
grep -q "m.cell3.beta1" "$T/out" || fail "empty metric not reported"
grep -q "window:" "$T/out" || fail "--windows printed no table"
[ -s "$T/r.json" ] || fail "no JSON"
ls -a "$T" | grep -q '\.tmp\.' && fail "temporary file left behind"

python3 - "$T/r.json" <<'PY' || fail "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["seed"] == 1 and d["bootstrap"] == 400 and d["exclude_capped"] is False, d
truth = {("linear k=3", "m.loss"): 0.5, ("linear k=3", "m.beta1"): 0.125, ("linear k=3", "m.a"): 0.25,
         ("ffn k=3", "m.loss"): 0.5, ("ffn k=3", "m.beta1"): 0.25, ("ffn k=3", "m.a"): 0.25}
fits = {(f["setting"], f["metric"]): f for f in d["fits"]}
assert set(fits) == set(truth), sorted(fits)
for key, e in truth.items():
    f = fits[key]
    assert f["fitted"], key
    lo, hi = f["ci"]
    assert lo < f["exponent"] < hi, (key, f["ci"])
    assert abs(f["exponent"] - e) < 0.06, (key, f["exponent"], e)   # sd about 0.015
    assert 0.02 < hi - lo < 0.15, (key, f["ci"])
    c = f["counts"]
    assert (c["rows"], c["used"], c["failed"], c["capped"], c["missing"]) == (240, 238, 2, 1, 0), (key, c)
    assert f["preferred_model"] in ("power", "log_power", "slow")
    assert len(f["models"]) == 3 and len(f["window"]) >= 5
    assert f["window"][0]["exponent"] == f["exponent"]
    th = {"m.loss": 0.5, "m.beta1": 0.125, "m.a": 0.25}[key[1]]
    assert f["theory"] == th and f["theory_in_ci"] == (lo <= th <= hi), key
PY

# Same seed: same numbers; --exclude-capped drops the capped row.
"$M" rates --results "$T/res.csv" --bootstrap 400 --metric loss --setting "ffn k=3" --json "$T/a.json" >/dev/null || fail "rerun"
"$M" rates --results "$T/res.csv" --bootstrap 400 --metric m.loss --setting "ffn k=3" --json "$T/b.json" --threads 1 >/dev/null || fail "rerun 2"
"$M" rates --results "$T/res.csv" --bootstrap 400 --metric loss --setting "ffn k=3" --json "$T/c.json" --exclude-capped >/dev/null || fail "exclude-capped"
python3 - "$T/a.json" "$T/b.json" "$T/c.json" "$T/r.json" <<'PY' || fail "determinism / exclude-capped"
import json, sys
a, b, c, r = (json.load(open(p)) for p in sys.argv[1:])
assert len(a["fits"]) == 1 and a["fits"] == b["fits"], "not deterministic across thread counts"
full = [f for f in r["fits"] if f["setting"] == "ffn k=3" and f["metric"] == "m.loss"][0]
assert a["fits"][0]["ci"] == full["ci"], "interval depends on which metrics were run"
cf = c["fits"][0]
assert c["exclude_capped"] is True and cf["capped_excluded"] is True
assert cf["counts"]["used"] == 237 and cf["counts"]["capped"] == 1, cf["counts"]
PY
echo ok
