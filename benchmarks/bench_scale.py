"""Scale: memory that does not grow with the corpus, and fixed start-up cost.

    .venv/bin/python benchmarks/bench_scale.py train|score|metrics|startup [--quick]

Each section measures dfpipe against a baseline in the same process run and prints a
markdown table; the figures and the machine's load average go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench_train(quick: bool) -> None:
    """One epoch of Mel-CNN at N and 4N clips: peak RSS and clips/s, streaming vs in-memory."""
    raise SystemExit("not written yet")


def bench_score(quick: bool) -> None:
    """``dfpipe score`` of an eval set of N and 4N clips: peak RSS flat in N."""
    raise SystemExit("not written yet")


def bench_metrics(quick: bool) -> None:
    """Metric tables over 10 M and 100 M synthetic predictions under a DuckDB memory limit."""
    raise SystemExit("not written yet")


def bench_startup(quick: bool) -> None:
    """Fixed start-up of each command on a 4-file corpus: first call and later calls."""
    raise SystemExit("not written yet")


SECTIONS = {"train": bench_train, "score": bench_score, "metrics": bench_metrics, "startup": bench_startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, to check the script runs")
    args = parser.parse_args()
    SECTIONS[args.section](args.quick)


if __name__ == "__main__":
    main()
