#!/bin/sh
# The scenario studies (experiments.md E) at the tiny "smoke" scale: each runs,
# prints its table with intervals, writes results with the sweep's columns plus
# its metrics, a summary and a figure; rerunning resumes. The quick and paper
# scales are run by hand (docs/results.md), never here.
M="$1"
. "$(dirname "$0")/lib.sh"
for s in latent-clusters cluster-centres expressive-power; do
  "$M" study "$s" --scale smoke --out "$T/$s" --bootstrap 50 --threads 2 --quiet >"$T/$s.txt" 2>"$T/$s.err" ||
    { cat "$T/$s.err"; fail "study $s"; }
  grep -q "bootstrap interval" "$T/$s.txt" || fail "$s: no table"
  [ -s "$T/$s/summary.json" ] || fail "$s: no summary"
  ls "$T/$s"/*.png >/dev/null 2>&1 || fail "$s: no figure"
  head -1 "$T/$s/results.csv" | grep -q '^setting,n,rep,k,seed,.*,certified,ll_change,score_norm,flags,m\.' || fail "$s: columns"
done
head -1 "$T/latent-clusters/results.csv" | grep -q 'm.test_mse,m.cosine,m.routing_accuracy' || fail "latent-clusters metrics"
head -1 "$T/cluster-centres/results.csv" | grep -q 'm.test_error,m.centre_distance,m.routing_accuracy' || fail "cluster-centres metrics"
grep -q 'hierarchical 3x3' "$T/expressive-power.txt" || fail "no hierarchical setting"
python3 - "$T/latent-clusters/results.csv" "$T/cluster-centres/results.csv" <<'PY' || fail "metric values out of range"
import csv, math, sys
for r in csv.DictReader(open(sys.argv[1])):
    assert r["stop_reason"] != "failed", r
    c = float(r["m.cosine"]); assert 0 <= c <= 1, c
    assert float(r["m.test_mse"]) >= 0
for r in csv.DictReader(open(sys.argv[2])):
    assert r["stop_reason"] != "failed", r
    e = float(r["m.test_error"]); assert 0 <= e <= 1, e
    d = float(r["m.centre_distance"])
    assert (r["k"] == "1") == math.isnan(d), r
PY
# Determinism: one thread gives the same rows as two (apart from wall times).
"$M" study cluster-centres --scale smoke --out "$T/one" --bootstrap 50 --threads 1 --quiet >/dev/null 2>&1 || fail "threads 1"
python3 - "$T/cluster-centres/results.csv" "$T/one/results.csv" <<'PY' || fail "results depend on the thread count"
import csv, sys
a, b = (list(csv.DictReader(open(f))) for f in sys.argv[1:3])
for r in a + b: r.pop("seconds")
assert a == b, (a, b)
PY
"$M" study latent-clusters --scale smoke --out "$T/latent-clusters" --bootstrap 50 --quiet >"$T/again.txt" 2>&1 || fail "rerun"
grep -q '0 failed' "$T/again.txt" && grep -q 'resumed' "$T/again.txt" || fail "rerun did not resume"
echo "scenarios_smoke: ok"
