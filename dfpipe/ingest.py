"""Ingest: probe a corpus' files into the ``clips`` table (bad ones into ``rejects``).

Plain functions, no Prefect (:mod:`dfpipe.flows.ingest` wires them):

1. :func:`plan_ingest` takes an adapter's items and rejects (:mod:`dfpipe.corpora`), drops
   every source the lake already holds for the corpus (in ``clips`` or ``rejects``), settles
   duplicate content, and cuts the rest into shards of ``IngestConfig.files_per_shard``.
2. :func:`ingest_shard` (one per shard, on any worker) reads each file, hashes it, probes it
   with :func:`dfpipe.audio_io.probe`, and commits one ``clips`` and one ``rejects`` shard
   atomically (:meth:`dfpipe.lake.Lake.write_shard`).
3. :func:`ingest` runs both with ``executor=None`` or a Dask ``Client``.

``clip_id = stable_id(corpus, sha256(bytes))``, so a clip's id never depends on its path.
Sources are lake strings (:attr:`dfpipe.corpora.CorpusItem.source`): a file name that is not
UTF-8 is a ``file://`` URI of its exact bytes, read, hashed and probed like any other file.
A killed run loses only its uncommitted shards; re-running re-plans exactly the sources
still missing and ends with the same rows as an uninterrupted run (shard files may be cut
differently; the tables' rows are identical).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from dfpipe.audio_io import DECODER, decoder_version, probe
from dfpipe.config import IngestConfig
from dfpipe.corpora import ADAPTERS, Adapter, CorpusEntry, CorpusItem, CorpusReject
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.parquet_source import is_row_uri
from dfpipe.schemas import CLIPS
from dfpipe.stage_kit import (
    Executor,
    committed,
    local_path,
    map_shards,
    read_source,
    reject_row,
    rejects_table,
)

STAGE = "ingest"
DEFAULT_CONFIG = IngestConfig()
_HASH_CHUNK_BYTES = 1 << 20  # read size while hashing: large enough for disk throughput
_DECODER_VERSION = decoder_version()


@dataclass(frozen=True)
class PlannedFile:
    """A corpus file to probe; ``duplicate_of`` names an earlier file with the same bytes."""

    item: CorpusItem
    duplicate_of: str | None = None


@dataclass(frozen=True)
class IngestShard:
    """One unit of work and of commit: files to probe plus rejects decided at planning."""

    shard_id: str
    files: tuple[PlannedFile, ...]
    rejects: tuple[CorpusReject, ...]


@dataclass(frozen=True)
class IngestPlan:
    """What :func:`plan_ingest` decided: shards to run, sources skipped as already done."""

    corpus: str
    shards: tuple[IngestShard, ...]
    skipped: int
    hashed: int
    """Files hashed at planning to settle duplicates (see :func:`plan_ingest`)."""


@dataclass(frozen=True)
class ShardResult:
    """Rows one shard committed."""

    shard_id: str
    clips: int
    rejects: int
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestSummary:
    """What one :func:`ingest` call added to the lake."""

    lake_uri: str
    corpus: str
    clips: int
    rejects: int
    skipped: int
    shards: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)
    """Rejects of this run by reason."""


def corpus_entries(corpus_format: str, path: str | os.PathLike[str], config: IngestConfig) -> Iterator[CorpusEntry]:
    """The items and rejects of the corpus at ``path`` read by the adapter ``corpus_format``.

    ``config.adapter_options`` go to the adapter as keyword arguments; an option the
    adapter does not take is refused here, before any work, naming it as a command-line
    option (``--label-column does not apply to --format folder``).

    Raises:
        ConfigError: unknown format (naming the known ones), an option the adapter does not
            take, or the adapter's own errors.
    """
    adapter = check_adapter_options(corpus_format, config)
    entries = adapter(path, allow_outside_root=config.allow_outside_root, **dict(config.adapter_options))
    if config.sample_per_split is None:
        return entries
    return sample_entries(entries, config.sample_per_split, config.sample_seed)


def sample_entries(entries: Iterable[CorpusEntry], per_split: int, seed: int) -> Iterator[CorpusEntry]:
    """At most ``per_split`` items of each split, stratified by label; rejects unchanged.

    Each smaller label of a split keeps its share of ``per_split`` (rounded, at least one
    clip) and the largest the rest, so a 1:9 corpus stays 1:9; within a label the items with the lowest seeded hash of their
    relpath are kept (stable when the corpus grows). Kept items and rejects come in the
    adapter's order.
    """
    entries = list(entries)
    groups: dict[str | None, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, entry in enumerate(entries):
        if isinstance(entry, CorpusItem):
            groups[entry.split][entry.label].append(index)
    kept: set[int] = set()
    for by_label in groups.values():
        total = sum(len(members) for members in by_label.values())
        *smaller, largest = sorted(by_label.values(), key=len)
        quotas = [max(1, round(per_split * len(members) / total)) for members in smaller]
        for members, quota in zip([*smaller, largest], [*quotas, per_split - sum(quotas)]):
            members.sort(key=lambda i: stable_id(str(seed), entries[i].relpath))
            kept.update(members[:quota])
    return (entry for index, entry in enumerate(entries) if isinstance(entry, CorpusReject) or index in kept)


def check_adapter_options(corpus_format: str, config: IngestConfig) -> Adapter:
    """The adapter of ``corpus_format``, once it is known to take every ``config.adapter_options``.

    Raises:
        ConfigError: unknown format, or an option the adapter does not take (named as the
            command-line option, with the ones it does take).
    """
    try:
        adapter = ADAPTERS[corpus_format]
    except KeyError:
        raise ConfigError(f"unknown corpus format {corpus_format!r}; known: {', '.join(ADAPTERS)}") from None
    parameters = inspect.signature(adapter).parameters.values()
    takes = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"allow_outside_root"}
    for name in sorted(set(dict(config.adapter_options)) - takes):
        accepted = ", ".join(f"--{o.replace('_', '-')}" for o in sorted(takes)) or "no options"
        raise ConfigError(f"--{name.replace('_', '-')} does not apply to --format {corpus_format} "
                          f"(it takes {accepted})")
    return adapter


def plan_ingest(lake_uri: str, corpus: str, entries: Iterable[CorpusEntry], config: IngestConfig) -> IngestPlan:
    """Shards of the entries the lake does not hold yet.

    Duplicate content (two files, same bytes) would give two rows one ``clip_id``. Shards
    run in parallel and in any order, so only the planner sees every file; it settles
    duplicates here, deterministically: the first copy is the one already in the lake,
    else the smallest source path, and every other copy becomes a ``duplicate`` reject
    naming it. Identical bytes imply identical sizes, so on a first run only files whose
    size is shared are hashed (few, unless every file has the same length); on a resumed
    or incremental run every remaining file is hashed, because the first copy may already
    be committed (as a clip, or as a reject carrying its content id).

    Args:
        lake_uri: lake root.
        corpus: corpus name (a safe path segment).
        entries: an adapter's output (:func:`corpus_entries`).
        config: ``files_per_shard`` sets the shard size.

    Raises:
        LakeError: when ``corpus`` is not a safe name.
    """
    check_name("corpus", corpus)
    done, first_copy = _already_in_lake(Lake(lake_uri), corpus)
    todo: dict[str, CorpusEntry] = {}
    listed: set[str] = set()
    skipped = 0
    for entry in entries:
        if isinstance(entry, CorpusItem):
            if entry.source in listed:  # e.g. two protocol files naming one file
                entry = CorpusReject(entry.origin, "duplicate_entry", f"{entry.relpath} is listed more than once")
            else:
                listed.add(entry.source)
        if entry.source in done:
            skipped += 1
        else:
            todo[entry.source] = entry
    items = [e for e in todo.values() if isinstance(e, CorpusItem)]
    content = _content_ids(corpus, items, hash_all=bool(done))
    by_content: dict[str, list[str]] = defaultdict(list)
    for source, clip_id in sorted(content.items()):
        by_content[clip_id].append(source)
    duplicate_of = {
        source: first_copy.get(clip_id, copies[0])
        for clip_id, copies in by_content.items()
        for source in copies
        if source != first_copy.get(clip_id, copies[0])
    }
    sources = sorted(todo)
    shards = []
    for start in range(0, len(sources), config.files_per_shard):
        chunk = [todo[source] for source in sources[start : start + config.files_per_shard]]
        shards.append(IngestShard(
            shard_id=stable_id(STAGE, corpus, *(entry.source for entry in chunk)),
            files=tuple(PlannedFile(e, duplicate_of.get(e.source)) for e in chunk if isinstance(e, CorpusItem)),
            rejects=tuple(e for e in chunk if isinstance(e, CorpusReject)),
        ))
    return IngestPlan(corpus=corpus, shards=tuple(shards), skipped=skipped, hashed=len(content))


def ingest_shard(lake_uri: str, corpus: str, shard: IngestShard, config: IngestConfig) -> ShardResult:
    """Probe one shard's files and commit its ``clips`` and ``rejects`` rows.

    Each file is read once: its bytes are hashed (``content_sha256``, ``clip_id``) and probed
    (:func:`dfpipe.audio_io.probe`, a full decode so damage is caught). Every failure is a
    ``rejects`` row (stage ``ingest``) with the reason: ``missing``, ``not_a_file``,
    ``unreadable``, ``empty``, ``undecodable``, ``not_audio``, ``no_samples``, ``too_short``
    (< ``config.min_duration_s``), ``duplicate``, or the adapter's. Re-running a committed
    shard rewrites nothing (``mode="skip"``).

    Returns:
        The rows committed, by table, and the rejects by reason.
    """
    clips: list[dict[str, object]] = []
    rejects = [reject_row(STAGE, r.source, r.reason, r.detail, corpus=corpus) for r in shard.rejects]
    for planned in shard.files:
        item, data, clip_id = planned.item, None, None
        try:
            data = read_source(item.source)
            sha = hashlib.sha256(data).hexdigest()
            clip_id = stable_id(corpus, sha) if data else None
            if planned.duplicate_of is not None:
                raise RejectedInput("duplicate", f"same bytes as {planned.duplicate_of}")
            clips.append(_clip_row(corpus, item, data, sha, config))
        except RejectedInput as exc:
            rejects.append(reject_row(STAGE, item.source, exc.reason, f"{item.relpath}: {exc.detail}", corpus=corpus,
                                      clip_id=clip_id))
    lake = Lake(lake_uri)
    partition = {"corpus": corpus}
    # clips first: a crash between the two writes leaves only rejects to redo, and the
    # re-plan finds exactly those sources missing.
    if clips:
        lake.write_shard("clips", pa.Table.from_pylist(clips, schema=CLIPS), shard=shard.shard_id,
                         partition=partition, mode="skip")
    if rejects:
        lake.write_shard("rejects", rejects_table(rejects), shard=shard.shard_id,
                         partition=partition, mode="skip")
    return ShardResult(shard.shard_id, len(clips), len(rejects), dict(Counter(str(r["reason"]) for r in rejects)))


def ingest(
    lake_uri: str,
    corpus: str,
    entries: Iterable[CorpusEntry],
    config: IngestConfig = DEFAULT_CONFIG,
    executor: Executor | None = None,
) -> IngestSummary:
    """Plan, then run :func:`ingest_shard` on every shard (here, or on ``executor``).

    Args:
        lake_uri: lake root.
        corpus: corpus name.
        entries: an adapter's output, e.g. ``corpus_entries("folder", path, config)``.
        config: shard size, outside-root policy, minimum duration.
        executor: ``None`` (in this process) or anything with ``submit`` (a Dask Client).

    Example:
        >>> cfg = IngestConfig()                                                # doctest: +SKIP
        >>> ingest("lake", "demo", corpus_entries("folder", "corpus/", cfg), cfg)  # doctest: +SKIP
    """
    started = time.perf_counter()
    plan = plan_ingest(lake_uri, corpus, entries, config)
    work = functools.partial(ingest_shard, lake_uri, corpus, config=config)
    results = list(map_shards(work, plan.shards, executor))
    return summarize(lake_uri, plan, results, time.perf_counter() - started)


def summarize(lake_uri: str, plan: IngestPlan, results: Iterable[ShardResult], seconds: float) -> IngestSummary:
    """Add up the shard results of one run."""
    results = list(results)
    reasons: Counter[str] = Counter()
    for result in results:
        reasons.update(result.reasons)
    return IngestSummary(
        lake_uri=Lake(lake_uri).uri, corpus=plan.corpus, clips=sum(r.clips for r in results),
        rejects=sum(r.rejects for r in results), skipped=plan.skipped, shards=len(results),
        seconds=seconds, reasons=dict(sorted(reasons.items())),
    )


# -- helpers ------------------------------------------------------------------------------
def _already_in_lake(lake: Lake, corpus: str) -> tuple[set[str], dict[str, str]]:
    """Sources already in the lake for ``corpus``, and ``{clip_id: first source}``."""
    done = committed(lake, "clips", STAGE, {"corpus": corpus}, made_columns=["source_uri", "clip_id"],
                     rejected_columns=["source_uri", "clip_id", "reason"])
    clips, rejects = done.made, done.rejected
    first_copy = dict(zip(clips.column("clip_id").to_pylist(), clips.column("source_uri").to_pylist()))
    for source, clip_id, reason in zip(*(rejects.column(c).to_pylist() for c in ("source_uri", "clip_id", "reason"))):
        if clip_id is not None and reason != "duplicate":
            first_copy.setdefault(clip_id, source)
    return done.keys("source_uri"), first_copy


def _content_ids(corpus: str, items: list[CorpusItem], *, hash_all: bool) -> dict[str, str]:
    """``{source: clip_id}`` of the non-empty sources that may have a twin.

    A source is a regular file (its size from ``stat``) or audio embedded in a Parquet row
    (its size from the adapter, ``CorpusItem.size_bytes``; its bytes read through
    :func:`read_source`), so embedded duplicates are settled exactly like files.
    """
    sizes = {}
    for item in items:
        if item.size_bytes is not None:
            size = item.size_bytes
        else:
            path = local_path(item.source)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # ingest_shard turns it into a reject with the reason
            if not Path(path).is_file():
                continue
            size = stat.st_size
        if size > 0:
            sizes[item.source] = size
    counts = Counter(sizes.values())
    ids = {}
    for source, size in sizes.items():
        if hash_all or counts[size] > 1:
            try:
                ids[source] = stable_id(corpus, _sha256_source(source))
            except (OSError, RejectedInput):
                continue
    return ids


def _sha256_source(source: str) -> str:
    if is_row_uri(source):
        return hashlib.sha256(read_source(source)).hexdigest()
    return _sha256_file(local_path(source))


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _clip_row(corpus: str, item: CorpusItem, data: bytes, sha: str, config: IngestConfig) -> dict[str, object]:
    info = probe(data, min_duration_s=config.min_duration_s, config=config.decode, isolated=True)
    return {
        "clip_id": stable_id(corpus, sha), "corpus": corpus, "split": item.split, "label": item.label,
        "generator": item.generator, "family": item.family, "speaker": item.speaker,
        "language": item.language, "source_uri": item.source, "source_relpath": item.relpath,
        "source_codec": info.codec, "source_format": info.format, "duration_s": info.duration_s,
        "sample_rate": info.sample_rate, "channels": info.channels, "size_bytes": len(data),
        "content_sha256": sha, "attributes": sorted(item.attributes.items()),
        "decoder": DECODER, "decoder_version": _DECODER_VERSION,
        "truncated": info.truncated, "truncation": info.truncation or None,
    }

