#!/usr/bin/env python3
"""Count passed and failed tests in meson's testlog.txt.

A doctest executable contributes its own test-case counts (from its
"[doctest] test cases: N | P passed | F failed" line); a crashed or timed-out
executable without that line counts as one failure. A pytest run (the Python
tests) contributes its test cases likewise, from its summary line
("N passed, M failed, K errors in 1.2s"; xfailed/xpassed count as passed,
errors as failed); a pytest run that failed without a failing test in its
summary (no tests collected: exit code 5, an interruption, a crash), that
reports no test at all, or that has no summary counts as one failure. Any
other meson test (a command-line script) counts as one test, passed or failed
by its result.
Several logs (the release and the sanitizer build) are summed.
Prints "tests: N passed, M failed"; exits 1 if anything failed or no test ran.
"""
import re
import sys

# pytest's last line, with or without -q: "== 3 failed, 17 passed, 2 warnings in 4.20s ==",
# "18 passed in 0:01:02", "no tests ran in 0.01s".
PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+|no tests ran)(?:, \d+ [a-z]+)*) in [\d.:]+s?\b.*$", re.M)
PYTEST_ITEM = re.compile(r"(\d+) ([a-z]+)")


def pytest_counts(block):
    """(passed, failed) from the last pytest summary line of a block, or None."""
    found = PYTEST_SUMMARY.findall(block)
    if not found:
        return None
    passed = failed = 0
    for count, kind in PYTEST_ITEM.findall(found[-1]):
        if kind in ("passed", "xfailed", "xpassed"):
            passed += int(count)
        elif kind in ("failed", "error", "errors"):
            failed += int(count)
    return passed, failed


def count(text):
    # Each test's block in testlog.txt starts with a line of '=' and a line
    # "N/M name  RESULT  time".
    blocks = re.split(r"^=+ \d+/\d+ =+$", text, flags=re.M)
    passed = failed = 0
    for block in blocks[1:]:
        m = re.search(r"^test:\s+(\S+)", block, flags=re.M)
        result = re.search(r"^result:\s+(.*)$", block, flags=re.M)
        if not m or not result:
            continue
        ok = result.group(1).strip().startswith("exit status 0")
        command = re.search(r"^command:\s+(.*)$", block, flags=re.M)
        is_pytest = bool(command and re.search(r"-m pytest\b", command.group(1)))
        d = re.search(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", block)
        if d:
            passed += int(d.group(2))
            failed += int(d.group(3))
            if not ok and int(d.group(3)) == 0:
                failed += 1  # crashed after reporting
        elif is_pytest:
            c = pytest_counts(block)
            if c is None:
                failed += 1  # no summary: crashed, killed or timed out
                continue
            passed += c[0]
            failed += c[1]
            if (not ok and c[1] == 0) or c[0] + c[1] == 0:
                failed += 1  # exit code 5 (no tests), interrupted, or nothing ran
        else:
            if ok:
                passed += 1
            else:
                failed += 1
    return passed, failed


if __name__ == "__main__":
    text = "".join(open(p, encoding="utf-8", errors="replace").read() for p in sys.argv[1:])
    passed, failed = count(text)
    print(f"tests: {passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)
