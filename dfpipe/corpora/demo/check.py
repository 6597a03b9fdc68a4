"""The shortcut check: can a trivial classifier tell the classes apart without the speech?

Per clip, six cheap features that a channel mismatch would show (duration, RMS level,
peak level, 95 % spectral roll-off, leading and trailing silence) feed a standardised
logistic regression (scikit-learn) trained on the ``train`` split; its EER on ``test`` and
``ood`` should be near chance (0.5). Below :attr:`DemoCorpusConfig.shortcut_min_eer` the
corpus has a shortcut: a detector could learn the recording conditions instead of the
speech.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfpipe.audio_io import decode
from dfpipe.config import AudioConfig, DemoCorpusConfig
from dfpipe.corpora.demo.channel import frame_db
from dfpipe.errors import ConfigError

FEATURES = ("duration_s", "rms_dbfs", "peak_dbfs", "rolloff95_hz", "lead_silence_s", "trail_silence_s")
_SILENCE_BELOW_PEAK_DB = 40.0  # a frame this far below the loudest counts as silence


@dataclass(frozen=True)
class ShortcutResult:
    """One row of the check's table: the classifier on one split."""

    split: str
    bonafide: int
    spoof: int
    eer: float
    passed: bool


def clip_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The six :data:`FEATURES` of one clip (mono float samples at ``sample_rate`` Hz)."""
    x64 = x.astype(np.float64)
    rms = 10 * np.log10(np.mean(x64**2) + 1e-12)
    peak = 20 * np.log10(np.max(np.abs(x64)) + 1e-12)
    power = np.abs(np.fft.rfft(x64)) ** 2
    cumulative = np.cumsum(power)
    rolloff = np.searchsorted(cumulative, 0.95 * cumulative[-1]) * sample_rate / len(x64)
    db = frame_db(x, sample_rate)
    active = np.flatnonzero(db >= db.max() - _SILENCE_BELOW_PEAK_DB)
    frame_s = len(x) / sample_rate / max(1, len(db))
    lead, trail = active[0] * frame_s, (len(db) - 1 - active[-1]) * frame_s
    return np.array([len(x) / sample_rate, rms, peak, rolloff, lead, trail])


def asvspoof_eer(bonafide_scores: np.ndarray, spoof_scores: np.ndarray) -> float:
    """EER as the ASVspoof evaluation package computes it (higher score = bona fide).

    Scores sorted ascending, ties broken bona fide first (stable sort of the bona fide
    scores placed before the spoof scores), miss/false-alarm rates with the (0, 1) point
    prepended, no interpolation, first index of the minimum |FRR - FAR|; EER = their mean.
    """
    scores = np.concatenate([bonafide_scores, spoof_scores])
    labels = np.concatenate([np.ones(len(bonafide_scores)), np.zeros(len(spoof_scores))])
    order = np.argsort(scores, kind="mergesort")
    bonafide_below = np.cumsum(labels[order])
    spoof_above = len(spoof_scores) - (np.arange(1, len(scores) + 1) - bonafide_below)
    frr = np.concatenate([[0.0], bonafide_below / len(bonafide_scores)])
    far = np.concatenate([[1.0], spoof_above / len(spoof_scores)])
    index = int(np.argmin(np.abs(frr - far)))
    return float((frr[index] + far[index]) / 2)


def _read(corpus_dir: Path, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    manifest = corpus_dir / "manifest.csv"
    if not manifest.exists():
        raise ConfigError(f"{corpus_dir} has no manifest.csv: build it with `dfpipe corpus build-demo --out {corpus_dir}`")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    features = np.stack([clip_features(decode(corpus_dir / row["path"], sample_rate), sample_rate) for row in rows])
    is_spoof = np.array([row["label"] == "spoof" for row in rows])
    return features, is_spoof, np.array([row["split"] for row in rows])


def shortcut_check(
    corpus_dir: str | Path, config: DemoCorpusConfig | None = None, audio: AudioConfig | None = None
) -> list[ShortcutResult]:
    """Train the cheap-feature classifier on ``train``; its EER on ``test`` and ``ood``.

    Raises:
        ConfigError: no manifest, or a split without both classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = config or DemoCorpusConfig()
    features, is_spoof, splits = _read(Path(corpus_dir), (audio or AudioConfig()).sample_rate)
    for split in ("train", "test", "ood"):
        if len(set(is_spoof[splits == split])) != 2:
            raise ConfigError(f"shortcut check: split {split!r} needs bona fide and spoof clips")
    train = splits == "train"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features[train], is_spoof[train])
    results = []
    for split in ("test", "ood"):
        mask = splits == split
        bonafide_score = -model.decision_function(features[mask])  # higher = bona fide
        eer = asvspoof_eer(bonafide_score[~is_spoof[mask]], bonafide_score[is_spoof[mask]])
        results.append(ShortcutResult(split, int((~is_spoof[mask]).sum()), int(is_spoof[mask].sum()),
                                      eer, eer >= config.shortcut_min_eer))
    return results


def format_table(results: list[ShortcutResult], config: DemoCorpusConfig | None = None) -> str:
    """The results as a markdown table."""
    limit = (config or DemoCorpusConfig()).shortcut_min_eer
    lines = [
        f"Shortcut check: logistic regression on {', '.join(FEATURES)} (trained on train)",
        "",
        "| split | bona fide | spoof | EER | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {r.split} | {r.bonafide} | {r.spoof} | {r.eer:.3f} | "
              f"{'ok (>= ' if r.passed else 'SHORTCUT (< '}{limit:.2f}) |" for r in results]
    return "\n".join(lines)
