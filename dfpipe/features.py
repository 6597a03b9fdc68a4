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
±10), and it halves the table (154 KB -> 77 KB of mel per clip).

Trainers read it back with :func:`iter_feature_batches`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch

from dfpipe.conditions import RAW, StageSummary, parse_condition, read_source
from dfpipe.config import FeaturesConfig, FrontendConfig
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.executors import Executor, map_shards
from dfpipe.frontend import LFCCFrontend, MelFrontend, load_clip
from dfpipe.lake import Lake, stable_id

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
    if condition == RAW:
        return "clips", "source_uri", None
    return "audio", "audio_bytes", ds.field("condition") == condition


def plan_features(lake_uri: str, corpus: str, condition: str, config: FeaturesConfig | None = None
                  ) -> list[FeatureShard]:
    """Shards of the clips of (corpus, condition) with no features row at this front-end version
    and no ``features`` rejects row yet.

    Raises:
        ConfigError: bad condition name, or no audio for it (run ``dfpipe condition`` first).
    """
    config = config or FeaturesConfig()
    parse_condition(condition, config.frontend.audio.sample_rate)
    lake = Lake(lake_uri)
    partition = {"corpus": corpus}
    table, _, where = _source_table(condition)
    available = lake.read(table, columns=["clip_id"], partition=partition, filter=where).column("clip_id")
    if len(available) == 0:
        hint = "`dfpipe ingest`" if condition == RAW else f"`dfpipe condition --conditions {condition}`"
        raise ConfigError(f"no audio for corpus {corpus!r} condition {condition!r} in {lake.uri}: run {hint} first")
    version = config.frontend.version
    made = lake.read("features", columns=["clip_id"], partition=partition,
                     filter=(ds.field("condition") == condition) & (ds.field("frontend_version") == version))
    failed = lake.read("rejects", columns=["clip_id"], partition=partition,
                       filter=(ds.field("stage") == STAGE) & (ds.field("condition") == condition))
    done = pa.concat_arrays([made.column("clip_id").combine_chunks(), failed.column("clip_id").combine_chunks()])
    pending = sorted(set(pc.filter(available, pc.invert(pc.is_in(available, done))).to_pylist()))
    return [
        FeatureShard(lake_uri, corpus, condition,
                     stable_id(STAGE, corpus, condition, version, *pending[i:i + config.clips_per_shard]),
                     tuple(pending[i:i + config.clips_per_shard]))
        for i in range(0, len(pending), config.clips_per_shard)
    ]


def _to_binary(array: np.ndarray) -> pa.Array:
    """``(B, ...)`` float array -> ``large_binary`` array of B float16 little-endian blobs, no copies per row."""
    flat = np.ascontiguousarray(array, dtype="<f2").reshape(array.shape[0], -1)
    row_bytes = flat.shape[1] * 2
    offsets = np.arange(flat.shape[0] + 1, dtype=np.int64) * row_bytes
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), flat.shape[0],
                                            [None, pa.py_buffer(offsets), pa.py_buffer(flat)])


