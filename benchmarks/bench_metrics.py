"""Metric tables: dfpipe's DuckDB SQL vs a numpy/scikit-learn loop over the groups.

Usage: .venv/bin/python benchmarks/bench_metrics.py [--quick] [--rows N] [--bootstrap-samples B]

Builds one lake of synthetic predictions (10M rows, 1M with --quick) in 20 (run, dataset)
groups of 4 runs x {val, test, ood, test_polished, val_polished}, each with spoof
generators, families and two source codecs, then in two child processes, one after the
other (so each peak RSS is its own):

* dfpipe: ``compute_metrics`` -> every table of ``sql/`` (score and threshold metrics
  per grouping, val-EER policy, dynamics, best epoch, ablation, polished gap, leaderboard,
  model size, bootstrap intervals), written as Parquet + metrics.duckdb;
* baseline: the loop a notebook would write: per group and grouping value, the ASVspoof
  EER / minDCF (numpy stable sort), actDCF, Cllr, scikit-learn's accuracy, precision,
  recall, F1, MCC and confusion matrix at P(spoof) 0.5 and at the val-EER threshold, and
  the same number of bootstrap replicates of accuracy and EER.

It checks that both computed the same EERs, then prints a markdown table with the
wall-time ratio and each side's peak RSS (measured by the parent with ``wait4``).

``bench_scale.py metrics`` reuses this file: :func:`make_study_lake` (a study-shaped lake
written shard by shard), the ``limited`` side (``compute_metrics`` under a memory limit,
sampling DuckDB's memory and spill) and the ``sample`` side (this loop on a few units).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RUNS = ["cnn_flac", "cnn_mp3", "aasist_flac", "aasist_corrupt_mp3"]
DATASETS = ["val", "test", "ood", "test_polished", "val_polished"]
GENERATORS = np.array(["espeak-ng", "festival", "flite", "piper"])
FAMILIES = np.array(["formant", "diphone", "diphone", "neural"])
CODECS = np.array(["mp3", "flac"])


def make_lake(root: Path, rows: int) -> None:
    """Write ``rows`` synthetic predictions (+ runs) into a lake at ``root``."""
    from dfpipe.lake import Lake

    lake = Lake(str(root))
    per_group = rows // (len(RUNS) * len(DATASETS))
    rng = np.random.default_rng(0)
    for r, run in enumerate(RUNS):
        for dataset in DATASETS:
            is_spoof = rng.random(per_group) < 0.6
            generator = rng.integers(0, len(GENERATORS), per_group)
            shift = 1.0 + 0.3 * r - 0.5 * ("ood" in dataset) - 0.3 * dataset.endswith("_polished")
            logit = np.round(rng.normal(0, 1.5, per_group) + np.where(is_spoof, shift, -shift), 3)
            lake.write_shard("predictions", pa.table({
                "run_id": pa.array([run] * per_group).dictionary_encode().cast(pa.string()),
                "epoch": np.ones(per_group, np.int32),
                "dataset": [dataset] * per_group,
                "clip_id": pa.array(np.arange(per_group).astype(str)),
                "corpus": ["bench"] * per_group,
                "condition": ["flac"] * per_group,
                "label": np.where(is_spoof, "spoof", "bonafide"),
                "spoof_logit": logit,
                "generator": pa.array(np.where(is_spoof, GENERATORS[generator], None)),
                "family": pa.array(np.where(is_spoof, FAMILIES[generator], None)),
                "source_codec": CODECS[rng.integers(0, 2, per_group)],
            }), shard=f"{run}-{dataset}")
    lake.write_shard("runs", pa.table({
        "run_id": RUNS, "arch": ["mel_cnn", "mel_cnn", "mel_aasist", "mel_aasist"],
        "train_corpus": ["asv5"] * 4, "train_condition": ["flac", "mp3_128k", "flac", "corrupt+mp3_128k"],
        # as `dfpipe train` records them (dfpipe.conditions.grammar.describe_condition)
        "codec": ["flac", "mp3_128k", "flac", "mp3_128k"], "corruption": [None, None, None, "corrupt"],
        "seed": [0] * 4, "epochs_planned": [1] * 4, "params": [400_000, 400_000, 2_000_000, 2_000_000],
        "trainable_params": [400_000, 400_000, 2_000_000, 2_000_000],
        "checkpoint_bytes": [435_000, 435_000, 2_200_000, 2_200_000], "device": ["cpu"] * 4,
        "config_json": ["{}"] * 4,
    }), shard="runs")


def make_study_lake(root: Path, rows: int, *, runs: int, epochs: int, datasets: list[str],
                    block: int = 250_000) -> list[tuple[str, int, str]]:
    """Write ``rows`` synthetic predictions as a study would: ``runs`` x ``epochs`` x
    ``datasets``, one shard per (run, epoch, dataset) as ``dfpipe train`` writes them
    (``predictions/run_id=<run>/e<epoch>-<dataset>-...``), plus ``runs`` and ``epochs`` rows.

    Streams: one shard (at most ``block`` rows) is in memory at a time, whatever ``rows``.
    Even runs score with continuous float64 logits, odd runs with logits rounded to 2
    decimals (many tied scores). Returns the (run_id, epoch, dataset) units written.
    """
    from dfpipe.lake import Lake, stable_id

    lake = Lake(str(root))
    units = [(f"run{r:02d}", e, d) for r in range(runs) for e in range(1, epochs + 1) for d in datasets]
    per_unit = rows // len(units)
    rng = np.random.default_rng(0)
    for run_id, epoch, dataset in units:
        r = int(run_id[3:])
        shift = 0.5 + 0.1 * r + 0.05 * epoch - 0.4 * ("ood" in dataset)
        for part, start in enumerate(range(0, per_unit, block)):
            n = min(block, per_unit - start)
            is_spoof = rng.random(n) < 0.6
            generator = rng.integers(0, len(GENERATORS), n)
            logit = rng.normal(0, 1.5, n) + np.where(is_spoof, shift, -shift)
            if r % 2:
                logit = np.round(logit, 2)
            lake.write_shard("predictions", pa.table({
                "run_id": [run_id] * n, "epoch": np.full(n, epoch, np.int32), "dataset": [dataset] * n,
                "clip_id": pa.array(np.char.add(dataset, np.arange(start, start + n).astype(str))),
                "corpus": ["bench"] * n, "condition": ["flac"] * n,
                "label": np.where(is_spoof, "spoof", "bonafide"), "spoof_logit": logit,
                "generator": pa.array(np.where(is_spoof, GENERATORS[generator], None)),
                "family": pa.array(np.where(is_spoof, FAMILIES[generator], None)),
                "source_codec": CODECS[rng.integers(0, 2, n)],
            }), shard=f"e{epoch:03d}-{dataset}-{stable_id('flac', length=8)}-{part}", partition={"run_id": run_id})
    run_ids = sorted({u[0] for u in units})
    lake.write_shard("runs", pa.table({
        "run_id": run_ids, "arch": ["mel_cnn"] * runs, "train_corpus": ["asv5"] * runs,
        "train_condition": ["flac"] * runs, "codec": ["flac"] * runs, "corruption": [None] * runs,
        "seed": list(range(runs)), "epochs_planned": [epochs] * runs, "params": [400_000] * runs,
        "trainable_params": [400_000] * runs, "checkpoint_bytes": [435_000] * runs, "device": ["cpu"] * runs,
        "config_json": ["{}"] * runs,
    }), shard="runs")
    lake.write_shard("epochs", pa.table({
        "run_id": [r for r in run_ids for _ in range(epochs)],
        "epoch": pa.array([e for _ in run_ids for e in range(1, epochs + 1)], pa.int32()),
        "train_loss": [0.5] * (runs * epochs), "train_acc": [0.8] * (runs * epochs),
        "val_loss": [0.5] * (runs * epochs), "n_train": [1000] * (runs * epochs),
        "checkpoint_uri": [f"{root}/checkpoints/{r}/{e}.pt" for r in run_ids for e in range(1, epochs + 1)],
        "checkpoint_bytes": [435_000] * (runs * epochs), "wall_s": [1.0] * (runs * epochs),
    }), shard="epochs")
    return units


# -- the two sides (each runs in its own child process) -------------------------------------
def run_dfpipe(root: Path, bootstrap_samples: int) -> dict:
    from dfpipe.config import MetricsConfig
    from dfpipe.metrics import compute_metrics

    start = time.perf_counter()
    summary = compute_metrics(str(root), MetricsConfig(bootstrap_samples=bootstrap_samples))
    seconds = time.perf_counter() - start
    eers = pq.read_table(f"{summary.parquet_dir}/score_metrics.parquet").to_pylist()
    return {"seconds": seconds, "tables": len(summary.rows),
            "eer": {f"{r['run_id']}|{r['dataset']}|{r['grouping']}|{r['group_value']}": r["eer"] for r in eers}}


def run_dfpipe_limited(root: Path, bootstrap_samples: int, memory_limit: str) -> dict:
    """``compute_metrics`` under ``memory_limit``, spilling into a folder of the lake; a
    thread samples DuckDB's own memory (``duckdb_memory()``, from a cursor on the stage's
    connection) and the spill folder's size."""
    import threading

    import duckdb

    import dfpipe.metrics
    from dfpipe.config import MetricsConfig

    spill = root / "spill"
    config = MetricsConfig(bootstrap_samples=bootstrap_samples, memory_limit=memory_limit,
                           temp_directory=str(spill))
    peaks = {"duckdb_bytes": 0, "spill_bytes": 0}
    cursors = []
    opened = dfpipe.metrics.metrics_connection

    @contextlib.contextmanager
    def watched(lake, cfg):
        with opened(lake, cfg) as con:
            cursors.append(con.cursor())
            yield con
            cursors.clear()

    def watch(stop: threading.Event) -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(IndexError, duckdb.Error):  # the stage closed its connection
                used = cursors[0].execute("select sum(memory_usage_bytes) from duckdb_memory()").fetchall()[0][0]
                peaks["duckdb_bytes"] = max(peaks["duckdb_bytes"], int(used or 0))
            spilled = sum(f.stat().st_size for f in spill.rglob("*") if f.is_file()) if spill.exists() else 0
            peaks["spill_bytes"] = max(peaks["spill_bytes"], spilled)

    dfpipe.metrics.metrics_connection = watched
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    watcher.start()
    start = time.perf_counter()
    summary = dfpipe.metrics.compute_metrics(str(root), config)
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    return {"seconds": seconds, "tables": len(summary.rows), "score_groups": summary.rows["score_metrics"], **peaks}


