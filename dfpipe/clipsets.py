"""Labelled clip sets read from the lake for training and scoring, streamed.

A data spec names what to read: ``CORPUS[:CONDITION][@SPLIT]``

- ``CORPUS``: a corpus name in ``clips``;
- ``CONDITION``: an ``audio`` / ``features`` condition (default
  :attr:`~dfpipe.config.TrainConfig.default_condition`, ``raw``: the ingested files);
- ``SPLIT``: a ``clips.split`` value; ``@*`` means every clip of the corpus. Training
  specs default to ``@train``, evaluation specs to every clip.

Examples: ``demo`` (= ``demo:raw@train`` for training), ``asv5:mp3_128k@eval``,
``itw:flac@*``.

Reading is in two steps, so memory is bounded by configuration, not by corpus size:

1. :func:`read_clip_index`: a small table, one row per clip (id, label, the grouping columns
   predictions carry, and where its inputs lie: Parquet file, row group, row). The train/val
   split and class balancing work on it (:meth:`ClipIndex.subset`, :meth:`ClipIndex.balanced`).
2. :func:`stream_batches`: the inputs, read unit by unit (a row group, at most
   :attr:`~dfpipe.config.StreamConfig.unit_clips` clips) by reader threads, in lake order
   (scoring) or in a seeded order through a bounded shuffle buffer (training).

Features are kept as float16 until a batch is cut (~154 KB per clip for mel, ~36 KB for
LFCC); waveforms (WavLM models) are decoded per clip, from ``audio.audio_bytes`` (or the
source file for the ``raw`` condition), ~192 KB each as float32.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from dfpipe.config import RAW_CONDITION, FrontendConfig, StreamConfig
from dfpipe.errors import ConfigError, DfpipeError, RejectedInput
from dfpipe.feature_table import from_binary
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


# -- where inputs lie ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One table holding some of a detector's inputs, and the files it is read from."""

    table: str
    columns: tuple[str, ...]  # what is read per clip
    where: tuple[tuple[str, str], ...]  # column == value, for every row of the spec
    files: tuple[str, ...] = ()


def _sources(spec: DataSpec, needs: Collection[str], frontend: FrontendConfig) -> list[_Source]:
    """The tables holding ``needs`` (features first: they set the read units when present)."""
    sources = []
    feature_inputs = tuple(name for name in ("mel", "lfcc") if name in needs)
    if feature_inputs:
        sources.append(_Source("features", feature_inputs,
                               (("condition", spec.condition), ("frontend_version", frontend.version))))
    if "waveform" in needs:
        sources.append(_Source("clips", ("source_uri",), ()) if spec.condition == RAW_CONDITION
                       else _Source("audio", ("audio_bytes",), (("condition", spec.condition),)))
    return sources


def _locate(lake: Lake, source: _Source, corpus: str) -> tuple[_Source, pa.Table]:
    """``clip_id, file, row_group, row`` of every row of ``source`` (first row of a clip
    written twice), reading only the id and filter columns of each file."""
    files = tuple(lake.files(source.table, {"corpus": corpus}))
    parts = []
    for number, path in enumerate(files):
        with lake.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            table = parquet.read(columns=["clip_id", *(column for column, _ in source.where)])
            sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        starts = np.cumsum([0, *sizes])
        rows = np.arange(table.num_rows)
        group = np.searchsorted(starts, rows, side="right") - 1
        keep = np.ones(table.num_rows, bool)
        for column, value in source.where:
            keep &= pc.equal(table.column(column), value).to_numpy(zero_copy_only=False)
        parts.append(pa.table({"clip_id": table.column("clip_id"), "file": np.full(len(rows), number, np.int64),
                               "row_group": group, "row": rows - starts[group]}).filter(keep))
    found = pa.concat_tables(parts) if parts else pa.table(
        {"clip_id": pa.array([], pa.string()), **{k: pa.array([], pa.int64()) for k in ("file", "row_group", "row")}})
    found = found.append_column("order", pa.array(np.arange(found.num_rows)))
    first = found.group_by("clip_id", use_threads=False).aggregate([("order", "min")])
    return (_Source(source.table, source.columns, source.where, files),
            found.take(first.column("order_min")).drop_columns(["order"]))


