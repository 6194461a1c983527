#!/bin/sh
# The README's main job end to end at quick scale: the headline study runs,
# prints rates beside the theory, a trust column and a verdict, and writes its
# results, rates and figure; rerunning the same study resumes it.
M="$1"
. "$(dirname "$0")/lib.sh"
"$M" study linear-vs-ffn --out "$T/s" --bootstrap 100 --quiet >"$T/out.txt" 2>"$T/err.txt" || { cat "$T/err.txt"; fail "study"; }
grep -q 'Verdict' "$T/out.txt" || fail "no verdict"
grep -q 'cell.beta1' "$T/out.txt" || fail "no cell.beta1 row"
grep -q 'starts agree\|DISAGREE' "$T/out.txt" || fail "no trust column"
grep -q 'tanh k=3 near-truth' "$T/out.txt" || fail "no near-truth setting"
[ -s "$T/s/linear-vs-ffn.png" ] || fail "no figure"
[ -s "$T/s/rates.json" ] || fail "no rates"
head -1 "$T/s/results.csv" | grep -q ',certified,ll_change,score_norm,flags,' || fail "no certificate columns"
"$M" study linear-vs-ffn --out "$T/s" --bootstrap 100 --quiet >"$T/out2.txt" 2>&1 || fail "rerun"
grep -q '80 resumed' "$T/out2.txt" || fail "rerun did not resume"
"$M" study no-such-study >/dev/null 2>"$T/e.txt"; [ $? -eq 2 ] || fail "unknown study must exit 2"
grep -q 'softmax-linear-over3' "$T/e.txt" || fail "unknown study message lists the studies"
# --starts and --replications change the study file: k-means settings get the starts,
# near-truth settings keep one start per split pattern (2 here).
"$M" study linear-vs-ffn --scale medium --starts 6 --replications 3 --print-config >"$T/c.json" || fail "print-config"
python3 - "$T/c.json" <<'PY' || fail "--starts/--replications not applied"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["replications"] == 3, c["replications"]
for s in c["settings"]:
    assert s["starts"] == (2 if s["init"] == "near-truth" else 6), s
PY
# --n sets the sizes; rerunning with more replications in the same --out extends
# the study: the earlier fits are kept as they are, only the new replications run.
"$M" study linear-vs-ffn --out "$T/n" --n 200:400:2 --replications 1 --bootstrap 20 --quiet >"$T/n1.txt" 2>&1 || { cat "$T/n1.txt"; fail "study --n"; }
grep -q '2 sizes in \[200, 400\] x 1 replications' "$T/n1.txt" || fail "--n not applied"
grep '^linear k=3,200,0,' "$T/n/results.csv" >"$T/rep0.csv"
"$M" study linear-vs-ffn --out "$T/n" --n 200:400:2 --replications 2 --bootstrap 20 --quiet >"$T/n2.txt" 2>"$T/n2.err" || { cat "$T/n2.err"; fail "extend"; }
grep -q 'extending the study from 1 to 2 replications' "$T/n2.err" || fail "no extension message"
grep -q '8 fits in .* (8 resumed)' "$T/n2.txt" || fail "extension did not resume the first replication"
[ "$(grep -c '^linear k=3,[0-9]*,1,' "$T/n/results.csv")" -eq 2 ] || fail "extension did not add replication 1"
grep '^linear k=3,200,0,' "$T/n/results.csv" | cmp -s - "$T/rep0.csv" || fail "extension changed an earlier fit"
"$M" study linear-vs-ffn --out "$T/n" --n 200:400:2 --replications 1 --quiet >/dev/null 2>"$T/n3.err" && fail "fewer replications accepted"
grep -q 'holds a different study' "$T/n3.err" || fail "fewer replications: no message"
for bad in 3000:100:6 1e3:1e5:4 200:400 200:400:1; do
  "$M" study linear-vs-ffn --n "$bad" --print-config >/dev/null 2>"$T/bad.err"; [ $? -eq 2 ] || fail "--n $bad must exit 2"
  grep -q -- "--n: " "$T/bad.err" || fail "--n $bad: no message naming the option"
done
echo "study_quick: ok"