def _det(bonafide: np.ndarray, spoof: np.ndarray):
    scores = np.concatenate([bonafide, spoof])
    labels = np.concatenate([np.ones(bonafide.size), np.zeros(spoof.size)])
    order = np.argsort(scores, kind="mergesort")
    cum = np.cumsum(labels[order])
    frr = np.concatenate([[0.0], cum / bonafide.size])
    far = np.concatenate([[1.0], (spoof.size - (np.arange(1, scores.size + 1) - cum)) / spoof.size])
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return frr, far, thresholds


def _score_metrics(cm: np.ndarray, spoof_mask: np.ndarray) -> dict:
    bonafide, spoof = cm[~spoof_mask], cm[spoof_mask]
    frr, far, thresholds = _det(bonafide, spoof)
    k = np.argmin(np.abs(frr - far))
    p_target, c_miss, c_fa, p_spoof = 0.95, 1.0, 10.0, 0.05
    costs = c_miss * frr * p_target + c_fa * far * (1 - p_target)
    tau = -np.log(c_miss * (1 - p_spoof) / (c_fa * p_spoof))
    act = (c_miss * (1 - p_spoof) * np.mean(bonafide < tau) + c_fa * p_spoof * np.mean(spoof >= tau)) / 0.5
    cllr = 0.5 * (np.mean(np.logaddexp(0, -bonafide)) + np.mean(np.logaddexp(0, spoof))) / np.log(2)
    return {"eer": float((frr[k] + far[k]) / 2), "eer_threshold": float(thresholds[k]),
            "min_dcf": float(costs.min() / min(c_miss * p_target, c_fa * (1 - p_target))),
            "act_dcf": float(act), "cllr": float(cllr)}


