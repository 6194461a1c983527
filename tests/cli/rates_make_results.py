#!/usr/bin/env python3
"""Write a synthetic results CSV (the `moerate sweep` contract) with known exponents.

usage: rates_make_results.py OUT.csv [SEED]

Settings "linear k=3" and "ffn k=3"; 12 log-spaced n in [100, 1e5]; 20 replicates.
m.loss ~ n^(-1/2); m.beta1 ~ n^(-1/8) (linear) or n^(-1/4) (ffn); m.a ~ n^(-1/4);
m.cell3.beta1 is empty (not applicable). Log-normal noise with sd 0.5 on log L.
Replicate 0 at the two smallest n is a failed fit (loss nan); replicate 1 at the
largest n hit the iteration cap.
"""
import csv
import math
import random
import sys

out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
rng = random.Random(seed)
sizes = [round(math.exp(math.log(100) + (math.log(1e5) - math.log(100)) * i / 11)) for i in range(12)]
rates = {
    "linear k=3": {"m.loss": (2.0, 0.5), "m.beta1": (5.0, 0.125), "m.a": (8.0, 0.25)},
    "ffn k=3": {"m.loss": (1.5, 0.5), "m.beta1": (6.0, 0.25), "m.a": (7.0, 0.25)},
}
header = ["setting", "n", "rep", "k", "seed", "estimator", "init", "stop_reason", "iterations",
          "log_likelihood", "seconds", "m.loss", "m.beta1", "m.a", "m.cell3.beta1"]
with open(out, "w", newline="") as f:
    w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    for setting, metrics in rates.items():
        for n in sizes:
            for rep in range(20):
                stop = "converged"
                if rep == 0 and n in sizes[:2]:
                    stop = "failed"
                elif rep == 1 and n == sizes[-1]:
                    stop = "max_iter"
                vals = []
                for m in ["m.loss", "m.beta1", "m.a"]:
                    c, e = metrics[m]
                    v = c * n ** (-e) * math.exp(0.5 * rng.gauss(0, 1))
                    vals.append("nan" if stop == "failed" else repr(v))
                w.writerow([setting, n, rep, 3, 1000 + rep, "em", "kmeans", stop,
                            1000 if stop == "max_iter" else 57, -1.0 * n, 0.01] + vals + [""])
