"""The stage kit: what every shard-sized stage (ingest, conditions, features...) does the same way.

A stage plans shards of work, runs each shard on any worker, and commits each shard's
output and rejects atomically under a deterministic shard id; a re-run skips what is done.
The pieces every stage shares live here, once:

- :class:`StageSummary`: what a shard or a run wrote (shards, rows, rejects);
- :func:`read_source`: the bytes of a source file, with the one set of reject reasons
  (``missing``, ``not_a_file``, ``unreadable``); :func:`as_source_uri` / :func:`local_path`: a
  file name that is not valid UTF-8 as a lake string and back, exactly; :func:`printable`:
  such names shown escaped;
- :func:`reject_row` and :func:`rejects_table`: ``rejects`` rows (:data:`dfpipe.schemas.REJECTS`);
- :func:`committed`: what is done, i.e. the stage's output rows ∪ its ``rejects`` rows, for planning;
- :func:`shard_committed`: the guard a shard checks before doing any work;
- :func:`split_filter`: only the clips of some splits (the splits a study reads);
- :class:`Executor` and :func:`map_shards`: running shard functions here, on a Dask
  ``Client`` or on a ``concurrent.futures`` pool (lhotse style).

Atomic writing itself is :func:`dfpipe.lake.atomic_write` (through
:meth:`dfpipe.lake.Lake.write_shard` for lake tables).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import urllib.parse
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


FILE_SCHEME = "file://"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
"""C0 controls and DEL: never part of a file name a corpus means (a NUL cannot even be one)."""


def as_source_uri(path: str) -> str:
    r"""``path`` as a lake string (``source_uri`` columns): itself when it is valid UTF-8 without
    control characters, else a ``file://`` URI of its exact bytes, percent-encoded.

    Arrow strings must be UTF-8, and a file name on disk is bytes (Python holds the bytes that
    are not UTF-8 as surrogates, ``os.fsdecode``); the URI keeps every byte, so
    :func:`local_path` gives the same file back. Idempotent (a URI is returned as it is).

    >>> as_source_uri("/c/fake/caf\udce9.wav"), as_source_uri("/c/real/a.wav")
    ('file:///c/fake/caf%E9.wav', '/c/real/a.wav')
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if not CONTROL_CHARACTERS.search(path):
            return path
    return FILE_SCHEME + urllib.parse.quote(os.fsencode(path), safe="/")


def local_path(uri: str) -> str:
    """The OS path of a local source (a path, or a ``file://`` URI, percent-decoded to its
    exact bytes): the inverse of :func:`as_source_uri`; other URIs are returned as they are."""
    if not uri.startswith(FILE_SCHEME):
        return uri
    return os.fsdecode(urllib.parse.unquote_to_bytes(uri.removeprefix(FILE_SCHEME)))


def printable(text: str) -> str:
    r"""``text`` for people and for Arrow strings: bytes that are not UTF-8 and control
    characters backslash-escaped (``caf\xe9.wav``, ``a\x0ab.wav``); for display only (use
    :func:`as_source_uri` to keep a name exactly).

    >>> printable("caf\udce9\n.wav")
    'caf\\xe9\\x0a.wav'
    """
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (e.g. JSON "\ud800")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def read_source(uri: str) -> bytes:
    """The bytes of a source file (local path, ``file://`` URI as :func:`as_source_uri` writes
    it, or fsspec URL), or of audio embedded in a Parquet row
    (``parquet:///file.parquet?column=audio.bytes&row=12``, see :mod:`dfpipe.parquet_source`).

    Raises:
        RejectedInput: ``missing`` (it does not exist), ``not_a_file`` (a directory), or
            ``unreadable`` (a local file the OS refuses to read, e.g. no permission). Other
            errors of remote storage propagate, so a task retry can try again.
    """
    if is_row_uri(uri):
        return read_value(uri)
    try:
        if _is_local(uri):
            return Path(local_path(uri)).read_bytes()
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
    return "://" not in uri or uri.startswith(FILE_SCHEME)


# -- rejects ---------------------------------------------------------------------------


def reject_row(stage: str, source_uri: str, reason: str, detail: str, *, corpus: str | None = None,
               clip_id: str | None = None, condition: str | None = None) -> dict[str, Any]:
    """One ``rejects`` row: which stage could not use which input, and why.

    ``source_uri`` is kept exactly (:func:`as_source_uri`), ``detail`` shown escaped
    (:func:`printable`): a file name that is not UTF-8 is a reject like any other input.
    """
    return {"stage": stage, "corpus": corpus, "source_uri": as_source_uri(source_uri), "clip_id": clip_id,
            "condition": condition, "reason": reason, "detail": printable(detail)}


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


def split_filter(splits: Iterable[str] | None) -> ds.Expression | None:
    """A ``clips`` filter on ``clips.split`` (``None``: every clip): a stage makes only the
    splits a study reads. A clip with no split matches only ``None``."""
    return None if splits is None else ds.field("split").isin(sorted(set(splits)))


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
