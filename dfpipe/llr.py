"""Log-likelihood ratios from detector scores: the linear map, its fit and its file.

A :class:`ScoreMap` turns one or more spoof logits of a clip (one per run) into a calibrated
**spoof LLR** (natural log, higher = more likely spoof), ``llr = weights . scores + intercept``.
With one weight it is a calibration (an affine map of one run's logits), with several a
linear fusion; both are fitted the same way (:func:`fit_score_map`): a prior-weighted
logistic regression, as BOSARIS' ``train_binary_classifier`` and the ASVspoof baselines do.
The calibration stage (:mod:`dfpipe.calibration`) fits and stores maps; ``dfpipe detect``
and the metric SQL (``sql/calibrated_scores.sql``) apply them.

Why a logistic regression gives an LLR: fitted with each class weighing ``prior`` (spoof)
and ``1 - prior`` (bona fide) whatever its count, its log-odds are the posterior log-odds at
that prior, ``llr + logit(prior)``; taking ``logit(prior)`` off leaves the LLR, which holds
whatever the class balance of the data it is later applied to.

A map is stored as JSON (:meth:`ScoreMap.to_json`), beside the checkpoint it calibrates
(``epoch-NNN.calibration.json``, :func:`calibration_uri`), so a checkpoint travels with its
calibration and the checkpoint itself still loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import fsspec
import numpy as np

from dfpipe.config import CalibrationConfig
from dfpipe.errors import DfpipeError
from dfpipe.lake import write_bytes_atomic

FORMAT = "dfpipe-score-map/1"
"""``format`` of a stored map: readers refuse any other."""


@dataclass(frozen=True)
class ScoreMap:
    """``llr = weights . scores + intercept``: spoof logits (one column per input) -> spoof LLR.

    Attributes:
        weights: one per input score.
        intercept: the LLR at all-zero scores.
        prior: the spoof prior the fit weighed the classes with.
        fitted_on: the ``predictions.dataset`` it was fitted on (the dev set).
        inputs: ``run_id@epoch`` of each input score, in the order of ``weights``.
        n_bonafide, n_spoof: clips of each class it was fitted on.
    """

    weights: tuple[float, ...]
    intercept: float
    prior: float
    fitted_on: str
    inputs: tuple[str, ...]
    n_bonafide: int
    n_spoof: int

    def llr(self, scores: np.ndarray) -> np.ndarray:
        """Spoof LLRs of ``scores``: ``(N,)`` for one input, ``(N, len(weights))`` for several."""
        scores = np.asarray(scores, np.float64)
        columns = scores.reshape(len(scores), -1) if scores.ndim == 1 else scores
        if columns.shape[1] != len(self.weights):
            raise DfpipeError(f"a map of {len(self.weights)} inputs got {columns.shape[1]} scores per clip")
        return columns @ np.asarray(self.weights) + self.intercept

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> ScoreMap:
        """Parse a stored map.

        Raises:
            DfpipeError: naming ``where``, for text that is not a dfpipe score map.
        """
        try:
            data = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise ValueError(f"format is not {FORMAT!r}")
            return cls(weights=tuple(float(w) for w in data["weights"]), intercept=float(data["intercept"]),
                       prior=float(data["prior"]), fitted_on=str(data["fitted_on"]),
                       inputs=tuple(str(i) for i in data["inputs"]), n_bonafide=int(data["n_bonafide"]),
                       n_spoof=int(data["n_spoof"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DfpipeError(f"{where} is not a dfpipe calibration: {exc}") from exc


def fit_score_map(scores: np.ndarray, is_spoof: np.ndarray, *, fitted_on: str, inputs: tuple[str, ...],
                  config: CalibrationConfig | None = None) -> ScoreMap:
    """Fit ``llr = w . s + b`` on dev scores by prior-weighted logistic regression.

    Minimises ``prior * mean_spoof softplus(-(w.s + b')) + (1 - prior) * mean_bonafide
    softplus(w.s + b') + ||w||^2 / (2 C N)`` (scikit-learn's lbfgs; the classes' weights are
    scaled to sum to N so ``C`` means what it means in scikit-learn), then ``b = b' -
    logit(prior)``. The small L2 term (``CalibrationConfig.inverse_regularisation``) keeps the
    slope finite on a dev set the scores separate perfectly, where the unpenalised optimum is
    an infinite slope.

    Args:
        scores: ``(N,)`` or ``(N, k)`` spoof logits (one column per input).
        is_spoof: ``(N,)`` booleans.
        fitted_on, inputs: recorded in the map.

    Raises:
        DfpipeError: the dev set lacks a class.
    """
    from sklearn.linear_model import LogisticRegression  # ~0.5 s import: only when fitting

    config = config or CalibrationConfig()
    scores = np.asarray(scores, np.float64)
    columns = scores.reshape(len(scores), -1) if scores.ndim == 1 else scores
    labels = np.asarray(is_spoof, bool)
    n_spoof, n_bonafide = int(labels.sum()), int((~labels).sum())
    if not n_spoof or not n_bonafide:
        raise DfpipeError(f"the dev set {fitted_on!r} has {n_bonafide} bona fide and {n_spoof} spoof clips: "
                          "a calibration needs both")
    n = len(labels)
    weights = np.where(labels, config.prior * n / n_spoof, (1.0 - config.prior) * n / n_bonafide)
    model = LogisticRegression(C=config.inverse_regularisation, max_iter=config.max_iter, tol=config.tol)
    model.fit(columns, labels, sample_weight=weights)
    intercept = float(model.intercept_[0]) - math.log(config.prior / (1.0 - config.prior))
    return ScoreMap(weights=tuple(float(w) for w in model.coef_[0]), intercept=intercept, prior=config.prior,
                    fitted_on=fitted_on, inputs=tuple(inputs), n_bonafide=n_bonafide, n_spoof=n_spoof)


def calibration_uri(checkpoint_uri: str, config: CalibrationConfig | None = None) -> str:
    """Where the calibration of a checkpoint lives: ``epoch-NNN.pt`` -> ``epoch-NNN.calibration.json``."""
    config = config or CalibrationConfig()
    stem = checkpoint_uri.removesuffix(".pt")
    return stem + config.file_suffix


def write_score_map(score_map: ScoreMap, uri: str) -> str:
    """Write ``score_map`` as JSON to ``uri`` (path or fsspec URL), atomically; returns ``uri``."""
    return write_bytes_atomic(uri, score_map.to_json().encode())


def read_calibration(checkpoint_uri: str, config: CalibrationConfig | None = None) -> ScoreMap | None:
    """The calibration stored beside a checkpoint (:func:`calibration_uri`), or ``None`` when it has none."""
    uri = calibration_uri(checkpoint_uri, config)
    try:
        with fsspec.open(uri, "r") as source:
            text = source.read()
    except FileNotFoundError:
        return None
    score_map = ScoreMap.from_json(text, uri)
    if len(score_map.weights) != 1:
        raise DfpipeError(f"{uri} holds a fusion of {len(score_map.weights)} scores, not one checkpoint's calibration")
    return score_map
