"""Predictions I/O: a detector's logits over a clip set, and the ``predictions`` rows they make.

Training writes predictions every epoch (``val`` and each eval set) and ``dfpipe score``
writes them for any corpus with a run's checkpoint; both go through this module, so a
``predictions`` row means the same thing whoever wrote it:

- :func:`predict`: spoof logits of every clip of a :class:`~dfpipe.clipsets.ClipSet`;
- :func:`spoof_logits`: one batch's logits as they are stored (float32 head);
- :func:`write_predictions`: one ``predictions`` shard of (run, epoch, dataset);
- :func:`completed_epochs` and :func:`checkpoint_uri`: a run's committed epochs
  (``epochs`` rows, the commit mark of an epoch) and their checkpoints.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from dfpipe.clipsets import ClipSet
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
def predict(model: Detector, clip_set: ClipSet, ctx: DeviceContext, batch_size: int) -> np.ndarray:
    """Spoof logits of every clip of ``clip_set`` (eval mode, :func:`spoof_logits`), ``(N,)`` float64."""
    model.eval()
    out = []
    for start in range(0, len(clip_set), batch_size):
        batch, _ = clip_set.batch(slice(start, start + batch_size))
        out.append(spoof_logits(model, batch.to(ctx.device), ctx).cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def write_predictions(lake: Lake, clip_set: ClipSet, logits: np.ndarray, *, run_id: str, epoch: int,
                      dataset: str) -> None:
    """Write one ``predictions`` shard: every clip of ``clip_set`` for (run, epoch, dataset)."""
    rows = clip_set.meta
    n = rows.num_rows
    table = rows.append_column("run_id", pa.array([run_id] * n, pa.string())) \
        .append_column("epoch", pa.array([epoch] * n, pa.int32())) \
        .append_column("dataset", pa.array([dataset] * n, pa.string())) \
        .append_column("spoof_logit", pa.array(logits, pa.float64()))
    # The condition is part of the shard name so one dataset name under two conditions
    # (`dfpipe score --condition`) never overwrites the other.
    condition = rows.column("condition")[0].as_py() if n else ""
    shard = f"e{epoch:03d}-{check_name('dataset', dataset)}-{stable_id(condition, length=8)}"
    lake.write_shard("predictions", table, shard=shard, partition={"run_id": run_id}, mode="overwrite")


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