def _threshold_metrics(y: np.ndarray, predicted: np.ndarray) -> dict:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    tn, fp, _, _ = confusion_matrix(y, predicted, labels=[False, True]).ravel()
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="binary", zero_division=0)
    return {"accuracy": accuracy_score(y, predicted), "precision": precision, "recall": recall, "f1": f1,
            "mcc": matthews_corrcoef(y, predicted), "specificity": tn / (tn + fp)}


def baseline_dataset(columns: dict[str, np.ndarray], rows: np.ndarray, val_threshold: float | None,
                     bootstrap_samples: int) -> tuple[dict[tuple[str, str], float], float | None]:
    """The notebook loop's work for one (run, epoch, dataset): every group's score and threshold
    metrics, then ``bootstrap_samples`` replicates of the overall accuracy and EER.

    Returns:
        EER per (grouping, value) and the val-EER threshold (set when the dataset is ``val``).
    """
    cm = -columns["spoof_logit"][rows]
    y = columns["label"][rows] == "spoof"
    groups = {("overall", "all"): np.ones(y.size, bool)}
    for grouping in ["condition", "corpus", "source_codec"]:
        values = columns[grouping][rows]
        groups.update({(grouping, v): values == v for v in np.unique(values)})
    for grouping in ["generator", "family"]:  # that attack's spoofs + all bona fide
        values = columns[grouping][rows]
        groups.update({(grouping, v): (~y) | (values == v) for v in set(values[y])})
    eers = {}
    for (grouping, value), mask in groups.items():
        metrics = _score_metrics(cm[mask], y[mask])
        eers[(grouping, value)] = metrics["eer"]
        _threshold_metrics(y[mask], 1 / (1 + np.exp(cm[mask])) >= 0.5)  # P(spoof) >= 0.5
        if columns["dataset"][rows][0] == "val" and grouping == "overall":
            val_threshold = metrics["eer_threshold"]
        _threshold_metrics(y[mask], cm[mask] <= val_threshold)
    rng = np.random.default_rng(0)
    replicate_accuracy, replicate_eer = [], []
    for _ in range(bootstrap_samples):
        pick = rng.integers(0, y.size, y.size)
        replicate_accuracy.append(np.mean((1 / (1 + np.exp(cm[pick])) >= 0.5) == y[pick]))
        replicate_eer.append(_score_metrics(cm[pick], y[pick])["eer"])
    if bootstrap_samples:
        np.quantile(replicate_accuracy, [0.025, 0.975]), np.quantile(replicate_eer, [0.025, 0.975])
    return eers, val_threshold


