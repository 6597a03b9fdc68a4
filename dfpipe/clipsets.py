"""Labelled clip sets read from the lake for training and scoring.

A data spec names what to read: ``CORPUS[:CONDITION][@SPLIT]``

- ``CORPUS``: a corpus name in ``clips``;
- ``CONDITION``: an ``audio`` / ``features`` condition (default
  :attr:`~dfpipe.config.TrainConfig.default_condition`, ``raw``: the ingested files);
- ``SPLIT``: a ``clips.split`` value; ``@*`` means every clip of the corpus. Training
  specs default to ``@train``, evaluation specs to every clip.

Examples: ``demo`` (= ``demo:raw@train`` for training), ``asv5:mp3_128k@eval``,
``itw:flac@*``.

Features come in Arrow record batches through
:func:`dfpipe.feature_table.iter_feature_batches` (decoded column-wise, no loop over rows) and
are kept as float16; only waveforms (WavLM models) are decoded per clip, from
``audio.audio_bytes`` (or the source file for the ``raw`` condition).
Memory: ~154 KB per clip for mel (float16), ~36 KB for LFCC, ~192 KB for a waveform (float32).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from dfpipe.config import RAW_CONDITION, FrontendConfig
from dfpipe.errors import ConfigError, DfpipeError, RejectedInput
from dfpipe.feature_table import iter_feature_batches
from dfpipe.frontend import load_clip
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.models import Batch
from dfpipe.stage_kit import read_source

ALL_SPLITS = "*"
GROUPING = ("split", "generator", "family", "speaker", "language", "source_codec")
"""``clips`` columns copied into every ``predictions`` row."""


@dataclass(frozen=True)
class DataSpec:
    """What a run trains on or is scored on: ``CORPUS[:CONDITION][@SPLIT]`` (``split`` None =
    every clip). The one data-spec type: the CLI parses text into it (:meth:`parse`), a study
    builds it from its sets (:meth:`dfpipe.study.DataSetSpec.to_data_spec`), and the trainer,
    scoring and the flows take it as it is.

    Raises:
        DfpipeError: an unsafe corpus or split name (constructing one checks them).
    """

    corpus: str
    condition: str
    split: str | None

    def __post_init__(self) -> None:
        check_name("corpus", self.corpus)
        if self.split is not None:
            check_name("split", self.split)

    @classmethod
    def parse(cls, text: str, *, default_condition: str, default_split: str | None) -> DataSpec:
        """Parse a data spec.

        Raises:
            ConfigError: empty parts or unsafe names, naming the spec.
        """
        body, _, split = text.partition("@")
        corpus, _, condition = body.partition(":")
        try:
            spec = cls(
                corpus=corpus,
                condition=condition or default_condition,
                split=(None if split == ALL_SPLITS else split) if split else default_split,
            )
        except DfpipeError as exc:
            raise ConfigError(f"bad data spec {text!r} (CORPUS[:CONDITION][@SPLIT]): {exc}") from exc
        return spec

    @classmethod
    def coerce(cls, data: DataSpec | str, *, default_condition: str, default_split: str | None) -> DataSpec:
        """``data`` itself, or the text parsed with these defaults (:meth:`parse`)."""
        if isinstance(data, cls):
            return data
        return cls.parse(data, default_condition=default_condition, default_split=default_split)

    def __str__(self) -> str:
        return f"{self.corpus}:{self.condition}@{self.split or ALL_SPLITS}"


@dataclass
class ClipSet:
    """Clips of one data spec, in ``clip_id`` order, with the inputs a detector needs.

    Attributes:
        meta: one row per clip: ``clip_id, corpus, condition, label`` and :data:`GROUPING`.
        labels: ``(N,)`` float32, 1 = spoof.
        mel: ``(N, 2, n_mels, frames)`` float16, or None.
        lfcc: ``(N, n_lfcc, frames)`` float16, or None.
        waveform: ``(N, clip_samples)`` float32, or None.
    """

    meta: pa.Table
    labels: np.ndarray
    mel: np.ndarray | None = None
    lfcc: np.ndarray | None = None
    waveform: np.ndarray | None = None

    def __len__(self) -> int:
        return self.meta.num_rows

    def subset(self, index: np.ndarray) -> ClipSet:
        """The clips at ``index`` (positions)."""
        return ClipSet(
            meta=self.meta.take(pa.array(index, pa.int64())),
            labels=self.labels[index],
            **{name: None if (a := getattr(self, name)) is None else a[index]
               for name in ("mel", "lfcc", "waveform")},
        )

    def batch(self, index: np.ndarray | slice) -> tuple[Batch, torch.Tensor]:
        """``(Batch, labels)`` of the clips at ``index``, as float32 CPU tensors."""
        inputs = {name: None if (a := getattr(self, name)) is None else torch.from_numpy(np.asarray(a[index], np.float32))
                  for name in ("mel", "lfcc", "waveform")}
        return Batch(**inputs), torch.from_numpy(self.labels[index])


def load_clip_set(lake: Lake, spec: DataSpec, needs: Collection[str], frontend: FrontendConfig, *,
                  clip_ids: Collection[str] | None = None) -> ClipSet:
    """Read the clips of ``spec`` with the inputs in ``needs`` (``mel``, ``lfcc``, ``waveform``).

    Clips whose condition has no audio/features row (rejected by an earlier stage, where
    the ``rejects`` table says why) are left out.

    Args:
        clip_ids: only these clips of the spec (a sample drawn by the caller); ``None``: all.
            Only their inputs are read (features filtered in the scan, waveforms decoded).

    Raises:
        DfpipeError: no clip of the spec has its inputs, saying which stage to run.
    """
    clip_filter = pc.field("corpus") == spec.corpus
    if spec.split is not None:
        clip_filter &= pc.field("split") == spec.split
    if clip_ids is not None:
        clip_filter &= pc.field("clip_id").isin(list(clip_ids))
    meta = lake.read("clips", columns=["clip_id", "corpus", "label", *GROUPING], filter=clip_filter)
    if meta.num_rows == 0:
        raise DfpipeError(f"{spec}: no clips in the lake (run `dfpipe ingest --corpus {spec.corpus}` "
                          "first, or check the split name)")
    meta = meta.sort_by("clip_id")
    arrays: dict[str, np.ndarray] = {}
    feature_inputs = [name for name in ("mel", "lfcc") if name in needs]
    if feature_inputs:
        present, found = _read_features(lake, spec, frontend, feature_inputs, meta.column("clip_id"),
                                        only=clip_ids is not None)
        meta, arrays = meta.filter(present), found
    if "waveform" in needs:
        present, waves = _read_waveforms(lake, spec, frontend, meta.column("clip_id"))
        arrays = {k: v[present.to_numpy(zero_copy_only=False)] for k, v in arrays.items()}
        meta, arrays["waveform"] = meta.filter(present), waves
    if meta.num_rows == 0:
        stage = "features" if feature_inputs else "condition"
        raise DfpipeError(f"{spec}: none of its clips has {'features' if feature_inputs else 'audio'} for "
                          f"condition {spec.condition!r} (run `dfpipe {stage} --corpus {spec.corpus} "
                          f"--condition{'' if feature_inputs else 's'} {spec.condition}` first)")
    labels = pc.equal(meta.column("label"), "spoof").to_numpy(zero_copy_only=False).astype(np.float32)
    meta = meta.append_column("condition", pa.array([spec.condition] * meta.num_rows, pa.string()))
    return ClipSet(meta=meta, labels=labels, **arrays)


def _read_features(lake: Lake, spec: DataSpec, frontend: FrontendConfig, inputs: list[str],
                   clip_ids: pa.ChunkedArray, only: bool = False) -> tuple[pa.ChunkedArray, dict[str, np.ndarray]]:
    """The features of ``clip_ids``; ``only``: filter the scan to them (a sample, not a whole spec)."""
    shapes = {"mel": frontend.mel_shape, "lfcc": frontend.lfcc_shape}
    out = {name: np.zeros((len(clip_ids), *shapes[name]), np.float16) for name in inputs}
    position = {cid: i for i, cid in enumerate(clip_ids.to_pylist())}
    seen = np.zeros(len(clip_ids), bool)
    for ids, mel, lfcc in iter_feature_batches(lake, spec.corpus, spec.condition, frontend=frontend,
                                               clip_ids=list(position) if only else None):
        rows = np.array([position.get(cid, -1) for cid in ids])
        keep = rows >= 0
        for name, values in (("mel", mel), ("lfcc", lfcc)):
            if name in out:
                out[name][rows[keep]] = values.numpy()[keep]
        seen[rows[keep]] = True
    return pa.chunked_array([seen]), {name: array[seen] for name, array in out.items()}


def _read_waveforms(lake: Lake, spec: DataSpec, frontend: FrontendConfig,
                    clip_ids: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Decode each clip's audio of ``spec.condition`` (``raw``: the ingested source file)."""
    position = {cid: i for i, cid in enumerate(clip_ids.to_pylist())}
    out = np.zeros((len(clip_ids), frontend.audio.clip_samples), np.float32)
    seen = np.zeros(len(clip_ids), bool)
    if spec.condition == RAW_CONDITION:
        table, column, where = "clips", "source_uri", pc.field("corpus") == spec.corpus
    else:
        table, column = "audio", "audio_bytes"
        where = (pc.field("corpus") == spec.corpus) & (pc.field("condition") == spec.condition)
    for record_batch in lake.dataset(table).scanner(columns=["clip_id", column], filter=where).to_batches():
        for cid, value in zip(record_batch.column("clip_id").to_pylist(), record_batch.column(column).to_pylist()):
            row = position.get(cid)
            if row is None:
                continue
            try:
                out[row] = load_clip(read_source(value) if spec.condition == RAW_CONDITION else value, frontend.audio)
            except RejectedInput:
                continue  # an earlier stage reads the same audio and wrote the rejects row
            seen[row] = True
    return pa.chunked_array([seen]), out[seen]


