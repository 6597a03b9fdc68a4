"""The diagnostics stage: every check of :mod:`dfpipe.diagnostics.landscape` on a lake checkpoint.

:func:`diagnose` loads a run's checkpoint, draws a balanced holdout and a train-split
sample (:func:`dfpipe.clipsets.load_balanced_clip_set`), runs the checks and writes the
``diagnostics_hessian``, ``diagnostics_linearity`` and ``diagnostics_summary`` tables (one
shard each, partition ``run_id``); :class:`DiagnoseSummary` is what it returns, read back
from the committed shards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn

from dfpipe import checkpoints
from dfpipe.clipsets import ClipSet, DataSpec, load_balanced_clip_set
from dfpipe.config import DiagnosticsConfig, FrontendConfig, MetricsConfig, predicts_spoof
from dfpipe.devices import select_device
from dfpipe.diagnostics.figure import plot_hessian_summary
from dfpipe.diagnostics.landscape import (
    HutchinsonTraces,
    LabelledBatch,
    LinearityRow,
    _batch_size,
    _clip,
    collect_outputs,
    count_trainable,
    davies_bouldin,
    expected_calibration_error,
    gradient_snr,
    hutchinson_trace,
    local_linearity,
    stored_trace_summary,
    summarize_traces,
    weight_norms,
)
from dfpipe.errors import DfpipeError
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.models import dataclass_from_dict

SPEC_TABLE = (
    ("Mean Hessian trace", "hessian_trace_mean"),
    ("Std (across inputs)", "hessian_trace_std"),
    ("Min / max trace", ("hessian_trace_min", "hessian_trace_max")),
    ("Median trace", "hessian_trace_median"),
    ("Trace ÷ parameters", "trace_per_param"),
    ("Mean loss (same run)", "holdout_loss"),
)
"""The study's Hessian table, row label -> metric name(s) in ``diagnostics_summary``."""

COMPLEMENTARY_TABLE = (
    ("Train loss (train split sample)", "train_loss"),
    ("Generalisation gap (holdout - train loss)", "generalization_gap"),
    ("Gradient SNR ||mean g||^2 / mean ||g - mean g||^2", "grad_snr"),
    ("Weight RMS (L2 / sqrt(params))", "weight_rms"),
    ("Davies-Bouldin (spoof vs bona fide embeddings)", "davies_bouldin"),
    ("Expected calibration error", "ece"),
    (f"Holdout accuracy (P(spoof) >= {MetricsConfig.threshold:g})", "holdout_accuracy"),
)
"""The complementary diagnostics, row label -> metric name (whole-model rows)."""


