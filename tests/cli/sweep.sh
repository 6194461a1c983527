#!/bin/sh
# sweep: same results whatever the thread count and the sharding (but for wall
# time); resume after a kill loses nothing; merge; study file errors.
M=$1
. "$(dirname "$0")/lib.sh"
cat >"$T/study.json" <<'JSON'
{ "name": "tiny", "truth": "data/experiment-a.json",
  "n": {"min": 100, "max": 400, "count": 3}, "replications": 3, "seed": 7,
  "settings": [ {"label": "k=2", "k": 2, "starts": 2},
                {"label": "k=3 near", "k": 3, "init": "near-truth", "max_iter": 200} ] }
JSON
strip_time() { python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
i = rows[0].index("seconds")
for r in rows:
    r[i] = ""
    print(",".join(r))
PY
}
"$M" sweep --config "$T/study.json" --out "$T/r1.csv" --threads 1 --quiet >/dev/null || fail "sweep 1 thread"
"$M" sweep --config "$T/study.json" --out "$T/r2.csv" --threads 2 --quiet >/dev/null || fail "sweep 2 threads"
[ "$(wc -l <"$T/r1.csv")" -eq 19 ] || fail "expected 18 rows + header"
strip_time "$T/r1.csv" >"$T/s1"; strip_time "$T/r2.csv" >"$T/s2"
cmp -s "$T/s1" "$T/s2" || fail "results depend on the thread count"
head -1 "$T/r1.csv" | grep -q '^setting,n,rep,k,seed,estimator,init,stop_reason,iterations,log_likelihood,seconds,certified,ll_change,score_norm,flags,m.loss' || fail "header"
grep -q 'near-truth(s=0.005/0.05,g=0.083)' "$T/r1.csv" || fail "near-truth starts are not labelled"
# Shards, merged, equal the single run.
for i in 0 1 2; do
  "$M" sweep --config "$T/study.json" --out "$T/shard$i.csv" --shard "$i/3" --quiet >/dev/null || fail "shard $i"
done
"$M" merge "$T/shard0.csv" "$T/shard1.csv" "$T/shard2.csv" --out "$T/merged.csv" >/dev/null || fail merge
strip_time "$T/merged.csv" >"$T/s3"
cmp -s "$T/s1" "$T/s3" || fail "sharded and merged results differ from a single run"
# A killed run: keep the header and 5 rows plus a partial line, then resume.
head -6 "$T/r1.csv" >"$T/r4.csv"; printf 'k=2,100,0,2,123' >>"$T/r4.csv"
"$M" sweep --config "$T/study.json" --out "$T/r4.csv" --quiet >/dev/null 2>&1 && fail "an existing results file must not be overwritten without --resume"
"$M" sweep --config "$T/study.json" --out "$T/r4.csv" --resume --quiet >"$T/resume.txt" || fail "resume"
grep -q "5 already done" "$T/resume.txt" || fail "resume did not skip the finished tasks: $(cat "$T/resume.txt")"
strip_time "$T/r4.csv" >"$T/s4"
cmp -s "$T/s1" "$T/s4" || fail "resumed results differ"
# rates on the results run.
"$M" rates --results "$T/r1.csv" --metric m.loss --bootstrap 200 >/dev/null || fail "rates on sweep output"
# Errors in a study file.
echo '{"truth": "data/experiment-a.json", "n": {"min": 100, "max": 400, "count": 3}}' >"$T/bad.json"
expect_error 1 "bad.json.*settings" "$T/x.csv" -- "$M" sweep --config "$T/bad.json" --out "$T/x.csv"
expect_error 2 "--shard" "$T/x.csv" -- "$M" sweep --config "$T/study.json" --out "$T/x.csv" --shard 3/3
echo ok
