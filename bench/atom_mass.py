#!/usr/bin/env python3
"""Where the over-fitted atom goes: per-atom weights of the doubled cell against n.

For the over-fitted truths of A2 (experiment A: steep gate on U[0, 1]) and of the
headline B (soft gate on U[-1, 1], linear experts), simulates `--reps` data sets at each
n, fits k = k* + 1 experts with the studies' bounds from a k-means start (2 starts) and a
near-truth start, keeps the larger certified log-likelihood (the studies' best-of), and
reads the doubled cell from `moerate loss --json`: for each of its two atoms exp(beta0)
(the weight the Voronoi loss and the cell metrics use) and the average gate weight over
the design (the share of the data the atom owns). Prints one line per fit and, per truth
and n, medians of

  share  = smaller exp(beta0) / sum of the cell's exp(beta0)   (the cell metric's weight)
  owns   = that atom's average gate weight                      (its real share of the data)

A cell metric E_B = (sum w_i |D_i|^p / sum w_i)^(1/p) with one w_i -> 0 measures the other
atom alone, which behaves like an exact-fitted atom (faster than the cell's theory rate).

    python3 bench/atom_mass.py build/apps/moerate [--sizes 300,1000,3000,10000,30000] [--reps 4]

Uses only the Python standard library; writes into a temporary directory.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

BOUNDS = ["--bound-gate-intercept", "30", "--bound-gate-slope", "50", "--bound-expert", "50",
          "--nu-min", "1e-4", "--nu-max", "100"]


def study_truth(m, study, truth):
    out = subprocess.run([m, "study", study, "--scale", "medium", "--print-config"], check=True,
                         capture_output=True, text=True).stdout
    cfg = json.loads(out)
    t = dict(cfg["truths"][truth])
    t.setdefault("model", "gaussian")
    return t, cfg["design"]


def fit(m, data, out, extra):
    subprocess.run([m, "fit", "--data", data, "--experts", "3", "--quiet", "--threads", "1", "--out", out]
                   + BOUNDS + extra, check=True, capture_output=True, text=True)
    j = json.load(open(out))
    return j["log_likelihood"], j["certified"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("moerate")
    ap.add_argument("--sizes", default="300,1000,3000,10000,30000")
    ap.add_argument("--reps", type=int, default=4)
    a = ap.parse_args()
    m = os.path.abspath(a.moerate)
    sizes = [int(s) for s in a.sizes.split(",")]
    cases = [("A2", "softmax-linear-over", "linear"), ("B linear", "linear-vs-ffn", "linear")]
    summary = []
    with tempfile.TemporaryDirectory() as d:
        print("truth     n      rep  best        exp(beta0) share  owns (gate mean)  cell.beta1  other atom owns")
        for name, study, truth in cases:
            t, design = study_truth(m, study, truth)
            tf = os.path.join(d, "truth.json")
            json.dump(t, open(tf, "w"))
            for n in sizes:
                shares, owns = [], []
                for rep in range(a.reps):
                    data = os.path.join(d, "d.csv")
                    subprocess.run([m, "simulate", "--model", tf, "--n", str(n), "--seed", str(7000 + rep),
                                    "--design", design, "--out", data], check=True, capture_output=True)
                    fk, fn = os.path.join(d, "k.json"), os.path.join(d, "n.json")
                    lk, ck = fit(m, data, fk, ["--starts", "2", "--seed", str(rep + 1)])
                    ln, cn = fit(m, data, fn, ["--starts", "1", "--init", "near-truth:" + tf])
                    best, which = (fk, "k-means") if (ck and (not cn or lk >= ln)) else (fn, "near-truth")
                    loss = json.loads(subprocess.run([m, "loss", "--truth", tf, "--fit", best, "--json"], check=True,
                                                     capture_output=True, text=True).stdout)
                    cell = [c for c in loss["cells"] if c["size"] == 2]
                    if not cell:
                        print(f"{name:9} {n:<6} {rep:<4} {which:11} no doubled cell")
                        continue
                    at = sorted(cell[0]["atoms"], key=lambda x: x["weight"])
                    tot = sum(x["weight"] for x in at)
                    share = at[0]["weight"] / tot if tot > 0 else float("nan")
                    shares.append(share)
                    owns.append(at[0]["gate_mean"])
                    print(f"{name:9} {n:<6} {rep:<4} {which:11} {share:<17.3g} {at[0]['gate_mean']:<17.3g} "
                          f"{cell[0]['errors']['beta1']:<11.3g} {at[1]['gate_mean']:.3g}")
                    sys.stdout.flush()
                if shares:
                    summary.append((name, n, statistics.median(shares), statistics.median(owns), len(shares)))
    print()
    print("truth     n      median exp(beta0) share  median owns  fits")
    for name, n, s, o, c in summary:
        print(f"{name:9} {n:<6} {s:<24.3g} {o:<12.3g} {c}")


if __name__ == "__main__":
    main()