@dataclass(frozen=True)
class ClipIndex:
    """The clips of one data spec that have a detector's inputs, in ``clip_id`` order: ids,
    labels and the inputs' whereabouts, never the inputs themselves (~100 bytes per clip).

    Attributes:
        spec: the data spec.
        meta: one row per clip: ``clip_id, corpus, label`` and :data:`GROUPING`, then
            ``condition`` (the columns a ``predictions`` row takes from its clip).
        labels: ``(N,)`` float32, 1 = spoof.
        sources: the tables the inputs are read from.
        locations: per source, ``(N, 3)`` int64 ``(file, row_group, row)``.
    """

    spec: DataSpec
    meta: pa.Table
    labels: np.ndarray
    sources: tuple[_Source, ...]
    locations: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return self.meta.num_rows

    def subset(self, positions: np.ndarray) -> ClipIndex:
        """The clips at ``positions`` (sorted positions keep ``clip_id`` order)."""
        return ClipIndex(self.spec, self.meta.take(pa.array(positions, pa.int64())), self.labels[positions],
                         self.sources, tuple(loc[positions] for loc in self.locations))

    def balanced(self, per_class: int | None, seed: int) -> ClipIndex:
        """A seeded, balanced sample: ``per_class`` clips of each label (``None``: the smaller
        label's count, the majority undersampled to the minority; training's ``balance:
        undersample``). Within a label, clips are ordered by ``stable_id(seed, clip_id)`` and the
        first ``per_class`` taken, so the draw does not depend on file order and grows
        monotonically with ``per_class``. A label with fewer clips contributes all it has.

        Raises:
            DfpipeError: a label has no clip (saying which stage to run), or fewer than 3 clips in all.
        """
        ids = self.meta.column("clip_id").to_pylist()
        by_label = {label: np.flatnonzero(self.labels == value) for label, value in (("spoof", 1.0), ("bonafide", 0.0))}
        for label, members in by_label.items():
            if not len(members):
                raise DfpipeError(f"{self.spec}: no {label} clip with inputs for this detector (ingest the corpus "
                                  f"and run `dfpipe features --corpus {self.spec.corpus} --condition "
                                  f"{self.spec.condition}`)")
        if per_class is None:
            per_class = min(len(members) for members in by_label.values())
        chosen = np.sort(np.concatenate([sorted(members, key=lambda i: stable_id(str(seed), ids[i]))[:per_class]
                                         for members in by_label.values()])).astype(np.int64)
        if len(chosen) < 3:
            raise DfpipeError(f"{self.spec}: only one clip of each label; at least 3 clips are needed")
        return self.subset(chosen)

    def units(self, unit_clips: int) -> list[np.ndarray]:
        """Positions of the clips of each read unit, in lake order: one row group of the first
        source, cut into slices of at most ``unit_clips``; rows in file order within a unit."""
        if not len(self):
            return []
        where = self.locations[0]
        order = np.lexsort((where[:, 2], where[:, 1], where[:, 0]))
        key = where[order, :2]
        breaks = np.flatnonzero(np.any(key[1:] != key[:-1], axis=1)) + 1
        return [group[i:i + unit_clips] for group in np.split(order, breaks)
                for i in range(0, len(group), unit_clips)]


def read_clip_index(lake: Lake, spec: DataSpec, needs: Collection[str], frontend: FrontendConfig) -> ClipIndex:
    """The :class:`ClipIndex` of ``spec`` for a detector that needs ``needs`` (``mel``, ``lfcc``,
    ``waveform``): reads ``clips`` rows and the id columns of the input tables, no inputs.

    Clips whose condition has no audio/features row (rejected by an earlier stage, where
    the ``rejects`` table says why) are left out, and so, for waveform detectors, are clips with
    a ``rejects`` row for the condition (their audio does not decode).

    Raises:
        DfpipeError: no clip of the spec has its inputs, saying which stage to run.
    """
    clip_filter = pc.field("corpus") == spec.corpus
    if spec.split is not None:
        clip_filter &= pc.field("split") == spec.split
    meta = lake.read("clips", columns=["clip_id", "corpus", "label", *GROUPING], filter=clip_filter)
    if meta.num_rows == 0:
        raise DfpipeError(f"{spec}: no clips in the lake (run `dfpipe ingest --corpus {spec.corpus}` "
                          "first, or check the split name)")
    sources = _sources(spec, needs, frontend)
    if "waveform" in needs:
        rejected = lake.read("rejects", columns=["clip_id"], filter=(pc.field("corpus") == spec.corpus)
                             & (pc.field("condition") == spec.condition)).column("clip_id").combine_chunks()
        meta = meta.filter(pc.invert(pc.is_in(meta.column("clip_id"), rejected)))
    located = []
    for number, source in enumerate(sources):
        source, where = _locate(lake, source, spec.corpus)
        where = where.rename_columns(["clip_id", *(f"_{number}_{k}" for k in ("file", "row_group", "row"))])
        meta = meta.join(where, "clip_id", join_type="inner", use_threads=False)
        located.append(source)
    if meta.num_rows == 0:
        features = sources[0].table == "features"
        stage = "features" if features else "condition"
        raise DfpipeError(f"{spec}: none of its clips has {'features' if features else 'audio'} for "
                          f"condition {spec.condition!r} (run `dfpipe {stage} --corpus {spec.corpus} "
                          f"--condition{'' if features else 's'} {spec.condition}` first)")
    meta = meta.sort_by("clip_id")
    locations = tuple(np.stack([meta.column(f"_{n}_{k}").to_numpy() for k in ("file", "row_group", "row")], axis=1)
                      for n in range(len(located)))
    meta = meta.select(["clip_id", "corpus", "label", *GROUPING])
    labels = pc.equal(meta.column("label"), "spoof").to_numpy(zero_copy_only=False).astype(np.float32)
    meta = meta.append_column("condition", pa.array([spec.condition] * meta.num_rows, pa.string()))
    return ClipIndex(spec, meta, labels, tuple(located), locations)


