#!/usr/bin/env python3
"""Issue-10 evidence: are moerate's default EM fits the MLE?

Experiment A over-fitted (k = 3), n in {1e3, 1e4, 1e5}, R replications each:
  default   moerate fit defaults (|dl| < 1e-6, score statistic < 1e-3, SQUAREM with Newton polish)
  tight     score statistic < 1e-6, |dl| < 1e-10, cap 10^6 steps (the reference optimum)
  squarem   SQUAREM alone (--accelerate squarem) to the default criterion (n <= SQUAREM_MAX_N)
  plain     plain EM (--accelerate none) to the default criterion, capped (n <= PLAIN_MAX_N)
EM steps are M-steps; the default's Newton steps are shown after a '+'.
Prints log-likelihood differences, the largest relative change of the per-block
cell errors (moerate loss), EM steps and seconds. Python standard library only.

usage: bench/convergence_check.py [MOERATE] [--reps R] [--plain-max-n N] [--squarem-max-n N] [--sizes 1000,10000]
"""
import argparse, json, os, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("moerate", nargs="?", default="build/apps/moerate")
ap.add_argument("--reps", type=int, default=4)
ap.add_argument("--sizes", default="1000,10000,100000")
ap.add_argument("--plain-max-n", type=int, default=10000)
ap.add_argument("--plain-cap", type=int, default=100000)
ap.add_argument("--squarem-max-n", type=int, default=100000)
ap.add_argument("--model", default="data/experiment-a.json")
ap.add_argument("--design", default="uniform:0,1")
a = ap.parse_args()
M = a.moerate
tmp = tempfile.mkdtemp(prefix="moerate-conv-")


def run(args):
    t = time.time()
    subprocess.run([M] + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t


def fit(data, out, extra):
    sec = run(["fit", "--data", data, "--experts", "3", "--starts", "1", "--seed", "1", "--threads", "1",
               "--bound-gate-intercept", "30", "--bound-gate-slope", "50", "--bound-expert", "50",
               "--nu-min", "1e-4", "--nu-max", "100", "--quiet", "--out", out] + extra)
    j = json.load(open(out))
    return j, sec


def cells(fitfile):
    p = subprocess.run([M, "loss", "--truth", a.model, "--fit", fitfile, "--json"], check=True,
                       capture_output=True, text=True)
    t = json.loads(p.stdout)["terms"]
    return {k: v for k, v in t.items() if k.startswith("cell.") and v is not None}


print("n       rep  dl(default-tight)  max rel cell change  steps default/tight/squarem/plain     "
      "sec default/squarem/plain  certified default/tight")
for n in [int(s) for s in a.sizes.split(",")]:
    for rep in range(a.reps):
        data = os.path.join(tmp, f"d{n}_{rep}.csv")
        run(["simulate", "--model", a.model, "--n", str(n), "--seed", str(1000 + rep), "--design", a.design,
             "--out", data])
        jd, sd = fit(data, os.path.join(tmp, "def.json"), [])
        jt, st = fit(data, os.path.join(tmp, "tight.json"), ["--score-tol", "1e-6", "--abs-tol", "1e-10",
                                                             "--max-iter", "1000000"])
        cd, ct = cells(os.path.join(tmp, "def.json")), cells(os.path.join(tmp, "tight.json"))
        rel = max((abs(cd[k] - ct[k]) / ct[k] for k in ct if k in cd and ct[k] > 0), default=float("nan"))
        def capped(j):
            return f"{j['iterations']}{'(cap)' if j['stop_reason'] == 'max_iter' else ''}"
        plain, sq = "-", "-"
        sp = ss = float("nan")
        if n <= a.squarem_max_n:
            js, ss = fit(data, os.path.join(tmp, "sq.json"), ["--accelerate", "squarem"])
            sq = capped(js)
        if n <= a.plain_max_n:
            jp, sp = fit(data, os.path.join(tmp, "plain.json"), ["--accelerate", "none", "--max-iter",
                                                                 str(a.plain_cap)])
            plain = capped(jp)
        steps = f"{capped(jd)}+{jd['fit'].get('newton_steps', 0)}/{capped(jt)}/{sq}/{plain}"
        print(f"{n:<7} {rep:<4} {jd['log_likelihood'] - jt['log_likelihood']:<18.3g} {rel:<20.3g} "
              f"{steps:<34} {sd:7.2f}/{ss:.2f}/{sp:<8.2f} {jd['certified']}/{jt['certified']}", flush=True)