def _from_binary(column: pa.Array, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`_to_binary`: a ``large_binary`` column -> ``(B, *shape)`` float32."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(column)
    if n == 0:
        return np.zeros((0, *shape), np.float32)
    offsets = np.frombuffer(column.buffers()[1], np.int64)[column.offset:column.offset + n + 1]
    data = np.frombuffer(column.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    if not np.all(np.diff(offsets) == int(np.prod(shape)) * 2):
        raise ConfigError(f"features rows do not all have shape {list(shape)}")
    return data.view("<f2").reshape(n, *shape).astype(np.float32)


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
    if lake.has_shard("features", shard.shard_id, partition) or lake.has_shard("rejects", shard.shard_id, partition):
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
                data = read_source(source) if shard.condition == RAW else source
                waves.append(load_clip(data, frontend.audio))
                ids.append(clip_id)
            except RejectedInput as exc:
                rejects.append({"stage": STAGE, "corpus": shard.corpus,
                                "source_uri": source if shard.condition == RAW else f"audio:{clip_id}",
                                "clip_id": clip_id, "condition": shard.condition, "reason": exc.reason,
                                "detail": exc.detail})
    if rejects:
        lake.write_shard("rejects", pa.Table.from_pylist(rejects), shard=shard.shard_id, partition=partition,
                         mode="overwrite")
    if ids:
        mel, lfcc = compute_features(np.stack(waves), frontend, config.batch_size)
        n = len(ids)
        rows = pa.table({
            "clip_id": ids, "corpus": [shard.corpus] * n, "condition": [shard.condition] * n,
            "frontend_version": [frontend.version] * n,
            "mel": _to_binary(mel), "mel_shape": [list(mel.shape[1:])] * n,
            "lfcc": _to_binary(lfcc), "lfcc_shape": [list(lfcc.shape[1:])] * n,
        })
        lake.write_shard("features", rows, shard=shard.shard_id, partition=partition, mode="overwrite",
                         row_group_size=config.row_group_size)
    return StageSummary(shards=1, rows=len(ids), rejects=len(rejects))


def run_features(lake_uri: str, corpus: str, condition: str, config: FeaturesConfig | None = None, *,
                 executor: Executor | None = None) -> StageSummary:
    """Plan and compute every missing features row of (corpus, condition) (no Prefect needed).

    Args:
        executor: ``None`` (here) or anything with ``submit`` (a Dask Client).

    Example:
        >>> run_features("lake", "demo", "mp3_128k")                   # doctest: +SKIP
    """
    config = config or FeaturesConfig()
    shards = plan_features(lake_uri, corpus, condition, config)
    return StageSummary.total(map_shards(functools.partial(feature_shard, config=config), shards, executor))


def iter_feature_batches(lake: Lake | str, corpus: str, condition: str, clip_ids: Sequence[str] | None = None,
                         batch_size: int = FeaturesConfig.batch_size, frontend: FrontendConfig | None = None
                         ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Stream a (corpus, condition)'s features for training or scoring, batch by batch.

    Reads Arrow record batches (never row by row) and turns each into two float32 tensors.

    Args:
        lake: a :class:`~dfpipe.lake.Lake` or its root URI.
        corpus, condition: which features (``condition`` as written by the features stage).
        clip_ids: only these clips (any order; rows come in lake order); ``None``: all.
        batch_size: clips per yielded batch (the last one may be smaller).
        frontend: which front-end version to read; defaults to ``FrontendConfig()``.

    Yields:
        ``(clip_ids, mel, lfcc)``: a list of B ids, ``mel`` ``(B, 2, 128, 301)`` and ``lfcc``
        ``(B, 60, 301)`` float32 CPU tensors (shapes at the default front end).

    Example:
        >>> for ids, mel, lfcc in iter_feature_batches("lake", "demo", "flac", batch_size=128):
        ...     logits = model(mel.to(device))                             # doctest: +SKIP
    """
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    frontend = frontend or FrontendConfig()
    where = (ds.field("condition") == condition) & (ds.field("frontend_version") == frontend.version)
    if clip_ids is not None:
        where = where & ds.field("clip_id").isin(list(clip_ids))
    scanner = lake.dataset("features", {"corpus": corpus}).scanner(
        columns=["clip_id", "mel", "lfcc"], filter=where, batch_size=batch_size)
    mel_shape, lfcc_shape = frontend.mel_shape, frontend.lfcc_shape
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(pending)
            yield _decode_batch(table.slice(0, batch_size), mel_shape, lfcc_shape)
            rest = table.slice(batch_size)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield _decode_batch(pa.Table.from_batches(pending), mel_shape, lfcc_shape)


def _decode_batch(table: pa.Table, mel_shape: Sequence[int], lfcc_shape: Sequence[int]
                  ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    return (table.column("clip_id").to_pylist(),
            torch.from_numpy(_from_binary(table.column("mel"), mel_shape)),
            torch.from_numpy(_from_binary(table.column("lfcc"), lfcc_shape)))
