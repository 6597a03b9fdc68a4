"""Scale: memory that does not grow with the corpus, and fixed start-up cost.

    .venv/bin/python benchmarks/bench_scale.py train|score|metrics|startup [--quick]

Each section measures dfpipe against a baseline in the same process run and prints a
markdown table; the figures and the machine's load average go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- train and score: streaming vs the whole-set loader ------------------------------------------
# Each measurement runs in a child process of its own (peak RSS is a process's lifetime peak).
# The stand-in corpora are the small demo corpus' real features, repeated under new clip ids
# (features are what training and scoring read; making 10,000 clips' audio and features on
# two shared cores would take the benchmark's whole budget).

STREAM_CNN = {"channels": (4, 8, 16, 32, 64)}
"""Mel-CNN at a quarter of the default widths (about a tenth of the compute): it fits the run
into minutes on two shared cores, and data loading is then a larger share of each step, so
the throughput comparison is stricter than with the default widths."""
EVAL_BATCH = 64  # val scoring batch of the streaming trainer (see train_streaming)


def _standin_lake(root: str, sizes: dict[str, tuple[int, str]]) -> str:
    """A lake with corpora ``{name: (clips, split)}`` whose features rows are the small demo
    corpus' (``raw``), repeated under new clip ids, written as the features stage writes them."""
    import tempfile

    import numpy as np
    import pyarrow as pa
    from bench_train import demo_lake

    from dfpipe.config import FeaturesConfig, FrontendConfig
    from dfpipe.lake import Lake, stable_id

    with tempfile.TemporaryDirectory() as tmp:
        source = Lake(demo_lake(os.path.join(tmp, "demo")))
        clips = source.read("clips").sort_by("clip_id")
        features = source.read("features").sort_by("clip_id")
    assert clips.column("clip_id").equals(features.column("clip_id"))
    lake, shard_rows = Lake(root), FeaturesConfig().clips_per_shard
    for corpus, (n, split) in sizes.items():
        take = pa.array(np.arange(n) % clips.num_rows)
        ids = pa.array([stable_id(corpus, str(i)) for i in range(n)])
        rows = clips.take(take).set_column(0, "clip_id", ids)
        rows = rows.set_column(rows.column_names.index("corpus"), "corpus", pa.array([corpus] * n))
        rows = rows.set_column(rows.column_names.index("split"), "split", pa.array([split] * n))
        lake.write_shard("clips", rows, shard=corpus, partition={"corpus": corpus})
        for start in range(0, n, shard_rows):
            part = features.take(take[start:start + shard_rows])
            part = part.set_column(0, "clip_id", ids[start:start + shard_rows])
            part = part.set_column(part.column_names.index("corpus"), "corpus", pa.array([corpus] * len(part)))
            lake.write_shard("features", part, shard=f"{corpus}-{start:06d}", partition={"corpus": corpus},
                             row_group_size=FeaturesConfig().row_group_size)
    assert FrontendConfig().version == features.column("frontend_version")[0].as_py()
    return root


