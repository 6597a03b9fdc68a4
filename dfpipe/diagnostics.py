"""Loss-landscape and representation diagnostics of a trained checkpoint.

The study behind dfpipe (SPEC.md, "Loss-landscape diagnostics") asks whether a trained
detector sits in a flat or sharp minimum, and backs the single curvature number with
complementary checks. Each check is a plain function over a generic ``torch.nn.Module``
(``forward(inputs)`` gives one spoof logit per clip, ``embed(inputs)`` the penultimate
embedding), a loss (``BCEWithLogitsLoss``: mean over the clips of a batch) and batches of
``(inputs, labels)`` (labels 1 = spoof, 0 = bona fide; ``inputs`` a tensor, or a dict, tuple
or dataclass such as :class:`dfpipe.models.Batch` of tensors whose first dimension is the clip):

=============================  ============================================================
function                       what it measures
=============================  ============================================================
:func:`hutchinson_trace`       tr(H) of each clip's loss by Hutchinson's estimator
:func:`summarize_traces`       mean/std/min/max/median, trace ÷ parameters and its band
:func:`collect_outputs`        logits, labels, embeddings and mean loss of a clip set
:func:`gradient_snr`           consistency of per-clip gradients
:func:`weight_norms`           L2 and RMS weight per parameter tensor and in total
:func:`davies_bouldin`         cluster separation of embeddings (spoof vs bona fide)
:func:`expected_calibration_error`  ECE of the predicted-class confidence (Guo et al.)
:func:`local_linearity`        first-order Taylor error of the loss along random directions
:func:`plot_hessian_summary`   the study's figure: band gauge + per-clip trace axis
:func:`diagnose`               the stage: all of the above on a lake checkpoint
=============================  ============================================================

Every function works on *trainable* parameters only (``requires_grad``), in evaluation
mode (dropout off, batch-norm running statistics), one clip or one small batch at a time,
so memory stays bounded by one clip's graph plus a few parameter-sized vectors. The
full Hessian is never formed.

The stage :func:`diagnose` runs all of them on a checkpoint from the lake and writes the
``diagnostics_hessian``, ``diagnostics_summary`` and ``diagnostics_linearity`` tables.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn

from dfpipe import checkpoints
from dfpipe.clipsets import ClipSet, DataSpec, load_clip_set
from dfpipe.config import DiagnosticsConfig, FrontendConfig
from dfpipe.devices import select_device
from dfpipe.errors import DfpipeError
from dfpipe.features import iter_feature_batches
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.models import dataclass_from_dict

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(logits, targets) -> scalar``: mean over the clips (``BCEWithLogitsLoss()``)."""
LabelledBatch = tuple[Any, torch.Tensor]
"""``(inputs, labels)``: ``inputs`` a tensor, a dict, tuple or dataclass (``dfpipe.models.Batch``)
of tensors with clips first;
``labels`` shape ``(clips,)``, 1 = spoof, 0 = bona fide."""