# -- reading inputs -----------------------------------------------------------------------------


@dataclass
class _Unit:
    """The inputs of some clips of an index: ``positions`` in it, arrays in the same order."""

    positions: np.ndarray
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.positions)


def _read_unit(lake: Lake, index: ClipIndex, frontend: FrontendConfig, positions: np.ndarray) -> _Unit:
    """Read the inputs of the clips at ``positions``, one row group at a time; a clip whose
    audio does not decode is dropped (an earlier stage wrote its rejects row)."""
    shapes = {"mel": frontend.mel_shape, "lfcc": frontend.lfcc_shape}
    arrays: dict[str, np.ndarray] = {}
    ok = np.ones(len(positions), bool)
    for source, locations in zip(index.sources, index.locations, strict=True):
        where = locations[positions]
        for file, group in np.unique(where[:, :2], axis=0):
            members = np.flatnonzero((where[:, 0] == file) & (where[:, 1] == group))
            with lake.fs.open(source.files[file], "rb") as handle:
                rows = pq.ParquetFile(handle).read_row_group(int(group), columns=list(source.columns)) \
                    .take(pa.array(where[members, 2]))
            for column in source.columns:
                if column in shapes:
                    values = from_binary(rows.column(column), shapes[column], np.float16)
                    arrays.setdefault(column, np.zeros((len(positions), *shapes[column]), np.float16))[members] = values
                    continue
                waves = arrays.setdefault("waveform", np.zeros((len(positions), frontend.audio.clip_samples),
                                                               np.float32))
                for member, value in zip(members, rows.column(column).to_pylist(), strict=True):
                    try:
                        waves[member] = load_clip(read_source(value) if source.table == "clips" else value,
                                                  frontend.audio)
                    except RejectedInput:
                        ok[member] = False  # an earlier stage reads the same audio and wrote the rejects row
    return _Unit(positions[ok], {name: array[ok] for name, array in arrays.items()})


def _read_ahead(read: Callable[[np.ndarray], _Unit], units: Iterable[np.ndarray], workers: int,
                prefetch: int) -> Iterator[_Unit]:
    """``read`` of each unit, in the order given, by ``workers`` threads keeping up to
    ``prefetch`` units in flight (0 workers: in this thread)."""
    if workers == 0:
        yield from map(read, units)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="dfpipe-reader") as pool:
        pending: deque = deque()
        for unit in units:
            pending.append(pool.submit(read, unit))
            if len(pending) > prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass(frozen=True)
class ClipBatch:
    """A batch streamed from an index: its clips' ``positions`` in the index, the detector's
    ``inputs`` (float32 CPU tensors) and ``labels`` ``(B,)`` float32."""

    positions: np.ndarray
    inputs: Batch
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.positions)


def stream_batches(lake: Lake, index: ClipIndex, batch_size: int, frontend: FrontendConfig,
                   config: StreamConfig, shuffle: np.random.Generator | None = None) -> Iterator[ClipBatch]:
    """Batches of the clips of ``index`` with their inputs, read unit by unit ahead of use.

    Without ``shuffle`` (scoring), units come in lake order and batches in that order. With
    it (training), the units are permuted by ``shuffle``; clips are gathered until
    ``config.shuffle_buffer`` are held, permuted together, and cut into batches (the few left
    over join the next fill). The order depends only on the generator, the index and
    ``shuffle_buffer``/``unit_clips``, never on ``config.workers``. The last batch may be smaller.
    """
    units = index.units(config.unit_clips)
    if shuffle is not None:
        units = [units[i] for i in shuffle.permutation(len(units))]
    loaded = _read_ahead(lambda positions: _read_unit(lake, index, frontend, positions), units,
                         config.workers, config.prefetch)
    capacity = config.shuffle_buffer if shuffle is not None else batch_size
    held: list[_Unit] = []
    count = 0
    for unit in loaded:
        held.append(unit)
        count += len(unit)
        if count >= capacity:
            *batches, rest = _cut(held, batch_size, shuffle)
            for which, row in batches:  # gathered one at a time: at most one batch beside the buffer
                yield _batch(index, _gather(held, which, row))
            held = [_gather(held, *rest)]
            count = len(held[0])
    for which, row in _cut(held, batch_size, shuffle):
        if len(which):
            yield _batch(index, _gather(held, which, row))