BASELINE_COLUMNS = ["run_id", "epoch", "dataset", "label", "spoof_logit", "generator", "family", "source_codec",
                    "condition", "corpus"]


def run_baseline(root: Path, bootstrap_samples: int) -> dict:
    start = time.perf_counter()
    data = pq.read_table(f"{root}/predictions", columns=BASELINE_COLUMNS)
    columns = {name: data.column(name).to_numpy(zero_copy_only=False) for name in data.column_names}
    eers = {}
    for run in RUNS:
        in_run = columns["run_id"] == run
        val_threshold = None
        for dataset in DATASETS:
            found, val_threshold = baseline_dataset(
                columns, in_run & (columns["dataset"] == dataset), val_threshold, bootstrap_samples)
            eers.update({f"{run}|{dataset}|{grouping}|{value}": e for (grouping, value), e in found.items()})
    return {"seconds": time.perf_counter() - start, "eer": eers}


def run_baseline_sample(root: Path, units: list[tuple[str, int, str]], bootstrap_samples: int) -> dict:
    """The notebook loop over a sample of (run, epoch, dataset) units (val first in each):
    seconds of the metrics alone and of the bootstrap alone, per unit, and the bytes per row
    of the columns it reads (to extrapolate to the whole lake)."""
    import pyarrow.compute as pc

    runs = sorted({run for run, _, _ in units})
    data = pq.read_table(f"{root}/predictions", columns=BASELINE_COLUMNS, filters=pc.field("run_id").isin(runs),
                         partitioning=None)  # run_id is a column too (the shards sit in run_id=<run>/)
    keep = np.zeros(data.num_rows, bool)
    columns = {name: data.column(name).to_numpy(zero_copy_only=False) for name in data.column_names}
    masks = []
    for run, epoch, dataset in units:
        mask = (columns["run_id"] == run) & (columns["epoch"] == epoch) & (columns["dataset"] == dataset)
        masks.append(mask)
        keep |= mask
    timings = {}
    for samples, key in [(0, "metrics_seconds"), (bootstrap_samples, "with_bootstrap_seconds")]:
        start = time.perf_counter()
        val_threshold = None
        for mask in masks:
            _, val_threshold = baseline_dataset(columns, mask, val_threshold, samples)
        timings[key] = (time.perf_counter() - start) / len(units)
    bytes_per_row = sum(c.nbytes for c in data.columns) / data.num_rows
    return {**timings, "bytes_per_row": bytes_per_row, "rows": int(keep.sum())}