def load_balanced_clip_set(lake: Lake, spec: DataSpec, needs: Collection[str], frontend: FrontendConfig,
                           per_class: int | None, seed: int) -> ClipSet:
    """A seeded, balanced sample of ``spec``: ``per_class`` clips of each label, read by
    :func:`load_clip_set` (only the sampled clips' inputs are read). ``per_class=None``
    takes the smaller label's count: the majority class undersampled to the minority's
    (training's ``balance: undersample``).

    Only clips that have the inputs the detector needs are eligible (``features`` rows of
    the spec's condition and front-end version for mel/LFCC detectors; waveform detectors
    draw from every clip and lose the ones whose audio does not decode). Within a label,
    clips are ordered by ``stable_id(seed, clip_id)`` and the first ``per_class`` taken, so
    the draw does not depend on file order and grows monotonically with ``per_class``. A
    label with fewer clips contributes all it has.

    Returns:
        A :class:`ClipSet` in ``clip_id`` order.

    Raises:
        DfpipeError: a label has no eligible clip (saying which stage to run), or fewer
            than 3 clips in all.
    """
    where = pc.field("corpus") == spec.corpus
    if spec.split is not None:
        where &= pc.field("split") == spec.split
    clips = lake.read("clips", columns=["clip_id", "label"], filter=where)
    if set(needs) <= {"mel", "lfcc"}:
        made = lake.read("features", columns=["clip_id"], partition={"corpus": spec.corpus},
                         filter=(pc.field("condition") == spec.condition)
                         & (pc.field("frontend_version") == frontend.version))
        clips = clips.filter(pc.is_in(clips.column("clip_id"), made.column("clip_id").combine_chunks()))
    by_label = {label: clips.filter(pc.field("label") == label).column("clip_id").to_pylist()
                for label in ("spoof", "bonafide")}
    for label, ids in by_label.items():
        if not ids:
            raise DfpipeError(f"{spec}: no {label} clip with inputs for this detector (ingest the corpus and "
                              f"run `dfpipe features --corpus {spec.corpus} --condition {spec.condition}`)")
    if per_class is None:
        per_class = min(len(ids) for ids in by_label.values())
    chosen = [cid for ids in by_label.values() for cid in sorted(ids, key=lambda cid: stable_id(str(seed), cid))[:per_class]]
    if len(chosen) < 3:
        raise DfpipeError(f"{spec}: only one clip of each label; at least 3 clips are needed")
    return load_clip_set(lake, spec, needs, frontend, clip_ids=chosen)
