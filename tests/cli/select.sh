#!/bin/sh
# moerate select, dendrogram, fit --se-csv, predict's most probable expert,
# columns read from the model file, simulate --design file: (issue 14).
M=$1
. "$(dirname "$0")/lib.sh"

# select on tone (n = 150), k = 1..3: table, picks, CSV, JSON, figure.
"$M" select --data data/tone.csv --experts 1:3 --starts 2 --seed 1 --threads 2 --out "$T/sel.json" \
  --csv "$T/sel.csv" --plot "$T/sel.svg" >"$T/sel.txt" || { cat "$T/sel.txt"; fail "select tone"; }
grep -q "^bic: " "$T/sel.txt" || fail "select: no BIC pick"
grep -q "<svg" "$T/sel.svg" || fail "select: no figure"
[ "$(wc -l <"$T/sel.csv")" -eq 4 ] || fail "select: CSV should have a header and 3 rows"
python3 - "$T/sel.json" "$T/sel.csv" <<'PY' || fail "select outputs"
import csv, json, math, sys
j = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
assert [r["k"] for r in j["rows"]] == [1, 2, 3]
n = j["n_obs"]
for r, c in zip(j["rows"], rows):
    # BIC from the log-likelihood and the parameter count, independently.
    assert abs(r["bic"] - (-2 * r["log_likelihood"] + math.log(n) * r["n_params"])) < 1e-6 * abs(r["bic"])
    assert r["icl"] >= r["bic"] - 1e-9
    assert abs(float(c["bic"]) - r["bic"]) < 1e-9 * abs(r["bic"])
for crit in ("aic", "bic", "icl"):
    p = j["picks"][crit]
    if p["k"] is not None:
        assert not j["rows"][p["k"] - 1]["degenerate"], crit
PY
# Deterministic: the same numbers with one thread; the row k = 2 is 'fit -k 2' with the same seed.
"$M" select --data data/tone.csv --experts 2:2 --starts 2 --seed 1 --threads 1 --out "$T/sel2.json" >/dev/null || fail "select 2:2"
"$M" fit --data data/tone.csv --experts 2 --starts 2 --seed 1 --quiet --out "$T/fit2.json" >/dev/null || fail "fit k=2"
python3 - "$T/sel.json" "$T/sel2.json" "$T/fit2.json" <<'PY' || fail "select determinism"
import json, sys
a, b, f = (json.load(open(p)) for p in sys.argv[1:])
assert a["rows"][1]["log_likelihood"] == b["rows"][0]["log_likelihood"]
assert a["rows"][1]["log_likelihood"] == f["log_likelihood"]
PY

# Each row's model is a model file: loglik on the data gives the row's log-likelihood.
python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['rows'][1]['model'], open(sys.argv[2], 'w'))" \
  "$T/sel.json" "$T/row2.json" || fail "row model"
"$M" loglik --model "$T/row2.json" --data data/tone.csv --json >"$T/row2.txt" || fail "loglik of a row model"
python3 - "$T/sel.json" "$T/row2.txt" <<'PY' || fail "row model log-likelihood"
import json, sys
r = json.load(open(sys.argv[1]))["rows"][1]
l = json.loads(open(sys.argv[2]).read())["log_likelihood"]
assert abs(l - r["log_likelihood"]) < 1e-9 * abs(l), (l, r["log_likelihood"])
assert r["model"]["fit"]["x_columns"] == ["x"]
PY

# dendrogram of an over-fitted fit (k = 4) on data from experiment A.
"$M" simulate --model data/experiment-a.json --n 600 --seed 4 --out "$T/a.csv" >/dev/null || fail "simulate"
"$M" fit --data "$T/a.csv" --experts 4 --starts 2 --seed 1 --quiet --out "$T/f4.json" >/dev/null || fail "fit k=4"
"$M" dendrogram --fit "$T/f4.json" --data "$T/a.csv" --out "$T/d.json" --plot "$T/d.svg" >"$T/d.txt" ||
  { cat "$T/d.txt"; fail "dendrogram"; }
