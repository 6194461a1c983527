#!/usr/bin/env python3
"""Issue-14 evidence: how often do the dendrogram (DSC), BIC and ICL choose k* = 2?

Experiment A (data/experiment-a.json, k* = 2, x ~ U[0, 1]), n = 5000, R
replications (default 10), each in two versions:
  clean      the simulated data
  outliers   the same data with 5% of the responses (rows chosen at random)
             replaced by draws from U[-20, 30] (the clean y lie in about [-5, 15])
For each dataset: `moerate select --experts 1:5` (BIC and ICL picks, degenerate
fits never picked), then `moerate dendrogram` on select's k = 5 fit (the
over-fitted fit the dendrogram starts from). Prints one row per dataset and the
counts; --csv writes the rows. Python standard library only; the seeds are the
replication numbers, so the run is reproducible.

EM is capped at --max-iter steps per start (default 3000; fits that reach the cap
are not certified, which the select table shows; without a cap one replication
ran for more than 20 minutes on a loaded 2-core machine). --first-rep lets two
processes share the replications (the seeds do not change).

usage: bench/select_dendrogram.py [MOERATE] [--reps 10] [--first-rep 1] [--n 5000] [--starts 3]
                                  [--max-iter 3000] [--csv out.csv]
"""
import argparse, csv, json, os, random, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("moerate", nargs="?", default="build/apps/moerate")
ap.add_argument("--reps", type=int, default=10)
ap.add_argument("--n", type=int, default=5000)
ap.add_argument("--k", type=int, default=5)
ap.add_argument("--starts", type=int, default=3)
ap.add_argument("--max-iter", type=int, default=3000)
ap.add_argument("--first-rep", type=int, default=1)
ap.add_argument("--fraction", type=float, default=0.05)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--model", default="data/experiment-a.json")
ap.add_argument("--csv", default="")
a = ap.parse_args()
M = a.moerate
tmp = tempfile.mkdtemp(prefix="moerate-select-")


def run(args):
    r = subprocess.run([M] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("failed: moerate " + " ".join(args) + "\n" + r.stderr)
    return r.stdout


def contaminate(src, dst, seed):
    rows = list(csv.DictReader(open(src)))
    rng = random.Random(seed)
    idx = rng.sample(range(len(rows)), int(round(a.fraction * len(rows))))
    for i in idx:
        rows[i]["y"] = repr(rng.uniform(-20, 30))
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


results = []
t0 = time.time()
for rep in range(a.first_rep, a.first_rep + a.reps):
    clean = os.path.join(tmp, "clean-%d.csv" % rep)
    run(["simulate", "--model", a.model, "--n", str(a.n), "--seed", str(rep), "--out", clean])
    dirty = os.path.join(tmp, "outliers-%d.csv" % rep)
    contaminate(clean, dirty, 1000 + rep)
    for kind, data in (("clean", clean), ("outliers", dirty)):
        sel = os.path.join(tmp, "sel-%s-%d.json" % (kind, rep))
        run(["select", "--data", data, "--experts", "1:%d" % a.k, "--starts", str(a.starts), "--seed", str(rep),
             "--threads", str(a.threads), "--max-iter", str(a.max_iter), "--out", sel])
        j = json.load(open(sel))
        f5 = os.path.join(tmp, "fit%d-%s-%d.json" % (a.k, kind, rep))
        json.dump(j["rows"][-1]["model"], open(f5, "w"))
        den = os.path.join(tmp, "den-%s-%d.json" % (kind, rep))
        run(["dendrogram", "--fit", f5, "--data", data, "--out", den])
        d = json.load(open(den))
        capped = ";".join(str(r["k"]) for r in j["rows"] if r["stop_reason"] == "max_iter")
        row = {"data": kind, "rep": rep, "dendrogram": d["chosen_k"], "bic": j["picks"]["bic"]["k"],
               "icl": j["picks"]["icl"]["k"], "aic": j["picks"]["aic"]["k"],
               "bic_overall": j["picks"]["bic"]["overall_k"],
               "degenerate_k": ";".join(str(r["k"]) for r in j["rows"] if r["degenerate"]),
               "heights": ";".join("%.4g" % l["height"] for l in d["levels"]), "capped_k": capped}
        results.append(row)
        print("%-8s rep %2d: dendrogram %s  BIC %s  ICL %s  AIC %s  (degenerate k: %s; capped k: %s; heights %s)" %
              (kind, rep, row["dendrogram"], row["bic"], row["icl"], row["aic"], row["degenerate_k"] or "-",
               capped or "-", row["heights"]), flush=True)

print("\nchose k* = 2 (out of %d replications, n = %d, fitted k = %d, %d starts, max-iter %d):" %
      (a.reps, a.n, a.k, a.starts, a.max_iter))
for kind in ("clean", "outliers"):
    rs = [r for r in results if r["data"] == kind]
    counts = {c: sum(1 for r in rs if r[c] == 2) for c in ("dendrogram", "bic", "icl", "aic")}
    print("  %-8s dendrogram %d/%d  BIC %d/%d  ICL %d/%d  AIC %d/%d" %
          (kind, counts["dendrogram"], len(rs), counts["bic"], len(rs), counts["icl"], len(rs), counts["aic"], len(rs)))
print("(%.0f s)" % (time.time() - t0))
if a.csv:
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        w.writeheader()
        w.writerows(results)
