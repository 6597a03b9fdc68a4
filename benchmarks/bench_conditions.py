"""Condition stage throughput: dfpipe vs a shell loop of ffmpeg vs an in-process encode loop.

    .venv/bin/python benchmarks/bench_conditions.py [--quick | --clips N] [--condition mp3_128k]

All numbers come from one process run on the same espeak-ng clips (3-5 s, 22.05 kHz WAV),
each converted to 16 kHz mono in the given condition:

* shell loop: ``for f in *.wav; do ffmpeg -i $f -ar 16000 -ac 1 -b:a 128k out.mp3; done``
  (one process per clip, one core);
* in-process loop: PyAV encode of pre-decoded 16 kHz audio (the codec's own limit, no I/O);
* dfpipe: :func:`dfpipe.conditions.run_conditions` (read, decode, encode, Parquet commit)
  in-process (one core), then on a Dask LocalCluster with 1 and 2 workers (cluster start
  excluded, workers warmed up on a separate lake).

Targets: dfpipe >= 1.0x the shell loop and >= 0.5x the in-process loop per core;
2 workers >= 1.7x 1 worker (needs 2 idle cores).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from _clips import copy_clips, make_corpus

from dfpipe.audio_io import decode
from dfpipe.conditions import encode, parse_condition, run_conditions
from dfpipe.config import ConditionsConfig, DaskConfig
from dfpipe.flows._common import dask_client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 clips instead of 96")
    parser.add_argument("--clips", type=int, default=96, help="clips to convert (default 96)")
    parser.add_argument("--condition", default="mp3_128k", help="a single-codec condition: flac, mp3_<N>k, ...")
    args = parser.parse_args()
    n = 24 if args.quick else args.clips
    step = parse_condition(args.condition)
    if len(step) != 1 or step[0].kind != "codec":
        parser.error("--condition must be one codec step (flac, mp3_128k, opus_32k, aac_64k)")
    codec, kbps = step[0].args[0], (step[0].args[1] if len(step[0].args) > 1 else None)
    config = ConditionsConfig(clips_per_shard=max(1, n // 8))
    rate = config.audio.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        lake, files = make_corpus(base / "src", n)
        rows: list[tuple[str, int, float]] = []

        suffix = {"flac": "flac", "mp3": "mp3", "opus": "ogg", "aac": "aac"}[codec]
        bitrate = f"-b:a {kbps}k" if kbps else ""
        (base / "out").mkdir()
        loop = (f"for f in {shlex.quote(str(files[0].parent))}/*.wav; do ffmpeg -nostdin -loglevel error -y "
                f"-i \"$f\" -ar {rate} -ac 1 {bitrate} {shlex.quote(str(base / 'out'))}/$(basename \"$f\" .wav)."
                f"{suffix}; done")
        started = time.perf_counter()
        subprocess.run(["bash", "-c", loop], check=True)
        rows.append(("shell loop of ffmpeg (1 process at a time)", 1, time.perf_counter() - started))

        waves = [decode(path, rate) for path in files]
        started = time.perf_counter()
        for wave in waves:
            encode(wave, rate, codec, kbps)
        rows.append(("in-process PyAV encode loop (pre-decoded)", 1, time.perf_counter() - started))

        started = time.perf_counter()
        summary = run_conditions(lake.uri, "bench", [args.condition], config)
        rows.append(("dfpipe run_conditions, in-process", 1, time.perf_counter() - started))
        assert summary.rows == n, summary

        for workers in (1, 2):
            with dask_client(DaskConfig(n_workers=workers)) as client:
                warm = copy_clips(lake, base / f"warm{workers}")
                run_conditions(warm.uri, "bench", ["flac"], config, executor=client)
                fresh = copy_clips(lake, base / f"lake{workers}")
                started = time.perf_counter()
                run_conditions(fresh.uri, "bench", [args.condition], config, executor=client)
                rows.append((f"dfpipe run_conditions, Dask {workers} worker(s)", workers,
                             time.perf_counter() - started))

    shell, inproc = rows[0][2], rows[1][2]
    print(f"\n### Condition stage, {args.condition}, {n} clips ({os.cpu_count()} cores)\n")
    print("| method | cores | s | clips/s | clips/s per core | vs shell loop (per core) | vs in-process (per core) |")
    print("|---|---|---|---|---|---|---|")
    for name, cores, seconds in rows:
        per_core = n / seconds / cores
        print(f"| {name} | {cores} | {seconds:.2f} | {n / seconds:.1f} | {per_core:.1f} | "
              f"{per_core / (n / shell):.2f}x | {per_core / (n / inproc):.2f}x |")
    one, two = rows[3][2], rows[4][2]
    print(f"\n2 workers vs 1 worker: {one / two:.2f}x (target >= 1.7x on 2 idle cores)")


if __name__ == "__main__":
    main()
