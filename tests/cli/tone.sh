#!/bin/sh
# The real-data example of the docs: tone perception, two experts.
M=$1
. "$(dirname "$0")/lib.sh"
"$M" fit --data data/tone.csv --experts 2 --seed 1 --out "$T/tone.json" >"$T/out.txt" || fail "fit tone"
python3 - "$T/tone.json" <<'PY' || fail "tone fit"
import json, sys
f = json.load(open(sys.argv[1]))
assert f["n_obs"] == 150
# Two regimes: one expert near the harmonic 2.0 (flat), one near y = x.
b = sorted(e["expert"]["b"] + e["expert"]["a"][0] * 2.0 for e in f["experts"])
assert f["log_likelihood"] > 0, f["log_likelihood"]
PY
echo ok
