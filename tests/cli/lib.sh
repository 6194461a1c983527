# Shared helpers for CLI tests (POSIX sh). Source after setting M=moerate path.
# Each test runs in a fresh temporary directory which is removed at exit.
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error CODE PATTERN OUTFILE -- CMD...: CMD must exit with CODE, print
# PATTERN on stderr (grep -E), and leave no OUTFILE (no partial output).
expect_error() {
  code=$1; pattern=$2; out=$3; shift 4
  "$@" >"$T/stdout" 2>"$T/stderr"
  rc=$?
  [ "$rc" -eq "$code" ] || { cat "$T/stderr" >&2; fail "exit code $rc, expected $code: $*"; }
  grep -Eq -- "$pattern" "$T/stderr" || { cat "$T/stderr" >&2; fail "stderr lacks /$pattern/: $*"; }
  grep -q "moerate" "$T/stderr" || fail "message does not name the program: $*"
  if [ -n "$out" ] && [ -e "$out" ]; then fail "partial output file $out left behind: $*"; fi
  if ls -a "$(dirname "${out:-$T/x}")" 2>/dev/null | grep -q '\.tmp\.'; then fail "temporary file left behind"; fi
  return 0
}
# headline_tanh_fixture: the headline study's two-layer truth (c tanh(a x), no bias)
# in $T/truth.json, 2000 draws of it on U[-1, 1] (seed 6) in $T/d.csv, and in $F the
# study's over-fitted fit options (k = 3, kmeans+split, 4 starts, the bounds; one thread).
headline_tanh_fixture() {
  cat >"$T/truth.json" <<'JSON'
{"gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh", "bias": false},
 "experts": [
  {"gate": {"beta0": 0, "beta1": [3]}, "expert": {"a": [3], "c": 2}, "variance": 0.09},
  {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [1], "c": -1.5}, "variance": 0.16}]}
JSON
  "$M" simulate --model "$T/truth.json" --n 2000 --seed 6 --design uniform:-1,1 --out "$T/d.csv" >/dev/null || fail simulate
  F="--experts 3 --expert ffn:tanh,bias=false --init kmeans+split --starts 4 --seed 6 --threads 1
   --bound-gate-intercept 30 --bound-gate-slope 50 --bound-expert 50 --nu-min 1e-4 --nu-max 100"
}
