#!/bin/sh
# Robustness classes that need more than one command (issue 13): temporary
# files removed on SIGTERM/SIGINT; a failing write stops a sweep at once and
# keeps what was written; an earlier output survives a failed write; --resume
# never modifies a file it refuses.
M=$1
. "$(dirname "$0")/lib.sh"
A=data/experiment-a.json
# 1. Signals: a figure is rendered by a (fake, slow) gnuplot while its
#    temporary output exists beside the target; SIGTERM and SIGINT remove it
#    (and the script directory in $TMPDIR).
cat >"$T/slowplot" <<'SH'
#!/bin/sh
sleep 5
SH
chmod +x "$T/slowplot"
cat >"$T/tiny.json" <<'JSON'
{ "name": "tiny", "truth": "data/experiment-a.json", "n": {"values": [40, 80]}, "replications": 2,
  "settings": [ {"label": "k2", "k": 2, "starts": 1, "max_iter": 20} ] }
JSON
"$M" sweep --config "$T/tiny.json" --out "$T/tiny.csv" --threads 1 --quiet >/dev/null || fail "tiny sweep"
mkdir "$T/tmpdir"
TMPDIR="$T/tmpdir"; export TMPDIR
for sig in TERM INT; do
  mkdir "$T/fig$sig"
  "$M" plot --results "$T/tiny.csv" --metric loss --out "$T/fig$sig/f.png" --gnuplot "$T/slowplot" >/dev/null 2>&1 &
  pid=$!
  i=0
  while ! ls -a "$T/fig$sig" | grep -q '\.tmp\.'; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "no temporary file appeared"
    sleep 0.1
  done
  kill -s $sig $pid
  wait $pid 2>/dev/null
  ls -a "$T/fig$sig" | grep -q '\.tmp\.' && fail "SIG$sig left a temporary file: $(ls -a "$T/fig$sig")"
  [ -e "$T/fig$sig/f.png" ] && fail "SIG$sig left a figure"
  ls "$T/tmpdir" | grep -q . && fail "SIG$sig left the script directory: $(ls "$T/tmpdir")"
done
# 2. A write that fails (file size limit, like a full disk) stops the sweep at
#    once with the error; the rows written so far stay for --resume.
cat >"$T/study.json" <<'JSON'
{ "name": "many", "truth": "data/experiment-a.json", "n": {"values": [30, 40, 50, 60, 70, 80, 90, 100]},
  "replications": 25, "seed": 1, "settings": [ {"label": "k2", "k": 2, "starts": 1, "max_iter": 20} ] }
JSON
( trap '' XFSZ; ulimit -f 4; exec "$M" sweep --config "$T/study.json" --out "$T/r.csv" --threads 1 --quiet ) \
  >"$T/out.txt" 2>"$T/err.txt"
rc=$?
[ $rc -eq 1 ] || fail "sweep with a failing write: exit $rc, expected 1: $(cat "$T/err.txt")"
grep -q "writing a result failed" "$T/err.txt" || fail "no write error: $(cat "$T/err.txt")"
grep -q "^ran " "$T/out.txt" && fail "the sweep went on after the write failed"
[ -f "$T/r.csv" ] || fail "the rows written so far were lost"
# 3. An earlier output survives a write that fails; no temporary file is left.
echo 'x1,y' >"$T/keep.csv"
( trap '' XFSZ; ulimit -f 4; exec "$M" simulate --model "$A" --n 5000 --out "$T/keep.csv" ) >/dev/null 2>"$T/err.txt"
[ $? -eq 1 ] || fail "simulate with a failing write must exit 1"
grep -q "write failed" "$T/err.txt" || fail "no write error: $(cat "$T/err.txt")"
[ "$(cat "$T/keep.csv")" = "x1,y" ] || fail "the earlier output was changed"
ls -a "$T" | grep -q '\.tmp\.' && fail "temporary file left after a failed write"
# 4. --resume refuses a file of another study without touching it, even with a
#    partial last line (which it would otherwise drop).
printf 'a,b,c\n1,2,3\n4,5' >"$T/other.csv"
cp "$T/other.csv" "$T/other.orig"
"$M" sweep --config "$T/study.json" --out "$T/other.csv" --resume --quiet >/dev/null 2>&1 && fail "resume accepted another file"
cmp -s "$T/other.csv" "$T/other.orig" || fail "--resume modified a file it refused"
echo ok
