#!/bin/sh
# moerate identify: the known answers of models.md section 4 on the command line
# (linear relation, heat equation, ffn full rank with b and c held fixed, --json,
# --model) and usage errors (exit 2).
M=$1
. "$(dirname "$0")/lib.sh"
"$M" identify --expert linear --version gaussian --seed 1 >"$T/lin.txt" || fail "identify linear failed"
grep -q "experts 1, 2: dh/da - x_1\*dh/db = 0" "$T/lin.txt" || { cat "$T/lin.txt"; fail "linear relation missing"; }
grep -q "verdict: NOT strongly identifiable" "$T/lin.txt" || fail "linear verdict wrong"
grep -q "seed 1" "$T/lin.txt" || fail "seed not echoed"
"$M" identify --expert linear --version gate-expert --seed 2 >"$T/ge.txt" || fail "identify gate-expert failed"
grep -q "du/dnu - 0.5\*d2u/db2 = 0" "$T/ge.txt" || { cat "$T/ge.txt"; fail "heat equation missing"; }
grep -q "du/da - d2u/(dbeta1 db) = 0" "$T/ge.txt" || fail "gate-expert interaction missing"
"$M" identify --expert ffn:activation=tanh --params a --version gaussian,lse --seed 3 >"$T/ffn.txt" || fail "identify ffn failed"
[ "$(grep -c 'verdict: strongly identifiable' "$T/ffn.txt")" -eq 2 ] || { cat "$T/ffn.txt"; fail "ffn (a free) not full rank"; }
"$M" identify --expert linear --version gaussian --json --seed 1 >"$T/lin.json" || fail "--json failed"
grep -q '"strongly_identifiable": false' "$T/lin.json" || fail "JSON verdict missing"
grep -q '"relations"' "$T/lin.json" || fail "JSON relations missing"
"$M" identify --model data/experiment-a.json --design uniform:0,1 --version gaussian >"$T/model.txt" || fail "--model failed"
grep -q "dh/da - x_1\*dh/db = 0" "$T/model.txt" || fail "--model: linear relation missing"
grep -q "parameters of data/experiment-a.json" "$T/model.txt" || fail "--model: source not named"
# Density level (models.md 9.5): the known answers.
"$M" identify --expert linear --version density --seed 2 >"$T/dl.txt" || fail "identify density linear failed"
grep -q "du/dnu - 0.5\*d2u/db2 = 0" "$T/dl.txt" || { cat "$T/dl.txt"; fail "density: heat equation missing"; }
grep -q "du/da - d2u/(dbeta1 db) = 0" "$T/dl.txt" || fail "density: linear interaction missing"
grep -q "verdict: NOT strongly identifiable" "$T/dl.txt" || fail "density: linear verdict wrong"
for e in polynomial:p=2 ffn:tanh ffn:sigmoid; do
  "$M" identify --expert "$e" --version density --seed 5 >"$T/d.txt" || fail "identify density $e failed"
  grep -q "verdict: NOT strongly identifiable" "$T/d.txt" || { cat "$T/d.txt"; fail "density: $e should not be strongly identifiable"; }
  grep -q "du/da - d2u/(dbeta1 db) = 0" "$T/d.txt" || { cat "$T/d.txt"; fail "density: $e lacks the a-b relation"; }
done
for act in sigmoid tanh gelu; do
  "$M" identify --expert ffn:$act,bias=false --version gaussian,density --seed 1 >"$T/bf.txt" || fail "identify bias-free $act failed"
  [ "$(grep -c 'verdict: strongly identifiable' "$T/bf.txt")" -eq 2 ] || { cat "$T/bf.txt"; fail "bias-free $act: not strongly identifiable at both levels"; }
  grep -q "d2h/dc2\[1\] = 0   \[identically zero at the h level only" "$T/bf.txt" || { cat "$T/bf.txt"; fail "bias-free $act: d2h/dc2 = 0 not excused"; }
done
"$M" identify --expert ffn:relu,bias=false --dim 2 --version gaussian,density --seed 1 >"$T/relu.txt" || fail "identify relu failed"
[ "$(grep -c 'verdict: NOT strongly identifiable' "$T/relu.txt")" -eq 2 ] || { cat "$T/relu.txt"; fail "relu verdicts"; }
expect_error 2 "version" "" -- "$M" identify --expert linear --version nonsense
expect_error 2 "required" "" -- "$M" identify
expect_error 2 "no parameter block" "" -- "$M" identify --expert linear --params zz
exit 0
