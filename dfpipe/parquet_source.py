"""Sources that are one value of a Parquet file: audio embedded in a release's rows.

A Hugging Face audio release stores each clip's encoded file inside a Parquet row (the
``Audio`` column, ``struct<bytes: binary, path: string>``). dfpipe leaves the release as it
is on disk: the clip's ``source_uri`` names the file, the column and the row, and every
stage reads the bytes back through :func:`dfpipe.stage_kit.read_source`, which hands such
URIs to :func:`read_value`::

    parquet:///data/asv/data/train-00000-of-00002.parquet?column=audio.bytes&row=00012

- the path is absolute and percent-quoted (``urllib.parse.quote``);
- ``column`` is a column path, ``.`` stepping into a struct (``audio.bytes``); its value
  must be binary;
- ``row`` is the 0-based row of the file (as ``dataset[12]`` counts), zero-padded to the
  width of the file's last row number, so that sorting URIs as strings sorts the rows of a
  file in order (ingest plans shards in source order, and reads them in that order).

Memory stays bounded whatever the file: a value is read by streaming its row group in
batches of ``HFParquetConfig.batch_rows`` rows, page by page (never the whole file, never
the whole row group at once), so a read holds one batch and one data page. Each thread
keeps its last position, so reading the rows of a file in order reads each batch once;
reading them in another order reads, per value, its row group up to that row.
``datasets`` writes audio releases with 100 rows per row group.
"""

from __future__ import annotations

import bisect
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dfpipe.config import HFParquetConfig
from dfpipe.errors import RejectedInput

SCHEME = "parquet://"
_READ_BUFFER_BYTES = 1 << 20  # streamed reads of a column chunk, page by page


def row_uri(path: str | os.PathLike[str], column: str, row: int, *, rows: int | None = None) -> str:
    """The source URI of one value: ``column`` (a column path) of ``row`` in the file ``path``.

    Args:
        path: the Parquet file (made absolute).
        column: ``audio.bytes`` for an HF ``Audio`` column, or a binary column's name.
        row: 0-based row of the file.
        rows: the file's row count; pads ``row`` to the width of its last row number.

    >>> row_uri("/d/train-0.parquet", "audio.bytes", 7, rows=120)
    'parquet:///d/train-0.parquet?column=audio.bytes&row=007'
    """
    width = len(str(max((rows or 1) - 1, 0)))
    query = urllib.parse.urlencode({"column": column, "row": f"{row:0{width}d}"}, safe=".")
    return f"{SCHEME}{urllib.parse.quote(os.path.abspath(path))}?{query}"


def is_row_uri(uri: str) -> bool:
    """True for a URI made by :func:`row_uri`."""
    return uri.startswith(SCHEME)


def parse_row_uri(uri: str) -> tuple[str, str, int]:
    """``(path, column, row)`` of a URI made by :func:`row_uri`.

    Raises:
        RejectedInput: ``unreadable`` when the URI lacks its column or row.
    """
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qs(parts.query)
    try:
        column, row = query["column"][0], int(query["row"][0])
    except (KeyError, IndexError, ValueError):
        raise RejectedInput("unreadable", f"{uri} names no column and row (…?column=C&row=N)") from None
    return urllib.parse.unquote(parts.path), column, row


@dataclass
class _Cursor:
    """Where one thread last read: the file, the row group, the batch holding the last row."""

    key: tuple[object, ...]
    file: pq.ParquetFile
    starts: list[int]  # first row of each row group, and the row count at the end
    column: list[str]
    group: int = -1
    batch_start: int = 0
    batch: pa.Array | None = None
    batches: Iterator[pa.RecordBatch] = field(default_factory=lambda: iter(()))


_local = threading.local()


def read_value(uri: str) -> bytes:
    """The bytes stored at ``uri`` (see the module docstring for the form and the cost).

    Raises:
        RejectedInput: ``missing`` (no such file, a row past the end, a NULL value),
            ``not_a_file`` (a directory), ``unreadable`` (not Parquet, no such column, a
            value that is not binary).
    """
    path, column, row = parse_row_uri(uri)
    cursor = _cursor(path, column)
    if not 0 <= row < cursor.starts[-1]:
        raise RejectedInput("missing", f"{path} has {cursor.starts[-1]} rows, no row {row}")
    group = bisect.bisect_right(cursor.starts, row) - 1
    if group != cursor.group or row < cursor.batch_start:
        cursor.group, cursor.batch, cursor.batch_start = group, None, cursor.starts[group]
        cursor.batches = cursor.file.iter_batches(
            batch_size=HFParquetConfig.batch_rows, row_groups=[group], columns=[".".join(cursor.column)])
    while cursor.batch is None or row >= cursor.batch_start + len(cursor.batch):
        if cursor.batch is not None:
            cursor.batch_start += len(cursor.batch)
        try:
            batch = next(cursor.batches)
        except StopIteration:  # the metadata promised more rows than the group holds
            cursor.group = -1
            raise RejectedInput("unreadable", f"{path}: row group {group} ends before row {row}") from None
        except (OSError, pa.ArrowException) as exc:
            cursor.group = -1
            raise RejectedInput("unreadable", f"{path}: cannot read row {row} ({exc})") from exc
        values = batch.column(0)
        for name in cursor.column[1:]:
            values = pc.struct_field(values, name)
        cursor.batch = values
    value = cursor.batch[row - cursor.batch_start].as_py()
    if value is None:
        raise RejectedInput("missing", f"{path}: row {row} has no value in {'.'.join(cursor.column)}")
    if not isinstance(value, bytes):
        raise RejectedInput("unreadable", f"{path}: {'.'.join(cursor.column)} is not binary")
    return value


def _cursor(path: str, column: str) -> _Cursor:
    """This thread's cursor on ``path``/``column``, reopened when the file changed."""
    try:
        stat = os.stat(path)
    except FileNotFoundError as exc:
        raise RejectedInput("missing", f"{path} no longer exists (was the release moved?)") from exc
    except OSError as exc:
        raise RejectedInput("unreadable", f"cannot read {path} ({exc.strerror or exc})") from exc
    if os.path.isdir(path):
        raise RejectedInput("not_a_file", f"{path} is a directory, not a Parquet file")
    key = (path, column, stat.st_mtime_ns, stat.st_size)
    cursor: _Cursor | None = getattr(_local, "cursor", None)
    if cursor is not None and cursor.key == key:
        return cursor
    try:
        file = pq.ParquetFile(path, buffer_size=_READ_BUFFER_BYTES, pre_buffer=False)
    except (OSError, pa.ArrowException) as exc:
        raise RejectedInput("unreadable", f"{path} is not a readable Parquet file ({exc})") from exc
    names = column.split(".")
    if not _has_column(file.schema_arrow, names):
        raise RejectedInput("unreadable", f"{path} has no column {column!r}")
    starts = [0]
    for group in range(file.metadata.num_row_groups):
        starts.append(starts[-1] + file.metadata.row_group(group).num_rows)
    cursor = _Cursor(key=key, file=file, starts=starts, column=names)
    _local.cursor = cursor
    return cursor


def _has_column(schema: pa.Schema, names: list[str]) -> bool:
    if schema.get_field_index(names[0]) < 0:
        return False
    kind = schema.field(names[0]).type
    for name in names[1:]:
        if not pa.types.is_struct(kind) or kind.get_field_index(name) < 0:
            return False
        kind = kind.field(name).type
    return True
