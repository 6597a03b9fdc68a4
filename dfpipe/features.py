"""The features stage: log-mel + delta and LFCC arrays of a (corpus, condition) into ``features``.

For each clip of one corpus under one condition, :func:`feature_shard` reads the encoded
audio (``audio.audio_bytes``, or the original file from ``clips.source_uri`` for the
condition ``raw``) in Arrow record batches, makes the 3 s clip with
:func:`dfpipe.frontend.load_clip`, runs :class:`~dfpipe.frontend.MelFrontend` and
:class:`~dfpipe.frontend.LFCCFrontend` on batches of clips, and writes one ``features`` row per
clip: float16 little-endian bytes plus their shape (``mel`` ``[2, 128, 301]``, ``lfcc``
``[60, 301]`` at the defaults), keyed by ``frontend_version`` (a hash of
:class:`~dfpipe.config.FrontendConfig`) so a changed parameter recomputes instead of mixing.

float16 keeps ~3 significant digits: ample for normalised log-mel (values within about
±10), and it halves the arrays: at the defaults a clip's mel is 2 x 128 x 301 values, 308 KB
as float32 and 154 KB as the float16 bytes stored (LFCC: 36 KB), before Parquet's zstd.

Encoding and reading back live in :mod:`dfpipe.feature_table` (trainers use
:func:`~dfpipe.feature_table.iter_feature_batches`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from dfpipe.conditions.grammar import parse_condition
from dfpipe.config import RAW_CONDITION, FeaturesConfig, FrontendConfig
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.feature_table import to_binary
from dfpipe.frontend import LFCCFrontend, MelFrontend, load_clip
from dfpipe.lake import Lake, stable_id
from dfpipe.stage_kit import (
    Executor,
    StageSummary,
    committed,
    map_shards,
    read_source,
    reject_row,
    rejects_table,
    shard_committed,
    split_filter,
)

STAGE = "features"
"""``rejects.stage`` of this stage."""


@dataclass(frozen=True)
class FeatureShard:
    """One unit of work: some clips of one corpus under one condition."""

    lake_uri: str
    corpus: str
    condition: str
    shard_id: str
    clip_ids: tuple[str, ...]


def _source_table(condition: str) -> tuple[str, str, ds.Expression | None]:
    """(table, bytes-or-uri column, filter) holding the audio of ``condition``."""
    if condition == RAW_CONDITION:
        return "clips", "source_uri", None
    return "audio", "audio_bytes", ds.field("condition") == condition


def plan_features(lake_uri: str, corpus: str, condition: str, config: FeaturesConfig | None = None, *,
                  splits: Iterable[str] | None = None) -> list[FeatureShard]:
    """Shards of the clips of (corpus, condition) with no features row at this front-end version
    and no ``features`` rejects row yet; ``splits``: only clips of these ``clips.split`` values
    (``None``: every clip; a later call with more splits plans only the clips still missing).

    Raises:
        ConfigError: bad condition name, or no audio for it (run ``dfpipe condition`` first).
    """
    config = config or FeaturesConfig()
    parse_condition(condition, config.frontend.audio.sample_rate)
    lake = Lake(lake_uri)
    partition = {"corpus": corpus}
    table, _, where = _source_table(condition)
    available = set(lake.read(table, columns=["clip_id"], partition=partition, filter=where).column("clip_id")
                    .to_pylist())
    if splits is not None:  # the audio table has no split: the clips table says which clips
        available &= set(lake.read("clips", columns=["clip_id"], partition=partition,
                                   filter=split_filter(splits)).column("clip_id").to_pylist())
    if not available:
        hint = "`dfpipe ingest`" if condition == RAW_CONDITION else f"`dfpipe condition --conditions {condition}`"
        where_split = "" if splits is None else f" split(s) {', '.join(sorted(set(splits))) or '(none)'}"
        raise ConfigError(f"no audio for corpus {corpus!r} condition {condition!r}{where_split} in {lake.uri}: "
                          f"run {hint}{'' if splits is None else ' for those splits'} first")
    version = config.frontend.version
    done = committed(lake, "features", STAGE, partition, condition=condition,
                     made_filter=ds.field("frontend_version") == version).keys()
    pending = sorted(available - done)
    return [
        FeatureShard(lake_uri, corpus, condition,
                     stable_id(STAGE, corpus, condition, version, *pending[i:i + config.clips_per_shard]),
                     tuple(pending[i:i + config.clips_per_shard]))
        for i in range(0, len(pending), config.clips_per_shard)
    ]


@functools.lru_cache(maxsize=4)
def _frontends(config: FrontendConfig, device: str) -> tuple[MelFrontend, LFCCFrontend]:
    """One pair of front-end modules per worker process (buffers built once)."""
    return MelFrontend(config).to(device).eval(), LFCCFrontend(config).to(device).eval()


def compute_features(waves: np.ndarray, config: FrontendConfig, batch_size: int,
                     device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mel+delta and LFCC of clips, batched: ``(N, samples)`` -> ``(N, 2, 128, 301)``, ``(N, 60, 301)``.

    Runs on CUDA when present (``device=None``), else the CPU; returns float32 numpy.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    mel_frontend, lfcc_frontend = _frontends(config, device)
    mels, lfccs = [], []
    with torch.inference_mode():
        for start in range(0, waves.shape[0], batch_size):
            batch = torch.from_numpy(waves[start:start + batch_size]).to(device)
            mels.append(mel_frontend(batch).cpu().numpy())
            lfccs.append(lfcc_frontend(batch).cpu().numpy())
    return np.concatenate(mels), np.concatenate(lfccs)


def feature_shard(shard: FeatureShard, config: FeaturesConfig | None = None) -> StageSummary:
    """Compute and commit the features of one shard; undecodable clips become ``rejects`` rows.

    Reads the shard's audio as Arrow record batches (``config.batch_size`` rows each),
    so memory stays at about one batch of encoded files plus the shard's features.
    """
    config = config or FeaturesConfig()
    frontend = config.frontend
    lake = Lake(shard.lake_uri)
    partition = {"corpus": shard.corpus}
    if shard_committed(lake, "features", shard.shard_id, partition):
        return StageSummary()
    table, column, where = _source_table(shard.condition)
    wanted = ds.field("clip_id").isin(list(shard.clip_ids))
    scanner = lake.dataset(table, partition).scanner(
        columns=["clip_id", column], filter=wanted if where is None else wanted & where,
        batch_size=config.batch_size)
    ids: list[str] = []
    waves: list[np.ndarray] = []
    rejects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for batch in scanner.to_batches():
        for clip_id, source in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            if clip_id in seen:  # a clip written twice upstream: one features row
                continue
            seen.add(clip_id)
            try:
                data = read_source(source) if shard.condition == RAW_CONDITION else source
                waves.append(load_clip(data, frontend.audio))
                ids.append(clip_id)
            except RejectedInput as exc:
                rejects.append(reject_row(
                    STAGE, source if shard.condition == RAW_CONDITION else f"audio:{clip_id}", exc.reason,
                    exc.detail, corpus=shard.corpus, clip_id=clip_id, condition=shard.condition))
    # Either shard marks this shard as done (see dfpipe.stage_kit.shard_committed).
    if ids:
        mel, lfcc = compute_features(np.stack(waves), frontend, config.batch_size)
        # The inputs are finite (decode rejects NaN/Inf), so a non-finite feature is a front-end
        # fault on that clip: its reject, never a row that would poison a training batch.
        finite = np.isfinite(mel).all(axis=(1, 2, 3)) & np.isfinite(lfcc).all(axis=(1, 2))
        rejects.extend(reject_row(STAGE, f"audio:{clip_id}", "non_finite_features",
                                  "the front end gave NaN or infinite values", corpus=shard.corpus,
                                  clip_id=clip_id, condition=shard.condition)
                       for clip_id, ok in zip(ids, finite, strict=True) if not ok)
        ids, mel, lfcc = [i for i, ok in zip(ids, finite, strict=True) if ok], mel[finite], lfcc[finite]
    if rejects:
        lake.write_shard("rejects", rejects_table(rejects), shard=shard.shard_id, partition=partition,
                         mode="overwrite")
    if ids:
        n = len(ids)
        rows = pa.table({
            "clip_id": ids, "corpus": [shard.corpus] * n, "condition": [shard.condition] * n,
            "frontend_version": [frontend.version] * n,
            "mel": to_binary(mel), "mel_shape": [list(mel.shape[1:])] * n,
            "lfcc": to_binary(lfcc), "lfcc_shape": [list(lfcc.shape[1:])] * n,
        })
        lake.write_shard("features", rows, shard=shard.shard_id, partition=partition, mode="overwrite",
                         row_group_size=config.row_group_size)
    return StageSummary(shards=1, rows=len(ids), rejects=len(rejects))


def run_features(lake_uri: str, corpus: str, condition: str, config: FeaturesConfig | None = None, *,
                 executor: Executor | None = None, splits: Iterable[str] | None = None) -> StageSummary:
    """Plan and compute every missing features row of (corpus, condition) (no Prefect needed).

    Args:
        executor: ``None`` (here) or anything with ``submit`` (a Dask Client).
        splits: only clips of these splits (``None``: every clip), :func:`plan_features`.

    Example:
        >>> run_features("lake", "demo", "mp3_128k")                   # doctest: +SKIP
    """
    config = config or FeaturesConfig()
    shards = plan_features(lake_uri, corpus, condition, config, splits=splits)
    return StageSummary.total(map_shards(functools.partial(feature_shard, config=config), shards, executor))
