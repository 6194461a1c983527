#!/bin/sh
# MOERATE_PROFILE (lib/moerate/core/profile.hpp): the fit prints where its CPU
# time went on stderr when it exits, the counts agree with the fit JSON and do
# not depend on the thread count, and the fit is the same in every digit as
# without it; unset or 0, nothing is printed.
M=$1
. "$(dirname "$0")/lib.sh"
headline_tanh_fixture
# shellcheck disable=SC2086
MOERATE_PROFILE=1 "$M" fit --data "$T/d.csv" $F --out "$T/p.json" >/dev/null 2>"$T/p.err" || fail "fit with MOERATE_PROFILE=1"
# shellcheck disable=SC2086
MOERATE_PROFILE=1 "$M" fit --data "$T/d.csv" $(echo $F | sed 's/--threads 1/--threads 2/') --out "$T/p2.json" >/dev/null 2>"$T/p2.err" ||
  fail "fit with MOERATE_PROFILE=1, 2 threads"
for c in em_steps em_steps_pruned newton_steps polish_calls polish_trials; do
  [ "$(grep "^profile: $c " "$T/p.err")" = "$(grep "^profile: $c " "$T/p2.err")" ] || fail "profile $c differs between 1 and 2 threads"
  grep -q "^profile: $c [0-9]" "$T/p.err" || fail "no profile count $c"
done
# shellcheck disable=SC2086
"$M" fit --data "$T/d.csv" $F --out "$T/q.json" >/dev/null 2>"$T/q.err" || fail "fit without MOERATE_PROFILE"
grep -q "profile:" "$T/q.err" && fail "profile lines without MOERATE_PROFILE"
# shellcheck disable=SC2086
MOERATE_PROFILE=0 "$M" fit --data "$T/d.csv" $F --out "$T/z.json" >/dev/null 2>"$T/z.err" || fail "fit with MOERATE_PROFILE=0"
grep -q "profile:" "$T/z.err" && fail "profile lines with MOERATE_PROFILE=0"
python3 - "$T/p.json" "$T/q.json" "$T/p.err" <<'PY' || { cat "$T/p.err"; fail "profile inconsistent with the fit"; }
import json, re, sys
p, q = (json.load(open(f)) for f in sys.argv[1:3])
prof = {k: float(v) for k, v in re.findall(r"^profile: (\w+) (\S+)$", open(sys.argv[3]).read(), re.M)}
assert len(prof) == 16, prof
# The same fit in every digit.
assert p["log_likelihood"] == q["log_likelihood"] and p["experts"] == q["experts"]
for s, t in zip(p["fit"]["starts"], q["fit"]["starts"]):
    assert (s["objective"], s["iterations"], s["stop_reason"]) == (t["objective"], t["iterations"], t["stop_reason"])
# Counts: the starts that ran (copies of another start excluded).
ran = [s for s in p["fit"]["starts"] if "same_as" not in s]
assert prof["em_steps"] == sum(s["iterations"] for s in ran if s["stop_reason"] != "dominated"), prof
assert prof["em_steps_pruned"] == sum(s["iterations"] for s in ran if s["stop_reason"] == "dominated"), prof
assert any(s["stop_reason"] == "dominated" for s in ran) and prof["pruned_seconds"] > 0
assert prof["newton_steps"] >= p["fit"]["newton_steps"] and prof["polish_trials"] >= prof["newton_steps"] > 0
assert prof["polish_calls"] > 0 and prof["best_seconds"] > 0
# Phases of one thread: the parts within the whole (1 ms for the clock's rounding).
parts = prof["split_base_seconds"] + prof["init_seconds"] + prof["starts_seconds"] + prof["certificate_seconds"]
assert parts <= prof["fit_seconds"] + 1e-3, prof
runs = prof["best_seconds"] + prof["lower_seconds"] + prof["pruned_seconds"]
assert runs <= prof["starts_seconds"] + 1e-3, prof
for kind in ("best", "lower", "pruned"):
    assert 0 <= prof[kind + "_polish_seconds"] <= prof[kind + "_seconds"] + 1e-3, prof
PY
