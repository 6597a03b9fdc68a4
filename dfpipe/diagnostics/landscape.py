"""The loss-landscape and representation checks: plain functions over a ``torch.nn.Module``.

Pure torch/numpy, no lake: each check takes a model (``forward(inputs)`` gives one spoof
logit per clip, ``embed(inputs)`` the penultimate embedding), a loss (``BCEWithLogitsLoss``:
mean over the clips of a batch) and batches of ``(inputs, labels)`` (labels 1 = spoof,
0 = bona fide; ``inputs`` a tensor, or a dict, tuple or dataclass such as
:class:`dfpipe.models.Batch` of tensors whose first dimension is the clip).

Every function works on *trainable* parameters only (``requires_grad``), in evaluation
mode (dropout off, batch-norm running statistics), one clip or one small batch at a time,
so memory stays bounded by one clip's graph plus a few parameter-sized vectors. The
full Hessian is never formed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dfpipe.config import MetricsConfig

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


def stored_trace_summary(metrics: dict[str, float], band: str, clips: int) -> TraceSummary:
    """The :class:`TraceSummary` of a committed result: ``metrics`` are its whole-model
    ``diagnostics_summary`` values by metric name, ``band`` the ``trace_per_param`` detail."""
    return TraceSummary(
        mean=metrics["hessian_trace_mean"], std=metrics["hessian_trace_std"], min=metrics["hessian_trace_min"],
        max=metrics["hessian_trace_max"], median=metrics["hessian_trace_median"],
        trace_per_param=metrics["trace_per_param"], band=band, mean_loss=metrics["holdout_loss"], clips=clips,
        draws=int(metrics["hessian_draws"]), trainable_params=int(metrics["trainable_params"]),
    )


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
                               bins: int, threshold: float = MetricsConfig.threshold) -> float:
    """Expected calibration error of the predicted class (Guo et al. 2017, eq. 3).

    The predicted class is spoof when P(spoof) >= ``threshold`` (the pipeline's decision
    rule, :func:`dfpipe.config.predicts_spoof`; default
    :attr:`~dfpipe.config.MetricsConfig.threshold`, 0.5), bona fide otherwise; its confidence
    is p for spoof and 1 − p for bona fide (max(p, 1 − p) at 0.5). Confidences fall into ``bins``
    equal-width bins over [0, 1], bin m = ((m−1)/M, m/M] (the first bin also holds 0), and
    ECE = Σ_m |B_m|/n · |accuracy(B_m) − mean confidence(B_m)|. Empty bins add nothing.

    Args:
        p_spoof: ``(n,)`` probabilities of spoof.
        labels: ``(n,)`` 1 = spoof, 0 = bona fide.
        bins: number of bins M (the study's diagnostics use 15).
        threshold: P(spoof) at and above which the predicted class is spoof.

    Raises:
        ValueError: ``bins < 1``, no clips, or mismatched lengths.
    """
    p = np.asarray(p_spoof, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if bins < 1 or p.size == 0 or p.shape != y.shape:
        raise ValueError(f"ECE needs bins >= 1 and equal non-empty inputs, got {bins}, {p.shape}, {y.shape}")
    predicted_spoof = p >= threshold  # predicts_spoof, on the probability
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
