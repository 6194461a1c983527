#!/bin/sh
# bench/cell_decomposition.py on a synthetic results table whose parts are
# known: the cell's term M ~ n^(-1/2) and, for the second setting, a share of
# beta1 that grows like n^(0.1), so e(E_beta1) = (0.5 - 0.1) / 2 = 0.2.
M=$1
. "$(dirname "$0")/lib.sh"
S=bench/cell_decomposition.py
python3 - "$T/res.csv" <<'PY' || fail "cannot write synthetic results"
import csv, math, random, sys
rng = random.Random(3)
cols = ["setting", "n", "rep", "m.loss", "m.multi", "m.cell1.size", "m.cell1.weight", "m.cell2.size",
        "m.cell1.beta1", "m.cell1.b", "m.cell1.a", "m.cell1.c", "m.cell1.nu"]
with open(sys.argv[1], "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=cols)
    w.writeheader()
    for setting in ("linear k=3", "tanh k=3"):
        lin = setting.startswith("linear")
        for n in (1000, 3000, 10000, 30000, 100000):
            for rep in range(40):
                W = 0.7
                M = W * n ** -0.5 * math.exp(rng.gauss(0, 0.3))
                if lin:
                    s = {"beta1": 0.8, "b": 0.05, "a": 0.1, "nu": 0.05}
                    p = {"beta1": 4, "b": 4, "a": 2, "nu": 2}
                else:
                    sb = 0.2 * (n / 1000) ** 0.1
                    s = {"beta1": sb, "a": (1 - sb) / 2, "c": (1 - sb) / 4, "nu": (1 - sb) / 4}
                    p = {B: 2 for B in s}
                r = {"setting": setting, "n": n, "rep": rep, "m.loss": 1.5 * M, "m.multi": M,
                     "m.cell1.size": 2, "m.cell1.weight": 0.01, "m.cell2.size": 1,
                     "m.cell1.b": "", "m.cell1.c": ""}
                for B in s:
                    r["m.cell1." + B] = (M / W * s[B]) ** (1 / p[B])
                w.writerow(r)
    # Cells of three atoms (other exponents for linear experts) are left out and counted.
    for rep in range(3):
        w.writerow({"setting": "linear k=3", "n": 3000, "rep": 100 + rep, "m.loss": 0.02, "m.multi": 0.01,
                    "m.cell1.size": 3, "m.cell1.weight": 0.01, "m.cell2.size": 1, "m.cell1.beta1": 0.5,
                    "m.cell1.b": 0.4, "m.cell1.a": 0.1, "m.cell1.c": "", "m.cell1.nu": 0.05})
PY
python3 "$S" "$T/res.csv" --bootstrap 200 >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "exit code"; }
python3 - "$T/out" <<'PY' || { cat "$T/out" >&2; fail "decomposition"; }
import re, sys
text = open(sys.argv[1]).read()
parts = re.split(r'^setting "', text, flags=re.M)[1:]
assert len(parts) == 2, text
got = {}
for part in parts:
    name = part.split('"')[0]
    for line in part.splitlines():
        m = re.match(r"\s+(loss|M \(cell's term\)|W \(cell's weight\))\s+(-?[\d.]+) \[", line)
        if m:
            got[(name, m.group(1).split()[0])] = float(m.group(2))
        m = re.match(r"\s+(beta1|b|a|c|nu)\s+(\d)\s+(-?[\d.]+) \[.*\]\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+) \[", line)
        if m:
            got[(name, m.group(1))] = (int(m.group(2)), float(m.group(3)), float(m.group(6)))
assert 'setting "linear k=3": 200 rows (3 skipped)' in text, text
lin, tanh = "linear k=3", "tanh k=3"
assert abs(got[(lin, "M")] - 0.5) < 0.05 and abs(got[(lin, "W")]) < 1e-6, got
assert got[(lin, "beta1")][0] == 4 and got[(lin, "a")][0] == 2 and got[(lin, "nu")][0] == 2, got
assert abs(got[(lin, "beta1")][1] - 0.125) < 0.015 and abs(got[(lin, "a")][1] - 0.25) < 0.03, got
assert abs(got[(lin, "beta1")][2]) < 1e-6, got        # constant shares
assert (tanh, "b") not in got and got[(tanh, "c")][0] == 2, got
assert abs(got[(tanh, "beta1")][2] + 0.1) < 1e-6, got  # the share grows like n^0.1
assert abs(got[(tanh, "beta1")][1] - 0.2) < 0.03, got
PY
# Determinism: the same seed gives the same output.
python3 "$S" "$T/res.csv" --bootstrap 200 >"$T/out2" 2>&1 || fail "second run"
cmp -s "$T/out" "$T/out2" || fail "not deterministic"
# Bad input: a missing file and a table without m.multi, each named, non-zero exit.
python3 "$S" "$T/missing.csv" >"$T/o" 2>"$T/e" && fail "missing file accepted"
grep -q "missing.csv" "$T/e" || fail "missing file not named"
printf 'setting,n,m.loss\nx,10,1\n' >"$T/plain.csv"
python3 "$S" "$T/plain.csv" >"$T/o" 2>"$T/e" && fail "table without m.multi accepted"
grep -q "plain.csv: no m.multi" "$T/e" || fail "table without m.multi not named"
exit 0
