"""Crash consistency, the long run: every stage killed at every commit and between every two.

Runs ``tests/test_kill_stages.py`` with ``DFPIPE_KILL_TRIALS=all`` (the test suite kills
training and metrics at a seeded sample of their commits only) and prints, per stage, the
commits of one uninterrupted run, the kill trials, the orphan temporary files left (and
never read) and the rows lost and duplicated after the re-run, which must all be 0. The
numbers go into docs/reliability.md.

Usage: ``.venv/bin/python benchmarks/bench_kill_stages.py [--trials N|all]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("commits", "trials", "orphans_left_unread", "rows_lost", "rows_duplicated")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="all", help="kill points per stage and hook, or 'all' (default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "kill.json"
        env = {**os.environ, "DFPIPE_KILL_TRIALS": args.trials, "DFPIPE_KILL_REPORT": str(report)}
        started = time.perf_counter()
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(ROOT / "tests" / "test_kill_stages.py")], cwd=ROOT, env=env, check=False)
        wall_s = time.perf_counter() - started
        counts = json.loads(report.read_text()) if report.exists() else {}
    print(f"{'stage':<14}" + "".join(f"{c:>21}" for c in COLUMNS))
    for stage, row in counts.items():
        print(f"{stage:<14}" + "".join(f"{row.get(c, 0):>21}" for c in COLUMNS))
    total = {c: sum(row.get(c, 0) for row in counts.values()) for c in COLUMNS}
    print(f"{'total':<14}" + "".join(f"{total[c]:>21}" for c in COLUMNS))
    print(f"{wall_s:.0f} s, pytest exit {tests.returncode}")
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