@dataclass(frozen=True)
class DiagnoseSummary:
    """What :func:`diagnose` wrote (or found already written).

    Attributes:
        metrics: whole-model ``diagnostics_summary`` rows, metric name -> value.
        band: curvature band of ``trace_per_param``.
        linearity: one row per perturbation scale.
        skipped: the shard was already committed and was read back, not recomputed.
        shard: the shard id of the three tables (partition ``run_id``).
    """

    run_id: str
    epoch: int
    holdout: str
    metrics: dict[str, float]
    band: str
    linearity: tuple[LinearityRow, ...]
    skipped: bool
    shard: str

    def table(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows: the study's Hessian table, then the complementary ones."""
        rows = []
        for label, key in SPEC_TABLE:
            if isinstance(key, tuple):
                rows.append((label, " / ".join(f"{self.metrics[k]:,.2f}" for k in key)))
            elif key == "trace_per_param":
                rows.append((label, f"{self.metrics[key]:.6f} ({self.band})"))
            elif key == "holdout_loss":
                rows.append((label, f"{self.metrics[key]:.4f}"))
            else:
                rows.append((label, f"{self.metrics[key]:,.2f}"))
        rows.extend((label, f"{self.metrics[key]:.4g}") for label, key in COMPLEMENTARY_TABLE)
        return rows


ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called as each phase advances."""


def diagnose(
    lake_uri: str,
    run_id: str,
    epoch: int | None = None,
    holdout: str | None = None,
    config: DiagnosticsConfig | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    threshold: float = MetricsConfig.threshold,
) -> DiagnoseSummary:
    """Run every diagnostic on one checkpoint of a run and write the three tables.

    Loads ``LAKE/checkpoints/<run>/epoch-NNN.pt`` (``weights_only``), draws a balanced
    holdout (``per_class`` spoof + ``per_class`` bona fide clips, seeded) and a train-split
    sample of the same size, then computes the Hessian trace (per clip), the generalisation
    gap, gradient SNR, weight norms, Davies–Bouldin, ECE and local linearity, one clip or
    one small batch at a time. Writes ``diagnostics_hessian``, ``diagnostics_linearity``
    and, last (the commit mark), ``diagnostics_summary``: one shard each, partition
    ``run_id``; a re-run with the same inputs reads the committed shard back.

    Args:
        lake_uri: the lake (folder or fsspec URL).
        run_id: a run in ``runs``.
        epoch: 1-based epoch; ``None`` = the run's last committed epoch.
        holdout: ``CORPUS[:CONDITION][@SPLIT]`` (condition default: the run's training
            condition; split default: every clip); ``None`` = the run's eval set named
            ``test``, else its first eval set by name.
        config: :class:`~dfpipe.config.DiagnosticsConfig` (per_class 50, draws 30, ...).
        overwrite: recompute even when the shard is committed.
        progress: optional ``progress(phase, done, total)`` callback (the CLI's bar).
        threshold: the decision rule's P(spoof) threshold (:func:`dfpipe.config.predicts_spoof`)
            of ``holdout_accuracy`` and the ECE's predicted class; default
            :attr:`~dfpipe.config.MetricsConfig.threshold`.

    Returns:
        A :class:`DiagnoseSummary`.

    Raises:
        DfpipeError: unknown run or epoch, no holdout, a class with no clips, unreadable
            checkpoint (each message says what to run first).
    """
    config = config or DiagnosticsConfig()
    lake = Lake(lake_uri)
    run = _run_record(lake, check_name("run", run_id))
    epoch, checkpoint_uri = _checkpoint_of(lake, run_id, epoch)
    holdout_spec = DataSpec.parse(holdout or _default_holdout(run), default_condition=run["train_condition"],
                                  default_split=None)
    train_spec = DataSpec.parse(run["train"], default_condition=run["train_condition"], default_split=None)
    identity = {k: v for k, v in dataclasses.asdict(config).items() if k != "device"}
    if threshold != MetricsConfig.threshold:  # another result; the default keeps the ids it always had
        identity["threshold"] = threshold
    shard = stable_id("diagnostics", run_id, str(epoch), str(holdout_spec), repr(sorted(identity.items())),
                      length=16)
    partition = {"run_id": run_id}
    if not overwrite and lake.has_shard("diagnostics_summary", shard, partition):
        return _read_back(lake, shard, partition, run_id, epoch, str(holdout_spec))

    report = progress or (lambda phase, done, total: None)
    device = select_device(config.device, amp=False).device  # before _full_precision: it turns TF32 on
    with _full_precision():
        rows = _compute(lake, checkpoint_uri, device, holdout_spec, train_spec, config, threshold, report)
    key = {"diagnostics_id": shard, "run_id": run_id, "epoch": epoch, "holdout": str(holdout_spec),
           "seed": config.seed}
    for table, data in (("diagnostics_hessian", rows.hessian), ("diagnostics_linearity", rows.linearity),
                        ("diagnostics_summary", rows.summary)):
        lake.write_shard(table, _with_key(data, key), shard=shard, partition=partition, mode="overwrite")
    return _read_back(lake, shard, partition, run_id, epoch, str(holdout_spec), skipped=False)


@dataclass(frozen=True)
class _Rows:
    hessian: dict[str, list[Any]]
    linearity: dict[str, list[Any]]
    summary: dict[str, list[Any]]


def _compute(lake: Lake, checkpoint_uri: str, device: torch.device, holdout_spec: DataSpec,
             train_spec: DataSpec, config: DiagnosticsConfig, threshold: float, report: ProgressFn) -> _Rows:
    """Load the checkpoint and the clip samples, run every diagnostic, return table columns."""
    started = time.perf_counter()
    model, checkpoint = checkpoints.load_model(checkpoint_uri, device)
    frontend = dataclass_from_dict(FrontendConfig, checkpoint["frontend_config"])
    loss_fn = nn.BCEWithLogitsLoss()
    holdout_set = load_balanced_clip_set(lake, holdout_spec, model.needs, frontend, config.per_class, config.seed)
    train_set = load_balanced_clip_set(lake, train_spec, model.needs, frontend, config.per_class, config.seed)
    holdout = _batches(holdout_set, config.batch_size)
    train = _batches(train_set, config.batch_size)
    n = len(holdout_set)

    generator = torch.Generator().manual_seed(config.seed)
    parts = []
    for inputs, labels in holdout:
        for i in range(_batch_size(labels)):  # one clip per call: the bar moves per clip
            parts.append(hutchinson_trace(model, loss_fn, _clip(inputs, i), labels[i : i + 1], config.draws,
                                          generator))
            report("hessian trace", len(parts), n)
    traces = HutchinsonTraces(samples=torch.cat([p.samples for p in parts]),
                              losses=torch.cat([p.losses for p in parts]))
    trace = summarize_traces(traces, count_trainable(model), config.bands)
    report("outputs", 0, 3)
    held = collect_outputs(model, loss_fn, holdout)
    trained = collect_outputs(model, loss_fn, train)
    report("outputs", 1, 3)
    snr = gradient_snr(model, loss_fn, holdout)
    report("outputs", 2, 3)
    p_spoof = torch.sigmoid(held.logits)
    ece = expected_calibration_error(p_spoof, held.labels, config.ece_bins, threshold)
    accuracy = float((predicts_spoof(held.logits, threshold).double() == held.labels).double().mean())
    db = davies_bouldin(held.embeddings, held.labels)
    report("outputs", 3, 3)
    report("local linearity", 0, 1)
    linearity = local_linearity(model, loss_fn, holdout, config.scales, config.directions,
                                torch.Generator().manual_seed(config.seed))
    report("local linearity", 1, 1)

    labels = holdout_set.meta.column("label").to_pylist()
    summary: list[tuple[str, str | None, float, str | None]] = [
        ("hessian_trace_mean", None, trace.mean, None),
        ("hessian_trace_std", None, trace.std, "sample std across clips (ddof 1)"),
        ("hessian_trace_min", None, trace.min, None),
        ("hessian_trace_max", None, trace.max, None),
        ("hessian_trace_median", None, trace.median, None),
        ("trace_per_param", None, trace.trace_per_param, trace.band),
        ("hessian_draws", None, float(config.draws), "Rademacher draws per clip"),
        ("trainable_params", None, float(trace.trainable_params), None),
        ("clips_spoof", None, float(labels.count("spoof")), None),
        ("clips_bonafide", None, float(labels.count("bonafide")), None),
        ("holdout_loss", None, held.mean_loss, "mean BCE over the holdout clips"),
        ("train_loss", None, trained.mean_loss, f"mean BCE over {len(train_set)} clips of {train_spec}"),
        ("generalization_gap", None, held.mean_loss - trained.mean_loss, "holdout_loss - train_loss"),
        ("grad_snr", None, snr.snr, f"noise floor ~1/n = {1 / snr.clips:.3g}"),
        ("grad_signal", None, snr.signal, "||mean per-clip gradient||^2"),
        ("grad_noise", None, snr.noise, "mean ||per-clip gradient - mean||^2"),
        ("davies_bouldin", None, db, "penultimate embeddings, spoof vs bona fide"),
        ("ece", None, ece, f"{config.ece_bins} equal-width bins, predicted-class confidence"),
        ("holdout_accuracy", None, accuracy, f"P(spoof) >= {threshold:g}"),
    ]
    for norm in weight_norms(model):
        layer = None if norm.name == "total" else norm.name
        summary += [("weight_l2", layer, norm.l2, None), ("weight_rms", layer, norm.rms, None),
                    ("weight_params", layer, float(norm.params), None)]
    summary.append(("wall_s", None, time.perf_counter() - started, str(device)))

    return _Rows(
        hessian={
            "clip_id": holdout_set.meta.column("clip_id").to_pylist(),
            "corpus": holdout_set.meta.column("corpus").to_pylist(),
            "condition": holdout_set.meta.column("condition").to_pylist(),
            "label": labels,
            "loss": traces.losses.tolist(),
            "trace": traces.traces.tolist(),
            "trace_std_error": [None if math.isnan(v) else v for v in traces.std_errors.tolist()],
            "draws": [config.draws] * n,
        },
        linearity={f.name: [getattr(row, f.name) for row in linearity]
                   for f in dataclasses.fields(LinearityRow)},
        summary={name: [row[i] for row in summary]
                 for i, name in enumerate(("metric", "layer", "value", "detail"))},
    )


def _batches(clip_set: ClipSet, batch_size: int) -> list[LabelledBatch]:
    return [clip_set.batch(slice(i, i + batch_size)) for i in range(0, len(clip_set), batch_size)]


def _run_record(lake: Lake, run_id: str) -> dict[str, Any]:
    """The run's ``runs`` row plus its training and eval specs from ``config_json``."""
    rows = lake.read("runs", filter=pc.field("run_id") == run_id).to_pylist()
    if not rows:
        raise DfpipeError(f"run {run_id!r} is not in {lake.uri} (see `dfpipe query \"select run_id, arch "
                          "from runs\"`, or train one with `dfpipe train`)")
    config = json.loads(rows[0]["config_json"])
    return {**rows[0], "train": config.get("train", rows[0]["train_corpus"]), "eval": config.get("eval", {})}


def _checkpoint_of(lake: Lake, run_id: str, epoch: int | None) -> tuple[int, str]:
    epochs = {row["epoch"]: row["checkpoint_uri"] for row in lake.read(
        "epochs", columns=["epoch", "checkpoint_uri"], filter=pc.field("run_id") == run_id).to_pylist()}
    if not epochs:
        raise DfpipeError(f"run {run_id!r} has no committed epoch yet (let `dfpipe train` finish one)")
    chosen = max(epochs) if epoch is None else epoch
    if chosen not in epochs:
        raise DfpipeError(f"run {run_id!r} has no epoch {epoch}; committed epochs: {sorted(epochs)}")
    return chosen, epochs[chosen]


def _default_holdout(run: dict[str, Any]) -> str:
    evals = run["eval"]
    if not evals:
        raise DfpipeError(f"run {run['run_id']!r} has no eval set: name a holdout with "
                          "--holdout CORPUS[:CONDITION][@SPLIT]")
    return evals["test"] if "test" in evals else evals[min(evals)]


def _with_key(columns: dict[str, list[Any]], key: dict[str, Any]) -> pa.Table:
    rows = len(next(iter(columns.values())))
    return pa.table({**{name: [value] * rows for name, value in key.items()}, **columns})


def _read_back(lake: Lake, shard: str, partition: dict[str, str], run_id: str, epoch: int, holdout: str,
               skipped: bool = True) -> DiagnoseSummary:
    """Build the summary from the committed shards (one code path for new and old results)."""
    def read(table: str) -> list[dict[str, Any]]:
        with lake.fs.open(lake.shard_path(table, shard, partition), "rb") as source:
            return pq.read_table(source).to_pylist()

    summary = read("diagnostics_summary")
    metrics = {row["metric"]: row["value"] for row in summary if row["layer"] is None}
    band = next(row["detail"] for row in summary if row["metric"] == "trace_per_param")
    fields = [f.name for f in dataclasses.fields(LinearityRow)]
    linearity = tuple(LinearityRow(**{name: row[name] for name in fields}) for row in read("diagnostics_linearity"))
    return DiagnoseSummary(run_id=run_id, epoch=epoch, holdout=holdout, metrics=metrics, band=band,
                           linearity=linearity, skipped=skipped, shard=shard)


@contextlib.contextmanager
def _full_precision() -> Iterator[None]:
    """TF32 off for the block (restored after): Hessian-vector products and the float64
    linearity check need full float32/float64 matmuls, not TF32's 10-bit mantissa."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def hessian_figure(lake_uri: str, result: DiagnoseSummary, path: str) -> str:
    """Draw :func:`plot_hessian_summary` for a :func:`diagnose` result, from its committed rows."""
    lake = Lake(lake_uri)
    with lake.fs.open(lake.shard_path("diagnostics_hessian", result.shard, {"run_id": result.run_id}), "rb") as f:
        traces = pq.read_table(f, columns=["trace"]).column("trace").to_numpy()
    return plot_hessian_summary(stored_trace_summary(result.metrics, result.band, len(traces)), traces, path)
