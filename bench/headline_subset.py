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

With --profile, the runs set MOERATE_PROFILE (lib/moerate/core/profile.hpp; the
same fits in every bit) and the script prints where the fits' CPU time went:
the split starts' base fit, the starts that end at the fit's best maximum, at a
lower one, or stopped as dominated, and the Newton polish's share of each.
With --floor it also prints the least the paper-scale study could cost with
these defaults: `moerate bench`'s CPU per observation of one EM step (k = 3 and
the split base's k = 2, each family), every data set's best start taking as
few EM steps as the subset's quickest fit with n >= 3e4 of that setting, every
other start stopped at the pruning's first checkpoint (15 EM steps), linear
k-means starts counted once (they coincide), no Newton step, no k-means, no
certificate.

  python3 bench/headline_subset.py build/apps/moerate --profile --floor
"""
import argparse, collections, csv, functools, json, math, os, re, resource, shutil, subprocess, sys, time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("moerate", help="the binary measured")
ap.add_argument("--base", help="a second binary to compare with (alternated)")
ap.add_argument("--rounds", type=int, default=1, help="runs of each binary")
ap.add_argument("--threads", type=int, default=2, help="threads of the study, and the cores of the estimate")
ap.add_argument("--out", default="/tmp/headline_subset", help="directory for the runs' outputs")
ap.add_argument("--tol", type=float, default=1e-3, help="nats: the same maximum when closer")
ap.add_argument("--target-minutes", type=float, default=30.0)
ap.add_argument("--profile", action="store_true", help="MOERATE_PROFILE: where the fits' time went")
ap.add_argument("--floor", action="store_true", help="the least the paper-scale study could cost (runs moerate bench)")
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
    env = dict(os.environ, MOERATE_PROFILE="1") if a.profile else None
    with open(out + ".log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
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


def profile_of(out):
    """The "profile: NAME VALUE" lines a run printed (core/profile.hpp)."""
    # stdout's buffered text may surround them on the same line
    return {name: float(value) for name, value in re.findall(r"profile: (\w+) ([-+.\deE]+)", open(out + ".log").read())}


if a.profile:
    for name, _ in bins:
        p = profile_of(last[name])
        if "fit_seconds" not in p:
            sys.exit(f"{last[name]}.log: no profile lines (a binary without MOERATE_PROFILE?)")
        total = p["fit_seconds"]
        print(f"\n{name}: where the fits' {total:.1f} s of CPU went (MOERATE_PROFILE, last run)")
        rows = [("split starts' base fit", "split_base_seconds", None),
                ("k-means and initial models", "init_seconds", None),
                ("starts ending at the best maximum", "best_seconds", "best_polish_seconds"),
                ("starts ending at a lower maximum", "lower_seconds", "lower_polish_seconds"),
                ("starts stopped as dominated", "pruned_seconds", "pruned_polish_seconds"),
                ("certificate", "certificate_seconds", None)]
        for label, key, polish in rows:
            extra = f"  (Newton polish {p[polish]:.1f} s)" if polish else ""
            print(f"  {label:36} {p[key]:8.1f} s {100 * p[key] / total:5.1f}%{extra}")
        print(f"  EM steps {p['em_steps']:.0f} (+{p['em_steps_pruned']:.0f} in dominated starts), Newton steps "
              f"{p['newton_steps']:.0f} in {p['polish_calls']:.0f} polishes ({p['polish_trials']:.0f} trial points)")
        hours = p["best_seconds"] * factor / a.threads / 3600
        print(f"  the best starts' runs alone, scaled to paper scale: {hours:.2f} h on {a.threads} cores "
              f"({hours * 60 / a.target_minutes:.1f}x the target)")


def expert_spec(family):
    """moerate's --expert text of a model file's expert_family."""
    f = dict(family)
    name = f.pop("family")
    if name != "ffn":
        return name + ("" if not f else ":" + ",".join(f"{k}={v}" for k, v in sorted(f.items())))
    parts = [f.pop("activation", "sigmoid")] + [f"{k}={str(v).lower()}" for k, v in sorted(f.items())]
    return "ffn:" + ",".join(parts)


@functools.lru_cache(maxsize=None)
def bench_ns(expert, k):
    """CPU nanoseconds per observation of one EM step (moerate bench, n = 1e5, d = 1), measured once."""
    out = subprocess.run([a.moerate, "bench", "--n", "100000", "--k", str(k), "--expert", expert, "--iters", "20"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("time per observation"):
            return float(line.split("(")[1].split()[0])
    sys.exit(f"moerate bench printed no time per observation for {expert}, k = {k}")


if a.floor:
    cfg = json.loads(subprocess.run([a.moerate, "study", "linear-vs-ffn", "--scale", "paper", "--print-config"],
                                    capture_output=True, text=True, check=True).stdout)
    checkpoint = 15  # fit.hpp, kFirstCheckpoint
    fits = load(last["new"])
    per_obs = 0.0  # ns per observation of one data set, all settings
    print("\nfloor of the paper-scale study (ns per observation and data set; see --help)")
    for st in cfg["settings"]:
        fam = cfg["truths"][st["truth"]]["expert_family"]
        spec, k, starts = expert_spec(fam), st["k"], st["starts"]
        c = bench_ns(spec, k)
        quickest = min(int(r["iterations"]) for key, r in fits.items() if key[0] == st["label"] and key[1] >= 30000)
        linear = fam["family"] == "linear"
        if st["init"] == "kmeans+split":
            split = starts // 2
            kmeans_runs = 1 if linear else starts - split
            base = (1 if linear else max(2, split)) * checkpoint * bench_ns(spec, k - 1)
            ns = base + quickest * c + (kmeans_runs - 1 + split) * checkpoint * c
        else:
            ns = quickest * c + (starts - 1) * checkpoint * c
        per_obs += ns
        print(f"  {st['label']:24} EM step {c:6.1f} ns/obs, quickest best start {quickest:3d} EM steps -> {ns:8.0f} ns")
    obs = sum(grid(PAPER["lo"], PAPER["hi"], PAPER["count"])) * PAPER["reps"]
    floor_min = per_obs * 1e-9 * obs / a.threads / 60
    m = sum(cpu["new"]) / len(cpu["new"])
    est_min = m * factor / a.threads / 60
    print(f"  {obs:.4g} observations per setting at paper scale: floor {floor_min:.1f} min on {a.threads} cores "
          f"(target {a.target_minutes:g}); this run's estimate {est_min:.0f} min, {est_min / floor_min:.1f}x the floor")
