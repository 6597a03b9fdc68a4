"""The recipe of the shipped default detector (``dfpipe train-default``).

Built-in corpus -> ingest -> raw features -> both mel detectors trained on its train split
(val = ``DefaultDetectorConfig.val_fraction`` of it; test and OOD scored every epoch) ->
each run's last epoch calibrated on val -> metric tables -> the run with the lower EER on
the built-in OOD split (generator families and speakers never trained on) is copied, with
its calibration and the model card's figures, into the target folder (``dfpipe/pretrained``
when the maintainer ships it).

A plain function, not a Prefect flow: the maintainer runs it once, in one process, and
every stage it calls resumes from the lake (a killed recipe re-run skips the finished
ingest, features and epochs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec

from dfpipe.calibration import CalibrationSummary, calibrate
from dfpipe.config import (
    VAL_DATASET,
    DefaultDetectorConfig,
    FeaturesConfig,
    IngestConfig,
    TrainConfig,
    demo_corpus_dir,
)
from dfpipe.corpora.demo import build_demo_corpus, cached_build
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake, write_bytes_atomic
from dfpipe.llr import calibration_uri, write_score_map
from dfpipe.metrics import compute_metrics
from dfpipe.predictions import checkpoint_uri
from dfpipe.stage_kit import Executor
from dfpipe.train import train

CORPUS = "demo"
_METRICS = ("eer", "min_dcf", "act_dcf_raw", "act_dcf", "cllr_raw", "cllr")


@dataclass(frozen=True)
class DefaultDetectorSummary:
    """What :func:`train_default_detector` shipped."""

    checkpoint: str
    calibration: str
    metrics: str
    chosen: dict[str, object]  # arch, run_id, epoch, ood_eer of the shipped run
    candidates: list[dict[str, object]]


def train_default_detector(into: str | os.PathLike[str], lake: str, config: DefaultDetectorConfig | None = None,
                           *, device: str = "auto", executor: Executor | None = None,
                           log: Callable[[str], None] = print) -> DefaultDetectorSummary:
    """Train both mel detectors on the built-in corpus and write the better one into ``into``.

    Args:
        into: the target folder (``dfpipe/pretrained`` to ship it); gets the checkpoint, its
            calibration and the model card's figures (names from ``config``).
        lake: the working lake (kept: its tables back the model card).
        config: corpus size, epochs, archs, selection split.
        device: training device.
        executor: builds the corpus and ingests with it (a process pool or Dask client).
    """
    config = config or DefaultDetectorConfig()
    corpus = demo_corpus_dir(config.corpus_size, config.corpus_seed)
    if cached_build(corpus, config.corpus_size, config.corpus_seed) is None:
        log(f"building the {config.corpus_size} built-in corpus into {corpus}")
        build_demo_corpus(corpus, config.corpus_size, config.corpus_seed, executor=executor)
    ingest(lake, CORPUS, corpus_entries("csv", corpus, IngestConfig()), IngestConfig(), executor=executor)
    run_features(lake, CORPUS, "raw", FeaturesConfig(), executor=executor)
    evals = {config.test_dataset: f"{CORPUS}@{config.test_dataset}",
             config.selection_dataset: f"{CORPUS}@{config.selection_dataset}"}
    runs: dict[str, tuple[str, CalibrationSummary]] = {}
    for arch in config.archs:
        recipe = TrainConfig(epochs=config.epochs_for(arch), lr=config.lr, batch_size=config.batch_size,
                             val_fraction=config.val_fraction, device=device,
                             eval_every=dict.fromkeys(evals, config.held_out_every))
        summary = train(recipe, lake, arch=arch, train_data=CORPUS, eval_data=evals, log=log)
        runs[summary.run_id] = (arch, calibrate(lake, summary.run_id, on=VAL_DATASET))
    compute_metrics(lake)
    figures = _figures(lake, runs)
    candidates = [{"arch": arch, "run_id": run_id, "epoch": fit.epoch,
                   "ood_eer": figures[run_id][config.selection_dataset]["overall"]["all"]["eer"]}
                  for run_id, (arch, fit) in runs.items()]
    chosen = min(candidates, key=lambda c: (c["ood_eer"] is None, c["ood_eer"], c["arch"]))
    log(f"shipping {chosen['arch']} (run {chosen['run_id']}, OOD EER {chosen['ood_eer']})")

    folder = Path(into)
    folder.mkdir(parents=True, exist_ok=True)
    fit = runs[chosen["run_id"]][1]
    checkpoint = str(folder / config.checkpoint_name)
    with fsspec.open(checkpoint_uri(Lake(lake), fit.run_id, fit.epoch), "rb") as source:
        payload = source.read()
    write_bytes_atomic(checkpoint, payload)
    calibration = write_score_map(fit.score_map, calibration_uri(checkpoint))
    card = {"recipe": asdict(config), "device": device, "chosen": chosen, "candidates": candidates,
            "training_wall_s": _training_wall_s(lake, list(runs)), "metrics": figures[chosen["run_id"]],
            "calibration": {"weights": fit.score_map.weights, "intercept": fit.score_map.intercept,
                            "prior": fit.score_map.prior, "fitted_on": fit.score_map.fitted_on}}
    metrics = str(folder / config.metrics_name)
    write_bytes_atomic(metrics, (json.dumps(card, indent=1, sort_keys=True) + "\n").encode())
    return DefaultDetectorSummary(checkpoint=checkpoint, calibration=calibration, metrics=metrics, chosen=chosen,
                                  candidates=candidates)


def _figures(lake: str, runs: dict[str, tuple[str, CalibrationSummary]]) -> dict[str, dict]:
    """``{run_id: {dataset: {grouping: {group_value: {metric: value}}}}}`` at the calibrated epoch,
    every dataset but the dev set, groupings overall, family, generator and language."""
    con = Lake(lake).connect()
    rows = con.execute(
        f"select run_id, dataset, grouping, group_value, n_bonafide, n_spoof, {', '.join(_METRICS)} "
        "from read_parquet(?) where fitted_on = ? and is_held_out and list_contains(?, run_id) "
        "and grouping in ('overall', 'family', 'generator', 'language') order by all",
        [f"{Lake(lake).root}/metrics/calibration_metrics.parquet", VAL_DATASET, list(runs)]).fetchall()
    out: dict[str, dict] = {}
    for run_id, dataset, grouping, value, n_bonafide, n_spoof, *numbers in rows:
        out.setdefault(run_id, {}).setdefault(dataset, {}).setdefault(grouping, {})[value] = {
            "n_bonafide": n_bonafide, "n_spoof": n_spoof, **dict(zip(_METRICS, numbers))}
    return out


def _training_wall_s(lake: str, run_ids: list[str]) -> dict[str, float]:
    rows = Lake(lake).connect().execute(
        "select run_id, sum(wall_s) from epochs where list_contains(?, run_id) group by run_id",
        [run_ids]).fetchall()
    return dict(rows)
