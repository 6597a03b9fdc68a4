"""Scoring the lake: a run's checkpoint over a data spec of the lake -> ``predictions`` rows.

:func:`score` writes them as training writes them every epoch
(:func:`dfpipe.predictions.write_predictions`), under a dataset name you choose: the clips are
streamed from the lake batch by batch and the rows committed shard by shard
(:class:`~dfpipe.config.StreamConfig`), so memory does not grow with the eval set.
``dfpipe score`` runs it in the flow :func:`dfpipe.flows.score.score_flow`. Scoring audio
files outside the lake (``dfpipe score-archive``) is :mod:`dfpipe.archive_scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from dfpipe import checkpoints
from dfpipe.clipsets import DataSpec, read_clip_index, stream_batches
from dfpipe.config import FrontendConfig, ScoreConfig
from dfpipe.devices import select_device
from dfpipe.errors import DfpipeError
from dfpipe.lake import Lake, check_name
from dfpipe.models import dataclass_from_dict
from dfpipe.predictions import checkpoint_uri, completed_epochs, predict, write_predictions


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score` wrote: ``rows`` predictions of (run, epoch, dataset)."""

    run_id: str
    epoch: int
    dataset: str
    data: str
    rows: int


def score(lake_uri: str, run_id: str, data: DataSpec | str, *, dataset: str | None = None,
          epoch: int | None = None, config: ScoreConfig | None = None) -> ScoreSummary:
    """Score the clips of ``data`` with a run's checkpoint into ``predictions``.

    Args:
        lake_uri: the lake.
        run_id: a run of ``runs``.
        data: a :class:`~dfpipe.clipsets.DataSpec`; text ``CORPUS[:CONDITION][@SPLIT]`` is
            parsed by :func:`run_data_spec` (condition default: the run's training condition,
            split default: every clip).
        dataset: the ``predictions.dataset`` name (default: the corpus name).
        epoch: which epoch's checkpoint; ``None`` = the last committed one (the study's
            lesson: out-of-distribution results keep improving after validation plateaus,
            so dfpipe never picks an epoch by validation loss for you).
        config: batch size, device and streaming (reader threads, rows per shard).

    Raises:
        DfpipeError: unknown run or epoch, missing data.
    """
    config = config or ScoreConfig()
    lake = Lake(lake_uri)
    spec = run_data_spec(lake, run_id, data)
    dataset = check_name("dataset", dataset or spec.corpus)
    epoch = epoch or completed_epochs(lake, run_id)
    uri = checkpoint_uri(lake, run_id, epoch)
    ctx = select_device(config.device, amp=config.amp, amp_dtypes=config.amp_dtypes,
                        cpu_threads=config.cpu_threads)
    model, checkpoint = checkpoints.load_model(uri, ctx.device)
    frontend = dataclass_from_dict(FrontendConfig, checkpoint["frontend_config"])
    index = read_clip_index(lake, spec, model.needs, frontend)
    batches = stream_batches(lake, index, config.batch_size, frontend, config.stream)
    logits = write_predictions(lake, index, predict(model, batches, ctx), run_id=run_id, epoch=epoch,
                               dataset=dataset, rows_per_shard=config.stream.predictions_per_shard)
    return ScoreSummary(run_id=run_id, epoch=epoch, dataset=dataset, data=str(spec),
                        rows=int((~np.isnan(logits)).sum()))


def run_data_spec(lake: Lake | str, run_id: str, data: DataSpec | str) -> DataSpec:
    """``data`` as a :class:`~dfpipe.clipsets.DataSpec` for scoring with ``run_id``: a spec is
    kept as it is; text takes the run's training condition and every split by default.

    Raises:
        DfpipeError: ``run_id`` is not in the lake; ConfigError: a bad spec.
    """
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    runs = lake.read("runs", columns=["train_condition"], filter=pc.field("run_id") == run_id)
    if runs.num_rows == 0:
        raise DfpipeError(f"run {run_id!r} is not in {lake.uri} (see `dfpipe query \"select * from runs\"`)")
    return DataSpec.coerce(data, default_condition=runs.column("train_condition")[0].as_py(), default_split=None)
