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
