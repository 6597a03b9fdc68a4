"""Calibration and fusion of a lake's predictions into log-likelihood ratios.

- :func:`calibrate` (``dfpipe calibrate``) fits the affine map ``spoof LLR = slope *
  spoof_logit + intercept`` of one run's epoch on a dev set of its predictions
  (:func:`dfpipe.llr.fit_score_map`) and stores it twice: one ``calibrations`` row (what
  the metric SQL applies: ``calibrated_scores``, ``calibration_metrics``,
  ``bayes_threshold_metrics``) and ``epoch-NNN.calibration.json`` beside the checkpoint
  (what ``dfpipe detect`` applies, without a lake).
- :func:`fuse` (``dfpipe fuse``) fits a linear logistic fusion of several runs' logits on
  one dev set and writes the fused LLRs as a pseudo-run of ``predictions``
  (``run_id = fusion-<hash>``, epoch 0, every dataset all its runs scored), so every metric
  table reports it like a run; its weights are in ``LAKE/checkpoints/<fusion run>/fusion.json``.

Why the calibrated scores are not a column of ``predictions``: a calibration is fitted
after the predictions exist and may be refitted on another dev set; applying the stored
``calibrations`` rows at query time keeps ``predictions`` the untouched record of what the
model said, and a refit changes one small row instead of rewriting every prediction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dfpipe import checkpoints
from dfpipe.config import CalibrationConfig
from dfpipe.errors import DfpipeError
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.llr import ScoreMap, calibration_uri, fit_score_map, write_score_map
from dfpipe.predictions import checkpoint_uri, completed_epochs
from dfpipe.schemas import PREDICTIONS

_KEY = ["dataset", "clip_id", "condition"]
"""A clip's identity within one run's epoch: fusion joins the runs' predictions on it."""


@dataclass(frozen=True)
class CalibrationSummary:
    """What :func:`calibrate` fitted and where it went."""

    run_id: str
    epoch: int
    score_map: ScoreMap
    calibration_uri: str | None  # None: the run has no checkpoint (a pseudo-run)


@dataclass(frozen=True)
class FusionSummary:
    """What :func:`fuse` fitted and wrote."""

    run_id: str  # the pseudo-run
    score_map: ScoreMap
    datasets: dict[str, int]  # fused predictions written per dataset
    fusion_uri: str


def calibrate(lake_uri: str, run_id: str, *, on: str, epoch: int | None = None,
              config: CalibrationConfig | None = None) -> CalibrationSummary:
    """Fit the calibration of ``run_id``'s ``epoch`` on its predictions of dataset ``on``.

    Args:
        lake_uri: the lake.
        run_id: a run with predictions.
        on: the dev set (a ``predictions.dataset`` of that run and epoch, e.g. ``val``).
        epoch: default: the run's last committed epoch (the epoch ``dfpipe score`` uses).
        config: prior, regularisation, file names.

    Raises:
        DfpipeError: no such predictions, or a dev set without both classes.
    """
    config = config or CalibrationConfig()
    lake = Lake(lake_uri)
    epoch = epoch or completed_epochs(lake, run_id) or _only_epoch(lake, run_id)
    dev = _predictions(lake, run_id, epoch, dataset=on)
    score_map = fit_score_map(dev.column("spoof_logit").to_numpy(), _is_spoof(dev), fitted_on=on,
                              inputs=(f"{run_id}@{epoch}",), config=config)
    try:
        uri: str | None = write_score_map(score_map, calibration_uri(checkpoint_uri(lake, run_id, epoch), config))
    except DfpipeError:  # no committed epoch: an ASVspoof score file or a fusion, nothing to sit beside
        uri = None
    lake.write_shard("calibrations", pa.table({
        "run_id": [run_id], "epoch": pa.array([epoch], pa.int32()), "fitted_on": [on],
        "slope": [score_map.weights[0]], "intercept": [score_map.intercept], "prior": [score_map.prior],
        "n_bonafide": [score_map.n_bonafide], "n_spoof": [score_map.n_spoof], "calibration_uri": [uri],
    }), shard=f"e{epoch:03d}-{check_name('dataset', on)}", partition={"run_id": run_id}, mode="overwrite")
    return CalibrationSummary(run_id=run_id, epoch=epoch, score_map=score_map, calibration_uri=uri)


