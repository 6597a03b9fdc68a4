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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RUNS = ["cnn_flac", "cnn_mp3", "aasist_flac", "aasist_corrupt_mp3"]
DATASETS = ["val", "test", "ood", "test_polished", "val_polished"]
GENERATORS = np.array(["espeak", "festival", "flite", "piper"])
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


def run_baseline(root: Path, bootstrap_samples: int) -> dict:
    start = time.perf_counter()
    data = pq.read_table(f"{root}/predictions", columns=[
        "run_id", "dataset", "label", "spoof_logit", "generator", "family", "source_codec", "condition", "corpus"])
    columns = {name: data.column(name).to_numpy(zero_copy_only=False) for name in data.column_names}
    eers = {}
    for run in RUNS:
        in_run = columns["run_id"] == run
        val_threshold = None
        for dataset in DATASETS:
            rows = in_run & (columns["dataset"] == dataset)
            cm = -columns["spoof_logit"][rows]
            y = columns["label"][rows] == "spoof"
            groups = {("overall", "all"): np.ones(y.size, bool)}
            for grouping in ["condition", "corpus", "source_codec"]:
                values = columns[grouping][rows]
                groups.update({(grouping, v): values == v for v in np.unique(values)})
            for grouping in ["generator", "family"]:  # that attack's spoofs + all bona fide
                values = columns[grouping][rows]
                groups.update({(grouping, v): (~y) | (values == v) for v in set(values[y])})
            for (grouping, value), mask in groups.items():
                metrics = _score_metrics(cm[mask], y[mask])
                eers[f"{run}|{dataset}|{grouping}|{value}"] = metrics["eer"]
                _threshold_metrics(y[mask], 1 / (1 + np.exp(cm[mask])) >= 0.5)  # P(spoof) >= 0.5
                if dataset == "val" and grouping == "overall":
                    val_threshold = metrics["eer_threshold"]
                _threshold_metrics(y[mask], cm[mask] <= val_threshold)
            rng = np.random.default_rng(0)
            replicate_accuracy, replicate_eer = [], []
            for _ in range(bootstrap_samples):
                pick = rng.integers(0, y.size, y.size)
                replicate_accuracy.append(np.mean((1 / (1 + np.exp(cm[pick])) >= 0.5) == y[pick]))
                replicate_eer.append(_score_metrics(cm[pick], y[pick])["eer"])
            np.quantile(replicate_accuracy, [0.025, 0.975]), np.quantile(replicate_eer, [0.025, 0.975])
    return {"seconds": time.perf_counter() - start, "eer": eers}


# -- the parent: one lake, two children, one table -------------------------------------------
def child(side: str, root: Path, bootstrap_samples: int, out: Path) -> tuple[dict, float]:
    """Run one side in a fresh interpreter; returns its result and its peak RSS in GiB."""
    process = subprocess.Popen([sys.executable, __file__, "--side", side, "--root", str(root),
                                "--bootstrap-samples", str(bootstrap_samples), "--out", str(out)])
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
    parser.add_argument("--side", choices=["dfpipe", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run = run_dfpipe if args.side == "dfpipe" else run_baseline
        args.out.write_text(json.dumps(run(args.root, args.bootstrap_samples)))
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
