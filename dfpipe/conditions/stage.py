"""The condition stage: plan (clip, condition) shards, make their audio, commit the ``audio`` table.

Stage shape: :func:`plan_conditions` lists shards of (clip, condition) pairs with no
``audio`` row and no ``rejects`` row yet; :func:`condition_shard` reads the source files,
applies the condition (:func:`dfpipe.conditions.dsp.apply_condition`) and writes one
``audio`` shard (and one ``rejects`` shard for clips ffmpeg could not handle) atomically;
:func:`run_conditions` does both with an optional executor. Re-running skips what is done
(rejected clips included: delete their ``rejects`` rows to retry them).

Reproducibility: the per-clip seed is ``stable_id(clip_id, condition, base seed)`` as an
int63 (:func:`clip_seed`), stored in ``audio.seed`` with every drawn parameter in
``audio.condition_params`` (JSON).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dfpipe.audio_io import decode
from dfpipe.conditions.dsp import apply_condition, stored_format
from dfpipe.conditions.grammar import parse_condition
from dfpipe.config import RAW_CONDITION, ConditionsConfig
from dfpipe.errors import ConfigError, RejectedInput
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

STAGE = "condition"
"""``rejects.stage`` of this stage."""


@dataclass(frozen=True)
class ConditionShard:
    """One unit of work: some clips of one corpus under one condition."""

    lake_uri: str
    corpus: str
    condition: str
    shard_id: str
    clip_ids: tuple[str, ...]
    source_uris: tuple[str, ...]


def clip_seed(clip_id: str, condition: str, base_seed: int) -> int:
    """Per-clip seed: ``stable_id(clip_id, condition, base_seed)`` as a non-negative int63."""
    return int(stable_id(clip_id, condition, str(base_seed), length=16), 16) >> 1


def plan_conditions(lake_uri: str, corpus: str, conditions: Iterable[str],
                    config: ConditionsConfig | None = None, *,
                    splits: Iterable[str] | None = None) -> list[ConditionShard]:
    """Shards of (clip, condition) pairs of ``corpus`` that have no ``audio``/``rejects`` row yet.

    Args:
        lake_uri: the lake root. corpus: a corpus in the ``clips`` table.
        conditions: condition names; ``raw`` needs no work and is skipped.
        config: defaults to ``ConditionsConfig()`` (``clips_per_shard`` clips per shard).
        splits: only clips of these ``clips.split`` values (``None``: every clip); a later
            call with more splits plans only the clips still missing.

    Raises:
        ConfigError: a bad condition name (before any work starts), or no clips (in ``splits``).
    """
    config = config or ConditionsConfig()
    conditions = list(dict.fromkeys(conditions))
    for condition in conditions:
        parse_condition(condition, config.audio.sample_rate)
    lake = Lake(lake_uri)
    partition = {"corpus": corpus}
    clips = lake.read("clips", columns=["clip_id", "source_uri"], partition=partition, filter=split_filter(splits))
    if clips.num_rows == 0:
        where = "" if splits is None else f" in split(s) {', '.join(sorted(set(splits))) or '(none)'}"
        raise ConfigError(f"corpus {corpus!r} has no clips{where} in {lake.uri}: run `dfpipe ingest` first"
                          + ("" if splits is None else " (or check the split names)"))
    clips = clips.sort_by("clip_id")
    shards = []
    for condition in conditions:
        if condition == RAW_CONDITION:
            continue
        done = committed(lake, "audio", STAGE, partition, condition=condition).keys()
        pending = clips.filter(pc.invert(pc.is_in(clips.column("clip_id"), pa.array(sorted(done), pa.string()))))
        ids, uris = pending.column("clip_id").to_pylist(), pending.column("source_uri").to_pylist()
        for start in range(0, len(ids), config.clips_per_shard):
            chunk = tuple(ids[start:start + config.clips_per_shard])
            shards.append(ConditionShard(
                lake_uri=lake_uri, corpus=corpus, condition=condition,
                shard_id=stable_id(STAGE, corpus, condition, str(config.seed), *chunk),
                clip_ids=chunk, source_uris=tuple(uris[start:start + config.clips_per_shard])))
    return shards


def condition_shard(shard: ConditionShard, config: ConditionsConfig | None = None) -> StageSummary:
    """Make one shard's audio: decode each source, apply the condition, encode, commit.

    Clips ffmpeg cannot handle become ``rejects`` rows (stage ``condition``); the others
    become one ``audio`` shard. Both are written atomically. A shard whose ``audio`` or
    ``rejects`` shard is committed is skipped (:func:`dfpipe.stage_kit.shard_committed`).

    Returns:
        A :class:`~dfpipe.stage_kit.StageSummary` (rows written, rejects written).
    """
    config = config or ConditionsConfig()
    lake = Lake(shard.lake_uri)
    partition = {"corpus": shard.corpus}
    if shard_committed(lake, "audio", shard.shard_id, partition):
        return StageSummary()
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for clip_id, uri in zip(shard.clip_ids, shard.source_uris, strict=True):
        seed = clip_seed(clip_id, shard.condition, config.seed)
        try:
            wave = decode(read_source(uri), config.audio.sample_rate)
            data, params = apply_condition(wave, shard.condition, seed, config)
            params_json = _params_json(params)
        except RejectedInput as exc:
            rejects.append(reject_row(STAGE, uri, exc.reason, exc.detail, corpus=shard.corpus, clip_id=clip_id,
                                      condition=shard.condition))
            continue
        codec, container = stored_format(params["stored_codec"])
        rows.append({
            "clip_id": clip_id, "corpus": shard.corpus, "condition": shard.condition,
            "condition_params": params_json, "seed": seed,
            "codec": codec, "format": container, "sample_rate": config.audio.sample_rate,
            "duration_s": params["samples"] / config.audio.sample_rate, "audio_bytes": data,
        })
    # Either shard marks this shard as done (see shard_committed): if the process dies between
    # the two writes, a retry of this shard returns an empty summary, and the clips left
    # without an audio row are planned again by the next run.
    if rejects:
        lake.write_shard("rejects", rejects_table(rejects), shard=shard.shard_id, partition=partition,
                         mode="overwrite")
    if rows:
        lake.write_shard("audio", pa.Table.from_pylist(rows), shard=shard.shard_id, partition=partition,
                         mode="overwrite", row_group_size=64)
    return StageSummary(shards=1, rows=len(rows), rejects=len(rejects))


def _params_json(params: dict[str, Any]) -> str:
    """``audio.condition_params``: strict JSON, so a NaN or infinite value that a step measured
    is that clip's reject, never a row (``-Infinity`` is not JSON, and not a parameter)."""
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise RejectedInput("non_finite_params", f"a condition parameter is not finite: {params}") from exc


def run_conditions(lake_uri: str, corpus: str, conditions: Iterable[str], config: ConditionsConfig | None = None,
                   *, executor: Executor | None = None, splits: Iterable[str] | None = None) -> StageSummary:
    """Plan and make every missing (clip, condition) of ``corpus`` (no Prefect needed).

    Args:
        executor: ``None`` (here, in order) or anything with ``submit`` (a Dask Client).
        splits: only clips of these splits (``None``: every clip), :func:`plan_conditions`.

    Returns:
        The total :class:`~dfpipe.stage_kit.StageSummary`.

    Example:
        >>> run_conditions("lake", "demo", ["flac", "mp3_128k", "corrupt+mp3_64k"])  # doctest: +SKIP
    """
    config = config or ConditionsConfig()
    shards = plan_conditions(lake_uri, corpus, conditions, config, splits=splits)
    return StageSummary.total(map_shards(functools.partial(condition_shard, config=config), shards, executor))