# -- the parent: one lake, two children, one table -------------------------------------------
def child(side: str, root: Path, bootstrap_samples: int, out: Path, *extra: str) -> tuple[dict, float]:
    """Run one side in a fresh interpreter; returns its result and its peak RSS in GiB."""
    process = subprocess.Popen([sys.executable, __file__, "--side", side, "--root", str(root),
                                "--bootstrap-samples", str(bootstrap_samples), "--out", str(out), *extra])
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{side} failed with exit code {process.returncode}")
    return json.loads(out.read_text()), usage.ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M rows instead of 10M")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--bootstrap-samples", type=int, default=10,
                        help="replicates per (run, dataset) on both sides (cost ~ B x rows)")
    parser.add_argument("--side", choices=["dfpipe", "baseline", "limited", "sample"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", help=argparse.SUPPRESS)  # side limited (bench_scale.py)
    parser.add_argument("--units", help=argparse.SUPPRESS)  # side sample: JSON [[run, epoch, dataset]...]
    args = parser.parse_args()
    if args.side:
        if args.side == "limited":
            result = run_dfpipe_limited(args.root, args.bootstrap_samples, args.memory_limit)
        elif args.side == "sample":
            units = [tuple(unit) for unit in json.loads(args.units)]
            result = run_baseline_sample(args.root, units, args.bootstrap_samples)
        else:
            run = run_dfpipe if args.side == "dfpipe" else run_baseline
            result = run(args.root, args.bootstrap_samples)
        args.out.write_text(json.dumps(result))
        return
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as scratch:
        root = Path(scratch) / "lake"
        make_lake(root, rows)
        ours, our_rss = child("dfpipe", root, args.bootstrap_samples, Path(scratch) / "dfpipe.json")
        theirs, their_rss = child("baseline", root, args.bootstrap_samples, Path(scratch) / "baseline.json")
    shared = set(ours["eer"]) & set(theirs["eer"])
    worst = max(abs(ours["eer"][k] - theirs["eer"][k]) for k in shared)
    print(f"\n{rows:,} predictions, {len(RUNS) * len(DATASETS)} (run, dataset) groups, "
          f"{len(shared)} EER groups compared (max |difference| {worst:.1e}), "
          f"{args.bootstrap_samples} bootstrap replicates, {ours['tables']} tables written by dfpipe\n")
    print("| implementation | seconds | peak RSS (GiB) | speed-up vs baseline |")
    print("|---|---:|---:|---:|")
    print(f"| numpy/scikit-learn loop over groups | {theirs['seconds']:.1f} | {their_rss:.2f} | 1.0x |")
    print(f"| dfpipe DuckDB SQL (all tables, incl. Parquet + metrics.duckdb) | {ours['seconds']:.1f} "
          f"| {our_rss:.2f} | {theirs['seconds'] / ours['seconds']:.1f}x |")
    if worst > 1e-12:
        raise SystemExit(f"EERs differ by {worst}")


if __name__ == "__main__":
    main()
