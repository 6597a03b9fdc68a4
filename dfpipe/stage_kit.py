"""The stage kit: what every shard-sized stage (ingest, conditions, features...) does the same way.

A stage plans shards of work, runs each shard on any worker, and commits each shard's
output and rejects atomically under a deterministic shard id; a re-run skips what is done.
The pieces every stage shares live here, once:

- :class:`StageSummary`: what a shard or a run wrote (shards, rows, rejects);
- :func:`read_source`: the bytes of a source file, with the one set of reject reasons
  (``missing``, ``not_a_file``, ``unreadable``);
- :func:`reject_row` and :func:`rejects_table`: ``rejects`` rows (:data:`dfpipe.schemas.REJECTS`);
- :func:`committed`: what is done, i.e. the stage's output rows ∪ its ``rejects`` rows, for planning;
- :func:`shard_committed`: the guard a shard checks before doing any work;
- :class:`Executor` and :func:`map_shards`: running shard functions here, on a Dask
  ``Client`` or on a ``concurrent.futures`` pool (lhotse style).

Atomic writing itself is :func:`dfpipe.lake.atomic_write` (through
:meth:`dfpipe.lake.Lake.write_shard` for lake tables).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from dfpipe.errors import RejectedInput
from dfpipe.lake import Lake
from dfpipe.parquet_source import is_row_uri, read_value
from dfpipe.schemas import REJECTS

S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class StageSummary:
    """What a shard or a run of a stage wrote (conditions and features): small, picklable."""

    shards: int = 0
    rows: int = 0
    rejects: int = 0

    def __add__(self, other: StageSummary) -> StageSummary:
        return StageSummary(self.shards + other.shards, self.rows + other.rows, self.rejects + other.rejects)

    @classmethod
    def total(cls, summaries: Iterable[StageSummary]) -> StageSummary:
        """The sum of shard summaries (consumes the iterable)."""
        return sum(summaries, cls())


# -- reading sources -------------------------------------------------------------------


def read_source(uri: str) -> bytes:
    """The bytes of a source file (local path or fsspec URL), or of audio embedded in a
    Parquet row (``parquet:///file.parquet?column=audio.bytes&row=12``, see
    :mod:`dfpipe.parquet_source`).

    Raises:
        RejectedInput: ``missing`` (it does not exist), ``not_a_file`` (a directory), or
            ``unreadable`` (a local file the OS refuses to read, e.g. no permission). Other
            errors of remote storage propagate, so a task retry can try again.
    """
    if is_row_uri(uri):
        return read_value(uri)
    try:
        if _is_local(uri):
            return Path(uri.removeprefix("file://")).read_bytes()
        with fsspec.open(uri, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise RejectedInput("missing", "the file no longer exists (was the corpus moved?)") from exc
    except IsADirectoryError as exc:
        raise RejectedInput("not_a_file", "a directory, not an audio file") from exc
    except OSError as exc:
        if not _is_local(uri):
            raise
        raise RejectedInput("unreadable", f"cannot read it ({exc.strerror or exc})") from exc


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


# -- rejects ---------------------------------------------------------------------------


def reject_row(stage: str, source_uri: str, reason: str, detail: str, *, corpus: str | None = None,
               clip_id: str | None = None, condition: str | None = None) -> dict[str, Any]:
    """One ``rejects`` row: which stage could not use which input, and why."""
    return {"stage": stage, "corpus": corpus, "source_uri": source_uri, "clip_id": clip_id,
            "condition": condition, "reason": reason, "detail": detail}


def rejects_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """``rejects`` rows (:func:`reject_row`) as a table with the ``rejects`` schema."""
    return pa.Table.from_pylist(list(rows), schema=REJECTS)


# -- planning and the shard guard ------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    """What a stage already committed for one partition: its output rows and its rejects rows."""

    made: pa.Table
    rejected: pa.Table

    def keys(self, column: str = "clip_id") -> set[str]:
        """Done = output ∪ rejects, by ``column`` (a re-run skips these)."""
        return set(self.made.column(column).to_pylist()) | set(self.rejected.column(column).to_pylist())


def committed(lake: Lake, output: str, stage: str, partition: Mapping[str, str], *,
              condition: str | None = None, made_filter: ds.Expression | None = None,
              made_columns: Sequence[str] = ("clip_id",),
              rejected_columns: Sequence[str] = ("clip_id",)) -> Committed:
    """The rows of ``output`` and the ``rejects`` rows of ``stage`` already in ``partition``.

    Args:
        output: the stage's table (``clips``, ``audio``, ``features``).
        condition: only rows of this condition (both tables), when given.
        made_filter: a further filter on the output rows (e.g. the front-end version).
    """
    made_where = made_filter
    rejected_where = ds.field("stage") == stage
    if condition is not None:
        on_condition = ds.field("condition") == condition
        made_where = on_condition if made_where is None else on_condition & made_where
        rejected_where = rejected_where & on_condition
    made = lake.read(output, columns=list(made_columns), partition=partition, filter=made_where)
    rejected = lake.read("rejects", columns=list(rejected_columns), partition=partition, filter=rejected_where)
    return Committed(made, rejected)


def shard_committed(lake: Lake, output: str, shard_id: str, partition: Mapping[str, str]) -> bool:
    """True when the shard's ``output`` shard or its ``rejects`` shard is in the lake.

    Either one marks the shard as done: a shard that rejected every clip writes only a
    ``rejects`` shard. So a retry after a crash between a stage's two writes returns an empty
    summary; the clips left without output are not lost, the next run plans them again
    (done = output ∪ rejects, :func:`committed`) in a new shard.
    """
    return lake.has_shard(output, shard_id, partition) or lake.has_shard("rejects", shard_id, partition)


# -- executors -------------------------------------------------------------------------


class Executor(Protocol):
    """Anything with ``submit(fn, *args)`` returning a future: a ``distributed.Client``, a
    ``concurrent.futures`` pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


def map_shards(fn: Callable[[S], R], shards: Iterable[S], executor: Executor | None = None) -> Iterator[R]:
    """Run ``fn`` on every shard, yielding results as they complete (in order when local).

    Shard functions do real work (seconds, not milliseconds: Dask costs ~1 ms per task) and
    write their own output. Exceptions raised by ``fn`` propagate: shard functions turn bad
    *inputs* into rejects rows themselves, so an exception here is a bug or an
    infrastructure failure.
    """
    if executor is None:
        for shard in shards:
            yield fn(shard)
        return
    futures = [executor.submit(fn, shard) for shard in shards]
    if hasattr(executor, "gather"):  # a distributed.Client
        from distributed import as_completed

        for future in as_completed(futures):
            yield future.result()
    else:
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