def _peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM``, which starts afresh at exec (``ru_maxrss`` would
    carry the parent's peak into the child)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024  # kB


def _child(call: str) -> dict:
    """Run ``call`` (an expression of this module) in a fresh Python; its printed JSON."""
    import json
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import json, sys; sys.path.insert(0, {here!r}); import bench_scale as b; print(json.dumps({call}))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def train_streaming(lake: str, corpus: str, shuffle_buffer: int) -> dict:
    """One epoch of dfpipe's trainer (streaming) on ``corpus@train``: clips/s of the epoch loop."""
    from dfpipe.config import MelCNNConfig, StreamConfig, TrainConfig
    from dfpipe.lake import Lake
    from dfpipe.train import train

    # The val set (5 % of train: 100 clips at N = 2,000) is scored in batches of
    # eval_batch_size; at the default 256 it fills a smaller batch at N than at 4N, and peak
    # RSS would measure that, not the corpus. 64 fills a whole batch at both sizes.
    cfg = TrainConfig(epochs=1, device="cpu", eval_batch_size=EVAL_BATCH,
                      stream=StreamConfig(shuffle_buffer=shuffle_buffer))
    summary = train(cfg, lake, arch="mel-cnn", train_data=corpus,
                    model_config=MelCNNConfig(**STREAM_CNN), log=lambda line: None)
    wall, n = Lake(lake).connect().execute("select wall_s, n_train from epochs where run_id = ?",
                                           [summary.run_id]).fetchone()
    return {"clips": n, "clips_s": n / wall, "peak_rss_mb": _peak_rss_mb()}


def train_in_memory(lake: str, corpus: str) -> dict:
    """The trainer's epoch as it was before streaming: the whole train set loaded as float16
    (:func:`bench_train.load_in_memory`), split 95/5, then permuted batches gathered from it."""
    import numpy as np
    import torch
    from bench_train import load_in_memory
    from torch import nn

    from dfpipe.config import MelCNNConfig, TrainConfig
    from dfpipe.devices import select_device
    from dfpipe.models import Batch, build_model
    from dfpipe.train import seed_epoch, stratified_split, train_step

    cfg = TrainConfig(epochs=1, device="cpu")
    ctx = select_device(cfg.device, amp=cfg.amp, cpu_threads=cfg.cpu_threads)
    torch.manual_seed(cfg.seed)
    model = build_model("mel-cnn", MelCNNConfig(**STREAM_CNN))
    mel, labels, _ = load_in_memory(lake, corpus, "train")
    train_idx, _ = stratified_split(labels, cfg.val_fraction, cfg.seed)
    mel, labels = mel[train_idx], labels[train_idx]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler, loss_fn, batch_size = ctx.grad_scaler(), nn.BCEWithLogitsLoss(), cfg.batch_size_for("mel-cnn")
    started = time.perf_counter()
    order = seed_epoch(cfg.seed, 1).permutation(len(labels))
    model.train()
    for start in range(0, len(order), batch_size):
        rows = np.sort(order[start:start + batch_size])
        train_step(model, Batch(mel=torch.from_numpy(mel[rows].astype(np.float32))), torch.from_numpy(labels[rows]),
                   optimizer=optimizer, scaler=scaler, loss_fn=loss_fn, ctx=ctx, grad_clip=cfg.grad_clip)
    return {"clips": len(labels), "clips_s": len(labels) / (time.perf_counter() - started),
            "peak_rss_mb": _peak_rss_mb()}


def _print_rows(first_columns: str, rows: list[tuple[str, dict]]) -> dict[str, dict]:
    """Print a child-process measurement per row as a markdown table; the rows by name."""
    print(f"| {first_columns} | clips/s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for name, row in rows:
        print(f"| {name} | {row['clips']} | {row['clips_s']:.1f} | {row['peak_rss_mb']:.0f} |")
    return dict(rows)


def bench_train(quick: bool, n: int | None = None) -> None:
    """One epoch of Mel-CNN at N and 4N clips: peak RSS and clips/s, streaming vs in-memory.

    ``n``: N (default 2,000; 100 with ``quick``). The shuffle buffer is the default (2,048)
    or N if smaller, so that at both sizes the train set is larger than the buffer and peak RSS
    shows what streaming bounds (a buffer larger than the train set holds all of it)."""
    import tempfile

    from dfpipe.config import StreamConfig

    n = n or (100 if quick else 2000)
    buffer = min(StreamConfig().shuffle_buffer, n)
    with tempfile.TemporaryDirectory() as tmp:
        lake = _standin_lake(os.path.join(tmp, "lake"), {"n1": (n, "train"), "n4": (4 * n, "train")})
        # the in-memory trainer at N only: it is the throughput reference (at 4N it would hold 4x)
        cases = [("streaming", "n1"), ("in_memory", "n1"), ("streaming", "n4")]
        rows = [(f"{mode} {corpus}", _child(f"b.train_{mode}({lake!r}, {corpus!r}"
                                            f"{', ' + str(buffer) if mode == 'streaming' else ''})"))
                for mode, corpus in cases]
    print(f"\nOne epoch of Mel-CNN (channels {STREAM_CNN['channels']}, batch 128, val batch {EVAL_BATCH}) on "
          f"{os.cpu_count()} CPU "
          f"core(s); N = {n}; shuffle buffer {buffer}, {StreamConfig().workers} reader thread(s)\n")
    by = _print_rows("loader, corpus | train clips", rows)
    print(f"\nstreaming peak RSS 4N / N: {by['streaming n4']['peak_rss_mb'] / by['streaming n1']['peak_rss_mb']:.3f} "
          "(target <= 1.15)")
    for corpus in ("n1", "n4"):
        ratio = by[f"streaming {corpus}"]["clips_s"] / by["in_memory n1"]["clips_s"]
        print(f"streaming at {corpus} / in-memory at n1, clips/s: {ratio:.3f} (target >= 0.90)")


def score_streaming(lake: str, run_id: str, corpus: str) -> dict:
    """:func:`dfpipe.score.score` (the work `dfpipe score` runs in its flow) of ``corpus``."""
    from dfpipe.config import ScoreConfig
    from dfpipe.score import score

    started = time.perf_counter()
    result = score(lake, run_id, corpus, config=ScoreConfig(device="cpu"))
    return {"clips": result.rows, "clips_s": result.rows / (time.perf_counter() - started),
            "peak_rss_mb": _peak_rss_mb()}


def score_in_memory(lake: str, run_id: str, corpus: str) -> dict:
    """Scoring as it was before streaming: every clip's mel loaded, then predicted batch by batch."""
    import numpy as np
    import torch
    from bench_train import load_in_memory

    from dfpipe import checkpoints
    from dfpipe.config import ScoreConfig
    from dfpipe.devices import select_device
    from dfpipe.lake import Lake
    from dfpipe.models import Batch
    from dfpipe.predictions import checkpoint_uri, completed_epochs, spoof_logits

    config = ScoreConfig(device="cpu")
    ctx = select_device(config.device, amp=config.amp, cpu_threads=config.cpu_threads)
    started = time.perf_counter()
    model, _ = checkpoints.load_model(checkpoint_uri(Lake(lake), run_id, completed_epochs(Lake(lake), run_id)),
                                      ctx.device)
    mel, _, _ = load_in_memory(lake, corpus, None)
    model.eval()
    with torch.no_grad():
        logits = [spoof_logits(model, Batch(mel=torch.from_numpy(mel[s:s + config.batch_size].astype(np.float32))), ctx)
                  for s in range(0, len(mel), config.batch_size)]
    return {"clips": int(sum(map(len, logits))), "clips_s": len(mel) / (time.perf_counter() - started),
            "peak_rss_mb": _peak_rss_mb()}


def bench_score(quick: bool, n: int | None = None) -> None:
    """``dfpipe score`` of an eval set of N and 4N clips: peak RSS flat in N.

    ``n``: N (default 2,000; 100 with ``quick``)."""
    import tempfile

    from dfpipe.config import MelCNNConfig, TrainConfig
    from dfpipe.train import train

    n = n or (100 if quick else 2000)
    with tempfile.TemporaryDirectory() as tmp:
        lake = _standin_lake(os.path.join(tmp, "lake"), {"small": (64, "train"), "n1": (n, "eval"),
                                                         "n4": (4 * n, "eval")})
        run = train(TrainConfig(epochs=1, device="cpu"), lake, arch="mel-cnn", train_data="small",
                    model_config=MelCNNConfig(**STREAM_CNN), log=lambda line: None).run_id
        rows = [(f"{mode} {corpus}", _child(f"b.score_{mode}({lake!r}, {run!r}, {corpus!r})"))
                for corpus in ("n1", "n4") for mode in ("streaming", "in_memory")]
    print(f"\nScoring an eval set with Mel-CNN (channels {STREAM_CNN['channels']}, batch 64) on "
          f"{os.cpu_count()} CPU core(s); N = {n}\n")
    by = _print_rows("scorer, eval set | clips", rows)
    print(f"\nstreaming peak RSS 4N / N: {by['streaming n4']['peak_rss_mb'] / by['streaming n1']['peak_rss_mb']:.3f}")


def bench_metrics(quick: bool) -> None:
    """Metric tables over 10 M and 100 M synthetic predictions under a DuckDB memory limit.

    For each size, a lake of synthetic predictions (runs x epochs x datasets, continuous
    scores in even runs, scores tied to 2 decimals in odd runs) is written shard by shard
    (``bench_metrics.make_study_lake``), then, each in its own child process: ``dfpipe
    metrics`` (every table, 10 bootstrap replicates) under a 6 GB ``memory_limit`` (1 GB with
    ``--quick``) spilling into the lake, and the numpy/scikit-learn loop of bench_metrics.py
    on a sample of (run, epoch, dataset) units, extrapolated to the lake by unit count (the
    bootstrap part only to the units dfpipe resamples: each run's reported epochs).
    """
    import json
    import tempfile
    from pathlib import Path

    import bench_metrics as bm

    datasets = ["val", "test", "ood", "test_polished", "val_polished"]
    cases = [(1_000_000, 4, 5, "1GB")] if quick else [(10_000_000, 8, 10, "6GB"), (100_000_000, 8, 10, "6GB")]
    bootstrap = 10
    print("| predictions | runs x epochs x datasets | memory_limit | dfpipe s | peak RSS GiB | DuckDB peak GiB "
          "| spilled peak GiB | numpy/sklearn loop s (extrapolated) | loop's columns in memory GiB |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for rows, runs, epochs, limit in cases:
        with tempfile.TemporaryDirectory(prefix="bench_scale_metrics_") as scratch:
            root = Path(scratch) / "lake"
            started = time.perf_counter()
            units = bm.make_study_lake(root, rows, runs=runs, epochs=epochs, datasets=datasets)
            made = time.perf_counter() - started
            ours, rss = bm.child("limited", root, bootstrap, Path(scratch) / "dfpipe.json", "--memory-limit", limit)
            sample = [u for u in units if u[0] in ("run00", "run01") and u[1] == 1]  # val first in each run
            theirs, _ = bm.child("sample", root, bootstrap, Path(scratch) / "sample.json",
                                 "--units", json.dumps(sample))
        resampled = runs * 2 * len(datasets)  # each run's reported epochs: best val EER and last
        loop = (len(units) * theirs["metrics_seconds"]
                + resampled * (theirs["with_bootstrap_seconds"] - theirs["metrics_seconds"]))
        print(f"| {rows:,} | {runs} x {epochs} x {len(datasets)} | {limit} | {ours['seconds']:.0f} | {rss:.2f} "
              f"| {ours['duckdb_bytes'] / 2**30:.2f} | {ours['spill_bytes'] / 2**30:.2f} | {loop:.0f} "
              f"| {rows * theirs['bytes_per_row'] / 2**30:.1f} |", flush=True)
        print(f"  (lake written in {made:.0f} s; {ours['score_groups']:,} score_metrics rows; loop sampled on "
              f"{len(sample)} units, {theirs['rows']:,} rows)", flush=True)


def bench_startup(quick: bool) -> None:
    """Fixed start-up of each command on a 4-file corpus: first call and later calls.

    Each command runs as a user runs it (``dfpipe`` in a subprocess, wall time) on a folder
    corpus of 4 WAV files (3 s), in a Prefect home of its own and without PREFECT_API_URL. The
    first call of a command does its work on the 4 files; later calls find it done, so what they
    cost is the command's fixed start-up. Each figure is wall seconds and, in brackets, the CPU
    seconds of the command and the processes it waited for (its Dask workers; not the
    background server), which a busy machine inflates less. Two set-ups, one after the other:

    - today's: the first command starts the dfpipe Prefect server in the background (its own
      row), every later command reuses it; one-shard stages run in the command's process;
    - the previous behaviour, reproduced with ``DFPIPE_PREFECT_SERVER=temporary`` and
      ``DFPIPE_IN_PROCESS_SHARDS=0``: Prefect's temporary server and a LocalCluster (one worker
      per core) in every command.
    """
    import math
    import resource
    import shutil
    import statistics
    import subprocess
    import tempfile
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    dfpipe = str(Path(sys.executable).with_name("dfpipe"))
    later_calls = 1 if quick else 3
    root = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    corpus = root / "corpus"
    rng = np.random.default_rng(0)
    for i, name in enumerate(["real/a.wav", "real/b.wav", "fake/tts/c.wav", "fake/tts/d.wav"]):
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(3 * 16_000) / 16_000
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(corpus / name, wave.astype(np.float32), 16_000)

    options = {"ingest": ["--corpus", "c", "--format", "folder", "--split", "train", str(corpus)],
               "condition": ["--corpus", "c", "--conditions", "flac"],
               "features": ["--corpus", "c", "--condition", "raw"],
               "train": ["--arch", "mel-cnn", "--train", "c", "--epochs", "1"],
               "score-archive": [],
               "metrics": [],
               "query": ["select count(*) from clips"]}

    def arguments(command: str, lake: Path) -> list[str]:
        if command == "score-archive":  # the checkpoint of the train command before it
            checkpoint = next((lake / "checkpoints").glob("*/epoch-001.pt"))
            return [command, str(corpus), "--checkpoint", str(checkpoint), "--out", str(lake.parent / "scores")]
        return [command, "--lake", str(lake), *options[command]]

    def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
        """Wall and CPU seconds of one command."""
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([dfpipe, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False)
        if done.returncode:
            raise SystemExit(f"dfpipe {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}")
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime

    def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)

    Figures = dict[str, tuple[tuple[float, float], tuple[float, float]]]  # command -> (first, later)
    none = (math.nan, math.nan)

    def setup(name: str, extra: dict[str, str]) -> Figures:
        home = root / name / "prefect"
        home.mkdir(parents=True)  # Prefect makes its home, not the folders above it
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DFPIPE_"))}
        env.update(PREFECT_HOME=str(home), **extra)
        lake = root / name / "lake"
        found: Figures = {}
        if not extra:  # the server's start, paid by the first command that runs a flow
            found["server start (the first command's extra)"] = (timed(["server", "start"], env), none)
        for command in options:
            first = timed(arguments(command, lake), env)
            later = median([timed(arguments(command, lake), env) for _ in range(later_calls)])
            found[command] = (first, later)
            print(f"  {name} {command}: first {first[0]:.1f} s ({first[1]:.1f} CPU), later {later[0]:.1f} s "
                  f"({later[1]:.1f} CPU)", flush=True)
        if not extra:
            subprocess.run([dfpipe, "server", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)
        return found

    try:
        print(f"load average before: {os.getloadavg()}", flush=True)
        today = setup("today", {})
        before = setup("previous", {"DFPIPE_PREFECT_SERVER": "temporary", "DFPIPE_IN_PROCESS_SHARDS": "0"})
        print(f"load average after: {os.getloadavg()}")
        print("\n| command | first call, s (CPU s) | later calls, median | previous: first | previous: later |")
        print("|---|---:|---:|---:|---:|")
        for command, figures in today.items():
            cells = ["—" if math.isnan(wall) else f"{wall:.1f} ({cpu:.1f})"
                     for wall, cpu in (*figures, *before.get(command, (none, none)))]
            print(f"| `{command}` | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


SECTIONS = {"train": bench_train, "score": bench_score, "metrics": bench_metrics, "startup": bench_startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, to check the script runs")
    args = parser.parse_args()
    SECTIONS[args.section](args.quick)


if __name__ == "__main__":
    main()