# -- small tensor helpers -----------------------------------------------------------------
def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimiser updates (``requires_grad``), in ``parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars: the denominator of trace ÷ parameters."""
    return sum(p.numel() for p in trainable_parameters(model))


def _map_tensors(inputs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(inputs, torch.Tensor):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return {k: _map_tensors(v, fn) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_map_tensors(v, fn) for v in inputs)
    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):  # dfpipe.models.Batch
        return dataclasses.replace(inputs, **{f.name: _map_tensors(getattr(inputs, f.name), fn)
                                              for f in dataclasses.fields(inputs) if f.init})
    return inputs


def _clip(inputs: Any, index: int) -> Any:
    """Clip ``index`` of a batch, keeping the batch dimension (size 1)."""
    return _map_tensors(inputs, lambda t: t[index : index + 1])


def _to_model(inputs: Any, model: nn.Module) -> Any:
    """Move tensors to the model's device; floating tensors also to its dtype."""
    reference = next(model.parameters())

    def move(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.to(device=reference.device, dtype=reference.dtype)
        return t.to(reference.device)

    return _map_tensors(inputs, move)


def _batch_size(labels: torch.Tensor) -> int:
    return int(labels.reshape(-1).shape[0])


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore every module's flag after.

    Diagnostics describe the deterministic function the checkpoint computes at test time:
    dropout off, batch-norm on its running statistics.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def clip_loss(model: nn.Module, loss_fn: LossFn, inputs: Any, labels: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` of the model's logits, both flattened to ``(clips,)``."""
    logits = model(inputs).reshape(-1)
    return loss_fn(logits, labels.reshape(-1).to(device=logits.device, dtype=logits.dtype))


def _dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys, strict=True))


def _flat_grad(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
    return torch.cat([g.reshape(-1) for g in grads])


# -- Hessian trace ------------------------------------------------------------------------
@dataclass(frozen=True)
class HutchinsonTraces:
    """Per-clip Hutchinson draws.

    Attributes:
        samples: ``(clips, draws)`` float64, each entry one vᵀHv.
        losses: ``(clips,)`` float64, the loss of each clip alone.
    """

    samples: torch.Tensor
    losses: torch.Tensor

    @property
    def traces(self) -> torch.Tensor:
        """``(clips,)``: the trace estimate of each clip (mean of its draws)."""
        return self.samples.mean(dim=1)

    @property
    def std_errors(self) -> torch.Tensor:
        """``(clips,)``: standard error of each clip's estimate, std(draws) / sqrt(draws)."""
        draws = self.samples.shape[1]
        if draws < 2:
            return torch.full_like(self.traces, float("nan"))
        return self.samples.std(dim=1) / math.sqrt(draws)


def hutchinson_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Any,
    labels: torch.Tensor,
    draws: int,
    generator: torch.Generator,
) -> HutchinsonTraces:
    """Hessian trace of each clip's loss w.r.t. the trainable parameters (Hutchinson).

    tr(H) = E[vᵀHv] for Rademacher v (entries ±1 with probability 1/2; Hutchinson 1990).
    Hv comes from double backprop, Hv = ∇(∇L · v) (Pearlmutter 1994): one backward with
    ``create_graph=True`` per clip, then one more backward per draw. The Hessian itself is
    never formed, so memory is one clip's double-backward graph.

    Args:
        model: any module; run in eval mode here (its flags are restored after).
        loss_fn: ``loss_fn(logits, targets)``, e.g. ``nn.BCEWithLogitsLoss()``.
        inputs: a batch of clips (tensor, or dict, tuple or dataclass of tensors, clips
            first), on any device: each clip is moved to the model's device and dtype.
        labels: ``(clips,)`` 1 = spoof, 0 = bona fide.
        draws: Rademacher vectors per clip (the study uses 30), >= 1.
        generator: a CPU ``torch.Generator``; the vectors are drawn on the CPU, so a seed
            gives the same vectors on every device.

    Returns:
        :class:`HutchinsonTraces` with ``(clips, draws)`` samples and ``(clips,)`` losses.

    Raises:
        ValueError: ``draws < 1`` or a model without trainable parameters.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no trainable parameters: nothing to differentiate")
    n_clips = _batch_size(labels)
    samples = torch.zeros(n_clips, draws, dtype=torch.float64)
    losses = torch.zeros(n_clips, dtype=torch.float64)
    with evaluation_mode(model):
        for i in range(n_clips):
            loss = clip_loss(model, loss_fn, _to_model(_clip(inputs, i), model), labels.reshape(-1)[i : i + 1])
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True,
                                        materialize_grads=True)
            losses[i] = loss.item()
            for d in range(draws):
                vs = _rademacher(params, generator)
                grad_dot_v = _dot(grads, vs)
                if not grad_dot_v.requires_grad:  # the gradient is constant: H = 0
                    continue
                hvs = torch.autograd.grad(grad_dot_v, params, retain_graph=True, allow_unused=True,
                                          materialize_grads=True)
                samples[i, d] = _dot(hvs, vs).item()
            del grads, loss
    return HutchinsonTraces(samples=samples, losses=losses)


def _rademacher(params: Sequence[nn.Parameter], generator: torch.Generator) -> list[torch.Tensor]:
    """One Rademacher vector over all ``params``, drawn on the CPU in one call, split per tensor."""
    reference = params[0]
    signs = torch.randint(0, 2, (sum(p.numel() for p in params),), generator=generator, dtype=torch.int8)
    flat = (signs * 2 - 1).to(device=reference.device, dtype=reference.dtype)
    return [piece.view_as(p) for piece, p in zip(flat.split([p.numel() for p in params]), params, strict=True)]


@dataclass(frozen=True)
class TraceSummary:
    """The study's Hessian table (SPEC.md): statistics of the per-clip traces.

    ``std`` is the sample standard deviation across clips (ddof = 1); ``median`` averages
    the two middle values of an even count; ``trace_per_param`` = mean trace ÷ trainable
    parameters; ``band`` is ``flat`` / ``moderate`` / ``sharp`` by the study's cut points.
    """

    mean: float
    std: float
    min: float
    max: float
    median: float
    trace_per_param: float
    band: str
    mean_loss: float
    clips: int
    draws: int
    trainable_params: int


def curvature_band(trace_per_param: float, bands: tuple[float, float]) -> str:
    """``flat`` below ``bands[0]``, ``sharp`` above ``bands[1]``, else ``moderate``.

    The study's cut points are (0.001, 0.01): below ~0.001 a very flat minimum, 0.001 to
    0.01 moderate, above ~0.01 sharp.
    """
    flat_below, sharp_above = bands
    if trace_per_param < flat_below:
        return "flat"
    if trace_per_param > sharp_above:
        return "sharp"
    return "moderate"


def summarize_traces(
    result: HutchinsonTraces, trainable_params: int, bands: tuple[float, float]
) -> TraceSummary:
    """Summarise per-clip traces as in the study's table (see :class:`TraceSummary`)."""
    traces = result.traces.numpy()
    mean = float(traces.mean())
    per_param = mean / trainable_params
    return TraceSummary(
        mean=mean,
        std=float(traces.std(ddof=1)) if traces.size > 1 else float("nan"),
        min=float(traces.min()),
        max=float(traces.max()),
        median=float(np.median(traces)),
        trace_per_param=per_param,
        band=curvature_band(per_param, bands),
        mean_loss=float(result.losses.mean()),
        clips=int(traces.size),
        draws=int(result.samples.shape[1]),
        trainable_params=trainable_params,
    )


# -- outputs, loss, calibration, clustering -----------------------------------------------
@dataclass(frozen=True)
class Outputs:
    """What the model says about a clip set, all on the CPU in float64.

    Attributes:
        logits: ``(clips,)`` spoof logits (higher = more spoof).
        labels: ``(clips,)`` 1 = spoof, 0 = bona fide.
        embeddings: ``(clips, dim)`` penultimate embeddings (``model.embed``).
        mean_loss: ``loss_fn`` over all clips (the mean of per-clip BCE).
    """

    logits: torch.Tensor
    labels: torch.Tensor
    embeddings: torch.Tensor
    mean_loss: float


def collect_outputs(model: nn.Module, loss_fn: LossFn, batches: Iterable[LabelledBatch]) -> Outputs:
    """Run ``model`` over ``batches`` in eval mode without gradients.

    The embedding and the logit come from one pass when the model has a ``head``
    (``forward = head(embed(x))``); otherwise ``forward`` is called as well.
    """
    logits, labels, embeddings = [], [], []
    with evaluation_mode(model), torch.no_grad():
        for inputs, batch_labels in batches:
            moved = _to_model(inputs, model)
            embedding = model.embed(moved)
            head = getattr(model, "head", None)
            logit = head(embedding) if isinstance(head, nn.Module) else model(moved)
            logits.append(logit.reshape(-1).double().cpu())
            labels.append(batch_labels.reshape(-1).double().cpu())
            embeddings.append(embedding.reshape(embedding.shape[0], -1).double().cpu())
    all_logits, all_labels = torch.cat(logits), torch.cat(labels)
    return Outputs(
        logits=all_logits,
        labels=all_labels,
        embeddings=torch.cat(embeddings),
        mean_loss=float(loss_fn(all_logits, all_labels)),
    )


def davies_bouldin(embeddings: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Davies–Bouldin index of ``embeddings`` grouped by ``labels`` (lower = better separated).

    DB = mean over clusters i of max_{j≠i} (S_i + S_j) / ||c_i − c_j||, with c the cluster
    centroid and S the mean Euclidean distance of its points to it (Davies & Bouldin 1979;
    the same conventions as ``sklearn.metrics.davies_bouldin_score``, including 0.0 when all
    points sit on their centroids or all centroids coincide).

    Args:
        embeddings: ``(n, dim)``.
        labels: ``(n,)`` cluster of each row (any hashable values), at least two clusters.

    Raises:
        ValueError: fewer than two clusters, or as many clusters as points.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    clusters = np.unique(y)
    if not 2 <= len(clusters) < len(x):
        raise ValueError(f"Davies-Bouldin needs 2 <= clusters < points, got {len(clusters)} and {len(x)}")
    centroids = np.stack([x[y == c].mean(axis=0) for c in clusters])
    spread = np.array([np.linalg.norm(x[y == c] - centroids[k], axis=1).mean() for k, c in enumerate(clusters)])
    distances = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    if np.allclose(spread, 0) or np.allclose(distances, 0):
        return 0.0
    distances[distances == 0] = np.inf  # the diagonal (and coincident centroids) never win
    ratios = (spread[:, None] + spread[None, :]) / distances
    return float(ratios.max(axis=1).mean())


def expected_calibration_error(p_spoof: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                               bins: int) -> float:
    """Expected calibration error of the predicted class (Guo et al. 2017, eq. 3).

    The predicted class is spoof when P(spoof) >= 0.5 (the pipeline's threshold), bona fide
    otherwise; its confidence is max(p, 1 − p) in [0.5, 1]. Confidences fall into ``bins``
    equal-width bins over [0, 1], bin m = ((m−1)/M, m/M] (the first bin also holds 0), and
    ECE = Σ_m |B_m|/n · |accuracy(B_m) − mean confidence(B_m)|. Empty bins add nothing.

    Args:
        p_spoof: ``(n,)`` probabilities of spoof.
        labels: ``(n,)`` 1 = spoof, 0 = bona fide.
        bins: number of bins M (the study's diagnostics use 15).

    Raises:
        ValueError: ``bins < 1``, no clips, or mismatched lengths.
    """
    p = np.asarray(p_spoof, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if bins < 1 or p.size == 0 or p.shape != y.shape:
        raise ValueError(f"ECE needs bins >= 1 and equal non-empty inputs, got {bins}, {p.shape}, {y.shape}")
    predicted_spoof = p >= 0.5
    confidence = np.where(predicted_spoof, p, 1.0 - p)
    correct = (predicted_spoof == (y == 1)).astype(np.float64)
    # ceil(conf * M) - 1 maps (m-1)/M < conf <= m/M to bin m-1; clip puts 0 in the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in np.unique(index):
        members = index == b
        ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


# -- gradients and weights ----------------------------------------------------------------
@dataclass(frozen=True)
class GradientSNR:
    """Gradient signal-to-noise ratio across clips.

    With g_i the gradient of clip i's loss w.r.t. all trainable parameters (one flat
    vector) and ḡ their mean over the n clips:

        snr = ||ḡ||² / ((1/n) Σ_i ||g_i − ḡ||²)

    i.e. the squared norm of the shared (signal) direction over the mean squared deviation
    of single clips from it (noise). snr > 1: clips mostly agree on where to move; for
    zero-mean, independent per-clip gradients snr ≈ 1/n (the noise floor).
    """

    snr: float
    signal: float
    """||ḡ||²"""
    noise: float
    """(1/n) Σ ||g_i − ḡ||²"""
    clips: int


def gradient_snr(model: nn.Module, loss_fn: LossFn, batches: Iterable[LabelledBatch]) -> GradientSNR:
    """Per-clip gradients streamed through Welford's update (float64, one flat mean vector).

    Memory: two parameter-sized float64 vectors, never the n × params gradient matrix.
    See :class:`GradientSNR` for the definition.

    Raises:
        ValueError: fewer than two clips.
    """
    params = trainable_parameters(model)
    mean: torch.Tensor | None = None
    squared_deviation = 0.0  # Welford's M2, summed over parameters
    count = 0
    with evaluation_mode(model):
        for inputs, labels in batches:
            for i in range(_batch_size(labels)):
                loss = clip_loss(model, loss_fn, _to_model(_clip(inputs, i), model), labels.reshape(-1)[i : i + 1])
                grad = _flat_grad(loss, params).double()
                count += 1
                if mean is None:
                    mean = torch.zeros_like(grad)
                delta = grad - mean
                mean += delta / count
                squared_deviation += float(delta @ (grad - mean))
    if mean is None or count < 2:
        raise ValueError(f"gradient SNR needs at least two clips, got {count}")
    signal = float(mean @ mean)
    noise = squared_deviation / count
    return GradientSNR(snr=signal / noise if noise > 0 else float("inf"), signal=signal,
                       noise=noise, clips=count)


@dataclass(frozen=True)
class WeightNorm:
    """L2 norm of one trainable parameter tensor (or of all, ``name="total"``).

    ``rms`` = l2 / sqrt(params): the typical weight size, comparable across layers and
    models of any capacity (norm relative to parameter count).
    """

    name: str
    params: int
    l2: float
    rms: float


def weight_norms(model: nn.Module) -> list[WeightNorm]:
    """One :class:`WeightNorm` per trainable named parameter, then the ``total`` row."""
    rows = []
    total_sq, total_n = 0.0, 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        sq = float(param.detach().double().pow(2).sum())
        rows.append(WeightNorm(name=name, params=param.numel(), l2=math.sqrt(sq),
                               rms=math.sqrt(sq / param.numel())))
        total_sq += sq
        total_n += param.numel()
    rows.append(WeightNorm(name="total", params=total_n, l2=math.sqrt(total_sq),
                           rms=math.sqrt(total_sq / max(total_n, 1))))
    return rows


# -- local linearity ----------------------------------------------------------------------
@dataclass(frozen=True)
class LinearityRow:
    """First-order Taylor check at one perturbation scale, over ``directions`` directions.

    For a unit direction d (Gaussian over all trainable parameters, normalised jointly) the
    step is δ = scale · ||w|| · d. actual = L(w + δ) − L(w); predicted = ∇L(w) · δ;
    rel_error = |actual − predicted| / max(|actual|, |predicted|) per direction (0 when
    the loss is linear along d, 1 when the first-order term explains nothing), reported as
    mean and median over directions; abs_error is the mean |actual − predicted|.
    """

    scale: float
    step_norm: float
    directions: int
    actual_change_mean: float
    predicted_change_mean: float
    abs_error_mean: float
    rel_error_mean: float
    rel_error_median: float


def local_linearity(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[LabelledBatch],
    scales: Sequence[float],
    directions: int,
    generator: torch.Generator,
) -> list[LinearityRow]:
    """How well ∇L predicts the loss change along random weight directions, per scale.

    L is the mean loss over all clips of ``batches``. The work happens on a float64 copy of
    the model (the original is untouched): at scale 1e-4 the loss changes by less than
    float32 resolves, so a float32 check would measure rounding, not curvature. The same
    ``directions`` unit directions are used at every scale. See :class:`LinearityRow`.

    Args:
        batches: re-iterable (a list): the clip set is evaluated 1 + scales × directions
            times.
        scales: step lengths relative to the total trainable weight norm ||w||
            (e.g. 1e-4 ... 1e-1).
        directions: random directions per scale, >= 1.
        generator: CPU generator of the directions.

    Raises:
        ValueError: ``directions < 1`` or no scales.
    """
    if directions < 1 or not scales:
        raise ValueError(f"local_linearity needs directions >= 1 and scales, got {directions}, {scales}")
    probe = copy.deepcopy(model).double()
    params = trainable_parameters(probe)
    with evaluation_mode(probe):
        base_loss, gradient = _loss_and_gradient(probe, loss_fn, batches)
        origin = [p.detach().clone() for p in params]
        weight_norm = math.sqrt(sum(float(p.pow(2).sum()) for p in origin))
        unit_dirs = [_unit_direction(params, generator) for _ in range(directions)]
        rows = []
        for scale in scales:
            step = scale * weight_norm
            actual, predicted = [], []
            for unit in unit_dirs:
                with torch.no_grad():
                    for p, p0, u in zip(params, origin, unit, strict=True):
                        p.copy_(p0 + step * u)
                actual.append(_mean_loss(probe, loss_fn, batches) - base_loss)
                predicted.append(step * float(_dot(gradient, unit)))
            with torch.no_grad():
                for p, p0 in zip(params, origin, strict=True):
                    p.copy_(p0)
            a, b = np.array(actual), np.array(predicted)
            error = np.abs(a - b)
            denom = np.maximum(np.maximum(np.abs(a), np.abs(b)), np.finfo(np.float64).tiny)
            rel = error / denom
            rows.append(LinearityRow(
                scale=float(scale), step_norm=step, directions=directions,
                actual_change_mean=float(a.mean()), predicted_change_mean=float(b.mean()),
                abs_error_mean=float(error.mean()), rel_error_mean=float(rel.mean()),
                rel_error_median=float(np.median(rel)),
            ))
    return rows


def _unit_direction(params: Sequence[nn.Parameter], generator: torch.Generator) -> list[torch.Tensor]:
    raw = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
    norm = math.sqrt(sum(float(r.pow(2).sum()) for r in raw))
    return [(r / norm).to(device=p.device, dtype=p.dtype) for r, p in zip(raw, params, strict=True)]


def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: Iterable[LabelledBatch]) -> float:
    """Clip-weighted mean of batch losses (equals the per-clip mean for mean-reduced BCE)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for inputs, labels in batches:
            n = _batch_size(labels)
            total += float(clip_loss(model, loss_fn, _to_model(inputs, model), labels)) * n
            count += n
    return total / count


def _loss_and_gradient(model: nn.Module, loss_fn: LossFn,
                       batches: Iterable[LabelledBatch]) -> tuple[float, list[torch.Tensor]]:
    """Mean loss over all clips and its gradient, accumulated batch by batch."""
    params = trainable_parameters(model)
    batch_list = list(batches)
    count = sum(_batch_size(labels) for _, labels in batch_list)
    total = 0.0
    gradient = [torch.zeros_like(p) for p in params]
    for inputs, labels in batch_list:
        weight = _batch_size(labels) / count
        loss = clip_loss(model, loss_fn, _to_model(inputs, model), labels) * weight
        grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
        for acc, g in zip(gradient, grads, strict=True):
            acc += g
        total += float(loss.detach())
    return total, gradient


# -- figure -------------------------------------------------------------------------------
def plot_hessian_summary(summary: TraceSummary, per_clip: Sequence[float] | np.ndarray, path: str,
                         bands: tuple[float, float] = DiagnosticsConfig.bands) -> str:
    """Draw the study's Hessian figure and save it to ``path`` (format from the suffix).

    Top panel: trace ÷ parameters on a log gauge with the flat / moderate / sharp bands
    (cut points ``bands``, the study's (0.001, 0.01)); a value <= 0 is pinned to the left
    edge and labelled. Bottom panel: every clip's trace on one axis with min, median, mean
    and max marked and the mean ± one std band shaded; the table's numbers as callouts.
    It plots the measured statistics only; it is not a slice of the loss surface.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    flat_below, sharp_above = bands
    low, high = flat_below / 100, sharp_above * 100
    figure, (gauge, axis) = plt.subplots(2, 1, figsize=(9, 5.2), height_ratios=[1, 1.6])
    for start, stop, colour, name in ((low, flat_below, "#7fbf7f", "flat"),
                                      (flat_below, sharp_above, "#f2c45a", "moderate"),
                                      (sharp_above, high, "#e07a6a", "sharp")):
        gauge.axvspan(start, stop, color=colour, alpha=0.8)
        gauge.text(math.sqrt(start * stop), 0.5, name, ha="center", va="center", fontsize=10)
    shown = min(max(summary.trace_per_param, low), high)
    gauge.axvline(shown, color="black", linewidth=2.5)
    off_scale = "" if shown == summary.trace_per_param else ", off scale: drawn at the edge"
    gauge.annotate(f"trace ÷ params = {summary.trace_per_param:.6g} ({summary.band}{off_scale})",
                   xy=(shown, 1.0), xytext=(0, 4), textcoords="offset points", ha="center",
                   va="bottom", fontsize=10, annotation_clip=False)
    gauge.set_xscale("log")
    gauge.set_xlim(low, high)
    gauge.set_yticks([])
    gauge.set_xlabel(f"Hessian trace ÷ trainable parameters ({summary.trainable_params:,} params)")

    values = np.asarray(per_clip, dtype=np.float64)
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=values.size)  # fixed: reproducible figure
    axis.axvspan(summary.mean - summary.std, summary.mean + summary.std, color="#9ecae1", alpha=0.5,
                 label="mean ± std")
    axis.scatter(values, jitter, s=12, color="#4a4a4a", alpha=0.6, label=f"per-clip trace (n={values.size})")
    # callouts at staggered heights: min, median and mean often sit within a few pixels
    for height, (value, name, style) in zip((0.3, 0.55, 0.8, 0.3), ((summary.min, "min", ":"),
                                                                    (summary.median, "median", "--"),
                                                                    (summary.mean, "mean", "-"),
                                                                    (summary.max, "max", ":"))):
        axis.axvline(value, color="#08519c", linestyle=style, linewidth=1.5)
        axis.text(value, height, f"{name} {value:,.4g}", ha="center", va="bottom", fontsize=8,
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    magnitudes = np.abs(values[values != 0])
    heavy_tailed = magnitudes.size > 1 and magnitudes.max() > 100 * np.median(magnitudes)
    if heavy_tailed:  # per-clip traces often span decades: a linear axis hides all but the tail
        axis.set_xscale("symlog", linthresh=float(np.percentile(magnitudes, 5)))
        # the clips set the view; mean - std may reach far below them (the band is cut there)
        axis.set_xlim(min(1.5 * summary.min, 0.0), 2 * max(summary.max, 0.0) or None)
    axis.set_ylim(-0.5, 1.05)
    axis.set_yticks([])
    axis.set_xlabel(f"Hutchinson trace per clip ({summary.draws} Rademacher draws each)"
                    + (", symmetric log scale" if heavy_tailed else ""))
    axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(f"Hessian trace: mean {summary.mean:,.2f} · std {summary.std:,.2f} · "
                    f"mean loss {summary.mean_loss:.4f}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# -- the stage ----------------------------------------------------------------------------
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
    ("Holdout accuracy (P(spoof) >= 0.5)", "holdout_accuracy"),
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
    shard = stable_id("diagnostics", run_id, str(epoch), str(holdout_spec), repr(sorted(identity.items())),
                      length=16)
    partition = {"run_id": run_id}
    if not overwrite and lake.has_shard("diagnostics_summary", shard, partition):
        return _read_back(lake, shard, partition, run_id, epoch, str(holdout_spec))

    report = progress or (lambda phase, done, total: None)
    device = select_device(config.device, amp=False).device  # before _full_precision: it turns TF32 on
    with _full_precision():
        rows = _compute(lake, checkpoint_uri, device, holdout_spec, train_spec, config, report)
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
             train_spec: DataSpec, config: DiagnosticsConfig, report: ProgressFn) -> _Rows:
    """Load the checkpoint and the clip samples, run every diagnostic, return table columns."""
    started = time.perf_counter()
    model, checkpoint = checkpoints.load_model(checkpoint_uri, device)
    frontend = dataclass_from_dict(FrontendConfig, checkpoint["frontend_config"])
    loss_fn = nn.BCEWithLogitsLoss()
    holdout_set = draw_balanced(lake, holdout_spec, model.needs, frontend, config.per_class, config.seed)
    train_set = draw_balanced(lake, train_spec, model.needs, frontend, config.per_class, config.seed)
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
    ece = expected_calibration_error(p_spoof, held.labels, config.ece_bins)
    accuracy = float(((held.logits >= 0).double() == held.labels).double().mean())
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
        ("holdout_accuracy", None, accuracy, "P(spoof) >= 0.5"),
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


def draw_balanced(lake: Lake, spec: DataSpec, needs: Iterable[str], frontend: FrontendConfig, per_class: int,
                  seed: int) -> ClipSet:
    """A seeded, balanced sample of ``spec``: ``per_class`` clips of each label.

    Only clips that have the inputs the detector needs are eligible (``features`` rows of
    the spec's condition and front-end version for mel/LFCC detectors). Within a label,
    clips are ordered by ``stable_id(seed, clip_id)`` and the first ``per_class`` taken, so
    the draw does not depend on file order and grows monotonically with ``per_class``. A
    label with fewer clips contributes all it has.

    Returns:
        A :class:`dfpipe.clipsets.ClipSet` in ``clip_id`` order.

    Raises:
        DfpipeError: a label has no eligible clip (Davies–Bouldin and the balanced
            losses need both), saying which stage to run; fewer than 3 clips in all.
    """
    needs = set(needs)
    where = pc.field("corpus") == spec.corpus
    if spec.split is not None:
        where &= pc.field("split") == spec.split
    clips = lake.read("clips", columns=["clip_id", "corpus", "label"], filter=where)
    features_only = needs <= {"mel", "lfcc"}
    if features_only:
        made = lake.read("features", columns=["clip_id"], partition={"corpus": spec.corpus},
                         filter=(pc.field("condition") == spec.condition)
                         & (pc.field("frontend_version") == frontend.version))
        clips = clips.filter(pc.is_in(clips.column("clip_id"), made.column("clip_id").combine_chunks()))
    chosen: list[str] = []
    for label in ("spoof", "bonafide"):
        ids = clips.filter(pc.field("label") == label).column("clip_id").to_pylist()
        if not ids:
            raise DfpipeError(f"{spec}: no {label} clip with inputs for this detector (ingest the corpus and "
                              f"run `dfpipe features --corpus {spec.corpus} --condition {spec.condition}`)")
        chosen += sorted(ids, key=lambda cid: stable_id(str(seed), cid))[:per_class]
    if len(chosen) < 3:
        raise DfpipeError(f"{spec}: only one clip of each label; the diagnostics need at least 3 clips")
    chosen.sort()
    if not features_only:  # waveform detectors: the clip-set loader decodes audio (whole spec in memory)
        full = load_clip_set(lake, spec, needs, frontend)
        positions = pc.drop_null(pc.index_in(pa.array(chosen), full.meta.column("clip_id")))
        return full.subset(positions.to_numpy(zero_copy_only=False))
    meta = clips.filter(pc.is_in(clips.column("clip_id"), pa.array(chosen))).sort_by("clip_id")
    position = {cid: i for i, cid in enumerate(chosen)}
    arrays = {name: np.zeros((len(chosen), *shape), np.float16)
              for name, shape in (("mel", frontend.mel_shape), ("lfcc", frontend.lfcc_shape)) if name in needs}
    for ids, mel, lfcc in iter_feature_batches(lake, spec.corpus, spec.condition, clip_ids=chosen,
                                               frontend=frontend):
        rows = [position[cid] for cid in ids]
        for name, values in (("mel", mel), ("lfcc", lfcc)):
            if name in arrays:
                arrays[name][rows] = values.numpy()
    meta = meta.append_column("condition", pa.array([spec.condition] * meta.num_rows, pa.string()))
    labels = pc.equal(meta.column("label"), "spoof").to_numpy(zero_copy_only=False).astype(np.float32)
    return ClipSet(meta=meta, labels=labels, **arrays)


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


def stored_trace_summary(metrics: dict[str, float], band: str, clips: int) -> TraceSummary:
    """The :class:`TraceSummary` of a committed result: ``metrics`` are its whole-model
    ``diagnostics_summary`` values by metric name, ``band`` the ``trace_per_param`` detail."""
    return TraceSummary(
        mean=metrics["hessian_trace_mean"], std=metrics["hessian_trace_std"], min=metrics["hessian_trace_min"],
        max=metrics["hessian_trace_max"], median=metrics["hessian_trace_median"],
        trace_per_param=metrics["trace_per_param"], band=band, mean_loss=metrics["holdout_loss"], clips=clips,
        draws=int(metrics["hessian_draws"]), trainable_params=int(metrics["trainable_params"]),
    )


def hessian_figure(lake_uri: str, result: DiagnoseSummary, path: str) -> str:
    """Draw :func:`plot_hessian_summary` for a :func:`diagnose` result, from its committed rows."""
    lake = Lake(lake_uri)
    with lake.fs.open(lake.shard_path("diagnostics_hessian", result.shard, {"run_id": result.run_id}), "rb") as f:
        traces = pq.read_table(f, columns=["trace"]).column("trace").to_numpy()
    return plot_hessian_summary(stored_trace_summary(result.metrics, result.band, len(traces)), traces, path)