def fuse(lake_uri: str, run_ids: Sequence[str], *, on: str, epochs: Sequence[int] | None = None,
         config: CalibrationConfig | None = None) -> FusionSummary:
    """Fit a linear logistic fusion of ``run_ids`` on dataset ``on``; write it as a pseudo-run.

    Each run contributes its spoof logits at its epoch (default: its last committed one).
    Clips are matched on (dataset, clip_id, condition); the pseudo-run holds every dataset
    every run scored, with ``spoof_logit`` = the fused spoof LLR (so ``p_spoof`` in the
    metric SQL is the posterior at prior 0.5, and its act_dcf and cllr are already
    calibrated figures) and the clip columns of the first run's rows.

    Raises:
        DfpipeError: fewer than two (run, epoch) scores, an unknown run, or nothing in common
            to fuse.
    """
    config = config or CalibrationConfig()
    if epochs is not None and len(epochs) != len(run_ids):
        raise DfpipeError(f"{len(epochs)} epochs for {len(run_ids)} runs: give one per run or none")
    lake = Lake(lake_uri)
    chosen = [int(e) for e in epochs] if epochs is not None else \
        [completed_epochs(lake, run) or _only_epoch(lake, run) for run in run_ids]
    inputs = tuple(f"{run}@{epoch}" for run, epoch in zip(run_ids, chosen))
    if len(set(inputs)) < 2:  # one run at two epochs is a fusion too
        raise DfpipeError(f"a fusion needs two scores or more (runs or epochs), got {list(inputs)}")
    joined = _predictions(lake, run_ids[0], chosen[0]).rename_columns(
        ["score_0" if name == "spoof_logit" else name for name in PREDICTIONS.names])
    for i, (run, epoch) in enumerate(zip(run_ids[1:], chosen[1:]), start=1):
        other = _predictions(lake, run, epoch).select([*_KEY, "spoof_logit"]) \
            .rename_columns([*_KEY, f"score_{i}"])
        joined = joined.join(other, keys=_KEY, join_type="inner")
    scores = np.column_stack([joined.column(f"score_{i}").to_numpy() for i in range(len(run_ids))])
    dev = pc.equal(joined.column("dataset"), on).to_numpy(zero_copy_only=False)
    if not dev.any():
        raise DfpipeError(f"no clip of dataset {on!r} is scored by every run of {list(inputs)}")
    score_map = fit_score_map(scores[dev], _is_spoof(joined)[dev], fitted_on=on, inputs=inputs, config=config)
    fusion_id = config.fusion_prefix + stable_id(json.dumps([inputs, on, config.prior]), length=16)
    fused = joined.drop_columns([f"score_{i}" for i in range(len(run_ids))]) \
        .set_column(joined.schema.get_field_index("run_id"), "run_id", pa.array([fusion_id] * joined.num_rows)) \
        .set_column(joined.schema.get_field_index("epoch"), "epoch", pa.array([0] * joined.num_rows, pa.int32())) \
        .append_column("spoof_logit", pa.array(score_map.llr(scores), pa.float64()))
    written: dict[str, int] = {}
    for key in sorted(fused.group_by(["dataset", "condition"]).aggregate([]).to_pylist(), key=repr):
        dataset, condition = key["dataset"], key["condition"]
        rows = fused.filter((pc.field("dataset") == dataset) & (pc.field("condition") == condition))
        # shards named as dfpipe.predictions.write_predictions names them (epoch, dataset, condition)
        lake.write_shard("predictions", rows, shard=f"e000-{check_name('dataset', dataset)}-"
                         f"{stable_id(condition, length=8)}", partition={"run_id": fusion_id}, mode="overwrite")
        written[dataset] = written.get(dataset, 0) + rows.num_rows
    uri = write_score_map(score_map, f"{checkpoints.run_dir(lake.uri, fusion_id)}/fusion.json")
    return FusionSummary(run_id=fusion_id, score_map=score_map, datasets=written, fusion_uri=uri)


def _predictions(lake: Lake, run_id: str, epoch: int, dataset: str | None = None) -> pa.Table:
    """``predictions`` rows of one run's epoch (of one dataset), labelled bona fide or spoof.

    Raises:
        DfpipeError: there are none.
    """
    where = (pc.field("run_id") == run_id) & (pc.field("epoch") == epoch) \
        & pc.field("label").isin(["bonafide", "spoof"])
    if dataset is not None:
        where &= pc.field("dataset") == dataset
    rows = lake.read("predictions", columns=PREDICTIONS.names, filter=where)
    if rows.num_rows == 0:
        what = f"dataset {dataset!r} of " if dataset is not None else ""
        raise DfpipeError(f"no labelled predictions of {what}run {run_id} epoch {epoch} in {lake.uri} "
                          "(score it first: `dfpipe score`)")
    return rows


def _only_epoch(lake: Lake, run_id: str) -> int:
    """The latest epoch with predictions of a run without committed epochs (a pseudo-run)."""
    epochs = lake.read("predictions", columns=["epoch"], filter=pc.field("run_id") == run_id)
    if epochs.num_rows == 0:
        raise DfpipeError(f"run {run_id!r} has no predictions in {lake.uri}")
    return int(pc.max(epochs.column("epoch")).as_py())


def _is_spoof(rows: pa.Table) -> np.ndarray:
    return pc.equal(rows.column("label"), "spoof").to_numpy(zero_copy_only=False)
