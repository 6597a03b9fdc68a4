"""An independent numpy reference of the ASVspoof 5 evaluation conventions (for the tests).

Written after the ASVspoof 5 evaluation package (``calculate_modules.py``): the DET curve
sorts ``[bona fide scores, spoof scores]`` with numpy's stable mergesort, so tied scores put
bona fide first; rates are cumulative with the (frr 0, far 1) point prepended, no
interpolation. Scores are cm-scores (higher = bona fide). Undefined score metrics are
``None``; threshold metrics with a zero denominator are 0 (sklearn's ``zero_division=0``).
"""

from __future__ import annotations

import numpy as np

P_SPOOF, C_MISS, C_FA = 0.05, 1.0, 10.0


def det_curve(bonafide: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.concatenate([bonafide, spoof])
    labels = np.concatenate([np.ones(bonafide.size), np.zeros(spoof.size)])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    bonafide_sums = np.cumsum(labels)
    spoof_left = spoof.size - (np.arange(1, scores.size + 1) - bonafide_sums)
    frr = np.concatenate([[0.0], bonafide_sums / bonafide.size])
    far = np.concatenate([[1.0], spoof_left / spoof.size])
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return frr, far, thresholds


def eer(bonafide, spoof):
    """(eer, threshold) or (None, None) when a class is empty."""
    bonafide, spoof = np.asarray(bonafide, float), np.asarray(spoof, float)
    if not bonafide.size or not spoof.size:
        return None, None
    frr, far, thresholds = det_curve(bonafide, spoof)
    index = np.argmin(np.abs(frr - far))
    return float(np.mean((frr[index], far[index]))), float(thresholds[index])


def min_dcf(bonafide, spoof, p_spoof=P_SPOOF, c_miss=C_MISS, c_fa=C_FA):
    bonafide, spoof = np.asarray(bonafide, float), np.asarray(spoof, float)
    if not bonafide.size or not spoof.size:
        return None, None
    frr, far, thresholds = det_curve(bonafide, spoof)
    p_target = 1 - p_spoof
    costs = c_miss * frr * p_target + c_fa * far * (1 - p_target)
    index = np.argmin(costs)
    return float(costs[index] / min(c_miss * p_target, c_fa * (1 - p_target))), float(thresholds[index])


def act_dcf(bonafide, spoof, p_spoof=P_SPOOF, c_miss=C_MISS, c_fa=C_FA):
    bonafide, spoof = np.asarray(bonafide, float), np.asarray(spoof, float)
    threshold = -np.log(c_miss * (1 - p_spoof) / (c_fa * p_spoof))
    if not bonafide.size or not spoof.size:
        return None, float(threshold)
    miss = np.sum(bonafide < threshold) / bonafide.size
    fa = np.sum(spoof >= threshold) / spoof.size
    cost = c_miss * (1 - p_spoof) * miss + c_fa * p_spoof * fa
    return float(cost / min(c_miss * (1 - p_spoof), c_fa * p_spoof)), float(threshold)


def cllr(bonafide, spoof):
    bonafide, spoof = np.asarray(bonafide, float), np.asarray(spoof, float)
    if not bonafide.size or not spoof.size:
        return None
    softplus = np.logaddexp  # log(1 + exp(-x)) = logaddexp(0, -x), overflow-free
    return float(0.5 * (np.mean(softplus(0, -bonafide)) + np.mean(softplus(0, spoof))) / np.log(2))


def threshold_metrics(is_spoof, is_predicted_spoof) -> dict[str, float | int | None]:
    """Confusion counts and metrics with positive class = spoof; 0 where a denominator is 0
    (sklearn's ``zero_division=0``, and ``matthews_corrcoef``'s 0)."""
    y, p = np.asarray(is_spoof, bool), np.asarray(is_predicted_spoof, bool)
    tp, fp = int(np.sum(y & p)), int(np.sum(~y & p))
    tn, fn = int(np.sum(~y & ~p)), int(np.sum(y & ~p))

    def ratio(a, b):
        return a / b if b else 0.0

    denominator = float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "accuracy": ratio(tp + tn, y.size),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": (float(tp) * tn - float(fp) * fn) / np.sqrt(denominator) if denominator else 0.0,
    }


def p_spoof(cm_score) -> np.ndarray:
    """P(spoof) of cm-scores: sigmoid(spoof_logit) with spoof_logit = -cm_score."""
    spoof_logit = -np.asarray(cm_score, float)
    return 1.0 / (1.0 + np.exp(-spoof_logit))
