#!/usr/bin/env python3
"""Count passed and failed tests in meson's testlog.txt.

A doctest executable contributes its own test-case counts (from its
"[doctest] test cases: N | P passed | F failed" line); a crashed or timed-out
executable without that line counts as one failure. Any other meson test (a
command-line script) counts as one test, passed or failed by its result.
Several logs (e.g. the release and the sanitizer build) are summed.
Prints "tests: N passed, M failed"; exits 1 if anything failed or no test ran.
"""
import re
import sys

text = "".join(open(p, encoding="utf-8", errors="replace").read() for p in sys.argv[1:])
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
    d = re.search(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", block)
    if d:
        passed += int(d.group(2))
        failed += int(d.group(3))
        if not ok and int(d.group(3)) == 0:
            failed += 1  # crashed after reporting
    else:
        if ok:
            passed += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
