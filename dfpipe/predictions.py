"""Predictions I/O: a detector's logits over a streamed clip set, and the ``predictions`` rows they make.

Training writes predictions every epoch (``val`` and each eval set) and ``dfpipe score``
writes them for any corpus with a run's checkpoint; both go through this module, so a
``predictions`` row means the same thing whoever wrote it:

- :func:`predict`: spoof logits of each streamed batch (:func:`dfpipe.clipsets.stream_batches`);
- :func:`spoof_logits`: one batch's logits as they are stored (float32 head);
- :func:`write_predictions`: the ``predictions`` rows of (run, epoch, dataset), batch by batch,
  committed shard by shard;
- :func:`completed_epochs` and :func:`checkpoint_uri`: a run's committed epochs
  (``epochs`` rows, the commit mark of an epoch) and their checkpoints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from dfpipe.clipsets import ClipBatch, ClipIndex
from dfpipe.devices import DeviceContext
from dfpipe.errors import DfpipeError
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.models import Batch, Detector


def spoof_logits(model: Detector, batch: Batch, ctx: DeviceContext) -> torch.Tensor:
    """``model(batch)`` as it is stored: the body under ``ctx.autocast()``, the head in float32.

    ``forward = head(embed(batch))`` (:class:`~dfpipe.models.Detector`). The body holds all
    the compute, so it keeps the mixed-precision speed; the head (one Linear) runs outside
    autocast on the float32-cast embedding, so the logit has float32's 24 significant bits
    instead of float16's 11: float16 logits tie far more often, and ties move the EER of a
    large eval set. Costs one small float32 matmul per batch. Returns ``(B,)`` float32.
    """
    with ctx.autocast():
        embedding = model.embed(batch)
    return model.head(embedding.float()).squeeze(-1)


@torch.no_grad()
def predict(model: Detector, batches: Iterable[ClipBatch], ctx: DeviceContext
            ) -> Iterator[tuple[ClipBatch, np.ndarray]]:
    """Each batch with its spoof logits (eval mode, :func:`spoof_logits`), ``(B,)`` float64."""
    model.eval()
    for clips in batches:
        yield clips, spoof_logits(model, clips.inputs.to(ctx.device), ctx).cpu().double().numpy()


def write_predictions(lake: Lake, index: ClipIndex, scored: Iterable[tuple[ClipBatch, np.ndarray]], *,
                      run_id: str, epoch: int, dataset: str, rows_per_shard: int) -> np.ndarray:
    """Write the ``predictions`` rows of (run, epoch, dataset) for the clips of ``index``, from
    the batches ``scored`` (:func:`predict`) as they come: a shard is committed every
    ``rows_per_shard`` rows or more, so memory holds one shard's rows, never the whole set.
    Shards of an earlier write of the same (run, epoch, dataset, condition) that this one did not
    replace are removed (a rerun of the epoch over fewer clips leaves no stale rows).

    Returns:
        ``(len(index),)`` float64 logits in index order; NaN for a clip that was not scored
        (its audio did not decode).
    """
    # The condition is part of the shard name so one dataset name under two conditions
    # (`dfpipe score --condition`) never overwrites the other.
    base = f"e{epoch:03d}-{check_name('dataset', dataset)}-{stable_id(index.spec.condition, length=8)}"
    partition = {"run_id": run_id}
    logits = np.full(len(index), np.nan)
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    written: set[str] = set()

    def commit() -> None:
        positions = np.concatenate([p for p, _ in pending])
        values = np.concatenate([v for _, v in pending])
        n = len(positions)
        table = index.meta.take(pa.array(positions)) \
            .append_column("run_id", pa.array([run_id] * n, pa.string())) \
            .append_column("epoch", pa.array([epoch] * n, pa.int32())) \
            .append_column("dataset", pa.array([dataset] * n, pa.string())) \
            .append_column("spoof_logit", pa.array(values, pa.float64()))
        shard = f"{base}-p{len(written):05d}"
        lake.write_shard("predictions", table, shard=shard, partition=partition, mode="overwrite")
        written.add(lake.shard_path("predictions", shard, partition))
        pending.clear()

    for clips, values in scored:
        logits[clips.positions] = values
        pending.append((clips.positions, values))
        if sum(len(p) for p, _ in pending) >= rows_per_shard:
            commit()
    if pending:
        commit()
    mine = re.compile(rf"part-{re.escape(base)}(-p\d{{5}})?\.parquet")
    for path in lake.files("predictions", partition):
        if mine.fullmatch(path.rsplit("/", 1)[-1]) and path not in written:
            lake.fs.rm(path)
    return logits


def completed_epochs(lake: Lake, run_id: str) -> int:
    """The last epoch of ``run_id`` committed in ``epochs`` (0 when none)."""
    epochs = lake.read("epochs", columns=["epoch"], filter=pc.field("run_id") == run_id)
    return int(pc.max(epochs.column("epoch")).as_py() or 0) if epochs.num_rows else 0


def checkpoint_uri(lake: Lake, run_id: str, epoch: int) -> str:
    """The model checkpoint of a committed epoch of ``run_id``.

    Raises:
        DfpipeError: the epoch is not committed.
    """
    rows = lake.read("epochs", columns=["checkpoint_uri"],
                     filter=(pc.field("run_id") == run_id) & (pc.field("epoch") == epoch))
    if rows.num_rows == 0:
        raise DfpipeError(f"run {run_id} has no committed epoch {epoch} (train it first)")
    return rows.column("checkpoint_uri")[0].as_py()
