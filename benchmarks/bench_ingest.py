"""Ingest throughput: dfpipe on 1 and 2 Dask workers vs a loop of ffprobe/ffmpeg processes.

Builds a folder corpus of mixed files (WAV at 8/16/44.1 kHz, FLAC, MP3, M4A, Ogg Vorbis,
stereo; 3 s each) plus a dozen broken ones in a temporary folder, then measures files/s of:

- ``dfpipe ingest`` (plain functions, :func:`dfpipe.ingest.ingest`) in-process and on a
  LocalCluster with 1 and 2 workers: hash + full decode of every file + Parquet commit;
- baseline A: a Python loop running ``ffprobe`` (header only: less work than dfpipe);
- baseline B: a loop running ``ffmpeg -i F -f null -`` (a full decode, like dfpipe's probe).

Every number comes from this one process run, so ratios stay meaningful on a busy machine.
It also checks the acceptance criteria: one clips row per good file, one rejects row per
broken one, and a second run adds nothing.

Usage: ``.venv/bin/python benchmarks/bench_ingest.py [--quick]``
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dfpipe.config import DaskConfig, IngestConfig
from dfpipe.flows._common import dask_client
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake

# The test suite's ffmpeg file makers: one generator of fixture audio for tests and benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ingest_fixtures import broken_files, tone

VARIANTS = [  # (suffix, sample rate Hz, channels)
    (".wav", 16_000, 1), (".wav", 8_000, 1), (".wav", 44_100, 1), (".wav", 16_000, 2),
    (".flac", 16_000, 1), (".flac", 44_100, 2), (".mp3", 16_000, 1), (".mp3", 44_100, 2),
    (".m4a", 16_000, 1), (".m4a", 44_100, 1), (".ogg", 16_000, 1), (".ogg", 22_050, 2),
]
SECONDS = 3.0
FILES_PER_SHARD = 16  # small enough that 2 workers get many shards each


def build(root: Path, n_good: int) -> tuple[list[Path], int]:
    """``n_good`` distinct audio files under real/ and fake/<gen>/, plus 12 broken ones."""
    jobs = []
    for i in range(n_good):
        suffix, rate, channels = VARIANTS[i % len(VARIANTS)]
        folder = root / "real" if i % 2 else root / "fake" / f"gen{i % 3}"
        jobs.append((folder / f"f{i:04}{suffix}", 150 + 7 * i, rate, channels, i % 5 == 0))
    with ThreadPoolExecutor(4) as pool:
        good = list(pool.map(lambda j: tone(j[0], j[1], rate=j[2], seconds=SECONDS, channels=j[3], noise=j[4]), jobs))
    n_bad = sum(len(broken_files(root / "fake" / f"broken{k}", good[k])) for k in range(3))
    return good, n_bad


def files_per_s(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def run_dfpipe(root: Path, lake: str, workers: int | None, expect: tuple[int, int]) -> float:
    """Seconds of one full ingest (cluster start-up excluded); checks the counts."""
    config = IngestConfig(files_per_shard=FILES_PER_SHARD)
    if workers is None:
        started = time.perf_counter()
        summary = ingest(lake, "bench", corpus_entries("folder", root, config), config)
        seconds = time.perf_counter() - started
    else:
        with dask_client(DaskConfig(n_workers=workers)) as client:
            client.run(lambda: __import__("dfpipe.ingest"))  # imports paid before the clock starts
            started = time.perf_counter()
            summary = ingest(lake, "bench", corpus_entries("folder", root, config), config, executor=client)
            seconds = time.perf_counter() - started
    if (summary.clips, summary.rejects) != expect:
        raise SystemExit(f"expected {expect} (clips, rejects), got {(summary.clips, summary.rejects)}")
    again = ingest(lake, "bench", corpus_entries("folder", root, config), config)
    if (again.clips, again.rejects) != (0, 0):
        raise SystemExit(f"a second run added rows: {again}")
    return seconds


def run_baseline(files: list[Path], argv: Callable[[str], list[str]]) -> float:
    """Seconds of a plain loop: hash each file and run the process ``argv(file)`` on it."""
    started = time.perf_counter()
    for path in files:
        hashlib.sha256(path.read_bytes()).hexdigest()
        subprocess.run(argv(str(path)), capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 good files instead of 300")
    args = parser.parse_args()
    n_good = 60 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        root = Path(tmp) / "corpus"
        built = time.perf_counter()
        good, n_bad = build(root, n_good)
        print(f"built {len(good)} good + {n_bad} broken files in {time.perf_counter() - built:.1f} s", file=sys.stderr)
        expect = (len(good), n_bad)
        n = len(good) + n_bad
        all_files = sorted(p for p in root.rglob("*") if p.is_file())
        rows = {
            "dfpipe, in-process (executor=None)": run_dfpipe(root, f"{tmp}/lake0", None, expect),
            "dfpipe, Dask 1 worker": run_dfpipe(root, f"{tmp}/lake1", 1, expect),
            "dfpipe, Dask 2 workers": run_dfpipe(root, f"{tmp}/lake2", 2, expect),
            "baseline A: loop of ffprobe (header only)": run_baseline(
                all_files, lambda f: ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", f]),
            "baseline B: loop of ffmpeg full decode": run_baseline(
                all_files, lambda f: ["ffmpeg", "-nostdin", "-v", "error", "-i", f, "-f", "null", "-"]),
        }
        tables = Lake(f"{tmp}/lake2").connect().execute(
            "select (select count(*) from clips), (select count(*) from rejects)").fetchone()
    one = rows["dfpipe, Dask 1 worker"]
    print(f"\nIngest throughput: {len(good)} good + {n_bad} broken files, {SECONDS:g} s each, "
          f"{FILES_PER_SHARD} files/shard; lake after 2 runs: {tables[0]} clips, {tables[1]} rejects\n")
    print("| run | seconds | files/s | speed vs Dask 1 worker |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {files_per_s(n, seconds):.1f} | {one / seconds:.2f}x |")
    print(f"\nratio 2 workers / 1 worker: {one / rows['dfpipe, Dask 2 workers']:.2f}x; "
          f"dfpipe 1 worker / ffprobe loop: {rows['baseline A: loop of ffprobe (header only)'] / one:.2f}x; "
          f"dfpipe 1 worker / ffmpeg decode loop: {rows['baseline B: loop of ffmpeg full decode'] / one:.2f}x")


if __name__ == "__main__":
    main()
