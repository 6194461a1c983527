#!/bin/sh
# moerate plot: PNG and SVG figures through gnuplot from a synthetic results
# table; files appear atomically; clear errors when gnuplot is missing or fails.
M=$1
. "$(dirname "$0")/lib.sh"
D=$(dirname "$0")
python3 "$D/rates_make_results.py" "$T/res.csv" 1 || fail "cannot write synthetic results"
"$M" plot --help >"$T/h" || fail "plot --help"
grep -q "Example:" "$T/h" || fail "plot --help has no example"
grep -q "moerate plot" "$T/h" || fail "plot example does not run plot"

if command -v gnuplot >/dev/null 2>&1; then
  "$M" plot --results "$T/res.csv" --out "$T/fig.png" --metric loss beta1 --theory 1/2 1/8 \
    --setting "linear k=3" --bootstrap 200 --title "synthetic" --save-script "$T/fig.gp" >"$T/out" 2>"$T/err" \
    || { cat "$T/err" >&2; fail "plot png"; }
  python3 - "$T/fig.png" <<'PY' || fail "not a PNG of the requested size"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "signature"
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (1100, 820), (w, h)
PY
  grep -q "seed 1" "$T/out" || fail "seed not echoed"
  grep -q "beta1: e = " "$T/out" || fail "summary lacks the fitted exponent"
  grep -q "theory n^{-1/8}" "$T/fig.gp" || fail "script lacks the theory line"
  grep -q "10%-90% of replicates" "$T/fig.gp" || fail "legend does not say which quantile bars"
  grep -q "pngcairo" "$T/fig.gp" || fail "png not drawn with pngcairo"
  # Two panels side by side, SVG.
  "$M" plot --results "$T/res.csv" --out "$T/fig.svg" --layout panels --theory loss=1/2 a=1/4 \
    --bootstrap 100 --bars iqr --width 1600 >"$T/out2" 2>"$T/err" || { cat "$T/err" >&2; fail "plot svg panels"; }
  grep -q "<svg" "$T/fig.svg" || fail "not an SVG"
  grep -q "2 panels" "$T/out2" || fail "panels layout did not make two panels"
  grep -q "25%-75% of replicates" "$T/fig.svg" || fail "iqr bars not in legend"
  ls -a "$T" | grep -q '\.tmp\.' && fail "temporary file left behind"
  # gnuplot fails (the program 'false' exits 1): exit 1, no figure left.
  expect_error 1 "gnuplot failed" "$T/f.png" -- "$M" plot --results "$T/res.csv" --out "$T/f.png" --bootstrap 10 --gnuplot false
fi
expect_error 1 "gnuplot not found" "$T/g.png" -- "$M" plot --results "$T/res.csv" --out "$T/g.png" --bootstrap 10 --gnuplot /nonexistent/gnuplot
expect_error 2 "png, .svg or .pdf" "$T/g.jpg" -- "$M" plot --results "$T/res.csv" --out "$T/g.jpg"
expect_error 2 "bars" "$T/g.png" -- "$M" plot --results "$T/res.csv" --out "$T/g.png" --bars 90-10
expect_error 2 "layout" "$T/g.png" -- "$M" plot --results "$T/res.csv" --out "$T/g.png" --layout grid
expect_error 1 "directory does not exist" "$T/no/g.png" -- "$M" plot --results "$T/res.csv" --out "$T/no/g.png" --bootstrap 10
echo ok
