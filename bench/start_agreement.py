#!/usr/bin/env python3
"""Per sample size: do the truth-free (k-means; for the over-fitted built-in
studies since round 7 kmeans+split) and near-truth starts of a study reach the
same log-likelihood, how far apart are they, and how much does a cell metric
change between the two fits of the same data set (against its spread over
replications)? Reads a study's results.csv (settings "L" and "L near-truth").

  python3 bench/start_agreement.py out/linear-vs-ffn-medium/results.csv [--metric m.cell.beta1]
"""
import argparse, collections, csv, math, statistics as st

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("--metric", default="m.cell.beta1")
ap.add_argument("--tol", type=float, default=1e-3, help="nats: the same maximum when closer")
a = ap.parse_args()
d = collections.defaultdict(dict)
for r in csv.DictReader(open(a.results)):
    s = r["setting"]
    nt = s.endswith(" near-truth")
    base = s[: -len(" near-truth")] if nt else s
    d[(base, int(r["n"]), int(r["rep"]))]["nt" if nt else "km"] = r
print(f"{'setting':14} {'n':>7} {'agree':>7} {'med|dll|':>9} {'tf>nt':>6} {'med|log ratio|':>15} {'sd(log metric)':>15}")
for base in sorted({k[0] for k in d}):
    for n in sorted({k[1] for k in d if k[0] == base}):
        pairs = [v for (b, nn, _), v in d.items() if b == base and nn == n and len(v) == 2]
        if not pairs:
            continue
        gaps = [float(v["km"]["log_likelihood"]) - float(v["nt"]["log_likelihood"]) for v in pairs]
        agree = sum(abs(g) < a.tol for g in gaps)
        ratios, logs = [], []
        for v, g in zip(pairs, gaps):
            if v["km"][a.metric] == "" or v["nt"][a.metric] == "":
                continue  # a block this family does not have
            x, y = float(v["km"][a.metric]), float(v["nt"][a.metric])
            if x > 0:
                logs.append(math.log(x))
            if abs(g) >= a.tol and x > 0 and y > 0:
                ratios.append(abs(math.log(x / y)))
        print(f"{base:14} {n:>7} {agree:>3}/{len(pairs):<3} {st.median(map(abs, gaps)):>9.2f} {sum(g >= a.tol for g in gaps):>6}"
              f" {(st.median(ratios) if ratios else float('nan')):>15.2f} {(st.stdev(logs) if len(logs) > 1 else float('nan')):>15.2f}")
