#!/bin/sh
# Dominated starts stopped early (--prune-factor, docs/estimators.md): on the
# headline study's two-layer truth over-fitted, the default stops some starts
# (stop reason "dominated", listed on screen and in the fit JSON) and the fit is
# the one --prune-factor 0 (every start to its end) gives, in every digit; bad
# values are errors naming the option or the study file's key.
M=$1
. "$(dirname "$0")/lib.sh"
headline_tanh_fixture
# shellcheck disable=SC2086
"$M" fit --data "$T/d.csv" $F --out "$T/p.json" >"$T/p.txt" || fail "fit (default --prune-factor)"
grep -Eq "starts: [0-9]+/4 converged, [1-3]/4 stopped early as dominated" "$T/p.txt" || { cat "$T/p.txt"; fail "no dominated start on screen"; }
# shellcheck disable=SC2086
"$M" fit --data "$T/d.csv" $F --prune-factor 0 --out "$T/all.json" >"$T/all.txt" || fail "fit --prune-factor 0"
grep -q "dominated" "$T/all.txt" && fail "--prune-factor 0 stopped a start"
python3 - "$T/p.json" "$T/all.json" <<'PY' || fail "pruned fit differs from the unpruned one"
import json, sys
p, a = (json.load(open(f)) for f in sys.argv[1:3])
assert p["fit"]["prune_factor"] == 30 and a["fit"]["prune_factor"] == 0
assert p["log_likelihood"] == a["log_likelihood"], (p["log_likelihood"], a["log_likelihood"])
assert p["experts"] == a["experts"] and p["fit"]["best_start"] == a["fit"]["best_start"]
best = p["log_likelihood"]
dom = [s for s in p["fit"]["starts"] if s["stop_reason"] == "dominated"]
assert dom, "no dominated start"
assert p["fit"]["starts"][p["fit"]["best_start"]]["stop_reason"] != "dominated"
for s, t in zip(p["fit"]["starts"], a["fit"]["starts"]):
    assert t["stop_reason"] != "dominated"
    if s["stop_reason"] == "dominated":
        assert s["objective"] < best - 0.1 and s["objective"] <= t["objective"] and s["iterations"] < t["iterations"], (s, t)
    else:
        assert s["objective"] == t["objective"] and s["iterations"] == t["iterations"], (s, t)
PY
# Bad values: usage errors naming the option, no output file.
# shellcheck disable=SC2086
expect_error 2 "prune-factor" "$T/bad.json" -- "$M" fit --data "$T/d.csv" $F --prune-factor -1 --out "$T/bad.json"
expect_error 2 "prune-factor" "$T/bad.json" -- "$M" fit --data "$T/d.csv" $F --prune-factor abc --out "$T/bad.json"
"$M" select --help | grep -q -- "--prune-factor" || fail "select lacks --prune-factor"
# A study file's "prune_factor": recorded per setting, checked.
"$M" study linear-vs-ffn --scale quick --print-config >"$T/c.json" || fail "print-config"
python3 - "$T/c.json" "$T/bad_study.json" <<'PY' || fail "edit study"
import json, sys
c = json.load(open(sys.argv[1]))
c["settings"][0]["prune_factor"] = -1
json.dump(c, open(sys.argv[2], "w"))
PY
"$M" sweep --config "$T/bad_study.json" --out "$T/r.csv" --quiet >/dev/null 2>"$T/sweep.err" && fail "sweep accepted prune_factor -1"
grep -q 'settings\[0\].prune_factor' "$T/sweep.err" || { cat "$T/sweep.err"; fail "sweep error does not name settings[0].prune_factor"; }
[ -s "$T/r.csv" ] && fail "sweep wrote results for a bad study file"
exit 0
