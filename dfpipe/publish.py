"""Publishable results: the Arena record (``scores.txt`` + ``result.yaml``) and the Hugging
Face ``.eval_results/*.yaml`` entry.

A record folder, written by ``dfpipe export-scores --record DIR`` and checked by
``dfpipe eval --record DIR/result.yaml``, holds:

- ``scores.txt``: one line per trial, ``<utterance-id> <score>``, one space, no header,
  higher = bona fide (the Speech DF Arena's score-file format);
- ``keys.csv``: the labels the EER was computed with, ``file_name,label`` with a header
  (the Arena's protocol format; label ``bonafide`` or ``spoof``);
- ``result.yaml``: the record (:class:`ScoreRecord`, schema :data:`SCHEMA_VERSION`), which
  pins both files by sha256;
- ``.eval_results/<dataset>.yaml``: the same EER as a Hugging Face model-card entry
  (:meth:`ScoreRecord.hf_entry`), ready to copy into the model repository.

This module is the format only (writing, reading, validating, hashing); computing the EER
is the metric SQL's work (:func:`dfpipe.metrics.export_record`, :func:`dfpipe.metrics.check_record`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from dfpipe.config import WINDOW_POLICIES
from dfpipe.errors import DfpipeError
from dfpipe.lake import atomic_write

SCHEMA_VERSION = 1
"""Version of the ``result.yaml`` layout; :meth:`ScoreRecord.load` refuses any other."""

EER_DEFINITION = "ASVspoof 5 evaluation package (compute_det_curve + compute_eer, no interpolation)"


@dataclass(frozen=True)
class WindowPolicy:
    """How the system turned each file into one score.

    Attributes:
        name: one of :data:`dfpipe.config.WINDOW_POLICIES`: ``centre-crop`` (the middle
            ``window_seconds`` of the file, shorter files zero-padded at the end; the lake's
            predictions), ``first-n`` (the first ``window_seconds``), ``windowed-mean`` /
            ``windowed-max`` (mean / max of the scores of ``window_seconds`` windows every
            ``hop_seconds``).
        window_seconds: length of the crop or of each window.
        sample_rate_hz: the rate the audio was resampled to before scoring.
        hop_seconds: windowed policies only.
    """

    name: str
    window_seconds: float | None = None
    sample_rate_hz: int | None = None
    hop_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.name not in WINDOW_POLICIES:
            raise DfpipeError(f"window policy {self.name!r} is not one of {', '.join(WINDOW_POLICIES)}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        out.update({k: v for k, v in (("window_seconds", self.window_seconds),
                                      ("sample_rate_hz", self.sample_rate_hz),
                                      ("hop_seconds", self.hop_seconds)) if v is not None})
        return out

    def describe(self) -> str:
        """``centre-crop 3 s at 16000 Hz``."""
        parts = [self.name]
        if self.window_seconds is not None:
            parts.append(f"{self.window_seconds:g} s")
        if self.hop_seconds is not None:
            parts.append(f"every {self.hop_seconds:g} s")
        if self.sample_rate_hz is not None:
            parts.append(f"at {self.sample_rate_hz} Hz")
        return " ".join(parts)


@dataclass(frozen=True)
class ScoreRecord:
    """One system's EER on one dataset split, pinned to its score file (``result.yaml``).

    ``eer_percent`` is the EER in percent rounded to ``eer_decimals`` decimals; a check
    recomputes it from the pinned files and compares after rounding the same way.
    ``n_trials`` counts the lines of the score file (= trials with a score); ``n_skipped``
    the trials of the set that got no score (files rejected before scoring).
    """

    system: str
    dataset_id: str
    dataset_revision: str
    split: str
    eer_percent: float
    eer_decimals: int
    n_trials: int
    n_skipped: int
    scores_file: str
    scores_sha256: str
    window_policy: WindowPolicy
    n_bonafide: int | None = None
    n_spoof: int | None = None
    keys_file: str | None = None
    keys_sha256: str | None = None
    producer: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def eer_text(self, eer_percent: float | None = None) -> str:
        """``eer_percent`` (or the record's) as the record states it: ``eer_decimals`` decimals."""
        return f"{self.eer_percent if eer_percent is None else eer_percent:.{self.eer_decimals}f}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "system": self.system,
            "dataset": {"id": self.dataset_id, "revision": self.dataset_revision, "split": self.split},
            "metric": "eer",
            "eer_percent": self.eer_percent,
            "eer_decimals": self.eer_decimals,
            "n_trials": self.n_trials,
        }
        out.update({k: v for k, v in (("n_bonafide", self.n_bonafide), ("n_spoof", self.n_spoof)) if v is not None})
        out["n_skipped"] = self.n_skipped
        out["scores"] = {"file": self.scores_file, "sha256": self.scores_sha256,
                         "format": "<utterance-id> <score> per line, one space, no header; higher = bona fide"}
        if self.keys_file is not None:
            out["keys"] = {"file": self.keys_file, "sha256": self.keys_sha256,
                           "format": "CSV with header file_name,label; label bonafide or spoof"}
        out["window_policy"] = self.window_policy.to_dict()
        out["eer_definition"] = EER_DEFINITION
        if self.producer:
            out["producer"] = dict(self.producer)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> ScoreRecord:
        """Validate and read a parsed ``result.yaml``.

        Raises:
            DfpipeError: another ``schema_version``, a missing field or a wrong type, naming it.
        """
        if not isinstance(data, Mapping):
            raise DfpipeError(f"{where}: not a YAML mapping")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise DfpipeError(f"{where}: schema_version {data.get('schema_version')!r} is not supported "
                              f"(this dfpipe reads {SCHEMA_VERSION})")

        def get(path: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
            value: Any = data
            for key in path.split("."):
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is None:
                if required:
                    raise DfpipeError(f"{where}: missing field {path}")
                return None
            if isinstance(value, bool) or not isinstance(value, kind):
                raise DfpipeError(f"{where}: field {path} should be {getattr(kind, '__name__', kind)}, "
                                  f"got {value!r}")
            return value

        text = (str, int, float)  # YAML reads an unquoted revision like 1234 as a number
        get("window_policy", Mapping)
        return cls(
            system=str(get("system", text)),
            dataset_id=str(get("dataset.id", text)),
            dataset_revision=str(get("dataset.revision", text)),
            split=str(get("dataset.split", text)),
            eer_percent=float(get("eer_percent", (int, float))),
            eer_decimals=get("eer_decimals", int),
            n_trials=get("n_trials", int),
            n_skipped=get("n_skipped", int),
            n_bonafide=get("n_bonafide", int, False),
            n_spoof=get("n_spoof", int, False),
            scores_file=get("scores.file", str),
            scores_sha256=get("scores.sha256", str),
            keys_file=get("keys.file", str, False),
            keys_sha256=get("keys.sha256", str) if get("keys.file", str, False) else None,
            window_policy=WindowPolicy(
                name=get("window_policy.name", str),
                window_seconds=get("window_policy.window_seconds", (int, float), False),
                sample_rate_hz=get("window_policy.sample_rate_hz", int, False),
                hop_seconds=get("window_policy.hop_seconds", (int, float), False),
            ),
            producer=get("producer", Mapping, False) or {},
            schema_version=SCHEMA_VERSION,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScoreRecord:
        """Read ``result.yaml``.

        Raises:
            DfpipeError: unreadable or invalid YAML, or an invalid record (:meth:`from_dict`).
        """
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DfpipeError(f"cannot read the record {path}: {exc}") from exc
        return cls.from_dict(data, str(path))

    def hf_entry(self, task_id: str | None = None, source_url: str | None = None,
                 source_name: str | None = None) -> list[dict[str, Any]]:
        """The Hugging Face ``.eval_results/*.yaml`` content: a list with one entry.

        Follows the Hub's eval-results format (``dataset: {id, task_id, revision}``,
        ``value``, optional ``source: {url, name}`` and ``notes``): ``value`` is
        ``eer_percent``; the metric, the system, the split, the window policy and the score
        file's sha256 go into ``notes``. ``task_id`` defaults to the split.
        """
        entry: dict[str, Any] = {
            "dataset": {"id": self.dataset_id, "task_id": task_id or self.split, "revision": self.dataset_revision},
            "value": self.eer_percent,
        }
        if source_url:
            entry["source"] = {"url": source_url, **({"name": source_name} if source_name else {})}
        entry["notes"] = (f"EER (%) of {self.system} on split {self.split}, lower is better; "
                          f"{self.n_trials} trials, {self.n_skipped} skipped; window {self.window_policy.describe()}; "
                          f"scores.txt sha256 {self.scores_sha256}")
        return [entry]


def hf_file_name(dataset_id: str) -> str:
    """``.eval_results`` file name of a dataset: its id's last part, made a safe file name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset_id.rstrip("/").rsplit("/", 1)[-1]).strip(".-")
    return f"{stem or 'dataset'}.yaml"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, LF as given) atomically."""
    atomic_write(os.fspath(path), lambda tmp: Path(tmp).write_bytes(text.encode("utf-8")))


def check_utterance_ids(ids: Iterable[str]) -> None:
    """Raises DfpipeError unless every id is non-empty, unique and free of whitespace (the
    score file separates fields with one space)."""
    seen: set[str] = set()
    for uid in ids:
        if not uid or re.search(r"\s", uid):
            raise DfpipeError(f"utterance id {uid!r} is empty or holds whitespace: the score file cannot hold it")
        if uid in seen:
            raise DfpipeError(f"utterance id {uid!r} appears twice")
        seen.add(uid)


def arena_scores_text(rows: Iterable[tuple[str, float]]) -> str:
    """``scores.txt`` content: ``<id> <score>`` lines; each score is the shortest text that
    reads back as the same float64 (Python's ``repr``)."""
    return "".join(f"{uid} {float(score)!r}\n" for uid, score in rows)


def arena_keys_text(rows: Iterable[tuple[str, str]]) -> str:
    """``keys.csv`` content: ``file_name,label`` with a header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file_name", "label"])
    writer.writerows(rows)
    return buffer.getvalue()


def read_arena_scores(path: str | os.PathLike[str]) -> pa.Table:
    """``scores.txt`` as strings: columns ``filename``, ``cm_score`` (checked numeric later).

    Raises:
        DfpipeError: unreadable, or a line that is not exactly two fields, naming the line.
    """
    names, scores = [], []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DfpipeError(f"cannot read the score file {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 2:
            raise DfpipeError(f"{path}:{number}: expected '<utterance-id> <score>', got {line!r}")
        names.append(fields[0])
        scores.append(fields[1])
    return pa.table({"filename": pa.array(names, pa.string()), "cm_score": pa.array(scores, pa.string())})


def read_arena_keys(path: str | os.PathLike[str]) -> pa.Table:
    """``keys.csv`` (``file_name,label`` with a header) as strings: columns ``filename``, ``label``.

    Raises:
        DfpipeError: unreadable, no ``file_name``/``label`` header, or a short row.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DfpipeError(f"cannot read the key file {path}: {exc}") from exc
    if not rows or [c.strip() for c in rows[0][:2]] != ["file_name", "label"]:
        raise DfpipeError(f"{path}: the first line must be the header file_name,label")
    short = [n for n, row in enumerate(rows[1:], 2) if len(row) < 2]
    if short:
        raise DfpipeError(f"{path}:{short[0]}: expected file_name,label")
    return pa.table({"filename": pa.array([r[0] for r in rows[1:]], pa.string()),
                     "label": pa.array([r[1] for r in rows[1:]], pa.string())})
