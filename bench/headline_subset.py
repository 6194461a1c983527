#!/usr/bin/env python3
"""The paper-scale headline study's time, estimated from a subset (issue 12's
30-minute target), and two binaries compared on it.

The subset is the headline study at paper scale with 2 replications and 20 of
the 200 sample sizes (the same log-spaced grid thinned, n = 100 to 1e5):

  moerate study linear-vs-ffn --scale paper --replications 2 --n 100:100000:20 --threads 2 --bootstrap 200

Its process CPU time, multiplied by the ratio of the sums of n (paper grid x 40
replications over the subset's; a fit's cost grows like n) and divided by the
cores, estimates the paper-scale study's wall time. With --base, the two
binaries run alternately (--rounds times each: the host's speed drifts) and
their fits are compared data set by data set: the same maximum (log-likelihoods
within --tol nats), higher, lower, certified.

  python3 bench/headline_subset.py build/apps/moerate [--base OLD/moerate] [--rounds 2] [--out /tmp/hs]
"""
import argparse, collections, csv, math, os, resource, shutil, subprocess, sys, time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("moerate", help="the binary measured")
ap.add_argument("--base", help="a second binary to compare with (alternated)")
ap.add_argument("--rounds", type=int, default=1, help="runs of each binary")
ap.add_argument("--threads", type=int, default=2, help="threads of the study, and the cores of the estimate")
ap.add_argument("--out", default="/tmp/headline_subset", help="directory for the runs' outputs")
ap.add_argument("--tol", type=float, default=1e-3, help="nats: the same maximum when closer")
ap.add_argument("--target-minutes", type=float, default=30.0)
a = ap.parse_args()


def grid(lo, hi, count):
    """moerate's log-spaced grid of sample sizes (lib/studies/sweep.cpp, log_grid: llround, duplicates dropped)."""
    return sorted({math.floor(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (count - 1)) + 0.5)
                   for i in range(count)})


SUBSET = dict(reps=2, lo=100, hi=100000, count=20)
PAPER = dict(reps=40, lo=100, hi=100000, count=200)
factor = (sum(grid(PAPER["lo"], PAPER["hi"], PAPER["count"])) * PAPER["reps"]) / (
    sum(grid(SUBSET["lo"], SUBSET["hi"], SUBSET["count"])) * SUBSET["reps"])


def run(binary, out):
    shutil.rmtree(out, ignore_errors=True)  # a study's output directory resumes: start fresh
    cmd = [binary, "study", "linear-vs-ffn", "--scale", "paper", "--replications", str(SUBSET["reps"]),
           "--n", f"{SUBSET['lo']}:{SUBSET['hi']}:{SUBSET['count']}", "--threads", str(a.threads),
           "--bootstrap", "200", "--out", out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(out + ".log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        sys.exit(f"{' '.join(cmd)}: exit {rc} (see {out}.log)")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def load(out):
    return {(r["setting"], int(r["n"]), int(r["rep"])): r for r in csv.DictReader(open(os.path.join(out, "results.csv")))}


os.makedirs(a.out, exist_ok=True)
bins = [("new", a.moerate)] + ([("base", a.base)] if a.base else [])
cpu = collections.defaultdict(list)
last = {}
for r in range(a.rounds):
    for name, b in (bins if r % 2 == 0 else bins[::-1]):
        out = os.path.join(a.out, f"{name}-{r}")
        c, w = run(b, out)
        cpu[name].append(c)
        last[name] = out
        print(f"{name} run {r + 1}: {c:.1f} s CPU, {w:.1f} s wall", flush=True)

print(f"\nscale factor (sum of n, paper / subset): {factor:.2f}; estimate = CPU x factor / {a.threads} cores")
for name, _ in bins:
    m = sum(cpu[name]) / len(cpu[name])
    hours = m * factor / a.threads / 3600
    print(f"{name}: mean CPU {m:.1f} s -> paper-scale headline about {hours:.2f} h on {a.threads} cores "
          f"({hours * 60 / a.target_minutes:.1f}x the {a.target_minutes:g}-minute target)")
if a.base:
    print(f"CPU ratio base / new: {sum(cpu['base']) / len(cpu['base']) / (sum(cpu['new']) / len(cpu['new'])):.3f}")

new = load(last["new"])
base = load(last["base"]) if a.base else None
print(f"\n{'setting':28} {'fits':>5} {'seconds':>9}" + (f" {'base s':>9} {'same':>5} {'higher':>6} {'lower':>6}" if base else "")
      + f" {'certified':>9}")
for s in sorted({k[0] for k in new}):
    keys = [k for k in new if k[0] == s]
    sec = sum(float(new[k]["seconds"]) for k in keys)
    cert = sum(int(new[k]["certified"]) for k in keys)
    line = f"{s:28} {len(keys):>5} {sec:>9.1f}"
    if base:
        both = [k for k in keys if k in base]
        d = [float(new[k]["log_likelihood"]) - float(base[k]["log_likelihood"]) for k in both]
        line += (f" {sum(float(base[k]['seconds']) for k in both):>9.1f} {sum(abs(x) <= a.tol for x in d):>5}"
                 f" {sum(x > a.tol for x in d):>6} {sum(x < -a.tol for x in d):>6}")
    print(line + f" {cert:>6}/{len(keys)}")
