"""Demo-corpus build: serial vs 2 worker processes vs a cache hit, in one process run.

    .venv/bin/python benchmarks/bench_demo_corpus.py [--quick]

Builds the corpus (``--quick``: 20/5/5 bona fide per split and as many spoofs, else the
``small`` size, about 200 clips) three times into fresh folders: in this process, over a
2-process pool, then again on the finished folder (cache hit). Prints wall and CPU
seconds (this process and its children: TTS engines and pool workers) and ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from dfpipe.config import DemoCorpusConfig
from dfpipe.corpora.demo import build_demo_corpus


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(out: Path, config: DemoCorpusConfig, workers: int = 0) -> tuple[float, float, int]:
    """Build into ``out``; wall and CPU seconds include starting and joining the pool (a
    worker's CPU time is counted once it has exited)."""
    wall, cpu = time.perf_counter(), _cpu_s()
    if workers:
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            summary = build_demo_corpus(out, "small", 0, executor=pool, config=config)
    else:
        summary = build_demo_corpus(out, "small", 0, config=config)
    return time.perf_counter() - wall, _cpu_s() - cpu, summary.clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 pairs instead of about 100")
    args = parser.parse_args()
    config = DemoCorpusConfig(small_per_class=(20, 5, 5)) if args.quick else DemoCorpusConfig()
    with tempfile.TemporaryDirectory(prefix="dfpipe-bench-demo-") as tmp:
        serial = _timed(Path(tmp) / "serial", config)
        parallel = _timed(Path(tmp) / "pool", config, workers=2)
        cached = _timed(Path(tmp) / "pool", config)
    print("| build | clips | wall s | CPU s | wall vs serial |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu, clips) in (("serial (this process)", serial), ("2 worker processes", parallel),
                                     ("cache hit", cached)):
        print(f"| {name} | {clips} | {wall:.2f} | {cpu:.2f} | {serial[0] / max(wall, 1e-9):.1f}x |")


if __name__ == "__main__":
    main()
