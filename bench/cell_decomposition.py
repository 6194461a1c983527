#!/usr/bin/env python3
"""Where a cell metric's exponent comes from: an exact decomposition.

In a multi-atom cell A (models.md 9.2) the over-fitted loss has the term
M = sum_{i in A} w_i sum_B |D-B_i|^p_B = W sum_B E_B^p_B, W = sum_{i in A} w_i,
so block B's cell metric is E_B = (M s_B / W)^(1/p_B), with s_B = E_B^p_B /
sum_C E_C^p_C its share of the cell's term. Fitted by least squares on
log values (the fit of `moerate rates`), the exponents therefore add up exactly:

    e(E_B) = ( e(M) - e(W) + e(s_B) ) / p_B .

The theory bounds M by the loss, about n^(-1/2), and says nothing about the
shares; the exponents 1/(2 p_B) follow if e(M) = 1/2 and the shares do not
drift (e(s_B) = 0). This script measures each part with a bootstrap interval
(replicates resampled within each n), so a measured exponent that differs from
1/(2 p_B) can be traced to the cell's term decaying faster or slower than
n^(-1/2) or to a block taking a growing or shrinking share of it.

Rows with exactly one multi-atom cell are used (the k* + 1 studies have one), and of
those the rows whose cell has the most common exponents (cell size, for linear experts).
Block exponents p_B: linear experts p = rbar(m) for beta1 and b and rbar(m)/2
for a and nu (rbar(2) = 4, rbar(3) = 6); other experts (strongly identifiable)
p = 2 for every block. The family is read from the columns: a setting whose
cell has a `b` block and no `c` block is linear.

  python3 bench/cell_decomposition.py RESULTS.csv [--setting S ...] [--bootstrap 1000] [--seed 1]
"""
import argparse, collections, csv, math, random, sys

RBAR = {2: 4, 3: 6}


def number(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")


def slope(points):
    """-d log(value) / d log n by least squares (the sign of `moerate rates`)."""
    xs = [math.log(n) for n, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return -sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def interval(rows, key, resamples, seed, level=0.95):
    by_n = collections.defaultdict(list)
    for r in rows:
        by_n[r["n"]].append(r[key])
    est = slope([(r["n"], r[key]) for r in rows])
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        pts = []
        for n, vals in by_n.items():
            pts += [(n, rng.choice(vals)) for _ in vals]
        draws.append(slope(pts))
    draws.sort()
    lo = draws[int(math.floor((1 - level) / 2 * resamples))]
    hi = draws[int(math.ceil((1 + level) / 2 * resamples)) - 1]
    return est, lo, hi


def blocks_of(row, cell):
    names = []
    for col in row:
        pre = f"m.{cell}."
        if col.startswith(pre):
            rest = col[len(pre):]
            if "." in rest or rest in ("size", "weight"):
                continue
            if row[col] != "" and math.isfinite(number(row[col])):
                names.append(rest)
    return sorted(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="a study's or sweep's results CSV")
    ap.add_argument("--setting", nargs="*", help="settings to decompose (default: all)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    try:
        with open(a.results, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        sys.exit(f"cell_decomposition.py: {a.results}: {e.strerror}")
    if not rows or "m.multi" not in rows[0]:
        sys.exit(f"cell_decomposition.py: {a.results}: no m.multi column (not an over-fitted study's results)")
    cells = sorted({c.split(".")[1] for c in rows[0] if c.startswith("m.cell") and c.endswith(".size")})
    settings = a.setting or sorted({r["setting"] for r in rows})
    for setting in settings:
        data, skipped = [], 0
        for r in rows:
            if r["setting"] != setting:
                continue
            multi = [c for c in cells if number(r[f"m.{c}.size"]) >= 2]
            M, loss = number(r["m.multi"]), number(r["m.loss"])
            if len(multi) != 1 or not (M > 0 and loss > 0):
                skipped += 1
                continue
            c = multi[0]
            size = int(number(r[f"m.{c}.size"]))
            names = blocks_of(r, c)
            linear = "b" in names and "c" not in names
            if linear and size not in RBAR:
                skipped += 1
                continue
            p = {B: (RBAR[size] if B in ("beta1", "b") else RBAR[size] // 2) if linear else 2 for B in names}
            E = {B: number(r[f"m.{c}.{B}"]) for B in names}
            if not all(E[B] > 0 for B in names):
                skipped += 1
                continue
            total = sum(E[B] ** p[B] for B in names)
            d = {"n": int(r["n"]), "loss": math.log(loss), "M": math.log(M), "W": math.log(M / total),
                 "rest": math.log(loss - M) if loss > M else None}
            for B in names:
                d["E_" + B] = math.log(E[B])
                d["s_" + B] = math.log(E[B] ** p[B] / total)
            d["p"] = p
            data.append(d)
        # One exponent per block: keep the rows whose cell has the most common
        # exponents (cells of different sizes have different p for linear experts).
        if data:
            key = lambda d: tuple(sorted(d["p"].items()))
            counts = collections.Counter(key(d) for d in data)
            common = counts.most_common(1)[0][0]
            skipped += len(data) - counts[common]
            data = [d for d in data if key(d) == common]
        if len({d["n"] for d in data}) < 2:
            print(f'setting "{setting}": fewer than two sample sizes with one multi-atom cell; skipped')
            continue
        p = data[0]["p"]
        print(f'setting "{setting}": {len(data)} rows ({skipped} skipped), exponents e of n^(-e), '
              f"{a.bootstrap} bootstrap resamples within n, 95% intervals")
        fmt = lambda t: f"{t[0]:7.3f} [{t[1]:6.3f}, {t[2]:6.3f}]"
        rest = [d for d in data if d["rest"] is not None]
        print(f"  loss               {fmt(interval(data, 'loss', a.bootstrap, a.seed))}")
        print(f"  M (cell's term)    {fmt(interval(data, 'M', a.bootstrap, a.seed))}")
        if len({d['n'] for d in rest}) >= 2:
            print(f"  loss - M           {fmt(interval(rest, 'rest', a.bootstrap, a.seed))}")
        eW = interval(data, "W", a.bootstrap, a.seed)
        eM = slope([(d["n"], d["M"]) for d in data])
        print(f"  W (cell's weight)  {fmt(eW)}")
        print(f"  {'block':6} {'p':>2} {'e(E_B)':>24} {'1/(2p)':>7} {'e(M)/p':>7} {'e(share)':>24} {'e(share)/p':>10}")
        for B in sorted(p, key=lambda b: (p[b], b)):
            eE = interval(data, "E_" + B, a.bootstrap, a.seed)
            es = interval(data, "s_" + B, a.bootstrap, a.seed)
            # the identity holds exactly for the point estimates
            assert abs(eE[0] - (eM - eW[0] + es[0]) / p[B]) < 1e-9
            print(f"  {B:6} {p[B]:>2} {fmt(eE):>24} {1 / (2 * p[B]):7.3f} {eM / p[B]:7.3f} {fmt(es):>24} "
                  f"{es[0] / p[B]:10.3f}")


if __name__ == "__main__":
    main()
