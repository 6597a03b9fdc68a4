"""The ``features`` table's arrays: encoding them for the writer, streaming them back to readers.

The features stage (:mod:`dfpipe.features`) stores each clip's ``mel`` and ``lfcc`` arrays as
float16 little-endian bytes in ``large_binary`` columns (:func:`to_binary`) and readers decode
them column-wise with :func:`from_binary` (no loop over rows): training, scoring and the
diagnostics row group by row group (:func:`dfpipe.clipsets.stream_batches`), notebooks and
scripts in Arrow record batches with :func:`iter_feature_batches`.
Why float16, and what a row weighs: see :mod:`dfpipe.features`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from dfpipe.config import FeaturesConfig, FrontendConfig
from dfpipe.errors import ConfigError
from dfpipe.lake import Lake


def to_binary(array: np.ndarray) -> pa.Array:
    """``(B, ...)`` float array -> ``large_binary`` array of B float16 little-endian blobs, no copies per row."""
    flat = np.ascontiguousarray(array, dtype="<f2").reshape(array.shape[0], -1)
    row_bytes = flat.shape[1] * 2
    offsets = np.arange(flat.shape[0] + 1, dtype=np.int64) * row_bytes
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), flat.shape[0],
                                            [None, pa.py_buffer(offsets), pa.py_buffer(flat)])


def from_binary(column: pa.Array, shape: Sequence[int], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Inverse of :func:`to_binary`: a ``large_binary`` column -> ``(B, *shape)`` of ``dtype``
    (float32 by default; float16 keeps the stored values at half the memory). Always a copy,
    so the Arrow buffers can be freed."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(column)
    if n == 0:
        return np.zeros((0, *shape), dtype)
    offsets = np.frombuffer(column.buffers()[1], np.int64)[column.offset:column.offset + n + 1]
    data = np.frombuffer(column.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    if not np.all(np.diff(offsets) == int(np.prod(shape)) * 2):
        raise ConfigError(f"features rows do not all have shape {list(shape)}")
    return data.view("<f2").reshape(n, *shape).astype(dtype, copy=True)


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
            torch.from_numpy(from_binary(table.column("mel"), mel_shape)),
            torch.from_numpy(from_binary(table.column("lfcc"), lfcc_shape)))