def _cut(held: list[_Unit], batch_size: int, shuffle: np.random.Generator | None
         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``held`` (permuted by ``shuffle``) as ``(unit, row)`` picks: full batches, then the rest
    (maybe empty)."""
    which = np.concatenate([np.full(len(unit), i, np.int64) for i, unit in enumerate(held)] or [np.zeros(0, np.int64)])
    row = np.concatenate([np.arange(len(unit)) for unit in held] or [np.zeros(0, np.int64)])
    order = shuffle.permutation(len(which)) if shuffle is not None else np.arange(len(which))
    full = len(order) // batch_size * batch_size
    parts = [order[start:start + batch_size] for start in range(0, full, batch_size)] + [order[full:]]
    return [(which[part], row[part]) for part in parts]


def _gather(held: list[_Unit], which: np.ndarray, row: np.ndarray) -> _Unit:
    """The clips ``(held[which[k]], row[k])`` as one unit, in that order."""
    names = held[0].arrays.keys() if held else ()
    out = {name: np.empty((len(which), *held[0].arrays[name].shape[1:]), held[0].arrays[name].dtype)
           for name in names}
    positions = np.empty(len(which), np.int64)
    for i in np.unique(which):
        mask = which == i
        positions[mask] = held[i].positions[row[mask]]
        for name in names:
            out[name][mask] = held[i].arrays[name][row[mask]]
    return _Unit(positions, out)


def _batch(index: ClipIndex, unit: _Unit) -> ClipBatch:
    inputs = Batch(**{name: torch.from_numpy(array.astype(np.float32, copy=False)) for name, array in unit.arrays.items()})
    return ClipBatch(unit.positions, inputs, torch.from_numpy(index.labels[unit.positions]))


# -- whole clip sets in memory (small samples: the diagnostics) ---------------------------------


@dataclass
class ClipSet:
    """Clips of an index with their inputs in memory, in ``clip_id`` order: for small samples
    (:func:`load_balanced_clip_set`), never a training or eval set.

    Attributes:
        meta: as :attr:`ClipIndex.meta`.
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

    def batch(self, index: np.ndarray | slice) -> tuple[Batch, torch.Tensor]:
        """``(Batch, labels)`` of the clips at ``index``, as float32 CPU tensors."""
        inputs = {name: None if (a := getattr(self, name)) is None else torch.from_numpy(np.asarray(a[index], np.float32))
                  for name in ("mel", "lfcc", "waveform")}
        return Batch(**inputs), torch.from_numpy(self.labels[index])


def load_balanced_clip_set(lake: Lake, spec: DataSpec, needs: Collection[str], frontend: FrontendConfig,
                           per_class: int | None, seed: int) -> ClipSet:
    """A seeded, balanced sample of ``spec`` in memory (:meth:`ClipIndex.balanced`): only
    the sampled clips' inputs are read. Clips whose audio turns out not to decode are left out.

    Raises:
        DfpipeError: no clip with inputs, a label without clips, fewer than 3 clips.
    """
    index = read_clip_index(lake, spec, needs, frontend).balanced(per_class, seed)
    units = [_read_unit(lake, index, frontend, positions) for positions in index.units(StreamConfig.unit_clips)]
    seen = np.sort(np.concatenate([unit.positions for unit in units]))
    arrays = {}
    for name in units[0].arrays:
        arrays[name] = np.empty((len(index), *units[0].arrays[name].shape[1:]), units[0].arrays[name].dtype)
        for unit in units:
            arrays[name][unit.positions] = unit.arrays[name]
    if not len(seen):
        raise DfpipeError(f"{spec}: none of the sampled clips' audio decodes (see the rejects table)")
    return ClipSet(meta=index.meta.take(pa.array(seen)), labels=index.labels[seen],
                   **{name: array[seen] for name, array in arrays.items()})