grep -q "chosen k = " "$T/d.txt" || fail "dendrogram: no choice printed"
grep -q "<svg" "$T/d.svg" || fail "dendrogram: no figure"
python3 - "$T/d.json" <<'PY' || fail "dendrogram outputs"
import json, math, sys
d = json.load(open(sys.argv[1]))
assert [l["k"] for l in d["levels"]] == [4, 3, 2, 1]
assert len(d["merges"]) == 3 and sorted(d["merges"][-1]["leaves"]) == [0, 1, 2, 3]
assert abs(d["omega"] - math.log(600)) < 1e-12
for l in d["levels"]:
    assert abs(l["dsc"] - (l["height"] + d["omega"] * l["mean_log_likelihood"])) < 1e-9 * max(1, abs(l["dsc"]))
best = max(d["levels"], key=lambda l: (l["dsc"], l["k"]))
assert d["chosen_k"] == best["k"]
PY

# Columns by name from the model file: a data file with the columns in another
# order and an extra one needs no --x.
python3 - "$T/a.csv" "$T/b.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w") as f:
    f.write("y,junk,x1\n")
    for r in rows:
        f.write("%s,7,%s\n" % (r["y"], r["x1"]))
PY
"$M" fit --data "$T/a.csv" --experts 2 --starts 2 --seed 1 --quiet --out "$T/f2.json" --se-csv "$T/coef.csv" >"$T/fit.txt" ||
  { cat "$T/fit.txt"; fail "fit --se-csv"; }
grep -q "p-value" "$T/fit.txt" || fail "fit --se: no p-value column"
head -1 "$T/coef.csv" | grep -q "^parameter,estimate,se,z,p_value,lower,upper" || fail "coefficient CSV header"
python3 - "$T/coef.csv" <<'PY' || fail "coefficient CSV values"
import csv, math, sys
for r in csv.DictReader(open(sys.argv[1])):
    est, se, z, p = (float(r[c]) for c in ("estimate", "se", "z", "p_value"))
    assert abs(z - est / se) < 1e-9 * max(1, abs(z))
    assert abs(p - math.erfc(abs(z) / math.sqrt(2))) < 1e-9, (p, z)
    assert abs(float(r["lower"]) - (est - 1.959963984540054 * se)) < 1e-9 * max(1, abs(est))
PY
"$M" loglik --model "$T/f2.json" --data "$T/a.csv" --json >"$T/l1.txt" || fail "loglik a.csv"
"$M" loglik --model "$T/f2.json" --data "$T/b.csv" --json >"$T/l2.txt" || fail "loglik b.csv (columns by name)"
cmp -s "$T/l1.txt" "$T/l2.txt" || fail "loglik differs when the columns are reordered"
"$M" predict --model "$T/f2.json" --data "$T/b.csv" --out "$T/p.csv" >/dev/null || fail "predict b.csv"
python3 - "$T/p.csv" <<'PY' || fail "predict: most probable expert"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert "junk" not in rows[0]
for r in rows:
    g = [float(r["gate1"]), float(r["gate2"])]
    p = [float(r["posterior1"]), float(r["posterior2"])]
    assert int(r["gate_expert"]) == 1 + g.index(max(g))
    assert int(r["posterior_expert"]) == 1 + p.index(max(p))
PY

# simulate --design file: the covariates of a file, in order.
cut -d, -f3 "$T/b.csv" >"$T/x.csv"
"$M" simulate --model data/experiment-a.json --design "file:$T/x.csv" --seed 2 --out "$T/s.csv" >/dev/null || fail "simulate file design"
python3 - "$T/x.csv" "$T/s.csv" <<'PY' || fail "simulate: design not taken from the file"
import csv, sys
a = list(csv.DictReader(open(sys.argv[1])))
b = list(csv.DictReader(open(sys.argv[2])))
assert len(a) == len(b)
assert all(float(r["x1"]) == float(s["x1"]) for r, s in zip(a, b))
PY
echo ok
