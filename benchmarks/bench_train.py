"""Training throughput per mel architecture on the CPU: dfpipe's trainer vs a bare loop.

    .venv/bin/python benchmarks/bench_train.py [--quick]

The trainer (:func:`dfpipe.train.train`) reads the small demo corpus' features from a lake
and runs its epochs (shuffle, batch gathering, AMP/GradScaler no-ops, grad clipping, loss
bookkeeping); its clips/s come from ``epochs.wall_s`` (training time of the epoch) and,
end to end, from the whole call (data loading, val predictions, checkpoints included).
The baseline is a bare forward/backward/step loop of the same model, same batch size and
optimiser, over the same clips pre-loaded as float32 tensors (:func:`load_in_memory`: the
whole-set loader dfpipe's trainer used before it streamed; ``bench_scale.py train`` compares
the two loaders). Target: trainer epoch loop
>= 0.85x the bare loop. Both are measured in this one process run, so the ratio holds on a
busy machine even when the absolute numbers do not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pyarrow.compute as pc

from dfpipe.config import FeaturesConfig, FrontendConfig, IngestConfig, TrainConfig
from dfpipe.corpora.demo import build_demo_corpus
from dfpipe.feature_table import iter_feature_batches
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake
from dfpipe.models import Batch, build_model
from dfpipe.train import train


def demo_lake(root: str) -> str:
    cache = os.path.join(os.environ.get("DFPIPE_CACHE", os.path.expanduser("~/.cache/dfpipe")), "demo-small-seed0")
    build_demo_corpus(cache, "small", 0)
    config = IngestConfig()
    ingest(root, "demo", corpus_entries("csv", cache, config), config)
    run_features(root, "demo", "raw", FeaturesConfig())
    return root


def load_in_memory(lake: str, corpus: str, split: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The clips of ``corpus@split`` in memory, as the trainer held them before streaming:
    ``(mel (N, 2, 128, 301) float16, labels (N,) float32, clip ids)`` in ``clip_id`` order,
    filled from one pass over the features in Arrow batches."""
    where = pc.field("corpus") == corpus
    if split is not None:
        where &= pc.field("split") == split
    meta = Lake(lake).read("clips", columns=["clip_id", "label"], filter=where).sort_by("clip_id")
    ids = meta.column("clip_id").to_pylist()
    position = {cid: i for i, cid in enumerate(ids)}
    mel = np.zeros((len(ids), *FrontendConfig().mel_shape), np.float16)
    seen = np.zeros(len(ids), bool)
    for batch_ids, batch_mel, _ in iter_feature_batches(lake, corpus, "raw"):
        rows = np.array([position.get(cid, -1) for cid in batch_ids])
        keep = rows >= 0
        mel[rows[keep]] = batch_mel.numpy()[keep]
        seen[rows[keep]] = True
    labels = pc.equal(meta.column("label"), "spoof").to_numpy(zero_copy_only=False).astype(np.float32)
    return mel[seen], labels[seen], [cid for cid, ok in zip(ids, seen) if ok]


def bare_loop(arch: str, lake: str, batch_size: int, epochs: int, cfg: TrainConfig) -> float:
    """clips/s of forward/backward/step over pre-loaded float32 tensors."""
    mel, labels, _ = load_in_memory(lake, "demo", cfg.default_train_split)
    mel, labels = torch.from_numpy(mel.astype("float32")), torch.from_numpy(labels)
    torch.manual_seed(0)
    model = build_model(arch).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    started = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, len(mel), batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(Batch(mel=mel[start:start + batch_size])), labels[start:start + batch_size])
            loss.backward()
            optimizer.step()
    return len(mel) * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch per measurement instead of 3")
    args = parser.parse_args()
    epochs = 1 if args.quick else 3
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lake = demo_lake(os.path.join(tmp, "lake"))
        for arch in ("mel-cnn", "mel-multiscale"):
            cfg = TrainConfig(epochs=epochs, device="cpu")
            batch = cfg.batch_size_for(arch)
            bare = bare_loop(arch, lake, batch, epochs, cfg)
            started = time.perf_counter()
            summary = train(cfg, lake, arch=arch, train_data="demo", log=lambda line: None)
            total = time.perf_counter() - started
            wall = Lake(lake).connect().execute(
                "select sum(wall_s), sum(n_train) from epochs where run_id = ?", [summary.run_id]).fetchone()
            loop = wall[1] / wall[0]
            rows.append((arch, batch, summary.n_train, bare, loop, summary.n_train * epochs / total))
    print(f"\nTraining throughput on {os.cpu_count()} CPU core(s), {epochs} epoch(s) of the small demo corpus\n")
    print("| arch | batch | train clips | bare loop clips/s | trainer epoch clips/s | ratio (target >= 0.85) "
          "| trainer end-to-end clips/s |")
    print("|---|---|---|---|---|---|---|")
    for arch, batch, n, bare, loop, e2e in rows:
        print(f"| {arch} | {batch} | {n} | {bare:.1f} | {loop:.1f} | {loop / bare:.2f} | {e2e:.1f} |")


if __name__ == "__main__":
    main()
