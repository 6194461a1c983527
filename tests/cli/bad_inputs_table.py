#!/usr/bin/env python3
"""Data-driven bad-input test: runs every case of bad_inputs_table.txt.

Usage: bad_inputs_table.py MOERATE [TABLE]

Each non-comment line of the table is

    EXIT | MESSAGE FRAGMENT | FILES | COMMAND

COMMAND is run with `sh -c` in a fresh copy of a scratch directory holding
fixtures (below), with $M set to the moerate program. The case passes when
the exit code is EXIT, standard error contains MESSAGE FRAGMENT (plain text),
and every FILES token holds afterwards: `=NAME` (NAME unchanged, byte for
byte, and still of the same kind), `!NAME` (NAME does not exist). Every case
also checks: no crash (signal) and no hang (60 s), no temporary `.NAME.tmp.*`
file left, /dev/null still a character device, messages start with
"moerate" and never show library internals (stoi, std::, bad_alloc, CLI11
wording).

COMMAND may start with `SETUP ;; `: SETUP is run first (to make a bad input
file) and FILES are snapshotted after it.

Fixtures: m.json (data/experiment-a.json), d.csv (200 rows simulated from
it), d2.csv (two covariates), f.json (a fit of d.csv), s.json (a small study),
r.csv (its results), keep.json and keep.csv (earlier outputs), dir/ (a
directory), link.json (a symbolic link to keep.json), fifo (a FIFO).
Only the Python standard library is used.
"""
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
M = os.path.abspath(sys.argv[1])
TABLE = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "bad_inputs_table.txt")
FORBIDDEN = ["stoi", "std::", "bad_alloc", "basic_string", "terminate called", "could not be converted",
             "Could not convert", "ParseError", "what():", "nlohmann", "[json.exception"]


def run(cmd, cwd, timeout=60):
    env = dict(os.environ, M=M, LC_ALL="C")
    return subprocess.run(["sh", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          errors="replace", timeout=timeout)


def make_fixtures(d):
    shutil.copy(os.path.join(ROOT, "data", "experiment-a.json"), os.path.join(d, "m.json"))
    steps = [
        "$M simulate --model m.json --n 200 --seed 3 --out d.csv",
        "$M fit --data d.csv --experts 2 --starts 1 --seed 1 --quiet --out f.json",
        "printf 'x1,x2,y\\n0.1,0.2,1\\n0.2,0.1,2\\n0.3,0.3,1.5\\n0.5,0.1,2.5\\n' > d2.csv",
        """cat > s.json <<'J'
{ "name": "tiny", "truth": "m.json", "n": {"values": [40, 60]}, "replications": 1, "seed": 7,
  "settings": [ {"label": "k2", "k": 2, "starts": 1, "max_iter": 30} ] }
J""",
        "$M sweep --config s.json --out r.csv --threads 1 --quiet",
        "echo '{\"keep\": true}' > keep.json && printf 'keep\\n1\\n' > keep.csv",
        "mkdir dir && ln -s keep.json link.json",
    ]
    for s in steps:
        r = run(s, d)
        if r.returncode != 0:
            sys.exit(f"fixture step failed: {s}\n{r.stderr}")


def snapshot(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return ("file", hashlib.sha256(f.read()).hexdigest())
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    return (stat.S_IFMT(st.st_mode), None)


def parse_table(path):
    cases = []
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.rstrip("\n").split("|", 3)]
        if len(parts) != 4:
            sys.exit(f"{path}:{no}: expected 'EXIT | FRAGMENT | FILES | COMMAND'")
        cases.append((no, int(parts[0]), parts[1], parts[2].split(), parts[3]))
    return cases


def main():
    cases = parse_table(TABLE)
    base = tempfile.mkdtemp(prefix="moerate-bad-")
    failures = []
    commands = set()
    t0 = time.time()
    try:
        tmpl = os.path.join(base, "template")
        os.mkdir(tmpl)
        make_fixtures(tmpl)
        for i, (no, code, frag, files, cmd) in enumerate(cases):
            work = os.path.join(base, f"case{i}")
            shutil.copytree(tmpl, work, symlinks=True)
            os.mkfifo(os.path.join(work, "fifo"))
            words = cmd.split("$M ", 1)
            if len(words) == 2:
                commands.add(words[1].split()[0] if words[1].split() else "")
            problems = []
            main_cmd = cmd
            if " ;; " in cmd:
                setup, main_cmd = cmd.split(" ;; ", 1)
                rs = run(setup, work)
                if rs.returncode != 0:
                    failures.append(f"line {no}: setup failed: {setup}\n    {rs.stderr.strip()}")
                    continue
            before = {f[1:]: snapshot(os.path.join(work, f[1:])) for f in files if f.startswith("=")}
            try:
                r = run(main_cmd, work)
            except subprocess.TimeoutExpired:
                failures.append(f"line {no}: HANG (over 60 s): {cmd}")
                continue
            if r.returncode < 0 or r.returncode >= 128:
                problems.append(f"crashed (status {r.returncode})")
            if r.returncode != code:
                problems.append(f"exit {r.returncode}, expected {code}")
            if frag and frag not in r.stderr:
                problems.append(f"stderr lacks '{frag}'")
            if code != 0 and "moerate" not in r.stderr:
                problems.append("message does not start with the program name")
            for bad in FORBIDDEN:
                if bad in r.stderr:
                    problems.append(f"message shows library internals ('{bad}')")
            for f in files:
                p = os.path.join(work, f[1:])
                if f.startswith("!") and os.path.lexists(p):
                    problems.append(f"{f[1:]} exists")
                elif f.startswith("=") and snapshot(p) != before[f[1:]]:
                    problems.append(f"{f[1:]} changed")
            for dirpath, _, names in os.walk(work):
                for n in names:
                    if ".tmp." in n:
                        problems.append(f"temporary file left: {os.path.join(dirpath, n)}")
            if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
                problems.append("/dev/null is no longer a device")
            if problems:
                failures.append(f"line {no}: {'; '.join(problems)}\n    command: {cmd}\n    stderr: "
                                + r.stderr.strip().replace("\n", "\n            ")[:600])
            shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for f in failures:
        print("FAIL", f)
    print(f"bad-input table: {len(cases)} cases, {len(cases) - len(failures)} passed, {len(failures)} failed, "
          f"commands covered: {' '.join(sorted(commands))} ({time.time() - t0:.1f} s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
