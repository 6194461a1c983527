#!/usr/bin/env python3
"""Checks the library's layering: a file under lib/ includes moerate headers of
its own layer and of lower layers only (docs/architecture.md). Prints each
violation as FILE:LINE and exits 1 if there is any; prints the checked count."""
import pathlib
import re
import sys

# Lowest first; folders on the same level may not include each other.
LEVEL = {"core": 0, "io": 1, "model": 2, "gating": 3, "experts": 3,
         "estimators": 4, "metrics": 5, "studies": 6, "plot": 7}

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "lib"
include = re.compile(r'#include\s+"moerate/([a-z_]+)/[^"]+"')
bad, checked = [], 0
for path in sorted(root.rglob("*.[ch]pp")):
    parts = path.relative_to(root).parts
    layer = parts[1] if parts[0] == "moerate" else parts[0]
    if layer not in LEVEL:
        bad.append(f"{path}: not in a known layer folder ({', '.join(LEVEL)})")
        continue
    checked += 1
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        m = include.search(line)
        if not m:
            continue
        target = m.group(1)
        if target not in LEVEL:
            bad.append(f"{path}:{lineno}: includes unknown layer '{target}'")
        elif target != layer and LEVEL[target] >= LEVEL[layer]:
            bad.append(f"{path}:{lineno}: layer '{layer}' includes '{target}' (same level or higher)")
for b in bad:
    print(b)
print(f"check_layers: {checked} files checked, {len(bad)} violations")
sys.exit(1 if bad else 0)
